"""Access control of `mira serve`: calling AE titles with their permissions and addresses from
mira.json (DCMTK's echoscu, storescu and findscu with -aet), the presentation contexts refused
per service (pynetdicom reads the results), and user identity negotiation checked against
hashed passwords (pynetdicom)."""
import json
import subprocess

import pytest

from conftest import TEST_FILES, mira_bin
from dimse_peers import VERIFICATION, MiraServer, pynetdicom_quiet

CT = "1.2.840.10008.5.1.4.1.1.2"
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
CT_FILE = TEST_FILES / "CT_small.dcm"


def configure(tmp_path, monkeypatch, dimse):
    cfg = tmp_path / "mira.json"
    cfg.write_text(json.dumps({"dimse": dimse}))
    monkeypatch.setenv("MIRA_CONFIG", str(cfg))


def dcmtk(tool, port, aet, *args):
    return subprocess.run([tool, "-v", "-to", "10", "-aet", aet, "-aec", "MIRA", *args,
                           "127.0.0.1", str(port), *([str(CT_FILE)] if tool == "storescu" else [])],
                          capture_output=True, text=True, timeout=60)


def findscu(port, aet):
    return dcmtk("findscu", port, aet, "-S", "-k", "QueryRetrieveLevel=STUDY", "-k",
                 "StudyInstanceUID")


ACCEPT = {
    "MODALITY1": ["store"],
    "WORKSTATION": {"permissions": ["echo", "store", "find", "move", "get"],
                    "hosts": ["127.0.0.1"]},
    "FARAWAY": {"permissions": ["all"], "hosts": ["192.0.2.7"]},
    "*": ["echo"],
}


def test_calling_ae_titles_and_their_permissions(tmp_path, monkeypatch):
    configure(tmp_path, monkeypatch, {"accept": ACCEPT})
    with MiraServer(tmp_path / "archive") as srv:
        assert dcmtk("echoscu", srv.port, "ANYONE").returncode == 0  # "*" may echo
        p = dcmtk("storescu", srv.port, "ANYONE")  # ... and nothing else
        assert p.returncode != 0 and "Store Response" not in p.stderr, p.stderr
        p = dcmtk("echoscu", srv.port, "MODALITY1")  # a named AE does not inherit "*"
        assert p.returncode != 0 and "No Acceptable Presentation Contexts" in p.stderr, p.stderr
        p = dcmtk("storescu", srv.port, "MODALITY1")
        assert "Received Store Response (Success)" in p.stderr, p.stderr
        p = findscu(srv.port, "MODALITY1")
        assert p.returncode != 0 and "No Acceptable Presentation Contexts" in p.stderr, p.stderr
        p = findscu(srv.port, "WORKSTATION")
        assert p.returncode == 0 and "Received Final Find Response (Success)" in p.stderr, p.stderr
        assert dcmtk("echoscu", srv.port, "WORKSTATION").returncode == 0
        # an AE title known only from another address
        p = dcmtk("echoscu", srv.port, "FARAWAY")
        assert "Calling AE Title Not Recognized" in p.stderr, p.stderr
        log = srv.stop()
    assert 'calling AE "ANYONE" may not store' in log
    assert 'calling AE "MODALITY1" may not echo' in log
    assert 'calling AE "MODALITY1" may not find' in log
    assert 'calling AE title "FARAWAY" is not accepted from 127.0.0.1' in log
    assert log.count("rejected after 0 messages") == 1


def test_context_results_seen_by_pynetdicom(tmp_path, monkeypatch):
    from pynetdicom import AE
    pynetdicom_quiet()
    configure(tmp_path, monkeypatch, {"accept": ACCEPT})
    with MiraServer(tmp_path / "archive") as srv:
        ae = AE(ae_title="MODALITY1")
        for uid in (VERIFICATION, CT, STUDY_FIND):
            ae.add_requested_context(uid)
        assoc = ae.associate("127.0.0.1", srv.port, ae_title="MIRA")
        assert assoc.is_established
        results = {c.abstract_syntax: c.result
                   for c in assoc.accepted_contexts + assoc.rejected_contexts}
        assoc.release()
    # PS3.8 table 9-18: 0 acceptance, 1 user rejection
    assert results == {VERIFICATION: 1, CT: 0, STUDY_FIND: 1}


def test_empty_accept_rejects_everyone(tmp_path, monkeypatch):
    configure(tmp_path, monkeypatch, {"accept": {}})
    with MiraServer(tmp_path / "archive") as srv:
        p = dcmtk("echoscu", srv.port, "ANYONE")
        assert "Calling AE Title Not Recognized" in p.stderr, p.stderr


def test_bad_permission_names_stop_the_server(tmp_path, monkeypatch):
    configure(tmp_path, monkeypatch, {"accept": {"X": ["stroe"]}})
    p = subprocess.run([mira_bin(), "serve", "--archive", str(tmp_path / "a"), "--port", "0"],
                       capture_output=True, timeout=30)
    assert p.returncode != 0 and b"dimse.accept.X: permissions are" in p.stderr, p.stderr


