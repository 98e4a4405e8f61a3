#!/usr/bin/env bash
# Cost as connections grow: wrk keep-alive 100-byte requests at 64, 1,000 and 10,000 concurrent
# client connections, straight to nginx and through lynxio (one worker, io_uring, pinned to
# PROXY_CORE; wrk -t1 and nginx share LOAD_CORE). Per cell, over a window of DURATION seconds
# that starts WARMUP seconds into the wrk run (every connection open, the proxy grown to its
# working size): requests/s (counted by nginx), CPU per request (utime+stime from /proc over
# the window: nginx's worker for the direct rows, the whole lynxio process for its rows), p99
# (wrk, whole run), each as a ratio to 64 connections in the same run. Cells run interleaved
# REPS times; medians. lynxio runs with --log warn and --max-connections above the largest
# client count (the default derives the cap from the open-files limit: (20,000 − 256) / 3 =
# 6,581 with a hard limit of 20,000).
#
# Usage: scripts/bench-conns.sh   (DURATION=8 WARMUP=5 REPS=3 CONNSET="64 1000 10000" BIN=...)
# BASE_BIN=path/to/older/lynxio adds its rows (same layout, same run) for a before/after.
# Installs wrk and nginx from Debian when they are missing (needs root and apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

DURATION=${DURATION:-8}
WARMUP=${WARMUP:-5}
REPS=${REPS:-3}
CONNSET=${CONNSET:-64 1000 10000}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
NGINX_PORT=${NGINX_PORT:-18600}
LYNXIO_PORT=${LYNXIO_PORT:-18602}
# wrk, nginx and lynxio each hold one fd per client connection.
ulimit -n "$(ulimit -Hn)"
export NGINX_CONNECTIONS=${NGINX_CONNECTIONS:-12000}

install_missing wrk nginx curl
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet
    BIN=target/release/lynxio
fi
TICKS=$(getconf CLK_TCK)

make_workdir lynxio-bench-conns
start_nginx "$NGINX_PORT" "$LOAD_CORE"
NGINX_WORKER=$(pgrep -P "$(cat "$WORK/nginx.pid")" | head -1)

echo "connections benchmark: window ${DURATION}s after ${WARMUP}s, REPS=$REPS, connections: $CONNSET" >&2
echo "lynxio (1 worker, io_uring) on core $PROXY_CORE; wrk -t1 and nginx on core $LOAD_CORE" >&2
for rep in $(seq 1 "$REPS"); do
    echo "repetition $rep" >&2
    for c in $CONNSET; do
        CONNS=$c
        measure_window "direct-$c" "$NGINX_WORKER" "$NGINX_PORT" 0
        for t in lynxio ${BASE_BIN:+base}; do
            bin=$BIN
            [ "$t" = base ] && bin=$BASE_BIN
            taskset -c "$PROXY_CORE" "$bin" --listen "127.0.0.1:$LYNXIO_PORT" --workers 1 \
                --cpus "$PROXY_CORE" --driver uring --log warn --max-connections 12000 \
                >"$WORK/lynxio.out" 2>"$WORK/lynxio.err" &
            pid=$!
            PIDS+=("$pid")
            wait_port "$LYNXIO_PORT"
            measure_window "$t-$c" "$pid" "$LYNXIO_PORT" 1
            stop_pid "$pid"
            sleep 1 # TIME_WAIT and accept queues settle between cells
        done
    done
done

printf '\n| connections | direct req/s | vs 64 | direct p99 ms | nginx CPU µs/request | vs 64 | lynxio req/s | vs 64 | lynxio p99 ms | proxy CPU µs/request | vs 64 |\n'
printf '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
python3 - "$WORK" $CONNSET <<'PY'
import sys, statistics
work, conns = sys.argv[1], sys.argv[2:]
def med(name):
    runs = [list(map(float, l.split())) for l in open(f"{work}/{name}.runs")]
    return [statistics.median(r[i] for r in runs) for i in range(3)]
bd, bl = med(f"direct-{conns[0]}"), med(f"lynxio-{conns[0]}")
for c in conns:
    d, l = med(f"direct-{c}"), med(f"lynxio-{c}")
    print(f"| {int(c):,} | {d[0]:,.0f} | {d[0] / bd[0]:.2f}x | {d[2]:.1f} | {d[1]:.2f} | "
          f"{d[1] / bd[1]:.2f}x | {l[0]:,.0f} | {l[0] / bl[0]:.2f}x | {l[2]:.1f} | {l[1]:.2f} | "
          f"{l[1] / bl[1]:.2f}x |")
PY
if [ -n "${BASE_BIN:-}" ]; then
    printf '\n| connections | before (BASE_BIN) req/s | vs 64 | p99 ms | proxy CPU µs/request | vs 64 |\n'
    printf '|---:|---:|---:|---:|---:|---:|\n'
    python3 - "$WORK" $CONNSET <<'PY'
import sys, statistics
work, conns = sys.argv[1], sys.argv[2:]
def med(name):
    runs = [list(map(float, l.split())) for l in open(f"{work}/{name}.runs")]
    return [statistics.median(r[i] for r in runs) for i in range(3)]
b = med(f"base-{conns[0]}")
for c in conns:
    l = med(f"base-{c}")
    print(f"| {int(c):,} | {l[0]:,.0f} | {l[0] / b[0]:.2f}x | {l[2]:.1f} | {l[1]:.2f} | {l[1] / b[1]:.2f}x |")
PY
fi
echo >&2
echo "per run (req/s, CPU us/request, p99 ms, wrk errors):" >&2
for c in $CONNSET; do
    for t in direct lynxio ${BASE_BIN:+base}; do
        echo "  $t-$c: $(tr '\n' ';' <"$WORK/$t-$c.runs")" >&2
    done
done
