#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (cargo-fuzz + libFuzzer) for SECONDS each, in turn, at nice 19.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      default 600 s, every target
#
# Environment: FUZZ_JOBS=N runs N targets at a time (default 1; each libFuzzer process uses
# one core), FUZZ_NICE (default 19), FUZZ_ARGS (extra libFuzzer flags).
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --version 0.13.2 --locked`) and a C++ compiler
# (libfuzzer-sys builds libFuzzer). On a stable toolchain cargo-fuzz's `-Z` flags are let
# through with RUSTC_BOOTSTRAP=1, and the sanitizer is off (`--sanitizer none`): coverage
# guidance, value profiling and panics-as-crashes all work; memory errors in unsafe code would
# not be caught as ASan would, but the crate has no unsafe code in the fuzzed paths.
#
# Seeds are read from fuzz/corpus/TARGET (committed, never written to); inputs the fuzzer finds
# go to fuzz/work/TARGET (ignored by git, kept between runs). A crash stops that target, its
# input lands in fuzz/artifacts/TARGET/, and the script exits non-zero after the other targets.
# Per target it prints the executions, the time and PASS or FAIL (with the crash file).
set -uo pipefail
cd "$(dirname "$0")/.."

secs=${1:-600}
shift || true
nice_level=${FUZZ_NICE:-19}
jobs=${FUZZ_JOBS:-1}
export RUSTC_BOOTSTRAP=1 # cargo-fuzz passes -Z flags; this lets a stable rustc take them

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz missing: cargo install cargo-fuzz --version 0.13.2 --locked" >&2
    exit 2
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi

echo "== build (${targets[*]})"
if ! nice -n "$nice_level" cargo fuzz build --sanitizer none; then
    echo "fuzz build failed" >&2
    exit 2
fi

dict_for() {
    case $1 in
        request_head | response_head | target) echo fuzz/dict/http.dict ;;
        rules | config) echo fuzz/dict/toml.dict ;;
        chunked) echo fuzz/dict/chunked.dict ;;
        *) ;;
    esac
}

run_one() {
    local t=$1 log=fuzz/work/$1.log dict
    mkdir -p "fuzz/work/$t" "fuzz/corpus/$t"
    local args=(-max_total_time="$secs" -print_final_stats=1 -timeout=30 -rss_limit_mb=2048)
    dict=$(dict_for "$t")
    [ -n "$dict" ] && args+=(-dict="$dict")
    # shellcheck disable=SC2206
    args+=(${FUZZ_ARGS:-})
    local start=$SECONDS
    nice -n "$nice_level" cargo fuzz run --sanitizer none "$t" \
        "fuzz/work/$t" "fuzz/corpus/$t" -- "${args[@]}" >"$log" 2>&1
    local rc=$? took=$((SECONDS - start))
    local execs
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    [ -n "$execs" ] || execs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1 | awk '{print $2}')
    [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
    if [ $rc -eq 0 ]; then
        printf '%-14s PASS  %12s execs  %5ss  corpus %s files\n' "$t" "${execs:-?}" "$took" \
            "$(find "fuzz/work/$t" -type f | wc -l)"
    else
        local crash
        crash=$(grep -o 'fuzz/artifacts/[^ ]*' "$log" | tail -1)
        printf '%-14s FAIL  %12s execs  %5ss  crash %s  (log %s)\n' "$t" "${execs:-?}" "$took" \
            "${crash:-?}" "$log"
        grep -m3 -E "panicked at|ERROR: libFuzzer" "$log" | sed 's/^/    /'
    fi
    return $rc
}

echo "== run ${#targets[@]} targets, ${secs}s each, $jobs at a time, nice $nice_level"
failed=0
running=0
for t in "${targets[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || failed=1
        running=$((running - 1))
    fi
done
while [ "$running" -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
done

if [ $failed -ne 0 ]; then
    echo "== FAILED: see the crash files above; reproduce with" \
        "RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none TARGET CRASH_FILE"
    exit 1
fi
echo "== all targets clean"
