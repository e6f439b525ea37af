#!/usr/bin/env bash
# Query benchmark: study-level queries with patient-name wild cards on an index of a million
# instances, on SQLite and on PostgreSQL, timed in process (bench/query_bench.c).
#
# usage: bench/run_query.sh           (env: INSTANCES, default 1000000, with SERIES 200000,
#                                      STUDIES 50000 and PATIENTS 20000; SEED; RUNS timed
#                                      queries per shape, default 200; WARMUP, default 20;
#                                      BACKENDS, default "sqlite postgresql"; BUILD_DIR,
#                                      default build/; INDEX_DIR, default bench/index/)
# Makes each backend's archive with mira (`mira import` of one file into a new archive, then
# `mira delete`: the schema and its migrations are mira's own), fills it with
# bench/make_index.py (rows as src/archive/store.c writes them, generated from a seed), and
# keeps it in INDEX_DIR while the sizes, the seed, the generator and mira's schema and keys
# (src/archive/schema.c, keys.c) stay the same. PostgreSQL is a throwaway server started here
# (Debian's postgresql binaries, a data folder in INDEX_DIR, its socket in a private folder of
# /tmp and no TCP port), analysed after loading as its autovacuum would; SQLite is left as
# mira leaves it (no ANALYZE). Then query_bench runs every shape with and without a limit of
# 100 on each backend, checks each answer against the generator's records, and the report
# gives the median and 95th percentile in milliseconds; it is printed and kept in bench/out/.
# Timing never fails the script; a wrong answer does.
#
# SMOKE=1 (the ctest smoke test): a small index, SQLite only, a few runs, nothing installed
# or built (BUILD_DIR must hold mira and query_bench), everything in a temporary folder.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
SMOKE=${SMOKE:-0}
if [ "$SMOKE" = 1 ]; then
    : "${INSTANCES:=2000}" "${SERIES:=400}" "${STUDIES:=100}" "${PATIENTS:=40}"
    : "${RUNS:=3}" "${WARMUP:=1}" "${BACKENDS:=sqlite}"
fi
INSTANCES=${INSTANCES:-1000000}
SERIES=${SERIES:-200000}
STUDIES=${STUDIES:-50000}
PATIENTS=${PATIENTS:-20000}
SEED=${SEED:-1}
RUNS=${RUNS:-200}
WARMUP=${WARMUP:-20}
BACKENDS=${BACKENDS:-sqlite postgresql}
build=${BUILD_DIR:-$root/build}
out_dir=$root/bench/out
sample=/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm

work=$(mktemp -d "${TMPDIR:-/tmp}/mira-query.XXXXXX")
index_dir=${INDEX_DIR:-$root/bench/index}
[ "$SMOKE" = 1 ] && index_dir=$work/index
pg_sock=
pg_as=()
pg_bin=
cleanup() {
    if [ -n "$pg_sock" ] && [ -f "$index_dir/pg-data/postmaster.pid" ]; then
        "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$index_dir/pg-data" -m fast -w -t 60 stop >/dev/null 2>&1 </dev/null || true
    fi
    [ -z "$pg_sock" ] || rm -rf "$pg_sock"
    rm -rf "$work"
}
trap cleanup EXIT

if [ "$SMOKE" != 1 ]; then
    bash scripts/install-deps.sh
    echo "run_query: building ($build, MIRA_BENCH=ON)"
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMIRA_BENCH=ON >/dev/null
    cmake --build "$build" --target mira_cli query_bench >/dev/null
fi
mira=$build/mira
bench=$build/bench/query_bench
[ -f "$sample" ] || { echo "run_query: $sample missing (python3-pydicom)" >&2; exit 1; }
mkdir -p "$index_dir"

sizes="--patients $PATIENTS --studies $STUDIES --series $SERIES --instances $INSTANCES --seed $SEED"
stamp="$sizes $(cat bench/make_index.py src/archive/schema.c src/archive/keys.c | sha256sum | cut -d' ' -f1)"

# A new, empty archive made by mira itself (index args after the folder).
new_archive() {
    local dir=$1
    shift
    rm -rf "$dir"
    "$mira" import --archive "$dir" "$@" --no-progress "$sample" >/dev/null
    "$mira" find --archive "$dir" "$@" --level patient PatientID | tail -n +2 |
        while read -r pid; do "$mira" delete --archive "$dir" "$@" --level patient "$pid" >/dev/null; done
}

