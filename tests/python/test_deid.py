"""mira deid against an independent transcription of PS3.15 Table E.1-1 (dicom-anonymizer), DCMTK.

The reference is dicom-anonymizer 2.1.0's own transcription of the Basic Profile column
(dicomanonymizer/dicom_anonymization_databases/dicomfields_<edition>.py: tags per action). Its
module is loaded from the installed file, not imported as a package (the package's __init__
pulls in its anonymizer, which wants another pydicom than ours).

Inputs: Debian's pydicom test set (CT, MR, RT, SR, sequences, private tags, several syntaxes)
and a synthetic "PHI canary": every attribute of the table set to a recognizable value
("PHI-<tag>" in text, one date, UIDs under one root), private blocks, curves and overlays, in
sequences too. Every output file is searched byte by byte for what must be gone.
"""
import csv
import importlib.util
import json
import os
import pathlib
import re
import stat
import subprocess

import pydicom
import pytest
from pydicom import config as pydicom_config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence

from conftest import CHARSET_FILES, ROOT, TEST_FILES, run_mira

pydicom_config.settings.writing_validation_mode = pydicom_config.IGNORE
pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE

EDITION = "2026c"  # the newest transcription dicom-anonymizer 2.1.0 ships
SECRET = "test-secret"
CANARY_DATE = "19610203"
CANARY_UID_ROOT = "1.2.826.0.1.3680043.10.999."
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"

# Where mira's table (innolitics' extraction of an earlier edition, plus the supplement for
# the rows later editions added) and dicom-anonymizer's 2026c transcription differ: the
# standard changed between the editions. Tag: (mira's action, reference's action, note).
DISAGREEMENTS = {
    0x00100020: ("Z", "Z/D", "Patient ID: Z in the extraction's edition, Z/D since 2024b; mira "
                             "writes the pseudonym, which satisfies both"),
    0x30060009: ("X/D", "Z", "Structure Set Time: X/D in the extraction, Z in the reference "
                             "(Structure Set Date is Z in both)"),
    0x300A00B2: ("X", "X/Z", "Treatment Machine Name: X in the extraction, X/Z later"),
    0x30100077: ("D", "X/D", "Treatment Site: D in the extraction, X/D later"),
}

MIRA_ACTIONS = {"D": "D", "Z": "Z", "X": "X", "K": "K", "C": "C", "U": "U", "ZD": "Z/D",
                "XZ": "X/Z", "XD": "X/D", "XZD": "X/Z/D", "XZU": "X/Z/U*"}
REF_CATEGORIES = {"D_TAGS": "D", "Z_TAGS": "Z", "X_TAGS": "X", "U_TAGS": "U",
                  "Z_D_TAGS": "Z/D", "X_Z_TAGS": "X/Z", "X_D_TAGS": "X/D",
                  "X_Z_D_TAGS": "X/Z/D", "X_Z_U_STAR_TAGS": "X/Z/U*"}


# ------------------------------------------------------------------ the two transcriptions

def reference_table():
    """dicom-anonymizer's Table E.1-1: {tag: action} and {(tag, mask): action} for repeaters."""
    spec = importlib.util.find_spec("dicomanonymizer")
    base = pathlib.Path(spec.submodule_search_locations[0]) / "dicom_anonymization_databases"
    mspec = importlib.util.spec_from_file_location(
        "dicomfields_ref", base / f"dicomfields_{EDITION}.py")
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    exact, repeating = {}, {}
    for cat, action in REF_CATEGORIES.items():
        for t in getattr(mod, cat):
            if len(t) == 2:
                exact[t[0] << 16 | t[1]] = action
            else:
                repeating[(t[0] << 16 | t[1], t[2] << 16 | t[3])] = action
    return exact, repeating


def mira_table():
    """mira's generated table: {tag: (action, options, name)} and the repeating rows."""
    src = (ROOT / "src" / "dicom" / "deid_table.c").read_text()
    exact, repeating = {}, {}
    for m in re.finditer(r'\{0x([0-9A-F]{8})u, 0x([0-9A-F]{8})u, MIRA__DEID_(\w+), "([-KCX]{10})",'
                         r' (true|false), "([^"]*)"\}', src):
        tag, mask = int(m.group(1), 16), int(m.group(2), 16)
        row = (MIRA_ACTIONS[m.group(3)], m.group(4), m.group(6))
        if mask == 0xFFFFFFFF:
            exact[tag] = row
        elif tag != 0x00010000:
            repeating[(tag, mask)] = row
    return exact, repeating


REF_EXACT, REF_REPEATING = reference_table()
MIRA_EXACT, MIRA_REPEATING = mira_table()


