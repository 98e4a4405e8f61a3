#!/usr/bin/env bash
# Soak: lynxio under a long mixed load must hold steady. For SOAK_SECONDS (default 600):
#   - HOLD idle CONNECT tunnels (default 4,000) opened at the start and kept open, silent;
#   - wrk keep-alive load (CONNS connections, 100-byte responses) through the proxy;
#   - a churn of short connections: complete requests, and requests aborted mid-head and
#     mid-body (the client closes), a few hundred per second.
# Samples the proxy's RSS, threads and open fds every SAMPLE seconds and prints the table. Fails
# (exit 1) on: RSS growing more than 5 % between the end of warm-up and the end, any change in
# the thread count after warm-up, open fds after the load stops above the idle-tunnel baseline
# (a leak), or a panic in the proxy's log.
#
# Usage: scripts/soak.sh            (SOAK_SECONDS=600 HOLD=4000 CONNS=32 SAMPLE=10 WORKERS=2)
# Installs wrk and nginx from Debian when missing (needs root and apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

SOAK_SECONDS=${SOAK_SECONDS:-600}
HOLD=${HOLD:-4000}
CONNS=${CONNS:-32}
SAMPLE=${SAMPLE:-10}
WORKERS=${WORKERS:-2}
WARMUP=${WARMUP:-60}
LOAD_CORE=${LOAD_CORE:-1}
NGINX_PORT=${NGINX_PORT:-18890}
LYNXIO_PORT=${LYNXIO_PORT:-18892}

install_missing wrk nginx
cargo build --release --quiet
LYNXIO=target/release/lynxio
# Idle tunnels need two fds each in the proxy and one in the holder.
ulimit -n "$(ulimit -Hn)"

make_workdir lynxio-soak
start_nginx "$NGINX_PORT" "$LOAD_CORE"
"$LYNXIO" --listen "127.0.0.1:$LYNXIO_PORT" --workers "$WORKERS" --log info \
    --tunnel-idle-timeout 1h --upstream-idle-timeout 2s >"$WORK/lynxio.out" 2>"$WORK/lynxio.err" &
PID=$!
PIDS+=("$PID")
wait_port "$LYNXIO_PORT"

# sample: "seconds rss_kib threads fds"
sample() {
    local rss threads fds
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status")
    threads=$(awk '/^Threads:/ {print $2}' "/proc/$PID/status")
    fds=$(find "/proc/$PID/fd" -mindepth 1 -maxdepth 1 | wc -l)
    echo "$1 $rss $threads $fds"
}

# The holder: opens HOLD tunnels to nginx through the proxy and keeps them until killed.
python3 - "$LYNXIO_PORT" "$NGINX_PORT" "$HOLD" >"$WORK/holder.log" 2>&1 <<'PY' &
import socket, sys, time
proxy, origin, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
held = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", proxy), timeout=10)
    s.sendall(f"CONNECT 127.0.0.1:{origin} HTTP/1.1\r\nHost: 127.0.0.1:{origin}\r\n\r\n".encode())
    reply = s.recv(4096)
    if not reply.startswith(b"HTTP/1.1 200"):
        print(f"tunnel {i} refused: {reply[:80]!r}", flush=True)
        sys.exit(1)
    held.append(s)
print(f"holding {len(held)} tunnels", flush=True)
while True:
    time.sleep(60)
PY
HOLDER=$!
PIDS+=("$HOLDER")
for _ in $(seq 1 600); do
    grep -q "holding" "$WORK/holder.log" 2>/dev/null && break
    if ! kill -0 "$HOLDER" 2>/dev/null; then
        echo "the tunnel holder failed:" >&2
        cat "$WORK/holder.log" >&2
        exit 1
    fi
    sleep 0.5
done
sleep 2
BASE=$(sample 0)
echo "after opening $HOLD idle tunnels: $BASE (s, RSS KiB, threads, fds)" >&2

