#!/usr/bin/env bash
# Decode benchmark: mira, GDCM and DCMTK decoding the same files, transfer syntax by syntax.
#
# usage: bench/run_decode.sh          (env: REPS runs, default 3; MODE file|decode, default
#                                      file; BUILD_DIR, default build/)
# Builds with MIRA_BENCH=ON, makes bench/corpus-decode/ (kept while make_decode_corpus.py and
# the encoders' versions stay the same), then for each set of files (one transfer syntax, one
# kind of image) runs every side once to warm the page cache and its own start, then REPS
# times in turn (mira, GDCM, DCMTK, again...), and reports the median MB/s of decoded pixels
# (10^6 bytes) of each side, the ratio of mira to the faster peer, and whether the lossless
# decodings agree (a checksum of the decoded values against the uncompressed source). A second
# table decodes the JPEG 2000 single frames on every core (mira --threads 0, GDCM as it comes),
# a third one multi-frame image with mira on 1 and 2 threads next to the peers. A side
# with no decoder for a syntax shows "-". The report is printed and kept in bench/out/.
# Timing never fails the script: parity is stated as met or not. It exits non-zero only if
# mira failed to decode a file.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
REPS=${REPS:-3}
MODE=${MODE:-file}
build=${BUILD_DIR:-$root/build}
corpus=$root/bench/corpus-decode
out_dir=$root/bench/out
case $MODE in file | decode) ;; *) echo "run_decode: MODE is file or decode" >&2; exit 2 ;; esac

bash scripts/install-deps.sh
bash scripts/venv.sh
py=$root/.venv/bin/python

echo "run_decode: building ($build, MIRA_BENCH=ON)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMIRA_BENCH=ON >/dev/null
cmake --build "$build" --target mira_decode gdcm_decode dcmtk_decode >/dev/null

version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo '?'; }
stamp="$(sha256sum bench/make_decode_corpus.py | cut -d' ' -f1) dcmtk $(version dcmtk) gdcm $(version libgdcm-tools) pydicom $("$py" -c 'import pydicom; print(pydicom.__version__)')"
if [ "$(cat "$corpus/.stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "run_decode: making the corpus (bench/make_decode_corpus.py, about 30 s)"
    "$py" bench/make_decode_corpus.py --out "$corpus"
    echo "$stamp" >"$corpus/.stamp"
fi

# One CPU for the single-frame comparison (the last one), if taskset is there.
pin_one=()
if command -v taskset >/dev/null && [ "$(nproc)" -gt 1 ]; then
    pin_one=(taskset -c "$(($(nproc) - 1))")
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mira_failed=0

# One pass of one side over one set: prints MB/s, "-" (no decoder) or "err"; keeps its line.
pass() { # side set
    local side=$1 set=$2 l=$corpus/$2.list line rc=0 v
    # Single-frame sets compare one core each: every side is pinned to one CPU, so that a
    # peer's threads inside a frame (GDCM's JPEG 2000 decoder runs OpenJPEG on every core)
    # do not count; gdcmall is GDCM as it comes, unpinned, and miraall mira on every core
    # (OpenJPEG's threads inside the frame). Multi-frame sets run unpinned.
    local pin=()
    case $side in gdcmall | miraall) ;; *) [ "${kind[$set]}" = mf ] || pin=("${pin_one[@]}") ;; esac
    case $side in
    mira) line=$("${pin[@]}" "$build/bench/mira_decode" --threads 1 "$MODE" "$l" 2>"$work/err") || rc=$? ;;
    mira2) line=$("$build/bench/mira_decode" --threads 2 "$MODE" "$l" 2>"$work/err") || rc=$? ;;
    miraall) line=$("$build/bench/mira_decode" --threads 0 "$MODE" "$l" 2>"$work/err") || rc=$? ;;
    gdcm | gdcmall) line=$("${pin[@]}" "$build/bench/gdcm_decode" "$MODE" "$l" 2>"$work/err") || rc=$? ;;
    dcmtk) line=$("${pin[@]}" "$build/bench/dcmtk_decode" "$MODE" "$l" 2>"$work/err") || rc=$? ;;
    esac
    echo "$set $side rc=$rc $line" >>"$work/runs.log"
    # Libraries print warnings of their own (GDCM about attributes an image module lacks):
    # kept in the log; only the stderr of a failed run goes into the report.
    sed "s/^/$set $side stderr: /" "$work/err" >>"$work/runs.log"
    if [ "$rc" -ne 0 ]; then
        sed "s/^/$set $side: /" "$work/err" >>"$work/stderr.log"
        case $side in mira*) mira_failed=1 ;; esac
        echo err
        return
    fi
    v=$(sed -n 's/.* mb_per_s=\([^ ]*\).*/\1/p' <<<"$line")
    echo "${v:--}"
    sed -n 's/.* checksum=\([0-9]*\).*/\1/p' <<<"$line" >"$work/$set.$side.sum"
    # CPU time over wall time: 1.0 is one busy thread.
    awk -v l="$line" 'BEGIN{ if (match(l, /seconds=[0-9.]+/)) { s = substr(l, RSTART + 8, RLENGTH - 8) }
        if (match(l, /cpu_s=[0-9.]+/)) { c = substr(l, RSTART + 6, RLENGTH - 6) }
        if (s > 0) printf "%.2f\n", c / s }' >>"$work/$side.${kind[$set]}.cpu"
}

