#!/usr/bin/env bash
# Demo on a fresh Debian 12 machine: installs the dependencies, builds, and runs
# the coordinator over three simulated children (the fake child stands in for
# AIstudioProxyAPI's browser-driven launch_camoufox.py). Then, from another shell:
#   curl localhost:2048/v1/chat/completions -d '{"messages":[{"role":"user","content":"hi"}]}'
# Extra arguments go to the coordinator (e.g. --coordinator-port 8080).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF
cd "$root"
# Like the real child, the fake rewrites its own profile (cookie refresh, and at every clean stop):
# run from a copy so the tracked demo profiles stay as they are. Their `_fake` knobs keep the
# simulated start-up and stop short (a real browser takes tens of seconds to start).
mkdir -p logs/demo-profiles
cp config/demo-profiles/*.json logs/demo-profiles/
# Simulated children start in a blink, so the start stagger is short; real browsers want the default 2 s.
exec "$root/build/coordinator" \
  --profiles logs/demo-profiles \
  --launcher tests/fixtures/fake_child/launch_camoufox.py \
  --coordinator-host 127.0.0.1 \
  --log-dir logs/demo \
  --start-stagger 0.2 \
  "$@"
