#!/usr/bin/env bash
# C-STORE benchmark: mira serve vs DCMTK storescp vs Orthanc, each fed by DCMTK's storescu.
#
# usage: bench/run_store.sh   (env: N files, default 2000; REPS runs, default 3; SEED; PAR,
#                              default 4: associations at once in the parallel rows;
#                              BUILD_DIR, default build/; SETTLE, default 65)
# The read benchmark's corpus (bench/corpus/, 2,000 CT/MR instances of 512x512 16-bit) is sent
# by storescu, the same client for every side, over one association (the whole list on one
# command line) and over PAR associations at once (the list dealt into PAR parts, one storescu
# each). The receivers, each new for every run:
#   mira     `mira serve` on a new archive (SQLite index): every instance is received into
#            memory (its blob written to the archive's tmp folder as it arrives), stored (blob
#            fdatasync, index commit) and only then acknowledged;
#   storescp DCMTK's storescp (--fork for the parallel rows): writes each file, no index, no
#            fsync (the issue's yardstick: what writing files alone costs);
#   Orthanc  Debian's Orthanc (SQLite index, SyncStorageArea: an fsync per file), started as
#            in bench/orthanc.sh.
# Every side gets TCP_NODELAY (DCMTK reads it from the environment, mira sets it itself).
# Each run is checked: the instances the receiver holds afterwards must be N (mira stats,
# files written by storescp, Orthanc's statistics), or the report says so and the script
# exits 1. Outputs are deleted after each round, then SETTLE seconds pass (see run_ingest.sh:
# ext4 without a journal skips recently freed inodes). The report gives the median
# instances/s, the ratios mira/storescp (goal >= 0.9) and mira/Orthanc (goal >= 3) for one and
# PAR associations; it is printed and kept in bench/out/. Timing never fails the script.
#
# SMOKE=1 (the ctest smoke test): three small files of pydicom's test set, one run of each
# side, nothing built (BUILD_DIR must hold mira), everything in a temporary folder.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
SMOKE=${SMOKE:-0}
[ "$SMOKE" != 1 ] || : "${REPS:=1}" "${WARM:=1}" "${PAR:=2}" "${SETTLE:=0}"
SETTLE=${SETTLE:-65}
N=${N:-2000}
REPS=${REPS:-3}
SEED=${SEED:-1}
PAR=${PAR:-4}
WARM=${WARM:-200}
build=${BUILD_DIR:-$root/build}
out_dir=$root/bench/out
orthanc=/usr/sbin/Orthanc

