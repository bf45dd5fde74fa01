#!/bin/sh
# Checks that the committed generated codec (src/kafka/gen/) is exactly what
# tools/kafka_codegen.py produces from the Kafka message specs.
#
# Specs: $CK_KAFKA_SPECS if set, else ../shared/kafka-protocol next to the repository.
# Without specs the check is skipped (exit 0). Any difference exits 1 and prints the diff;
# fix it by regenerating:  /usr/bin/python3 tools/kafka_codegen.py SPECS src/kafka/gen
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
specs=${CK_KAFKA_SPECS:-"$root/../shared/kafka-protocol"}

if [ ! -f "$specs/RequestHeader.json" ]; then
    echo "SKIPPED: kafka-protocol specs not found"
    exit 0
fi

if [ -x /usr/bin/python3 ]; then
    py=/usr/bin/python3
else
    py=python3
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ck-codegen.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT INT TERM

if ! "$py" "$root/tools/kafka_codegen.py" "$specs" "$tmp/gen"; then
    echo "FAILED: tools/kafka_codegen.py did not run"
    exit 1
fi

if ! diff -r "$root/src/kafka/gen" "$tmp/gen"; then
    echo "FAILED: src/kafka/gen differs from the generator's output;"
    echo "        regenerate: $py tools/kafka_codegen.py $specs src/kafka/gen"
    exit 1
fi
echo "OK: src/kafka/gen matches tools/kafka_codegen.py output"
exit 0
