"""DICOM over TLS (PS3.15 B.9/B.10, the BCP 195 profile): DCMTK's echoscu and storescu with
+tls against `mira serve`, `mira echo --tls` against DCMTK's storescp +tls, client certificates
verified or refused, and what reaches the TLS port without TLS. Certificates are made here with
`openssl req` / `openssl x509`; nothing leaves 127.0.0.1."""
import json
import pathlib
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import TEST_FILES, mira_bin, run_mira
from dimse_peers import (Storescp, associate_rq, closed_after, echo_command, pdata, read_pdu)


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.pem"))
    return d / f"{name}.pem", d / f"{name}.key"


def make_cert(d, name, ca, san=None):
    """A key and a certificate for CN=name signed by ca (a (pem, key) pair)."""
    key, csr, pem = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem"
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", str(key),
            "-out", str(csr))
    args = ["x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
            "-CAcreateserial", "-days", "2", "-out", str(pem)]
    if san:
        ext = d / f"{name}.ext"
        ext.write_text(f"subjectAltName={san}\n")
        args += ["-extfile", str(ext)]
    openssl(*args)
    return pem, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = make_ca(d, "miraca")
    rogue = make_ca(d, "rogueca")
    return {
        "ca": ca[0],
        "rogue_ca": rogue[0],
        "server": make_cert(d, "localhost", ca, "DNS:localhost,IP:127.0.0.1"),
        "elsewhere": make_cert(d, "elsewhere.example", ca, "DNS:elsewhere.example"),
        "client": make_cert(d, "ECHOSCU", ca),
        "intruder": make_cert(d, "INTRUDER", rogue),
    }


class TlsServer:
    """`mira serve` with TLS on 127.0.0.1: .port (plain, None with --tls-only), .tls_port."""

    def __init__(self, archive_dir, *args, env=None):
        self.args = [mira_bin(), "serve", "--bind", "127.0.0.1", "--no-http", "--port", "0",
                     "--tls-port", "0", "--archive", str(archive_dir), *map(str, args)]
        self.log = pathlib.Path(str(archive_dir) + ".serve.log")
        self.env = env
        self.port = self.tls_port = None

    def __enter__(self):
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._err = open(self.log, "wb")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self._err,
                                     stdin=subprocess.DEVNULL, env=self.env)
        lines = []

        def read():
            for line in self.proc.stdout:
                lines.append(line.decode())
                if "TLS" in line.decode():
                    return

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(30)
        for line in lines:
            port = int(line.rsplit(":", 1)[1])
            if line.startswith("listening with TLS on "):
                self.tls_port = port
            elif line.startswith("listening on "):
                self.port = port
        if not self.tls_port:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"mira serve did not start: {lines} {self.log.read_text()}")
        return self

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(30) == 0, self.log.read_text()
        self._err.flush()
        return self.log.read_text(errors="replace")

    def __exit__(self, *exc):
        try:
            self.stop()
        finally:
            self._err.close()
            self.proc.stdout.close()


def tls_args(pki, cert="client"):
    args = ["+cf", str(pki["ca"])]
    if cert:
        pem, key = pki[cert]
        return ["+tls", str(key), str(pem), *args]
    return ["+tla", *args]


def echoscu(port, *args, aet="ECHOSCU"):
    return subprocess.run(["echoscu", "-v", "-to", "10", "-aet", aet, "-aec", "MIRA", *args,
                           "127.0.0.1", str(port)], capture_output=True, text=True, timeout=60)


def server_args(pki, verify=True):
    pem, key = pki["server"]
    return ["--tls-cert", pem, "--tls-key", key, "--tls-ca", pki["ca"],
            *(["--tls-verify-peer"] if verify else [])]


