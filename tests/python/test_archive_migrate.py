"""An index made by an older mira (schema version 8, tests/data/archive-v8) opened by this one:
the data is kept, the schema is brought to the current version, and files without a Patient
ID no longer make one patient of everyone (migration 9). Expectations come from the files as
pydicom writes and reads them."""
import json
import pathlib
import shutil
import sqlite3
import subprocess

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from conftest import BACKENDS, Archive, new_postgres_database

FIXTURE = pathlib.Path(__file__).resolve().parent.parent / "data" / "archive-v8"


def restore(tmp_path, backend):
    folder = tmp_path / "archive"
    folder.mkdir()
    shutil.copytree(FIXTURE / backend / "blobs", folder / "blobs")
    dump = (FIXTURE / backend / "index.sql").read_text()
    index = None
    if backend == "sqlite":
        c = sqlite3.connect(folder / "index.db")
        c.executescript(dump)
        c.execute("PRAGMA journal_mode=WAL")
        c.close()
    else:
        index = new_postgres_database()
        subprocess.run(["psql", index, "-v", "ON_ERROR_STOP=1", "-q"], input=dump.encode(),
                       check=True, capture_output=True, timeout=120)
    config = {"version": 1, "index": "sqlite" if backend == "sqlite" else index,
              "duplicates": "keep", "storage_transfer_syntax": "", "names_case_insensitive": True}
    (folder / "config.json").write_text(json.dumps(config))
    return Archive(folder, backend, index)


def sql(archive, query):
    """Rows of a query on the index, as lists of text."""
    if archive.backend == "sqlite":
        c = sqlite3.connect(archive.dir / "index.db")
        try:
            return [[str(v) for v in r] for r in c.execute(query).fetchall()]
        finally:
            c.close()
    p = subprocess.run(["psql", archive.index, "-At", "-F", "\t", "-c", query],
                       capture_output=True, text=True, timeout=60)
    if p.returncode:
        raise RuntimeError(p.stderr)
    return [line.split("\t") for line in p.stdout.splitlines()]


def make(path, pid, name, birth="", sex=""):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    if pid is not None:
        ds.PatientID = pid
    ds.PatientName, ds.PatientBirthDate, ds.PatientSex = name, birth, sex
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "OT"
    ds.save_as(path, write_like_original=False)
    return path


@pytest.mark.parametrize("backend", BACKENDS)
def test_version_8_index_is_migrated_and_kept(tmp_path, backend):
    archive = restore(tmp_path, backend)
    assert sql(archive, "SELECT version FROM schema_version") == [["8"]]
    before = {r[0]: r[1:] for r in sql(archive, "SELECT sop_uid, blob, checksum FROM instances")}
    s = json.loads(archive.run("stats", "--json").stdout)
    # as version 8 stored them: P1, and one patient of both files without a Patient ID
    assert (s["patients"], s["studies"], s["instances"]) == (2, 3, 4)
    assert int(sql(archive, "SELECT version FROM schema_version")[0][0]) >= 9
    assert {r[0]: r[1:] for r in sql(archive, "SELECT sop_uid, blob, checksum FROM instances")} \
        == before
    proc = archive.run("check", "--json")
    report = json.loads(proc.stdout.splitlines()[-1])["report"]
    assert report["missing_blobs"] == report["orphan_blobs"] == report["bad_counts"] == 0
    if backend == "sqlite":
        assert sql(archive, "PRAGMA foreign_key_check") == []
        assert sql(archive, "PRAGMA integrity_check") == [["ok"]]
    # a patient with an ID is still one row; a second is refused by the index itself
    with pytest.raises((sqlite3.IntegrityError, RuntimeError)):
        sql(archive, "INSERT INTO patients (patient_id, issuer, created_at, updated_at)"
                     " VALUES ('P1', '', 'x', 'x')")
    # new files without a Patient ID: one patient per name, birth date and sex
    files = [make(tmp_path / "c1.dcm", "", "NOID^CARL", "20000101", "M"),
             make(tmp_path / "c2.dcm", None, "NOID^CARL", "20000101", "M"),
             make(tmp_path / "d1.dcm", "", "NOID^CARL", "20010101", "M"),
             make(tmp_path / "e1.dcm", None, ""),
             make(tmp_path / "e2.dcm", None, ""),
             make(tmp_path / "p1.dcm", "P1", "ALPHA^ONE", "19700101", "F")]
    archive.run("import", "--no-progress", *files)
    s = json.loads(archive.run("stats", "--json").stdout)
    # P1, the old merged one, CARL of 2000 (two studies), CARL of 2001, two with no name
    assert (s["patients"], s["studies"], s["instances"]) == (6, 9, 10)
    got = json.loads(archive.run("find", "--level", "study", "--json", "StudyInstanceUID",
                                 "PatientName", "PatientBirthDate", "PatientID").stdout)
    by_uid = {m["0020000D"]["Value"][0]: m for m in got}
    for f in files:
        ds = pydicom.dcmread(f)
        m = by_uid[ds.StudyInstanceUID]
        names = m.get("00100010", {}).get("Value", [{}])
        assert names[0].get("Alphabetic", "") == str(ds.PatientName)
        assert m.get("00100030", {}).get("Value", [""])[0] == ds.PatientBirthDate
    p1 = json.loads(archive.run("find", "--level", "patient", "--json", "PatientID=P1",
                                "NumberOfPatientRelatedStudies").stdout)
    assert len(p1) == 1 and p1[0]["00201200"]["Value"] == [2]
