"""`mira render` against DCMTK's dcm2pnm (same window, +-1 for rounding) and pydicom's LUTs.

dcm2pnm writes PNG too (+on); both PNGs are decoded with pypng, an independent decoder.
"""
import subprocess

import numpy as np
import png
import pydicom
import pytest
from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut, apply_color_lut

from conftest import TEST_FILES, run_mira

UNCOMPRESSED_MONO = [
    "CT_small.dcm", "MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm",
    "MR_small_padded.dcm", "rtdose.dcm", "image_dfl.dcm",
    "dicomdirtests/77654033/CR1/6154", "dicomdirtests/77654033/CT2/17106",
    "dicomdirtests/98892003/MR700/4467", "dicomdirtests/98892001/CT2N/6293",
]
UNCOMPRESSED_COLOUR = ["SC_rgb_small_odd.dcm", "ExplVR_BigEnd.dcm",
                       "SC_ybr_full_422_uncompressed.dcm"]


def read_png(path):
    w, h, rows, info = png.Reader(filename=str(path)).read()
    arr = np.vstack([np.asarray(r, dtype=np.uint8) for r in rows])
    planes = info["planes"]
    return arr.reshape(h, w, planes) if planes > 1 else arr.reshape(h, w)


def dcm2pnm(path, out, *args, frame=1):
    subprocess.run(["dcm2pnm", "+on", "-il", "+F", str(frame), *args, str(path), str(out)],
                   check=True, capture_output=True)
    return read_png(out)


def close(a, b, tol=1):
    assert a.shape == b.shape
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= tol, f"max difference {diff.max()} at {np.unravel_index(diff.argmax(), diff.shape)}"


@pytest.mark.parametrize("name", UNCOMPRESSED_MONO)
@pytest.mark.parametrize("mode", ["window", "minmax", "file"])
def test_mono_equals_dcm2pnm(name, mode, tmp_path):
    path = TEST_FILES / name
    ds = pydicom.dcmread(path)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    frame = frames  # the last frame: frame selection is part of what is tested
    if mode == "window":
        m = apply_modality_lut(ds.pixel_array, ds).astype(float)
        lo, hi = float(m.min()), float(m.max())
        c, w = (lo + hi) / 2 + 0.25 * (hi - lo) / 2, max((hi - lo) * 0.6, 2)
        ours, theirs = ["--window", f"{c},{w}"], ["+Ww", str(c), str(w)]
    elif mode == "minmax":
        ours, theirs = ["--min-max"], ["+Wm"]
    else:
        if "WindowCenter" not in ds:
            pytest.skip("no window in the file")
        ours, theirs = ["--file-window", "1"], ["+Wi", "1"]
    run_mira("render", path, "-o", tmp_path / "m.png", "--frame", frame, *ours)
    close(read_png(tmp_path / "m.png"), dcm2pnm(path, tmp_path / "d.png", *theirs, frame=frame))


@pytest.mark.parametrize("name", UNCOMPRESSED_COLOUR)
def test_colour_equals_dcm2pnm(name, tmp_path):
    path = TEST_FILES / name
    run_mira("render", path, "-o", tmp_path / "m.png")
    close(read_png(tmp_path / "m.png"), dcm2pnm(path, tmp_path / "d.png"))


@pytest.mark.parametrize("function,flag", [("linear", None), ("linear-exact", "LINEAR_EXACT"),
                                           ("sigmoid", "SIGMOID")])
