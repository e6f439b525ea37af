"""Modality Worklist (PS3.4 K): entries added with `mira worklist add`, asked for by DCMTK's
findscu -W and pynetdicom against `mira serve`. The expected answers are computed by a reference
matcher written from PS3.4 C.2.2.2 / K.6.1.2 over the entries the test added; a few queries are
also put to DCMTK's wlmscpfs serving the same entries as .wl files (dump2dcm), and its answers
compared with mira's. On both index backends."""
import json
import pathlib
import subprocess

import pydicom
import pytest
from pydicom.dataset import Dataset

from conftest import BACKENDS, POSTGRES, new_postgres_database, run_mira
from dimse_peers import MiraServer, free_port, pynetdicom_quiet, wait_for_port

MWL = "1.2.840.10008.5.1.4.31"

# What the test schedules: top-level attributes and those of the one step item.
ENTRIES = [
    dict(patient_id="P1", patient_name="Doe^Jane", accession="A1", modality="CT",
         station_aet="CT1", date="20240105", time="093000", procedure="CT head",
         physician="House^Gregory", sps_id="S1", study_uid="1.2.826.0.1.3680043.10.543.1"),
    dict(patient_id="P2", patient_name="Doe^John", accession="A2", modality="MR",
         station_aet="MR1", date="20240105", time="140000", procedure="MR knee",
         physician="Grey^Meredith", sps_id="S2", study_uid="1.2.826.0.1.3680043.10.543.2"),
    dict(patient_id="P3", patient_name="Smith^Anna", accession="A3", modality="CT",
         station_aet="CT2", date="20240106", time="081500", procedure="CT chest",
         physician="House^Gregory", sps_id="S3", study_uid="1.2.826.0.1.3680043.10.543.3"),
    dict(patient_id="P4", patient_name="Müller^Hans", accession="A4", modality="US",
         station_aet="US1", date="20240107", time="110000", procedure="US abdomen",
         physician="Wilson^James", sps_id="S4", study_uid="1.2.826.0.1.3680043.10.543.4"),
    dict(patient_id="P5", patient_name="Jones^Ann", accession="A5", modality="CT",
         station_aet="CT1", date="20240107", time="163000", procedure="CT abdomen",
         physician="Grey^Meredith", sps_id="S5", study_uid="1.2.826.0.1.3680043.10.543.5"),
    # no physician, no time: empty values
    dict(patient_id="P6", patient_name="Brown^Bob", accession="A6", modality="MR",
         station_aet="MR1", date="20240108", procedure="MR brain", sps_id="S6",
         study_uid="1.2.826.0.1.3680043.10.543.6"),
]

for _e in ENTRIES:  # what DCMTK's wlmscpfs needs of a step (its description)
    _e["sps_description"] = _e["procedure"]

TOP = {"PatientID": "patient_id", "PatientName": "patient_name", "AccessionNumber": "accession",
       "RequestedProcedureDescription": "procedure", "StudyInstanceUID": "study_uid"}
STEP = {"Modality": "modality", "ScheduledStationAETitle": "station_aet",
        "ScheduledProcedureStepStartDate": "date", "ScheduledProcedureStepStartTime": "time",
        "ScheduledPerformingPhysicianName": "physician", "ScheduledProcedureStepID": "sps_id",
        "ScheduledProcedureStepStatus": "status"}
VR = {"PatientID": "LO", "PatientName": "PN", "AccessionNumber": "SH",
      "RequestedProcedureDescription": "LO", "StudyInstanceUID": "UI", "Modality": "CS",
      "ScheduledStationAETitle": "AE", "ScheduledProcedureStepStartDate": "DA",
      "ScheduledProcedureStepStartTime": "TM", "ScheduledPerformingPhysicianName": "PN",
      "ScheduledProcedureStepID": "SH", "ScheduledProcedureStepStatus": "CS"}


# ------------------------------------------------------------------ the reference matcher

def _fnmatch(pattern, s, ci):
    """PS3.4 C.2.2.2.4: * any run of characters, ? one character."""
    import re
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, s, re.I if ci else 0) is not None


def _time_bounds(t):
    """A time as a lower and upper bound (fewer components cover all of them)."""
    t = t.replace(":", "")
    main, _, frac = t.partition(".")
    lo = (main + "000000")[:6] + "." + (frac + "000000")[:6]
    hi = (main + "595959"[len(main):])[:6] if len(main) < 6 else main
    hi = hi + "." + (frac + "999999")[:6] if frac else hi + ".999999"
    return lo, hi


