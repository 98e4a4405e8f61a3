#!/usr/bin/env bash
# Whole-proxy benchmark: wrk with absolute-form requests against an nginx origin, directly and
# through lynxio (1 and 2 workers, io_uring and epoll, with/without SQPOLL) and Squid (no cache)
# in the same run, printed as a Markdown table with ratios against the direct run and Squid.
#
# Two layouts on a 2-core machine:
#  pinned: the proxy under test on core 0, wrk (1 thread) and nginx on core 1 — the issue's
#          "one worker on one core" comparison, including Squid;
#  shared: nothing pinned, wrk with 2 threads — how 1 and 2 lynxio workers use the whole
#          machine when they must share it with the load generator and the origin.
#
# Usage: scripts/bench.sh            (DURATION=10s CONNS_SMALL=64 CONNS_LARGE=16 to tune)
#        SKIP_SQUID=1 scripts/bench.sh
# Installs wrk, nginx and squid from Debian when they are missing (needs root and apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

DURATION=${DURATION:-10s}
CONNS_SMALL=${CONNS_SMALL:-64}
CONNS_LARGE=${CONNS_LARGE:-16}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
NGINX_PORT=${NGINX_PORT:-18480}
SQUID_PORT=${SQUID_PORT:-18481}
LYNXIO_PORT=${LYNXIO_PORT:-18482}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
if [ -z "${SKIP_SQUID:-}" ]; then
    command -v squid >/dev/null || [ -x /usr/sbin/squid ] || need+=(squid)
fi
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
SQUID=$(command -v squid || echo /usr/sbin/squid)

cargo build --release --quiet
LYNXIO=target/release/lynxio

make_workdir lynxio-bench

# --- origin -------------------------------------------------------------------------------
mkdir -p "$WORK/www" "$WORK/ngx"
head -c 100 /dev/zero | tr '\0' 'a' >"$WORK/www/100b"
head -c 1048576 /dev/urandom >"$WORK/www/1m"
chmod -R a+rX "$WORK/www"
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/ngx/error.log warn;
daemon on;
events { worker_connections 4096; }
http {
    access_log off;
    # Measured here: on loopback nginx serves 1 MiB faster with plain writes than sendfile.
    sendfile off;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_body_temp_path $WORK/ngx;
    proxy_temp_path $WORK/ngx;
    fastcgi_temp_path $WORK/ngx;
    uwsgi_temp_path $WORK/ngx;
    scgi_temp_path $WORK/ngx;
    types { }
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$NGINX_PORT reuseport;
        root $WORK/www;
    }
}
EOF
# nginx inherits the affinity: it shares the load core with wrk.
taskset -c "$LOAD_CORE" "$NGINX" -c "$WORK/nginx.conf" -p "$WORK/ngx" -e "$WORK/ngx/error.log"

wait_port "$NGINX_PORT"

# --- wrk ----------------------------------------------------------------------------------
# wrk has no proxy option: through a proxy the request line must carry the absolute URL.
cat >"$WORK/abs.lua" <<EOF
wrk.path = os.getenv("ABS_URL")
wrk.headers["Host"] = "127.0.0.1:$NGINX_PORT"
EOF

# run_wrk PORT PATH CONNS ABSOLUTE(0|1) -> prints "rps mbps errors"
# WRK_CPUS / WRK_THREADS select the layout (default: pinned to the load core, one thread).
run_wrk() {
    local port=$1 path=$2 conns=$3 absolute=$4 out
    local cpus=${WRK_CPUS:-$LOAD_CORE} threads=${WRK_THREADS:-1}
    if [ "$absolute" = 1 ]; then
        out=$(ABS_URL="http://127.0.0.1:$NGINX_PORT$path" taskset -c "$cpus" \
            wrk -t"$threads" -c"$conns" -d"$DURATION" -s "$WORK/abs.lua" "http://127.0.0.1:$port/")
    else
        out=$(taskset -c "$cpus" wrk -t"$threads" -c"$conns" -d"$DURATION" "http://127.0.0.1:$port$path")
    fi
    echo "$out" >>"$WORK/wrk.log"
    python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
m = re.search(r"Transfer/sec:\s+([\d.]+)([KMG]?B)", out)
scale = {"B": 1e-6, "KB": 1024 / 1e6, "MB": 1024**2 / 1e6, "GB": 1024**3 / 1e6}[m.group(2)]
errs = 0
e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
if e:
    errs += sum(int(x) for x in e.groups())
n = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
if n:
    errs += int(n.group(1))
print(f"{rps:.0f} {float(m.group(1)) * scale:.0f} {errs}")
PY
}