def test_voi_functions_equal_pydicom(function, flag, tmp_path):
    """pydicom's apply_voi_lut implements PS3.3 C.11.2.1.2 independently (float output)."""
    src = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    src.WindowCenter, src.WindowWidth = 60, 350
    if flag:
        src.VOILUTFunction = flag
    path = tmp_path / "w.dcm"
    src.save_as(path)
    run_mira("render", path, "-o", tmp_path / "m.png", "--window", "60,350",
             "--function", function)
    ds = pydicom.dcmread(path)
    m = apply_modality_lut(ds.pixel_array, ds)
    y = apply_voi_lut(m.astype(float), ds)
    # pydicom's output range: the stored range through the rescale
    lo = -(2 ** (ds.BitsStored - 1)) if ds.PixelRepresentation else 0
    hi = 2 ** (ds.BitsStored - 1) - 1 if ds.PixelRepresentation else 2 ** ds.BitsStored - 1
    lo, hi = lo * ds.RescaleSlope + ds.RescaleIntercept, hi * ds.RescaleSlope + ds.RescaleIntercept
    ref = np.clip(np.rint((y - lo) / (hi - lo) * 255), 0, 255)
    close(read_png(tmp_path / "m.png"), ref, tol=1)


def test_big_endian_32bit_renders_like_little_endian(tmp_path):
    """rtdose_expb.dcm holds the pixels of rtdose.dcm in big endian (pydicom's test set says so,
    and `mira pixels` equals pydicom on both). dcm2pnm 3.6.7 reads this file's 32-bit OW
    big-endian pixel data differently, so the reference here is the little-endian twin."""
    for name in ("rtdose.dcm", "rtdose_expb.dcm"):
        run_mira("render", TEST_FILES / name, "-o", tmp_path / f"{name}.png", "--frame", 3)
    assert (read_png(tmp_path / "rtdose.dcm.png") ==
            read_png(tmp_path / "rtdose_expb.dcm.png")).all()


def test_monochrome1_is_inverted(tmp_path):
    path = TEST_FILES / "dicomdirtests/77654033/CR1/6154"
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    run_mira("render", path, "-o", tmp_path / "m.png", "--min-max")
    img = read_png(tmp_path / "m.png")
    arr = ds.pixel_array
    # the smallest stored value is the brightest pixel
    assert img.flat[arr.argmin()] == 255 and img.flat[arr.argmax()] == 0


def test_palette_equals_pydicom(tmp_path):
    """A PALETTE COLOR image (8-bit indices, 16-bit palette) against apply_color_lut."""
    src = pydicom.dcmread(TEST_FILES / "MR_small.dcm")
    idx = (np.arange(64 * 64) % 256).astype(np.uint8).reshape(64, 64)
    src.PhotometricInterpretation = "PALETTE COLOR"
    src.BitsAllocated, src.BitsStored, src.HighBit, src.PixelRepresentation = 8, 8, 7, 0
    src.PixelData = idx.tobytes()
    src["PixelData"].VR = "OB"
    ramp = np.linspace(0, 65535, 256).astype("<u2")
    for i, (desc, data) in enumerate([("Red", ramp), ("Green", ramp[::-1].copy()),
                                      ("Blue", ((ramp.astype(int) * 7) % 65536).astype("<u2"))]):
        setattr(src, f"{desc}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(src, f"{desc}PaletteColorLookupTableData", data.tobytes())
        src[0x00281101 + i].VR = "US"
    for k in ("WindowCenter", "WindowWidth", "RescaleSlope", "RescaleIntercept"):
        if k in src:
            delattr(src, k)
    path = tmp_path / "pal.dcm"
    src.save_as(path)
    run_mira("render", path, "-o", tmp_path / "m.png")
    ds = pydicom.dcmread(path)
    ref = apply_color_lut(ds.pixel_array, ds).astype(float) / 65535 * 255
    close(read_png(tmp_path / "m.png"), np.rint(ref), tol=1)


def test_errors(tmp_path):
    proc = run_mira("render", TEST_FILES / "MR_small.dcm", "-o", tmp_path / "x.png",
                    "--window", "10,0", check=False)
    assert proc.returncode == 2
    proc = run_mira("render", TEST_FILES / "MR_small.dcm", "-o", tmp_path / "x.png",
                    "--voi-lut", "1", check=False)
    assert proc.returncode == 1 and b"no VOI LUT number 1" in proc.stderr
    assert not (tmp_path / "x.png").exists()
    proc = run_mira("render", "--help")
    assert b"usage: mira render" in proc.stdout
