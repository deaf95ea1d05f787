#!/usr/bin/env bash
# The GPU checks, in one run on a machine with a CUDA GPU, from what
# scripts/device-prepare.sh left in .device/ (no Rust toolchain needed there):
#
#   scripts/device-check.sh [OUT_DIR] [--size small|bench] [--skip-tests] [--only LIST]
#
# 1. the device: nvidia-smi, the libraries found;
# 2. correctness: the GPU kernel tests with ACCEL_TEST_GPU=cuda (random programs, broadcasts,
#    generated values, transcendentals, complex programs, float % and //, bit for bit against
#    the CPU interpreter), then with the hardware Vulkan adapter when libvulkan is there;
# 3. speed: accel's GPU rows (mag, trig, fractal, pi, heat; CUDA, then Vulkan) and the
#    GPU peers (CuPy, Numba-CUDA) with NumPy, written as OUT_DIR/{machine,accel,peers}.json
#    and OUT_DIR/results.md (--only: some of those workloads, comma-separated).
# .device/stencil_depths is there too, for heat on the GPU machine's cores alone.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEV="$ROOT/.device"
out="${OUT:-$ROOT/bench/out/device}"
size=bench
tests=1
only=mag,trig,fractal,pi,heat
while [ $# -gt 0 ]; do
    case "$1" in
        --size) size="$2"; shift 2 ;;
        --skip-tests) tests=0; shift ;;
        --only) only="$2"; shift 2 ;;
        -*) echo "device-check: unknown argument $1" >&2; exit 2 ;;
        *) out="$1"; shift ;;
    esac
done
mkdir -p "$out"
[ -x "$DEV/accel-suite" ] || { echo "device-check: run scripts/device-prepare.sh first (and carry .device)" >&2; exit 2; }
cd "$ROOT" || exit 2
status=0
step() { echo; echo "== $*"; }

step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv || status=1
# libcuda from the driver's folder; NVRTC from the toolkit or a wheel, under a name cudarc looks for.
libs=/tmp/accel-cuda-libs
mkdir -p "$libs"
for dir in /usr/local/nvidia/lib64 /usr/local/cuda/lib64; do
    [ -d "$dir" ] && export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
# NVRTC: the toolkit's, else any NVIDIA wheel's (nvidia/cuda_nvrtc/lib, nvidia/cu13/lib, ...).
wheels=$(python3 -c 'import nvidia; print(" ".join(nvidia.__path__))' 2>/dev/null)
# shellcheck disable=SC2086
while IFS= read -r nvrtc; do
    case "$nvrtc" in *alt*) continue ;; esac
    [ -e "$libs/libnvrtc.so" ] || ln -s "$nvrtc" "$libs/libnvrtc.so"
    LD_LIBRARY_PATH="$(dirname "$nvrtc"):${LD_LIBRARY_PATH:-}"
    export LD_LIBRARY_PATH
done < <(find /usr/local/cuda/lib64 $wheels -name 'libnvrtc.so.1[0-9]*' 2>/dev/null | sort)
export LD_LIBRARY_PATH="$libs:${LD_LIBRARY_PATH:-}"
ls -l "$libs"
# The Vulkan loader, when prepared with --vulkan, and the driver's own ICD file (the
# loader does not look in the driver's mounted folder by itself).
for deb in "$DEV"/gl/*.deb; do [ -e "$deb" ] && dpkg -x "$deb" / && ldconfig; done
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -z "${VK_DRIVER_FILES:-}" ] && [ -e "$icd" ] && export VK_DRIVER_FILES="$icd"
# Python packages the peers need and the machine lacks.
if ls "$DEV"/whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$DEV"/whl/*.whl &&
        export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi

if [ "$tests" = 1 ]; then
    step "GPU kernels against the CPU, CUDA"
    # The choice-parsing test asserts this is a machine without CUDA, and the buffer-reuse
    # test checks lavapipe's own pool (no lavapipe here): both skipped.
    skip=(--skip a_choice_reads --skip reused_device_buffers_carry_nothing_over)
    ACCEL_TEST_GPU=cuda "$DEV/matches_cpu" --test-threads 1 "${skip[@]}" 2>&1 | tee "$out/tests-cuda.log" || status=1
    if ldconfig -p | grep -q libvulkan; then
        step "GPU kernels against the CPU, Vulkan (adapter 0)"
        ACCEL_TEST_GPU=0 "$DEV/matches_cpu" --test-threads 1 "${skip[@]}" 2>&1 | tee "$out/tests-vulkan.log" || status=1
    fi
fi

step "benchmarks ($size)"
command="scripts/device-check.sh --size $size --only $only"
[ "$tests" = 1 ] || command="$command --skip-tests"
python3 bench/peers/machine.py "$out" before --command "$command" --size "$size" || status=1
"$DEV/accel-suite" --size "$size" --repeats 3 --json "$out/accel.json" --gpu cuda --only "$only" --no-cluster || status=1
if ldconfig -p | grep -q libvulkan; then
    "$DEV/accel-suite" --size "$size" --repeats 3 --json "$out/accel-vulkan.json" --gpu 0 --only "$only" --no-cluster || status=1
fi
PYTHONUNBUFFERED=1 python3 bench/peers/run.py --size "$size" --repeats 3 --only "$only" \
    --runners numpy,numba-parallel,cupy,numba-cuda --gpu cuda --json "$out/peers.json" || status=1
python3 bench/peers/machine.py "$out" after || status=1
python3 bench/report.py "$out" || status=1
echo "device-check: done (status $status); results in $out"
exit "$status"
