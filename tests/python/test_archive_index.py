"""The archive's index against the files: counts, hierarchy and attribute values (pydicom).

Each test runs on SQLite and, when scripts/test.sh started a PostgreSQL server, on PostgreSQL
too (the `archive` fixture). What the index must hold (include/mira/archive.h, store.c):
  - an instance's row has the values of the copy that was stored (the first one with its SOP
    Instance UID; later copies are duplicates);
  - a series, study or patient row is made by its first instance; later instances only fill
    attributes that are still empty. So where the files of an entity agree, the index has
    their value; where they disagree, one of the non-empty values (empty only if all are);
    sequences are kept the same way (a row without items takes the first items it sees);
  - an instance joins the series and study it names where they already are; a new study
    goes under the patient its first instance names (Patient ID + Issuer); without a Patient
    ID, under the ID-less patient of the same name, birth date and sex, and with neither an
    ID nor a name, under a patient of its own.
The attributes compared are exactly the keys of src/archive/keys.c (read from the source, so
a key added there is compared here), in the normalised form `norm` defines for both sides:
text without padding, person names as their '='-joined groups, dates without ACR-NEMA dots,
IS as integers (an IS that is not one integer is not indexed), DS as numbers.
"""
import collections
import json
import os
import pathlib
import random
import re
import subprocess
import threading
import time

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.multival import MultiValue

from conftest import CHARSET_FILES, ROOT, TEST_FILES, mira_bin

import archive_corpus

# ------------------------------------------------------------------ the keys, from keys.c

_KEY = re.compile(r'\{0x([0-9A-Fa-f]{8}), MIRA_LEVEL_(\w+), MIRA__KEY_(\w+), MIRA_VR_(\w+), '
                  r'(?:"(\w+)"|NULL), (true|false)\}')
_ITEM = re.compile(r'\{0x([0-9A-Fa-f]{8}), 0x([0-9A-Fa-f]{8}), MIRA__KEY_(\w+), MIRA_VR_(\w+), '
                   r'"(\w+)"\}')
LEVELS = ["PATIENT", "STUDY", "SERIES", "INSTANCE"]

Key = collections.namedtuple("Key", "tag level kind vr column multi")


def _read_keys():
    text = (ROOT / "src" / "archive" / "keys.c").read_text()
    keys = [Key(int(m[1], 16), m[2], m[3], m[4], m[5], m[6] == "true")
            for m in _KEY.finditer(text)]
    items = collections.defaultdict(list)
    for m in _ITEM.finditer(text):
        items[int(m[1], 16)].append((int(m[2], 16), m[3], m[4]))
    assert len(keys) > 50 and items, "keys.c changed shape: update the patterns above"
    return keys, dict(items)


KEYS, ITEM_KEYS = _read_keys()
KEYS_AT = {lv: [k for k in KEYS if k.level == lv] for lv in LEVELS}
STORED = ("TEXT", "PN", "UID", "DATE", "TIME", "INT", "SEQ")  # not the computed ones

SOP_UID, SOP_CLASS, STUDY_UID, SERIES_UID = 0x00080018, 0x00080016, 0x0020000D, 0x0020000E
PATIENT_ID, ISSUER, MODALITY, TS_KEY = 0x00100020, 0x00100021, 0x00080060, 0x00083002
PATIENT_NAME, BIRTH_DATE, SEX = 0x00100010, 0x00100030, 0x00100040


def patient_key(m, study_uid):
    """Who a patient row (or a study row's patient) is: its ID and issuer; without an ID, its
    name, birth date and sex; with neither, nobody but the one study (study_uid)."""
    pid, iss = _text(m, PATIENT_ID), _text(m, ISSUER)
    if pid:
        return ("id", pid, iss)
    name = _text(m, PATIENT_NAME)
    if name:
        return ("no id", name, _text(m, BIRTH_DATE), _text(m, SEX))
    return ("anonymous", study_uid)
