//! Which nodes fuse together: every node joins the group of its consumers when
//! they all agree, otherwise it is materialized as the root of a group of its
//! own. Stencil ops (`Shift`, `KeepEdges`) join groups too, which makes the
//! group a stencil kernel computing its members on a halo around each chunk;
//! the halo a group may grow to is capped (temporal blocking).

use crate::fast_hash::FastMap;

use crate::graph::{Graph, NodeId};
use crate::op::{Boundary, Op};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Assign {
    Dead,
    /// Recomputed inside every kernel that reads it.
    Inline,
    /// Member of the group whose root is this node.
    Group(NodeId),
}

/// Options of lowering.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LowerOptions {
    /// Largest halo, in cells, that fused stencil steps may need around a
    /// chunk (k steps of a one-cell stencil need k). `None`: the rule of
    /// [`auto_stencil_depth`].
    pub stencil_depth: Option<usize>,
    /// Keep the chunks of small stencil loops as they are, rather than run
    /// them on row bands (see `band`).
    pub keep_loop_chunks: bool,
    /// Cores the plan runs on, where known (the embedded client): a small
    /// loop takes at most one band per core.
    pub cores: Option<usize>,
    /// Stencil tasks go to a GPU (the embedded client with a usable one): a larger
    /// loop keeps its chunks rather than take a band per core, since the
    /// device runs its tasks one after another and pays per task.
    pub gpu: bool,
}

/// What a task costs beyond its work, in cell updates (≈ 40 µs at 0.5 ns
/// per update: scheduling, halo exchange, padding).
pub const TASK_COST_UPDATES: f64 = 80_000.0;

/// What a task pays per cell of a chunk too large to stay in the caches
/// between tasks (from [`crate::stencil::STREAM_CHUNK_BYTES`] of float64 on,
/// which the kernel writes past them), in cell updates: the input read from
/// memory and the result written back, 16 bytes at the few GB/s one core
/// streams. Fitted to heat on a 2000² plate: in 1000² chunks, D = 3, 5, 8,
/// 10, 12 and 16 took 386, 300, 262, 283, 306 and 402 ms, which this cost
/// (between 4 and 6) reproduces; without it the rule picked D = 5.
pub const STREAMED_CELL_UPDATES: f64 = 5.0;

/// The halo depth D (cells) to fuse for chunks of `chunk` cells per axis:
/// the D minimizing the estimated time per step,
/// `(TASK_COST + STREAMED + Σ_{r<D} cells(r, D)) / D`, where the step r
/// cells from the last one is computed, in every band of rows the kernel
/// runs (see `stencil::run`), on the band's rows grown by r along the first
/// axis and on the whole padded width (grown by D) along the others, as the
/// kernel lays them out; `STREAMED` is the chunk's trip through memory
/// ([`STREAMED_CELL_UPDATES`]). Small chunks fuse many steps to amortize the
/// per-task cost, large chunks fewer, since redundant halo work (per band)
/// grows with D. Capped at the smallest chunk side (halos then come from the
/// nearest chunks) and at 64.
pub fn auto_stencil_depth(chunk: &[usize]) -> usize {
    depth_rule(chunk, false)
}

/// [`auto_stencil_depth`] for chunks whose last axis spans the whole array
/// between fixed edges (row bands): the kernel does not pad those columns
/// (nothing beyond the edges is read but by kept cells), so only the rows
/// grow with D and deeper blocks pay.
pub fn auto_stencil_depth_whole_rows(chunk: &[usize]) -> usize {
    depth_rule(chunk, true)
}

