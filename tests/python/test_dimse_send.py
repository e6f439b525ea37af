"""Storage SCU (`mira send`) against real peers.

mira sends pydicom's test files to DCMTK's storescp (bit-preserving, so its files hold the data
sets exactly as they came off the wire), to pynetdicom storage SCPs (one accepting only
Implicit VR Little Endian, so compressed instances must be transcoded) and to Orthanc. What
the peers received is compared with the source files read by pydicom, and decompressed pixel
data with what DCMTK's and GDCM's decoders make of the originals.
"""
import json
import os
import pathlib
import shutil
import subprocess
import threading
import time
import urllib.request

import pydicom
import pytest

from conftest import TEST_FILES, decode_with_peer, mira_bin, run_mira
from dimse_peers import Storescp, free_port, pynetdicom_quiet, wait_for_port
from test_dimse_store import corpus, dataset_bytes

IMPLICIT = "1.2.840.10008.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"


def send(*args, check=None):
    p = subprocess.run([mira_bin(), "send", *map(str, args)], capture_output=True, text=True,
                       timeout=300)
    if check is not None:
        bad = [l for l in p.stdout.splitlines() if '"outcome":"failed"' in l]
        assert p.returncode == check, f"exit {p.returncode}: {bad or p.stdout[-3000:]} {p.stderr[-3000:]}"
    return p


def rows(stdout):
    out = [json.loads(l) for l in stdout.splitlines() if l.startswith("{")]
    return [r for r in out if "summary" not in r], [r["summary"] for r in out if "summary" in r][0]


def same_values(a, b, skip=()):
    """Every element of data set a equals b's (file meta and group lengths aside), compared as pydicom reads them."""
    ka = {e.tag for e in a if e.tag.group != 2 and e.tag.element != 0 and e.tag not in skip
          and e.tag != 0xFFFCFFFC}
    kb = {e.tag for e in b if e.tag.group != 2 and e.tag.element != 0 and e.tag not in skip
          and e.tag != 0xFFFCFFFC}
    assert ka == kb, f"elements differ: {sorted(ka ^ kb)}"
    for t in ka:
        assert a[t].value == b[t].value, f"{t} differs"


def sources():
    """One source file per syntax storescu's corpus has (pydicom's test files)."""
    return {ts: files[0] for ts, files in corpus().items()}


# ------------------------------------------------------------------ DCMTK storescp

def test_send_to_storescp_every_syntax(tmp_path):
    """storescp +xa accepts every syntax: each instance arrives, in the syntax the peer chose
    among those proposed, with the values of its file."""
    src = [p for files in corpus().values() for p in files]
    with Storescp(tmp_path / "out", extra=["+xa"]) as scp:
        p = send("127.0.0.1", scp.port, *src, "--call", "STORESCP", "--json", check=0)
    got, summary = rows(p.stdout)
    assert summary["sent"] == len(src) and summary["failed"] == 0
    by_path = {r["path"]: r for r in got}
    received = {}
    for f in (tmp_path / "out").iterdir():
        ds = pydicom.dcmread(f)
        received[str(ds.SOPInstanceUID)] = ds
    assert len(received) == len(src)
    for s in src:
        orig = pydicom.dcmread(s)
        ds = received[str(orig.SOPInstanceUID)]
        r = by_path[str(s)]
        ts = str(orig.file_meta.TransferSyntaxUID)
        # storescp picks among the syntaxes proposed (it prefers Explicit VR LE to Implicit)
        assert r["transfer_syntax"] == str(ds.file_meta.TransferSyntaxUID)
        assert r["transcoded"] == (r["transfer_syntax"] != ts)
        if r["transcoded"] or ts != "1.2.840.10008.1.2.1.99":
            same_values(ds, orig)


def test_send_own_syntax_byte_for_byte(tmp_path):
    """A peer accepting each syntax proposed first: the data set bytes that arrive (pynetdicom
    hands them over undecoded) are those of the file, for files mira and DCMTK read cleanly
    (the others are re-encoded in their own syntax: values compared)."""
    src = [p for files in corpus().values() for p in files]
    raw = {}
    with PynetdicomSCP(first_proposed=True) as scp:
        from pynetdicom import evt

        def store(event):
            raw[str(event.request.AffectedSOPInstanceUID)] = (
                event.context.transfer_syntax, event.request.DataSet.getvalue())
            return 0
        scp.server.unbind(evt.EVT_C_STORE, scp._store)
        scp.server.bind(evt.EVT_C_STORE, store)
        p = send("127.0.0.1", scp.port, *src, "--call", "PYSCP", "--json", check=0)
    got, summary = rows(p.stdout)
    assert summary["sent"] == len(src) and summary["transcoded"] == 0
    compared = 0
    for s in src:
        orig = pydicom.dcmread(s)
        ts, data = raw[str(orig.SOPInstanceUID)]
        assert ts == orig.file_meta.TransferSyntaxUID
        clean = b"warning" not in run_mira("dump", s).stderr
        want = dataset_bytes(s)
        if ts == "1.2.840.10008.1.2.1.99" and len(want) % 2:
            want += b"\0"  # an odd deflated stream is padded
        if clean:
            assert data == want, s.name
            compared += 1
    assert compared >= len(src) // 2


