//! The scheduler's HTTP side: `/health`, Prometheus `/metrics`, the JSON
//! API the dashboard reads, and the dashboard's pages (compiled in). Each
//! request asks the event loop for one [`Snapshot`]: O(workers + stages),
//! never O(tasks).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use tokio::sync::{mpsc, oneshot};

use super::Input;
use super::observe::Snapshot;
use super::web_guard::{self, Guard};

#[derive(Clone)]
struct Loop(mpsc::UnboundedSender<Input>);

impl Loop {
    async fn snapshot(&self) -> Result<Arc<Snapshot>, Response> {
        let (tx, rx) = oneshot::channel();
        let gone =
            || (StatusCode::SERVICE_UNAVAILABLE, "the scheduler is stopping").into_response();
        self.0.send(Input::Snapshot(tx)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }
}

/// The routes, answering from the loop behind `inputs`; with a guard, only
/// to requests that carry its token.
pub(super) fn router(inputs: mpsc::UnboundedSender<Input>, guard: Option<Guard>) -> Router {
    let routes = Router::new()
        .route("/", get(|| async { Redirect::to("/status") }))
        .route("/health", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/api/status", get(status))
        .route("/api/workers", get(workers))
        .route("/api/jobs", get(jobs))
        .route("/api/jobs/{id}", get(job))
        .route("/status", get(|| page("status")))
        .route("/workers", get(|| page("workers")))
        .route("/jobs", get(|| page("jobs")))
        .route("/dashboard.js", get(script))
        .route("/dashboard.css", get(style))
        .with_state(Loop(inputs));
    match guard {
        Some(g) => routes.layer(axum::middleware::from_fn_with_state(g, web_guard::check)),
        None => routes,
    }
}

/// Every page is this one, drawing its part of the snapshot (`start(PAGE)`).
const PAGE: &str = include_str!("dashboard/page.html");

async fn page(name: &'static str) -> Html<String> {
    Html(PAGE.replace("{{PAGE}}", name))
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("dashboard/dashboard.js"),
    )
}

async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("dashboard/dashboard.css"),
    )
}

