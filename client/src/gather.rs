//! Gathering a cluster job's results: output chunks are fetched from their
//! workers as soon as the scheduler reports them, while the rest of the job
//! runs, each piece copied straight into the result. Chunks that cannot be
//! had where the scheduler said are reported back (it recomputes them) and
//! fetched again from their new place.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use accel_core::Buffer;
use accel_core::plan::{ChunkKey, Plan};
use accel_proto::convert::{dtype_to, task_from};
use accel_proto::pb::{self, job_update};
use accel_worker::fetch::{FetchError, Frame, Peers};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tonic::Streaming;

use crate::assemble::Results;
use crate::remote::Scheduler;

/// Output chunks fetched at once.
const PARALLEL_FETCHES: usize = 8;

/// Times one result chunk may fail to arrive before the client gives up.
const MAX_FAILURES: u32 = 20;

/// A worker that turned the connection away at once (refused, no route) is
/// tried again after these waits: a blip passes without the chunk being
/// computed again. One that let a fetch time out is not: that took long
/// enough already.
const REFUSED_RETRIES: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(400),
    Duration::from_millis(1000),
];

/// A failed fetch this quick was turned away rather than timed out.
const QUICK: Duration = Duration::from_secs(1);

/// What went wrong while gathering.
pub enum GatherError {
    /// The scheduler's stream broke or closed.
    Lost(String),
    /// The job failed, or the results are not what the plan says.
    Failed(String),
}

/// One output chunk to fetch: which output, where, which chunk.
struct Want {
    output: usize,
    loc: pb::ChunkLocation,
    job: u64,
    key: ChunkKey,
    /// The scheduler's update that gave this location (counted from 1).
    said_at: u64,
}

enum Fetched {
    /// Fetched, from the worker at this address.
    Got(usize, u32, String),
    /// Not fetched; the location was given by update `said_at`; `refused`:
    /// the worker turned every connection away at once.
    Missing {
        output: usize,
        chunk: u32,
        loc: pb::ChunkLocation,
        said_at: u64,
        error: FetchError,
        refused: bool,
    },
    Wrong(String),
}

/// A finished job: its result buffers, its id and the tasks it ran again.
pub struct Gathered {
    pub buffers: Vec<Buffer>,
    pub job: u64,
    /// What reads and releases the job's chunks.
    pub job_key: Vec<u8>,
    pub recomputed: usize,
}

/// What to fetch next, and what was asked for already.
#[derive(Default)]
struct Book {
    /// Output chunks being fetched or in.
    requested: HashSet<(usize, u32)>,
    queue: VecDeque<Want>,
    failures: HashMap<(usize, u32), u32>,
    /// Updates from the scheduler so far.
    updates: u64,
    /// Workers that turned fetches away, by data address, with the number
    /// of updates seen when that was found.
    refused: HashMap<String, u64>,
}

/// Fetches output chunks into the result buffers.
struct Fetcher<'a> {
    plan: &'a Plan,
    peers: &'a Peers,
    results: RefCell<Results>,
    /// The job's key, from the scheduler's first update.
    job_key: RefCell<Vec<u8>>,
    /// Workers known to turn fetches away: not retried again.
    refusing: RefCell<HashSet<String>>,
}

