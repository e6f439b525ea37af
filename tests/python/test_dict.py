"""`mira tag` knows every entry of Debian's pydicom dictionaries: data elements, repeating groups,
UIDs and private tags, with the same VR, VM, keyword, name and retired flag."""
import ast
import json
import pathlib

from conftest import run_mira

PYDICOM = pathlib.Path("/usr/lib/python3/dist-packages/pydicom")
BATCH = 1000  # arguments per mira call


def literals(name):
    """The literal module-level assignments of one of pydicom's source files (not imported)."""
    tree = ast.parse((PYDICOM / name).read_text(encoding="utf-8"))
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            target = node.targets[0]
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target = node.target
        else:
            continue
        try:
            out[target.id] = ast.literal_eval(node.value)
        except ValueError:
            pass
    return out


DICT = literals("_dicom_dict.py")
EXACT = DICT["DicomDictionary"]
REPEATERS = DICT["RepeatersDictionary"]
UIDS = literals("_uid_dict.py")["UID_dictionary"]
PRIVATE = literals("_private_dict.py")["private_dictionaries"]


def mira_tag(args, *options, expect_rc=0):
    """Run `mira tag --json` over args in batches; one result object per argument found."""
    out = []
    for i in range(0, len(args), BATCH):
        proc = run_mira("tag", "--json", *options, "--", *args[i:i + BATCH], check=False)
        assert proc.returncode == expect_rc, proc.stderr.decode(errors="replace")[:2000]
        out.extend(json.loads(proc.stdout))
    return out


def expected(entry):
    vr, vm, name, retired, keyword = entry
    return {"vr": vr, "vm": vm, "keyword": keyword, "name": name, "retired": retired == "Retired"}


def check(results, cases):
    """cases: [(expected tag text, pydicom entry)], in the order of the results."""
    assert len(results) == len(cases)
    bad = []
    for got, (tag, entry) in zip(results, cases):
        want = dict(expected(entry), tag=tag)
        if {k: got.get(k) for k in want} != want or "creator" in got:
            bad.append((want, got))
    assert not bad, f"{len(bad)} mismatches, e.g. {bad[:3]}"


def test_sizes():
    # The source this check is about: if these fail, pydicom changed and the tables need
    # regenerating (python3 scripts/gen_dict.py).
    assert len(EXACT) > 4800 and len(REPEATERS) > 80 and len(UIDS) > 400


def test_every_exact_tag():
    tags = sorted(EXACT)
    results = mira_tag([f"{t:08X}" for t in tags])
    check(results, [(f"{t:08X}", EXACT[t]) for t in tags])


def test_every_exact_tag_in_other_spellings():
    tags = sorted(EXACT)[::7]
    results = mira_tag([f"({t >> 16:04x},{t & 0xFFFF:04x})" for t in tags])
    check(results, [(f"{t:08X}", EXACT[t]) for t in tags])
    results = mira_tag([f"{t >> 16:04X},{t & 0xFFFF:04X}" for t in tags])
    check(results, [(f"{t:08X}", EXACT[t]) for t in tags])


def test_every_keyword():
    with_kw = sorted((e[4], t) for t, e in EXACT.items() if e[4])
    results = mira_tag([kw for kw, _ in with_kw])
    check(results, [(f"{t:08X}", EXACT[t]) for _, t in with_kw])

    rep = sorted((e[4], p) for p, e in REPEATERS.items())
    results = mira_tag([kw for kw, _ in rep])
    check([dict(r, tag=r["tag"].upper()) for r in results],
          [(p.upper(), REPEATERS[p]) for _, p in rep])


def test_every_repeating_pattern():
    patterns = sorted(REPEATERS)
    results = mira_tag(patterns)
    check([dict(r, tag=r["tag"].upper()) for r in results],
          [(p.upper(), REPEATERS[p]) for p in patterns])


def test_every_repeating_group_by_tag():
    # Every 'x' digit as 2 (an even group, never element 0000) and, where that is no other
    # entry's tag, as 0 and as the highest even value.
    cases = []
    for p, e in sorted(REPEATERS.items()):
        for fill in ("2", "0", "E"):
            tag = p.replace("x", fill).upper()
            t = int(tag, 16)
            if t in EXACT or t & 0xFFFF == 0 or (t >> 16) & 1:
                continue
            cases.append((tag, e))
    assert len(cases) > 2 * len(REPEATERS)
    results = mira_tag([tag for tag, _ in cases])
    check(results, cases)


