"""The npm package dicomweb-client (the DICOMweb client OHIF uses) against mira serve: its
searches, stores, retrieves (as stored and in Explicit VR Little Endian), metadata and bulk data,
frames and rendered images, through tests/js/dicomweb.mjs (one client call per run of node),
each result compared with what pydicom reads from the files the archive was given (never with
mira's own output); and instances sent with DCMTK's storescu to the DIMSE port, retrieved by
WADO-RS with the data set bytes storescp received."""
import io
import json
import pathlib
import struct
import subprocess

import numpy as np
import pydicom
import pytest

from conftest import BACKENDS, ROOT, TEST_FILES, new_postgres_database, run_mira
from dimse_peers import MiraServer, Storescp
from test_dimse_store import corpus, inflate, storescu  # storescu's files, how it sends them

JS = ROOT / "tests" / "js"
SCRIPT = JS / "dicomweb.mjs"

# pydicom's test files of the archive the searches and retrieves run against: one file per SOP
# Instance UID, of many transfer syntaxes (explicit, implicit and big endian, deflated, RLE,
# JPEG 2000, JPEG), single and multi-frame, grey and colour, 1 to 32 bits, and without pixels
# (RT plan, SR, waveform).
FILES = ["CT_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm", "ExplVR_BigEnd.dcm",
         "image_dfl.dcm", "rtdose.dcm", "rtplan.dcm", "SC_rgb_rle_2frame.dcm",
         "SC_rgb_small_odd.dcm", "SC_rgb_jpeg_dcmtk.dcm", "waveform_ecg.dcm", "test-SR.dcm",
         "GDCMJ2K_TextGBR.dcm", "693_J2KI.dcm", "liver_1frame.dcm"]

# What the store test sends (none of them in FILES: it runs against an empty archive anyway)
STORED = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "SC_rgb_rle.dcm", "ExplVR_BigEnd.dcm",
          "JPEG2000.dcm", "image_dfl.dcm"]


# ------------------------------------------------------------------ running the client

