"""mira's SCUs (echo, send, qr) beyond the plain case: user identity and SOP class extended
negotiation seen by pynetdicom's SCP handlers and checked by `mira serve`; `mira send` and C-MOVE
sub-operations over TLS to DCMTK's storescp +tls; C-MOVE from Orthanc; C-CANCEL of a running
move on SIGINT. Certificates are made with openssl (test_dimse_tls's helpers)."""
import json
import pathlib
import shutil
import signal
import subprocess
import threading
import time

import pydicom
import pytest
from pydicom.uid import generate_uid

from conftest import TEST_FILES, mira_bin
from dimse_peers import MiraServer, Storescp, free_port, pynetdicom_quiet, wait_for_port
from test_dimse_send import Orthanc, same_values
from test_dimse_tls import make_ca, make_cert

CT = "1.2.840.10008.5.1.4.1.1.2"
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
CT_FILE = TEST_FILES / "CT_small.dcm"


def mira(*args, timeout=60, **kw):
    return subprocess.run([mira_bin(), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kw)


# ------------------------------------------------------------------ pynetdicom's SCP

@pytest.fixture
def pynet_scp():
    """A pynetdicom SCP recording the identities and extended negotiation items it is sent."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import Verification
    pynetdicom_quiet()
    seen = {"identity": [], "ext": [], "stored": []}

    def on_user(event):
        seen["identity"].append((event.user_id_type, event.primary_field, event.secondary_field))
        return True, b"granted"

    def on_ext(event):
        seen["ext"].append(dict(event.app_info))
        answers = {STUDY_FIND: b"\x01\x01", CT: b"\x02\x00\x03\x00\x00\x00"}
        return {uid: answers[uid] for uid in event.app_info if uid in answers}

    def on_find(event):
        ds = pydicom.Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = "1.2.3.4"
        yield 0xFF00, ds

    def on_store(event):
        seen["stored"].append(str(event.request.AffectedSOPInstanceUID))
        return 0x0000

    ae = AE(ae_title="PYNETSCP")
    ae.add_supported_context(Verification)
    ae.add_supported_context(STUDY_FIND)
    ae.add_supported_context(CT)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[
        (evt.EVT_USER_ID, on_user), (evt.EVT_SOP_EXTENDED, on_ext), (evt.EVT_C_FIND, on_find),
        (evt.EVT_C_STORE, on_store)])
    try:
        yield port, seen
    finally:
        server.shutdown()


def test_identity_and_extended_negotiation_seen_by_pynetdicom(pynet_scp, tmp_path):
    port, seen = pynet_scp
    p = mira("echo", "127.0.0.1", port, "--user", "alice", "--password", "s3cret")
    assert p.returncode == 0, p.stderr
    assert seen["identity"][-1] == (2, b"alice", b"s3cret")
    # a JWT, its positive response asked for and read (pynetdicom sends one for types 3-5)
    p = mira("echo", "127.0.0.1", port, "--identity-type", "jwt", "--user", "eyJ.e30.sig",
             "--request-identity-response")
    assert p.returncode == 0, p.stderr
    assert seen["identity"][-1] == (5, b"eyJ.e30.sig", b"")
    assert "confirmed the user identity (a 7-byte server response)" in p.stderr, p.stderr
    # C-FIND: relational queries and combined date-time matching; a user name alone
    (tmp_path / "pw").write_text("hunter2\n")
    p = mira("qr", "find", "127.0.0.1", port, "--relational", "--datetime-matching",
             "--user", "bob", "--password-file", tmp_path / "pw", "-k", "StudyInstanceUID=",
             "--json")
    assert p.returncode == 0, p.stderr
    assert seen["identity"][-1] == (2, b"bob", b"hunter2")
    assert seen["ext"][-1] == {STUDY_FIND: b"\x01\x01"}
    assert "Study Root Query/Retrieve Information Model - FIND: 01 01" in p.stderr, p.stderr
    assert json.loads(p.stdout.splitlines()[0])["0020000D"]["Value"] == ["1.2.3.4"]
    # storage extended negotiation: asked for each SOP class, the answer reported
    p = mira("send", "127.0.0.1", port, CT_FILE, "--storage-negotiation", "--user", "carol",
             "--no-progress")
    assert p.returncode == 0, p.stderr
    assert seen["identity"][-1] == (1, b"carol", b"")
    assert seen["ext"][-1] == {CT: bytes(6)}
    assert "CT Image Storage: 02 00 03 00 00 00" in p.stderr, p.stderr
    assert seen["stored"] == [str(pydicom.dcmread(CT_FILE).SOPInstanceUID)]
    # wrong usage: a password without a user, a password with a JWT
    assert mira("echo", "127.0.0.1", port, "--password", "x").returncode == 2
    assert mira("echo", "127.0.0.1", port, "--identity-type", "jwt", "--user", "t",
                "--password", "x").returncode == 2


def test_identity_against_mira_serve(tmp_path, monkeypatch):
    h = subprocess.run([mira_bin(), "serve", "--hash-password"], input=b"s3cret\n",
                       capture_output=True, timeout=30).stdout.decode().strip()
    cfg = tmp_path / "mira.json"
    cfg.write_text(json.dumps({"dimse": {"users": {"alice": {"password": h}},
                                         "require_user": True}}))
    monkeypatch.setenv("MIRA_CONFIG", str(cfg))
    with MiraServer(tmp_path / "archive") as srv:
        base = ("127.0.0.1", srv.port, "--call", "MIRA")
        p = mira("echo", *base, "--user", "alice", "--password", "s3cret",
                 "--request-identity-response")
        assert p.returncode == 0 and "status 0x0000" in p.stdout, p.stderr
        # mira serve answers the request, with an empty response for type 2
        assert "confirmed the user identity (a 0-byte server response)" in p.stderr, p.stderr
        p = mira("echo", *base, "--user", "alice", "--password", "wrong")
        assert p.returncode != 0 and "rejected the association" in p.stderr, p.stderr
        assert mira("echo", *base).returncode != 0  # required
        p = mira("send", *base, CT_FILE, "--user", "alice", "--password", "s3cret",
                 "--storage-negotiation", "--no-progress")
        assert p.returncode == 0, p.stderr
        assert "CT Image Storage: 02" in p.stderr, p.stderr  # level 2
        p = mira("send", *base, CT_FILE, "--user", "alice", "--password", "bad", "--no-progress")
        assert p.returncode == 3, p.stderr
        p = mira("qr", "find", *base, "--user", "alice", "--password", "s3cret",
                 "-k", "StudyInstanceUID=", "--json")
        assert p.returncode == 0 and len(p.stdout.splitlines()) == 1, p.stderr
        log = srv.stop()
    assert 'user "alice": wrong passcode' in log and "s3cret" not in log


# ------------------------------------------------------------------ TLS

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = make_ca(d, "miraca")
    return {"ca": ca[0], "server": make_cert(d, "localhost", ca, "DNS:localhost,IP:127.0.0.1"),
            "client": make_cert(d, "MIRA", ca)}


def test_send_and_move_over_tls(tmp_path, pki, monkeypatch):
    pem, key = pki["server"]
    cpem, ckey = pki["client"]
    tls = ["--tls-ca", pki["ca"], "--tls-cert", cpem, "--tls-key", ckey]
    src = pydicom.dcmread(CT_FILE)
    with Storescp(tmp_path / "scp", aet="DEST",
                  extra=["+tls", str(key), str(pem), "+cf", str(pki["ca"])]) as scp:
        p = mira("send", "127.0.0.1", scp.port, CT_FILE, "--call", "DEST", "--no-progress",
                 "--tls", *tls)
        assert p.returncode == 0, p.stderr
        got = list(scp.out.iterdir())
        assert len(got) == 1
        same_values(pydicom.dcmread(got[0]), src)
        # plain TCP to it: no association
        assert mira("send", "127.0.0.1", scp.port, CT_FILE, "--timeout", "5",
                    "--no-progress").returncode == 3
        got[0].unlink()
        # C-MOVE sub-operations from mira serve to a destination configured with TLS
        cfg = tmp_path / "mira.json"
        cfg.write_text(json.dumps({"dimse": {"peers": {"DEST": {
            "host": "127.0.0.1", "port": scp.port, "tls": True, "ca": str(pki["ca"]),
            "cert": str(cpem), "key": str(ckey)}}}}))
        monkeypatch.setenv("MIRA_CONFIG", str(cfg))
        mira("import", "--archive", tmp_path / "archive", "--no-progress", CT_FILE)

        def move_to_dest(*serve_args):
            with MiraServer(tmp_path / "archive", *serve_args) as srv:
                p = mira("qr", "move", "127.0.0.1", srv.port, "--call", "MIRA", "--dest",
                         "DEST", "-k", f"StudyInstanceUID={src.StudyInstanceUID}", "--json")
                assert p.returncode == 0, p.stdout + p.stderr
                assert json.loads(p.stdout.splitlines()[-1])["completed"] == 1
            got = list(scp.out.iterdir())
            assert len(got) == 1
            same_values(pydicom.dcmread(got[0]), src)
            got[0].unlink()

        move_to_dest()
        # the same destination named on the command line: --peer AE=HOST:PORT,tls with the
        # server's own TLS files (it listens with TLS too, on a port of its own)
        monkeypatch.delenv("MIRA_CONFIG")
        move_to_dest("--peer", f"DEST=127.0.0.1:{scp.port},tls", "--tls-port", "0", *tls)
    # a TLS peer without TLS files to use: a clear error, exit code 2
    p = subprocess.run([mira_bin(), "serve", "--archive", str(tmp_path / "archive"), "--port",
                        "0", "--peer", "DEST=127.0.0.1:104,tls"], capture_output=True,
                       timeout=30)
    assert p.returncode == 2 and b"needs --tls-cert, --tls-key and --tls-ca" in p.stderr, p


# ------------------------------------------------------------------ Orthanc C-MOVE

class OrthancMove(Orthanc):
    """Orthanc knowing DEST (a storescp in its network namespace) as a modality."""

    def __init__(self, d, dest_port):
        super().__init__(d)
        self.dest_port = dest_port

    def __enter__(self):
        for sub in ("storage", "index", "tmp"):
            (self.d / sub).mkdir(parents=True, exist_ok=True)
        self.http, self.dicom = free_port(), free_port()
        cfg = {"Name": "mira-move-test", "StorageDirectory": str(self.d / "storage"),
               "IndexDirectory": str(self.d / "index"), "TemporaryDirectory": str(self.d / "tmp"),
               "Plugins": [], "HttpPort": self.http, "DicomPort": self.dicom,
               "DicomAet": "ORTHANC", "RemoteAccessAllowed": False,
               "AuthenticationEnabled": False, "DicomCheckCalledAet": True,
               "DicomAlwaysAllowMove": True, "DicomAlwaysAllowFind": True,
               "DicomModalities": {"DEST": ["DEST", "127.0.0.1", self.dest_port],
                                   "MIRA": ["MIRA", "127.0.0.1", 104]}}
        (self.d / "orthanc.json").write_text(json.dumps(cfg))
        cmd = ["Orthanc", str(self.d / "orthanc.json")]
        if self.netns:
            cmd = ["unshare", "-n", "--", "sh", "-c", 'ip link set lo up && exec "$0" "$1"', *cmd]
        self.log = open(self.d / "orthanc.log", "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                self.get("/system")
                return self
            except Exception:
                time.sleep(0.1)
        self.__exit__()
        raise AssertionError("Orthanc did not start: " + (self.d / "orthanc.log").read_text())

    def popen(self, cmd, **kw):
        if self.netns:
            cmd = ["nsenter", "-t", str(self.proc.pid), "-n", "--", *cmd]
        return subprocess.Popen(cmd, **kw)


@pytest.mark.skipif(not shutil.which("Orthanc"), reason="Debian's orthanc is not installed")
def test_move_from_orthanc(tmp_path):
    files = [TEST_FILES / n for n in ("CT_small.dcm", "MR_small.dcm")]
    srcs = {str(pydicom.dcmread(f).SOPInstanceUID): pydicom.dcmread(f) for f in files}
    dest_port = free_port()
    out = tmp_path / "dest"
    out.mkdir()
    with OrthancMove(tmp_path / "orthanc", dest_port) as o:
        scp = o.popen(["storescp", "-aet", "DEST", "-od", str(out), str(dest_port)],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            p = o.run([mira_bin(), "send", "127.0.0.1", str(o.dicom), *map(str, files),
                       "--call", "ORTHANC", "--no-progress"])
            assert p.returncode == 0, p.stderr
            deadline = time.monotonic() + 10  # storescp listening inside the namespace
            while o.run(["echoscu", "-aec", "DEST", "127.0.0.1", str(dest_port)]).returncode:
                assert time.monotonic() < deadline, "storescp did not start"
                time.sleep(0.1)
            for uid, ds in srcs.items():
                p = o.run([mira_bin(), "qr", "move", "127.0.0.1", str(o.dicom), "--call",
                           "ORTHANC", "--dest", "DEST", "--level", "STUDY",
                           "-k", f"StudyInstanceUID={ds.StudyInstanceUID}", "--json"])
                assert p.returncode == 0, p.stdout + p.stderr
                assert json.loads(p.stdout.splitlines()[-1])["status"] == 0
            # an unknown destination: a failure status, exit 1
            p = o.run([mira_bin(), "qr", "move", "127.0.0.1", str(o.dicom), "--call", "ORTHANC",
                       "--dest", "NOWHERE", "-k", "StudyInstanceUID=1.2.3"])
            assert p.returncode == 1, p.stdout + p.stderr
        finally:
            scp.terminate()
            scp.wait(10)
    got = {str(pydicom.dcmread(f).SOPInstanceUID): pydicom.dcmread(f) for f in out.iterdir()}
    assert set(got) == set(srcs)
    for uid, ds in got.items():
        same_values(ds, srcs[uid])


# ------------------------------------------------------------------ C-CANCEL

def test_cancel_move_on_sigint(tmp_path):
    """40 instances moved to a slow destination (pynetdicom, 50 ms a store); SIGINT after the
    second pending response: mira serve stops between sub-operations, final status 0xFE00."""
    from pynetdicom import AE, evt
    pynetdicom_quiet()
    study = generate_uid()
    for i in range(40):
        ds = pydicom.dcmread(CT_FILE)
        ds.StudyInstanceUID = study
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(tmp_path / f"{i}.dcm")
    p = mira("import", "--archive", tmp_path / "archive", "--no-progress",
             *sorted(tmp_path.glob("*.dcm")))
    assert p.returncode == 0, p.stderr
    stored = []

    def on_store(event):
        time.sleep(0.05)
        stored.append(1)
        return 0x0000

    ae = AE(ae_title="SLOW")
    ae.add_supported_context(CT, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        with MiraServer(tmp_path / "archive", "--peer", f"SLOW=127.0.0.1:{port}") as srv:
            proc = subprocess.Popen([mira_bin(), "qr", "move", "127.0.0.1", str(srv.port),
                                     "--call", "MIRA", "--dest", "SLOW", "--json",
                                     "-k", f"StudyInstanceUID={study}"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            rows = []
            for line in proc.stdout:
                rows.append(json.loads(line))
                if len(rows) == 2:
                    proc.send_signal(signal.SIGINT)
            rc = proc.wait(30)
            err = proc.stderr.read()
            assert rc == 1, err
            final = rows[-1]
            assert final["final"] and final["status"] == 0xFE00, rows
            assert 2 <= final["completed"] < 40 and final.get("remaining", 0) > 0, final
            assert len(stored) == final["completed"]
    finally:
        server.shutdown()
