#!/usr/bin/env bash
# Quick start on a fresh Debian 12 machine: installs what is missing, builds mira and shows it working.
#
# usage: scripts/quickstart.sh
# Installs the Debian packages of scripts/debian-packages.txt, builds build/ (RelWithDebInfo,
# the same tree scripts/test.sh uses) and sets the platform up on its embedded default: the
# archive var/ (SQLite index and blob folder) with pydicom's test files imported, and the DICOM
# server 'mira serve' on it in the background (AE title MIRA, port 11112 or MIRA_PORT; HTTP with
# QIDO-RS on 8080 or MIRA_HTTP_PORT; HL7 MLLP on 2575 or MIRA_HL7_PORT; on 127.0.0.1 only unless MIRA_BIND says otherwise; log in
# var/serve.log, pid in var/serve.pid).
# Run again, it stops the server it started before and starts the new build.
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
# var/blobs/), with pydicom's test files imported so there is something to see, and the DICOM
# server on it, with its HTTP (DICOMweb, the web page) and HL7 MLLP listeners.
# ---------------------------------------------------------------------------------------------
port=${MIRA_PORT:-11112}
bind=${MIRA_BIND:-127.0.0.1}
http_port=${MIRA_HTTP_PORT:-8080}
hl7_port=${MIRA_HL7_PORT:-2575}
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

echo
if [ -f var/serve.pid ] && kill -0 "$(cat var/serve.pid)" 2>/dev/null &&
    grep -q 'mira' "/proc/$(cat var/serve.pid)/cmdline" 2>/dev/null; then
    echo "quickstart: stopping the mira serve started before (pid $(cat var/serve.pid))"
    kill "$(cat var/serve.pid)"
    for ((i = 0; i < 100; i++)); do kill -0 "$(cat var/serve.pid)" 2>/dev/null || break; sleep 0.1; done
fi
rm -f var/serve.pid
echo "\$ build/mira serve --archive var --bind $bind --port $port --http-port $http_port --hl7-port $hl7_port --any-called-ae &"
nohup build/mira serve --archive var --bind "$bind" --port "$port" --http-port "$http_port" --hl7-port "$hl7_port" --any-called-ae \
    </dev/null >>var/serve.log 2>&1 &
echo $! >var/serve.pid
served=0
for ((i = 0; i < 100; i++)); do
    if build/mira echo "$bind" "$port" --call MIRA --timeout 2 >/dev/null 2>&1; then
        served=1
        break
    fi
    kill -0 "$(cat var/serve.pid)" 2>/dev/null || break
    sleep 0.1
done
# Every HTTP route needs a bearer token: an admin account, made once with a generated password
# that is shown once (it is kept only as an Argon2id hash).
if ! build/mira user list --archive var 2>/dev/null | grep -q '^admin '; then
    admin_pw=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
    printf '%s\n' "$admin_pw" | build/mira user add admin --role admin --archive var >/dev/null
    echo "quickstart: made the user 'admin' (role admin) with the password $admin_pw"
    echo "quickstart: it is shown only now; 'build/mira user passwd admin' sets another"
fi
if [ $served = 1 ]; then
    echo "quickstart: mira serve answers C-ECHO on $bind:$port as MIRA (pid $(cat var/serve.pid), log var/serve.log)"
    echo "quickstart: DICOMweb (QIDO-RS) at http://$bind:$http_port/dicomweb/studies"
else
    echo "quickstart: mira serve did not start (is port $port, $http_port or $hl7_port taken? MIRA_PORT=..., MIRA_HTTP_PORT=... and MIRA_HL7_PORT=... pick others); var/serve.log says:" >&2
    tail -5 var/serve.log >&2
    rm -f var/serve.pid
fi

cat <<EOF

The archive is var/ (what 'mira' uses when no --archive is given). Try:
  build/mira --help                                  the commands ('mira <command> --help')
  build/mira find --level series Modality=MR         C-FIND matching on the archive
  build/mira find --json PatientName='doe*'          the matches as DICOM JSON
  build/mira cat SOP_INSTANCE_UID -o out.dcm         an instance as stored
  build/mira export -o media --dicomdir              the archive as media with a DICOMDIR
  build/mira check                                   the index against the blobs
  build/mira dump --no-pixels $sample
The DICOM server (AE MIRA, $bind:$port; stop it with: kill \$(cat var/serve.pid)):
  build/mira echo $bind $port --call MIRA
  build/mira send $bind $port --call MIRA FILES...
  storescu -aec MIRA $bind $port $sample
  build/mira qr find $bind $port --call MIRA --level STUDY -k PatientName='*'
  findscu -S -aec MIRA -k QueryRetrieveLevel=STUDY -k PatientName $bind $port
DICOMweb searches (QIDO-RS) on http://$bind:$http_port/dicomweb, with a bearer token (from the
command line, or POST /auth/token with the admin password: curl -u admin -X POST .../auth/token):
  TOKEN=\$(build/mira user token admin)
  curl -H "Authorization: Bearer \$TOKEN" 'http://$bind:$http_port/dicomweb/studies?PatientName=doe*&includefield=StudyDescription'
  curl -H "Authorization: Bearer \$TOKEN" 'http://$bind:$http_port/dicomweb/series?Modality=MR&limit=5&offset=5'
Accounts: build/mira user add NAME --role admin|clinician|researcher; build/mira audit
A modality elsewhere reaches it once it listens on the network: MIRA_BIND=0.0.0.0 (and access
rules in mira.json, see 'build/mira serve --help').
Run the whole test suite with: bash scripts/test.sh
EOF
