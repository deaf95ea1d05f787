//! The dashboard in a real browser (headless Chromium): the status and jobs
//! pages are loaded during a job held mid-way and after it ends, and the
//! rendered DOM is read: progress bars with the job's real counts, the stage
//! graph drawn, the bars advanced once the job ran. Screenshots of each page
//! are saved in `target/dashboard/` (the README's come from there).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use accel::{Client, Rng};
use accel_e2e::Cluster;

fn chromium() -> PathBuf {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .map(|n| Path::new("/usr/bin").join(n))
        .find(|p| p.exists())
        .expect("headless Chromium is needed: scripts/test.sh installs Debian's `chromium`")
}

/// The page's DOM after its scripts ran (and fetched the API) for a while.
fn dom(url: &str) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
        ])
        .args(["--virtual-time-budget=4000", "--dump-dom", url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screenshot(url: &str, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
        ])
        .args([
            "--virtual-time-budget=4000",
            "--hide-scrollbars",
            "--window-size=1280,800",
        ])
        .arg(format!("--screenshot={}", path.display()))
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::metadata(&path).unwrap().len() > 1000);
}

/// `data-done` of every progress bar of stage `stage` in the DOM.
fn done_counts(dom: &str, stage: usize) -> Vec<u64> {
    let tag = format!("class=\"bar\" data-stage=\"{stage}\" data-done=\"");
    dom.match_indices(&tag)
        .filter_map(|(i, _)| {
            let rest = &dom[i + tag.len()..];
            rest[..rest.find('"')?].parse().ok()
        })
        .collect()
}

#[test]
fn the_dashboard_renders_a_running_job_in_a_browser() {
    let (cluster, gate) = Cluster::start_stalling(2, "combine").unwrap();
    let n = 8 * 200_000;
    let a = (Rng::new(5).random(&[n], n / 8).sin() + 1.0).sum();
    let plan = Client::local().plan(&[&a]).unwrap().plan;
    let last = plan.stages.len() - 1;
    let first_tasks = plan.stages[0].task_count() as u64;
    let client = cluster.client().unwrap();
    let job = {
        let a = a.clone();
        std::thread::spawn(move || client.compute::<f64>(&a))
    };
    cluster
        .wait_for("the combine to stall", Duration::from_secs(30), || {
            (0..2).any(|k| cluster.worker_log(k).contains("fault injection: stalling"))
        })
        .unwrap();
    let status = dom(&cluster.dashboard_link("/status"));
    assert!(status.contains("Running jobs"), "{status}");
    // The task stream drew the 8 partial tasks that ran.
    assert!(status.contains("class=\"task-stream\""), "{status}");
    assert_eq!(
        status.matches("data-kind=\"partial\"").count(),
        8,
        "{status}"
    );
    assert!(
        status.contains("<td>2</td>") || status.contains(">2<"),
        "{status}"
    );
    assert_eq!(done_counts(&status, 0), vec![first_tasks], "{status}");
    assert_eq!(done_counts(&status, last), vec![0], "{status}");
    let jobs = dom(&cluster.dashboard_link("/jobs"));
    assert!(jobs.contains("class=\"stage-graph\""), "{jobs}");
    assert!(jobs.contains("data-state=\"running\""), "{jobs}");
    screenshot(&cluster.dashboard_link("/status"), "status.png");
    screenshot(&cluster.dashboard_link("/jobs"), "jobs.png");
    screenshot(&cluster.dashboard_link("/workers"), "workers.png");

    // Released, the job ends and its last stage's bar is full.
    std::fs::write(&gate, b"go").unwrap();
    job.join().unwrap().unwrap();
    cluster
        .wait_for("the job to end", Duration::from_secs(30), || {
            dom(&cluster.dashboard_link("/jobs")).contains("data-state=\"done\"")
        })
        .unwrap();
    let jobs = dom(&cluster.dashboard_link("/jobs"));
    assert_eq!(done_counts(&jobs, last), vec![1], "{jobs}");
}
