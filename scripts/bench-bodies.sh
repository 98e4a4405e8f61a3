#!/usr/bin/env bash
# Bulk bodies, measured the way issue 13's independent harness does: every proxy runs in its own
# cgroup capped at CAP% of one core (so the load core is never the ceiling), pinned to core 0;
# the nginx origin (plain and TLS), curl/wrk and the upload sink share core 1. Proxy CPU is
# utime+stime from /proc; each figure is the median of REPS interleaved repetitions.
#
#  1 MiB GETs (wrk, 16 connections, DURATION): req/s at the cap and proxy CPU s/GB — lynxio
#      (splice), lynxio --no-splice, HAProxy (splice-auto, the reference splicing proxy), Squid;
#      and uncapped lynxio and HAProxy against direct to nginx;
#  1 GiB GET on the plain proxy path, the same GET inside a CONNECT tunnel (HTTP in CONNECT),
#      and HTTPS through CONNECT (opaque TLS, spliced): proxy CPU s/GB, lynxio vs Squid;
#  1 GiB upload (PUT, Content-Length) through lynxio (both modes) and HAProxy vs direct,
#      uncapped: throughput ratio;
#  with SMALL=1 also 100-byte keep-alive GETs (wrk, 64 connections) at the cap: req/s and proxy
#      CPU µs per request, lynxio vs Squid.
# Every wrk/curl run also reports how busy the load core was (/proc/stat): at 100 % the load
# side, not the proxy, set the pace; each 1 GiB transfer also reports the host's steal.
#
# Usage: scripts/bench-bodies.sh   (CAP=40 REPS=2 DURATION=10s SIZE_MB=1024 to tune;
#        ONLY_UNCAPPED=1 runs only the uncapped 1 MiB and upload rows;
#        SPLICE_MIN_SIZES="64 128 256 512" adds a threshold sweep: bodies of those KiB sizes,
#        every body spliced (--splice-body-min 1) vs copied; SKIP_MAIN=1 runs only the sweep)
# Needs root for the cgroup (cgroup v1 `cpu` or v2 `cpu.max`); without it runs uncapped and
# says so. Installs wrk, curl, nginx, squid, haproxy and openssl from Debian when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

CAP=${CAP:-40}
REPS=${REPS:-2}
DURATION=${DURATION:-10s}
SIZE_MB=${SIZE_MB:-1024}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
NGINX_PORT=${NGINX_PORT:-18680}
TLS_PORT=${TLS_PORT:-18683}
SINK_PORT=${SINK_PORT:-18684}
SQUID_PORT=${SQUID_PORT:-18681}
HAPROXY_PORT=${HAPROXY_PORT:-18685}
LYNXIO_PORT=${LYNXIO_PORT:-18682}
TICKS=$(getconf CLK_TCK)

install_missing wrk curl nginx squid openssl haproxy
SQUID=$(command -v squid || echo /usr/sbin/squid)
# LYNXIO=path/to/lynxio measures that binary instead of building this tree's release one.
if [ -z "${LYNXIO:-}" ]; then
    cargo build --release --quiet --bin lynxio
    LYNXIO=target/release/lynxio
fi
make_workdir lynxio-bodies

# --- the cgroup every proxy runs in ---------------------------------------------------------
CGROUP=""
if [ -w /sys/fs/cgroup/cgroup.subtree_control ] && grep -qw cpu /sys/fs/cgroup/cgroup.controllers; then
    CGROUP=/sys/fs/cgroup/lynxio-bench-$$
    mkdir "$CGROUP"
    echo "$((CAP * 1000)) 100000" >"$CGROUP/cpu.max"
elif [ -w /sys/fs/cgroup/cpu ]; then
    CGROUP=/sys/fs/cgroup/cpu/lynxio-bench-$$
    mkdir "$CGROUP"
    echo 100000 >"$CGROUP/cpu.cfs_period_us"
    echo "$((CAP * 1000))" >"$CGROUP/cpu.cfs_quota_us"
else
    echo "warning: no writable cpu cgroup; proxies run UNCAPPED" >&2
fi
remove_cgroup() {
    cleanup_workdir
    [ -n "$CGROUP" ] && rmdir "$CGROUP" 2>/dev/null || true
}
trap remove_cgroup EXIT