# The churn: short connections, a third complete, a third cut mid-head, a third mid-body.
python3 - "$LYNXIO_PORT" "$NGINX_PORT" >"$WORK/churn.log" 2>&1 <<'PY' &
import socket, sys, time
proxy, origin = int(sys.argv[1]), int(sys.argv[2])
url = f"http://127.0.0.1:{origin}/100b"
n = 0
while True:
    try:
        s = socket.create_connection(("127.0.0.1", proxy), timeout=5)
        kind = n % 3
        if kind == 0:
            s.sendall(f"GET {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            while s.recv(65536):
                pass
        elif kind == 1:
            s.sendall(f"GET {url} HTTP/1.1\r\nHost: x\r\n".encode())
        else:
            s.sendall(f"POST {url} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n".encode() + b"x" * 1000)
        s.close()
    except OSError as e:
        print(f"churn error: {e}", flush=True)
    n += 1
    time.sleep(0.003)
PY
CHURN=$!
PIDS+=("$CHURN")

ABS_URL="http://127.0.0.1:$NGINX_PORT/100b" taskset -c "$LOAD_CORE" \
    wrk -t1 -c"$CONNS" -d"${SOAK_SECONDS}s" -s "$WORK/abs.lua" \
    "http://127.0.0.1:$LYNXIO_PORT/" >"$WORK/wrk.out" 2>&1 &
WRK=$!
PIDS+=("$WRK")

echo "| s | RSS KiB | threads | fds |" >"$WORK/samples.md"
echo "|---:|---:|---:|---:|" >>"$WORK/samples.md"
start=$(date +%s)
while kill -0 "$WRK" 2>/dev/null; do
    sleep "$SAMPLE"
    now=$(( $(date +%s) - start ))
    read -r t rss threads fds <<<"$(sample "$now")"
    echo "| $t | $rss | $threads | $fds |" >>"$WORK/samples.md"
    echo "  ${t}s: RSS ${rss} KiB, ${threads} threads, ${fds} fds" >&2
    echo "$t $rss $threads $fds" >>"$WORK/samples"
done
kill "$CHURN" 2>/dev/null || true
wait "$CHURN" 2>/dev/null || true
# Pooled upstream connections idle out (--upstream-idle-timeout 2s) before the last sample.
sleep 6
END=$(sample end)
cat "$WORK/samples.md"
grep -E "Requests/sec|requests in|Socket errors|Non-2xx" "$WORK/wrk.out" || true
echo "churn connections: $(grep -c . "$WORK/churn.log" || true) errors logged"

fail=0
python3 - "$WORK/samples" "$WARMUP" "$BASE" "$END" <<'PY' || fail=1
import sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
warm = int(sys.argv[2])
base, end = sys.argv[3].split(), sys.argv[4].split()
after = [r for r in rows if r[0] >= warm]
if len(after) < 2:
    print("too short a run to judge (raise SOAK_SECONDS)")
    sys.exit(1)
rss0, rss1 = after[0][1], after[-1][1]
growth = (rss1 - rss0) / rss0
threads = {r[2] for r in after}
ok = True
print(f"RSS after warm-up {rss0} KiB, at the end {rss1} KiB ({growth:+.1%})")
if growth > 0.05:
    print("FAIL: RSS grew more than 5 % after warm-up"); ok = False
if len(threads) != 1:
    print(f"FAIL: thread count changed: {sorted(threads)}"); ok = False
fd_base, fd_end = int(base[3]), int(end[3])
print(f"fds with only the idle tunnels: {fd_base} before the load, {fd_end} after it")
if fd_end > fd_base + 16:
    print("FAIL: fds leaked"); ok = False
sys.exit(0 if ok else 1)
PY
if grep -q "panicked" "$WORK/lynxio.err"; then
    echo "FAIL: a panic in the proxy's log:"
    grep -m5 "panicked" "$WORK/lynxio.err"
    fail=1
fi
[ "$fail" = 0 ] && echo "soak: OK" || echo "soak: FAILED"
exit "$fail"
