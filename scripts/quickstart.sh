#!/usr/bin/env bash
# Quick start on a fresh Debian 12 machine: installs what is missing, builds mira and shows it working.
#
# usage: scripts/quickstart.sh
# Installs the Debian packages of scripts/debian-packages.txt, builds build/ (RelWithDebInfo,
# the same tree scripts/test.sh uses) and sets the platform up on its embedded default: the
# archive var/ (SQLite index and blob folder) with pydicom's test files imported. There is no
# server yet ('mira serve' comes with the DIMSE issue); the archive commands work on var/.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
jobs=$(nproc 2>/dev/null || echo 2)
pydicom_data=${MIRA_PYDICOM_DATA:-/usr/lib/python3/dist-packages/pydicom/data}
sample=$pydicom_data/test_files/CT_small.dcm

echo "quickstart: installing missing Debian packages"
bash scripts/install-deps.sh

echo "quickstart: building build/"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs"

# ---------------------------------------------------------------------------------------------
# The platform on its embedded default: the archive in var/ (var/index.db, SQLite, and
# var/blobs/), with pydicom's test files imported so there is something to see. `mira serve`
# (DIMSE, DICOMweb, HL7) comes with the next issues; when it exists it starts here, in the
# background, on this archive.
# ---------------------------------------------------------------------------------------------
echo
echo "quickstart: mira $(build/mira --version | sed 's/^mira //') is built."
echo "quickstart: importing pydicom's sample files into the archive var/"
echo "\$ build/mira import --archive var $pydicom_data/test_files"
# some sample files are broken or not DICOM on purpose: they are rejected with a reason
build/mira import --archive var --no-progress "$pydicom_data/test_files" 2>/dev/null || true
echo
echo "\$ build/mira stats --archive var"
build/mira stats --archive var
echo
echo "\$ build/mira find --archive var --level study PatientName='*' StudyDate ModalitiesInStudy"
build/mira find --archive var --level study "PatientName=*" StudyDate ModalitiesInStudy | head -n 12

cat <<EOF

The archive is var/ (what 'mira' uses when no --archive is given). Try:
  build/mira --help                                  the commands ('mira <command> --help')
  build/mira find --level series Modality=MR         C-FIND matching on the archive
  build/mira find --json PatientName='doe*'          the matches as DICOM JSON
  build/mira cat SOP_INSTANCE_UID -o out.dcm         an instance as stored
  build/mira export -o media --dicomdir              the archive as media with a DICOMDIR
  build/mira check                                   the index against the blobs
  build/mira dump --no-pixels $sample
Run the whole test suite with: bash scripts/test.sh
EOF
