#!/usr/bin/env bash
# What rules cost a request they do not match: wrk small (100 B) keep-alive requests through
# lynxio with 0, 10 and 1,000 rules of realistic variety in its config file (exact hosts,
# `*.domain` globs with paths, host regexes, host-less path regexes, header conditions; every
# action kind), none of which matches the benchmark's requests, plus 1,000 rules of which one
# rewrites every request (a header set). Same run, interleaved REPS times; requests/s and the
# proxy's CPU per request as ratios to 0 rules. The access log is off (--log warn) so the rules
# are what differs. INSTRUCTIONS=1 adds instructions per request counted by callgrind, which do
# not move with the machine's load.
#
# Usage: scripts/bench-rules.sh      (DURATION=6s CONNS=64 REPS=5 INSTRUCTIONS=1)
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
NGINX_PORT=${NGINX_PORT:-18590}
LYNXIO_PORT=${LYNXIO_PORT:-18592}

tools=(wrk nginx)
[ -n "${INSTRUCTIONS:-}" ] && tools+=(valgrind)
install_missing "${tools[@]}"

cargo build --release --quiet
LYNXIO=target/release/lynxio
TICKS=$(getconf CLK_TCK)

make_workdir lynxio-bench-rules
start_nginx "$NGINX_PORT" "$LOAD_CORE"

# rules_file N MATCHING: N rules (none matches 127.0.0.1/100b), then one that does when
# MATCHING=1, into $WORK/rules-N-MATCHING.toml.
rules_file() {
    python3 - "$1" "$2" >"$WORK/rules-$1-$2.toml" <<'PY'
import sys
n, matching = int(sys.argv[1]), sys.argv[2] == "1"
for i in range(n):
    print(f'[[rule]]\nname = "r{i}"')
    k = i % 10
    if k <= 3:
        print(f'match = {{ host = "api{i}.service{i % 37}.test" }}\naction = "mock"\nbody = "{{}}"')
    elif k <= 5:
        print(f'match = {{ host = "*.domain{i}.test", path = "/v1/*" }}\naction = "block"')
    elif k == 6:
        print(f'match = {{ host = "cdn{i}.test", path = "/static/*" }}\naction = "delay"\nms = 10')
    elif k == 7:
        print(f'match = {{ host = "*.tracker{i}.test" }}\naction = "rewrite"\nremove_request_headers = ["cookie"]')
    elif k == 8:
        print(f'match = {{ host = "gw{i}.test", header = {{ "x-env" = "dev" }} }}\naction = "redirect"\nto = "http://127.0.0.1:1"')
    elif i % 20 == 9:
        print(f"match = {{ host = '~^ads[0-9]+\\.net{i}$' }}\naction = \"block\"")
    else:
        print(f"match = {{ path = '~^/internal{i}/', method = \"POST\" }}\naction = \"block\"")
    print()
if matching:
    print('[[rule]]\nname = "tag"\nmatch = { host = "127.0.0.1", path = "/100b" }\naction = "rewrite"\nset_request_headers = { "x-bench" = "1" }')
PY
}
VARIANTS=("0 rules" "10 rules" "1000 rules" "1000 rules, 1 matches")
flags_of() {
    case "$1" in
    "0 rules") rules_file 0 0; echo "$WORK/rules-0-0.toml" ;;
    "10 rules") rules_file 10 0; echo "$WORK/rules-10-0.toml" ;;
    "1000 rules") rules_file 1000 0; echo "$WORK/rules-1000-0.toml" ;;
    "1000 rules, 1 matches") rules_file 1000 1; echo "$WORK/rules-1000-1.toml" ;;
    esac
}

echo "rules benchmark: DURATION=$DURATION, $CONNS connections, 100 B, REPS=$REPS" >&2
echo "proxy (1 worker, io_uring) on core $PROXY_CORE; wrk -t1 and nginx on core $LOAD_CORE" >&2
for rep in $(seq 1 "$REPS"); do
    echo "repetition $rep" >&2
    for v in "${VARIANTS[@]}"; do
        measure_lynxio "$v" "$LYNXIO" --log warn --config "$(flags_of "$v")"
    done
done
median_table "0 rules" "${VARIANTS[@]}"

[ -n "${INSTRUCTIONS:-}" ] || exit 0
echo "instructions per request (callgrind)" >&2
printf '\n| variant | instructions/request | vs 0 rules |\n|---|---:|---:|\n'
declare -A IPR
for v in "${VARIANTS[@]}"; do
    cfg=$(flags_of "$v")
    # Startup (compiling 1,000 rules with their regexes) and shutdown are subtracted with a run
    # of the same config that serves nothing.
    read -r idle _ <<<"$(instructions idle 0 "$LYNXIO" --log warn --config "$cfg")"
    read -r ir n <<<"$(instructions "$v" 10s "$LYNXIO" --log warn --config "$cfg")"
    IPR[$v]=$(python3 -c "print(round(($ir - $idle) / max($n, 1)))")
    echo "  $v: ${IPR[$v]} instructions/request over $n requests" >&2
done
for v in "${VARIANTS[@]}"; do
    printf '| %s | %s | %s |\n' "$v" "${IPR[$v]}" "$(ratio "${IPR[$v]}" "${IPR["0 rules"]}")"
done
