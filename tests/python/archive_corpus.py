"""A generated archive corpus: patients -> studies -> series -> instances, header-only files.

`generate(folder, instances=100_000, seed=...)` writes Part 10 files (explicit VR little endian,
no pixel data: the index never reads it) with a realistic hierarchy and attribute mix, in a
multiprocessing pool, and returns the record of what it wrote: per instance the values of the
indexed attributes in the normalised form the index tests compare (see normalise in
test_archive_index.py), plus the hierarchy. The files are encoded here, element by element
(pydicom's writer costs ~1.5 ms a file, which is minutes for 10^5 files on two cores); the
tests read a sample back with pydicom to hold the encoder and the record to what pydicom says.

The mix: three character sets (none, ISO_IR 100 with accented Latin names, ISO_IR 192 with
Cyrillic/Greek/Japanese names and a three-group Japanese PN), patients with and without an
issuer, multi-valued Other Patient IDs / Operators' Name / Image Type, TM with and without
fractions, Request Attributes and Procedure Code sequences on some series and studies.

Run it alone to time it:  python tests/python/archive_corpus.py OUT_DIR [N]
"""
import json
import multiprocessing
import os
import random
import struct
import sys
import time

FORMAT = 1  # of the record: bump when plan() changes
ROOT_UID = "1.2.826.0.1.3680043.10.1013"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
SOP_CLASSES = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
    "PT": "1.2.840.10008.5.1.4.1.1.128",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",
}
SIZES = {"CT": (512, 512, 16), "MR": (256, 256, 16), "CR": (2048, 2500, 16),
         "US": (480, 640, 8), "PT": (128, 128, 16), "DX": (3000, 2400, 16)}
BODY = {"CT": ["HEAD", "CHEST", "ABDOMEN"], "MR": ["BRAIN", "KNEE", "SPINE"],
        "CR": ["CHEST", "HAND"], "US": ["ABDOMEN", "THYROID"], "PT": ["WHOLEBODY"],
        "DX": ["CHEST", "FOOT"]}

LATIN1_NAMES = ["Müller^Jörg", "Français^Amélie", "Núñez^José", "Øster^Åse", "Weiß^Günter",
                "Søren^Kierkegård", "Ça^Ëlise"]
UTF8_NAMES = ["Иванов^Пётр", "Παπαδόπουλος^Γιώργος", "Yamada^Tarou=山田^太郎=やまだ^たろう",
              "王^小明", "Łukasiewicz^Zoë", "Ångström^Anders"]
ASCII_NAMES = ["Doe^John", "Roe^Jane^Q^Dr^PhD", "Citizen^Pat", "Smith^Anna", "Brown^Bob^^^",
               "Nguyen^Lan", "O'Neil^Sean"]
DESCRIPTIONS = ["CT HEAD WO CONTRAST", "MR BRAIN W/WO", "CHEST 2 VIEWS", "US ABDOMEN",
                "PET/CT WHOLE BODY", "KNEE RIGHT", "Follow-up 3 months"]
PHYSICIANS = ["House^Gregory", "Quinn^Michaela", "Who^Doctor", "Zhivago^Yuri"]
OPERATORS = ["Tech^One", "Tech^Two", "Tech^Three"]
INSTITUTIONS = ["General Hospital", "St. Mary's", "Klinikum Süd"]

# (group, element) -> VR, for the encoder
VR = {
    0x00080005: "CS", 0x00080008: "CS", 0x00080016: "UI", 0x00080018: "UI",
    0x00080020: "DA", 0x00080021: "DA", 0x00080022: "DA", 0x00080023: "DA",
    0x00080030: "TM", 0x00080031: "TM", 0x00080032: "TM", 0x00080033: "TM",
    0x00080050: "SH", 0x00080060: "CS", 0x00080070: "LO", 0x00080080: "LO",
    0x00080090: "PN", 0x00080100: "SH", 0x00080102: "SH", 0x00080104: "LO",
    0x00081010: "SH", 0x00081030: "LO", 0x00081032: "SQ", 0x0008103E: "LO", 0x00081050: "PN",
    0x00081070: "PN", 0x00081090: "LO",
    0x00100010: "PN", 0x00100020: "LO", 0x00100021: "LO", 0x00100030: "DA", 0x00100040: "CS",
    0x00101000: "LO", 0x00101010: "AS", 0x00101030: "DS", 0x00180015: "CS", 0x00181030: "LO",
    0x0020000D: "UI", 0x0020000E: "UI", 0x00200010: "SH", 0x00200011: "IS", 0x00200013: "IS",
    0x00200052: "UI", 0x00200060: "CS",
    0x00280002: "US", 0x00280008: "IS", 0x00280010: "US", 0x00280011: "US", 0x00280100: "US",
    0x00400009: "SH", 0x00400275: "SQ", 0x00401001: "SH",
}
LONG_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "SQ", "UT", "UN", "UC", "UR"}


