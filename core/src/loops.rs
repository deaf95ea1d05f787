//! Elementwise loops (user kernels with early exits, `Op::Loop`): which nodes
//! form a loop's body, what the body captures from outside, and the rules
//! that keep a body inside its loop.
//!
//! A loop node's inputs are `[init.., next.., stop]`. Its body is every node
//! between its [`Op::LoopArg`]s and `next`/`stop`: those nodes exist only
//! inside the loop's kernel (they are recomputed per trip, never stored).
//! Everything else the body reads is *captured*: computed once by the
//! enclosing kernel and handed to every trip.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::fast_hash::FastMap;
use crate::graph::{Graph, NodeId};
use crate::op::Op;

/// The body of one loop node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoopBody {
    /// Nodes computed per trip, in graph (topological) order.
    pub body: Vec<NodeId>,
    /// Nodes outside the body that it reads, in graph order.
    pub captured: Vec<NodeId>,
}

/// The loops of a graph, analysed once per lowering. Empty (and free) for
/// graphs without loops.
#[derive(Clone, Debug, Default)]
pub struct Index {
    bodies: FastMap<NodeId, LoopBody>,
    /// Per body node: the loops whose body holds it directly.
    member: FastMap<NodeId, Vec<NodeId>>,
}

/// `(init, next, stop)` of a loop node's inputs.
pub fn parts(inputs: &[NodeId], states: u32) -> (&[NodeId], &[NodeId], NodeId) {
    let s = states as usize;
    (&inputs[..s], &inputs[s..2 * s], inputs[2 * s])
}

fn loop_error(msg: String) -> Error {
    Error::Graph(format!("invalid loop: {msg}"))
}

impl Index {
    /// Checks the graph's loops and finds their bodies.
    pub fn new(graph: &Graph) -> Result<Index> {
        if !graph
            .nodes
            .iter()
            .any(|n| matches!(n.op, Op::Loop { .. } | Op::LoopArg { .. }))
        {
            return Ok(Index::default());
        }
        let open = open_loops(graph)?;
        let mut index = Index::default();
        for (i, node) in graph.nodes.iter().enumerate() {
            let Op::Loop { id, states, .. } = node.op else {
                continue;
            };
            let l = NodeId(i as u32);
            let (_, next, stop) = parts(&node.inputs, states);
            let mut seen: FastMap<NodeId, bool> = FastMap::default();
            let mut stack: Vec<NodeId> = next.iter().copied().chain([stop]).collect();
            while let Some(x) = stack.pop() {
                if seen.contains_key(&x) {
                    continue;
                }
                let inside = open[x.index()].contains(&id);
                seen.insert(x, inside);
                if inside {
                    stack.extend(index.region_inputs(graph, x));
                }
            }
            let mut body = LoopBody::default();
            for (x, inside) in seen {
                if inside {
                    body.body.push(x);
                    index.member.entry(x).or_default().push(l);
                } else {
                    body.captured.push(x);
                }
            }
            body.body.sort_unstable();
            body.captured.sort_unstable();
            index.bodies.insert(l, body);
        }
        Ok(index)
    }

    pub fn is_empty(&self) -> bool {
        self.bodies.is_empty()
    }

    /// The body of loop node `l`.
    pub fn body(&self, l: NodeId) -> Result<&LoopBody> {
        self.bodies
            .get(&l)
            .ok_or_else(|| loop_error(format!("node {} is not a loop", l.0)))
    }

    /// Whether `x` exists only inside some loop's body.
    pub fn in_body(&self, x: NodeId) -> bool {
        self.member.contains_key(&x)
    }

    /// The loops whose kernels compute `x`: `x` itself outside any body, else
    /// the outermost loops holding it.
    pub fn owners(&self, x: NodeId) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut stack = vec![x];
        while let Some(y) = stack.pop() {
            match self.member.get(&y) {
                Some(loops) => stack.extend(loops.iter().copied()),
                None if !out.contains(&y) => out.push(y),
                None => {}
            }
        }
        out
    }

    /// What computing `x` inside a kernel reads: a loop's initial values and
    /// captures (its body is part of it), another node's inputs.
    pub fn region_inputs(&self, graph: &Graph, x: NodeId) -> Vec<NodeId> {
        let node = graph.node(x);
        match (&node.op, self.bodies.get(&x)) {
            (Op::Loop { states, .. }, Some(b)) => {
                let (init, _, _) = parts(&node.inputs, *states);
                init.iter().chain(&b.captured).copied().collect()
            }
            _ => node.inputs.clone(),
        }
    }
}

