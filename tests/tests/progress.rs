//! The progress bar of `compute`: drawn on stderr in a terminal (a pseudo
//! terminal made by `script`), absent when stderr is a pipe or the client
//! turned it off; the result is printed either way.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::process::Command;

fn probe() -> String {
    env!("CARGO_BIN_EXE_progress-probe").to_string()
}

#[test]
fn a_terminal_sees_a_progress_bar_and_a_pipe_does_not() {
    // In a pseudo terminal: the bar's tasks counter and ETA are drawn.
    let out = Command::new("script")
        .args(["-qec", &probe(), "/dev/null"])
        .output()
        .expect("util-linux `script` makes the pseudo terminal");
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(tty.contains("tasks") && tty.contains("ETA"), "{tty}");
    assert!(tty.contains("result "), "{tty}");
    // Turned off, even in a terminal: nothing but the result.
    let out = Command::new("script")
        .args(["-qec", &format!("{} off", probe()), "/dev/null"])
        .output()
        .unwrap();
    let off = String::from_utf8_lossy(&out.stdout);
    assert!(!off.contains("ETA") && off.contains("result "), "{off}");
    // A pipe: nothing on stderr.
    let out = Command::new(probe()).output().unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("result "));
}
