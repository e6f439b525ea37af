#!/usr/bin/env bash
# Ingest benchmark: mira import vs Orthanc (REST API and storescu) on one generated CT/MR corpus.
#
# usage: bench/run_ingest.sh          (env: N files, default 2000; REPS runs, default 3; SEED;
#                                      PAR, default 8: Orthanc's REST clients and mira's
#                                      --threads; BUILD_DIR, default build/)
# Makes (or reuses) the read benchmark's corpus in bench/corpus/, reads it once so the page
# cache is warm, and runs each side once on 200 files to warm it up. Then REPS times, in turn:
#   mira     `mira import --archive DIR --threads PAR` into a new archive (SQLite index);
#            also with the default --threads;
#   REST     a new Orthanc (Debian's package, its SQLite index; a private config with its own
#            folders, no plugins, no authentication) and bench/orthanc_upload.py posting every
#            file to /instances from PAR clients;
#   storescu a new Orthanc and DCMTK's storescu sending the corpus folder (+sd) over one
#            association.
# Each run starts cold (a new archive, a new Orthanc) after a sync, and is checked: the
# instances stored must be N, or the report says so and the script exits 1. What a run stored
# is deleted only after each round of every side, then the script waits SETTLE seconds
# (default 65) before the next round: ext4 without a journal (as here: see the report's
# journal line) passes over inodes freed in the last 60 s each time it allocates one, so a side
# that ran right after 2,000 files were deleted paid for it in CPU, and the faster side lost
# the most by it (a plain write-and-fdatasync loop: 4x the CPU time, 30 % fewer files/s).
# The report gives the median instances/s of each side and the ratio of mira to the faster
# Orthanc side; it is printed and kept in bench/out/. Timing never fails the script: the goal
# is stated as met or not.
#
# SMOKE=1 (the ctest smoke test): three small files of pydicom's test set, one run of each
# side, nothing installed or built (BUILD_DIR must hold mira), everything in a temporary
# folder.
#
# Orthanc 1.10 has no setting for the address it listens on: it binds its HTTP and DICOM
# ports on every interface. Run as root, it runs in a network namespace of its own whose only
# interface is loopback (and its clients join it), so nothing outside this machine's 127.0.0.1
# can reach it and no port of the host is taken (a Debian orthanc service on 8042/4242 is not
# in the way). Otherwise it runs in the host's namespace on free ports with RemoteAccessAllowed
# false (HTTP from 127.0.0.1 only), and the report says so.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
SMOKE=${SMOKE:-0}
[ "$SMOKE" != 1 ] || : "${REPS:=1}" "${WARM:=1}" "${PAR:=2}" "${SETTLE:=0}"
SETTLE=${SETTLE:-65}
N=${N:-2000}
REPS=${REPS:-3}
SEED=${SEED:-1}
PAR=${PAR:-8}
WARM=${WARM:-200}
build=${BUILD_DIR:-$root/build}
out_dir=$root/bench/out
orthanc=/usr/sbin/Orthanc

work=$(mktemp -d "${TMPDIR:-/tmp}/mira-ingest.XXXXXX")
if [ "$SMOKE" = 1 ]; then
    py=python3 # orthanc_upload.py needs the standard library only
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
    py=$root/.venv/bin/python
    echo "run_ingest: building ($build, MIRA_BENCH=ON)"
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMIRA_BENCH=ON >/dev/null
    cmake --build "$build" --target mira_cli >/dev/null
    source bench/corpus.sh
    bench_corpus "$py" "$N" "$SEED"
    corpus=$bench_corpus_dir
    list=$bench_corpus_list
fi
for prog in "$orthanc" storescu curl; do
    command -v "$prog" >/dev/null || { echo "run_ingest: $prog is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
bench_name=run_ingest
source bench/orthanc.sh
trap 'stop_orthanc; rm -rf "$work"' EXIT

# One run of one side on a file list: sets side_rate (instances/s) and side_stored, logs a line.
# (In this shell, not a subshell, so that the EXIT trap knows of the Orthanc it starts.)
run_side() { # side list
    local side=$1 l=$2 n t0 secs stored line d
    n=$(wc -l <"$l")
    sync
    case $side in
    mira | mira-default)
        local arch=$work/mira-archive threads=(--threads "$PAR")
        [ "$side" = mira-default ] && threads=()
        discard "$arch"
        mapfile -t files <"$l"
        t0=$(date +%s%N)
        "$build/mira" import --archive "$arch" --no-progress "${threads[@]}" --json "${files[@]}" \
            >"$work/mira.jsonl" 2>"$work/mira.err" || true
        secs=$(seconds_since "$t0")
        stored=$(tail -n 1 "$work/mira.jsonl" | sed -n 's/.*"stored":\([0-9]*\).*/\1/p')
        discard "$arch"
        ;;
    rest)
        start_orthanc orthanc-rest
        line=$(in_ns "$py" bench/orthanc_upload.py --port "$http_port" --clients "$PAR" "$l" \
            2>>"$work/rest.err" || true)
        secs=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$line")
        stored=$(orthanc_count)
        stop_orthanc
        discard "$work/orthanc-rest"
        ;;
    storescu)
        start_orthanc orthanc-scu
        local args=(+sd +sp '*.dcm' "$corpus")
        if [ "$n" != "$N" ]; then mapfile -t args <"$l"; fi # the warm-up's subset
        t0=$(date +%s%N)
        in_ns env TCP_NODELAY=1 storescu -aet MIRABENCH -aec ORTHANC 127.0.0.1 "$dicom_port" \
            "${args[@]}" >>"$work/storescu.log" 2>&1 || true
        secs=$(seconds_since "$t0")
        stored=$(orthanc_count)
        stop_orthanc
        discard "$work/orthanc-scu"
        ;;
    esac
    side_stored=${stored:-0}
    side_rate=$(rate "$side_stored" "${secs:-0}")
    echo "$side files=$n stored=$side_stored seconds=$secs instances_per_s=$side_rate" >>"$work/runs.log"
}


