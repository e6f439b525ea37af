#!/usr/bin/env bash
# Runs mira's whole test suite: C tests, Python peer tests, the same under ASan+UBSan, and fuzzing.
#
# usage: scripts/test.sh [--quick] [--no-fuzz]
#   --quick    build/ only: skip the sanitizer tree, fuzzing and the slow tests (for developers)
#   --no-fuzz  skip the libFuzzer runs (the sanitizer tree, with its corpus replays, still runs)
# env: MIRA_FUZZ_SECONDS  time per fuzz target (default 20)
#      MIRA_ASAN_PYTEST   extra pytest arguments for the sanitizer run, e.g. "-m asan" for a subset
#
# A throwaway PostgreSQL server (Debian's postgresql package) runs for the whole suite, so the
# archive tests cover both index backends: it listens on a Unix socket in its own folder under
# /tmp only, trusts local connections, keeps PostgreSQL's durable defaults (fsync and
# synchronous commits on) and is stopped and removed at exit; pytest finds it through
# MIRA_TEST_POSTGRES. As root its programs run as the postgres user (PostgreSQL refuses root),
# as anyone else as that user. If it cannot start, that is a failed step and the archive
# tests run on SQLite only. Tests marked slow (pytest -m slow) run in the build/ pass only, and
# so do the PostgreSQL variants of modules other than the archive's and HL7's
# (MIRA_TEST_POSTGRES_MODULES, tests/python/conftest.py).
#
# Installs missing Debian packages, sets up .venv from tests/requirements.txt and the npm
# packages of each tests/*/package-lock.json (scripts/npm.sh), builds build/
# (RelWithDebInfo), build-asan/ (MIRA_SANITIZE=ON) and build-fuzz/ (clang, MIRA_FUZZ=ON), then
# runs: ctest in build/ and build-asan/; pytest tests/python against each tree's binaries; each
# fuzz target for a bounded time from its seeds; the checked-in corpora and seeds through the
# sanitizer tree's *_replay programs. Ends with the line "N passed, N failed" (ctest and pytest
# test counts, one per fuzz target and replay) and exits non-zero if anything failed. Nothing
# here fails on timing: fuzzing stops on a time budget, and only crashes count.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1

quick=0
fuzz=1
for arg in "$@"; do
    case $arg in
    --quick) quick=1 ;;
    --no-fuzz) fuzz=0 ;;
    -h | --help)
        sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "test.sh: unknown option '$arg' (try --help)" >&2
        exit 2
        ;;
    esac
done
[ $quick = 1 ] && fuzz=0

jobs=$(nproc 2>/dev/null || echo 2)
fuzz_seconds=${MIRA_FUZZ_SECONDS:-20}
pydicom_data=${MIRA_PYDICOM_DATA:-/usr/lib/python3/dist-packages/pydicom/data}
logs=$(mktemp -d "${TMPDIR:-/tmp}/mira-test.XXXXXX")
pg_dir=""
trap 'stop_postgres; rm -rf "$logs"' EXIT
start=$(date +%s)

total_passed=0
total_failed=0
summary=()

# record STEP PASSED FAILED [NOTE]: one line of the closing table.
record() {
    total_passed=$((total_passed + $2))
    total_failed=$((total_failed + $3))
    summary+=("$(printf '  %-30s %5d passed %5d failed  %s' "$1" "$2" "$3" "${4:-}")")
}

section() { printf '\n=== %s (%ds)\n' "$1" $(($(date +%s) - start)); }

finish() {
    section "summary"
    printf '%s\n' "${summary[@]}"
    echo "took $(($(date +%s) - start))s"
    if [ $((total_passed + total_failed)) -eq 0 ]; then
        echo "test.sh: no test ran" >&2
        total_failed=1
    fi
    echo "$total_passed passed, $total_failed failed"
    [ "$total_failed" -eq 0 ]
    exit
}

# ------------------------------------------------------------------ dependencies
section "dependencies"
if ! bash scripts/install-deps.sh </dev/null; then
    record "install-deps" 0 1 "(scripts/install-deps.sh failed)"
    finish
fi
if ! bash scripts/venv.sh </dev/null; then
    record "venv" 0 1 "(scripts/venv.sh failed)"
    finish
fi
if ! bash scripts/npm.sh </dev/null; then
    record "npm" 0 1 "(scripts/npm.sh failed)"
    finish
