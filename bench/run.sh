#!/usr/bin/env bash
# Chronik benchmark: throughput, latency and memory of a release build, each figure next
# to a baseline of this machine measured seconds before it (shared hosts drift).
#
#   bench/run.sh BUILD_DIR            (`make bench` runs it on the release build)
#
# Needs BUILD_DIR/chronik-server, BUILD_DIR/bench/chronik-bench (librdkafka) and
# BUILD_DIR/bench/chronik-baseline. Runs, in about 4 minutes on 2 cores:
#   1. WAL profile low, then medium (a fresh server each): produce 256 B and 1 KiB records
#      with acks=1 and acks=all (one librdkafka producer, max rate); before each run the
#      baseline it is compared with: loopback TCP bandwidth for acks=1, fdatasync'd
#      sequential write bandwidth for acks=all.
#   2. low: produce latency at half the peak acks=all 1 KiB rate, against the fdatasync
#      latency measured just before and the target (profile interval + 5 ms).
#   3. medium: consume the 1 KiB acks=1 records (page cache) against loopback bandwidth.
#   4. a fresh medium server: 100 partitions under max-rate 1 KiB acks=1 load; the
#      broker's VmHWM (peak RSS) from /proc.
# Prints a Markdown table and the commands; keeps results and logs in the run folder
# (.cache/bench/run-*, data removed at the end). Every step is bounded by a time limit;
# all traffic stays on 127.0.0.1.
#
# Knobs (environment): BENCH_SECONDS (produce run length, 10), BENCH_PARTITIONS (3),
# BENCH_LATENCY_SECONDS (10), BENCH_RSS_SECONDS (10), BENCH_KEEP_DATA=1,
# BENCH_PERF=1 (perf record -g the broker during the 256 B acks=1 low-profile run).
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
server_bin=$build/chronik-server
bench_bin=$build/bench/chronik-bench
base_bin=$build/bench/chronik-baseline
for b in "$server_bin" "$bench_bin" "$base_bin"; do
    if [ ! -x "$b" ]; then
        echo "bench: $b not built (make build; chronik-bench needs librdkafka-dev)" >&2
        exit 1
    fi
done
PY=/usr/bin/python3
SECS=${BENCH_SECONDS:-10}
PARTS=${BENCH_PARTITIONS:-3}
LAT_SECS=${BENCH_LATENCY_SECONDS:-10}
RSS_SECS=${BENCH_RSS_SECONDS:-10}

mkdir -p "$root/.cache/bench"
work=$(mktemp -d "$root/.cache/bench/run-XXXXXX")
results=$work/results.txt   # "LABEL RESULT k=v ..." lines
commands=$work/commands.txt
: >"$results"
: >"$commands"
server_pid=""
server_name=""
server_profile=""
: >"$work/notes.txt"

log() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 150); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$server_pid" 2>/dev/null; then
            log "server $server_pid ignored SIGTERM for 15 s; killing it"
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

# start_server NAME PROFILE: a fresh data folder and free ports; waits for "listening".
start_server() {
    local name=$1 profile=$2
    server_name=$name
    server_profile=$profile
    local data=$work/data-$name
    mkdir -p "$data"
    port=$(free_port)
    local api_port
    api_port=$(free_port)
    brokers=127.0.0.1:$port
    echo "CHRONIK_DATA_DIR=<run>/data-$name CHRONIK_KAFKA_PORT=$port" \
         "CHRONIK_ADVERTISED_ADDR=127.0.0.1 CHRONIK_WAL_PROFILE=$profile CHRONIK_METRICS_PORT=0" \
         "CHRONIK_UNIFIED_API_PORT=$api_port chronik-server start" >>"$commands"
    CHRONIK_DATA_DIR=$data CHRONIK_KAFKA_PORT=$port CHRONIK_ADVERTISED_ADDR=127.0.0.1 \
        CHRONIK_WAL_PROFILE=$profile CHRONIK_METRICS_PORT=0 CHRONIK_UNIFIED_API_PORT=$api_port \
        "$server_bin" start >"$work/server-$name.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 300); do
        if grep -q listening "$work/server-$name.log" 2>/dev/null; then
            log "server $name (WAL $profile) up on $brokers, pid $server_pid"
            return 0
        fi
        if ! kill -0 "$server_pid" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    cat "$work/server-$name.log" >&2
    echo "bench: server $name did not start" >&2
    exit 1
}

# CPU seconds (user + system) the server has used so far, or "" when it is not running.
server_cpu() {
    [ -n "$server_pid" ] && [ -r "/proc/$server_pid/stat" ] || return 0
    # fields 14 and 15 after the ")" that ends the command name
    sed 's/.*) //' "/proc/$server_pid/stat" | awk -v hz="$(getconf CLK_TCK)" \
        '{ printf "%.2f", ($12 + $13) / hz }'
}

