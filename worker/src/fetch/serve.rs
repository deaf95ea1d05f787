//! Serving chunks (or a box of one) on the data plane: the header, then the
//! chunk's own memory written to the socket, no copy on the way.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use accel_core::op::HostArray;
use accel_core::{Chunk, ChunkKey};
use accel_proto::convert::{dtype_to, task_from};
use accel_proto::pb;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::net::{TcpListener, TcpStream};

use super::Region;
use super::wire::{MAGIC, error_reply, read_msg, write_msg};
use crate::store::Store;

/// How long a connection may sit idle between requests.
const IDLE: Duration = Duration::from_secs(300);
/// How long a new connection may take to greet.
const GREETING: Duration = Duration::from_secs(10);
/// Buffers per connection: a request arrives in one read, and a small
/// chunk's reply (header and every column) leaves in one write. Larger
/// columns bypass the buffer and go straight from the chunk's memory.
const BUFFER: usize = 32 << 10;

/// What a request is answered with.
pub enum Piece {
    /// A chunk (or a cropped copy of a box of one).
    Chunk(Arc<Chunk>),
    /// A box of a row-major host array (`lo`, `shape`), sent row by row
    /// straight from the array's memory.
    Box {
        host: Arc<HostArray>,
        lo: Vec<usize>,
        shape: Vec<usize>,
    },
}

/// Whatever a data plane serves chunks from: a worker's store, or the
/// client's own arrays.
pub trait ChunkSource: Send + Sync + 'static {
    /// Chunk `key` of `job`, or only its box `region` (lo, hi), for a
    /// requester presenting `credential`.
    fn piece(
        &self,
        job: u64,
        key: ChunkKey,
        region: Option<Region>,
        credential: &[u8],
    ) -> Result<Piece, String>;

    /// Whether [`ChunkSource::piece`] may block (read a disk, wait for a
    /// GPU, crop a large chunk) for this chunk: then it runs in a blocking
    /// section.
    fn may_block(&self, _job: u64, _key: ChunkKey) -> bool {
        true
    }
}

/// A worker's chunks, served to peers holding the data key and to clients
/// holding their job's key.
pub struct StoreChunks {
    pub store: Arc<Store>,
    pub key: Arc<super::DataKey>,
}

impl ChunkSource for StoreChunks {
    fn piece(
        &self,
        job: u64,
        key: ChunkKey,
        region: Option<Region>,
        credential: &[u8],
    ) -> Result<Piece, String> {
        if !self.key.allows(job, credential) {
            return Err(format!(
                "permission denied: this credential cannot read chunks of job {job}"
            ));
        }
        self.store.chunk(job, key, region).map(Piece::Chunk)
    }

    fn may_block(&self, job: u64, key: ChunkKey) -> bool {
        !self.store.small_on_host(job, key)
    }
}

impl Store {
    fn chunk(&self, job: u64, key: ChunkKey, region: Option<Region>) -> Result<Arc<Chunk>, String> {
        let chunk = self.get(job, key).ok_or_else(|| {
            format!(
                "chunk {} of stage {} of job {job} is not here",
                key.chunk, key.stage.0
            )
        })?;
        // A chunk left on a GPU comes back first; one the GPU cannot give
        // back is lost (the requester reports it missing: it is recomputed).
        if let Err(e) = chunk.cols() {
            self.remove_if_same(job, key, &chunk);
            return Err(format!(
                "chunk {} of stage {} of job {job} is lost: {e}",
                key.chunk, key.stage.0
            ));
        }
        match region {
            Some((lo, hi)) if !(lo.iter().all(|&x| x == 0) && hi == chunk.shape) => {
                accel_core::stencil::crop(&chunk, &lo, &hi)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            }
            _ => Ok(chunk),
        }
    }
}

#[derive(Clone)]
pub struct Service {
    pub source: Arc<dyn ChunkSource>,
    /// Chunk transfers in progress (a retiring worker waits for them).
    pub serving: Arc<AtomicUsize>,
    /// TLS for every connection (mutual when configured with a CA).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Chunks served, and their bytes.
    pub served: Arc<crate::metrics::Tally>,
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

fn dims(v: &[u64]) -> Vec<usize> {
    v.iter()
        .map(|&x| usize::try_from(x).unwrap_or(usize::MAX))
        .collect()
}

impl Service {
    /// Serves connections from `listener` until `shutdown` resolves.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let service = self.clone();
                        tokio::spawn(async move {
                            if let Err(e) = service.connection(stream).await {
                                tracing::debug!(%peer, "data connection closed: {e}");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!("accepting a data connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = &mut shutdown => return,
            }
        }
    }

    async fn connection(&self, stream: TcpStream) -> Result<(), String> {
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        match &self.tls {
            Some(acceptor) => {
                let stream = tokio::time::timeout(GREETING, acceptor.accept(stream))
                    .await
                    .map_err(|_| "stalled in the TLS handshake".to_string())?
                    .map_err(|e| format!("TLS handshake: {e}"))?;
                self.requests(stream).await
            }
            None => self.requests(stream).await,
        }
    }

    /// Serves one connection that is already open (a test's in-memory pipe).
    pub async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
    ) -> Result<(), String> {
        self.requests(stream).await
    }

