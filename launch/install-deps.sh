#!/usr/bin/env bash
# Installs what epmoe needs to build and test on Debian/Ubuntu, skipping what is already there:
# a C++17 compiler, CMake, Ninja, Open MPI, HDF5 (serial or Open MPI build), OpenBLAS (CBLAS), Catch2, and the
# Python packages the tests use to write independent fixture files (numpy, h5py, safetensors) and to plot
# scaling results (matplotlib).
# CUDA and NCCL are not installed here: the CUDA backend is built when nvcc and NCCL are already present; then the
# CUTLASS headers are fetched too (last section).
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in build-essential cmake ninja-build pkg-config libopenmpi-dev openmpi-bin libopenblas-dev python3 python3-pip; do
  have_pkg "$pkg" || need+=("$pkg")
done
# HDF5: either flavour will do.
if ! have_pkg libhdf5-dev && ! have_pkg libhdf5-openmpi-dev; then need+=(libhdf5-dev); fi
# Catch2: Debian ships 2.x as 'catch2'; a 3.x install is found through its CMake config.
if ! have_pkg catch2 && ! ls /usr/lib/cmake/Catch2/Catch2Config.cmake /usr/local/lib/cmake/Catch2/Catch2Config.cmake \
     /usr/lib/x86_64-linux-gnu/cmake/Catch2/Catch2Config.cmake >/dev/null 2>&1; then
  need+=(catch2)
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "# installing: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

missing_py=()
for mod in numpy h5py safetensors matplotlib; do
  python3 -c "import $mod" 2>/dev/null || missing_py+=("$mod")
done
if [ ${#missing_py[@]} -gt 0 ]; then
  echo "# installing Python packages: ${missing_py[*]}"
  python3 -m pip install -q "${missing_py[@]}" 2>/dev/null ||
    python3 -m pip install -q --break-system-packages "${missing_py[@]}"
fi

# CUTLASS (header-only) for the CUDA backend's grouped GEMM (EPMOE_CUDA_EXPERT_GEMM=cutlass), where nvcc is present:
# the headers of the nvidia-cutlass wheel (cutlass_library/source/include) into .cutlass/include, pinned to one
# version. Without them (no network) the CUDA backend builds without that option and says so at configure time.
cutlass_version=4.2.0.0
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if { command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; } &&
   [ "$(cat "$root/.cutlass/VERSION" 2>/dev/null)" != "$cutlass_version" ]; then
  echo "# fetching the CUTLASS $cutlass_version headers into .cutlass/"
  tmp=$(mktemp -d)
  if python3 -m pip download -q --no-deps "nvidia-cutlass==$cutlass_version" -d "$tmp" >/dev/null 2>&1; then
    rm -rf "$root/.cutlass"
    python3 - "$tmp"/nvidia_cutlass-*.whl "$root/.cutlass" <<'PY'
import sys, zipfile, os
wheel, dest = sys.argv[1], sys.argv[2]
prefix = "cutlass_library/source/include/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            out = os.path.join(dest, "include", name[len(prefix):])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(name) as src, open(out, "wb") as dst:
                dst.write(src.read())
PY
    echo "$cutlass_version" > "$root/.cutlass/VERSION"
  else
    echo "# warning: could not download nvidia-cutlass $cutlass_version; the CUDA backend builds without the CUTLASS grouped GEMM" >&2
  fi
  rm -rf "$tmp"
fi
