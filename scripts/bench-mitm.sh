#!/usr/bin/env bash
# HTTPS interception (MITM) benchmark, issue 5: lynxio --mitm vs mitmproxy (mitmdump) in the
# same run. Two cases, 100-byte responses over HTTPS through the proxy:
#   - keep-alive: CONNS client connections, each CONNECT + TLS handshake, then up to 1000
#     GETs on it (requests/s);
#   - new connections: one GET (Connection: close) per CONNECT + full TLS handshake, no client
#     session resumption (connections/s = requests/s).
# Load tool and origin: examples/mitm_load.rs (rustls).
#
# Layout on a 2-core machine: the proxy (one worker) on core 0, the load tool and the HTTPS
# origin on core 1. The proxy CPU column is the proxy process's user + system time over the
# run divided by the wall time (100 % = the proxy core is saturated; lower means the load core
# was the limit).
# Usage: scripts/bench-mitm.sh    (DURATION=10 CONNS=16 to tune; SKIP_MITMPROXY=1)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

DURATION=${DURATION:-10}
DURATION=${DURATION%s}
CONNS=${CONNS:-16}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
LYNXIO_PORT=${LYNXIO_PORT:-18682}
MITMPROXY_PORT=${MITMPROXY_PORT:-18681}

MITMDUMP=""
if [ -z "${SKIP_MITMPROXY:-}" ]; then
    if ! command -v mitmdump >/dev/null; then
        echo "installing mitmproxy (pip install mitmproxy; takes a while)" >&2
        pip install -q mitmproxy >&2 || echo "pip install mitmproxy failed; mitmproxy: n/a" >&2
        command -v pyenv >/dev/null && pyenv rehash 2>/dev/null || true
    fi
    # The real script, not a pyenv shim, so the PID we hold is the Python process.
    MITMDUMP=$( (command -v pyenv >/dev/null && pyenv which mitmdump 2>/dev/null) ||
        command -v mitmdump || true)
fi

cargo build --release --quiet --bin lynxio --example mitm_load
LYNXIO=target/release/lynxio
TOOL=target/release/examples/mitm_load
LOAD="taskset -c $LOAD_CORE $TOOL load"

make_workdir lynxio-mbench

# The HTTPS origin, on the load core.
taskset -c "$LOAD_CORE" "$TOOL" origin "$WORK/origin-ca.pem" >"$WORK/origin.out" &
PIDS+=("$!")
for _ in $(seq 1 100); do [ -s "$WORK/origin.out" ] && break; sleep 0.1; done
ORIGIN_PORT=$(awk '/^port/ {print $2}' "$WORK/origin.out")
wait_port "$ORIGIN_PORT"

# cpu_ticks PID: user + system clock ticks of PID so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

declare -A RPS PCPU
run_case() { # NAME PORT CA MODE PID
    local name=$1 port=$2 ca=$3 mode=$4 pid=$5 t0 t1 s0 s1 out
    t0=$(cpu_ticks "$pid")
    s0=$(date +%s.%N)
    out=$($LOAD "127.0.0.1:$port" "$ORIGIN_PORT" "$ca" "$mode" "$CONNS" "$DURATION" 2>>"$WORK/load.err")
    s1=$(date +%s.%N)
    t1=$(cpu_ticks "$pid")
    RPS["$name,$mode"]=$(awk '{print $2}' <<<"$out")
    PCPU["$name,$mode"]=$(python3 -c "print(f'{($t1 - $t0) / $(getconf CLK_TCK) / ($s1 - $s0) * 100:.0f} %')")
    echo "  $name $mode: $out, proxy CPU ${PCPU["$name,$mode"]}" >&2
    if grep -q . "$WORK/load.err"; then sed 's/^/    /' "$WORK/load.err" >&2; : >"$WORK/load.err"; fi
}

echo "mitm: ${DURATION}s per case, $CONNS connections; proxy on core $PROXY_CORE, load tool and origin on core $LOAD_CORE" >&2

taskset -c "$PROXY_CORE" "$LYNXIO" --listen "127.0.0.1:$LYNXIO_PORT" --workers 1 --cpus "$PROXY_CORE" \
    --mitm '*' --ca-dir "$WORK/ca" --upstream-ca "$WORK/origin-ca.pem" --log warn \
    >/dev/null 2>>"$WORK/lynxio.err" &
PROXY_PID=$!
PIDS+=("$PROXY_PID")
wait_port "$LYNXIO_PORT"
for mode in keepalive handshake; do
    run_case lynxio "$LYNXIO_PORT" "$WORK/ca/ca.pem" "$mode" "$PROXY_PID"
done
stop_pid "$PROXY_PID"
grep -v "created a new root CA" "$WORK/lynxio.err" | head -5 >&2 || true

MITM_VERSION="n/a"
if [ -n "$MITMDUMP" ]; then
    MITM_VERSION=$("$MITMDUMP" --version 2>/dev/null | awk '/^Mitmproxy/ {print $2}')
    taskset -c "$PROXY_CORE" "$MITMDUMP" --ssl-insecure -q --listen-host 127.0.0.1 \
        --listen-port "$MITMPROXY_PORT" >/dev/null 2>>"$WORK/mitmproxy.err" &
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    wait_port "$MITMPROXY_PORT"
    MITM_CA="$HOME/.mitmproxy/mitmproxy-ca-cert.pem"
    for _ in $(seq 1 100); do [ -s "$MITM_CA" ] && break; sleep 0.1; done
    for mode in keepalive handshake; do
        run_case mitmproxy "$MITMPROXY_PORT" "$MITM_CA" "$mode" "$PROXY_PID"
    done
    stop_pid "$PROXY_PID"
    head -5 "$WORK/mitmproxy.err" >&2 || true
fi

printf '\nHTTPS through the proxy, 100-byte responses, one proxy worker on core %s (mitmproxy %s)\n\n' \
    "$PROXY_CORE" "$MITM_VERSION"
printf '| case | lynxio | mitmproxy | lynxio / mitmproxy | goal | proxy CPU (lynxio / mitmproxy) |\n'
printf '|---|---:|---:|---:|---:|---:|\n'
row() { # LABEL MODE GOAL
    printf '| %s | %s | %s | %s | %s | %s / %s |\n' "$1" "${RPS["lynxio,$2"]:-n/a}" \
        "${RPS["mitmproxy,$2"]:-n/a}" "$(ratio "${RPS["lynxio,$2"]:-}" "${RPS["mitmproxy,$2"]:-}")" \
        "$3" "${PCPU["lynxio,$2"]:-n/a}" "${PCPU["mitmproxy,$2"]:-n/a}"
}
row "keep-alive (requests/s, $CONNS conns)" keepalive "≥ 30x"
row "new connections (handshakes/s, $CONNS clients)" handshake "≥ 9x"
