//! Fetching chunks from other workers over pooled data-plane connections.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use accel_core::{Chunk, ChunkKey};
use accel_proto::PROTOCOL_VERSION;
use accel_proto::convert::{dtype_from, task_to};
use accel_proto::pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::stream::DataStream;
use super::wire::{MAGIC, read_msg, write_msg};
use super::{ChunkSink, DEFAULT_STALL, FRAME, Region};

/// A piece of a chunk as it arrives: its header, then its bytes in order,
/// in pieces that hold whole elements.
pub enum Frame<'a> {
    Header(&'a pb::ChunkHeader),
    Data { offset: usize, bytes: &'a [u8] },
}

/// Why a fetch failed, and whether the peer answered at all: a peer that
/// never replied may be gone or out of reach; one that replied with an error
/// (no such chunk, a wrong credential) or broke off mid-chunk was reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchError {
    pub message: String,
    pub answered: bool,
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<FetchError> for String {
    fn from(e: FetchError) -> String {
        e.message
    }
}

/// Idle connections kept per peer.
const POOL: usize = 16;

/// Read buffer per connection: a small chunk's reply (length, header, every
/// column) arrives in one read instead of one per piece.
const READ_BUFFER: usize = 32 << 10;

/// A pooled connection, reads buffered (writes go straight through).
type Conn = BufReader<DataStream>;

/// Connections to other workers' data planes: opened on first use, kept
/// while they work, dropped when they fail.
pub struct Peers {
    idle: Mutex<HashMap<String, Vec<Conn>>>,
    stall_ms: AtomicU64,
    /// TLS towards peers (their certificates checked against the cluster's CA).
    tls: Option<accel_proto::tls::Tls>,
    /// Largest chunk taken from a peer (its header is not trusted further).
    max_chunk_bytes: AtomicU64,
    /// Chunks fetched, and their bytes.
    pub fetched: Arc<crate::metrics::Tally>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("stall", &self.stall())
            .finish_non_exhaustive()
    }
}

impl Default for Peers {
    fn default() -> Peers {
        Peers::new(DEFAULT_STALL)
    }
}

impl Peers {
    pub fn new(stall: Duration) -> Peers {
        Peers {
            idle: Mutex::default(),
            stall_ms: AtomicU64::new(stall.as_millis().max(1) as u64),
            tls: None,
            max_chunk_bytes: AtomicU64::new(default_max_chunk()),
            fetched: Arc::default(),
        }
    }

    /// Refuses chunks larger than `bytes` (a worker's memory limit).
    pub fn set_max_chunk_bytes(&self, bytes: u64) {
        self.max_chunk_bytes.store(bytes.max(1), Ordering::Relaxed);
    }

