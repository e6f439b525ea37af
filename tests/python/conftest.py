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


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: long tests (the 100,000-instance archive corpus); scripts/test.sh "
        "runs them in the build/ pass only")


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


# Multi-frame Secondary Capture SOP classes by samples per pixel and bits allocated
# (PS3.4 B.5): gdcmconv refuses to write a multi-frame image whose SOP class is the
# single-frame Secondary Capture one, which pydicom's test files and synthetic inputs use.
_MULTIFRAME_SC = {(1, 8): "1.2.840.10008.5.1.4.1.1.7.2", (1, 16): "1.2.840.10008.5.1.4.1.1.7.3",
                  (3, 8): "1.2.840.10008.5.1.4.1.1.7.4", (3, 16): "1.2.840.10008.5.1.4.1.1.7.4"}


def decode_with_peer(decoder, src, dst):
    """Run a peer decoder (a command line: dcmdrle, dcmdjpls, gdcmconv --raw...) on src.

    For gdcmconv, a multi-frame Secondary Capture copy is first relabelled with the multi-frame
    SC SOP class (the pixel data is untouched), which is the only thing GDCM objects to.
    """
    import pydicom
    src = pathlib.Path(src)
    if decoder[0] == "gdcmconv":
        ds = pydicom.dcmread(src)
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        key = (int(ds.SamplesPerPixel), int(ds.BitsAllocated))
        if frames > 1 and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7" and key in _MULTIFRAME_SC:
            ds.SOPClassUID = _MULTIFRAME_SC[key]
            ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
            relabelled = pathlib.Path(str(dst) + ".mfsc.dcm")
            ds.save_as(relabelled)
            src = relabelled
    subprocess.run([*decoder, str(src), str(dst)], check=True, capture_output=True, timeout=120)


# ------------------------------------------------------------------ archives on both backends

# scripts/test.sh starts a real PostgreSQL server and exports MIRA_TEST_POSTGRES, a libpq
# connection string to a database on it in which the tests may create databases. Without it
# (a developer's quick run) only SQLite is tested.
POSTGRES = os.environ.get("MIRA_TEST_POSTGRES", "")
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES else [])


class Archive:
    """An empty archive folder for a test, with the index on one backend."""

    def __init__(self, folder, backend, index):
        self.dir = folder
        self.backend = backend
        self.index = index
        self.args = ["--archive", str(folder)] + (["--index", index] if index else [])

    def run(self, command, *args, check=True, input=None):
        """`mira COMMAND --archive DIR [--index URL] ARGS...`"""
        return run_mira(command, *self.args, *args, check=check, input=input)


_pg_counter = [0]


def new_postgres_database():
    """A fresh database on the test server; returns its connection string. With
    MIRA_TEST_POSTGRES_MODULES (comma-separated test module prefixes; scripts/test.sh sets it
    for the sanitizer pass) the PostgreSQL variants of other modules are skipped: the build/
    pass runs them all."""
    import uuid
    only = os.environ.get("MIRA_TEST_POSTGRES_MODULES", "")
    if only:
        module = os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[0].rsplit("/", 1)[-1]
        if not any(module.startswith(p) for p in only.split(",") if p):
            pytest.skip("the PostgreSQL variant of this module runs in the build/ pass only")
    name = f"mira_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    subprocess.run(["psql", POSTGRES, "-v", "ON_ERROR_STOP=1", "-q", "-c",
                    f"CREATE DATABASE {name}"], check=True, capture_output=True, timeout=60)
    # the same server and credentials, another database
    if "dbname=" in POSTGRES:
        import re
        return re.sub(r"dbname=\S+", f"dbname={name}", POSTGRES)
    return POSTGRES + f" dbname={name}"


@pytest.fixture(params=BACKENDS)
def archive(request, tmp_path):
    """An empty archive on each backend in turn (SQLite, and PostgreSQL when available)."""
    index = new_postgres_database() if request.param == "postgresql" else None
    return Archive(tmp_path / "archive", request.param, index)
