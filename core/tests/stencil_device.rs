//! A stencil task's device plan, its steps run one by one on the host,
//! gives the CPU's own run of the task, bit for bit.

#![allow(clippy::expect_used)]

#[path = "support/stencils.rs"]
mod stencils;

use std::collections::HashSet;

use accel_core::stencil::{DeviceStep, run_stencil};
use stencils::{cases, same_bits};

#[test]
fn a_plan_run_step_by_step_gives_the_stencils_bits() {
    let (mut plans, mut moves, mut fills) = (0, 0, 0);
    for case in cases() {
        let what = &case.what;
        let want = run_stencil(
            &case.kernel,
            &case.shape,
            &case.origin,
            &case.local,
            &case.pieces(),
            &case.dtypes(),
        )
        .expect("the CPU runs it");
        let plan = case.plan();
        let got = plan
            .chunk(&plan.run_on_host().expect("runs"))
            .expect("crops");
        assert!(same_bits(&want, &got), "{what}: {want:?} against {got:?}");
        // Moves within a slot never move a cell that another move reads.
        for step in &plan.steps {
            fills += usize::from(matches!(step, DeviceStep::Fill { .. }));
            if let DeviceStep::Copy { from, to, pairs } = step {
                moves += 1;
                if from == to {
                    let dst: HashSet<u32> = pairs.iter().map(|p| p[1]).collect();
                    assert!(pairs.iter().all(|p| !dst.contains(&p[0])), "{what}");
                }
            }
        }
        // A slot per live field: the input and two levels at most, one more
        // where a level reads two fields (a wave).
        let reads_two = case
            .kernel
            .levels
            .iter()
            .any(|l| l.reads.iter().any(|r| r.field != l.reads[0].field));
        let most = 3 + usize::from(reads_two);
        assert!(
            plan.slots.len() <= most,
            "{what}: {} slots",
            plan.slots.len()
        );
        plans += 1;
    }
    assert_eq!(plans, 5 * (3 * 7 + 2 * 4) + 2 * 2);
    assert_eq!((moves, fills), (144, 45), "move and fill steps");
}
