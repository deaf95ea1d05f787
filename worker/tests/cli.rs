//! The `accel-worker` binary: its options, and a clear error (not a hang) when
//! the scheduler cannot be reached within the death timeout.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_accel-worker");

#[test]
fn help_lists_every_option() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--nthreads",
        "--name",
        "--listen",
        "ACCEL_SCHEDULER",
        "--death-timeout",
        "ACCEL_DEATH_TIMEOUT",
        "--retire-timeout",
    ] {
        assert!(help.contains(opt), "{opt} missing from\n{help}");
    }
}

#[test]
fn an_unreachable_scheduler_is_a_clear_error() {
    let start = Instant::now();
    let out = Command::new(BIN)
        .arg("http://127.0.0.1:1")
        .args(["--nthreads", "1", "--death-timeout", "1.5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let waited = start.elapsed();
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    assert!(
        waited >= Duration::from_millis(1500),
        "gave up early: {waited:?}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the scheduler at http://127.0.0.1:1")
            && err.contains("death timeout"),
        "{err}"
    );
}
