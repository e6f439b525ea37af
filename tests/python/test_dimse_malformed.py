"""Malformed and unexpected PDUs sent from raw sockets: each closes only its own association
(with an A-ABORT or A-ASSOCIATE-RJ, PS3.8 9.3 and the state table of 9.2), while an
association established by pynetdicom before them keeps working, and the server serves new
ones after them."""
import socket
import struct
import time

import pytest

from dimse_peers import (ABORT, RELEASE_RQ, VERIFICATION, MiraServer, associate_rq,
                         closed_after, echo_command, pdata, pynetdicom_quiet, read_pdu)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("malformed")
    with MiraServer(d / "archive", "--artim", "3", "--max-pdu", "16384") as srv:
        yield srv


@pytest.fixture(scope="module")
def bystander(server):
    """An association opened before the malformed ones, checked after each of them."""
    from pynetdicom import AE
    pynetdicom_quiet()
    ae = AE(ae_title="BYSTANDER")
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate("127.0.0.1", server.port, ae_title="MIRA")
    assert assoc.is_established
    yield assoc
    assoc.release()
    assert assoc.is_released


def connect(server):
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def established(server):
    s = connect(server)
    s.sendall(associate_rq())
    ac = read_pdu(s)
    assert ac[:1] == b"\x02", ac[:16]
    return s


def is_provider_abort(pdu, reason=None):
    """A-ABORT (PS3.8 table 9-26): type 07, source 2 (service provider), the reason."""
    return (len(pdu) == 10 and pdu[0] == 7 and pdu[8] == 2 and
            (reason is None or pdu[9] == reason))


def check_alive(server, bystander):
    assert bystander.send_c_echo().Status == 0x0000
    s = established(server)
    s.sendall(pdata(1, 3, echo_command(7)))
    rsp = read_pdu(s)
    assert rsp[:1] == b"\x04"
    s.sendall(RELEASE_RQ)
    assert read_pdu(s)[:1] == b"\x06"
    s.close()


CASES = {
    # an unknown PDU type before any association: A-ABORT reason 1, unrecognized PDU
    "unknown_type_first": (lambda srv: [bytes([9, 0, 0, 0, 0, 4, 0, 0, 0, 0])], 1),
    # a P-DATA-TF before the association: unexpected PDU
    "pdata_before_association": (lambda srv: [pdata(1, 3, echo_command())], 2),
    # an A-ASSOCIATE-RQ whose first item claims more bytes than the PDU has
    "item_length_past_end": (lambda srv: [_patched_rq(74 + 2, b"\xff\xff")], 6),
    # a PDU length larger than the bytes sent, then the sender waits: the ARTIM timer fires
    "pdu_length_too_long": (lambda srv: [associate_rq()[:2] + struct.pack(">I", 5000) +
                                         associate_rq()[6:]], None),
}


def _patched_rq(at, value):
    rq = bytearray(associate_rq())
    rq[at:at + len(value)] = value
    return bytes(rq)


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_before_association(server, bystander, case):
    make, reason = CASES[case]
    s = connect(server)
    for pdu in make(server):
        s.sendall(pdu)
    got = closed_after(s, 15)
    assert is_provider_abort(got, reason), got
    s.close()
    check_alive(server, bystander)


def test_truncated_rq_then_close(server, bystander):
    s = connect(server)
    s.sendall(associate_rq()[:40])
    s.close()
    time.sleep(0.2)
    check_alive(server, bystander)


def test_abort_in_the_middle_of_pdata(server, bystander):
    s = established(server)
    cmd = echo_command()
    s.sendall(pdata(1, 1, cmd[:10]))  # a command fragment, not the last
    s.sendall(ABORT)
    assert closed_after(s, 10) == b""
    s.close()
    check_alive(server, bystander)


def test_close_in_the_middle_of_a_pdu(server, bystander):
    s = established(server)
    s.sendall(pdata(1, 3, echo_command())[:12])
    s.close()
    check_alive(server, bystander)


