#!/usr/bin/env bash
# Chronik SQL (columnar) benchmarks, part of `make bench`. Each figure is printed next to
# a baseline measured on this machine in the same run.
#
#   bench/sql.sh BUILD_DIR
#
# Needs BUILD_DIR/chronik-server and BUILD_DIR/bench/chronik-sql-bench (librdkafka).
#   1. baseline: DuckDB's plain appender filling an in-memory table shaped like the
#      server's hot table with the same N events, values pre-built (no server running);
#   2. a server with CHRONIK_COLUMNAR_FLUSH_INTERVAL_MS=2000: create topic `events`
#      (3 partitions, columnar.enabled=true), produce N JSON events with librdkafka and
#      wait until `SELECT count(*) FROM events` says N (ingest, records/s);
#   3. wait until every row is in Parquet (hot rows 0), then 3 queries x (3 warm-ups + 30
#      runs) through POST /_sql, alternating with the same queries in the tool's own
#      DuckDB over read_parquet([files in MANIFEST]) (p50/p99, overhead ratio);
#   4. a fresh server with the default flush settings: 200 probes produced one at a time
#      (acks=all) under ~5000 events/s of background load, each polled every 2 ms with
#      `SELECT count(*) FROM events WHERE probe_id = X` (produce -> visible in SQL).
# Prints a Markdown section; keeps it, the RESULT lines and the logs in the run folder
# (.cache/bench/sql-*; data removed at the end unless BENCH_KEEP_DATA=1) and copies the
# report to .cache/bench/last-sql-report.md. Every step has a time limit; loopback only.
#
# Knobs (environment): SQL_BENCH_RECORDS (2100000), SQL_BENCH_RUNS (30),
# SQL_BENCH_WARMUP (3), SQL_BENCH_PROBES (200), SQL_BENCH_BG_RATE (5000),
# SQL_BENCH_SEED (42), SQL_BENCH_COMPRESSION (none; or lz4), BENCH_KEEP_DATA=1.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
server_bin=$build/chronik-server
tool=$build/bench/chronik-sql-bench
for b in "$server_bin" "$tool"; do
    if [ ! -x "$b" ]; then
        echo "sql bench: $b not built (make build; chronik-sql-bench needs librdkafka-dev)" >&2
        exit 1
    fi
done
PY=/usr/bin/python3
N=${SQL_BENCH_RECORDS:-2100000}
RUNS=${SQL_BENCH_RUNS:-30}
WARMUP=${SQL_BENCH_WARMUP:-3}
PROBES=${SQL_BENCH_PROBES:-200}
BG_RATE=${SQL_BENCH_BG_RATE:-5000}
SEED=${SQL_BENCH_SEED:-42}
COMP=${SQL_BENCH_COMPRESSION:-none}
TOPIC=events

mkdir -p "$root/.cache/bench"
work=$(mktemp -d "$root/.cache/bench/sql-XXXXXX")
results=$work/results.txt
commands=$work/commands.txt
: >"$results"
: >"$commands"
: >"$work/notes.txt"
server_pid=""

log() { printf '%s sql bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 150); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$server_pid" 2>/dev/null; then
            log "server $server_pid ignored SIGTERM for 15 s; killing it"
            echo "a server ignored SIGTERM for 15 s and was killed" >>"$work/notes.txt"
            kill -KILL "$server_pid" 2>/dev/null || true
        fi
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}

