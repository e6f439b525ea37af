"""Load: 32 DCMTK storescu associations at once, 200 instances each, into one `mira serve`:
every instance acknowledged with Success is stored and indexed, none lost, no error."""
import concurrent.futures
import json
import random
import subprocess

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from conftest import TEST_FILES, run_mira
from dimse_peers import MiraServer



def make_instances(folder, n_assoc, per):
    """Small instances (CT_small's header, a 16x16 image), a study per association."""
    base = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    base.Rows = base.Columns = 16
    base.PixelData = bytes(range(256)) * 2
    groups = []
    for a in range(n_assoc):
        d = folder / f"a{a:02d}"
        d.mkdir(parents=True)
        study = generate_uid()
        series = generate_uid()
        files = []
        for i in range(per):
            base.StudyInstanceUID = study
            base.SeriesInstanceUID = series
            base.SOPInstanceUID = generate_uid()
            base.InstanceNumber = i + 1
            base.PatientID = f"LOAD{a:02d}"
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = base.SOPClassUID
            meta.MediaStorageSOPInstanceUID = base.SOPInstanceUID
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            base.file_meta = meta
            p = d / f"{i:03d}.dcm"
            base.save_as(p, write_like_original=False)
            files.append(p)
        groups.append(files)
    return groups


@pytest.mark.parametrize("ASSOCIATIONS,PER_ASSOCIATION", [
    (4, 25),  # quick, also in the sanitizer pass
    pytest.param(32, 200, marks=pytest.mark.slow),  # the acceptance load (about 45 s on 2 cores)
])
def test_concurrent_storescu_associations(tmp_path, ASSOCIATIONS, PER_ASSOCIATION):
    groups = make_instances(tmp_path / "in", ASSOCIATIONS, PER_ASSOCIATION)
    with MiraServer(tmp_path / "archive", "--quiet", "--max-associations", "40") as srv:
        def send(files):
            return subprocess.run(["storescu", "-R", "-aet", "LOAD", "-aec", "MIRA", "127.0.0.1",
                                   str(srv.port), *map(str, files)],
                                  capture_output=True, text=True, timeout=600)
        with concurrent.futures.ThreadPoolExecutor(ASSOCIATIONS) as pool:
            results = list(pool.map(send, groups))
        log = srv.stop()
    for r in results:
        assert r.returncode == 0, r.stderr[-2000:]
        assert "Store Failed" not in r.stderr and "E:" not in r.stderr, r.stderr[-2000:]
    assert "error" not in log, log[-3000:]
    archive = tmp_path / "archive"
    stats = run_mira("stats", "--archive", archive).stdout.decode()
    assert f"instances  {ASSOCIATIONS * PER_ASSOCIATION}" in stats, stats
    assert f"studies    {ASSOCIATIONS}" in stats, stats
    found = json.loads(run_mira("find", "--archive", archive, "--level", "instance", "--json",
                                "SOPInstanceUID").stdout)
    stored = {m["00080018"]["Value"][0] for m in found}
    sent = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
            for files in groups for p in files}
    assert stored == sent
    # a sample read back: the values sent
    for p in random.Random(5).sample([p for g in groups for p in g], 20):
        want = pydicom.dcmread(p)
        path = run_mira("cat", "--archive", archive, "--path",
                        want.SOPInstanceUID).stdout.decode().strip()
        got = pydicom.dcmread(path)
        assert got.PixelData == want.PixelData and got.PatientID == want.PatientID
    assert run_mira("check", "--archive", archive).returncode == 0
