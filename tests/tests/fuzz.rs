//! Fuzzing every decoder that reads bytes from the network with random and
//! mutated inputs: plans (decoded, validated and run), worker messages
//! (decoded and applied to a scheduler core, whose invariants must hold),
//! data-plane requests (served from an in-memory pipe) and data-plane
//! replies (fetched from a peer that answers with mutated bytes). Nothing
//! may panic, and no single allocation may exceed the caps: a counting
//! allocator records the largest one.
//!
//! A quick run is part of the suite; `scripts/fuzz.sh MINUTES` runs each
//! target for longer (`ACCEL_FUZZ_SECONDS`) and prints what it covered.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use accel_core::plan::{ChunkKey, Plan, StageId};
use accel_core::{Buffer, Chunk};
use accel_proto::convert::{plan_from, plan_to, task_to};
use accel_proto::pb;
use prost::Message;

/// Records the largest single allocation (per thread of the test that asks).
struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only records sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's layout, passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from this allocator with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The cap every target must stay under: far below what a hostile length
/// field could ask for, above what the seeds legitimately use.
const CAP: usize = 64 << 20;

/// SplitMix64: deterministic choices from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of a seed: bit flips, byte overwrites (often with extreme
/// values, as length and count fields), cuts, insertions, splices, or pure noise.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut b = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let n = b.len().max(1);
        match rng.below(7) {
            0 if !b.is_empty() => {
                let i = rng.below(n);
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                let i = rng.below(n);
                b[i] = [0x00, 0xff, 0x7f, 0x80, 0x01][rng.below(5)];
            }
            2 => b.truncate(rng.below(n + 1)),
            3 => {
                let i = rng.below(n + 1).min(b.len());
                // A varint of up to 10 bytes: the largest values a field can claim.
                let run: Vec<u8> = (0..1 + rng.below(10)).map(|_| 0xff).chain([0x01]).collect();
                b.splice(i..i, run);
            }
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                let (i, j) = (rng.below(n + 1).min(b.len()), rng.below(other.len() + 1));
                b.truncate(i);
                b.extend_from_slice(&other[j.min(other.len())..]);
            }
            5 => b = (0..rng.below(256)).map(|_| rng.next() as u8).collect(),
            _ => {
                let i = rng.below(n + 1).min(b.len());
                let noise: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                b.splice(i..i, noise);
            }
        }
    }
    b
}

