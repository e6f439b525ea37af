"""The codecs on Debian's libraries (libjpeg-turbo, CharLS, OpenJPEG) and mira's lossless encoders.

Inputs are synthetic images written by pydicom at test time (8, 12 and 16 bits, signed and
unsigned, grey and RGB, odd sizes, several frames; see test_pixel_own_codecs.py) and a few of
pydicom's test files. Streams come from independent encoders (DCMTK's dcmcjpeg and dcmcjpls,
GDCM's gdcmconv) and must decode to the values DCMTK's or GDCM's decoders give; what mira
encodes must decode, in DCMTK or GDCM, to exactly the original values.
"""
import json
import shutil
import subprocess
import time

import numpy as np
import pydicom
import pytest

from conftest import TEST_FILES, run_mira, decode_with_peer
from test_pixel_own_codecs import SYNTHETIC, PYDICOM_INPUTS, make_synthetic, stored_values, \
    mira_values

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("dcmcjpeg", "dcmdjpeg", "dcmcjpls", "dcmdjpls",
                                      "dcmdrle", "gdcmconv")),
    reason="DCMTK and GDCM command-line tools are needed")

EIGHT_BIT = [n for n, s in SYNTHETIC.items() if s[3] == 8] + ["SC_rgb_small_odd"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("library_codec_inputs")
    paths = {}
    for i, (name, spec) in enumerate(SYNTHETIC.items()):
        p = d / f"{name}.dcm"
        make_synthetic(p, *spec, seed=100 + i)
        paths[name] = p
    for name, fname in PYDICOM_INPUTS.items():
        paths[name] = TEST_FILES / fname
    return paths


def run(*cmd):
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True, timeout=120)


def ts_of(path):
    return str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)


def peer_values(path, decoder, tmp_path):
    out = tmp_path / (path.stem + ".peer.dcm")
    decode_with_peer(decoder, path, out)
    return stored_values(out)


# ------------------------------------------------------------------ JPEG baseline / extended

# dcmcjpeg options for 8-bit DCT streams: baseline and extended, quality, colour handling
# (+cy: YCbCr, sampled 4:4:4 (+s4), 4:2:2 (+s2, +n2) or 4:1:1 (+n1, +np); +cr: RGB as coded).
JPEG_LOSSY = {
    "baseline_q90": ["+eb", "+q", "90"],
    "baseline_q50": ["+eb", "+q", "50"],
    "extended_q75": ["+ee", "+q", "75"],
    "progressive": ["+ep"],
    "ybr_444": ["+eb", "+cy", "+s4"],
    "ybr_422": ["+eb", "+cy", "+s2"],
    "ybr_422_full": ["+eb", "+cy", "+n2"],
    "ybr_411_full": ["+eb", "+cy", "+n1"],
    "ybr_411_422": ["+eb", "+cy", "+np"],
    "rgb_coded": ["+eb", "+cr"],
}


def jpeg_cases():
    for name in EIGHT_BIT:
        colour = SYNTHETIC.get(name, (0, 0, 3))[2] == 3
        for opts in JPEG_LOSSY:
            if colour or not (opts.startswith("ybr") or opts == "rgb_coded"):
                yield pytest.param(name, opts, id=f"{name}-{opts}")


@pytest.mark.parametrize("name,opts", list(jpeg_cases()))
def test_jpeg_dct_matches_dcmdjpeg(inputs, tmp_path, name, opts):
    enc = tmp_path / "jpeg.dcm"
    run("dcmcjpeg", *JPEG_LOSSY[opts], inputs[name], enc)
    assert ts_of(enc) in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
                          "1.2.840.10008.1.2.4.55")
    if ts_of(enc) == "1.2.840.10008.1.2.4.55":
        # progressive (retired syntax): mira refuses the transfer syntax, clearly
        proc = run_mira("pixels", enc, "-o", tmp_path / "x.raw", check=False)
        assert proc.returncode == 1 and b"transfer syntax" in proc.stderr
        return
    want, dtype = peer_values(enc, ["dcmdjpeg"], tmp_path)
    got = mira_values(enc, dtype, tmp_path)
    assert got.shape == want.shape
    # the same IDCT (islow) and upsampling as IJG's: at most 1 apart, nearly always equal
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1, f"max difference {diff.max()}"
    assert (diff == 0).mean() > 0.99
    # and the reported photometric interpretation is what the values are
    info = run_mira("pixels", enc, "-o", tmp_path / "y.raw", "--json")
    photo = json.loads(info.stdout)["photometric_interpretation"]
    ref = pydicom.dcmread(tmp_path / (enc.stem + ".peer.dcm"), stop_before_pixels=True)
    assert photo == ref.PhotometricInterpretation


