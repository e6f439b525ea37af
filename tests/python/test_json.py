"""`mira json` (PS3.18 F.2 DICOM JSON) against pydicom's Dataset.to_json_dict(), both ways.

pydicom 2.4.4's to_json_dict() with default arguments is the reference. mira departs from it
in a few documented places (see the comment at the top of src/dicom/json.c); the comparisons
below account for exactly those and nothing else:

  * OW/OF/OD/OL/OV of big-endian files: mira base64-encodes little-endian bytes (the standard),
    pydicom the bytes as they are in the file;
  * FL/FD/DS NaN or infinity: mira writes null (JSON has no NaN), pydicom NaN;
  * a DS/IS value pydicom cannot convert makes pydicom fail, so such files are only checked for
    mira producing valid JSON;
  * JSON -> DICOM: text is stored as UTF-8, so a data set with non-ASCII text comes back with
    Specific Character Set "ISO_IR 192" whatever it declared.
"""
import base64
import json
import math
import struct
import subprocess
import warnings

import pytest

import pydicom  # noqa: E402  (pinned in tests/requirements.txt)
from pydicom.dataelem import RawDataElement  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.sequence import Sequence  # noqa: E402
from pydicom.tag import Tag  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402

from conftest import dicom_test_files, file_id, mira_bin, run_mira  # noqa: E402

# Broken on purpose (see test_read_pydicom.py): pydicom reads what is there, mira refuses them
# with an error naming the offset.
TRUNCATED = {"MR_truncated.dcm", "rtplan_truncated.dcm", "no_meta.dcm"}

SWAP_SIZE = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
REL_TOL = 1e-9


# ------------------------------------------------------------------ helpers

def read_pydicom(path):
    """pydicom's data set, or None if pydicom itself cannot read the file (without force)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pydicom.dcmread(str(path))
        except Exception:
            return None


def pydicom_json(ds):
    """to_json_dict(), or None if pydicom fails to convert the data set."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ds.to_json_dict()
        except Exception:
            return None


def swap_inline(b64, size):
    raw = bytearray(base64.b64decode(b64))
    for off in range(0, len(raw) - size + 1, size):
        raw[off:off + size] = raw[off:off + size][::-1]
    return base64.b64encode(bytes(raw)).decode()


def to_little_endian(d):
    """pydicom's JSON of a big-endian data set with binary values made little-endian."""
    out = {}
    for tag, attr in d.items():
        attr = dict(attr)
        vr = attr["vr"]
        if vr == "SQ":
            attr["Value"] = [to_little_endian(item) for item in attr.get("Value", [])]
        elif vr in SWAP_SIZE and "InlineBinary" in attr:
            attr["InlineBinary"] = swap_inline(attr["InlineBinary"], SWAP_SIZE[vr])
        out[tag] = attr
    return out


def is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def differences(want, got, where="", out=None):
    """Where two JSON values differ: numbers within REL_TOL, NaN == null, the rest equal."""
    if out is None:
        out = []
    if isinstance(want, dict) and isinstance(got, dict):
        if set(want) != set(got):
            out.append(f"{where}: keys only in pydicom {sorted(set(want) - set(got))}, "
                       f"only in mira {sorted(set(got) - set(want))}")
        for k in sorted(set(want) & set(got)):
            differences(want[k], got[k], f"{where}.{k}" if where else k, out)
    elif isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            out.append(f"{where}: {len(want)} values in pydicom, {len(got)} in mira: "
                       f"{str(want)[:200]} vs {str(got)[:200]}")
        for i, (a, b) in enumerate(zip(want, got)):
            differences(a, b, f"{where}[{i}]", out)
    elif is_number(want) and is_number(got):
        if isinstance(want, float) and (math.isnan(want) or math.isinf(want)):
            out.append(f"{where}: pydicom {want} mira {got}")
        elif not math.isclose(want, got, rel_tol=REL_TOL, abs_tol=0.0) and want != got:
            out.append(f"{where}: pydicom {want!r} mira {got!r}")
    elif isinstance(want, float) and not math.isfinite(want) and got is None:
        pass  # JSON has no NaN: mira writes null
    elif want != got:
        out.append(f"{where}: pydicom {str(want)[:200]!r} mira {str(got)[:200]!r}")
    return out