    /// Connects to peers over TLS.
    pub fn with_tls(mut self, tls: Option<accel_proto::tls::Tls>) -> Peers {
        self.tls = tls;
        self
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
        self.pool().clear();
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Conn>>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle connection to `address` (unless `fresh`), or a new one; and
    /// whether it was an idle one.
    async fn connect(&self, address: &str, fresh: bool) -> Result<(Conn, bool), String> {
        if !fresh && let Some(c) = self.pool().get_mut(address).and_then(Vec::pop) {
            return Ok((c, true));
        }
        let tcp = TcpStream::connect(address)
            .await
            .map_err(|e| format!("cannot reach peer {address}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut c = match &self.tls {
            Some(tls) => {
                let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
                let name = tls.name_for(host)?;
                let s = tls
                    .connector()
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS with peer {address}: {e}"))?;
                DataStream::Tls(Box::new(s))
            }
            None => DataStream::Plain(tcp),
        };
        c.write_all(MAGIC)
            .await
            .map_err(|e| format!("cannot reach peer {address}: {e}"))?;
        Ok((BufReader::with_capacity(READ_BUFFER, c), false))
    }

    /// Fetches one chunk from the worker at `address`, or only the box
    /// `region` of it (a stencil's halo strip), presenting `credential`.
    pub async fn fetch(
        &self,
        address: &str,
        job: u64,
        key: ChunkKey,
        region: Option<Region>,
        credential: &[u8],
    ) -> Result<Arc<Chunk>, String> {
        let mut sink = ChunkSink::new(self.max_chunk_bytes.load(Ordering::Relaxed));
        self.stream(address, job, key, region, credential, |f| sink.take(f))
            .await?;
        sink.finish().map(Arc::new)
    }

    /// Streams one chunk (or a box of it) from the worker at `address`,
    /// handing every piece to `on_frame` as it arrives. A peer silent for the
    /// stall timeout, or a stream that ends short, is an error.
    pub async fn stream(
        &self,
        address: &str,
        job: u64,
        key: ChunkKey,
        region: Option<Region>,
        credential: &[u8],
        mut on_frame: impl FnMut(Frame<'_>) -> Result<(), String>,
    ) -> Result<(), FetchError> {
        let stall = self.stall();
        let mut fresh = false;
        loop {
            let conn = tokio::time::timeout(stall, self.connect(address, fresh))
                .await
                .unwrap_or_else(|_| Err(format!("peer {address} did not answer")));
            let (mut c, idle) = match conn {
                Ok(c) => c,
                Err(message) => {
                    // The peer may be gone: the next fetch connects afresh.
                    self.pool().remove(address);
                    return Err(FetchError {
                        message,
                        answered: false,
                    });
                }
            };
            let request = Request {
                job,
                key,
                region: region.clone(),
                credential,
            };
            let mut bytes = 0u64;
            let mut replied = false;
            let r = exchange(&mut c, request, stall, &mut replied, |f| {
                if let Frame::Data { bytes: b, .. } = &f {
                    bytes += b.len() as u64;
                }
                on_frame(f)
            })
            .await;
            match r {
                Ok(()) => {
                    self.fetched.add(bytes);
                    let mut pool = self.pool();
                    let kept = pool.entry(address.to_string()).or_default();
                    if kept.len() < POOL {
                        kept.push(c);
                    }
                    return Ok(());
                }
                // An idle connection the peer let go meanwhile (it closes
                // those quiet for minutes): once more, on a new one.
                Err(_) if idle && !replied => {
                    self.pool().remove(address);
                    fresh = true;
                }
                Err(message) => {
                    self.pool().remove(address);
                    return Err(FetchError {
                        message,
                        answered: replied,
                    });
                }
            }
        }
    }
}

/// What one fetch asks for.
struct Request<'a> {
    job: u64,
    key: ChunkKey,
    region: Option<Region>,
    credential: &'a [u8],
}

/// By default no chunk may be larger than this machine's memory.
fn default_max_chunk() -> u64 {
    accel_core::memory::total_memory().unwrap_or(u64::MAX / 2)
}

/// One request and its reply on a connection.
async fn exchange(
    conn: &mut Conn,
    Request {
        job,
        key,
        region,
        credential,
    }: Request<'_>,
    stall: Duration,
    replied: &mut bool,
    mut on_frame: impl FnMut(Frame<'_>) -> Result<(), String>,
) -> Result<(), String> {
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
        credential: credential.to_vec(),
    };
    write_msg(conn, &req).await.map_err(|e| e.to_string())?;
    conn.flush().await.map_err(|e| e.to_string())?;
    let reply: pb::DataReply = tokio::time::timeout(stall, read_msg(conn))
        .await
        .map_err(|_| stalled())??
        .ok_or("the peer closed the connection")?;
    *replied = true;
    let header = match reply.reply {
        Some(pb::data_reply::Reply::Header(h)) => h,
        Some(pb::data_reply::Reply::Error(e)) => return Err(e),
        None => return Err("an empty reply".into()),
    };
    on_frame(Frame::Header(&header))?;
    let ends = column_ends(&header)?;
    let mut buf = vec![0u8; FRAME.min(ends.last().copied().unwrap_or(0))];
    let mut offset = 0;
    for end in ends {
        while offset < end {
            // FRAME is a multiple of every element size, and so is every
            // column: each piece holds whole elements.
            let n = FRAME.min(end - offset);
            tokio::time::timeout(stall, conn.read_exact(&mut buf[..n]))
                .await
                .map_err(|_| stalled())?
                .map_err(|e| format!("the chunk stream broke after {offset} bytes: {e}"))?;
            on_frame(Frame::Data {
                offset,
                bytes: &buf[..n],
            })?;
            offset += n;
        }
    }
    Ok(())
}

/// Where each column of a chunk ends, in bytes; checks the stated total.
fn column_ends(h: &pb::ChunkHeader) -> Result<Vec<usize>, String> {
    let n = h
        .shape
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(usize::try_from(b).ok()?))
        .ok_or("chunk too large")?;
    let mut ends = Vec::with_capacity(h.cols.len());
    let mut at = 0usize;
    for &d in &h.cols {
        let size = dtype_from(d).map_err(|e| e.to_string())?.size();
        at = n
            .checked_mul(size)
            .and_then(|b| at.checked_add(b))
            .ok_or("chunk too large")?;
        ends.push(at);
    }
    if at as u64 != h.total_bytes {
        return Err("chunk header does not match its size".into());
    }
    Ok(ends)
}
