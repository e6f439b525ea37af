"""mira's Specific Character Set decoder (src/dicom/charset.c) against pydicom.

Every file of pydicom's charset_files: for each text element (SH, LO, ST, LT, PN, UC, UT), in
nested sequences too, the raw bytes and the Specific Character Set in force (the item's own,
else inherited) go through tests/tools/mira_charset_decode (found in MIRA_TOOLS_DIR, default
build/); its UTF-8 must equal the value pydicom decodes, once mira's text is split and trimmed
the way pydicom's value converters do it. Then the same comparison on the byte strings of
PS3.5 Annexes H-K and of pydicom's own charset tests, and finally the cases where mira follows
the standard rather than pydicom (docs/internals/charset.md, "Deviations from pydicom").
"""
import pathlib
import subprocess
import warnings

import pydicom
import pydicom.charset
import pydicom.values
import pytest
from pydicom.multival import MultiValue

from conftest import CHARSET_FILES as DEBIAN_CHARSET_FILES
from conftest import tools_dir

TEXT_VRS = {"SH", "LO", "ST", "LT", "PN", "UC", "UT"}
SINGLE_VALUED_VRS = {"LT", "ST", "UT"}
SPECIFIC_CHARACTER_SET = 0x00080005


def charset_dir():
    own = pathlib.Path(pydicom.__file__).parent / "data" / "charset_files"
    return own if own.is_dir() else DEBIAN_CHARSET_FILES


FILES = sorted(p for p in charset_dir().iterdir() if p.suffix == ".dcm")


def decoder():
    exe = tools_dir() / "mira_charset_decode"
    if not exe.exists():
        pytest.fail(f"{exe} is missing: build the mira_charset_decode target or set MIRA_TOOLS_DIR")
    return exe


def mira_decode(charset, vr, raw):
    proc = subprocess.run([str(decoder()), charset, vr, raw.hex()], capture_output=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout.decode("utf-8")  # strict: mira must always write valid UTF-8


def split_like_pydicom(text, vr):
    """mira decodes a whole value; pydicom's converters split and trim it (pydicom/values.py)."""
    if vr == "PN":  # convert_PN, then PersonName drops empty trailing component groups
        return [v.rstrip("=") for v in text.rstrip("\x00 ").split("\\")]
    if vr in SINGLE_VALUED_VRS:  # convert_single_string
        return [text.rstrip("\x00 ")]
    return [v.rstrip("\x00 ") for v in text.split("\\")]  # convert_text


def pydicom_values(value):
    if value is None:
        return [""]
    if isinstance(value, (list, MultiValue)):
        return [str(v) for v in value]
    return [str(value)]


def raw_charset(ds):
    """(0008,0005) exactly as stored, backslashes included; None if absent or empty."""
    elem = ds.get_item(SPECIFIC_CHARACTER_SET)
    if elem is None or elem.value is None:
        return None
    value = elem.value
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    elif not isinstance(value, str):
        value = "\\".join(value)
    return value if value.strip(" \x00\\") else None


def text_elements(ds, charset, path=""):
    """(where, charset, VR, raw bytes, pydicom's value) of every text element, depth first."""
    charset = raw_charset(ds) or charset  # PS3.5 7.5.3: items inherit the parent's
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)  # before ds[tag], which replaces it with the decoded element
        elem = ds[tag]
        where = f"{path}{elem.tag}"
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value or []):
                yield from text_elements(item, charset, f"{where}[{i}]")
        elif elem.VR in TEXT_VRS:
            yield where, charset, elem.VR, raw.value or b"", elem.value


