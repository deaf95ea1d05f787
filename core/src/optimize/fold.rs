//! Constant folding: operations on constants, and structural views of
//! generated arrays, become new constants or generators.

use crate::buffer::Buffer;
use crate::dtype::{DType, Value};
use crate::error::Result;
use crate::graph::{Graph, Node, NodeId};
use crate::kernel::{Bound, Executable, compile::compile};
use crate::op::{Affine, GenKind, Generator, Meta, Op};
use crate::shape::Chunks;

/// A replacement for `node` (whose inputs live in `g`), if one applies.
pub fn fold(g: &Graph, node: &Node) -> Result<Option<Node>> {
    let inputs: Vec<&Node> = node.inputs.iter().map(|&i| g.node(i)).collect();
    let leaf = |op: Op| {
        Some(Node {
            op,
            inputs: vec![],
            meta: node.meta.clone(),
        })
    };
    match &node.op {
        op if op.is_elementwise()
            && !inputs.is_empty()
            && inputs.iter().all(|n| matches!(n.op, Op::Full(_))) =>
        {
            Ok(eval_constant(node, &inputs)?.and_then(|v| leaf(Op::Full(v))))
        }
        Op::Cast(to) => match &inputs[0].op {
            Op::Gen(g0) if cast_is_exact(g0, inputs[0].meta.dtype, *to, &inputs[0].meta.shape) => {
                Ok(leaf(Op::Gen(g0.clone())))
            }
            _ => Ok(None),
        },
        Op::Remap(map) => match &inputs[0].op {
            Op::Full(v) => Ok(leaf(Op::Full(*v))),
            Op::Gen(g0) => {
                let mut strides = vec![0i64; node.meta.shape.len()];
                let mut base = g0.index.base;
                for (d, ax) in map.axes.iter().enumerate() {
                    base += g0.index.strides[d] * ax.base;
                    if let Some((j, c)) = ax.src {
                        strides[j] += g0.index.strides[d] * c;
                    }
                }
                Ok(leaf(Op::Gen(Generator {
                    kind: g0.kind.clone(),
                    index: Affine { base, strides },
                })))
            }
            _ => Ok(None),
        },
        Op::Reshape => match &inputs[0].op {
            Op::Full(v) => Ok(leaf(Op::Full(*v))),
            Op::Gen(g0) if g0.index.strides == Affine::row_major(&inputs[0].meta.shape).strides => {
                let index = Affine {
                    base: g0.index.base,
                    ..Affine::row_major(&node.meta.shape)
                };
                Ok(leaf(Op::Gen(Generator {
                    kind: g0.kind.clone(),
                    index,
                })))
            }
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}

/// Whether generating directly in `to` gives the same values as casting.
fn cast_is_exact(g0: &Generator, from: DType, to: DType, shape: &[usize]) -> bool {
    match (from.is_float(), to) {
        (true, DType::F32 | DType::F64) => true,
        (false, DType::I32 | DType::I64) => from.is_int(),
        (false, DType::F32 | DType::F64) => {
            // Integer ranges are exact in f64 below 2^53; the f32 rounding is then the same.
            let GenKind::Arange { start, step } = g0.kind else {
                return false;
            };
            let max_counter = g0.index.base.unsigned_abs() as f64
                + shape
                    .iter()
                    .zip(&g0.index.strides)
                    .map(|(&n, &s)| n.saturating_sub(1) as f64 * s.unsigned_abs() as f64)
                    .sum::<f64>();
            start.abs() + step.abs() * max_counter < 2f64.powi(53)
        }
        _ => false,
    }
}

/// Evaluates an elementwise op on constant inputs with the kernel itself, so
/// folding and execution agree bit for bit.
fn eval_constant(node: &Node, inputs: &[&Node]) -> Result<Option<Value>> {
    let mut g = Graph::new();
    let mut ids: Vec<NodeId> = Vec::new();
    for inp in inputs {
        ids.push(g.push(Node {
            op: inp.op.clone(),
            inputs: vec![],
            meta: scalar_meta(inp.meta.dtype),
        })?);
    }
    let root = g.push(Node {
        op: node.op.clone(),
        inputs: ids,
        meta: scalar_meta(node.meta.dtype),
    })?;
    let (program, _) = compile(
        &g,
        root,
        &|_| true,
        &[],
        None,
        &crate::loops::Index::new(&g)?,
    )?;
    let exe = Executable::new(program);
    let bound = Bound::new(&exe, &[], &[], &[])?;
    let buf: Buffer = bound.run_map()?;
    Ok(buf.get(0))
}

fn scalar_meta(dtype: DType) -> Meta {
    Meta {
        shape: vec![],
        dtype,
        chunks: Chunks(vec![]),
    }
}
