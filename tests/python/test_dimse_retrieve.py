"""Retrieve SCP (C-MOVE, C-GET; PS3.4 C.4.2, C.4.3): `mira serve` holding pydicom's test files
answers DCMTK's movescu (to a storescp destination configured with --peer) and getscu, and
pynetdicom's move and get SCUs. The instances expected are found in the sources with pydicom;
every retrieved file's values equal its source's."""
import json
import pathlib
import subprocess

import pydicom
import pytest

from conftest import run_mira
from dimse_peers import MiraServer, Storescp, pynetdicom_quiet
from test_dimse_send import same_values
from test_dimse_store import corpus

STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
PIXEL = pydicom.tag.Tag(0x7FE0, 0x0010)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    d = tmp_path_factory.mktemp("retrieve")
    files = [p for g in corpus().values() for p in g]
    out = run_mira("import", "--archive", d / "archive", "--no-progress", "--json", *files,
                   check=False).stdout.decode().splitlines()
    stored = [json.loads(l)["path"] for l in out if '"status":"stored"' in l]
    sources = {}
    for p in stored:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        sources[str(ds.SOPInstanceUID)] = pathlib.Path(p)
    with Storescp(d / "dest", aet="DEST", extra=["+xa"]) as scp, \
            MiraServer(d / "archive", "--quiet", "--peer", f"DEST=127.0.0.1:{scp.port}") as srv:
        yield srv, scp, sources, d


def biggest_study(sources):
    by = {}
    for uid, p in sources.items():
        by.setdefault(str(pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID),
                      set()).add(uid)
    return max(by.items(), key=lambda kv: len(kv[1]))


def check_received(files, sources, want):
    got = {}
    for f in files:
        ds = pydicom.dcmread(f)
        got[str(ds.SOPInstanceUID)] = ds
    assert set(got) == want
    for uid, ds in got.items():
        orig = pydicom.dcmread(sources[uid])
        same_ts = ds.file_meta.TransferSyntaxUID == orig.file_meta.TransferSyntaxUID
        # decompressed: pixels, photometric interpretation, planar configuration may change
        skip = set() if same_ts else {PIXEL, pydicom.tag.Tag(0x0028, 0x2110),
                                      pydicom.tag.Tag(0x0028, 0x0004),
                                      pydicom.tag.Tag(0x0028, 0x0006)}
        if same_ts and orig.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1.99":
            continue
        same_values(ds, orig, skip=skip)


def test_movescu_study_to_storescp(served):
    srv, scp, sources, d = served
    study, want = biggest_study(sources)
    for f in scp.out.iterdir():
        f.unlink()
    p = subprocess.run(["movescu", "-S", "-aet", "MOVESCU", "-aec", "MIRA", "-aem", "DEST",
                        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}",
                        "127.0.0.1", str(srv.port)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    check_received(list(scp.out.iterdir()), sources, want)


def test_move_unknown_destination_and_get_with_pynetdicom(served, tmp_path):
    from pynetdicom import AE, build_role, evt, StoragePresentationContexts
    from pynetdicom.sop_class import (StudyRootQueryRetrieveInformationModelMove as MOVE,
                                      StudyRootQueryRetrieveInformationModelGet as GET)
    pynetdicom_quiet()
    srv, scp, sources, d = served
    study, want = biggest_study(sources)
    ident = pydicom.Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    ident.StudyInstanceUID = study
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(MOVE)
    ae.add_requested_context(GET)
    classes = sorted({str(pydicom.dcmread(sources[u], stop_before_pixels=True).SOPClassUID)
                      for u in want})
    for c in classes:
        ae.add_requested_context(c)
    received = []

    def store(event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        received.append(ds)
        return 0
    roles = [build_role(c, scp_role=True) for c in classes]
    a = ae.associate("127.0.0.1", srv.port, ae_title="MIRA", ext_neg=roles,
                     evt_handlers=[(evt.EVT_C_STORE, store)])
    assert a.is_established
    try:
        statuses = [s.Status for s, _ in a.send_c_move(ident, "NOPE", MOVE) if s]
        assert statuses[-1] == 0xA801
        results = [s for s, _ in a.send_c_get(ident, GET) if s]
        final = results[-1]
        assert final.Status == 0x0000
        assert final.NumberOfCompletedSuboperations == len(want)
        assert final.NumberOfFailedSuboperations == 0
        assert all(s.Status == 0xFF00 for s in results[:-1])
    finally:
        a.release()
    out = []
    for i, ds in enumerate(received):
        f = tmp_path / f"{i}.dcm"
        ds.save_as(f, write_like_original=False)
        out.append(f)
    check_received(out, sources, want)


def test_getscu_series(served, tmp_path):
    srv, scp, sources, d = served
    study, want_study = biggest_study(sources)
    uid = sorted(want_study)[0]
    series = str(pydicom.dcmread(sources[uid], stop_before_pixels=True).SeriesInstanceUID)
    want = {u for u, p in sources.items()
            if str(pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID) == series}
    out = tmp_path / "get"
    out.mkdir()
    p = subprocess.run(["getscu", "-S", "-aet", "GETSCU", "-aec", "MIRA", "-od", str(out),
                        "-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={study}",
                        "-k", f"SeriesInstanceUID={series}", "127.0.0.1", str(srv.port)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    check_received(list(out.iterdir()), sources, want)


def test_move_missing_unique_key_is_refused(served):
    srv, scp, sources, d = served
    p = subprocess.run(["movescu", "-S", "-aet", "MOVESCU", "-aec", "MIRA", "-aem", "DEST",
                        "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientID=*",
                        "127.0.0.1", str(srv.port)], capture_output=True, text=True, timeout=120)
    # 0xA900 in DCMTK's words
    assert "DataSetDoesNotMatchSOPClass" in p.stderr, p.stderr