fn depth_rule(chunk: &[usize], whole_last: bool) -> usize {
    let sides: Vec<f64> = chunk
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| c as f64)
        .collect();
    let smallest = chunk.iter().copied().filter(|&c| c > 0).min().unwrap_or(1);
    let last = sides.len().saturating_sub(1);
    let rows = sides.first().copied().unwrap_or(1.0);
    // Cells of one padded row (every axis but the first) at depth D.
    let row_cells = |depth: usize| {
        sides
            .iter()
            .enumerate()
            .skip(1)
            .map(|(k, &c)| {
                let grown = if whole_last && k == last { 0 } else { depth };
                c + 2.0 * grown as f64
            })
            .product::<f64>()
    };
    let chunk_cells: f64 = sides.iter().product();
    let streamed = if chunk_cells * 8.0 >= crate::stencil::STREAM_CHUNK_BYTES as f64 {
        STREAMED_CELL_UPDATES * chunk_cells
    } else {
        0.0
    };
    let mut best = (f64::INFINITY, 1);
    for d in 1..=smallest.min(64) {
        let width = row_cells(d);
        // The steps run band by band: in each band, the step r cells from
        // the last one is computed on the band's rows grown by r.
        let band = crate::stencil::band_rows_of(width as usize, d, rows as usize).max(1);
        let bands = (rows as usize).div_ceil(band) as f64;
        let work: f64 = (0..d)
            .map(|r| (rows + bands * 2.0 * r as f64) * width)
            .sum();
        let per_step = (TASK_COST_UPDATES + streamed + work) / d as f64;
        if per_step < best.0 {
            best = (per_step, d);
        }
    }
    best.1
}

/// Per group: what a stencil group has committed to.
#[derive(Clone, Debug, Default)]
struct GroupState {
    boundary: Option<Vec<Boundary>>,
    /// Halo cap of the group (cells per axis).
    depth: usize,
    reduction: bool,
    /// The chunk of a group whose depth is the automatic rule's and whose
    /// last axis is one chunk: its depth is chosen again for unpadded
    /// columns once the group's boundary turns out fixed there.
    whole_rows: Option<Vec<usize>>,
}

impl GroupState {
    fn set_boundary(&mut self, boundary: &[Boundary]) {
        if self.boundary.is_none()
            && boundary.last() == Some(&Boundary::Fixed)
            && let Some(chunk) = self.whole_rows.take()
        {
            self.depth = auto_stencil_depth_whole_rows(&chunk);
        }
        self.boundary = Some(boundary.to_vec());
    }
}

