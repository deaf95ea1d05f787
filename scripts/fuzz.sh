#!/usr/bin/env bash
# A longer fuzz run of every network decoder (plans, worker messages,
# data-plane requests and replies), all four at once for MINUTES (default 10).
# Prints how many inputs each target ran, how deep they got, and the largest
# single allocation; fails on any panic or allocation above the cap.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-10}"
bin=$(cargo test --release -p accel-e2e --test fuzz --no-run 2>&1 |
    grep -o 'target/release/deps/fuzz-[0-9a-f]*' | head -1)
ACCEL_FUZZ_SECONDS=$((minutes * 60)) "$bin" --nocapture --test-threads 4