def client(srv, operation, args=None, out=None, ok=True):
    """One dicomweb-client call by tests/js/dicomweb.mjs: the JSON object it printed."""
    assert (JS / "node_modules" / "dicomweb-client").is_dir(), \
        "tests/js/node_modules is missing: scripts/npm.sh installs it (npm ci)"
    url = f"http://127.0.0.1:{srv.http_port}/dicomweb"
    proc = subprocess.run(["node", str(SCRIPT), url, srv.token, operation,
                           json.dumps(args or {}), str(out or "")],
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip(), f"dicomweb.mjs {operation}: {proc.returncode} {proc.stderr}"
    res = json.loads(proc.stdout)
    if ok:
        assert proc.returncode == 0 and "error" not in res, \
            f"dicomweb-client {operation}({args}) failed: {res} {proc.stderr[-2000:]}"
    return res


def parts(res):
    """The bytes of each part of a binary answer, with the client's view of its headers."""
    assert "parts" in res, res
    return [(pathlib.Path(p["file"]).read_bytes(), p) for p in res["parts"]]


def val(obj, tag):
    """The first value of tag in a DICOM JSON object ('' when absent or empty)."""
    a = obj.get(tag)
    if not a or "Value" not in a or not a["Value"]:
        return ""
    v = a["Value"][0]
    return v.get("Alphabetic", "") if isinstance(v, dict) else v


def text(ds, keyword):
    v = ds.get(keyword)
    return "" if v is None else str(v).strip()


# ------------------------------------------------------------------ the reference

class Reference:
    """The archive's expected contents: each file read by pydicom, by SOP Instance UID."""

    def __init__(self, names):
        self.path, self.ds = {}, {}
        self.studies, self.series = {}, {}
        for name in names:
            p = TEST_FILES / name
            ds = pydicom.dcmread(p)
            uid = ds.SOPInstanceUID
            assert uid not in self.ds, f"{name}: a second file of SOP Instance {uid}"
            self.path[uid], self.ds[uid] = p, ds
            self.studies.setdefault(ds.StudyInstanceUID, []).append(ds)
            self.series.setdefault(ds.SeriesInstanceUID, []).append(ds)
        # the archive keeps a study's and a series' attributes from its first instance: the
        # expected values are only well defined when all instances agree
        for members in self.studies.values():
            keys = {tuple(text(m, k) for k in STUDY_KEYS) for m in members}
            assert len(keys) == 1, f"the files of study {members[0].StudyInstanceUID} differ"
        for members in self.series.values():
            keys = {tuple(text(m, k) for k in SERIES_KEYS) for m in members}
            assert len(keys) == 1, f"the files of series {members[0].SeriesInstanceUID} differ"

    def series_of(self, study):
        return {m.SeriesInstanceUID for m in self.studies[study]}


STUDY_KEYS = ["PatientID", "PatientName", "StudyDate", "StudyTime", "StudyID",
              "AccessionNumber"]
SERIES_KEYS = ["Modality", "SeriesNumber", "StudyInstanceUID"]


def dicom_date(s):
    return len(s) == 8 and s.isdigit()


def serve(tmp, backend, names=()):
    """mira serve with HTTP on an archive of the named test files, on one backend."""
    index = ["--index", new_postgres_database()] if backend == "postgresql" else []
    archive_args = ["--archive", str(tmp / "archive"), *index]
    if names:
        run_mira("import", *archive_args, "--no-progress", *[TEST_FILES / n for n in names])
    srv = MiraServer(tmp / "archive", archive_args=archive_args, http=True)
    srv.archive_args = archive_args
    return srv


@pytest.fixture(scope="module", params=BACKENDS)
def served(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"dicomweb-client-{request.param}")
    ref = Reference(FILES)
    with serve(d, request.param, FILES) as srv:
        yield srv, ref


# ------------------------------------------------------------------ QIDO-RS

def test_search_for_studies(served):
    srv, ref = served
    got = client(srv, "searchForStudies")["json"]
    assert sorted(val(o, "0020000D") for o in got) == sorted(ref.studies)
    for o in got:
        members = ref.studies[val(o, "0020000D")]
        ds = members[0]
        assert val(o, "00100020") == text(ds, "PatientID")
        assert val(o, "00100010") == text(ds, "PatientName")
        if dicom_date(text(ds, "StudyDate")):
            assert val(o, "00080020") == text(ds, "StudyDate")
        assert val(o, "00200010") == text(ds, "StudyID")
        assert val(o, "00080050") == text(ds, "AccessionNumber")
        assert val(o, "00201206") == len({m.SeriesInstanceUID for m in members})
        assert val(o, "00201208") == len(members)
        modalities = sorted({text(m, "Modality") for m in members} - {""})
        assert sorted(o.get("00080061", {}).get("Value", [])) == modalities


def test_search_for_studies_with_parameters(served):
    srv, ref = served
    # by a key, by a wildcard, with includefield, paged, and none found
    ds = ref.ds[pydicom.dcmread(TEST_FILES / "rtdose.dcm").SOPInstanceUID]
    got = client(srv, "searchForStudies",
                 {"queryParams": {"PatientID": ds.PatientID, "includefield": "StudyDescription"}}
                 )["json"]
    assert [val(o, "0020000D") for o in got] == [ds.StudyInstanceUID]
    assert val(got[0], "00081030") == text(ds, "StudyDescription")
    want = sorted(u for u, m in ref.studies.items()
                  if text(m[0], "PatientName").lower().startswith("compressedsamples"))
    assert len(want) >= 3
    got = client(srv, "searchForStudies",
                 {"queryParams": {"PatientName": "CompressedSamples*"}})["json"]
    assert sorted(val(o, "0020000D") for o in got) == want
    pages = []
    for offset in range(0, len(ref.studies) + 2, 2):
        page = client(srv, "searchForStudies",
                      {"queryParams": {"limit": 2, "offset": offset}})["json"]
        assert len(page) <= 2
        pages += [val(o, "0020000D") for o in page]
    assert sorted(pages) == sorted(ref.studies)
    assert client(srv, "searchForStudies",
                  {"queryParams": {"PatientID": "no such patient"}})["json"] == []


def test_search_for_series(served):
    srv, ref = served
    for study in ref.studies:
        got = client(srv, "searchForSeries", {"studyInstanceUID": study})["json"]
        assert sorted(val(o, "0020000E") for o in got) == sorted(ref.series_of(study))
        for o in got:
            members = ref.series[val(o, "0020000E")]
            assert val(o, "00080060") == text(members[0], "Modality")
            number = text(members[0], "SeriesNumber")
            assert val(o, "00200011") == (int(number) if number else "")
            assert val(o, "00201209") == len(members)
    got = client(srv, "searchForSeries", {"queryParams": {"Modality": "RTDOSE"}})["json"]
    assert sorted(val(o, "0020000E") for o in got) == \
        sorted(u for u, m in ref.series.items() if text(m[0], "Modality") == "RTDOSE")


def test_search_for_instances(served):
    srv, ref = served
    fields = "Rows,Columns,NumberOfFrames"
    for series, members in ref.series.items():
        study = members[0].StudyInstanceUID
        got = client(srv, "searchForInstances",
                     {"studyInstanceUID": study, "seriesInstanceUID": series,
                      "queryParams": {"includefield": fields}})["json"]
        assert sorted(val(o, "00080018") for o in got) == \
            sorted(m.SOPInstanceUID for m in members)
        for o in got:
            ds = ref.ds[val(o, "00080018")]
            assert val(o, "00080016") == ds.SOPClassUID
            number = text(ds, "InstanceNumber")
            assert val(o, "00200013") == (int(number) if number else "")
            assert val(o, "00280010") == ds.get("Rows", "")
            assert val(o, "00280011") == ds.get("Columns", "")
            frames = text(ds, "NumberOfFrames")
            assert val(o, "00280008") == (int(frames) if frames else "")
    got = client(srv, "searchForInstances")["json"]
    assert sorted(val(o, "00080018") for o in got) == sorted(ref.ds)
    for study, members in ref.studies.items():
        got = client(srv, "searchForInstances", {"studyInstanceUID": study})["json"]
        assert sorted(val(o, "00080018") for o in got) == \
            sorted(m.SOPInstanceUID for m in members)


# ------------------------------------------------------------------ STOW-RS

@pytest.fixture(params=BACKENDS)
def empty(request, tmp_path):
    with serve(tmp_path, request.param) as srv:
        yield srv


def test_store_instances_then_found(empty):
    """storeInstances sends the files' bytes; each is then found by QIDO-RS with its study and
    series, and the archive holds the bytes sent."""
    srv = empty
    sent = {}
    for name in STORED:
        ds = pydicom.dcmread(TEST_FILES / name, stop_before_pixels=True)
        sent[ds.SOPInstanceUID] = (ds, TEST_FILES / name)
    assert len(sent) == len(STORED)
    res = client(srv, "storeInstances", {"files": [str(TEST_FILES / n) for n in STORED]})
    resp = json.loads(res["text"])
    refs = resp["00081199"]["Value"]
    assert sorted(val(r, "00081155") for r in refs) == sorted(sent)
    for r in refs:
        assert val(r, "00081150") == sent[val(r, "00081155")][0].SOPClassUID
    assert "00081198" not in resp
    for sop, (ds, path) in sent.items():
        got = client(srv, "searchForInstances",
                     {"queryParams": {"SOPInstanceUID": sop}})["json"]
        assert [val(o, "00080018") for o in got] == [sop]
        assert val(got[0], "0020000D") == ds.StudyInstanceUID
        assert val(got[0], "0020000E") == ds.SeriesInstanceUID
        blob = run_mira("cat", *srv.archive_args, "--path", sop).stdout.decode().strip()
        assert pathlib.Path(blob).read_bytes() == path.read_bytes()
    got = client(srv, "searchForStudies")["json"]
    assert sorted(val(o, "0020000D") for o in got) == \
        sorted({ds.StudyInstanceUID for ds, _ in sent.values()})


def test_store_into_a_study(empty):
    """storeInstances with studyInstanceUID: POST /studies/{study}; an instance of another
    study is refused (Failed SOP Sequence) and not found, the study's one is."""
    srv = empty
    ct = pydicom.dcmread(TEST_FILES / "CT_small.dcm", stop_before_pixels=True)
    mr = pydicom.dcmread(TEST_FILES / "MR_small.dcm", stop_before_pixels=True)
    res = client(srv, "storeInstances",
                 {"studyInstanceUID": ct.StudyInstanceUID,
                  "files": [str(TEST_FILES / "CT_small.dcm"), str(TEST_FILES / "MR_small.dcm")]})
    resp = json.loads(res["text"])  # (202: the client resolves with the body all the same)
    assert [val(r, "00081155") for r in resp["00081199"]["Value"]] == [ct.SOPInstanceUID]
    assert [val(r, "00081155") for r in resp["00081198"]["Value"]] == [mr.SOPInstanceUID]
    got = client(srv, "searchForInstances")["json"]
    assert [val(o, "00080018") for o in got] == [ct.SOPInstanceUID]


# ------------------------------------------------------------------ WADO-RS: the references

EXPLICIT_LE = "1.2.840.10008.1.2.1"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
NATIVE = {"1.2.840.10008.1.2", EXPLICIT_LE, "1.2.840.10008.1.2.1.99", BIG_ENDIAN}
# lossy syntaxes: a decoder other than pydicom's may differ from it by rounding
LOSSY = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.91",
         "1.2.840.10008.1.2.4.81"}
