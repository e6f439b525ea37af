"""HL7 v2 over MLLP (HL7 v2.5 Appendix C) into `mira serve --hl7-port`: python-hl7's MLLP
client (hl7 0.4.5) sends the realistic messages of hl7_corpus.py and reads mira's original-mode
ACKs (2.9.2); malformed messages get AE or AR with an ERR segment and are kept for inspection;
repeated MSH-10s are acknowledged and kept once; many connections at once; TLS; `mira hl7 send`
against python-hl7's asyncio MLLP server; and killing the server at random points during a
stream of 10,000 messages loses no acknowledged message. Everything listens on 127.0.0.1."""
import asyncio
import json
import random
import signal
import socket
import ssl
import subprocess
import threading
import time

import hl7
import hl7.client
import hl7.mllp
import pytest

from conftest import mira_bin, run_mira
from dimse_peers import free_port
from hl7_corpus import LATIN1, MESSAGES

VT, FS, CR = b"\x0b", b"\x1c", b"\r"
ORU = MESSAGES["oru_r01_report_v25"]
assert "|ORU-3001|" in ORU  # the control ID the load tests replace


class Hl7Server:
    """`mira serve` with its MLLP listener on 127.0.0.1 (port: free, or the one given); .port
    the HL7 port, .dicom_port the DICOM one, .http_port the HTTP one (with http=True)."""

    def __init__(self, archive, *args, hl7_port=0, http=False):
        self.args = [mira_bin(), "serve", "--bind", "127.0.0.1", "--port", "0",
                     *(["--http-port", "0"] if http else ["--no-http"]),
                     "--hl7-port", str(hl7_port), *archive.args, *map(str, args)]
        self.log = open(str(archive.dir) + ".serve.log", "ab")
        self.proc = None
        self.port = None
        self.dicom_port = None
        self.http_port = None

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        lines = []

        def read():
            for _ in range(4):
                line = self.proc.stdout.readline()
                lines.append(line)
                if not line or line.startswith(b"hl7 listening"):
                    return

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(30)
        if not lines or not lines[-1].startswith(b"hl7 listening"):
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"mira serve did not start its HL7 server: {lines!r}")
        self.port = int(lines[-1].rsplit(b":", 1)[1])
        for line in lines:
            if line.startswith(b"listening on "):
                self.dicom_port = int(line.rsplit(b":", 1)[1])
            elif line.startswith(b"http listening on "):
                self.http_port = int(line.rsplit(b":", 1)[1])
        return self

    def kill(self):
        self.proc.kill()
        self.proc.wait(10)
        self.proc.stdout.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError("mira serve did not stop within 30 s of SIGTERM")
            assert rc == 0, f"mira serve exited {rc}"
        self.proc.stdout.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            self.stop()
        finally:
            self.log.close()


def frame(data):
    return VT + (data.encode() if isinstance(data, str) else data) + FS + CR


_left = {}  # bytes read past a frame, per socket (ACKs of messages sent together coalesce)


def read_frame(sock, timeout=20.0):
    """One MLLP frame's content from sock (b"" if the connection closed first)."""
    sock.settimeout(timeout)
    buf = _left.pop(sock, b"")
    while FS + CR not in buf:
        got = sock.recv(65536)
        if not got:
            return b""
        buf += got
    end = buf.index(FS + CR)
    if len(buf) > end + 2:
        _left[sock] = buf[end + 2:]
    start = buf.rindex(VT, 0, end)
    return buf[start + 1:end]


def ack_of(text):
    """(MSA-1, MSA-2, ERR-3, ERR-8) of an ACK, read by python-hl7."""
    m = hl7.parse(text.decode(errors="replace") if isinstance(text, bytes) else text)
    msa = m.segment("MSA")
    err = None
    try:
        err = m.segment("ERR")
    except KeyError:
        pass
    return (str(msa(1)), str(msa(2)), str(err(3)(1)(1)) if err else "",
            str(err(8)) if err else "")


def control_id(text):
    return str(hl7.parse(text).segment("MSH")(10))


def kept(archive, *args):
    out = run_mira("hl7", "messages", *archive.args, "--json", *args).stdout.decode()
    return [json.loads(line) for line in out.splitlines()]


