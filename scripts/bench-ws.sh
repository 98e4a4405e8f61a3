#!/usr/bin/env bash
# WebSocket relay benchmark: echo load (examples/ws_load.rs: its own tungstenite echo origin
# and client threads) straight to the origin and through proxies, interleaved in the same run:
#   - lynxio relay mode (nobody reads events: after the 101 both plain-TCP ends are spliced);
#   - lynxio inspect mode (`--capture /dev/null`: every frame parsed, an event per message);
#   - nginx as a WebSocket reverse proxy (a peer doing the same relay, same core);
#   - wss: lynxio intercepting (`--mitm '*'`) against wss straight to the origin.
# Load shapes: ping-pong (one message in flight per connection: latency-bound), a window of 16
# small messages in flight per connection (throughput), and 1 MiB messages. Each proxy's CPU per
# message comes from /proc.
#
# Layout on a 2-core machine: each proxy (1 worker) on core 0; the load tool (clients and
# origin) on core 1.
# Usage: scripts/bench-ws.sh        (SECONDS_PER_RUN=6 REPS=3 to tune)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

SECONDS_PER_RUN=${SECONDS_PER_RUN:-6}
REPS=${REPS:-3}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
RELAY_PORT=${RELAY_PORT:-18682}
INSPECT_PORT=${INSPECT_PORT:-18683}
MITM_PORT=${MITM_PORT:-18684}
NGINX_PORT=${NGINX_PORT:-18685}
ORIGIN_PORT=${ORIGIN_PORT:-18686}
install_missing nginx

cargo build --release --quiet --bin lynxio --example ws_load
LYNXIO=target/release/lynxio
LOAD="taskset -c $LOAD_CORE target/release/examples/ws_load"
TICKS=$(getconf CLK_TCK)

make_workdir lynxio-wsbench
start_lynxio() { # PORT ERRFILE EXTRA-ARGS... ; prints the PID
    local port=$1 errf=$2
    shift 2
    taskset -c "$PROXY_CORE" "$LYNXIO" --listen "127.0.0.1:$port" --workers 1 \
        --cpus "$PROXY_CORE" "$@" >/dev/null 2>"$errf" &
    echo $!
}
RELAY_PID=$(start_lynxio "$RELAY_PORT" "$WORK/relay.err")
INSPECT_PID=$(start_lynxio "$INSPECT_PORT" "$WORK/inspect.err" --capture /dev/null)
# The origin's certificate is a throwaway made by each ws_load run, so the proxy cannot be told
# its CA in advance; verification happens once per connection and is not what is measured.
MITM_PID=$(start_lynxio "$MITM_PORT" "$WORK/mitm.err" --mitm '*' --insecure-upstream \
    --ca-dir "$WORK/ca")
PIDS+=("$RELAY_PID" "$INSPECT_PID" "$MITM_PID")

write_nginx_conf "
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://127.0.0.1:$ORIGIN_PORT;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection upgrade;
            proxy_read_timeout 600s;
        }
    }"
taskset -c "$PROXY_CORE" "$NGINX" -c "$WORK/nginx.conf" -p "$WORK/ngx" -e "$WORK/ngx/error.log"
for port in "$RELAY_PORT" "$INSPECT_PORT" "$MITM_PORT" "$NGINX_PORT"; do wait_port "$port"; done
NGINX_WORKER=$(pgrep -P "$(cat "$WORK/nginx.pid")" | head -1)

# per_message PID LOAD_ARGS...: runs the load; prints "msgs/s cpu_us_per_message" for PID.
per_message() {
    local pid=$1 before after n
    shift
    before=$(cpu_ticks "$pid")
    n=$($LOAD --seconds "$SECONDS_PER_RUN" "$@" | awk '{print $2}')
    after=$(cpu_ticks "$pid")
    python3 -c "print($n, ($after - $before) / $TICKS * 1e6 / max($n * $SECONDS_PER_RUN, 1))"
}
direct() { $LOAD --seconds "$SECONDS_PER_RUN" "$@" | awk '{print $2}'; }