def test_transcriptions_agree_except_documented_changes():
    assert len(MIRA_EXACT) + len(MIRA_REPEATING) >= 600
    missing = sorted(f"{t:08X}" for t in REF_EXACT if t not in MIRA_EXACT)
    assert not missing, f"attributes of the reference table that mira lacks: {missing}"
    # rows only mira has (none expected but the private row, which the reference models apart)
    extra = sorted(f"{t:08X}" for t in MIRA_EXACT if t not in REF_EXACT)
    assert not extra, f"rows only in mira's table: {extra}"
    differ = {t: (MIRA_EXACT[t][0], REF_EXACT[t]) for t in REF_EXACT
              if MIRA_EXACT[t][0] != REF_EXACT[t]}
    documented = {t: (m, r) for t, (m, r, _) in DISAGREEMENTS.items()}
    assert differ == documented, (
        "disagreements between the transcriptions changed: "
        f"{ {f'{t:08X}': v for t, v in differ.items()} }")
    # curves and overlays: the same rows on both sides
    for key, action in REF_REPEATING.items():
        assert key in MIRA_REPEATING and MIRA_REPEATING[key][0] == action, key


# ------------------------------------------------------------------ helpers

def deid(inputs, out, *opts, check=True):
    """Run mira deid --json; returns (process, [json lines], summary)."""
    proc = run_mira("deid", *map(str, inputs), "-o", out, "--json", "--no-progress", *opts,
                    check=check)
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines() if line.strip()]
    summary = lines[-1]["summary"] if lines and "summary" in lines[-1] else None
    return proc, [x for x in lines if "summary" not in x], summary


def written(lines):
    return {x["input"]: x["output"] for x in lines if x["status"] == "written"}


UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def valid_uid(u):
    return 0 < len(u) <= 64 and UID_RE.match(u) is not None


def walk(ds, path=()):
    """Every element of a data set, in sequences too: (path, element)."""
    for el in ds:
        yield path, el
        if el.VR == "SQ" and el.value:
            for i, item in enumerate(el.value):
                yield from walk(item, path + ((el.tag, i),))


def dcmdump_ok(path):
    proc = subprocess.run(["dcmdump", str(path)], capture_output=True, text=True, timeout=60,
                          errors="replace")
    errors = [line for line in (proc.stdout + proc.stderr).splitlines()
              if line.startswith("E:") or line.startswith("F:")]
    return proc.returncode == 0 and not errors, proc.stderr[-2000:] + "\n".join(errors)


def value_text(el):
    v = el.value
    if isinstance(v, bytes):
        return v.decode("latin-1")
    if isinstance(v, (list, pydicom.multival.MultiValue)):
        return "\\".join(str(x) for x in v)
    return "" if v is None else str(v)


def is_empty(el):
    if el.VR == "SQ":
        return len(el.value) == 0
    return el.value in (None, "", b"") or (not isinstance(el.value, (int, float)) and
                                           len(el.value) == 0)


# ------------------------------------------------------------------ the PHI canary

def guess_vr(tag, name):
    try:
        vr = pydicom.datadict.dictionary_VR(tag)
        return vr.split(" or ")[0]
    except KeyError:
        pass
    n = name.lower()
    if n.endswith("sequence"):
        return "SQ"
    if n.endswith("uid"):
        return "UI"
    if "datetime" in n or "timestamp" in n:
        return "DT"
    if n.endswith("date") or " date " in n or "date of" in n:
        return "DA"
    if n.endswith("time"):
        return "TM"
    return "LO"


def canary_uid(i):
    return f"{CANARY_UID_ROOT}{i}"


def canary_item(tag, i):
    item = Dataset()
    item.ReferencedSOPClassUID = CT_IMAGE
    item.ReferencedSOPInstanceUID = canary_uid(100000 + i)
    item.add_new(0x0040A123, "PN", f"PHI-SQ-{tag:08X}")
    return item


def canary_element(tag, vr, i):
    t = f"{tag:08X}"
    text = {"AE": f"PHI-{t}", "CS": f"PHI-{t}", "SH": f"PHI-{t}", "LO": f"PHI-{t}",
            "LT": f"PHI-{t}", "ST": f"PHI-{t}", "UT": f"PHI-{t}", "UC": f"PHI-{t}",
            "UR": f"PHI-{t}", "PN": f"PHI-{t}^PHI", "AS": "077Y", "DA": CANARY_DATE,
            "TM": "112233", "DT": CANARY_DATE + "112233", "UI": canary_uid(i), "IS": "7777",
            "DS": "77.77"}
    if vr in text:
        return DataElement(tag, vr, text[vr])
    if vr in ("US", "SS", "UL", "SL", "SV", "UV"):
        return DataElement(tag, vr, 7)
    if vr in ("FL", "FD"):
        return DataElement(tag, vr, 7.5)
    if vr == "AT":
        return DataElement(tag, vr, 0x00100010)
    if vr == "SQ":
        return DataElement(tag, vr, Sequence([canary_item(tag, i)]))
    return DataElement(tag, vr, f"PHI-{t}".encode())  # OB, OW, UN and the other bulk VRs


