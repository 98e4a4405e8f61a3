#!/usr/bin/env bash
# Whole-proxy benchmark: wrk with absolute-form requests against an nginx origin, directly and
# through lynxio (1 and 2 workers, io_uring and epoll, with/without SQPOLL) and Squid (no cache)
# in the same run, printed as a Markdown table with ratios against the direct run and Squid.
#
# Two layouts on a 2-core machine:
#  pinned: the proxy under test on core 0, wrk (1 thread) and nginx on core 1 — the issue's
#          "one worker on one core" comparison, including Squid;
#  shared: nothing pinned, wrk with 2 threads — how 1 and 2 lynxio workers use the whole
#          machine when they must share it with the load generator and the origin.
#
# Usage: scripts/bench.sh            (DURATION=10s CONNS_SMALL=64 CONNS_LARGE=16 to tune)
#        SKIP_SQUID=1 scripts/bench.sh
# Installs wrk, nginx and squid from Debian when they are missing (needs root and apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

DURATION=${DURATION:-10s}
CONNS_SMALL=${CONNS_SMALL:-64}
CONNS_LARGE=${CONNS_LARGE:-16}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
NGINX_PORT=${NGINX_PORT:-18480}
SQUID_PORT=${SQUID_PORT:-18481}
LYNXIO_PORT=${LYNXIO_PORT:-18482}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
if [ -z "${SKIP_SQUID:-}" ]; then
    command -v squid >/dev/null || [ -x /usr/sbin/squid ] || need+=(squid)
fi
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
SQUID=$(command -v squid || echo /usr/sbin/squid)

cargo build --release --quiet
LYNXIO=target/release/lynxio

make_workdir lynxio-bench

# --- origin and load ----------------------------------------------------------------------
start_nginx "$NGINX_PORT" "$LOAD_CORE"

# --- proxies ------------------------------------------------------------------------------
start_lynxio() {
    "$LYNXIO" --listen "127.0.0.1:$LYNXIO_PORT" --log warn "$@" >"$WORK/lynxio.out" 2>>"$WORK/lynxio.err" &
    LYNXIO_PID=$!
    PIDS+=("$LYNXIO_PID")
    wait_port "$LYNXIO_PORT"
}
stop_lynxio() { stop_pid "$LYNXIO_PID"; }


# --- run ----------------------------------------------------------------------------------
declare -A RPS MBPS ERRS
ROWS=()
measure() { # NAME PORT ABSOLUTE
    local name=$1 port=$2 abs=$3 small large
    read -r -a small <<<"$(run_wrk "$port" /100b "$CONNS_SMALL" "$abs")"
    read -r -a large <<<"$(run_wrk "$port" /1m "$CONNS_LARGE" "$abs")"
    RPS[$name]=${small[0]}
    MBPS[$name]=${large[1]}
    ERRS[$name]=$((small[2] + large[2]))
    ROWS+=("$name")
    echo "  $name: ${RPS[$name]} req/s (100 B), ${MBPS[$name]} MB/s (1 MiB), errors ${ERRS[$name]}" >&2
}

echo "benchmark: DURATION=$DURATION, 100 B with $CONNS_SMALL connections, 1 MiB with $CONNS_LARGE" >&2
echo "layout pinned: proxy on core $PROXY_CORE, wrk + nginx on core $LOAD_CORE" >&2
measure "direct (nginx)" "$NGINX_PORT" 0

start_lynxio --workers 1 --cpus "$PROXY_CORE" --driver uring
measure "lynxio 1 worker, io_uring" "$LYNXIO_PORT" 1
stop_lynxio

start_lynxio --workers 1 --cpus "$PROXY_CORE" --driver uring --sqpoll 100
measure "lynxio 1 worker, io_uring + sqpoll" "$LYNXIO_PORT" 1
stop_lynxio

start_lynxio --workers 1 --cpus "$PROXY_CORE" --driver epoll
measure "lynxio 1 worker, epoll" "$LYNXIO_PORT" 1
stop_lynxio

if [ -z "${SKIP_SQUID:-}" ]; then
    start_squid "$SQUID_PORT"
    measure "squid (no cache)" "$SQUID_PORT" 1
    stop_pid "$SQUID_PID"
fi

# --- report -------------------------------------------------------------------------------
report() { # TITLE BASELINE_NAME [SQUID_NAME]
    local title=$1 base=$2 sq=${3:-} name rs ms
    printf '\n%s\n\n' "$title"
    printf '| target | req/s (100 B) | vs direct | vs Squid | MB/s (1 MiB) | vs direct | vs Squid | errors |\n'
    printf '|---|---:|---:|---:|---:|---:|---:|---:|\n'
    for name in "${ROWS[@]}"; do
        rs="n/a"; ms="n/a"
        if [ -n "$sq" ] && [ -n "${RPS[$sq]:-}" ]; then
            rs=$(ratio "${RPS[$name]}" "${RPS[$sq]}"); ms=$(ratio "${MBPS[$name]}" "${MBPS[$sq]}")
        fi
        printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "${RPS[$name]}" \
            "$(ratio "${RPS[$name]}" "${RPS[$base]}")" "$rs" "${MBPS[$name]}" \
            "$(ratio "${MBPS[$name]}" "${MBPS[$base]}")" "$ms" "${ERRS[$name]}"
    done
}
report "Pinned: proxy on core $PROXY_CORE, wrk -t1 and nginx on core $LOAD_CORE" "direct (nginx)" "squid (no cache)"

# --- shared layout ------------------------------------------------------------------------
ROWS=()
ALL_CPUS="$PROXY_CORE,$LOAD_CORE"
taskset -a -p -c "$ALL_CPUS" "$(cat "$WORK/nginx.pid")" >/dev/null
for p in $(pgrep -P "$(cat "$WORK/nginx.pid")"); do taskset -a -p -c "$ALL_CPUS" "$p" >/dev/null; done
echo "layout shared: nothing pinned, wrk -t2" >&2
export WRK_CPUS=$ALL_CPUS WRK_THREADS=2
measure "direct (nginx), shared" "$NGINX_PORT" 0
start_lynxio --workers 1 --no-pin --driver uring
measure "lynxio 1 worker, shared" "$LYNXIO_PORT" 1
stop_lynxio
start_lynxio --workers 2 --no-pin --driver uring
measure "lynxio 2 workers, shared" "$LYNXIO_PORT" 1
stop_lynxio
report "Shared: nothing pinned, wrk -t2, everything on both cores" "direct (nginx), shared"
