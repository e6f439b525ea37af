#!/usr/bin/env python3
"""Generates the read benchmark's corpus: N realistic CT and MR instances, 512x512, 16-bit.

usage: make_corpus.py [--count N] [--seed S] [--out DIR]

Each instance carries what a scanner writes: the patient, study, series, frame of reference,
equipment, image plane, image pixel, CT or MR image and VOI LUT modules, a few sequences
(Referenced Image, Procedure Code, Request Attributes, Anatomic Region), and private blocks the
way GE (CT) and Siemens (MR, with CSA header blobs of some kilobytes) write them. Instances come
as series of 40 to 200 slices, a few series per study. Every 5th series is Implicit VR Little
Endian, the rest Explicit VR Little Endian; CT sequences and items have undefined lengths. Pixel data are 12-bit phantom slices (body outline,
organs, noise), shifted per instance. The same seed gives the same files, byte for byte.

Writes DIR/NNNNNN.dcm, DIR/files.list (the paths in order, one a line) and DIR/summary.txt.
"""
import argparse
import array
import math
import os
import random
import sys

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
IMPLEMENTATION_UID = "1.2.826.0.1.3680043.10.1433.1"  # mira's benchmark generator
SIZE = 512
PHANTOMS = 6

FIRST = ["ANNA", "BEN", "CLARA", "DAVID", "EMMA", "FELIX", "GRETA", "HUGO", "IDA", "JONAS",
         "KARIN", "LUKAS", "MARIA", "NOAH", "OLGA", "PAUL"]
LAST = ["MUELLER", "SCHMIDT", "SCHNEIDER", "FISCHER", "WEBER", "MEYER", "WAGNER", "BECKER",
        "SCHULZ", "HOFFMANN", "KOCH", "RICHTER"]
CT_PROTOCOLS = [("CHEST", "CT THORAX W/O CONTRAST", "71250", "CT Thorax"),
                ("ABDOMEN", "CT ABDOMEN PELVIS W CONTRAST", "74177", "CT Abdomen Pelvis"),
                ("HEAD", "CT HEAD W/O CONTRAST", "70450", "CT Head")]
MR_PROTOCOLS = [("BRAIN", "MR BRAIN W/O CONTRAST", "70551", "MR Brain"),
                ("KNEE", "MR KNEE RIGHT", "73721", "MR Knee"),
                ("LSPINE", "MR LUMBAR SPINE", "72148", "MR Lumbar Spine")]
MR_SERIES = [("t1_se_tra", "SE", "SP", 550.0, 12.0, 1, 90.0),
             ("t2_tse_tra", "SE", "SK\\SP", 4500.0, 98.0, 15, 150.0),
             ("t2_flair_tra", "SE\\IR", "SK\\SP\\MP", 9000.0, 84.0, 16, 150.0)]


def uid(rng):
    return generate_uid(prefix=None, entropy_srcs=[str(rng.getrandbits(128))])


def phantom(rng, kind):
    """One 512x512 12-bit slice: a body ellipse with a few round organs and noise, as bytes."""
    cx, cy = SIZE / 2 + rng.uniform(-20, 20), SIZE / 2 + rng.uniform(-20, 20)
    ax, ay = rng.uniform(170, 220), rng.uniform(130, 180)
    organs = [(cx + rng.uniform(-100, 100), cy + rng.uniform(-80, 80), rng.uniform(15, 50),
               rng.randint(-300, 700)) for _ in range(5)]
    body, air = (1064, 24) if kind == "CT" else (600, 5)
    noise = [rng.randint(0, 40) for _ in range(4096)]
    px = array.array("H", bytes(2 * SIZE * SIZE))
    i = 0
    for y in range(SIZE):
        dy = (y - cy) / ay
        for x in range(SIZE):
            dx = (x - cx) / ax
            if dx * dx + dy * dy <= 1.0:
                v = body
                for ox, oy, r, delta in organs:
                    if (x - ox) ** 2 + (y - oy) ** 2 <= r * r:
                        v += delta
                        break
            else:
                v = air
            px[i] = max(0, min(4095, v + noise[i & 4095]))
            i += 1
    if sys.byteorder != "little":
        px.byteswap()
    return px.tobytes()


def shifted(pixels, rng):
    """The phantom rolled by a random whole number of pixels, so that no two files are alike."""
    k = 2 * rng.randrange(1, SIZE * 8)
    return pixels[k:] + pixels[:k]


