#!/usr/bin/env python3
"""Generates the decode benchmark's corpus: realistic images in every transfer syntax mira decodes.

usage: make_decode_corpus.py [--out DIR] [--ct N] [--us N] [--frames N] [--seed S]

Source images (Explicit VR Little Endian, written with pydicom + numpy, fixed seed):
  ct: N CT slices, 512x512, 16 bits allocated, 12 stored; half unsigned (stored = HU + 1024,
      the Philips/Siemens way), half signed (stored = HU, Pixel Representation 1, 12 bits
      stored). A body with fat, muscle, lungs, organs, spine and table, correlated noise of
      about 10 HU, a reconstruction circle; consecutive slices of one volume.
  us: N ultrasound frames, 640x480 RGB 8-bit: a speckled sector scan with a colour Doppler
      box and a caption, on black.
  mf: one multi-frame image, N frames of 512x512 16-bit (12 stored, unsigned): the CT volume.

Each set is one transfer syntax applied to one kind of source by an independent encoder from
Debian (DCMTK's dcmcrle / dcmcjpeg / dcmcjpls, GDCM's gdcmconv, pydicom for Deflated), so
that no mira code made the files it is timed on. Writes DIR/<set>/*.dcm, DIR/<set>.list (the
paths) and DIR/sets.tsv: set, transfer syntax UID, its short name, image kind, encoder, lossless
(1/0), files, decoded bytes, stored bytes. Then DIR/summary.txt.
"""
import argparse
import os
import shutil
import subprocess
import sys

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, generate_uid

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
US_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"
MF_WORD_SC = "1.2.840.10008.5.1.4.1.1.7.3"  # Multi-frame Grayscale Word Secondary Capture
IMPLEMENTATION_UID = "1.2.826.0.1.3680043.10.1433.1"  # mira's benchmark generator

# set name, transfer syntax, short name, source kind, encoder (argv after the tool; IN OUT
# appended), lossless
SETS = [
    ("explicit-ct", "1.2.840.10008.1.2.1", "Explicit VR LE", "ct", ["copy"], 1),
    ("explicit-us", "1.2.840.10008.1.2.1", "Explicit VR LE", "us", ["copy"], 1),
    ("deflated-ct", "1.2.840.10008.1.2.1.99", "Deflated", "ct", ["deflate"], 1),
    ("rle-ct", "1.2.840.10008.1.2.5", "RLE", "ct", ["dcmcrle"], 1),
    ("rle-us", "1.2.840.10008.1.2.5", "RLE", "us", ["gdcmconv", "--rle"], 1),
    ("jpeg-baseline-us", "1.2.840.10008.1.2.4.50", "JPEG Baseline", "us",
     ["dcmcjpeg", "+eb", "+q", "90"], 0),
    ("jpeg-extended-ct", "1.2.840.10008.1.2.4.51", "JPEG Extended 12-bit", "ct",
     ["dcmcjpeg", "+ee", "+q", "90"], 0),
    ("jpeg-lossless-ct", "1.2.840.10008.1.2.4.57", "JPEG Lossless", "ct",
     ["dcmcjpeg", "+el", "+sv", "6"], 1),
    ("jpeg-sv1-ct", "1.2.840.10008.1.2.4.70", "JPEG Lossless SV1", "ct", ["dcmcjpeg", "+e1"], 1),
    ("jpeg-sv1-us", "1.2.840.10008.1.2.4.70", "JPEG Lossless SV1", "us", ["gdcmconv", "-J"], 1),
    ("jpegls-ct", "1.2.840.10008.1.2.4.80", "JPEG-LS Lossless", "ct", ["dcmcjpls"], 1),
    ("jpegls-us", "1.2.840.10008.1.2.4.80", "JPEG-LS Lossless", "us", ["gdcmconv", "-L"], 1),
    # dcmcjpls refuses signed data for near-lossless; GDCM encodes it (NEAR 2).
    ("jpegls-near-ct", "1.2.840.10008.1.2.4.81", "JPEG-LS Near", "ct",
     ["gdcmconv", "-L", "--lossy", "-e", "2"], 0),
    ("j2k-lossless-ct", "1.2.840.10008.1.2.4.90", "JPEG 2000 Lossless", "ct",
     ["gdcmconv", "-K"], 1),
    ("j2k-lossless-us", "1.2.840.10008.1.2.4.90", "JPEG 2000 Lossless", "us",
     ["gdcmconv", "-K"], 1),
    ("j2k-ct", "1.2.840.10008.1.2.4.91", "JPEG 2000", "ct",
     ["gdcmconv", "-K", "--lossy", "--irreversible", "-r", "10"], 0),
    # The multi-frame image, for the scaling table.
    ("mf-explicit", "1.2.840.10008.1.2.1", "Explicit VR LE", "mf", ["copy"], 1),
    ("mf-rle", "1.2.840.10008.1.2.5", "RLE", "mf", ["dcmcrle"], 1),
    ("mf-jpeg-sv1", "1.2.840.10008.1.2.4.70", "JPEG Lossless SV1", "mf", ["dcmcjpeg", "+e1"], 1),
    ("mf-jpegls", "1.2.840.10008.1.2.4.80", "JPEG-LS Lossless", "mf", ["dcmcjpls"], 1),
    ("mf-j2k-lossless", "1.2.840.10008.1.2.4.90", "JPEG 2000 Lossless", "mf",
     ["gdcmconv", "-K"], 1),
]


