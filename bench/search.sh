#!/usr/bin/env bash
# Chronik full-text search benchmarks: quality (Vaswani test collection) and speed (a
# synthetic corpus), each against Xapian and SQLite FTS5 measured in the same run.
#
#   bench/search.sh BUILD_DIR [--quick]
#
# Needs BUILD_DIR/chronik-server, /usr/bin/python3 with Debian's python3-xapian,
# python3-kafka and python3-confluent-kafka (scripts/setup.sh installs them), and the
# Vaswani collection in ../shared/datasets/vaswani next to the repository (or
# SEARCH_BENCH_VASWANI=DIR; without it the quality step is skipped with a note).
#   1. bench/search_quality.py: nDCG@10, MAP, R@100 of xapian, fts5 and chronik (a server
#      of its own on free ports, 1 partition);
#   2. bench/search_speed.py: indexing docs/s and size, query latency per query set (also
#      from BUILD_DIR/bench/chronik-query-bench, a C client), QPS
#      with 8 clients, produce -> searchable latency, on 1,000,000 documents (--quick:
#      100,000).
# Prints both Markdown sections; keeps them and the logs in the run folder
# (.cache/bench/search-*; indexes and server data are removed unless BENCH_KEEP_DATA=1)
# and copies the report to .cache/bench/last-search-report.md. Every step has a time limit.
#
# Knobs (environment): SEARCH_BENCH_DOCS (overrides the document count),
# SEARCH_BENCH_PARTITIONS (3, speed), SEARCH_BENCH_SYSTEMS (xapian,fts5,chronik),
# SEARCH_BENCH_VASWANI (dataset folder), BENCH_KEEP_DATA=1.
set -euo pipefail

usage() { echo "usage: $0 BUILD_DIR [--quick]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
quick=0
if [ $# -eq 2 ]; then
    [ "$2" = "--quick" ] || usage
    quick=1
fi
build=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
server_bin=$build/chronik-server
PY=/usr/bin/python3
if [ ! -x "$server_bin" ]; then
    echo "search bench: $server_bin not built (make build)" >&2
    exit 1
fi
if ! "$PY" -c 'import xapian, kafka, confluent_kafka, sqlite3' 2>/dev/null; then
    echo "search bench: $PY cannot import xapian/kafka/confluent_kafka (Debian python3-xapian" \
         "python3-kafka python3-confluent-kafka; scripts/setup.sh)" >&2
    exit 1
fi
systems=${SEARCH_BENCH_SYSTEMS:-xapian,fts5,chronik}
parts=${SEARCH_BENCH_PARTITIONS:-3}
if [ -n "${SEARCH_BENCH_DOCS:-}" ]; then
    docs=$SEARCH_BENCH_DOCS
elif [ $quick -eq 1 ]; then
    docs=100000
else
    docs=1000000
fi
vaswani=${SEARCH_BENCH_VASWANI:-$root/../shared/datasets/vaswani}

mkdir -p "$root/.cache/bench"
work=$(mktemp -d "$root/.cache/bench/search-XXXXXX")
report=$work/report.md
keep=()
[ "${BENCH_KEEP_DATA:-0}" = "1" ] && keep=(--keep)
log() { printf '%s search bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
log "run folder $work; $docs documents; systems $systems"

status=0
{
    echo "## Search benchmarks"
    echo ""
    echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r); $("$PY" -c 'import sys; print("Python", sys.version.split()[0])')."
    echo ""
} >"$report"

# 1. quality: a few seconds per system; the server's part is bounded by its own timeouts.
if [ -f "$vaswani/doc-text.trec" ]; then
    log "quality (Vaswani)"
    rc=0
    timeout --signal=TERM --kill-after=30 900 "$PY" "$root/bench/search_quality.py" "$vaswani" \
        --systems "$systems" --server-binary "$server_bin" --workdir "$work/quality" "${keep[@]}" \
        >"$work/quality.md" 2>"$work/quality.log" || rc=$?
    if [ $rc -ne 0 ]; then
        status=1
        log "quality step failed (exit $rc$([ $rc -eq 124 ] && echo ', time limit')); see $work/quality.log"
    fi
    # The Markdown section starts at its heading; the plain table before it is for the terminal.
    sed -n '/^### /,$p' "$work/quality.md" >>"$report"
else
    log "no Vaswani collection in $vaswani; quality skipped"
    printf '### Search quality\n\nSkipped: no Vaswani collection in %s.\n' "$vaswani" >>"$report"
    status=1
fi
echo "" >>"$report"

# 2. speed: Xapian indexes ~2-3k docs/s here, so 1M documents take some 10 minutes.
limit=$(( 600 + docs / 400 ))
log "speed ($docs documents, time limit ${limit} s)"
rc=0
timeout --signal=TERM --kill-after=30 "$limit" "$PY" "$root/bench/search_speed.py" --docs "$docs" \
    --systems "$systems" --partitions "$parts" --server-binary "$server_bin" --workdir "$work/speed" \
    "${keep[@]}" >"$work/speed.md" 2>"$work/speed.log" || rc=$?
if [ $rc -ne 0 ]; then
    status=1
    log "speed step failed (exit $rc$([ $rc -eq 124 ] && echo ', time limit')); see $work/speed.log"
fi
cat "$work/speed.md" >>"$report"

if [ "${BENCH_KEEP_DATA:-0}" != "1" ]; then
    rm -rf "$work/quality" "$work/speed"
fi
grep -h '^RESULT' "$work/quality.log" "$work/speed.log" >"$work/results.txt" 2>/dev/null || true
cp "$report" "$root/.cache/bench/last-search-report.md"
cat "$report"
log "report: $report (also .cache/bench/last-search-report.md); logs in $work"
exit $status
