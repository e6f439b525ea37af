"""C-CANCEL (PS3.7 9.3.2.3, PS3.4 C.4.2.3, C.4.3.3, K.4.1.2) served by `mira serve`: pynetdicom's
move and get SCUs cancel a retrieve of a study after its first pending response (the stores
at the destination are slowed so that the retrieve is still running); the final status is
Cancel (0xFE00) with counts that add up to the study's instances, and the instances the
destination received are those counted as completed. A worklist C-FIND cancelled at once
stops with 0xFE00 before every entry is sent."""
import json
import socket
import struct
import time

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from conftest import run_mira
from dimse_peers import (ABORT, MiraServer, associate_rq, closed_after, free_port, pdata,
                         pynetdicom_quiet, read_pdu)
from test_dimse_find import _command, _encode

SC = "1.2.840.10008.5.1.4.1.1.7"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
MWL_FIND = "1.2.840.10008.5.1.4.31"
N = 40
SLOW = 0.1  # seconds each store takes at the destination


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    d = tmp_path_factory.mktemp("cancel")
    study = generate_uid()
    series = generate_uid()
    files = []
    for i in range(N):
        ds = Dataset()
        ds.SOPClassUID = SC
        ds.SOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientID, ds.PatientName, ds.Modality = "CANCEL", "Cancel^Test", "OT"
        ds.InstanceNumber = i + 1
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = 8
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit, ds.PixelRepresentation = 7, 0
        ds.PixelData = bytes([i]) * 64
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = SC
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.is_little_endian, ds.is_implicit_VR = True, False
        p = d / f"{i}.dcm"
        ds.save_as(p, write_like_original=False)
        files.append(p)
    arch = d / "archive"
    run_mira("import", "--archive", arch, "--no-progress", *files)
    entries = [{"patient_id": f"W{i:04d}", "patient_name": f"Worklist^{i}", "modality": "CT",
                "date": "20240102", "time": "080000"} for i in range(300)]
    (d / "wl.json").write_text(json.dumps(entries))
    run_mira("worklist", "add", "--archive", arch, "--json", d / "wl.json")
    dest_port = free_port()
    with MiraServer(arch, "--quiet", "--peer", f"DEST=127.0.0.1:{dest_port}") as srv:
        yield srv, study, dest_port


def slow_store(received):
    def handler(event):
        time.sleep(SLOW)
        received.append(str(event.request.AffectedSOPInstanceUID))
        return 0x0000
    return handler


def context_id(assoc, sop_class):
    return next(c.context_id for c in assoc.accepted_contexts
                if c.abstract_syntax == sop_class)


def check_counts(results):
    """Every response's counts add up to the study's instances (PS3.4 C.4.2.1.5); returns the
    final one."""
    final = results[-1]
    assert all(s.Status == 0xFF00 for s in results[:-1])
    for s in results:
        got = [s.get(k) for k in ("NumberOfRemainingSuboperations",
                                  "NumberOfCompletedSuboperations",
                                  "NumberOfFailedSuboperations",
                                  "NumberOfWarningSuboperations")]
        if s is final and got[0] is None:
            got[0] = 0  # optional in a final response
        assert None not in got, s
        assert sum(got) == N, s
    return final


def test_c_cancel_of_a_c_move(served):
    from pynetdicom import AE, evt
    pynetdicom_quiet()
    srv, study, dest_port = served
    received = []
    dest = AE(ae_title="DEST")
    dest.add_supported_context(SC, ExplicitVRLittleEndian)
    scp = dest.start_server(("127.0.0.1", dest_port), block=False,
                            evt_handlers=[(evt.EVT_C_STORE, slow_store(received))])
    try:
        ae = AE(ae_title="PYMOVE")
        ae.add_requested_context(STUDY_ROOT_MOVE)
        a = ae.associate("127.0.0.1", srv.port, ae_title="MIRA")
        assert a.is_established
        ident = Dataset()
        ident.QueryRetrieveLevel = "STUDY"
        ident.StudyInstanceUID = study
        results = []
        cancelled = False
        for status, _ in a.send_c_move(ident, "DEST", STUDY_ROOT_MOVE, msg_id=7):
            if status is None:
                break
            results.append(status)
            if status.Status == 0xFF00 and not cancelled:
                a.send_c_cancel(7, context_id(a, STUDY_ROOT_MOVE))
                cancelled = True
        a.release()
    finally:
        scp.shutdown()
    final = check_counts(results)
    assert final.Status == 0xFE00
    assert 1 <= final.NumberOfCompletedSuboperations < N
    assert final.NumberOfFailedSuboperations == 0
    assert len(received) == final.NumberOfCompletedSuboperations


def test_c_cancel_of_a_c_get(served):
    from pynetdicom import AE, build_role, evt
    pynetdicom_quiet()
    srv, study, _ = served
    received = []
    ae = AE(ae_title="PYGET")
    ae.add_requested_context(STUDY_ROOT_GET)
    ae.add_requested_context(SC, ExplicitVRLittleEndian)
    ae.add_requested_context("1.2.840.10008.1.1")
    a = ae.associate("127.0.0.1", srv.port, ae_title="MIRA",
                     ext_neg=[build_role(SC, scp_role=True)],
                     evt_handlers=[(evt.EVT_C_STORE, slow_store(received))])
    assert a.is_established
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    ident.StudyInstanceUID = study
    results = []
    cancelled = False
    for status, _ in a.send_c_get(ident, STUDY_ROOT_GET, msg_id=9):
        if status is None:
            break
        results.append(status)
        if status.Status == 0xFF00 and not cancelled:
            a.send_c_cancel(9, context_id(a, STUDY_ROOT_GET))
            cancelled = True
    # the association is still usable after the cancel
    assert a.is_established and a.send_c_echo().Status == 0x0000
    a.release()
    final = check_counts(results)
    assert final.Status == 0xFE00
    assert 1 <= final.NumberOfCompletedSuboperations < N
    assert final.NumberOfFailedSuboperations == 0
    assert len(received) == final.NumberOfCompletedSuboperations


def test_c_cancel_of_a_worklist_find(served):
    """The C-FIND-RQ, its identifier and a C-CANCEL-RQ for it sent together: 0xFE00, and
    fewer pending responses than the 300 entries that match."""
    srv, _, _ = served
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(associate_rq(contexts=((1, MWL_FIND, ("1.2.840.10008.1.2",)),)))
    assert read_pdu(s)[:1] == b"\x02"
    q = Dataset()
    q.PatientID = "W*"
    q.PatientName = ""
    find = _command({(0, 2): MWL_FIND.encode(), (0, 0x100): struct.pack("<H", 0x20),
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
    assert pending < 300
    s.sendall(ABORT)
    closed_after(s, 10)
    s.close()


def test_worklist_find_uncancelled_returns_every_entry(served):
    """The control for the case above: without the cancel, all 300 entries come back."""
    from pynetdicom import AE
    pynetdicom_quiet()
    srv, _, _ = served
    ae = AE(ae_title="PYMWL")
    ae.add_requested_context(MWL_FIND)
    a = ae.associate("127.0.0.1", srv.port, ae_title="MIRA")
    assert a.is_established
    q = Dataset()
    q.PatientID = "W*"
    statuses = [s.Status for s, _ in a.send_c_find(q, MWL_FIND) if s]
    a.release()
    assert statuses.count(0xFF00) == 300 and statuses[-1] == 0x0000