/// Follows the job's updates until every output chunk of `plan` is in.
pub async fn gather(
    plan: &Plan,
    peers: &Peers,
    updates: &mut Streaming<pb::JobUpdate>,
    scheduler: &mut Scheduler,
    progress: &crate::progress::Progress,
) -> Result<Gathered, GatherError> {
    let fetcher = Fetcher {
        plan,
        peers,
        results: RefCell::new(Results::new(plan)),
        job_key: RefCell::new(Vec::new()),
        refusing: RefCell::default(),
    };
    let mut book = Book::default();
    let mut inflight = FuturesUnordered::new();
    let mut done: Option<(u64, usize)> = None;
    loop {
        while inflight.len() < PARALLEL_FETCHES
            && let Some(w) = book.queue.pop_front()
        {
            inflight.push(fetcher.fetch(w));
        }
        if inflight.is_empty()
            && let Some((job, recomputed)) = done
        {
            if fetcher.results.borrow().complete() {
                drop(inflight);
                let job_key = fetcher.job_key.take();
                let buffers = fetcher.results.into_inner().finish();
                return Ok(Gathered {
                    buffers,
                    job,
                    job_key,
                    recomputed,
                });
            }
            // Chunks reported missing after the job ended: wait for the
            // scheduler to say where they are again.
            done = None;
        }
        tokio::select! {
            Some(r) = inflight.next() => match r {
                Fetched::Got(o, c, address) => {
                    fetcher.results.borrow_mut().mark(o, c as usize);
                    // It answers again: a later refusal is news.
                    if book.refused.remove(&address).is_some() {
                        fetcher.refusing.borrow_mut().remove(&address);
                    }
                }
                Fetched::Wrong(e) => return Err(GatherError::Failed(e)),
                Fetched::Missing { output: o, chunk: c, loc, said_at, error, refused } => {
                    let why = error.message;
                    tracing::warn!(worker = loc.worker, "result chunk {c} unavailable: {why}");
                    if refused {
                        book.refused(&loc.address, said_at, &why)?;
                        fetcher.refusing.borrow_mut().insert(loc.address.clone());
                    }
                    book.requested.remove(&(o, c));
                    let n = book.failures.entry((o, c)).or_default();
                    *n += 1;
                    if *n > MAX_FAILURES {
                        return Err(GatherError::Failed(format!(
                            "result chunk {c} could not be fetched after {MAX_FAILURES} tries ({why})"
                        )));
                    }
                    let job = task_from(loc.task.as_ref()).map_or(0, |(j, _)| j);
                    let req = pb::MissingRequest {
                        job,
                        missing: vec![loc],
                        job_key: fetcher.job_key.borrow().clone(),
                    };
                    scheduler
                        .control
                        .report_missing(req)
                        .await
                        .map_err(|s| GatherError::Lost(s.message().to_string()))?;
                }
            },
            update = updates.message() => {
                let update = update
                    .map_err(|s| GatherError::Lost(s.message().to_string()))?
                    .ok_or_else(|| GatherError::Lost("it closed the job's stream".into()))?;
                if !update.job_key.is_empty() {
                    *fetcher.job_key.borrow_mut() = update.job_key;
                }
                book.updates += 1;
                match update.event {
                    Some(job_update::Event::Ready(chunks)) => book.want(plan, chunks.chunks)?,
                    Some(job_update::Event::Done(d)) => {
                        if d.outputs.len() != plan.outputs.len() {
                            return Err(GatherError::Failed(
                                "the job reported the wrong number of outputs".into(),
                            ));
                        }
                        for chunks in d.outputs {
                            book.want(plan, chunks.chunks)?;
                        }
                        done = Some((update.job, d.recomputed as usize));
                    }
                    Some(job_update::Event::Failed(e)) => {
                        return Err(GatherError::Failed(format!("job {} failed: {e}", update.job)));
                    }
                    Some(job_update::Event::Progress(p)) => progress.update(p.done, p.total),
                    Some(job_update::Event::Accepted(_)) | None => {}
                }
            }
        }
    }
}

impl Book {
    /// A worker at `address` turned away the fetches of a chunk whose
    /// location came with update `said_at`. The first time, the chunk is
    /// reported missing (the worker may have died: the scheduler computes it
    /// again). A worker the scheduler names again after that is alive as far
    /// as it knows, yet out of this client's reach: computing it again would
    /// not help.
    fn refused(&mut self, address: &str, said_at: u64, why: &str) -> Result<(), GatherError> {
        match self.refused.get(address) {
            Some(&found) if said_at > found => Err(GatherError::Failed(format!(
                "this client cannot reach the worker at {address} ({why}), which the scheduler \
                 still counts on: results come straight from the workers, so every worker's \
                 data address must be reachable from the client (see accel-worker --advertise)"
            ))),
            Some(_) => Ok(()),
            None => {
                self.refused.insert(address.to_string(), self.updates);
                Ok(())
            }
        }
    }

