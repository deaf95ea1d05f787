//! The Slurm recipe, run with stand-in `sbatch` and `srun` that start the
//! real binaries on this machine: the scheduler writes its file, two workers
//! find it, and a seed example computes through it (checked against its
//! scalar reference by the example itself).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_slurm_script_runs_a_cluster_from_its_scheduler_file() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = accel_e2e::program("accel-scheduler").unwrap();
    let bin_dir = bin.parent().unwrap();
    let example = bin_dir.join("examples").join("mag");
    assert!(
        example.exists(),
        "{} (cargo test --workspace builds it)",
        example.display()
    );
    let shared = std::env::temp_dir().join(format!("accel-slurm-{}", std::process::id()));
    let stand_ins = root.join("tests/fixtures/slurm");
    let path = format!(
        "{}:{}",
        stand_ins.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(stand_ins.join("sbatch"))
        .arg("--nodes=2")
        .arg(root.join("deploy/slurm/accel.sbatch"))
        .args([example.to_str().unwrap(), "--size", "small", "--out"])
        .arg(shared.join("out"))
        .env("PATH", path)
        .env("ACCEL_BIN", bin_dir)
        .env("ACCEL_SHARED", &shared)
        .env("ACCEL_SCHEDULER_HOST", "127.0.0.1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let logs = std::fs::read_to_string(shared.join("scheduler.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{text}\n{}\nscheduler log:\n{logs}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("scheduler: {"), "{text}");
    assert_eq!(logs.matches("worker joined").count(), 2, "{logs}");
    assert!(text.contains("mag"), "{text}");
    let _ = std::fs::remove_dir_all(&shared);
}

#[test]
fn the_local_cluster_script_hands_its_command_the_scheduler() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = accel_e2e::program("accel-scheduler").unwrap();
    let bin_dir = bin.parent().unwrap();
    let example = bin_dir.join("examples").join("mag");
    assert!(example.exists(), "{}", example.display());
    let out_dir = std::env::temp_dir().join(format!("accel-local-{}", std::process::id()));
    // The command runs a seed example against the cluster through
    // $ACCEL_SCHEDULER (one address: the dashboard's is printed after it).
    let out = Command::new(root.join("deploy/local-cluster.sh"))
        .args(["2", "--", "sh", "-c"])
        .arg(r#"echo "scheduler=[$ACCEL_SCHEDULER]"; exec "$0" --scheduler "$ACCEL_SCHEDULER" --size small --out "$1""#)
        .arg(&example)
        .arg(&out_dir)
        .env("ACCEL_BIN", bin_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("scheduler=["))
        .unwrap_or_default();
    assert!(
        line.starts_with("scheduler=[http://127.0.0.1:")
            && line.ends_with(']')
            && !line.contains(' '),
        "{text}"
    );
    assert!(text.contains("mag"), "{text}");
    let _ = std::fs::remove_dir_all(&out_dir);
}