cleanup() {
    stop_server
    if [ "${BENCH_KEEP_DATA:-0}" != 1 ]; then
        rm -rf "$work"/data-*
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server NAME [VAR=VALUE...]: a fresh data folder and free ports, extra environment;
# waits for "listening".
start_server() {
    local name=$1
    shift
    data=$work/data-$name
    mkdir -p "$data"
    port=$(free_port)
    api_port=$(free_port)
    brokers=127.0.0.1:$port
    api=127.0.0.1:$api_port
    echo "${*:+$* }CHRONIK_DATA_DIR=<run>/data-$name CHRONIK_KAFKA_PORT=<port>" \
         "CHRONIK_UNIFIED_API_PORT=<port2> CHRONIK_BIND=127.0.0.1 CHRONIK_UNIFIED_API_BIND=127.0.0.1" \
         "CHRONIK_ADVERTISED_ADDR=127.0.0.1" \
         "CHRONIK_WAL_PROFILE=low CHRONIK_METRICS_PORT=0 chronik-server start" >>"$commands"
    env "$@" CHRONIK_DATA_DIR="$data" CHRONIK_KAFKA_PORT="$port" CHRONIK_UNIFIED_API_PORT="$api_port" \
        CHRONIK_BIND=127.0.0.1 CHRONIK_UNIFIED_API_BIND=127.0.0.1 CHRONIK_ADVERTISED_ADDR=127.0.0.1 \
        CHRONIK_WAL_PROFILE=low \
        CHRONIK_METRICS_PORT=0 "$server_bin" start >"$work/server-$name.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 300); do
        if grep -q "listening:" "$work/server-$name.log" 2>/dev/null; then
            log "server $name up (kafka $brokers, api $api, pid $server_pid)"
            return 0
        fi
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$work/server-$name.log" >&2
    echo "sql bench: server $name did not start" >&2
    exit 1
}

server_cpu() {
    [ -n "$server_pid" ] && [ -r "/proc/$server_pid/stat" ] || return 0
    sed 's/.*) //' "/proc/$server_pid/stat" | awk -v hz="$(getconf CLK_TCK)" \
        '{ printf "%.2f", ($12 + $13) / hz }'
}

# run LABEL TIMEOUT_S COMMAND...: keeps the tool's RESULT line under LABEL and the
# server's CPU seconds during it under srv-LABEL.
run() {
    local label=$1 limit=$2
    shift 2
    local out=$work/$label.out
    echo "${*#$build/}" | sed -e "s|$work|<run>|g" -e "s|--brokers 127.0.0.1:[0-9]*|--brokers 127.0.0.1:<port>|g" \
        -e "s|--api 127.0.0.1:[0-9]*|--api 127.0.0.1:<port2>|g" \
        >>"$commands"
    local cpu0 cpu1
    cpu0=$(server_cpu)
    if ! timeout --signal=KILL "$limit" "$@" >"$out" 2>"$work/$label.err"; then
        log "$label failed or gave a wrong answer (see $work/$label.err)"
        tail -n 5 "$work/$label.err" >&2 || true
        echo "$label: the tool exited with an error (status in its RESULT line)" >>"$work/notes.txt"
    fi
    cpu1=$(server_cpu)
    if [ -n "$cpu0" ] && [ -n "$cpu1" ]; then
        echo "srv-$label RESULT cpu_s=$("$PY" -c "print('%.2f' % ($cpu1 - $cpu0))")" >>"$results"
    fi
    grep -v '^RESULT ' "$out" >&2 || true
    local line
    line=$(grep '^RESULT ' "$out" | tail -1 || true)
    echo "$label ${line:-RESULT status=missing}" >>"$results"
}

get() {
    awk -v l="$1" -v k="$2" '$1 == l { for (i = 3; i <= NF; i++) { split($i, a, "=");
        if (a[1] == k) { v = substr($i, length(k) + 2) } } } END { print v }' "$results"
}
f() { local v; v=$(get "$1" "$2"); echo "${v:-n/a}"; }

# columnar_stat KEY: capabilities.columnar.KEY of the topic ("" when unavailable).
columnar_stat() {
    curl -s --max-time 5 "http://$api/topics/$TOPIC" 2>/dev/null | "$PY" -c 'import json, sys
try:
    print(json.load(sys.stdin)["capabilities"]["columnar"].get(sys.argv[1], ""))
except Exception:
    print("")' "$1"
}

# alive STEP: notes (and says) that the server exited during STEP, e.g. killed from outside
# on a shared machine; the step's figures are then not to be trusted.
alive() {
    if ! kill -0 "$server_pid" 2>/dev/null; then
        log "the server exited during $1; last lines of its log:"
        tail -n 5 "$work"/server-*.log >&2 || true
        echo "the server exited during $1 (its figures are void)" >>"$work/notes.txt"
    fi
}

log "run folder: $work ($N records)"
echo "nproc=$(nproc) mem_total_mib=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 }' /proc/meminfo)" \
     "kernel=$(uname -r) duckdb=$(cut -d' ' -f1 "$root/third_party/duckdb/VERSION" 2>/dev/null || echo '?')" \
     "librdkafka=$(pkg-config --modversion rdkafka 2>/dev/null || echo '?')" \
     "load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)" >"$work/machine.txt"

# ---- 1. baseline: the DuckDB appender
log "baseline: DuckDB appender, $N rows"
run appender 300 "$tool" appender --count "$N" --seed "$SEED"

# ---- 2. ingest
start_server ingest CHRONIK_COLUMNAR_FLUSH_INTERVAL_MS=2000
log "ingest: $N events"
run ingest 400 "$tool" ingest --brokers "$brokers" --api "$api" --topic "$TOPIC" --count "$N" \
    --seed "$SEED" --compression "$COMP" --partitions 3 --timeout 300

alive ingest