load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "run_ingest: warming the page cache and each side ($WARM files)"
xargs -a "$list" cat >/dev/null
head -n "$WARM" "$list" >"$work/warm.list"
sides="mira mira-default rest storescu"
for side in $sides; do run_side "$side" "$work/warm.list"; done
: >"$work/runs.log"
settle

declare -A runs bad
set -- $sides
for ((r = 1; r <= REPS; r++)); do
    echo "run_ingest: run $r of $REPS"
    for side in "$@"; do
        run_side "$side" "$list"
        runs[$side]="${runs[$side]:-} $side_rate"
        [ "$side_stored" = "$N" ] || bad[$side]="stored $side_stored of $N in a run"
    done
    set -- "${@:2}" "$1" # the next run starts with the next side
    settle
done

declare -A med
for side in $sides; do med[$side]=$(tr ' ' '\n' <<<"${runs[$side]}" | grep . | median); done
best=$(awk -v a="${med[rest]}" -v b="${med[storescu]}" 'BEGIN{print (a >= b) ? a : b}')
best_name=REST
awk -v a="${med[rest]}" -v b="${med[storescu]}" 'BEGIN{exit !(b > a)}' && best_name=storescu
r=$(ratio "${med[mira]}" "$best")
verdict=$(awk -v r="$r" 'BEGIN{print (r >= 3) ? "met" : "NOT met"}')
checked="all runs stored $N instances"
for side in $sides; do [ -z "${bad[$side]:-}" ] || checked="$side: ${bad[$side]}"; done

report=$work/ingest-report.txt
if [ "$SMOKE" != 1 ]; then
    mkdir -p "$out_dir"
    report=$out_dir/ingest-$(date +%Y%m%d-%H%M%S).txt
fi
default_threads=$(($(nproc) * 8 < 32 ? 32 : ($(nproc) * 8 > 64 ? 64 : $(nproc) * 8)))
{
    echo "mira ingest benchmark, $(date -u +%Y-%m-%dT%H:%MZ), git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(awk '/^MemTotal:/{printf "%.0f", $2/1048576}' /proc/meminfo) GiB memory; $(df -T "$work" | awk 'NR==2{print $2}') on $(df "$work" | awk 'NR==2{print $1}')"
    echo "load:    $load_before (load average before the runs, /proc/loadavg; other work on the machine slows every side)"
    echo "corpus:  $(cat "$corpus/summary.txt")"
    echo "peers:   Orthanc $(dpkg-query -W -f='${Version}' orthanc 2>/dev/null) (Debian; SQLite index), DCMTK storescu $(dpkg-query -W -f='${Version}' dcmtk 2>/dev/null)"
    echo "method:  median of $REPS runs after a warm-up of $WARM files per side; page cache warm;"
    echo "         every run cold (new archive, new Orthanc) after a sync; $checked;"
    echo "         outputs deleted after each round, then ${SETTLE} s before the next"
    echo "journal: $(journal_state)"
    if $netns; then
        echo "network: Orthanc in a private network namespace (loopback only)"
    else
        echo "network: Orthanc in the host namespace (not root): its DICOM port listens on every interface"
    fi
    echo "durable: mira: fdatasync per blob, fsync of its tmp folder and a SQLite commit"
    echo "         (WAL, synchronous=FULL) per group of stores, before any store returns;"
    echo "         Orthanc: fsync per stored file (SyncStorageArea), SQLite WAL synchronous=NORMAL"
    echo "         (its commits are not synced: a power loss can lose the last index rows)"
    echo
    printf '%-40s %12s   %s\n' "instances/s" "median" "runs"
    printf '%-40s %12s  %s\n' "mira import --threads $PAR" "${med[mira]}" "${runs[mira]}"
    printf '%-40s %12s  %s\n' "mira import (default: $default_threads threads)" "${med[mira-default]}" "${runs[mira-default]}"
    printf '%-40s %12s  %s\n' "Orthanc REST, $PAR clients" "${med[rest]}" "${runs[rest]}"
    printf '%-40s %12s  %s\n' "Orthanc storescu, one association" "${med[storescu]}" "${runs[storescu]}"
    echo
    printf '%-40s %11sx\n' "mira / Orthanc REST" "$(ratio "${med[mira]}" "${med[rest]}")"
    printf '%-40s %11sx\n' "mira / Orthanc storescu" "$(ratio "${med[mira]}" "${med[storescu]}")"
    printf '%-40s %11sx\n' "mira (default threads) / Orthanc faster" "$(ratio "${med[mira-default]}" "$best")"
    echo
    echo "goal mira >= 3x Orthanc (the faster side, $best_name): $verdict (${r}x)"
} | tee "$report"
if [ "$SMOKE" != 1 ]; then
    cp "$work/runs.log" "${report%.txt}.runs.log"
    echo "run_ingest: report in ${report#"$root"/}"
fi
[ "$checked" = "all runs stored $N instances" ]
