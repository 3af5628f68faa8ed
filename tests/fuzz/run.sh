#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) in build-fuzz and runs
# each for SECONDS (default 30), two at a time by default.
#   tests/fuzz/run.sh [SECONDS]
# Needs: clang and libclang-rt-14-dev (Debian 12), plus the project's own
# build dependencies (scripts/install-deps.sh).
# First replays tests/fuzz/regressions/<target>/* (each input once), then fuzzes
# from a scratch copy of tests/fuzz/corpus/<target>/: nothing new is written
# into the repository. Crash inputs land in build-fuzz/fuzz-artifacts/<target>/.
# Exits non-zero when any target crashed (or failed a regression input).
# Knobs: FUZZ_BUILD_DIR (default <repo>/build-fuzz), FUZZ_JOBS (targets run at
# once, default: number of cores), FUZZ_TARGETS (space-separated subset),
# FUZZ_KEEP_WORK=1 (keep the scratch corpora and logs).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-30}
if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "usage: $0 [SECONDS]" >&2
  exit 2
fi
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=${FUZZ_JOBS:-$(nproc)}
targets=(fuzz_http_request fuzz_http_response fuzz_config fuzz_profile_json fuzz_ids fuzz_state_file fuzz_translate)
if [ -n "${FUZZ_TARGETS:-}" ]; then read -r -a targets <<<"$FUZZ_TARGETS"; fi
fuzz_dir=$root/tests/fuzz

if ! command -v clang++ >/dev/null; then
  echo "tests/fuzz/run.sh: clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi

echo "== fuzz build (clang, ASan + UBSan + libFuzzer) in $build"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DBUILD_TESTING=ON -DCOORDINATOR_FUZZ=ON >/dev/null
cmake --build "$build" --target fuzz

work=$(mktemp -d "${TMPDIR:-/tmp}/coordinator-fuzz.XXXXXX")
if [ "${FUZZ_KEEP_WORK:-0}" != 1 ]; then trap 'rm -rf "$work"' EXIT; fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# One target: regressions, then fuzzing. Writes $work/<target>.{log,result}.
run_target() {
  local target=$1
  local bin=$build/tests/fuzz/$target
  local artifacts=$build/fuzz-artifacts/$target/
  local log=$work/$target.log
  mkdir -p "$artifacts" "$work/$target"
  local regressions=()
  if [ -d "$fuzz_dir/regressions/$target" ]; then
    mapfile -t regressions < <(find "$fuzz_dir/regressions/$target" -type f | sort)
  fi
  if [ "${#regressions[@]}" -gt 0 ]; then
    if ! "$bin" "${regressions[@]}" >"$work/$target.regressions.log" 2>&1; then
      echo "regression" >"$work/$target.result"
      return
    fi
  fi
  cp "$fuzz_dir/corpus/$target/"* "$work/$target/"
  local dict=()
  case $target in
    fuzz_http_request | fuzz_http_response) dict=(-dict="$fuzz_dir/dict/http.dict") ;;
  esac
  local status=0
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts" "${dict[@]}" "$work/$target" >"$log" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then echo "crash" >"$work/$target.result"; else echo "ok" >"$work/$target.result"; fi
}

echo "== fuzzing ${targets[*]}: ${seconds} s each, $jobs at a time"
running=0
for target in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  run_target "$target" &
  running=$((running + 1))
done
wait || true

failed=0
total=0
printf '%-20s %-10s %14s %10s %8s\n' target result executions exec/s corpus
for target in "${targets[@]}"; do
  result=$(cat "$work/$target.result" 2>/dev/null || echo "no result")
  log=$work/$target.log
  execs=
  if [ -f "$log" ]; then execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1); fi
  execs=${execs:-0}
  total=$((total + execs))
  corpus=$(find "$work/$target" -type f 2>/dev/null | wc -l)
  printf '%-20s %-10s %14s %10s %8s\n' "$target" "$result" "$execs" "$((execs / seconds))" "$corpus"
  if [ "$result" != ok ]; then
    failed=1
    echo "---- $target: $result" >&2
    if [ "$result" = regression ]; then
      grep -E 'FUZZ_CHECK|ERROR|what\(\)|SUMMARY|Running:' "$work/$target.regressions.log" | head -n 20 >&2 || true
      echo "replay: $build/tests/fuzz/$target $fuzz_dir/regressions/$target/*" >&2
    else
      grep -E 'FUZZ_CHECK|ERROR|what\(\)|SUMMARY|Test unit written' "$log" | head -n 20 >&2 || true
      echo "replay: $build/tests/fuzz/$target <the crash file above>" >&2
    fi
  fi
done
echo "total executions: $total"
if [ "$failed" -ne 0 ]; then
  echo "fuzzing found a failure (inputs in $build/fuzz-artifacts/)" >&2
  exit 1
fi
echo "fuzzing: no crash"