def mira_json(path, *opts):
    proc = run_mira("json", *opts, path)
    return json.loads(proc.stdout)


def has_non_finite(d):
    if isinstance(d, dict):
        return any(has_non_finite(v) for v in d.values())
    if isinstance(d, list):
        return any(has_non_finite(v) for v in d)
    return isinstance(d, float) and not math.isfinite(d)


# ------------------------------------------------------------------ the pydicom test files

FILES = dicom_test_files()


@pytest.mark.parametrize("path", FILES, ids=file_id)
def test_to_json_equals_pydicom(path):
    ds = read_pydicom(path)
    if path.name in TRUNCATED or path.name == "no_meta.dcm":
        proc = run_mira("json", path, check=False)
        assert proc.returncode == 1 and "offset" in proc.stderr.decode()
        return
    got = mira_json(path)  # mira must always succeed on what pydicom reads
    if ds is None or pydicom_json(ds) is None:
        # pydicom refuses the file (raw data sets without meta) or its to_json_dict() raises
        # (badVR.dcm's IS "1A"): no reference, but mira's output must be a full JSON model.
        assert got and all(len(k) == 8 and "vr" in v for k, v in got.items())
        return
    want = pydicom_json(ds)
    if not ds.is_little_endian:
        want = to_little_endian(want)
    problems = differences(want, got)
    assert not problems, "\n".join(problems[:30])


CHARSET_VRS = {"SH", "LO", "ST", "LT", "PN", "UC", "UT"}


def scope_non_ascii(d):
    """Non-ASCII text in this data set or its items that do not declare their own charset."""
    for attr in d.values():
        vr = attr["vr"]
        for v in attr.get("Value", []):
            if vr == "SQ" and "00080005" not in v and scope_non_ascii(v):
                return True
            if vr in CHARSET_VRS and not json.dumps(v, ensure_ascii=False).isascii():
                return True
    return False


def expected_after_round_trip(want, got, top=True):
    """What mira's JSON -> DICOM keeps of a document by design, not by accident:
    group lengths (gggg,0000) are recomputed for the encoding written, and text is stored as
    UTF-8, so a scope with non-ASCII text declares ISO_IR 192."""
    out = {}
    for tag, attr in want.items():
        if tag.endswith("0000") and tag in got and got[tag]["vr"] == "UL":
            attr = got[tag]
        elif attr["vr"] == "SQ" and tag in got and len(attr.get("Value", [])) == \
                len(got[tag].get("Value", [])):
            attr = dict(attr)
            attr["Value"] = [expected_after_round_trip(w, g, False)
                             for w, g in zip(attr["Value"], got[tag]["Value"])]
        out[tag] = attr
    if ("00080005" in want or top) and scope_non_ascii(want):
        out["00080005"] = {"vr": "CS", "Value": ["ISO_IR 192"]}
    return out


def round_trip_cases():
    """Files whose pydicom JSON can serve as input: pydicom reads them, its to_json_dict()
    succeeds, and it holds no NaN (which JSON cannot carry)."""
    out = []
    for p in FILES:
        ds = read_pydicom(p)
        if ds is None or p.name in TRUNCATED:
            continue
        want = pydicom_json(ds)
        if want is None or has_non_finite(want):
            continue
        out.append(p)
    return out


@pytest.mark.parametrize("path", round_trip_cases(), ids=file_id)
def test_json_to_dicom_round_trip(path, tmp_path):
    ds = read_pydicom(path)
    want = pydicom_json(ds)
    src = tmp_path / "in.json"
    src.write_text(json.dumps(want))
    out = tmp_path / "out.dcm"
    args = ["json", "--to-dicom", src, "-o", out]
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is not None and ts.is_compressed and "7FE00010" in want:
        args += ["--transfer-syntax", str(ts)]
    run_mira(*args)
    back = pydicom.dcmread(str(out))
    got = pydicom_json(back)
    assert got is not None
    want = expected_after_round_trip(want, got)
    problems = differences(want, got)
    assert not problems, "\n".join(problems[:30])


# ------------------------------------------------------------------ options and edge cases