    /// The greeting, then requests answered until the peer goes quiet.
    async fn requests<S: AsyncRead + AsyncWrite + Unpin>(&self, stream: S) -> Result<(), String> {
        let mut stream = BufStream::with_capacity(BUFFER, BUFFER, stream);
        let mut magic = [0u8; 8];
        tokio::time::timeout(GREETING, stream.read_exact(&mut magic))
            .await
            .map_err(|_| "no greeting".to_string())?
            .map_err(|e| e.to_string())?;
        if &magic != MAGIC {
            let why = "not an accel data-plane connection, or another wire version".to_string();
            let _ = write_msg(&mut stream, &error_reply(why.clone())).await;
            let _ = stream.flush().await;
            return Err(why);
        }
        loop {
            let req = match tokio::time::timeout(IDLE, read_msg::<pb::FetchRequest, _>(&mut stream))
                .await
            {
                Err(_) | Ok(Ok(None)) => return Ok(()),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(Some(r))) => r,
            };
            // A transfer counts until its last byte left the buffer (a
            // retiring worker waits for it).
            let mut serving = None;
            // A spilled chunk is read back from disk (a GPU's copied back,
            // a large one cropped) off the async threads; a small one in host
            // memory is served at once (one spilled since this check is read
            // back here: right, if slower).
            let found = if self.may_block(&req) {
                crate::blocking(|| self.find(&req))
            } else {
                self.find(&req)
            };
            match found {
                Ok(piece) => {
                    serving = Some(Serving::new(&self.serving));
                    let bytes = match &piece {
                        Piece::Chunk(c) => c.nbytes() as u64,
                        Piece::Box { host, shape, .. } => {
                            (accel_core::shape::size(shape) * host.data.dtype().size()) as u64
                        }
                    };
                    self.served.add(bytes);
                    match piece {
                        Piece::Chunk(chunk) => send_chunk(&mut stream, &chunk).await,
                        Piece::Box { host, lo, shape } => {
                            send_box(&mut stream, &host, &lo, &shape).await
                        }
                    }
                    .map_err(|e| e.to_string())?;
                }
                Err(why) => write_msg(&mut stream, &error_reply(why))
                    .await
                    .map_err(|e| e.to_string())?,
            }
            // The buffer (and TLS) holds back what it has not sent yet.
            stream.flush().await.map_err(|e| e.to_string())?;
            drop(serving);
        }
    }

    /// Whether finding the request's chunk may block (a malformed request
    /// fails at once).
    fn may_block(&self, req: &pb::FetchRequest) -> bool {
        match task_from(req.chunk.as_ref()) {
            Ok((job, key)) => self.source.may_block(job, key),
            Err(_) => false,
        }
    }

    /// The chunk a request asks for, cropped to its region.
    fn find(&self, req: &pb::FetchRequest) -> Result<Piece, String> {
        let theirs = req.hello.as_ref().map_or(0, |h| h.protocol_version);
        accel_proto::check_version(theirs).map_err(|e| e.to_string())?;
        let (job, key) = task_from(req.chunk.as_ref()).map_err(|e| e.to_string())?;
        let region = (!req.region_lo.is_empty() || !req.region_hi.is_empty())
            .then(|| (dims(&req.region_lo), dims(&req.region_hi)));
        self.source.piece(job, key, region, &req.credential)
    }
}

/// Rows shorter than this are gathered into one write.
const BATCH: usize = 256 << 10;

/// The header of a box of a host array, then its rows straight from the
/// array's memory (short rows batched into one write).
async fn send_box<S: AsyncWrite + Unpin>(
    stream: &mut S,
    host: &HostArray,
    lo: &[usize],
    shape: &[usize],
) -> std::io::Result<()> {
    let dtype = host.data.dtype();
    let size = dtype.size();
    let n = accel_core::shape::size(shape);
    let header = pb::ChunkHeader {
        shape: shape.iter().map(|&x| x as u64).collect(),
        cols: vec![dtype_to(dtype) as i32],
        total_bytes: (n * size) as u64,
    };
    let reply = pb::DataReply {
        reply: Some(pb::data_reply::Reply::Header(header)),
    };
    write_msg(stream, &reply).await?;
    if n == 0 {
        return Ok(());
    }
    let bytes = host.data.le_bytes();
    let nd = shape.len();
    let strides = accel_core::shape::strides(&host.shape);
    let row = if nd == 0 { 1 } else { shape[nd - 1] };
    let mut idx = vec![0usize; nd.saturating_sub(1)];
    let mut batch: Vec<u8> = Vec::new();
    for _ in 0..n / row {
        let at: usize = (0..nd)
            .map(|d| (lo[d] + if d + 1 < nd { idx[d] } else { 0 }) * strides[d])
            .sum();
        let run = &bytes[at * size..(at + row) * size];
        if run.len() >= BATCH {
            stream.write_all(run).await?;
        } else {
            batch.extend_from_slice(run);
            if batch.len() >= BATCH {
                stream.write_all(&batch).await?;
                batch.clear();
            }
        }
        accel_core::shape::next_index(&mut idx, &shape[..nd.saturating_sub(1)]);
    }
    stream.write_all(&batch).await
}

/// The header, then every column's bytes straight from memory.
async fn send_chunk<S: AsyncWrite + Unpin>(stream: &mut S, chunk: &Chunk) -> std::io::Result<()> {
    // A chunk only on the GPU is read back first.
    let cols = chunk.cols().map_err(std::io::Error::other)?;
    let header = pb::ChunkHeader {
        shape: chunk.shape.iter().map(|&x| x as u64).collect(),
        cols: cols.iter().map(|b| dtype_to(b.dtype()) as i32).collect(),
        total_bytes: chunk.nbytes() as u64,
    };
    let reply = pb::DataReply {
        reply: Some(pb::data_reply::Reply::Header(header)),
    };
    write_msg(stream, &reply).await?;
    for col in cols {
        stream.write_all(&col.le_bytes()).await?;
    }
    Ok(())
}
