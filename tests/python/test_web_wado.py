"""WADO-RS (PS3.18 10.4) and WADO-URI (PS3.18 9): retrieval of studies, series and instances,
metadata, frames, rendered images, thumbnails and bulk data from mira serve, checked against
the files themselves read with pydicom and numpy (never against mira's own output): what is
retrieved as stored is the stored file byte for byte, what is transcoded decodes (in pydicom)
to the same pixels, metadata is pydicom's JSON of the file, frames are pydicom's pixels,
rendered images are the PS3.3 C.11.2.1.2.1 window computed here."""
import base64
import email.parser
import email.policy
import http.client
import io
import json
import re
import shutil
import subprocess
import warnings

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import generate_pixel_data_frame
from pydicom.uid import generate_uid

from conftest import TEST_FILES, mira_bin, run_mira
from dimse_peers import MiraServer
from test_json import differences, pydicom_json, to_little_endian
from test_web_qido import reference_files
from web_accounts import bearer, make_token

EXPLICIT_LE = "1.2.840.10008.1.2.1"
PIXEL_TAGS = {"7FE00008", "7FE00009", "7FE00010"}
BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}


def quiet_read(src, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(src, **kw)


def request(srv, path, headers=None, method="GET", token=None):
    """(status, response headers, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=120)
    try:
        c.request(method, path, headers={**bearer(token or srv.token), **(headers or {})})
        r = c.getresponse()
        return r.status, r, r.read()
    finally:
        c.close()


def parts(content_type, body):
    """The parts of a multipart/related body: [(part headers, bytes)], strictly parsed."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    assert content_type.startswith("multipart/related") and m, content_type
    b = m.group(1).encode()
    assert body.startswith(b"--" + b + b"\r\n"), body[:100]
    assert body.endswith(b"\r\n--" + b + b"--\r\n"), body[-100:]
    out = []
    for chunk in body[len(b) + 4:-(len(b) + 8)].split(b"\r\n--" + b + b"\r\n"):
        head, sep, data = chunk.partition(b"\r\n\r\n")
        assert sep, chunk[:200]
        h = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(head + b"\r\n\r\n")
        out.append((h, data))
    return out


def dicom_parts(srv, path, accept='multipart/related; type="application/dicom"'):
    st, r, body = request(srv, path, {"Accept": accept} if accept else None)
    assert st == 200, (st, body[:300])
    return parts(r.getheader("Content-Type"), body)


# ------------------------------------------------------------------ archives

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """pydicom's test files that make a consistent archive (as in test_web_qido.py)."""
    d = tmp_path_factory.mktemp("wado")
    chosen = reference_files()
    files = [p for p, _ in chosen]
    run_mira("import", "--archive", d / "archive", "--no-progress", *files)
    with MiraServer(d / "archive", archive_args=["--archive", str(d / "archive")],
                    http=True) as srv:
        yield srv, chosen, d / "archive"


# Files of every pixel encoding, each copied with new UIDs (so that copies of one image in
# several encodings live in one archive): (name, what it is)
PIXEL_FILES = ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "MR_small_bigendian.dcm",
               "MR_small_jpeg_ls_lossless.dcm", "SC_rgb_rle_2frame.dcm",
               "SC_rgb_rle_16bit_2frame.dcm", "rtdose.dcm", "rtdose_rle.dcm",
               "SC_rgb_jpeg_dcmtk.dcm", "JPEG2000.dcm", "SC_rgb.dcm"]


@pytest.fixture(scope="module")
def pixels(tmp_path_factory):
    d = tmp_path_factory.mktemp("wado-pixels")
    src = d / "files"
    src.mkdir()
    out = {}
    for name in PIXEL_FILES:
        path = TEST_FILES / name
        if not path.exists():
            continue
        ds = quiet_read(path)
        ds.StudyInstanceUID = generate_uid()
        ds.SeriesInstanceUID = generate_uid()
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        dst = src / name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.save_as(dst, write_like_original=True)
        out[name] = dst
    assert {"CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "rtdose.dcm",
            "SC_rgb_rle_2frame.dcm"} <= set(out)
    run_mira("import", "--archive", d / "archive", "--no-progress", *out.values())
    with MiraServer(d / "archive", archive_args=["--archive", str(d / "archive")],
                    http=True) as srv:
        yield srv, out


def url(ds, what=""):
    return (f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}{what}")


# ------------------------------------------------------------------ instances