def test_echoscu_and_storescu_over_tls(tmp_path, pki):
    ct = TEST_FILES / "CT_small.dcm"
    with TlsServer(tmp_path / "archive", *server_args(pki)) as srv:
        p = echoscu(srv.tls_port, *tls_args(pki))
        assert p.returncode == 0 and "Received Echo Response (Success)" in p.stderr, p.stderr
        p = subprocess.run(["storescu", "-v", "-to", "10", "-aet", "ECHOSCU", "-aec", "MIRA",
                            *tls_args(pki), "127.0.0.1", str(srv.tls_port), str(ct)],
                           capture_output=True, text=True, timeout=60)
        assert "Received Store Response (Success)" in p.stderr, p.stderr
        # the plain port serves alongside
        assert echoscu(srv.port).returncode == 0
        log = srv.stop()
    assert 'TLS, TLSv1.' in log and 'peer certificate "/CN=ECHOSCU"' in log
    out = json.loads(run_mira("find", "--archive", tmp_path / "archive", "--level", "instance",
                              "--json", "SOPInstanceUID").stdout)
    import pydicom
    assert [m["00080018"]["Value"][0] for m in out] == [pydicom.dcmread(ct).SOPInstanceUID]


def test_client_certificates_refused_unless_trusted(tmp_path, pki):
    with TlsServer(tmp_path / "archive", *server_args(pki)) as srv:
        # signed by a CA the server does not trust
        p = echoscu(srv.tls_port, *tls_args(pki, "intruder"))
        assert p.returncode != 0 and "Echo Response" not in p.stderr
        # no certificate at all
        p = echoscu(srv.tls_port, *tls_args(pki, None))
        assert p.returncode != 0 and "Echo Response" not in p.stderr
        assert echoscu(srv.tls_port, *tls_args(pki)).returncode == 0
        log = srv.stop()
    assert "certificate verify failed" in log or "unable to get local issuer" in log, log
    assert "peer did not return a certificate" in log, log
    assert log.count("closed after 0 messages: TLS handshake with") == 2
    # without --tls-verify-peer, no client certificate is asked for
    with TlsServer(tmp_path / "archive2", *server_args(pki, verify=False)) as srv:
        assert echoscu(srv.tls_port, *tls_args(pki, None)).returncode == 0


def tls_client(pki, port, **kw):
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    ctx.load_cert_chain(str(pki["client"][0]), str(pki["client"][1]))
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), 10),
                           server_hostname="localhost")


def test_plain_and_silent_clients_on_the_tls_port(tmp_path, pki):
    """Neither holds up the others: an association over TLS stays open meanwhile and answers."""
    with TlsServer(tmp_path / "archive", *server_args(pki), "--artim", "2") as srv:
        held = tls_client(pki, srv.tls_port)
        held.sendall(associate_rq(calling=b"HELD"))
        assert read_pdu(held)[0] == 2  # A-ASSOCIATE-AC
        # a plain A-ASSOCIATE-RQ: a TLS alert at most, then the connection closes
        with socket.create_connection(("127.0.0.1", srv.tls_port), 10) as plain:
            plain.sendall(associate_rq())
            got = closed_after(plain, 10)
            assert not got or got[0] == 0x15  # a TLS alert record, never a PDU
        # a client that never starts its handshake is closed after ARTIM
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", srv.tls_port), 10) as silent:
            assert closed_after(silent, 10) == b""
        assert 1.5 < time.monotonic() - t0 < 8
        held.sendall(pdata(1, 3, echo_command(7)))
        assert read_pdu(held)[0] == 4  # the C-ECHO-RSP
        held.close()
        assert echoscu(srv.tls_port, *tls_args(pki)).returncode == 0
        assert echoscu(srv.port).returncode == 0
        log = srv.stop()
    assert "wrong version number" in log or "http request" in log or "packet length" in log, log
    assert "no answer in time" in log


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_protocol_versions_and_cipher_suites(tmp_path, pki):
    """TLS 1.2 with BCP 195's suites, never below 1.2 nor a suite without forward secrecy."""
    with TlsServer(tmp_path / "archive", *server_args(pki)) as srv:
        s = tls_client(pki, srv.tls_port, maximum_version=ssl.TLSVersion.TLSv1_2)
        assert s.version() == "TLSv1.2" and s.cipher()[0].startswith("ECDHE-RSA-AES") \
            and "GCM" in s.cipher()[0]
        s.close()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("AES128-SHA:AES256-GCM-SHA384")  # RSA key exchange only
        with pytest.raises(ssl.SSLError):
            ctx.wrap_socket(socket.create_connection(("127.0.0.1", srv.tls_port), 10))
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises(ssl.SSLError):
            old.wrap_socket(socket.create_connection(("127.0.0.1", srv.tls_port), 10))
        log = srv.stop()
    # refused by the server, not by the client
    assert "no shared cipher" in log, log
    assert "unsupported protocol" in log, log