def test_no_pixels_and_pretty(tmp_path):
    path = next(p for p in FILES if p.name == "CT_small.dcm")
    full = mira_json(path)
    assert "7FE00010" in full
    nopix = mira_json(path, "--no-pixels")
    full.pop("7FE00010")
    assert nopix == full
    pretty = run_mira("json", "--pretty", "--no-pixels", path).stdout.decode()
    assert pretty.startswith('{\n  "00080005": {\n    "vr": "CS",')
    assert json.loads(pretty) == nopix


def test_bulk_data_uri(tmp_path):
    path = next(p for p in FILES if p.name == "CT_small.dcm")
    d = mira_json(path, "--bulk-uri", "http://x/studies/1", "--bulk-threshold", "100")
    assert d["7FE00010"] == {"vr": "OW", "BulkDataURI": "http://x/studies/1/7FE00010"}
    # and such a document cannot be turned back into DICOM
    src = tmp_path / "bulk.json"
    src.write_text(json.dumps(d))
    proc = run_mira("json", "--to-dicom", src, "-o", tmp_path / "x.dcm", check=False)
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert "unsupported: BulkDataURI" in err and "cannot fetch" in err and str(src) in err
    assert not (tmp_path / "x.dcm").exists()


def write_dataset(tmp_path, ds, name="edge.dcm", little=True, implicit=False):
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else \
        pydicom.uid.ExplicitVRBigEndian
    ds.is_little_endian = little
    ds.is_implicit_VR = implicit
    path = tmp_path / name
    ds.save_as(str(path), write_like_original=False)
    return path


def test_pydicom_edge_cases(tmp_path):
    """Values where the representation is a choice: as pydicom makes it."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.ImageType = "A\\\\B"            # empty value inside: ""
    ds.Modality = " OT"                # leading space kept
    ds.PatientName = "Doe^John="       # trailing empty group dropped
    ds.ReferringPhysicianName = "==C"  # empty leading groups kept
    ds.OtherPatientNames = "A^B\\C=D"  # two names
    ds.PerformingPhysicianName = "=="  # only separators: empty
    ds.ReferencedImageSequence = Sequence()  # empty sequence: "Value": []
    ds.PatientID = ""                  # empty: no "Value"
    ds.PixelSpacing = ["+.5", "1.50"]  # DS as numbers
    ds.InstanceNumber = " 012"         # IS as an integer
    ds.ImageComments = "a\\b"          # LT: one value, backslash kept
    ds.FrameIncrementPointer = [0x00181063, 0x00181065]  # AT
    ds.add_new(0x00091010, "LO", "private")  # no creator, explicit VR kept
    ds.add_new(0x00209165, "AT", [])    # empty AT: no "Value"
    path = write_dataset(tmp_path, ds)
    got = mira_json(path)
    want = pydicom_json(pydicom.dcmread(str(path)))
    assert not differences(want, got), differences(want, got)
    assert got["00080008"]["Value"] == ["A", "", "B"]
    assert got["00100010"]["Value"] == [{"Alphabetic": "Doe^John"}]
    assert got["00080090"]["Value"] == [{"Alphabetic": "", "Ideographic": "", "Phonetic": "C"}]
    assert got["00081050"] == {"vr": "PN"}
    assert got["00081140"] == {"vr": "SQ", "Value": []}
    assert got["00100020"] == {"vr": "LO"}
    assert got["00280030"]["Value"] == [0.5, 1.5]
    assert got["00200013"]["Value"] == [12]
    assert got["00204000"]["Value"] == ["a\\b"]
    assert got["00280009"]["Value"] == ["00181063", "00181065"]
    assert got["00209165"] == {"vr": "AT"}


def test_where_pydicom_fails_mira_follows_the_standard(tmp_path):
    """Empty values inside multi-valued DS/IS/PN: pydicom raises, mira writes null."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    # raw values: pydicom would refuse some of them on assignment
    for tag, vr, raw in [(0x00280030, "DS", b"1.5\\\\2 "), (0x00200032, "DS", b"1\\nan\\1A "),
                         (0x00101001, "PN", b"A\\"), (0x00200013, "IS", b"1.5 ")]:
        ds[tag] = RawDataElement(Tag(tag), vr, len(raw), raw, 0, False, True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = write_dataset(tmp_path, ds)
        with pytest.raises(Exception):
            pydicom.dcmread(str(path)).to_json_dict()
    got = mira_json(path)
    assert got["00280030"]["Value"] == [1.5, None, 2]
    assert got["00200032"]["Value"] == [1, "nan", "1A"]  # not numbers: kept as text
    assert got["00101001"]["Value"] == [{"Alphabetic": "A"}, None]
    assert got["00200013"]["Value"] == ["1.5"]


def test_big_endian_binary_is_little_endian(tmp_path):
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.add_new(0x00091010, "OW", struct.pack(">3H", 1, 2, 0x1234))
    ds.add_new(0x00091011, "OF", struct.pack(">2f", 1.5, -2))
    ds.add_new(0x00091012, "OB", b"\x01\x02\x03\x04")
    ds.add_new(0x00091013, "US", [1, 0x1234])
    path = write_dataset(tmp_path, ds, "be.dcm", little=False)
    got = mira_json(path)
    assert base64.b64decode(got["00091010"]["InlineBinary"]) == struct.pack("<3H", 1, 2, 0x1234)
    assert base64.b64decode(got["00091011"]["InlineBinary"]) == struct.pack("<2f", 1.5, -2)
    assert base64.b64decode(got["00091012"]["InlineBinary"]) == b"\x01\x02\x03\x04"
    assert got["00091013"]["Value"] == [1, 0x1234]


# ------------------------------------------------------------------ JSON -> DICOM specifics

def to_dicom(tmp_path, doc, *extra, check=True):
    src = tmp_path / "in.json"
    src.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    out = tmp_path / "out.dcm"
    proc = run_mira("json", "--to-dicom", src, "-o", out, *extra, check=check)
    return proc, out, src


BASE = {
    "00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.7"]},
    "00080018": {"vr": "UI", "Value": ["1.2.3.4"]},
}