def test_instances_as_stored_are_the_files_byte_for_byte(served):
    srv, chosen, _ = served
    for path, ds in chosen:
        got = dicom_parts(srv, url(ds),
                          'multipart/related; type="application/dicom"; transfer-syntax=*')
        assert len(got) == 1
        h, data = got[0]
        ts = str(quiet_read(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
        assert h["Content-Type"] == f"application/dicom; transfer-syntax={ts}", path.name
        assert data == path.read_bytes(), path.name


def test_retrievals_as_stored_declare_their_length(served):
    """Sent as stored, a retrieval's length is known before its first byte: Content-Length, not
    chunked, and exactly right (two requests on one kept-alive connection: a wrong length
    would break the second answer's framing); transcoded, it is chunked."""
    srv, chosen, _ = served
    path, ds = chosen[0]
    star = 'multipart/related; type="application/dicom"; transfer-syntax=*'
    c = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=120)
    try:
        for target, accept in ((url(ds), star), (f"/dicomweb/studies/{ds.StudyInstanceUID}", star),
                               (url(ds), "application/dicom; transfer-syntax=*"), (url(ds), star)):
            c.request("GET", target, headers={**bearer(srv.token), "Accept": accept})
            r = c.getresponse()
            body = r.read()
            assert r.status == 200 and r.getheader("Transfer-Encoding") is None, target
            assert int(r.getheader("Content-Length")) == len(body), target
            if accept.startswith("application/dicom"):
                assert body == path.read_bytes()
            else:
                got = parts(r.getheader("Content-Type"), body)
                assert got and all(d[128:132] == b"DICM" for _, d in got)
    finally:
        c.close()
    # transcoded parts of a study: their length is not known ahead
    st, r, body = request(srv, f"/dicomweb/studies/{ds.StudyInstanceUID}",
                          {"Accept": 'multipart/related; type="application/dicom"; '
                                     'transfer-syntax=1.2.840.10008.1.2'})
    if st == 200 and len(parts(r.getheader("Content-Type"), body)) > 1:
        assert r.getheader("Transfer-Encoding") == "chunked"


def test_default_transfer_syntax_is_explicit_vr_little_endian(served):
    srv, chosen, _ = served
    # pixel data these two cannot be decoded (12-bit DCT JPEG, beyond Debian's libjpeg-turbo;
    # a J2K codestream whose size contradicts the data set): refused, as they cannot be made
    undecodable = {"JPEG-lossy.dcm", "JPEG2000-embedded-sequence-delimiter.dcm"}
    for path, ds in chosen[:40]:
        if path.name in undecodable:
            st, r, body = request(srv, url(ds))
            assert st == 406 and b"cannot be sent in 1.2.840.10008.1.2.1" in body, body
            continue
        (h, data), = dicom_parts(srv, url(ds), None)  # no Accept: */*
        assert h["Content-Type"] == f"application/dicom; transfer-syntax={EXPLICIT_LE}"
        got = quiet_read(io.BytesIO(data))
        assert got.file_meta.TransferSyntaxUID == EXPLICIT_LE
        want = quiet_read(path)
        for elem in want:  # every attribute is there, with the same value
            if elem.tag.group == 0x7FE0 or elem.VR in ("SQ", "UN") or elem.tag.is_private or \
                    elem.tag.element == 0:  # group lengths (retired) change with the encoding
                continue
            if elem.keyword in ("PhotometricInterpretation", "PlanarConfiguration") and \
                    want.file_meta.TransferSyntaxUID.is_compressed:
                # decoded colour comes out as RGB, interleaved (PS3.5 8.2.1, 8.2.4)
                assert got.get(elem.keyword) in (elem.value, "RGB", 0), (path.name, elem)
                continue
            assert elem.tag in got and got[elem.tag].value == elem.value, (path.name, elem)


def test_study_and_series_retrieval_holds_every_instance(served):
    srv, chosen, _ = served
    by_study, by_series = {}, {}
    for path, ds in chosen:
        by_study.setdefault(ds.StudyInstanceUID, set()).add(ds.SOPInstanceUID)
        by_series.setdefault((ds.StudyInstanceUID, ds.SeriesInstanceUID), set()).add(
            ds.SOPInstanceUID)
    for study, sops in list(by_study.items())[:6]:
        got = dicom_parts(srv, f"/dicomweb/studies/{study}",
                          'multipart/related; type="application/dicom"; transfer-syntax=*')
        assert {quiet_read(io.BytesIO(d)).SOPInstanceUID for _, d in got} == sops
    for (study, series), sops in list(by_series.items())[:6]:
        got = dicom_parts(srv, f"/dicomweb/studies/{study}/series/{series}",
                          'multipart/related; type="application/dicom"; transfer-syntax=*')
        assert {quiet_read(io.BytesIO(d)).SOPInstanceUID for _, d in got} == sops


def test_single_part_application_dicom_for_one_instance(served):
    srv, chosen, _ = served
    path, ds = chosen[0]
    st, r, body = request(srv, url(ds), {"Accept": "application/dicom; transfer-syntax=*"})
    assert st == 200 and r.getheader("Content-Type").startswith("application/dicom")
    assert body == path.read_bytes()
    # a study is several instances: single part is not offered, multipart is
    st, r, body = request(srv, f"/dicomweb/studies/{ds.StudyInstanceUID}",
                          {"Accept": "application/dicom"})
    assert st == 406


def test_transcoding_keeps_the_pixels(pixels):
    """Each file asked for in other syntaxes: pydicom decodes mira's output to the source's
    pixels (lossless sources and lossless targets)."""
    srv, files = pixels
    cases = [("MR_small_RLE.dcm", EXPLICIT_LE), ("MR_small_bigendian.dcm", EXPLICIT_LE),
             ("MR_small.dcm", "1.2.840.10008.1.2.5"), ("CT_small.dcm", "1.2.840.10008.1.2.5"),
             ("CT_small.dcm", "1.2.840.10008.1.2"), ("CT_small.dcm", "1.2.840.10008.1.2.1.99"),
             ("rtdose_rle.dcm", EXPLICIT_LE), ("SC_rgb_rle_2frame.dcm", EXPLICIT_LE),
             ("rtdose.dcm", "1.2.840.10008.1.2.5")]
    for name, ts in cases:
        if name not in files:
            continue
        want = quiet_read(files[name])
        (h, data), = dicom_parts(
            srv, url(want), f'multipart/related; type="application/dicom"; transfer-syntax={ts}')
        assert h["Content-Type"] == f"application/dicom; transfer-syntax={ts}"
        got = quiet_read(io.BytesIO(data))
        assert got.file_meta.TransferSyntaxUID == ts, name
        assert np.array_equal(got.pixel_array, want.pixel_array), (name, ts)
    # JPEG-LS lossless of MR_small decodes (in mira) to MR_small's own pixels
    if "MR_small_jpeg_ls_lossless.dcm" in files:
        ls = quiet_read(files["MR_small_jpeg_ls_lossless.dcm"], stop_before_pixels=True)
        (h, data), = dicom_parts(srv, url(ls), None)
        assert np.array_equal(quiet_read(io.BytesIO(data)).pixel_array,
                              quiet_read(files["MR_small.dcm"]).pixel_array)


def test_a_syntax_that_cannot_be_made_is_406(pixels):
    srv, files = pixels
    ds = quiet_read(files["SC_rgb_jpeg_dcmtk.dcm"], stop_before_pixels=True)
    # mira does not encode lossy JPEG: a native image asked for in it is refused
    ct = quiet_read(files["CT_small.dcm"], stop_before_pixels=True)
    st, r, body = request(srv, url(ct), {
        "Accept": 'multipart/related; type="application/dicom"; '
                  'transfer-syntax=1.2.840.10008.1.2.4.50'})
    assert st == 406 and b"cannot be sent" in body
    # a second choice that can be made is taken
    st, r, body = request(srv, url(ds), {
        "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=1.2.3.4, '
                  'multipart/related; type="application/dicom"; transfer-syntax=*;q=0.5'})
    assert st == 200
    (h, data), = parts(r.getheader("Content-Type"), body)
    assert data == files["SC_rgb_jpeg_dcmtk.dcm"].read_bytes()


# ------------------------------------------------------------------ metadata

def normalized(attrs, is_mira):
    """A JSON model with each bulk value (pixel data, binary values over 1 KiB) as a marker."""
    out = {}
    for tag, a in attrs.items():
        a = dict(a)
        if a.get("vr") == "SQ":
            a["Value"] = [normalized(i, is_mira) for i in a.get("Value", [])]
        elif is_mira and "BulkDataURI" in a:
            a["BulkDataURI"] = "bulk"
        elif not is_mira and a.get("vr") in BINARY_VRS and "InlineBinary" in a and (
                tag in PIXEL_TAGS or len(base64.b64decode(a["InlineBinary"])) > 1024):
            del a["InlineBinary"]
            a["BulkDataURI"] = "bulk"
        out[tag] = a
    return out


def test_series_metadata_is_the_files_in_dicom_json(served):
    srv, chosen, _ = served
    by_series = {}
    for path, ds in chosen:
        by_series.setdefault((ds.StudyInstanceUID, ds.SeriesInstanceUID), []).append(path)
    checked = 0
    for (study, series), paths in by_series.items():
        st, r, body = request(srv, f"/dicomweb/studies/{study}/series/{series}/metadata")
        assert st == 200 and r.getheader("Content-Type") == "application/dicom+json"
        got = {o["00080018"]["Value"][0]: o for o in json.loads(body)}
        assert len(got) == len(paths)
        for p in paths:
            want = quiet_read(p)
            wj = pydicom_json(want)
            if wj is None:
                continue  # pydicom cannot make JSON of it (test_json.py covers mira alone)
            if not want.is_little_endian:
                wj = to_little_endian(wj)
            problems = differences(normalized(wj, False),
                                   normalized(got[want.SOPInstanceUID], True))
            assert not problems, (p.name, problems[:10])
            checked += 1
    assert checked >= 60


def test_bulk_data_uris_retrieve_the_values(served):
    srv, chosen, _ = served
    seen = 0
    for path, ds in chosen:
        st, r, body = request(srv, url(ds, "/metadata"))
        assert st == 200
        (obj,) = json.loads(body)
        want = quiet_read(path)
        if not want.is_little_endian or "7FE00010" not in obj:
            continue
        uri = obj["7FE00010"]["BulkDataURI"]
        assert uri == f"http://127.0.0.1:{srv.http_port}{url(ds, '/bulkdata/7FE00010')}"
        if want.file_meta.TransferSyntaxUID != EXPLICIT_LE:
            continue
        st, r, body = request(srv, uri.split(str(srv.http_port), 1)[1])
        assert st == 200
        ((h, data),) = parts(r.getheader("Content-Type"), body)
        assert h["Content-Type"] == "application/octet-stream"
        assert data == want.PixelData
        seen += 1
        if seen == 5:
            break
    assert seen >= 3


def test_study_metadata_and_metadata_without_the_files(served, tmp_path):
    """Metadata comes from the index, not from the files: with a study's blobs moved away, its
    metadata is still answered (the same), and its retrieval fails."""
    srv, chosen, archive = served
    path, ds = next((p, d) for p, d in chosen if d.Modality == "CT")
    study = ds.StudyInstanceUID
    st, r, before = request(srv, f"/dicomweb/studies/{study}/metadata")
    assert st == 200
    sops = {o["00080018"]["Value"][0] for o in json.loads(before)}
    assert sops == {d.SOPInstanceUID for _, d in chosen if d.StudyInstanceUID == study}
    blobs = [str(p) for p in (archive / "blobs").rglob("*") if p.is_file() and
             quiet_read(p, stop_before_pixels=True).StudyInstanceUID == study]
    assert blobs
    moved = []
    try:
        for b in blobs:
            dst = tmp_path / str(len(moved))
            shutil.move(b, dst)
            moved.append((dst, b))
        st, r, after = request(srv, f"/dicomweb/studies/{study}/metadata")
        assert st == 200 and after == before
    finally:
        for dst, b in moved:
            shutil.move(dst, b)


# ------------------------------------------------------------------ frames

def frame_arrays(ds):
    arr = ds.pixel_array
    n = int(ds.get("NumberOfFrames", 1) or 1)
    return [arr] if n == 1 else list(arr)


def test_frames_uncompressed_are_pydicoms_pixels(pixels):
    srv, files = pixels
    for name in ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "MR_small_bigendian.dcm",
                 "SC_rgb_rle_2frame.dcm", "SC_rgb_rle_16bit_2frame.dcm", "rtdose.dcm",
                 "rtdose_rle.dcm"]:
        if name not in files:
            continue
        ds = quiet_read(files[name])
        want = frame_arrays(ds)
        numbers = list(range(1, len(want) + 1))[:4]
        st, r, body = request(srv, url(ds, "/frames/" + ",".join(map(str, numbers))),
                              {"Accept": 'multipart/related; type="application/octet-stream"'})
        assert st == 200, (name, body[:200])
        got = parts(r.getheader("Content-Type"), body)
        assert len(got) == len(numbers)
        for (h, data), n in zip(got, numbers):
            assert h["Content-Type"] == "application/octet-stream"
            a = want[n - 1]
            assert data == a.astype(a.dtype.newbyteorder("<")).tobytes(), (name, n)
    # MR_small in RLE and big-endian: MR_small's own bytes
    mr = quiet_read(files["MR_small.dcm"])
    for name in ["MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_jpeg_ls_lossless.dcm"]:
        if name in files:
            ds = quiet_read(files[name], stop_before_pixels=True)
            ((h, data),) = dicom_frame(srv, ds, 1)
            assert data == mr.PixelData, name