# run LABEL TIMEOUT_S COMMAND...: runs a bench tool, keeps its RESULT line under LABEL,
# and the broker's CPU seconds during it under srv-LABEL.
run() {
    local label=$1 limit=$2
    shift 2
    local out=$work/$label.out
    echo "${*#$build/}" | sed "s|$work|<run>|g" >>"$commands"
    local cpu0 cpu1
    cpu0=$(server_cpu)
    if ! timeout --signal=KILL "$limit" "$@" >"$out" 2>"$work/$label.err"; then
        log "$label failed (see $work/$label.err)"
        tail -n 5 "$work/$label.err" >&2 || true
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

# get LABEL KEY: a value from a stored RESULT line ("" if absent).
get() {
    awk -v l="$1" -v k="$2" '$1 == l { for (i = 3; i <= NF; i++) { split($i, a, "=");
        if (a[1] == k) { v = substr($i, length(k) + 2) } } } END { print v }' "$results"
}

vmhwm_mib() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null; }
vmrss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null; }

# ensure_server: restarts the server (fresh data) if it died, e.g. killed from outside
# on a shared machine; the restart is noted in the report.
ensure_server() {
    if ! kill -0 "$server_pid" 2>/dev/null; then
        log "server $server_name exited unexpectedly; last lines of its log:"
        tail -n 5 "$work/server-$server_name.log" >&2 || true
        echo "server $server_name exited during the run before $1; restarted" >>"$work/notes.txt"
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
        start_server "$server_name-r$RANDOM" "$server_profile"
        return 1
    fi
    return 0
}

produce() { # produce LABEL TOPIC SIZE ACKS [extra args]
    local label=$1 topic=$2 size=$3 acks=$4
    shift 4
    ensure_server "$label" || true
    run "$label" $((SECS + 120)) "$bench_bin" produce --brokers "$brokers" --topic "$topic" \
        --size "$size" --duration "$SECS" --acks "$acks" --linger-ms 5 --batch-size 1000000 \
        --compression none --partitions "$PARTS" "$@"
    if ! ensure_server "$label (retry)"; then
        sed -i "/^$label /d" "$results"
        run "$label" $((SECS + 120)) "$bench_bin" produce --brokers "$brokers" --topic "$topic" \
            --size "$size" --duration "$SECS" --acks "$acks" --linger-ms 5 \
            --batch-size 1000000 --compression none --partitions "$PARTS" "$@"
    fi
}

# Dirty pages of the previous run would otherwise be written back during the next one.
settle() { timeout 60 sync || true; }

baseline_net() { settle; run "$1" 30 "$base_bin" net --seconds 2; }
baseline_disk() { # 64 KiB appends as specified, and 1 MiB appends (nearer raw bandwidth)
    settle
    run "$1" 30 "$base_bin" disk --dir "$work" --seconds 2
    run "$1-1m" 30 "$base_bin" disk --dir "$work" --seconds 2 --write-size 1048576
}

# ---- 0. machine
log "run folder: $work"
{
    echo "nproc=$(nproc) mem_total_mib=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 }' /proc/meminfo)" \
         "kernel=$(uname -r) librdkafka=$(pkg-config --modversion rdkafka 2>/dev/null || echo '?')"
} >"$work/machine.txt"