def _element(tag, value, codec):
    """One explicit VR little endian element; value is str, list of str, int, or bytes (SQ)."""
    vr = VR[tag]
    if vr == "US":
        raw = struct.pack("<H", value)
    elif vr == "SQ":
        raw = value
    else:
        text = "\\".join(value) if isinstance(value, (list, tuple)) else str(value)
        raw = text.encode(codec if vr in ("PN", "LO", "SH", "LT", "ST", "UT") else "ascii")
        if len(raw) % 2:
            raw += b"\0" if vr == "UI" else b" "
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode()
    if vr in LONG_VRS:
        return head + struct.pack("<HI", 0, len(raw)) + raw
    return head + struct.pack("<H", len(raw)) + raw


def _items(items, codec):
    """The value of a sequence of defined length items (each a dict tag -> value)."""
    out = b""
    for item in items:
        body = b"".join(_element(t, v, codec) for t, v in sorted(item.items()))
        out += struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body
    return out


def _part10(sop_class, sop_uid, body):
    meta_body = b"".join([
        _meta(0x00020001, "OB", b"\0\1"),
        _meta(0x00020002, "UI", sop_class.encode()),
        _meta(0x00020003, "UI", sop_uid.encode()),
        _meta(0x00020010, "UI", EXPLICIT_LE.encode()),
        _meta(0x00020012, "UI", (ROOT_UID + ".9").encode()),
    ])
    meta = _meta(0x00020000, "UL", struct.pack("<I", len(meta_body))) + meta_body
    return b"\0" * 128 + b"DICM" + meta + body


def _meta(tag, vr, raw):
    if len(raw) % 2:
        raw += b"\0"
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode()
    if vr in LONG_VRS:
        return head + struct.pack("<HI", 0, len(raw)) + raw
    return head + struct.pack("<H", len(raw)) + raw


def _date(rng, y0, y1):
    return f"{rng.randint(y0, y1)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"


def _time(rng):
    t = f"{rng.randint(0, 23):02d}{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}"
    r = rng.random()
    if r < 0.3:
        t += "." + str(rng.randint(0, 999999)).zfill(6)[: rng.randint(1, 6)]
    elif r < 0.4:
        t = t[:4]
    return t


def plan(instances=100_000, patients=1000, seed=20240401):
    """The corpus as a list of series jobs: (path prefix, elements shared by the series, codec,
    sop class, list of per-instance elements). Deterministic for a seed."""
    rng = random.Random(seed)
    series_jobs = []
    for p in range(patients):
        charset = rng.choices(["", "ISO_IR 100", "ISO_IR 192"], [5, 2, 3])[0]
        codec = {"": "ascii", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}[charset]
        names = {"": ASCII_NAMES, "ISO_IR 100": LATIN1_NAMES, "ISO_IR 192": UTF8_NAMES}[charset]
        patient = {0x00100010: rng.choice(names), 0x00100020: f"PID{p:05d}",
                   0x00100030: _date(rng, 1925, 2020)}
        if charset:
            patient[0x00080005] = charset
        if rng.random() < 0.3:
            patient[0x00100021] = rng.choice(["HOSP_A", "HOSP_B"])
        if rng.random() < 0.9:
            patient[0x00100040] = rng.choice(["M", "F", "O"])
        if rng.random() < 0.1:
            patient[0x00101000] = [f"ALT{p}", f"MRN-{rng.randint(1000, 9999)}"]
        for s in range(rng.choices([1, 2, 3, 4], [2, 3, 3, 2])[0]):
            study_uid = f"{ROOT_UID}.1.{p}.{s}"
            study = dict(patient)
            study.update({0x0020000D: study_uid, 0x00080020: _date(rng, 2015, 2024),
                          0x00080030: _time(rng), 0x00080050: f"ACC{p:05d}{s}",
                          0x00200010: str(s + 1), 0x00081030: rng.choice(DESCRIPTIONS)})
            if rng.random() < 0.7:
                study[0x00080090] = rng.choice(PHYSICIANS)
            if rng.random() < 0.5:
                study[0x00101010] = f"{rng.randint(1, 99):03d}Y"
            if rng.random() < 0.5:
                study[0x00101030] = f"{rng.randint(300, 1200) / 10:g}"
            if rng.random() < 0.2:
                study[0x00081032] = [{0x00080100: f"P{rng.randint(1, 99)}", 0x00080102: "L",
                                      0x00080104: "Procedure"}]
            for r in range(rng.choices([1, 2, 3, 4, 5], [2, 3, 3, 2, 1])[0]):
                modality = rng.choice(list(SOP_CLASSES))
                series = dict(study)
                series.update({
                    0x0020000E: f"{ROOT_UID}.2.{p}.{s}.{r}", 0x00080060: modality,
                    0x00200011: str(r + 1), 0x0008103E: f"{modality} series {r + 1}",
                    0x00080070: rng.choice(["ACME", "Initech", "Umbrella"]),
                    0x00080080: rng.choice(INSTITUTIONS[:2] if codec == "ascii"
                                             else INSTITUTIONS),
                    0x00180015: rng.choice(BODY[modality]),
                    0x00080021: study[0x00080020], 0x00080031: _time(rng),
                    0x00200052: f"{ROOT_UID}.4.{p}.{s}.{r}",
                })
                if rng.random() < 0.5:
                    series[0x00081070] = rng.sample(OPERATORS, rng.randint(1, 2))
                if rng.random() < 0.3:
                    series[0x00081010] = f"ST{rng.randint(1, 9)}"
                if rng.random() < 0.2:
                    series[0x00200060] = rng.choice(["L", "R"])
                if rng.random() < 0.2:
                    series[0x00400275] = [{0x00080050: study[0x00080050],
                                           0x00401001: f"RP{p}{s}",
                                           0x00400009: f"SPS{p}{s}{r}"}]
                series_jobs.append([codec, SOP_CLASSES[modality], series, 0,
                                    f"{ROOT_UID}.3.{p}.{s}.{r}"])
    # instances spread over the series at random, at least one each, exactly `instances`
    n = len(series_jobs)
    weights = [rng.random() ** 2 + 0.05 for _ in range(n)]
    total = sum(weights)
    left = instances - n
    counts = [1 + int(w / total * left) for w in weights]
    for _ in range(instances - sum(counts)):
        counts[rng.randrange(n)] += 1
    for job, c in zip(series_jobs, counts):
        job[3] = c
    return series_jobs


