//! Running plans on a cluster: submit the plan to the scheduler, wait for the
//! job, fetch the result chunks straight from the workers holding them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use accel_core::Buffer;
use std::sync::{Arc, PoisonError};

use accel_core::plan::{Plan, StageKind};
use accel_proto::auth::Bearer;
use accel_proto::convert::plan_to;
use accel_proto::pb;
use accel_proto::pb::job_control_client::JobControlClient;
use accel_proto::pb::jobs_client::JobsClient;
use accel_proto::{MAX_MESSAGE_BYTES, PROTOCOL_VERSION};
use accel_worker::fetch::Peers;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::embedded::RunStats;
use crate::error::{Error, Result};
use crate::gather::{GatherError, gather};
use crate::scatter::{HostServer, SCATTER_BYTES};
use crate::security::Security;

type Authed = InterceptedService<Channel, Bearer>;

/// The scheduler's gRPC clients, presenting the client's token with every call.
#[derive(Clone, Debug)]
pub struct Scheduler {
    pub jobs: JobsClient<Authed>,
    pub control: JobControlClient<Authed>,
}

#[derive(Debug)]
pub struct Remote {
    address: String,
    runtime: tokio::runtime::Runtime,
    scheduler: Scheduler,
    /// Connections to the workers' data planes, kept between jobs.
    peers: Peers,
    /// Serves large user arrays to the workers; started on first need.
    host: std::sync::Mutex<Option<Arc<HostServer>>>,
    /// TLS for every connection (the cluster's scheduler is `https://`).
    tls: Option<accel_proto::tls::Tls>,
    /// The keys of the jobs this client persisted and still keeps: a plan
    /// that reads their arrays presents them.
    persisted: std::sync::Mutex<HashMap<u64, Vec<u8>>>,
}

