#!/usr/bin/env bash
# The whole test suite: every crate's tests, then the end-to-end suite again
# on clusters secured with tokens and with mutual TLS (same build, no
# rebuild), then the deployment recipes through their validators.
set -euo pipefail
cd "$(dirname "$0")/.."
# The dashboard's browser test needs headless Chromium (Debian's package).
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get install -y -q chromium >/dev/null 2>&1 ||
        { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q chromium >/dev/null; }
fi
cargo test --workspace --release
ACCEL_E2E_SECURITY=token cargo test --release -p accel-e2e
ACCEL_E2E_SECURITY=mtls cargo test --release -p accel-e2e
deploy/validate.sh