def test_unknown_and_synthesized_entries():
    results = mira_tag(["00110000", "00080000", "0009,0010", "(0029,00FF)"])
    assert [(r["vr"], r["name"]) for r in results] == [
        ("UL", "Group Length"), ("UL", "Group Length"),
        ("LO", "Private Creator"), ("LO", "Private Creator")]
    assert results[2]["keyword"] == "PrivateCreator" and results[0]["keyword"] == ""
    for bad in ("NoSuchKeyword", "0010,9999", "0029,1010", "60xx,9999"):
        proc = run_mira("tag", bad, check=False)
        assert proc.returncode == 1
        assert proc.stdout == b""
        assert bad.encode() in proc.stderr or b"(0029,1010)" in proc.stderr or \
            b"(0010,9999)" in proc.stderr
    # Found entries are still printed when another argument is unknown.
    proc = run_mira("tag", "--json", "PatientName", "NoSuchKeyword", check=False)
    assert proc.returncode == 1
    assert [r["keyword"] for r in json.loads(proc.stdout)] == ["PatientName"]
    assert b"NoSuchKeyword" in proc.stderr


def test_usage():
    assert run_mira("tag", "--help").stdout.startswith(b"usage: mira tag")
    assert run_mira("tag", check=False).returncode == 2
    assert run_mira("tag", "--bogus", "PatientName", check=False).returncode == 2
    text = run_mira("tag", "PatientName", "DataSetType").stdout.decode().splitlines()
    assert text[0].split()[:4] == ["(0010,0010)", "PN", "1", "PatientName"]
    assert text[0].endswith("Patient's Name")
    assert text[1].endswith("retired")


def test_every_uid():
    uids = sorted(UIDS)
    results = mira_tag(uids, "--uid")
    assert len(results) == len(uids)
    bad = []
    for got, uid in zip(results, uids):
        name, kind, _info, retired, keyword = UIDS[uid]
        want = {"uid": uid, "name": name, "type": kind, "keyword": keyword,
                "retired": retired == "Retired"}
        if got != want:
            bad.append((want, got))
    assert not bad, f"{len(bad)} mismatches, e.g. {bad[:3]}"


def test_every_uid_keyword():
    by_kw = sorted((e[4], u) for u, e in UIDS.items() if e[4])
    results = mira_tag([kw for kw, _ in by_kw], "--uid")
    assert [r["uid"] for r in results] == [u for _, u in by_kw]
    proc = run_mira("tag", "--uid", "1.2.3.4", check=False)
    assert proc.returncode == 1 and b"1.2.3.4" in proc.stderr


def private_tag(pattern):
    """A concrete tag for a private dictionary pattern: block 0x10, an odd group for 'ggxx'."""
    if pattern[2:4] == "xx":
        pattern = pattern[:2] + "01" + pattern[4:]
    return pattern.replace("xx", "10").upper()


def private_entry(creator, tag):
    """pydicom.datadict.get_private_entry: the exact tag, then (gggg,xxee), then (ggxx,xxee)."""
    entries = PRIVATE[creator]
    t = tag.lower()
    for key in (t, t[:4] + "xx" + t[6:], t[:2] + "xxxx" + t[6:]):
        if key in entries:
            return entries[key]
    return None


def test_every_private_entry():
    checked = unmatched = 0
    for creator in sorted(PRIVATE):
        tags = sorted({private_tag(p) for p in PRIVATE[creator]})
        proc = run_mira("tag", "--json", "--creator", creator, "--", *tags, check=False)
        assert proc.returncode in (0, 1), proc.stderr
        results = {r["tag"]: r for r in json.loads(proc.stdout)}
        for tag in tags:
            entry = private_entry(creator, tag)
            if entry is None:
                # pydicom does not match the pattern either (such as (0029,10xx)); mira may
                # still know the tag from the standard dictionary.
                unmatched += 1
                assert "creator" not in results.get(tag, {}), (creator, tag)
                continue
            vr, vm, name, retired = entry
            want = {"tag": tag, "vr": vr.replace("_", " or "), "vm": vm, "keyword": "",
                    "name": name, "retired": retired == "Retired", "creator": creator}
            assert results.get(tag) == want, (creator, tag)
            checked += 1
    assert checked > 9000 and unmatched < 50
