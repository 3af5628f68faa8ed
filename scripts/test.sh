#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs the
# dependencies, builds, and runs every test (unit, integration with the fake
# child and real clients, deployment checks), then the same suite again in an
# AddressSanitizer + UndefinedBehaviorSanitizer build, then a 30 s chaos soak,
# a short libFuzzer run of every fuzz target and the benchmark harness in its
# quick mode (so neither rots).
#   scripts/test.sh                 everything
#   scripts/test.sh --no-sanitize   skip the sanitizer pass
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sanitize=1
for arg in "$@"; do
  case "$arg" in
    --no-sanitize) sanitize=0 ;;
    *) echo "usage: $0 [--no-sanitize]" >&2; exit 2 ;;
  esac
done

"$root/scripts/install-deps.sh"
# npm packages the tests use, pinned by their lock files: the `openai` client
# (integration) and an HCL/YAML parser (deployment checks).
for dir in tests/node tests/deploy; do
  (cd "$root/$dir" && npm ci --no-audit --no-fund --loglevel=error)
done

# Integration tests spend most of their time waiting on children and
# deadlines (about 0.2 cores each), so ctest runs twice as many as there are cores.
jobs=$(( $(nproc) * 2 ))
echo "== build (RelWithDebInfo)"
"$root/scripts/build.sh" "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
echo "== tests"
ctest --test-dir "$root/build" --output-on-failure -j "$jobs"

if [ "$sanitize" -eq 1 ]; then
  echo "== build (ASan + UBSan)"
  "$root/scripts/build.sh" "$root/build-asan" -DCMAKE_BUILD_TYPE=Debug -DCOORDINATOR_SANITIZE=ON
  echo "== tests under ASan + UBSan"
  # halt_on_error: any report fails the test that triggered it.
  ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    ctest --test-dir "$root/build-asan" --output-on-failure -j "$jobs"
fi

echo "== chaos soak (30 s)"
"$root/tests/soak/run.sh" --quick
"$root/tests/soak/run.sh" --quick --real-like

echo "== fuzzing (${FUZZ_SECONDS:-20} s per target)"
"$root/tests/fuzz/run.sh" "${FUZZ_SECONDS:-20}"

echo "== benchmark harness, quick mode (no judgement; docs/benchmarks.md has the full run)"
"$root/bench/run.sh" --quick