def blur(a):
    """A 3x3 box filter (wrapping at the edges): makes white noise look like CT noise."""
    s = a.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                s += np.roll(np.roll(a, dy, 0), dx, 1)
    return s / 9.0


def ct_slice(rng, z):
    """One axial slice of a chest-abdomen phantom, in HU (float), z in [0, 1] along the body."""
    n = 512
    y, x = np.mgrid[0:n, 0:n].astype(np.float64)
    cx, cy = 256.0, 270.0
    hu = np.full((n, n), -1000.0)
    ax, ay = 190 + 10 * np.sin(3 * z), 140 + 8 * np.cos(2 * z)
    body = ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 <= 1.0
    hu[body] = -100.0  # fat
    muscle = ((x - cx) / (ax - 14)) ** 2 + ((y - cy) / (ay - 12)) ** 2 <= 1.0
    hu[muscle] = 45.0
    lung_r = max(0.0, 1.0 - 1.6 * z)  # lungs in the upper part of the volume only
    for side in (-1, 1):
        lx, ly = cx + side * 80, cy - 10
        lung = ((x - lx) / (60 * lung_r + 1e-6)) ** 2 + ((y - ly) / (85 * lung_r + 1e-6)) ** 2 <= 1
        hu[lung & muscle] = -850.0
    organs = [(cx - 40 + 30 * z, cy + 20, 45 + 20 * z, 60.0),  # liver
              (cx + 60, cy + 30 - 20 * z, 25, 30.0),  # spleen / kidney
              (cx + 10, cy - 40, 18, 180.0),  # aorta with contrast
              (cx - 30, cy + 60, 22, 20.0)]
    for ox, oy, r, v in organs:
        hu[((x - ox) ** 2 + (y - oy) ** 2 <= r * r) & muscle] = v
    spine = (x - cx) ** 2 + (y - (cy + 95)) ** 2 <= 22 ** 2
    hu[spine] = 700.0
    hu[(x - cx) ** 2 + (y - (cy + 95)) ** 2 <= 12 ** 2] = 250.0  # marrow
    table = (y > cy + ay + 12) & (y < cy + ay + 22) & (np.abs(x - cx) < 220)
    hu[table] = 300.0
    noise = blur(rng.normal(0.0, 24.0, (n, n)))
    hu += np.where(body | table, noise, noise * 0.3)
    outside = (x - 256) ** 2 + (y - 256) ** 2 > 255 ** 2  # outside the reconstruction circle
    return hu, outside


