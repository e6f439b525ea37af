"""Read -> write -> read preserves every element; same-syntax writes reproduce the bytes;
Big Endian and Implicit files converted to Explicit LE and back lose nothing."""
import base64
import json

import pydicom
import pytest

from conftest import dicom_test_files, file_id, run_mira

FILES = [p for p in dicom_test_files() if p.name not in {"MR_truncated.dcm", "rtplan_truncated.dcm", "no_meta.dcm"}]
EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"


def dump(path):
    out = json.loads(run_mira("dump", "--json", path).stdout)[0]
    return out


def strip_positions(elems, keep_vr_on_disk=True):
    """Element trees without offsets/lengths (they move when the encoding changes)."""
    out = []
    for e in elems:
        e = dict(e)
        e.pop("offset", None)
        e.pop("length", None)
        if not keep_vr_on_disk:
            e.pop("vr_on_disk", None)
        if "items" in e:
            e["items"] = [strip_positions(i, keep_vr_on_disk) for i in e["items"]]
        out.append(e)
    return out


WORD_SIZE = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def to_little_endian(elems):
    """Swap the raw bytes of word-valued elements of a big-endian dump to little-endian."""
    out = []
    for e in elems:
        e = dict(e)
        if "bytes" in e and e["vr"] in WORD_SIZE:
            raw, n = base64.b64decode(e["bytes"]), WORD_SIZE[e["vr"]]
            e["bytes"] = base64.b64encode(b"".join(
                raw[i:i + n][::-1] for i in range(0, len(raw), n))).decode()
        if "items" in e:
            e["items"] = [to_little_endian(i) for i in e["items"]]
        out.append(e)
    return out


def group_lengths_removed(elems):
    return [e for e in elems if not e["tag"].endswith("0000")]


def is_well_formed(d):
    return d["preamble"] and not d["warnings"]


@pytest.mark.parametrize("path", FILES, ids=file_id)
def test_same_syntax_round_trip(path, tmp_path):
    before = dump(path)
    out = tmp_path / "out.dcm"
    proc = run_mira("transcode", path, "-o", out, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    after = dump(out)
    # Group lengths are recomputed on writing (a wrong one in the input is warned about).
    assert strip_positions(group_lengths_removed(after["dataset"])) == \
        strip_positions(group_lengths_removed(before["dataset"]))
    if is_well_formed(before) and before["transfer_syntax"] != "1.2.840.10008.1.2.1.99":
        assert out.read_bytes() == path.read_bytes(), "same-syntax write changed the bytes"
    # An independent reader agrees with what was written.
    ds = pydicom.dcmread(str(out))
    assert len(ds) == len(before["dataset"])
    assert ds.file_meta.TransferSyntaxUID == before["transfer_syntax"]


UNCOMPRESSED_SOURCES = [p for p in FILES if p.suffix == ".dcm"]


@pytest.mark.parametrize("path", UNCOMPRESSED_SOURCES, ids=file_id)
def test_convert_to_explicit_le_and_back(path, tmp_path):
    before = dump(path)
    ts = before["transfer_syntax"]
    if ts not in (IMPLICIT_LE, EXPLICIT_BE):
        return
    mid, back = tmp_path / "le.dcm", tmp_path / "back.dcm"
    run_mira("transcode", path, "-t", EXPLICIT_LE, "-o", mid)
    run_mira("transcode", mid, "-t", ts, "-o", back)
    m = dump(mid)
    assert m["transfer_syntax"] == EXPLICIT_LE
    original = before["dataset"] if ts == IMPLICIT_LE else to_little_endian(before["dataset"])
    assert strip_positions(group_lengths_removed(m["dataset"]), False) == \
        strip_positions(group_lengths_removed(original), False)
    b = dump(back)
    assert strip_positions(b["dataset"], False) == strip_positions(before["dataset"], False)
    if is_well_formed(before):
        assert back.read_bytes() == path.read_bytes(), "LE and back changed the bytes"
    # pydicom reads the converted file with the same values as the original.
    a, c = pydicom.dcmread(str(path), force=True), pydicom.dcmread(str(mid))
    for elem in a.iterall():
        pass
    assert [e.tag for e in a] == [e.tag for e in c]
    for ea, ec in zip(a, c):
        if ea.VR in ("OB", "OW", "UN", "SQ", "OF", "OD", "OL", "OV"):
            continue
        assert ea.value == ec.value, ea.tag
