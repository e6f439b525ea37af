#!/usr/bin/env bash
# Installs the JavaScript test peers: `npm ci` in each tests/*/ folder with a package-lock.json
# (the lock file pins every package); a no-op for a folder whose lock has not changed since.
#
# Node.js comes from scripts/debian-packages.txt (nodejs). Debian's nodejs has no npm of its
# own (a separate package); where npm is missing it is installed from Debian's packages too.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
    echo "npm: installing Debian's npm"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
fi

shopt -s nullglob
for lock in "$root"/tests/*/package-lock.json; do
    dir=$(dirname "$lock")
    want=$( { node --version; cat "$lock"; } | sha256sum | cut -d' ' -f1)
    stamp="$dir/node_modules/.lock.sha256"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        continue
    fi
    echo "npm: installing $(basename "$dir")/ from its package-lock.json"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$want" >"$stamp"
done
