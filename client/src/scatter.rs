//! Large user arrays stay with the client: instead of travelling inside the
//! plan, they are served on the client's own data plane, and each source task
//! fetches just its box (again, if a worker holding it dies), sent row by
//! row straight from the array's memory: the client holds nothing more.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use accel_core::ChunkKey;
use accel_core::op::HostArray;
use accel_core::plan::{Plan, RemoteSource, StageKind};
use accel_proto::auth::Secret;
use accel_worker::fetch::{ChunkSource, Piece, Region, Service};

use crate::error::{Error, Result};

/// Sources larger than this are served, not sent.
pub const SCATTER_BYTES: usize = 1 << 20;

/// The arrays being served, by id, with the credential each asks for.
#[derive(Default)]
struct Arrays(Mutex<HashMap<u64, (Arc<HostArray>, Secret)>>);

impl Arrays {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (Arc<HostArray>, Secret)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ChunkSource for Arrays {
    fn piece(
        &self,
        id: u64,
        _key: ChunkKey,
        region: Option<Region>,
        credential: &[u8],
    ) -> std::result::Result<Piece, String> {
        let (h, key) = self
            .lock()
            .get(&id)
            .cloned()
            .ok_or_else(|| format!("array {id} is not served (its job ended)"))?;
        if !key.matches(credential) {
            return Err(format!(
                "permission denied: this credential cannot read array {id}"
            ));
        }
        let (lo, hi) = region.unwrap_or_else(|| (vec![0; h.shape.len()], h.shape.clone()));
        let fits = lo.len() == h.shape.len()
            && hi.len() == h.shape.len()
            && lo
                .iter()
                .zip(&hi)
                .zip(&h.shape)
                .all(|((l, e), s)| l <= e && e <= s);
        if !fits {
            return Err(format!(
                "box {lo:?}..{hi:?} is outside the array's shape {:?}",
                h.shape
            ));
        }
        let shape: Vec<usize> = lo.iter().zip(&hi).map(|(l, e)| e - l).collect();
        Ok(Piece::Box { host: h, lo, shape })
    }

    /// A box of an array in the client's memory: a lock and a check.
    fn may_block(&self, _id: u64, _key: ChunkKey) -> bool {
        false
    }
}

/// The client's data plane.
pub struct HostServer {
    address: String,
    arrays: Arc<Arrays>,
    next: AtomicU64,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl std::fmt::Debug for HostServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostServer")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl HostServer {
    /// Listens on the interface that reaches the scheduler at `scheduler`.
    pub fn start(
        runtime: &tokio::runtime::Runtime,
        scheduler: &str,
        tls: Option<&accel_proto::tls::Tls>,
    ) -> Result<HostServer> {
        let acceptor = match tls {
            Some(t) => Some(t.acceptor().ok_or_else(|| {
                Error::Invalid(
                    "serving a large source over TLS needs this client's certificate \
                     (ACCEL_TLS_CERT, ACCEL_TLS_KEY)"
                        .into(),
                )
            })?),
            None => None,
        };
        let ip = accel_worker::facing_ip(scheduler).unwrap_or([127, 0, 0, 1].into());
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind((ip, 0)))
            .and_then(|l| Ok((l.local_addr()?, l)))
            .map_err(|e| Error::Invalid(format!("cannot serve large inputs on {ip}: {e}")))?;
        let (address, listener) = listener;
        let arrays = Arc::new(Arrays::default());
        let service = Service {
            source: arrays.clone(),
            serving: Arc::new(AtomicUsize::new(0)),
            tls: acceptor,
            served: Default::default(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(service.serve(listener, async {
            let _ = stopped.await;
        }));
        Ok(HostServer {
            address: address.to_string(),
            arrays,
            next: AtomicU64::new(1),
            _stop: stop,
        })
    }

    /// `plan` with every large source replaced by a remote source served
    /// here, and a guard that stops serving them when dropped.
    pub fn scatter(&self, plan: &Plan) -> Result<(Plan, Served<'_>)> {
        let mut plan = plan.clone();
        let mut ids = Vec::new();
        for st in &mut plan.stages {
            let StageKind::Source(h) = &st.kind else {
                continue;
            };
            if h.data.nbytes() <= SCATTER_BYTES {
                continue;
            }
            let id = self.next.fetch_add(1, Ordering::Relaxed);
            let key = Secret::random().map_err(Error::Invalid)?;
            let credential = key.bytes().to_vec();
            self.arrays.lock().insert(id, (h.clone(), key));
            ids.push(id);
            st.kind = StageKind::Remote(Arc::new(RemoteSource {
                address: self.address.clone(),
                id,
                shape: h.shape.clone(),
                dtype: h.data.dtype(),
                credential,
            }));
        }
        Ok((plan, Served { server: self, ids }))
    }
}

/// Arrays served for one job; no longer served once dropped.
pub struct Served<'a> {
    server: &'a HostServer,
    ids: Vec<u64>,
}

impl Drop for Served<'_> {
    fn drop(&mut self) {
        let mut arrays = self.server.arrays.lock();
        for id in &self.ids {
            arrays.remove(id);
        }
    }
}
