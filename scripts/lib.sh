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
