//! Chunks between processes: the Worker service streams them in frames, and
//! `Peers` fetches them from other workers. A peer that stops sending in the
//! middle of a chunk (frozen, cut off, dead) is given up on after a stall
//! timeout, never waited for forever.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use accel_core::{Chunk, ChunkKey};
use accel_proto::PROTOCOL_VERSION;
use accel_proto::convert::{chunk_from, chunk_to, task_from, task_to};
use accel_proto::pb;
use accel_proto::pb::worker_client::WorkerClient;
use accel_proto::pb::worker_server::Worker;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::store::Store;

/// A box of a chunk: lo (inclusive) and hi (exclusive) per axis.
pub type Region = (Vec<usize>, Vec<usize>);

/// HTTP/2 flow-control windows of chunk transfers (per stream, per connection).
pub const STREAM_WINDOW: u32 = 16 << 20;
pub const CONNECTION_WINDOW: u32 = 64 << 20;

/// Bytes per frame: well under gRPC's 4 MiB default message limit.
pub const FRAME: usize = 1 << 20;

/// Default for how long a peer may stay silent while serving a chunk.
pub const DEFAULT_STALL: Duration = Duration::from_secs(10);

pub struct Service {
    pub store: Arc<Store>,
    /// Chunk transfers in progress (a retiring worker waits for them).
    pub serving: Arc<AtomicUsize>,
}

/// Counts a transfer while it lives.
struct Serving(Arc<AtomicUsize>);

impl Serving {
    fn new(n: &Arc<AtomicUsize>) -> Serving {
        n.fetch_add(1, Ordering::SeqCst);
        Serving(n.clone())
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tonic::async_trait]
impl Worker for Service {
    type FetchStream = ReceiverStream<Result<pb::ChunkFrame, Status>>;

    async fn fetch(
        &self,
        req: Request<pb::FetchRequest>,
    ) -> Result<Response<Self::FetchStream>, Status> {
        let req = req.into_inner();
        let theirs = req.hello.as_ref().map_or(0, |h| h.protocol_version);
        accel_proto::check_version(theirs)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let (job, key) =
            task_from(req.chunk.as_ref()).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut chunk = self.store.get(job, key).ok_or_else(|| {
            Status::not_found(format!(
                "chunk {} of stage {} of job {job} is not here",
                key.chunk, key.stage.0
            ))
        })?;
        if !req.region_lo.is_empty() || !req.region_hi.is_empty() {
            let dims = |v: &[u64]| {
                v.iter()
                    .map(|&x| usize::try_from(x).unwrap_or(usize::MAX))
                    .collect::<Vec<_>>()
            };
            let (lo, hi) = (dims(&req.region_lo), dims(&req.region_hi));
            let whole = lo.iter().all(|&x| x == 0) && hi == chunk.shape;
            if !whole {
                chunk = Arc::new(
                    accel_core::stencil::crop(&chunk, &lo, &hi)
                        .map_err(|e| Status::invalid_argument(e.to_string()))?,
                );
            }
        }
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let serving = Serving::new(&self.serving);
        tokio::spawn(async move {
            let _serving = serving;
            let (header, data) = chunk_to(&chunk);
            let mut header = Some(header);
            let mut frames = data.chunks(FRAME).peekable();
            if frames.peek().is_none() {
                let _ = tx
                    .send(Ok(pb::ChunkFrame {
                        header: header.take(),
                        data: Vec::new(),
                    }))
                    .await;
            }
            for f in frames {
                if tx
                    .send(Ok(pb::ChunkFrame {
                        header: header.take(),
                        data: f.to_vec(),
                    }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Connections to other workers, opened on first use and dropped when they fail.
pub struct Peers {
    clients: Mutex<HashMap<String, WorkerClient<Channel>>>,
    stall_ms: AtomicU64,
}

impl Default for Peers {
    fn default() -> Peers {
        Peers::new(DEFAULT_STALL)
    }
}

impl Peers {
    pub fn new(stall: Duration) -> Peers {
        Peers {
            clients: Mutex::default(),
            stall_ms: AtomicU64::new(stall.as_millis().max(1) as u64),
        }
    }

    /// How long a peer may send nothing while serving a chunk.
    pub fn set_stall(&self, stall: Duration) {
        self.stall_ms
            .store(stall.as_millis().max(1) as u64, Ordering::Relaxed);
    }

    fn stall(&self) -> Duration {
        Duration::from_millis(self.stall_ms.load(Ordering::Relaxed))
    }

    /// Forgets every connection (after the worker starts afresh).
    pub fn clear(&self) {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    async fn client(&self, address: &str) -> Result<WorkerClient<Channel>, String> {
        if let Some(c) = self
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(address)
        {
            return Ok(c.clone());
        }
        let channel = tonic::transport::Endpoint::from_shared(address.to_string())
            .map_err(|e| format!("bad peer address {address}: {e}"))?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            // HTTP/2's default 64 KiB flow-control windows make a sender wait
            // for a round trip every 64 KiB; chunks are megabytes.
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .connect()
            .await
            .map_err(|e| format!("cannot reach peer {address}: {e}"))?;
        let c = WorkerClient::new(channel);
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(address.to_string(), c.clone());
        Ok(c)
    }

    /// Fetches one chunk from the worker at `address`, or only the box
    /// `region` of it (a stencil's halo strip).
    pub async fn fetch(
        &self,
        address: &str,
        job: u64,
        key: ChunkKey,
        region: Option<Region>,
    ) -> Result<Arc<Chunk>, String> {
        let stall = self.stall();
        let client = tokio::time::timeout(stall, self.client(address))
            .await
            .unwrap_or_else(|_| Err(format!("peer {address} did not answer")));
        let r = match client {
            Ok(c) => fetch_chunk(c, job, key, region, stall).await,
            Err(e) => Err(e),
        };
        if r.is_err() {
            // The connection may be broken; the next fetch opens a new one.
            self.clients
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(address);
        }
        r.map(Arc::new)
    }
}

/// Streams a chunk from a worker and reassembles it; a peer silent for
/// `stall` is given up on.
pub async fn fetch_chunk(
    mut client: WorkerClient<Channel>,
    job: u64,
    key: ChunkKey,
    region: Option<Region>,
    stall: Duration,
) -> Result<Chunk, String> {
    let stalled = || format!("the peer sent nothing for {:.1}s", stall.as_secs_f64());
    let (region_lo, region_hi) = match region {
        Some((lo, hi)) => (
            lo.iter().map(|&x| x as u64).collect(),
            hi.iter().map(|&x| x as u64).collect(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    let req = pb::FetchRequest {
        region_lo,
        region_hi,
        hello: Some(pb::Hello {
            protocol_version: PROTOCOL_VERSION,
            peer: String::new(),
        }),
        chunk: Some(task_to(job, key)),
    };
    let mut stream = tokio::time::timeout(stall, client.fetch(req))
        .await
        .map_err(|_| stalled())?
        .map_err(|s| s.message().to_string())?
        .into_inner();
    let mut header = None;
    let mut data = Vec::new();
    while let Some(frame) = tokio::time::timeout(stall, stream.message())
        .await
        .map_err(|_| stalled())?
        .map_err(|s| s.message().to_string())?
    {
        if let Some(h) = frame.header {
            data.reserve(h.total_bytes.min(1 << 34) as usize);
            header = Some(h);
        }
        data.extend_from_slice(&frame.data);
    }
    let header = header.ok_or("chunk stream without a header")?;
    chunk_from(&header, &data).map_err(|e| e.to_string())
}
