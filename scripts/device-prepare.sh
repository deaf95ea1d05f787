#!/usr/bin/env bash
# Prepares, on a build machine, what scripts/device-check.sh runs on a machine with a CUDA
# GPU but no Rust toolchain and no network:
#
#   scripts/device-prepare.sh [--vulkan]
#
# Writes .device/ (ignored by git through .git/info/exclude): the benchmark suite, the
# stencil-depth benchmark and the GPU test binary, built here for x86-64 and stripped; wheels of the peers' pure CPU
# dependencies the GPU machine may lack (numexpr, for CPython 3.12); with --vulkan, the
# Vulkan loader's and GLVND's Debian packages (wgpu needs libvulkan to open the GPU, and
# NVIDIA's Vulkan driver GLVND's libraries).
# Then, on the GPU machine: scripts/device-check.sh, with .device carried along.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEV="$ROOT/.device"
cd "$ROOT"
vulkan=0
for arg in "$@"; do
    case "$arg" in
        --vulkan) vulkan=1 ;;
        *) echo "device-prepare: unknown argument $arg" >&2; exit 2 ;;
    esac
done

exclude="$(git rev-parse --git-dir)/info/exclude"
grep -qx '/.device/' "$exclude" 2>/dev/null || echo '/.device/' >>"$exclude"
rm -rf "$DEV"
mkdir -p "$DEV/whl"

cargo build --release -p accel-bench --bin accel-suite --bin stencil_depths
cp target/release/accel-suite target/release/stencil_depths "$DEV/"
# The test binary's name carries a hash: take it from cargo's own report.
tests=$(cargo test --release -p accel-gpu --test matches_cpu --no-run --message-format=json |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "matches_cpu":
        print(m["executable"])' | tail -n 1)
[ -x "$tests" ] || { echo "device-prepare: no matches_cpu test binary" >&2; exit 1; }
cp "$tests" "$DEV/matches_cpu"
strip "$DEV/accel-suite" "$DEV/stencil_depths" "$DEV/matches_cpu"

python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$DEV/whl" numexpr

if [ "$vulkan" = 1 ]; then
    mkdir -p "$DEV/gl" /tmp/amd64/partial
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    # shellcheck disable=SC2086
    apt-get $o update -qq
    # NVIDIA's Vulkan driver (libGLX_nvidia) needs GLVND's dispatch libraries too.
    # shellcheck disable=SC2086
    (cd "$DEV/gl" && apt-get $o download -qq libvulkan1 libglvnd0 libgl1 libglx0 libegl1 libopengl0 libgles2)
fi

du -sh "$DEV"
echo "device-prepare: ready; on the GPU machine run scripts/device-check.sh with .device carried"
