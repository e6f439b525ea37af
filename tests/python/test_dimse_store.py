"""Storage SCP (C-STORE) with real peers.

DCMTK's storescu sends pydicom's test files to `mira serve` and, the same way, to DCMTK's
storescp in bit-preserving mode (-B: it writes the data set exactly as it came off the wire).
Every instance must be in mira's archive with the data set bytes storescp received, the
transfer syntax storescu negotiated, the values pydicom reads from the original file, and be
indexed. pynetdicom's storage SCU is a second, independent sender.
"""
import collections
import json
import pathlib
import struct
import subprocess
import threading
import time

import pydicom
import pytest

from conftest import TEST_FILES, run_mira
from dimse_peers import MiraServer, Storescp, pynetdicom_quiet

# storescu's option proposing each transfer syntax (storescu -R proposes the files' SOP
# classes with these and the uncompressed syntaxes, in separate contexts).
PROPOSE = {
    "1.2.840.10008.1.2": "-xi",
    "1.2.840.10008.1.2.1": "-x=",
    "1.2.840.10008.1.2.2": "-xb",
    "1.2.840.10008.1.2.1.99": "-xd",
    "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.51": "-xx",
    "1.2.840.10008.1.2.4.70": "-xs",
    "1.2.840.10008.1.2.4.80": "-xt",
    "1.2.840.10008.1.2.4.81": "-xu",
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw",
    "1.2.840.10008.1.2.5": "-xr",
}


def corpus():
    """pydicom test files storescu can send, one per SOP Instance UID, grouped by syntax."""
    groups = collections.defaultdict(list)
    seen = set()
    for p in sorted(TEST_FILES.glob("*.dcm")):
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
            ts = str(ds.file_meta.TransferSyntaxUID)
            uid = str(ds.SOPInstanceUID)
            _ = ds.SOPClassUID, ds.StudyInstanceUID, ds.SeriesInstanceUID
        except Exception:
            continue
        if ts not in PROPOSE or uid in seen or not p.read_bytes()[128:132] == b"DICM":
            continue
        seen.add(uid)
        groups[ts].append(p)
    return groups


def storescu(port, aec, files, ts, *extra):
    """One association per call (storescu sends every file over it)."""
    return subprocess.run(["storescu", "-R", "-nh", PROPOSE[ts], "-aet", "STORESCU",
                           "-aec", aec, *extra, "127.0.0.1", str(port), *map(str, files)],
                          capture_output=True, text=True, timeout=300)


def dataset_bytes(path):
    """The bytes after the file meta group (its group length says where it ends)."""
    b = pathlib.Path(path).read_bytes()
    assert b[128:132] == b"DICM"
    tag = struct.unpack("<HH", b[132:136])
    assert tag == (2, 0), f"{path}: no meta group length"
    gl = struct.unpack("<I", b[140:144])[0]
    return b[144 + gl:]


def inflate(data):
    import zlib
    return zlib.decompressobj(-15).decompress(data)


def meta_ts(path):
    return str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)


def same_values(a, b):
    """Equal elements (values as pydicom reads them), group lengths and the trailing padding
    (which storescu does not send) aside."""
    def strip(ds):
        for e in list(ds):
            if e.tag.element == 0 or e.tag == 0xFFFCFFFC:
                del ds[e.tag]
            elif e.VR == "SQ":
                for item in e.value:
                    strip(item)
        return ds
    return strip(a) == strip(b)


@pytest.fixture(scope="module")
def sent(tmp_path_factory):
    """Everything sent once to mira and to storescp -B; returns (server, archive, scp dir)."""
    d = tmp_path_factory.mktemp("store")
    groups = corpus()
    results = {}
    with Storescp(d / "scp", extra=["-B", "+xa"]) as scp, \
            MiraServer(d / "archive", "--quiet") as srv:
        for ts, files in groups.items():
            a = storescu(srv.port, "MIRA", files, ts)
            b = storescu(scp.port, "STORESCP", files, ts)
            results[ts] = (a, b)
        log = srv.stop()
    return groups, results, d / "archive", d / "scp", log


def test_corpus_is_broad(sent):
    groups = sent[0]
    assert len(groups) >= 8, sorted(groups)
    classes = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPClassUID)
               for files in groups.values() for p in files}
    assert len(classes) >= 8


