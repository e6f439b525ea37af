#!/usr/bin/env python3
"""Writes the DICOMweb benchmark's corpus: one 1,000-instance CT series and many small studies.

usage: make_web_corpus.py --out DIR [--slices N] [--studies M] [--seed S]

The DICOMweb benchmark (bench/run_web.sh) serves these files from mira and from Orthanc.
  series   one study, one CT series of N instances (default 1000) made from pydicom's
           CT_small.dcm (its 258 elements, GE private blocks included): new study, series and
           SOP Instance UIDs, InstanceNumber 1..N, ImagePositionPatient and SliceLocation
           1.25 mm apart, and 512x512 16-bit pixels (CT_small's 128x128 scaled up 4x, rolled
           by a different amount in each file, so no two are alike); Explicit VR Little Endian,
           about 525 KB a file. Patient BENCH^SERIES.
  studies  M other studies (default 300) of 2 instances each, two thirds CT (CT_small) and a
           third MR (MR_small), with their own UIDs, patient names (upper case LAST^FIRST),
           patient IDs, accession numbers and study dates in 2023 and 2024: what the QIDO-RS
           searches look through.
Writes DIR/series/*.dcm, DIR/studies/*.dcm, DIR/series.list, DIR/studies.list, DIR/all.list
and DIR/corpus.json (the series' UIDs, every SOP Instance UID in order, and the QIDO-RS
searches with the number of studies each must find, counted here from what was written).
"""
import argparse
import json
import os
import random
import sys

import numpy as np
import pydicom
from pydicom.data import get_testdata_file

ROOT = "1.2.826.0.1.3680043.10.1139."  # the prefix of this benchmark's generated UIDs
LAST = ["ADAMS", "BAKER", "CLARK", "DAVIS", "EVANS", "FISCHER", "GARCIA", "HUBER", "JONES",
        "KELLER", "LOPEZ", "MEYER", "MILLER", "NGUYEN", "OTTO", "PETERS", "SCHMIDT", "SMITH",
        "TAYLOR", "WAGNER", "WEBER", "WILSON", "YOUNG", "ZIMMER"]
FIRST = ["ANNA", "BEN", "CLARA", "DAVID", "EMMA", "FELIX", "HANNA", "JONAS", "LEA", "MAX",
         "MIA", "NOAH", "PAUL", "SOFIA"]


def uid(rng):
    return ROOT + str(rng.getrandbits(96))


def restamp(ds, sop):
    ds.SOPInstanceUID = sop
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.file_meta.ImplementationVersionName = "MIRA_BENCH_WEB"


def write_series(args, rng, out):
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    small = ct.pixel_array
    big = np.kron(small, np.ones((4, 4), dtype=small.dtype))  # 512x512
    study, series, frame = uid(rng), uid(rng), uid(rng)
    ct.StudyInstanceUID = study
    ct.SeriesInstanceUID = series
    ct.FrameOfReferenceUID = frame
    ct.PatientName = "BENCH^SERIES"
    ct.PatientID = "BENCH0001"
    ct.AccessionNumber = "BENCHACC1"
    ct.StudyDate = ct.SeriesDate = ct.AcquisitionDate = ct.ContentDate = "20240315"
    ct.StudyID = "1"
    ct.SeriesNumber = 1
    ct.SeriesDescription = "1000 slices 1.25mm"
    ct.Rows = ct.Columns = 512
    ct.PixelSpacing = [f"{float(ct.PixelSpacing[0]) / 4:.6f}", f"{float(ct.PixelSpacing[1]) / 4:.6f}"]
    ct.SliceThickness = "1.25"
    x0, y0 = ct.ImagePositionPatient[0], ct.ImagePositionPatient[1]
    sops = []
    paths = []
    for n in range(args.slices):
        sop = uid(rng)
        restamp(ct, sop)
        ct.InstanceNumber = n + 1
        z = 100.0 - 1.25 * n
        ct.ImagePositionPatient = [x0, y0, f"{z:.4f}"]
        ct.SliceLocation = f"{z:.4f}"
        ct.PixelData = np.roll(big, 7 * n + 1).astype(big.dtype).tobytes()
        path = os.path.join(out, "series", f"{n:04d}.dcm")
        ct.save_as(path, write_like_original=False)
        sops.append(sop)
        paths.append(path)
    return {"study": study, "series": series, "sops": sops}, paths