def _value_match(key, value, vr):
    if vr in ("DA", "TM"):
        if "-" in key:
            a, b = key.split("-", 1)
            if vr == "DA":
                return (not a or value >= a) and (not b or value <= b)
            v = _time_bounds(value)[0]
            return (not a or v >= _time_bounds(a)[0]) and (not b or v <= _time_bounds(b)[1])
        if vr == "DA":
            return value == key
        lo, hi = _time_bounds(key)
        return lo <= _time_bounds(value)[0] <= hi
    if vr == "UI":
        return value in key.split("\\")
    ci = vr == "PN"  # mira matches person names case-insensitively by default
    return _fnmatch(key, value, ci) if ("*" in key or "?" in key) else (
        value.lower() == key.lower() if ci else value == key)


def matches(query, entry):
    """query: {keyword: value} (step keys and top keys mixed); an empty value is a return key."""
    for kw, key in query.items():
        if key == "" or key == "*":
            continue
        value = entry.get(TOP.get(kw) or STEP.get(kw), "")
        if kw == "ScheduledProcedureStepStatus":
            value = entry.get("status", "SCHEDULED")
        if key == '""':
            if value:
                return False
            continue
        if not value or not _value_match(key, value, VR[kw]):
            return False
    return True


def expected(query):
    return sorted(e["accession"] for e in ENTRIES if matches(query, e))


# ------------------------------------------------------------------ the servers

def add_entries(run):
    """Half of them with options, half as a JSON file of field names."""
    for e in ENTRIES[:3]:
        args = [a for k, v in e.items() for a in (f"--{k.replace('_', '-')}", v)]
        out = run("worklist", "add", *args).stdout.decode().split()
        assert len(out) == 1 and int(out[0]) > 0
    return ENTRIES[3:]


@pytest.fixture(scope="module", params=BACKENDS)
def served(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("mwl")
    args = ["--archive", str(d / "archive")]
    if request.param == "postgresql":
        args += ["--index", new_postgres_database()]

    def run(*a, **kw):
        return run_mira(a[0], *args, *a[1:], **kw)

    rest = add_entries(run)
    (d / "more.json").write_text(json.dumps(rest, ensure_ascii=False))
    out = run("worklist", "add", "--json", str(d / "more.json")).stdout.decode().split()
    assert len(out) == len(rest)
    with MiraServer(d / "archive", "--quiet", archive_args=args) as srv:
        yield srv, d, run


def findscu(port, out_dir, query, aec="MIRA"):
    """findscu -W with the query's keys (step keys inside the step sequence); the responses
    as pydicom data sets."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in out_dir.glob("rsp*.dcm"):
        f.unlink()
    keys = []
    for kw, v in query.items():
        path = f"ScheduledProcedureStepSequence[0].{kw}" if kw in STEP else kw
        keys += ["-k", f"{path}={v}" if v != "" else path]
    p = subprocess.run(["findscu", "-W", "-aet", "FINDSCU", "-aec", aec, "-X", "-od",
                        str(out_dir), *keys, "127.0.0.1", str(port)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    return [pydicom.dcmread(f) for f in sorted(out_dir.glob("rsp*.dcm"))]


RETURN = {"PatientName": "", "PatientID": "", "AccessionNumber": "", "Modality": "",
          "ScheduledStationAETitle": "", "ScheduledProcedureStepStartDate": "",
          "ScheduledProcedureStepStartTime": "", "ScheduledProcedureStepID": ""}

QUERIES = [
    {},
    {"Modality": "CT"},
    {"ScheduledStationAETitle": "CT1", "ScheduledProcedureStepStartDate": "20240105"},
    {"ScheduledProcedureStepStartDate": "20240105-20240106"},
    {"ScheduledProcedureStepStartDate": "-20240105"},
    {"ScheduledProcedureStepStartDate": "20240107-"},
    {"ScheduledProcedureStepStartDate": "20240105", "ScheduledProcedureStepStartTime": "0800-1200"},
    {"ScheduledProcedureStepStartTime": "1400"},
    {"PatientName": "Doe*"},
    {"PatientName": "*an*"},
    {"PatientName": "doe^j?hn"},
    {"PatientID": "P3"},
    {"AccessionNumber": "A4"},
    {"Modality": "MR", "ScheduledPerformingPhysicianName": '""'},
    {"ScheduledPerformingPhysicianName": "House*", "Modality": "CT"},
    {"ScheduledProcedureStepStatus": "SCHEDULED", "Modality": "US"},
    {"StudyInstanceUID": "1.2.826.0.1.3680043.10.543.2\\1.2.826.0.1.3680043.10.543.5"},
    {"Modality": "XA"},
]


def check_response(r, entry):
    """Every return key holds the entry's value."""
    assert r.PatientName == entry["patient_name"]
    assert r.PatientID == entry["patient_id"]
    assert r.AccessionNumber == entry["accession"]
    sps = r.ScheduledProcedureStepSequence
    assert len(sps) == 1
    s = sps[0]
    assert s.Modality == entry["modality"]
    assert s.ScheduledStationAETitle == entry["station_aet"]
    assert s.ScheduledProcedureStepStartDate == entry["date"]
    assert s.ScheduledProcedureStepStartTime == entry.get("time", "")
    assert s.ScheduledProcedureStepID == entry["sps_id"]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: ",".join(f"{k}={v}" for k, v in q.items()) or "all")
