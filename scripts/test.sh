#!/usr/bin/env bash
# Builds Kiln and runs the whole test suite (unit + integration) with CTest.
#   BUILD_DIR=dir   build directory (default: build)
#   SANITIZE=1      build with -fsanitize=address,undefined
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD_DIR:-build}
sanitize=OFF
if [ "${SANITIZE:-0}" = 1 ]; then sanitize=ON; fi

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DKILN_SANITIZE="$sanitize" >/dev/null
cmake --build "$build" -j"$(nproc)"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$build"
ctest --output-on-failure -j"$(nproc)"
