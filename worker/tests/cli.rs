//! The `accel-worker` binary: its options, and a clear error (not a hang) when
//! the scheduler cannot be reached.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_accel-worker");

#[test]
fn help_lists_every_option() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for opt in ["--nthreads", "--name", "--listen", "ACCEL_SCHEDULER"] {
        assert!(help.contains(opt), "{opt} missing from\n{help}");
    }
}

#[test]
fn an_unreachable_scheduler_is_a_clear_error() {
    let start = Instant::now();
    let out = Command::new(BIN)
        .arg("http://127.0.0.1:1")
        .args(["--nthreads", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(start.elapsed() < Duration::from_secs(10));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the scheduler at http://127.0.0.1:1"),
        "{err}"
    );
}