# ---------------------------------------------------------------- SQLite
sqlite_prepare() {
    local arch=$index_dir/sqlite-archive
    if [ "$(cat "$index_dir/sqlite.stamp" 2>/dev/null)" = "$stamp" ] && [ -f "$arch/index.db" ]; then
        return 0
    fi
    echo "run_query: generating the SQLite index ($INSTANCES instances)"
    rm -f "$index_dir/sqlite.stamp"
    new_archive "$arch"
    # shellcheck disable=SC2086
    python3 bench/make_index.py --sqlite "$arch/index.db" $sizes --truth "$index_dir/sqlite.truth"
    echo "$stamp" >"$index_dir/sqlite.stamp"
}

# ---------------------------------------------------------------- PostgreSQL
pg_conninfo() { echo "host=$pg_sock port=5432 dbname=mira user=postgres"; }
psql_mira() { "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 "$(pg_conninfo)" "$@"; }

pg_start() {
    pg_bin=$(pg_config --bindir 2>/dev/null || true)
    [ -x "$pg_bin/initdb" ] ||
        pg_bin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1)
    [ -x "$pg_bin/initdb" ] || { echo "run_query: no PostgreSQL server binaries (apt-get install postgresql)" >&2; exit 1; }
    if [ "$(id -u)" = 0 ]; then pg_as=(runuser -u postgres --); fi
    # /tmp, not $TMPDIR: a socket path must stay under 108 bytes
    pg_sock=$(mktemp -d /tmp/mira-pgq.XXXXXX)
    local data=$index_dir/pg-data fresh=false
    if [ "$(cat "$index_dir/pg.stamp" 2>/dev/null)" != "$stamp" ] || [ ! -f "$data/PG_VERSION" ]; then
        echo "run_query: generating the PostgreSQL index ($INSTANCES instances)"
        rm -rf "$data" "$index_dir/pg.stamp"
        mkdir -p "$data"
        fresh=true
    fi
    if [ ${#pg_as[@]} -gt 0 ]; then chown postgres: "$pg_sock" "$data"; fi
    if $fresh; then
        "${pg_as[@]}" "$pg_bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C \
            >"$work/initdb.log" 2>&1 </dev/null || { cat "$work/initdb.log" >&2; exit 1; }
    fi
    "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$data" -l "$pg_sock/server.log" -w -t 120 \
        -o "-c listen_addresses='' -c unix_socket_directories='$pg_sock' -c port=5432" \
        start >"$work/pg_ctl.log" 2>&1 </dev/null || { cat "$work/pg_ctl.log" "$pg_sock/server.log" >&2; exit 1; }
    if $fresh; then
        "$pg_bin/psql" -X -q "host=$pg_sock port=5432 dbname=postgres user=postgres" \
            -c "CREATE DATABASE mira" </dev/null
        new_archive "$index_dir/pg-archive" --index "$(pg_conninfo)"
        # shellcheck disable=SC2086
        python3 bench/make_index.py --copy "$work/copy" $sizes --truth "$index_dir/pg.truth"
        while IFS=$'\t' read -r file table cols; do
            psql_mira -c "\\copy $table ($cols) FROM '$work/copy/$file'" </dev/null
        done <"$work/copy/tables.txt"
        rm -rf "$work/copy"
        for t in patients studies series instances; do
            psql_mira -c "SELECT setval(pg_get_serial_sequence('$t', 'pk'), (SELECT max(pk) FROM $t))" \
                >/dev/null </dev/null
        done
        psql_mira -c "VACUUM ANALYZE" </dev/null
        echo "$stamp" >"$index_dir/pg.stamp"
    fi
}

# ---------------------------------------------------------------- the queries
declare -A truth_file arch_dir index_arg
for backend in $BACKENDS; do
    case $backend in
    sqlite)
        sqlite_prepare
        truth_file[sqlite]=$index_dir/sqlite.truth
        arch_dir[sqlite]=$index_dir/sqlite-archive
        index_arg[sqlite]=
        ;;
    postgresql)
        pg_start
        truth_file[postgresql]=$index_dir/pg.truth
        arch_dir[postgresql]=$index_dir/pg-archive
        index_arg[postgresql]=$(pg_conninfo)
        ;;
    *) echo "run_query: unknown backend $backend" >&2; exit 2 ;;
    esac
done