def make_canary(path, sop_uid=None):
    """A CT image with every attribute of mira's table (and the reference's) set."""
    ds = Dataset()
    tags = sorted(set(MIRA_EXACT) | set(REF_EXACT))
    for i, tag in enumerate(tags):
        group = tag >> 16
        if group in (0x0000, 0x0002) or tag in (0xFFFAFFFA, 0xFFFCFFFC):
            continue
        name = MIRA_EXACT.get(tag, ("", "", ""))[2]
        ds[tag] = canary_element(tag, guess_vr(tag, name), i)
    ds.SOPClassUID = CT_IMAGE
    ds.SOPInstanceUID = sop_uid or canary_uid(1)
    ds.StudyInstanceUID = canary_uid(2)
    ds.SeriesInstanceUID = canary_uid(3)
    ds.Modality = "CT"
    # an unlisted sequence holding listed attributes
    nested = Dataset()
    nested.SeriesInstanceUID = canary_uid(4)
    nested.add_new(0x0040A123, "PN", "PHI-NESTED^PN")
    nested.StudyDescription = "PHI-NESTED-DESCRIPTION"
    nested.StudyDate = CANARY_DATE
    inner = Dataset()
    inner.ReferencedSOPClassUID = CT_IMAGE
    inner.ReferencedSOPInstanceUID = canary_uid(5)
    nested.ReferencedInstanceSequence = Sequence([inner])
    ds.ReferencedSeriesSequence = Sequence([nested])
    # private blocks, a curve, an overlay
    ds.add_new(0x00090010, "LO", "PHI-CREATOR")
    ds.add_new(0x00091001, "LO", "PHI-PRIVATE")
    ds.add_new(0x00091002, "OB", b"PHI-PRIVATEOB")
    priv_item = Dataset()
    priv_item.add_new(0x00110010, "LO", "PHI-CREATOR2")
    priv_item.add_new(0x00111001, "LO", "PHI-NESTED-PRIVATE")
    ds.add_new(0x00091003, "SQ", Sequence([priv_item]))
    ds.add_new(0x50000005, "US", 1)
    ds.add_new(0x50003000, "OW", b"PHI-CURVE-DATA")
    ds.add_new(0x60000010, "US", 4)
    ds.add_new(0x60000011, "US", 4)
    ds.add_new(0x60000022, "LO", "PHI-OVERLAY-DESCRIPTION")
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", b"PHI-OVERLAY-BITS")
    ds.add_new(0x60004000, "LT", "PHI-60004000")
    # a small image
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(32)
    ds.add_new(0xFFFAFFFA, "SQ", Sequence([canary_item(0xFFFAFFFA, 0)]))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    meta.add_new(0x00020016, "AE", "PHI-SOURCEAE")
    ds.file_meta = meta
    ds.preamble = b"PHI-PREAMBLE".ljust(128, b"\0")
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    ds.save_as(path, write_like_original=False)
    return ds


@pytest.fixture(scope="module")
def canary(tmp_path_factory):
    d = tmp_path_factory.mktemp("canary")
    src = d / "canary.dcm"
    original = make_canary(src)
    out = d / "out"
    proc, lines, summary = deid([src], out, "--secret", SECRET, "--map", d / "map.csv")
    assert summary["written"] == 1, proc.stderr
    return original, pathlib.Path(lines[0]["output"]), d


def test_canary_leaves_no_identifying_byte(canary):
    original, out, _ = canary
    data = out.read_bytes()
    for needle in (b"PHI-", CANARY_UID_ROOT.encode(), CANARY_DATE.encode(), b"112233"):
        assert needle not in data, (needle, data[max(0, data.find(needle) - 80):
                                                 data.find(needle) + 80])


def test_canary_actions_match_the_reference(canary):
    original, out, _ = canary
    ds = pydicom.dcmread(out)
    for tag, action in REF_EXACT.items():
        if tag not in original:
            continue
        check_action(tag, action, original[tag], ds.get(tag))


def check_action(tag, action, orig, new):
    """The reference's action holds for one top-level attribute."""
    t = f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {action}"
    if is_empty(orig) and action != "X":
        return  # nothing to protect; mira keeps empty values empty
    changed = new is None or value_text(new) != value_text(orig) or (
        new.VR == "SQ" and len(new.value) != len(orig.value))
    if action == "X":
        assert new is None, t
    elif action == "Z":
        assert new is not None and (is_empty(new) or changed), t
    elif action in ("D", "Z/D"):
        assert new is not None and changed, t
    elif action in ("X/Z", "X/D", "X/Z/D"):
        assert new is None or is_empty(new) or changed, t
    elif action == "U":
        assert new is not None, t
        for v in (new.value if isinstance(new.value, (list, pydicom.multival.MultiValue))
                  else [new.value]):
            assert valid_uid(str(v)), (t, v)
        assert value_text(new) != value_text(orig) or value_text(orig).startswith(
            "1.2.840.10008."), t
    elif action == "X/Z/U*":
        if new is not None and new.value:
            for (_, el) in walk(Dataset({tag: new})):
                if el.tag == 0x00081155:
                    assert not str(el.value).startswith(CANARY_UID_ROOT), t