/// Runs `case` on mutated inputs: a fixed number in the suite, or for
/// `ACCEL_FUZZ_SECONDS` seconds. `case` says how deep each input got (0:
/// refused by the first decoder, ...); every depth must be reached by some
/// input, so a target cannot silently test only its first check.
fn fuzz(
    name: &str,
    seeds: &[Vec<u8>],
    quick: usize,
    depths: usize,
    mut case: impl FnMut(&[u8]) -> usize,
) {
    let budget = std::env::var("ACCEL_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map(Duration::from_secs_f64);
    let start = Instant::now();
    let mut rng = Rng(0x5eed ^ name.len() as u64);
    let mut n = 0;
    let mut reached = vec![0usize; depths];
    loop {
        match budget {
            Some(b) if start.elapsed() >= b => break,
            None if n >= quick => break,
            _ => {}
        }
        let input = mutate(&mut rng, seeds);
        match catch_unwind(AssertUnwindSafe(|| case(&input))) {
            Ok(depth) => reached[depth.min(depths - 1)] += 1,
            Err(_) => panic!("{name}: input {n} panicked: {input:?}"),
        }
        n += 1;
    }
    assert!(
        reached.iter().all(|&r| r > 0),
        "{name}: some depth was never reached: {reached:?}"
    );
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(largest <= CAP, "{name}: an allocation of {largest} bytes");
    eprintln!(
        "fuzz {name}: {n} inputs in {:.1} s (by depth reached: {reached:?}), no panic; \
         largest allocation so far {} KiB",
        start.elapsed().as_secs_f64(),
        largest >> 10
    );
}

fn plan_seeds() -> Vec<Vec<u8>> {
    accel_examples::samples::arrays()
        .iter()
        .map(|a| plan_to(&a.plan().unwrap().plan).encode_to_vec())
        .collect()
}

/// Runs every task of a small plan; errors are fine, panics are not.
fn run_small(p: &Plan) {
    let small = p.task_count() <= 2_000
        && p.stages
            .iter()
            .all(|s| accel_core::shape::size(&s.meta.shape) <= 1 << 20);
    if !small {
        return;
    }
    let mut done = std::collections::HashMap::new();
    for (s, stage) in p.stages.iter().enumerate() {
        for c in 0..stage.task_count() {
            let key = ChunkKey {
                stage: StageId(s as u32),
                chunk: c as u32,
            };
            let Some(args) = p
                .task_inputs(key)
                .iter()
                .map(|k| done.get(k).cloned())
                .collect::<Option<Vec<Arc<Chunk>>>>()
            else {
                return;
            };
            match accel_core::exec::run_task(p, key, &args) {
                Ok(c) => {
                    done.insert(key, c);
                }
                Err(_) => return,
            }
        }
    }
}

#[test]
fn plans() {
    let seeds = plan_seeds();
    fuzz("plans", &seeds, 1500, 3, |bytes| {
        let Ok(msg) = pb::Plan::decode(bytes) else {
            return 0;
        };
        let Ok(plan) = plan_from(msg) else { return 1 };
        let _ = plan.memory_projection();
        // The scheduler's view of it, then its tasks.
        let _ = accel_scheduler::Core::new().handle(accel_scheduler::Event::JobSubmitted {
            job: accel_scheduler::JobId(1),
            client: accel_scheduler::ClientId(1),
            plan: Arc::new(plan.clone()),
        });
        run_small(&plan);
        2
    });
}

fn worker_message_seeds() -> Vec<Vec<u8>> {
    use pb::worker_message::Msg;
    let t = |stage, chunk| {
        task_to(
            1,
            ChunkKey {
                stage: StageId(stage),
                chunk,
            },
        )
    };
    let loc = |stage, chunk| pb::ChunkLocation {
        task: Some(t(stage, chunk)),
        worker: 2,
        address: "127.0.0.1:9".into(),
    };
    let msgs = [
        Msg::Register(pb::Register {
            name: "w".into(),
            nthreads: 2,
            functions: vec!["f".into()],
            ..Default::default()
        }),
        Msg::Finished(pb::FinishedBatch {
            started: vec![t(0, 0), t(0, 1)],
            tasks: vec![
                pb::FinishedTask {
                    task: Some(t(0, 0)),
                    nbytes: 80,
                },
                pb::FinishedTask {
                    task: Some(t(1, 1)),
                    nbytes: 8,
                },
            ],
        }),
        Msg::Failed(pb::TaskFailure {
            task: Some(t(1, 0)),
            message: "boom".into(),
        }),
        Msg::Missing(pb::InputsMissing {
            task: Some(t(1, 0)),
            missing: vec![loc(0, 0)],
        }),
        Msg::Steal(pb::StealReply {
            id: 1,
            stolen: vec![t(0, 2)],
            refused: vec![t(0, 3)],
        }),
        Msg::Replicated(pb::ReplicaReport {
            done: vec![pb::FinishedTask {
                task: Some(t(0, 1)),
                nbytes: 8,
            }],
            failed: vec![t(0, 2)],
        }),
        Msg::Paused(true),
        Msg::Retire(true),
    ];
    msgs.into_iter()
        .map(|m| pb::WorkerMessage { msg: Some(m) }.encode_to_vec())
        .collect()
}

#[test]
fn worker_messages() {
    use accel_scheduler::{ClientId, Core, Event, JobId, WorkerId};
    let seeds = worker_message_seeds();
    let plan = Arc::new(
        accel::Client::local()
            .plan(&[&(accel::arange(400, 100).astype(accel::DType::F64) * 2.0).sum()])
            .unwrap()
            .plan,
    );
    fuzz("worker messages", &seeds, 3000, 3, |bytes| {
        let Ok(msg) = pb::WorkerMessage::decode(bytes) else {
            return 0;
        };
        let mut core = Core::new();
        for w in [1, 2] {
            core.handle(Event::WorkerJoined {
                worker: WorkerId(w),
                name: format!("w{w}"),
                nthreads: 2,
                memory_limit: None,
                functions: Vec::new(),
                gpus: 0,
            });
        }
        core.handle(Event::JobSubmitted {
            job: JobId(1),
            client: ClientId(1),
            plan: plan.clone(),
        });
        core.schedule();
        let events = msg
            .msg
            .map(|m| accel_scheduler::server::worker_events(WorkerId(2), m))
            .unwrap_or_default();
        let depth = if events.is_empty() { 1 } else { 2 };
        for e in events {
            core.handle(e);
            core.sanity_check().unwrap();
        }
        core.schedule();
        core.sanity_check().unwrap();
        depth
    });
}

/// A length-prefixed data-plane message.
fn framed(msg: &impl Message) -> Vec<u8> {
    let body = msg.encode_to_vec();
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend(body);
    out
}

fn store_with_a_chunk() -> (Arc<accel_worker::Store>, Arc<accel_worker::fetch::DataKey>) {
    let store = Arc::new(accel_worker::Store::new(None));
    store.add_plan(store.generation(), 1, Ok(Arc::new(Plan::default())));
    let chunk = Arc::new(Chunk::array(vec![4, 4], Buffer::F64(vec![1.5; 16])));
    let key = ChunkKey {
        stage: StageId(0),
        chunk: 0,
    };
    store.insert(store.generation(), 1, key, chunk);
    let data_key = Arc::new(accel_worker::fetch::DataKey::default());
    data_key.set(Some(accel_proto::auth::Secret::from_bytes(b"k".to_vec())));
    (store, data_key)
}

#[test]
fn data_plane_requests() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (store, data_key) = store_with_a_chunk();
    let service = accel_worker::fetch::Service {
        source: Arc::new(accel_worker::fetch::StoreChunks {
            store,
            key: data_key,
        }),
        serving: Arc::new(AtomicUsize::new(0)),
        tls: None,
        served: Default::default(),
    };
    let request = |credential: &[u8], lo: Vec<u64>, hi: Vec<u64>| pb::FetchRequest {
        hello: Some(pb::Hello {
            protocol_version: accel_proto::PROTOCOL_VERSION,
            peer: String::new(),
        }),
        chunk: Some(task_to(
            1,
            ChunkKey {
                stage: StageId(0),
                chunk: 0,
            },
        )),
        region_lo: lo,
        region_hi: hi,
        credential: credential.to_vec(),
    };
    let seeds: Vec<Vec<u8>> = [
        request(b"k", vec![], vec![]),
        request(b"k", vec![1, 1], vec![3, 4]),
        request(b"nope", vec![], vec![]),
    ]
    .iter()
    .map(|r| [b"ACCELDP1".as_slice(), &framed(r), &framed(r)].concat())
    .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    fuzz("data-plane requests", &seeds, 1500, 3, |bytes| {
        rt.block_on(async {
            let (mut ours, theirs) = tokio::io::duplex(1 << 16);
            let served = service.serve_stream(theirs);
            let talk = async {
                let _ = ours.write_all(bytes).await;
                let _ = ours.shutdown().await;
                let mut out = Vec::new();
                let _ = ours.read_to_end(&mut out).await;
                out
            };
            let out =
                tokio::time::timeout(Duration::from_secs(5), futures::future::join(served, talk))
                    .await
                    .map(|(_, out)| out)
                    .unwrap_or_default();
            // Nothing back, a refusal, or a chunk (2: its 128 bytes of data followed).
            match out.len() {
                0 => 0,
                n if n >= 128 => 2,
                _ => 1,
            }
        })
    });
}