def test_charset_files_found():
    names = {p.name for p in FILES}
    assert {"chrH31.dcm", "chrI2.dcm", "chrX2.dcm", "chrSQEncoding.dcm"} <= names, names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_file_text_matches_pydicom(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(str(path))
        elements = list(text_elements(ds, ""))
    assert elements, f"{path.name} has no text element"
    mismatches = []
    for where, charset, vr, raw, value in elements:
        ours = split_like_pydicom(mira_decode(charset, vr, raw), vr)
        theirs = pydicom_values(value)
        if ours != theirs:
            mismatches.append(f"{where} {vr} charset={charset!r} raw={raw!r}: "
                              f"mira {ours!r} != pydicom {theirs!r}")
    assert not mismatches, "\n".join(mismatches)


def pydicom_decode(charsets, vr, raw):
    """What pydicom makes of these bytes when it reads them from a file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encodings = pydicom.charset.convert_encodings(charsets)
        if vr == "PN":
            value = pydicom.values.convert_PN(raw, encodings)
        elif vr in SINGLE_VALUED_VRS:
            value = pydicom.values.convert_single_string(raw, encodings)
        else:
            value = pydicom.values.convert_text(raw, encodings)
        return pydicom_values(value)  # PersonName decodes lazily, so inside the filter


# Byte strings whose decoding mira and pydicom agree on: PS3.5's examples and the vectors of
# pydicom's tests/test_charset.py.
AGREED = [
    ("H.3.1", ["", "ISO 2022 IR 87"], "PN",
     b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B"),
    ("H.3.2", ["ISO 2022 IR 13", "ISO 2022 IR 87"], "PN",
     b"\xd4\xcf\xc0\xde^\xc0\xdb\xb3=\x1b$B;3ED\x1b(J^\x1b$BB@O:\x1b(J=\x1b$B$d$^$@\x1b(J^"
     b"\x1b$B$?$m$&\x1b(J"),
    ("I.2", ["", "ISO 2022 IR 149"], "PN",
     b"Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7=\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5"
     b"\xbf"),
    ("J.1", ["ISO_IR 192"], "PN", b"Wang^XiaoDong=\xe7\x8e\x8b^\xe5\xb0\x8f\xe6\x9d\xb1="),
    ("J.2", ["ISO_IR 192"], "LT",
     b"The first line includes\xe4\xb8\xad\xe6\x96\x87.\r\nThe second line includes\xe4\xb8\xad"
     b"\xe6\x96\x87, too.\r\nThe third line.\r\n"),
    ("J.3", ["GB18030"], "PN", b"Wang^XiaoDong=\xcd\xf5^\xd0\xa1\xb6\xab="),
    ("J.4", ["GB18030"], "LT",
     b"The first line includes\xd6\xd0\xce\xc4.\r\nThe second line includes\xd6\xd0\xce\xc4, "
     b"too.\r\nThe third line.\r\n"),
    ("J.3-GBK", ["GBK"], "PN", b"Wang^XiaoDong=\xcd\xf5^\xd0\xa1\xb6\xab="),
    ("mori-ogai", ["ISO 2022 IR 6", "ISO 2022 IR 87", "ISO 2022 IR 159"], "PN",
     b"Mori^Ogai=\x1b$B?9\x1b(B^\x1b$(Dl?\x1b$B30\x1b(B=\x1b$B$b$j\x1b(B^\x1b$B$*$&$,$$\x1b(B"),
    ("jis-mixed", ["ISO 2022 IR 13", "ISO 2022 IR 87", "ISO 2022 IR 159"], "LO",
     b'\x1b$B$"\x1b(Ja\x1b)I\xb1\x1b$B%"\x1b$(DmN\x1b(J'),
    ("ir13", ["", "ISO 2022 IR 13"], "PN", b"ASCII+\x1b)I\xd4\xcf\xc0\xde^\x1b)I\xc0\xdb\xb3"),
    ("ir100", ["", "ISO 2022 IR 100"], "PN", b"ASCII+\x1b-ABuc^\x1b-AJ\xe9r\xf4me"),
    ("ir101", ["", "ISO 2022 IR 101"], "PN", b"ASCII+\x1b-BWa\xb3\xeasa"),
    ("ir109", ["", "ISO 2022 IR 109"], "PN", b"ASCII+\x1b-Canta\xfdnomo"),
    ("ir110", ["", "ISO 2022 IR 110"], "PN", b"ASCII+\x1b-Dv\xe0rds"),
    ("ir127", ["", "ISO 2022 IR 127"], "PN",
     b"ASCII+\x1b-G\xe2\xc8\xc7\xe6\xea^\x1b-G\xe4\xe6\xd2\xc7\xd1"),
    ("ir126", ["", "ISO 2022 IR 126"], "PN", b"ASCII+\x1b-F\xc4\xe9\xef\xed\xf5\xf3\xe9\xef\xf2"),
    ("ir138", ["", "ISO 2022 IR 138"], "PN",
     b"ASCII+\x1b-H\xf9\xf8\xe5\xef^\x1b-H\xe3\xe1\xe5\xf8\xe4"),
    ("ir144", ["", "ISO 2022 IR 144"], "PN", b"ASCII+\x1b-L\xbb\xee\xdace\xdc\xd1yp\xd3"),
    ("ir148", ["", "ISO 2022 IR 148"], "PN", b"ASCII+\x1b-M\xc7avu\xfeo\xf0lu"),
    ("ir166", ["", "ISO 2022 IR 166"], "PN", b"ASCII+\x1b-T\xb9\xd2\xc1\xca\xa1\xd8\xc5"),
    ("multi-valued", ["ISO 2022 IR 100", "ISO 2022 IR 144", "ISO 2022 IR 126"], "LO",
     b"Buc^J\xe9r\xf4me\\\x1b-F\xc4\xe9\xef\xed\xf5\xf3\xe9\xef\xf2\\\x1b-L\xbb\xee\xdace\xdc"
     b"\xd1yp\xd3"),
    ("misspelled", ["ISO_2022-IR 100", "ISO_2022_IR+126"], "PN",
     b"Dionysios=\x1b-F\xc4\xe9\xef\xed\xf5\xf3\xe9\xef\xf2"),
    ("stand-alone", ["ISO_IR 192", "ISO 2022 IR 100", "ISO 2022 IR 144"], "PN",
     b"Buc^J\xc3\xa9r\xc3\xb4me"),
    ("bad-utf8", ["ISO_IR 192"], "PN", b"\xc4\xe9\xef\xed\xf5\xf3\xe9\xef\xf2"),
    ("bad-ir159", ["ISO 2022 IR 159"], "PN", b"\x1b$(D\xc4\xe9\xef\xed\xf5\xf3\xe9\xef\xf2"),
    ("unknown-term", ["ISO_IR 999"], "PN", b"Buc^J\xe9r\xf4me"),
]


@pytest.mark.parametrize("name, charsets, vr, raw", AGREED, ids=[a[0] for a in AGREED])
def test_examples_match_pydicom(name, charsets, vr, raw):
    ours = split_like_pydicom(mira_decode("\\".join(charsets), vr, raw), vr)
    assert ours == pydicom_decode(charsets, vr, raw)


R = "\ufffd"

# Where mira follows the standard and pydicom does not. The expected text is the standard's
# (published where an example exists); pydicom's result is in the comment.
DEVIATIONS = [
    # PS3.5 K.2. pydicom hands "ESC $ ) A ..." to Python's gb2312 codec, which keeps the
    # escape sequence: "Zhang^XiaoDong=\x1b$)A张^\x1b$)A小东".
    ("K.2", ["", "ISO 2022 IR 58"], "PN",
     b"Zhang^XiaoDong=\x1b$)A\xd5\xc5^\x1b$)A\xd0\xa1\xb6\xab=", "Zhang^XiaoDong=张^小东="),
    # PS3.5 K.3: the same, one line of the Long Text example.
    ("K.3", ["", "ISO 2022 IR 58"], "LT",
     b"1.\x1b$)A\xb5\xda\xd2\xbb\xd0\xd0\xce\xc4\xd7\xd6\xa1\xa3\r\n", "1.第一行文字。\r\n"),
    # ISO_IR 203 (ISO 8859-15) is a defined term pydicom does not know: it reads Latin-1, "¤".
    ("ISO_IR 203", ["ISO_IR 203"], "LO", b"\xa4", "€"),
    # After '^' the first value's sets are active, and ISO-IR 6 has no G1: pydicom "ÀÛ³".
    ("reset", ["", "ISO 2022 IR 13"], "PN", b"ASCII+\x1b)I\xd4\xcf\xc0\xde^\xc0\xdb\xb3",
     f"ASCII+ﾔﾏﾀﾞ^{R}{R}{R}"),
    # JIS X 0201 Romaji has YEN SIGN at 0x5C and OVERLINE at 0x7E; pydicom's shift_jis: "1\~".
    ("romaji", ["ISO_IR 13"], "LT", b"1\\~", "1¥‾"),
    # ISO_IR 13 is single-byte JIS X 0201; pydicom's shift_jis reads 0x82 0xA0 as "あ".
    ("not-shift-jis", ["ISO_IR 13"], "LO", b"\x82\xa0", f"{R}{R}"),
    # A known escape sequence for a set value 2 does not list is honoured; pydicom keeps the
    # ESC and reads Latin-1: "\x1b-FÄéïíõóéïò".
    ("undeclared-escape", ["ISO_IR 100"], "PN", b"\x1b-F\xc4\xe9\xef\xed\xf5\xf3\xe9\xef\xf2",
     "Διονυσιος"),
    # An unknown escape sequence is one U+FFFD; pydicom keeps ESC and what follows: "\x1b%Gdef".
    ("unknown-escape", ["", "ISO 2022 IR 87"], "LO", b"abc\x1b%Gdef", f"abc{R}def"),
    # In a 94x94 G0 set a '\' byte is half of a character (0x245C ぼ), not a value delimiter;
    # pydicom splits the raw bytes on it first and gets two broken values.
    ("jis-backslash", ["", "ISO 2022 IR 87"], "LO", b"\x1b$B$\\\x1b(B", "ぼ"),
]


@pytest.mark.parametrize("name, charsets, vr, raw, expected", DEVIATIONS,
                         ids=[d[0] for d in DEVIATIONS])
def test_deviations_from_pydicom(name, charsets, vr, raw, expected):
    text = mira_decode("\\".join(charsets), vr, raw)
    assert split_like_pydicom(text, vr) == split_like_pydicom(expected, vr)