# run_proxy CAPPED(0|1) CMD...: start CMD pinned to the proxy core (in the capped cgroup when
# CAPPED=1); sets PROXY_PID.
run_proxy() {
    local capped=$1
    shift
    if [ "$capped" = 1 ] && [ -n "$CGROUP" ]; then
        # shellcheck disable=SC2016
        taskset -c "$PROXY_CORE" sh -c 'echo $$ >"$0/cgroup.procs"; shift; exec "$@"' \
            "$CGROUP" x "$@" >"$WORK/proxy.out" 2>>"$WORK/proxy.err" &
    else
        taskset -c "$PROXY_CORE" "$@" >"$WORK/proxy.out" 2>>"$WORK/proxy.err" &
    fi
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
}

start_variant() {
    local name=$1 capped=$2
    case "$name" in
    lynxio) run_proxy "$capped" "$LYNXIO" --listen "127.0.0.1:$LYNXIO_PORT" --workers 1 \
        --cpus "$PROXY_CORE" --log warn ${LYNXIO_ARGS:-} ;;
    lynxio-copy) run_proxy "$capped" "$LYNXIO" --listen "127.0.0.1:$LYNXIO_PORT" --workers 1 \
        --cpus "$PROXY_CORE" --log warn --no-splice ;;
    squid)
        write_squid_conf "$SQUID_PORT"
        run_proxy "$capped" "$SQUID" -f "$WORK/squid.conf" -N
        ;;
    haproxy) run_proxy "$capped" haproxy -f "$WORK/haproxy.cfg" -db ;;
    esac
    wait_port "$(port_of "$name")"
}
port_of() {
    case "$1" in
    squid) echo "$SQUID_PORT" ;;
    haproxy) echo "$HAPROXY_PORT" ;;
    *) echo "$LYNXIO_PORT" ;;
    esac
}

# core_jiffies CORE -> "busy total" jiffies of that core since boot (/proc/stat).
core_jiffies() {
    awk -v c="cpu$1" '$1 == c {t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t}' /proc/stat
}
# steal_jiffies -> "steal total" jiffies of the whole machine since boot: time the hypervisor
# ran something else while this VM's vCPUs wanted to run.
steal_jiffies() {
    awk '$1 == "cpu" {t = 0; for (i = 2; i <= NF; i++) t += $i; print $9, t}' /proc/stat
}
# steal_since "STEAL TOTAL" -> percent of the machine's CPU time stolen since the sample. A
# stolen vCPU holding a lock makes the other spin: proxy CPU per GB measured across steal is
# inflated (HTTPS through CONNECT measured 0.22 s/GB with 5 ticks stolen, 1.1 with 205).
steal_since() {
    local now
    now=$(steal_jiffies)
    python3 -c "import sys; s0,t0,s1,t1=map(float,sys.argv[1:]); print(f'{100*(s1-s0)/max(t1-t0,1):.1f}')" $1 $now
}
# busy_since "BUSY TOTAL" CORE -> percent of that core busy since the core_jiffies sample.
busy_since() {
    local now
    now=$(core_jiffies "$2")
    python3 -c "import sys; b0,t0,b1,t1=map(float,sys.argv[1:]); print(f'{100*(b1-b0)/max(t1-t0,1):.0f}')" $1 $now
}


# --- origins --------------------------------------------------------------------------------
mkdir -p "$WORK/www"
head -c 1048576 /dev/urandom >"$WORK/www/1m"
head -c 100 /dev/zero | tr '\0' 'a' >"$WORK/www/100b"
head -c "$((SIZE_MB * 1048576))" /dev/zero >"$WORK/www/big"
for kib in ${SPLICE_MIN_SIZES:-}; do head -c "$((kib * 1024))" /dev/urandom >"$WORK/www/${kib}k"; done
chmod -R a+rX "$WORK/www"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout "$WORK/key.pem" \
    -out "$WORK/cert.pem" 2>/dev/null
