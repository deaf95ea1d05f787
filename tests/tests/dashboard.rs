//! The scheduler's dashboard, JSON API, `/metrics` and `/health`, fetched
//! while a real job runs (held mid-way by a stalled combine task) and after
//! it ends, and checked against the job's real state: its plan's stages and
//! task counts, the workers attached, the tasks that ran.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::collections::HashMap;
use std::time::Duration;

use accel::{Client, Rng};
use accel_e2e::Cluster;

const WAIT: Duration = Duration::from_secs(30);

fn get(cluster: &Cluster, path: &str) -> (u16, String) {
    cluster.dashboard_get(path).unwrap()
}

fn json(cluster: &Cluster, path: &str) -> serde_json::Value {
    let (code, body) = get(cluster, path);
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Prometheus text: `name{labels}` → value.
fn metrics(cluster: &Cluster) -> HashMap<String, f64> {
    let (code, body) = get(cluster, "/metrics");
    assert_eq!(code, 200);
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn every_route_tells_the_truth_about_a_running_job() {
    let (cluster, gate) = Cluster::start_stalling(2, "combine").unwrap();
    let base = cluster.dashboard.clone();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    // Without the token, only /health answers.
    assert_eq!(accel_e2e::http_get(&base, "/health").unwrap().0, 200);
    for path in [
        "/api/status",
        "/api/jobs",
        "/metrics",
        "/status",
        "/dashboard.js",
    ] {
        assert_eq!(accel_e2e::http_get(&base, path).unwrap().0, 401, "{path}");
    }
    let wrong = accel_e2e::http_get_as(&base, "/api/status", Some("guess")).unwrap();
    assert_eq!(wrong.0, 401);
    assert_eq!(get(&cluster, "/health"), (200, "ok\n".to_string()));

    let n = 8 * 200_000;
    let a = (Rng::new(11).random(&[n], n / 8).sin().exp() + 1.0)
        .log()
        .sum();
    let plan = Client::local().plan(&[&a]).unwrap().plan;
    let client = cluster.client().unwrap();
    let job = {
        let a = a.clone();
        std::thread::spawn(move || client.compute::<f64>(&a))
    };
    // Mid-way: every partial done, the combine held.
    let running = || {
        let jobs = json(&cluster, "/api/jobs");
        jobs.as_array()
            .unwrap()
            .iter()
            .find(|j| j["state"] == "running")
            .filter(|j| {
                let stages = j["status"]["stages"].as_array().unwrap();
                stages[0]["done"] == stages[0]["tasks"] && stages.last().unwrap()["processing"] == 1
            })
            .cloned()
    };
    cluster
        .wait_for("the combine to be held", WAIT, || running().is_some())
        .unwrap();
    let j = running().unwrap();
    let id = j["id"].as_u64().unwrap();
    let stages = j["status"]["stages"].as_array().unwrap();
    assert_eq!(stages.len(), plan.stages.len());
    for (st, want) in stages.iter().zip(&plan.stages) {
        assert_eq!(st["kind"], want.kind_name());
        assert_eq!(st["tasks"].as_u64().unwrap() as usize, want.task_count());
        let parts: u64 = ["waiting", "ready", "processing", "done"]
            .iter()
            .map(|k| st[*k].as_u64().unwrap())
            .sum();
        assert_eq!(parts as usize, want.task_count(), "{st}");
        let inputs: Vec<u64> = st["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(
            inputs,
            want.inputs.iter().map(|i| i.0 as u64).collect::<Vec<_>>()
        );
    }
    assert_eq!(json(&cluster, &format!("/api/jobs/{id}"))["id"], id);
    assert_eq!(get(&cluster, "/api/jobs/999999").0, 404);
    let workers = json(&cluster, "/api/workers");
    assert_eq!(workers["workers"].as_array().unwrap().len(), 2);
    let status = json(&cluster, "/api/status");
    assert_eq!(status["core"]["workers"].as_array().unwrap().len(), 2);
    // The task stream holds the finished tasks (all partials, and the sources if any).
    let stream = status["task_stream"].as_array().unwrap();
    let partials = stream.iter().filter(|t| t["kind"] == "partial").count();
    assert_eq!(partials, plan.stages[0].task_count());
    assert!(
        stream
            .iter()
            .all(|t| t["end_s"].as_f64() >= t["start_s"].as_f64())
    );
    // Heartbeats bring what the workers hold: the partial states, at least.
    cluster
        .wait_for("the workers' memory to be reported", WAIT, || {
            json(&cluster, "/api/status")["workers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["bytes_in_memory"].as_u64().unwrap())
                .sum::<u64>()
                > 0
        })
        .unwrap();
    let m = metrics(&cluster);
    assert!(
        m.iter()
            .any(|(k, v)| k.starts_with("accel_worker_bytes{") && *v > 0.0)
    );
    assert_eq!(m["accel_workers"], 2.0);
    assert_eq!(m["accel_jobs_running"], 1.0);
    assert_eq!(m["accel_tasks{state=\"processing\"}"], 1.0);
    // The pages and their script.
    for page in ["/status", "/workers", "/jobs"] {
        let (code, body) = get(&cluster, page);
        assert_eq!(code, 200);
        assert!(body.contains("/dashboard.js"), "{page}: {body}");
    }
    let (code, js) = get(&cluster, "/dashboard.js");
    assert!(code == 200 && js.contains("function stageGraph"));

    // Released, the job ends; the counters account for every task it ran.
    std::fs::write(&gate, b"go").unwrap();
    let got = job.join().unwrap().unwrap();
    assert!(got[[]].is_finite());
    cluster
        .wait_for("the job to be reported done", WAIT, || {
            json(&cluster, &format!("/api/jobs/{id}"))["state"] == "done"
        })
        .unwrap();
    let m = metrics(&cluster);
    let finished: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("accel_tasks_finished_total"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(finished as usize, plan.task_count());
    let done: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("accel_worker_tasks_done_total"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(done as usize, plan.task_count());
    assert_eq!(m["accel_jobs_running"], 0.0);
}

#[test]
fn clients_hear_how_far_their_job_got() {
    use accel_proto::pb;
    let (cluster, gate) = Cluster::start_stalling(1, "combine").unwrap();
    let n = 8 * 100_000;
    let a = (Rng::new(3).random(&[n], n / 8) + 1.0).sum();
    let plan = Client::local().plan(&[&a]).unwrap().plan;
    let total = plan.task_count() as u64;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let seen = rt.block_on(async {
        let mut s = cluster.raw_scheduler().await.unwrap();
        let mut updates = s
            .jobs
            .submit(accel_e2e::submission(&plan))
            .await
            .unwrap()
            .into_inner();
        let mut seen = Vec::new();
        loop {
            let u = tokio::time::timeout(WAIT, updates.message())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            match u.event {
                Some(pb::job_update::Event::Progress(p)) => {
                    assert_eq!(p.total, total);
                    seen.push(p.done);
                    // Everything but the held combine: let it go.
                    if p.done == total - 1 {
                        std::fs::write(&gate, b"go").unwrap();
                    }
                }
                Some(pb::job_update::Event::Done(_)) => return seen,
                Some(pb::job_update::Event::Failed(e)) => panic!("{e}"),
                _ => {}
            }
        }
    });
    assert!(seen.contains(&(total - 1)), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
}
