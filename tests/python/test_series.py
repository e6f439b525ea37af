"""mira convert (series to volume, NIfTI) against dcm2niix, nibabel and pydicom.

Series are generated at test time with pydicom: 24 slices of 64x48 CT, signed 16-bit with
Rescale Intercept -1024, in several geometries (axial, oblique with anisotropic non-unit pixel
spacing, files in shuffled order, gantry tilt, uneven spacing, a missing slice, mixed
orientations, duplicates), an Enhanced CT multi-frame object built from the same slices and a
classic multi-frame NM stack. Debian's dcm2niix converts the same input; both NIfTI files are
read with nibabel (get_fdata applies scl_slope/scl_inter), reoriented with
as_closest_canonical (dcm2niix flips rows, mira keeps DICOM's order: in world space they must
agree) and compared: voxel values equal, affines within 1e-4 mm. pydicom's own series under
test_files/dicomdirtests are converted too.
"""
import json
import math
import re
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from conftest import TEST_FILES, run_mira

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
NM_STORAGE = "1.2.840.10008.5.1.4.1.1.20"
DICOMDIR_TESTS = TEST_FILES / "dicomdirtests"
ROWS, COLS, NSLICES = 48, 64, 24
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
TOL = 1e-4

pytestmark = pytest.mark.skipif(shutil.which("dcm2niix") is None, reason="dcm2niix missing")


def oblique_orientation():
    a, b = math.radians(20), math.radians(10)
    return (math.cos(a), math.sin(a), 0.0,
            -math.sin(a) * math.cos(b), math.cos(a) * math.cos(b), math.sin(b))


def base_dataset(sop_class, series_uid, sop_uid):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.PatientName = "Series^Test"
    ds.PatientID = "mira-series"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.2"
    ds.SeriesNumber = 7
    ds.Manufacturer = "mira-test"
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    return ds


def set_image(ds, pixels):
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.PixelData = pixels.astype("<i2").tobytes()


def ds_text(values, fmt):
    return [format(v, fmt) for v in values]


class Stack:
    """The slices of a generated series: positions, orientation, pixels."""

    def __init__(self, name, positions, iop=AXIAL, spacing=(0.8, 0.6), seed=1):
        self.name = name
        self.iop = iop
        self.spacing = spacing  # DICOM Pixel Spacing: row spacing \ column spacing
        self.positions = [np.asarray(p, dtype=float) for p in positions]
        rng = np.random.default_rng(seed)
        self.pixels = [rng.integers(-1000, 3000, size=(ROWS, COLS), dtype=np.int16)
                       for _ in positions]
        self.series_uid = generate_uid(entropy_srcs=["mira-series", name])
        self.iops = [iop] * len(positions)

    def write(self, folder, order=None, names=None):
        folder.mkdir(parents=True, exist_ok=True)
        order = range(len(self.positions)) if order is None else order
        paths = []
        for rank, k in enumerate(order):
            sop = generate_uid(entropy_srcs=[self.series_uid, str(k)])
            ds = base_dataset(CT_STORAGE, self.series_uid, sop)
            ds.Modality = "CT"
            ds.InstanceNumber = k + 1
            ds.ImagePositionPatient = ds_text(self.positions[k], ".6f")
            ds.ImageOrientationPatient = ds_text(self.iops[k], ".8f")
            ds.PixelSpacing = ds_text(self.spacing, "g")
            ds.SliceThickness = "2.5"
            ds.RescaleIntercept = "-1024"
            ds.RescaleSlope = "1"
            set_image(ds, self.pixels[k])
            name = names[rank] if names else f"s{k:03d}.dcm"
            ds.save_as(folder / name, write_like_original=False)
            paths.append(folder / name)
        return paths


def normal_of(iop):
    return np.cross(np.asarray(iop[:3]), np.asarray(iop[3:]))


def stack_positions(iop, gaps, origin=(-20.0, -15.0, 30.0), shift=(0.0, 0.0, 0.0)):
    """Positions along the normal with the given gaps, plus a sideways shift per slice."""
    n = normal_of(iop)
    z = np.concatenate([[0.0], np.cumsum(gaps)])
    return [np.asarray(origin) + zk * n + k * np.asarray(shift) for k, zk in enumerate(z)]


