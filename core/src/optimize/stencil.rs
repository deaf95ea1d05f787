//! Lowers a group holding stencil ops into a [`StencilKernel`]: every node the
//! group needs whole (read shifted, kept at the edges, or the root) becomes a
//! level computed on the halo its readers need; the rest is inlined into the
//! levels' programs.

use crate::fast_hash::{FastMap, FastSet};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::graph::{Graph, NodeId};
use crate::kernel::{Executable, compile::compile};
use crate::op::{Boundary, Op};
use crate::stencil::{Keep, Level, Read, StencilKernel};

use super::group::Assign;

/// The kernel and its stage inputs (nodes computed elsewhere), in order.
pub fn lower_stencil(
    graph: &Graph,
    root: NodeId,
    members: &[NodeId],
    assign: &[Assign],
    loops: &crate::loops::Index,
) -> Result<(StencilKernel, Vec<NodeId>)> {
    let meta = &graph.node(root).meta;
    let nd = meta.shape.len();
    let in_group: FastSet<NodeId> = members.iter().copied().collect();
    let inline_gen = |x: NodeId| assign[x.index()] == Assign::Inline;
    let mut sorted: Vec<NodeId> = members.to_vec();
    sorted.sort_unstable();

    let mut boundary: Option<Vec<Boundary>> = None;
    let mut field_nodes: FastSet<NodeId> = FastSet::default();
    field_nodes.insert(root);
    let mut externals: Vec<NodeId> = Vec::new();
    for &m in &sorted {
        let node = graph.node(m);
        match &node.op {
            Op::Shift { boundary: b, .. } => {
                if boundary.as_ref().is_some_and(|x| x != b) {
                    return Err(Error::Graph(
                        "one stencil kernel with two boundary rules".into(),
                    ));
                }
                boundary = Some(b.clone());
                field_nodes.insert(node.inputs[0]);
            }
            Op::KeepEdges { .. } => {
                field_nodes.insert(m);
                field_nodes.insert(node.inputs[1]);
            }
            _ => {}
        }
        for x in loops.region_inputs(graph, m) {
            if !in_group.contains(&x) && !inline_gen(x) && !externals.contains(&x) {
                externals.push(x);
            }
        }
    }
    for &x in &externals {
        let m = &graph.node(x).meta;
        if m.shape != meta.shape {
            return Err(Error::Shape(format!(
                "a stencil expression over {meta} reads an array of shape {:?}; \
                 broadcast arrays cannot take part in a stencil yet (compute it apart)",
                m.shape
            )));
        }
    }
    let boundary = boundary.unwrap_or_else(|| vec![Boundary::Nearest; nd]);

    // Radius of every member and external: how far around the chunk it is needed.
    let mut radius: FastMap<NodeId, Vec<usize>> = FastMap::default();
    radius.insert(root, vec![0; nd]);
    for &m in sorted.iter().rev() {
        let Some(r) = radius.get(&m).cloned() else {
            continue;
        };
        let node = graph.node(m);
        let reach: Vec<usize> = match &node.op {
            Op::Shift { offset, .. } => offset.iter().map(|o| o.unsigned_abs() as usize).collect(),
            _ => vec![0; nd],
        };
        for x in loops.region_inputs(graph, m) {
            if inline_gen(x) {
                continue;
            }
            let e = radius.entry(x).or_insert_with(|| vec![0; nd]);
            for d in 0..nd {
                e[d] = e[d].max(r[d] + reach[d]);
            }
        }
    }
    let rad = |x: NodeId| radius.get(&x).cloned().unwrap_or_else(|| vec![0; nd]);

    let mut field_of: FastMap<NodeId, u32> = FastMap::default();
    for (i, &x) in externals.iter().enumerate() {
        field_of.insert(x, i as u32);
    }
    let mut levels_at: Vec<NodeId> = sorted
        .iter()
        .copied()
        .filter(|m| field_nodes.contains(m))
        .collect();
    levels_at.sort_unstable();
    let mut levels = Vec::with_capacity(levels_at.len());
    for (j, &f) in levels_at.iter().enumerate() {
        let node = graph.node(f);
        let (top, keep) = match &node.op {
            Op::KeepEdges { depth } => (node.inputs[0], Some((node.inputs[1], depth.clone()))),
            _ => (f, None),
        };
        // Inline: group members that are neither fields nor shifts (the
        // level's own node excepted), and generated leaves.
        let inline = |x: NodeId| {
            if inline_gen(x) {
                return true;
            }
            if !in_group.contains(&x) || matches!(graph.node(x).op, Op::Shift { .. }) {
                return false;
            }
            x == top && x == f
                || !field_nodes.contains(&x) && !matches!(graph.node(x).op, Op::KeepEdges { .. })
        };
        let (program, ext) = compile(graph, top, &inline, &meta.shape, None, loops)?;
        let mut reads = Vec::with_capacity(ext.len());
        for x in ext {
            let (source, offset) = match &graph.node(x).op {
                Op::Shift { offset, .. } if in_group.contains(&x) => {
                    (graph.node(x).inputs[0], offset.clone())
                }
                _ => (x, vec![0; nd]),
            };
            let field = *field_of.get(&source).ok_or_else(|| {
                Error::Graph(format!(
                    "stencil level reads node {} before it is computed",
                    source.0
                ))
            })?;
            reads.push(Read { field, offset });
        }
        let keep = match keep {
            Some((old, depth)) => Some(Keep {
                field: *field_of.get(&old).ok_or_else(|| {
                    Error::Graph(format!(
                        "stencil keeps edges of node {} before it is computed",
                        old.0
                    ))
                })?,
                depth,
            }),
            None => None,
        };
        levels.push(Level {
            exe: Arc::new(Executable::new(program)),
            radius: rad(f),
            reads,
            keep,
        });
        field_of.insert(f, (externals.len() + j) as u32);
    }
    let inputs: Vec<Vec<usize>> = externals.iter().map(|&x| rad(x)).collect();
    let mut halo = vec![0usize; nd];
    for r in inputs.iter().chain(levels.iter().map(|l| &l.radius)) {
        for d in 0..nd {
            halo[d] = halo[d].max(r[d]);
        }
    }
    if levels.last().map(|l| &l.radius) != Some(&vec![0; nd]) {
        return Err(Error::Graph(
            "stencil output needed beyond its chunk".into(),
        ));
    }
    Ok((
        StencilKernel {
            boundary,
            halo,
            inputs,
            levels,
        },
        externals,
    ))
}