def dicom_frame(srv, ds, n, accept='multipart/related; type="application/octet-stream"'):
    st, r, body = request(srv, url(ds, f"/frames/{n}"), {"Accept": accept})
    assert st == 200, body[:300]
    return parts(r.getheader("Content-Type"), body)


def test_frames_as_stored_are_the_codestreams(pixels):
    srv, files = pixels
    types = {"1.2.840.10008.1.2.5": "image/dicom-rle", "1.2.840.10008.1.2.4.50": "image/jpeg",
             "1.2.840.10008.1.2.4.91": "image/jp2", "1.2.840.10008.1.2.4.80": "image/jls"}
    seen = 0
    for name, path in files.items():
        ds = quiet_read(path)
        ts = str(ds.file_meta.TransferSyntaxUID)
        if ts not in types:
            continue
        n = int(ds.get("NumberOfFrames", 1) or 1)
        codestreams = list(generate_pixel_data_frame(ds.PixelData, n))
        for k in range(1, min(n, 3) + 1):
            ((h, data),) = dicom_frame(
                srv, ds, k, 'multipart/related; type="application/octet-stream"; '
                            'transfer-syntax=*')
            assert h["Content-Type"] == f"{types[ts]}; transfer-syntax={ts}", name
            assert data == codestreams[k - 1], (name, k)
        # asked for by its own media type
        ((h, data),) = dicom_frame(srv, ds, 1, f'multipart/related; type="{types[ts]}"')
        assert data == codestreams[0]
        seen += 1
    assert seen >= 3