@pytest.fixture(scope="module")
def alice_hash():
    p = subprocess.run([mira_bin(), "serve", "--hash-password"], input=b"s3cret\n",
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    h = p.stdout.decode().strip()
    assert h.startswith("pbkdf2-sha256$100000$") and "s3cret" not in h
    # salted: the same password hashes differently
    again = subprocess.run([mira_bin(), "serve", "--hash-password"], input=b"s3cret\n",
                           capture_output=True, timeout=30).stdout.decode().strip()
    assert again != h
    return h


def associate_as(port, user, password=None, contexts=(VERIFICATION,), ask_response=True):
    """(established, AC or RJ fields, the server's identity response or None)."""
    from pynetdicom import AE, evt
    from pynetdicom.pdu_primitives import UserIdentityNegotiation
    seen = {}

    def record(p):
        if type(p).__name__ == "A_ASSOCIATE" and p.result is not None:
            seen["rj"] = (p.result, p.result_source, p.diagnostic)
            seen["response"] = [i.server_response for i in (p.user_information or [])
                                if type(i).__name__ == "UserIdentityNegotiation"]

    def on_acse(event):
        record(event.primitive)

    ae = AE(ae_title="PYNETSCU")
    for c in contexts:
        ae.add_requested_context(c)
    ext = []
    if user is not None:
        ui = UserIdentityNegotiation()
        ui.user_identity_type = 2 if password is not None else 1
        ui.primary_field = user.encode()
        if password is not None:
            ui.secondary_field = password.encode()
        ui.positive_response_requested = ask_response
        ext.append(ui)
    assoc = ae.associate("127.0.0.1", port, ae_title="MIRA", ext_neg=ext,
                         evt_handlers=[(evt.EVT_ACSE_RECV, on_acse)])
    accepted = {c.abstract_syntax for c in assoc.accepted_contexts}
    ok = assoc.is_established
    if ok:
        assoc.release()
    elif "rj" not in seen:
        # pynetdicom 2.0.2 races with a fast peer: when its DUL thread has read the
        # A-ASSOCIATE-RJ and closed the connection before the requesting thread checks that
        # it is connected, that thread gives up without taking the primitive from its queue
        while not assoc.dul.to_user_queue.empty():
            record(assoc.dul.to_user_queue.get())
    return ok, seen, accepted


def test_user_identity(tmp_path, monkeypatch, alice_hash):
    pynetdicom_quiet()
    configure(tmp_path, monkeypatch, {
        "accept": {"*": ["all"]},
        "users": {"alice": {"password": alice_hash, "permissions": ["echo", "find"]},
                  "bob": {}},
        "require_user": True})
    with MiraServer(tmp_path / "archive") as srv:
        ok, seen, accepted = associate_as(srv.port, "alice", "s3cret",
                                          contexts=(VERIFICATION, CT, STUDY_FIND))
        assert ok and accepted == {VERIFICATION, STUDY_FIND}  # alice may not store
        assert seen["response"] == [b""]  # the positive response, empty for type 2
        # rejected-permanent, by the service user, no reason given (PS3.8 table 9-21)
        ok, seen, _ = associate_as(srv.port, "alice", "wrong")
        assert not ok and seen["rj"] == (1, 1, 1)
        ok, seen, _ = associate_as(srv.port, "alice")  # a user name alone is not enough
        assert not ok and seen["rj"] == (1, 1, 1)
        assert associate_as(srv.port, "bob")[0]  # no password configured: the name suffices
        assert not associate_as(srv.port, "mallory", "x")[0]
        assert not associate_as(srv.port, None)[0]  # required
        p = dcmtk("echoscu", srv.port, "ECHOSCU")  # DCMTK sends no identity unless told
        assert "Association Rejected" in p.stderr, p.stderr
        log = srv.stop()
    assert 'user "alice": wrong passcode' in log and 'user "alice": no passcode' in log
    assert 'unknown user "mallory"' in log and "no user identity, and one is required" in log
    assert "s3cret" not in log and "wrong\"" not in log
    assert 'calling AE "PYNETSCU" may not store' in log


def test_user_identity_optional(tmp_path, monkeypatch, alice_hash):
    pynetdicom_quiet()
    configure(tmp_path, monkeypatch, {"users": {"alice": {"password": alice_hash}}})
    with MiraServer(tmp_path / "archive") as srv:
        assert associate_as(srv.port, None)[0]  # none sent, none required
        assert associate_as(srv.port, "alice", "s3cret")[0]
        assert not associate_as(srv.port, "alice", "nope")[0]  # one sent must be right
        p = dcmtk("storescu", srv.port, "STORESCU", "--user", "alice", "--password", "s3cret")
        assert "Received Store Response (Success)" in p.stderr, p.stderr
        p = dcmtk("storescu", srv.port, "STORESCU", "--user", "alice", "--password", "x")
        assert "Association Rejected" in p.stderr, p.stderr
