#!/usr/bin/env bash
# Read benchmark: mira, DCMTK and pydicom reading one generated CT/MR corpus, side by side.
#
# usage: bench/run_read.sh            (env: N files, default 2000; REPS runs, default 3;
#                                       SEED; BUILD_DIR, default build/)
# Builds with MIRA_BENCH=ON, makes bench/corpus/ (kept while N, SEED and make_corpus.py stay
# the same), then for header-only and full reads runs every side once to warm the page cache
# and its own start, then REPS times in turn (mira, DCMTK, dcmdump, pydicom, again...), and
# reports the median files/s of each, the ratios, and the peak RSS of header-only passes over
# N/4, N/2 and N files. A last row, the ceiling, reads each file whole and sums its bytes
# without parsing: no full read can beat it on this machine. The report is printed and kept in bench/out/. Timing never fails the
# script: the goals are stated as met or not.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
N=${N:-2000}
REPS=${REPS:-3}
SEED=${SEED:-1}
build=${BUILD_DIR:-$root/build}
corpus=$root/bench/corpus
out_dir=$root/bench/out

bash scripts/install-deps.sh
bash scripts/venv.sh
py=$root/.venv/bin/python

echo "run_read: building ($build, MIRA_BENCH=ON)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMIRA_BENCH=ON >/dev/null
cmake --build "$build" --target mira_read dcmtk_read raw_read >/dev/null

# shared with the ingest benchmark: made once per N, SEED and generator
source bench/corpus.sh
bench_corpus "$py" "$N" "$SEED"
list=$bench_corpus_list

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -n $((N / 4)) "$list" >"$work/quarter.list"
head -n $((N / 2)) "$list" >"$work/half.list"

# One pass of one side: prints files/s (and keeps its line in the log).
pass() { # side mode list
    local side=$1 mode=$2 l=$3 line
    case $side in
    mira) line=$("$build/bench/mira_read" "$mode" "$l") ;;
    mapped) [ "$mode" = full ] || { echo "-"; return; }; line=$("$build/bench/mira_read" mapped "$l") ;;
    dcmtk) line=$("$build/bench/dcmtk_read" "$mode" "$l") ;;
    pydicom) line=$("$py" bench/pydicom_read.py "$mode" "$l") ;;
    raw) [ "$mode" = full ] || { echo "-"; return; }; line=$("$build/bench/raw_read" full "$l") ;;
    dcmdump)
        # dcmdump as a peer, its output discarded: -M leaves long values (pixel data) unread.
        local flag=+M t0 t1 n
        [ "$mode" = header ] && flag=-M
        n=$(wc -l <"$l")
        t0=$(date +%s%N)
        xargs -a "$l" dcmdump -q "$flag" >/dev/null
        t1=$(date +%s%N)
        line="dcmdump $mode files=$n seconds=$(awk -v d=$((t1 - t0)) 'BEGIN{printf "%.6f", d/1e9}') files_per_s=$(awk -v n="$n" -v d=$((t1 - t0)) 'BEGIN{printf "%.1f", n/(d/1e9)}')"
        ;;
    esac
    echo "$line" >>"$work/runs.log"
    sed -n 's/.*files_per_s=\([0-9.]*\).*/\1/p' <<<"$line"
}

median() { sort -g | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
rss() { sed -n 's/.*peak_rss_kb=\([0-9]*\).*/\1/p' <<<"$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.1f", a/b; else print "n/a" }'; }

sides="mira mapped dcmtk dcmdump pydicom raw"
declare -A rate
for mode in header full; do
    echo "run_read: $mode pass: warm-up, then $REPS runs of each side"
    for side in $sides; do pass "$side" "$mode" "$list" >/dev/null; done
    for side in $sides; do : >"$work/$side.$mode"; done
    for ((r = 1; r <= REPS; r++)); do
        for side in $sides; do pass "$side" "$mode" "$list" >>"$work/$side.$mode"; done
    done
    for side in $sides; do
        if grep -q '^-$' "$work/$side.$mode"; then rate[$side.$mode]=-; else rate[$side.$mode]=$(median <"$work/$side.$mode"); fi
    done
done

echo "run_read: peak RSS of header-only passes over N/4, N/2, N files"
declare -A mem
for side in mira dcmtk pydicom; do
    for part in quarter half all; do
        l=$list
        [ "$part" = all ] || l=$work/$part.list
        case $side in
        mira) line=$("$build/bench/mira_read" header "$l") ;;
        dcmtk) line=$("$build/bench/dcmtk_read" header "$l") ;;
        pydicom) line=$("$py" bench/pydicom_read.py header "$l") ;;
        esac
        mem[$side.$part]=$(rss "$line")
    done
done