def test_jpeg_gdcm_stream(inputs, tmp_path):
    """A baseline stream from another encoder (GDCM, lossy) agrees with dcmdjpeg."""
    enc = tmp_path / "g.dcm"
    run("gdcmconv", "--jpeg", "--lossy", "-q", "90", inputs["u8_odd_2f"], enc)
    want, dtype = peer_values(enc, ["dcmdjpeg"], tmp_path)
    got = mira_values(enc, dtype, tmp_path)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_truncated_jpeg_is_an_error(inputs, tmp_path):
    enc = tmp_path / "jpeg.dcm"
    run("dcmcjpeg", "+eb", inputs["u8_odd_2f"], enc)
    ds = pydicom.dcmread(enc)
    from pydicom.encaps import generate_pixel_data_frame, encapsulate
    frames = [f for f in generate_pixel_data_frame(ds.PixelData, 2)]
    ds.PixelData = encapsulate([frames[0][: len(frames[0]) // 2], frames[1]])
    ds.save_as(tmp_path / "cut.dcm")
    proc = run_mira("pixels", tmp_path / "cut.dcm", "-o", tmp_path / "x.raw", check=False)
    assert proc.returncode == 1
    assert b"frame 1" in proc.stderr and b"JPEG" in proc.stderr
    assert not (tmp_path / "x.raw").exists()


# ------------------------------------------------------------------ JPEG-LS

LS_INPUTS = [n for n in list(SYNTHETIC) + list(PYDICOM_INPUTS)
             if SYNTHETIC.get(n, (0, 0, 1, 8, 8))[4] >= 2]


@pytest.mark.parametrize("name", LS_INPUTS)
def test_jpegls_lossless_stream(inputs, tmp_path, name):
    enc = tmp_path / "ls.dcm"
    run("dcmcjpls", "+el", inputs[name], enc)
    assert ts_of(enc) == "1.2.840.10008.1.2.4.80"
    want, dtype = stored_values(inputs[name])
    got = mira_values(enc, dtype, tmp_path)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("interleave", ["+il", "+is", "+in"])
def test_jpegls_interleave_modes(inputs, tmp_path, interleave):
    """Line, sample and no interleaving (planar scans) all come out interleaved."""
    enc = tmp_path / "ls.dcm"
    run("dcmcjpls", "+el", interleave, inputs["rgb8_2f"], enc)
    want, dtype = stored_values(inputs["rgb8_2f"])
    np.testing.assert_array_equal(mira_values(enc, dtype, tmp_path), want)


@pytest.mark.parametrize("deviation", [1, 3, 10])
# dcmcjpls refuses signed images for near-lossless coding ("Unsupported pixel representation").
@pytest.mark.parametrize("name", ["u12", "u10", "u16", "u8_odd_2f", "rgb8_2f"])
def test_jpegls_near_lossless_matches_dcmdjpls(inputs, tmp_path, name, deviation):
    enc = tmp_path / "nl.dcm"
    run("dcmcjpls", "+en", "+md", str(deviation), inputs[name], enc)
    assert ts_of(enc) == "1.2.840.10008.1.2.4.81"
    want, dtype = peer_values(enc, ["dcmdjpls"], tmp_path)
    got = mira_values(enc, dtype, tmp_path)
    np.testing.assert_array_equal(got, want)  # JPEG-LS decoding is exact arithmetic
    orig, _ = stored_values(inputs[name])
    assert np.abs(got.astype(np.int64) - orig.astype(np.int64)).max() <= deviation


# GDCM's encoder (Debian's GDCM on CharLS 2.4): 12- and 10-bit data coded with P = 16, explicit
# LSE thresholds for NEAR (near-lossless), sample-interleaved colour. Signed data: gdcmconv
# refuses multi-frame signed images, so only the single-frame ones.
GDCM_LS = {"lossless": [], "near2": ["--lossy", "-e", "2"], "near7": ["--lossy", "-e", "7"]}


def gdcm_ls_cases():
    for name in ["u8_odd_2f", "s12_1f", "u12", "u16", "u10", "rgb8_2f", "rgb16", "CT_small",
                 "SC_rgb_small_odd"]:
        for opts in GDCM_LS:
            # gdcmconv makes no lossy copy of it ("Sorry could not derive using input info")
            if not (name == "SC_rgb_small_odd" and opts != "lossless"):
                yield pytest.param(name, opts, id=f"{name}-{opts}")


@pytest.mark.parametrize("name,opts", list(gdcm_ls_cases()))
def test_jpegls_gdcm_stream(inputs, tmp_path, name, opts):
    enc = tmp_path / "g.dcm"
    run("gdcmconv", "-L", *GDCM_LS[opts], inputs[name], enc)
    assert ts_of(enc) == ("1.2.840.10008.1.2.4.80" if opts == "lossless"
                          else "1.2.840.10008.1.2.4.81")
    want, dtype = peer_values(enc, ["gdcmconv", "--raw"], tmp_path)
    got = mira_values(enc, dtype, tmp_path)
    np.testing.assert_array_equal(got, want)  # JPEG-LS decoding is exact arithmetic
    orig, _ = stored_values(inputs[name])
    diff = np.abs(got.astype(np.int64) - orig.astype(np.int64))
    if opts != "lossless":
        # GDCM codes 10- and 12-bit data with P = 16, so a value reconstructed up to NEAR above
        # 2^BitsStored - 1 wraps when masked to Bits Stored (DCMTK's dcmdjpls decodes GDCM's
        # streams to the same values): the deviation is taken modulo 2^BitsStored
        bits = int(pydicom.dcmread(inputs[name], stop_before_pixels=True).BitsStored)
        diff = np.minimum(diff, (1 << bits) - diff)
    assert diff.max() <= (0 if opts == "lossless" else int(GDCM_LS[opts][-1]))


@pytest.mark.parametrize("cut", [0.3, 0.7, 0.95])
def test_truncated_jpegls_is_an_error(inputs, tmp_path, cut):
    """A frame cut short fails at once, naming the row where its data ends (CharLS 2.4.1 spun
    for seconds, or for ever, on such frames)."""
    enc = tmp_path / "ls.dcm"
    run("dcmcjpls", "+el", inputs["u8_odd_2f"], enc)
    ds = pydicom.dcmread(enc)
    from pydicom.encaps import generate_pixel_data_frame, encapsulate
    frames = [f for f in generate_pixel_data_frame(ds.PixelData, 2)]
    ds.PixelData = encapsulate([frames[0][: int(len(frames[0]) * cut)] + b"\xff\xd9", frames[1]])
    ds.save_as(tmp_path / "cut.dcm")
    start = time.monotonic()
    proc = run_mira("pixels", tmp_path / "cut.dcm", "-o", tmp_path / "x.raw", check=False)
    assert time.monotonic() - start < 20
    assert proc.returncode == 1
    assert b"frame 1" in proc.stderr and b"JPEG-LS data ends at row" in proc.stderr
    assert not (tmp_path / "x.raw").exists()


# ------------------------------------------------------------------ mira's lossless encoders

TARGETS = {
    "rle": ("1.2.840.10008.1.2.5", ["dcmdrle"]),
    "jpegls": ("1.2.840.10008.1.2.4.80", ["dcmdjpls"]),
    "j2k": ("1.2.840.10008.1.2.4.90", ["gdcmconv", "--raw"]),
}


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("name", list(SYNTHETIC) + list(PYDICOM_INPUTS))
def test_lossless_encoder_is_exact(inputs, tmp_path, name, target):
    """8/12/16-bit, signed and unsigned, grey and RGB: encode, then decode with a peer."""
    uid, decoder = TARGETS[target]
    out = tmp_path / "o.dcm"
    run_mira("transcode", inputs[name], "-o", out, "-t", target)
    assert ts_of(out) == uid
    want, dtype = stored_values(inputs[name])
    got, _ = peer_values(out, decoder, tmp_path)
    np.testing.assert_array_equal(got.astype(dtype), want)
    np.testing.assert_array_equal(mira_values(out, dtype, tmp_path), want)