AS_STORED = [{"mediaType": "application/dicom", "transferSyntaxUID": "*"}]
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT",
            b"UV"}


def meta_end(b):
    """Where the data set of a PS3.10 file starts: after the preamble, "DICM" and the file meta
    elements (group 2, explicit VR little endian, PS3.10 7.1)."""
    assert b[128:132] == b"DICM", "no PS3.10 preamble"
    pos = 132
    while pos + 8 <= len(b) and struct.unpack_from("<H", b, pos)[0] == 2:
        if b[pos + 4:pos + 6] in LONG_VRS:
            pos += 12 + struct.unpack_from("<I", b, pos + 8)[0]
        else:
            pos += 8 + struct.unpack_from("<H", b, pos + 6)[0]
    return pos


def assert_part10(b):
    """A PS3.10 file whose File Meta Information Group Length (0002,0000) is right."""
    end = meta_end(b)
    assert struct.unpack_from("<HH2s", b, 132) == (2, 0, b"UL"), "no group length first"
    assert struct.unpack_from("<I", b, 140)[0] == end - 144, "wrong meta group length"
    return end


def dataset_bytes(b):
    return b[meta_end(b):]


def instance_args(ds):
    return {"studyInstanceUID": ds.StudyInstanceUID, "seriesInstanceUID": ds.SeriesInstanceUID,
            "sopInstanceUID": ds.SOPInstanceUID}


def frame_count(ds):
    return int(ds.get("NumberOfFrames") or 1)


def reference_pixels(ds):
    """pydicom's decoding of a file's pixels: an array (frames, rows, columns[, samples])."""
    ts = ds.file_meta.TransferSyntaxUID
    if ts == "1.2.840.10008.1.2.4.90" and ds.PhotometricInterpretation == "YBR_RCT":
        # Pillow cannot read this one: GDCM decodes it (its own JPEG 2000 decoder)
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            out = pathlib.Path(tmp) / "raw.dcm"
            subprocess.run(["gdcmconv", "--raw", str(ds.filename), str(out)], check=True,
                           capture_output=True, timeout=120)
            raw = pydicom.dcmread(out)
            arr = raw.pixel_array
    else:
        arr = ds.pixel_array
    if frame_count(ds) == 1:
        arr = arr[np.newaxis]
    return arr


def native_frames(arr, planar):
    """Frames of pixel values as native little-endian bytes (PS3.5 8.1, 8.2), each colour
    plane whole when planar (Planar Configuration 1)."""
    out = []
    for f in arr:
        if planar and f.ndim == 3:
            f = np.moveaxis(f, -1, 0)
        out.append(np.ascontiguousarray(f).astype(f.dtype.newbyteorder("<")).tobytes())
    return out


def values_close(got, want, dtype, lossy):
    a = np.frombuffer(got, dtype=dtype).astype(np.int64)
    b = np.frombuffer(want, dtype=dtype).astype(np.int64)
    assert a.shape == b.shape, (a.shape, b.shape)
    if lossy:
        # another decoder than pydicom's (Pillow's) may round differently
        assert np.abs(a - b).max() <= 2 and np.abs(a - b).mean() < 0.5
    else:
        assert np.array_equal(a, b)