/// Assigns every live node to a group, from the outputs backwards.
pub fn assign(
    graph: &Graph,
    live: &[bool],
    consumers: &[Vec<NodeId>],
    is_output: &[bool],
    opts: &LowerOptions,
    loops: &crate::loops::Index,
) -> Vec<Assign> {
    let n = graph.len();
    let mut assign = vec![Assign::Dead; n];
    // Halo each node must be computed on, per axis, within its group.
    let mut radius: Vec<Vec<usize>> = vec![Vec::new(); n];
    // Axes along which some consumer in the group wraps around.
    let mut periodic: Vec<Vec<bool>> = vec![Vec::new(); n];
    let mut groups: FastMap<NodeId, GroupState> = FastMap::default();
    let nd_of = |i: usize| graph.nodes[i].meta.shape.len();
    let near = near_reach(graph, live, consumers);

    for i in (0..n).rev() {
        if !live[i] {
            continue;
        }
        let id = NodeId(i as u32);
        let node = &graph.nodes[i];
        let nd = nd_of(i);
        // A loop's body lives in the kernel of its loop, recomputed per trip.
        if loops.in_body(id) {
            assign[i] = Assign::Inline;
            continue;
        }
        let own = |groups: &mut FastMap<NodeId, GroupState>| {
            let chunk = node.meta.chunks.max_chunk();
            let whole_last = nd >= 2 && node.meta.chunks.0.last().is_some_and(|c| c.len() == 1);
            groups.insert(
                id,
                GroupState {
                    boundary: None,
                    depth: opts
                        .stencil_depth
                        .unwrap_or_else(|| auto_stencil_depth(&chunk)),
                    reduction: matches!(node.op, Op::Reduce(_)),
                    whole_rows: (opts.stencil_depth.is_none() && whole_last).then_some(chunk),
                },
            );
            Assign::Group(id)
        };
        let fusable_kind = node.op.is_elementwise() || node.op.is_stencil();
        if !fusable_kind || is_output[i] {
            assign[i] = own(&mut groups);
            if let Op::Shift { boundary, .. } = &node.op
                && let Some(g) = groups.get_mut(&id)
            {
                g.set_boundary(boundary);
            }
            continue;
        }

        // The consumers' common group, if they agree.
        let mut common: Option<Option<NodeId>> = None;
        // A loop's body reads what it captures in the loop's kernel.
        let effective: Vec<NodeId> = if loops.is_empty() {
            Vec::new()
        } else {
            consumers[i].iter().flat_map(|c| loops.owners(*c)).collect()
        };
        let effective = if loops.is_empty() {
            &consumers[i]
        } else {
            &effective
        };
        for c in effective {
            let cop = &graph.node(*c).op;
            let cg = match assign[c.index()] {
                Assign::Group(g)
                    if cop.is_elementwise() || cop.is_stencil() || matches!(cop, Op::Reduce(_)) =>
                {
                    Some(g)
                }
                _ => None,
            };
            common = match common {
                None => Some(cg),
                Some(prev) if prev == cg => Some(prev),
                Some(_) => Some(None),
            };
        }
        // Halo and wrap-around this node inherits from its consumers, and
        // whether some consumer needs it as a whole field (shifted or kept).
        let mut needs_field = false;
        let mut wraps = vec![false; nd];
        let mut r = vec![0usize; nd];
        for c in &consumers[i] {
            let cn = graph.node(*c);
            if cn.meta.shape.len() != nd {
                continue;
            }
            let ci = c.index();
            let (reach, field) = match &cn.op {
                Op::Shift { offset, .. } => (
                    offset.iter().map(|o| o.unsigned_abs() as usize).collect(),
                    true,
                ),
                Op::KeepEdges { .. } => (vec![0; nd], cn.inputs.get(1) == Some(&id)),
                _ => (vec![0; nd], false),
            };
            needs_field |= field;
            for d in 0..nd {
                let cr = radius[ci].get(d).copied().unwrap_or(0);
                r[d] = r[d].max(cr + reach[d]);
                wraps[d] |= periodic[ci].get(d).copied().unwrap_or(false);
            }
            if let Op::Shift { boundary, .. } = &cn.op {
                for (d, b) in boundary.iter().enumerate() {
                    wraps[d] |= *b == Boundary::Periodic;
                }
            }
        }

        if node.op.is_generated() {
            let all_fusable = consumers[i].iter().all(|c| {
                let op = &graph.node(*c).op;
                op.is_elementwise()
                    || matches!(op, Op::Reduce(_))
                    || matches!(op, Op::KeepEdges { .. })
            });
            // A generated array read shifted, kept, or on the far side of a
            // periodic edge must be stored: kernels generate by global index,
            // which does not wrap around.
            let wrapped = (0..nd).any(|d| wraps[d] && r[d] > 0);
            assign[i] = if all_fusable && !needs_field && !wrapped {
                Assign::Inline
            } else {
                own(&mut groups)
            };
            continue;
        }

        let Some(Some(g)) = common else {
            assign[i] = own(&mut groups);
            continue;
        };
        let (depth, reduction, group_boundary) = match groups.get(&g) {
            Some(st) => (st.depth, st.reduction, st.boundary.as_ref()),
            None => (1, false, None),
        };
        let same_shape = node.meta.shape == graph.node(g).meta.shape
            && node.meta.chunks == graph.node(g).meta.chunks;
        let stencil_op = node.op.is_stencil();
        let mut joins = true;
        if stencil_op && (reduction || !same_shape) {
            joins = false;
        }
        // Keep the group's halo within its cap: the fields this node's own
        // step reads must fit around the chunk.
        let fits = (0..nd).all(|d| {
            let need = r[d] + near[i].get(d).copied().unwrap_or(0);
            need <= depth && need <= node.meta.shape[d]
        });
        if !fits {
            joins = false;
        }
        if let Op::Shift { boundary, .. } = &node.op
            && let Some(b) = group_boundary
            && b != boundary
        {
            joins = false;
        }
        if r.iter().any(|&x| x > 0) && !same_shape {
            joins = false;
        }
        if !joins {
            assign[i] = own(&mut groups);
            if let Op::Shift { boundary, .. } = &node.op
                && let Some(s) = groups.get_mut(&id)
            {
                s.set_boundary(boundary);
            }
            continue;
        }
        if let Op::Shift { boundary, .. } = &node.op
            && let Some(s) = groups.get_mut(&g)
        {
            s.set_boundary(boundary);
        }
        assign[i] = Assign::Group(g);
        // Zero halos and no wrap-around are stored as empty (most nodes).
        if r.iter().any(|&x| x > 0) {
            radius[i] = r;
        }
        if wraps.iter().any(|&w| w) {
            periodic[i] = wraps;
        }
    }
    assign
}

