"""Shared fixtures for the tests that drive the mira binaries against reference implementations."""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PYDICOM_DATA = pathlib.Path(os.environ.get(
    "MIRA_PYDICOM_DATA", "/usr/lib/python3/dist-packages/pydicom/data"))
TEST_FILES = PYDICOM_DATA / "test_files"
CHARSET_FILES = PYDICOM_DATA / "charset_files"

# Files in the test set that are not DICOM at all.
NOT_DICOM_SUFFIXES = {".txt", ".json", ".dump", ".gz", ".py"}


def mira_bin():
    return os.environ.get("MIRA_BIN", str(ROOT / "build" / "mira"))


def tools_dir():
    return pathlib.Path(os.environ.get("MIRA_TOOLS_DIR", str(ROOT / "build")))


def run_mira(*args, check=True, input=None):
    """Run the mira CLI; returns the CompletedProcess (text mode)."""
    proc = subprocess.run([mira_bin(), *map(str, args)], capture_output=True,
                          input=input, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"mira {' '.join(map(str, args))} exited {proc.returncode}: "
            f"{proc.stderr.decode(errors='replace')}")
    return proc


def dicom_test_files():
    """Every DICOM file of Debian's python3-pydicom test set (test_files + charset_files)."""
    out = []
    for base in (TEST_FILES, CHARSET_FILES):
        for p in sorted(base.rglob("*")):
            if not p.is_file() or p.suffix.lower() in NOT_DICOM_SUFFIXES:
                continue
            if p.name in ("README", "FileInfo.txt"):
                continue
            out.append(p)
    return out


def file_id(p):
    return str(p.relative_to(PYDICOM_DATA))


@pytest.fixture(scope="session")
def tmpdir_session(tmp_path_factory):
    return tmp_path_factory.mktemp("mira")
