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