UID_KEYS = (SOP_UID, SOP_CLASS, STUDY_UID, SERIES_UID)
COUNTS = {"PATIENT": (0x00201200, 0x00201202, 0x00201204), "STUDY": (0x00201206, 0x00201208),
          "SERIES": (0x00201209,)}
MODALITIES_IN_STUDY, SOP_CLASSES_IN_STUDY = 0x00080061, 0x00080062

# ------------------------------------------------------------------ normalised values

_INT = re.compile(r"[+-]?\d+ *")


def _date(s):
    d = s.replace(".", "").replace(" ", "")
    return d if len(d) == 8 and d.isdigit() else s


def norm(kind, vr, values, raw=None):
    """A value (a list of Python values: str, int, float; PersonName) as a tuple to compare.
    raw: the element's whole text, for IS (indexed only when it is one integer)."""
    if kind == "INT" and vr == "IS":
        if raw is None:
            raw = "\\".join(str(v) for v in values)
        raw = raw.strip(" \0")
        return (int(raw),) if raw and _INT.fullmatch(raw) else ()
    if kind == "INT":  # US: the first value
        return (int(values[0]),) if values else ()
    out = []
    for v in values:
        if v is None:
            v = ""
        if vr == "DS":
            s = str(v).strip()
            out.append(float(s) if s else "")
            continue
        s = str(v).strip(" \0")
        if vr == "PN":
            s = s.rstrip("=")
        if kind == "DATE":
            s = _date(s)
        out.append(s)
    while out and out[-1] == "":
        out.pop()
    return tuple(out)


def _pydicom_values(elem):
    if elem is None or elem.value is None:
        return []
    v = elem.value
    if isinstance(v, (MultiValue, list, tuple)):
        return list(v)
    if isinstance(v, (bytes, bytearray)):
        return [v.decode("latin-1")] if v else []
    return [v] if v != "" else []


def _raw_text(ds, tag):
    """The element's value bytes as text (for IS), from pydicom's raw element."""
    raw = ds.get_item(tag)
    if raw is None:
        return None
    if isinstance(raw, RawDataElement):
        return raw.value.decode("latin-1") if raw.value else ""
    return "\\".join(str(v) for v in _pydicom_values(raw))


def value_from_pydicom(ds, key):
    """The normalised value pydicom reads for a key (a sequence: a tuple of item tuples)."""
    if key.kind == "SEQ":
        seq = ds.get(key.tag)
        if seq is None or not seq.value:
            return ()
        return tuple(tuple(norm(kind, vr, _pydicom_values(item.get(tag)),
                                _raw_text(item, tag) if vr == "IS" else None)
                           for tag, kind, vr in ITEM_KEYS[key.tag])
                     for item in list(seq.value)[:64])
    elem = ds.get(key.tag)
    return norm(key.kind, key.vr, _pydicom_values(elem),
                _raw_text(ds, key.tag) if key.vr == "IS" and elem is not None else None)


def _json_values(elem):
    if not elem or "Value" not in elem:
        return []
    out = []
    for v in elem["Value"]:
        if isinstance(v, dict):  # PN
            out.append("=".join([v.get("Alphabetic", ""), v.get("Ideographic", ""),
                                 v.get("Phonetic", "")]))
        else:
            out.append(v)
    return out


def value_from_index(match, key):
    """The normalised value a `mira find --json` match holds for a key."""
    elem = match.get(f"{key.tag:08X}")
    if key.kind == "SEQ":
        items = (elem or {}).get("Value", [])
        return tuple(tuple(norm(kind, vr, _json_values(item.get(f"{tag:08X}")))
                           for tag, kind, vr in ITEM_KEYS[key.tag]) for item in items)
    return norm(key.kind, key.vr, _json_values(elem))