    /// Queues the chunks not fetched or being fetched yet.
    fn want(&mut self, plan: &Plan, locs: Vec<pb::ChunkLocation>) -> Result<(), GatherError> {
        for loc in locs {
            let (job, key) =
                task_from(loc.task.as_ref()).map_err(|e| GatherError::Failed(e.to_string()))?;
            let outputs: Vec<usize> = plan
                .outputs
                .iter()
                .enumerate()
                .filter(|(_, s)| **s == key.stage)
                .map(|(o, _)| o)
                .collect();
            let in_grid = (key.stage.index() < plan.stages.len())
                && (key.chunk as usize) < plan.stage(key.stage).meta.chunks.count();
            if outputs.is_empty() || !in_grid {
                return Err(GatherError::Failed(
                    "the job reported a chunk that is not one of its outputs".into(),
                ));
            }
            for output in outputs {
                if self.requested.insert((output, key.chunk)) {
                    self.queue.push_back(Want {
                        output,
                        loc: loc.clone(),
                        job,
                        key,
                        said_at: self.updates,
                    });
                }
            }
        }
        Ok(())
    }
}

impl Fetcher<'_> {
    /// Fetches one output chunk; a worker that turns the connection away is
    /// tried a few more times before the chunk counts as missing.
    async fn fetch(&self, w: Want) -> Fetched {
        // Each chunk of a worker already known to refuse would spend the
        // waits again, holding a fetch slot.
        let known = self.refusing.borrow().contains(&w.loc.address);
        let mut waits = REFUSED_RETRIES[..if known { 0 } else { REFUSED_RETRIES.len() }].iter();
        loop {
            let began = std::time::Instant::now();
            let error = match self.fetch_once(&w).await {
                Ok(fetched) => return fetched,
                Err(e) => e,
            };
            let refused = !error.answered && began.elapsed() < QUICK;
            match waits.next() {
                Some(&wait) if refused => tokio::time::sleep(wait).await,
                _ => {
                    return Fetched::Missing {
                        output: w.output,
                        chunk: w.key.chunk,
                        loc: w.loc,
                        said_at: w.said_at,
                        error,
                        refused,
                    };
                }
            }
        }
    }

    /// Fetches one output chunk, pasting each piece into place as it comes.
    async fn fetch_once(&self, w: &Want) -> Result<Fetched, FetchError> {
        let (plan, results) = (self.plan, &self.results);
        let meta = &plan.stage(w.key.stage).meta;
        let wrong = Cell::new(false);
        let credential = self.job_key.borrow().clone();
        let r = self
            .peers
            .stream(
                &w.loc.address,
                w.job,
                w.key,
                None,
                &credential,
                |frame| match frame {
                    Frame::Header(h) => {
                        let ok = h.cols == [dtype_to(meta.dtype) as i32]
                            && h.shape
                                .iter()
                                .map(|&x| x as usize)
                                .eq(plan.chunk_shape(w.key));
                        wrong.set(!ok);
                        ok.then_some(())
                            .ok_or_else(|| "wrong shape or dtype".into())
                    }
                    Frame::Data { offset, bytes } => results
                        .borrow_mut()
                        .paste_frame(w.output, plan, w.key, offset, bytes)
                        .map_err(|e| e.to_string()),
                },
            )
            .await;
        match r {
            _ if wrong.get() => Ok(Fetched::Wrong(format!(
                "result chunk {} arrived with the wrong shape or dtype",
                w.key.chunk
            ))),
            Ok(()) => Ok(Fetched::Got(w.output, w.key.chunk, w.loc.address.clone())),
            Err(e) => Err(e),
        }
    }
}
