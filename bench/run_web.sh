#!/usr/bin/env bash
# DICOMweb benchmark (issue 6): mira serve vs Orthanc with its DICOMweb plugin, side by side.
#
# usage: bench/run_web.sh   (env: SLICES, default 1000: instances of the CT series; STUDIES,
#                            default 300: other studies for the searches; SEED; BUILD_DIR,
#                            default build/; META_N 30, QIDO_N 15, WADO_CLIENTS 4, WADO_REPS 3,
#                            STOW_REPS 5, STOW_CLIENTS "1 4", BATCH 25, WRK_SECONDS 10)
# Makes a corpus (bench/make_web_corpus.py: one study with a CT series of SLICES instances of
# 512x512 16-bit, and STUDIES small studies of 2 instances), imports it into a mira archive
# (`mira import`) and uploads it to a new Orthanc (Debian's package and its orthanc-dicomweb
# plugin, SQLite index; bench/orthanc_upload.py), then, with both servers running on the same
# loopback, bench/web_bench.py (one client for both, alternating between them request by
# request or pass by pass) measures:
#   (a) GET .../series/R/metadata of the big series: median and p95 (goal: mira < 100 ms);
#   (b) QIDO-RS study searches (patient name wildcards, patient ID, date ranges, modality):
#       median latency (goal: mira's at most half of Orthanc's);
#   (c) WADO-RS retrieval of each of the series' instances (transfer-syntax=*) by WADO_CLIENTS
#       threads: instances/s and MiB/s, each answer checked (its size, DICM); then the same
#       retrievals driven by wrk with WADO_CLIENTS connections for WRK_SECONDS (a Lua script
#       walks the series), since the Python client's threads share one interpreter lock and
#       saturate before a fast server does (goal: mira at least 2x, measured with wrk);
#   (d) STOW-RS of the series, BATCH instances a request, by 1 and 4 clients, each run into a
#       new mira archive and a new Orthanc (goal: mira at least 2x);
#   (e) wrk -c 64 -t 2 -d WRK_SECONDS against a search and the series metadata of each side
#       (goal: no errors from mira); before each run the script waits (at most 90 s) until
#       both servers are idle, since Orthanc works on through the requests queued when a run
#       stopped, which took the CPU from the next run.
# mira is given a clinician's bearer token (`mira user add`, `mira user token`), which every
# request sends; Orthanc runs with authentication off. Both servers are durable when they answer
# a STOW-RS request (mira: blob fdatasync'd and index committed; Orthanc: SyncStorageArea, an
# fsync per file). Orthanc gets 64 HTTP threads (its default is 50, fewer than wrk's 64
# connections; mira's default limit is 64 connections) and a 10 s keep-alive (default 1 s).
#
# Only 127.0.0.1 is used. Run as root, both servers and every client run in a network namespace
# of their own whose only interface is loopback (held by a `sleep` process for the run), so
# nothing outside can reach Orthanc, which binds every interface (see bench/orthanc.sh), and no
# port of the host is taken. Every request is bounded by a timeout, every loop by a count.
# What the servers store is deleted only at the end (see run_ingest.sh: on ext4 without a
# journal, deleting thousands of files slows the next ones created). The report is printed and
# kept in bench/out/; timing never fails the script: each goal is stated as met or not, and the
# script fails only if a check fails (a wrong answer, a failed store).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
SLICES=${SLICES:-1000}
STUDIES=${STUDIES:-300}
SEED=${SEED:-1}
META_N=${META_N:-30}
QIDO_N=${QIDO_N:-15}
WADO_CLIENTS=${WADO_CLIENTS:-4}
WADO_REPS=${WADO_REPS:-3}
STOW_REPS=${STOW_REPS:-5}
STOW_CLIENTS=${STOW_CLIENTS:-"1 4"}
BATCH=${BATCH:-25}
WRK_SECONDS=${WRK_SECONDS:-10}
build=${BUILD_DIR:-$root/build}
[[ $build = /* ]] || build=$root/$build
out_dir=$root/bench/out
orthanc=/usr/sbin/Orthanc
py=$root/.venv/bin/python

bash scripts/install-deps.sh
"$py" -c 'import pydicom, numpy' 2>/dev/null ||
    { echo "run_web: the venv has no pydicom/numpy: run scripts/venv.sh" >&2; exit 1; }
plugin=
for p in /usr/share/orthanc/plugins/libOrthancDicomWeb.so /usr/lib/orthanc/libOrthancDicomWeb.so*; do
    [ -e "$p" ] && { plugin=$p; break; }
done
[ -n "$plugin" ] || { echo "run_web: Orthanc's DICOMweb plugin is missing (orthanc-dicomweb)" >&2; exit 1; }
for prog in "$orthanc" wrk curl; do
    command -v "$prog" >/dev/null || { echo "run_web: $prog is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
echo "run_web: building ($build)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target mira_cli >/dev/null
mira=$build/mira

base=/tmp/mira-bench-web
mkdir -p "$base"
work=$(mktemp -d "$base/run.XXXXXX")
bench_name=run_web
SETTLE=0
source bench/orthanc.sh # netns, stop_orthanc, orthanc_count

holder_pid=
mira_pid=
ns=() # the prefix that runs a command where the servers are: nsenter into the namespace, or none
# Run a command where the servers are. (Servers are started with "${ns[@]}" CMD &, not through
# this function, so that $! is the server's own process: nsenter execs it.)
net() { "${ns[@]}" "$@"; }
stop_mira() {
    [ -n "$mira_pid" ] || return 0
    kill "$mira_pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        kill -0 "$mira_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$mira_pid" 2>/dev/null || true
    wait "$mira_pid" 2>/dev/null || true
    mira_pid=
}
cleanup() {
    stop_mira
    stop_orthanc
    if [ -n "$holder_pid" ]; then kill "$holder_pid" 2>/dev/null || true; wait "$holder_pid" 2>/dev/null || true; fi
    rm -rf "$work"
    rmdir "$base" 2>/dev/null || true
}
trap cleanup EXIT

if $netns; then
    unshare -n -- sh -c 'ip link set lo up && exec sleep 3600' &
    holder_pid=$!
    ns=(nsenter -t "$holder_pid" -n --)
    host_ns=$(readlink /proc/self/ns/net)
    for ((i = 0; i < 100; i++)); do
        [ "$(readlink "/proc/$holder_pid/ns/net" 2>/dev/null)" != "$host_ns" ] &&
            net bash -c 'exec 3<>/dev/tcp/127.0.0.1/1' 2>&1 | grep -q refused && break
        sleep 0.1
    done
fi

# A new archive $1 with a clinician; sets token.
new_archive() {
    local pw
    pw=$(head -c 18 /dev/urandom | base64)
    "$mira" user add bench --role clinician --archive "$1" <<<"$pw" >/dev/null
    token=$("$mira" user token bench --archive "$1")
}

# Start mira serve on archive $1 (its log in $1.serve.*); sets mira_pid, mira_url.
start_mira() {
    local a=$1 port=
    "${ns[@]}" "$mira" serve --archive "$a" --port 0 --bind 127.0.0.1 --any-called-ae \
        --http-port 0 --http-bind 127.0.0.1 >"$a.serve.out" 2>"$a.serve.err" &
    mira_pid=$!
    for ((i = 0; i < 300; i++)); do
        port=$(sed -n 's/^http listening on .*:\([0-9]*\)$/\1/p' "$a.serve.out" 2>/dev/null || true)
        [ -n "$port" ] && break
        kill -0 "$mira_pid" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$port" ] || { echo "run_web: mira serve did not start:" >&2; cat "$a.serve.err" >&2; exit 1; }
    mira_url=http://127.0.0.1:$port/dicomweb
}

# Start a new Orthanc with the DICOMweb plugin, its folders in $work/$1; sets orthanc_pid,
# orthanc_url, http_port.
start_orthanc_web() {
    local d=$work/$1
    mkdir -p "$d/storage" "$d/index" "$d/tmp"
    read -r http_port dicom_port < <(net python3 -c '
import socket
s, t = socket.socket(), socket.socket()
s.bind(("127.0.0.1", 0)); t.bind(("127.0.0.1", 0))
print(s.getsockname()[1], t.getsockname()[1])')
    cat >"$d/orthanc.json" <<EOF
{
  "Name": "mira-bench",
  "StorageDirectory": "$d/storage",
  "IndexDirectory": "$d/index",
  "TemporaryDirectory": "$d/tmp",
  "Plugins": ["$plugin"],
  "HttpPort": $http_port,
  "DicomPort": $dicom_port,
  "DicomAet": "ORTHANC",
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false,
  "HttpCompressionEnabled": false,
  "StorageCompression": false,
  "SyncStorageArea": true,
  "OverwriteInstances": false,
  "SaveJobs": false,
  "HttpThreadsCount": 64,
  "KeepAlive": true,
  "KeepAliveTimeout": 10,
  "TcpNoDelay": true,
  "DicomWeb": { "Enable": true, "Root": "/dicom-web/", "EnableWado": true }
}
EOF
    "${ns[@]}" "$orthanc" "$d/orthanc.json" >"$d/orthanc.log" 2>&1 &
    orthanc_pid=$!
    for ((i = 0; i < 600; i++)); do
        if net curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$http_port/dicom-web/studies?limit=1" 2>/dev/null; then
            orthanc_url=http://127.0.0.1:$http_port/dicom-web
            return 0
        fi
        kill -0 "$orthanc_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "run_web: Orthanc did not start; its log:" >&2
    cat "$d/orthanc.log" >&2
    exit 1
}

corpus=$work/corpus
echo "run_web: making the corpus ($SLICES-instance series, $STUDIES studies)"
"$py" bench/make_web_corpus.py --out "$corpus" --slices "$SLICES" --studies "$STUDIES" --seed "$SEED" >/dev/null
xargs -a "$corpus/all.list" cat >/dev/null # the page cache warm with the corpus
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$(date +%s)

echo "run_web: loading both servers"
mapfile -t files <"$corpus/all.list"
"$mira" import --archive "$work/mira-read" --no-progress --json "${files[@]}" >"$work/import.jsonl"
stored=$(tail -n 1 "$work/import.jsonl" | sed -n 's/.*"stored":\([0-9]*\).*/\1/p')
[ "$stored" = "${#files[@]}" ] || { echo "run_web: mira import stored $stored of ${#files[@]}" >&2; exit 1; }
new_archive "$work/mira-read"
start_mira "$work/mira-read"
start_orthanc_web orthanc-read
net python3 bench/orthanc_upload.py --port "$http_port" --clients 4 "$corpus/all.list" >/dev/null
[ "$(orthanc_count)" = "${#files[@]}" ] || { echo "run_web: Orthanc stored $(orthanc_count) of ${#files[@]}" >&2; exit 1; }

sides=(--side "mira=$mira_url,$token,$mira_pid" --side "orthanc=$orthanc_url,,$orthanc_pid")
echo "run_web: metadata, QIDO-RS, WADO-RS"
net "$py" bench/web_bench.py read --corpus "$corpus/corpus.json" --series-list "$corpus/series.list" \
    "${sides[@]}" --out "$work/read.json" --meta-n "$META_N" --qido-n "$QIDO_N" \
    --wado-clients "$WADO_CLIENTS" --wado-reps "$WADO_REPS"
echo "run_web: WADO-RS driven by wrk, $WADO_CLIENTS connections, ${WRK_SECONDS} s a side"
net "$py" bench/web_bench.py wrk --only-wado --corpus "$corpus/corpus.json" "${sides[@]}" \
    --duration "$WRK_SECONDS" --wado-connections "$WADO_CLIENTS" --out "$work/wado-wrk.json"
log_split=$(wc -l <"$work/mira-read.serve.err")
echo "run_web: wrk, 64 connections, ${WRK_SECONDS} s a run"
net "$py" bench/web_bench.py wrk --corpus "$corpus/corpus.json" "${sides[@]}" \
    --duration "$WRK_SECONDS" --out "$work/wrk.json"
stop_mira
# Orthanc is still working on the metadata requests wrk left (each about a second of CPU): it is
# killed, not asked to finish them (it stored nothing since the upload).
kill -9 "$orthanc_pid" 2>/dev/null || true
stop_orthanc
sync

echo "run_web: STOW-RS"
: >"$work/stow.jsonl"
stow_failed=0
order=(mira orthanc)
for ((r = 1; r <= STOW_REPS; r++)); do
    for c in $STOW_CLIENTS; do
        for side in "${order[@]}"; do
            if [ "$side" = mira ]; then
                a=$work/mira-stow-$r-$c
                new_archive "$a"
                start_mira "$a"
                spec="mira=$mira_url,$token,$mira_pid"
            else
                start_orthanc_web "orthanc-stow-$r-$c"
                spec="orthanc=$orthanc_url,,$orthanc_pid"
            fi
            net "$py" bench/web_bench.py stow --corpus "$corpus/corpus.json" --side "$spec" \
                --list "$corpus/series.list" --clients "$c" --batch "$BATCH" \
                --out "$work/stow.jsonl" || stow_failed=1
            if [ "$side" = mira ]; then
                stop_mira
                n=$("$mira" stats --archive "$a" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["instances"])')
            else
                n=$(orthanc_count)
                stop_orthanc
            fi
            [ "$n" = "$SLICES" ] || { echo "run_web: $side holds $n of $SLICES after STOW-RS" >&2; stow_failed=1; }
            sync
        done
        order=("${order[@]:1}" "${order[0]}") # the next run starts with the other side
    done
done
t_end=$(date +%s)

mkdir -p "$out_dir"
report=$out_dir/web-$(date +%Y%m%d-%H%M%S).txt
{
    echo "mira DICOMweb benchmark, $(date -u +%Y-%m-%dT%H:%MZ), git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(awk '/^MemTotal:/{printf "%.0f", $2/1048576}' /proc/meminfo) GiB memory; $(df -T "$work" | awk 'NR==2{print $2}') on $(df "$work" | awk 'NR==2{print $1}')"
    echo "load:    $load_before at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end (/proc/loadavg; 2 = both cores busy); $((t_end - t_start)) s"
    echo "corpus:  $("$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))["summary"])' "$corpus/corpus.json")"
    echo "peers:   Orthanc $(dpkg-query -W -f='${Version}' orthanc 2>/dev/null) with orthanc-dicomweb $(dpkg-query -W -f='${Version}' orthanc-dicomweb 2>/dev/null) (Debian; SQLite index), wrk $(dpkg-query -W -f='${Version}' wrk 2>/dev/null)"
    echo "network: $(if [ -n "$holder_pid" ]; then echo "both servers and the clients in a network namespace of their own (loopback only)"; else echo "host loopback (not root: Orthanc binds every interface, RemoteAccessAllowed false)"; fi)"
    echo "mira:    $mira (mira serve, SQLite index; every request with a clinician's bearer token, each one audited)"
    echo "command: SLICES=$SLICES STUDIES=$STUDIES META_N=$META_N QIDO_N=$QIDO_N WADO_CLIENTS=$WADO_CLIENTS WADO_REPS=$WADO_REPS STOW_REPS=$STOW_REPS STOW_CLIENTS=\"$STOW_CLIENTS\" BATCH=$BATCH WRK_SECONDS=$WRK_SECONDS bash bench/run_web.sh"
    echo
    "$py" bench/web_bench.py report --read "$work/read.json" --stow "$work/stow.jsonl" --wrk "$work/wado-wrk.json" --wrk "$work/wrk.json" \
        --mira-log "$work/mira-read.serve.err" --log-split "$log_split"
    [ "$stow_failed" = 0 ] || echo "STOW-RS: a run failed or stored the wrong count (see above)"
} | tee "$report"
cp "$work/read.json" "${report%.txt}.read.json"
cp "$work/stow.jsonl" "${report%.txt}.stow.jsonl"
cp "$work/wrk.json" "${report%.txt}.wrk.json"
cp "$work/wado-wrk.json" "${report%.txt}.wado-wrk.json"
gzip -c "$work/mira-read.serve.err" >"${report%.txt}.mira-serve.log.gz"
echo "run_web: report in ${report#"$root"/}"
[ "$stow_failed" = 0 ]