def value_from_record(rec, key):
    """The normalised value of a key in the corpus generator's record (tag hex -> value)."""
    v = rec.get(f"{key.tag:08X}")
    if key.kind == "SEQ":
        return tuple(tuple(norm(kind, vr, _as_list(item.get(f"{tag:08X}")))
                           for tag, kind, vr in ITEM_KEYS[key.tag]) for item in v or [])
    return norm(key.kind, key.vr, _as_list(v))


def _as_list(v):
    return [] if v is None else list(v) if isinstance(v, list) else [v]


# ------------------------------------------------------------------ running mira

def import_json(archive, *paths, threads=None):
    """`mira import --json --no-progress`: (exit status, per-input lines, summary)."""
    args = ["--json", "--no-progress"] + (["--threads", str(threads)] if threads else [])
    proc = archive.run("import", *args, *paths, check=False)
    lines = [json.loads(x) for x in proc.stdout.decode().splitlines() if x.strip()]
    assert lines and "summary" in lines[-1], proc.stderr.decode(errors="replace")
    return proc.returncode, lines[:-1], lines[-1]["summary"]


def find_level(archive, level, tags):
    """Every match at a level, returning the tags (streamed: one object a line)."""
    cmd = [mira_bin(), "find", *archive.args, "--level", level.lower(), "--json",
           *[f"{t:08X}" for t in tags]]
    out = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        for line in proc.stdout:
            line = line.strip().lstrip(b"[").rstrip(b"]").rstrip(b",")
            if line:
                out.append(json.loads(line))
        err = proc.stderr.read()
    assert proc.returncode == 0, err.decode(errors="replace")
    return out


def stats(archive):
    return json.loads(archive.run("stats", "--json").stdout)


def check_clean(archive, deep=False):
    proc = archive.run("check", "--json", *(["--deep"] if deep else []), check=False)
    lines = [json.loads(x) for x in proc.stdout.decode().splitlines() if x.strip()]
    problems = [x for x in lines if "problem" in x]
    assert proc.returncode == 0 and not problems, (problems[:20], proc.stderr.decode())
    return lines[-1]["report"]


def _uid(match, tag):
    v = _json_values(match.get(f"{tag:08X}"))
    return v[0] if v else ""


def _text(match, tag):
    v = _json_values(match.get(f"{tag:08X}"))
    return str(v[0]).strip() if v else ""


# ------------------------------------------------------------------ the comparison

class Expected:
    """What the files say, per stored instance: {sop: (values by key, hierarchy)}.

    values: {Key: normalised value} for every stored key of every level, read from the copy
    that was stored; parent: the series, study and patient (id, issuer) the file names."""

    def __init__(self):
        self.instances = {}

    def add(self, sop, values):
        self.instances[sop] = values

    @staticmethod
    def patient_of(values):
        pid = values[KEY_BY_TAG[PATIENT_ID]]
        iss = values[KEY_BY_TAG[ISSUER]]
        return (pid[0] if pid else "", iss[0] if iss else "")


KEY_BY_TAG = {k.tag: k for k in KEYS}


def _entity_value(key, file_values):
    """(expected, alternatives): the value all files agree on, else the acceptable ones."""
    nonempty = {v for v in file_values if v != ()}
    if not nonempty:
        return (), None
    if len(nonempty) == 1:
        return nonempty.pop(), None
    return None, nonempty


