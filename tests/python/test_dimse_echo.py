"""Verification (C-ECHO) with real peers: DCMTK's echoscu against `mira serve`, `mira echo`
against DCMTK's storescp and pynetdicom's SCP; association negotiation as the peers see it."""
import re
import subprocess

import pytest

from conftest import run_mira
from dimse_peers import (EXPLICIT_LE, IMPLICIT_LE, VERIFICATION, MiraServer, Storescp,
                         pynetdicom_quiet)


def echoscu(port, *args, aec="MIRA", aet="ECHOSCU"):
    return subprocess.run(["echoscu", "-v", "-to", "20", "-aet", aet, "-aec", aec, *args,
                           "127.0.0.1", str(port)], capture_output=True, text=True, timeout=60)


def test_echoscu_against_mira_serve(tmp_path):
    with MiraServer(tmp_path / "archive") as srv:
        for extra in ([], ["-pdu", "4096"]):
            p = echoscu(srv.port, *extra)
            assert p.returncode == 0, p.stderr
            assert "Received Echo Response (Success)" in p.stderr
        # several echoes on one association (-r repeats)
        p = echoscu(srv.port, "--repeat", "5")
        assert p.returncode == 0 and p.stderr.count("Received Echo Response (Success)") == 5
        log = srv.stop()
    # every association logged: peer, AE titles, contexts, outcome
    assert re.search(r'association \d+ from 127\.0\.0\.1:\d+: calling AE "ECHOSCU", called AE '
                     r'"MIRA"', log)
    assert "Verification SOP Class / Implicit VR Little Endian" in log
    assert log.count("released after") == 3


def _ipv6_loopback():
    import socket
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _associate_raw(family, host, port):
    """The first byte of the answer to an A-ASSOCIATE-RQ (pynetdicom's encoder) sent to
    host:port over a plain socket of family: 2 for A-ASSOCIATE-AC."""
    import socket
    from pynetdicom.pdu import A_ASSOCIATE_RQ
    from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification
    from pynetdicom.presentation import build_context
    prim = A_ASSOCIATE()
    prim.application_context_name = "1.2.840.10008.3.1.1.1"
    prim.calling_ae_title = "RAWSCU"
    prim.called_ae_title = "MIRA"
    cx = build_context(VERIFICATION, [IMPLICIT_LE])
    cx.context_id = 1
    prim.presentation_context_definition_list = [cx]
    ml = MaximumLengthNotification()
    ml.maximum_length_received = 16384
    from pynetdicom.pdu_primitives import ImplementationClassUIDNotification
    ic = ImplementationClassUIDNotification()
    ic.implementation_class_uid = "1.2.826.0.1.3680043.9.3811.2.0.2"
    prim.user_information = [ml, ic]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(prim)
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect((host, port))
        s.sendall(pdu.encode())
        first = s.recv(1)
        s.sendall(bytes([7, 0, 0, 0, 0, 4, 0, 0, 0, 0]))  # A-ABORT: done with it
        return first[0] if first else None


def test_wildcard_listen_takes_ipv4_and_ipv6(tmp_path):
    """Without --bind, mira serve listens on every address of both families (one dual-stack
    socket); IPv4 peers are logged and matched by their IPv4 address, not a mapped one."""
    import socket
    if not _ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    with MiraServer(tmp_path / "archive", "--bind", "") as srv:
        assert _associate_raw(socket.AF_INET, "127.0.0.1", srv.port) == 2
        assert _associate_raw(socket.AF_INET6, "::1", srv.port) == 2
        p = echoscu(srv.port)  # a real peer, over IPv4
        assert p.returncode == 0, p.stderr
        log = srv.stop()
    assert re.search(r"association \d+ from 127\.0\.0\.1:\d+:", log), log
    assert re.search(r"association \d+ from ::1:\d+:", log), log
    assert "::ffff:" not in log


def test_wrong_called_ae_and_unknown_calling_ae_are_rejected(tmp_path):
    with MiraServer(tmp_path / "archive", "--allow", "ECHOSCU") as srv:
        p = echoscu(srv.port, aec="SOMEONE")
        assert p.returncode != 0
        # DCMTK names the reason from the A-ASSOCIATE-RJ (PS3.8 table 9-21)
        assert "Called AE Title Not Recognized" in p.stderr, p.stderr
        p = echoscu(srv.port, aet="STRANGER")
        assert "Calling AE Title Not Recognized" in p.stderr, p.stderr
        assert echoscu(srv.port).returncode == 0
        log = srv.stop()
    assert log.count("rejected after") == 2


