//! Running plans on a cluster: submit the plan to the scheduler, wait for the
//! job, fetch the result chunks straight from the workers holding them.

use std::time::{Duration, Instant};

use accel_core::plan::{ChunkKey, Plan};
use accel_core::{Buffer, shape};
use accel_proto::convert::{plan_to, task_from};
use accel_proto::pb::scheduler_client::SchedulerClient;
use accel_proto::pb::{self, job_update};
use accel_proto::{MAX_MESSAGE_BYTES, PROTOCOL_VERSION};
use accel_worker::fetch::Peers;
use futures::{StreamExt, TryStreamExt};
use tonic::transport::Channel;

use crate::embedded::RunStats;
use crate::error::{Error, Result};

/// Result chunks fetched at once.
const PARALLEL_FETCHES: usize = 8;

#[derive(Debug)]
pub struct Remote {
    address: String,
    runtime: tokio::runtime::Runtime,
    scheduler: SchedulerClient<Channel>,
}

impl Remote {
    pub fn connect(url: &str) -> Result<Remote> {
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
            .tcp_nodelay(true);
        let channel = runtime
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(5), endpoint.connect()).await
            })
            .map_err(|_| unreachable("timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let scheduler = SchedulerClient::new(channel)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        Ok(Remote {
            address: url.to_string(),
            runtime,
            scheduler,
        })
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

    /// Runs `plan` on the cluster; returns one row-major buffer per output.
    pub fn run(&self, plan: &Plan) -> Result<(Vec<Buffer>, RunStats)> {
        let start = Instant::now();
        let mut scheduler = self.scheduler.clone();
        self.runtime.block_on(async move {
            let req = pb::SubmitRequest {
                hello: Some(pb::Hello {
                    protocol_version: PROTOCOL_VERSION,
                    peer: "client".into(),
                }),
                plan: Some(plan_to(plan)),
            };
            let size = prost::Message::encoded_len(&req);
            if size > MAX_MESSAGE_BYTES {
                return Err(Error::Invalid(format!(
                    "the plan is {} MiB (its source arrays travel with it); the limit is {} MiB: \
                     create large inputs on the cluster (arange, random, …) or split them",
                    size >> 20,
                    MAX_MESSAGE_BYTES >> 20
                )));
            }
            let mut updates = scheduler
                .submit(req)
                .await
                .map_err(|s| self.remote(s.message().to_string()))?
                .into_inner();
            let (job, done) = loop {
                let update = updates
                    .message()
                    .await
                    .map_err(|s| self.remote(s.message().to_string()))?
                    .ok_or_else(|| self.remote("the scheduler closed the job's stream"))?;
                match update.event {
                    Some(job_update::Event::Done(done)) => break (update.job, done),
                    Some(job_update::Event::Failed(error)) => {
                        return Err(self.remote(format!("job {} failed: {error}", update.job)));
                    }
                    _ => {}
                }
            };
            let outputs = self.fetch_outputs(plan, done).await;
            let _ = scheduler.release(pb::ReleaseRequest { job }).await;
            let stats = RunStats {
                tasks: plan.task_count(),
                peak_bytes: 0,
                elapsed: start.elapsed(),
            };
            Ok((outputs?, stats))
        })
    }

    async fn fetch_outputs(&self, plan: &Plan, done: pb::JobDone) -> Result<Vec<Buffer>> {
        if done.outputs.len() != plan.outputs.len() {
            return Err(self.remote("the job reported the wrong number of outputs"));
        }
        let peers = Peers::default();
        let mut results = Vec::with_capacity(plan.outputs.len());
        for (stage, chunks) in plan.outputs.iter().zip(done.outputs) {
            let meta = &plan.stage(*stage).meta;
            let mut buf = Buffer::zeros(meta.dtype, shape::size(&meta.shape));
            let peers = &peers;
            let fetched = futures::stream::iter(chunks.chunks)
                .map(|loc| async move {
                    let (job, key) =
                        task_from(loc.task.as_ref()).map_err(|e| self.remote(e.to_string()))?;
                    let chunk = peers
                        .fetch(&loc.address, job, key, None)
                        .await
                        .map_err(|e| {
                            self.remote(format!(
                                "fetching chunk {} from worker {}: {e}",
                                key.chunk, loc.worker
                            ))
                        })?;
                    Ok::<(ChunkKey, _), Error>((key, chunk))
                })
                .buffer_unordered(PARALLEL_FETCHES);
            let mut fetched = std::pin::pin!(fetched);
            let mut count = 0;
            while let Some((key, chunk)) = fetched.try_next().await? {
                if key.stage != *stage || key.chunk as usize >= meta.chunks.count() {
                    return Err(
                        self.remote("the job reported a chunk that is not one of its outputs")
                    );
                }
                if chunk.shape != plan.chunk_shape(key)
                    || chunk.cols.len() != 1
                    || chunk.data().dtype() != meta.dtype
                {
                    return Err(self.remote(format!(
                        "result chunk {} arrived with the wrong shape or dtype",
                        key.chunk
                    )));
                }
                crate::client::paste(&mut buf, &meta.shape, &plan.chunk_origin(key), &chunk)?;
                count += 1;
            }
            if count != meta.chunks.count() {
                return Err(self.remote(format!(
                    "{count} of {} result chunks arrived",
                    meta.chunks.count()
                )));
            }
            results.push(buf);
        }
        Ok(results)
    }
}