# ---- 3. queries, once every row is in Parquet
log "waiting until all rows are in Parquet files"
t0=$(date +%s.%N)
hot=""
cold=""
for _ in $(seq 1 600); do
    hot=$(columnar_stat hot_rows)
    cold=$(columnar_stat cold_rows)
    if [ "$hot" = 0 ] && [ "$cold" = "$N" ]; then
        break
    fi
    sleep 0.2
done
cold_wait=$("$PY" -c "import time; print('%.1f' % (time.time() - $t0))")
echo "coldwait RESULT wait_s=$cold_wait hot_rows=${hot:-?} cold_rows=${cold:-?}" >>"$results"
if [ "$hot" != 0 ] || [ "$cold" != "$N" ]; then
    log "not all rows reached Parquet within 120 s (hot $hot, cold $cold); querying anyway"
    echo "not all rows were in Parquet after 120 s (hot rows $hot, cold rows $cold)" >>"$work/notes.txt"
fi
log "queries: $WARMUP warm-ups + $RUNS runs each"
run query 600 "$tool" query --api "$api" --topic "$TOPIC" \
    --manifest "$data/columnar/$TOPIC/MANIFEST" --expect "$N" --runs "$RUNS" --warmup "$WARMUP"
alive query
cold_bytes=$(columnar_stat cold_bytes)
rss_ingest=$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$server_pid/status" 2>/dev/null || true)
stop_server

# ---- 4. freshness
start_server fresh
log "freshness: $PROBES probes under $BG_RATE events/s"
run fresh 300 "$tool" fresh --brokers "$brokers" --api "$api" --topic "$TOPIC" --probes "$PROBES" \
    --bg-rate "$BG_RATE" --poll-ms 2 --seed "$SEED" --timeout 200
alive fresh
stop_server

echo "load_at_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$work/machine.txt"

# ---- report
ratio() {
    "$PY" -c 'import sys
try:
    a, b = float(sys.argv[1]), float(sys.argv[2]); print("%.2f" % (a / b) if b else "n/a")
except ValueError:
    print("n/a")' "$1" "$2"
}
cmp() {
    "$PY" -c 'import sys
try:
    v, l = float(sys.argv[1]), float(sys.argv[3])
    print("yes" if (v >= l if sys.argv[2] == ">=" else v <= l) else "no")
except ValueError:
    print("n/a")' "$1" "$2" "$3"
}
cores() { # cores CPU_S ELAPSED_S
    "$PY" -c 'import sys
try:
    print("%.2f" % (float(sys.argv[1]) / float(sys.argv[2])))
except (ValueError, ZeroDivisionError):
    print("n/a")' "$1" "$2"
}
num() { # 1234567 -> 1,234,567 (n/a stays)
    "$PY" -c 'import sys
try:
    print("{:,}".format(int(float(sys.argv[1]))))
except ValueError:
    print(sys.argv[1])' "$1"
}
st() { local s; s=$(f "$1" status); [ "$s" = ok ] && echo "" || echo " (run: $s)"; }

