"""Query (C-FIND SCP, PS3.4 C): Patient Root and Study Root at every level, asked by DCMTK's
findscu and pynetdicom, answered from an archive holding pydicom's test files; the expected
answers are read from the files with pydicom. C-CANCEL stops a search."""
import collections
import io
import json
import socket
import struct
import subprocess

import pydicom
import pytest
from pydicom.dataset import Dataset

from conftest import run_mira
from dimse_peers import (ABORT, MiraServer, associate_rq, closed_after, pdata, pynetdicom_quiet,
                         read_pdu)
from test_dimse_store import corpus

PATIENT_ROOT = "1.2.840.10008.5.1.4.1.2.1.1"
STUDY_ROOT = "1.2.840.10008.5.1.4.1.2.2.1"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    d = tmp_path_factory.mktemp("find")
    files = [p for g in corpus().values() for p in g]
    out = run_mira("import", "--archive", d / "archive", "--no-progress", "--json", *files,
                   check=False).stdout.decode().splitlines()
    stored = [pathlib_of(json.loads(l)) for l in out if '"status":"stored"' in l]
    assert len(stored) >= 20
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in stored]
    with MiraServer(d / "archive", "--quiet") as srv:
        yield srv, headers, d


def pathlib_of(row):
    import pathlib
    return pathlib.Path(row["path"])


