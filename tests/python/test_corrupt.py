"""A corpus of truncated and bit-flipped files: mira reads or refuses each, never crashes.

Refusals must explain themselves (exit status 1 with a message naming the file, and the offset
for malformed content). Everything runs under the sanitizer build too (scripts/test.sh), where a
memory error aborts the process and fails the test.
"""
import random
import subprocess

import pytest

from conftest import TEST_FILES, mira_bin, tools_dir

SOURCES = ["CT_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "rtplan.dcm",
           "image_dfl.dcm", "JPEG2000.dcm", "UN_sequence.dcm", "nested_priv_SQ.dcm",
           "reportsi.dcm", "SC_rgb_rle_2frame.dcm", "ExplVR_BigEndNoMeta.dcm"]


def variants(data, rng, n_trunc=24, n_flip=24):
    out = []
    cuts = sorted({rng.randrange(1, len(data)) for _ in range(n_trunc)} | {1, 127, 131, 140})
    for c in cuts:
        if c < len(data):
            out.append((f"trunc{c}", data[:c]))
    for i in range(n_flip):
        b = bytearray(data)
        for _ in range(rng.choice((1, 2, 8))):
            pos = rng.randrange(len(b))
            b[pos] ^= 1 << rng.randrange(8)
        out.append((f"flip{i}", bytes(b)))
    # lengths set to huge or undefined values in the first elements after the meta group
    for i in range(8):
        b = bytearray(data)
        pos = rng.randrange(132, min(len(b) - 4, 2000)) if len(b) > 140 else 0
        b[pos:pos + 4] = rng.choice((b"\xff\xff\xff\xff", b"\xfe\xff\xff\x7f", b"\x00\x00\x01\x00"))
        out.append((f"len{i}", bytes(b)))
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corrupt")
    rng = random.Random(20261125)
    for name in SOURCES:
        data = (TEST_FILES / name).read_bytes()
        for tag, blob in variants(data, rng):
            (d / f"{name}.{tag}").write_bytes(blob)
    return d


def test_fuzz_replay_survives_corpus(corpus):
    """The fuzz target (reader, value decoding, JSON, writer) runs every variant."""
    replay = tools_dir() / "fuzz_read_replay"
    proc = subprocess.run([str(replay), str(corpus)], capture_output=True, timeout=900)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-4000:]


def test_cli_reads_or_refuses_clearly(corpus):
    files = sorted(corpus.iterdir())
    assert len(files) > 300
    refused = 0
    for f in files:
        proc = subprocess.run([mira_bin(), "dump", str(f)], capture_output=True, timeout=60)
        assert proc.returncode in (0, 1), f"{f.name}: exit {proc.returncode}"
        if proc.returncode == 1:
            refused += 1
            msg = proc.stderr.decode(errors="replace")
            assert f.name in msg, msg
            assert "offset" in msg or "deflate" in msg.lower(), msg
    assert refused > 0  # truncations must be noticed