# The faster DCMTK peer counts (the goal names whichever is faster).
best_dcmtk() {
    awk -v a="${rate[dcmtk.$1]}" -v b="${rate[dcmdump.$1]}" 'BEGIN{print (a >= b) ? a : b}'
}
dh=$(best_dcmtk header)
df=$(best_dcmtk full)
verdict() { awk -v r="$1" -v g="$2" 'BEGIN{print (r >= g) ? "met" : "NOT met"}'; }
flat=$(awk -v q="${mem[mira.quarter]}" -v a="${mem[mira.all]}" \
    'BEGIN{print (a <= q * 1.10 + 1024) ? "met" : "NOT met"}')

mkdir -p "$out_dir"
report=$out_dir/read-$(date +%Y%m%d-%H%M%S).txt
{
    echo "mira read benchmark, $(date -u +%Y-%m-%dT%H:%MZ), git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(awk '/^MemTotal:/{printf "%.0f", $2/1048576}' /proc/meminfo) GiB memory"
    echo "corpus:  $(cat "$corpus/summary.txt")"
    echo "peers:   DCMTK $(dpkg-query -W -f='${Version}' libdcmtk-dev 2>/dev/null), pydicom $("$py" -c 'import pydicom; print(pydicom.__version__)')"
    echo "method:  median of $REPS runs after a warm-up run; page cache warm"
    echo
    printf '%-26s %16s %16s\n' "files/s" "header-only" "full"
    printf '%-26s %16s %16s\n' "mira (libmira)" "${rate[mira.header]}" "${rate[mira.full]}"
    printf '%-26s %16s %16s\n' "mira, zero-copy (mapped)" "${rate[mapped.header]}" "${rate[mapped.full]}"
    printf '%-26s %16s %16s\n' "DCMTK (libdcmtk program)" "${rate[dcmtk.header]}" "${rate[dcmtk.full]}"
    printf '%-26s %16s %16s\n' "DCMTK (dcmdump >/dev/null)" "${rate[dcmdump.header]}" "${rate[dcmdump.full]}"
    printf '%-26s %16s %16s\n' "pydicom dcmread" "${rate[pydicom.header]}" "${rate[pydicom.full]}"
    printf '%-26s %16s %16s\n' "ceiling (read+sum only)" "${rate[raw.header]}" "${rate[raw.full]}"
    echo
    printf '%-26s %16s %16s\n' "ratio" "header-only" "full"
    printf '%-26s %15sx %15sx\n' "mira / pydicom" "$(ratio "${rate[mira.header]}" "${rate[pydicom.header]}")" \
        "$(ratio "${rate[mira.full]}" "${rate[pydicom.full]}")"
    printf '%-26s %15sx %15sx\n' "mira / DCMTK (faster)" "$(ratio "${rate[mira.header]}" "$dh")" \
        "$(ratio "${rate[mira.full]}" "$df")"
    printf '%-26s %16s %15sx\n' "zero-copy / pydicom" "" "$(ratio "${rate[mapped.full]}" "${rate[pydicom.full]}")"
    printf '%-26s %16s %15sx\n' "zero-copy / DCMTK" "" "$(ratio "${rate[mapped.full]}" "$df")"
    echo
    printf '%-26s %10s %10s %10s\n' "peak RSS KiB, header-only" "mira" "DCMTK" "pydicom"
    for part in quarter half all; do
        case $part in quarter) n=$((N / 4)) ;; half) n=$((N / 2)) ;; all) n=$N ;; esac
        printf '%-26s %10s %10s %10s\n' "$n files" "${mem[mira.$part]}" "${mem[dcmtk.$part]}" "${mem[pydicom.$part]}"
    done
    echo
    echo "goal mira/pydicom >= 10x:  header $(verdict "$(ratio "${rate[mira.header]}" "${rate[pydicom.header]}")" 10), full $(verdict "$(ratio "${rate[mira.full]}" "${rate[pydicom.full]}")" 10)"
    echo "goal mira/DCMTK >= 2x:     header $(verdict "$(ratio "${rate[mira.header]}" "$dh")" 2), full $(verdict "$(ratio "${rate[mira.full]}" "$df")" 2)"
    echo "goal flat header-only RSS: $flat (N files within 10% + 1 MiB of N/4 files)"
    echo "zero-copy full read:       vs pydicom $(verdict "$(ratio "${rate[mapped.full]}" "${rate[pydicom.full]}")" 10), vs DCMTK $(verdict "$(ratio "${rate[mapped.full]}" "$df")" 2)"
    echo "a full read that consumes every byte can be no faster than the ceiling: each file's bytes read once, parsing nothing"
} | tee "$report"
cp "$work/runs.log" "${report%.txt}.runs.log"
echo "run_read: report in ${report#"$root"/}"
