#!/usr/bin/env bash
# WebSocket relay benchmark: echo load (examples/ws_load.rs: its own tungstenite echo origin
# and client threads) straight to the origin and through lynxio in the same run, for small
# messages (messages/s) and 1 MiB messages (MB/s), with the proxy's CPU per message.
#
# Layout on a 2-core machine: lynxio (1 worker) on core 0; the load tool (clients and origin)
# on core 1.
# Usage: scripts/bench-ws.sh        (SECONDS_PER_RUN=8 REPS=3 to tune)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

SECONDS_PER_RUN=${SECONDS_PER_RUN:-8}
REPS=${REPS:-3}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
LYNXIO_PORT=${LYNXIO_PORT:-18682}

cargo build --release --quiet --bin lynxio --example ws_load
LYNXIO=target/release/lynxio
LOAD="taskset -c $LOAD_CORE target/release/examples/ws_load"
TICKS=$(getconf CLK_TCK)

make_workdir lynxio-wsbench
taskset -c "$PROXY_CORE" "$LYNXIO" --listen "127.0.0.1:$LYNXIO_PORT" --workers 1 \
    --cpus "$PROXY_CORE" >/dev/null 2>"$WORK/lynxio.err" &
PROXY_PID=$!
PIDS+=("$PROXY_PID")
wait_port "$LYNXIO_PORT"

# case NAME SIZE CONNS: REPS interleaved direct/lynxio runs; appends "direct lynxio cpu_us"
# (messages/s, messages/s, proxy CPU µs per message) to $WORK/NAME.
run_case() {
    local name=$1 size=$2 conns=$3 d l before after
    for _ in $(seq 1 "$REPS"); do
        d=$($LOAD direct "$size" "$conns" "$SECONDS_PER_RUN" | awk '{print $2}')
        before=$(cpu_ticks "$PROXY_PID")
        l=$($LOAD "127.0.0.1:$LYNXIO_PORT" "$size" "$conns" "$SECONDS_PER_RUN" | awk '{print $2}')
        after=$(cpu_ticks "$PROXY_PID")
        python3 -c "print($d, $l, ($after - $before) / $TICKS * 1e6 / max($l * $SECONDS_PER_RUN, 1))" \
            >>"$WORK/$name"
        echo "  $name: direct $d msgs/s, lynxio $l msgs/s" >&2
    done
}

echo "WebSocket echo: ${SECONDS_PER_RUN}s runs, REPS=$REPS; lynxio on core $PROXY_CORE, load on core $LOAD_CORE" >&2
run_case small 64 16
run_case large 1048576 4

printf '\n| messages | direct msgs/s | lynxio msgs/s | lynxio / direct | MB/s direct | MB/s lynxio | proxy CPU µs/message |\n'
printf '|---|---:|---:|---:|---:|---:|---:|\n'
python3 - "$WORK" <<'PY'
import sys, statistics
work = sys.argv[1]
for name, size, label in [("small", 64, "64 B, 16 connections"), ("large", 1048576, "1 MiB, 4 connections")]:
    runs = [tuple(map(float, l.split())) for l in open(f"{work}/{name}")]
    d = statistics.median(r[0] for r in runs)
    l = statistics.median(r[1] for r in runs)
    cpu = statistics.median(r[2] for r in runs)
    print(f"| {label} | {d:.0f} | {l:.0f} | {l / d:.2f}x | {d * size / 1e6:.1f} | {l * size / 1e6:.1f} | {cpu:.2f} |")
PY