def test_corpus_over_python_hl7_client_is_acknowledged_and_kept(archive):
    with Hl7Server(archive) as s:
        with hl7.client.MLLPClient("127.0.0.1", s.port) as c:
            for name, text in MESSAGES.items():
                raw = c.send_message(text)
                assert raw.startswith(VT) and raw.endswith(FS + CR), name
                ack = hl7.parse(raw[1:-2].decode())
                sent = hl7.parse(text)
                assert str(ack.segment("MSA")(1)) == "AA", (name, raw)
                # 2.9.2: MSA-2 is the original's MSH-10; sender and receiver swapped
                assert str(ack.segment("MSA")(2)) == str(sent.segment("MSH")(10)), name
                assert str(ack.segment("MSH")(5)) == str(sent.segment("MSH")(3)), name
                assert str(ack.segment("MSH")(6)) == str(sent.segment("MSH")(4)), name
                assert str(ack.segment("MSH")(9)(1)(1)) == "ACK", name
                # hl7's own builder answers the same way for the same message
                assert str(sent.create_ack().segment("MSH")(5)) == str(ack.segment("MSH")(5))
    rows = kept(archive)
    assert [r["control_id"] for r in rows] == [str(hl7.parse(t).segment("MSH")(10))
                                               for t in MESSAGES.values()]
    for r, text in zip(rows, MESSAGES.values()):
        assert r["ack_code"] == "AA" and r["error"] is None
        assert r["message"] == text  # the very text sent
        assert r["message_type"] == str(hl7.parse(text).segment("MSH")(9))


def test_malformed_messages_get_ae_or_ar_and_are_kept(archive):
    good_head = "MSH|^~\\&|RIS|GHH|MIRA|RAD|20261201120000||"
    cases = [
        # (bytes sent, MSA-1, ERR-3)
        (b"this is not HL7\r", "AR", "100"),
        ((good_head + "ADT^A01|BAD-V|P|2.1\rPID|1||1\r").encode(), "AR", "203"),
        ((good_head + "ADT^A01||P|2.5\rPID|1||1\r").encode(), "AR", "101"),
        ((good_head + "ADT^A04|NO-PID3|P|2.5\rPID|1||\r").encode(), "AE", "101"),
        ((good_head + "ORU^R01|NO-OBR|P|2.5\rPID|1||X^^^H^MR\r").encode(), "AE", "100"),
        ((good_head + "ADT^A40|NO-MRG|P|2.5\rPID|1||X\r").encode(), "AE", "100"),
        # bytes that are not UTF-8, and a NUL (an MSH without MSH-10): kept exactly
        (b"MSH|^~\\&|\xff\xfe\x00junk\r", "AR", "101"),
    ]
    with Hl7Server(archive) as s, socket.create_connection(("127.0.0.1", s.port), 10) as sock:
        for data, code, err3 in cases:
            sock.sendall(frame(data))
            a = ack_of(read_frame(sock))
            assert a[0] == code, (data, a)
            assert a[2] == err3, (data, a)
            assert a[3], f"no reason given for {data!r}"
        # the connection goes on after rejects: a good message is still accepted
        sock.sendall(frame(MESSAGES["adt_a01_v25"]))
        assert ack_of(read_frame(sock))[0] == "AA"
    rows = kept(archive)
    assert len(rows) == len(cases) + 1
    rejected = [r for r in rows if r["ack_code"] != "AA"]
    assert [r["ack_code"] for r in rejected] == [c[1] for c in cases]
    assert all(r["error"] for r in rejected)
    # the non-UTF-8 one, read back through the CLI's text output, byte for byte
    out = run_mira("hl7", "messages", *archive.args, "--code", "AR", "--text").stdout
    assert b"\xff\xfe\x00junk" in out
    assert [r["control_id"] for r in kept(archive, "--code", "AE")] == ["NO-PID3", "NO-OBR",
                                                                        "NO-MRG"]


def test_repeated_control_ids_are_acknowledged_and_kept_once(archive):
    text = MESSAGES["oru_r01_report_v25"]
    with Hl7Server(archive) as s:
        with hl7.client.MLLPClient("127.0.0.1", s.port) as c:
            acks = [ack_of(c.send_message(text)[1:-2]) for _ in range(3)]
        with hl7.client.MLLPClient("127.0.0.1", s.port) as c:  # and on a new connection
            acks.append(ack_of(c.send_message(text)[1:-2]))
    assert [a[0] for a in acks] == ["AA"] * 4
    rows = kept(archive)
    assert len(rows) == 1
    assert rows[0]["duplicates"] == 3


