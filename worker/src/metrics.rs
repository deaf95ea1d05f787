//! A worker's own `/metrics` (Prometheus text) and `/health`, on
//! `--metrics-port`: what it holds and spilled, what it moved, how long its
//! tasks computed. Counters are atomics bumped as things happen. With a
//! token, `/metrics` asks for it (Bearer or Basic); `/health` stays open for
//! probes.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use accel_proto::auth::Secret;
use accel_proto::http_auth::authorizes;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::store::Store;

/// A count and a sum (bytes, nanoseconds).
#[derive(Debug, Default)]
pub struct Tally {
    pub count: AtomicU64,
    pub sum: AtomicU64,
}

impl Tally {
    pub fn add(&self, amount: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(amount, Ordering::Relaxed);
    }

    fn get(&self) -> (u64, u64) {
        (
            self.count.load(Ordering::Relaxed),
            self.sum.load(Ordering::Relaxed),
        )
    }
}

/// What a worker counts.
#[derive(Debug, Default)]
pub struct Counters {
    /// Tasks computed here, and their compute time in nanoseconds.
    pub compute: Tally,
}

/// Lets through requests that present `token`, if there is one.
async fn guard(State(token): State<Option<Secret>>, req: Request, next: Next) -> Response {
    let allowed = token.as_ref().is_none_or(|t| {
        req.headers()
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| authorizes(t, v))
    });
    if !allowed {
        return (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"accel worker\", charset=\"UTF-8\"",
            )],
            "this worker's metrics ask for its token (Authorization: Bearer TOKEN)\n",
        )
            .into_response();
    }
    next.run(req).await
}

/// The worker's metrics routes; `/metrics` asks for `token` if given.
pub fn router(
    token: Option<Secret>,
    name: String,
    store: Arc<Store>,
    counters: Arc<Counters>,
    gpu: Option<Arc<accel_gpu::Offloader>>,
    fetched: Arc<Tally>,
    served: Arc<Tally>,
) -> Router {
    let text = move || {
        let u = store.usage();
        let (tasks, nanos) = counters.compute.get();
        let (fin, fin_bytes) = fetched.get();
        let (fout, fout_bytes) = served.get();
        let w = name.replace('\\', "\\\\").replace('"', "\\\"");
        let mut o = String::new();
        let mut family = |n: &str, kind: &str, help: &str, v: f64| {
            let _ = writeln!(
                o,
                "# HELP {n} {help}\n# TYPE {n} {kind}\n{n}{{worker=\"{w}\"}} {v}"
            );
        };
        family(
            "accel_worker_bytes_in_memory",
            "gauge",
            "Bytes of chunks held in memory.",
            u.in_memory as f64,
        );
        family(
            "accel_worker_bytes_spilled",
            "gauge",
            "Bytes of chunks spilled to disk.",
            u.on_disk as f64,
        );
        family(
            "accel_worker_chunks_held",
            "gauge",
            "Chunks held, in memory or on disk.",
            u.chunks as f64,
        );
        family(
            "accel_worker_tasks_computed_total",
            "counter",
            "Tasks computed.",
            tasks as f64,
        );
        family(
            "accel_worker_task_compute_seconds_total",
            "counter",
            "Seconds spent computing tasks.",
            nanos as f64 / 1e9,
        );
        if let Some(g) = &gpu {
            let c = g.counts();
            family(
                "accel_worker_gpu_kernels_total",
                "counter",
                "Fused kernels computed on the GPU.",
                c.on_gpu as f64,
            );
            family(
                "accel_worker_gpu_declined_total",
                "counter",
                "Fused kernels without an exact GPU form, computed on the CPU.",
                c.declined as f64,
            );
            family(
                "accel_worker_gpu_failed_total",
                "counter",
                "Fused kernels that failed on the GPU and were computed on the CPU.",
                c.failed as f64,
            );
            family(
                "accel_worker_gpu_folded_total",
                "counter",
                "Partial reductions folded on the GPU (only their strips' results came back).",
                c.folded as f64,
            );
            family(
                "accel_worker_gpu_stencils_total",
                "counter",
                "Stencil tasks computed on the GPU (every fused step of the task there).",
                c.stencils as f64,
            );
            family(
                "accel_worker_gpu_resident_reads_total",
                "counter",
                "Kernel inputs read from chunks kept in GPU memory instead of uploaded.",
                c.resident as f64,
            );
            family(
                "accel_worker_gpu_read_backs_total",
                "counter",
                "Chunks made on the GPU whose values came back when the host read them.",
                c.read_back as f64,
            );
            family(
                "accel_worker_gpu_device_only_bytes",
                "gauge",
                "Bytes of chunks whose values are only in GPU memory.",
                g.backend().device_chunks().2 as f64,
            );
        }
        family(
            "accel_worker_transfers_in_total",
            "counter",
            "Chunks fetched from peers and clients.",
            fin as f64,
        );
        family(
            "accel_worker_transfer_in_bytes_total",
            "counter",
            "Bytes fetched from peers and clients.",
            fin_bytes as f64,
        );
        family(
            "accel_worker_transfers_out_total",
            "counter",
            "Chunks served to peers and clients.",
            fout as f64,
        );
        family(
            "accel_worker_transfer_out_bytes_total",
            "counter",
            "Bytes served to peers and clients.",
            fout_bytes as f64,
        );
        o
    };
    let metrics = Router::new()
        .route(
            "/metrics",
            get(move || {
                let body = text();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        body,
                    )
                        .into_response()
                }
            }),
        )
        .layer(axum::middleware::from_fn_with_state(token, guard));
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .merge(metrics)
}