#[test]
fn data_plane_replies() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let header = |shape: Vec<u64>, cols: Vec<i32>, total: u64| pb::DataReply {
        reply: Some(pb::data_reply::Reply::Header(pb::ChunkHeader {
            shape,
            cols,
            total_bytes: total,
        })),
    };
    let f64_col = accel_proto::convert::dtype_to(accel_core::DType::F64) as i32;
    let seeds: Vec<Vec<u8>> = vec![
        [
            framed(&header(vec![4, 4], vec![f64_col], 128)),
            vec![7; 128],
        ]
        .concat(),
        [
            framed(&header(vec![2], vec![f64_col, f64_col], 32)),
            vec![1; 32],
        ]
        .concat(),
        framed(&accel_worker_error("gone")),
    ];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let reply = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let serving = reply.clone();
    rt.spawn(async move {
        while let Ok((mut c, _)) = listener.accept().await {
            let bytes = serving.lock().unwrap().clone();
            tokio::spawn(async move {
                let mut greeting = [0u8; 8];
                if c.read_exact(&mut greeting).await.is_err() {
                    return;
                }
                let mut len = [0u8; 4];
                if c.read_exact(&mut len).await.is_err() {
                    return;
                }
                let mut req = vec![0u8; (u32::from_le_bytes(len) as usize).min(1 << 20)];
                let _ = c.read_exact(&mut req).await;
                let _ = c.write_all(&bytes).await;
                // Then close: the fetcher must not wait for more.
            });
        }
    });
    let peers = accel_worker::fetch::Peers::new(Duration::from_secs(2));
    peers.set_max_chunk_bytes(1 << 20);
    fuzz("data-plane replies", &seeds, 400, 2, |bytes| {
        *reply.lock().unwrap() = bytes.to_vec();
        let key = ChunkKey {
            stage: StageId(0),
            chunk: 0,
        };
        let got = rt.block_on(peers.fetch(&address, 1, key, None, b"k"));
        peers.clear();
        usize::from(got.is_ok())
    });
}

fn accel_worker_error(message: &str) -> pb::DataReply {
    pb::DataReply {
        reply: Some(pb::data_reply::Reply::Error(message.into())),
    }
}