write_nginx_conf "
    sendfile off;
    keepalive_requests 1000000;
    types { }
    default_type application/octet-stream;
    server { listen 127.0.0.1:$NGINX_PORT reuseport; root $WORK/www; }
    server {
        listen 127.0.0.1:$TLS_PORT ssl;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        root $WORK/www;
    }"
taskset -c "$LOAD_CORE" "$NGINX" -c "$WORK/nginx.conf" -p "$WORK/ngx" -e "$WORK/ngx/error.log"
wait_port "$NGINX_PORT"
write_abs_lua "$NGINX_PORT"
# The upload sink: reads each request's Content-Length body in 1 MiB recv_into calls, answers.
cat >"$WORK/sink.py" <<'PY'
import socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen(64)
buf = memoryview(bytearray(1 << 20))
while True:
    c, _ = srv.accept()
    head = b""
    while b"\r\n\r\n" not in head:
        d = c.recv(4096)
        if not d:
            break
        head += d
    h, _, rest = head.partition(b"\r\n\r\n")
    length = 0
    for line in h.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    left = length - len(rest)
    while left > 0:
        n = c.recv_into(buf, min(left, len(buf)))
        if n == 0:
            break
        left -= n
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
    c.close()
PY
# HAProxy 2.6 as the reference of a tuned splicing proxy: HTTP mode, one thread, kernel
# splicing of bodies where it judges it pays (splice-auto), origin connections reused.
cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option splice-auto
    http-reuse always
frontend in
    bind 127.0.0.1:$HAPROXY_PORT
    use_backend sink if { url_port $SINK_PORT }
    default_backend origin
backend origin
    server nginx 127.0.0.1:$NGINX_PORT
backend sink
    server sink 127.0.0.1:$SINK_PORT
EOF
taskset -c "$LOAD_CORE" python3 "$WORK/sink.py" "$SINK_PORT" &
PIDS+=($!)
wait_port "$SINK_PORT"

# --- measurements ---------------------------------------------------------------------------
# wrk_1m VARIANT CAPPED -> "req/s s_per_GB"
wrk_1m() {
    local name=$1 capped=$2 port out before after load0 busy
    port=$(port_of "$name")
    start_variant "$name" "$capped"
    before=$(cpu_ticks "$PROXY_PID")
    load0=$(core_jiffies "$LOAD_CORE")
    out=$(ABS_URL="http://127.0.0.1:$NGINX_PORT/${PATH_1M:-1m}" taskset -c "$LOAD_CORE" \
        wrk -t1 -c16 -d"$DURATION" -s "$WORK/abs.lua" "http://127.0.0.1:$port/")
    after=$(cpu_ticks "$PROXY_PID")
    busy=$(busy_since "$load0" "$LOAD_CORE")
    stop_pid "$PROXY_PID"
    echo "$out" >>"$WORK/wrk.log"
    python3 - "$out" "$before" "$after" "$TICKS" "$busy" <<'PY'
import re, sys
out, b, a, ticks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
busy = sys.argv[5]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
m = re.search(r"([\d.]+)([KMG]?B) read", out)
gb = float(m.group(1)) * {"B": 1e-9, "KB": 1024 / 1e9, "MB": 1024**2 / 1e9, "GB": 1024**3 / 1e9}[m.group(2)]
if "Non-2xx" in out or "Socket errors" in out:
    print("warning: errors in a wrk run", file=sys.stderr)
print(f"{rps:.1f} {(a - b) / ticks / max(gb, 1e-9):.3f} {busy}")
PY
}

# wrk_small VARIANT -> "req/s µs_per_request" (100 B, 64 connections, capped)
wrk_small() {
    local name=$1 port out before after
    port=$(port_of "$name")
    start_variant "$name" 1
    before=$(cpu_ticks "$PROXY_PID")
    out=$(ABS_URL="http://127.0.0.1:$NGINX_PORT/100b" taskset -c "$LOAD_CORE" \
        wrk -t1 -c64 -d"$DURATION" -s "$WORK/abs.lua" "http://127.0.0.1:$port/")
    after=$(cpu_ticks "$PROXY_PID")
    stop_pid "$PROXY_PID"
    python3 - "$out" "$before" "$after" "$TICKS" <<'PY'
import re, sys
out, b, a, ticks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
total = int(re.search(r"(\d+) requests in", out).group(1))
print(f"{rps:.0f} {(a - b) / ticks * 1e6 / max(total, 1):.2f}")
PY
}