def test_canary_de_identification_attributes(canary):
    _, out, _ = canary
    ds = pydicom.dcmread(out)
    assert ds.PatientIdentityRemoved == "YES"
    codes = [i.CodeValue for i in ds.DeidentificationMethodCodeSequence]
    assert codes == ["113100"]
    assert all(i.CodingSchemeDesignator == "DCM" for i in ds.DeidentificationMethodCodeSequence)
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert valid_uid(ds.SOPInstanceUID) and ds.SOPInstanceUID.startswith("2.25.")
    assert 0x00020016 not in ds.file_meta
    assert ds.preamble == bytes(128)
    # private blocks, the curve and the whole overlay are gone
    assert not [el for _, el in walk(ds) if el.tag.group & 1]
    assert not [el for el in ds if el.tag.group in (0x5000, 0x6000)]
    assert ds.PatientName == ds.PatientID and str(ds.PatientID).startswith("ANON-")
    nested = ds.ReferencedSeriesSequence[0]
    assert nested.SeriesInstanceUID == ds.SeriesInstanceUID or valid_uid(nested.SeriesInstanceUID)
    assert "PHI" not in str(nested.get("PersonName", ""))


def test_canary_map_file(canary):
    _, out, d = canary
    mode = stat.S_IMODE(os.stat(d / "map.csv").st_mode)
    assert mode == 0o600
    rows = list(csv.reader(open(d / "map.csv")))
    assert rows[0] == ["kind", "original", "replacement"]
    ds = pydicom.dcmread(out)
    pairs = {(r[0], r[1]): r[2] for r in rows[1:]}
    assert pairs[("uid", canary_uid(1))] == ds.SOPInstanceUID
    assert pairs[("uid", canary_uid(2))] == ds.StudyInstanceUID
    assert pairs[("patient", "PHI-00100020")] == ds.PatientID


def test_canary_read_by_dcmtk(canary):
    _, out, _ = canary
    ok, why = dcmdump_ok(out)
    assert ok, why


# ------------------------------------------------------------------ the pydicom test set

@pytest.fixture(scope="module")
def testset(tmp_path_factory):
    d = tmp_path_factory.mktemp("testset")
    proc, lines, summary = deid([TEST_FILES, CHARSET_FILES], d / "out", "--secret", SECRET,
                                check=False)
    assert proc.returncode == 1  # the set has non-DICOM and truncated files: reported, skipped
    return lines, summary, d


def test_testset_non_dicom_reported_and_skipped(testset):
    lines, summary, _ = testset
    failed = {pathlib.Path(x["input"]).name for x in lines if x["status"] == "failed"}
    assert "README.txt" in failed and "rtplan.dump" in failed
    assert summary["written"] >= 60
    assert summary["written"] + summary["failed"] + summary["skipped"] == summary["inputs"]


def test_testset_nothing_half_written(testset):
    _, _, d = testset
    leftovers = [p for p in (d / "out").rglob("*") if ".tmp" in p.name]
    assert not leftovers


def originals(testset):
    lines, _, _ = testset
    for src, out in sorted(written(lines).items()):
        try:
            orig = pydicom.dcmread(src, force=True)
            orig.decode() if hasattr(orig, "decode") else None
        except Exception:
            continue
        yield pathlib.Path(src), orig, pathlib.Path(out)


def test_testset_actions_match_the_reference(testset):
    checked = 0
    for src, orig, out in originals(testset):
        new = pydicom.dcmread(out)
        for tag, action in REF_EXACT.items():
            if tag in orig and tag >> 16 not in (0x0002,):
                try:
                    check_action(tag, action, orig[tag], new.get(tag))
                except AssertionError as e:
                    raise AssertionError(f"{src.name}: {e}") from None
                checked += 1
        assert not [el for _, el in walk(new) if el.tag.group & 1], src.name
    assert checked > 500


