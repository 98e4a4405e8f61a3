#!/usr/bin/env bash
# Overload: abusive clients must not take the proxy from well-behaved ones. One lynxio worker
# with --max-connections MAXCONN serves a keep-alive wrk load (CONNS connections, 100-byte
# responses) in three phases of PHASE seconds each, reporting requests/s and latency p50/p99:
#   1. baseline: the load alone;
#   2. abuse: once the load's connections are open, ABUSERS clients connect and stay silent
#      (more than MAXCONN: the rest wait in the kernel backlog), and 64 threads flood CONNECTs to
#      a black-holed address (a listener whose accept queue is full, so SYNs are dropped and
#      every dial waits for --connect-timeout);
#   3. recovery: the abuse has ended; a fresh wrk run (new connections) must be served as in 1.
# Fails if phase 2 or 3 served no requests, or if phase 3's p99 is above 3x phase 1's.
#
# Usage: scripts/overload.sh      (PHASE=10 MAXCONN=256 ABUSERS=1000 CONNS=16)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

PHASE=${PHASE:-10}
MAXCONN=${MAXCONN:-256}
ABUSERS=${ABUSERS:-1000}
CONNS=${CONNS:-16}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
NGINX_PORT=${NGINX_PORT:-18990}
LYNXIO_PORT=${LYNXIO_PORT:-18992}

install_missing wrk nginx
cargo build --release --quiet
ulimit -n "$(ulimit -Hn)"
make_workdir lynxio-overload
start_nginx "$NGINX_PORT" "$LOAD_CORE"
taskset -c "$PROXY_CORE" target/release/lynxio --listen "127.0.0.1:$LYNXIO_PORT" --workers 1 \
    --max-connections "$MAXCONN" --connect-timeout 3s --client-head-timeout "$((PHASE + 5))s" \
    >"$WORK/lynxio.out" 2>"$WORK/lynxio.err" &
PIDS+=("$!")
wait_port "$LYNXIO_PORT"

# phase NAME: one wrk run with latency percentiles; prints "NAME rps p50 p99". Its
# connections are open within its first second.
phase() {
    local out
    out=$(ABS_URL="http://127.0.0.1:$NGINX_PORT/100b" taskset -c "$LOAD_CORE" \
        wrk -t1 -c"$CONNS" -d"${PHASE}s" --latency -s "$WORK/abs.lua" \
        "http://127.0.0.1:$LYNXIO_PORT/")
    echo "$out" >>"$WORK/wrk.log"
    python3 - "$1" "$out" <<'PY'
import re, sys
name, out = sys.argv[1], sys.argv[2]
def ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p = {k: ms(v, u) for k, v, u in re.findall(r"\s(50|99)%\s+([\d.]+)(us|ms|s)", out)}
print(f"{name} {rps:.0f} {p.get('50', 0):.2f} {p.get('99', 0):.2f}")
PY
}

phase baseline >"$WORK/results"

# Phase 2: the well-behaved clients connect first, then the abuse starts.
phase "under abuse" >"$WORK/abused" &
LOADER=$!
sleep 1
# The abuse, for the rest of phase 2.
python3 - "$LYNXIO_PORT" "$ABUSERS" "$((PHASE - 2))" >"$WORK/abuse.log" 2>&1 <<'PY' &
import socket, sys, time, threading
proxy, n, secs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
# A black hole: a listener whose accept queue is full and never drained.
hole = socket.socket()
hole.bind(("127.0.0.1", 0))
hole.listen(0)
port = hole.getsockname()[1]
fill = []
for _ in range(8):
    s = socket.socket(); s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    fill.append(s)
silent = []
for _ in range(n):
    s = socket.socket(); s.setblocking(False)
    try:
        s.connect(("127.0.0.1", proxy))
    except BlockingIOError:
        pass
    silent.append(s)
sent = 0
end = time.time() + secs
def flood():
    global sent
    while time.time() < end:
        try:
            c = socket.create_connection(("127.0.0.1", proxy), timeout=secs)
            c.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            sent += 1
            c.settimeout(secs)
            try:
                c.recv(1024)
            except OSError:
                pass
            c.close()
        except OSError:
            time.sleep(0.01)
threads = [threading.Thread(target=flood) for _ in range(64)]
for t in threads: t.start()
for t in threads: t.join()
print(f"silent clients: {len(silent)}, CONNECTs to the black hole: {sent}", flush=True)
for s in silent: s.close()
PY
ABUSE=$!
PIDS+=("$ABUSE")
wait "$LOADER"
cat "$WORK/abused" >>"$WORK/results"
wait "$ABUSE" || true
sleep 2
phase recovery >>"$WORK/results"
cat "$WORK/abuse.log"
grep -m1 "connection limit" "$WORK/lynxio.err" || true

printf '\n| phase | req/s | p50 ms | p99 ms |\n|---|---:|---:|---:|\n'
python3 - "$WORK/results" <<'PY'
import sys
rows = [l.strip().rsplit(" ", 3) for l in open(sys.argv[1]) if l.strip()]
for name, rps, p50, p99 in rows:
    print(f"| {name} | {rps} | {p50} | {p99} |")
rows = {r[0]: (float(r[1]), float(r[3])) for r in rows}
ok = rows["under abuse"][0] > 0 and rows["recovery"][0] > 0 \
    and rows["recovery"][1] <= 3 * max(rows["baseline"][1], 0.1)
print("\noverload: OK" if ok else "\noverload: FAILED")
sys.exit(0 if ok else 1)
PY