LOSSLESS_DECODERS = {
    "1.2.840.10008.1.2.5": ["dcmdrle"],
    "1.2.840.10008.1.2.4.80": ["dcmdjpls"],
    "1.2.840.10008.1.2.4.70": ["dcmdjpeg"],
    "1.2.840.10008.1.2.4.90": ["gdcmconv", "--raw"],
}


def test_send_to_storescp_uncompressed_only(tmp_path):
    """storescp's default accepts the uncompressed syntaxes only: compressed instances are
    decompressed by mira, and their pixels equal what DCMTK or GDCM decode from the original."""
    src = [TEST_FILES / n for n in ("MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm",
                                    "MR_small_jp2klossless.dcm", "SC_rgb_jpeg_gdcm.dcm")]
    with Storescp(tmp_path / "out") as scp:
        p = send("127.0.0.1", scp.port, *src, "--call", "STORESCP", "--json", check=0)
    got, summary = rows(p.stdout)
    assert summary["sent"] == len(src) and summary["transcoded"] == len(src)
    assert all(r["transfer_syntax"] == EXPLICIT for r in got)
    received = {str(pydicom.dcmread(f).SOPInstanceUID): f for f in (tmp_path / "out").iterdir()}
    for i, s in enumerate(src):
        orig = pydicom.dcmread(s)
        ref = tmp_path / f"ref{i}.dcm"
        decode_with_peer(LOSSLESS_DECODERS[str(orig.file_meta.TransferSyntaxUID)], s, ref)
        ref_ds = pydicom.dcmread(ref)
        ds = pydicom.dcmread(received[str(orig.SOPInstanceUID)])
        assert not ds.file_meta.TransferSyntaxUID.is_compressed
        assert ds.PixelData == ref_ds.PixelData, s.name
        assert ds.PhotometricInterpretation == ref_ds.PhotometricInterpretation
        same_values(ds, orig, skip={pydicom.tag.Tag(0x7FE0, 0x0010),
                                    pydicom.tag.Tag(0x0028, 0x0004),
                                    pydicom.tag.Tag(0x0028, 0x2110),
                                    pydicom.tag.Tag(0xFFFC, 0xFFFC)})  # trailing padding


# ------------------------------------------------------------------ pynetdicom

