#!/usr/bin/env bash
# Cost as connections grow: wrk keep-alive 100-byte requests at 64, 1,000 and 10,000 concurrent
# client connections, straight to nginx and through lynxio (one worker, io_uring, pinned to
# PROXY_CORE; wrk -t1 and nginx share LOAD_CORE). Per cell: requests/s, p99, the proxy's CPU
# per request (utime+stime from /proc over the run) and each as a ratio to 64 connections in
# the same run. Cells run interleaved REPS times; medians. lynxio runs with --log warn and
# --max-connections above the largest client count (the default derives the cap from the
# open-files limit: (20,000 − 256) / 3 = 6,581 with a hard limit of 20,000).
#
# Usage: scripts/bench-conns.sh      (DURATION=8s REPS=3 CONNSET="64 1000 10000" BIN=...)
# Installs wrk and nginx from Debian when they are missing (needs root and apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

DURATION=${DURATION:-8s}
REPS=${REPS:-3}
CONNSET=${CONNSET:-64 1000 10000}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
NGINX_PORT=${NGINX_PORT:-18600}
LYNXIO_PORT=${LYNXIO_PORT:-18602}
# wrk, nginx and lynxio each hold one fd per client connection (lynxio also its origin ones).
ulimit -n "$(ulimit -Hn)"
NGINX_CONNECTIONS=${NGINX_CONNECTIONS:-12000}

install_missing wrk nginx
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet
    BIN=target/release/lynxio
fi
TICKS=$(getconf CLK_TCK)

make_workdir lynxio-bench-conns
start_nginx "$NGINX_PORT" "$LOAD_CORE"
NGINX_WORKER=$(pgrep -P "$(cat "$WORK/nginx.pid")" | head -1)

# measure_direct NAME: one wrk run of CONNS connections straight to nginx; appends
# "rps nginx_cpu_us_per_request p99_ms" to $WORK/NAME.runs.
measure_direct() {
    local name=$1 before after out
    before=$(cpu_ticks "$NGINX_WORKER")
    out=$(taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNS" -d"$DURATION" --latency \
        "http://127.0.0.1:$NGINX_PORT/100b")
    after=$(cpu_ticks "$NGINX_WORKER")
    echo "$out" >>"$WORK/wrk.log"
    python3 - "$out" "$before" "$after" "$TICKS" >>"$WORK/$name.runs" <<'PY'
import re, sys
out, before, after, ticks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
total = int(re.search(r"(\d+) requests in", out).group(1))
p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
ms = float(p99.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[p99.group(2)]
print(f"{rps:.0f} {(after - before) / ticks * 1e6 / max(total, 1):.2f} {ms:.2f}")
PY
    echo "  $name: $(tail -1 "$WORK/$name.runs") (req/s, nginx CPU us/request, p99 ms)" >&2
}

echo "connections benchmark: DURATION=$DURATION, REPS=$REPS, connections: $CONNSET" >&2
echo "lynxio (1 worker, io_uring) on core $PROXY_CORE; wrk -t1 and nginx on core $LOAD_CORE" >&2
for rep in $(seq 1 "$REPS"); do
    echo "repetition $rep" >&2
    for c in $CONNSET; do
        CONNS=$c
        measure_direct "direct-$c"
        LATENCY=1 measure_lynxio "lynxio-$c" "$BIN" --log warn --max-connections 12000
        sleep 1 # let TIME_WAIT and the accept queues settle between cells
    done
done

printf '\n| connections | direct req/s | direct p99 ms | direct vs 64 | lynxio req/s | lynxio p99 ms | lynxio vs 64 | proxy CPU µs/request | CPU vs 64 |\n'
printf '|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
python3 - "$WORK" $CONNSET <<'PY'
import sys, statistics
work, conns = sys.argv[1], sys.argv[2:]
def med(name):
    runs = [list(map(float, l.split())) for l in open(f"{work}/{name}.runs")]
    return [statistics.median(r[i] for r in runs) for i in range(3)]
base_d, base_l = med(f"direct-{conns[0]}"), med(f"lynxio-{conns[0]}")
for c in conns:
    d, l = med(f"direct-{c}"), med(f"lynxio-{c}")
    print(f"| {int(c):,} | {d[0]:,.0f} | {d[2]:.1f} | {d[0] / base_d[0]:.2f}x | {l[0]:,.0f} | "
          f"{l[2]:.1f} | {l[0] / base_l[0]:.2f}x | {l[1]:.2f} | {l[1] / base_l[1]:.2f}x |")
PY
echo >&2
echo "per run (req/s, CPU us/request of nginx for direct / of lynxio, p99 ms):" >&2
for c in $CONNSET; do
    for t in direct lynxio; do
        echo "  $t-$c: $(tr '\n' ';' <"$WORK/$t-$c.runs")" >&2
    done
done
