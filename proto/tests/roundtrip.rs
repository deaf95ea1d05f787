//! Plans survive the wire unchanged, stay small whatever their chunk count,
//! and corrupted bytes decode into an error or a plan that runs without panicking.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use accel::{Array, DType, arange};
use accel_core::exec::run_task;
use accel_core::plan::{ChunkKey, Plan, StageId};
use accel_core::{Chunk, Result};
use accel_proto::convert::{plan_from, plan_to};
use accel_proto::{PROTOCOL_VERSION, check_version, pb};
use prost::Message;

fn plan(a: &Array) -> Plan {
    a.plan().unwrap().plan
}

/// Every chunk of every output, running the plan stage by stage.
fn execute(p: &Plan) -> Result<Vec<Arc<Chunk>>> {
    let mut done: HashMap<ChunkKey, Arc<Chunk>> = HashMap::new();
    for (s, stage) in p.stages.iter().enumerate() {
        for c in 0..stage.task_count() {
            let key = ChunkKey {
                stage: StageId(s as u32),
                chunk: c as u32,
            };
            let args: Vec<Arc<Chunk>> =
                p.task_inputs(key).iter().map(|k| done[k].clone()).collect();
            done.insert(key, run_task(p, key, &args)?);
        }
    }
    let mut out = Vec::new();
    for o in &p.outputs {
        for c in 0..p.stage(*o).task_count() {
            out.push(
                done[&ChunkKey {
                    stage: *o,
                    chunk: c as u32,
                }]
                    .clone(),
            );
        }
    }
    Ok(out)
}

#[test]
fn plans_round_trip_through_bytes() {
    for a in accel_examples::samples::arrays() {
        let original = plan(&a);
        let bytes = plan_to(&original).encode_to_vec();
        let decoded = plan_from(pb::Plan::decode(bytes.as_slice()).unwrap()).unwrap();
        assert_eq!(
            plan_to(&decoded).encode_to_vec(),
            bytes,
            "re-encoding differs"
        );
        assert_eq!(execute(&decoded).unwrap(), execute(&original).unwrap());
    }
}

#[test]
fn submission_size_does_not_grow_with_the_chunk_count() {
    let size = |chunk: usize| {
        let x = arange(1_000_000, chunk).astype(DType::F64);
        plan_to(&plan(&(x.powi(2) + 1.0).sqrt().sum()))
            .encode_to_vec()
            .len()
    };
    let (few, many) = (size(100_000), size(10));
    // Only the combine tree's depth (logarithmic) adds stages: 1e5 chunks fit in 1 KiB.
    assert!(
        few < 1024 && many < 1024,
        "10 chunks: {few} bytes, 100000 chunks: {many} bytes"
    );
}

#[test]
fn corrupted_bytes_never_panic() {
    let samples: Vec<Vec<u8>> = accel_examples::samples::arrays()
        .iter()
        .map(|a| plan_to(&plan(a)).encode_to_vec())
        .collect();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut accepted = 0;
    for round in 0..3000 {
        let mut bytes = samples[round % samples.len()].clone();
        for _ in 0..1 + next() % 3 {
            let i = (next() as usize) % bytes.len();
            bytes[i] ^= 1 << (next() % 8);
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let Ok(msg) = pb::Plan::decode(bytes.as_slice()) else {
                return false;
            };
            let Ok(p) = plan_from(msg) else { return false };
            // A plan that validates must run to results or errors.
            let _ = execute(&p);
            true
        }));
        match outcome {
            Ok(ok) => accepted += ok as usize,
            Err(_) => panic!("round {round}: decoding or running a corrupted plan panicked"),
        }
    }
    assert!(accepted < 3000, "corruption was never detected");
}

#[test]
fn other_protocol_versions_are_refused_by_name() {
    assert!(check_version(PROTOCOL_VERSION).is_ok());
    let err = check_version(PROTOCOL_VERSION + 1).unwrap_err().to_string();
    assert!(
        err.contains(&format!("{}", PROTOCOL_VERSION + 1))
            && err.contains(&format!("{PROTOCOL_VERSION}")),
        "{err}"
    );
}

#[test]
fn huge_chunk_grids_are_refused_without_allocating_them() {
    let mut p = plan_to(&plan(&arange(10, 5).sum()));
    let axis = &mut p.stages[0].meta.as_mut().unwrap().chunks[0];
    axis.sizes = vec![1];
    axis.counts = vec![1 << 40];
    p.stages[0].meta.as_mut().unwrap().shape = vec![1 << 40];
    let err = plan_from(p).unwrap_err().to_string();
    assert!(err.contains("chunk grids hold more than"), "{err}");
}

/// A meta of `shape` in one chunk per axis, on the wire.
fn one_chunk(shape: &[u64]) -> pb::Meta {
    pb::Meta {
        shape: shape.to_vec(),
        dtype: pb::DType::F64 as i32,
        chunks: shape
            .iter()
            .map(|&n| pb::Axis {
                sizes: vec![n],
                counts: vec![1],
            })
            .collect(),
    }
}

