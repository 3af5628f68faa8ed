#!/usr/bin/env bash
# Installs what building and testing the coordinator needs, from Debian 12's apt.
# Safe to run again: it only installs what is missing.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libboost-dev libboost-filesystem-dev nlohmann-json3-dev libspdlog-dev libcli11-dev libgtest-dev libssl-dev
  python3 curl ca-certificates procps openssl
  # Deployment and operations checks: shell scripts, promtool for /metrics,
  # headless Chromium for the status page, systemd-analyze for the unit, nft -c for
  # the children's firewall ruleset (checked only, never loaded).
  shellcheck prometheus chromium fonts-liberation systemd nftables
  # libFuzzer targets (tests/fuzz): clang with its sanitizer runtimes.
  clang libclang-rt-14-dev
)
# The integration tests drive the coordinator with the npm `openai` client.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

exec "$(dirname "$0")/apt-install-missing.sh" "${packages[@]}"
