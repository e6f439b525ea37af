"""Storage compression: the archive re-encodes pixel data losslessly on ingest when configured.

The stored blob is decoded by an independent decoder (DCMTK's dcmdjpls / dcmdrle, GDCM for
JPEG 2000) and must give the values the reference decoding of the original gives (the decoders
of test_pixels.py); what a syntax cannot hold is stored exactly as received.
"""
import json

import pydicom
import pytest

from conftest import TEST_FILES, decode_with_peer
from test_pixels import normalise, reference

TARGETS = {"jpegls": ("1.2.840.10008.1.2.4.80", ["dcmdjpls"]),
           "j2k": ("1.2.840.10008.1.2.4.90", ["gdcmconv", "--raw"]),
           "rle": ("1.2.840.10008.1.2.5", ["dcmdrle"])}
INPUTS = ["CT_small.dcm", "MR_small.dcm", "SC_rgb_small_odd.dcm", "SC_rgb_rle_16bit_2frame.dcm",
          "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_bigendian.dcm"]


@pytest.mark.parametrize("target", list(TARGETS))
def test_stored_compressed_and_lossless(archive, tmp_path, target):
    uid, decoder = TARGETS[target]
    paths = [TEST_FILES / n for n in INPUTS]
    archive.run("import", "--no-progress", "--storage-ts", target, *paths)
    config = json.loads((archive.dir / "config.json").read_text())
    assert config["storage_transfer_syntax"] == uid  # a new archive records it
    for p in paths:
        src = pydicom.dcmread(p)
        stored = tmp_path / "stored.dcm"
        archive.run("cat", src.SOPInstanceUID, "-o", stored)
        st = pydicom.dcmread(stored)
        assert str(st.file_meta.TransferSyntaxUID) == uid, p.name
        decoded = tmp_path / "decoded.dcm"
        decode_with_peer(decoder, stored, decoded)
        got = pydicom.dcmread(decoded)
        _, want, who = reference(p, tmp_path)
        assert normalise(got, got.pixel_array) == want, f"{p.name}: differs from {who}"
        # the index says how it is stored
        m = json.loads(archive.run("find", "--level", "instance", "--json",
                                   f"SOPInstanceUID={src.SOPInstanceUID}",
                                   "AvailableTransferSyntaxUID").stdout)
        assert m[0]["00083002"]["Value"] == [uid]


def test_what_cannot_be_compressed_is_kept_as_received(archive, tmp_path):
    # 32-bit samples (JPEG-LS codes 2 to 16 bits) and an object without pixel data
    paths = [TEST_FILES / "SC_rgb_rle_32bit.dcm", TEST_FILES / "rtplan.dcm"]
    archive.run("import", "--no-progress", "--storage-ts", "jpegls", *paths)
    for p in paths:
        sop = pydicom.dcmread(p).SOPInstanceUID
        assert archive.run("cat", sop).stdout == p.read_bytes()


def test_bad_storage_syntax_is_a_usage_error(archive):
    proc = archive.run("import", "--storage-ts", "1.2.840.10008.1.2.4.50", TEST_FILES / "CT_small.dcm",
                       check=False)
    assert proc.returncode == 2