def test_frames_split_joined_and_surrounded_by_noise(archive):
    """Frames cut at every byte, several in one write, CR LF between them (a common sender
    habit): each message is acknowledged once, in order."""
    texts = [MESSAGES["adt_a04_v23"], MESSAGES["orm_o01_v23"], MESSAGES["omi_o23_v251"]]
    stream = b"\r\n".join(frame(t) for t in texts) + b"\r\n"
    with Hl7Server(archive) as s, socket.create_connection(("127.0.0.1", s.port), 10) as sock:
        for i in range(len(stream)):  # byte by byte
            sock.sendall(stream[i:i + 1])
        got = [ack_of(read_frame(sock)) for _ in texts]
        sock.sendall(stream)  # all at once: repeats now
        again = [ack_of(read_frame(sock)) for _ in texts]
    ids = [str(hl7.parse(t).segment("MSH")(10)) for t in texts]
    assert [g[1] for g in got] == ids and [g[0] for g in got] == ["AA"] * 3
    assert [g[1] for g in again] == ids and [g[0] for g in again] == ["AA"] * 3
    assert [r["duplicates"] for r in kept(archive)] == [1, 1, 1]


def test_oversize_message_gets_ar_and_the_connection_goes_on(archive):
    big = MESSAGES["oru_r01_report_v25"].replace("OBX|1|", "OBX|1|" + "x" * 20000 + "|", 1)
    with Hl7Server(archive, "--hl7-max-message", 8192) as s, \
            socket.create_connection(("127.0.0.1", s.port), 10) as sock:
        sock.sendall(frame(big))
        a = ack_of(read_frame(sock))
        assert a[0] == "AR" and a[1] == str(hl7.parse(big).segment("MSH")(10))
        sock.sendall(frame(MESSAGES["adt_a08_escapes_v24"]))
        assert ack_of(read_frame(sock))[0] == "AA"


def test_many_connections_at_once(archive):
    n_conn, per = 16, 40
    errors = []

    def client(k):
        try:
            with hl7.client.MLLPClient("127.0.0.1", port) as c:
                for i in range(per):
                    text = ORU.replace("|ORU-3001|", f"|C{k}-{i}|", 1)
                    a = ack_of(c.send_message(text)[1:-2])
                    if a[0] != "AA":
                        errors.append(a)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    with Hl7Server(archive) as s:
        port = s.port
        threads = [threading.Thread(target=client, args=(k,)) for k in range(n_conn)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert not errors, errors[:5]
    rows = kept(archive)
    assert len(rows) == n_conn * per
    assert len({r["control_id"] for r in rows}) == n_conn * per


def test_latin1_message_is_kept_byte_for_byte(archive):
    with Hl7Server(archive) as s, socket.create_connection(("127.0.0.1", s.port), 10) as sock:
        sock.sendall(frame(LATIN1))
        assert ack_of(read_frame(sock))[0] == "AA"
    out = run_mira("hl7", "messages", *archive.args, "--text").stdout
    assert LATIN1.replace(b"\r", b"\n") in out


def test_tls(tmp_path, archive):
    from test_dimse_tls import make_ca, make_cert
    ca = make_ca(tmp_path, "hl7ca")
    cert, key = make_cert(tmp_path, "localhost", ca, "DNS:localhost,IP:127.0.0.1")
    with Hl7Server(archive, "--hl7-tls", "--tls-cert", cert, "--tls-key", key,
                   "--tls-port", "0") as s:
        ctx = ssl.create_default_context(cafile=str(ca[0]))
        with socket.create_connection(("127.0.0.1", s.port), 10) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(frame(MESSAGES["adt_a01_v25"]))
            assert ack_of(read_frame(sock))[0] == "AA"
        # mira's own sender over TLS, its certificate checked against the CA
        f = tmp_path / "m.hl7"
        f.write_text(MESSAGES["orm_o01_v23"])
        r = run_mira("hl7", "send", "--tls-ca", ca[0], f"localhost:{s.port}", f, "--json")
        assert json.loads(r.stdout.decode().splitlines()[0])["ack_code"] == "AA"
        # a plain client on the TLS port gets no ACK (and nothing is kept)
        with socket.create_connection(("127.0.0.1", s.port), 10) as sock:
            sock.sendall(frame(MESSAGES["adt_a04_v23"]))
            sock.settimeout(20)
            try:
                data = sock.recv(100)
            except (ConnectionResetError, socket.timeout):
                data = b""
            assert VT not in data
        # a certificate from another CA is refused by the sender
        other = make_ca(tmp_path, "otherca")
        r = run_mira("hl7", "send", "--tls-ca", other[0], f"localhost:{s.port}", f, check=False)
        assert r.returncode == 1
    assert [r["control_id"] for r in kept(archive)] == [
        control_id(MESSAGES["adt_a01_v25"]), control_id(MESSAGES["orm_o01_v23"])]


class PeerServer:
    """python-hl7's asyncio MLLP server on a thread: it records each message and answers with
    python-hl7's own create_ack (code given per control ID, else AA)."""

    def __init__(self, codes=None):
        self.codes = codes or {}
        self.got = []
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()

    async def handle(self, reader, writer):
        try:
            while not reader.at_eof():
                m = await reader.readmessage()
                self.got.append(str(m))
                cid = str(m.segment("MSH")(10))
                writer.writemessage(m.create_ack(self.codes.get(cid, "AA")))
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    def run(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            hl7.mllp.start_hl7_server(self.handle, "127.0.0.1", self.port, encoding="utf-8"))
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self):
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        assert self.ready.wait(20)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(20)