def write_enhanced(stack, path, frame_order):
    """An Enhanced CT object with the stack's slices as frames (shared orientation, spacing and
    rescale; a position per frame), frames stored in frame_order."""
    uid = generate_uid(entropy_srcs=[stack.series_uid, "enhanced"])
    ds = base_dataset(ENHANCED_CT_STORAGE, generate_uid(entropy_srcs=[uid, "series"]), uid)
    ds.Modality = "CT"
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.NumberOfFrames = len(frame_order)
    ds.ContentQualification = "PRODUCT"
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = ds_text(stack.spacing, "g")
    pm.SliceThickness = "2.5"
    shared.PixelMeasuresSequence = Sequence([pm])
    po = Dataset()
    po.ImageOrientationPatient = ds_text(stack.iop, ".8f")
    shared.PlaneOrientationSequence = Sequence([po])
    pvt = Dataset()
    pvt.RescaleIntercept = "-1024"
    pvt.RescaleSlope = "1"
    pvt.RescaleType = "HU"
    shared.PixelValueTransformationSequence = Sequence([pvt])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    dim_uid = generate_uid(entropy_srcs=[uid, "dim"])
    org = Dataset()
    org.DimensionOrganizationUID = dim_uid
    ds.DimensionOrganizationSequence = Sequence([org])
    idx = Dataset()
    idx.DimensionOrganizationUID = dim_uid
    idx.DimensionIndexPointer = 0x00209057  # In-Stack Position Number
    idx.FunctionalGroupPointer = 0x00209111  # Frame Content Sequence
    ds.DimensionIndexSequence = Sequence([idx])
    frames = []
    for k in frame_order:
        item = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = ds_text(stack.positions[k], ".6f")
        item.PlanePositionSequence = Sequence([pp])
        fc = Dataset()
        fc.InStackPositionNumber = k + 1
        fc.StackID = "1"
        fc.DimensionIndexValues = [k + 1]
        item.FrameContentSequence = Sequence([fc])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    set_image(ds, np.stack([stack.pixels[k] for k in frame_order]))
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, write_like_original=False)
    return path


# ------------------------------------------------------------------ running the tools

def mira_convert(inputs, out, *extra, check=True):
    proc = run_mira("convert", *inputs, "-o", out, "--json", *extra, check=False)
    stderr = proc.stderr.decode(errors="replace")
    if check and proc.returncode != 0:
        raise AssertionError(f"mira convert exited {proc.returncode}: {stderr}")
    report = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, report, stderr


def dcm2niix(folder, outdir):
    """dcm2niix's NIfTI files (without the _Tilt/_Eq resampled extras) and its log."""
    outdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["dcm2niix", "-z", "n", "-b", "n", "-f", "ref", "-o", str(outdir),
                           str(folder)], capture_output=True, text=True, timeout=60)
    files = sorted(p for p in outdir.glob("*.nii")
                   if "_Tilt_" not in p.name and "_Eq_" not in p.name)
    return files, proc.stdout + proc.stderr


def canonical(path):
    img = nib.as_closest_canonical(nib.load(str(path)))
    return img.get_fdata(), img.affine


def assert_same_world(mira_nii, ref_nii):
    a, aa = canonical(mira_nii)
    b, ba = canonical(ref_nii)
    assert a.shape == b.shape
    np.testing.assert_allclose(aa, ba, atol=TOL)
    assert np.array_equal(a, b)


def assert_header(nii):
    img = nib.load(str(nii))
    h = img.header
    assert int(h["sform_code"]) == 1 and int(h["qform_code"]) == 1  # NIFTI_XFORM_SCANNER_ANAT
    assert h.get_xyzt_units()[0] == "mm"
    # qform and sform describe the same grid (orthonormal directions)
    np.testing.assert_allclose(img.get_qform(), img.get_sform(), atol=TOL)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("series")


# ------------------------------------------------------------------ regular series