impl Remote {
    pub fn connect(url: &str, security: &Security) -> Result<Remote> {
        let unreachable = |message: String| Error::Unreachable {
            address: url.to_string(),
            message,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| unreachable(e.to_string()))?;
        let endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
            .map_err(|e| unreachable(format!("not a valid address ({e})")))?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            // A scheduler whose host vanished is noticed within seconds.
            .http2_keep_alive_interval(Duration::from_secs(2))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        let tls = accel_worker::tls_for(url, security.tls.clone()).map_err(Error::Invalid)?;
        let endpoint = match &tls {
            Some(t) => {
                let host = endpoint.uri().host().unwrap_or("").to_string();
                let c = t.tonic_client(&host).map_err(Error::Invalid)?;
                endpoint
                    .tls_config(c)
                    .map_err(|e| Error::Invalid(format!("TLS: {e}")))?
            }
            None => endpoint,
        };
        let channel = runtime
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(5), endpoint.connect()).await
            })
            .map_err(|_| unreachable("timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let bearer = Bearer(security.token.clone());
        let scheduler = Scheduler {
            jobs: JobsClient::with_interceptor(channel.clone(), bearer.clone())
                .max_encoding_message_size(MAX_MESSAGE_BYTES)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            control: JobControlClient::with_interceptor(channel, bearer),
        };
        Ok(Remote {
            address: url.to_string(),
            runtime,
            scheduler,
            peers: Peers::default().with_tls(tls.clone()),
            host: Default::default(),
            persisted: Default::default(),
            tls,
        })
    }

    /// The client's data plane, started on first use.
    fn host(&self) -> Result<Arc<HostServer>> {
        let mut host = self.host.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = host.as_ref() {
            return Ok(h.clone());
        }
        let h = Arc::new(HostServer::start(
            &self.runtime,
            &self.address,
            self.tls.as_ref(),
        )?);
        *host = Some(h.clone());
        Ok(h)
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    fn remote(&self, message: impl Into<String>) -> Error {
        Error::Remote {
            address: self.address.clone(),
            message: message.into(),
        }
    }

    /// A refused call: credentials and permissions are told apart from other
    /// failures, since retrying cannot fix them.
    fn refused(&self, s: tonic::Status) -> Error {
        let address = self.address.clone();
        let mut message = s.message().to_string();
        let mut source = std::error::Error::source(&s);
        let mut last = message.clone();
        while let Some(e) = source {
            let text = e.to_string();
            if text != last {
                message = format!("{message}: {text}");
            }
            last = text;
            source = e.source();
        }
        if matches!(
            s.code(),
            tonic::Code::Unavailable
                | tonic::Code::Unknown
                | tonic::Code::Cancelled
                | tonic::Code::Internal
        ) {
            message.push_str(if self.tls.is_some() {
                " (if the TLS handshake failed: is this client's certificate signed by the \
                 cluster's CA, and the scheduler's by the CA given here?)"
            } else {
                " (if the scheduler uses TLS: connect with https:// and give its CA)"
            });
        }
        match s.code() {
            tonic::Code::Unauthenticated => Error::Unauthenticated { address, message },
            tonic::Code::PermissionDenied => Error::PermissionDenied { address, message },
            _ => Error::Remote { address, message },
        }
    }

    /// Runs `plan` on the cluster; returns one row-major buffer per output.
    /// Result chunks that cannot be fetched (their worker died after the job
    /// finished) are reported to the scheduler, which recomputes them.
    pub fn run(
        &self,
        plan: &Plan,
        progress: &crate::progress::Progress,
    ) -> Result<(Vec<Buffer>, RunStats)> {
        let start = Instant::now();
        let mut scheduler = self.scheduler.clone();
        // Arrays an embedded client persisted travel like user data.
        let plan = &*plan.held_as_sources()?;
        let large = plan
            .stages
            .iter()
            .any(|s| matches!(&s.kind, StageKind::Source(h) if h.data.nbytes() > SCATTER_BYTES));
        let host = if large { Some(self.host()?) } else { None };
        // Large sources stay here, served to the tasks that read them, until the job ends.
        let (sent, _served) = match &host {
            Some(h) => {
                let (p, served) = h.scatter(plan)?;
                (std::borrow::Cow::Owned(p), Some(served))
            }
            None => (std::borrow::Cow::Borrowed(plan), None),
        };
        let result = self.runtime.block_on(async move {
            let req = pb::SubmitRequest {
                hello: Some(pb::Hello {
                    protocol_version: PROTOCOL_VERSION,
                    peer: "client".into(),
                }),
                plan: Some(plan_to(&sent)),
                persisted_keys: self.persisted_keys(&sent),
            };
            let size = prost::Message::encoded_len(&req);
            if size > MAX_MESSAGE_BYTES {
                return Err(Error::Invalid(format!(
                    "the plan is {} MiB; the limit is {} MiB",
                    size >> 20,
                    MAX_MESSAGE_BYTES >> 20
                )));
            }
            let mut updates = scheduler
                .jobs
                .submit(req)
                .await
                .map_err(|s| self.refused(s))?
                .into_inner();
            let got = gather(plan, &self.peers, &mut updates, &mut scheduler, progress)
                .await
                .map_err(|e| match e {
                    GatherError::Lost(why) => self.lost(&why),
                    GatherError::Failed(why) => self.remote(why),
                })?;
            let release = pb::ReleaseRequest {
                job: got.job,
                job_key: got.job_key,
            };
            let _ = scheduler.control.release(release).await;
            let stats = RunStats {
                tasks: plan.task_count(),
                peak_bytes: 0,
                elapsed: start.elapsed(),
                recomputed: got.recomputed,
            };
            Ok((got.buffers, stats))
        });
        if large {
            // Serving boxes of large arrays churned through the allocator.
            drop(_served);
            accel_core::memory::release_free_memory();
        }
        result
    }

    /// Runs `plan` (one output) and keeps its chunks on the workers: returns
    /// the job that keeps them, and what keeps the job alive.
    pub fn persist(self: &Arc<Self>, plan: &Plan) -> Result<(u64, Arc<KeepJob>)> {
        let mut scheduler = self.scheduler.clone();
        let plan = &*plan.held_as_sources()?;
        if plan
            .stages
            .iter()
            .any(|s| matches!(&s.kind, StageKind::Source(h) if h.data.nbytes() > SCATTER_BYTES))
        {
            return Err(Error::Invalid(
                "persist computes on the cluster: large source arrays must be stored where the \
                 workers can read them (to_zarr/to_npy), not served by this client"
                    .into(),
            ));
        }
        self.runtime.block_on(async move {
            let req = pb::SubmitRequest {
                hello: Some(pb::Hello {
                    protocol_version: PROTOCOL_VERSION,
                    peer: "client".into(),
                }),
                plan: Some(plan_to(plan)),
                persisted_keys: self.persisted_keys(plan),
            };
            let mut updates = scheduler
                .jobs
                .submit(req)
                .await
                .map_err(|s| self.refused(s))?
                .into_inner();
            let mut job_key = Vec::new();
            loop {
                let update = updates
                    .message()
                    .await
                    .map_err(|s| self.lost(s.message()))?
                    .ok_or_else(|| self.lost("it closed the job's stream"))?;
                if !update.job_key.is_empty() {
                    job_key = update.job_key;
                }
                match update.event {
                    Some(pb::job_update::Event::Done(_)) => {
                        self.persisted_lock().insert(update.job, job_key.clone());
                        let keep = KeepJob {
                            remote: self.clone(),
                            job: update.job,
                            job_key: std::mem::take(&mut job_key),
                            _updates: std::sync::Mutex::new(updates),
                        };
                        return Ok((update.job, Arc::new(keep)));
                    }
                    Some(pb::job_update::Event::Failed(e)) => {
                        return Err(self.remote(format!("job {} failed: {e}", update.job)));
                    }
                    _ => {}
                }
            }
        })
    }

    fn persisted_lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Vec<u8>>> {
        self.persisted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The keys of the persisted jobs `plan` reads that this client keeps
    /// (the scheduler refuses a plan without them).
    fn persisted_keys(&self, plan: &Plan) -> Vec<pb::PersistedKey> {
        let kept = self.persisted_lock();
        let mut keys: Vec<pb::PersistedKey> = plan
            .stages
            .iter()
            .filter_map(|s| match s.kind {
                StageKind::Persisted { job, .. } => Some(pb::PersistedKey {
                    job,
                    key: kept.get(&job)?.clone(),
                }),
                _ => None,
            })
            .collect();
        keys.sort_by_key(|k| k.job);
        keys.dedup_by_key(|k| k.job);
        keys
    }

    fn lost(&self, why: &str) -> Error {
        self.remote(format!(
            "lost the connection to the scheduler while the job was running ({why})"
        ))
    }
}

/// Keeps a persisted job on the cluster: its update stream stays open, and
/// when the last handle goes, the scheduler is told to release it (a client
/// that disconnects releases it too).
pub struct KeepJob {
    remote: Arc<Remote>,
    job: u64,
    job_key: Vec<u8>,
    _updates: std::sync::Mutex<tonic::Streaming<pb::JobUpdate>>,
}

impl Drop for KeepJob {
    fn drop(&mut self) {
        self.remote.persisted_lock().remove(&self.job);
        let mut scheduler = self.remote.scheduler.clone();
        let release = pb::ReleaseRequest {
            job: self.job,
            job_key: std::mem::take(&mut self.job_key),
        };
        self.remote.runtime.spawn(async move {
            let _ = scheduler.control.release(release).await;
        });
    }
}