def compare(archive, expected, failures_max=30):
    """Compare the whole index with the expected instances; returns the counts found."""
    failures = []

    def fail(msg):
        if len(failures) < failures_max:
            failures.append(msg)

    inst = expected.instances
    # -- instances: every key, exactly
    ikeys = [k for k in KEYS_AT["INSTANCE"] if k.kind in STORED]
    got = find_level(archive, "INSTANCE", [k.tag for k in ikeys] + [SERIES_UID])
    by_sop = {}
    for m in got:
        sop = _uid(m, SOP_UID)
        if sop in by_sop:
            fail(f"instance {sop} listed twice")
        by_sop[sop] = m
    if set(by_sop) != set(inst):
        fail(f"instances: missing {sorted(set(inst) - set(by_sop))[:5]}, "
             f"unexpected {sorted(set(by_sop) - set(inst))[:5]}")
    series_of = {}
    for sop, m in by_sop.items():
        if sop not in inst:
            continue
        values = inst[sop]
        series_of[sop] = _uid(m, SERIES_UID)
        if series_of[sop] != values[KEY_BY_TAG[SERIES_UID]][0]:
            fail(f"instance {sop}: in series {series_of[sop]}, "
                 f"the file says {values[KEY_BY_TAG[SERIES_UID]]}")
        for k in ikeys:
            want, have = values[k], value_from_index(m, k)
            if have != want:
                fail(f"instance {sop} {k.column} ({k.tag:08X}): index {have!r}, file {want!r}")

    # -- series: which study, each attribute, the count
    skeys = [k for k in KEYS_AT["SERIES"] if k.kind in STORED]
    got = find_level(archive, "SERIES", [k.tag for k in skeys] + [STUDY_UID, 0x00201209])
    members = collections.defaultdict(list)
    for sop, series in series_of.items():
        members[series].append(sop)
    study_of = {}
    series_rows = {}
    for m in got:
        uid = _uid(m, SERIES_UID)
        series_rows[uid] = m
        files = [inst[s] for s in members.get(uid, [])]
        if not files:
            fail(f"series {uid} has no instance")
            continue
        study_of[uid] = _uid(m, STUDY_UID)
        candidates = {v[KEY_BY_TAG[STUDY_UID]][0] for v in files}
        if study_of[uid] not in candidates:
            fail(f"series {uid}: in study {study_of[uid]}, its files say {candidates}")
        _compare_entity(f"series {uid}", m, skeys, files, fail)
        n = _text(m, 0x00201209)
        if n != str(len(files)):
            fail(f"series {uid}: NumberOfSeriesRelatedInstances {n}, {len(files)} instances")
    if set(series_rows) != set(members):
        fail(f"series: missing {sorted(set(members) - set(series_rows))[:5]}, "
             f"unexpected {sorted(set(series_rows) - set(members))[:5]}")

    # -- studies
    tkeys = [k for k in KEYS_AT["STUDY"] if k.kind in STORED]
    got = find_level(archive, "STUDY", [k.tag for k in tkeys] + [
        PATIENT_ID, ISSUER, PATIENT_NAME, BIRTH_DATE, SEX, 0x00201206, 0x00201208,
        MODALITIES_IN_STUDY, SOP_CLASSES_IN_STUDY])
    study_series = collections.defaultdict(list)
    for series, study in study_of.items():
        study_series[study].append(series)
    patient_of = {}
    study_rows = {}
    for m in got:
        uid = _uid(m, STUDY_UID)
        study_rows[uid] = m
        sops = [s for series in study_series.get(uid, []) for s in members[series]]
        files = [inst[s] for s in sops]
        if not files:
            fail(f"study {uid} has no series")
            continue
        patient_of[uid] = patient_key(m, uid)
        named = (_text(m, PATIENT_ID), _text(m, ISSUER))
        candidates = {Expected.patient_of(v) for v in files}
        if named not in candidates:
            fail(f"study {uid}: under patient {named}, its files say {candidates}")
        _compare_entity(f"study {uid}", m, tkeys, files, fail)
        counts = (_text(m, 0x00201206), _text(m, 0x00201208))
        if counts != (str(len(study_series[uid])), str(len(sops))):
            fail(f"study {uid}: series/instances {counts}, "
                 f"expected {len(study_series[uid])}/{len(sops)}")
        mods = set(_json_values(m.get(f"{MODALITIES_IN_STUDY:08X}")))
        want = {_text(series_rows[s], MODALITY) for s in study_series[uid]} - {""}
        if mods != want:
            fail(f"study {uid}: ModalitiesInStudy {sorted(mods)}, its series have {sorted(want)}")
        classes = set(_json_values(m.get(f"{SOP_CLASSES_IN_STUDY:08X}")))
        want = {v[KEY_BY_TAG[SOP_CLASS]][0] for v in files}
        if classes != want:
            fail(f"study {uid}: SOPClassesInStudy {sorted(classes)}, instances {sorted(want)}")
    if set(study_rows) != set(study_series):
        fail(f"studies: missing {sorted(set(study_series) - set(study_rows))[:5]}, "
             f"unexpected {sorted(set(study_rows) - set(study_series))[:5]}")

    # -- patients
    pkeys = [k for k in KEYS_AT["PATIENT"] if k.kind in STORED]
    got = find_level(archive, "PATIENT", [k.tag for k in pkeys] + list(COUNTS["PATIENT"]))
    patient_studies = collections.defaultdict(list)
    for study, patient in patient_of.items():
        patient_studies[patient].append(study)
    patient_rows = {}
    anonymous = []  # rows of patients with neither an ID nor a name: matched by their counts
    for m in got:
        pk = patient_key(m, None)
        if pk[0] == "anonymous":
            anonymous.append(m)
            continue
        if pk in patient_rows:
            fail(f"patient {pk} listed twice")
        patient_rows[pk] = m
        studies = patient_studies.get(pk, [])
        series = [s for t in studies for s in study_series[t]]
        sops = [x for s in series for x in members[s]]
        if not sops:
            fail(f"patient {pk} has no study")
            continue
        _compare_entity(f"patient {pk}", m, pkeys, [inst[s] for s in sops], fail)
        counts = tuple(_text(m, t) for t in COUNTS["PATIENT"])
        want = (str(len(studies)), str(len(series)), str(len(sops)))
        if counts != want:
            fail(f"patient {pk}: studies/series/instances {counts}, expected {want}")
    named = {k for k in patient_studies if k[0] != "anonymous"}
    if set(patient_rows) != named:
        fail(f"patients: missing {sorted(named - set(patient_rows))[:5]}, "
             f"unexpected {sorted(set(patient_rows) - named)[:5]}")
    want_anon = sorted((1, len(study_series[k[1]]), sum(len(members[s]) for s in
                                                        study_series[k[1]]))
                       for k in patient_studies if k[0] == "anonymous")
    have_anon = sorted(tuple(int(_text(m, t) or 0) for t in COUNTS["PATIENT"])
                       for m in anonymous)
    if have_anon != want_anon:
        fail(f"patients without ID or name: counts {have_anon}, expected {want_anon}")

    # -- the counts, from mira stats
    s = stats(archive)
    want = {"patients": len(patient_studies), "studies": len(study_series),
            "series": len(members), "instances": len(inst)}
    have = {k: s[k] for k in want}
    if have != want:
        fail(f"mira stats {have}, the files say {want}")
    assert not failures, f"{len(failures)}+ differences:\n" + "\n".join(failures)
    return have