def test_mira_echo_against_storescp(tmp_path):
    with Storescp(tmp_path / "scp") as scp:
        p = run_mira("echo", "127.0.0.1", scp.port, "--call", "STORESCP", "--aet", "MIRASCU")
        assert "status 0x0000 (success)" in p.stdout.decode()


def test_mira_echo_against_pynetdicom(tmp_path):
    from pynetdicom import AE, evt
    pynetdicom_quiet()
    seen = []

    def on_echo(event):
        seen.append((event.assoc.requestor.ae_title, event.assoc.acceptor.ae_title,
                     event.context.transfer_syntax))
        return 0x0000

    ae = AE(ae_title="PYNETSCP")
    ae.add_supported_context(VERIFICATION, [EXPLICIT_LE, IMPLICIT_LE])
    server = ae.start_server(("127.0.0.1", 0), block=False,
                             evt_handlers=[(evt.EVT_C_ECHO, on_echo)])
    try:
        port = server.server_address[1]
        p = run_mira("echo", "127.0.0.1", port, "--call", "PYNETSCP", "--aet", "MIRASCU")
        assert "status 0x0000 (success)" in p.stdout.decode()
        assert len(seen) == 1
        calling, called, ts = seen[0]
        assert calling.strip() in ("MIRASCU", b"MIRASCU")
        assert str(ts) in (EXPLICIT_LE, IMPLICIT_LE)
    finally:
        server.shutdown()


def test_mira_echo_to_nobody_fails(tmp_path):
    from dimse_peers import free_port
    p = run_mira("echo", "127.0.0.1", free_port(), "--timeout", "5", check=False)
    assert p.returncode == 1
    assert b"connecting" in p.stderr


def test_pynetdicom_negotiation_against_mira(tmp_path):
    """pynetdicom proposes roles, extended negotiation and a user identity; it reads our AC."""
    from pynetdicom import AE, build_role, evt
    from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation, UserIdentityNegotiation
    pynetdicom_quiet()
    ct = "1.2.840.10008.5.1.4.1.1.2"
    with MiraServer(tmp_path / "archive") as srv:
        ae = AE(ae_title="PYNETSCU")
        ae.add_requested_context(VERIFICATION)
        ae.add_requested_context(ct, ["1.2.840.10008.1.2.4.999", EXPLICIT_LE])
        ae.add_requested_context("1.2.3.4.5.6", [EXPLICIT_LE])  # no such SOP class
        ae.add_requested_context(ct, ["1.2.840.10008.1.2.4.999"])  # no such syntax
        ext = SOPClassExtendedNegotiation()
        ext.sop_class_uid = ct
        ext.service_class_application_information = b"\x02\x00\x00\x00\x00\x00"
        mr = SOPClassExtendedNegotiation()  # MR Image Storage: no context proposes it
        mr.sop_class_uid = "1.2.840.10008.5.1.4.1.1.4"
        mr.service_class_application_information = b"\x02\x00\x00\x00\x00\x00"
        seen = {}

        def on_acse(event):
            p = event.primitive
            if type(p).__name__ == "A_ASSOCIATE" and p.result is not None:
                seen["ext"] = [(i.sop_class_uid, i.service_class_application_information)
                               for i in (p.user_information or [])
                               if type(i).__name__ == "SOPClassExtendedNegotiation"]
        ui = UserIdentityNegotiation()
        ui.user_identity_type = 2
        ui.primary_field = b"alice"
        ui.secondary_field = b"secret"
        ui.positive_response_requested = True
        assoc = ae.associate("127.0.0.1", srv.port, ae_title="MIRA",
                             ext_neg=[ext, mr, ui, build_role(ct, scu_role=True, scp_role=True)],
                             max_pdu=8192, evt_handlers=[(evt.EVT_ACSE_RECV, on_acse)])
        assert assoc.is_established
        # storage extended negotiation (PS3.4 B.3.1) answered for CT, whose context was
        # accepted: level 2, no signatures, no coercion; not for MR, which no context carries
        assert seen["ext"] == [(ct, b"\x02\x00\x00\x00\x00\x00")], seen
        try:
            results = {c.context_id: (c.abstract_syntax, c.result, c.transfer_syntax)
                       for c in assoc.accepted_contexts + assoc.rejected_contexts}
            assert results[1][1] == 0x00
            assert results[3][1] == 0x00 and results[3][2][0] == EXPLICIT_LE
            assert results[5][1] == 0x03  # abstract syntax not supported (PS3.8 table 9-18)
            assert results[7][1] == 0x04  # transfer syntaxes not supported
            # the acceptor's maximum, as pynetdicom read it
            assert assoc.acceptor.maximum_length == 262144
            ctx = [c for c in assoc.accepted_contexts if c.context_id == 3][0]
            assert ctx.as_scu is True  # we take the SCP role only: the requestor is the SCU
            assert assoc.send_c_echo().Status == 0x0000
        finally:
            assoc.release()
        log = srv.stop()
    assert 'user "alice"' in log
    assert "accepted 2 of 4 presentation contexts" in log


