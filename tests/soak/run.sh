#!/usr/bin/env bash
# Chaos soak of the coordinator over fake children: 5 minutes, or 30 s with --quick.
#   tests/soak/run.sh [--quick] [--duration S] [--clients N] [--children N] [--seed N] [--eject-after N]
#                     [--real-like [--quota-done-first default|yes|no]]
# --real-like: children that behave like the real AIstudioProxyAPI child (see real_like.py); it
# also counts orphan processes and ends with a kill -9 of a second coordinator (about 60 s with --quick).
# Uses $COORDINATOR_BIN (default build/coordinator), e.g.
#   COORDINATOR_BIN=build-soak/coordinator tests/soak/run.sh --quick --real-like
# Exit code 0 = pass.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export COORDINATOR_BIN="${COORDINATOR_BIN:-$repo/build/coordinator}"
if [[ ! -x "$COORDINATOR_BIN" ]]; then
  echo "coordinator binary not found at $COORDINATOR_BIN (run: cmake --build $repo/build)" >&2
  exit 2
fi
export PYTHONDONTWRITEBYTECODE=1
# The whole run is bounded: load + warm-up + recovery waits stay well under this.
case " $* " in
  *" --quick "*) limit=600 ;;
  *) limit=1800 ;;
esac
exec timeout --signal=INT --kill-after=30 "$limit" python3 "$here/soak.py" "$@"
