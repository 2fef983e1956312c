#!/usr/bin/env bash
# Runs epmoe's whole test suite: installs what is missing, builds (warnings are errors), and runs CTest.
# Unit tests, the layer against the float64 reference at 1-4 MPI ranks, the named regressions, the program's
# CLI, the checkpoint I/O, and the GPU tests (these skip with code 77 where no GPU is visible).
#   EPMOE_BUILD_DIR   build folder (default: build-test)
#   EPMOE_SANITIZE=1  also build with AddressSanitizer and run the tests labelled 'asan' there (CI does)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${EPMOE_BUILD_DIR:-$root/build-test}
jobs=$(nproc)

bash "$root/launch/install-deps.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEPMOE_WERROR=ON
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" --output-on-failure -j "$jobs"

if [ "${EPMOE_SANITIZE:-0}" = "1" ]; then
  echo "# AddressSanitizer build: tests labelled 'asan'"
  cmake -S "$root" -B "$build-asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DEPMOE_WERROR=ON -DEPMOE_SANITIZE=ON \
        -DEPMOE_WITH_CUDA=OFF
  cmake --build "$build-asan" -j "$jobs"
  ASAN_OPTIONS=detect_leaks=0 ctest --test-dir "$build-asan" --output-on-failure -L asan
fi