median() { sort -g | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a != "-" && b > 0) printf "%.2f", a/b; else print "n/a" }'; }
faster() { # the faster of two rates, either may be "-"
    awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "-" || a == "err") a = -1; if (b == "-" || b == "err") b = -1
        m = (a >= b) ? a : b; if (m < 0) print "-"; else print m }'
}

declare -A rate
run_set() { # set sides...
    local set=$1 side r
    shift
    for side in "$@"; do pass "$side" "$set" >/dev/null; done
    for side in "$@"; do : >"$work/$set.$side.rates"; done
    for ((r = 1; r <= REPS; r++)); do
        for side in "$@"; do pass "$side" "$set" >>"$work/$set.$side.rates"; done
    done
    for side in "$@"; do
        if grep -q '^err$' "$work/$set.$side.rates"; then
            rate[$set.$side]=err
        elif grep -q '^-$' "$work/$set.$side.rates"; then
            rate[$set.$side]=-
        else
            rate[$set.$side]=$(median <"$work/$set.$side.rates")
        fi
    done
}

mapfile -t sets < <(cut -f1 "$corpus/sets.tsv")
declare -A ts_uid ts_name kind encoder lossless nfiles decoded stored
while IFS=$'\t' read -r s uid short k enc ll n dec st; do
    ts_uid[$s]=$uid ts_name[$s]=$short kind[$s]=$k encoder[$s]=$enc lossless[$s]=$ll
    nfiles[$s]=$n decoded[$s]=$dec stored[$s]=$st
done <"$corpus/sets.tsv"
is_j2k() { case ${ts_uid[$1]} in 1.2.840.10008.1.2.4.9? | 1.2.840.10008.1.2.4.20?) return 0 ;; esac; return 1; }

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A load_at
for s in "${sets[@]}"; do
    load_at[$s]=$(cut -d' ' -f1 /proc/loadavg)
    echo "run_decode: $s: warm-up, then $REPS runs of each side"
    if [ "${kind[$s]}" = mf ]; then
        run_set "$s" mira mira2 gdcm dcmtk
    elif is_j2k "$s"; then
        run_set "$s" mira gdcm dcmtk miraall gdcmall
    else
        run_set "$s" mira gdcm dcmtk
    fi
done

