#!/usr/bin/env bash
# The coordinator's benchmark suite (docs/benchmarks.md says what it measures).
#   bench/run.sh           full run, about 15 minutes: bench/results/full/, then regenerates
#                          docs/benchmarks.md and docs/img/bench-*.png
#   bench/run.sh --quick   every figure for a second or two, one round, no judgement (CI, < 2 min):
#                          bench/results/quick/ only
# Other flags go to bench/bench.py (--only SECTION..., --rounds N, --port-base P, --no-pin).
# Needs a build (scripts/install-deps.sh && scripts/build.sh); installs nginx, HAProxy,
# wrk and matplotlib from apt when missing (bench/install-deps.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
quick=0
for arg in "$@"; do
  [ "$arg" = "--quick" ] && quick=1
done
results="$root/bench/results/$([ "$quick" -eq 1 ] && echo quick || echo full)"

"$root/bench/install-deps.sh"
if [ ! -x "$root/build/coordinator" ]; then
  "$root/scripts/install-deps.sh"
  "$root/scripts/build.sh" "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi

# Debian's python3 has matplotlib (python3-matplotlib); any python3 runs the benchmark itself.
python=python3
if [ -x /usr/bin/python3 ]; then python=/usr/bin/python3; fi

rm -rf "$results"
mkdir -p "$results"
# bench.py stops what it starts; this trap is for when it cannot (killed, crashed).
cleanup() {
  local pid
  [ -f "$results/pids" ] || return 0
  while read -r pid; do
    kill -TERM "$pid" 2>/dev/null || true
  done <"$results/pids"
  sleep 1
  while read -r pid; do
    kill -KILL "$pid" 2>/dev/null || true
  done <"$results/pids"
}
trap cleanup EXIT

start=$(date +%s)
# In the background so that a signal reaches this script at once: it is passed on to
# bench.py, which stops what it started; then the EXIT trap ends whatever is left.
"$python" "$root/bench/bench.py" --results "$results" "$@" &
bench_pid=$!
trap 'kill -TERM "$bench_pid" 2>/dev/null || true; wait "$bench_pid" || true; exit 130' INT TERM
wait "$bench_pid"
trap - INT TERM
if [ "$quick" -eq 0 ]; then
  "$python" "$root/bench/report.py" "$results/results.json" --doc "$root/docs/benchmarks.md" --img "$root/docs/img"
else
  "$python" "$root/bench/report.py" "$results/results.json" --text >"$results/summary.txt"
  cat "$results/summary.txt"
fi
echo "bench/run.sh: done in $(($(date +%s) - start)) s (results in ${results#"$root"/})"
