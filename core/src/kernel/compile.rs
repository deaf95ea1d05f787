//! Lowers a fused region of the expression graph into one kernel program.

use crate::fast_hash::FastMap;

use super::ir::{InputSpec, Instr, Program, ProgramBuilder, Reg};
use crate::dtype::{DType, Value};
use crate::error::{Error, Result};
use crate::graph::{Graph, NodeId};
use crate::infer;
use crate::op::{Op, UnaryOp};

/// Compiles the region that computes `root`, evaluated over `out_shape`.
/// Nodes for which `inline` is true become instructions; every other node the
/// region reads becomes a program input, listed in the returned order.
/// With `acc`, the root value is converted to that dtype (a reduction's accumulator).
pub fn compile(
    graph: &Graph,
    root: NodeId,
    inline: &dyn Fn(NodeId) -> bool,
    out_shape: &[usize],
    acc: Option<DType>,
) -> Result<(Program, Vec<NodeId>)> {
    // Collect the region iteratively; arena order is a topological order.
    let mut seen: FastMap<NodeId, bool> = FastMap::default();
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        if seen.contains_key(&n) {
            continue;
        }
        let inl = inline(n);
        seen.insert(n, inl);
        if inl {
            stack.extend(graph.node(n).inputs.iter().copied());
        }
    }
    let mut order: Vec<NodeId> = seen.keys().copied().collect();
    order.sort_unstable();

    let mut b = ProgramBuilder::new();
    let mut reg: FastMap<NodeId, Reg> = FastMap::default();
    let mut externals = Vec::new();
    for id in order {
        let node = graph.node(id);
        let r = if !seen[&id] {
            externals.push(id);
            b.input(InputSpec {
                dtype: node.meta.dtype,
                shape: node.meta.shape.clone(),
            })
        } else {
            let ins: Vec<Reg> = node.inputs.iter().map(|i| reg[i]).collect();
            emit(
                &mut b,
                &node.op,
                &ins,
                &node.meta.shape,
                node.meta.dtype,
                out_shape,
            )?
        };
        reg.insert(id, r);
    }
    let mut root_reg = reg[&root];
    if let Some(dt) = acc {
        root_reg = b.cast(root_reg, dt);
    }
    Ok((b.finish(root_reg, out_shape.to_vec()), externals))
}

fn emit(
    b: &mut ProgramBuilder,
    op: &Op,
    ins: &[Reg],
    shape: &[usize],
    dtype: DType,
    out_shape: &[usize],
) -> Result<Reg> {
    Ok(match op {
        Op::Full(v) => b.push(Instr::Const(*v), dtype),
        Op::Gen(g) => {
            let nd = out_shape.len();
            let off = nd - shape.len();
            let strides = (0..nd)
                .map(|j| {
                    if j < off || (shape[j - off] == 1 && out_shape[j] != 1) {
                        0
                    } else {
                        g.index.strides[j - off]
                    }
                })
                .collect();
            b.push(
                Instr::Gen {
                    kind: g.kind.clone(),
                    base: g.index.base,
                    strides,
                },
                dtype,
            )
        }
        Op::Unary(u) => {
            let a = ins[0];
            let adt = b.dtype(a);
            match u {
                UnaryOp::Re if !adt.is_complex() => a,
                UnaryOp::Im if !adt.is_complex() => {
                    b.push(Instr::Const(Value::Bool(false).cast(adt)), adt)
                }
                UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round
                    if !adt.is_float() && !adt.is_complex() =>
                {
                    a
                }
                UnaryOp::IsNan | UnaryOp::IsFinite if !adt.is_float() && !adt.is_complex() => {
                    let finite = matches!(u, UnaryOp::IsFinite);
                    b.push(Instr::Const(Value::Bool(finite)), DType::Bool)
                }
                _ => {
                    // Transcendentals of integers compute in float.
                    let operand_dt = infer::unary_operand_dtype(*u, adt)?;
                    let a = b.cast(a, operand_dt);
                    b.push(Instr::Unary(*u, a), dtype)
                }
            }
        }
        Op::Binary(op) => {
            let (x, y) = (ins[0], ins[1]);
            let (operand_dt, _) = infer::binary_dtypes(*op, b.dtype(x), b.dtype(y))?;
            let x = b.cast(x, operand_dt);
            let y = b.cast(y, operand_dt);
            b.push(Instr::Binary(*op, x, y), dtype)
        }
        Op::Where => {
            let a = b.cast(ins[1], dtype);
            let c = b.cast(ins[2], dtype);
            b.push(Instr::Where(ins[0], a, c), dtype)
        }
        Op::Cast(dt) => b.cast(ins[0], *dt),
        other => {
            return Err(Error::Graph(format!(
                "{} cannot be part of a fused kernel",
                other.label()
            )));
        }
    })
}