def test_bad_frame_lists(pixels):
    srv, files = pixels
    ds = quiet_read(files["rtdose.dcm"], stop_before_pixels=True)
    for bad in ["0", "1,,2", "a", "1,", "-1", "1;2", "99999999999"]:
        st, r, body = request(srv, url(ds, f"/frames/{bad}"))
        assert st == 400, (bad, st, body)
    st, r, body = request(srv, url(ds, "/frames/16"))  # rtdose has 15
    assert st == 404 and b"has 15" in body
    ds = quiet_read(TEST_FILES / "rtplan.dcm", stop_before_pixels=True)


# ------------------------------------------------------------------ rendered

def window(x, c, w):
    """PS3.3 C.11.2.1.2.1, to 0..255."""
    lo, hi = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
    y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255
    return np.where(x <= lo, 0, np.where(x > hi, 255, y))


def test_rendered_png_is_the_window_of_the_modality_values(pixels):
    srv, files = pixels
    ds = quiet_read(files["CT_small.dcm"])
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    for c, w in [(40, 400), (-600, 1500), (300, 1500)]:
        st, r, body = request(srv, url(ds, f"/rendered?window={c},{w},linear"),
                              {"Accept": "image/png"})
        assert st == 200 and r.getheader("Content-Type") == "image/png"
        img = np.asarray(Image.open(io.BytesIO(body)))
        assert img.shape == hu.shape
        assert np.abs(img.astype(float) - window(hu, c, w)).max() <= 1.0, (c, w)
    # JPEG (the default), lossy: close
    st, r, body = request(srv, url(ds, "/rendered?window=40,400&quality=95"))
    assert st == 200 and r.getheader("Content-Type") == "image/jpeg"
    img = np.asarray(Image.open(io.BytesIO(body)).convert("L")).astype(float)
    assert np.abs(img - window(hu, 40, 400)).mean() < 3


