#!/usr/bin/env bash
# Runs epmoe's whole test suite: installs what is missing, builds (warnings are errors), and runs CTest.
# Unit tests, the layer against the float64 reference at 1-4 MPI ranks, the named regressions, the program's
# CLI, the checkpoint I/O, and the GPU tests (these skip with code 77 where no GPU is visible). With the CUDA
# backend it also compiles that backend once without the CUTLASS headers.
#   EPMOE_BUILD_DIR   build folder (default: build-test)
#   EPMOE_SANITIZE=1  also build with AddressSanitizer and run the tests labelled 'asan' there (CI does)
#   EPMOE_PARALLEL_HDF5=1  also build against the Open MPI build of HDF5 (MPI-IO collective reads) and run the
#                          checkpoint I/O tests there (CI does)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${EPMOE_BUILD_DIR:-$root/build-test}
jobs=$(nproc)

bash "$root/launch/install-deps.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEPMOE_WERROR=ON
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" --output-on-failure -j "$jobs"

if grep -q "^EPMOE_WITH_CUDA:BOOL=ON" "$build/CMakeCache.txt"; then
  # The CUDA backend also builds without the CUTLASS headers (a machine without network, another CUTLASS layout):
  # the library and the kernel tests, compiled only.
  echo "# CUDA backend without CUTLASS: compile check"
  cmake -S "$root" -B "$build-nocutlass" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEPMOE_WERROR=ON \
        -DEPMOE_CUTLASS_DIR="$build-nocutlass/none"
  cmake --build "$build-nocutlass" -j "$jobs" --target epmoe_cuda test_cuda_kernels
fi

if [ "${EPMOE_SANITIZE:-0}" = "1" ]; then
  echo "# AddressSanitizer build: tests labelled 'asan'"
  cmake -S "$root" -B "$build-asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DEPMOE_WERROR=ON -DEPMOE_SANITIZE=ON \
        -DEPMOE_WITH_CUDA=OFF
  cmake --build "$build-asan" -j "$jobs"
  ASAN_OPTIONS=detect_leaks=0 ctest --test-dir "$build-asan" --output-on-failure -L asan
fi

if [ "${EPMOE_PARALLEL_HDF5:-0}" = "1" ]; then
  echo "# parallel HDF5 build (MPI-IO collective reads): tests labelled 'io'"
  if ! dpkg-query -W -f='${Status}' libhdf5-openmpi-dev 2>/dev/null | grep -q "install ok installed"; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends libhdf5-openmpi-dev >/dev/null
  fi
  cmake -S "$root" -B "$build-phdf5" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEPMOE_WERROR=ON \
        -DHDF5_PREFER_PARALLEL=ON -DEPMOE_WITH_CUDA=OFF
  grep -q "^HDF5_C_LIBRARY_hdf5:FILEPATH=.*openmpi" "$build-phdf5/CMakeCache.txt" ||
    { echo "test.sh: CMake did not select the parallel HDF5" >&2; exit 1; }
  cmake --build "$build-phdf5" -j "$jobs"
  ctest --test-dir "$build-phdf5" --output-on-failure -L io -j "$jobs"
fi