def _compare_entity(what, match, keys, files, fail):
    for k in keys:
        want, alternatives = _entity_value(k, [v[k] for v in files])
        have = value_from_index(match, k)
        if alternatives is None and have != want:
            fail(f"{what} {k.column} ({k.tag:08X}): index {have!r}, files {want!r}")
        elif alternatives is not None and have not in alternatives:
            fail(f"{what} {k.column} ({k.tag:08X}): index {have!r}, "
                 f"not one of the files' {sorted(alternatives, key=repr)!r}")


# ------------------------------------------------------------------ pydicom's test set

TS_GUESS = {(True, True): "1.2.840.10008.1.2", (False, True): "1.2.840.10008.1.2.1",
            (False, False): "1.2.840.10008.1.2.2"}
_VALID_UID = re.compile(r"[0-9.]{1,64}")


def reference(path):
    """What pydicom reads from a file: (values by key, None) for a storable instance,
    (None, why) for one the archive must refuse, or (None, None) if pydicom cannot read it."""
    try:
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
        uids = [str(ds.get(t).value).strip(" \0") if ds.get(t) is not None and ds.get(t).value
                else "" for t in UID_KEYS]
    except Exception:  # noqa: BLE001 - not readable by pydicom at all
        return None, None
    missing = [kw for kw, u in zip(("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID",
                                    "SeriesInstanceUID"), uids) if not u]
    if missing:
        return None, f"no {missing[0]}"
    if not all(_VALID_UID.fullmatch(u) for u in (uids[0], uids[2], uids[3])):
        return None, "a UID is not valid"
    try:
        values = {k: value_from_pydicom(ds, k) for k in KEYS if k.kind in STORED}
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"{path}: pydicom cannot read an indexed attribute: {e!r}")
    meta = getattr(ds, "file_meta", None)
    ts = str(meta.TransferSyntaxUID) if meta is not None and "TransferSyntaxUID" in meta else ""
    if not ts:
        ts = TS_GUESS[(ds.is_implicit_VR, ds.is_little_endian)]
    values[KEY_BY_TAG[TS_KEY]] = (ts,)
    return values, None