def test_every_instance_stored_as_received(sent, tmp_path):
    groups, results, archive, scp_dir, log = sent
    # storescp names its files MODALITY.SOP_INSTANCE_UID
    received = {f.name.split(".", 1)[1]: f for f in scp_dir.iterdir()}
    compared = 0
    for ts, files in groups.items():
        a, b = results[ts]
        for p in files:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
            uid = str(ds.SOPInstanceUID)
            peer = received.get(uid)
            if peer is None:
                # storescu could not send it to storescp either (it cannot read the file)
                assert p.name in a.stderr, f"{p.name} reached neither peer: {b.stderr[-500:]}"
                continue
            path = run_mira("cat", "--archive", archive, "--path", uid).stdout.decode().strip()
            assert path, f"{p.name} not stored; storescu said {a.stderr[-1500:]}"
            # the data set, byte for byte, as storescp received it; the negotiated syntax
            assert meta_ts(path) == meta_ts(peer), p.name
            if meta_ts(path) == "1.2.840.10008.1.2.1.99":
                # storescu pads the deflated stream to an even length and storescp -B drops
                # the pad byte: the inflated data sets must be the same
                assert inflate(dataset_bytes(path)) == inflate(dataset_bytes(peer)), p.name
            else:
                assert dataset_bytes(path) == dataset_bytes(peer), p.name
            # the values of the original file (after storescu's syntax conversion, if any)
            got = pydicom.dcmread(path)
            want = pydicom.dcmread(p)
            if str(got.file_meta.TransferSyntaxUID) == ts:
                # compressed syntaxes are sent as they are: pixel data too
                if ts not in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1",
                              "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"):
                    assert got.PixelData == want.PixelData, p.name
            assert got.SOPInstanceUID == uid and got.SOPClassUID == ds.SOPClassUID
            assert got.file_meta.MediaStorageSOPInstanceUID == uid
            assert got.file_meta.SourceApplicationEntityTitle.strip() == "STORESCU"
            if "PixelData" not in want or str(got.file_meta.TransferSyntaxUID) == ts:
                assert same_values(got, want) or _only_encoding_differs(got, want), p.name
            compared += 1
    assert compared >= 20, compared


def _only_encoding_differs(got, want):
    """Values equal once both are decoded the same way (explicit/implicit VR of UN elements)."""
    for e in want:
        if e.tag.element == 0 or e.tag.group in (0x7FE0, 0xFFFC):
            continue
        if e.tag not in got:
            return False
        g = got[e.tag]
        if e.VR != "UN" and g.VR != "UN" and e.VR != "SQ" and g.value != e.value:
            return False
    return True


def test_every_instance_indexed(sent):
    groups, results, archive, _, _ = sent
    out = json.loads(run_mira("find", "--archive", archive, "--level", "instance", "--json",
                              "SOPInstanceUID").stdout)
    stored = {m["00080018"]["Value"][0] for m in out}
    received = set()
    for ts, files in groups.items():
        for p in files:
            uid = str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
            if f"{p.name}" not in results[ts][0].stderr:
                received.add(uid)
    assert received <= stored
    stats = run_mira("stats", "--archive", archive).stdout.decode()
    assert f"instances  {len(stored)}" in stats


def test_storescu_statuses_all_success(sent):
    groups, results, *_ = sent
    for ts, (a, b) in results.items():
        assert a.returncode == 0, a.stderr[-2000:]
        # whatever storescp accepted, mira accepted
        assert a.stderr.count("Store Failed") <= b.stderr.count("Store Failed"), (ts, a.stderr)


def test_duplicates_policy(tmp_path):
    ct = TEST_FILES / "CT_small.dcm"
    with MiraServer(tmp_path / "archive", "--duplicates", "reject") as srv:
        first = storescu(srv.port, "MIRA", [ct], "1.2.840.10008.1.2.1", "-v")
        assert first.returncode == 0 and "Received Store Response (Success)" in first.stderr
        # the same bytes again: identical bytes are always a duplicate, accepted
        again = storescu(srv.port, "MIRA", [ct], "1.2.840.10008.1.2.1", "-v")
        assert "Received Store Response (Success)" in again.stderr, again.stderr
        # other content under the same SOP Instance UID: refused under "reject"
        other = tmp_path / "other.dcm"
        ds = pydicom.dcmread(ct)
        ds.PatientName = "Other^Patient"
        ds.save_as(other)
        refused = storescu(srv.port, "MIRA", [other], "1.2.840.10008.1.2.1", "-v")
        # DCMTK knows 0x0111 (Duplicate SOP Instance, PS3.7 C) only as an unknown status
        assert "Received Store Response (Unknown Status: 0x111)" in refused.stderr, refused.stderr
        log = srv.stop()
    assert "C-STORE of" in log


