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

# start_squid PORT: Squid with no cache, one worker, pinned to the proxy core, on PORT.
# Sets SQUID_PID.
start_squid() {
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

# start_nginx PORT CORE: an nginx origin on 127.0.0.1:PORT pinned to CORE serving /100b and
# /1m from $WORK/www (needs NGINX, the binary), and the wrk script for absolute-form requests.
start_nginx() {
    local port=$1 core=$2
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
        listen 127.0.0.1:$port reuseport;
        root $WORK/www;
    }
}
EOF
    # nginx inherits the affinity: it shares the load core with wrk.
    taskset -c "$core" "$NGINX" -c "$WORK/nginx.conf" -p "$WORK/ngx" -e "$WORK/ngx/error.log"
    wait_port "$port"
    # wrk has no proxy option: through a proxy the request line must carry the absolute URL.
    cat >"$WORK/abs.lua" <<EOF
wrk.path = os.getenv("ABS_URL")
wrk.headers["Host"] = "127.0.0.1:$port"
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
