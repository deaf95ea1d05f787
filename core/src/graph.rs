//! The expression graph: an arena of nodes in topological order.

use crate::error::{Error, Result};
use crate::infer;
use crate::op::{Meta, Op};
use crate::shape;

/// Index of a node in its [`Graph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<NodeId>,
    pub meta: Meta,
}

/// Nodes are stored inputs-first, so a forward reference (and hence a cycle)
/// cannot be represented: every walk is a plain loop over indices.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub outputs: Vec<NodeId>,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    /// Appends a node after checking it against its inputs.
    pub fn push(&mut self, node: Node) -> Result<NodeId> {
        let id = NodeId(self.nodes.len() as u32);
        for &i in &node.inputs {
            if i.index() >= self.nodes.len() {
                return Err(Error::Graph(format!(
                    "node {} ({}) refers to node {} that is not defined before it (cyclic or unknown input)",
                    id.0,
                    node.op.label(),
                    i.0
                )));
            }
        }
        let metas: Vec<&Meta> = node.inputs.iter().map(|i| &self.node(*i).meta).collect();
        validate_node(&node.op, &metas, &node.meta)?;
        self.nodes.push(node);
        Ok(id)
    }

    /// Appends a node whose meta was already inferred from these inputs (by
    /// the client's builders or a rewrite that keeps it); checks only that its
    /// inputs come before it.
    pub fn push_checked_inputs(&mut self, node: Node) -> Result<NodeId> {
        let id = NodeId(self.nodes.len() as u32);
        if let Some(i) = node.inputs.iter().find(|i| i.index() >= self.nodes.len()) {
            return Err(Error::Graph(format!(
                "node {} ({}) refers to node {} that is not defined before it (cyclic or unknown input)",
                id.0,
                node.op.label(),
                i.0
            )));
        }
        self.nodes.push(node);
        Ok(id)
    }

    /// Re-checks a graph built elsewhere (e.g. received over the wire).
    pub fn validated(nodes: Vec<Node>, outputs: Vec<NodeId>) -> Result<Graph> {
        let mut g = Graph::new();
        for n in nodes {
            g.push(n)?;
        }
        if let Some(bad) = outputs.iter().find(|o| o.index() >= g.len()) {
            return Err(Error::Graph(format!(
                "output refers to unknown node {}",
                bad.0
            )));
        }
        g.outputs = outputs;
        Ok(g)
    }

    /// Number of consumers of each node (outputs count as one).
    pub fn consumer_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.nodes.len()];
        for n in &self.nodes {
            for i in &n.inputs {
                counts[i.index()] += 1;
            }
        }
        for o in &self.outputs {
            counts[o.index()] += 1;
        }
        counts
    }

    /// Which nodes the outputs depend on.
    pub fn live(&self) -> Vec<bool> {
        let mut live = vec![false; self.nodes.len()];
        for o in &self.outputs {
            live[o.index()] = true;
        }
        for i in (0..self.nodes.len()).rev() {
            if live[i] {
                for inp in &self.nodes[i].inputs {
                    live[inp.index()] = true;
                }
            }
        }
        live
    }
}

fn arity(op: &Op) -> Option<usize> {
    match op {
        Op::Source(_)
        | Op::Read(_)
        | Op::Persisted(_)
        | Op::Held(_)
        | Op::Full(_)
        | Op::Gen(_)
        | Op::LoopArg { .. }
        | Op::RepeatArg => Some(0),
        Op::Loop { states, .. } => Some(2 * *states as usize + 1),
        Op::Unary(_)
        | Op::Cast(_)
        | Op::Reduce(_)
        | Op::Remap(_)
        | Op::Reshape
        | Op::Scan { .. }
        | Op::Shift { .. }
        | Op::Repeat(_) => Some(1),
        Op::Binary(_) | Op::KeepEdges { .. } | Op::MatMul { .. } => Some(2),
        Op::Where => Some(3),
        Op::Concat { .. } | Op::MapBlocks(_) => None,
    }
}

