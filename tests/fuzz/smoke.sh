#!/usr/bin/env bash
# Fuzz smoke test for `make test`: builds the libFuzzer targets with clang in their own
# build folder (build-fuzz-smoke at the repository root, reused across runs) and runs
# each for 20 seconds. Prints "SKIPPED: clang not found" and exits 0 without clang.
#
#   tests/fuzz/smoke.sh [SECONDS]
# Exit status: 0 clean or skipped, 1 on a finding (run.sh prints the reproducer) or a
# failed build.
set -u
seconds=${1:-20}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

if ! command -v clang >/dev/null 2>&1 || ! command -v clang++ >/dev/null 2>&1; then
    echo "SKIPPED: clang not found"
    exit 0
fi
build="$root/build-fuzz-smoke"
mkdir -p "$build"
# CK_FUZZ_UBSAN_EXCLUDE (environment, e.g. "pointer-overflow") leaves UBSan checks out
# while a known finding waits for its fix; empty by default.
if ! CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCK_FUZZ=ON \
        -DCK_FUZZ_UBSAN_EXCLUDE="${CK_FUZZ_UBSAN_EXCLUDE:-}" >"$build/configure.log" 2>&1; then
    cat "$build/configure.log"
    echo "fuzz smoke: configure failed" >&2
    exit 1
fi
jobs=$(nproc 2>/dev/null || echo 2)
if ! cmake --build "$build" -j"$jobs" --target fuzz_request fuzz_records fuzz_jsonscan; then
    echo "fuzz smoke: build failed" >&2
    exit 1
fi
exec bash "$here/run.sh" "$build" "$seconds"
