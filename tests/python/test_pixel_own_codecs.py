"""mira's own RLE Lossless and JPEG Lossless decoders against DCMTK, GDCM and pydicom.

Inputs are made at test time: synthetic images written with pydicom (8, 12 and 16 bits,
signed and unsigned, grey and RGB, odd sizes, several frames) and pydicom's own test files,
encoded with dcmcjpeg (every selection value, SV1, a point transform), gdcmconv --jpeg and
dcmcrle. `mira pixels` must give the original stored values (masked to Bits Stored,
sign-extended, little-endian, samples interleaved, frames one after the other) and the
same values as dcmdjpeg / dcmdrle.
"""
import shutil
import subprocess

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from conftest import TEST_FILES, run_mira

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("dcmcjpeg", "dcmdjpeg", "dcmcrle", "dcmdrle", "gdcmconv")),
    reason="DCMTK and GDCM command-line tools are needed")

# name: rows, columns, samples, bits allocated, bits stored, signed, frames
SYNTHETIC = {
    "u8_odd_2f": (33, 17, 1, 8, 8, False, 2),
    "s12_2f": (31, 29, 1, 16, 12, True, 2),
    "s12_1f": (31, 29, 1, 16, 12, True, 1),
    "u12": (21, 23, 1, 16, 12, False, 1),
    "u16": (27, 19, 1, 16, 16, False, 2),
    "s16_2f": (27, 19, 1, 16, 16, True, 2),
    "u10": (9, 5, 1, 16, 10, False, 1),
    "rgb8_2f": (13, 11, 3, 8, 8, False, 2),
    "rgb16": (9, 7, 3, 16, 16, False, 1),
    "one_pixel": (1, 1, 1, 8, 8, False, 1),
}
PYDICOM_INPUTS = {
    "CT_small": "CT_small.dcm",            # 16-bit signed
    "MR_small": "MR_small.dcm",            # 16-bit signed
    "SC_rgb_small_odd": "SC_rgb_small_odd.dcm",  # 8-bit RGB, odd size
}
ALL_INPUTS = list(SYNTHETIC) + list(PYDICOM_INPUTS)

# Encodings: name -> (tool, options). Lossless ones are compared with the original too.
JPEG_LOSSLESS = {f"dcmtk_sv{sv}": ("dcmcjpeg", ["+el", "+sv", str(sv)]) for sv in range(1, 8)}
JPEG_LOSSLESS["dcmtk_sv1_ts70"] = ("dcmcjpeg", ["+e1"])
JPEG_LOSSLESS["gdcm"] = ("gdcmconv", ["--jpeg"])
RLE = {"dcmtk_rle": ("dcmcrle", [])}
# A point transform makes the stream lossy: compared with dcmdjpeg only.
POINT_TRANSFORM = {"dcmtk_sv4_pt2": ("dcmcjpeg", ["+el", "+sv", "4", "+pt", "2"]),
                   "dcmtk_sv7_pt3": ("dcmcjpeg", ["+el", "+sv", "7", "+pt", "3"])}

# gdcmconv 3.0.21 fails to write these ("Failed to write"): signed multi-frame images.
GDCM_CANNOT = {"s12_2f", "s16_2f"}


def make_synthetic(path, rows, cols, spp, bits, stored, signed, frames, seed):
    """A smooth ramp with noise and random pixels, stored as the data set declares."""
    rng = np.random.default_rng(seed)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Test^Codec"
    ds.Modality = "OT"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, spp
    ds.PhotometricInterpretation = "RGB" if spp == 3 else "MONOCHROME2"
    if spp == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, stored, stored - 1
    ds.PixelRepresentation = int(signed)
    if frames > 1:
        ds.NumberOfFrames = frames
    shape = (frames, rows, cols, spp)
    lo, hi = (-(1 << (stored - 1)), 1 << (stored - 1)) if signed else (0, 1 << stored)
    noise = rng.integers(lo, hi, size=shape, dtype=np.int64)
    ramp = np.linspace(lo, hi - 1, rows * cols).reshape(1, rows, cols, 1).astype(np.int64)
    ramp = np.clip(ramp + rng.integers(-3, 4, size=shape), lo, hi - 1)
    values = np.where(rng.random(shape) < 0.8, ramp, noise)
    values[0, 0, 0, 0] = lo  # the extremes, for the SSSS 16 / wrap-around cases
    values[-1, -1, -1, -1] = hi - 1
    # stored as two's complement of the whole sample (sign bits set above Bits Stored)
    raw = (values & ((1 << bits) - 1)).astype({8: "<u1", 16: "<u2"}[bits])
    ds.PixelData = raw.tobytes()
    ds.save_as(path, write_like_original=False)