@pytest.mark.parametrize("max_pdu", [4096, 16384])
def test_small_pdus_from_pynetdicom(tmp_path, max_pdu):
    """Our responses honour the requestor's maximum PDU length (pynetdicom checks it)."""
    from pynetdicom import AE
    pynetdicom_quiet()
    with MiraServer(tmp_path / "archive") as srv:
        ae = AE(ae_title="PYNETSCU")
        ae.add_requested_context(VERIFICATION)
        assoc = ae.associate("127.0.0.1", srv.port, ae_title="MIRA", max_pdu=max_pdu)
        assert assoc.is_established
        for _ in range(3):
            rsp = assoc.send_c_echo()
            # (seen once under load: no response within pynetdicom's 30 s; the log says why)
            assert "Status" in rsp and rsp.Status == 0, srv.log_text()[-3000:]
        assoc.release()
        assert assoc.is_released


def test_association_limit_and_idle_timeout(tmp_path):
    from pynetdicom import AE
    pynetdicom_quiet()
    with MiraServer(tmp_path / "archive", "--max-associations", "2", "--idle", "2") as srv:
        ae = AE(ae_title="HOLDER")
        ae.add_requested_context(VERIFICATION)
        held = [ae.associate("127.0.0.1", srv.port, ae_title="MIRA") for _ in range(2)]
        assert all(a.is_established for a in held)
        p = echoscu(srv.port)
        assert p.returncode != 0
        assert "Local Limit Exceeded" in p.stderr, p.stderr  # transient, provider (PS3.8 9-21)
        # the idle associations are aborted after 2 s; then there is room again
        import time
        deadline = time.monotonic() + 15
        while any(a.is_established for a in held) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(a.is_aborted for a in held)
        assert echoscu(srv.port).returncode == 0
        log = srv.stop()
    assert "timed out waiting for the peer" in log


def test_config_file_and_transfer_syntax_preference(tmp_path, monkeypatch):
    """The "dimse" object of mira.json, and --accept-ts overriding its syntaxes."""
    import json
    from pynetdicom import AE
    pynetdicom_quiet()
    cfg = tmp_path / "mira.json"
    cfg.write_text(json.dumps({"archive": str(tmp_path / "archive"),
                               "dimse": {"ae_title": "CFGAE",
                                         "transfer_syntaxes": ["explicit", "implicit"]}}))
    monkeypatch.setenv("MIRA_CONFIG", str(cfg))
    ct = "1.2.840.10008.5.1.4.1.1.2"

    def negotiated(port, called):
        ae = AE(ae_title="PYNETSCU")
        ae.add_requested_context(ct, [IMPLICIT_LE, EXPLICIT_LE])
        ae.add_requested_context(VERIFICATION, ["1.2.840.10008.1.2.2"])  # big endian only
        assoc = ae.associate("127.0.0.1", port, ae_title=called)
        assert assoc.is_established
        got = {c.abstract_syntax: c.transfer_syntax[0] for c in assoc.accepted_contexts}
        assoc.release()
        return got

    with MiraServer(tmp_path / "archive", archive_args=[]) as srv:
        assert echoscu(srv.port, aec="MIRA").returncode != 0  # the config's AE title applies
        assert negotiated(srv.port, "CFGAE") == {ct: EXPLICIT_LE}  # our order, not theirs
    with MiraServer(tmp_path / "archive", "--accept-ts", "implicit,big", archive_args=[]) as srv:
        assert negotiated(srv.port, "CFGAE") == {ct: IMPLICIT_LE,
                                                 VERIFICATION: "1.2.840.10008.1.2.2"}
    monkeypatch.delenv("MIRA_CONFIG")
    with MiraServer(tmp_path / "archive2") as srv:  # no configuration: the requestor's order
        assert negotiated(srv.port, "MIRA") == {ct: IMPLICIT_LE,
                                                VERIFICATION: "1.2.840.10008.1.2.2"}
