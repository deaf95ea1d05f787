//! Lowers a fused region of the expression graph into one kernel program.

use crate::fast_hash::FastMap;

use super::ir::{InputSpec, Instr, LoopInstr, Program, ProgramBuilder, Reg};
use crate::dtype::{DType, Value};
use crate::error::{Error, Result};
use crate::graph::{Graph, NodeId};
use crate::infer;
use crate::loops::{self, Index};
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
    loops: &Index,
) -> Result<(Program, Vec<NodeId>)> {
    let mut b = ProgramBuilder::new();
    let mut reg: FastMap<NodeId, Reg> = FastMap::default();
    let mut externals = Vec::new();
    let region = Region {
        graph,
        inline,
        out_shape,
        loops,
    };
    region.emit(&mut b, &[root], &mut reg, &mut |b, id| {
        externals.push(id);
        let node = graph.node(id);
        Ok(b.input(InputSpec {
            dtype: node.meta.dtype,
            shape: node.meta.shape.clone(),
        }))
    })?;
    let mut root_reg = reg[&root];
    if let Some(dt) = acc {
        root_reg = b.cast(root_reg, dt);
    }
    Ok((b.finish(root_reg, out_shape.to_vec()), externals))
}

/// What a region of the graph is lowered with.
struct Region<'a> {
    graph: &'a Graph,
    inline: &'a dyn Fn(NodeId) -> bool,
    out_shape: &'a [usize],
    loops: &'a Index,
}

type Outside<'f> = dyn FnMut(&mut ProgramBuilder, NodeId) -> Result<Reg> + 'f;

impl Region<'_> {
    /// Emits into `b` every node the `roots` need that `reg` does not hold
    /// yet: inline nodes as instructions (a loop with its body), the others
    /// through `outside`.
    fn emit(
        &self,
        b: &mut ProgramBuilder,
        roots: &[NodeId],
        reg: &mut FastMap<NodeId, Reg>,
        outside: &mut Outside<'_>,
    ) -> Result<()> {
        // Collect the region iteratively; arena order is a topological order.
        let mut seen: FastMap<NodeId, bool> = FastMap::default();
        let mut stack: Vec<NodeId> = roots.to_vec();
        while let Some(n) = stack.pop() {
            if seen.contains_key(&n) || reg.contains_key(&n) {
                continue;
            }
            let inl = (self.inline)(n);
            seen.insert(n, inl);
            if inl {
                stack.extend(self.loops.region_inputs(self.graph, n));
            }
        }
        let mut order: Vec<NodeId> = seen.keys().copied().collect();
        order.sort_unstable();
        for id in order {
            let node = self.graph.node(id);
            let r = if !seen[&id] {
                outside(b, id)?
            } else if let Op::Loop { .. } = node.op {
                self.emit_loop(b, id, reg)?
            } else {
                let ins: Vec<Reg> = node.inputs.iter().map(|i| reg[i]).collect();
                emit(
                    b,
                    &node.op,
                    &ins,
                    &node.meta.shape,
                    node.meta.dtype,
                    self.out_shape,
                )?
            };
            reg.insert(id, r);
        }
        Ok(())
    }

    /// A loop node as one instruction: its body compiled into a program of
    /// its own over the state, the trip counter and the captured values
    /// (registers of the enclosing program, `reg`).
    fn emit_loop(
        &self,
        b: &mut ProgramBuilder,
        l: NodeId,
        reg: &FastMap<NodeId, Reg>,
    ) -> Result<Reg> {
        let graph = self.graph;
        let node = graph.node(l);
        let Op::Loop {
            id,
            states,
            max_trips,
            result,
        } = node.op
        else {
            return Err(Error::Graph(format!("node {} is not a loop", l.0)));
        };
        let (init, next, stop) = loops::parts(&node.inputs, states);
        let body = self.loops.body(l)?;
        let mut bb = ProgramBuilder::new();
        let mut breg: FastMap<NodeId, Reg> = FastMap::default();
        let state: Vec<Reg> = init
            .iter()
            .map(|x| {
                bb.input(InputSpec {
                    dtype: graph.node(*x).meta.dtype,
                    shape: vec![],
                })
            })
            .collect();
        let trip = bb.input(InputSpec {
            dtype: DType::I64,
            shape: vec![],
        });
        for &x in &body.body {
            if let Op::LoopArg { id: arg_of, index } = graph.node(x).op
                && arg_of == id
            {
                let r = state.get(index as usize).copied().unwrap_or(trip);
                breg.insert(x, r);
            }
        }
        let in_body: crate::fast_hash::FastSet<NodeId> = body.body.iter().copied().collect();
        let inline_body = |x: NodeId| in_body.contains(&x);
        let inner = Region {
            graph,
            inline: &inline_body,
            out_shape: &[],
            loops: self.loops,
        };
        let mut captured: Vec<Reg> = Vec::new();
        let roots: Vec<NodeId> = next.iter().copied().chain([stop]).collect();
        inner.emit(&mut bb, &roots, &mut breg, &mut |bb, x| {
            let xn = graph.node(x);
            // Constants live in the body; other values come in per element.
            if let Op::Full(v) = xn.op {
                return Ok(bb.push(Instr::Const(v), xn.meta.dtype));
            }
            let outer = reg.get(&x).copied().ok_or_else(|| {
                Error::Graph(format!(
                    "loop body reads node {} before it is computed",
                    x.0
                ))
            })?;
            captured.push(outer);
            Ok(bb.input(InputSpec {
                dtype: xn.meta.dtype,
                shape: vec![],
            }))
        })?;
        let next_regs: Vec<Reg> = next.iter().map(|x| breg[x]).collect();
        let stop_reg = breg[&stop];
        let init_regs: Vec<Reg> = init.iter().map(|x| reg[x]).collect();
        let lp = LoopInstr {
            body: bb.finish(stop_reg, vec![]),
            next: next_regs,
            stop: stop_reg,
            init: init_regs,
            captured,
            max_trips,
            result,
        };
        Ok(b.push(Instr::Loop(Box::new(lp)), node.meta.dtype))
    }
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
