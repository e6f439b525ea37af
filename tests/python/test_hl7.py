"""The HL7 v2 codec (`mira hl7`) against python-hl7 (hl7 0.4.5 from PyPI, the release Debian
ships as python3-hl7), on the realistic messages of hl7_corpus.py: every segment, field,
repetition, component and subcomponent mira reads must be what python-hl7 reads, unescaped,
and each field as encoded must be python-hl7's text of it. Then values by path, batch files,
character sets, acknowledgements and malformed input."""
import json
import subprocess

import hl7
import pytest

from conftest import mira_bin, run_mira
from hl7_corpus import BATCH, LATIN1, MESSAGES


def mira_json(tmp_path, data, name="m.hl7"):
    f = tmp_path / name
    f.write_bytes(data if isinstance(data, bytes) else data.encode())
    out = run_mira("hl7", "parse", "--json", f).stdout.decode()
    return [json.loads(line) for line in out.splitlines()]


def mira_encoded_fields(tmp_path, data):
    """{(segment index, field number): the field as encoded} from `mira hl7 parse`."""
    f = tmp_path / "enc.hl7"
    f.write_bytes(data if isinstance(data, bytes) else data.encode())
    out = run_mira("hl7", "parse", f).stdout.decode()
    fields, seg = {}, -1
    for line in out.splitlines():
        if not line.startswith("  "):
            seg += 1
            continue
        path = line[2:].split(" ", 1)[0]  # "  PATH" padded to 12, a space, the value
        value = line[2 + max(12, len(path)) + 1:]
        fields[(seg, int(path.rsplit("-", 1)[1]))] = value
    return fields


def full(field):
    """A python-hl7 field as repetitions of components of subcomponents (python-hl7 leaves a
    level out where a value has no delimiter of it)."""
    out = []
    for rep in field:
        if isinstance(rep, str):
            out.append([[rep]])
            continue
        comps = []
        for comp in rep:
            comps.append([comp] if isinstance(comp, str) else [str(s) for s in comp])
        out.append(comps)
    return out


def python_unescape(message, text):
    # python-hl7 writes a line break (\.br\, \.sp\, \.ce\) as CR; mira as LF
    return message.unescape(text).replace("\r", "\n")


def compare(py, tree, label):
    segs = tree["segments"]
    assert [s[0] for s in segs] == [str(s[0]) for s in py], label
    for i, (ps, ms) in enumerate(zip(py, segs)):
        name = str(ps[0])
        assert len(ms) == len(ps), (label, i, name, "field count")
        for f in range(1, len(ps)):
            where = f"{label}: {name}[{i}]-{f}"
            if name == "MSH" and i == 0 and f in (1, 2):
                assert ms[f] == str(ps[f]), where
                continue
            want = [[[python_unescape(py, s) for s in comp] for comp in rep]
                    for rep in full(ps[f])]
            assert ms[f] == want, where


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_every_field_agrees_with_python_hl7(tmp_path, name):
    text = MESSAGES[name]
    py = hl7.parse(text)
    (tree,) = mira_json(tmp_path, text)
    compare(py, tree, name)
    # each field as encoded: python-hl7's text of it
    enc = mira_encoded_fields(tmp_path, text)
    for i, seg in enumerate(py):
        for f in range(1, len(seg)):
            want = str(seg[f])
            if want:
                assert enc.get((i, f)) == want, (name, i, f)
            else:
                assert (i, f) not in enc


def test_latin1_message_decodes_to_utf8(tmp_path):
    py = hl7.parse(LATIN1, encoding="latin-1")
    (tree,) = mira_json(tmp_path, LATIN1)
    compare(py, tree, "latin1")
    assert tree["segments"][1][5] == [[["LEFÈVRE"], ["HÉLÈNE"], ["Zoë"]]]


def test_values_by_path(tmp_path):
    f = tmp_path / "oru.hl7"
    text = MESSAGES["oru_r01_report_v25"]
    f.write_text(text)
    py = hl7.parse(text)
    paths = ["MSH-9.1", "MSH-9.2", "MSH-10", "PID-3", "PID-3.4", "PID-5.2", "OBR-18",
             "OBR-25", "OBR-32.1.2", "OBX(1)-5", "OBX(18)-5", "OBX(18)-11", "NTE-3"]
    got = run_mira("hl7", "get", f, *paths).stdout.decode().split("\n")[:-1]
    want = [py.extract_field("MSH", 1, 9, 1, 1), py.extract_field("MSH", 1, 9, 1, 2),
            py.extract_field("MSH", 1, 10), py.extract_field("PID", 1, 3),
            py.extract_field("PID", 1, 3, 1, 4), py.extract_field("PID", 1, 5, 1, 2),
            py.extract_field("OBR", 1, 18), py.extract_field("OBR", 1, 25),
            py.extract_field("OBR", 1, 32, 1, 1, 2), py.extract_field("OBX", 1, 5),
            py.extract_field("OBX", 18, 5), py.extract_field("OBX", 18, 11),
            py.extract_field("NTE", 1, 3)]
    assert got == want
    # the report, OBX-5 of every OBX in order, is the text that was written
    obx = [f"OBX({i})-5" for i in range(1, len(py.segments("OBX")) + 1)]
    lines = run_mira("hl7", "get", f, *obx).stdout.decode().split("\n")[:-1]
    from hl7_corpus import REPORT_LINES
    assert lines == REPORT_LINES