def us_frame(rng, k):
    """An ultrasound frame: speckled sector, colour Doppler box, caption; 480x640x3 uint8."""
    h, w = 480, 640
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    ox, oy = w / 2, 20.0
    r = np.hypot(x - ox, y - oy)
    ang = np.arctan2(x - ox, y - oy)
    sector = (r > 30) & (r < 450) & (np.abs(ang) < 0.62)
    echo = 0.5 + 0.25 * np.sin(r / 23.0 + k * 0.3) + 0.2 * np.cos(ang * 9.0)
    cyst = np.hypot(x - (ox + 40 * np.sin(k / 5)), y - 260) < 45
    echo[cyst] = 0.08
    speckle = rng.rayleigh(0.55, (h, w))
    grey = np.clip(echo * speckle * 160.0 * np.exp(-r / 900.0), 0, 255)
    grey[~sector] = 0
    img = np.repeat(grey[:, :, None], 3, axis=2)
    box = (x > 280) & (x < 400) & (y > 180) & (y < 300) & sector
    flow = np.sin((x - 280) / 18.0 + k * 0.4) * np.exp(-((y - 240) / 40.0) ** 2)
    red = box & (flow > 0.35)
    blue = box & (flow < -0.35)
    img[red] = np.stack([180 + 70 * flow[red], 30 + 0 * flow[red], 20 + 0 * flow[red]], axis=1)
    img[blue] = np.stack([20 + 0 * flow[blue], 60 - 40 * flow[blue], 180 - 70 * flow[blue]], axis=1)
    img[20:28, 20:200] = 230  # caption and scale marks
    img[40:440:40, 600:612] = 200
    return np.clip(img, 0, 255).astype(np.uint8)


def base_dataset(sop_class, modality, rng_uid):
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[rng_uid()])
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240611"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101500"
    ds.Modality = modality
    ds.Manufacturer = "MIRA BENCH"
    ds.PatientName = "DECODE^BENCH"
    ds.PatientID = "BENCH0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["study", modality])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["series", modality, sop_class])
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    return ds


def save(ds, path, ts=ExplicitVRLittleEndian):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = IMPLEMENTATION_UID
    meta.ImplementationVersionName = "MIRA_BENCH_1"
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    ds.save_as(path, write_like_original=False)


def mono_module(ds, frames, signed):
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 512
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 1 if signed else 0
    ds.RescaleIntercept = "0" if signed else "-1024"
    ds.RescaleSlope = "1"
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    if frames > 1:
        ds.NumberOfFrames = frames


def stored_values(hu, outside, signed):
    """HU to 12-bit stored values (int16 words, sign-extended when signed)."""
    if signed:
        v = np.clip(np.rint(hu), -2048, 2047)
        v[outside] = -2048
        return v.astype("<i2")
    v = np.clip(np.rint(hu + 1024), 0, 4095)
    v[outside] = 0
    return v.astype("<u2")