def identifying_values(orig):
    """Values (6 characters or more) of the attributes the reference does not keep, anywhere
    in the data set, less those that some kept attribute holds as well."""
    protected, kept = set(), set()
    for _, el in walk(orig):
        if el.VR in ("SQ", "OB", "OW", "UN", "OF", "OD", "OL", "OV") or el.tag.group & 1:
            continue
        text = value_text(el).strip(" \0")
        values = {text} | set(text.split("\\"))
        if el.VR == "PN":
            values |= set(re.split(r"[\^=\\]", text))
        values = {v.strip() for v in values if len(v.strip()) >= 6}
        if el.tag in REF_EXACT and el.tag != 0x00080016:
            protected |= values
        else:
            kept |= values
    kept |= {"000000", "19000101", "19000101000000", "ANONYMOUS", "ANONYMIZED"}  # mira's dummies
    kept_text = "\n".join(kept)
    return {v for v in protected - kept
            if not v.startswith("1.2.840.10008.") and v not in kept_text}


def test_testset_no_original_value_in_output_bytes(testset):
    leaks = []
    for src, orig, out in originals(testset):
        data = out.read_bytes()
        for v in identifying_values(orig):
            try:
                needle = v.encode("ascii")
            except UnicodeEncodeError:
                continue
            if needle in data:
                leaks.append((src.name, v))
    assert not leaks, leaks[:20]


def test_testset_uids_valid_and_remapped(testset):
    for src, orig, out in originals(testset):
        new = pydicom.dcmread(out)
        for _, el in walk(new):
            if el.VR == "UI" and el.value:
                for v in (el.value if isinstance(el.value, pydicom.multival.MultiValue)
                          else [el.value]):
                    assert valid_uid(str(v)), (src.name, el.tag, v)
        for tag in (0x0020000D, 0x0020000E, 0x00080018):
            if tag in orig and orig[tag].value:
                assert new[tag].value != orig[tag].value and new[tag].value.startswith("2.25.")


def test_testset_read_by_dcmtk(testset):
    bad = []
    for src, _, out in originals(testset):
        ok, why = dcmdump_ok(out)
        if not ok:
            bad.append((src.name, why))
    assert not bad, bad[:5]


# ------------------------------------------------------------------ UIDs across a study

def make_study(folder, patient="PAT-1", name="DOE^JANE", n=4, study_uid=None):
    """n instances of one study (two series, one frame of reference) from MR_small; the last
    references the first in its Referenced Image Sequence and Source Image Sequence."""
    folder.mkdir(parents=True, exist_ok=True)
    base = pydicom.dcmread(TEST_FILES / "MR_small.dcm")
    study = study_uid or pydicom.uid.generate_uid()
    series = [pydicom.uid.generate_uid(), pydicom.uid.generate_uid()]
    frame = pydicom.uid.generate_uid()
    sops, paths = [], []
    for i in range(n):
        ds = base.copy()
        ds.PatientID = patient
        ds.PatientName = name
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series[i % 2]
        ds.FrameOfReferenceUID = frame
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        ds.StudyDate = "20200315"
        ds.SeriesDate = "20200316"
        ds.AcquisitionDate = "20200317"
        ds.ContentDate = "20200320"
        ds.AcquisitionDateTime = "20200317101010"
        ds.StudyDescription = f"Head of {name.split('^')[0]} for follow-up"
        ds.DeviceSerialNumber = "SN-778899"
        ds.StationName = "STATION-7"
        ds.InstitutionName = "Saint Example Hospital"
        ds.PatientSex = "F"
        ds.PatientAge = "045Y"
        ds.PatientWeight = "61"
        if i == n - 1 and n > 1:
            ref = Dataset()
            ref.ReferencedSOPClassUID = ds.SOPClassUID
            ref.ReferencedSOPInstanceUID = sops[0]
            ds.ReferencedImageSequence = Sequence([ref])
            ds.SourceImageSequence = Sequence([ref.copy()])
        sops.append(ds.SOPInstanceUID)
        p = folder / f"im{i}.dcm"
        ds.save_as(p)
        paths.append(p)
    return paths, study, series, sops


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    d = tmp_path_factory.mktemp("study")
    paths, study_uid, series, sops = make_study(d / "in")
    return d, paths, study_uid, series, sops


def outputs(lines):
    return {pathlib.Path(x["input"]).name: pydicom.dcmread(x["output"]) for x in lines
            if x["status"] == "written"}


def test_uids_consistent_within_a_study(study):
    d, paths, study_uid, series, sops = study
    _, lines, _ = deid([d / "in"], d / "out1", "--secret", SECRET)
    out = outputs(lines)
    assert len(out) == len(paths)
    assert len({ds.StudyInstanceUID for ds in out.values()}) == 1
    assert next(iter(out.values())).StudyInstanceUID != study_uid
    by_series = {}
    for name, ds in out.items():
        i = int(name[2:-4])
        by_series.setdefault(series[i % 2], set()).add(ds.SeriesInstanceUID)
    assert all(len(v) == 1 for v in by_series.values()) and len(by_series) == 2
    assert len({ds.FrameOfReferenceUID for ds in out.values()}) == 1
    last = out[f"im{len(paths) - 1}.dcm"]
    first = out["im0.dcm"]
    assert last.ReferencedImageSequence[0].ReferencedSOPInstanceUID == first.SOPInstanceUID
    assert last.SourceImageSequence[0].ReferencedSOPInstanceUID == first.SOPInstanceUID
    assert last.ReferencedImageSequence[0].ReferencedSOPClassUID == first.SOPClassUID
    for ds in out.values():
        for _, el in walk(ds):
            if el.VR == "UI":
                assert valid_uid(str(el.value)), el


