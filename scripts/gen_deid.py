#!/usr/bin/env python3
"""Generates src/dicom/deid_table.c, PS3.15 Annex E Table E.1-1, for mira's de-identifier.

Input: a copy of standard/confidentiality_profile_attributes.json from the public GitHub
repository innolitics/dicom-standard (commit 0d01bf11dfc1d0b73b6df85bbf6e1764d3c558a3, 460
rows, extracted by that project from the PS3.15 HTML it downloaded from NEMA; the file does not
record the edition, and it lacks rows that the 2023 and later editions have), plus
scripts/deid_supplement.tsv (the rows later editions added, up to 2026c; see its header for where
its columns come from). The JSON is not part of mira; only the generated C table, a
transcription of the standard's table, is checked in.

    python3 scripts/gen_deid.py PATH/confidentiality_profile_attributes.json          # regenerate
    python3 scripts/gen_deid.py PATH/confidentiality_profile_attributes.json --check  # stale?

Each JSON row has "tag" ("(0008,0050)", "(50XX,XXXX)", "(GGGG,EEEE) WHERE GGGG IS ODD"),
"name", "basicProfile" (D, Z, X, K, C, U or a combination such as "X/Z/D" or "X/Z/U*") and one
key per option column that is not empty: rtnSafePrivOpt, rtnUIDsOpt, rtnDevIdOpt,
rtnInstIdOpt, rtnPatCharsOpt, rtnLongFullDatesOpt, rtnLongModifDatesOpt, cleanDescOpt,
cleanStructContOpt, cleanGraphOpt (values K, C or X).
"""
import argparse
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "dicom" / "deid_table.c"
SUPPLEMENT = ROOT / "scripts" / "deid_supplement.tsv"
COMMAND = "python3 scripts/gen_deid.py"
SOURCE = ("innolitics/dicom-standard standard/confidentiality_profile_attributes.json "
          "(commit 0d01bf11dfc1d0b73b6df85bbf6e1764d3c558a3)")

# The option columns in the order of mira__deid_option (src/dicom/deid_int.h).
OPTION_KEYS = ["rtnSafePrivOpt", "rtnUIDsOpt", "rtnDevIdOpt", "rtnInstIdOpt", "rtnPatCharsOpt",
               "rtnLongFullDatesOpt", "rtnLongModifDatesOpt", "cleanDescOpt",
               "cleanStructContOpt", "cleanGraphOpt"]
BASIC = {"D": "MIRA__DEID_D", "Z": "MIRA__DEID_Z", "X": "MIRA__DEID_X", "K": "MIRA__DEID_K",
         "C": "MIRA__DEID_C", "U": "MIRA__DEID_U", "Z/D": "MIRA__DEID_ZD",
         "X/Z": "MIRA__DEID_XZ", "X/D": "MIRA__DEID_XD", "X/Z/D": "MIRA__DEID_XZD",
         "X/Z/U*": "MIRA__DEID_XZU"}


def parse_tag(text):
    """'(0008,0050)' -> (tag, mask); '(60XX,4000)' -> (0x60004000, 0xFF00FFFF); private -> None."""
    text = text.strip()
    if text.upper().startswith("(GGGG,EEEE)"):
        return None
    m = re.fullmatch(r"\(?([0-9A-Fa-fXx]{4}),([0-9A-Fa-fXx]{4})\)?", text)
    if not m:
        raise ValueError(f"bad tag {text!r}")
    digits = (m.group(1) + m.group(2)).lower()
    tag = int(digits.replace("x", "0"), 16)
    mask = int("".join("0" if c == "x" else "F" for c in digits), 16)
    return tag, mask


def clean_name(name):
    name = re.sub(r"\s*\(see Note \d+\)", "", name)
    name = " ".join(name.split())
    if not name.isascii() or '"' in name or "\\" in name or "??" in name:
        raise ValueError(f"name needs escaping: {name!r}")
    return name


def options_string(row):
    out = []
    for key in OPTION_KEYS:
        v = row.get(key, "")
        if v not in ("", "K", "C", "X"):
            raise ValueError(f"bad option value {key}={v!r} in {row!r}")
        out.append(v or "-")
    return "".join(out)


