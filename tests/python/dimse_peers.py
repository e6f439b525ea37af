"""Helpers of the DIMSE tests: a running `mira serve`, DCMTK and pynetdicom peers, raw PDUs.

Every server listens on 127.0.0.1 only, on a free port; every wait is bounded in time.
"""
import contextlib
import os
import pathlib
import signal
import socket
import struct
import subprocess
import threading
import time

from conftest import mira_bin

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class MiraServer:
    """`mira serve` on 127.0.0.1 and a free port (--port 0, the port read from its stdout).

    Without http=True there is no HTTP server (--no-http: its default port is fixed, and
    servers of tests running at once would contend for it); with it, .http_port is the HTTP
    server's free port (--http-port 0), and .token a bearer token of a clinician ("tester",
    made with `mira user` on the archive; web_accounts.bearer(token) is its header).
    """

    def __init__(self, archive_dir, *args, archive_args=None, http=False):
        self.args = [mira_bin(), "serve", "--bind", "127.0.0.1", "--port", "0",
                     *(["--http-port", "0"] if http else ["--no-http"]),
                     *(archive_args or ["--archive", str(archive_dir)]), *map(str, args)]
        self.log = pathlib.Path(str(archive_dir) + ".serve.log")
        self.proc = None
        self.port = None
        self.http = http
        self.http_port = None
        self.token = None
        self._archive_args = list(archive_args or ["--archive", str(archive_dir)])

    def __enter__(self):
        self.log.parent.mkdir(parents=True, exist_ok=True)
        if self.http:  # (mira user add makes the archive if there is none yet)
            from web_accounts import make_token
            self.token = make_token(self._archive_args)
        self._err = open(self.log, "wb")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self._err,
                                     stdin=subprocess.DEVNULL)
        line = [b""]

        def read():
            line[0] = self.proc.stdout.readline()

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(30)
        if not line[0].startswith(b"listening on "):
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"mira serve did not start: {line[0]!r} {self.log.read_text()}")
        self.port = int(line[0].rsplit(b":", 1)[1])
        if self.http:  # after "listening with TLS on ..." when there is DICOM TLS
            for _ in range(3):
                t = threading.Thread(target=read, daemon=True)
                t.start()
                t.join(30)
                if not line[0].startswith(b"listening with TLS on "):
                    break
            if not line[0].startswith((b"http listening on ", b"https listening on ")):
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(f"no HTTP server: {line[0]!r} {self.log.read_text()}")
            self.http_port = int(line[0].rsplit(b":", 1)[1])
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError("mira serve did not stop within 30 s of SIGTERM")
            assert rc == 0, f"mira serve exited {rc}: {self.log.read_text()}"
        return self.log_text()

    def log_text(self):
        self._err.flush()
        return self.log.read_text(errors="replace")

    def __exit__(self, *exc):
        try:
            self.stop()
        finally:
            self._err.close()
            if self.proc.stdout:
                self.proc.stdout.close()


class Storescp:
    """DCMTK's storescp on a free port, writing what it receives into a folder."""

    def __init__(self, out_dir, aet="STORESCP", extra=()):
        self.out = pathlib.Path(out_dir)
        self.aet = aet
        self.extra = list(extra)

    def __enter__(self):
        self.out.mkdir(parents=True, exist_ok=True)
        for _ in range(5):  # the port may be taken between free_port() and storescp's bind
            self.port = free_port()
            self.proc = subprocess.Popen(
                ["storescp", "-aet", self.aet, "-od", str(self.out), *self.extra, str(self.port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            try:
                wait_for_port(self.port, 10)
                return self
            except AssertionError:
                self.proc.kill()
                self.proc.wait(10)
        raise AssertionError("storescp did not start")

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


# ------------------------------------------------------------------ raw PDUs (PS3.8 9.3)

def _item(t, payload):
    return struct.pack(">BBH", t, 0, len(payload)) + payload


def associate_rq(called=b"MIRA", calling=b"RAWSCU", contexts=((1, VERIFICATION, (IMPLICIT_LE,)),),
                 max_pdu=16384):
    """An A-ASSOCIATE-RQ laid out from PS3.8 tables 9-11 to 9-14 and PS3.7 D.3.3."""
    body = struct.pack(">HH", 1, 0) + called.ljust(16) + calling.ljust(16) + bytes(32)
    body += _item(0x10, b"1.2.840.10008.3.1.1.1")
    for cid, sop, tss in contexts:
        sub = _item(0x30, sop.encode()) + b"".join(_item(0x40, t.encode()) for t in tss)
        body += _item(0x20, bytes([cid, 0, 0, 0]) + sub)
    ui = _item(0x51, struct.pack(">I", max_pdu)) + _item(0x52, b"1.2.3.4")
    body += _item(0x50, ui)
    return struct.pack(">BBI", 1, 0, len(body)) + body


def pdata(pctx, mch, data):
    """A P-DATA-TF with one PDV (message control header mch: bit 0 command, bit 1 last)."""
    pdv = struct.pack(">IBB", len(data) + 2, pctx, mch) + data
    return struct.pack(">BBI", 4, 0, len(pdv)) + pdv


def _el(g, e, value):
    if len(value) % 2:
        value += b"\0"
    return struct.pack("<HHI", g, e, len(value)) + value


def echo_command(message_id=1):
    """A C-ECHO-RQ command set in Implicit VR Little Endian (PS3.7 9.3.5)."""
    rest = (_el(0, 2, VERIFICATION.encode()) + _el(0, 0x100, struct.pack("<H", 0x30)) +
            _el(0, 0x110, struct.pack("<H", message_id)) +
            _el(0, 0x800, struct.pack("<H", 0x0101)))
    return _el(0, 0, struct.pack("<I", len(rest))) + rest


def store_command(sop_class, sop_instance, message_id=1):
    """A C-STORE-RQ command set (PS3.7 9.3.1.1), a data set following."""
    rest = (_el(0, 2, sop_class.encode()) + _el(0, 0x100, struct.pack("<H", 1)) +
            _el(0, 0x110, struct.pack("<H", message_id)) + _el(0, 0x700, struct.pack("<H", 0)) +
            _el(0, 0x800, struct.pack("<H", 0)) + _el(0, 0x1000, sop_instance.encode()))
    return _el(0, 0, struct.pack("<I", len(rest))) + rest


ABORT = bytes([7, 0, 0, 0, 0, 4, 0, 0, 0, 0])
RELEASE_RQ = bytes([5, 0, 0, 0, 0, 4, 0, 0, 0, 0])


def read_pdu(sock, timeout=10.0):
    """The next whole PDU from sock, or b"" if it closed first."""
    sock.settimeout(timeout)
    buf = b""
    while len(buf) < 6:
        d = sock.recv(6 - len(buf))
        if not d:
            return b""
        buf += d
    n = struct.unpack(">I", buf[2:6])[0]
    while len(buf) < 6 + n:
        d = sock.recv(6 + n - len(buf))
        if not d:
            return b""
        buf += d
    return buf


def closed_after(sock, timeout=10.0):
    """Read until the peer closes; returns what came (bounded in time)."""
    sock.settimeout(timeout)
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            d = sock.recv(65536)
        except ConnectionResetError:
            return got
        if not d:
            return got
        got += d
    raise AssertionError(f"the server did not close the connection within {timeout}s")


def pynetdicom_quiet():
    import logging
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)


def dcmtk_env():
    return dict(os.environ)