def make_axial():
    return Stack("axial", stack_positions(AXIAL, [2.5] * (NSLICES - 1)))


def make_oblique():
    iop = oblique_orientation()
    return Stack("oblique", stack_positions(iop, [3.1] * (NSLICES - 1), origin=(12.5, -40, 7)),
                 iop=iop, spacing=(0.7, 0.45), seed=2)


@pytest.mark.parametrize("make", [make_axial, make_oblique], ids=["axial", "oblique"])
def test_matches_dcm2niix(work, make):
    stack = make()
    folder = work / stack.name
    stack.write(folder)
    refs, log = dcm2niix(folder, work / f"{stack.name}-ref")
    assert len(refs) == 1, log
    out = work / f"{stack.name}.nii"
    _, rep, stderr = mira_convert([folder], out)
    assert_same_world(out, refs[0])
    assert_header(out)
    assert rep["slices"] == NSLICES and rep["dims"] == [COLS, ROWS, NSLICES]
    assert rep["type"] == "i16"  # modality values, integral and within int16
    assert not rep["warnings"] and "warning" not in stderr
    # independent of dcm2niix: mira's volume is DICOM's order (x along rows, first slice at
    # index 0) with modality values, and the spacing is (column, row, gap) spacing
    img = nib.load(str(out))
    data = np.asarray(img.dataobj)
    for k in (0, NSLICES - 1):
        assert np.array_equal(data[:, :, k].T, stack.pixels[k].astype(np.int32) - 1024)
    np.testing.assert_allclose(img.header.get_zooms(),
                               (stack.spacing[1], stack.spacing[0],
                                np.linalg.norm(stack.positions[1] - stack.positions[0])),
                               atol=1e-5)
    # the affine maps voxel (0, 0, k) to slice k's Image Position (Patient), in RAS
    lps_to_ras = np.diag([-1, -1, 1])
    for k in (0, 5, NSLICES - 1):
        np.testing.assert_allclose(img.affine @ [0, 0, k, 1],
                                   list(lps_to_ras @ stack.positions[k]) + [1], atol=TOL)


def test_gz_and_nifti2(work):
    stack = make_oblique()
    folder = work / "oblique-gz"
    stack.write(folder)
    plain, gz, two = work / "o1.nii", work / "o1.nii.gz", work / "o2.nii"
    mira_convert([folder], plain)
    mira_convert([folder], gz)
    mira_convert([folder], two, "--nifti2")
    assert nib.load(str(two)).header.sizeof_hdr == 540
    with open(gz, "rb") as f:
        assert f.read(2) == b"\x1f\x8b"
    for other in (gz, two):
        assert_same_world(other, plain)


def test_shuffled_files(work):
    """Files named and numbered in an order unrelated to their positions."""
    stack = make_axial()
    folder = work / "shuffled"
    order = list(np.random.default_rng(5).permutation(NSLICES))
    names = [f"img{(7 * i) % NSLICES:02d}.dcm" for i in range(NSLICES)]
    paths = stack.write(folder, order=order, names=names)
    refs, log = dcm2niix(folder, work / "shuffled-ref")
    assert len(refs) == 1, log
    out = work / "shuffled.nii"
    mira_convert([folder], out)
    assert_same_world(out, refs[0])
    # the files given one by one, in yet another order
    out2 = work / "shuffled-files.nii"
    mira_convert(sorted(paths, key=lambda p: p.name[::-1]), out2)
    assert_same_world(out2, refs[0])


def test_enhanced_multiframe(work):
    stack = make_oblique()
    stack.name = "enhanced"
    path = write_enhanced(stack, work / "enhanced" / "enh.dcm",
                          frame_order=list(reversed(range(NSLICES))))
    refs, log = dcm2niix(path.parent, work / "enhanced-ref")
    assert len(refs) == 1, log
    out = work / "enhanced.nii"
    _, rep, _ = mira_convert([path], out)
    assert rep["multiframe"] and rep["slices"] == NSLICES
    assert_same_world(out, refs[0])
    # the same volume as the classic series of the same slices
    classic = work / "enhanced-classic"
    stack.write(classic)
    out2 = work / "enhanced-classic.nii"
    mira_convert([classic], out2)
    assert_same_world(out, out2)