def test_mira_echo_tls_against_storescp(tmp_path, pki):
    pem, key = pki["server"]
    cpem, ckey = pki["client"]
    mine = ["--tls-ca", pki["ca"], "--tls-cert", cpem, "--tls-key", ckey]
    # storescp +tls requires a client certificate it can verify (-rc, its default)
    with Storescp(tmp_path / "scp", extra=["+tls", str(key), str(pem), "+cf", str(pki["ca"])]) \
            as scp:
        p = run_mira("echo", "127.0.0.1", scp.port, "--call", "STORESCP", "--tls", *mine)
        assert "status 0x0000 (success)" in p.stdout.decode()
        # by name: the certificate names localhost too
        p = run_mira("echo", "localhost", scp.port, "--call", "STORESCP", "--tls", *mine)
        assert "status 0x0000 (success)" in p.stdout.decode()
        # a server certificate from a CA we do not trust
        p = run_mira("echo", "127.0.0.1", scp.port, "--call", "STORESCP", "--tls", "--tls-ca",
                     pki["rogue_ca"], "--tls-cert", cpem, "--tls-key", ckey, check=False)
        assert p.returncode != 0 and b"certificate verify failed" in p.stderr, p.stderr
        # plain TCP to a TLS peer fails, bounded in time
        p = run_mira("echo", "127.0.0.1", scp.port, "--call", "STORESCP", "--timeout", "5",
                     check=False)
        assert p.returncode != 0
    # a certificate naming another host: refused, unless verification is off
    epem, ekey = pki["elsewhere"]
    with Storescp(tmp_path / "scp2", extra=["+tls", str(ekey), str(epem), "+cf",
                                             str(pki["ca"])]) as scp:
        p = run_mira("echo", "127.0.0.1", scp.port, "--call", "STORESCP", "--tls", *mine,
                     check=False)
        assert p.returncode != 0 and b"certificate verify failed" in p.stderr, p.stderr
        p = run_mira("echo", "127.0.0.1", scp.port, "--call", "STORESCP", "--tls-no-verify",
                     "--tls-cert", cpem, "--tls-key", ckey)
        assert "status 0x0000 (success)" in p.stdout.decode()


def test_tls_only_from_the_config_file(tmp_path, pki, monkeypatch):
    pem, key = pki["server"]
    cfg = tmp_path / "mira.json"
    cfg.write_text(json.dumps({"dimse": {"tls": {"cert": str(pem), "key": str(key),
                                                 "only": True}}}))
    monkeypatch.setenv("MIRA_CONFIG", str(cfg))
    with TlsServer(tmp_path / "archive") as srv:
        assert srv.port is None
        p = echoscu(srv.tls_port, *tls_args(pki, None))
        assert p.returncode == 0, p.stderr
        log = srv.stop()
    assert "listening on" not in log and "listening with TLS on" in log
    # a key that does not match the certificate: mira serve says so and does not start
    cfg.write_text(json.dumps({"dimse": {"tls": {"cert": str(pem),
                                                 "key": str(pki["client"][1])}}}))
    p = subprocess.run([mira_bin(), "serve", "--archive", str(tmp_path / "a2"), "--port", "0"],
                       capture_output=True, timeout=30)
    assert p.returncode != 0 and b"values mismatch" in p.stderr, p.stderr