# Broken on purpose: an element of the header runs past the end of the file. pydicom reads
# what is there; the archive refuses a header it cannot parse whole (MR_truncated.dcm, cut in
# its pixel data, which the store does not parse, is stored).
TRUNCATED = {"rtplan_truncated.dcm": "exceeds the"}


def _test_set_files():
    return [p for base in (TEST_FILES, CHARSET_FILES) for p in sorted(base.rglob("*"))
            if p.is_file()]


def test_pydicom_test_set(archive):
    """Every storable file of Debian's pydicom test set: stored or a duplicate; the others
    refused with a reason; then the whole index against what pydicom reads; check; cat."""
    rc, lines, summary = import_json(archive, TEST_FILES, CHARSET_FILES)
    by_path = {}
    for line in lines:
        assert line["path"] not in by_path, f"{line['path']} reported twice"
        by_path[line["path"]] = line
    files = _test_set_files()
    expected = Expected()
    copies = collections.defaultdict(list)  # sop -> [(path, values)]
    problems = []
    for p in files:
        if p.name == "DICOMDIR":  # met while walking: its files are found by the walk too
            assert str(p) not in by_path
            continue
        line = by_path.get(str(p))
        if line is None:
            problems.append(f"{p}: not reported by the import")
            continue
        if p.name in TRUNCATED:
            if line["status"] != "rejected" or TRUNCATED[p.name] not in line.get("reason", ""):
                problems.append(f"{p}: truncated, mira said {line}")
            continue
        values, why = reference(p)
        if values is None:
            if line["status"] != "rejected" or not line.get("reason"):
                problems.append(f"{p}: pydicom says {why or 'unreadable'}, mira {line}")
            continue
        if line["status"] not in ("stored", "duplicate"):
            problems.append(f"{p}: storable, mira said {line}")
            continue
        sop = values[KEY_BY_TAG[SOP_UID]][0]
        if line["sop_instance_uid"] != sop:
            problems.append(f"{p}: mira says SOP Instance UID {line['sop_instance_uid']}")
        copies[sop].append((p, values, line["status"]))
    assert not problems, "\n".join(problems)
    for sop, cs in copies.items():
        stored = [c for c in cs if c[2] == "stored"]
        assert len(stored) == 1, f"{sop}: {len(stored)} copies stored of {[str(c[0]) for c in cs]}"
        expected.add(sop, stored[0][1])
    assert summary["stored"] == len(copies)
    assert summary["duplicate"] == sum(len(c) for c in copies.values()) - len(copies)
    assert rc == (1 if summary["rejected"] else 0)
    assert len(copies) > 100  # the test set is what we think it is

    found = compare(archive, expected)
    assert found["instances"] == len(copies)
    check_clean(archive, deep=True)

    # the stored bytes: the file's own (for a duplicate: one of the files with its UID); a
    # data set without a Part 10 header is stored inside one, with the same elements
    for sop, cs in copies.items():
        got = archive.run("cat", sop).stdout
        originals = [c[0].read_bytes() for c in cs]
        if got in originals:
            continue
        # only a bare data set is stored differently: inside a Part 10 file
        assert got[128:132] == b"DICM" and all(o[128:132] != b"DICM" for o in originals), \
            f"{sop}: mira cat gives other bytes than {[str(c[0]) for c in cs]}"
        stored = pydicom.dcmread(pydicom.filebase.DicomBytesIO(got))
        assert any(_same_elements(stored, pydicom.dcmread(str(c[0]), force=True)) for c in cs), \
            f"{sop}: the stored data set is not that of {[str(c[0]) for c in cs]}"


