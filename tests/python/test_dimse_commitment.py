"""Storage Commitment Push (PS3.4 J): pynetdicom's N-ACTION against `mira serve` holding two
instances the test stored; the N-EVENT-REPORT lists the instances held and the others with
their failure reasons (0x0112 no such instance, 0x0119 another SOP class), on the requestor's
association when it answers the report, else on a new association to its AE as configured
(--peer). On both index backends."""
import threading
import time

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from conftest import BACKENDS, new_postgres_database, run_mira
from dimse_peers import MiraServer, free_port, pynetdicom_quiet

COMMIT = "1.2.840.10008.1.20.1"
COMMIT_INSTANCE = "1.2.840.10008.1.20.1.1"
SC = "1.2.840.10008.5.1.4.1.1.7"
CT = "1.2.840.10008.5.1.4.1.1.2"


def instance(path):
    ds = Dataset()
    ds.SOPClassUID = SC
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "P1"
    ds.Modality = "OT"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SC
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.save_as(path, write_like_original=False)
    return ds.SOPInstanceUID


class Receiver:
    """A pynetdicom AE taking N-EVENT-REPORTs as the SCU of Storage Commitment."""

    def __init__(self):
        from pynetdicom import AE, evt
        self.reports = []
        self.ae = AE(ae_title="PYSCU")
        self.ae.add_supported_context(COMMIT, scu_role=True, scp_role=True)
        self.port = free_port()
        self.server = self.ae.start_server(("127.0.0.1", self.port), block=False,
                                           evt_handlers=[(evt.EVT_N_EVENT_REPORT, self.take)])

    def take(self, event):
        self.reports.append((event.request.EventTypeID, event.event_information))
        return 0x0000, None

    def close(self):
        self.server.shutdown()


@pytest.fixture(scope="module", params=BACKENDS)
def served(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("commit")
    args = ["--archive", str(d / "archive")]
    if request.param == "postgresql":
        args += ["--index", new_postgres_database()]
    stored = [instance(d / f"{i}.dcm") for i in range(2)]
    run_mira("import", *args, "--no-progress", str(d / "0.dcm"), str(d / "1.dcm"))
    pynetdicom_quiet()
    rcv = Receiver()
    try:
        with MiraServer(d / "archive", "--quiet", "--peer", f"PYSCU=127.0.0.1:{rcv.port}",
                        archive_args=args) as srv:
            yield srv, stored, rcv
    finally:
        rcv.close()


def request(stored):
    ds = Dataset()
    ds.TransactionUID = generate_uid()
    refs = []
    for cls, uid in [(SC, stored[0]), (SC, stored[1]), (SC, generate_uid()), (CT, stored[1])]:
        r = Dataset()
        r.ReferencedSOPClassUID = cls
        r.ReferencedSOPInstanceUID = uid
        refs.append(r)
    ds.ReferencedSOPSequence = refs
    return ds


def check_report(event_type, info, req, stored):
    assert event_type == 2  # some failed
    assert info.TransactionUID == req.TransactionUID
    assert sorted(r.ReferencedSOPInstanceUID for r in info.ReferencedSOPSequence) == sorted(stored)
    assert all(r.ReferencedSOPClassUID == SC for r in info.ReferencedSOPSequence)
    failed = {(r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID): r.FailureReason
              for r in info.FailedSOPSequence}
    refs = req.ReferencedSOPSequence
    assert failed == {(SC, refs[2].ReferencedSOPInstanceUID): 0x0112, (CT, stored[1]): 0x0119}


def wait_for(cond, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_report_on_the_same_association(served):
    from pynetdicom import AE, evt
    srv, stored, rcv = served
    got = []

    def take(event):
        got.append((event.request.EventTypeID, event.event_information))
        return 0x0000, None

    before = len(rcv.reports)
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(COMMIT)
    assoc = ae.associate("127.0.0.1", srv.port, ae_title="MIRA",
                         evt_handlers=[(evt.EVT_N_EVENT_REPORT, take)])
    assert assoc.is_established
    req = request(stored)
    status, _ = assoc.send_n_action(req, 1, COMMIT, COMMIT_INSTANCE)
    assert status.Status == 0x0000
    assert wait_for(lambda: got)
    assoc.release()
    check_report(*got[0], req, stored)
    assert len(rcv.reports) == before  # not sent twice


def test_report_on_a_new_association(served):
    """The requestor does not take the report (pynetdicom answers 0x0110 without a handler):
    mira sends it to the AE configured for the calling AE title."""
    from pynetdicom import AE
    srv, stored, rcv = served
    before = len(rcv.reports)
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(COMMIT)
    assoc = ae.associate("127.0.0.1", srv.port, ae_title="MIRA")
    assert assoc.is_established
    req = request(stored)
    status, _ = assoc.send_n_action(req, 1, COMMIT, COMMIT_INSTANCE)
    assert status.Status == 0x0000
    assert wait_for(lambda: len(rcv.reports) > before)
    assoc.release()
    check_report(*rcv.reports[before], req, stored)


def test_all_held_and_refusals(served):
    from pynetdicom import AE, evt
    srv, stored, _ = served
    got = []
    ae = AE(ae_title="OTHER")
    ae.add_requested_context(COMMIT)
    assoc = ae.associate("127.0.0.1", srv.port, ae_title="MIRA", evt_handlers=[
        (evt.EVT_N_EVENT_REPORT, lambda e: (got.append(e.event_information), (0, None))[1])])
    assert assoc.is_established
    req = Dataset()
    req.TransactionUID = generate_uid()
    r = Dataset()
    r.ReferencedSOPClassUID = SC
    r.ReferencedSOPInstanceUID = stored[0]
    req.ReferencedSOPSequence = [r]
    assert assoc.send_n_action(req, 1, COMMIT, COMMIT_INSTANCE)[0].Status == 0x0000
    assert wait_for(lambda: got)
    assert [x.ReferencedSOPInstanceUID for x in got[0].ReferencedSOPSequence] == [stored[0]]
    assert "FailedSOPSequence" not in got[0]
    # pynetdicom sends its N-EVENT-REPORT-RSP after this handler has returned: let it go out
    # before the next request. (Known defect of mira serve, in the closing note of stop 14: a
    # request arriving while it waits for that response aborts the association, though PS3.7
    # lets each side have one operation outstanding.)
    time.sleep(0.5)
    # another action type, another instance than the well-known one, no Transaction UID
    assert assoc.send_n_action(req, 2, COMMIT, COMMIT_INSTANCE)[0].Status == 0x0123
    assert assoc.send_n_action(req, 1, COMMIT, generate_uid())[0].Status == 0x0112
    del req.TransactionUID
    assert assoc.send_n_action(req, 1, COMMIT, COMMIT_INSTANCE)[0].Status == 0x0120
    assoc.release()