def test_rendered_viewport_frames_and_colour(pixels):
    srv, files = pixels
    ct = quiet_read(files["CT_small.dcm"], stop_before_pixels=True)  # 128 x 128
    for vp, size in [("64,64", (64, 64)), ("100,50", (50, 50)), ("256,512", (256, 256))]:
        st, r, body = request(srv, url(ct, f"/rendered?viewport={vp}"), {"Accept": "image/png"})
        assert st == 200
        assert Image.open(io.BytesIO(body)).size == size, vp
    st, r, body = request(srv, url(ct, "/thumbnail"), {"Accept": "image/png"})
    assert st == 200 and max(Image.open(io.BytesIO(body)).size) == 128
    st, r, body = request(srv, f"/dicomweb/studies/{ct.StudyInstanceUID}/thumbnail")
    assert st == 200 and r.getheader("Content-Type") == "image/jpeg"
    # a frame of a multi-frame RGB image: its pixels (8-bit RGB is shown as it is)
    rgb = quiet_read(files["SC_rgb_rle_2frame.dcm"])
    st, r, body = request(srv, url(rgb, "/frames/2/rendered"), {"Accept": "image/png"})
    assert st == 200
    img = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))
    assert np.array_equal(img, rgb.pixel_array[1])


def test_rendered_errors(pixels, served):
    srv, files = pixels
    ct = quiet_read(files["CT_small.dcm"], stop_before_pixels=True)
    for q in ["window=40", "window=40,0", "window=40,400,cubic", "viewport=0,10",
              "viewport=a,b", "quality=0", "quality=101", "colour=red", "window=1,2&window=3,4"]:
        st, r, body = request(srv, url(ct, "/rendered?" + q))
        assert st == 400, (q, st, body)
    st, r, body = request(srv, url(ct, "/rendered"), {"Accept": "image/gif"})
    assert st == 406
    st, r, body = request(srv, url(ct, "/frames/2/rendered"))
    assert st == 404
    # an instance without pixel data (an SR, a plan) has nothing to render
    srv2, chosen, _ = served
    plan = next(d for p, d in chosen if p.name == "rtplan.dcm")
    st, r, body = request(srv2, url(plan, "/rendered"))
    assert st == 404 and b"no pixel data" in body
    st, r, body = request(srv2, url(plan, "/frames/1"))
    assert st == 404


# ------------------------------------------------------------------ bulk data and Range

def test_bulk_data_single_part_and_ranges(pixels):
    srv, files = pixels
    ds = quiet_read(files["CT_small.dcm"])
    pix = ds.PixelData
    path = url(ds, "/bulkdata/7FE00010")
    st, r, body = request(srv, path, {"Accept": "application/octet-stream"})
    assert st == 200 and body == pix and r.getheader("Accept-Ranges") == "bytes"
    for rng, lo, hi in [("bytes=0-99", 0, 99), ("bytes=100-", 100, len(pix) - 1),
                        ("bytes=-10", len(pix) - 10, len(pix) - 1),
                        ("bytes=5-999999999", 5, len(pix) - 1)]:
        st, r, body = request(srv, path, {"Accept": "application/octet-stream", "Range": rng})
        assert st == 206, rng
        assert body == pix[lo:hi + 1], rng
        assert r.getheader("Content-Range") == f"bytes {lo}-{hi}/{len(pix)}"
    st, r, body = request(srv, path, {"Accept": "application/octet-stream",
                                      "Range": f"bytes={len(pix)}-"})
    assert st == 416 and r.getheader("Content-Range") == f"bytes */{len(pix)}"
    # nested paths, and paths naming nothing
    for bad in ["/bulkdata/7FE00011", "/bulkdata/xyz", "/bulkdata/00081140/0/00081150",
                "/bulkdata/7FE00010/0/7FE00010", "/bulkdata/..%2F..%2Fetc"]:
        st, r, body = request(srv, url(ds, bad))
        assert st in (400, 404), (bad, st)