fn stage(meta: pb::Meta, inputs: Vec<u32>, kind: pb::stage::Kind) -> pb::Stage {
    pb::Stage {
        meta: Some(meta),
        inputs,
        label: String::new(),
        kind: Some(kind),
    }
}

#[test]
fn grids_adding_up_to_gigabytes_are_refused_before_any_is_expanded() {
    // Each grid alone is allowed (2²⁶ chunks along an axis); four of them
    // would take 2 GiB once expanded, from a message of a few hundred bytes.
    let persisted = || pb::stage::Kind::Persisted(pb::Persisted { job: 1, stage: 0 });
    let mut meta = one_chunk(&[1 << 26]);
    meta.chunks[0] = pb::Axis {
        sizes: vec![1],
        counts: vec![1 << 26],
    };
    let p = pb::Plan {
        stages: (0..5)
            .map(|_| stage(meta.clone(), vec![], persisted()))
            .collect(),
        outputs: vec![0],
        sinks: vec![],
    };
    assert!(p.encoded_len() < 1000);
    let err = plan_from(p).unwrap_err().to_string();
    assert!(err.contains("chunk grids hold more than"), "{err}");
}

#[test]
fn shapes_whose_element_count_wraps_are_refused() {
    // 2³² × 2³² and 2⁴⁰ × 2²⁴ elements both wrap to 0 in a word: the reshape
    // looked valid and its "auto" chunks asked for terabytes.
    let p = pb::Plan {
        stages: vec![
            stage(
                one_chunk(&[1 << 32, 1 << 32]),
                vec![],
                pb::stage::Kind::Persisted(pb::Persisted { job: 1, stage: 0 }),
            ),
            stage(
                one_chunk(&[1 << 40, 1 << 24]),
                vec![0],
                pb::stage::Kind::Reshape(true),
            ),
        ],
        outputs: vec![1],
        sinks: vec![],
    };
    let err = plan_from(p).unwrap_err().to_string();
    assert!(err.contains("more than 9007199254740992 elements"), "{err}");
    // 65 axes is more than any array may have.
    let p = pb::Plan {
        stages: vec![stage(
            one_chunk(&[1; 65]),
            vec![],
            pb::stage::Kind::Persisted(pb::Persisted { job: 1, stage: 0 }),
        )],
        outputs: vec![0],
        sinks: vec![],
    };
    let err = plan_from(p).unwrap_err().to_string();
    assert!(err.contains("65 axes"), "{err}");
}

#[test]
fn every_elementwise_op_crosses_the_wire() {
    let x = (arange(24, 5).astype(DType::F64) - 11.5) / 12.0;
    let i = arange(24, 5) - 12;
    let z = &x + accel::Complex64::new(0.0, 1.0) * &x;
    let reals = [
        x.arcsin(),
        x.arccos(),
        x.arctan(),
        x.sinh(),
        x.cosh(),
        x.log1p(),
        x.expm1(),
        (&x + 2.0).log2(),
        (&x + 2.0).log10(),
        x.sign(),
        x.round(),
        x.hypot(&x * 3.0),
        accel::arctan2(&x, 0.5),
        x.floor_divide(0.3),
        x.isnan().astype(DType::F64) + x.isfinite().astype(DType::F64),
    ];
    let others = [
        i.floor_divide(5),
        i.sign(),
        z.sqrt() + z.exp() + z.log() + z.arcsin() + accel::power(&z, &z) + z.sign(),
    ];
    for a in reals.iter().chain(&others) {
        let original = plan(a);
        let bytes = plan_to(&original).encode_to_vec();
        let decoded = plan_from(pb::Plan::decode(bytes.as_slice()).unwrap()).unwrap();
        assert_eq!(plan_to(&decoded).encode_to_vec(), bytes);
        assert_eq!(execute(&decoded).unwrap(), execute(&original).unwrap());
    }
}

#[test]
fn map_blocks_travels_by_name_and_binds_where_it_runs() {
    use accel::{Blocks, Client, Functions, MapBlocks};
    let functions = Functions::new().with("shift", |b: &Blocks<'_>| {
        let k = b.arg_f64(0)?;
        b.input::<f64>(0).map(|v| v.mapv(|e| e + k))
    });
    let x = arange(100, 30).astype(DType::F64);
    let y = &MapBlocks::named("shift").arg(1.5).apply(&[&(&x * 2.0)]) - 1.0;
    let original = Client::local()
        .with_functions(functions.clone())
        .plan(&[&y])
        .unwrap()
        .plan;
    let bytes = plan_to(&original).encode_to_vec();
    let mut decoded = plan_from(pb::Plan::decode(bytes.as_slice()).unwrap()).unwrap();
    assert_eq!(plan_to(&decoded).encode_to_vec(), bytes);
    assert_eq!(decoded.function_names(), ["shift"]);
    // Unbound, the task fails naming the function; bound, it runs.
    let err = execute(&decoded).unwrap_err().to_string();
    assert!(
        err.contains("function 'shift'") && err.contains("no function"),
        "{err}"
    );
    assert!(decoded.bind_functions(&Functions::new()) == ["shift"]);
    assert!(decoded.bind_functions(&functions).is_empty());
    assert_eq!(execute(&decoded).unwrap(), execute(&original).unwrap());
}