# ---- 1/2. WAL profile low and medium
for profile in low medium; do
    start_server "$profile" "$profile"
    for size in 256 1024; do
        for acks in 1 all; do
            label=p-$profile-$size-$acks
            if [ "$acks" = 1 ]; then baseline_net "b-$label"; else baseline_disk "b-$label"; fi
            perf_pid=""
            if [ "$profile" = low ] && [ "$size" = 256 ] && [ "$acks" = 1 ] &&
               [ "${BENCH_PERF:-0}" = 1 ] && command -v perf >/dev/null; then
                # Samples the broker for most of the run (software clock: VMs often lack
                # hardware counters); perf report -i <run>/perf.data reads it.
                perf record -e cpu-clock -F 499 --call-graph dwarf,8192 -o "$work/perf.data" \
                    -p "$server_pid" \
                    -- sleep $((SECS > 3 ? SECS - 2 : 1)) >"$work/perf.log" 2>&1 &
                perf_pid=$!
            fi
            produce "$label" "t-$size-$acks" "$size" "$acks"
            if [ -n "$perf_pid" ]; then
                wait "$perf_pid" 2>/dev/null || true
            fi
        done
    done
    if [ "$profile" = low ]; then
        peak=$(get p-low-1024-all msgs_per_s)
        rate=$(( ${peak:-0} / 2 ))
        [ "$rate" -ge 100 ] || rate=100
        baseline_disk b-lat-low
        ensure_server lat-low || true
        run lat-low $((LAT_SECS + 120)) "$bench_bin" produce --brokers "$brokers" \
            --topic t-lat --size 1024 --duration "$LAT_SECS" --acks all --linger-ms 1 \
            --batch-size 1000000 --compression none --partitions "$PARTS" --rate "$rate"
        # and at a quarter of the peak, to show where the disk's fsync time starts to dominate
        run lat-q $((LAT_SECS + 120)) "$bench_bin" produce --brokers "$brokers" \
            --topic t-lat-q --size 1024 --duration "$LAT_SECS" --acks all --linger-ms 1 \
            --batch-size 1000000 --compression none --partitions "$PARTS" --rate "$((rate / 2))"
    else
        count=$(get p-medium-1024-1 delivered)
        baseline_net b-consume
        ensure_server consume || true
        run consume 180 "$bench_bin" consume --brokers "$brokers" --topic t-1024-1 \
            --count "${count:-1}" --timeout 120
    fi
    echo "$profile $(vmhwm_mib "$server_pid")" >>"$work/hwm.txt"
    stop_server
done

# ---- 4. RSS with 100 partitions under load
start_server rss medium
rss_before=$(vmrss_mib "$server_pid")
( # sample VmRSS every second while the load runs
    for _ in $(seq 1 $((RSS_SECS + 30))); do
        vmrss_mib "$server_pid" >>"$work/rss-samples.txt" && echo >>"$work/rss-samples.txt"
        sleep 1
    done
) &
sampler=$!
run rss $((RSS_SECS + 120)) "$bench_bin" produce --brokers "$brokers" --topic t-rss \
    --size 1024 --duration "$RSS_SECS" --acks 1 --linger-ms 5 --batch-size 1000000 \
    --compression none --partitions 100
rss_hwm=$(vmhwm_mib "$server_pid")
rss_after=$(vmrss_mib "$server_pid")
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
stop_server

# ---- report
f() { # f LABEL KEY: a number or "n/a"
    local v
    v=$(get "$1" "$2")
    echo "${v:-n/a}"
}
ratio() { # ratio A B -> A/B with 2 decimals, or n/a
    "$PY" -c 'import sys
try:
    a, b = float(sys.argv[1]), float(sys.argv[2]); print("%.2f" % (a / b) if b else "n/a")
except ValueError:
    print("n/a")' "$1" "$2"
}
cmp() { # cmp VALUE OP LIMIT -> yes/no/n/a
    "$PY" -c 'import sys
try:
    v, l = float(sys.argv[1]), float(sys.argv[3])
    print("yes" if (v >= l if sys.argv[2] == ">=" else v <= l) else "no")
except ValueError:
    print("n/a")' "$1" "$2" "$3"
}
cpu() { # cpu LABEL [ELAPSED_KEY]: "0.93 / 0.85 cores" (CPU seconds over elapsed seconds)
    "$PY" -c 'import sys
try:
    el = float(sys.argv[3])
    print("%.2f / %.2f cores" % (float(sys.argv[1]) / el, float(sys.argv[2]) / el))
except (ValueError, ZeroDivisionError):
    print("n/a")' "$(f "srv-$1" cpu_s)" "$(f "$1" client_cpu_s)" "$(f "$1" "${2:-elapsed_s}")"
}
interval() { case $1 in low) echo 2 ;; medium) echo 10 ;; high) echo 50 ;; ultra) echo 100 ;; esac; }

