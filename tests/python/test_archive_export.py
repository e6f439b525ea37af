"""mira export: to a folder, and as media with a DICOMDIR that pydicom and DCMTK read.

The DICOMDIR is checked three ways: pydicom's FileSet loads it (it follows every offset),
`dcmdump` reads it, and its records (types, hierarchy, keys) equal those of the DICOMDIR that
DCMTK's dcmgpdir writes for the same files.
"""
import collections
import json
import shutil
import subprocess

import pydicom
import pytest
from pydicom.fileset import FileSet

from conftest import TEST_FILES
from test_archive_manage import make_inputs


@pytest.fixture
def loaded(archive, tmp_path):
    files = make_inputs(tmp_path)
    archive.run("import", "--no-progress", *files)
    return archive, files


def records(dicomdir):
    """(type, parent chain of keys, keys) of every record, following the offsets."""
    ds = pydicom.dcmread(dicomdir)
    by_offset = {r.seq_item_tell: r for r in ds.DirectoryRecordSequence}
    out = []

    def walk(offset, chain):
        while offset:
            r = by_offset[offset]
            kind = r.DirectoryRecordType
            key = {"PATIENT": "PatientID", "STUDY": "StudyInstanceUID",
                   "SERIES": "SeriesInstanceUID"}.get(kind, "ReferencedSOPInstanceUIDInFile")
            val = str(r.get(key, ""))
            extra = {}
            for k in ("PatientName", "StudyDate", "StudyDescription", "Modality", "SeriesNumber",
                      "InstanceNumber", "ReferencedSOPClassUIDInFile",
                      "ReferencedTransferSyntaxUIDInFile"):
                if k in r:
                    extra[k] = str(r.get(k))
            out.append((kind, tuple(chain), val, tuple(sorted(extra.items()))))
            walk(r.OffsetOfReferencedLowerLevelDirectoryEntity, chain + [val])
            offset = r.OffsetOfTheNextDirectoryRecord

    walk(ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity, [])
    return out


def test_export_dicomdir(loaded, tmp_path):
    archive, files = loaded
    out = tmp_path / "media"
    archive.run("export", "-o", out, "--dicomdir", "--no-progress")
    # pydicom: every instance once, at a file that holds exactly the stored bytes
    fs = FileSet(pydicom.dcmread(out / "DICOMDIR"))
    by_uid = {pydicom.dcmread(p).SOPInstanceUID: p for p in files}
    assert sorted(i.SOPInstanceUID for i in fs) == sorted(by_uid)
    for inst in fs:
        assert pydicom.dcmread(inst.path).SOPInstanceUID == inst.SOPInstanceUID
        assert open(inst.path, "rb").read() == by_uid[inst.SOPInstanceUID].read_bytes()
    # the hierarchy: each image under its series, study and patient
    for kind, chain, uid, _ in records(out / "DICOMDIR"):
        if kind == "IMAGE":
            ds = pydicom.dcmread(by_uid[uid])
            assert list(chain) == [ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID]
    # DCMTK reads it
    proc = subprocess.run(["dcmdump", str(out / "DICOMDIR")], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    # and dcmgpdir writes the same records for the same files
    ref = tmp_path / "ref_DICOMDIR"
    proc = subprocess.run(["dcmgpdir", "-q", "+r", "+D", str(ref), "DICOM"], cwd=out,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(records(out / "DICOMDIR")) == sorted(records(ref))


def test_export_query_to_folder(loaded, tmp_path):
    archive, files = loaded
    out = tmp_path / "folder"
    proc = archive.run("export", "-o", out, "--json", "--no-progress", "PatientID=PAT2",
                       "Modality=CT")
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    want = {pydicom.dcmread(p).SOPInstanceUID: p for p in files
            if pydicom.dcmread(p).PatientID == "PAT2" and pydicom.dcmread(p).Modality == "CT"}
    got = {x["sop_instance_uid"]: x["path"] for x in lines if "sop_instance_uid" in x}
    assert sorted(got) == sorted(want)
    assert lines[-1]["summary"]["exported"] == len(want)
    for uid, path in got.items():
        ds = pydicom.dcmread(path)
        assert path.endswith(f"{ds.PatientID}/{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/"
                             f"{uid}.dcm")
        assert open(path, "rb").read() == want[uid].read_bytes()


def test_export_nothing_matches(loaded, tmp_path):
    archive, _ = loaded
    proc = archive.run("export", "-o", tmp_path / "x", "PatientID=nobody", check=False)
    assert proc.returncode == 1 and b"no instance matches" in proc.stderr


def test_dicomdir_of_the_pydicom_test_set(archive, tmp_path):
    """Messy real files (missing type 1 keys, every transfer syntax): still a valid file-set."""
    archive.run("import", "--no-progress", TEST_FILES, check=False)
    out = tmp_path / "media"
    archive.run("export", "-o", out, "--dicomdir", "--no-progress")
    fs = FileSet(pydicom.dcmread(out / "DICOMDIR"))
    n = json.loads(archive.run("stats", "--json").stdout)["instances"]
    assert len(fs) == n
    assert subprocess.run(["dcmdump", str(out / "DICOMDIR")], capture_output=True).returncode == 0