def test_from_json_values(tmp_path):
    doc = dict(BASE)
    doc.update({
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Müller^Jörg", "Ideographic": "ミュラー"}]},
        "00080008": {"vr": "CS", "Value": ["A", None, "B"]},
        "00280030": {"vr": "DS", "Value": [0.30000000000000004, 1e-7, 123456789.123456789]},
        "00200013": {"vr": "IS", "Value": [42]},
        "00280010": {"vr": "US", "Value": [512]},
        "00189219": {"vr": "SS", "Value": [-3]},
        "00720038": {"vr": "SV", "Value": [-9007199254740993]},
        "00720039": {"vr": "UV", "Value": [18446744073709551615]},
        "00089459": {"vr": "FL", "Value": [0.1]},
        "00186028": {"vr": "FD", "Value": [1e300]},
        "00209165": {"vr": "AT", "Value": ["00100010"]},
        "00091010": {"vr": "OB", "InlineBinary": "AAECAw=="},
        "00091011": {"vr": "OW", "BulkDataURI": "data:application/octet-stream;base64,AQACAA=="},
        "00081140": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["1.2"]}}, {}]},
        "00204000": {"vr": "LT", "Value": ["line\\with backslash"]},
        "00100020": {"vr": "LO"},
    })
    _, out, _ = to_dicom(tmp_path, doc)
    ds = pydicom.dcmread(str(out))
    assert ds.SpecificCharacterSet == "ISO_IR 192"  # non-ASCII text, none declared
    assert str(ds.PatientName) == "Müller^Jörg=ミュラー"
    assert list(ds.ImageType) == ["A", "", "B"]
    raw_ds = ds["PixelSpacing"].value
    assert all(len(str(x)) <= 16 for x in raw_ds)
    assert [float(x) for x in raw_ds] == pytest.approx([0.30000000000000004, 1e-7,
                                                        123456789.123456789], rel=1e-12)
    assert ds.InstanceNumber == 42
    assert ds.Rows == 512
    assert ds[0x00189219].value == -3
    assert ds[0x00720038].value == -9007199254740993
    assert ds[0x00720039].value == 18446744073709551615
    assert ds[0x00089459].value == pytest.approx(0.1, rel=1e-7)
    assert ds[0x00186028].value == 1e300
    assert ds[0x00209165].value == 0x00100010
    assert ds[0x00091010].value == b"\x00\x01\x02\x03"
    assert ds[0x00091011].value == b"\x01\x00\x02\x00"
    assert len(ds.ReferencedImageSequence) == 2
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == "1.2"
    assert ds.ImageComments == "line\\with backslash"
    assert ds.PatientID == ""