work=$(mktemp -d "${TMPDIR:-/tmp}/mira-store.XXXXXX")
if [ "$SMOKE" = 1 ]; then
    corpus=$work/smoke-corpus
    mkdir -p "$corpus"
    for f in CT_small MR_small rtdose; do
        cp "/usr/lib/python3/dist-packages/pydicom/data/test_files/$f.dcm" "$corpus/"
    done
    ls "$corpus"/*.dcm >"$corpus/files.list"
    echo "3 small files of pydicom's test set (smoke test)" >"$corpus/summary.txt"
    N=3
    WARM=1
    list=$corpus/files.list
else
    bash scripts/install-deps.sh
    bash scripts/venv.sh
    echo "run_store: building ($build)"
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMIRA_BENCH=ON >/dev/null
    cmake --build "$build" --target mira_cli >/dev/null
    source bench/corpus.sh
    bench_corpus "$root/.venv/bin/python" "$N" "$SEED"
    corpus=$bench_corpus_dir
    list=$bench_corpus_list
fi
for prog in "$orthanc" storescu storescp curl; do
    command -v "$prog" >/dev/null || { echo "run_store: $prog is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
bench_name=run_store
source bench/orthanc.sh
receiver_pid=
stop_receiver() {
    [ -n "$receiver_pid" ] || return 0
    kill "$receiver_pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        kill -0 "$receiver_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$receiver_pid" 2>/dev/null || true
    wait "$receiver_pid" 2>/dev/null || true
    receiver_pid=
}
trap 'stop_receiver; stop_orthanc; rm -rf "$work"' EXIT

# Wait until something accepts TCP connections on 127.0.0.1:$1 (in Orthanc's namespace if $2).
wait_port() {
    local port=$1 ns=${2:-} i
    for ((i = 0; i < 300; i++)); do
        if if [ -n "$ns" ]; then in_ns bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null
        else bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; fi; then
            return 0
        fi
        sleep 0.1
    done
    echo "run_store: nothing listens on port $port" >&2
    return 1
}

# Send list $1 to 127.0.0.1:$2 (AE $3) over $4 associations at once; $5 "ns" for Orthanc's
# namespace. Sets secs.
send_list() {
    local l=$1 port=$2 aec=$3 par=$4 ns=${5:-} t0 k
    rm -f "$work"/part.*
    split -n "r/$par" -d "$l" "$work/part."
    local parts=("$work"/part.*) pids=()
    t0=$(date +%s%N)
    for k in "${parts[@]}"; do
        mapfile -t files <"$k"
        if [ -n "$ns" ]; then
            in_ns env TCP_NODELAY=1 storescu -aet MIRABENCH -aec "$aec" 127.0.0.1 "$port" \
                "${files[@]}" >>"$work/storescu.log" 2>&1 &
        else
            TCP_NODELAY=1 storescu -aet MIRABENCH -aec "$aec" 127.0.0.1 "$port" \
                "${files[@]}" >>"$work/storescu.log" 2>&1 &
        fi
        pids+=($!)
    done
    for k in "${pids[@]}"; do wait "$k" || true; done
    secs=$(seconds_since "$t0")
}

# One run of one receiver on a file list over par associations: sets side_rate, side_stored.
run_side() { # side list par
    local side=$1 l=$2 par=$3 n stored=0 port d
    n=$(wc -l <"$l")
    d=$work/$side
    discard "$d"
    mkdir -p "$d"
    sync
    case $side in
    mira)
        "$build/mira" serve --archive "$d/archive" --port 0 --bind 127.0.0.1 --any-called-ae \
            --no-http --quiet >"$d/serve.out" 2>"$d/serve.err" &
        receiver_pid=$!
        for ((i = 0; i < 300; i++)); do
            port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$d/serve.out" 2>/dev/null || true)
            [ -n "$port" ] && break
            kill -0 "$receiver_pid" 2>/dev/null || break
            sleep 0.1
        done
        [ -n "$port" ] || { echo "run_store: mira serve did not start:" >&2; cat "$d/serve.err" >&2; exit 1; }
        send_list "$l" "$port" MIRA "$par"
        stop_receiver
        stored=$("$build/mira" stats --archive "$d/archive" --json |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["instances"])' 2>/dev/null || echo 0)
        ;;
    storescp)
        port=$(free_port)
        mkdir -p "$d/out"
        local fork=()
        [ "$par" -gt 1 ] && fork=(--fork)
        TCP_NODELAY=1 storescp "${fork[@]}" -od "$d/out" "$port" >"$d/storescp.log" 2>&1 &
        receiver_pid=$!
        wait_port "$port"
        send_list "$l" "$port" STORESCP "$par"
        stop_receiver
        stored=$(find "$d/out" -type f | wc -l)
        ;;
    orthanc)
        start_orthanc orthanc-store
        send_list "$l" "$dicom_port" ORTHANC "$par" ns
        stored=$(orthanc_count)
        stop_orthanc
        discard "$work/orthanc-store"
        ;;
    esac
    discard "$d"
    side_stored=${stored:-0}
    side_rate=$(rate "$side_stored" "${secs:-0}")
    echo "$side associations=$par files=$n stored=$side_stored seconds=$secs instances_per_s=$side_rate" >>"$work/runs.log"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "run_store: warming the page cache and each side ($WARM files)"
xargs -a "$list" cat >/dev/null
head -n "$WARM" "$list" >"$work/warm.list"
sides="mira storescp orthanc"
for side in $sides; do run_side "$side" "$work/warm.list" 1; done
: >"$work/runs.log"
settle

declare -A runs bad
set -- $sides
for ((r = 1; r <= REPS; r++)); do
    echo "run_store: run $r of $REPS"
    for par in 1 "$PAR"; do
        for side in "$@"; do
            run_side "$side" "$list" "$par"
            runs[$side.$par]="${runs[$side.$par]:-} $side_rate"
            [ "$side_stored" = "$N" ] || bad[$side.$par]="stored $side_stored of $N in a run"
        done
        settle
    done
    set -- "${@:2}" "$1" # the next round starts with the next side
done

declare -A med
for key in "${!runs[@]}"; do med[$key]=$(tr ' ' '\n' <<<"${runs[$key]}" | grep . | median); done
checked="all runs stored $N instances"
for key in "${!bad[@]}"; do checked="$key: ${bad[$key]}"; done

report=$work/store-report.txt
if [ "$SMOKE" != 1 ]; then
    mkdir -p "$out_dir"
    report=$out_dir/store-$(date +%Y%m%d-%H%M%S).txt
fi
verdict() { awk -v a="$1" -v b="$2" -v g="$3" 'BEGIN{ if (b > 0 && a / b >= g) print "met"; else print "NOT met" }'; }
{
    echo "mira C-STORE benchmark, $(date -u +%Y-%m-%dT%H:%MZ), git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(awk '/^MemTotal:/{printf "%.0f", $2/1048576}' /proc/meminfo) GiB memory; $(df -T "$work" | awk 'NR==2{print $2}') on $(df "$work" | awk 'NR==2{print $1}')"
    echo "load:    $load_before at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end (/proc/loadavg; 2 = both cores busy)"
    echo "corpus:  $(cat "$corpus/summary.txt")"
    echo "peers:   DCMTK storescu/storescp $(dpkg-query -W -f='${Version}' dcmtk 2>/dev/null), Orthanc $(dpkg-query -W -f='${Version}' orthanc 2>/dev/null) (Debian; SQLite index)"
    echo "method:  storescu sends to each receiver, over 1 and $PAR associations at once; median of"
    echo "         $REPS runs after a warm-up of $WARM files per side; page cache warm; every receiver"
    echo "         new for each run; $checked"
    echo "journal: $(journal_state)"
    echo "durable: mira: each instance's blob fdatasync'd and its index row committed (SQLite WAL,"
    echo "         synchronous=FULL) before its C-STORE response; storescp: files written, never"
    echo "         synced, no index; Orthanc: fsync per file, SQLite synchronous=NORMAL"
    echo
    printf '%-34s %14s %14s\n' "instances/s (median)" "1 association" "$PAR associations"
    printf '%-34s %14s %14s\n' "mira serve" "${med[mira.1]}" "${med[mira.$PAR]}"
    printf '%-34s %14s %14s\n' "DCMTK storescp (files only)" "${med[storescp.1]}" "${med[storescp.$PAR]}"
    printf '%-34s %14s %14s\n' "Orthanc" "${med[orthanc.1]}" "${med[orthanc.$PAR]}"
    echo
    printf '%-34s %13sx %13sx\n' "mira / storescp" "$(ratio "${med[mira.1]}" "${med[storescp.1]}")" "$(ratio "${med[mira.$PAR]}" "${med[storescp.$PAR]}")"
    printf '%-34s %13sx %13sx\n' "mira / Orthanc" "$(ratio "${med[mira.1]}" "${med[orthanc.1]}")" "$(ratio "${med[mira.$PAR]}" "${med[orthanc.$PAR]}")"
    echo
    for par in 1 "$PAR"; do
        echo "goal, $par association(s): mira >= 0.9x storescp: $(verdict "${med[mira.$par]}" "${med[storescp.$par]}" 0.9); mira >= 3x Orthanc: $(verdict "${med[mira.$par]}" "${med[orthanc.$par]}" 3)"
    done
    echo
    echo "runs (instances/s):"
    for key in $(printf '%s\n' "${!runs[@]}" | sort); do echo "  $key:${runs[$key]}"; done
} | tee "$report"
if [ "$SMOKE" != 1 ]; then
    cp "$work/runs.log" "${report%.txt}.runs.log"
    echo "run_store: report in ${report#"$root"/}"
fi
[ "$checked" = "all runs stored $N instances" ]