e2e=$(f ingest e2e_rps)
app=$(f appender rows_per_s)
e2e_ratio=$(ratio "$e2e" "$app")
report=$work/report.md
{
    echo "### SQL (columnar), $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "Machine: $(tr '\n' ' ' <"$work/machine.txt"| sed 's/ $//'). Client and server share the machine."
    echo "Data: $(num "$N") generated JSON events (10 fields, $(f ingest bytes) bytes of JSON, seed $SEED),"
    echo "topic \`$TOPIC\`, 3 partitions, WAL profile low; producer acks=1, linger.ms=5,"
    echo "batch.size=1000000, compression $COMP."
    echo
    echo "| Figure | Chronik | Baseline (same run) | Ratio | Target | Met |"
    echo "|---|---|---|---|---|---|"
    echo "| ingest, first produce → all N visible in SQL (lag 0, \`count(*)\` = N) | $(num "$e2e") records/s ($(f ingest e2e_s) s;" \
         "all visible $(f ingest visible_after_ack_ms) ms after the last ack; server $(cores "$(f srv-ingest cpu_s)" "$(f ingest e2e_s)") cores)$(st ingest) |" \
         "DuckDB appender: $(num "$app") rows/s ($(f appender elapsed_s) s)$(st appender) | $e2e_ratio |" \
         ">= 0.5 | $(cmp "$e2e_ratio" ">=" 0.5) |"
    us_srv=$("$PY" -c "import sys
try: print('%.1f' % (float(sys.argv[1]) / float(sys.argv[2]) * 1e6))
except Exception: print('n/a')" "$(f srv-ingest cpu_s)" "$N")
    us_app=$("$PY" -c "import sys
try: print('%.1f' % (float(sys.argv[1]) / float(sys.argv[2]) * 1e6))
except Exception: print('n/a')" "$(f appender cpu_s)" "$N")
    echo "| ingest, CPU per record (server CPU-seconds during the ingest / N) | $us_srv µs |" \
         "DuckDB appender: $us_app µs | $(ratio "$us_app" "$us_srv") | - | - |"
    echo "| ingest, produce only (first produce → last ack) | $(num "$(f ingest produce_rps)") records/s" \
         "($(f ingest produce_s) s) | - | - | - | - |"
    for q in group_by filter point; do
        case $q in
            group_by) qt="\`SELECT city, COUNT(*), AVG(amount) FROM events GROUP BY city\`" ;;
            filter) qt="\`SELECT count(*), sum(amount) FROM events WHERE status = 'refunded' AND amount > 150\`" ;;
            point) qt="\`SELECT * FROM events WHERE user_id = 4242 LIMIT 10\`" ;;
        esac
        r=$(f query "${q}_ratio")
        agree=$(f query "${q}_agree")
        [ "$agree" = 1 ] && agree="" || agree=" **answers differ**"
        echo "| $qt, all cold | p50 $(f query "${q}_p50_ms") ms, p99 $(f query "${q}_p99_ms") ms" \
             "(server-side execution_time_ms p50 $(f query "${q}_exec_p50_ms"))$agree |" \
             "DuckDB over the same Parquet files: p50 $(f query "${q}_direct_p50_ms") ms," \
             "p99 $(f query "${q}_direct_p99_ms") ms (prepared + executed, as the server runs it:" \
             "p50 $(f query "${q}_prep_p50_ms") ms) | $r | <= 1.2 | $(cmp "$r" "<=" 1.2) |"
    done
    echo "| freshness: delivery report (acks=all) → visible in SQL | p50 $(f fresh ack_vis_p50_ms) ms," \
         "p99 $(f fresh ack_vis_p99_ms) ms, max $(f fresh ack_vis_max_ms) ms ($(f fresh probes) probes," \
         "$(f fresh missing) missing)$(st fresh) | - | - | p99 <= 1000 ms | $(cmp "$(f fresh ack_vis_p99_ms)" "<=" 1000) |"
    echo "| freshness: produce() → visible in SQL | p50 $(f fresh send_vis_p50_ms) ms," \
         "p99 $(f fresh send_vis_p99_ms) ms, max $(f fresh send_vis_max_ms) ms (produce → ack p50" \
         "$(f fresh send_ack_p50_ms) ms, p99 $(f fresh send_ack_p99_ms) ms) | - | - | - | - |"
    echo
    echo "Upstream's published figure for 2.1 M records, SQL p50 43 ms (a 3-node cluster, other"
    echo "hardware), beside ours on 2 shared cores: GROUP BY p50 $(f query group_by_p50_ms) ms," \
         "filter p50 $(f query filter_p50_ms) ms, point lookup p50 $(f query point_p50_ms) ms."
    echo
    echo "Query state: $(f coldwait hot_rows) hot rows, $(f coldwait cold_rows) cold rows in" \
         "$(f query files) Parquet files ($(num "${cold_bytes:-0}") bytes; all cold $(f coldwait wait_s) s" \
         "after ingest ended, CHRONIK_COLUMNAR_FLUSH_INTERVAL_MS=2000). p99 of 30 runs is the slowest run."
    echo "Freshness: background load $(f fresh bg_achieved) events/s (target $BG_RATE, acks=1), a fresh"
    echo "server with the default flush settings; each probe polled every 2 ms from its ack on"
    echo "(poll round trip p50 $(f fresh poll_rtt_p50_ms) ms, p99 $(f fresh poll_rtt_p99_ms) ms; visible at the" \
         "first poll: $(f fresh first_poll) of $(f fresh probes)); t1 is when the answer saying 1 arrived."
    echo "Ingest: server CPU $(f srv-ingest cpu_s) s, client CPU $(f ingest client_cpu_s) s; columnar lag"
    echo "peaked at $(num "$(f ingest max_lag)") records; server peak RSS ${rss_ingest:-?} MiB. The server also"
    echo "parses the JSON and writes (and group-commits) the log; the appender baseline does neither."
    if [ -s "$work/notes.txt" ]; then
        echo
        echo "Notes: $(tr '\n' ';' <"$work/notes.txt")"
    fi
    echo
    echo "Commands (ports were free ones picked at start; <run> is the run folder):"
    echo
    echo '```'
    cat "$commands"
    echo '```'
} >"$report"
cat "$report"
cp "$report" "$root/.cache/bench/last-sql-report.md"
cp "$results" "$root/.cache/bench/last-sql-results.txt"
log "report: $report (copied to .cache/bench/last-sql-report.md)"