def load_json(path):
    rows = []
    for row in json.loads(pathlib.Path(path).read_text(encoding="utf-8")):
        basic = row["basicProfile"].strip()
        if basic not in BASIC:
            raise ValueError(f"bad Basic Profile action {basic!r} in {row!r}")
        rows.append({"tag": parse_tag(row["tag"]), "name": clean_name(row["name"]),
                     "basic": basic, "opts": options_string(row), "supplement": False})
    return rows


def load_supplement(path):
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        tag, basic, opts, name = line.split("\t")
        row = {}
        if opts != "-":
            for kv in opts.split():
                k, v = kv.split("=")
                if k not in OPTION_KEYS:
                    raise ValueError(f"unknown option column {k!r} in {line!r}")
                row[k] = v
        if basic not in BASIC:
            raise ValueError(f"bad Basic Profile action {basic!r} in {line!r}")
        rows.append({"tag": parse_tag(tag), "name": clean_name(name), "basic": basic,
                     "opts": options_string(row), "supplement": True})
    return rows


def entry(row):
    tag, mask = row["tag"]
    return (f'    {{0x{tag:08X}u, 0x{mask:08X}u, {BASIC[row["basic"]]}, "{row["opts"]}", '
            f'{"true" if row["supplement"] else "false"}, "{row["name"]}"}},')


def generate(json_path):
    rows = load_json(json_path)
    seen = {r["tag"] for r in rows}
    sup = load_supplement(SUPPLEMENT)
    for r in sup:
        if r["tag"] in seen:
            raise ValueError(f"supplement row {r['name']!r} is in the JSON already")
        seen.add(r["tag"])
    rows += sup
    private = [r for r in rows if r["tag"] is None]
    if len(private) != 1:
        raise ValueError("expected exactly one 'private attributes' row")
    exact = sorted((r for r in rows if r["tag"] and r["tag"][1] == 0xFFFFFFFF),
                   key=lambda r: r["tag"][0])
    repeating = sorted((r for r in rows if r["tag"] and r["tag"][1] != 0xFFFFFFFF),
                       key=lambda r: r["tag"][0])
    p = private[0]
    lines = [
        "/* PS3.15 Annex E Table E.1-1 (Application Level Confidentiality Profile Attributes).",
        f" * Generated by {COMMAND} from",
        f" * {SOURCE}",
        " * and scripts/deid_supplement.tsv. Do not edit: regenerate. */",
        "/* clang-format off */",
        '#include "dicom/deid_int.h"',
        "",
        "/* Sorted by tag: tag, mask, Basic Profile action, option columns (Retain Safe Private,",
        " * Retain UIDs, Retain Device Identity, Retain Institution Identity, Retain Patient",
        " * Characteristics, Retain Longitudinal Full Dates, ... Modified Dates, Clean Descriptors,",
        " * Clean Structured Content, Clean Graphics; '-' where the column is empty), from the",
        " * supplement, name. */",
        "const mira__deid_entry mira__deid_table[] = {",
        *[entry(r) for r in exact],
        "};",
        f"const size_t mira__deid_table_count = {len(exact)};",
        "",
        "/* Repeating groups (50xx curves, 60xx overlays): the mask's zero bits are the xx. */",
        "const mira__deid_entry mira__deid_repeating[] = {",
        *[entry(r) for r in repeating],
        "};",
        f"const size_t mira__deid_repeating_count = {len(repeating)};",
        "",
        "/* (GGGG,EEEE) where GGGG is odd: every private attribute. */",
        f'const mira__deid_entry mira__deid_private = {{0x00010000u, 0x00010000u, '
        f'{BASIC[p["basic"]]}, "{p["opts"]}", false, "{p["name"]}"}};',
        "",
    ]
    return "\n".join(lines), len(exact) + len(repeating) + 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json", help="a copy of confidentiality_profile_attributes.json")
    ap.add_argument("--check", action="store_true", help="exit 1 if the checked-in table differs")
    args = ap.parse_args()
    text, n = generate(args.json)
    if args.check:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT.relative_to(ROOT)} is stale: run {COMMAND}", file=sys.stderr)
            return 1
        print(f"{OUT.relative_to(ROOT)} is current ({n} rows)")
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)} ({n} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