fi
py=$root/.venv/bin/python

# ------------------------------------------------------------------ PostgreSQL
pg_bin=""
pg_as=()

# start_postgres: initdb and start a server in a new folder; exports MIRA_TEST_POSTGRES.
start_postgres() {
    section "postgresql"
    pg_bin=$(pg_config --bindir 2>/dev/null)
    if [ ! -x "$pg_bin/initdb" ]; then
        pg_bin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null |
            sort -V | tail -1)
    fi
    if [ ! -x "$pg_bin/initdb" ] || [ ! -x "$pg_bin/pg_ctl" ]; then
        record "postgresql" 0 1 "(no initdb/pg_ctl: is the postgresql package installed?)"
        return 1
    fi
    pg_as=()
    if [ "$(id -u)" -eq 0 ]; then
        if ! id postgres >/dev/null 2>&1 || ! command -v runuser >/dev/null; then
            record "postgresql" 0 1 "(running as root, and no postgres user or runuser)"
            return 1
        fi
        pg_as=(runuser -u postgres --)
    fi
    # /tmp, not $TMPDIR: a socket path must stay under 108 bytes
    if ! pg_dir=$(mktemp -d /tmp/mira-pg.XXXXXX); then
        pg_dir=""
        record "postgresql" 0 1 "(mktemp failed)"
        return 1
    fi
    if [ ${#pg_as[@]} -gt 0 ]; then chown postgres: "$pg_dir"; fi
    local port=5432 # only the socket in pg_dir: no TCP port is taken
    local conninfo="host=$pg_dir port=$port dbname=postgres user=postgres"
    if "${pg_as[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust -E UTF8 --locale=C \
        >"$pg_dir/initdb.log" 2>&1 </dev/null &&
        "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 \
            -o "-c listen_addresses='' -c unix_socket_directories='$pg_dir' -c port=$port" \
            start >"$pg_dir/pg_ctl.log" 2>&1 </dev/null &&
        "$pg_bin/psql" "$conninfo" -qAtc "SELECT 1" >/dev/null 2>&1 </dev/null; then
        export MIRA_TEST_POSTGRES=$conninfo
        local version
        version=$("$pg_bin/postgres" -V | awk '{print "PostgreSQL", $3}')
        record "postgresql" 1 0 "($version, socket in $pg_dir)"
        return 0
    fi
    tail -20 "$pg_dir"/initdb.log "$pg_dir"/pg_ctl.log "$pg_dir"/server.log 2>/dev/null
    record "postgresql" 0 1 "(the server did not start: the archive tests run on SQLite only)"
    stop_postgres
    return 1
}

stop_postgres() {
    [ -n "$pg_dir" ] || return 0
    if [ -f "$pg_dir/data/postmaster.pid" ]; then
        "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 </dev/null
    fi
    rm -rf "$pg_dir"
    pg_dir=""
}

# ------------------------------------------------------------------ builds
# configure_build DIR ARGS...: (re)configure with Ninja; a tree made with another generator or
# compiler is started afresh (it is a build directory: nothing in it is kept by hand).
configure_build() {
    local dir=$1
    shift
    if [ -f "$dir/CMakeCache.txt" ] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$dir/CMakeCache.txt"; then
        rm -rf "$dir"
    fi
    cmake -S . -B "$dir" -G Ninja "$@" >"$logs/configure-$(basename "$dir").log" 2>&1 || {
        cat "$logs/configure-$(basename "$dir").log"
        return 1
    }
}

# build DIR ARGS...: configure and build (only $build_targets if set); records a failure (and
# returns 1) if either fails.
build_targets=()
build() {
    local dir=$1
    section "build $dir"
    local targets=()
    [ ${#build_targets[@]} -gt 0 ] && targets=(--target "${build_targets[@]}")
    if configure_build "$@" && cmake --build "$dir" -j "$jobs" "${targets[@]}" </dev/null; then
        return 0
    fi
    record "build $dir" 0 1
    return 1
}

# ------------------------------------------------------------------ runners
# run_ctest DIR: ctest with its own summary line parsed for the counts.
run_ctest() {
    local dir=$1 log
    log=$logs/ctest-$(basename "$1").log
    section "ctest $dir"
    ctest --test-dir "$dir" --output-on-failure -j "$jobs" </dev/null 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    local line total failed
    line=$(grep -Eo '[0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)
    if [ -z "$line" ]; then
        record "ctest $dir" 0 1 "(no ctest summary; exit $rc)"
        return
    fi
    failed=${line%% *}
    total=${line##* }
    if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        failed=1
    fi
    record "ctest $dir" $((total - failed)) "$failed"
}

# run_pytest LABEL BIN_DIR [PYTEST ARGS...]: tests/python against the binaries of BIN_DIR.
run_pytest() {
    local label=$1 dir=$2
    shift 2
    local xml
    xml=$logs/pytest-$(basename "$dir").xml
    section "pytest $label"
    local xdist=()
    [ "$jobs" -gt 1 ] && xdist=(-n "$jobs")
    MIRA_BIN=$root/$dir/mira MIRA_TOOLS_DIR=$root/$dir MIRA_PYDICOM_DATA=$pydicom_data \
        "$py" -m pytest tests/python -q -p no:cacheprovider "${xdist[@]}" --junitxml="$xml" "$@" </dev/null
    local rc=$?
    local counts
    counts=$("$py" - "$xml" <<'EOF' 2>/dev/null
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
print(n["tests"] - n["failures"] - n["errors"] - n["skipped"], n["failures"] + n["errors"], n["skipped"])
EOF
)
    local passed=0 failed=0 skipped=0
    [ -n "$counts" ] && read -r passed failed skipped <<<"$counts"
    local note=""
    [ "$skipped" -gt 0 ] && note="($skipped skipped)"
    case $rc in
    0) ;;
    5)
        note="(no tests collected)"
        failed=$((failed + 1))
        ;;
    *)
        [ "$failed" -eq 0 ] && failed=1
        note="$note (pytest exit $rc)"
        ;;
    esac
    record "pytest $label" "$passed" "$failed" "$note"
}

# seed_dir TARGET: a folder of test files that make good seeds for a fuzz target (small ones:
# libFuzzer sizes its inputs by the largest seed).
seed_dir() {
    local target=$1 dir=$logs/seeds/$1
    mkdir -p "$dir"
    local pattern
    case $target in
    fuzz_json*) pattern='*.json' ;;
    fuzz_qido*) pattern='' ;; # query strings: its seeds are the checked-in fuzz/corpus/fuzz_qido
    fuzz_multipart*) pattern='' ;; # bodies: its seeds are the checked-in fuzz/corpus/fuzz_multipart
    fuzz_wado*) pattern='' ;; # request lines: its seeds are the checked-in fuzz/corpus/fuzz_wado
    fuzz_hl7*) pattern='' ;; # HL7 messages: its seeds are the checked-in fuzz/corpus/fuzz_hl7
    fuzz_mllp*) pattern='' ;; # MLLP streams: its seeds are the checked-in fuzz/corpus/fuzz_mllp
    *) pattern='*.dcm' ;;
    esac
    if [ -n "$pattern" ] && [ -d "$pydicom_data" ]; then
        find "$pydicom_data" -type f -name "$pattern" -size -64k -print0 |
            while IFS= read -r -d '' f; do ln -sf "$f" "$dir/$(echo "$f" | md5sum | cut -c1-16)"; done
    fi
    echo "$dir"
}

