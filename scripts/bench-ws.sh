#!/usr/bin/env bash
# WebSocket relay benchmark: echo load (examples/ws_load.rs: its own tungstenite echo origin
# and client threads) straight to the origin, through lynxio in relay mode (nobody reads
# events: spliced) and in inspect mode (`--capture /dev/null`: every frame parsed, an event per
# message), interleaved in the same run, for small messages (messages/s) and 1 MiB messages
# (MB/s), with each proxy's CPU per message.
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
INSPECT_PORT=${INSPECT_PORT:-18683}

cargo build --release --quiet --bin lynxio --example ws_load
LYNXIO=target/release/lynxio
LOAD="taskset -c $LOAD_CORE target/release/examples/ws_load"
TICKS=$(getconf CLK_TCK)

make_workdir lynxio-wsbench
taskset -c "$PROXY_CORE" "$LYNXIO" --listen "127.0.0.1:$LYNXIO_PORT" --workers 1 \
    --cpus "$PROXY_CORE" >/dev/null 2>"$WORK/lynxio.err" &
PROXY_PID=$!
PIDS+=("$PROXY_PID")
taskset -c "$PROXY_CORE" "$LYNXIO" --listen "127.0.0.1:$INSPECT_PORT" --workers 1 \
    --cpus "$PROXY_CORE" --capture /dev/null >/dev/null 2>"$WORK/inspect.err" &
INSPECT_PID=$!
PIDS+=("$INSPECT_PID")
wait_port "$LYNXIO_PORT"
wait_port "$INSPECT_PORT"

# per_message PID LOAD_ARGS...: runs the load; prints "msgs/s cpu_us_per_message" for PID.
per_message() {
    local pid=$1 before after n
    shift
    before=$(cpu_ticks "$pid")
    n=$($LOAD "$@" | awk '{print $2}')
    after=$(cpu_ticks "$pid")
    python3 -c "print($n, ($after - $before) / $TICKS * 1e6 / max($n * $SECONDS_PER_RUN, 1))"
}

# run_case NAME SIZE CONNS: REPS interleaved direct / relay / inspect runs; appends
# "direct relay relay_cpu inspect inspect_cpu" to $WORK/NAME.
run_case() {
    local name=$1 size=$2 conns=$3 d relay inspect
    for _ in $(seq 1 "$REPS"); do
        d=$($LOAD direct "$size" "$conns" "$SECONDS_PER_RUN" | awk '{print $2}')
        relay=$(per_message "$PROXY_PID" "127.0.0.1:$LYNXIO_PORT" "$size" "$conns" "$SECONDS_PER_RUN")
        inspect=$(per_message "$INSPECT_PID" "127.0.0.1:$INSPECT_PORT" "$size" "$conns" "$SECONDS_PER_RUN")
        echo "$d $relay $inspect" >>"$WORK/$name"
        echo "  $name: direct $d msgs/s; relay, inspect (msgs/s, proxy CPU us/msg): $relay, $inspect" >&2
    done
}

echo "WebSocket echo: ${SECONDS_PER_RUN}s runs, REPS=$REPS; lynxio on core $PROXY_CORE, load on core $LOAD_CORE" >&2
run_case small 64 16
run_case large 1048576 4

printf '\n| messages | direct msgs/s | relay msgs/s | relay / direct | inspect msgs/s | inspect / direct | MB/s direct | MB/s relay | MB/s inspect | proxy CPU µs/message relay / inspect |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
python3 - "$WORK" <<'PY'
import sys, statistics
work = sys.argv[1]
for name, size, label in [("small", 64, "64 B, 16 connections"), ("large", 1048576, "1 MiB, 4 connections")]:
    runs = [tuple(map(float, l.split())) for l in open(f"{work}/{name}")]
    d, r, rc, i, ic = (statistics.median(x[k] for x in runs) for k in range(5))
    mb = lambda n: n * size / 1e6
    print(f"| {label} | {d:.0f} | {r:.0f} | {r / d:.2f}x | {i:.0f} | {i / d:.2f}x | {mb(d):.1f} | {mb(r):.1f} | {mb(i):.1f} | {rc:.2f} / {ic:.2f} |")
PY