def stored_values(path):
    """The stored values of an image file as mira pixels writes them, from pydicom."""
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    bits, stored = ds.BitsAllocated, ds.BitsStored
    v = arr.astype(np.int64).reshape(frames, -1) & ((1 << stored) - 1)
    signed = int(ds.PixelRepresentation) == 1
    if signed:
        v = np.where(v >= 1 << (stored - 1), v - (1 << stored), v)
    dtype = ("<i" if signed else "<u") + str(max(bits, 8) // 8)
    return v.astype(dtype).ravel(), dtype


def mira_values(path, dtype, tmp_path):
    out = tmp_path / (path.name + ".raw")
    run_mira("pixels", path, "-o", out)
    return np.fromfile(out, dtype=dtype)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("own_codecs_inputs")
    paths = {}
    for i, (name, spec) in enumerate(SYNTHETIC.items()):
        p = d / f"{name}.dcm"
        make_synthetic(p, *spec, seed=i)
        paths[name] = p
    for name, fname in PYDICOM_INPUTS.items():
        paths[name] = TEST_FILES / fname
    return paths


def encode(tool, opts, src, dst):
    subprocess.run([tool, *opts, str(src), str(dst)], check=True, capture_output=True,
                   timeout=120)


def check_against_peer_decoder(encoded, decoder, tmp_path):
    """mira's values equal those of the DCMTK decoder run on the same file."""
    ref = tmp_path / (encoded.stem + ".peer.dcm")
    subprocess.run([decoder, str(encoded), str(ref)], check=True, capture_output=True,
                   timeout=120)
    want, dtype = stored_values(ref)
    got = mira_values(encoded, dtype, tmp_path)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def lossless_cases():
    for name in ALL_INPUTS:
        for enc in JPEG_LOSSLESS:
            if enc == "gdcm" and name in GDCM_CANNOT:
                continue
            yield pytest.param(name, enc, id=f"{name}-{enc}")
        yield pytest.param(name, "dcmtk_rle", id=f"{name}-dcmtk_rle")


@pytest.mark.parametrize("name,enc", list(lossless_cases()))
def test_lossless_streams_give_the_original_values(inputs, tmp_path, name, enc):
    tool, opts = {**JPEG_LOSSLESS, **RLE}[enc]
    src = inputs[name]
    encoded = tmp_path / f"{name}.{enc}.dcm"
    encode(tool, opts, src, encoded)
    ts = str(pydicom.dcmread(encoded, stop_before_pixels=True).file_meta.TransferSyntaxUID)
    expected_ts = {"dcmcjpeg": ("1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"),
                   "gdcmconv": ("1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"),
                   "dcmcrle": ("1.2.840.10008.1.2.5",)}[tool]
    assert ts in expected_ts, f"{tool} wrote transfer syntax {ts}"
    want, dtype = stored_values(src)
    got = mira_values(encoded, dtype, tmp_path)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    if tool != "gdcmconv":
        check_against_peer_decoder(encoded, "dcmdrle" if tool == "dcmcrle" else "dcmdjpeg",
                                   tmp_path)


@pytest.mark.parametrize("name", ["s12_1f", "u16", "rgb8_2f", "CT_small"])
@pytest.mark.parametrize("enc", list(POINT_TRANSFORM))
def test_point_transform_matches_dcmdjpeg(inputs, tmp_path, name, enc):
    tool, opts = POINT_TRANSFORM[enc]
    encoded = tmp_path / f"{name}.{enc}.dcm"
    encode(tool, opts, inputs[name], encoded)
    check_against_peer_decoder(encoded, "dcmdjpeg", tmp_path)


@pytest.mark.parametrize("fname", [
    "MR_small_RLE.dcm", "SC_rgb_rle.dcm", "SC_rgb_rle_2frame.dcm", "SC_rgb_rle_16bit.dcm",
    "SC_rgb_rle_16bit_2frame.dcm", "SC_rgb_rle_32bit.dcm", "SC_rgb_rle_32bit_2frame.dcm",
    "rtdose_rle.dcm", "rtdose_rle_1frame.dcm"])
def test_pydicom_rle_files(tmp_path, fname):
    # pydicom's own RLE decoder is the reference
    src = TEST_FILES / fname
    want, dtype = stored_values(src)
    got = mira_values(src, dtype, tmp_path)
    np.testing.assert_array_equal(got, want)
    check_against_peer_decoder(src, "dcmdrle", tmp_path)


def test_pydicom_rle_matches_uncompressed_original(tmp_path):
    want, dtype = stored_values(TEST_FILES / "MR_small.dcm")
    got = mira_values(TEST_FILES / "MR_small_RLE.dcm", dtype, tmp_path)
    np.testing.assert_array_equal(got, want)


def test_gdcm_jpeg_lossless_file(tmp_path):
    # SC_rgb_jpeg_gdcm.dcm: 8-bit RGB JPEG Lossless SV1 written by GDCM
    check_against_peer_decoder(TEST_FILES / "SC_rgb_jpeg_gdcm.dcm", "dcmdjpeg", tmp_path)


def test_gdcm_decoder_agrees_on_dcmtk_streams(inputs, tmp_path):
    # a second decoder as reference for a few DCMTK streams
    for name, sv in (("s12_1f", "3"), ("rgb16", "6"), ("CT_small", "7")):
        encoded = tmp_path / f"{name}.sv{sv}.dcm"
        encode("dcmcjpeg", ["+el", "+sv", sv], inputs[name], encoded)
        ref = tmp_path / f"{name}.sv{sv}.gdcm.dcm"
        subprocess.run(["gdcmconv", "--raw", str(encoded), str(ref)], check=True,
                       capture_output=True, timeout=120)
        want, dtype = stored_values(ref)
        np.testing.assert_array_equal(mira_values(encoded, dtype, tmp_path), want)


def test_corrupt_jpeg_stream_is_an_error(inputs, tmp_path):
    encoded = tmp_path / "u16.sv1.dcm"
    encode("dcmcjpeg", ["+e1"], inputs["u16"], encoded)
    data = bytearray(encoded.read_bytes())
    # cut the entropy-coded data of the first frame short: replace its second half by an EOI
    # followed by zeros, keeping every length intact
    sos = data.find(b"\xff\xda")
    eoi = data.find(b"\xff\xd9", sos)
    mid = (sos + eoi) // 2
    data[mid:eoi + 2] = b"\xff\xd9" + bytes(eoi + 2 - mid - 2)
    bad = tmp_path / "cut.dcm"
    bad.write_bytes(bytes(data))
    proc = run_mira("pixels", bad, "-o", tmp_path / "cut.raw", check=False)
    assert proc.returncode == 1
    assert b"the scan's data ends in row" in proc.stderr