def test_uids_stable_across_runs_with_the_same_secret(study):
    d, *_ = study
    _, a, _ = deid([d / "in"], d / "run-a", "--secret", SECRET)
    _, b, _ = deid([d / "in"], d / "run-b", "--secret", SECRET)
    _, c, _ = deid([d / "in"], d / "run-c", "--secret", "another")
    _, e, _ = deid([d / "in"], d / "run-e")  # random secret
    ua = {n: ds.SOPInstanceUID for n, ds in outputs(a).items()}
    assert ua == {n: ds.SOPInstanceUID for n, ds in outputs(b).items()}
    uc = {n: ds.SOPInstanceUID for n, ds in outputs(c).items()}
    assert all(ua[n] != uc[n] for n in ua)
    assert all(ua[n] != ds.SOPInstanceUID for n, ds in outputs(e).items())
    pa = {ds.PatientID for ds in outputs(a).values()}
    assert pa == {ds.PatientID for ds in outputs(b).values()}
    assert pa != {ds.PatientID for ds in outputs(c).values()}


def test_secret_file_and_uid_root(study, tmp_path):
    d, *_ = study
    (tmp_path / "key").write_text(SECRET + "\n")
    _, a, _ = deid([d / "in"], tmp_path / "a", "--secret-file", tmp_path / "key")
    _, b, _ = deid([d / "in"], tmp_path / "b", "--secret", SECRET)
    assert ({ds.SOPInstanceUID for ds in outputs(a).values()} ==
            {ds.SOPInstanceUID for ds in outputs(b).values()})
    _, c, _ = deid([d / "in"], tmp_path / "c", "--secret", SECRET, "--uid-root", "1.2.3.4")
    for ds in outputs(c).values():
        assert ds.SOPInstanceUID.startswith("1.2.3.4.") and valid_uid(ds.SOPInstanceUID)


# ------------------------------------------------------------------ options

def shifted(a, b):
    import datetime
    f = "%Y%m%d"
    return (datetime.datetime.strptime(b, f) - datetime.datetime.strptime(a, f)).days


def test_modified_dates_shift_every_date_of_a_patient_by_one_offset(tmp_path):
    p1, *_ = make_study(tmp_path / "in" / "p1", patient="PAT-1", n=2)
    p2, *_ = make_study(tmp_path / "in" / "p2", patient="PAT-2", name="ROE^RICHARD", n=2)
    _, lines, _ = deid([tmp_path / "in"], tmp_path / "out", "--secret", SECRET,
                       "--retain-dates", "modified")
    shifts = {}
    for x in lines:
        orig = pydicom.dcmread(x["input"])
        new = pydicom.dcmread(x["output"])
        s = shifted(orig.StudyDate, new.StudyDate)
        assert s < 0
        for kw in ("SeriesDate", "AcquisitionDate", "ContentDate"):
            assert shifted(getattr(orig, kw), getattr(new, kw)) == s, kw
        assert shifted(orig.AcquisitionDateTime[:8], new.AcquisitionDateTime[:8]) == s
        assert new.AcquisitionDateTime[8:] == orig.AcquisitionDateTime[8:]
        assert x["date_shift_days"] == s
        shifts.setdefault(orig.PatientID, set()).add(s)
        assert new.LongitudinalTemporalInformationModified == "MODIFIED"
        assert "113107" in [i.CodeValue for i in new.DeidentificationMethodCodeSequence]
        assert "PatientBirthDate" not in new or not new.PatientBirthDate
    assert all(len(v) == 1 for v in shifts.values()) and len(shifts) == 2
    _, fixed, _ = deid([tmp_path / "in"], tmp_path / "fixed", "--date-shift", "-7")
    for x in fixed:
        new = pydicom.dcmread(x["output"])
        assert new.StudyDate == "20200308" and x["date_shift_days"] == -7


def test_full_dates_kept(study, tmp_path):
    d, paths, *_ = study
    _, lines, _ = deid([paths[0]], tmp_path / "o", "--retain-dates", "full")
    new = pydicom.dcmread(lines[0]["output"])
    assert new.StudyDate == "20200315" and new.AcquisitionDateTime == "20200317101010"
    assert new.LongitudinalTemporalInformationModified == "UNMODIFIED"
    assert "113106" in [i.CodeValue for i in new.DeidentificationMethodCodeSequence]
    _, lines, _ = deid([paths[0]], tmp_path / "b")
    new = pydicom.dcmread(lines[0]["output"])
    assert not new.StudyDate and new.get("AcquisitionDateTime") != "20200317101010"