/// Checks that `meta` is exactly what `op` produces from `inputs`.
pub fn validate_node(op: &Op, inputs: &[&Meta], meta: &Meta) -> Result<()> {
    if let Some(n) = arity(op)
        && n != inputs.len()
    {
        return Err(Error::Graph(format!(
            "{} takes {n} inputs, got {}",
            op.label(),
            inputs.len()
        )));
    }
    if meta.chunks.shape() != meta.shape {
        return Err(Error::Graph(format!(
            "{}: chunks {:?} do not cover shape {:?}",
            op.label(),
            meta.chunks.0,
            meta.shape
        )));
    }
    let expected = match op {
        Op::Persisted(_) => return Ok(()),
        Op::Held(h) => {
            h.validate().map_err(Error::Graph)?;
            if h.meta != *meta {
                return Err(Error::Graph(format!(
                    "persisted data ({}) does not match {meta}",
                    h.meta
                )));
            }
            return Ok(());
        }
        Op::MapBlocks(_) => {
            crate::blocks::infer(inputs, meta)?;
            return Ok(());
        }
        Op::Read(s) => {
            if s.shape != meta.shape || s.dtype != meta.dtype {
                return Err(Error::Graph(format!(
                    "{} holds {} {:?}, declared as {meta}",
                    s.path.display(),
                    s.dtype,
                    s.shape
                )));
            }
            return Ok(());
        }
        Op::Source(h) => {
            if h.shape != meta.shape
                || h.data.len() != shape::size(&h.shape)
                || h.data.dtype() != meta.dtype
            {
                return Err(Error::Graph(format!(
                    "source data ({} {:?}, {} elements) does not match {meta}",
                    h.data.dtype(),
                    h.shape,
                    h.data.len()
                )));
            }
            return Ok(());
        }
        Op::Full(v) => {
            if v.dtype() != meta.dtype {
                return Err(Error::Graph(format!("full({v}) declared as {meta}")));
            }
            return Ok(());
        }
        Op::Gen(g) => {
            if g.index.strides.len() != meta.shape.len() {
                return Err(Error::Graph(format!(
                    "generator index has {} strides for {meta}",
                    g.index.strides.len()
                )));
            }
            if meta.dtype == crate::dtype::DType::C128 || meta.dtype == crate::dtype::DType::Bool {
                return Err(Error::DType(format!(
                    "generators produce numbers, not {}",
                    meta.dtype
                )));
            }
            return Ok(());
        }
        Op::Unary(u) => infer::unary(*u, inputs[0])?,
        Op::Binary(b) => infer::binary(*b, inputs[0], inputs[1])?,
        Op::Where => infer::where_(inputs[0], inputs[1], inputs[2])?,
        Op::Cast(d) => infer::cast(inputs[0], *d),
        Op::Reduce(spec) => infer::reduce(inputs[0], spec)?,
        Op::Remap(m) => infer::remap(inputs[0], m, &meta.shape, Some(meta.chunks.clone()))?,
        Op::Concat { axis } => infer::concat(inputs, *axis)?,
        Op::MatMul { split_every } => infer::matmul(inputs[0], inputs[1], *split_every)?,
        Op::Scan { op, axis } => infer::scan(inputs[0], *op, *axis)?,
        Op::Shift { offset, boundary } => infer::shift(inputs[0], offset, boundary)?,
        Op::KeepEdges { depth } => infer::keep_edges(inputs[0], inputs[1], depth)?,
        Op::Loop { states, result, .. } => infer::loop_(inputs, *states, *result)?,
        Op::LoopArg { .. } => {
            if !meta.shape.is_empty() {
                return Err(Error::Graph(format!("a loop argument is 0-d, not {meta}")));
            }
            return Ok(());
        }
        Op::Repeat(r) => {
            crate::optimize::check_repeat(r, inputs[0])?;
            inputs[0].clone()
        }
        Op::RepeatArg => return Ok(()),
        Op::Reshape => {
            infer::reshape(inputs[0], &meta.shape)?;
            Meta {
                dtype: inputs[0].dtype,
                ..meta.clone()
            }
        }
    };
    if &expected != meta {
        return Err(Error::Graph(format!(
            "{} produces {expected}, but the node declares {meta}",
            op.label()
        )));
    }
    Ok(())
}