def code_item(value, scheme, meaning):
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def common(ds, rng, patient, study, series, n, sop_class, sop_uid, when):
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceCreationDate = when["date"]
    ds.InstanceCreationTime = when["time"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = when["date"]
    ds.StudyTime = when["time"]
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = when["time"]
    ds.AccessionNumber = study["accession"]
    ds.Modality = series["modality"]
    ds.Manufacturer = series["manufacturer"]
    ds.InstitutionName = "Klinikum Nord"
    ds.InstitutionAddress = "Hauptstrasse 1, 20095 Hamburg"
    ds.ReferringPhysicianName = "WEISS^THOMAS^^DR."
    ds.StationName = series["station"]
    ds.StudyDescription = study["description"]
    ds.ProcedureCodeSequence = Sequence([code_item(study["code"], "CPT4", study["meaning"])])
    ds.SeriesDescription = series["description"]
    ds.InstitutionalDepartmentName = "Radiologie"
    ds.PerformingPhysicianName = "KLEIN^ANNA"
    ds.OperatorsName = "TECH^MRTA"
    ds.ManufacturerModelName = series["model"]
    ref = []
    for _ in range(3):
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = study["localizer"]
        ref.append(item)
    ds.ReferencedImageSequence = Sequence(ref)
    ds.PatientName = patient["name"]
    ds.PatientID = patient["id"]
    ds.IssuerOfPatientID = "KLNORD"
    ds.PatientBirthDate = patient["birth"]
    ds.PatientSex = patient["sex"]
    ds.PatientAge = patient["age"]
    ds.PatientSize = patient["size"]
    ds.PatientWeight = patient["weight"]
    ds.BodyPartExamined = study["body_part"]
    ds.DeviceSerialNumber = series["serial"]
    ds.SoftwareVersions = series["software"]
    ds.ProtocolName = series["protocol"]
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study["uid"]
    ds.SeriesInstanceUID = series["uid"]
    ds.StudyID = study["id"]
    ds.SeriesNumber = series["number"]
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = n + 1
    z = series["z0"] - n * series["spacing"]
    ds.ImagePositionPatient = [f"{-series['fov'] / 2:.4f}", f"{-series['fov'] / 2:.4f}", f"{z:.4f}"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = series["frame"]
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = f"{z:.4f}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = SIZE
    ds.Columns = SIZE
    spacing = series["fov"] / SIZE
    ds.PixelSpacing = [f"{spacing:.6f}", f"{spacing:.6f}"]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.SmallestImagePixelValue = 0
    ds.LargestImagePixelValue = 4095
    ds.PerformedProcedureStepStartDate = when["date"]
    ds.PerformedProcedureStepStartTime = when["time"]
    ds.PerformedProcedureStepID = study["id"]
    ds.PerformedProcedureStepDescription = study["description"]
    req = Dataset()
    req.RequestedProcedureID = study["accession"]
    req.ScheduledProcedureStepID = study["accession"] + "1"
    req.ScheduledProcedureStepDescription = study["description"]
    req.ScheduledProtocolCodeSequence = Sequence([code_item(study["code"], "CPT4",
                                                            study["meaning"])])
    ds.RequestAttributesSequence = Sequence([req])
    ds.AnatomicRegionSequence = Sequence([code_item("T-D3000", "SRT", study["body_part"].title())])


def ct_module(ds, rng, series, n):
    ds.ScanOptions = "HELICAL MODE"
    ds.SliceThickness = f"{series['spacing']:.3f}"
    ds.KVP = "120"
    ds.DataCollectionDiameter = "500.000000"
    ds.ReconstructionDiameter = f"{series['fov']:.6f}"
    ds.DistanceSourceToDetector = "949.075012"
    ds.DistanceSourceToPatient = "541.000000"
    ds.GantryDetectorTilt = "0.000000"
    ds.TableHeight = "157.000000"
    ds.RotationDirection = "CW"
    ds.ExposureTime = "1000"
    ds.XRayTubeCurrent = str(rng.randint(180, 320))
    ds.Exposure = str(rng.randint(180, 320))
    ds.FilterType = "BODY FILTER"
    ds.GeneratorPower = "38400"
    ds.FocalSpots = "0.700000"
    ds.ConvolutionKernel = series["kernel"]
    ds.RevolutionTime = 0.5
    ds.SingleCollimationWidth = 0.625
    ds.TotalCollimationWidth = 40.0
    ds.TableSpeed = 78.75
    ds.TableFeedPerRotation = 39.375
    ds.SpiralPitchFactor = 0.984375
    ds.CTDIvol = round(rng.uniform(5.0, 15.0), 4)
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter = ["40", "-600"]
    ds.WindowWidth = ["400", "1600"]
    ds.WindowCenterWidthExplanation = ["WINDOW1", "WINDOW2"]
    # GE-style private blocks: identification (0009) and acquisition (0019, 0043).
    b = ds.private_block(0x0009, "GEMS_IDEN_01", create=True)
    b.add_new(0x01, "LO", "CT01_OC0")
    b.add_new(0x02, "SH", "CT01")
    b.add_new(0x04, "SH", "HISPEED")
    b.add_new(0x27, "SL", 1199184235)
    b = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
    b.add_new(0x02, "SL", 888)
    b.add_new(0x03, "DS", "11.25")
    b.add_new(0x0F, "DS", "1000.0")
    b.add_new(0x11, "SS", 2)
    b.add_new(0x18, "LO", "I")
    b.add_new(0x1A, "LO", "S")
    b.add_new(0x23, "DS", "39.375")
    b.add_new(0x9E, "LO", "HELICAL")
    b = ds.private_block(0x0043, "GEMS_PARM_01", create=True)
    b.add_new(0x10, "US", 0)
    b.add_new(0x1E, "DS", "0.7")
    b.add_new(0x27, "SH", "/1.0:1")
    b.add_new(0x2C, "SS", 0)
    b.add_new(0x31, "DS", ["-10.5", "22.75"])
    b.add_new(0x6F, "DS", ["0.0", "0.0", "0.0"])


def mr_module(ds, rng, series, n):
    name, seq, variant, tr, te, etl, flip = series["mr"]
    ds.ScanningSequence = seq
    ds.SequenceVariant = variant
    ds.ScanOptions = "PFP\\SAT1" if etl > 1 else "SAT1"
    ds.MRAcquisitionType = "2D"
    ds.SequenceName = "*tse2d1_" + str(etl) if etl > 1 else "*se2d1"
    ds.AngioFlag = "N"
    ds.SliceThickness = f"{series['spacing']:.3f}"
    ds.RepetitionTime = f"{tr:.1f}"
    ds.EchoTime = f"{te:.1f}"
    ds.NumberOfAverages = "1"
    ds.ImagingFrequency = "123.253"
    ds.ImagedNucleus = "1H"
    ds.EchoNumbers = "1"
    ds.MagneticFieldStrength = "3"
    ds.SpacingBetweenSlices = f"{series['spacing'] * 1.1:.3f}"
    ds.NumberOfPhaseEncodingSteps = "384"
    ds.EchoTrainLength = str(etl)
    ds.PercentSampling = "100"
    ds.PercentPhaseFieldOfView = "81.25"
    ds.PixelBandwidth = "190"
    ds.TransmitCoilName = "Body"
    ds.AcquisitionMatrix = [0, 512, 416, 0]
    ds.InPlanePhaseEncodingDirection = "ROW"
    ds.FlipAngle = f"{flip:g}"
    ds.VariableFlipAngleFlag = "N"
    ds.SAR = f"{rng.uniform(0.5, 2.5):.8f}"
    ds.dBdt = "0"
    ds.WindowCenter = str(rng.randint(300, 700))
    ds.WindowWidth = str(rng.randint(800, 1500))
    ds.WindowCenterWidthExplanation = "Algo1"
    # Siemens-style private blocks: the MR header (0019) and the two CSA headers (0029), which
    # are opaque binary blobs of several kilobytes in real files.
    b = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    b.add_new(0x08, "CS", "IMAGE NUM 4")
    b.add_new(0x09, "LO", "1.0")
    b.add_new(0x0B, "DS", "40")
    b.add_new(0x0F, "SH", "Fast")
    b.add_new(0x11, "SH", "No")
    b.add_new(0x12, "SL", [0, 0, 0])
    b.add_new(0x13, "SL", [0, 0, 0])
    b.add_new(0x14, "IS", ["0", "0", "0"])
    b.add_new(0x15, "FD", [-10.5, 22.75, float(n)])
    b.add_new(0x17, "DS", "1")
    b.add_new(0x18, "IS", "4000")
    b = ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True)
    b.add_new(0x08, "CS", "IMAGE NUM 4")
    b.add_new(0x09, "LO", "20100114")
    b.add_new(0x10, "OB", series["csa_image"])
    b.add_new(0x18, "CS", "MR")
    b.add_new(0x19, "LO", "20100114")
    b.add_new(0x20, "OB", series["csa_series"])


def undefined_lengths(ds):
    """Sequences and items with undefined length and delimiters, as GE scanners write them."""
    for elem in ds:
        if elem.VR == "SQ":
            elem.is_undefined_length = True
            for item in elem.value:
                item.is_undefined_length_sequence_item = True
                undefined_lengths(item)


def new_series(rng, study, number, modality):
    s = {"uid": uid(rng), "frame": uid(rng), "number": number, "modality": modality,
         "z0": rng.uniform(-50, 150), "serial": str(rng.randint(10000, 99999))}
    if modality == "CT":
        s.update(manufacturer="GE MEDICAL SYSTEMS", model="Revolution CT", station="CT01_OC0",
                 software="revo_ct_22mw.41", spacing=rng.choice([0.625, 1.25, 2.5]),
                 fov=rng.uniform(320, 480), kernel=rng.choice(["STANDARD", "LUNG", "BONE"]),
                 protocol=study["description"], description=f"{study['body_part']} 1.25mm")
    else:
        mr = rng.choice(MR_SERIES)
        s.update(manufacturer="SIEMENS", model="Skyra", station="AWP45321",
                 software="syngo MR E11", spacing=rng.choice([3.0, 4.0, 5.0]),
                 fov=rng.uniform(200, 260), protocol=mr[0], description=mr[0], mr=mr,
                 csa_image=rng.randbytes(rng.randint(6000, 11000) & ~1),
                 csa_series=rng.randbytes(rng.randint(40000, 90000) & ~1))
    s["implicit"] = study["series_counter"] % 5 == 4
    study["series_counter"] += 1
    s["slices"] = rng.randint(40, 200)
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "corpus"))
    args = ap.parse_args()

    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    phantoms = {k: [phantom(rng, k) for _ in range(PHANTOMS)] for k in ("CT", "MR")}
    paths = []
    written = 0
    series_counter = 0
    counts = {"CT": 0, "MR": 0, "explicit": 0, "implicit": 0}
    while written < args.count:
        # One patient, one study, a few series of one modality.
        modality = "CT" if rng.random() < 0.5 else "MR"
        body_part, description, code, meaning = rng.choice(
            CT_PROTOCOLS if modality == "CT" else MR_PROTOCOLS)
        age = rng.randint(18, 90)
        patient = {"name": f"{rng.choice(LAST)}^{rng.choice(FIRST)}",
                   "id": f"PAT{rng.randint(0, 999999):06d}",
                   "birth": f"{2024 - age}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
                   "sex": rng.choice("MF"), "age": f"{age:03d}Y",
                   "size": f"{rng.uniform(1.5, 1.95):.2f}", "weight": str(rng.randint(50, 110))}
        study = {"uid": uid(rng), "localizer": uid(rng), "id": str(rng.randint(1000, 9999)),
                 "accession": f"ACC{rng.randint(0, 99999999):08d}", "description": description,
                 "code": code, "meaning": meaning, "body_part": body_part,
                 "series_counter": series_counter}
        when = {"date": f"2024{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
                "time": f"{rng.randint(7, 19):02d}{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}"
                        f".{rng.randint(0, 999999):06d}"}
        for number in range(1, rng.randint(2, 4) + 1):
            series = new_series(rng, study, number, modality)
            series_counter = study["series_counter"]
            sop_class = CT_IMAGE_STORAGE if modality == "CT" else MR_IMAGE_STORAGE
            for n in range(series["slices"]):
                if written >= args.count:
                    break
                sop_uid = uid(rng)
                ds = Dataset()
                common(ds, rng, patient, study, series, n, sop_class, sop_uid, when)
                if modality == "CT":
                    ct_module(ds, rng, series, n)
                    undefined_lengths(ds)
                else:
                    mr_module(ds, rng, series, n)
                ds.PixelData = shifted(phantoms[modality][n % PHANTOMS], rng)
                ds["PixelData"].VR = "OW"

                meta = FileMetaDataset()
                meta.MediaStorageSOPClassUID = sop_class
                meta.MediaStorageSOPInstanceUID = sop_uid
                meta.TransferSyntaxUID = (ImplicitVRLittleEndian if series["implicit"]
                                          else ExplicitVRLittleEndian)
                meta.ImplementationClassUID = IMPLEMENTATION_UID
                meta.ImplementationVersionName = "MIRA_BENCH_1"
                meta.SourceApplicationEntityTitle = series["station"][:16]
                ds.file_meta = meta
                ds.preamble = b"\0" * 128
                ds.is_little_endian = True
                ds.is_implicit_VR = series["implicit"]

                path = os.path.join(args.out, f"{written:06d}.dcm")
                ds.save_as(path, write_like_original=False)
                paths.append(path)
                written += 1
                counts[modality] += 1
                counts["implicit" if series["implicit"] else "explicit"] += 1
    with open(os.path.join(args.out, "files.list"), "w") as f:
        f.write("".join(os.path.abspath(p) + "\n" for p in paths))
    size = sum(os.path.getsize(p) for p in paths)
    summary = (f"{written} files, {size / 2**20:.0f} MiB: {counts['CT']} CT, {counts['MR']} MR; "
               f"{counts['explicit']} Explicit VR LE, {counts['implicit']} Implicit VR LE; "
               f"512x512 16-bit; seed {args.seed}, pydicom {pydicom.__version__}")
    with open(os.path.join(args.out, "summary.txt"), "w") as f:
        f.write(summary + "\n")
    print(f"make_corpus: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