# Do the lossless decodings give the source's values? Each side's checksum against mira's of
# the uncompressed source set of the same kind (which all three sides agree on, first row).
values() { # set sides...
    local s=$1 src side ref bad=""
    shift
    case ${kind[$s]} in ct) src=explicit-ct ;; us) src=explicit-us ;; mf) src=mf-explicit ;; esac
    ref=$(cat "$work/$src.mira.sum" 2>/dev/null || echo none)
    for side in "$@"; do
        [ -s "$work/$s.$side.sum" ] || continue
        [ "$(cat "$work/$s.$side.sum")" = "$ref" ] || bad="$bad $side"
    done
    if [ "${lossless[$s]}" != 1 ]; then
        echo "lossy"
    elif [ -z "$bad" ]; then
        echo "same"
    else
        echo "DIFFER:${bad}"
    fi
}

kind_label() {
    case $1 in ct) echo "CT 16-bit" ;; us) echo "US RGB 8-bit" ;; mf) echo "multi-frame" ;; esac
}

mkdir -p "$out_dir"
report=$out_dir/decode-$(date +%Y%m%d-%H%M%S).txt
met=0 total=0
{
    echo "mira decode benchmark, $(date -u +%Y-%m-%dT%H:%MZ), git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    dirty=$(git status --porcelain -- src include 2>/dev/null | awk '{print $2}' | tr '\n' ' ')
    [ -z "$dirty" ] || echo "tree:    NOT the commit: uncommitted files in src/ include/ were built: $dirty"
    echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(awk '/^MemTotal:/{printf "%.0f", $2/1048576}' /proc/meminfo) GiB memory"
    echo "corpus:  $(cat "$corpus/summary.txt")"
    echo "peers:   GDCM $(version libgdcm-dev), DCMTK $(version libdcmtk-dev) (Debian); mira's libraries:" \
        "libjpeg-turbo $(version libjpeg62-turbo), CharLS $(version libcharls2), OpenJPEG $(version libopenjp2-7)"
    echo "load:    $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end (/proc/loadavg; $(nproc) = every core busy)"
    echo "         1-minute load as each set began: $(for s in "${sets[@]}"; do printf '%s=%s ' "$s" "${load_at[$s]}"; done)" | fold -s -w 100 | sed '2,$s/^/           /'
    echo "method:  mode $MODE (file: read + decode every frame; decode: decode only); median of $REPS runs after a warm-up run; page cache warm"
    if [ ${#pin_one[@]} -gt 0 ]; then
        echo "         single-frame rows: every side pinned to one CPU (${pin_one[*]}), mira on 1 thread"
    else
        echo "         single-frame rows: not pinned (no taskset), mira on 1 thread"
    fi
    echo
    printf '%-22s %-13s %9s %9s %9s %11s  %-7s %s\n' "MB/s decoded" "image" "mira" "GDCM" "DCMTK" "mira/peer" "parity" "values"
    for s in "${sets[@]}"; do
        [ "${kind[$s]}" = mf ] && continue
        best=$(faster "${rate[$s.gdcm]}" "${rate[$s.dcmtk]}")
        r=$(ratio "${rate[$s.mira]}" "$best")
        if [ "$r" = n/a ]; then v=n/a; else
            v=$(awk -v r="$r" 'BEGIN{print (r >= 1.0) ? "met" : "NOT met"}')
            total=$((total + 1))
            [ "$v" = met ] && met=$((met + 1))
        fi
        printf '%-22s %-13s %9s %9s %9s %10sx  %-7s %s\n' "${ts_name[$s]}" "$(kind_label "${kind[$s]}")" \
            "${rate[$s.mira]}" "${rate[$s.gdcm]}" "${rate[$s.dcmtk]}" "$r" "$v" "$(values "$s" mira gdcm dcmtk)"
    done
    echo
    frames=$(sed -n 's/.*multi-frame 512x512 16-bit x \([0-9]*\).*/\1/p' "$corpus/summary.txt")
    echo "JPEG 2000 single frames on every core, not pinned: mira with --threads 0 ($(nproc) OpenJPEG threads inside each frame); GDCM as it comes (4 OpenJPEG threads a frame)"
    printf '%-22s %-13s %9s %9s %11s  %s\n' "MB/s decoded" "image" "mira" "GDCM" "mira/GDCM" "values"
    for s in "${sets[@]}"; do
        [ "${kind[$s]}" != mf ] && is_j2k "$s" || continue
        # lossless: the source's values; lossy: what mira decodes on one thread
        if [ "${lossless[$s]}" = 1 ]; then
            same=$(values "$s" miraall gdcmall)
        elif [ "$(cat "$work/$s.miraall.sum" 2>/dev/null)" = "$(cat "$work/$s.mira.sum" 2>/dev/null)" ]; then
            same="lossy, mira same as on 1 thread"
        else
            same="lossy, mira DIFFERS from 1 thread"
        fi
        printf '%-22s %-13s %9s %9s %10sx  %s\n' "${ts_name[$s]}" "$(kind_label "${kind[$s]}")" \
            "${rate[$s.miraall]}" "${rate[$s.gdcmall]}" "$(ratio "${rate[$s.miraall]}" "${rate[$s.gdcmall]}")" "$same"
    done
    echo
    echo "multi-frame, one file of ${frames:-?} frames 512x512 16-bit (12 stored), MB/s; not pinned; DCMTK decodes on one thread, GDCM too except JPEG 2000 (OpenJPEG's threads)"
    printf '%-22s %9s %9s %8s %9s %9s %11s  %s\n' "" "mira 1T" "mira 2T" "speedup" "GDCM" "DCMTK" "mira 2T/peer" "values"
    for s in "${sets[@]}"; do
        [ "${kind[$s]}" = mf ] || continue
        best=$(faster "${rate[$s.gdcm]}" "${rate[$s.dcmtk]}")
        printf '%-22s %9s %9s %7sx %9s %9s %10sx  %s\n' "${ts_name[$s]}" "${rate[$s.mira]}" "${rate[$s.mira2]}" \
            "$(ratio "${rate[$s.mira2]}" "${rate[$s.mira]}")" "${rate[$s.gdcm]}" "${rate[$s.dcmtk]}" \
            "$(ratio "${rate[$s.mira2]}" "$best")" "$(values "$s" mira mira2 gdcm dcmtk)"
    done
    echo
    echo "parity (mira >= the faster peer, 1 thread): $met of $total syntax/image rows that a peer decodes"
    maxcpu() { # side kinds...
        local side=$1
        shift
        for k in "$@"; do cat "$work/$side.$k.cpu" 2>/dev/null; done | sort -g | tail -1
    }
    echo "CPU time / wall time, at most (1.00 = one thread busy): single-frame rows: mira $(maxcpu mira ct us)," \
        "GDCM $(maxcpu gdcm ct us), DCMTK $(maxcpu dcmtk ct us); unpinned J2K: mira $(maxcpu miraall ct us), GDCM $(maxcpu gdcmall ct us);" \
        "multi-frame: mira 2 threads $(maxcpu mira2 mf), GDCM $(maxcpu gdcm mf), DCMTK $(maxcpu dcmtk mf)"
    echo
    echo "sets (files, MB decoded, compression ratio, encoder):"
    for s in "${sets[@]}"; do
        printf '  %-18s %3s files %7.1f MB %5.1f:1  %s\n' "$s" "${nfiles[$s]}" \
            "$(awk -v d="${decoded[$s]}" 'BEGIN{print d/1e6}')" \
            "$(awk -v d="${decoded[$s]}" -v t="${stored[$s]}" 'BEGIN{print d/t}')" "${encoder[$s]}"
    done
    notes=$(grep -o 'note="[^"]*"' "$work/runs.log" | sort -u | sed 's/^/  /' || true)
    [ -z "$notes" ] || { echo; echo "no decoder:"; echo "$notes"; }
    if [ -s "$work/stderr.log" ]; then
        echo
        echo "failed runs (first lines of their stderr):"
        sort -u "$work/stderr.log" | head -10 | sed 's/^/  /'
    fi
} | tee "$report"
cp "$work/runs.log" "${report%.txt}.runs.log"
echo "run_decode: report in ${report#"$root"/}"
exit "$mira_failed"
