#!/usr/bin/env bash
# The whole test suite: every crate's tests, then the end-to-end suite again
# on clusters secured with tokens and with mutual TLS (same build, no
# rebuild), then the deployment recipes through their validators.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --release
ACCEL_E2E_SECURITY=token cargo test --release -p accel-e2e
ACCEL_E2E_SECURITY=mtls cargo test --release -p accel-e2e
deploy/validate.sh