# --- proxies ------------------------------------------------------------------------------
start_lynxio() {
    "$LYNXIO" --listen "127.0.0.1:$LYNXIO_PORT" --log warn "$@" >"$WORK/lynxio.out" 2>>"$WORK/lynxio.err" &
    LYNXIO_PID=$!
    PIDS+=("$LYNXIO_PID")
    wait_port "$LYNXIO_PORT"
}
stop_lynxio() { stop_pid "$LYNXIO_PID"; }


# --- run ----------------------------------------------------------------------------------
declare -A RPS MBPS ERRS
ROWS=()
measure() { # NAME PORT ABSOLUTE
    local name=$1 port=$2 abs=$3 small large
    read -r -a small <<<"$(run_wrk "$port" /100b "$CONNS_SMALL" "$abs")"
    read -r -a large <<<"$(run_wrk "$port" /1m "$CONNS_LARGE" "$abs")"
    RPS[$name]=${small[0]}
    MBPS[$name]=${large[1]}
    ERRS[$name]=$((small[2] + large[2]))
    ROWS+=("$name")
    echo "  $name: ${RPS[$name]} req/s (100 B), ${MBPS[$name]} MB/s (1 MiB), errors ${ERRS[$name]}" >&2
}

echo "benchmark: DURATION=$DURATION, 100 B with $CONNS_SMALL connections, 1 MiB with $CONNS_LARGE" >&2
echo "layout pinned: proxy on core $PROXY_CORE, wrk + nginx on core $LOAD_CORE" >&2
measure "direct (nginx)" "$NGINX_PORT" 0

start_lynxio --workers 1 --cpus "$PROXY_CORE" --driver uring
measure "lynxio 1 worker, io_uring" "$LYNXIO_PORT" 1
stop_lynxio

start_lynxio --workers 1 --cpus "$PROXY_CORE" --driver uring --sqpoll 100
measure "lynxio 1 worker, io_uring + sqpoll" "$LYNXIO_PORT" 1
stop_lynxio

start_lynxio --workers 1 --cpus "$PROXY_CORE" --driver epoll
measure "lynxio 1 worker, epoll" "$LYNXIO_PORT" 1
stop_lynxio

if [ -z "${SKIP_SQUID:-}" ]; then
    start_squid "$SQUID_PORT"
    measure "squid (no cache)" "$SQUID_PORT" 1
    stop_pid "$SQUID_PID"
fi

# --- report -------------------------------------------------------------------------------
report() { # TITLE BASELINE_NAME [SQUID_NAME]
    local title=$1 base=$2 sq=${3:-} name rs ms
    printf '\n%s\n\n' "$title"
    printf '| target | req/s (100 B) | vs direct | vs Squid | MB/s (1 MiB) | vs direct | vs Squid | errors |\n'
    printf '|---|---:|---:|---:|---:|---:|---:|---:|\n'
    for name in "${ROWS[@]}"; do
        rs="n/a"; ms="n/a"
        if [ -n "$sq" ] && [ -n "${RPS[$sq]:-}" ]; then
            rs=$(ratio "${RPS[$name]}" "${RPS[$sq]}"); ms=$(ratio "${MBPS[$name]}" "${MBPS[$sq]}")
        fi
        printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "${RPS[$name]}" \
            "$(ratio "${RPS[$name]}" "${RPS[$base]}")" "$rs" "${MBPS[$name]}" \
            "$(ratio "${MBPS[$name]}" "${MBPS[$base]}")" "$ms" "${ERRS[$name]}"
    done
}
report "Pinned: proxy on core $PROXY_CORE, wrk -t1 and nginx on core $LOAD_CORE" "direct (nginx)" "squid (no cache)"

# --- shared layout ------------------------------------------------------------------------
ROWS=()
ALL_CPUS="$PROXY_CORE,$LOAD_CORE"
taskset -a -p -c "$ALL_CPUS" "$(cat "$WORK/nginx.pid")" >/dev/null
for p in $(pgrep -P "$(cat "$WORK/nginx.pid")"); do taskset -a -p -c "$ALL_CPUS" "$p" >/dev/null; done
echo "layout shared: nothing pinned, wrk -t2" >&2
export WRK_CPUS=$ALL_CPUS WRK_THREADS=2
measure "direct (nginx), shared" "$NGINX_PORT" 0
start_lynxio --workers 1 --no-pin --driver uring
measure "lynxio 1 worker, shared" "$LYNXIO_PORT" 1
stop_lynxio
start_lynxio --workers 2 --no-pin --driver uring
measure "lynxio 2 workers, shared" "$LYNXIO_PORT" 1
stop_lynxio
report "Shared: nothing pinned, wrk -t2, everything on both cores" "direct (nginx), shared"
