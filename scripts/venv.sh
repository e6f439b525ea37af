#!/usr/bin/env bash
# Creates or updates the test venv .venv from tests/requirements.txt; a no-op when it is current.
#
# Uses Debian's python3 (python3-venv is in scripts/debian-packages.txt). A stamp file in the
# venv records the requirements and interpreter it was built from, so pip runs only on a change.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
req="$root/tests/requirements.txt"

py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)

want=$( { "$py" -c 'import sys; print(sys.version)'; cat "$req"; } | sha256sum | cut -d' ' -f1)
stamp="$venv/.requirements.sha256"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

echo "venv: setting up $venv from tests/requirements.txt"
rm -rf "$venv"
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
echo "$want" >"$stamp"