def test_classic_multiframe_stack(work):
    """NM-style multi-frame without per-frame positions: frames stacked with Spacing Between
    Slices, geometry assumed (a warning says so). Values against pydicom's pixel_array."""
    rng = np.random.default_rng(9)
    frames = rng.integers(0, 4000, size=(6, 20, 30), dtype=np.int16)
    uid = generate_uid(entropy_srcs=["mira-nm"])
    ds = base_dataset(NM_STORAGE, generate_uid(entropy_srcs=[uid, "series"]), uid)
    ds.Modality = "NM"
    ds.NumberOfFrames = 6
    ds.ImagePositionPatient = ["10", "20", "30"]
    ds.ImageOrientationPatient = ds_text(AXIAL, "g")
    ds.PixelSpacing = ["4", "3"]
    ds.SpacingBetweenSlices = "4.5"
    set_image(ds, frames)
    path = work / "nm.dcm"
    ds.save_as(path, write_like_original=False)
    out = work / "nm.nii"
    _, rep, stderr = mira_convert([path], out)
    assert rep["multiframe"] and "geometry is assumed" in stderr
    img = nib.load(str(out))
    ref = pydicom.dcmread(path).pixel_array
    assert np.array_equal(np.asarray(img.dataobj).transpose(2, 1, 0), ref)
    np.testing.assert_allclose(img.header.get_zooms(), (3, 4, 4.5))
    np.testing.assert_allclose(img.affine[:3, 3], (-10, -20, 30))


# ------------------------------------------------------------------ problems

def test_gantry_tilt(work):
    """Positions shifted 0.8 mm in y per 2.5 mm step along z, as a tilted gantry makes them.

    dcm2niix (v1.0.20220720) writes two files: one with a sheared affine whose third column is
    the step between positions (voxels not moved), and a resampled '_Tilt_1' one. mira keeps
    the orientation's normal as third column (no shear, as NIfTI's qform can express) and
    warns; its voxels are dcm2niix's unresampled ones."""
    stack = Stack("tilt", stack_positions(AXIAL, [2.5] * (NSLICES - 1), shift=(0, 0.8, 0)))
    folder = work / "tilt"
    stack.write(folder)
    refs, log = dcm2niix(folder, work / "tilt-ref")
    assert len(refs) == 1, log
    expected = math.degrees(math.atan2(0.8, 2.5))
    m = re.search(r"estimated from slice vector (-?[0-9.]+)", log)
    assert m and abs(abs(float(m.group(1))) - expected) < 0.01, log
    out = work / "tilt.nii"
    _, rep, stderr = mira_convert([folder], out)
    assert rep["tilted"] and abs(rep["tilt_degrees"] - expected) < 0.01
    assert "gantry tilt" in stderr and "not resampled" in stderr
    assert any("gantry tilt" in w for w in rep["warnings"])
    a, aa = canonical(out)
    b, ba = canonical(refs[0])
    assert np.array_equal(a, b)
    np.testing.assert_allclose(aa[:, [0, 1, 3]], ba[:, [0, 1, 3]], atol=TOL)
    # mira's slice axis: dcm2niix's step projected on the normal
    n = np.array([0, 0, 1.0])
    np.testing.assert_allclose(aa[:3, 2], n * (ba[:3, 2] @ n), atol=TOL)


def test_uneven_spacing(work):
    """One gap of 3.1 mm among 2.5 mm ones. dcm2niix warns "Interslice distance varies" and
    adds a resampled '_Eq_1' file; its plain file has the same voxels as mira's."""
    gaps = [2.5] * (NSLICES - 1)
    gaps[10] = 3.1
    stack = Stack("uneven", stack_positions(AXIAL, gaps))
    folder = work / "uneven"
    stack.write(folder)
    refs, log = dcm2niix(folder, work / "uneven-ref")
    assert "distance varies" in log
    out = work / "uneven.nii"
    _, rep, stderr = mira_convert([folder], out)
    assert rep["uneven"] and not rep["missing_slices"]
    assert "uneven slice spacing" in stderr
    assert rep["min_spacing"] == pytest.approx(2.5, abs=1e-4)
    assert rep["max_spacing"] == pytest.approx(3.1, abs=1e-4)
    assert np.array_equal(canonical(out)[0], canonical(refs[0])[0])
    assert nib.load(str(out)).header.get_zooms()[2] == pytest.approx(2.5, abs=1e-4)  # median