def test_unknown_sop_class_and_bad_data_set(tmp_path):
    """pynetdicom sends what mira must refuse: a data set without the UIDs the archive needs
    (0xC000 cannot understand), and an unproposed SOP class is not accepted at all."""
    from pynetdicom import AE
    from pydicom.dataset import Dataset
    pynetdicom_quiet()
    with MiraServer(tmp_path / "archive") as srv:
        ae = AE(ae_title="PYNETSCU")
        ae.add_requested_context("1.2.840.10008.5.1.4.1.1.7")
        ae.add_requested_context("1.2.3.4.5.6.7")
        assoc = ae.associate("127.0.0.1", srv.port, ae_title="MIRA")
        assert assoc.is_established
        assert [c.abstract_syntax for c in assoc.accepted_contexts] == ["1.2.840.10008.5.1.4.1.1.7"]
        ds = Dataset()
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2"
        ds.is_little_endian, ds.is_implicit_VR = True, True
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
        ds.SOPInstanceUID = "1.2.3.999.1"
        ds.PatientName = "No^Study"
        status = assoc.send_c_store(ds)
        assert (status.Status & 0xF000) == 0xC000, hex(status.Status)
        assoc.release()


def test_pynetdicom_storage_scu(tmp_path):
    from pynetdicom import AE, StoragePresentationContexts
    pynetdicom_quiet()
    # the first file of each syntax of the corpus (distinct SOP Instance UIDs)
    files = [group[0] for group in corpus().values()]
    with MiraServer(tmp_path / "archive") as srv:
        ae = AE(ae_title="PYNETSCU")
        for f in files:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            ae.add_requested_context(ds.SOPClassUID, [str(ds.file_meta.TransferSyntaxUID)])
        assoc = ae.associate("127.0.0.1", srv.port, ae_title="MIRA", max_pdu=16384)
        assert assoc.is_established
        for f in files:
            status = assoc.send_c_store(f)
            assert status.Status == 0x0000, (f.name, hex(status.Status))
        assoc.release()
    for f in files:
        want = pydicom.dcmread(f)
        path = run_mira("cat", "--archive", tmp_path / "archive", "--path",
                        want.SOPInstanceUID).stdout.decode().strip()
        got = pydicom.dcmread(path)
        assert str(got.file_meta.TransferSyntaxUID) == str(want.file_meta.TransferSyntaxUID)
        # pynetdicom encodes the data set again (without group lengths): the values match
        assert same_values(got, want), f.name