@pytest.mark.parametrize("flag,keywords,code", [
    ("--retain-device", ["DeviceSerialNumber", "StationName"], "113109"),
    ("--retain-institution", ["InstitutionName"], "113112"),
    ("--retain-patient-characteristics", ["PatientSex", "PatientAge", "PatientWeight"], "113108"),
])
def test_retain_options(study, tmp_path, flag, keywords, code):
    d, paths, *_ = study
    orig = pydicom.dcmread(paths[0])
    _, base, _ = deid([paths[0]], tmp_path / "base")
    _, kept, _ = deid([paths[0]], tmp_path / "kept", flag)
    b, k = pydicom.dcmread(base[0]["output"]), pydicom.dcmread(kept[0]["output"])
    for kw in keywords:
        assert str(k.get(kw, "")) == str(orig.get(kw)), kw
        assert str(b.get(kw, "")) != str(orig.get(kw)), kw
    assert code in [i.CodeValue for i in k.DeidentificationMethodCodeSequence]


def test_retain_uids(study, tmp_path):
    d, paths, study_uid, series, sops = study
    _, lines, _ = deid([paths[-1]], tmp_path / "o", "--retain-uids")
    new = pydicom.dcmread(lines[0]["output"])
    assert new.StudyInstanceUID == study_uid and new.SOPInstanceUID == sops[-1]
    assert new.ReferencedImageSequence[0].ReferencedSOPInstanceUID == sops[0]
    assert "113110" in [i.CodeValue for i in new.DeidentificationMethodCodeSequence]


def test_clean_descriptors(study, tmp_path):
    d, paths, *_ = study
    _, base, _ = deid([paths[0]], tmp_path / "base")
    assert "StudyDescription" not in pydicom.dcmread(base[0]["output"])
    _, lines, _ = deid([paths[0]], tmp_path / "o", "--clean-descriptors")
    new = pydicom.dcmread(lines[0]["output"])
    assert new.StudyDescription.startswith("Head of ") and "DOE" not in new.StudyDescription
    assert new.StudyDescription.endswith("for follow-up")
    assert "113105" in [i.CodeValue for i in new.DeidentificationMethodCodeSequence]


def test_clean_structured_content(tmp_path):
    src = TEST_FILES / "test-SR.dcm"
    orig = pydicom.dcmread(src)
    _, base, _ = deid([src], tmp_path / "base")
    assert len(pydicom.dcmread(base[0]["output"]).get("ContentSequence", [])) == 0
    _, lines, _ = deid([src], tmp_path / "o", "--clean-structured-content")
    new = pydicom.dcmread(lines[0]["output"])
    assert len(new.ContentSequence) == len(orig.ContentSequence)
    name = str(orig.PatientName).split("^")[0]
    assert name.encode() not in pathlib.Path(lines[0]["output"]).read_bytes()
    ok, why = dcmdump_ok(lines[0]["output"])
    assert ok, why


def test_retain_safe_private(tmp_path):
    src = tmp_path / "p.dcm"
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    ds.add_new(0x00190010, "LO", "ACME SAFE")
    ds.add_new(0x00191001, "DS", "1.5")
    ds.add_new(0x00191002, "LO", "PHI-UNSAFE")
    ds.save_as(src)
    (tmp_path / "safe.txt").write_text("# creator blocks known safe\n0019,xx01,ACME SAFE\n")
    _, lines, _ = deid([src], tmp_path / "o", "--retain-safe-private", "--safe-private",
                       tmp_path / "safe.txt")
    new = pydicom.dcmread(lines[0]["output"])
    assert new[0x00190010].value == "ACME SAFE" and new[0x00191001].value == "1.5"
    assert 0x00191002 not in new
    assert not [el for el in new if el.tag.group & 1 and el.tag.group != 0x0019]
    assert "113111" in [i.CodeValue for i in new.DeidentificationMethodCodeSequence]


def test_pseudonym_templates(tmp_path):
    make_study(tmp_path / "in" / "a", patient="PAT-A", n=1)
    make_study(tmp_path / "in" / "b", patient="PAT-B", name="ROE^RICHARD", n=1)
    make_study(tmp_path / "in" / "c", patient="PAT-A", n=1)  # a second study of PAT-A
    _, lines, _ = deid([tmp_path / "in"], tmp_path / "o1", "--pseudonym", "SUBJ-{n:3}")
    ids = [pydicom.dcmread(x["output"]).PatientID for x in lines]
    assert ids == ["SUBJ-001", "SUBJ-002", "SUBJ-001"]
    _, lines, _ = deid([tmp_path / "in"], tmp_path / "o2", "--pseudonym", "RESEARCH")
    assert {str(pydicom.dcmread(x["output"]).PatientName) for x in lines} == {"RESEARCH"}
    _, lines, _ = deid([tmp_path / "in"], tmp_path / "o3", "--pseudonym", "P-{hash:8}",
                       "--secret", SECRET)
    ids = [pydicom.dcmread(x["output"]).PatientID for x in lines]
    assert re.fullmatch(r"P-[0-9A-F]{8}", ids[0]) and ids[0] == ids[2] != ids[1]