def make_sources(out, args):
    rng = np.random.default_rng(args.seed)
    counter = [0]

    def next_uid():
        counter[0] += 1
        return f"mira-decode-bench-{args.seed}-{counter[0]}"

    src = os.path.join(out, "src")
    os.makedirs(os.path.join(src, "ct"))
    os.makedirs(os.path.join(src, "us"))
    os.makedirs(os.path.join(src, "mf"))
    kinds = {"ct": [], "us": [], "mf": []}
    volume = [ct_slice(rng, i / max(1, args.frames - 1)) for i in range(args.frames)]
    step = max(1, args.frames // max(1, args.ct))
    for i in range(args.ct):
        signed = i % 2 == 1
        hu, outside = volume[(i * step) % len(volume)]
        ds = base_dataset(CT_STORAGE, "CT", next_uid)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber = i + 1
        ds.SliceThickness = "1.25"
        ds.PixelSpacing = ["0.7", "0.7"]
        ds.KVP = "120"
        mono_module(ds, 1, signed)
        ds.PixelData = stored_values(hu, outside, signed).tobytes()
        ds["PixelData"].VR = "OW"
        path = os.path.join(src, "ct", f"ct{i:03d}.dcm")
        save(ds, path)
        kinds["ct"].append(path)
    for i in range(args.us):
        ds = base_dataset(US_STORAGE, "US", next_uid)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL"]
        ds.InstanceNumber = i + 1
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
        ds.Rows, ds.Columns = 480, 640
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
        ds.PixelData = us_frame(rng, i).tobytes()
        ds["PixelData"].VR = "OB"
        path = os.path.join(src, "us", f"us{i:03d}.dcm")
        save(ds, path)
        kinds["us"].append(path)
    ds = base_dataset(MF_WORD_SC, "OT", next_uid)
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.ConversionType = "WSD"
    ds.InstanceNumber = 1
    mono_module(ds, args.frames, False)
    ds.FrameIncrementPointer = 0x00181063  # Frame Time
    ds.FrameTime = "40"
    ds.PixelData = b"".join(stored_values(hu, o, False).tobytes() for hu, o in volume)
    ds["PixelData"].VR = "OW"
    path = os.path.join(src, "mf", "mf.dcm")
    save(ds, path)
    kinds["mf"].append(path)
    return kinds


def encode(cmd, inp, outp):
    tool = cmd[0]
    if tool == "copy":
        shutil.copyfile(inp, outp)
        return
    if tool == "deflate":
        ds = pydicom.dcmread(inp)
        save(ds, outp, DeflatedExplicitVRLittleEndian)
        return
    if tool == "gdcmconv":
        argv = [tool, *cmd[1:], "-i", inp, "-o", outp]
    else:
        argv = [tool, "-q", *cmd[1:], inp, outp]
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"make_decode_corpus: {' '.join(argv)} failed:\n{r.stdout}{r.stderr}")


def decoded_bytes(path):
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    return ds.Rows * ds.Columns * ds.SamplesPerPixel * ((ds.BitsAllocated + 7) // 8) * frames, \
        str(ds.file_meta.TransferSyntaxUID)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "corpus-decode"))
    ap.add_argument("--ct", type=int, default=16)
    ap.add_argument("--us", type=int, default=8)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    kinds = make_sources(out, args)
    rows = []
    for name, ts, short, kind, cmd, lossless in SETS:
        d = os.path.join(out, name)
        os.makedirs(d)
        paths = []
        for inp in kinds[kind]:
            outp = os.path.join(d, os.path.basename(inp))
            encode(cmd, inp, outp)
            paths.append(outp)
        total = stored = 0
        for p in paths:
            n, got = decoded_bytes(p)
            if got != ts:
                sys.exit(f"make_decode_corpus: {p} came out in {got}, not {ts} ({' '.join(cmd)})")
            total += n
            stored += os.path.getsize(p)
        with open(os.path.join(out, name + ".list"), "w") as f:
            f.write("".join(p + "\n" for p in paths))
        encoder = " ".join(cmd) if cmd[0] not in ("copy", "deflate") else \
            ("pydicom" if cmd[0] == "deflate" else "pydicom (source)")
        rows.append((name, ts, short, kind, encoder, str(lossless), str(len(paths)), str(total),
                     str(stored)))
        print(f"make_decode_corpus: {name:18} {len(paths):3} files, {total / 1e6:7.1f} MB decoded,"
              f" {stored / 1e6:7.1f} MB stored ({encoder})")
    with open(os.path.join(out, "sets.tsv"), "w") as f:
        f.write("".join("\t".join(r) + "\n" for r in rows))
    summary = (f"{args.ct} CT slices 512x512 16-bit (12 stored, half signed), {args.us} US frames "
               f"640x480 RGB 8-bit, 1 multi-frame 512x512 16-bit x {args.frames}; seed "
               f"{args.seed}, pydicom {pydicom.__version__}, numpy {np.__version__}")
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write(summary + "\n")
    print(f"make_decode_corpus: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
