#!/usr/bin/env bash
# Installs what the benchmarks need, from Debian 12's apt, only if missing:
#   nginx (upstreams and a peer proxy), haproxy (peer proxy), wrk (load),
#   python3-matplotlib (plots, full mode only), linux-perf and valgrind (profiling, optional).
# The coordinator itself is built by scripts/install-deps.sh + scripts/build.sh.
#   bench/install-deps.sh            required packages + plotting
#   bench/install-deps.sh --profile  also linux-perf and valgrind
# The benchmark starts its own nginx/haproxy instances on 127.0.0.1 ports; the
# packages' system services are not used (and not started where policy-rc.d forbids it).
set -euo pipefail

packages=(nginx haproxy wrk python3 python3-matplotlib procps util-linux curl)
for arg in "$@"; do
  case "$arg" in
    --profile) packages+=(linux-perf valgrind) ;;
    *) echo "usage: $0 [--profile]" >&2; exit 2 ;;
  esac
done

exec "$(dirname "$0")/../scripts/apt-install-missing.sh" "${packages[@]}"
