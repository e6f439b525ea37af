#!/usr/bin/env bash
# Quick start on a fresh Debian 12 machine: installs what is missing, builds mira and shows it working.
#
# usage: scripts/quickstart.sh
# Installs the Debian packages of scripts/debian-packages.txt, builds build/ (RelWithDebInfo,
# the same tree scripts/test.sh uses) and starts the platform on its embedded default. There is
# no server yet, so for now "starting" means reading a sample CT from pydicom's test set with
# `build/mira dump` and saying what to try next.
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
# START THE PLATFORM: when `mira serve` exists (issues 4-6), this is where it goes:
#   - build/mira serve --data var/ in the background (embedded default: var/index.db + var/blobs/),
#     waiting for its health check;
#   - import the sample data (pydicom's test files) into it, so there is something to see;
#   - print the web address and how to stop it.
# Until then, nothing is started: the CLI reads a sample file instead.
# ---------------------------------------------------------------------------------------------
echo
echo "quickstart: mira $(build/mira --version | sed 's/^mira //') is built. Reading a sample CT:"
echo "\$ build/mira dump --no-pixels $sample"
dump=$(build/mira dump --no-pixels "$sample")
lines=$(printf '%s\n' "$dump" | wc -l)
printf '%s\n' "$dump" | head -n 25
if [ "$lines" -gt 25 ]; then echo "... ($((lines - 25)) more lines)"; fi

cat <<EOF

There is no server yet ('mira serve' comes in a later release); the command line works:
  build/mira --help                          the commands ('mira <command> --help' for each)
  build/mira dump FILE                       every element of a DICOM file
  build/mira dump --json --no-pixels FILE    the same as JSON, without the pixel data
  build/mira json --help                     DICOM <-> the DICOM JSON model
  build/mira tag PatientName                 look up the data dictionary
Sample files: $pydicom_data/test_files/
Run the whole test suite with: bash scripts/test.sh
EOF