def test_batch_file_agrees_with_python_hl7(tmp_path):
    trees = mira_json(tmp_path, BATCH, "batch.hl7")
    pyfile = hl7.parse_file(BATCH)
    pymessages = [m for batch in pyfile for m in batch]
    assert len(trees) == len(pymessages) == 3
    for i, (py, tree) in enumerate(zip(pymessages, trees)):
        compare(py, tree, f"batch message {i + 1}")
    # a trailer that miscounts is an error (exit 1) after the messages before it
    bad = BATCH.replace("BTS|1\r", "BTS|4\r")
    f = tmp_path / "bad.hl7"
    f.write_text(bad)
    p = subprocess.run([mira_bin(), "hl7", "parse", "--json", str(f)], capture_output=True)
    assert p.returncode == 1 and b"BTS-1 says 4" in p.stderr


def test_acknowledgements_read_back_with_python_hl7(tmp_path):
    f = tmp_path / "adt.hl7"
    f.write_text(MESSAGES["adt_a01_v25"])
    out = run_mira("hl7", "ack", "--code", "AE", "--text", "PID-3 lacks an MR | number",
                   "--error-code", "101", "--location", "PID^1^3", "--control-id", "A1",
                   f).stdout.decode()
    ack = hl7.parse(out.replace("\n", "\r"))
    src = hl7.parse(MESSAGES["adt_a01_v25"])
    assert str(ack.segment("MSH")[9]) == "ACK^A01^ACK"
    assert str(ack.segment("MSH")[5]) == str(src.segment("MSH")[3])
    assert str(ack.segment("MSH")[6]) == str(src.segment("MSH")[4])
    assert str(ack.segment("MSH")[10]) == "A1"
    assert str(ack.segment("MSH")[12]) == "2.5"
    assert str(ack.segment("MSA")[1]) == "AE"
    assert str(ack.segment("MSA")[2]) == "ADT00001"
    assert ack.unescape(str(ack.segment("MSA")[3])) == "PID-3 lacks an MR | number"
    err = ack.segment("ERR")
    assert str(err[2]) == "PID^1^3" and str(err[3]) == "101^Required field missing^HL70357"
    assert str(err[4]) == "E"
    # python-hl7's own ACK of the same message has the same MSA-2 and MSH-9
    theirs = src.create_ack("AE")
    assert str(theirs.segment("MSA")[2]) == str(ack.segment("MSA")[2])
    assert str(theirs.segment("MSH")[9]) == str(ack.segment("MSH")[9])
    # a message that does not parse gets AR, with what was wrong
    f.write_text("MSH|^~\\&|LAB|H1|X|Y|||ORU^R01|C77|P|2.3\rOBX|1\rbroken segment\r")
    p = subprocess.run([mira_bin(), "hl7", "ack", str(f)], capture_output=True)
    assert p.returncode == 1
    ack = hl7.parse(p.stdout.decode().replace("\n", "\r"))
    assert str(ack.segment("MSA")[1]) == "AR" and str(ack.segment("MSA")[2]) == "C77"
    assert "three upper-case letters" in str(ack.segment("MSA")[3])


@pytest.mark.parametrize("data", [
    b"", b"garbage", b"PID|1||X\r", b"MSH|^~\r", b"MSH|^~\\&|A\rpid|x\r",
    b"MSH|^~\\&|A\r\x00\x01\x02\r", b"MSH^~\\&^A\r",
])
def test_malformed_input_is_a_clear_error(tmp_path, data):
    f = tmp_path / "bad.hl7"
    f.write_bytes(data)
    p = subprocess.run([mira_bin(), "hl7", "parse", str(f)], capture_output=True, timeout=30)
    assert p.returncode == 1 and p.stderr.startswith(b"mira hl7: "), p.stderr


def test_help_and_usage():
    for sub in ([], ["parse"], ["get", "x"]):
        p = subprocess.run([mira_bin(), "hl7", *sub], capture_output=True)
        assert p.returncode == 2
    p = subprocess.run([mira_bin(), "hl7", "--help"], capture_output=True)
    assert p.returncode == 0 and p.stdout.startswith(b"usage: mira hl7 parse")
    p = subprocess.run([mira_bin(), "hl7", "get", "/dev/null", "PID-0"], capture_output=True)
    assert p.returncode in (1, 2)