def test_missing_slice(work):
    """Slice 12 of 24 left out: a gap of twice the spacing. dcm2niix warns that the
    interslice distance varies (and about the missing instance number)."""
    stack = make_axial()
    stack.name = "missing"
    folder = work / "missing"
    stack.write(folder)
    (folder / "s012.dcm").unlink()
    refs, log = dcm2niix(folder, work / "missing-ref")
    assert "distance varies" in log or "Missing" in log
    out = work / "missing.nii"
    _, rep, stderr = mira_convert([folder], out)
    assert rep["missing_slices"] and not rep["uneven"] and rep["slices"] == NSLICES - 1
    assert "missing slices" in stderr
    assert np.array_equal(canonical(out)[0], canonical(refs[0])[0])


def test_mixed_orientation(work):
    """One slice rotated: no volume (dcm2niix writes each orientation separately)."""
    stack = make_axial()
    stack.name = "mixed"
    stack.iops[7] = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    folder = work / "mixed"
    stack.write(folder)
    out = work / "mixed.nii"
    rc, rep, stderr = mira_convert([folder], out, check=False)
    assert rc == 1 and not out.exists()
    assert "different orientations" in stderr and "s007.dcm" in stderr
    assert rep["mixed_orientation"] and "error" in rep


def test_duplicates(work):
    """A copy of a file is dropped with a warning (dcm2niix: "DUPLICATES REMOVED"); two
    instances at one position are refused (dcm2niix stacks them with a zero gap and warns that
    the interslice distance varies)."""
    stack = make_axial()
    stack.name = "dups"
    folder = work / "dups"
    paths = stack.write(folder)
    # the same instance twice: ignored, with a warning
    shutil.copy(paths[3], folder / "copy.dcm")
    out = work / "dups.nii"
    _, rep, stderr = mira_convert([folder], out)
    assert rep["slices"] == NSLICES and "SOP Instance UID" in stderr
    # two instances at one position: refused
    other = Stack("dups", stack.positions[:1], seed=3)
    other.series_uid = stack.series_uid
    other.write(folder, names=["other.dcm"])
    ds = pydicom.dcmread(folder / "other.dcm")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(folder / "other.dcm")
    rc, _, stderr = mira_convert([folder], work / "dups2.nii", check=False)
    assert rc == 1 and "same position" in stderr


def test_stored_values(work):
    stack = make_axial()
    stack.name = "stored"
    folder = work / "stored"
    stack.write(folder)
    out = work / "stored.nii"
    _, rep, _ = mira_convert([folder], out, "--stored")
    data = np.asarray(nib.load(str(out)).dataobj)
    assert data.dtype == np.int16
    assert np.array_equal(data[:, :, 4].T, stack.pixels[4])


# ------------------------------------------------------------------ pydicom's series

@pytest.mark.parametrize("rel", ["77654033/CT2", "98892001/CT5N"])
def test_pydicom_series(work, rel):
    folder = DICOMDIR_TESTS / rel
    refs, log = dcm2niix(folder, work / ("ref-" + rel.replace("/", "-")))
    assert len(refs) == 1, log
    out = work / (rel.replace("/", "-") + ".nii")
    _, rep, _ = mira_convert([folder], out)
    a, aa = canonical(out)
    b, ba = canonical(refs[0])
    assert np.array_equal(a, b)
    np.testing.assert_allclose(aa[:, [0, 1, 3]], ba[:, [0, 1, 3]], atol=TOL)
    # z spacing: the median gap between positions (dcm2niix takes the first gap, which for
    # CT2's 202.5, 1.25, 1.25 mm is not the spacing of the stack)
    z = sorted(float(pydicom.dcmread(p).ImagePositionPatient[2]) for p in folder.iterdir())
    assert rep["spacing"][2] == pytest.approx(float(np.median(np.diff(z))), abs=1e-4)
    if rel.endswith("CT5N"):
        np.testing.assert_allclose(aa, ba, atol=TOL)
    else:
        assert rep["missing_slices"]