def test_mira_hl7_send_to_python_hl7_server(tmp_path):
    from hl7_corpus import BATCH
    one = tmp_path / "oru.hl7"
    one.write_text(MESSAGES["oru_r01_report_v25"])
    batch = tmp_path / "batch.hl7"
    batch.write_text(BATCH)
    with PeerServer() as peer:
        r = run_mira("hl7", "send", f"127.0.0.1:{peer.port}", one, batch, "--json")
        lines = [json.loads(x) for x in r.stdout.decode().splitlines()]
    order = ("oru_r01_report_v25", "orm_o01_v23", "adt_a04_v23", "oru_r01_report_v25")
    assert [x["ack_code"] for x in lines] == ["AA"] * 4
    assert [x["control_id"] for x in lines] == [control_id(MESSAGES[k]) for k in order]
    # the peer received each message exactly as it is in the files
    assert peer.got[0].replace("\r", "") == MESSAGES["oru_r01_report_v25"].replace("\r", "")
    assert len(peer.got) == 4
    # an AE from the peer: reported, exit status 1
    with PeerServer({control_id(MESSAGES["oru_r01_report_v25"]): "AE"}) as peer:
        r = run_mira("hl7", "send", f"127.0.0.1:{peer.port}", one, check=False)
    assert r.returncode == 1
    assert "\tAE" in r.stdout.decode()
    # nobody listening: exit status 1 with a message
    r = run_mira("hl7", "send", f"127.0.0.1:{free_port()}", one, check=False)
    assert r.returncode == 1 and b"mira hl7 send" in r.stderr


def test_kill_at_random_points_loses_no_acknowledged_message(tmp_path, archive):
    """10,000 ORU messages over 4 connections; the server is killed (SIGKILL) at random
    moments and started again on the same port; each client resends what was not
    acknowledged. Every acknowledged message must be in the archive, each exactly once."""
    if archive.backend == "postgresql":
        pytest.skip("the same code path as SQLite but slower: the SQLite run is the proof")
    total, n_conn, kills = 10000, 4, 6
    rng = random.Random(20261203)
    port = free_port()
    acked = [set() for _ in range(n_conn)]
    done = threading.Event()
    failures = []

    def client(k):
        mine = [f"K{k}-{i}" for i in range(k, total, n_conn)]
        i = 0
        deadline = time.monotonic() + 600
        sock = None
        while i < len(mine) and time.monotonic() < deadline:
            if sock is None:
                try:
                    sock = socket.create_connection(("127.0.0.1", port), 2)
                except OSError:
                    time.sleep(0.05)
                    continue
            text = ORU.replace("|ORU-3001|", f"|{mine[i]}|", 1)
            try:
                sock.sendall(frame(text))
                data = read_frame(sock, timeout=30)
            except OSError:
                data = b""
            if not data:
                sock.close()
                sock = None
                continue  # not acknowledged: send it again
            a = ack_of(data)
            if a[0] != "AA" or a[1] != mine[i]:
                failures.append(a)
                break
            acked[k].add(mine[i])
            i += 1
        if sock:
            sock.close()
        if i < len(mine):
            failures.append(f"client {k} stopped at {i} of {len(mine)}")

    s = Hl7Server(archive, hl7_port=port).start()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(n_conn)]
    for t in threads:
        t.start()
    killed = 0
    try:
        while killed < kills and any(t.is_alive() for t in threads):
            time.sleep(rng.uniform(0.3, 1.5))
            s.kill()
            killed += 1
            s = Hl7Server(archive, hl7_port=port).start()
        for t in threads:
            t.join(600)
    finally:
        done.set()
        s.stop()
        s.log.close()
    assert not failures, failures[:5]
    assert killed == kills
    rows = kept(archive)
    stored = [r["control_id"] for r in rows if r["ack_code"] == "AA"]
    assert len(stored) == len(set(stored)), "an accepted message was kept twice"
    every = set().union(*acked)
    assert len(every) == total
    missing = every - set(stored)
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:5]}"