@pytest.mark.parametrize("how", ["abort", "close"])
def test_abort_during_a_store_leaves_nothing(tmp_path, how):
    """An association aborted (or dropped) in the middle of a data set stores nothing, leaves
    no spool or tmp file, and the server goes on storing."""
    import socket
    from dimse_peers import ABORT, associate_rq, closed_after, pdata, read_pdu, store_command
    ct = TEST_FILES / "CT_small.dcm"
    want = pydicom.dcmread(ct)
    body = dataset_bytes(ct)
    with MiraServer(tmp_path / "archive") as srv:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s.sendall(associate_rq(contexts=((1, want.SOPClassUID, ("1.2.840.10008.1.2.1",)),)))
        assert read_pdu(s)[:1] == b"\x02"
        s.sendall(pdata(1, 3, store_command(want.SOPClassUID, want.SOPInstanceUID)))
        s.sendall(pdata(1, 0, body[:len(body) // 2]))  # half the data set, not the last
        spool = tmp_path / "archive" / "spool"
        time.sleep(0.3)  # being received (in memory: an instance this small is not spooled)
        if how == "abort":
            s.sendall(ABORT)
            assert closed_after(s, 10) == b""
        s.close()

        def left():
            return list(spool.iterdir()) + [f for f in (tmp_path / "archive" / "tmp").rglob("*")
                                            if f.is_file() and f.name != "lock"]
        deadline = time.monotonic() + 10
        while left() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert left() == []
        stats = run_mira("stats", "--archive", tmp_path / "archive").stdout.decode()
        assert "instances  0" in stats
        # the server still stores
        p = storescu(srv.port, "MIRA", [ct], "1.2.840.10008.1.2.1")
        assert p.returncode == 0
        log = srv.stop()
    assert ("aborted by the peer" if how == "abort" else "closed") in log
    stats = run_mira("stats", "--archive", tmp_path / "archive").stdout.decode()
    assert "instances  1" in stats


def test_large_instance_in_bounded_memory(tmp_path):
    """A 64 MiB instance is received into the spool file as it arrives: the server's anonymous
    memory (heap, stacks; not the page cache) stays far below the instance's size."""
    import hashlib
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    ds.Rows = ds.Columns = 2048
    ds.NumberOfFrames = 8
    frame = bytes(range(256)) * (2048 * 2048 * 2 // 256)
    ds.PixelData = frame * 8
    big = tmp_path / "big.dcm"
    ds.save_as(big)
    del ds, frame
    with MiraServer(tmp_path / "archive", "--quiet", "--max-pdu", "65536") as srv:
        status = pathlib.Path(f"/proc/{srv.proc.pid}/status")

        def anon_kb():
            for line in status.read_text().splitlines():
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
            return 0
        base = anon_kb()  # the idle server's (an ASan build's runtime is most of it)
        peak = [base]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], anon_kb())
                time.sleep(0.002)
        t = threading.Thread(target=sample, daemon=True)
        t.start()
        p = storescu(srv.port, "MIRA", [big], "1.2.840.10008.1.2.1", "-v")
        done.set()
        t.join(5)
        assert "Received Store Response (Success)" in p.stderr, p.stderr[-2000:]
    assert peak[0] - base < 32 * 1024, \
        f"{peak[0] - base} kB more anonymous memory (of {peak[0]} kB) for a 64 MiB instance"
    want = pydicom.dcmread(big)
    path = run_mira("cat", "--archive", tmp_path / "archive", "--path",
                    want.SOPInstanceUID).stdout.decode().strip()
    got = pydicom.dcmread(path)
    assert hashlib.sha256(got.PixelData).digest() == hashlib.sha256(want.PixelData).digest()


def test_command_and_data_set_disagree(tmp_path):
    """A C-STORE-RQ naming another SOP instance than its data set: stored under the data set's
    UID, answered with warning 0xB007 (PS3.4 B.2.3)."""
    import socket
    from dimse_peers import RELEASE_RQ, associate_rq, pdata, read_pdu, store_command
    ct = TEST_FILES / "CT_small.dcm"
    want = pydicom.dcmread(ct)
    body = dataset_bytes(ct)
    with MiraServer(tmp_path / "archive") as srv:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s.sendall(associate_rq(contexts=((1, want.SOPClassUID, ("1.2.840.10008.1.2.1",)),)))
        assert read_pdu(s)[:1] == b"\x02"
        s.sendall(pdata(1, 3, store_command(want.SOPClassUID, "1.2.3.4.5.6.7.8")))
        s.sendall(pdata(1, 2, body))
        rsp = read_pdu(s)
        i = rsp.find(b"\x00\x00\x00\x09\x02\x00\x00\x00")
        assert i > 0 and struct.unpack("<H", rsp[i + 8:i + 10])[0] == 0xB007
        s.sendall(RELEASE_RQ)
        assert read_pdu(s)[:1] == b"\x06"
        s.close()
    path = run_mira("cat", "--archive", tmp_path / "archive", "--path",
                    want.SOPInstanceUID).stdout.decode().strip()
    assert dataset_bytes(path) == body


@pytest.mark.parametrize("kind", ["stored", "refused"])
def test_blob_written_while_received(tmp_path, kind):
    """A data set of several PDUs is written into the archive's tmp folder as it arrives: the
    blob stored is the preamble, meta group and data set byte for byte; a data set refused
    after it was partly written (not DICOM: 0xC000) leaves nothing in tmp."""
    import io
    import socket
    from dimse_peers import RELEASE_RQ, associate_rq, pdata, read_pdu, store_command
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    ds.Rows = ds.Columns = 700
    ds.PixelData = bytes(range(256)) * (700 * 700 * 2 // 256) + b"\1" * (700 * 700 * 2 % 256)
    buf = io.BytesIO()
    ds.save_as(buf, write_like_original=False)
    src = tmp_path / "in.dcm"
    src.write_bytes(buf.getvalue())
    body = dataset_bytes(src)
    if kind == "refused":
        body = b"\xff\xfe\x00\x01" * (len(body) // 4)
    with MiraServer(tmp_path / "archive") as srv:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s.sendall(associate_rq(contexts=((1, ds.SOPClassUID, ("1.2.840.10008.1.2.1",)),)))
        assert read_pdu(s)[:1] == b"\x02"
        s.sendall(pdata(1, 3, store_command(ds.SOPClassUID, ds.SOPInstanceUID)))
        step = 50000  # fragments that do not fall on block boundaries
        for off in range(0, len(body), step):
            last = off + step >= len(body)
            s.sendall(pdata(1, 2 if last else 0, body[off:off + step]))
        rsp = read_pdu(s)
        i = rsp.find(b"\x00\x00\x00\x09\x02\x00\x00\x00")
        status = struct.unpack("<H", rsp[i + 8:i + 10])[0]
        s.sendall(RELEASE_RQ)
        assert read_pdu(s)[:1] == b"\x06"
        s.close()
        assert status == (0x0000 if kind == "stored" else 0xC000)
        left = [f.name for f in (tmp_path / "archive" / "tmp").rglob("*")
                if f.is_file() and f.name != "lock"]
        assert left == []
    if kind == "stored":
        path = run_mira("cat", "--archive", tmp_path / "archive", "--path",
                        ds.SOPInstanceUID).stdout.decode().strip()
        assert dataset_bytes(path) == body
        got = pathlib.Path(path).read_bytes()
        assert got[128:132] == b"DICM" and got.endswith(body)
