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
#        scripts/bench-mitm.sh direct    (DURATION=5 REPS=3 CONNS=16; SKIP_BUILD=1; FLOAT=1)
#
# `scripts/bench-mitm.sh direct` (issue 13) instead compares lynxio intercepting with direct
# HTTPS to the same origin, nginx with TLS (ECDSA P-256 leaf, TLS 1.3, session cache and tickets
# on), same load tool, same run: keep-alive requests/s, new connections/s with full client
# handshakes (`handshake`), and new connections/s resuming the client's last session
# (`resumed`). Cases interleave, REPS times (default 3), medians reported; proxy CPU µs per
# request (= per handshake in the connection cases) from /proc/PID/stat. One more case runs
# through lynxio only: full client handshakes to a second nginx server without session cache or
# tickets, so every origin handshake is full too — what origin-side resumption saves. Afterwards
# lynxio's /metrics says how many of its handshakes on each side were resumed.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

if [ "${1:-}" = direct ]; then
    DURATION=${DURATION:-5}
    DURATION=${DURATION%s}
    CONNS=${CONNS:-16}
    REPS=${REPS:-3}
    # FLOAT=1: nothing pinned (when other work already occupies the cores this would pin to).
    if [ -n "${FLOAT:-}" ]; then PROXY_CORE=0,1 LOAD_CORE=0,1; fi
    PROXY_CORE=${PROXY_CORE:-0}
    LOAD_CORE=${LOAD_CORE:-1}
    LYNXIO_PORT=${LYNXIO_PORT:-18682}
    ADMIN_PORT=${ADMIN_PORT:-18683}
    NGINX_PORT=${NGINX_PORT:-18684}
    install_missing nginx
    [ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet --bin lynxio --example mitm_load
    TOOL=target/release/examples/mitm_load
    make_workdir lynxio-mdirect
    "$TOOL" certs "$WORK/pki"
    mkdir -p "$WORK/www"
    head -c 100 /dev/zero | tr '\0' x >"$WORK/www/100b"
    write_nginx_conf "
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets on;
    ssl_protocols TLSv1.2 TLSv1.3;
    types { }
    default_type text/plain;
    server {
        listen 127.0.0.1:$NGINX_PORT ssl reuseport;
        ssl_certificate $WORK/pki/cert.pem;
        ssl_certificate_key $WORK/pki/key.pem;
        root $WORK/www;
    }
    server {
        listen 127.0.0.1:$((NGINX_PORT + 1)) ssl reuseport;
        ssl_certificate $WORK/pki/cert.pem;
        ssl_certificate_key $WORK/pki/key.pem;
        ssl_session_cache off;
        ssl_session_tickets off;
        root $WORK/www;
    }"
    taskset -c "$LOAD_CORE" "$NGINX" -c "$WORK/nginx.conf" -p "$WORK/ngx" -e "$WORK/ngx/error.log"
    wait_port "$NGINX_PORT"
    PIN=(--cpus "$PROXY_CORE")
    [ -n "${FLOAT:-}" ] && PIN=()
    taskset -c "$PROXY_CORE" target/release/lynxio --listen "127.0.0.1:$LYNXIO_PORT" --workers 1 \
        "${PIN[@]}" --mitm '*' --ca-dir "$WORK/ca" --upstream-ca "$WORK/pki/ca.pem" \
        --admin "127.0.0.1:$ADMIN_PORT" --log warn >/dev/null 2>>"$WORK/lynxio.err" &
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    wait_port "$LYNXIO_PORT"
    TICKS=$(getconf CLK_TCK)
    echo "mitm vs direct: ${DURATION}s per case, $CONNS connections, $REPS reps; lynxio on core $PROXY_CORE, nginx and the load tool on core $LOAD_CORE" >&2
    # origin_handshakes: lynxio's origin-side "full resumed" handshake counts so far.
    origin_handshakes() {
        local m
        m=$(exec 3<>"/dev/tcp/127.0.0.1/$ADMIN_PORT" && printf 'GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n' >&3 && cat <&3)
        awk '/^lynxio_tls_handshakes_total.*side="origin",kind="full"/ {f=$2} /^lynxio_tls_handshakes_total.*side="origin",kind="resumed"/ {r=$2} END {print f+0, r+0}' <<<"$m"
    }
    # one TARGET MODE [PORT [NAME]]: a run of the load tool; appends "rps cpu_us_per_request
    # resumed_share" to $WORK/TARGET-NAME.runs (NAME defaults to MODE).
    one() {
        local target=$1 mode=$2 port=${3:-$NGINX_PORT} name=${4:-$2} proxy ca t0 t1 out
        if [ "$target" = direct ]; then proxy=direct ca="$WORK/pki/ca.pem"; else proxy="127.0.0.1:$LYNXIO_PORT" ca="$WORK/ca/ca.pem"; fi
        h0=$(origin_handshakes)
        t0=$(cpu_ticks "$PROXY_PID")
        out=$(taskset -c "$LOAD_CORE" "$TOOL" load "$proxy" "$port" "$ca" "$mode" "$CONNS" "$DURATION" 2>>"$WORK/load.err")
        t1=$(cpu_ticks "$PROXY_PID")
        h1=$(origin_handshakes)
        python3 - "$out" "$t0" "$t1" "$TICKS" "$DURATION" "$target" "$h0" "$h1" >>"$WORK/$target-$name.runs" <<'PY'
import sys
out, t0, t1, ticks, secs, target = sys.argv[1].split(), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
(f0, r0), (f1, r1) = (map(int, a.split()) for a in sys.argv[7:9])
f = dict(zip(out[::2], out[1::2]))
rps, hs, res = float(f["rps"]), int(f["handshakes"]), int(f["resumed"])
cpu = (t1 - t0) / ticks * 1e6 / max(rps * secs, 1) if target == "lynxio" else 0.0
origin = (r1 - r0) / max(f1 - f0 + r1 - r0, 1) if target == "lynxio" else 0.0
if int(f["errors"]):
    print(f"warning: {f['errors']} errors", file=sys.stderr)
print(f"{rps:.0f} {cpu:.2f} {res / max(hs, 1):.2f} {origin:.2f}")
PY
        echo "  $target $name: $(tail -1 "$WORK/$target-$name.runs") (req/s, lynxio CPU us/request, client resumed share, origin resumed share)" >&2
    }
    for rep in $(seq 1 "$REPS"); do
        for mode in keepalive handshake resumed; do
            # Alternate which goes first.
            if [ $((rep % 2)) = 1 ]; then one direct "$mode"; one lynxio "$mode"; else one lynxio "$mode"; one direct "$mode"; fi
        done
        one lynxio handshake $((NGINX_PORT + 1)) nores
    done
    if grep -q . "$WORK/load.err"; then sort "$WORK/load.err" | uniq -c | head -5 >&2; fi
    printf '\nHTTPS to nginx (100-byte file), direct vs through lynxio intercepting (1 worker, core %s); medians of %s\n\n' "$PROXY_CORE" "$REPS"
    printf '| case | direct req/s | lynxio req/s | lynxio / direct | lynxio CPU µs/request | client handshakes resumed (direct / lynxio) | lynxio origin handshakes resumed | runs lynxio/direct |\n|---|---:|---:|---:|---:|---:|---:|---|\n'
    python3 - "$WORK" <<'PY'
import sys, statistics
work = sys.argv[1]
labels = {"keepalive": "keep-alive requests/s", "handshake": "new connections/s, full client handshake", "resumed": "new connections/s, resumed client handshake"}
for mode, label in labels.items():
    runs = {t: [list(map(float, l.split())) for l in open(f"{work}/{t}-{mode}.runs")] for t in ("direct", "lynxio")}
    med = {t: [statistics.median(r[i] for r in runs[t]) for i in range(4)] for t in runs}
    each = " ".join(f"{l[0] / d[0]:.2f}" for l, d in zip(runs["lynxio"], runs["direct"]))
    print(f"| {label} | {med['direct'][0]:.0f} | {med['lynxio'][0]:.0f} | {med['lynxio'][0] / med['direct'][0]:.2f}x | {med['lynxio'][1]:.1f} | {med['direct'][2]:.2f} / {med['lynxio'][2]:.2f} | {med['lynxio'][3]:.2f} | {each} |")
PY
    python3 - "$WORK" <<'PY'
import sys, statistics
work = sys.argv[1]
runs = [list(map(float, l.split())) for l in open(f"{work}/lynxio-nores.runs")]
rps, cpu, _, origin = (statistics.median(r[i] for r in runs) for i in range(4))
print(f"| new connections/s, full client handshake, origin without resumption | | {rps:.0f} | | {cpu:.1f} | 0.00 | {origin:.2f} | |")
PY
    printf '\nlynxio handshakes over the whole run (/metrics):\n'
    exec 3<>"/dev/tcp/127.0.0.1/$ADMIN_PORT"
    printf 'GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n' >&3
    grep '^lynxio_tls_handshakes_total' <&3 || true
    exec 3<&-
    stop_pid "$PROXY_PID"
    exit 0
fi

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
