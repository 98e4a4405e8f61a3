#!/usr/bin/env bash
# What observing traffic costs: wrk small (100 B) keep-alive requests through lynxio with each
# reader of the flow record switched on in turn, all in the same run, interleaved REPS times:
#   before flows   - BASE_BIN, a lynxio built before the flow record (optional), default log
#   no access log  - the flow record with --log warn (no line per request)
#   access log     - the default: one access line per request (stderr to a file)
#   capture        - --capture FILE (headers only)
#   capture bodies - --capture FILE --capture-bodies 4096
#   admin scrape   - --admin, /metrics scraped every 100 ms during the run
# Reported per variant: requests/s and the proxy's CPU (all its threads: workers, log writer,
# event writer, admin) per request from /proc/PID/stat, as ratios to "no access log". On these
# 2-core machines wrk and nginx share the second core and are often the ceiling, so the CPU
# per request is the figure to read.
#
# The table shows each variant's median over the repetitions (this shared VM is noisy: run
# more repetitions rather than longer ones). INSTRUCTIONS=1 adds a second, repeatable table:
# instructions per request counted by valgrind's callgrind (all threads; epoll driver, since
# valgrind does not model io_uring's shared rings; startup and shutdown subtracted with a run
# that serves no request), which does not move with the machine's load.
#
# Usage: scripts/bench-flows.sh      (DURATION=6s CONNS=64 REPS=5 BASE_BIN=path INSTRUCTIONS=1)
# Installs wrk and nginx from Debian when they are missing (needs root and apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

DURATION=${DURATION:-6s}
CONNS=${CONNS:-64}
REPS=${REPS:-5}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
NGINX_PORT=${NGINX_PORT:-18490}
LYNXIO_PORT=${LYNXIO_PORT:-18492}
ADMIN_PORT=${ADMIN_PORT:-18493}
BASE_BIN=${BASE_BIN:-}

tools=(wrk curl nginx)
[ -n "${INSTRUCTIONS:-}" ] && tools+=(valgrind)
install_missing "${tools[@]}"

cargo build --release --quiet
LYNXIO=target/release/lynxio
TICKS=$(getconf CLK_TCK)

make_workdir lynxio-bench-flows
start_nginx "$NGINX_PORT" "$LOAD_CORE"

# During an "admin scrape" run, /metrics is scraped every 100 ms.
during_load() {
    if [[ " $* " == *" --admin "* ]]; then
        while true; do
            curl -s -o /dev/null "http://127.0.0.1:$ADMIN_PORT/metrics" || true
            sleep 0.1
        done
    fi
}
DURING_LOAD=during_load

VARIANTS=()
[ -n "$BASE_BIN" ] && VARIANTS+=("before flows")
VARIANTS+=("no access log" "access log" "capture" "capture bodies" "admin scrape")
run_variant() {
    case "$1" in
    "before flows") measure_lynxio "$1" "$BASE_BIN" ;;
    "no access log") measure_lynxio "$1" "$LYNXIO" --log warn ;;
    "access log") measure_lynxio "$1" "$LYNXIO" ;;
    "capture") measure_lynxio "$1" "$LYNXIO" --capture "$WORK/capture.jsonl" ;;
    "capture bodies") measure_lynxio "$1" "$LYNXIO" --capture "$WORK/capture.jsonl" --capture-bodies 4096 ;;
    "admin scrape") measure_lynxio "$1" "$LYNXIO" --admin "127.0.0.1:$ADMIN_PORT" ;;
    esac
}

echo "flows benchmark: DURATION=$DURATION, $CONNS connections, 100 B, REPS=$REPS" >&2
echo "proxy (1 worker, io_uring) on core $PROXY_CORE; wrk -t1 and nginx on core $LOAD_CORE" >&2
for rep in $(seq 1 "$REPS"); do
    echo "repetition $rep" >&2
    for v in "${VARIANTS[@]}"; do run_variant "$v"; done
done

median_table "no access log" "${VARIANTS[@]}"

[ -n "${INSTRUCTIONS:-}" ] || exit 0

echo "instructions per request (callgrind)" >&2
read -r IDLE_IR _ <<<"$(instructions idle 0 "$LYNXIO" --log warn)"
printf '\n| variant | instructions/request | vs no access log |\n|---|---:|---:|\n'
declare -A IPR
for v in "${VARIANTS[@]}"; do
    case "$v" in
    "before flows") flags=(); bin=$BASE_BIN ;;
    "no access log") flags=(--log warn); bin=$LYNXIO ;;
    "access log") flags=(); bin=$LYNXIO ;;
    "capture") flags=(--capture "$WORK/capture.jsonl"); bin=$LYNXIO ;;
    "capture bodies") flags=(--capture "$WORK/capture.jsonl" --capture-bodies 4096); bin=$LYNXIO ;;
    "admin scrape") continue ;;
    esac
    read -r ir n <<<"$(instructions "$v" 10s "$bin" "${flags[@]}")"
    IPR[$v]=$(python3 -c "print(round(($ir - $IDLE_IR) / max($n, 1)))")
    echo "  $v: ${IPR[$v]} instructions/request over $n requests" >&2
done
for v in "${VARIANTS[@]}"; do
    [ -n "${IPR[$v]:-}" ] || continue
    printf '| %s | %s | %s |\n' "$v" "${IPR[$v]}" "$(ratio "${IPR[$v]}" "${IPR["no access log"]}")"
done
