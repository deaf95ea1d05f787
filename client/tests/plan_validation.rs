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