report=$work/report.md
{
    echo "## Chronik benchmark ($(date -u +%Y-%m-%dT%H:%MZ))"
    echo
    echo "Machine: $(cat "$work/machine.txt"). Producer: one librdkafka producer, linger.ms=5,"
    echo "batch.size=1000000, no compression, $PARTS partitions, ${SECS} s per run."
    echo
    echo "| Figure | Value | Baseline measured just before | Ratio | Target | Met | CPU broker / client |"
    echo "|---|---|---|---|---|---|---|"
    for profile in low medium; do
        for size in 256 1024; do
            for acks in 1 all; do
                l=p-$profile-$size-$acks
                mps=$(f "$l" msgs_per_s)
                mbs=$(f "$l" mb_per_s)
                st=$(f "$l" status)
                if [ "$acks" = 1 ]; then
                    b=$(f "b-$l" mb_per_s)
                    bl="loopback TCP $b MB/s"
                else
                    b=$(f "b-$l" mb_per_s)
                    bl="fdatasync'd appends: 64 KiB $b MB/s, 1 MiB $(f "b-$l-1m" mb_per_s) MB/s"
                fi
                tgt="-"
                met="-"
                if [ "$size" = 256 ] && [ "$acks" = 1 ]; then
                    tgt=">= 500000 msg/s"
                    met=$(cmp "$mps" ">=" 500000)
                elif [ "$size" = 1024 ] && [ "$acks" = all ]; then
                    tgt=">= 0.70 x fsync bandwidth"
                    met=$(cmp "$(ratio "$mbs" "$b")" ">=" 0.70)
                fi
                [ "$st" = ok ] || met="$met (run: $st)"
                r=$(ratio "$mbs" "$b")
                [ "$acks" = 1 ] || r="$r (1 MiB: $(ratio "$mbs" "$(f "b-$l-1m" mb_per_s)"))"
                echo "| produce $size B acks=$acks, WAL $profile | $mps msg/s, $mbs MB/s" \
                     "(p50 $(f "$l" p50_ms) ms, p99 $(f "$l" p99_ms) ms) | $bl |" \
                     "$r | $tgt | $met | $(cpu "$l") |"
            done
        done
    done
    iv=$(interval low)
    p99=$(f lat-low p99_ms)
    echo "| produce latency, 1 KiB acks=all, WAL low, linger.ms=1, at $(f lat-low target_rate) msg/s" \
         "(half of peak) | p50 $(f lat-low p50_ms) ms, p99 $p99 ms, p99.9 $(f lat-low p999_ms) ms," \
         "max $(f lat-low max_ms) ms; achieved $(f lat-low msgs_per_s) msg/s |" \
         "fdatasync p50 $(f b-lat-low fsync_p50_ms) ms, p99 $(f b-lat-low fsync_p99_ms) ms |" \
         "p99 / fsync p99: $(ratio "$p99" "$(f b-lat-low fsync_p99_ms)") |" \
         "p99 <= $iv + 5 ms | $(cmp "$p99" "<=" $((iv + 5))) | $(cpu lat-low) |"
    p99q=$(f lat-q p99_ms)
    echo "| produce latency, 1 KiB acks=all, WAL low, linger.ms=1, at $(f lat-q target_rate) msg/s" \
         "(quarter of peak) | p50 $(f lat-q p50_ms) ms, p99 $p99q ms, p99.9 $(f lat-q p999_ms) ms," \
         "max $(f lat-q max_ms) ms; achieved $(f lat-q msgs_per_s) msg/s |" \
         "fdatasync p50 $(f b-lat-low fsync_p50_ms) ms, p99 $(f b-lat-low fsync_p99_ms) ms |" \
         "p99 / fsync p99: $(ratio "$p99q" "$(f b-lat-low fsync_p99_ms)") |" \
         "p99 <= $iv + 5 ms | $(cmp "$p99q" "<=" $((iv + 5))) | $(cpu lat-q) |"
    cmb=$(f consume mb_per_s)
    cbase=$(f b-consume mb_per_s)
    echo "| consume 1 KiB records (page cache), WAL medium, $(f consume consumed) records |" \
         "$(f consume msgs_per_s) msg/s, $cmb MB/s | loopback TCP $cbase MB/s |" \
         "$(ratio "$cmb" "$cbase") | >= 1000 MB/s | $(cmp "$cmb" ">=" 1000) |" \
         "$(cpu consume since_assign_s) |"
    echo "| broker peak RSS (VmHWM), 100 partitions, 1 KiB acks=1 at max rate" \
         "($(f rss msgs_per_s) msg/s) | ${rss_hwm:-n/a} MiB (RSS idle ${rss_before:-?} MiB," \
         "after ${rss_after:-?} MiB) | - | - | <= 256 MiB | $(cmp "${rss_hwm:-n/a}" "<=" 256) |" \
         "$(cpu rss) |"
    echo
    echo "Peak RSS of the throughput servers (VmHWM, MiB): $(tr '\n' ' ' <"$work/hwm.txt")."
    echo "Latencies of max-rate runs include queueing in the producer; see the half-rate row."
    echo "CPU: CPU-seconds used during the run over its elapsed seconds (2 cores in all)."
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
# consumer groups and idempotence: their own server and section
if [ -x "$build/bench/chronik-group-bench" ]; then
    log "groups and idempotence"
    { echo; bash "$root/bench/groups.sh" "$build"; } >>"$report"
fi
cat "$report"
cp "$report" "$root/.cache/bench/last-report.md"
cp "$results" "$root/.cache/bench/last-results.txt"
log "report: $report (copied to .cache/bench/last-report.md)"