# run_case NAME LOAD_ARGS...: REPS interleaved runs; appends "direct relay relay_cpu inspect
# inspect_cpu nginx nginx_cpu" to $WORK/NAME.
run_case() {
    local name=$1 d relay inspect ngx
    shift
    for _ in $(seq 1 "$REPS"); do
        d=$(direct "$@")
        relay=$(per_message "$RELAY_PID" --via proxy --proxy "127.0.0.1:$RELAY_PORT" "$@")
        inspect=$(per_message "$INSPECT_PID" --via proxy --proxy "127.0.0.1:$INSPECT_PORT" "$@")
        ngx=$(per_message "$NGINX_WORKER" --via reverse --proxy "127.0.0.1:$NGINX_PORT" \
            --origin-port "$ORIGIN_PORT" "$@")
        echo "$d $relay $inspect $ngx" >>"$WORK/$name"
        echo "  $name: direct $d; relay $relay; inspect $inspect; nginx $ngx (msgs/s, CPU us/msg)" >&2
    done
}

# run_wss NAME LOAD_ARGS...: REPS interleaved direct-wss / intercepted runs; appends
# "direct mitm mitm_cpu" to $WORK/NAME.
run_wss() {
    local name=$1 d mitm
    shift
    for _ in $(seq 1 "$REPS"); do
        d=$(direct --tls "$@")
        mitm=$(per_message "$MITM_PID" --via mitm --proxy "127.0.0.1:$MITM_PORT" \
            --proxy-ca "$WORK/ca/ca.pem" "$@")
        echo "$d $mitm" >>"$WORK/$name"
        echo "  $name: direct wss $d; intercepted $mitm (msgs/s, CPU us/msg)" >&2
    done
}

echo "WebSocket echo: ${SECONDS_PER_RUN}s runs, REPS=$REPS; proxies on core $PROXY_CORE, load on core $LOAD_CORE" >&2
run_case pingpong --size 64 --conns 16
run_case window --size 64 --conns 16 --window 16
run_case large --size 1048576 --conns 4
run_wss wss_window --size 64 --conns 16 --window 16
run_wss wss_large --size 1048576 --conns 4

python3 - "$WORK" <<'PY'
import sys, statistics
work = sys.argv[1]
def med(name, cols):
    runs = [tuple(map(float, l.split())) for l in open(f"{work}/{name}")]
    return [statistics.median(r[k] for r in runs) for k in range(cols)]
cases = [("pingpong", 64, "64 B ping-pong, 16 conns"), ("window", 64, "64 B, 16 in flight × 16 conns"),
         ("large", 1048576, "1 MiB ping-pong, 4 conns")]
print("\n| messages | direct msgs/s | relay msgs/s (× direct) | inspect msgs/s (× direct) | nginx msgs/s (× direct) | MB/s direct / relay / inspect / nginx | proxy CPU µs/msg relay / inspect / nginx |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name, size, label in cases:
    d, r, rc, i, ic, n, nc = med(name, 7)
    mb = lambda x: f"{x * size / 1e6:.1f}"
    print(f"| {label} | {d:.0f} | {r:.0f} ({r / d:.2f}x) | {i:.0f} ({i / d:.2f}x) | {n:.0f} ({n / d:.2f}x) "
          f"| {mb(d)} / {mb(r)} / {mb(i)} / {mb(n)} | {rc:.2f} / {ic:.2f} / {nc:.2f} |")
print("\n| wss messages | direct wss msgs/s | intercepted msgs/s | intercepted / direct | MB/s direct / intercepted | lynxio CPU µs/msg |")
print("|---|---:|---:|---:|---:|---:|")
for name, size, label in [("wss_window", 64, "64 B, 16 in flight × 16 conns"), ("wss_large", 1048576, "1 MiB ping-pong, 4 conns")]:
    d, m, mc = med(name, 3)
    print(f"| {label} | {d:.0f} | {m:.0f} | {m / d:.2f}x | {d * size / 1e6:.1f} / {m * size / 1e6:.1f} | {mc:.2f} |")
PY
