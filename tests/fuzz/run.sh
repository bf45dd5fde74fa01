#!/usr/bin/env bash
# Runs every libFuzzer target of a CK_FUZZ build for a bounded time.
#
#   tests/fuzz/run.sh BUILD_DIR SECONDS
#
# Each target runs SECONDS with -max_len=65536 -timeout=10 -rss_limit_mb=2048, reading
# the committed seeds (tests/fuzz/corpus/<corpus>/, never written) and keeping what it
# learns in BUILD_DIR/fuzz-corpus/<target>/. Crash, leak, timeout and OOM reproducers go
# to BUILD_DIR/fuzz-artifacts/. Exits 0 when every target ran clean, 1 after printing each
# failing target's reproducer path and the tail of its log, 2 on usage errors.
set -u

if [ $# -ne 2 ] || ! [[ $2 =~ ^[0-9]+$ ]] || [ "$2" -lt 1 ]; then
    echo "usage: $0 BUILD_DIR SECONDS" >&2
    exit 2
fi
build=$1
seconds=$2
here=$(cd "$(dirname "$0")" && pwd)

# target:seed-corpus pairs
targets="fuzz_request:request fuzz_records:records fuzz_jsonscan:jsonscan"

# Workers fork children with their own sanitizers; keep reports symbolized and complete.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"
failed=0
for pair in $targets; do
    t=${pair%%:*}
    seeds="$here/corpus/${pair#*:}"
    bin="$build/tests/fuzz/$t"
    if [ ! -x "$bin" ]; then
        echo "fuzz: $bin not built (configure with CC=clang -DCK_FUZZ=ON)" >&2
        failed=1
        continue
    fi
    work="$build/fuzz-corpus/$t"
    log="$build/fuzz-$t.log"
    mkdir -p "$work"
    echo "fuzz: $t for ${seconds}s (log: $log)"
    # -max_total_time bounds the run; `timeout` is a backstop should the target hang
    # somewhere libFuzzer's per-input -timeout cannot see.
    timeout --signal=KILL $((seconds + 120)) "$bin" -max_len=65536 -timeout=10 \
        -rss_limit_mb=2048 -max_total_time="$seconds" -print_final_stats=1 \
        -artifact_prefix="$artifacts/$t-" "$work" "$seeds" >"$log" 2>&1
    rc=$?
    stats=$(grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$log" | awk '!seen[$1]++' |
        tr -s ' ' | tr '\n' ' ')
    if [ $rc -ne 0 ]; then
        failed=1
        echo "fuzz: $t FAILED (exit $rc) $stats"
        repro=$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -1 | sed 's/Test unit written to //')
        if [ -n "$repro" ]; then
            echo "fuzz: reproducer: $repro"
            echo "fuzz: replay with: $bin $repro"
        fi
        tail -n 60 "$log"
    else
        echo "fuzz: $t ok, $stats corpus $(ls "$work" | wc -l) inputs"
    fi
done
exit $failed
