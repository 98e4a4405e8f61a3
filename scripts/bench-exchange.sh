#!/usr/bin/env bash
# Request/response through a CONNECT tunnel: one connection, a short request, an answer of
# SIZE bytes, the next request only once the whole answer is in (an API client, a test suite,
# HTTP/1.1 keep-alive inside TLS). Reports the median and p90 exchange time direct and through
# lynxio for 64 KiB to 4 MiB answers: the check that tunnel pacing (`tunnel::pace`) never
# holds an answer's last bytes back. The proxy runs on core 0, client and server on core 1.
#
# Usage: scripts/bench-exchange.sh   (SIZES="65536 1048576" COUNT=3000 to tune;
#        LYNXIO_B=path/to/other/lynxio adds a second binary to compare in the same run)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

SIZES=${SIZES:-65536 262144 1048576 4194304}
COUNT=${COUNT:-3000}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
SERVER_PORT=${SERVER_PORT:-18790}
LYNXIO_PORT=${LYNXIO_PORT:-18791}

if [ -z "${LYNXIO:-}" ]; then
    cargo build --release --quiet --bin lynxio
    LYNXIO=target/release/lynxio
fi
make_workdir lynxio-exchange
taskset -c "$LOAD_CORE" python3 scripts/exchange.py server "$SERVER_PORT" &
PIDS+=($!)
wait_port "$SERVER_PORT"

exchange() { taskset -c "$LOAD_CORE" python3 scripts/exchange.py client "$1" "$SERVER_PORT" "$2" "$COUNT"; }

echo "Exchanges, $(date -u +%F), $(nproc) cores, $(uname -r)"
echo
echo "| answer | direct median · p90 | lynxio median · p90 |${LYNXIO_B:+ $LYNXIO_B median · p90 |}"
echo "|---:|---:|---:|${LYNXIO_B:+---:|}"
for size in $SIZES; do
    row="| $size B | $(exchange 0 "$size") |"
    for bin in "$LYNXIO" ${LYNXIO_B:-}; do
        taskset -c "$PROXY_CORE" "$bin" --listen "127.0.0.1:$LYNXIO_PORT" --workers 1 \
            --cpus "$PROXY_CORE" --log warn >/dev/null 2>>"$WORK/lynxio.err" &
        pid=$!
        PIDS+=("$pid")
        wait_port "$LYNXIO_PORT"
        row="$row $(exchange "$LYNXIO_PORT" "$size") |"
        stop_pid "$pid"
    done
    echo "$row"
done