def pixel_dtype(ds):
    bits = int(ds.BitsAllocated)
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    return np.dtype(("<i" if signed else "<u") + str(bits // 8))


# ------------------------------------------------------------------ comparing attributes

BULK = b"\0mira-test-bulk:"
EMPTY = (None, "", b"", [])


def from_json(obj, bulk):
    """A DICOM JSON object read by pydicom; each BulkDataURI is recorded in bulk (tag -> URI)
    and its value is a marker."""
    def handler(tag, vr, uri):
        bulk.setdefault(tag.upper(), []).append(uri)
        return BULK + uri.encode()
    return pydicom.Dataset.from_json(obj, bulk_data_uri_handler=handler)


def raw_value(ds, tag):
    """The undecoded bytes of an element as the file holds it."""
    e = ds.get_item(tag)
    v = e.value
    return v if isinstance(v, bytes) else None


def binary_equal(got, want, vr, big_endian):
    """got is little endian (JSON InlineBinary and Explicit VR Little Endian alike); want as
    the file holds it."""
    size = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8, "US": 2, "SS": 2, "UL": 4, "SL": 4,
            "FL": 4, "FD": 8}.get(vr, 1)
    if big_endian and size > 1:
        n = len(want) // size * size
        want = np.frombuffer(want[:n], dtype=f">u{size}").astype(f"<u{size}").tobytes() + \
            want[n:]
    return got == want


def same_value(g, w, vr):
    if g.value in EMPTY and w.value in EMPTY:
        return True
    gv = g.value if g.VM > 1 or isinstance(g.value, list) else [g.value]
    wv = w.value if w.VM > 1 or isinstance(w.value, list) else [w.value]
    gv, wv = list(gv), list(wv)
    if len(gv) != len(wv):
        return False
    for a, b in zip(gv, wv):
        if vr == "FL":
            if np.float32(a) != np.float32(b):
                return False
        elif vr in ("PN",):
            if str(a).rstrip("=") != str(b).rstrip("="):
                return False
        elif vr in ("DS",):
            if float(a) != float(b):
                return False
        elif vr in ("IS", "US", "SS", "UL", "SL", "AT", "SV", "UV"):
            if int(a) != int(b):
                return False
        elif vr == "FD":
            if float(a) != float(b):
                return False
        elif isinstance(b, str) or isinstance(a, str):
            if str(a).rstrip(" \0") != str(b).rstrip(" \0"):
                return False
        elif a != b:
            return False
    return True


def assert_same_attributes(got, want, where, big_endian=False, skip=(), bulk_ok=False):
    """Every element of want (a data set read from a file) is in got with an equal value, and
    got has no other; group lengths and trailing padding aside, and the tags in skip. Binary
    values in got are little endian; a BulkDataURI marker stands for any value if bulk_ok."""
    def keep(tag):
        return tag.element != 0 and tag != 0xFFFCFFFC and tag.group != 2 and tag not in skip
    gtags = sorted(t for t in got.keys() if keep(t))
    wtags = sorted(t for t in want.keys() if keep(t))
    assert gtags == wtags, (f"{where}: elements differ: only in the answer "
                            f"{sorted(set(gtags) - set(wtags))}, only in the file "
                            f"{sorted(set(wtags) - set(gtags))}")
    for tag in wtags:
        g, w = got[tag], want[tag]
        at = f"{where} {tag}"
        if isinstance(g.value, bytes) and g.value.startswith(BULK):
            assert bulk_ok, f"{at}: a BulkDataURI where none was expected"
            continue
        if w.VR == "SQ" or g.VR == "SQ":
            assert g.VR == w.VR == "SQ", f"{at}: VR {g.VR} for {w.VR}"
            assert len(g.value) == len(w.value), f"{at}: {len(g.value)} items, not {len(w.value)}"
            for i, (gi, wi) in enumerate(zip(g.value, w.value)):
                assert_same_attributes(gi, wi, f"{at}[{i}]", big_endian, skip, bulk_ok)
            continue
        if "UN" in (g.VR, w.VR) and g.VR != w.VR:
            # a private element the file has in implicit VR: pydicom may know its VR, the
            # server need not; the bytes are the same
            graw = g.value if g.VR == "UN" else raw_value(got, tag)
            wraw = raw_value(want, tag) if w.VR != "UN" else w.value
            if wraw is None:
                wraw = w.value
            assert graw == wraw or binary_equal(graw, wraw, w.VR, big_endian), at
            continue
        assert g.VR == w.VR or {g.VR, w.VR} <= {"OB", "OW"} or \
            {g.VR, w.VR} <= {"US", "SS"}, f"{at}: VR {g.VR} for {w.VR}"
        if isinstance(w.value, bytes) or isinstance(g.value, bytes):
            assert isinstance(g.value, bytes) and isinstance(w.value, bytes), at
            assert binary_equal(g.value, w.value, w.VR, big_endian), \
                f"{at}: {g.value[:32]!r} for {w.value[:32]!r}"
            continue
        assert same_value(g, w, w.VR), f"{at}: {g.value!r} for {w.value!r}"


def pixel_module_skip(want):
    """What decompressing an instance may change (PS3.5 8.2): the pixel data themselves and,
    for colour, the photometric interpretation and planar configuration (checked apart)."""
    skip = {0x7FE00010}
    if want.file_meta.TransferSyntaxUID not in NATIVE and int(want.get("SamplesPerPixel", 1)) > 1:
        skip |= {0x00280004, 0x00280006}
    return skip


# ------------------------------------------------------------------ WADO-RS: instances

def retrieved(res):
    """{SOP Instance UID: (bytes, pydicom data set)} of a retrieve's parts."""
    out = {}
    for data, _ in parts(res):
        ds = pydicom.dcmread(io.BytesIO(data))
        assert ds.SOPInstanceUID not in out, f"{ds.SOPInstanceUID} twice"
        out[ds.SOPInstanceUID] = (data, ds)
    return out


def assert_as_stored(ref, got):
    """Each retrieved instance is its file's data set byte for byte, in its transfer syntax."""
    for sop, (data, ds) in got.items():
        want = ref.ds[sop]
        assert_part10(data)
        assert dataset_bytes(data) == dataset_bytes(ref.path[sop].read_bytes()), \
            f"{ref.path[sop].name}: the data set is not the one stored"
        for k in ("TransferSyntaxUID", "MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID"):
            assert ds.file_meta.get(k) == want.file_meta.get(k), (ref.path[sop].name, k)


def test_retrieve_study_as_stored(served, tmp_path):
    """retrieveStudy with transfer syntax *: every instance of each study, as stored."""
    srv, ref = served
    for i, (study, members) in enumerate(ref.studies.items()):
        res = client(srv, "retrieveStudy", {"studyInstanceUID": study, "mediaTypes": AS_STORED},
                     tmp_path / str(i))
        got = retrieved(res)
        assert sorted(got) == sorted(m.SOPInstanceUID for m in members)
        assert_as_stored(ref, got)


def test_retrieve_series_and_instance_as_stored(served, tmp_path):
    srv, ref = served
    for i, (series, members) in enumerate(ref.series.items()):
        res = client(srv, "retrieveSeries",
                     {"studyInstanceUID": members[0].StudyInstanceUID,
                      "seriesInstanceUID": series, "mediaTypes": AS_STORED}, tmp_path / f"s{i}")
        got = retrieved(res)
        assert sorted(got) == sorted(m.SOPInstanceUID for m in members)
        assert_as_stored(ref, got)
    for i, (sop, want) in enumerate(ref.ds.items()):
        res = client(srv, "retrieveInstance", {**instance_args(want), "mediaTypes": AS_STORED},
                     tmp_path / f"i{i}")
        got = retrieved(res)
        assert list(got) == [sop]
        assert_as_stored(ref, got)


def assert_decompressed_pixels(got, want, where):
    """got's pixel data (native little endian) are want's pixels as pydicom decodes them."""
    ts = want.file_meta.TransferSyntaxUID
    assert int(got.Rows) == int(want.Rows) and int(got.Columns) == int(want.Columns)
    assert int(got.BitsAllocated) == int(want.BitsAllocated)
    assert int(got.SamplesPerPixel) == int(want.SamplesPerPixel)
    if int(want.BitsAllocated) == 1:
        assert ts in NATIVE
        assert got.PixelData[:len(want.PixelData)] == want.PixelData, where
        return
    planar = int(got.get("PlanarConfiguration", 0)) == 1
    arr = reference_pixels(want)
    photometric = str(want.PhotometricInterpretation)
    if int(want.SamplesPerPixel) == 3:
        if photometric in ("YBR_RCT", "YBR_ICT"):
            # the JPEG 2000 decoder undoes the component transform (PS3.5 8.2.4)
            assert got.PhotometricInterpretation == "RGB", where
        elif photometric.startswith("YBR_FULL") and ts not in NATIVE:
            # decompressed JPEG: RGB (converted) or YBR_FULL (as coded), PS3.5 8.2.1
            assert got.PhotometricInterpretation in ("RGB", "YBR_FULL"), where
            if got.PhotometricInterpretation == "RGB":
                from pydicom.pixel_data_handlers.util import convert_color_space
                arr = np.stack([convert_color_space(f, "YBR_FULL", "RGB") for f in arr])
        else:
            assert got.PhotometricInterpretation == photometric, where
    else:
        assert got.PhotometricInterpretation == photometric, where
    frame = len(native_frames(arr[:1], planar)[0])
    data = got.PixelData
    frames = [data[i * frame:(i + 1) * frame] for i in range(frame_count(want))]
    assert len(data) in (frame * len(frames), frame * len(frames) + 1), where
    for f, w in zip(frames, native_frames(arr, planar)):
        values_close(f, w, pixel_dtype(want), ts in LOSSY)


def test_retrieve_instance_explicit_little_endian(served, tmp_path):
    """retrieveInstance with no transfer syntax asked for: Explicit VR Little Endian (PS3.18
    8.7.3.5.2), every attribute of the file with its value and the pixels decompressed."""
    srv, ref = served
    for i, (sop, want) in enumerate(ref.ds.items()):
        name = ref.path[sop].name
        res = client(srv, "retrieveInstance", instance_args(want), tmp_path / str(i))
        got = retrieved(res)
        assert list(got) == [sop]
        data, ds = got[sop]
        assert_part10(data)
        assert ds.file_meta.TransferSyntaxUID == EXPLICIT_LE, name
        # (the file's, which for rtdose.dcm is not its SOP Instance UID)
        assert ds.file_meta.MediaStorageSOPInstanceUID in \
            (sop, want.file_meta.MediaStorageSOPInstanceUID), name
        assert_same_attributes(ds, want, name,
                               big_endian=want.file_meta.TransferSyntaxUID == BIG_ENDIAN,
                               skip=pixel_module_skip(want))
        if "PixelData" in want:
            assert_decompressed_pixels(ds, want, name)


def test_retrieve_study_explicit_little_endian(served, tmp_path):
    srv, ref = served
    for i, (study, members) in enumerate(ref.studies.items()):
        res = client(srv, "retrieveStudy", {"studyInstanceUID": study}, tmp_path / str(i))
        got = retrieved(res)
        assert sorted(got) == sorted(m.SOPInstanceUID for m in members)
        for sop, (data, ds) in got.items():
            assert ds.file_meta.TransferSyntaxUID == EXPLICIT_LE
            want = ref.ds[sop]
            assert_same_attributes(ds, want, ref.path[sop].name,
                                   big_endian=want.file_meta.TransferSyntaxUID == BIG_ENDIAN,
                                   skip=pixel_module_skip(want))


# ------------------------------------------------------------------ WADO-RS: metadata

def assert_metadata(objs, ref, members, where):
    """Each DICOM JSON object is an instance's attributes as its file holds them; pixel data
    and other bulk data by BulkDataURI. Returns {SOP Instance UID: {tag: [URI]}}."""
    assert isinstance(objs, list)
    uris = {}
    for obj in objs:
        bulk = {}
        ds = from_json(obj, bulk)
        sop = ds.SOPInstanceUID
        assert sop not in uris
        want = ref.ds[sop]
        assert_same_attributes(ds, want, f"{where} {ref.path[sop].name}",
                               skip={0x7FE00010}, bulk_ok=True)
        if "PixelData" in want:
            assert "7FE00010" in bulk, f"{ref.path[sop].name}: pixel data not by BulkDataURI"
        uris[sop] = bulk
    assert sorted(uris) == sorted(m.SOPInstanceUID for m in members)
    return uris


def test_study_series_and_instance_metadata(served):
    srv, ref = served
    for study, members in ref.studies.items():
        objs = client(srv, "retrieveStudyMetadata", {"studyInstanceUID": study})["json"]
        assert_metadata(objs, ref, members, "study metadata")
    for series, members in ref.series.items():
        objs = client(srv, "retrieveSeriesMetadata",
                      {"studyInstanceUID": members[0].StudyInstanceUID,
                       "seriesInstanceUID": series})["json"]
        assert_metadata(objs, ref, members, "series metadata")
    for sop, want in ref.ds.items():
        objs = client(srv, "retrieveInstanceMetadata", instance_args(want))["json"]
        assert_metadata(objs, ref, [want], "instance metadata")


def test_bulk_data_of_the_metadata(served, tmp_path):
    """Each BulkDataURI of the metadata, retrieved with retrieveBulkData, is the element's value
    (little endian); native pixel data are the file's."""
    srv, ref = served
    fetched = 0
    for i, (sop, want) in enumerate(ref.ds.items()):
        big = want.file_meta.TransferSyntaxUID == BIG_ENDIAN
        if big:
            continue  # test_bulk_data_of_a_big_endian_instance
        fetched += check_bulk_data(srv, ref, want, tmp_path / str(i))
    assert fetched >= 5


def check_bulk_data(srv, ref, want, out):
    """Each BulkDataURI of an instance's metadata (its top-level elements) against the file's
    value; returns how many were compared."""
    objs = client(srv, "retrieveInstanceMetadata", instance_args(want))["json"]
    bulk = {}
    from_json(objs[0], bulk)
    big = want.file_meta.TransferSyntaxUID == BIG_ENDIAN
    fetched = 0
    for tag, uris in bulk.items():
        if int(tag, 16) not in want or len(uris) > 1:
            continue  # (an element inside a sequence)
        if tag == "7FE00010" and want.file_meta.TransferSyntaxUID not in NATIVE:
            continue  # (compressed pixel data: frames are tested apart)
        res = client(srv, "retrieveBulkData", {"BulkDataURI": uris[0]}, out / tag)
        [(data, _)] = parts(res)
        w = want[int(tag, 16)]
        value = w.value if isinstance(w.value, bytes) else raw_value(want, int(tag, 16))
        if len(data) == len(value) + 1:
            data = data[:-1]  # (the value's padding to even length)
        assert binary_equal(data, value, w.VR, big), f"{ref.path[want.SOPInstanceUID].name} {tag}"
        fetched += 1
    return fetched


# ------------------------------------------------------------------ WADO-RS: frames

def pixel_instances(ref):
    """The instances with pixels of 8 to 32 bits (1-bit frames are not whole bytes)."""
    return [ds for ds in ref.ds.values()
            if "PixelData" in ds and int(ds.BitsAllocated) >= 8]


def test_frames_uncompressed(served, tmp_path):
    """retrieveInstanceFrames (application/octet-stream): each frame asked for, in native
    little endian, equal to pydicom's decoding of the file; first, last and some between of
    the multi-frame ones."""
    srv, ref = served
    instances = pixel_instances(ref)
    assert sum(frame_count(ds) > 1 for ds in instances) >= 2
    for i, want in enumerate(instances):
        if want.file_meta.TransferSyntaxUID == BIG_ENDIAN:
            continue  # test_frames_of_a_big_endian_planar_instance
        n = frame_count(want)
        numbers = sorted({1, n, (n + 1) // 2})
        res = client(srv, "retrieveInstanceFrames",
                     {**instance_args(want), "frameNumbers": numbers}, tmp_path / str(i))
        got = parts(res)
        assert len(got) == len(numbers), ref.path[want.SOPInstanceUID].name
        arr = reference_pixels(want)
        native = want.file_meta.TransferSyntaxUID in NATIVE
        planar = native and int(want.get("PlanarConfiguration", 0)) == 1
        expected = [native_frames(arr, planar)]
        if not native and str(want.PhotometricInterpretation).startswith("YBR_FULL"):
            # a decompressed JPEG: pydicom's values are as coded (YBR_FULL); the frames may be
            # those or converted to RGB, as in the instance retrieved decompressed (PS3.5
            # 8.2.1); nothing in the answer says which
            from pydicom.pixel_data_handlers.util import convert_color_space
            rgb = np.stack([convert_color_space(f, "YBR_FULL", "RGB") for f in arr])
            expected.append(native_frames(rgb, planar))
        for (data, info), number in zip(got, numbers):
            assert info["contentType"] == "application/octet-stream", info
            errors = []
            for e in expected:
                try:
                    values_close(data, e[number - 1], pixel_dtype(want),
                                 want.file_meta.TransferSyntaxUID in LOSSY)
                    break
                except AssertionError as exc:
                    errors.append(exc)
            else:
                raise AssertionError(f"{ref.path[want.SOPInstanceUID].name} frame {number}: "
                                     f"{errors}")


def test_frames_of_native_files_are_the_stored_bytes(served, tmp_path):
    """For a file in a little-endian native syntax a frame is a slice of its Pixel Data."""
    srv, ref = served
    for i, want in enumerate(pixel_instances(ref)):
        if want.file_meta.TransferSyntaxUID not in NATIVE - {BIG_ENDIAN}:
            continue
        size = int(want.Rows) * int(want.Columns) * int(want.SamplesPerPixel) * \
            int(want.BitsAllocated) // 8
        n = frame_count(want)
        res = client(srv, "retrieveInstanceFrames",
                     {**instance_args(want), "frameNumbers": list(range(1, n + 1))},
                     tmp_path / str(i))
        got = [d for d, _ in parts(res)]
        assert got == [want.PixelData[k * size:(k + 1) * size] for k in range(n)]


# ------------------------------------------------------------------ WADO-RS: rendered

def image(data):
    from PIL import Image
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def voi_linear(x, center, width):
    """PS3.3 C.11.2.1.2.1 (LINEAR) to 0..255."""
    y = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255
    return np.clip(y, 0, 255)


def by_name(ref, name):
    return ref.ds[pydicom.dcmread(TEST_FILES / name, stop_before_pixels=True).SOPInstanceUID]


def test_rendered_default_jpeg(served, tmp_path):
    """retrieveInstanceRendered with no media type asked for: a JPEG of the image's size."""
    srv, ref = served
    for i, name in enumerate(["CT_small.dcm", "MR_small_RLE.dcm", "ExplVR_BigEnd.dcm",
                              "SC_rgb_jpeg_dcmtk.dcm", "JPEG2000.dcm"]):
        want = by_name(ref, name)
        res = client(srv, "retrieveInstanceRendered", instance_args(want), tmp_path / str(i))
        [(data, info)] = parts(res)
        assert info["contentType"] == "image/jpeg", (name, info)
        im = image(data)
        assert im.format == "JPEG" and im.size == (int(want.Columns), int(want.Rows)), name
        assert im.mode == ("RGB" if int(want.SamplesPerPixel) == 3 else "L"), (name, im.mode)


def test_rendered_png_with_a_window(served, tmp_path):
    """image/png with window=center,width: the stored values through the modality LUT
    (rescale) and the linear VOI function of PS3.3 C.11.2.1.2.1, to within rounding."""
    srv, ref = served
    want = by_name(ref, "CT_small.dcm")
    hu = want.pixel_array * float(want.RescaleSlope) + float(want.RescaleIntercept)
    for i, (center, width) in enumerate([(40, 400), (300, 1500), (-600, 1200)]):
        # (with no function: linear, PS3.18 8.3.5.1.2)
        res = client(srv, "retrieveInstanceRendered",
                     {**instance_args(want), "mediaTypes": [{"mediaType": "image/png"}],
                      "queryParams": {"window": f"{center},{width}"}},
                     tmp_path / str(i))
        [(data, info)] = parts(res)
        assert info["contentType"] == "image/png", info
        im = image(data)
        assert im.format == "PNG" and im.mode == "L" and im.size == (128, 128)
        got = np.asarray(im).astype(np.float64)
        assert np.abs(got - voi_linear(hu, center, width)).max() <= 1.0


def test_rendered_window_function(served, tmp_path):
    """window=center,width,linear (PS3.18 8.3.5.1.2): the same as without the function."""
    srv, ref = served
    want = by_name(ref, "CT_small.dcm")
    hu = want.pixel_array * float(want.RescaleSlope) + float(want.RescaleIntercept)
    res = client(srv, "retrieveInstanceRendered",
                 {**instance_args(want), "mediaTypes": [{"mediaType": "image/png"}],
                  "queryParams": {"window": "40,400,linear"}}, tmp_path)
    [(data, _)] = parts(res)
    got = np.asarray(image(data)).astype(np.float64)
    assert np.abs(got - voi_linear(hu, 40, 400)).max() <= 1.0


def test_rendered_viewport_and_thumbnail(served, tmp_path):
    srv, ref = served
    want = by_name(ref, "CT_small.dcm")
    res = client(srv, "retrieveInstanceRendered",
                 {**instance_args(want), "mediaTypes": [{"mediaType": "image/png"}],
                  "queryParams": {"viewport": "64,64"}}, tmp_path / "v")
    [(data, _)] = parts(res)
    assert image(data).size == (64, 64)
    res = client(srv, "retrieveInstanceThumbnail", instance_args(want), tmp_path / "t")
    [(data, info)] = parts(res)
    assert info["contentType"] in ("image/jpeg", "image/png"), info
    im = image(data)
    assert im.size[0] <= 128 and im.size[1] <= 128 and im.size[0] == im.size[1]


def test_rendered_frames(served, tmp_path):
    """retrieveInstanceFramesRendered, PNG: an RGB frame is its pixels unchanged; a frame of
    the 15-frame dose is that frame's image."""
    srv, ref = served
    want = by_name(ref, "SC_rgb_rle_2frame.dcm")
    arr = reference_pixels(want)
    for number in (1, 2):
        res = client(srv, "retrieveInstanceFramesRendered",
                     {**instance_args(want), "frameNumbers": [number],
                      "mediaTypes": [{"mediaType": "image/png"}]}, tmp_path / f"rgb{number}")
        [(data, _)] = parts(res)
        im = image(data)
        assert im.mode == "RGB" and im.size == (100, 100)
        assert np.array_equal(np.asarray(im), arr[number - 1])
    dose = by_name(ref, "rtdose.dcm")
    frames = reference_pixels(dose).astype(np.float64)
    lo, hi = frames[7].min(), frames[7].max()
    center, width = (lo + hi) / 2 + 0.5, hi - lo + 1
    res = client(srv, "retrieveInstanceFramesRendered",
                 {**instance_args(dose), "frameNumbers": [8],
                  "mediaTypes": [{"mediaType": "image/png"}],
                  "queryParams": {"window": f"{center},{width}"}}, tmp_path / "dose")
    [(data, _)] = parts(res)
    im = image(data)
    assert im.size == (10, 10)
    assert "RescaleSlope" not in dose  # (no modality LUT: the stored values are windowed)
    want8 = voi_linear(frames[7], center, width)
    assert np.abs(np.asarray(im).astype(np.float64) - want8).max() <= 1.0


# ------------------------------------------------------------------ stored, then retrieved

def test_store_instances_then_retrieved_as_sent(empty, tmp_path):
    """What storeInstances sent comes back by retrieveInstance (transfer syntax *) with the
    data set bytes of the file sent."""
    srv = empty
    client(srv, "storeInstances", {"files": [str(TEST_FILES / n) for n in STORED]})
    for i, name in enumerate(STORED):
        want = pydicom.dcmread(TEST_FILES / name)
        res = client(srv, "retrieveInstance", {**instance_args(want), "mediaTypes": AS_STORED},
                     tmp_path / str(i))
        [(data, _)] = parts(res)
        assert_part10(data)
        assert dataset_bytes(data) == dataset_bytes((TEST_FILES / name).read_bytes()), name


def test_storescu_sent_retrieved_byte_identical(tmp_path):
    """Files sent with DCMTK's storescu to the DIMSE port of mira serve, and to storescp in
    bit-preserving mode (-B), come back by WADO-RS (transfer syntax *) with the data set bytes
    storescp received, the transfer syntax negotiated and the original files' values."""
    groups = corpus()
    chosen = {ts: files[:2] for ts, files in groups.items() if ts in NATIVE or
              ts in ("1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.90",
                     "1.2.840.10008.1.2.4.91")}
    assert len(chosen) >= 7, sorted(chosen)
    with Storescp(tmp_path / "scp", extra=["-B", "+xa"]) as scp, \
            MiraServer(tmp_path / "archive", http=True) as srv:
        for ts, files in chosen.items():
            a = storescu(srv.port, "MIRA", files, ts)
            b = storescu(scp.port, "STORESCP", files, ts)
            assert a.returncode == 0 and b.returncode == 0, (a.stderr[-2000:], b.stderr[-2000:])
        received = {f.name.split(".", 1)[1]: f for f in (tmp_path / "scp").iterdir()}
        compared = 0
        for ts, files in chosen.items():
            for p in files:
                want = pydicom.dcmread(p)
                sop = want.SOPInstanceUID
                peer = received[sop].read_bytes()
                out = tmp_path / "out" / sop
                res = client(srv, "retrieveInstance",
                             {**instance_args(want), "mediaTypes": AS_STORED}, out / "stored")
                [(data, _)] = parts(res)
                assert_part10(data)
                if ts == "1.2.840.10008.1.2.1.99":
                    # storescu pads the deflated stream to an even length and storescp -B drops
                    # the pad byte (test_dimse_store): the inflated data sets are the same
                    assert inflate(dataset_bytes(data)) == inflate(dataset_bytes(peer)), p.name
                else:
                    assert dataset_bytes(data) == dataset_bytes(peer), p.name
                ds = pydicom.dcmread(io.BytesIO(data))
                assert ds.file_meta.TransferSyntaxUID == \
                    pydicom.dcmread(io.BytesIO(peer)).file_meta.TransferSyntaxUID == ts
                assert_same_attributes(ds, want, p.name)
                compared += 1
    assert compared >= 10


# ------------------------------------------------------------------ big-endian instances

def test_frames_of_a_big_endian_planar_instance(served, tmp_path):
    srv, ref = served
    want = by_name(ref, "ExplVR_BigEnd.dcm")
    res = client(srv, "retrieveInstanceFrames", {**instance_args(want), "frameNumbers": [1]},
                 tmp_path)
    [(data, _)] = parts(res)
    # native little endian in the instance's Planar Configuration (1), as its metadata says
    assert data == native_frames(reference_pixels(want), planar=True)[0]


def test_bulk_data_of_a_big_endian_instance(served, tmp_path):
    srv, ref = served
    assert check_bulk_data(srv, ref, by_name(ref, "ExplVR_BigEnd.dcm"), tmp_path) >= 1


# ------------------------------------------------------------------ what mira does not do yet
# Each of these fails against mira today; strict, so that a fix shows as XPASS and the marker
# is taken off.

def test_studies_without_patient_id(served):
    srv, ref = served
    got = client(srv, "searchForStudies")["json"]
    names = {val(o, "0020000D"): val(o, "00100010") for o in got}
    for study, members in ref.studies.items():
        if not text(members[0], "PatientID"):
            assert names[study] == text(members[0], "PatientName"), ref.path[
                members[0].SOPInstanceUID].name


@pytest.mark.xfail(strict=True, reason="mira answers 200 and closes the connection with no "
                   "body when JPEG2000-embedded-sequence-delimiter.dcm is asked for in Explicit "
                   "VR Little Endian")
def test_explicit_le_of_jpeg2000_with_embedded_delimiter(tmp_path):
    name = "JPEG2000-embedded-sequence-delimiter.dcm"
    want = pydicom.dcmread(TEST_FILES / name)
    with serve(tmp_path, "sqlite", [name]) as srv:
        res = client(srv, "retrieveInstance", instance_args(want), tmp_path / "out")
        [(data, _)] = parts(res)
        ds = pydicom.dcmread(io.BytesIO(data))
        assert ds.file_meta.TransferSyntaxUID == EXPLICIT_LE
        assert_same_attributes(ds, want, name, skip=pixel_module_skip(want))
        assert_decompressed_pixels(ds, want, name)
