"""Storage Commitment Push (PS3.4 J): pynetdicom's N-ACTION against `mira serve` holding two
instances the test stored; the N-EVENT-REPORT lists the instances held and the others with
their failure reasons (0x0112 no such instance, 0x0119 another SOP class), on the requestor's
association when it answers the report, else on a new association to its AE as configured
(--peer), retried (--commit-retry) until that AE listens, across a restart of mira serve.
Requests the requestor sends while a report is outstanding are served (PS3.7's default
window). On both index backends."""
import socket
import sqlite3
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
    """A pynetdicom AE taking N-EVENT-REPORTs as the SCU of Storage Commitment (over TLS with
    ssl_context)."""

    def __init__(self, port=None, ssl_context=None):
        from pynetdicom import AE, evt
        self.reports = []
        self.ae = AE(ae_title="PYSCU")
        self.ae.add_supported_context(COMMIT, scu_role=True, scp_role=True)
        self.port = port or free_port()
        self.server = self.ae.start_server(("127.0.0.1", self.port), block=False,
                                           evt_handlers=[(evt.EVT_N_EVENT_REPORT, self.take)],
                                           ssl_context=ssl_context)

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
    # pynetdicom sends its N-EVENT-REPORT-RSP after this handler has returned: the next
    # request may reach mira before it (see test_requests_while_a_report_is_outstanding)
    # another action type, another instance than the well-known one, no Transaction UID
    assert assoc.send_n_action(req, 2, COMMIT, COMMIT_INSTANCE)[0].Status == 0x0123
    assert assoc.send_n_action(req, 1, COMMIT, generate_uid())[0].Status == 0x0112
    del req.TransactionUID
    assert assoc.send_n_action(req, 1, COMMIT, COMMIT_INSTANCE)[0].Status == 0x0120
    assoc.release()


def test_requests_while_a_report_is_outstanding(served):
    """PS3.7's default asynchronous operations window lets each side have one operation it
    invoked outstanding: while mira waits for the N-EVENT-REPORT-RSP of the first report, the
    requestor sends a second N-ACTION (answered at once; its report follows once the first is
    answered), and while the second report waits, a C-ECHO. Each report holds its answer
    until the requestor's own request has been answered, so the overlap is certain."""
    from pynetdicom import AE, evt
    srv, stored, rcv = served
    before = len(rcv.reports)
    got, rsp_sent = [], []
    second_answered, echo_answered = threading.Event(), threading.Event()

    def take(event):
        got.append(event.event_information)
        (second_answered if len(got) == 1 else echo_answered).wait(10)
        return 0x0000, None

    def sent(event):
        if type(event.message).__name__ == "N_EVENT_REPORT_RSP":
            rsp_sent.append(event.message)

    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(COMMIT)
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", srv.port, ae_title="MIRA",
                         evt_handlers=[(evt.EVT_N_EVENT_REPORT, take),
                                       (evt.EVT_DIMSE_SENT, sent)])
    assert assoc.is_established
    try:
        first, second = request(stored), request(stored)
        assert assoc.send_n_action(first, 1, COMMIT, COMMIT_INSTANCE)[0].Status == 0x0000
        assert wait_for(lambda: got)  # the first report is outstanding
        status, _ = assoc.send_n_action(second, 1, COMMIT, COMMIT_INSTANCE)
        assert status.get("Status") == 0x0000, "the N-ACTION sent while a report waited failed"
        assert len(got) == 1  # the second report waits for the first one's answer
        second_answered.set()
        assert wait_for(lambda: len(got) == 2)  # the second report is outstanding
        status = assoc.send_c_echo()
        assert status.get("Status") == 0x0000, "the C-ECHO sent while a report waited failed"
        echo_answered.set()
        assert wait_for(lambda: len(rsp_sent) == 2)
        assoc.release()
        assert assoc.is_released and not assoc.is_aborted
    finally:
        second_answered.set()
        echo_answered.set()
        if assoc.is_established:
            assoc.abort()
    assert [x.TransactionUID for x in got] == [first.TransactionUID, second.TransactionUID]
    check_report(2, got[0], first, stored)
    check_report(2, got[1], second, stored)
    time.sleep(0.2)
    assert len(rcv.reports) == before  # both delivered on the association, not again


@pytest.fixture(params=BACKENDS)
def lone(request, tmp_path):
    """An archive of its own holding two instances, for a mira serve of the test's own."""
    args = ["--archive", str(tmp_path / "archive")]
    if request.param == "postgresql":
        args += ["--index", new_postgres_database()]
    stored = [instance(tmp_path / f"{i}.dcm") for i in range(2)]
    run_mira("import", *args, "--no-progress", str(tmp_path / "0.dcm"), str(tmp_path / "1.dcm"))
    pynetdicom_quiet()
    return tmp_path, args, stored, request.param


