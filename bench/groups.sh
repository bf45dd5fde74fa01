#!/usr/bin/env bash
# Consumer-group and idempotent-producer benchmarks (part of `make bench`):
#   - time from subscribe to a stable group, 1 and 10 consumers (chronik-group-bench join)
#   - synchronous offset commits: commits/s and latency (chronik-group-bench commit)
#   - produce 256 B acks=all with enable.idempotence off and on, same server, same run
# Usage: bench/groups.sh BUILD_DIR. Prints a Markdown section. Loopback only, bounded.
set -u
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
srv=$build/chronik-server
gb=$build/bench/chronik-group-bench
pb=$build/bench/chronik-bench
secs=${BENCH_SECONDS:-10}
mkdir -p .cache/bench
work=$(mktemp -d "$root/.cache/bench/groups-XXXXXX")
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
api=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
CHRONIK_DATA_DIR=$work/data CHRONIK_KAFKA_PORT=$port CHRONIK_UNIFIED_API_PORT=$api CHRONIK_BIND=127.0.0.1 \
    CHRONIK_ADVERTISED_ADDR=127.0.0.1 CHRONIK_WAL_PROFILE=low CHRONIK_METRICS_PORT=0 \
    "$srv" start >"$work/server.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
    sleep 0.1
done
b=127.0.0.1:$port
r() { timeout 180 "$@" 2>/dev/null | grep '^RESULT' | tail -1; }
val() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
# topics: 12 partitions for the group runs
"$pb" produce --brokers "$b" --topic g12 --size 100 --count 12 --acks all --partitions 12 >/dev/null 2>&1
j1=$(r "$gb" join --brokers "$b" --topic g12 --consumers 1 --rounds 5)
j10=$(r "$gb" join --brokers "$b" --topic g12 --consumers 10 --rounds 3)
cm=$(r "$gb" commit --brokers "$b" --topic g12 --count 3000)
off=$(r "$pb" produce --brokers "$b" --topic idem-off --size 256 --duration "$secs" --acks all --linger-ms 5 \
      --batch-size 1000000 --partitions 3 -X enable.idempotence=false)
on=$(r "$pb" produce --brokers "$b" --topic idem-on --size 256 --duration "$secs" --acks all --linger-ms 5 \
      --batch-size 1000000 --partitions 3 -X enable.idempotence=true)
ratio() { /usr/bin/python3 -c "import sys; a,b=sys.argv[1:]; print('%.2f' % (float(a)/float(b)) if a and b and float(b) else 'n/a')" "$1" "$2"; }
echo "### Consumer groups and idempotence (WAL low, $(date -u +%Y-%m-%dT%H:%MZ))"
echo
echo "| Figure | Value | Baseline (same run) | Ratio |"
echo "|---|---|---|---|"
echo "| subscribe → stable group, 1 consumer, 12 partitions | p50 $(val "$j1" p50_ms) ms, max $(val "$j1" max_ms) ms (5 groups) | - | - |"
echo "| subscribe → stable group, 10 consumers, 12 partitions | p50 $(val "$j10" p50_ms) ms, max $(val "$j10" max_ms) ms (3 groups) | - | - |"
echo "| synchronous offset commits, one consumer | $(val "$cm" commits_per_s) commits/s, p50 $(val "$cm" p50_ms) ms, p99 $(val "$cm" p99_ms) ms | WAL window 2 ms | p50 / window: $(ratio "$(val "$cm" p50_ms)" 2) |"
echo "| produce 256 B acks=all, idempotence on | $(val "$on" msgs_per_s) msg/s | idempotence off: $(val "$off" msgs_per_s) msg/s | $(ratio "$(val "$on" msgs_per_s)" "$(val "$off" msgs_per_s)") |"
echo
echo "Commands: \`chronik-group-bench join --consumers 1|10 --topic g12\`, \`chronik-group-bench commit --count 3000\`,"
echo "\`chronik-bench produce --size 256 --acks all -X enable.idempotence=false|true\` against one server."
