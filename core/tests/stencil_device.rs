//! A stencil task's device plan, its steps run one by one on the host,
//! gives the CPU's own run of the task, bit for bit.

#![allow(clippy::expect_used)]

#[path = "support/stencils.rs"]
mod stencils;

use std::collections::HashSet;

use accel_core::dtype::DType;
use accel_core::stencil::{DeviceStep, run_stencil};
use stencils::{cases, same_bits};

#[test]
fn a_plan_run_step_by_step_gives_the_stencils_bits() {
    let (mut plans, mut moves) = (0, 0);
    for case in cases() {
        let what = &case.what;
        let want = run_stencil(
            &case.kernel,
            &case.shape,
            &case.origin,
            &case.local,
            &case.pieces(),
            &[DType::F64],
        )
        .expect("the CPU runs it");
        let plan = case.plan();
        let got = plan
            .chunk(&plan.run_on_host().expect("runs"))
            .expect("crops");
        assert!(same_bits(&want, &got), "{what}: {want:?} against {got:?}");
        // Moves within a slot never move a cell that another move reads.
        for step in &plan.steps {
            if let DeviceStep::Copy { from, to, pairs } = step {
                moves += 1;
                if from == to {
                    let dst: HashSet<u32> = pairs.iter().map(|p| p[1]).collect();
                    assert!(pairs.iter().all(|p| !dst.contains(&p[0])), "{what}");
                }
            }
        }
        // A slot per live field: the input and two levels at most.
        assert!(plan.slots.len() <= 3, "{what}: {} slots", plan.slots.len());
        plans += 1;
    }
    assert_eq!(plans, 5 * 3 * 7);
    assert_eq!(moves, 96);
}