# ------------------------------------------------------------------ WADO-URI

def test_wado_uri(pixels):
    srv, files = pixels
    ds = quiet_read(files["CT_small.dcm"])
    q = (f"/wado?requestType=WADO&studyUID={ds.StudyInstanceUID}"
         f"&seriesUID={ds.SeriesInstanceUID}&objectUID={ds.SOPInstanceUID}")
    st, r, body = request(srv, q + "&contentType=application/dicom")
    assert st == 200 and r.getheader("Content-Type").startswith("application/dicom")
    got = quiet_read(io.BytesIO(body))
    assert got.file_meta.TransferSyntaxUID == EXPLICIT_LE
    assert np.array_equal(got.pixel_array, ds.pixel_array)
    st, r, body = request(srv, q + "&contentType=application/dicom"
                                   "&transferSyntax=1.2.840.10008.1.2.5")
    assert st == 200 and np.array_equal(quiet_read(io.BytesIO(body)).pixel_array,
                                        ds.pixel_array)
    st, r, body = request(srv, q)  # image/jpeg by default
    assert st == 200 and r.getheader("Content-Type") == "image/jpeg"
    st, r, body = request(srv, q + "&contentType=image/png&windowCenter=40&windowWidth=400"
                                   "&rows=64&columns=64")
    assert st == 200 and r.getheader("Content-Type") == "image/png"
    assert Image.open(io.BytesIO(body)).size == (64, 64)
    for bad in [q.replace("requestType=WADO", "requestType=X"),
                q.replace(f"&objectUID={ds.SOPInstanceUID}", ""),
                q + "&windowCenter=40", q + "&frameNumber=0", q + "&rows=0",
                q + "&contentType=application/dicom&windowWidth=4&windowCenter=1",
                q + "&bogus=1", q + "&objectUID=1.2"]:
        st, r, body = request(srv, bad)
        assert st == 400, (bad, st, body)
    st, r, body = request(srv, q + "&contentType=image/gif")
    assert st == 406
    st, r, body = request(srv, q.replace(ds.SOPInstanceUID, "1.2.3.4.5"))
    assert st == 404


# ------------------------------------------------------------------ errors and access

def test_not_found_methods_and_bad_uids(pixels):
    srv, files = pixels
    ds = quiet_read(files["CT_small.dcm"], stop_before_pixels=True)
    for path in [f"/dicomweb/studies/1.2.3", f"/dicomweb/studies/{ds.StudyInstanceUID}/series/1.2",
                 url(ds).replace(ds.SOPInstanceUID, "1.2.3"), "/dicomweb/studies/1.2/metadata",
                 url(ds, "/nothing"), url(ds, "/frames"), url(ds, "/frames/1/other")]:
        st, r, body = request(srv, path)
        assert st == 404, (path, st)
    for path in ["/dicomweb/studies/1.02/metadata", "/dicomweb/studies/abc",
                 "/dicomweb/studies/1.2/series/..%2F..%2Fetc", url(ds).replace(
                     ds.SOPInstanceUID, "1.2.3'%20OR%201=1")]:
        st, r, body = request(srv, path)
        assert st == 400, (path, st)
    for method in ["PUT", "DELETE", "POST"]:
        st, r, body = request(srv, url(ds), method=method)
        assert st == 405 and r.getheader("Allow") == "GET, HEAD", method
    st, r, body = request(srv, url(ds, "/metadata"), {"Accept": "application/dicom+xml"})
    assert st == 406
    st, r, body = request(srv, url(ds), {"Accept": "text/html"})
    assert st == 406


def test_retrieval_needs_a_token_and_is_audited(pixels, tmp_path):
    srv, files = pixels
    ds = quiet_read(files["CT_small.dcm"], stop_before_pixels=True)
    c = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=30)
    for what in ["", "/metadata", "/frames/1", "/rendered", "/bulkdata/7FE00010"]:
        c.request("GET", url(ds, what))
        r = c.getresponse()
        r.read()
        assert r.status == 401, what
    c.close()
    st, r, body = request(srv, url(ds, "/metadata"))
    assert st == 200
    rows = json.loads(request(srv, "/audit?user=tester",
                              token=make_token(srv._archive_args, "auditor", "admin"))[2])
    mine = [e for e in rows if e["path"] == url(ds, "/metadata")]
    assert mine and ds.StudyInstanceUID in mine[-1]["studies"], mine[-1:]


# ------------------------------------------------------------------ researchers

# identifying attributes of PS3.15 E.1-1 whose values must not appear anywhere in what a
# researcher gets (dates and times may appear inside retained UIDs: checked as attributes)
IDENTIFYING_TEXT = ["PatientName", "PatientID", "OtherPatientIDs", "AccessionNumber",
                    "InstitutionName", "InstitutionAddress", "ReferringPhysicianName",
                    "PerformingPhysicianName", "OperatorsName", "StationName",
                    "DeviceSerialNumber"]