def test_findscu_worklist(served, tmp_path, query):
    srv, _, _ = served
    got = findscu(srv.port, tmp_path, {**RETURN, **query})
    assert sorted(r.AccessionNumber for r in got) == expected(query)
    by_acc = {e["accession"]: e for e in ENTRIES}
    for r in got:
        check_response(r, by_acc[r.AccessionNumber])
        # only the keys asked for come back (and the character set, when it is needed)
        assert {e.keyword for e in r} <= set(TOP) | {"ScheduledProcedureStepSequence",
                                                      "SpecificCharacterSet"}
        assert {e.keyword for e in r.ScheduledProcedureStepSequence[0]} == {
            k for k in {**RETURN, **query} if k in STEP}


def test_pynetdicom_worklist(served):
    """pynetdicom's worklist find: a non-ASCII name comes back as UTF-8 (ISO_IR 192); an empty
    sequence item returns the step whole."""
    from pynetdicom import AE
    pynetdicom_quiet()
    srv, _, _ = served
    ae = AE(ae_title="PYNETDICOM")
    ae.add_requested_context(MWL)
    assoc = ae.associate("127.0.0.1", srv.port, ae_title="MIRA")
    assert assoc.is_established
    try:
        q = Dataset()
        q.PatientName = "M*"
        q.PatientID = ""
        q.ScheduledProcedureStepSequence = [Dataset()]
        got = [(s.Status, ds) for s, ds in assoc.send_c_find(q, MWL)]
        assert got[-1][0] == 0x0000
        matches_ = [ds for st, ds in got[:-1]]
        assert all(st == 0xFF00 for st, _ in got[:-1])
        want = [e for e in ENTRIES if _fnmatch("M*", e["patient_name"], True)]
        assert [m.PatientID for m in matches_] == [e["patient_id"] for e in want]
        m = matches_[0]
        assert m.SpecificCharacterSet == "ISO_IR 192"
        assert str(m.PatientName) == "Müller^Hans"
        step = m.ScheduledProcedureStepSequence[0]
        assert step.Modality == "US" and step.ScheduledStationAETitle == "US1"
        assert step.ScheduledProcedureStepStatus == "SCHEDULED"
        assert step.ScheduledPerformingPhysicianName == "Wilson^James"
    finally:
        assoc.release()


def test_list_and_link(served, tmp_path):
    """`mira worklist list --json` gives every entry; a study stored with an entry's accession
    number is linked to it."""
    srv, d, run = served
    rows = [json.loads(l) for l in run("worklist", "list", "--json").stdout.decode().splitlines()]
    assert sorted(r["accession"] for r in rows) == sorted(e["accession"] for e in ENTRIES)
    assert [r["date"] for r in rows] == sorted(r["date"] for r in rows)
    for r in rows:
        e = next(e for e in ENTRIES if e["accession"] == r["accession"])
        assert (r["patient_id"], r["modality"], r["station_aet"], r["sps_id"], r["status"]) == (
            e["patient_id"], e["modality"], e["station_aet"], e["sps_id"], "SCHEDULED")
    # an image of entry A3 arriving (another study UID: linked by the accession number)
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.StudyInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.PatientID = "P3"
    ds.AccessionNumber = "A3"
    ds.Modality = "OT"
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.is_little_endian, ds.is_implicit_VR = True, False
    f = tmp_path / "a3.dcm"
    ds.save_as(f, write_like_original=False)
    run("import", "--no-progress", str(f))
    rows = [json.loads(l) for l in run("worklist", "list", "--json").stdout.decode().splitlines()]
    linked = {r["accession"]: r["linked_study_uid"] for r in rows}
    assert linked["A3"] == ds.StudyInstanceUID
    assert all(v == "" for k, v in linked.items() if k != "A3")


