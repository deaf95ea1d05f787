//! Running plans on a cluster: submit the plan to the scheduler, wait for the
//! job, fetch the result chunks straight from the workers holding them.

use std::time::{Duration, Instant};

use accel_core::plan::{ChunkKey, Plan};
use accel_core::{Buffer, Chunk, shape};
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

/// Times lost result chunks are reported before the client gives up.
const MAX_ROUNDS: usize = 20;

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
            .tcp_nodelay(true)
            // A scheduler whose host vanished is noticed within seconds.
            .http2_keep_alive_interval(Duration::from_secs(2))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
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
    /// Result chunks that cannot be fetched (their worker died after the job
    /// finished) are reported to the scheduler, which recomputes them.
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
            let mut results = Results::new(plan);
            let mut rounds = 0;
            let (job, recomputed) = loop {
                let update = updates
                    .message()
                    .await
                    .map_err(|s| self.lost(s.message()))?
                    .ok_or_else(|| self.lost("it closed the job's stream"))?;
                match update.event {
                    Some(job_update::Event::Done(done)) => {
                        let missing = self.fetch_outputs(plan, done.outputs, &mut results).await?;
                        if missing.is_empty() {
                            break (update.job, done.recomputed as usize);
                        }
                        rounds += 1;
                        if rounds > MAX_ROUNDS {
                            return Err(self.remote(format!(
                                "job {}: result chunks could not be fetched after {MAX_ROUNDS} \
                                 recomputations",
                                update.job
                            )));
                        }
                        let req = pb::MissingRequest {
                            job: update.job,
                            missing,
                        };
                        scheduler
                            .report_missing(req)
                            .await
                            .map_err(|s| self.lost(s.message()))?;
                    }
                    Some(job_update::Event::Failed(error)) => {
                        return Err(self.remote(format!("job {} failed: {error}", update.job)));
                    }
                    _ => {}
                }
            };
            let _ = scheduler.release(pb::ReleaseRequest { job }).await;
            let stats = RunStats {
                tasks: plan.task_count(),
                peak_bytes: 0,
                elapsed: start.elapsed(),
                recomputed,
            };
            Ok((results.finish()?, stats))
        })
    }

    fn lost(&self, why: &str) -> Error {
        self.remote(format!(
            "lost the connection to the scheduler while the job was running ({why})"
        ))
    }

    /// Fetches the output chunks not fetched yet; returns those that could
    /// not be had from where the job said they are.
    async fn fetch_outputs(
        &self,
        plan: &Plan,
        outputs: Vec<pb::OutputChunks>,
        results: &mut Results,
    ) -> Result<Vec<pb::ChunkLocation>> {
        if outputs.len() != plan.outputs.len() {
            return Err(self.remote("the job reported the wrong number of outputs"));
        }
        let peers = Peers::default();
        let mut missing = Vec::new();
        for (o, (stage, chunks)) in plan.outputs.iter().zip(outputs).enumerate() {
            let meta = &plan.stage(*stage).meta;
            if chunks.chunks.len() != meta.chunks.count() {
                return Err(self.remote(format!(
                    "{} of {} result chunks were reported",
                    chunks.chunks.len(),
                    meta.chunks.count()
                )));
            }
            let peers = &peers;
            let wanted: Vec<pb::ChunkLocation> = chunks
                .chunks
                .into_iter()
                .filter(|loc| {
                    task_from(loc.task.as_ref())
                        .is_ok_and(|(_, key)| !results.has(o, key.chunk as usize))
                })
                .collect();
            let fetched = futures::stream::iter(wanted)
                .map(|loc| async move {
                    let (job, key) =
                        task_from(loc.task.as_ref()).map_err(|e| self.remote(e.to_string()))?;
                    let chunk = peers.fetch(&loc.address, job, key, None).await;
                    Ok::<_, Error>((loc, key, chunk))
                })
                .buffer_unordered(PARALLEL_FETCHES);
            let mut fetched = std::pin::pin!(fetched);
            while let Some((loc, key, chunk)) = fetched.try_next().await? {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(
                            worker = loc.worker,
                            "result chunk {} unavailable: {e}",
                            key.chunk
                        );
                        missing.push(loc);
                        continue;
                    }
                };
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
                results.paste(o, plan, key, &chunk)?;
            }
        }
        Ok(missing)
    }
}

/// The result buffers being filled, and which chunks are in.
struct Results {
    buffers: Vec<Buffer>,
    shapes: Vec<Vec<usize>>,
    got: Vec<Vec<bool>>,
}

impl Results {
    fn new(plan: &Plan) -> Results {
        let metas: Vec<_> = plan.outputs.iter().map(|s| &plan.stage(*s).meta).collect();
        Results {
            buffers: metas
                .iter()
                .map(|m| Buffer::zeros(m.dtype, shape::size(&m.shape)))
                .collect(),
            shapes: metas.iter().map(|m| m.shape.clone()).collect(),
            got: metas
                .iter()
                .map(|m| vec![false; m.chunks.count()])
                .collect(),
        }
    }

    fn has(&self, output: usize, chunk: usize) -> bool {
        self.got[output].get(chunk).copied().unwrap_or(false)
    }

    fn paste(&mut self, output: usize, plan: &Plan, key: ChunkKey, chunk: &Chunk) -> Result<()> {
        crate::client::paste(
            &mut self.buffers[output],
            &self.shapes[output],
            &plan.chunk_origin(key),
            chunk,
        )?;
        self.got[output][key.chunk as usize] = true;
        Ok(())
    }

    fn finish(self) -> Result<Vec<Buffer>> {
        for (o, got) in self.got.iter().enumerate() {
            let n = got.iter().filter(|g| **g).count();
            if n != got.len() {
                return Err(Error::Invalid(format!(
                    "output {o}: {n} of {} result chunks arrived",
                    got.len()
                )));
            }
        }
        Ok(self.buffers)
    }
}
