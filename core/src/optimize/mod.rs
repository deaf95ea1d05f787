//! Graph rewrites before lowering: dead-node removal, constant folding and
//! common-subexpression elimination, in one forward pass over the arena
//! (inputs are rewritten before their consumers, so one pass reaches a fixed point).

mod band;
mod fold;
pub mod fuse;
pub mod group;
mod repeat;
mod stencil;

pub use group::{LowerOptions, auto_stencil_depth, auto_stencil_depth_whole_rows};
pub use repeat::{check as check_repeat, forget_planned_loops};

use crate::fast_hash::FastMap;

use crate::error::Result;
use crate::graph::{Graph, Node, NodeId};
use crate::op::Op;

/// Returns an equivalent graph with only live nodes, constants folded and
/// duplicates merged.
pub fn optimize(graph: &Graph) -> Result<Graph> {
    let live = graph.live();
    let mut out = Graph::new();
    let mut remap: Vec<Option<NodeId>> = vec![None; graph.len()];
    let mut seen: FastMap<CseKey, NodeId> = FastMap::default();
    for (i, node) in graph.nodes.iter().enumerate() {
        if !live[i] {
            continue;
        }
        let inputs: Vec<NodeId> = node
            .inputs
            .iter()
            .map(|&x| remap[x.index()].ok_or_else(|| dangling(i, x)))
            .collect::<Result<_>>()?;
        let mut new = Node {
            op: node.op.clone(),
            inputs,
            meta: node.meta.clone(),
        };
        if let Some(folded) = fold::fold(&out, &new)? {
            new = folded;
        }
        let key = cse_key(&new);
        let id = match seen.get(&key) {
            Some(&id) if out.node(id).meta == new.meta => id,
            _ => {
                // Unchanged nodes and folded leaves keep their checked meta.
                let id = out.push_checked_inputs(new)?;
                seen.insert(key, id);
                id
            }
        };
        remap[i] = Some(id);
    }
    out.outputs = graph
        .outputs
        .iter()
        .map(|o| remap[o.index()].ok_or_else(|| dangling(o.index(), *o)))
        .collect::<Result<_>>()?;
    Ok(out)
}

/// Whether two graphs compute the same thing node for node (user data and
/// stored arrays compared by identity): `iterate` records its step once
/// when two calls of the step build the same graph.
pub fn same_graph(a: &Graph, b: &Graph) -> bool {
    a.len() == b.len()
        && a.outputs == b.outputs
        && a.nodes
            .iter()
            .zip(&b.nodes)
            .all(|(x, y)| x.meta == y.meta && cse_key(x) == cse_key(y))
}

/// Feeds `g`'s structure to `h` as [`same_graph`] compares it (user data and
/// stored arrays by identity).
pub(crate) fn hash_graph(g: &Graph, h: &mut impl std::hash::Hasher) {
    use std::hash::Hash;
    g.outputs.hash(h);
    for n in &g.nodes {
        cse_key(n).hash(h);
    }
}

fn dangling(i: usize, x: NodeId) -> crate::error::Error {
    crate::error::Error::Graph(format!("node {i} refers to missing node {}", x.0))
}

/// Identity of a node for CSE: its op (user data by address), inputs and meta.
/// The meta enters by hash; a hit is confirmed against the node's meta.
type CseKey = (OpKey, Vec<NodeId>, u64);

/// The op part of a CSE key: structural for the common elementwise ops, the
/// printed form (which tells apart -0.0 and 0.0) for the rest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum OpKey {
    Unary(crate::op::UnaryOp),
    Binary(crate::op::BinaryOp),
    Where,
    Cast(crate::dtype::DType),
    KeepEdges(Vec<usize>),
    /// Offsets, and per axis the boundary's rule and constant's bits.
    Shift(Vec<i64>, Vec<(u8, u64)>),
    /// A constant's dtype and bits (so -0.0 and 0.0 differ).
    Full(crate::dtype::DType, u64, u64),
    Printed(String),
}

fn boundary_key(b: &crate::op::Boundary) -> (u8, u64) {
    use crate::op::Boundary;
    match b {
        Boundary::Constant(v) => (0, v.to_bits()),
        Boundary::Periodic => (1, 0),
        Boundary::Reflect => (2, 0),
        Boundary::Nearest => (3, 0),
        Boundary::Fixed => (4, 0),
    }
}

fn value_key(v: &crate::dtype::Value) -> OpKey {
    let (lo, hi) = v.bits();
    OpKey::Full(v.dtype(), lo, hi)
}

fn cse_key(n: &Node) -> CseKey {
    let op = match &n.op {
        Op::Unary(u) => OpKey::Unary(*u),
        Op::Binary(b) => OpKey::Binary(*b),
        Op::Where => OpKey::Where,
        Op::Cast(d) => OpKey::Cast(*d),
        Op::KeepEdges { depth } => OpKey::KeepEdges(depth.clone()),
        Op::Shift { offset, boundary } => {
            OpKey::Shift(offset.clone(), boundary.iter().map(boundary_key).collect())
        }
        Op::Full(v) => value_key(v),
        Op::Source(h) => OpKey::Printed(format!("source@{:p}", std::sync::Arc::as_ptr(h))),
        Op::Persisted(p) => OpKey::Printed(format!("persisted {} {}", p.job, p.stage.0)),
        Op::Held(h) => OpKey::Printed(format!("held@{:p}", std::sync::Arc::as_ptr(h))),
        Op::Repeat(r) => OpKey::Printed(format!("repeat@{:p}", std::sync::Arc::as_ptr(r))),
        Op::Read(s) => OpKey::Printed(format!("read@{:p}", std::sync::Arc::as_ptr(s))),
        Op::MapBlocks(c) => OpKey::Printed(format!("map_blocks@{:p}", std::sync::Arc::as_ptr(c))),
        other => OpKey::Printed(format!("{other:?}")),
    };
    let meta = {
        use std::hash::{Hash, Hasher};
        let mut h = crate::fast_hash::Fnv::default();
        n.meta.hash(&mut h);
        h.finish()
    };
    (op, n.inputs.clone(), meta)
}