def test_from_json_replaces_a_charset_that_cannot_hold_utf8(tmp_path):
    doc = dict(BASE)
    doc["00080005"] = {"vr": "CS", "Value": ["ISO_IR 100"]}
    doc["00100010"] = {"vr": "PN", "Value": [{"Alphabetic": "Müller"}]}
    _, out, _ = to_dicom(tmp_path, doc)
    ds = pydicom.dcmread(str(out))
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(ds.PatientName) == "Müller"
    # ASCII text keeps its declaration
    doc["00100010"] = {"vr": "PN", "Value": [{"Alphabetic": "Muller"}]}
    _, out, _ = to_dicom(tmp_path, doc)
    assert pydicom.dcmread(str(out)).SpecificCharacterSet == "ISO_IR 100"


@pytest.mark.parametrize("doc, message", [
    ('{"00100010": {"vr": "PN", "Value": [{"Alphabetic": "x"}]},}', "offset"),
    ('{"0010001": {"vr": "PN"}}', "not 8 hexadecimal digits"),
    ('{"00100010": {"Value": []}}', 'no "vr"'),
    ('{"00100010": {"vr": "XX"}}', "is not a VR"),
    ('{"00280010": {"vr": "US", "Value": [70000]}}', "not a valid US"),
    ('{"00280010": {"vr": "US", "Value": [1.5]}}', "not a valid US"),
    ('{"00200013": {"vr": "IS", "Value": [1.5]}}', "not an integer"),
    ('{"00080008": {"vr": "CS", "Value": [1]}}', "must be a string"),
    ('{"00080008": {"vr": "CS", "Value": ["a\\\\b"]}}', "backslash"),
    ('{"00091010": {"vr": "OB", "InlineBinary": "!!!"}}', "not valid base64"),
    ('{"00091010": {"vr": "OW", "InlineBinary": "AAEC"}}', "whole number"),
    ('{"00091010": {"vr": "OB", "BulkDataURI": "http://h/x"}}', "unsupported: BulkDataURI"),
    ('{"00081140": {"vr": "SQ", "Value": [{"00081150": {"vr": "UI", "Value": [3]}}]}}',
     "00081140[0].00081150"),
    ('[1, 2]', "expected an object"),
])
def test_from_json_errors(tmp_path, doc, message):
    proc, out, src = to_dicom(tmp_path, doc, check=False)
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert message in err, err
    assert str(src) in err
    assert not out.exists()


def test_encapsulated_pixel_data_needs_its_transfer_syntax(tmp_path):
    path = next(p for p in FILES if p.name == "JPEG2000.dcm")
    ds = read_pydicom(path)
    doc = pydicom_json(ds)
    proc, out, src = to_dicom(tmp_path, doc, check=False)
    assert proc.returncode == 2
    assert "--transfer-syntax" in proc.stderr.decode()
    proc, out, src = to_dicom(tmp_path, doc, "--transfer-syntax",
                              str(ds.file_meta.TransferSyntaxUID))
    back = pydicom.dcmread(str(out))
    assert back.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
    assert back.PixelData == ds.PixelData


# ------------------------------------------------------------------ the command line

def test_usage_and_exit_codes(tmp_path):
    proc = subprocess.run([mira_bin(), "json", "--help"], capture_output=True)
    assert proc.returncode == 0 and b"usage: mira json" in proc.stdout
    proc = subprocess.run([mira_bin(), "json"], capture_output=True)
    assert proc.returncode == 2
    proc = subprocess.run([mira_bin(), "json", "--bogus", "x"], capture_output=True)
    assert proc.returncode == 2
    proc = subprocess.run([mira_bin(), "json", "--to-dicom", "x.json"], capture_output=True)
    assert proc.returncode == 2  # no -o
    missing = tmp_path / "missing.dcm"
    proc = subprocess.run([mira_bin(), "json", str(missing)], capture_output=True)
    assert proc.returncode == 1 and str(missing) in proc.stderr.decode()
    missing_json = tmp_path / "missing.json"
    proc = subprocess.run([mira_bin(), "json", "--to-dicom", str(missing_json), "-o",
                           str(tmp_path / "o.dcm")], capture_output=True)
    assert proc.returncode == 1 and str(missing_json) in proc.stderr.decode()