ESTABLISHED_CASES = {
    # a PDV on a context that was never proposed
    "unknown_context": (lambda: pdata(9, 3, echo_command()), 6),
    # a PDV length that runs past its PDU
    "pdv_length_past_pdu": (lambda: pdata(1, 3, echo_command())[:6] + b"\x00\x00\x10\x00" +
                            pdata(1, 3, echo_command())[10:], 6),
    # a P-DATA-TF over the maximum length we announced (16384)
    "over_max_pdu": (lambda: pdata(1, 1, bytes(20000)), 6),
    # a data set fragment where a command is expected
    "data_before_command": (lambda: pdata(1, 2, b"\x08\x00\x16\x00"), 6),
    # an A-ASSOCIATE-RQ on an established association
    "second_rq": (lambda: associate_rq(), 2),
    # an unknown PDU type
    "unknown_type": (lambda: bytes([0x7F, 0, 0, 0, 0, 4, 0, 0, 0, 0]), 1),
    # a command set that is not one (elements outside group 0000)
    "garbage_command": (lambda: pdata(1, 3, b"\x08\x00\x16\x00\x02\x00\x00\x00ab"), 6),
    # an A-RELEASE-RP nobody asked for
    "release_rp": (lambda: bytes([6, 0, 0, 0, 0, 4, 0, 0, 0, 0]), 2),
    # a fixed-size PDU with the wrong length
    "release_rq_length_5": (lambda: bytes([5, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0]), 6),
}


@pytest.mark.parametrize("case", list(ESTABLISHED_CASES))
def test_malformed_on_an_association(server, bystander, case):
    make, reason = ESTABLISHED_CASES[case]
    s = established(server)
    s.sendall(make())
    got = closed_after(s, 15)
    assert is_provider_abort(got, reason), got
    s.close()
    check_alive(server, bystander)


def test_fragmented_command_one_byte_pdvs(server, bystander):
    """A command set split into 1-byte PDVs, two PDVs per PDU, is reassembled."""
    s = established(server)
    cmd = echo_command(3)
    pdus = b""
    for i in range(0, len(cmd), 2):
        part = cmd[i:i + 2]
        pdvs = b""
        for k, byte in enumerate(part):
            last = i + k == len(cmd) - 1
            pdvs += struct.pack(">IBB", 3, 1, 1 | (2 if last else 0)) + bytes([byte])
        pdus += struct.pack(">BBI", 4, 0, len(pdvs)) + pdvs
    s.sendall(pdus)
    rsp = read_pdu(s)
    assert rsp[:1] == b"\x04"
    # message ID being responded to (0000,0120) = 3, status (0000,0900) = 0
    assert b"\x00\x00\x20\x01\x02\x00\x00\x00\x03\x00" in rsp
    assert b"\x00\x00\x00\x09\x02\x00\x00\x00\x00\x00" in rsp
    s.sendall(RELEASE_RQ)
    assert read_pdu(s)[:1] == b"\x06"
    s.close()
    check_alive(server, bystander)


def test_silent_connection_is_closed_by_artim(server, bystander):
    s = connect(server)
    start = time.monotonic()
    got = closed_after(s, 15)
    assert 2 <= time.monotonic() - start < 12
    assert is_provider_abort(got) or got == b""
    s.close()
    check_alive(server, bystander)


def test_log_tells_each_outcome(server, bystander):
    s = established(server)
    s.sendall(ABORT)
    closed_after(s, 10)
    s.close()
    s = established(server)
    s.sendall(ESTABLISHED_CASES["second_rq"][0]())
    closed_after(s, 10)
    s.close()
    s = established(server)
    s.sendall(ESTABLISHED_CASES["pdv_length_past_pdu"][0]())
    closed_after(s, 10)
    s.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log = server.log_text()
        if all(w in log for w in ("aborted by the peer", "malformed P-DATA-TF", "unexpected A-ASSOCIATE-RQ")):
            break
        time.sleep(0.1)
    assert "aborted by the peer" in log
    assert "malformed P-DATA-TF" in log
    assert "unexpected A-ASSOCIATE-RQ" in log
