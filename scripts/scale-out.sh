#!/usr/bin/env bash
# scale-out.sh [N] [DURATION]: N lynxio instances (default 2) sharing one CA directory behind
# a local HAProxy built from dist/haproxy.cfg (TCP, leastconn, /healthz checks), an nginx
# origin and an openssl TLS origin; then wrk through the balancer, a CONNECT + MITM check
# through the balancer (curl trusting only lynxio's CA must see the origin's page, with a
# certificate issued by lynxio), and a table of requests per instance from their /metrics.
# Installs haproxy, nginx, wrk, curl, openssl from Debian when missing (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2}
DURATION=${2:-5s}
. scripts/lib.sh
install_missing haproxy nginx wrk curl openssl
make_workdir lynxio-scale
LB_PORT=3128 NGINX_PORT=18200 TLS_PORT=18443
cargo build --release --locked --quiet
BIN=target/release/lynxio

start_nginx "$NGINX_PORT" 0
CA="$WORK/ca"
"$BIN" ca export --ca-dir "$CA" >/dev/null # one CA for every instance

# A TLS origin with a self-signed certificate lynxio pins (--upstream-ca).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$WORK/tls-key.pem" -out "$WORK/tls.pem" 2>/dev/null
(cd "$WORK" && exec openssl s_server -quiet -accept "$TLS_PORT" -cert tls.pem -key tls-key.pem -www) \
    >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$TLS_PORT"

servers=""
for i in $(seq 1 "$N"); do
    port=$((18080 + i)) admin=$((19090 + i))
    "$BIN" --listen "127.0.0.1:$port" --admin "127.0.0.1:$admin" --workers 1 --ca-dir "$CA" \
        --mitm localhost --upstream-ca "$WORK/tls.pem" --log warn >"$WORK/lynxio$i.out" 2>&1 &
    PIDS+=($!)
    wait_port "$port"
    servers+="    server lynxio$i 127.0.0.1:$port port $admin"$'\n'
done
# dist/haproxy.cfg with this run's servers.
sed -e '/^    server /d' -e "s/bind 127.0.0.1:3128/bind 127.0.0.1:$LB_PORT/" dist/haproxy.cfg \
    >"$WORK/haproxy.cfg"
printf '%s' "$servers" >>"$WORK/haproxy.cfg"
haproxy -c -q -f "$WORK/haproxy.cfg"
haproxy -D -f "$WORK/haproxy.cfg" -p "$WORK/haproxy.pid"
wait_port "$LB_PORT"
sleep 3 # first health checks

# CONNECT + MITM through the balancer, once per instance (leastconn spreads them).
for i in $(seq 1 "$N"); do
    out=$(curl -sS -v --cacert "$CA/ca.pem" -x "http://127.0.0.1:$LB_PORT" \
        "https://localhost:$TLS_PORT/" 2>&1)
    grep -q "issuer: CN=lynxio CA" <<<"$out" || { echo "MITM check failed:"; echo "$out"; exit 1; }
    grep -q "s_server" <<<"$out" || { echo "origin page missing:"; echo "$out"; exit 1; }
done
echo "CONNECT + MITM through the balancer: ok ($N handshakes, certificates issued by lynxio's CA)"

read -r rps mbps errs < <(LOAD_CORE=0-1 run_wrk "$LB_PORT" /100b 64 1)
echo
printf '%-10s %12s\n' instance requests
total=0
for i in $(seq 1 "$N"); do
    reqs=$(curl -s "127.0.0.1:$((19090 + i))/metrics" |
        awk '/^lynxio_requests_total/ { s += $NF } END { printf "%d", s }')
    total=$((total + reqs))
    printf '%-10s %12s\n' "lynxio$i" "$reqs"
done
printf '%-10s %12s\n' total "$total"
echo
echo "wrk through haproxy ($DURATION, 64 connections, 100-byte responses): $rps req/s, $errs errors"
[ "$errs" = 0 ]