IDENTIFYING_DATES = ["PatientBirthDate", "StudyDate", "SeriesDate", "AcquisitionDate",
                     "ContentDate", "StudyTime", "SeriesTime", "AcquisitionTime"]


def identifying_values(ds):
    """The original values of identifying text attributes, as bytes long enough not to appear
    by chance."""
    out = set()
    for kw in IDENTIFYING_TEXT:
        v = str(ds.get(kw, "") or "").strip()
        if len(v) >= 4:
            out.add(v.encode())
    return out


def assert_dates_gone(got, want):
    for kw in IDENTIFYING_DATES:
        if str(want.get(kw, "") or ""):
            assert str(got.get(kw, "") or "") != str(want.get(kw)), kw


def test_researchers_retrieve_de_identified_data(pixels):
    srv, files = pixels
    tok = make_token(srv._archive_args, "res", "researcher")
    ct = quiet_read(files["CT_small.dcm"])
    secrets = identifying_values(ct)
    assert len(secrets) >= 3, secrets
    # the instance: de-identified (Basic Profile, UIDs kept as QIDO-RS shows them), pixels kept
    st, r, body = request(srv, url(ct), {"Accept": 'multipart/related; type="application/dicom"'},
                          token=tok)
    assert st == 200
    ((h, data),) = parts(r.getheader("Content-Type"), body)
    for v in secrets:
        assert v not in data, v
    got = quiet_read(io.BytesIO(data))
    assert_dates_gone(got, ct)
    assert got.PatientIdentityRemoved == "YES"
    assert got.SOPInstanceUID == ct.SOPInstanceUID
    assert np.array_equal(got.pixel_array, ct.pixel_array)
    # the study, series and metadata the same way
    for path in [f"/dicomweb/studies/{ct.StudyInstanceUID}",
                 f"/dicomweb/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}"]:
        st, r, body = request(srv, path, token=tok)
        assert st == 200 and all(v not in body for v in secrets), path
    for path in [url(ct, "/metadata"), f"/dicomweb/studies/{ct.StudyInstanceUID}/metadata"]:
        st, r, body = request(srv, path, token=tok)
        assert st == 200 and all(v not in body for v in secrets), path
        (obj,) = json.loads(body)
        assert_dates_gone(pydicom.Dataset.from_json(obj, lambda *a: b""), ct)
        assert obj["00120062"]["Value"] == ["YES"]
        assert obj["7FE00010"]["BulkDataURI"].endswith("/bulkdata/7FE00010")
    # frames and rendered images are the pixels, which the profile leaves alone
    st, r, body = request(srv, url(ct, "/frames/1"), token=tok)
    ((h, data),) = parts(r.getheader("Content-Type"), body)
    assert st == 200 and data == ct.PixelData
    st, r, body = request(srv, url(ct, "/rendered"), {"Accept": "image/png"}, token=tok)
    assert st == 200
    # an identifying attribute's bulk data path leads nowhere once de-identified
    st, r, body = request(srv, url(ct, "/bulkdata/00100010"), token=tok)
    assert st == 404


def test_researchers_never_get_images_that_may_show_names(pixels):
    """Secondary capture (and ultrasound, and Burned In Annotation YES) may show identifying
    text in the pixels, which mira does not clean: withheld from researchers."""
    srv, files = pixels
    tok = make_token(srv._archive_args, "res", "researcher")
    sc = quiet_read(files["SC_rgb_rle_2frame.dcm"], stop_before_pixels=True)
    assert sc.SOPClassUID.startswith("1.2.840.10008.5.1.4.1.1.7")  # Secondary Capture
    for what in ["", "/metadata", "/frames/1", "/rendered", "/thumbnail"]:
        st, r, body = request(srv, url(sc, what), token=tok)
        assert st == 403 and b"identifying text" in body, (what, st, body[:200])
    st, r, body = request(srv, f"/dicomweb/studies/{sc.StudyInstanceUID}/metadata", token=tok)
    assert st == 403
    # a clinician gets it
    st, r, body = request(srv, url(sc, "/metadata"))
    assert st == 200


# ------------------------------------------------------------------ QIDO-RS Retrieve URL

def test_search_results_carry_their_retrieve_url(served):
    """PS3.18 Table 10.6.3-3: each match's Retrieve URL (0008,1190) is its WADO-RS resource."""
    srv, chosen, _ = served
    sops_of = {}
    for _, ds in chosen:
        for key in [(ds.StudyInstanceUID,), (ds.StudyInstanceUID, ds.SeriesInstanceUID),
                    (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)]:
            sops_of.setdefault(key, set()).add(ds.SOPInstanceUID)
    base = f"http://127.0.0.1:{srv.http_port}/dicomweb"
    for level, tags in [("studies", ["0020000D"]), ("series", ["0020000D", "0020000E"]),
                        ("instances", ["0020000D", "0020000E", "00080018"])]:
        st, r, body = request(srv, f"/dicomweb/{level}?limit=4")
        assert st == 200
        for obj in json.loads(body):
            uids = tuple(obj[t]["Value"][0] for t in tags)
            want = base + "".join(f"/{n}/{u}" for n, u in
                                  zip(["studies", "series", "instances"], uids))
            assert obj["00081190"] == {"vr": "UR", "Value": [want]}
            got = dicom_parts(srv, want[len(base) - len("/dicomweb"):],
                              'multipart/related; type="application/dicom"; transfer-syntax=*')
            assert {quiet_read(io.BytesIO(d)).SOPInstanceUID for _, d in got} == sops_of[uids]