class PynetdicomSCP:
    """A pynetdicom storage SCP on 127.0.0.1 keeping what it receives (data sets in memory)."""

    def __init__(self, sop_classes=None, syntaxes=(IMPLICIT, EXPLICIT), first_proposed=False):
        from pynetdicom import AE, evt
        from pynetdicom.sop_class import CTImageStorage
        from pynetdicom import StoragePresentationContexts
        pynetdicom_quiet()
        self.received = []
        self.ae = AE(ae_title="PYSCP")
        if first_proposed:  # every syntax, the requestor's first choice
            syntaxes = sorted({ts for files in corpus().values() for ts in
                               [str(pydicom.dcmread(files[0], stop_before_pixels=True)
                                    .file_meta.TransferSyntaxUID)]} | {IMPLICIT, EXPLICIT})
            sop_classes = sorted({str(pydicom.dcmread(f, stop_before_pixels=True).SOPClassUID)
                                  for files in corpus().values() for f in files})
        if sop_classes is None:
            for c in StoragePresentationContexts:
                self.ae.add_supported_context(c.abstract_syntax, list(syntaxes))
        else:
            for c in sop_classes:
                self.ae.add_supported_context(c, list(syntaxes))
        self.handlers = [(evt.EVT_C_STORE, self._store)]
        self.port = free_port()

    def _store(self, event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        self.received.append((event.context.transfer_syntax, ds))
        return 0x0000

    def __enter__(self):
        self.server = self.ae.start_server(("127.0.0.1", self.port), block=False,
                                           evt_handlers=self.handlers)
        return self

    def __exit__(self, *exc):
        self.server.shutdown()


def test_send_transcodes_for_an_implicit_only_peer(tmp_path):
    """A peer accepting only Implicit VR LE: compressed instances arrive decompressed, with
    the pixels the peers' decoders get from the originals; uncompressed ones arrive with their
    values."""
    picks = [TEST_FILES / "MR_small_RLE.dcm", TEST_FILES / "MR_small_jpeg_ls_lossless.dcm",
             TEST_FILES / "MR_small_jp2klossless.dcm", TEST_FILES / "CT_small.dcm"]
    with PynetdicomSCP(syntaxes=(IMPLICIT,)) as scp:
        p = send("127.0.0.1", scp.port, *picks, "--call", "PYSCP", "--json", check=0)
        got, summary = rows(p.stdout)
    assert summary["sent"] == 4 and summary["failed"] == 0
    assert {r["transfer_syntax"] for r in got} == {IMPLICIT}
    assert [r["transcoded"] for r in got] == [True, True, True, True]  # CT_small is explicit
    by_uid = {str(ds.SOPInstanceUID): (ts, ds) for ts, ds in scp.received}
    decoders = {"MR_small_RLE.dcm": ["dcmdrle"], "MR_small_jpeg_ls_lossless.dcm": ["dcmdjpls"],
                "MR_small_jp2klossless.dcm": ["gdcmconv", "--raw"]}
    for i, s in enumerate(picks):
        orig = pydicom.dcmread(s)
        ts, ds = by_uid[str(orig.SOPInstanceUID)]
        assert ts == IMPLICIT
        if s.name in decoders:
            ref = tmp_path / f"ref{i}.dcm"
            decode_with_peer(decoders[s.name], s, ref)
            ref_ds = pydicom.dcmread(ref)
            assert ds.pixel_array.tolist() == ref_ds.pixel_array.tolist(), s.name
            skip = {pydicom.tag.Tag(0x7FE0, 0x0010), pydicom.tag.Tag(0x0028, 0x2110)}
        else:
            skip = set()
        same_values(ds, orig, skip=skip)


def test_refused_sop_class_is_reported_not_fatal(tmp_path):
    """The peer takes CT only: the MR instance is reported refused, the CT is stored, exit 1."""
    with PynetdicomSCP(sop_classes=["1.2.840.10008.5.1.4.1.1.2"]) as scp:
        p = send("127.0.0.1", scp.port, TEST_FILES / "MR_small.dcm", TEST_FILES / "CT_small.dcm",
                 "--call", "PYSCP", "--json", check=1)
        got, summary = rows(p.stdout)
    assert summary["sent"] == 1 and summary["failed"] == 1
    mr = [r for r in got if r["path"].endswith("MR_small.dcm")][0]
    assert mr["outcome"] == "failed" and "refused" in mr["reason"]
    assert [str(ds.SOPInstanceUID) for _, ds in scp.received] == \
        [str(pydicom.dcmread(TEST_FILES / "CT_small.dcm").SOPInstanceUID)]


def test_peer_status_failure_is_reported(tmp_path):
    """A peer answering 0xA700 to one instance: reported with its status, exit 1."""
    from pynetdicom import evt
    with PynetdicomSCP() as scp:
        bad = str(pydicom.dcmread(TEST_FILES / "MR_small.dcm").SOPInstanceUID)

        def store(event):
            if str(event.request.AffectedSOPInstanceUID) == bad:
                return 0xA700
            scp.received.append((event.context.transfer_syntax, event.dataset))
            return 0
        scp.server.unbind(evt.EVT_C_STORE, scp._store)
        scp.server.bind(evt.EVT_C_STORE, store)
        p = send("127.0.0.1", scp.port, TEST_FILES / "MR_small.dcm", TEST_FILES / "CT_small.dcm",
                 "--call", "PYSCP", check=1)
    assert "0xA700" in p.stderr
    assert "sent 1" in p.stdout and "failed 1" in p.stdout
    assert len(scp.received) == 1


def test_exit_codes(tmp_path):
    port = free_port()  # nothing listens there
    p = send("127.0.0.1", port, TEST_FILES / "CT_small.dcm", "--timeout", "5", check=3)
    assert "mira send" in p.stderr
    send("127.0.0.1", check=2)
    send("127.0.0.1", "x", TEST_FILES / "CT_small.dcm", check=2)


def test_send_folder_and_archive_query(tmp_path):
    """A folder (non-DICOM files in it skipped), then an archive query at the study level: the
    instances received are those pydicom finds in the sources."""
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(TEST_FILES / "CT_small.dcm", folder / "a.dcm")
    shutil.copy(TEST_FILES / "MR_small.dcm", folder / "sub" / "b")
    (folder / "notes.txt").write_text("not DICOM")
    with PynetdicomSCP() as scp:
        p = send("127.0.0.1", scp.port, folder, "--call", "PYSCP", "--json", check=0)
        got, summary = rows(p.stdout)
        assert summary["sent"] == 2 and summary["skipped"] == 1
        src = [p for files in corpus().values() for p in files]
        run_mira("import", "--archive", tmp_path / "ar", "--no-progress", *src)
        study = str(pydicom.dcmread(src[0]).StudyInstanceUID)
        want = {str(pydicom.dcmread(s).SOPInstanceUID) for s in src
                if str(pydicom.dcmread(s).StudyInstanceUID) == study}
        scp.received.clear()
        send("127.0.0.1", scp.port, "--archive", tmp_path / "ar", "--query",
             f"StudyInstanceUID={study}", "--level", "STUDY", "--call", "PYSCP", check=0)
        assert {str(ds.SOPInstanceUID) for _, ds in scp.received} == want


# ------------------------------------------------------------------ Orthanc

class Orthanc:
    """Debian's Orthanc with a private config. As root it runs in a network namespace of its
    own (only loopback), and its clients join it; else on free ports of the host with remote
    HTTP access off (Orthanc 1.10 cannot bind one address)."""

    def __init__(self, d):
        self.d = pathlib.Path(d)
        self.netns = os.geteuid() == 0 and shutil.which("unshare") and shutil.which("nsenter")

    def __enter__(self):
        for sub in ("storage", "index", "tmp"):
            (self.d / sub).mkdir(parents=True, exist_ok=True)
        self.http, self.dicom = free_port(), free_port()
        cfg = {"Name": "mira-send-test", "StorageDirectory": str(self.d / "storage"),
               "IndexDirectory": str(self.d / "index"), "TemporaryDirectory": str(self.d / "tmp"),
               "Plugins": [], "HttpPort": self.http, "DicomPort": self.dicom,
               "DicomAet": "ORTHANC", "RemoteAccessAllowed": False,
               "AuthenticationEnabled": False, "DicomCheckCalledAet": True}
        (self.d / "orthanc.json").write_text(json.dumps(cfg))
        cmd = ["Orthanc", str(self.d / "orthanc.json")]
        if self.netns:
            cmd = ["unshare", "-n", "--", "sh", "-c", 'ip link set lo up && exec "$0" "$1"', *cmd]
        self.log = open(self.d / "orthanc.log", "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                self.get("/system")
                return self
            except Exception:
                time.sleep(0.1)
        self.__exit__()
        raise AssertionError("Orthanc did not start: " + (self.d / "orthanc.log").read_text())

    def run(self, cmd, **kw):
        if self.netns:
            cmd = ["nsenter", "-t", str(self.proc.pid), "-n", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)

    def get(self, path):
        p = self.run(["curl", "-sf", "--max-time", "5", f"http://127.0.0.1:{self.http}{path}"])
        if p.returncode != 0:
            raise OSError(p.stderr)
        return json.loads(p.stdout)

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


@pytest.mark.skipif(not shutil.which("Orthanc"), reason="Debian's orthanc is not installed")
def test_send_to_orthanc(tmp_path):
    # 12-bit DCT JPEG aside: Orthanc accepts it only decompressed, which mira cannot do
    src = [f for ts, f in sources().items() if ts != "1.2.840.10008.1.2.4.51"]
    with Orthanc(tmp_path / "orthanc") as o:
        p = o.run([mira_bin(), "send", "127.0.0.1", str(o.dicom), *map(str, src), "--call",
                   "ORTHANC", "--json"])
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
        got, summary = rows(p.stdout)
        assert summary["sent"] == len(src)
        ids = o.get("/instances")
        uids = {o.get(f"/instances/{i}")["MainDicomTags"]["SOPInstanceUID"] for i in ids}
        assert uids == {str(pydicom.dcmread(s).SOPInstanceUID) for s in src}
        # the stored files carry the sources' values
        for i in ids[:3]:
            tags = o.get(f"/instances/{i}/simplified-tags")
            s = [s for s in src if str(pydicom.dcmread(s).SOPInstanceUID) == tags["SOPInstanceUID"]][0]
            orig = pydicom.dcmread(s, stop_before_pixels=True)
            for kw in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "Modality"):
                if kw in orig:
                    assert tags.get(kw, "") == str(orig.get(kw)), kw