def test_pydicom_mr_folder_of_three_series(work):
    folder = DICOMDIR_TESTS / "98892003" / "MR2"
    rc, _, stderr = mira_convert([folder], work / "mr2.nii", check=False)
    assert rc == 1 and "3 series" in stderr
    # the localizer series: three orientations
    rc, _, stderr = mira_convert([folder], work / "mr2.nii",
                                 "--series", "1.3.6.1.4.1.5962.1.1.0.0.0.1196533885.18148.0.17",
                                 check=False)
    assert rc == 1 and "different orientations" in stderr
    # the one-image series: matches one of dcm2niix's outputs
    out = work / "mr2-481.nii"
    mira_convert([folder], out, "--series", "1.3.6.1.4.1.5962.1.1.0.0.0.1196533885.18148.0.481")
    # the same from the files of the folder given one by one
    out_files = work / "mr2-481-files.nii"
    mira_convert(sorted(folder.iterdir()), out_files, "--series",
                 "1.3.6.1.4.1.5962.1.1.0.0.0.1196533885.18148.0.481")
    assert_same_world(out_files, out)
    refs, _ = dcm2niix(folder, work / "mr2-ref")
    a, aa = canonical(out)
    matches = []
    for r in refs:
        b, ba = canonical(r)
        if b.shape == a.shape and np.array_equal(a, b):
            matches.append(np.allclose(aa[:, [0, 1, 3]], ba[:, [0, 1, 3]], atol=TOL))
    assert matches == [True]


# ------------------------------------------------------------------ usage

def test_usage_and_input_errors(work):
    assert run_mira("convert", "--help").returncode == 0
    assert run_mira("convert", str(work), check=False).returncode == 2  # no -o
    assert run_mira("convert", str(work), "-o", str(work / "x.img"), check=False).returncode == 2
    assert run_mira("convert", "--bogus", check=False).returncode == 2
    proc = run_mira("convert", str(work / "nothing-here.dcm"), "-o", str(work / "x.nii"),
                    check=False)
    assert proc.returncode == 1 and b"nothing-here.dcm" in proc.stderr
    empty = work / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not DICOM")
    proc = run_mira("convert", str(empty), "-o", str(work / "x.nii"), check=False)
    assert proc.returncode == 1 and b"no DICOM images" in proc.stderr
    assert not (work / "x.nii").exists()


def test_rt_dose_grid_frame_offsets(work):
    """pydicom's rtdose.dcm: a classic multi-frame RT Dose whose frames are placed by Grid Frame
    Offset Vector (3004,000C). dcm2niix (1.0.20220720) does not read it ("Unable to determine
    slice direction") and writes a 1 mm slice spacing; its voxels are the same as mira's."""
    path = TEST_FILES / "rtdose.dcm"
    ds = pydicom.dcmread(path)
    offsets = [float(v) for v in ds.GridFrameOffsetVector]
    folder = work / "rtdose"
    folder.mkdir()
    shutil.copy(path, folder)
    refs, log = dcm2niix(folder, work / "rtdose-ref")
    assert len(refs) == 1, log
    out = work / "rtdose.nii"
    _, rep, stderr = mira_convert([path], out)
    assert rep["multiframe"] and not rep["warnings"]
    assert rep["spacing"][2] == pytest.approx(float(np.median(np.diff(offsets))), abs=1e-6)
    a, aa = canonical(out)
    b, ba = canonical(refs[0])
    assert np.array_equal(a, b)
    np.testing.assert_allclose(aa[:, [0, 1, 3]], ba[:, [0, 1, 3]], atol=TOL)
    data = np.asarray(nib.load(str(out)).dataobj)
    assert np.array_equal(data.transpose(2, 1, 0), ds.pixel_array)
