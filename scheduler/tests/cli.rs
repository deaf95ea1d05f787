//! The `accel-scheduler` binary: prints where it listens, reads its flags from
//! `ACCEL_*` variables too, and stops cleanly on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_accel-scheduler");

#[test]
fn prints_its_address_and_stops_on_sigterm() {
    let mut child = Command::new(BIN)
        .env("ACCEL_PORT", "0")
        .env("ACCEL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("accel-scheduler listening on http://127.0.0.1:"),
        "{line}"
    );
    assert!(
        !line.trim_end().ends_with(":8786"),
        "ACCEL_PORT=0 was ignored: {line}"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(code.success(), "{code:?}");
    let mut rest = String::new();
    out.read_line(&mut rest).unwrap();
    assert!(rest.contains("stopped"), "{rest}");
}

#[test]
fn a_busy_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(BIN).args(["--port", &port]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn help_lists_every_option() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--host",
        "--port",
        "--heartbeat-timeout",
        "--allowed-failures",
        "ACCEL_ALLOWED_FAILURES",
    ] {
        assert!(help.contains(opt), "{opt} missing from\n{help}");
    }
}