def _instance_elements(modality, sop_class, sop_prefix, series_date, index, rng):
    """The elements that differ from instance to instance."""
    rows, cols, bits = SIZES[modality]
    el = {
        0x00080016: sop_class,
        0x00080018: f"{sop_prefix}.{index + 1}",
        0x00200013: str(index + 1), 0x00280010: rows, 0x00280011: cols, 0x00280100: bits,
        0x00280002: 3 if modality == "US" else 1,
        0x00080008: ["ORIGINAL", "PRIMARY", "AXIAL"] if rng.random() < 0.8
        else ["DERIVED", "SECONDARY"],
        0x00080023: series_date, 0x00080033: _time(rng),
    }
    if rng.random() < 0.7:
        el[0x00080022] = series_date
        el[0x00080032] = _time(rng)
    if modality == "US":
        el[0x00280008] = str(rng.randint(1, 30))
    return el


def _hex(elements):
    """tag -> value with the tags as 8 hex digits (the record is JSON), items too."""
    out = {}
    for t, v in elements.items():
        if isinstance(v, list) and v and isinstance(v[0], dict):
            v = [{f"{k:08X}": x for k, x in item.items()} for item in v]
        out[f"{t:08X}"] = v
    return out


def _write_series(args):
    """Write one series' files; returns its record: {"series": elements shared by the
    series (and its study and patient), "instances": [[path, instance elements], ...]}."""
    folder, number, (codec, sop_class, series, count, sop_prefix), seed = args
    rng = random.Random(seed * 1_000_003 + number)
    sub = os.path.join(folder, f"{number // 1000:03d}")
    os.makedirs(sub, exist_ok=True)
    shared = {}
    for t, v in series.items():
        shared[t] = _element(t, _items(v, codec) if VR[t] == "SQ" else v, codec)
    instances = []
    for i in range(count):
        el = _instance_elements(series[0x00080060], sop_class, sop_prefix, series[0x00080021],
                                i, rng)
        encoded = dict(shared)
        for t, v in el.items():
            encoded[t] = _element(t, v, codec)
        body = b"".join(encoded[t] for t in sorted(encoded))
        path = os.path.join(sub, f"{number:05d}_{i:04d}.dcm")
        with open(path, "wb") as f:
            f.write(_part10(sop_class, el[0x00080018], body))
        instances.append([path, _hex(el)])
    return {"series": _hex(series), "instances": instances}


def generate(folder, instances=100_000, seed=20240401, processes=None, patients=1000):
    """Write the corpus into folder/files (made if missing); returns (records, seconds),
    records a list of series records (see _write_series) in a stable order. The record is
    kept in folder/record.json and reused when it is there (same size and seed)."""
    os.makedirs(folder, exist_ok=True)
    rec_path = os.path.join(folder, "record.json")
    if os.path.exists(rec_path):
        with open(rec_path) as f:
            saved = json.load(f)
        if (saved.get("format"), saved["instances"], saved["seed"]) == (FORMAT, instances, seed):
            return saved["series"], 0.0
    start = time.monotonic()
    jobs = plan(instances, patients=patients, seed=seed)
    files = os.path.join(folder, "files")
    args = [(files, n, job, seed) for n, job in enumerate(jobs)]
    with multiprocessing.get_context("fork").Pool(processes or os.cpu_count() or 2) as pool:
        records = pool.map(_write_series, args, chunksize=32)
    tmp = rec_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"format": FORMAT, "instances": instances, "seed": seed, "series": records}, f)
    os.replace(tmp, rec_path)
    return records, time.monotonic() - start


if __name__ == "__main__":
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    recs, secs = generate(sys.argv[1], n)
    print(f"{sum(len(r['instances']) for r in recs)} files in {len(recs)} series, {secs:.1f} s")
