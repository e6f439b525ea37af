"""Bounded memory (issue 5): a 1 GB instance, and ten 100 MB ones in parallel, sent by DCMTK's
storescu to `mira serve`, and the 1 GB one sent by `mira send` to storescp. The server's and
the sender's peak memory (RssAnon) is sampled from /proc; each stored
blob's data set is byte-identical (SHA-256, streamed) to what was sent, and indexed. The files
are written in chunks and hashed as they are written: the test never holds one in memory."""
import hashlib
import json
import os
import pathlib
import shutil
import struct
import subprocess
import threading
import time

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from conftest import mira_bin, run_mira
from dimse_peers import MiraServer, Storescp

pytestmark = pytest.mark.slow

MIB = 1 << 20
MULTIFRAME_GRAY_BYTE_SC = "1.2.840.10008.5.1.4.1.1.7.2"
# what the process may allocate beyond its idle size, whatever the instance's size
BOUND = 64 * MIB
# per association receiving at once: services.c keeps an instance in memory up to 8 MiB
# before it goes on into a spool file, and its buffer grows by doubling (4 + 8 MiB at the copy)
PER_ASSOCIATION = 16 * MIB


def big_instance(path, frames, rows=1024, cols=1024):
    """A multi-frame 8-bit Secondary Capture of frames x rows x cols bytes, Explicit VR LE,
    written chunk by chunk. Returns (SOP Instance UID, SHA-256 of the data set part)."""
    ds = pydicom.Dataset()
    ds.SOPClassUID = MULTIFRAME_GRAY_BYTE_SC
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "BIG"
    ds.PatientName = "Big^Instance"
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    head = pathlib.Path(str(path) + ".head")
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.save_as(head, write_like_original=False)
    hb = head.read_bytes()
    head.unlink()
    gl = struct.unpack("<I", hb[140:144])[0]
    h = hashlib.sha256(hb[144 + gl:])
    frame_len = rows * cols
    # Pixel Data (7FE0,0010) OB with a 4-byte length (PS3.5 7.1.2)
    el = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, frames * frame_len)
    h.update(el)
    block = bytearray(os.urandom(frame_len))
    with open(path, "wb") as f:
        f.write(hb)
        f.write(el)
        for i in range(frames):
            block[0:8] = struct.pack("<Q", i)  # every frame differs
            f.write(block)
            h.update(block)
    return str(ds.SOPInstanceUID), h.hexdigest()