/// Per node, how far beyond its own cells computing it reads, per axis:
/// the widest shift between it and the fields it is computed from (nodes
/// read shifted or kept, which are stored whole at the start of a step).
fn near_reach(graph: &Graph, live: &[bool], consumers: &[Vec<NodeId>]) -> Vec<Vec<usize>> {
    let n = graph.len();
    let is_field: Vec<bool> = (0..n)
        .map(|i| {
            consumers[i].iter().any(|c| {
                let cn = graph.node(*c);
                matches!(cn.op, Op::Shift { .. })
                    || matches!(cn.op, Op::KeepEdges { .. })
                        && cn.inputs.get(1) == Some(&NodeId(i as u32))
            })
        })
        .collect();
    let mut near: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        if !live[i] {
            continue;
        }
        let node = &graph.nodes[i];
        let nd = node.meta.shape.len();
        let reach: Vec<usize> = match &node.op {
            Op::Shift { offset, .. } => offset.iter().map(|o| o.unsigned_abs() as usize).collect(),
            op if op.is_elementwise() || op.is_stencil() => {
                let mut r: Vec<usize> = Vec::new();
                for x in &node.inputs {
                    // Fields start a step; empty means no reach.
                    if is_field[x.index()] || near[x.index()].len() != nd {
                        continue;
                    }
                    if r.is_empty() {
                        r = vec![0; nd];
                    }
                    for d in 0..nd {
                        r[d] = r[d].max(near[x.index()][d]);
                    }
                }
                r
            }
            _ => Vec::new(),
        };
        if reach.iter().any(|&x| x > 0) {
            near[i] = reach;
        }
    }
    near
}

#[cfg(test)]
mod tests {
    use super::{auto_stencil_depth, auto_stencil_depth_whole_rows};

    #[test]
    fn depth_rule_balances_task_cost_and_redundant_work() {
        for c in [10, 25, 50, 100, 200, 500, 1000, 2000] {
            println!("{c}²: {}", auto_stencil_depth(&[c, c]));
        }
        // Small chunks fuse many steps, large ones few; never beyond a chunk side.
        assert!(auto_stencil_depth(&[100, 100]) > auto_stencil_depth(&[1000, 1000]));
        assert!(auto_stencil_depth(&[3, 3]) <= 3);
        assert_eq!(auto_stencil_depth(&[1, 1]), 1);
        assert!(auto_stencil_depth(&[1_000_000]) <= 64);
        // Chunks past the caches pay their trip through memory once per
        // task: heat on 1000² chunks ran fastest at D = 8 (see
        // STREAMED_CELL_UPDATES); chunks that stay in cache are as before.
        assert_eq!(auto_stencil_depth(&[1000, 1000]), 8);
        assert_eq!(auto_stencil_depth(&[100, 100]), 15);
    }

    #[test]
    fn unpadded_columns_fuse_deeper() {
        for c in [[100, 200], [50, 200], [1000, 2000]] {
            println!(
                "{c:?}: {} padded, {} whole rows",
                auto_stencil_depth(&c),
                auto_stencil_depth_whole_rows(&c)
            );
        }
        // 100 × 200: per step 80000/D + 200·(100 + D - 1), least at D = 20;
        // with the columns padded by D it is 13.
        assert_eq!(auto_stencil_depth_whole_rows(&[100, 200]), 20);
        assert_eq!(auto_stencil_depth(&[100, 200]), 13);
        // One axis: nothing to leave unpadded but the rows themselves.
        assert_eq!(
            auto_stencil_depth_whole_rows(&[500]),
            auto_stencil_depth(&[500])
        );
    }
}