fn json<T: serde::Serialize>(v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn status(State(l): State<Loop>) -> Response {
    match l.snapshot().await {
        Ok(s) => json(&*s),
        Err(r) => r,
    }
}

async fn workers(State(l): State<Loop>) -> Response {
    match l.snapshot().await {
        Ok(s) => json(&serde_json::json!({ "workers": s.core.workers, "views": s.workers })),
        Err(r) => r,
    }
}

async fn jobs(State(l): State<Loop>) -> Response {
    match l.snapshot().await {
        Ok(s) => json(&s.jobs),
        Err(r) => r,
    }
}

async fn job(State(l): State<Loop>, Path(id): Path<u64>) -> Response {
    match l.snapshot().await {
        Ok(s) => match s.jobs.iter().find(|j| j.id == id) {
            Some(j) => json(j),
            None => (StatusCode::NOT_FOUND, format!("no job {id}\n")).into_response(),
        },
        Err(r) => r,
    }
}

async fn metrics(State(l): State<Loop>) -> Response {
    match l.snapshot().await {
        Ok(s) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            prometheus(&s),
        )
            .into_response(),
        Err(r) => r,
    }
}

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The snapshot in Prometheus' text format; every name starts with `accel_`.
pub fn prometheus(s: &Snapshot) -> String {
    let mut o = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(o, "{name}{labels} {v}");
        }
    };
    let c = &s.core;
    family(
        "accel_scheduler_uptime_seconds",
        "gauge",
        "Seconds since the scheduler started.",
        &[(String::new(), s.uptime_s)],
    );
    family(
        "accel_workers",
        "gauge",
        "Workers attached.",
        &[(String::new(), c.workers.len() as f64)],
    );
    family(
        "accel_worker_threads",
        "gauge",
        "Threads of all workers.",
        &[(
            String::new(),
            c.workers.iter().map(|w| w.nthreads as f64).sum(),
        )],
    );
    let running = s.jobs.iter().filter(|j| j.state == "running").count();
    family(
        "accel_jobs",
        "gauge",
        "Jobs the scheduler holds, running or with results not yet fetched.",
        &[(String::new(), c.jobs.len() as f64)],
    );
    family(
        "accel_jobs_running",
        "gauge",
        "Jobs with tasks still to run.",
        &[(String::new(), running as f64)],
    );
    family(
        "accel_jobs_ended_total",
        "counter",
        "Jobs ended since the start, by outcome.",
        &[
            ("{outcome=\"done\"}".into(), c.jobs_done as f64),
            ("{outcome=\"failed\"}".into(), c.jobs_failed as f64),
        ],
    );
    let mut by_state = [0u64; 4];
    for j in &c.jobs {
        for st in &j.stages {
            by_state[0] += st.waiting as u64;
            by_state[1] += st.ready as u64;
            by_state[2] += st.processing as u64;
            by_state[3] += st.done as u64;
        }
    }
    family(
        "accel_tasks",
        "gauge",
        "Tasks of the jobs held, by state.",
        &["waiting", "ready", "processing", "done"]
            .iter()
            .zip(by_state)
            .map(|(k, n)| (format!("{{state=\"{k}\"}}"), n as f64))
            .collect::<Vec<_>>(),
    );
    family(
        "accel_tasks_finished_total",
        "counter",
        "Tasks finished since the start (recomputes included), by stage kind.",
        &c.finished_by_kind
            .iter()
            .map(|(k, n)| (format!("{{kind=\"{}\"}}", label(k)), *n as f64))
            .collect::<Vec<_>>(),
    );
    // Per worker: (name, help, kind, value of the worker's status and view).
    type PerWorker = fn(&crate::core::WorkerStatus, &super::observe::WorkerView) -> f64;
    let per_worker: [(&str, &str, &str, PerWorker); 5] = [
        (
            "accel_worker_tasks_processing",
            "gauge",
            "Tasks assigned to each worker and not finished.",
            |w, _| w.processing as f64,
        ),
        (
            "accel_worker_bytes",
            "gauge",
            "Bytes of chunks each worker holds in memory (from its heartbeat).",
            |_, v| v.bytes_in_memory as f64,
        ),
        (
            "accel_worker_bytes_spilled",
            "gauge",
            "Bytes of chunks each worker spilled to disk (from its heartbeat).",
            |_, v| v.bytes_spilled as f64,
        ),
        (
            "accel_worker_chunks",
            "gauge",
            "Chunks each worker holds.",
            |w, _| w.chunks as f64,
        ),
        (
            "accel_worker_tasks_done_total",
            "counter",
            "Tasks each worker finished while attached to this scheduler.",
            |_, v| v.tasks_done as f64,
        ),
    ];
    for (name, kind, help, value) in per_worker {
        let samples: Vec<(String, f64)> = c
            .workers
            .iter()
            .zip(&s.workers)
            .map(|(w, v)| (format!("{{worker=\"{}\"}}", label(&w.name)), value(w, v)))
            .collect();
        family(name, kind, help, &samples);
    }
    family(
        "accel_scheduler_event_loop_batches_total",
        "counter",
        "Batches of events the scheduler's loop applied.",
        &[(String::new(), s.event_loop.batches as f64)],
    );
    family(
        "accel_scheduler_event_loop_busy_seconds_total",
        "counter",
        "Seconds the scheduler's loop spent applying events and scheduling.",
        &[(String::new(), s.event_loop.busy_s)],
    );
    family(
        "accel_scheduler_event_loop_latency_seconds",
        "gauge",
        "The longest batch of the loop in the last 5-10 seconds: how long an event can wait.",
        &[(String::new(), s.event_loop.recent_max_batch_s)],
    );
    o
}
