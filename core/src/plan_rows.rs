//! Whole-row tasks for a result written in place.
//!
//! A map stage whose chunks split the rows of a large row-major result makes
//! its tasks share every page of it: the kernel clears each fresh page long
//! before most of its writers arrive, so the page crosses the memory bus
//! twice (cleared, then written) instead of once. When the caller writes a
//! stage straight into its result, tasks over whole rows (every axis after
//! the first taken whole) each write one contiguous range: every page is
//! cleared just before one task fills it, while it is still in cache. The
//! values are the same, a task's kernel is position-independent (it reads
//! its inputs' boxes and numbers generated values from its origin).

use crate::exec::boxes::needed_box;
use crate::exec::writes_interleave;
use crate::plan::{Plan, StageId, StageKind};
use crate::shape::Chunks;

/// Widens the chunks of map stage `s` to whole rows when its tasks' writes
/// interleave and no task would then read more than one chunk of any input
/// (a scalar, a generated array, an input chunked in whole rows): wider
/// tasks must not cost input copies. Returns whether the plan changed.
///
/// Only for a stage whose chunks go nowhere but the caller's result: no
/// stage reads it and no sink stores it (the caller checks).
pub fn widen_to_rows(plan: &mut Plan, s: StageId) -> bool {
    let Some(stage) = plan.stages.get(s.index()) else {
        return false;
    };
    let meta = &stage.meta;
    if !matches!(stage.kind, StageKind::Map(_))
        || meta.shape.len() < 2
        || meta.chunks.ndim() != meta.shape.len()
        || !writes_interleave(meta)
    {
        return false;
    }
    let mut axes = vec![meta.chunks.0[0].clone()];
    axes.extend(meta.shape[1..].iter().map(|&n| vec![n]));
    let wide = Chunks(axes);
    if wide == meta.chunks {
        return false;
    }
    let mut origin = vec![0usize; meta.shape.len()];
    let mut local = meta.shape.clone();
    for &rows in &wide.0[0] {
        local[0] = rows;
        for &inp in &stage.inputs {
            let in_shape = &plan.stage(inp).meta.shape;
            let (lo, len) = needed_box(in_shape, &meta.shape, &origin, &local);
            if plan.chunks_over(inp, &lo, &len).len() > 1 {
                return false;
            }
        }
        origin[0] += rows;
    }
    let stage = &mut plan.stages[s.index()];
    stage.meta.chunks = wide;
    stage.cache = Default::default();
    true
}