def commit_and_leave(port, stored, ae_title="LATE"):
    """An N-ACTION from an SCU that releases its association as soon as it is answered."""
    from pynetdicom import AE
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(COMMIT)
    assoc = ae.associate("127.0.0.1", port, ae_title="MIRA")
    assert assoc.is_established
    req = request(stored)
    assert assoc.send_n_action(req, 1, COMMIT, COMMIT_INSTANCE)[0].Status == 0x0000
    assoc.release()
    return req


def commitment_row(folder, backend, req):
    if backend != "sqlite":
        return None
    db = sqlite3.connect(folder / "archive" / "index.db")
    try:
        return db.execute("SELECT report IS NULL, reported_at IS NOT NULL, attempts, reported_how"
                          " FROM storage_commitments WHERE transaction_uid = ?",
                          (req.TransactionUID,)).fetchone()
    finally:
        db.close()


def test_report_retried_until_the_peer_listens(lone):
    """The requestor leaves at once and its AE does not listen yet: the report is tried again
    on new associations, each attempt logged, and arrives once the AE listens."""
    folder, args, stored, backend = lone
    port = free_port()
    with MiraServer(folder / "archive", "--peer", f"LATE=127.0.0.1:{port}", "--commit-retry",
                    "1", archive_args=args) as srv:
        req = commit_and_leave(srv.port, stored)
        assert wait_for(lambda: srv.log_text().count("report attempt") >= 2, 10), srv.log_text()
        rcv = Receiver(port)
        try:
            assert wait_for(lambda: rcv.reports, 10), srv.log_text()
        finally:
            rcv.close()
        check_report(*rcv.reports[0], req, stored)
        assert len(rcv.reports) == 1
        log = srv.stop()
    assert "next attempt in 1s" in log
    assert f"storage commitment {req.TransactionUID} of LATE: report delivered, attempt" in log
    row = commitment_row(folder, backend, req)
    if row:
        assert row[:2] == (1, 1) and row[2] >= 2, row


def test_report_retried_after_a_restart(lone):
    """mira serve stops while an attempt waits on a peer that never answers (a clean shutdown
    does not wait for it); the next mira serve on the archive delivers the report."""
    folder, args, stored, backend = lone
    silent = socket.socket()
    silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    silent.settimeout(10)
    port = silent.getsockname()[1]
    peer = ["--peer", f"LATE=127.0.0.1:{port}", "--commit-retry", "1"]
    try:
        with MiraServer(folder / "archive", *peer, archive_args=args) as srv:
            req = commit_and_leave(srv.port, stored)
            conn, _ = silent.accept()  # an attempt, waiting for an A-ASSOCIATE-AC
            started = time.monotonic()
            log = srv.stop()
            assert time.monotonic() - started < 5, log
            conn.close()
    finally:
        silent.close()
    assert "report attempt 1" in log
    row = commitment_row(folder, backend, req)
    if row:
        assert row[:2] == (0, 0), row  # still to deliver
    rcv = Receiver(port)
    try:
        with MiraServer(folder / "archive", *peer, archive_args=args) as srv:
            assert wait_for(lambda: rcv.reports, 10), srv.log_text()
            log = srv.stop()
    finally:
        rcv.close()
    check_report(*rcv.reports[0], req, stored)
    assert len(rcv.reports) == 1
    assert "report delivered, attempt 2" in log


def test_report_over_tls(lone, tmp_path):
    """A requestor configured as a TLS peer (--peer AE=HOST:PORT,tls) gets its report on a new
    association over TLS: mira verifies its certificate and presents its own."""
    import ssl
    from test_dimse_tls import make_ca, make_cert
    folder, args, stored, backend = lone
    pki = tmp_path / "pki"
    pki.mkdir()
    ca = make_ca(pki, "commitca")
    spem, skey = make_cert(pki, "localhost", ca, "DNS:localhost,IP:127.0.0.1")
    cpem, ckey = make_cert(pki, "MIRA", ca)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca[0]))
    ctx.verify_mode = ssl.CERT_REQUIRED  # mira must present a certificate the CA signed
    ctx.load_cert_chain(str(spem), str(skey))
    port = free_port()
    rcv = Receiver(port, ssl_context=ctx)
    try:
        with MiraServer(folder / "archive", "--peer", f"LATE=127.0.0.1:{port},tls",
                        "--tls-port", "0", "--tls-cert", cpem, "--tls-key", ckey, "--tls-ca",
                        ca[0], "--commit-retry", "1", archive_args=args) as srv:
            req = commit_and_leave(srv.port, stored)
            assert wait_for(lambda: rcv.reports, 15), srv.log_text()
            log = srv.stop()
    finally:
        rcv.close()
    check_report(*rcv.reports[0], req, stored)
    assert len(rcv.reports) == 1
    assert f"storage commitment {req.TransactionUID} of LATE: report delivered" in log