fuzz_targets() {
    local src
    for src in fuzz/fuzz_*.c; do
        [ -e "$src" ] && basename "$src" .c
    done
}

# run_replays DIR: every target's checked-in corpus and seeds through DIR/<target>_replay.
run_replays() {
    local dir=$1 target inputs
    section "replay corpora ($dir)"
    for target in $(fuzz_targets); do
        inputs=("$(seed_dir "$target")")
        [ -d "fuzz/corpus/$target" ] && inputs+=("fuzz/corpus/$target")
        if [ ! -x "$dir/${target}_replay" ]; then
            record "replay $target" 0 1 "(no $dir/${target}_replay)"
        elif "$dir/${target}_replay" "${inputs[@]}" </dev/null >"$logs/replay-$target.log" 2>&1; then
            record "replay $target" 1 0 "$(tail -1 "$logs/replay-$target.log")"
        else
            tail -40 "$logs/replay-$target.log"
            record "replay $target" 0 1
        fi
    done
}

# run_fuzzers: each target for fuzz_seconds, as many at once as there are cores.
run_fuzzers() {
    section "fuzz (${fuzz_seconds}s per target, $jobs at a time)"
    local target started=()
    for target in $(fuzz_targets); do
        local bin=build-fuzz/$target work=build-fuzz/corpus-run/$target
        local art=build-fuzz/artifacts/$target/
        if [ ! -x "$bin" ]; then
            record "fuzz $target" 0 1 "(no $bin)"
            continue
        fi
        mkdir -p "$work" "$art"
        local inputs=("$work" "$(seed_dir "$target")")
        [ -d "fuzz/corpus/$target" ] && inputs+=("fuzz/corpus/$target")
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
        echo "fuzz: $target"
        # -timeout only catches hangs: it is far above the time any input takes.
        (
            "$bin" -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -timeout=120 \
                -artifact_prefix="$art" -print_final_stats=1 "${inputs[@]}" \
                </dev/null >"$logs/fuzz-$target.log" 2>&1
            echo $? >"$logs/fuzz-$target.rc"
        ) &
        started+=("$target")
    done
    wait
    for target in "${started[@]}"; do
        if [ "$(cat "$logs/fuzz-$target.rc" 2>/dev/null)" = 0 ]; then
            record "fuzz $target" 1 0 "$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1 runs/p' "$logs/fuzz-$target.log")"
        else
            echo "--- fuzz $target failed (the input is kept in build-fuzz/artifacts/$target/):"
            tail -60 "$logs/fuzz-$target.log"
            # CI's tree goes away: print small crash inputs so they can be replayed from the log.
            local f
            for f in build-fuzz/artifacts/"$target"/*; do
                if [ ! -f "$f" ] || [ "$(stat -c %s "$f")" -gt 65536 ]; then continue; fi
                echo "--- $f as base64 (base64 -d > input; build-asan/${target}_replay input):"
                base64 -w 76 "$f"
            done
            record "fuzz $target" 0 1 "(see build-fuzz/artifacts/$target/)"
        fi
    done
}

# ------------------------------------------------------------------ the suite
start_postgres

slow=()
[ $quick = 1 ] && slow=(-m "not slow")
if build build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMIRA_BENCH=ON; then
    run_ctest build
    run_pytest "build" build "${slow[@]}"
fi

if [ $quick = 0 ]; then
    if build build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMIRA_SANITIZE=ON; then
        export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
        export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
        run_ctest build-asan
        # A test may not look at every exit status: sanitizer reports of the programs pytest runs
        # go to files instead of stderr; they are printed here, and any report fails the run.
        mkdir -p "$logs/san"
        # shellcheck disable=SC2086 # MIRA_ASAN_PYTEST is a list of arguments
        # PostgreSQL variants: those of the archive and HL7 modules (the index backend's own
        # code); the other modules' PostgreSQL variants ran in the build/ pass.
        MIRA_TEST_POSTGRES_MODULES=${MIRA_TEST_POSTGRES_MODULES-test_archive_,test_hl7_} \
        ASAN_OPTIONS=$ASAN_OPTIONS:log_path=$logs/san/asan UBSAN_OPTIONS=$UBSAN_OPTIONS:log_path=$logs/san/ubsan \
            run_pytest "build-asan" build-asan -m "not slow" ${MIRA_ASAN_PYTEST:-}
        # A file whose only lines are LeakSanitizer's "Unable to get registers from thread N"
        # (a thread of a program still exiting while the leak check stops them all: detached
        # association threads of mira serve, at its exit) holds no finding; it is printed, not
        # counted. Every other report fails the run.
        real=0 notes=0
        while IFS= read -r f; do
            if grep -qv 'Unable to get registers from thread' "$f"; then
                real=$((real + 1))
                [ "$real" -le 5 ] && head -40 "$f"
            else
                notes=$((notes + 1))
                echo "sanitizer note (not a finding): $(head -c 300 "$f")"
            fi
        done < <(find "$logs/san" -type f)
        if [ "$real" -gt 0 ]; then
            record "sanitizers under pytest" 0 1 "($real reports)"
        fi
        run_replays build-asan
        unset ASAN_OPTIONS UBSAN_OPTIONS
    fi
fi

if [ $fuzz = 1 ]; then
    if ! command -v clang >/dev/null; then
        record "fuzz" 0 1 "(clang missing)"
    else
        mapfile -t build_targets < <(fuzz_targets)
        if build build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DMIRA_FUZZ=ON; then
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 run_fuzzers
        fi
    fi
fi

finish
