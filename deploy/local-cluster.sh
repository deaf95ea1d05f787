#!/usr/bin/env bash
# Starts an accel scheduler and N workers on 127.0.0.1, prints the scheduler's
# address, and stops them all when this script exits (Ctrl-C, or kill).
#
#   deploy/local-cluster.sh 2            # then: cargo run --release --example gallery -- --scheduler URL
#   deploy/local-cluster.sh 2 -- CMD...  # runs CMD with ACCEL_SCHEDULER set, then stops the cluster
set -euo pipefail
cd "$(dirname "$0")/.."

n="${1:-2}"
shift || true
threads="${ACCEL_NTHREADS:-1}"

# ACCEL_BIN: a folder holding accel-scheduler and accel-worker (default: build them).
if [ -n "${ACCEL_BIN:-}" ]; then
  bin="$ACCEL_BIN"
else
  cargo build --release -q -p accel-scheduler -p accel-worker
  bin=target/release
fi
logs=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$logs"
}
trap cleanup EXIT INT TERM

"$bin/accel-scheduler" --port 0 --dashboard-address 127.0.0.1:0 >"$logs/scheduler.out" 2>"$logs/scheduler.log" &
pids+=($!)
for _ in $(seq 100); do
  # The first address printed is the scheduler's (the dashboard's follows).
  addr=$(grep -o -m1 'http://[0-9.:]*' "$logs/scheduler.out" 2>/dev/null | head -n1 || true)
  [ -n "$addr" ] && break
  sleep 0.05
done
[ -n "${addr:-}" ] || { echo "the scheduler did not start:"; cat "$logs/scheduler.log"; exit 1; }

for i in $(seq "$n"); do
  "$bin/accel-worker" "$addr" --nthreads "$threads" --name "worker-$i" 2>"$logs/worker-$i.log" &
  pids+=($!)
done
echo "accel cluster: scheduler $addr, $n workers × $threads threads (logs in $logs)"

if [ "${1:-}" = "--" ]; then
  shift
  ACCEL_SCHEDULER="$addr" "$@"
else
  echo "press Ctrl-C to stop"
  wait
fi