def _same_elements(a, b):
    a_tags = [e.tag for e in a if e.tag.group != 2]
    b_tags = [e.tag for e in b if e.tag.group != 2]
    return a_tags == b_tags and all(a[t].value == b[t].value for t in a_tags)


# ------------------------------------------------------------------ rejections

def test_rejected_inputs_leave_the_rest_stored(archive, tmp_path):
    """A non-DICOM file, a file without SOP Instance UID and a missing path are refused with
    a reason naming the problem (exit status 1); the good files of the same import are in."""
    good = [TEST_FILES / "CT_small.dcm", TEST_FILES / "MR_small.dcm"]
    text = tmp_path / "notes.txt"
    text.write_text("not DICOM at all\n" * 20)
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    del ds.SOPInstanceUID
    del ds.file_meta.MediaStorageSOPInstanceUID
    no_sop = tmp_path / "no_sop.dcm"
    ds.save_as(no_sop)
    missing = tmp_path / "does-not-exist.dcm"
    rc, lines, summary = import_json(archive, good[0], text, no_sop, missing, good[1])
    assert rc == 1
    by_path = {x["path"]: x for x in lines}
    assert set(by_path) == {str(p) for p in (*good, text, no_sop, missing)}
    for p in good:
        assert by_path[str(p)]["status"] == "stored"
    reasons = {p: by_path[str(p)].get("reason", "") for p in (text, no_sop, missing)}
    assert all(by_path[str(p)]["status"] == "rejected" for p in reasons), by_path
    assert "not a DICOM file" in reasons[text] and str(text) in reasons[text]
    assert "SOP Instance UID" in reasons[no_sop] and str(no_sop) in reasons[no_sop]
    assert "No such file" in reasons[missing] and str(missing) in reasons[missing]
    assert (summary["stored"], summary["rejected"]) == (2, 3)
    s = stats(archive)
    assert (s["instances"], s["series"], s["studies"]) == (2, 2, 2)
    for p in good:
        sop = pydicom.dcmread(p).SOPInstanceUID
        assert archive.run("cat", sop).stdout == p.read_bytes()
    check_clean(archive)


# ------------------------------------------------------------------ writers at once

@pytest.mark.parametrize("fresh", [False, True], ids=["existing", "new-archive"])
def test_concurrent_imports_share_patients_and_studies(archive, tmp_path, fresh):
    """Two imports at once into one archive, of files of the same few patients and studies
    (interleaved, so both create the same rows at the same time): every file is stored by one
    of them, and the index holds one row per patient, study and series with the right counts.
    On PostgreSQL this is the race between two writers creating the same row; with a new
    archive, also between the two creating the tables."""
    records, _ = archive_corpus.generate(str(tmp_path / "corpus"), instances=800, patients=3,
                                         seed=7, processes=2)
    paths = sorted(str(p) for p in (tmp_path / "corpus" / "files").rglob("*.dcm"))
    if not fresh:  # the archive and its tables exist, then two imports share the rest
        rc, _, _ = import_json(archive, paths.pop(0))
        assert rc == 0
    halves = [paths[0::2], paths[1::2]]
    results = [None, None]

    def run(i):
        results[i] = import_json(archive, *halves[i], threads=8)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for rc, lines, summary in results:
        bad = [x for x in lines if x["status"] != "stored"]
        assert rc == 0 and not bad, bad[:5]
    expected = Expected()
    for series in records:
        for path, rec in series["instances"]:
            merged = dict(series["series"])
            merged.update(rec)
            values = {k: value_from_record(merged, k) for k in KEYS if k.kind in STORED}
            values[KEY_BY_TAG[TS_KEY]] = (archive_corpus.EXPLICIT_LE,)
            expected.add(values[KEY_BY_TAG[SOP_UID]][0], values)
    compare(archive, expected)
    check_clean(archive)