failed=0
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A med p95 matches check
for backend in $BACKENDS; do
    echo "run_query: $backend: $WARMUP warm-up and $RUNS timed queries per shape and limit"
    args=(--archive "${arch_dir[$backend]}" --truth "${truth_file[$backend]}" --runs "$RUNS" --warmup "$WARMUP")
    [ -z "${index_arg[$backend]}" ] || args+=(--index "${index_arg[$backend]}")
    "$bench" "${args[@]}" >"$work/$backend.txt" 2>"$work/$backend.err" || failed=1
    cat "$work/$backend.err" >&2
    while read -r line; do
        key=$(sed -n 's/.*shape=\([a-z_]*\) limit=\([0-9]*\).*/\1.\2/p' <<<"$line")
        med[$backend.$key]=$(sed -n 's/.*median_ms=\([0-9.]*\).*/\1/p' <<<"$line")
        p95[$backend.$key]=$(sed -n 's/.*p95_ms=\([0-9.]*\).*/\1/p' <<<"$line")
        matches[$backend.$key]=$(sed -n 's/.*matches=\([0-9]*\) .*/\1/p' <<<"$line")
        check[$backend.$key]=$(sed -n 's/.*check=\([A-Za-z]*\).*/\1/p' <<<"$line")
    done <"$work/$backend.txt"
done

shapes="prefix infix prefix_ci combined"
describe() {
    case $1 in
    prefix) echo "PatientName=SMI*" ;;
    infix) echo "PatientName=*SON*" ;;
    prefix_ci) echo "PatientName=smi*, names case-insensitive" ;;
    combined) echo "SMI* (case-insens.) + StudyDate 2020-2022 + ModalitiesInStudy=CT" ;;
    esac
}
verdict() { # limit: met if every shape's median is under 20 ms on every backend
    local v=met b s m
    for b in $BACKENDS; do
        for s in $shapes; do
            m=${med[$b.$s.$1]:-}
            if [ -z "$m" ] || ! awk -v m="$m" 'BEGIN{exit !(m < 20)}' || [ "${check[$b.$s.$1]:-}" != ok ]; then
                v="NOT met"
            fi
        done
    done
    echo "$v"
}

report=$work/query-report.txt
if [ "$SMOKE" != 1 ]; then
    mkdir -p "$out_dir"
    report=$out_dir/query-$(date +%Y%m%d-%H%M%S).txt
fi
{
    echo "mira query benchmark, $(date -u +%Y-%m-%dT%H:%MZ), git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(awk '/^MemTotal:/{printf "%.0f", $2/1048576}' /proc/meminfo) GiB memory"
    echo "load:    $load_before (load average before the queries, /proc/loadavg; other work on the machine slows them)"
    echo "index:   $PATIENTS patients, $STUDIES studies, $SERIES series, $INSTANCES instances (bench/make_index.py, seed $SEED)"
    echo "         $(grep '^rows multi_values' "${truth_file[${BACKENDS%% *}]}" | awk '{print $3}') multi_values rows; SQLite $(python3 -c "import sqlite3; print(sqlite3.sqlite_version)")$( [ -n "$pg_bin" ] && echo ", PostgreSQL $("$pg_bin/postgres" -V | awk '{print $3}') (defaults, after VACUUM ANALYZE)")"
    echo "method:  mira_archive_find in process (archive opened once), $WARMUP warm-up then $RUNS timed"
    echo "         queries per shape and limit; every answer checked against the generator's records"
    echo
    printf '%-14s %-6s' "shape" "limit"
    for b in $BACKENDS; do printf ' %24s' "$b median / p95 ms"; done
    printf '  %s\n' "matches"
    for s in $shapes; do
        for l in 100 0; do
            printf '%-14s %-6s' "$s" "$([ "$l" = 0 ] && echo none || echo "$l")"
            for b in $BACKENDS; do
                printf ' %15s / %6s' "${med[$b.$s.$l]:--}" "${p95[$b.$s.$l]:--}"
            done
            printf '  %s' "${matches[${BACKENDS%% *}.$s.$l]:--}"
            for b in $BACKENDS; do [ "${check[$b.$s.$l]:-}" = ok ] || printf ' (%s: check %s)' "$b" "${check[$b.$s.$l]:-missing}"; done
            echo
        done
    done
    echo
    for s in $shapes; do printf '%-14s %s\n' "$s" "$(describe "$s")"; done
    echo
    echo "goal median < 20 ms, limit 100: $(verdict 100)"
    echo "goal median < 20 ms, no limit:  $(verdict 0)"
    [ "$failed" = 0 ] && echo "answers: every one checked and right" || echo "answers: some WRONG (see above)"
} | tee "$report"
[ "$SMOKE" = 1 ] || cat "$work"/*.txt >"${report%.txt}.runs.log"
[ "$SMOKE" = 1 ] || echo "run_query: report in ${report#"$root"/}"
exit "$failed"
