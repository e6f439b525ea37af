"""Query/Retrieve SCU (`mira qr find|move|get`; PS3.4 C.4, K.4) against real peers.

DCMTK's dcmqrscp (a dcmqrscp.cfg written here, loaded with pydicom's uncompressed test files by
storescu), Orthanc (loaded with mira send, in a network namespace of its own when run as root),
DCMTK's wlmscpfs (worklist entries written as .wl files with dump2dcm) and `mira serve`. What
each query should answer is computed from the source files with pydicom; every retrieved
file's values equal its source's.
"""
import json
import pathlib
import shutil
import subprocess
import time

import pydicom
import pytest

from conftest import mira_bin, run_mira
from dimse_peers import MiraServer, Storescp, free_port, wait_for_port
from test_dimse_send import Orthanc, same_values
from test_dimse_store import corpus

IMPLICIT = "1.2.840.10008.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"


def qr(*args, timeout=60):
    return subprocess.run([mira_bin(), "qr", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def json_rows(stdout):
    return [json.loads(l) for l in stdout.splitlines() if l.startswith("{")]


def value(row, tag):
    v = row.get(tag, {}).get("Value", [])
    return v[0] if v else ""


def headers(paths):
    return {p: pydicom.dcmread(p, stop_before_pixels=True) for p in paths}


def uncompressed():
    """pydicom's test files in Implicit and Explicit VR LE, one per SOP Instance UID."""
    return [p for ts in (IMPLICIT, EXPLICIT) for p in corpus()[ts]]


def check_files(files, sources, want):
    got = {}
    for f in files:
        ds = pydicom.dcmread(f)
        got[str(ds.SOPInstanceUID)] = ds
    assert set(got) == want
    for uid, ds in got.items():
        same_values(ds, pydicom.dcmread(sources[uid]))


class Dcmqrscp:
    """DCMTK's dcmqrscp (AE QRSCP) with its own database folder, DEST as move destination."""

    def __init__(self, d, dest_port):
        self.d = pathlib.Path(d)
        self.dest_port = dest_port

    def __enter__(self):
        (self.d / "db").mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            self.port = free_port()
            (self.d / "dcmqrscp.cfg").write_text(
                f"NetworkTCPPort = {self.port}\nMaxPDUSize = 16384\nMaxAssociations = 16\n"
                f"HostTable BEGIN\ndest = (DEST, 127.0.0.1, {self.dest_port})\nHostTable END\n"
                "VendorTable BEGIN\nVendorTable END\n"
                f"AETable BEGIN\nQRSCP {self.d / 'db'} RW (200, 1024mb) ANY\nAETable END\n")
            self.proc = subprocess.Popen(["dcmqrscp", "-c", str(self.d / "dcmqrscp.cfg"),
                                          str(self.port)], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            try:
                wait_for_port(self.port, 10)
                return self
            except AssertionError:
                self.proc.kill()
                self.proc.wait(10)
        raise AssertionError("dcmqrscp did not start")

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def dcmqrscp(tmp_path_factory):
    d = tmp_path_factory.mktemp("dcmqrscp")
    files = uncompressed()
    with Storescp(d / "dest", aet="DEST") as scp, Dcmqrscp(d / "qr", scp.port) as q:
        for ts in (IMPLICIT, EXPLICIT):
            p = subprocess.run(["storescu", "-R", "-aec", "QRSCP", "127.0.0.1", str(q.port),
                                *map(str, corpus()[ts])], capture_output=True, text=True,
                               timeout=60)
            assert p.returncode == 0, p.stderr[-2000:]
        hs = headers(files)
        sources = {str(h.SOPInstanceUID): p for p, h in hs.items()}
        yield q, scp, hs, sources


def by_study(hs):
    out = {}
    for p, h in hs.items():
        out.setdefault(str(h.StudyInstanceUID), set()).add(str(h.SOPInstanceUID))
    return out


def test_find_dcmqrscp_study_and_image_levels(dcmqrscp):
    q, scp, hs, sources = dcmqrscp
    p = qr("find", "127.0.0.1", q.port, "--call", "QRSCP", "-k", "StudyInstanceUID=",
           "-k", "PatientID=", "--json")
    assert p.returncode == 0, p.stderr
    got = {(value(r, "0020000D"), value(r, "00100020")) for r in json_rows(p.stdout)}
    assert got == {(str(h.StudyInstanceUID), str(h.get("PatientID", ""))) for h in hs.values()}
    study, want = max(by_study(hs).items(), key=lambda kv: len(kv[1]))
    p = qr("find", "127.0.0.1", q.port, "--call", "QRSCP", "--level", "IMAGE",
           "-k", f"StudyInstanceUID={study}", "-k", "SeriesInstanceUID=", "-k", "SOPInstanceUID=")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    # the identifier's keys in tag order, one column each
    assert lines[0].split() == ["SOPInstanceUID", "QueryRetrieveLevel", "StudyInstanceUID",
                                "SeriesInstanceUID"]
    assert {l.split()[0] for l in lines[1:-1]} == want
    assert lines[-1] == f"{len(want)} match{'es' if len(want) != 1 else ''}, status 0x0000 (success)"


def test_find_limit_cancels(dcmqrscp):
    q, scp, hs, sources = dcmqrscp
    assert len(by_study(hs)) > 2
    p = qr("find", "127.0.0.1", q.port, "--call", "QRSCP", "-k", "StudyInstanceUID=",
           "--limit", "2", "--json")
    assert p.returncode == 0, p.stderr
    rows = json_rows(p.stdout)
    assert len(rows) == 2 and {value(r, "0020000D") for r in rows} <= set(by_study(hs))


def test_move_dcmqrscp_to_storescp(dcmqrscp):
    q, scp, hs, sources = dcmqrscp
    study, want = max(by_study(hs).items(), key=lambda kv: len(kv[1]))
    for f in scp.out.iterdir():
        f.unlink()
    p = qr("move", "127.0.0.1", q.port, "--call", "QRSCP", "--dest", "DEST",
           "-k", f"StudyInstanceUID={study}", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    final = json_rows(p.stdout)[-1]
    assert final["final"] and final["status"] == 0 and final["completed"] == len(want)
    assert final["failed"] == 0 and final["failed_sop_instance_uids"] == []
    check_files(list(scp.out.iterdir()), sources, want)
    # a destination dcmqrscp does not know: a failure status, exit 1
    p = qr("move", "127.0.0.1", q.port, "--call", "QRSCP", "--dest", "NOPE",
           "-k", f"StudyInstanceUID={study}")
    assert p.returncode == 1 and "status 0xA801" in p.stdout, p.stdout + p.stderr


def test_get_dcmqrscp(dcmqrscp, tmp_path):
    q, scp, hs, sources = dcmqrscp
    study, want = max(by_study(hs).items(), key=lambda kv: len(kv[1]))
    p = qr("get", "127.0.0.1", q.port, "--call", "QRSCP", "-k", f"StudyInstanceUID={study}",
           "--out", tmp_path / "got")
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"{len(want)} completed, 0 failed" in p.stdout
    files = list((tmp_path / "got").iterdir())
    assert {f.name for f in files} == {u + ".dcm" for u in want}
    check_files(files, sources, want)


def test_exit_codes(dcmqrscp):
    q, scp, hs, sources = dcmqrscp
    assert qr("find", "127.0.0.1", free_port()).returncode == 3  # nothing listens
    assert qr("find", "127.0.0.1").returncode == 2
    assert qr("move", "127.0.0.1", q.port, "--call", "QRSCP").returncode == 2  # no --dest
    assert qr("get", "127.0.0.1", q.port, "--call", "QRSCP").returncode == 2  # no --out
    assert qr("frob", "127.0.0.1", q.port).returncode == 2
    assert qr("find", "127.0.0.1", q.port, "-k", "NoSuchKeyword=1").returncode == 2
    assert qr("--help").returncode == 0 and qr("find", "--help").returncode == 0
    # the worklist model at dcmqrscp: not accepted, no association for it
    p = qr("find", "127.0.0.1", q.port, "--call", "QRSCP", "--root", "worklist")
    assert p.returncode == 3, p.stderr


# ------------------------------------------------------------------ Orthanc

class OrthancQR(Orthanc):
    """test_dimse_send's Orthanc, answering C-FIND from any AE title (Orthanc takes C-FIND only
    from the modalities it knows unless told otherwise)."""

    def __enter__(self):
        for sub in ("storage", "index", "tmp"):
            (self.d / sub).mkdir(parents=True, exist_ok=True)
        self.http, self.dicom = free_port(), free_port()
        cfg = {"Name": "mira-qr-test", "StorageDirectory": str(self.d / "storage"),
               "IndexDirectory": str(self.d / "index"), "TemporaryDirectory": str(self.d / "tmp"),
               "Plugins": [], "HttpPort": self.http, "DicomPort": self.dicom,
               "DicomAet": "ORTHANC", "RemoteAccessAllowed": False,
               "AuthenticationEnabled": False, "DicomCheckCalledAet": True,
               "DicomAlwaysAllowFind": True}
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


@pytest.mark.skipif(not shutil.which("Orthanc"), reason="Debian's orthanc is not installed")
def test_find_orthanc(tmp_path):
    files = uncompressed()
    hs = headers(files)
    with OrthancQR(tmp_path / "orthanc") as o:
        p = o.run([mira_bin(), "send", "127.0.0.1", str(o.dicom), *map(str, files), "--call",
                   "ORTHANC"])
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
        p = o.run([mira_bin(), "qr", "find", "127.0.0.1", str(o.dicom), "--call", "ORTHANC",
                   "-k", "StudyInstanceUID=", "-k", "PatientID=", "-k", "StudyDate=", "--json"])
        assert p.returncode == 0, p.stderr
        got = {(value(r, "0020000D"), value(r, "00100020"), value(r, "00080020"))
               for r in json_rows(p.stdout)}
        assert got == {(str(h.StudyInstanceUID), str(h.get("PatientID", "")),
                        str(h.get("StudyDate", ""))) for h in hs.values()}
        study, want = max(by_study(hs).items(), key=lambda kv: len(kv[1]))
        p = o.run([mira_bin(), "qr", "find", "127.0.0.1", str(o.dicom), "--call", "ORTHANC",
                   "--level", "IMAGE", "-k", f"StudyInstanceUID={study}",
                   "-k", "SOPInstanceUID=", "--json"])
        assert p.returncode == 0, p.stderr
        assert {value(r, "00080018") for r in json_rows(p.stdout)} == want


# ------------------------------------------------------------------ wlmscpfs

WL = [dict(pid="WL1", name="Doe^Jane", acc="A100", mod="CT", aet="CT1", sps="S1"),
      dict(pid="WL2", name="Roe^Rick", acc="A200", mod="MR", aet="MR1", sps="S2"),
      dict(pid="WL3", name="Poe^Ed", acc="A300", mod="CT", aet="CT2", sps="S3")]


def test_worklist_find_wlmscpfs(tmp_path):
    aet = tmp_path / "db" / "WLMSCP"
    aet.mkdir(parents=True)
    (aet / "lockfile").write_text("")
    for i, e in enumerate(WL):
        (tmp_path / f"{i}.dump").write_text("\n".join([
            f"(0008,0050) SH [{e['acc']}]", f"(0010,0010) PN [{e['name']}]",
            f"(0010,0020) LO [{e['pid']}]", f"(0020,000d) UI [1.2.3.{i + 1}]",
            "(0032,1060) LO [Proc]", f"(0040,1001) SH [R{i}]", "(0040,0100) SQ",
            "(fffe,e000) -", f"(0008,0060) CS [{e['mod']}]", f"(0040,0001) AE [{e['aet']}]",
            "(0040,0002) DA [20240102]", "(0040,0003) TM [101000]",
            f"(0040,0007) LO [Step {i}]", f"(0040,0009) SH [{e['sps']}]",
            "(fffe,e00d) -", "(fffe,e0dd) -"]) + "\n")
        subprocess.run(["dump2dcm", "-q", str(tmp_path / f"{i}.dump"), str(aet / f"{i}.wl")],
                       check=True, timeout=30)
    port = free_port()
    proc = subprocess.Popen(["wlmscpfs", "-dfp", str(tmp_path / "db"), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    try:
        wait_for_port(port, 10)
        p = qr("find", "127.0.0.1", port, "--call", "WLMSCP", "--root", "worklist",
               "-k", "PatientID=", "-k", "PatientName=", "-k", "AccessionNumber=",
               "-k", "ScheduledProcedureStepSequence.Modality=CT",
               "-k", "ScheduledProcedureStepSequence.ScheduledStationAETitle=",
               "-k", "ScheduledProcedureStepSequence.ScheduledProcedureStepID=", "--json")
        assert p.returncode == 0, p.stderr
        rows = json_rows(p.stdout)
        got = set()
        for r in rows:
            step = r["00400100"]["Value"][0]
            got.add((value(r, "00100020"), value(r, "00100010")["Alphabetic"],
                     value(r, "00080050"), value(step, "00080060"), value(step, "00400001"),
                     value(step, "00400009")))
            assert "00080052" not in r  # no Query/Retrieve Level in a worklist query
        assert got == {(e["pid"], e["name"], e["acc"], e["mod"], e["aet"], e["sps"])
                       for e in WL if e["mod"] == "CT"}
    finally:
        proc.terminate()
        proc.wait(10)


# ------------------------------------------------------------------ mira serve

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    d = tmp_path_factory.mktemp("qr-serve")
    files = [p for g in corpus().values() for p in g]
    out = run_mira("import", "--archive", d / "archive", "--no-progress", "--json", *files,
                   check=False).stdout.decode().splitlines()
    stored = [json.loads(l)["path"] for l in out if '"status":"stored"' in l]
    hs = headers(stored)
    sources = {str(h.SOPInstanceUID): pathlib.Path(p) for p, h in hs.items()}
    with Storescp(d / "dest", aet="DEST", extra=["+xa"]) as scp, \
            MiraServer(d / "archive", "--quiet", "--peer", f"DEST=127.0.0.1:{scp.port}") as srv:
        yield srv, scp, hs, sources, d


def test_mira_serve_find(served):
    srv, scp, hs, sources, d = served
    # every series, every instance: relational queries (PS3.4 C.4.1.2.2)
    p = qr("find", "127.0.0.1", srv.port, "--call", "MIRA", "--level", "SERIES", "--relational",
           "-k", "SeriesInstanceUID=", "-k", "Modality=", "--json")
    assert p.returncode == 0, p.stderr
    got = {(value(r, "0020000E"), value(r, "00080060")) for r in json_rows(p.stdout)}
    assert got == {(str(h.SeriesInstanceUID), str(h.get("Modality", ""))) for h in hs.values()}
    p = qr("find", "127.0.0.1", srv.port, "--call", "MIRA", "--level", "IMAGE", "--relational",
           "-k", "SOPInstanceUID=", "--limit", "3", "--json")
    assert p.returncode == 0 and len(json_rows(p.stdout)) == 3, p.stderr


def test_mira_serve_move(served):
    srv, scp, hs, sources, d = served
    study, want = max(by_study(hs).items(), key=lambda kv: len(kv[1]))
    for f in scp.out.iterdir():
        f.unlink()
    p = qr("move", "127.0.0.1", srv.port, "--call", "MIRA", "--dest", "DEST",
           "-k", f"StudyInstanceUID={study}", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    rows = json_rows(p.stdout)
    assert rows[-1]["status"] == 0 and rows[-1]["completed"] == len(want)
    assert all(r["status"] == 0xFF00 and not r["final"] for r in rows[:-1])
    assert len(rows) == len(want)  # a pending response after each sub-operation but the last
    check_files(list(scp.out.iterdir()), {u: p for u, p in sources.items()}, want)


def test_mira_serve_get_into_folder_and_archive(served, tmp_path):
    srv, scp, hs, sources, d = served
    study, want = max(by_study(hs).items(), key=lambda kv: len(kv[1]))
    classes = sorted({str(hs[str(sources[u])].SOPClassUID) for u in want})
    args = ["-k", f"StudyInstanceUID={study}"] + [a for c in classes for a in ("--sop-class", c)]
    p = qr("get", "127.0.0.1", srv.port, "--call", "MIRA", "--out", tmp_path / "got", *args)
    assert p.returncode == 0, p.stdout + p.stderr
    files = list((tmp_path / "got").iterdir())
    got_ts = {}
    for f in files:
        ds = pydicom.dcmread(f)
        got_ts[str(ds.SOPInstanceUID)] = str(ds.file_meta.TransferSyntaxUID)
    # sent as stored: the instances arrive in their own syntax (the compressed context)
    for u, ts in got_ts.items():
        assert ts == str(pydicom.dcmread(sources[u], stop_before_pixels=True)
                         .file_meta.TransferSyntaxUID)
    same = {u for u in want if got_ts.get(u) != "1.2.840.10008.1.2.1.99"}
    check_files([f for f in files if f.stem in same], sources, same)
    assert set(got_ts) == want
    # into an archive: indexed there
    p = qr("get", "127.0.0.1", srv.port, "--call", "MIRA", "--archive", tmp_path / "ar", *args)
    assert p.returncode == 0, p.stdout + p.stderr
    found = run_mira("find", "--archive", tmp_path / "ar", "--level", "IMAGE",
                     "SOPInstanceUID=", "--json").stdout.decode()
    assert {r["00080018"]["Value"][0] for r in json.loads(found)} == want
    assert [x.name for x in (tmp_path / "ar").iterdir() if x.name.startswith("qr-get.")] == []