/// Per node, the loops whose arguments it depends on without passing through
/// the loop itself (sorted ids; empty outside every body). Checks that only
/// elementwise operations depend on loop arguments, that arguments never
/// escape their loop, and that every loop's arguments and nodes agree.
fn open_loops(graph: &Graph) -> Result<Vec<Vec<u64>>> {
    let mut open: Vec<Vec<u64>> = vec![Vec::new(); graph.len()];
    // Per loop id: the arguments seen (index, dtype), and the loop's inputs.
    let mut args: FastMap<u64, Vec<(u32, DType)>> = FastMap::default();
    let mut loops: FastMap<u64, (Vec<NodeId>, u32, u32)> = FastMap::default();
    for (i, node) in graph.nodes.iter().enumerate() {
        let union = |ids: &[NodeId], open: &[Vec<u64>]| {
            let mut u: Vec<u64> = ids.iter().flat_map(|x| open[x.index()].clone()).collect();
            u.sort_unstable();
            u.dedup();
            u
        };
        open[i] = match &node.op {
            Op::LoopArg { id, index } => {
                args.entry(*id).or_default().push((*index, node.meta.dtype));
                vec![*id]
            }
            Op::Loop {
                id,
                states,
                max_trips,
                ..
            } => {
                let (init, _, _) = parts(&node.inputs, *states);
                let outer = union(init, &open);
                if outer.contains(id) {
                    return Err(loop_error(
                        "a loop's initial values cannot use its own arguments".into(),
                    ));
                }
                check_loop(graph, node, *id, &args)?;
                let this = (node.inputs.clone(), *states, *max_trips);
                match loops.get(id) {
                    Some(prev) if *prev != this => {
                        return Err(loop_error(format!(
                            "two loops share the id {id} but not their inputs"
                        )));
                    }
                    Some(_) => {}
                    None => {
                        loops.insert(*id, this);
                    }
                }
                let mut all = union(&node.inputs, &open);
                all.retain(|x| x != id);
                all
            }
            op => {
                let u = union(&node.inputs, &open);
                if !u.is_empty() && !op.is_elementwise() {
                    return Err(loop_error(format!(
                        "only elementwise operations can run inside a loop's body, not {}",
                        op.label()
                    )));
                }
                u
            }
        };
    }
    for (id, _) in args.iter() {
        if !loops.contains_key(id) {
            return Err(loop_error(format!(
                "an argument of loop {id} is used outside any loop"
            )));
        }
    }
    for o in &graph.outputs {
        if !open[o.index()].is_empty() {
            return Err(loop_error(
                "a value computed from a loop's arguments escapes the loop".into(),
            ));
        }
    }
    Ok(open)
}

/// The arguments of loop `id` seen so far match its state variables.
fn check_loop(
    graph: &Graph,
    node: &crate::graph::Node,
    id: u64,
    args: &FastMap<u64, Vec<(u32, DType)>>,
) -> Result<()> {
    let Op::Loop { states, .. } = node.op else {
        return Ok(());
    };
    let (init, _, _) = parts(&node.inputs, states);
    for &(index, dtype) in args.get(&id).map(Vec::as_slice).unwrap_or(&[]) {
        let want = match init.get(index as usize) {
            Some(x) => graph.node(*x).meta.dtype,
            None if index == states => DType::I64,
            None => {
                return Err(loop_error(format!(
                    "argument {index} of a loop with {states} state variables"
                )));
            }
        };
        if want != dtype {
            return Err(loop_error(format!(
                "argument {index} is declared {dtype} but the loop's state is {want}"
            )));
        }
    }
    Ok(())
}
