//! A stencil task's device plan, its steps run one by one on the host,
//! gives the CPU's own run of the task, bit for bit.

#![allow(clippy::expect_used)]

#[path = "support/stencils.rs"]
mod stencils;

use std::collections::HashSet;
use std::sync::Arc;

use accel_core::stencil::{DeviceStep, run_stencil};
use stencils::{cases, same_bits};

#[test]
fn a_plan_run_step_by_step_gives_the_stencils_bits() {
    let (mut plans, mut moves, mut fills, mut places) = (0, 0, 0, 0);
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
        let got = plan.run_on_host().expect("runs");
        assert!(same_bits(&want, &got), "{what}: {want:?} against {got:?}");
        // The array as chunks of a third of it (a worker's): every box the
        // task needs is read from the chunk itself, never a copy of it.
        let block: Vec<usize> = case.shape.iter().map(|n| n.div_ceil(3).max(1)).collect();
        let blocks = case.blocks(&block);
        let pieces = stencils::Case::pieces_of(&blocks);
        let in_chunks = case.plan_of(&pieces);
        let got = in_chunks.run_on_host().expect("runs");
        assert!(same_bits(&want, &got), "{what} in chunks of {block:?}");
        assert!(!in_chunks.sources.is_empty(), "{what}");
        for s in &in_chunks.sources {
            assert!(blocks.iter().any(|(_, c)| Arc::ptr_eq(s, c)), "{what}");
        }
        places += in_chunks
            .steps
            .iter()
            .filter(|s| matches!(s, DeviceStep::Place { .. }))
            .count();
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
    // The inputs' ghost cells are moves and fills too.
    assert_eq!((moves, fills), (225, 85), "move and fill steps");
    assert_eq!(places, 1573, "boxes placed from chunks");
}
