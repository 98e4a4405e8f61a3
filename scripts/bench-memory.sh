#!/usr/bin/env bash
# Memory benchmark: what lynxio costs in RSS (VmRSS of /proc/PID/status), with one worker.
#   - idle process right after start;
#   - per idle keep-alive client connection (N clients, one 100-byte request answered each,
#     then silent);
#   - per silent CONNECT tunnel (the client says nothing after the `200`), N and BIG of them;
#   - per CONNECT tunnel that carried a TLS ClientHello (then silent both ways).
# Each "per connection" figure is (RSS after − RSS before) / count, on a fresh proxy, measured
# SETTLE seconds after the last connection opened (past the 1 s sniff timeout). Kernel socket
# memory is not in RSS. Loopback only; every loop is bounded.
#
# Usage: scripts/bench-memory.sh     (N=2000 BIG=10000 SETTLE=3 DRIVER=uring; BIN=path to skip
#                                     the build)
# BIG tunnels need 2*BIG fds in the proxy: BIG is capped to fit the open-files hard limit.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

N=${N:-2000}
BIG=${BIG:-10000}
SETTLE=${SETTLE:-3}
DRIVER=${DRIVER:-uring}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
ORIGIN_PORT=${ORIGIN_PORT:-18790}
LYNXIO_PORT=${LYNXIO_PORT:-18792}
# fds the proxy needs besides two per tunnel (listener, ring, stop socket, log, pipes, ...).
FD_RESERVE=64

ulimit -n "$(ulimit -Hn)"
max_big=$((($(ulimit -n) - FD_RESERVE) / 2))
if [ "$BIG" -gt "$max_big" ]; then
    echo "BIG=$BIG needs more fds than the hard limit allows; using $max_big" >&2
    BIG=$max_big
fi

if [ -z "${BIN:-}" ]; then
    nice -n 10 cargo build --release --quiet --bin lynxio
    BIN=target/release/lynxio
fi

make_workdir lynxio-mem

# The origin: answers every HTTP request head with 100 bytes (keep-alive); swallows anything
# else silently and never closes first.
cat >"$WORK/origin.py" <<'PY'
import asyncio, sys
BODY = b"a" * 100
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + BODY
async def serve(reader, writer):
    buf = b""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            buf += data
            while buf[:1].isalpha() and b"\r\n\r\n" in buf:
                _, buf = buf.split(b"\r\n\r\n", 1)
                writer.write(RESPONSE)
            if not buf[:1].isalpha():
                buf = b""
    except OSError:
        pass
    writer.close()
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    async with server:
        await server.serve_forever()
asyncio.run(main())
PY

# The holder: opens COUNT connections of KIND through the proxy, prints "ready" and keeps
# them open until killed. KIND: keepalive (one request, answer read), silent (CONNECT, 200,
# nothing more), hello (CONNECT, 200, one TLS ClientHello).
cat >"$WORK/holder.py" <<'PY'
import socket, sys, time
proxy, origin, kind, count = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
def hello():
    sni = b"memory.bench.test"
    ext_sni = b"\x00\x00" + (len(sni) + 5).to_bytes(2, "big") + (len(sni) + 3).to_bytes(2, "big") \
        + b"\x00" + len(sni).to_bytes(2, "big") + sni
    body = b"\x03\x03" + b"\x11" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" \
        + len(ext_sni).to_bytes(2, "big") + ext_sni
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs
def read_head(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit(f"closed: {data[:80]!r}")
        data += chunk
    return data
held = []
request = (f"GET http://127.0.0.1:{origin}/100b HTTP/1.1\r\nHost: 127.0.0.1:{origin}\r\n"
           f"User-Agent: bench-memory/1\r\nAccept: */*\r\n\r\n").encode()
for i in range(count):
    s = socket.create_connection(("127.0.0.1", proxy), timeout=10)
    if kind == "keepalive":
        s.sendall(request)
        data = read_head(s)
        head, rest = data.split(b"\r\n\r\n", 1)
        while len(rest) < 100:
            rest += s.recv(4096)
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"request {i}: {head[:80]!r}")
    else:
        s.sendall(f"CONNECT 127.0.0.1:{origin} HTTP/1.1\r\nHost: 127.0.0.1:{origin}\r\n\r\n".encode())
        if not read_head(s).startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"tunnel {i} refused")
        if kind == "hello":
            s.sendall(hello())
    held.append(s)
