#!/usr/bin/env bash
# CONNECT tunnel benchmark: bulk throughput through one tunnel and through 64 parallel ones,
# lynxio (splice and copy) vs direct loopback vs Squid in the same run, then the cost of 4,000
# idle tunnels (RSS, threads, fds of the proxy process). Load tool: examples/tunnel_load.rs.
#
# Layout on a 2-core machine: the proxy on core 0, the load tool (client and origin) on core 1.
# Usage: scripts/bench-tunnel.sh          (BYTES=4G IDLE=4000 to tune; SKIP_SQUID=1)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

BYTES=${BYTES:-4G}
IDLE=${IDLE:-4000}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
LYNXIO_PORT=${LYNXIO_PORT:-18582}
SQUID_PORT=${SQUID_PORT:-18581}

if [ -z "${SKIP_SQUID:-}" ] && ! command -v squid >/dev/null && [ ! -x /usr/sbin/squid ]; then
    echo "installing squid" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq squid >&2
fi
SQUID=$(command -v squid || echo /usr/sbin/squid)

# 4,000 tunnels = 8,000 sockets in the proxy and 8,000 in the load tool.
ulimit -n "$(ulimit -Hn)"

cargo build --release --quiet --bin lynxio --example tunnel_load
LYNXIO=target/release/lynxio
LOAD="taskset -c $LOAD_CORE target/release/examples/tunnel_load"

make_workdir lynxio-tbench


start_lynxio() {
    "$LYNXIO" --listen "127.0.0.1:$LYNXIO_PORT" --workers 1 --cpus "$PROXY_CORE" --log warn "$@" \
        >/dev/null 2>>"$WORK/lynxio.err" &
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    wait_port "$LYNXIO_PORT"
}
stop_proxy() { stop_pid "$PROXY_PID"; }

declare -A BULK CPU
NAMES=()
bulk_row() { # NAME PROXY_ADDR|direct [PROXY_PID]
    local name=$1 target=$2 pid=${3:-} out
    out=$($LOAD bulk "$target" "$BYTES" 1 up $pid)
    BULK["$name,1"]=$(awk '{print $2}' <<<"$out")
    CPU["$name,1"]=$(awk '{print $4}' <<<"$out")
    out=$($LOAD bulk "$target" "$BYTES" 64 up $pid)
    BULK["$name,64"]=$(awk '{print $2}' <<<"$out")
    CPU["$name,64"]=$(awk '{print $4}' <<<"$out")
    BULK["$name,down"]=$($LOAD bulk "$target" "$BYTES" 1 down | awk '{print $2}')
    NAMES+=("$name")
    echo "  $name: 1 tunnel ${BULK["$name,1"]} MB/s up (proxy CPU ${CPU["$name,1"]:-n/a} s/GB), ${BULK["$name,down"]} MB/s down; 64 tunnels ${BULK["$name,64"]} MB/s (${CPU["$name,64"]:-n/a} s/GB)" >&2
}

echo "bulk: $BYTES per run; proxy on core $PROXY_CORE, load tool on core $LOAD_CORE" >&2
bulk_row "direct" direct
start_lynxio
bulk_row "lynxio (splice)" "127.0.0.1:$LYNXIO_PORT" "$PROXY_PID"
echo "  idle tunnels through lynxio:" >&2
IDLE_LYNXIO=$($LOAD idle "127.0.0.1:$LYNXIO_PORT" "$IDLE" "$PROXY_PID" 3)
echo "  $IDLE_LYNXIO" >&2
stop_proxy
start_lynxio --no-splice
bulk_row "lynxio (--no-splice)" "127.0.0.1:$LYNXIO_PORT" "$PROXY_PID"
stop_proxy
IDLE_SQUID="n/a"
if [ -z "${SKIP_SQUID:-}" ]; then
    start_squid "$SQUID_PORT"
    PROXY_PID=$SQUID_PID
    bulk_row "squid" "127.0.0.1:$SQUID_PORT" "$PROXY_PID"
    IDLE_SQUID=$($LOAD idle "127.0.0.1:$SQUID_PORT" "$IDLE" "$PROXY_PID" 3)
    echo "  $IDLE_SQUID" >&2
    stop_proxy
fi

SQ="squid"
printf '\nThroughput (MB/s; the load tool on one core is the ceiling, see "direct")\n\n'
printf '| target | 1 tunnel up | vs direct | vs Squid | 1 tunnel down | 64 tunnels | vs direct | vs Squid |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|\n'
for n in "${NAMES[@]}"; do
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$n" "${BULK["$n,1"]}" \
        "$(ratio "${BULK["$n,1"]}" "${BULK["direct,1"]}")" "$(ratio "${BULK["$n,1"]}" "${BULK["$SQ,1"]:-}")" \
        "${BULK["$n,down"]}" "${BULK["$n,64"]}" \
        "$(ratio "${BULK["$n,64"]}" "${BULK["direct,64"]}")" "$(ratio "${BULK["$n,64"]}" "${BULK["$SQ,64"]:-}")"
done
printf '\nProxy CPU per GB moved (user + system seconds of the proxy process; lower is better)\n\n'
printf '| proxy | 1 tunnel s/GB | Squid / this | 64 tunnels s/GB | Squid / this |\n'
printf '|---|---:|---:|---:|---:|\n'
for n in "${NAMES[@]}"; do
    [ "$n" = direct ] && continue
    printf '| %s | %s | %s | %s | %s |\n' "$n" "${CPU["$n,1"]}" "$(ratio "${CPU["$SQ,1"]:-}" "${CPU["$n,1"]}")" \
        "${CPU["$n,64"]}" "$(ratio "${CPU["$SQ,64"]:-}" "${CPU["$n,64"]}")"
done
printf '\nlynxio: %s\nsquid:  %s\n' "$IDLE_LYNXIO" "$IDLE_SQUID"
