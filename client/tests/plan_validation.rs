//! Plans received from elsewhere are checked before they run: every seed
//! workload's plan passes, and each kind of corruption is refused with an
//! error (never a panic).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::sync::Arc;

use accel::{Array, DType};
use accel_core::dtype::Value;
use accel_core::kernel::{Executable, Instr};
use accel_core::plan::{Plan, StageId, StageKind};

fn plan(a: &Array) -> Plan {
    a.plan().unwrap().plan
}

fn samples() -> Vec<Plan> {
    accel_examples::samples::arrays().iter().map(plan).collect()
}

#[test]
fn the_plans_accel_builds_are_valid() {
    for p in samples() {
        p.validate().unwrap();
    }
}

/// Applies `corrupt` to a clone of each sample plan where it applies, and
/// expects the result to be refused.
fn refused(what: &str, corrupt: impl Fn(&mut Plan) -> bool) {
    let mut tried = 0;
    for p in samples() {
        let mut bad = p.clone();
        if corrupt(&mut bad) {
            tried += 1;
            assert!(bad.validate().is_err(), "{what}: accepted");
        }
    }
    assert!(tried > 0, "{what}: no sample plan to corrupt");
}

fn map_program(p: &mut Plan) -> Option<&mut accel_core::kernel::Program> {
    p.stages.iter_mut().find_map(|s| match &mut s.kind {
        StageKind::Map(exe) => Some(&mut Arc::make_mut(exe).program),
        _ => None,
    })
}

#[test]
fn corrupted_plans_are_refused() {
    refused("forward stage reference", |p| {
        let n = p.stages.len() as u32;
        p.stages
            .first_mut()
            .map(|s| s.inputs.push(StageId(n)))
            .is_some()
    });
    refused("unknown output", |p| {
        p.outputs.push(StageId(99));
        true
    });
    refused("chunks that do not cover the shape", |p| {
        p.stages[0]
            .meta
            .chunks
            .0
            .first_mut()
            .map(|c| c.push(3))
            .is_some()
    });
    refused("register read before it is defined", |p| {
        map_program(p)
            .map(|prog| {
                let k = prog.instrs.len() as u32;
                prog.instrs
                    .push(Instr::Unary(accel_core::op::UnaryOp::Neg, k + 5));
                prog.dtypes.push(DType::F64);
            })
            .is_some()
    });
    refused("register with the wrong dtype", |p| {
        map_program(p)
            .map(|prog| {
                let root = prog.root as usize;
                prog.dtypes[root] = if prog.dtypes[root] == DType::Bool {
                    DType::I32
                } else {
                    DType::Bool
                };
            })
            .is_some()
    });
    refused("constant of another dtype", |p| {
        map_program(p)
            .and_then(|prog| {
                let k = prog
                    .instrs
                    .iter()
                    .position(|i| matches!(i, Instr::Const(_)))?;
                prog.instrs[k] = match prog.dtypes[k] {
                    DType::Bool => Instr::Const(Value::F64(1.0)),
                    _ => Instr::Const(Value::Bool(true)),
                };
                Some(())
            })
            .is_some()
    });
    refused("wrong fan-in", |p| {
        p.stages
            .iter_mut()
            .find_map(|s| match &mut s.kind {
                StageKind::Combine { fan_in, .. } => {
                    fan_in.push(2);
                    Some(())
                }
                _ => None,
            })
            .is_some()
    });
    // A huge fan-in made the chunk ranges it spans overflow; along a kept
    // axis it merged chunks that are not reduced.
    for (what, value) in [
        ("huge fan-in", usize::MAX / 2),
        ("fan-in along a kept axis", 2),
    ] {
        refused(what, |p| {
            p.stages
                .iter_mut()
                .find_map(|s| match &mut s.kind {
                    StageKind::Combine { fan_in, spec, .. } => {
                        let axis = if value == 2 {
                            (0..fan_in.len()).find(|d| !spec.axes.contains(d))?
                        } else {
                            *spec.axes.first()?
                        };
                        fan_in[axis] = value;
                        Some(())
                    }
                    _ => None,
                })
                .is_some()
        });
    }
    refused("view out of bounds", |p| {
        p.stages
            .iter_mut()
            .find_map(|s| match &mut s.kind {
                StageKind::Remap(m) => {
                    m.axes[0].base += 1000;
                    Some(())
                }
                _ => None,
            })
            .is_some()
    });
    refused("source data of the wrong length", |p| {
        p.stages
            .iter_mut()
            .find_map(|s| match &mut s.kind {
                StageKind::Source(h) => {
                    let mut h2 = (**h).clone();
                    h2.shape = vec![1];
                    *h = Arc::new(h2);
                    Some(())
                }
                _ => None,
            })
            .is_some()
    });
    refused("kernel fed by a stage of another dtype", |p| {
        p.stages
            .iter_mut()
            .find_map(|s| match &mut s.kind {
                StageKind::Map(exe) if !exe.program.inputs.is_empty() => {
                    let mut prog = exe.program.clone();
                    prog.inputs[0].dtype = DType::I32;
                    *exe = Arc::new(Executable::new(prog));
                    Some(())
                }
                _ => None,
            })
            .is_some()
    });
}

