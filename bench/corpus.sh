# The CT/MR corpus shared by the read and ingest benchmarks (sourced, not run).
#
# bench_corpus PY N SEED: makes bench/corpus/ with bench/make_corpus.py (PY is the venv's python,
# whose pinned pydicom the generator uses) unless the folder already holds the corpus of these N,
# SEED and generator (its .stamp says so). Sets bench_corpus_dir and bench_corpus_list.
bench_corpus() {
    local py=$1 n=$2 seed=$3 root stamp
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    bench_corpus_dir=$root/bench/corpus
    bench_corpus_list=$bench_corpus_dir/files.list
    stamp="N=$n SEED=$seed $(sha256sum "$root/bench/make_corpus.py" | cut -d' ' -f1)"
    if [ "$(cat "$bench_corpus_dir/.stamp" 2>/dev/null)" != "$stamp" ]; then
        echo "corpus: making $n files (about $((n * 560 / 1024)) MiB) in ${bench_corpus_dir#"$root"/}"
        rm -rf "$bench_corpus_dir"
        "$py" "$root/bench/make_corpus.py" --count "$n" --seed "$seed" --out "$bench_corpus_dir"
        echo "$stamp" >"$bench_corpus_dir/.stamp"
    fi
}
