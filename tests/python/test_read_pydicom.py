"""Every element of every file in pydicom's test set, as mira reads it, equals what pydicom reads.

pydicom (pinned in tests/requirements.txt) is the independent reference. For each file we walk
both trees in step: the same tags at every level, the same VR, the same values (strings after
character-set decoding, numbers, raw bytes, sequence items, encapsulated fragments).
"""
import base64
import json
import math
import warnings

import pydicom
import pytest
from pydicom.encaps import generate_pixel_data_fragment
from pydicom.filebase import DicomBytesIO
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from conftest import dicom_test_files, file_id, run_mira

# Files that are broken on purpose (truncated; no_meta.dcm starts one byte into a data set,
# which pydicom and DCMTK refuse too): mira must refuse them with an error naming the offset.
TRUNCATED = {"MR_truncated.dcm", "rtplan_truncated.dcm", "no_meta.dcm"}

STRING_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM",
              "UC", "UI", "UR", "UT"}
NUMBER_VRS = {"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"}


def pydicom_read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pydicom.dcmread(str(path)), False
        except Exception:
            return pydicom.dcmread(str(path), force=True), True


def as_list(value):
    if value is None:
        return []
    if isinstance(value, (MultiValue, list, tuple)):
        return list(value)
    if isinstance(value, (str, bytes)) and len(value) == 0:
        return []
    return [value]


def norm_str(v):
    return str(v).strip(" \x00")


def encapsulated_fragments(value):
    fp = DicomBytesIO(value)
    fp.is_little_endian = True
    return list(generate_pixel_data_fragment(fp))


def compare_dataset(path, where, pyds, mira_elems, problems, is_meta=False):
    mira_by_tag = {int(e["tag"], 16): e for e in mira_elems}
    py_tags = [int(elem.tag) for elem in pyds] if not is_meta else [int(t) for t in pyds.keys()]
    if sorted(mira_by_tag) != sorted(py_tags):
        only_m = sorted(set(mira_by_tag) - set(py_tags))
        only_p = sorted(set(py_tags) - set(mira_by_tag))
        problems.append(f"{where}: tag sets differ: only mira {[f'{t:08X}' for t in only_m]}, "
                        f"only pydicom {[f'{t:08X}' for t in only_p]}")
    for tag in py_tags:
        if tag not in mira_by_tag:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            elem = pyds[tag]
        m = mira_by_tag[tag]
        here = f"{where}({tag >> 16:04X},{tag & 0xFFFF:04X})"
        if elem.VR != m["vr"]:
            problems.append(f"{here}: VR pydicom {elem.VR} mira {m['vr']}")
            continue
        compare_value(path, here, elem, m, problems)


def compare_value(path, here, elem, m, problems):
    vr = elem.VR
    if vr == "SQ":
        items = m.get("items", [])
        if len(items) != len(elem.value):
            problems.append(f"{here}: {len(elem.value)} items in pydicom, {len(items)} in mira")
            return
        for i, (pyitem, mitem) in enumerate(zip(elem.value, items)):
            compare_dataset(path, f"{here}[{i}]", pyitem, mitem, problems)
        return
    if "fragments" in m:
        frags = [base64.b64decode(x) for x in m["fragments"]]
        bot = base64.b64decode(m["offset_table"])
        py = encapsulated_fragments(elem.value)
        if [bot] + frags != py:
            problems.append(f"{here}: encapsulated fragments differ ({len(py)} vs {len(frags) + 1})")
        return
    if vr in STRING_VRS:
        pv = [norm_str(x) for x in as_list(elem.value)]
        if vr == "PN":
            # Trailing empty component groups ("A^B=") may be omitted (PS3.5 6.2.1.1): pydicom
            # drops them, mira keeps the value as written; they are the same name.
            pv = [norm_str(x).rstrip("=") for x in as_list(elem.value)]
        mv = [norm_str(x) if x is not None else None for x in m.get("value", [])]
        if vr == "PN":
            mv = [x.rstrip("=") if x is not None else None for x in mv]
        # A value of only padding is empty for both.
        if pv == [""]:
            pv = []
        if mv == [""]:
            mv = []
        if pv != mv:
            problems.append(f"{here}: {vr} pydicom {pv!r} mira {mv!r}")
        return
    if vr in NUMBER_VRS:
        pv = as_list(elem.value)
        if isinstance(elem.value, bytes):  # pydicom leaves odd-sized values as bytes
            return compare_bytes(here, elem.value, m, problems)
        mv = m.get("value", [])
        if len(pv) != len(mv):
            problems.append(f"{here}: {vr} pydicom {pv!r} mira {mv!r}")
            return
        for a, b in zip(pv, mv):
            if b is None and isinstance(a, float) and (math.isnan(a) or math.isinf(a)):
                continue
            if vr in ("FL", "FD"):
                if not (a == b or (a is not None and b is not None and
                                   math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-30))):
                    problems.append(f"{here}: {vr} pydicom {pv!r} mira {mv!r}")
                    return
            elif a != b:
                problems.append(f"{here}: {vr} pydicom {pv!r} mira {mv!r}")
                return
        return
    if vr == "AT":
        pv = [int(x) for x in as_list(elem.value)]
        mv = [int(x, 16) for x in m.get("value", [])]
        if pv != mv:
            problems.append(f"{here}: AT pydicom {pv} mira {mv}")
        return
    compare_bytes(here, elem.value, m, problems)


def compare_bytes(here, pv, m, problems):
    mv = base64.b64decode(m.get("bytes", "")) if "bytes" in m else None
    if mv is None:
        problems.append(f"{here}: mira has no bytes")
        return
    pv = pv or b""
    if pv != mv:
        problems.append(f"{here}: bytes differ ({len(pv)} pydicom vs {len(mv)} mira)")


FILES = dicom_test_files()


@pytest.mark.parametrize("path", [p for p in FILES if p.name not in TRUNCATED], ids=file_id)
def test_every_element_equals_pydicom(path):
    pyds, forced = pydicom_read(path)
    proc = run_mira("dump", "--json", path, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    out = json.loads(proc.stdout)
    assert len(out) == 1
    problems = []
    if not forced and getattr(pyds, "file_meta", None) is not None:
        compare_dataset(path, "meta", pyds.file_meta, out[0]["meta"], problems, is_meta=True)
    compare_dataset(path, "", pyds, out[0]["dataset"], problems)
    assert not problems, "\n".join(problems[:40])


@pytest.mark.parametrize("name", sorted(TRUNCATED))
def test_truncated_files_give_clear_errors(name):
    path = next(p for p in FILES if p.name == name)
    proc = run_mira("dump", path, check=False)
    assert proc.returncode == 1
    msg = proc.stderr.decode()
    assert "offset" in msg and "exceeds" in msg, msg
    assert str(path) in msg