/// A time loop's plan: its fused steps share one kernel from stage to stage.
fn heat_loop() -> Plan {
    let t = accel::from_ndarray(
        &ndarray::ArrayD::<f64>::zeros(ndarray::IxDyn(&[60, 60])),
        vec![30, 30],
    );
    let step = |t: &Array| {
        t.stencil(
            &[
                (&[1, 0], 0.25),
                (&[-1, 0], 0.25),
                (&[0, 1], 0.25),
                (&[0, -1], 0.25),
            ],
            accel::Boundary::Fixed,
        )
    };
    let client = accel::Client::local().with_stencil_depth(Some(3));
    client.plan(&[&t.iterate(30, step)]).unwrap().plan
}

/// The plan with every stage's kernel its own copy: nothing is shared.
fn unshared(p: &Plan) -> Plan {
    let mut q = p.clone();
    for s in &mut q.stages {
        match &mut s.kind {
            StageKind::Stencil(k) => *k = Arc::new((**k).clone()),
            StageKind::Map(e) => *e = Arc::new((**e).clone()),
            _ => {}
        }
    }
    q
}

/// Stages repeating an earlier one's kernel over the same metas are checked
/// and projected as that one, without being worked out again: what tells
/// them apart (where their inputs come from, a meta that differs) is still
/// checked, and the projection equals that of the plan with nothing shared.
#[test]
fn repeated_stages_are_checked_and_projected_like_the_others() {
    let p = heat_loop();
    let same = p.same_as_earlier();
    let stencils = p
        .stages
        .iter()
        .filter(|s| matches!(s.kind, StageKind::Stencil(_)))
        .count();
    assert_eq!(stencils, 10, "30 steps, 3 per stage");
    assert_eq!(same.iter().flatten().count(), stencils - 1);
    assert!(unshared(&p).same_as_earlier().iter().all(Option::is_none));
    p.validate().unwrap();
    assert_eq!(p.memory_projection(), unshared(&p).memory_projection());

    let last = same.iter().rposition(Option::is_some).unwrap();
    let mut forward = p.clone();
    forward.stages[last].inputs[0] = StageId(last as u32);
    assert!(
        forward.validate().is_err(),
        "a repeated stage reading itself"
    );

    // The same kernel and output over an input chunked another way: not the
    // same stage (its tasks read other boxes), still a valid one.
    let first = (0..last)
        .find(|&s| p.stages[s].meta != p.stages[p.stages[last].inputs[0].index()].meta)
        .unwrap();
    let mut rewired = p.clone();
    rewired.stages[last].inputs[0] = StageId(first as u32);
    assert!(rewired.same_as_earlier()[last].is_none());
    rewired.validate().unwrap();
    assert_eq!(
        rewired.memory_projection(),
        unshared(&rewired).memory_projection()
    );

    let mut retyped = p.clone();
    retyped.stages[last].meta.dtype = DType::F32;
    assert!(retyped.same_as_earlier()[last].is_none());
    assert!(
        retyped.validate().is_err(),
        "a repeated stage of another dtype"
    );
}

/// One combine level over everything (`split_every(usize::MAX)`) makes a
/// plan the checks accept: its fan-in is no more than the chunks there are.
#[test]
fn a_reduction_in_one_combine_level_is_valid() {
    let x = accel::arange(1000, 10)
        .astype(DType::F64)
        .reshape(&[10, 100]);
    for opts in [
        accel::ReduceOpts::default().split_every(usize::MAX),
        accel::ReduceOpts::axis(0).split_every(usize::MAX),
    ] {
        let p = plan(&x.reduce(accel::ReduceOp::Sum, &opts));
        p.validate().unwrap();
    }
}
