# Shared helpers for the benchmark scripts (sourced, not run). `make_workdir` sets WORK and
# PIDS; start_squid also expects PROXY_CORE and SQUID (the squid binary) from the caller.

# make_workdir NAME: a fresh /tmp/NAME.XXXXXX as WORK (world-readable: nginx workers run as an
# unprivileged user), an empty PIDS list, and an EXIT trap that kills every PID in PIDS and
# every daemon that left a pid file in WORK, then removes WORK.
make_workdir() {
    WORK=$(mktemp -d "/tmp/$1.XXXXXX")
    chmod 755 "$WORK"
    PIDS=()
    trap cleanup_workdir EXIT
}

cleanup_workdir() {
    local p f
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for f in "$WORK"/*.pid; do
        [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    done
    sleep 0.5
    rm -rf "$WORK"
}

# wait_port PORT: until something accepts on 127.0.0.1:PORT (10 s at most).
wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "port $1 did not open" >&2
    return 1
}

# write_squid_conf PORT: $WORK/squid.conf for Squid with no cache and one worker on PORT.
write_squid_conf() {
    local port=$1
    mkdir -p "$WORK/squid"
    cat >"$WORK/squid.conf" <<CONF
http_port 127.0.0.1:$port
http_access allow localhost
http_access deny all
cache deny all
cache_mem 0 MB
access_log none
cache_store_log none
cache_log $WORK/squid/cache.log
pid_filename $WORK/squid.pid
coredump_dir $WORK/squid
workers 1
max_filedescriptors 20000
shutdown_lifetime 0 seconds
CONF
}

# start_squid PORT: Squid with no cache, one worker, pinned to the proxy core, on PORT.
# Sets SQUID_PID.
start_squid() {
    write_squid_conf "$1"
    local port=$1
    taskset -c "$PROXY_CORE" "$SQUID" -f "$WORK/squid.conf" -N >/dev/null 2>&1 &
    SQUID_PID=$!
    PIDS+=("$SQUID_PID")
    wait_port "$port"
}

# stop_pid PID: SIGTERM, up to 5 s of grace, then SIGKILL.
stop_pid() {
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# ratio A B: "A/B" formatted as 1.23x, or n/a when B is empty or zero.
ratio() {
    python3 - "$1" "$2" <<'PY'
import sys
try:
    a, b = float(sys.argv[1]), float(sys.argv[2])
    print(f"{a / b:.2f}x" if b > 0 else "n/a")
except ValueError:
    print("n/a")
PY
}

# write_nginx_conf HTTP_BODY: $WORK/nginx.conf for one daemonised worker (pid and logs in
# $WORK, temp files in $WORK/ngx, no access log) with HTTP_BODY inside its http block.
# NGINX_CONNECTIONS (default 4096) sets worker_connections and, with room for its files,
# worker_rlimit_nofile (benchmarks with thousands of clients need more).
write_nginx_conf() {
    mkdir -p "$WORK/ngx"
    local conns=${NGINX_CONNECTIONS:-4096}
    cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile $((conns + 64));
pid $WORK/nginx.pid;
error_log $WORK/ngx/error.log warn;
daemon on;
events { worker_connections $conns; }
http {
    access_log off;
    client_body_temp_path $WORK/ngx;
    proxy_temp_path $WORK/ngx;
    fastcgi_temp_path $WORK/ngx;
    uwsgi_temp_path $WORK/ngx;
    scgi_temp_path $WORK/ngx;
$1
}
EOF
}

# install_missing TOOL... : installs from Debian the benchmark tools not on PATH (wrk, curl,
# nginx, valgrind, ...; needs root and apt-get) and sets NGINX to nginx's path.
install_missing() {
    local need=() t
    for t in "$@"; do
        case "$t" in
        nginx) command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx) ;;
        *) command -v "$t" >/dev/null || need+=("$t") ;;
        esac
    done
    if [ ${#need[@]} -gt 0 ]; then
        echo "installing: ${need[*]}" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
    fi
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
}

# start_nginx PORT CORE: an nginx origin on 127.0.0.1:PORT pinned to CORE serving /100b and
# /1m from $WORK/www (needs NGINX, the binary), and the wrk script for absolute-form requests.
start_nginx() {
    local port=$1 core=$2
    mkdir -p "$WORK/www" "$WORK/ngx"
    head -c 100 /dev/zero | tr '\0' 'a' >"$WORK/www/100b"
    head -c 1048576 /dev/urandom >"$WORK/www/1m"
    chmod -R a+rX "$WORK/www"
    write_nginx_conf "
    # Measured here: on loopback nginx serves 1 MiB faster with plain writes than sendfile.
    sendfile off;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    types { }
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$port reuseport;
        root $WORK/www;
        location = /nginx-status { stub_status; }
    }"
    # nginx inherits the affinity: it shares the load core with wrk.
    taskset -c "$core" "$NGINX" -c "$WORK/nginx.conf" -p "$WORK/ngx" -e "$WORK/ngx/error.log"
    wait_port "$port"
    write_abs_lua "$port"
}

# write_abs_lua PORT: $WORK/abs.lua, the wrk script for requests through a proxy (wrk has no
# proxy option, so the request line carries the absolute URL, $ABS_URL at run time) to the
# origin on 127.0.0.1:PORT.
write_abs_lua() {
    cat >"$WORK/abs.lua" <<EOF
wrk.path = os.getenv("ABS_URL")
wrk.headers["Host"] = "127.0.0.1:$1"
EOF
}

# run_wrk PORT PATH CONNS ABSOLUTE(0|1) -> prints "rps mbps errors" (needs NGINX_PORT,
# DURATION, LOAD_CORE). WRK_CPUS / WRK_THREADS select the layout (default: pinned to the load
# core, one thread).
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

# cpu_ticks PID: utime + stime of the process (all its threads) in clock ticks.
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# nginx_requests PORT: requests the start_nginx origin on PORT has served (stub_status).
nginx_requests() {
    curl -s "http://127.0.0.1:$1/nginx-status" | awk 'NR == 3 {print $3}'
}

# measure_window NAME PID PORT ABSOLUTE(0|1) [WRK_PID_VAR]: wrk (one thread on LOAD_CORE, CONNS
# keep-alive connections, 100 B from the start_nginx origin on NGINX_PORT; through PORT in
# absolute form when ABSOLUTE=1) for WARMUP + DURATION seconds; requests (counted by nginx) and
# the CPU of process PID are measured over the last DURATION seconds only, after every
# connection is open and the process has grown to its working size. Appends
# "rps cpu_us_per_request p99_ms errors" to $WORK/NAME.runs (p99, and wrk's socket errors and
# non-2xx answers, over the whole wrk run). Needs TICKS.
measure_window() {
    local name=$1 pid=$2 port=$3 absolute=$4 out r0 r1 t0 t1 wrk
    local total=$((WARMUP + DURATION))
    if [ "$absolute" = 1 ]; then
        ABS_URL="http://127.0.0.1:$NGINX_PORT/100b" taskset -c "$LOAD_CORE" wrk -t1 \
            -c"$CONNS" -d"${total}s" --latency -s "$WORK/abs.lua" "http://127.0.0.1:$port/" \
            >"$WORK/wrk.out" &
    else
        taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNS" -d"${total}s" --latency \
            "http://127.0.0.1:$port/100b" >"$WORK/wrk.out" &
    fi
    wrk=$!
    sleep "$WARMUP"
    r0=$(nginx_requests "$NGINX_PORT")
    t0=$(cpu_ticks "$pid")
    sleep "$DURATION"
    r1=$(nginx_requests "$NGINX_PORT")
    t1=$(cpu_ticks "$pid")
    wait "$wrk" || true
    out=$(cat "$WORK/wrk.out")
    echo "$out" >>"$WORK/wrk.log"
    python3 - "$out" "$r0" "$r1" "$t0" "$t1" "$TICKS" "$DURATION" >>"$WORK/$name.runs" <<'PY'
import re, sys
out = sys.argv[1]
r0, r1, t0, t1, ticks, secs = map(float, sys.argv[2:])
n = max(r1 - r0 - 2, 1)  # minus the two status requests
p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
ms = float(p99.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[p99.group(2)] if p99 else float("nan")
errs = 0
e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
if e:
    errs += sum(int(x) for x in e.groups())
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
if bad:
    errs += int(bad.group(1))
print(f"{n / secs:.0f} {(t1 - t0) / ticks * 1e6 / n:.2f} {ms:.2f} {errs}")
PY
    echo "  $name: $(tail -1 "$WORK/$name.runs") (req/s, CPU us/request, p99 ms, wrk errors)" >&2
}

# measure_lynxio NAME BIN FLAGS... : one wrk run (100 B keep-alive, absolute-form, CONNS
# connections for DURATION) through a fresh BIN (1 worker, io_uring, pinned to PROXY_CORE) on
# LYNXIO_PORT; appends "rps cpu_us_per_request" to $WORK/NAME.runs (with LATENCY=1, wrk
# --latency and a third column: p99 in ms). Needs start_nginx on
# NGINX_PORT and TICKS. If DURING_LOAD names a function, it runs in the background during the
# load with FLAGS as arguments. A capture at $WORK/capture.jsonl is removed first and counted.
measure_lynxio() {
    local name=$1 bin=$2
    shift 2
    rm -f "$WORK/capture.jsonl"
    taskset -c "$PROXY_CORE" "$bin" --listen "127.0.0.1:$LYNXIO_PORT" --workers 1 \
        --cpus "$PROXY_CORE" --driver uring "$@" >"$WORK/lynxio.out" 2>"$WORK/lynxio.err" &
    local pid=$! helper=""
    PIDS+=("$pid")
    wait_port "$LYNXIO_PORT"
    if [ -n "${DURING_LOAD:-}" ]; then
        "$DURING_LOAD" "$@" &
        helper=$!
    fi
    local before after out
    before=$(cpu_ticks "$pid")
    local latency=()
    [ -n "${LATENCY:-}" ] && latency=(--latency)
    out=$(ABS_URL="http://127.0.0.1:$NGINX_PORT/100b" taskset -c "$LOAD_CORE" \
        wrk -t1 -c"$CONNS" -d"$DURATION" "${latency[@]}" -s "$WORK/abs.lua" \
        "http://127.0.0.1:$LYNXIO_PORT/")
    after=$(cpu_ticks "$pid")
    [ -n "$helper" ] && kill "$helper" 2>/dev/null && wait "$helper" 2>/dev/null || true
    echo "$out" >>"$WORK/wrk.log"
    stop_pid "$pid"
    python3 - "$out" "$before" "$after" "$TICKS" >>"$WORK/$name.runs" <<'PY'
import re, sys
out, before, after, ticks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
total = int(re.search(r"(\d+) requests in", out).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
if bad or "Socket errors" in out:
    print("warning: errors in this run", file=sys.stderr)
cpu_us = (after - before) / ticks * 1e6 / max(total, 1)
p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
extra = ""
if p99:
    extra = f" {float(p99.group(1)) * {'us': 1e-3, 'ms': 1, 's': 1e3}[p99.group(2)]:.2f}"
print(f"{rps:.0f} {cpu_us:.2f}{extra}")
PY
    echo "  $name: $(tail -1 "$WORK/$name.runs") (req/s, proxy CPU us/request[, p99 ms])" >&2
    if [ -f "$WORK/capture.jsonl" ]; then
        echo "    capture: $(wc -l <"$WORK/capture.jsonl") events" >&2
    fi
}

# median_table BASE NAMES... : a Markdown table of each NAME's median req/s and CPU per request
# (from $WORK/NAME.runs) and both as ratios to BASE.
median_table() {
    local base=$1
    shift
    printf '\n| variant | req/s | vs %s | proxy CPU µs/request | vs %s |\n|---|---:|---:|---:|---:|\n' \
        "$base" "$base"
    python3 - "$WORK" "$base" "$@" <<'PY'
import sys, statistics
work, base_name, names = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = {}
for n in names:
    runs = [tuple(map(float, l.split())) for l in open(f"{work}/{n}.runs")]
    rows[n] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
base = rows[base_name]
for n in names:
    rps, cpu = rows[n]
    print(f"| {n} | {rps:.0f} | {rps / base[0]:.2f}x | {cpu:.2f} | {cpu / base[1]:.2f}x |")
PY
}

# instructions NAME REQUESTS_DURATION BIN FLAGS... (needs LYNXIO_PORT, NGINX_PORT, LOAD_CORE): total instructions of one proxy run under
# callgrind that serves wrk for REQUESTS_DURATION (or nothing, for 0); prints "instructions
# requests".
instructions() {
    local name=$1 dur=$2 bin=$3
    shift 3
    rm -f "$WORK/capture.jsonl" "$WORK"/cg.*
    valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p" "$bin" \
        --listen "127.0.0.1:$LYNXIO_PORT" --workers 1 --driver epoll "$@" \
        >"$WORK/lynxio.out" 2>"$WORK/lynxio.err" &
    local pid=$! total=0
    PIDS+=("$pid")
    for _ in $(seq 1 300); do
        grep -q "listening on" "$WORK/lynxio.out" 2>/dev/null && break
        sleep 0.1
    done
    if [ "$dur" != 0 ]; then
        local out
        out=$(ABS_URL="http://127.0.0.1:$NGINX_PORT/100b" taskset -c "$LOAD_CORE" \
            wrk -t1 -c8 -d"$dur" -s "$WORK/abs.lua" "http://127.0.0.1:$LYNXIO_PORT/")
        total=$(echo "$out" | awk '/requests in/ {print $1}')
    fi
    stop_pid "$pid"
    sleep 0.5
    local ir
    ir=$(awk '/^summary:/ {s += $2} END {print s + 0}' "$WORK"/cg.*)
    echo "$ir $total"
}