print("ready", flush=True)
while True:
    time.sleep(60)
PY

taskset -c "$LOAD_CORE" python3 "$WORK/origin.py" "$ORIGIN_PORT" 2>"$WORK/origin.err" &
PIDS+=("$!")
wait_port "$ORIGIN_PORT"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

start_proxy() {
    taskset -c "$PROXY_CORE" "$BIN" --listen "127.0.0.1:$LYNXIO_PORT" --workers 1 \
        --driver "$DRIVER" --log warn --upstream-idle-timeout 1h --max-connections 20000 "$@" \
        >"$WORK/lynxio.out" 2>>"$WORK/lynxio.err" &
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    wait_port "$LYNXIO_PORT"
}

# hold KIND COUNT: on a fresh proxy, the RSS cost in bytes per connection of COUNT of them,
# into COST (not run in a subshell, so the EXIT trap still sees every PID).
hold() {
    local kind=$1 count=$2 before after holder
    start_proxy
    # One connection of the kind first, so one-time costs (the first pooled upstream, the
    # first pipe, lazily built tables) are not charged to the N.
    timeout 60 taskset -c "$LOAD_CORE" python3 "$WORK/holder.py" "$LYNXIO_PORT" "$ORIGIN_PORT" \
        "$kind" 1 >"$WORK/warm.out" 2>&1 &
    holder=$!
    PIDS+=("$holder")
    bounded_wait_ready "$WORK/warm.out" "$holder"
    sleep "$SETTLE"
    before=$(rss_kib "$PROXY_PID")
    taskset -c "$LOAD_CORE" python3 "$WORK/holder.py" "$LYNXIO_PORT" "$ORIGIN_PORT" "$kind" \
        "$count" >"$WORK/holder.out" 2>&1 &
    local main=$!
    PIDS+=("$main")
    bounded_wait_ready "$WORK/holder.out" "$main"
    sleep "$SETTLE"
    after=$(rss_kib "$PROXY_PID")
    kill "$main" "$holder" 2>/dev/null || true
    wait "$main" "$holder" 2>/dev/null || true
    stop_pid "$PROXY_PID"
    echo "  $kind x$count: RSS $before KiB -> $after KiB" >&2
    COST=$(((after - before) * 1024 / count))
}

# bounded_wait_ready FILE PID: until FILE says "ready" (120 s at most; fails if PID dies).
bounded_wait_ready() {
    for _ in $(seq 1 1200); do
        grep -q "^ready" "$1" 2>/dev/null && return 0
        if ! kill -0 "$2" 2>/dev/null; then
            echo "holder failed:" >&2
            cat "$1" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "holder did not get ready in 120 s" >&2
    exit 1
}

start_proxy
sleep "$SETTLE"
IDLE_KIB=$(rss_kib "$PROXY_PID")
stop_pid "$PROXY_PID"
echo "  idle process: $IDLE_KIB KiB" >&2

hold keepalive "$N"
KEEPALIVE=$COST
hold silent "$N"
SILENT=$COST
hold silent "$BIG"
SILENT_BIG=$COST
hold hello "$N"
HELLO=$COST

kib() { python3 -c "print(f'{$1 / 1024:.1f}')"; }
cat <<EOF

| what ($DRIVER, 1 worker) | RSS |
|---|---:|
| idle process right after start | $(kib "$IDLE_KIB") MiB |
| per idle keep-alive client connection (N=$N, one 100 B request each) | $(kib "$KEEPALIVE") KiB |
| per silent CONNECT tunnel (N=$N) | $(kib "$SILENT") KiB |
| per silent CONNECT tunnel (N=$BIG) | $(kib "$SILENT_BIG") KiB |
| per CONNECT tunnel that carried a ClientHello (N=$N) | $(kib "$HELLO") KiB |
EOF
if grep -q "panicked" "$WORK/lynxio.err"; then
    echo "a panic in the proxy's log:" >&2
    grep -m5 "panicked" "$WORK/lynxio.err" >&2
    exit 1
fi
