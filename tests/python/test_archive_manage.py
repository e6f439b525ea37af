"""mira delete, modify and history, on both index backends.

The expectations come from the imported files as pydicom reads them: which instances belong to
which series, study and patient, and what the files say after a modification.
"""
import collections
import json

import pydicom
import pytest

from conftest import TEST_FILES


def make_inputs(tmp_path):
    """A small hierarchy: 2 patients, 3 studies, 5 series, 12 instances (pydicom-written)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    out = []
    layout = {"PAT1": {"S1": 2, "S2": 3}, "PAT2": {"S3": 2}}  # patient: study: series count
    n = 0
    for pid, studies in layout.items():
        for sname, nseries in studies.items():
            study_uid = generate_uid()
            for se in range(nseries):
                series_uid = generate_uid()
                for k in range(2 if se else 1):
                    ds = Dataset()
                    ds.file_meta = FileMetaDataset()
                    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
                    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
                    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
                    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
                    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
                    ds.PatientID, ds.PatientName = pid, f"Name^{pid}"
                    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
                    ds.StudyDescription = f"study {sname}"
                    ds.StudyDate, ds.StudyTime = f"2024010{len(sname)}", "101500"
                    ds.StudyID, ds.AccessionNumber = sname, f"ACC{sname}"
                    ds.SeriesDescription = f"series {se}"
                    ds.Modality = "CT" if se % 2 == 0 else "MR"
                    ds.SeriesNumber, ds.InstanceNumber = se + 1, k + 1
                    p = tmp_path / f"in{n:03d}.dcm"
                    ds.save_as(p, write_like_original=False)
                    out.append(p)
                    n += 1
    return out


def stats(archive):
    return json.loads(archive.run("stats", "--json").stdout)


def find(archive, level, *keys):
    return json.loads(archive.run("find", "--level", level, "--json", *keys).stdout)


def value(match, tag):
    v = match.get(tag, {}).get("Value", [])
    if not v:
        return ""
    return v[0]["Alphabetic"] if isinstance(v[0], dict) else v[0]


@pytest.fixture
def loaded(archive, tmp_path):
    files = make_inputs(tmp_path)
    archive.run("import", "--no-progress", *files)
    return archive, files


def hierarchy(files):
    h = collections.defaultdict(set)
    for p in files:
        ds = pydicom.dcmread(p)
        h["patients"].add(ds.PatientID)
        h["studies"].add(ds.StudyInstanceUID)
        h["series"].add(ds.SeriesInstanceUID)
        h["instances"].add(ds.SOPInstanceUID)
    return h


def check_clean(archive):
    proc = archive.run("check", "--json", check=False)
    assert proc.returncode == 0, proc.stdout
    report = json.loads(proc.stdout.splitlines()[-1])["report"]
    assert report["missing_blobs"] == report["orphan_blobs"] == report["bad_counts"] == 0


@pytest.mark.parametrize("level", ["instance", "series", "study", "patient"])
def test_delete_each_level(loaded, level):
    archive, files = loaded
    by = {"instance": "SOPInstanceUID", "series": "SeriesInstanceUID",
          "study": "StudyInstanceUID", "patient": "PatientID"}[level]
    target = getattr(pydicom.dcmread(files[3]), by)
    kept = [p for p in files if getattr(pydicom.dcmread(p), by) != target]
    archive.run("delete", "--level", level, target)
    want = hierarchy(kept)
    s = stats(archive)
    for k in ("patients", "studies", "series", "instances"):
        assert s[k] == len(want[k]), k
    # the counts kept on the parents are those of what is left
    for st in find(archive, "study", "StudyInstanceUID", "NumberOfStudyRelatedInstances",
                   "NumberOfStudyRelatedSeries", "ModalitiesInStudy"):
        uid = value(st, "0020000D")
        left = [pydicom.dcmread(p) for p in kept if pydicom.dcmread(p).StudyInstanceUID == uid]
        assert int(value(st, "00201208")) == len(left)
        assert int(value(st, "00201206")) == len({d.SeriesInstanceUID for d in left})
        assert sorted(st["00080061"]["Value"]) == sorted({d.Modality for d in left})
    check_clean(archive)
    # deleting again: not found, exit 1, nothing else changes
    proc = archive.run("delete", "--level", level, target, check=False)
    assert proc.returncode == 1 and b"no " in proc.stderr
    assert stats(archive)["instances"] == len(want["instances"])


def test_delete_then_import_again(loaded):
    archive, files = loaded
    uid = pydicom.dcmread(files[0]).StudyInstanceUID
    archive.run("delete", "--level", "study", uid)
    archive.run("import", "--no-progress", *files)
    assert stats(archive)["instances"] == len(files)
    check_clean(archive)
    for p in files:
        sop = pydicom.dcmread(p).SOPInstanceUID
        assert archive.run("cat", sop).stdout == p.read_bytes()


def test_modify_patient_and_series(loaded, tmp_path):
    archive, files = loaded
    archive.run("modify", "--level", "patient", "PAT1", "--set", "PatientName=Renamed^Patient",
                "--set", "PatientBirthDate=19700101", "--reason", "ADT A08")
    series_uid = pydicom.dcmread(files[1]).SeriesInstanceUID
    archive.run("modify", "--level", "series", series_uid, "--set", "SeriesDescription=fixed",
                "--remove", "InstanceNumber")
    # the files say so (read back with pydicom, not with mira)
    for p in files:
        ds = pydicom.dcmread(p)
        out = tmp_path / "got.dcm"
        archive.run("cat", ds.SOPInstanceUID, "-o", out)
        got = pydicom.dcmread(out)
        if ds.PatientID == "PAT1":
            assert got.PatientName == "Renamed^Patient" and got.PatientBirthDate == "19700101"
        else:
            assert got.PatientName == ds.PatientName
        if ds.SeriesInstanceUID == series_uid:
            assert got.SeriesDescription == "fixed" and "InstanceNumber" not in got
        else:
            assert got.SeriesDescription == ds.SeriesDescription
            assert got.InstanceNumber == ds.InstanceNumber
        assert got.PixelData == ds.get("PixelData") if "PixelData" in ds else True
    # and so does the index, on matching too
    m = find(archive, "patient", "PatientName=renamed*", "PatientID")
    assert [value(x, "00100020") for x in m] == ["PAT1"]
    assert value(find(archive, "series", f"SeriesInstanceUID={series_uid}",
                      "SeriesDescription")[0], "0008103E") == "fixed"
    # the history holds both changes, in order, with the old values
    hist = [json.loads(line) for line in archive.run("history", "--json").stdout.splitlines()]
    assert [(h["entity"], h["keyword"], h["old"], h["new"]) for h in hist] == [
        ("PAT1", "PatientName", "Name^PAT1", "Renamed^Patient"),
        ("PAT1", "PatientBirthDate", "", "19700101"),
        (series_uid, "SeriesDescription", "series 1", "fixed"),
        (series_uid, "InstanceNumber", "1\\2", ""),  # the distinct values before
    ]
    assert hist[0]["reason"] == "ADT A08"
    assert hist[0]["instances"] == sum(pydicom.dcmread(p).PatientID == "PAT1" for p in files)
    check_clean(archive)
    assert stats(archive)["instances"] == len(files)


@pytest.mark.parametrize("args, message", [
    (["--level", "study", "{study}", "--set", "PatientName=X"], b"belongs to the patient"),
    (["--level", "study", "{study}", "--set", "StudyInstanceUID=1.2.3"], b"cannot be modified"),
    (["--level", "patient", "PAT1", "--set", "PatientID=NEW"], b"cannot be modified"),
    (["--level", "series", "1.2.3.4.5", "--set", "SeriesDescription=x"], b"no series"),
])
def test_modify_refusals(loaded, args, message):
    archive, files = loaded
    study = pydicom.dcmread(files[0]).StudyInstanceUID
    before = {p: archive.run("cat", pydicom.dcmread(p).SOPInstanceUID).stdout for p in files}
    proc = archive.run("modify", *[a.format(study=study) for a in args], check=False)
    assert proc.returncode == 1
    assert message in proc.stderr
    # nothing changed
    for p in files:
        assert archive.run("cat", pydicom.dcmread(p).SOPInstanceUID).stdout == before[p]
    assert archive.run("history").stdout == b""


def test_usage_errors(archive):
    assert archive.run("delete", "x", check=False).returncode == 2
    assert archive.run("modify", "--level", "study", "x", check=False).returncode == 2
    assert archive.run("delete", "--help").returncode == 0
    assert archive.run("modify", "--help").returncode == 0
    assert archive.run("history", "--help").returncode == 0
    assert archive.run("merge", "--help").returncode == 0


def cat(archive, tmp_path, sop):
    out = tmp_path / "got.dcm"
    archive.run("cat", sop, "-o", out)
    return pydicom.dcmread(out)


def test_merge_into_existing_patient(loaded, tmp_path):
    archive, files = loaded
    src = [pydicom.dcmread(p) for p in files]
    archive.run("merge", "PAT2", "--into", "PAT1", "--reason", "ADT A40")
    s = stats(archive)
    assert s["patients"] == 1 and s["instances"] == len(files)
    assert s["studies"] == len({d.StudyInstanceUID for d in src})
    # every instance of PAT2 now names PAT1, with PAT1's name; PAT1's own are as they were
    for d in src:
        got = cat(archive, tmp_path, d.SOPInstanceUID)
        assert got.PatientID == "PAT1" and got.PatientName == "Name^PAT1"
        assert "IssuerOfPatientID" not in got
        assert got.StudyInstanceUID == d.StudyInstanceUID
        assert got.get("PixelData") == d.get("PixelData")
    pat = find(archive, "patient", "PatientID=PAT1", "NumberOfPatientRelatedStudies",
               "NumberOfPatientRelatedInstances")
    assert len(pat) == 1
    assert int(value(pat[0], "00201200")) == len({d.StudyInstanceUID for d in src})
    assert int(value(pat[0], "00201204")) == len(files)
    assert len(find(archive, "study", "PatientID=PAT2")) == 0
    assert len(find(archive, "study", "PatientID=PAT1")) == len({d.StudyInstanceUID for d in src})
    hist = [json.loads(line) for line in archive.run("history", "--json", "PAT2").stdout.splitlines()]
    ids = [h for h in hist if h["keyword"] == "PatientID"]
    assert len(ids) == 1 and (ids[0]["old"], ids[0]["new"], ids[0]["reason"]) == ("PAT2", "PAT1",
                                                                                   "ADT A40")
    assert ids[0]["instances"] == sum(d.PatientID == "PAT2" for d in src)
    check_clean(archive)
    # again: the patient is gone, exit 1, nothing changes
    proc = archive.run("merge", "PAT2", "--into", "PAT1", check=False)
    assert proc.returncode == 1 and b"no patient PAT2" in proc.stderr
    assert stats(archive)["instances"] == len(files)


def test_merge_into_new_identifier_renames(loaded, tmp_path):
    archive, files = loaded
    src = [pydicom.dcmread(p) for p in files]
    out = archive.run("merge", "PAT2", "--into", "MRN-77", "--into-issuer", "HOSP", "--set",
                      "PatientName=Nüñez^José", "--set", "PatientSex=M", "--json").stdout
    res = json.loads(out)
    assert res["instances"] == sum(d.PatientID == "PAT2" for d in src)
    assert stats(archive)["patients"] == 2
    for d in src:
        got = cat(archive, tmp_path, d.SOPInstanceUID)
        if d.PatientID == "PAT2":
            assert (got.PatientID, got.IssuerOfPatientID) == ("MRN-77", "HOSP")
            assert str(got.PatientName) == "Nüñez^José" and got.PatientSex == "M"
            assert got.SpecificCharacterSet == "ISO_IR 192"
        else:
            assert got.PatientID == "PAT1" and got.PatientName == d.PatientName
    m = find(archive, "patient", "PatientID=MRN-77", "IssuerOfPatientID", "PatientName")
    assert value(m[0], "00100021") == "HOSP" and value(m[0], "00100010") == "Nüñez^José"
    check_clean(archive)


@pytest.mark.parametrize("args, code, message", [
    (["PAT2", "--into", "PAT1", "--set", "StudyDescription=x"], 1, b"not an attribute of the patient"),
    (["PAT1", "--into", "PAT1"], 1, b"into itself"),
    (["NOBODY", "--into", "PAT1"], 1, b"no patient NOBODY"),
    (["PAT2"], 2, b"--into"),
])
def test_merge_refusals(loaded, args, code, message):
    archive, files = loaded
    before = {p: archive.run("cat", pydicom.dcmread(p).SOPInstanceUID).stdout for p in files}
    proc = archive.run("merge", *args, check=False)
    assert proc.returncode == code and message in proc.stderr
    for p in files:
        assert archive.run("cat", pydicom.dcmread(p).SOPInstanceUID).stdout == before[p]
    assert archive.run("history").stdout == b""


def test_modify_non_ascii_name(loaded, tmp_path):
    archive, files = loaded
    archive.run("modify", "--level", "patient", "PAT1", "--set", "PatientName=Müller^Jörg")
    for p in files:
        d = pydicom.dcmread(p)
        if d.PatientID == "PAT1":
            got = cat(archive, tmp_path, d.SOPInstanceUID)
            assert str(got.PatientName) == "Müller^Jörg"
    m = find(archive, "patient", "PatientID=PAT1", "PatientName")
    assert value(m[0], "00100010") == "Müller^Jörg"