def dataset_sha256(path):
    """SHA-256 of a Part 10 file's bytes after its file meta group, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        pre = f.read(144)
        assert pre[128:132] == b"DICM"
        gl = struct.unpack("<I", pre[140:144])[0]
        f.seek(144 + gl)
        while chunk := f.read(8 * MIB):
            h.update(chunk)
    return h.hexdigest()


def status_kib(pid, field):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


class Sampler:
    """The peak of RssAnon (memory the process allocated) of a process, sampled every 10 ms,
    and of VmHWM (the kernel's peak resident size). What is asserted is RssAnon: VmHWM also
    counts the pages of files the process maps (the spool file the archive stores from),
    which are the page cache's, clean, and reclaimed under pressure; it is printed, and
    bounded only for mira send, which gives back the pages of the file it has sent."""

    def __init__(self, pid):
        self.pid = pid
        self.peak_anon = 0
        self.hwm = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            a = status_kib(self.pid, "RssAnon")
            w = status_kib(self.pid, "VmHWM")
            if a is None:
                return
            self.peak_anon = max(self.peak_anon, a * 1024)
            self.hwm = max(self.hwm, (w or 0) * 1024)
            time.sleep(0.01)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(5)


def blob_of(archive, size_at_least):
    """The archive's files at least that big (the blobs of the big instances)."""
    out = []
    for root, _, files in os.walk(archive):
        for n in files:
            p = pathlib.Path(root) / n
            if p.stat().st_size >= size_at_least and "spool" not in p.parts:
                out.append(p)
    return out


def storescu(port, path):
    return subprocess.run(["storescu", "-R", "-aet", "BIGSCU", "-aec", "MIRA", "127.0.0.1",
                           str(port), str(path)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    d = tmp_path_factory.mktemp("memory")
    # the 1 GB file, its copy in the archive and storescp's, and the ten 100 MB ones and theirs
    need = 5 * 1024 * MIB
    if shutil.disk_usage(d).free < need:
        pytest.skip(f"needs {need >> 20} MiB free in {d}")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def gigabyte(space):
    p = space / "big.dcm"
    uid, sha = big_instance(p, frames=1000)
    assert p.stat().st_size > 1000 * MIB
    return p, uid, sha


def indexed(archive, uids):
    out = json.loads(run_mira("find", "--archive", archive, "--level", "instance", "--json",
                              "SOPInstanceUID").stdout)
    return {m["00080018"]["Value"][0] for m in out} >= set(uids)


def test_storescu_1gb_instance_to_mira_serve(space, gigabyte):
    path, uid, sha = gigabyte
    archive = space / "archive1"
    with MiraServer(archive) as srv:
        time.sleep(0.3)
        idle_hwm = status_kib(srv.proc.pid, "VmHWM") * 1024
        idle_anon = status_kib(srv.proc.pid, "RssAnon") * 1024
        with Sampler(srv.proc.pid) as s:
            p = storescu(srv.port, path)
        hwm = status_kib(srv.proc.pid, "VmHWM") * 1024
    assert p.returncode == 0 and "Store Failed" not in p.stderr, p.stderr[-2000:]
    print(f"1 GB: RssAnon {idle_anon >> 20} -> {s.peak_anon >> 20} MiB, "
          f"VmHWM {idle_hwm >> 20} -> {hwm >> 20} MiB")
    assert s.peak_anon - idle_anon < BOUND, (s.peak_anon, idle_anon)
    blobs = blob_of(archive, 1000 * MIB)
    assert len(blobs) == 1
    assert dataset_sha256(blobs[0]) == sha
    assert indexed(archive, [uid])
    assert not list((archive / "spool").iterdir())
    shutil.rmtree(archive)


def test_ten_100mb_instances_in_parallel(space):
    files = []
    for i in range(10):
        p = space / f"hundred{i}.dcm"
        files.append((p, *big_instance(p, frames=100)))
    archive = space / "archive10"
    with MiraServer(archive) as srv:
        time.sleep(0.3)
        idle_hwm = status_kib(srv.proc.pid, "VmHWM") * 1024
        idle_anon = status_kib(srv.proc.pid, "RssAnon") * 1024
        with Sampler(srv.proc.pid) as s:
            procs = [subprocess.Popen(["storescu", "-R", "-aet", f"SCU{i}", "-aec", "MIRA",
                                       "127.0.0.1", str(srv.port), str(p)],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                     for i, (p, _, _) in enumerate(files)]
            outs = [(q.communicate(timeout=300)[0], q.returncode) for q in procs]
        hwm = status_kib(srv.proc.pid, "VmHWM") * 1024
    for out, rc in outs:
        assert rc == 0 and "Store Failed" not in out, out[-2000:]
    print(f"10 x 100 MB: RssAnon {idle_anon >> 20} -> {s.peak_anon >> 20} MiB, "
          f"VmHWM {idle_hwm >> 20} -> {hwm >> 20} MiB")
    # ten associations at once, each with its own buffer: still a fraction of the 1 GB sent
    assert s.peak_anon - idle_anon < 10 * PER_ASSOCIATION, (s.peak_anon, idle_anon)
    blobs = blob_of(archive, 100 * MIB)
    assert len(blobs) == 10
    assert sorted(dataset_sha256(b) for b in blobs) == sorted(sha for _, _, sha in files)
    assert indexed(archive, [uid for _, uid, _ in files])
    shutil.rmtree(archive)
    for p, _, _ in files:
        p.unlink()


def test_mira_send_1gb_instance_to_storescp(space, gigabyte):
    path, uid, sha = gigabyte
    out = space / "storescp"
    with Storescp(out, aet="STORESCP") as scp:
        proc = subprocess.Popen([mira_bin(), "send", "127.0.0.1", str(scp.port), str(path),
                                 "--call", "STORESCP"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        with Sampler(proc.pid) as s:
            stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr.decode(errors="replace")[-2000:]
    print(f"mira send 1 GB: RssAnon peak {s.peak_anon >> 20} MiB, VmHWM {s.hwm >> 20} MiB")
    assert s.peak_anon < BOUND, s.peak_anon
    assert s.hwm < 2 * BOUND, s.hwm  # the mapped file's pages are given back as they are sent
    got = list(out.iterdir())
    assert len(got) == 1
    assert dataset_sha256(got[0]) == sha
    got[0].unlink()
