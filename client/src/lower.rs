//! Turns user expressions into the core's arena graph.

use accel_core::fast_hash::FastMap;
use std::sync::Arc;

use accel_core::{Graph, Node, NodeId};

use crate::error::Result;
use crate::expr::{Array, Expr};

/// The graph computing `arrays` (in order), walked without recursion.
pub fn to_graph(arrays: &[&Array]) -> Result<Graph> {
    let mut g = Graph::new();
    let mut ids: FastMap<*const Expr, NodeId> = FastMap::default();
    let mut outputs = Vec::with_capacity(arrays.len());
    for a in arrays {
        let root = a.expr()?;
        // Post-order: a node is pushed once all its inputs have ids.
        let mut stack: Vec<(&Arc<Expr>, bool)> = vec![(root, false)];
        while let Some((e, expanded)) = stack.pop() {
            let key = Arc::as_ptr(e);
            if ids.contains_key(&key) {
                continue;
            }
            if !expanded {
                stack.push((e, true));
                for inp in e.inputs.iter().rev() {
                    if !ids.contains_key(&Arc::as_ptr(inp)) {
                        stack.push((inp, false));
                    }
                }
                continue;
            }
            let node = Node {
                op: e.op.clone(),
                inputs: e.inputs.iter().map(|i| ids[&Arc::as_ptr(i)]).collect(),
                meta: e.meta.clone(),
            };
            // Every expression was checked when it was built.
            ids.insert(key, g.push_checked_inputs(node)?);
        }
        outputs.push(ids[&Arc::as_ptr(root)]);
    }
    g.outputs = outputs;
    Ok(g)
}
