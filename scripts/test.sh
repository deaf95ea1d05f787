#!/usr/bin/env bash
# The whole test suite: every crate's tests, then the end-to-end suite again
# on clusters secured with tokens and with mutual TLS (same build, no
# rebuild), then the deployment recipes through their validators.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
install() {
    $sudo apt-get install -y -q "$@" >/dev/null 2>&1 ||
        { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q "$@" >/dev/null; }
}
# The dashboard's browser test needs headless Chromium (Debian's package).
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
    install chromium
fi
# The GPU tests run their kernels on Mesa's lavapipe, a Vulkan device on the CPU.
if ! ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1; then
    install mesa-vulkan-drivers
fi
# The CUDA backend's compile test needs NVRTC: the PyPI wheel has it.
nvrtc_lib() {
    python3 -c 'import os, nvidia.cuda_nvrtc as m; print(os.path.join(list(m.__path__)[0], "lib"))' 2>/dev/null
}
if ! nvrtc_lib >/dev/null; then
    python3 -m pip install -q nvidia-cuda-nvrtc-cu12 >/dev/null 2>&1 ||
        python3 -m pip install -q --user nvidia-cuda-nvrtc-cu12 >/dev/null
fi
nvrtc_dir="$(nvrtc_lib)"
export LD_LIBRARY_PATH="$nvrtc_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cargo test --workspace --release
ACCEL_E2E_SECURITY=token cargo test --release -p accel-e2e
ACCEL_E2E_SECURITY=mtls cargo test --release -p accel-e2e
deploy/validate.sh
