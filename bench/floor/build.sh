#!/usr/bin/env bash
# Builds bench/floor/floor_proxy with the coordinator's RelWithDebInfo flags and definitions
# (cmake/CoordinatorOptions.cmake, src/CMakeLists.txt). Usage: bench/floor/build.sh [out-dir]
# (default build-floor/ at the top of the repository). Not part of CMake: CI and the normal build
# do not see it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build-floor}
mkdir -p "$out"
g++ -std=c++20 -O2 -g -DNDEBUG -Wall -Wextra -Werror -Wno-mismatched-new-delete -Wno-restrict \
  -DBOOST_ASIO_NO_DEPRECATED -DBOOST_BEAST_USE_STD_STRING_VIEW \
  -o "$out/floor_proxy" "$root/bench/floor/floor_proxy.cpp" -pthread
echo "$out/floor_proxy"