# direct_1m -> "req/s" straight to nginx (the line a perfect proxy reaches).
direct_1m() {
    local load0 rps
    load0=$(core_jiffies "$LOAD_CORE")
    rps=$(taskset -c "$LOAD_CORE" wrk -t1 -c16 -d"$DURATION" "http://127.0.0.1:$NGINX_PORT/1m" |
        awk '/Requests\/sec/ {print $2}')
    echo "$rps 0 $(busy_since "$load0" "$LOAD_CORE")"
}

# curl_big VARIANT MODE(plain|connect|https|upload) -> "MB/s s_per_GB load_busy% steal%";
# VARIANT "direct" runs without a proxy (CPU column 0).
curl_big() {
    local name=$1 mode=$2 port args=() before=0 after=0 out load0 busy
    if [ "$name" != direct ]; then
        port=$(port_of "$name")
        start_variant "$name" "${CAPPED:-1}"
        args=(-x "http://127.0.0.1:$port")
        before=$(cpu_ticks "$PROXY_PID")
    fi
    case "$mode" in
    plain) args+=("http://127.0.0.1:$NGINX_PORT/big" -o /dev/null) ;;
    connect) args+=(-p "http://127.0.0.1:$NGINX_PORT/big" -o /dev/null) ;;
    https) args+=(-k "https://127.0.0.1:$TLS_PORT/big" -o /dev/null) ;;
    upload) args+=(-H "Expect:" -T "$WORK/www/big" "http://127.0.0.1:$SINK_PORT/upload" -o /dev/null) ;;
    esac
    load0=$(core_jiffies "$LOAD_CORE")
    steal0=$(steal_jiffies)
    out=$(taskset -c "$LOAD_CORE" curl -sS --fail -w '%{size_download} %{size_upload} %{time_total}' "${args[@]}")
    busy=$(busy_since "$load0" "$LOAD_CORE")
    steal=$(steal_since "$steal0")
    if [ "$name" != direct ]; then
        after=$(cpu_ticks "$PROXY_PID")
        stop_pid "$PROXY_PID"
    fi
    python3 - "$out" "$before" "$after" "$TICKS" "$busy" "$steal" <<'PY'
import sys
down, up, secs = (float(x) for x in sys.argv[1].split())
b, a, ticks = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
moved = max(down, up)
print(f"{moved / secs / 1e6:.0f} {(a - b) / ticks / (moved / 1e9):.3f} {sys.argv[5]} {sys.argv[6]}")
PY
}

record() { echo "$2" >>"$WORK/$1.runs"; echo "  $1: $2" >&2; }

for rep in $(seq 1 "$REPS"); do
    if [ -n "${SMALL:-}" ]; then
        for v in lynxio squid; do record "small-$v" "$(wrk_small "$v")"; done
    fi
    [ -n "${SKIP_MAIN:-}" ] && continue
    echo "repetition $rep/$REPS" >&2
    if [ -z "${ONLY_UNCAPPED:-}" ]; then
        for v in lynxio lynxio-copy haproxy squid; do record "1m-$v" "$(wrk_1m "$v" 1)"; done
    fi
    record "1m-direct" "$(direct_1m)"
    for v in lynxio haproxy; do record "1m-$v-uncapped" "$(wrk_1m "$v" 0)"; done
    if [ -z "${ONLY_UNCAPPED:-}" ]; then
        for v in lynxio lynxio-copy squid; do
            for mode in plain connect https; do record "$mode-$v" "$(curl_big "$v" "$mode")"; done
        done
    fi
    record "upload-direct" "$(curl_big direct upload)"
    for v in lynxio lynxio-copy haproxy; do record "upload-$v" "$(CAPPED=0 curl_big "$v" upload)"; done
done

median() { python3 -c "import statistics,sys; print(statistics.median(float(l.split()[$2]) for l in open(sys.argv[1])))" "$WORK/$1.runs"; }

