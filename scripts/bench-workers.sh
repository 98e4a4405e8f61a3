#!/usr/bin/env bash
# Do workers share nothing? CPU time per 100,000 keep-alive 100-byte requests through lynxio
# with 1 worker and with 2 workers, both pinned to the same core (PROXY_CORE) so the same
# hardware does the same work and any cost of a second worker (its own ring, timer wheel,
# pool, counters; two threads taking turns) shows up as CPU per request. With CAP_PERCENT
# (default 40) the proxy runs in a cgroup v1 CPU quota of that share of one core, so it is
# saturated and requests/s is work per CPU; CAP_PERCENT=0 runs it uncapped. wrk -t1 (CONNS
# connections) and nginx share LOAD_CORE. Requests are counted by nginx over a window of
# DURATION seconds after WARMUP; per-worker requests and connections from the admin
# /metrics endpoint show how SO_REUSEPORT spread the clients. Variants interleaved REPS times;
# medians.
#
# Usage: scripts/bench-workers.sh   (DURATION=8 WARMUP=3 REPS=5 CONNS=64 CAP_PERCENT=40 BIN=...)
# Installs wrk, nginx and curl from Debian when they are missing (needs root and apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

DURATION=${DURATION:-8}
WARMUP=${WARMUP:-3}
REPS=${REPS:-5}
CONNS=${CONNS:-64}
CAP_PERCENT=${CAP_PERCENT:-40}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
NGINX_PORT=${NGINX_PORT:-18610}
LYNXIO_PORT=${LYNXIO_PORT:-18612}
ADMIN_PORT=${ADMIN_PORT:-18613}
ulimit -n "$(ulimit -Hn)"

install_missing wrk nginx curl
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet
    BIN=target/release/lynxio
fi
TICKS=$(getconf CLK_TCK)

make_workdir lynxio-bench-workers
start_nginx "$NGINX_PORT" "$LOAD_CORE"
CGROUP=""
if [ "$CAP_PERCENT" != 0 ]; then
    CGROUP=/sys/fs/cgroup/cpu/lynxio-bench-workers-$$
    mkdir "$CGROUP"
    echo 10000 >"$CGROUP/cpu.cfs_period_us"
    echo $((CAP_PERCENT * 100)) >"$CGROUP/cpu.cfs_quota_us"
    trap 'cleanup_workdir; rmdir "$CGROUP" 2>/dev/null || true' EXIT
fi

# metric NAME: "w0 w1 ..." values of a per-worker admin metric.
metric() {
    curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | python3 -c '
import re, sys
vals = {}
for line in sys.stdin:
    m = re.match(r"^" + sys.argv[1] + r"\{worker=\"(\d+)\"[^}]*\} (\d+)", line)
    if m:
        vals[int(m.group(1))] = vals.get(int(m.group(1)), 0) + int(m.group(2))
print(" ".join(str(vals[k]) for k in sorted(vals)))' "$1"
}

echo "workers benchmark: $CONNS connections, window ${DURATION}s after ${WARMUP}s, REPS=$REPS, cap ${CAP_PERCENT}% of core $PROXY_CORE" >&2
for rep in $(seq 1 "$REPS"); do
    echo "repetition $rep" >&2
    for w in 1 2; do
        taskset -c "$PROXY_CORE" "$BIN" --listen "127.0.0.1:$LYNXIO_PORT" --workers "$w" \
            --cpus "$PROXY_CORE" --driver uring --log warn --admin "127.0.0.1:$ADMIN_PORT" \
            >"$WORK/lynxio.out" 2>"$WORK/lynxio.err" &
        pid=$!
        PIDS+=("$pid")
        wait_port "$LYNXIO_PORT"
        [ -n "$CGROUP" ] && echo "$pid" >"$CGROUP/cgroup.procs"
        (sleep "$WARMUP" && metric lynxio_client_connections >"$WORK/conns") &
        scrape=$!
        measure_window "$w-workers" "$pid" "$LYNXIO_PORT" 1
        wait "$scrape"
        echo "    per worker: connections $(cat "$WORK/conns"), requests $(metric lynxio_requests_total)" \
            | tee -a "$WORK/spread" >&2
        stop_pid "$pid"
    done
done

printf '\n| workers (one core) | req/s | proxy CPU µs/request | CPU s per 100,000 requests | vs 1 worker | p99 ms |\n'
printf '|---:|---:|---:|---:|---:|---:|\n'
python3 - "$WORK" <<'PY'
import sys, statistics
work = sys.argv[1]
rows = {}
for w in (1, 2):
    runs = [list(map(float, l.split())) for l in open(f"{work}/{w}-workers.runs")]
    rows[w] = [statistics.median(r[i] for r in runs) for i in range(3)]
for w in (1, 2):
    rps, cpu, p99 = rows[w]
    print(f"| {w} | {rps:,.0f} | {cpu:.2f} | {cpu / 10:.3f} | {cpu / rows[1][1]:.2f}x | {p99:.1f} |")
PY
echo >&2
echo "per run (req/s, CPU us/request, p99 ms, wrk errors):" >&2
for w in 1 2; do echo "  $w: $(tr '\n' ';' <"$WORK/$w-workers.runs")" >&2; done
echo "spread (2-worker runs list two values: worker 0, worker 1):" >&2
cat "$WORK/spread" >&2