def test_usage_errors(tmp_path):
    f = TEST_FILES / "CT_small.dcm"
    for args in ([f], [f, "-o", tmp_path, "--to-archive", tmp_path / "a"], ["-o", tmp_path],
                 [f, "-o", tmp_path, "--retain-dates", "sometimes"],
                 [f, "-o", tmp_path, "--retain-dates", "full", "--date-shift", "3"],
                 [f, "-o", tmp_path, "--pseudonym", "a\\b"], [f, "-o", tmp_path, "--bogus"]):
        assert run_mira("deid", *args, check=False).returncode == 2, args
    assert run_mira("deid", "--help").returncode == 0
    assert b"NOT CLEANED" in run_mira("deid", "--help").stdout


# ------------------------------------------------------------------ burned-in annotation

def test_burned_in_report(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    us = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    us.Modality = "US"
    us.SOPClassUID = us.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    us.SOPInstanceUID = us.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    us.save_as(inputs / "us.dcm")
    bia = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    bia.BurnedInAnnotation = "YES"
    bia.SOPInstanceUID = bia.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    bia.save_as(inputs / "bia.dcm")
    for name in ("CT_small.dcm", "SC_rgb_rle.dcm"):
        (inputs / name).write_bytes((TEST_FILES / name).read_bytes())
    report = tmp_path / "report.jsonl"
    _, lines, summary = deid([inputs], tmp_path / "o", "--report", report)
    by_out = {x["output"]: pathlib.Path(x["input"]).name for x in lines}
    risk = {}
    for line in report.read_text().splitlines():
        r = json.loads(line)
        assert r["pixel_data_cleaned"] is False
        risk[by_out[r["output"]]] = (r["risk"], r["reasons"])
    assert risk["us.dcm"][0] == "high" and "ultrasound" in risk["us.dcm"][1][0]
    assert risk["bia.dcm"][0] == "high" and "Burned In Annotation is YES" in risk["bia.dcm"][1]
    assert risk["SC_rgb_rle.dcm"][0] == "high"
    assert risk["CT_small.dcm"] == ("none", [])
    assert summary["burned_in_risk"] == 3 and summary["pixel_data_cleaned"] is False
    for x in lines:
        assert x["risk"] == risk[pathlib.Path(x["input"]).name][0]


# ------------------------------------------------------------------ archives

def test_from_archive_and_to_research_archive(archive, tmp_path):
    make_study(tmp_path / "in" / "a", patient="PAT-A", name="DOE^JANE", n=2)
    make_study(tmp_path / "in" / "b", patient="PAT-B", name="ROE^RICHARD", n=2)
    archive.run("import", tmp_path / "in", "--no-progress")
    proc = archive.run("deid", "--from-archive", "PatientID=PAT-A", "-o", tmp_path / "out",
                       "--secret", SECRET, "--json", "--no-progress")
    lines = [json.loads(x) for x in proc.stdout.decode().splitlines()]
    assert lines[-1]["summary"]["written"] == 2
    for x in lines[:-1]:
        ds = pydicom.dcmread(x["output"])
        assert ds.PatientID.startswith("ANON-") and ds.PatientIdentityRemoved == "YES"
        ok, why = dcmdump_ok(x["output"])
        assert ok, why
    research = tmp_path / "research"
    proc = archive.run("deid", "--from-archive", "--to-archive", research, "--secret", SECRET,
                       "--pseudonym", "STUDY-{n:2}", "--json", "--no-progress")
    assert json.loads(proc.stdout.decode().splitlines()[-1])["summary"]["written"] == 4
    found = run_mira("find", "--archive", research, "--level", "patient", "--json",
                     "PatientID", "PatientName")
    patients = json.loads(found.stdout)
    ids = sorted(p["00100020"]["Value"][0] for p in patients)
    assert ids == ["STUDY-01", "STUDY-02"]
    names = sorted(p["00100010"]["Value"][0]["Alphabetic"] for p in patients)
    assert names == ["STUDY-01", "STUDY-02"]
    text = found.stdout.decode()
    assert "DOE" not in text and "ROE" not in text and "PAT-" not in text
    studies = json.loads(run_mira("find", "--archive", research, "--level", "study", "--json",
                                  "StudyInstanceUID", "StudyDate").stdout)
    assert len(studies) == 2
    assert all(s["0020000D"]["Value"][0].startswith("2.25.") for s in studies)