if [ -z "${SKIP_MAIN:-}" ]; then
echo
echo "Bodies, $(date -u +%F), $(nproc) cores, $(uname -r); proxies capped at ${CAP}% of core $PROXY_CORE" \
    "$([ -z "$CGROUP" ] && echo '(NOT capped: no cgroup)'), load on core $LOAD_CORE, median of $REPS"
echo
if [ -z "${ONLY_UNCAPPED:-}" ]; then
echo "| 1 MiB GETs, wrk -c16 | req/s | vs Squid | proxy CPU s/GB | Squid's CPU/GB ÷ this |"
echo "|---|---:|---:|---:|---:|"
sq_rps=$(median 1m-squid 0)
sq_cpu=$(median 1m-squid 1)
for v in lynxio lynxio-copy haproxy squid; do
    echo "| $v (capped) | $(median "1m-$v" 0) | $(ratio "$(median "1m-$v" 0)" "$sq_rps") | $(median "1m-$v" 1) | $(ratio "$sq_cpu" "$(median "1m-$v" 1)") |"
done
echo
fi
echo "| 1 MiB GETs, wrk -c16, uncapped | req/s | vs direct | proxy CPU s/GB | load core busy % |"
echo "|---|---:|---:|---:|---:|"
echo "| direct to nginx | $(median 1m-direct 0) | 1.00x | | $(median 1m-direct 2) |"
for v in lynxio haproxy; do
    echo "| $v | $(median "1m-$v-uncapped" 0) | $(ratio "$(median "1m-$v-uncapped" 0)" "$(median 1m-direct 0)") | $(median "1m-$v-uncapped" 1) | $(median "1m-$v-uncapped" 2) |"
done
if [ -z "${ONLY_UNCAPPED:-}" ]; then
echo
echo "| ${SIZE_MB} MiB transfer, curl | lynxio s/GB | lynxio-copy s/GB | Squid s/GB | Squid ÷ lynxio | host steal % (lynxio runs) |"
echo "|---|---:|---:|---:|---:|---:|"
for mode in plain connect https; do
    echo "| $mode | $(median "$mode-lynxio" 1) | $(median "$mode-lynxio-copy" 1) | $(median "$mode-squid" 1) | $(ratio "$(median "$mode-squid" 1)" "$(median "$mode-lynxio" 1)") | $(cut -d' ' -f4 "$WORK/$mode-lynxio.runs" | paste -sd/) |"
done
fi
echo
echo "| ${SIZE_MB} MiB upload (uncapped) | MB/s | vs direct | proxy CPU s/GB | load core busy % |"
echo "|---|---:|---:|---:|---:|"
for v in direct lynxio lynxio-copy haproxy; do
    echo "| $v | $(median "upload-$v" 0) | $(ratio "$(median "upload-$v" 0)" "$(median upload-direct 0)") | $(median "upload-$v" 1) | $(median "upload-$v" 2) |"
done
fi

if [ -n "${SMALL:-}" ]; then
    echo
    echo "| 100 B keep-alive, wrk -c64, capped | req/s | vs Squid | proxy CPU µs/request | Squid ÷ this |"
    echo "|---|---:|---:|---:|---:|"
    for v in lynxio squid; do
        echo "| $v | $(median "small-$v" 0) | $(ratio "$(median "small-$v" 0)" "$(median small-squid 0)") | $(median "small-$v" 1) | $(ratio "$(median small-squid 1)" "$(median "small-$v" 1)") |"
    done
fi

if [ -n "${SPLICE_MIN_SIZES:-}" ]; then
    echo
    echo "| body size (capped) | splice req/s | copy req/s | splice ÷ copy | splice s/GB | copy s/GB | load core busy % (splice, copy) |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for kib in $SPLICE_MIN_SIZES; do
        read -r s_rps s_cpu s_busy <<<"$(PATH_1M="${kib}k" LYNXIO_ARGS="--splice-body-min 1" wrk_1m lynxio 1)"
        read -r c_rps c_cpu c_busy <<<"$(PATH_1M="${kib}k" wrk_1m lynxio-copy 1)"
        echo "| ${kib} KiB | $s_rps | $c_rps | $(ratio "$s_rps" "$c_rps") | $s_cpu | $c_cpu | $s_busy, $c_busy |"
    done
fi
