#!/usr/bin/env bash
# Chronik vector search benchmarks, part of `make bench`:
#   1. bench/embed_compare.py: the built-in model's texts/s on one core (chronik-embed-bench,
#      with AMX where the CPU has it and on OpenBLAS), batch sizes 1 and 64, on ~64-token
#      texts cut from the Vaswani abstracts, against the model's own JavaScript runtime on
#      the same texts, runs alternating;
#   2. BUILD_DIR/bench/chronik-hnsw-bench: insert vectors/s and QPS at recall >= 0.95 of
#      the HNSW adapter against hnswlib used directly with the same parameters and against
#      an exact scan, on generated 512-d vectors (VECTOR_BENCH_N, default 1,000,000; the
#      two sides interleaved insert by insert and query by query, so the machine's noise
#      hits both alike; about 30 minutes and 6.5 GB at 1M);
#   3. bench/vector_quality.py: nDCG@10, MAP, R@100 on Vaswani for BM25, vector alone,
#      RRF and linear fusion, through the server's API;
#   4. bench/vector_speed.py: search, search_by_vector and /_query latency, and
#      produce -> findable under a moderate load.
#
#   bench/vector.sh BUILD_DIR [--quick]     (--quick: 100,000 vectors in step 2)
#
# Prints the sections; keeps them and the logs in .cache/bench/vector-* and copies the
# report to .cache/bench/last-vector-report.md.
set -euo pipefail

[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 BUILD_DIR [--quick]" >&2; exit 2; }
build=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
n=${VECTOR_BENCH_N:-1000000}
[ "${2:-}" = "--quick" ] && n=100000
PY=/usr/bin/python3
mkdir -p "$root/.cache/bench"
work=$(mktemp -d "$root/.cache/bench/vector-XXXXXX")
report=$work/report.md
log() { printf '%s vector bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
status=0
step() { # name limit command...
    local name=$1 limit=$2
    shift 2
    log "$name"
    local rc=0
    timeout --signal=TERM --kill-after=30 "$limit" "$@" >"$work/$name.md" 2>"$work/$name.log" || rc=$?
    if [ $rc -ne 0 ]; then
        status=1
        log "$name failed (exit $rc$([ $rc -eq 124 ] && echo ', time limit')); see $work/$name.log"
    fi
    cat "$work/$name.md" >>"$report"
    echo "" >>"$report"
}
{
    echo "## Vector benchmarks"
    echo ""
    echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r)."
    echo ""
} >"$report"
step embed 900 "$PY" "$root/bench/embed_compare.py" --bench "$build/bench/chronik-embed-bench"
step hnsw 7200 "$build/bench/chronik-hnsw-bench" --n "$n" --interleave
step quality 3600 "$PY" "$root/bench/vector_quality.py" --server-binary "$build/chronik-server"
step speed 1800 "$PY" "$root/bench/vector_speed.py" --server-binary "$build/chronik-server"
grep -h '^RESULT' "$work"/*.log >"$work/results.txt" 2>/dev/null || true
cp "$report" "$root/.cache/bench/last-vector-report.md"
cat "$report"
log "report: $report (also .cache/bench/last-vector-report.md); logs in $work"
exit $status