# ------------------------------------------------------------------ a generated corpus

CORPUS_INSTANCES = 100_000


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """The generated corpus (archive_corpus.py), made once for all xdist workers of a run."""
    import fcntl
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by the workers of this run
    folder = base / f"corpus-{CORPUS_INSTANCES}"
    with open(base / "corpus.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        records, seconds = archive_corpus.generate(str(folder), CORPUS_INSTANCES)
    return folder, records, seconds


def _corpus_expected(records):
    expected = Expected()
    inst_keys = [k for k in KEYS if k.kind in STORED and k.level == "INSTANCE"]
    upper_keys = [k for k in KEYS if k.kind in STORED and k.level != "INSTANCE"]
    for series in records:
        shared = {k: value_from_record(series["series"], k) for k in upper_keys}
        for _, rec in series["instances"]:
            values = dict(shared)
            for k in inst_keys:
                values[k] = value_from_record(rec, k)
            values[KEY_BY_TAG[TS_KEY]] = (archive_corpus.EXPLICIT_LE,)
            expected.add(values[KEY_BY_TAG[SOP_UID]][0], values)
    return expected


@pytest.mark.slow
def test_generated_corpus(archive, corpus):
    """100,000 generated instances (1,000 patients, ~2,500 studies): every one stored; the
    counts, the hierarchy and every indexed attribute of every instance, series, study and
    patient are what the generator wrote, which pydicom reads back from a sample of files."""
    folder, records, gen_seconds = corpus
    times = {"generate": gen_seconds}
    clock = [time.monotonic()]

    def lap(name):
        now = time.monotonic()
        times[name] = now - clock[0]
        clock[0] = now

    expected = _corpus_expected(records)
    assert len(expected.instances) == CORPUS_INSTANCES
    # the record is what the files say (pydicom), on a sample
    rng = random.Random(5)
    sample = rng.sample([(p, r["00080018"]) for series in records
                         for p, r in series["instances"]], 1500)
    for path, sop in sample:
        values, why = reference(path)
        assert values == expected.instances[sop], f"{path}: pydicom reads other values ({why})"
    lap("reference")

    rc, lines, summary = import_json(archive, folder / "files", threads=16)
    bad = [x for x in lines if x["status"] != "stored"]
    assert rc == 0 and not bad and summary["stored"] == CORPUS_INSTANCES, bad[:5]
    lap("import")

    found = compare(archive, expected)
    assert found["instances"] == CORPUS_INSTANCES and found["patients"] == 1000
    assert found["studies"] >= 2000
    lap("compare")
    check_clean(archive)
    for path, sop in sample[:40]:
        assert archive.run("cat", sop).stdout == pathlib.Path(path).read_bytes()
    lap("check")
    # (the archive is left for pytest's temporary folders: removing its 100,000 blobs and
    # their folders took 40 s of the test on ext4)
    # shown with the test's output (pytest -rA, or on a failure)
    print(f"{archive.backend}: {found}; seconds: " + ", ".join(
        f"{k} {v:.0f}" for k, v in times.items()) +
        f" ({CORPUS_INSTANCES / times['import']:.0f} instances/s imported)")