def findscu(srv, out_dir, model, level, *keys):
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in out_dir.glob("rsp*.dcm"):
        f.unlink()
    p = subprocess.run(["findscu", "-v", model, "-aet", "FINDSCU", "-aec", "MIRA", "-X",
                        "-od", str(out_dir), "-k", f"QueryRetrieveLevel={level}",
                        *[a for k in keys for a in ("-k", k)], "127.0.0.1", str(srv.port)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return [pydicom.dcmread(f) for f in sorted(out_dir.glob("rsp*.dcm"))], p.stderr


def test_study_root_study_level(served, tmp_path):
    srv, headers, _ = served
    got, _ = findscu(srv, tmp_path, "-S", "STUDY", "StudyInstanceUID", "PatientID", "StudyDate")
    want = {}
    for h in headers:
        want.setdefault(h.StudyInstanceUID, h)
    assert sorted(r.StudyInstanceUID for r in got) == sorted(want)
    for r in got:
        assert r.QueryRetrieveLevel == "STUDY" and r.RetrieveAETitle == "MIRA"
        w = want[r.StudyInstanceUID]
        assert r.get("PatientID", "") == w.get("PatientID", "")
        # the archive keeps dates as YYYYMMDD (ACR-NEMA's 1997.04.24 included, PS3.5 6.2)
        assert r.get("StudyDate", "") == w.get("StudyDate", "").replace(".", "")


def test_study_root_series_and_image_levels(served, tmp_path):
    srv, headers, _ = served
    by_study = collections.defaultdict(list)
    for h in headers:
        by_study[h.StudyInstanceUID].append(h)
    for study, hs in sorted(by_study.items())[:6]:
        got, _ = findscu(srv, tmp_path / "series", "-S", "SERIES", f"StudyInstanceUID={study}",
                         "SeriesInstanceUID", "Modality")
        want = {h.SeriesInstanceUID: h.get("Modality", "") for h in hs}
        assert {r.SeriesInstanceUID: r.get("Modality", "") for r in got} == want
        for series in want:
            got, _ = findscu(srv, tmp_path / "image", "-S", "IMAGE", f"StudyInstanceUID={study}",
                             f"SeriesInstanceUID={series}", "SOPInstanceUID", "SOPClassUID")
            w = {h.SOPInstanceUID: h.SOPClassUID for h in hs if h.SeriesInstanceUID == series}
            assert {r.SOPInstanceUID: r.SOPClassUID for r in got} == w


def test_patient_root_all_levels(served, tmp_path):
    srv, headers, _ = served
    named = [h for h in headers if h.get("PatientID")]
    got, _ = findscu(srv, tmp_path / "p", "-P", "PATIENT", "PatientID", "PatientName")
    assert {r.PatientID for r in got if r.get("PatientID")} == {h.PatientID for h in named}
    pid = sorted({h.PatientID for h in named})[0]
    got, _ = findscu(srv, tmp_path / "s", "-P", "STUDY", f"PatientID={pid}", "StudyInstanceUID")
    assert {r.StudyInstanceUID for r in got} == {h.StudyInstanceUID for h in named
                                                if h.PatientID == pid}
    study = got[0].StudyInstanceUID
    got, _ = findscu(srv, tmp_path / "e", "-P", "SERIES", f"PatientID={pid}",
                     f"StudyInstanceUID={study}", "SeriesInstanceUID")
    assert {r.SeriesInstanceUID for r in got} == {h.SeriesInstanceUID for h in named
                                                 if h.StudyInstanceUID == study}
    series = got[0].SeriesInstanceUID
    got, _ = findscu(srv, tmp_path / "i", "-P", "IMAGE", f"PatientID={pid}",
                     f"StudyInstanceUID={study}", f"SeriesInstanceUID={series}", "SOPInstanceUID")
    assert {r.SOPInstanceUID for r in got} == {h.SOPInstanceUID for h in named
                                              if h.SeriesInstanceUID == series}


def test_wildcard_on_patient_name(served, tmp_path):
    srv, headers, _ = served
    got, _ = findscu(srv, tmp_path, "-S", "STUDY", "PatientName=compressed*", "StudyInstanceUID")
    # person names match case-insensitively by default (PS3.4 C.2.2.2.1 leaves it to the SCP)
    want = {h.StudyInstanceUID for h in headers
            if str(h.get("PatientName", "")).lower().startswith("compressed")}
    assert want and {r.StudyInstanceUID for r in got} == want


def test_patient_level_is_not_in_study_root(served, tmp_path):
    srv, _, _ = served
    p = subprocess.run(["findscu", "-v", "-S", "-aec", "MIRA", "-k", "QueryRetrieveLevel=PATIENT",
                        "-k", "PatientID", "127.0.0.1", str(srv.port)],
                       capture_output=True, text=True, timeout=60)
    # "Identifier does not match SOP class" (PS3.4 C.4.1.1.4): 0xA900
    assert "Received Final Find Response (Error: DataSetDoesNotMatchSOPClass)" in p.stderr, p.stderr


def test_pynetdicom_find(served):
    from pynetdicom import AE
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind
    pynetdicom_quiet()
    srv, headers, _ = served
    from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation
    ae = AE(ae_title="PYNETSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    # series of every study: a relational query (PS3.4 C.4.1.2.2), negotiated
    relational = SOPClassExtendedNegotiation()
    relational.sop_class_uid = StudyRootQueryRetrieveInformationModelFind
    relational.service_class_application_information = b"\x01"
    assoc = ae.associate("127.0.0.1", srv.port, ae_title="MIRA", ext_neg=[relational])
    assert assoc.is_established
    q = Dataset()
    q.QueryRetrieveLevel = "SERIES"
    q.SeriesInstanceUID = ""
    q.StudyInstanceUID = ""
    q.Modality = "MR"
    statuses, found = [], set()
    for status, ident in assoc.send_c_find(q, StudyRootQueryRetrieveInformationModelFind):
        statuses.append(status.Status)
        if status.Status in (0xFF00, 0xFF01):
            found.add((ident.StudyInstanceUID, ident.SeriesInstanceUID))
    assoc.release()
    assert statuses[-1] == 0x0000
    assert found == {(h.StudyInstanceUID, h.SeriesInstanceUID) for h in headers
                     if h.get("Modality") == "MR"}


def _encode(ds):
    """An identifier in Implicit VR Little Endian, as pydicom writes it."""
    from pydicom.filewriter import write_dataset
    buf = pydicom.filebase.DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, True
    write_dataset(buf, ds)
    return buf.getvalue()


def _command(fields):
    out = b""
    for (g, e), v in sorted(fields.items()):
        if len(v) % 2:
            v += b"\0"
        out += struct.pack("<HHI", g, e, len(v)) + v
    return struct.pack("<HHII", 0, 0, 4, len(out)) + out


def test_c_cancel_stops_the_search(served):
    """A C-FIND-RQ and its C-CANCEL-RQ sent together: the search stops with status Cancel
    (0xFE00, PS3.4 C.4.1.1.4) before all matches are sent."""
    srv, headers, _ = served
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(associate_rq(contexts=((1, STUDY_ROOT, ("1.2.840.10008.1.2",)),)))
    assert read_pdu(s)[:1] == b"\x02"
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = ""
    find = _command({(0, 2): STUDY_ROOT.encode(), (0, 0x100): struct.pack("<H", 0x20),
                     (0, 0x110): struct.pack("<H", 5), (0, 0x700): struct.pack("<H", 0),
                     (0, 0x800): struct.pack("<H", 0)})
    cancel = _command({(0, 0x100): struct.pack("<H", 0x0FFF), (0, 0x120): struct.pack("<H", 5),
                       (0, 0x800): struct.pack("<H", 0x0101)})
    s.sendall(pdata(1, 3, find) + pdata(1, 2, _encode(q)) + pdata(1, 3, cancel))
    pending, final = 0, None
    for _ in range(1000):
        pdu = read_pdu(s)
        assert pdu[:1] == b"\x04", pdu[:10]
        if not pdu[11] & 1:
            continue  # an identifier
        st = pdu.find(b"\x00\x00\x00\x09\x02\x00\x00\x00")
        status = struct.unpack("<H", pdu[st + 8:st + 10])[0]
        if status == 0xFF00:
            pending += 1
            continue
        final = status
        break
    assert final == 0xFE00
    studies = {h.StudyInstanceUID for h in headers}
    assert pending < len(studies)
    s.sendall(ABORT)
    closed_after(s, 10)
    s.close()