def write_studies(args, rng, out):
    templates = {"CT": pydicom.dcmread(get_testdata_file("CT_small.dcm")),
                 "MR": pydicom.dcmread(get_testdata_file("MR_small.dcm"))}
    paths = []
    studies = []
    for k in range(args.studies):
        modality = "MR" if k % 3 == 2 else "CT"
        ds = templates[modality]
        when = f"{rng.choice([2023, 2024])}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        name = f"{rng.choice(LAST)}^{rng.choice(FIRST)}"
        s = {"name": name, "id": f"PAT{k:05d}", "date": when, "modality": modality}
        studies.append(s)
        ds.StudyInstanceUID = uid(rng)
        ds.SeriesInstanceUID = uid(rng)
        ds.FrameOfReferenceUID = uid(rng)
        ds.PatientName = name
        ds.PatientID = s["id"]
        ds.AccessionNumber = f"ACC{k:06d}"
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = when
        if "AcquisitionDate" in ds:
            ds.AcquisitionDate = when
        ds.StudyID = str(k + 2)
        ds.StudyDescription = f"{modality} study {k}"
        for n in range(2):
            restamp(ds, uid(rng))
            ds.InstanceNumber = n + 1
            path = os.path.join(out, "studies", f"{k:04d}-{n}.dcm")
            ds.save_as(path, write_like_original=False)
            paths.append(path)
    return studies, paths


def searches(studies):
    """The QIDO-RS study searches, each with the number of studies it must find."""
    everything = studies + [{"name": "BENCH^SERIES", "id": "BENCH0001", "date": "20240315",
                             "modality": "CT"}]
    out = []

    def add(label, query, pred):
        out.append({"label": label, "query": query,
                    "expect": sum(1 for s in everything if pred(s))})

    for prefix in ("S", "MI", "W"):
        add(f"PatientName={prefix}*", f"PatientName={prefix}*",
            lambda s, p=prefix: s["name"].startswith(p))
    add("PatientName=BENCH*", "PatientName=BENCH*", lambda s: s["name"].startswith("BENCH"))
    add("PatientID (exact)", "PatientID=PAT00042", lambda s: s["id"] == "PAT00042")
    add("StudyDate=2023 Q1", "StudyDate=20230101-20230331",
        lambda s: "20230101" <= s["date"] <= "20230331")
    add("StudyDate=2024 H2", "StudyDate=20240701-20241231",
        lambda s: "20240701" <= s["date"] <= "20241231")
    add("StudyDate + ModalitiesInStudy=MR", "StudyDate=20240101-20241231&ModalitiesInStudy=MR",
        lambda s: "20240101" <= s["date"] <= "20241231" and s["modality"] == "MR")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--slices", type=int, default=1000)
    ap.add_argument("--studies", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    for d in ("series", "studies"):
        os.makedirs(os.path.join(args.out, d), exist_ok=True)
    big, series_paths = write_series(args, rng, args.out)
    studies, study_paths = write_studies(args, rng, args.out)
    for name, paths in (("series", series_paths), ("studies", study_paths),
                        ("all", series_paths + study_paths)):
        with open(os.path.join(args.out, name + ".list"), "w") as f:
            f.write("".join(os.path.abspath(p) + "\n" for p in paths))
    size = sum(os.path.getsize(p) for p in series_paths)
    small = sum(os.path.getsize(p) for p in study_paths)
    summary = (f"one CT series of {args.slices} instances (512x512 16-bit, Explicit VR LE, "
               f"{size / 2**20:.0f} MiB) and {args.studies} other studies of 2 instances "
               f"({small / 2**20:.0f} MiB); seed {args.seed}, pydicom {pydicom.__version__}")
    with open(os.path.join(args.out, "corpus.json"), "w") as f:
        json.dump({**big, "searches": searches(studies), "summary": summary,
                   "series_bytes": size}, f)
    print(f"make_web_corpus: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