def test_researchers_pseudonyms_survive_a_restart(tmp_path):
    """The key of the researchers' pseudonyms is kept with the archive (deid.key, 32 bytes,
    mode 0600): a patient's pseudonym is the same after the server restarts, and differs in
    another archive; a damaged key stops the server with a clear error."""
    src = TEST_FILES / "CT_small.dcm"
    ct = quiet_read(src)
    accept = {"Accept": 'multipart/related; type="application/dicom"'}

    def pseudonym(archive_dir):
        run_mira("import", "--archive", str(archive_dir), "--no-progress", str(src))
        with MiraServer(archive_dir, http=True) as srv:
            tok = make_token(["--archive", str(archive_dir)], "res", "researcher")
            st, r, body = request(srv, url(ct), accept, token=tok)
            assert st == 200
            ((_, data),) = parts(r.getheader("Content-Type"), body)
            got = quiet_read(io.BytesIO(data))
            assert str(got.PatientID) != str(ct.PatientID) and got.PatientID
            return str(got.PatientID), str(got.PatientName)

    a = tmp_path / "a"
    first = pseudonym(a)
    key = a / "deid.key"
    assert key.stat().st_size == 32 and key.stat().st_mode & 0o777 == 0o600
    before = key.read_bytes()
    assert pseudonym(a) == first  # restarted: the same pseudonym
    assert key.read_bytes() == before
    assert pseudonym(tmp_path / "b") != first  # another archive, another key
    key.write_bytes(before[:16])
    p = subprocess.run([mira_bin(), "serve", "--archive", str(a), "--bind", "127.0.0.1",
                        "--port", "0", "--http-port", "0"], capture_output=True, timeout=60)
    assert p.returncode != 0 and b"deid.key is not 32 bytes" in p.stderr, p.stderr


# ------------------------------------------------------------------ the metadata cache

def test_series_metadata_follows_every_change_of_the_series(tmp_path):
    """A series' metadata is kept between requests (mdcache.c): each answer must still be what
    the archive holds after instances are added, modified and deleted, plain and gzip'd."""
    import gzip
    src = quiet_read(TEST_FILES / "CT_small.dcm")
    study, series = generate_uid(), generate_uid()
    files = []
    for k in range(6):
        ds = src.copy()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = k + 1
        p = tmp_path / f"i{k}.dcm"
        ds.save_as(p, write_like_original=False)
        files.append(p)
    archive = tmp_path / "archive"
    args = ["--archive", str(archive)]
    run_mira("import", *args, "--no-progress", *files[:5])
    path = f"/dicomweb/studies/{study}/series/{series}/metadata"

    def metadata(gz=False):
        st, r, body = request(srv, path, {"Accept-Encoding": "gzip"} if gz else None)
        assert st == 200, body[:300]
        assert (r.getheader("Content-Encoding") == "gzip") == gz
        return gzip.decompress(body) if gz else body

    def sops(body):
        return sorted(o["00080018"]["Value"][0] for o in json.loads(body))

    def want(paths):
        return sorted(quiet_read(p).SOPInstanceUID for p in paths)

    with MiraServer(archive, archive_args=args, http=True) as srv:
        first = metadata()
        assert sops(first) == want(files[:5])
        assert metadata() == first and metadata(gz=True) == first and metadata(gz=True) == first
        # an instance added (by another process, into the same index)
        run_mira("import", *args, "--no-progress", files[5])
        assert sops(metadata()) == want(files) and sops(metadata(gz=True)) == want(files)
        # the series modified: every instance rewritten
        run_mira("modify", *args, "--level", "series", series, "--set",
                 "SeriesDescription=after the change")
        for body in (metadata(), metadata(gz=True)):
            assert {o["0008103E"]["Value"][0] for o in json.loads(body)} == {"after the change"}
        # an instance deleted
        gone = quiet_read(files[2]).SOPInstanceUID
        run_mira("delete", *args, "--level", "instance", gone)
        left = [p for p in files if quiet_read(p).SOPInstanceUID != gone]
        assert sops(metadata()) == want(left) and sops(metadata(gz=True)) == want(left)
        # each answer is the files as they are now: pydicom's JSON of what mira cat gives
        body = json.loads(metadata())
        for o in body:
            sop = o["00080018"]["Value"][0]
            stored = quiet_read(io.BytesIO(run_mira("cat", *args, sop).stdout))
            assert o["0008103E"]["Value"][0] == stored.SeriesDescription
            assert o["00200013"]["Value"][0] == stored.InstanceNumber
        # the whole series deleted: not found, not an old answer
        run_mira("delete", *args, "--level", "series", series)
        st, _, _ = request(srv, path)
        assert st == 404