def test_add_delete_and_refusals(tmp_path):
    arch = ["--archive", str(tmp_path / "a")]
    out = run_mira("worklist", "add", *arch, "--patient-id", "X", "--modality", "CT")
    entry = int(out.stdout.decode())
    rows = [json.loads(l) for l in
            run_mira("worklist", "list", *arch, "--json").stdout.decode().splitlines()]
    # the defaults: a new Study Instance UID, the entry's id as step ID, SCHEDULED
    assert rows[0]["sps_id"] == str(entry) and rows[0]["status"] == "SCHEDULED"
    assert rows[0]["study_uid"].startswith("2.25.")
    # a DICOM JSON item is taken whole
    item = {"00100020": {"vr": "LO", "Value": ["Y"]},
            "00400100": {"vr": "SQ", "Value": [{"00080060": {"vr": "CS", "Value": ["MR"]},
                                                 "00400009": {"vr": "SH", "Value": ["Z9"]}}]}}
    (tmp_path / "item.json").write_text(json.dumps([item]))
    run_mira("worklist", "add", *arch, "--json", str(tmp_path / "item.json"))
    rows = [json.loads(l) for l in
            run_mira("worklist", "list", *arch, "--json").stdout.decode().splitlines()]
    assert sorted(r["sps_id"] for r in rows) == sorted([str(entry), "Z9"])
    # without patient or step: refused
    bad = {"00400100": {"vr": "SQ", "Value": [{}]}}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    p = run_mira("worklist", "add", *arch, "--json", str(tmp_path / "bad.json"), check=False)
    assert p.returncode == 1 and b"Patient" in p.stderr
    run_mira("worklist", "delete", *arch, str(entry))
    p = run_mira("worklist", "delete", *arch, str(entry), check=False)
    assert p.returncode == 1
    rows = run_mira("worklist", "list", *arch, "--json").stdout.decode().splitlines()
    assert [json.loads(l)["sps_id"] for l in rows] == ["Z9"]


# ------------------------------------------------------------------ against wlmscpfs

def _dump(e):
    lines = []
    if any(ord(c) > 127 for c in json.dumps(e, ensure_ascii=False)):
        lines.append("(0008,0005) CS [ISO_IR 192]")
    lines += [f"(0008,0050) SH [{e['accession']}]", f"(0010,0010) PN [{e['patient_name']}]",
              f"(0010,0020) LO [{e['patient_id']}]", f"(0020,000d) UI [{e['study_uid']}]",
              f"(0032,1060) LO [{e['procedure']}]", f"(0040,1001) SH [{e['accession']}]",
              "(0040,0100) SQ", "(fffe,e000) -", f"(0008,0060) CS [{e['modality']}]",
              f"(0040,0001) AE [{e['station_aet']}]", f"(0040,0002) DA [{e['date']}]",
              f"(0040,0003) TM [{e.get('time', '')}]",
              f"(0040,0006) PN [{e.get('physician', '')}]", f"(0040,0009) SH [{e['sps_id']}]",
              f"(0040,0007) LO [{e['sps_description']}]",
              "(0040,0020) CS [SCHEDULED]", "(fffe,e00d) -", "(fffe,e0dd) -"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def wlmscpfs(tmp_path_factory):
    d = tmp_path_factory.mktemp("wlm")
    aet = d / "db" / "WLMSCP"
    aet.mkdir(parents=True)
    (aet / "lockfile").write_text("")
    for i, e in enumerate(ENTRIES):
        if "time" not in e:  # wlmscpfs drops steps without their type 1 start time
            continue
        (d / f"{i}.dump").write_text(_dump(e), encoding="utf-8")
        subprocess.run(["dump2dcm", "-q", str(d / f"{i}.dump"), str(aet / f"{i}.wl")],
                       check=True, timeout=30)
    port = free_port()
    proc = subprocess.Popen(["wlmscpfs", "-dfp", str(d / "db"), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 10)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


# queries whose answers do not hang on what the standard leaves to the SCP (names' case,
# combined date and time ranges over several days)
COMPARED = [
    {},
    {"Modality": "CT"},
    {"ScheduledStationAETitle": "MR1"},
    {"ScheduledProcedureStepStartDate": "20240105-20240106"},
    {"ScheduledProcedureStepStartDate": "20240105", "ScheduledProcedureStepStartTime": "0800-1200"},
    {"PatientName": "Doe*"},
    {"PatientID": "P5"},
    {"AccessionNumber": "A2"},
]


@pytest.mark.parametrize("query", COMPARED, ids=lambda q: ",".join(f"{k}={v}" for k, v in q.items()) or "all")
def test_same_answers_as_wlmscpfs(served, wlmscpfs, tmp_path, query):
    srv, _, _ = served
    q = {**RETURN, **query}
    ours = findscu(srv.port, tmp_path / "mira", q)
    theirs = findscu(wlmscpfs, tmp_path / "wlm", q, aec="WLMSCP")

    def view(r):
        s = r.ScheduledProcedureStepSequence[0]
        # wlmscpfs does not say ISO_IR 192: the names' bytes are compared
        return (r.AccessionNumber, r.PatientName.original_string, r.PatientID, s.Modality,
                s.ScheduledStationAETitle, s.ScheduledProcedureStepStartDate,
                s.ScheduledProcedureStepStartTime, s.ScheduledProcedureStepID)
    complete = [r for r in ours if r.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime]
    assert sorted(map(view, complete)) == sorted(map(view, theirs))
    assert sorted(r.AccessionNumber for r in ours) == expected(query)
