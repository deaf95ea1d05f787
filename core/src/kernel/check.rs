//! Validation of kernel programs that come from elsewhere (e.g. over the wire):
//! everything the executor relies on is checked, so a malformed program is an
//! error, never a panic.

use super::ir::{Instr, Program};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::infer;

fn bad(msg: String) -> Error {
    Error::Graph(format!("invalid kernel program: {msg}"))
}

/// Loops nested deeper than this are refused (a program from the wire must
/// not recurse without bound).
pub const MAX_LOOP_DEPTH: usize = 8;

impl Program {
    /// Checks operands, input references, generator strides and every register's dtype.
    pub fn validate(&self) -> Result<()> {
        self.validate_at(0)
    }

    /// [`Program::validate`] for a program that is the body of `depth` nested loops.
    fn validate_at(&self, depth: usize) -> Result<()> {
        let n = self.instrs.len();
        if depth > 0 && (!self.out_shape.is_empty() || !self.stored.is_empty()) {
            return Err(bad(
                "a loop body runs per element: no shape, no stored inputs".into(),
            ));
        }
        if self.dtypes.len() != n {
            return Err(bad(format!(
                "{n} instructions but {} dtypes",
                self.dtypes.len()
            )));
        }
        if self.root as usize >= n {
            return Err(bad(format!("root r{} of {n} registers", self.root)));
        }
        for (w, (k, s)) in self.stored.iter().enumerate() {
            let spec = self
                .inputs
                .get(*k as usize)
                .ok_or_else(|| bad(format!("stored input {k} of {}", self.inputs.len())))?;
            if w > 0 && self.stored[w - 1].0 >= *k {
                return Err(bad("stored inputs out of order".into()));
            }
            if spec.shape != s.shape || spec.dtype != s.dtype {
                return Err(bad(format!(
                    "input {k} of {:?} {} is read from a store of {:?} {}",
                    spec.shape, spec.dtype, s.shape, s.dtype
                )));
            }
        }
        let nd = self.out_shape.len();
        for spec in &self.inputs {
            if spec.shape.len() > nd
                || spec
                    .shape
                    .iter()
                    .rev()
                    .zip(self.out_shape.iter().rev())
                    .any(|(&a, &b)| a != b && a != 1)
            {
                return Err(bad(format!(
                    "input of shape {:?} does not broadcast to {:?}",
                    spec.shape, self.out_shape
                )));
            }
        }
        for (k, ins) in self.instrs.iter().enumerate() {
            let dt = self.dtypes[k];
            let reg = |r: u32| -> Result<DType> {
                if (r as usize) < k {
                    Ok(self.dtypes[r as usize])
                } else {
                    Err(bad(format!(
                        "r{k} reads r{r}, which is not defined before it"
                    )))
                }
            };
            let expect = |want: DType| -> Result<()> {
                if want == dt {
                    Ok(())
                } else {
                    Err(bad(format!("r{k} is declared {dt} but computes {want}")))
                }
            };
            match ins {
                Instr::Load { input } => {
                    let spec = self.inputs.get(*input as usize).ok_or_else(|| {
                        bad(format!("r{k} loads input {input} of {}", self.inputs.len()))
                    })?;
                    expect(spec.dtype)?;
                }
                Instr::Const(v) => expect(v.dtype())?,
                Instr::Gen { strides, .. } => {
                    if depth > 0 {
                        return Err(bad(format!("generator r{k} inside a loop body")));
                    }
                    if strides.len() != nd {
                        return Err(bad(format!(
                            "generator r{k} has {} strides for {nd} axes",
                            strides.len()
                        )));
                    }
                    if matches!(dt, DType::Bool | DType::C128) {
                        return Err(bad(format!("generator r{k} cannot produce {dt}")));
                    }
                }
                Instr::Unary(op, a) => {
                    let a = reg(*a)?;
                    expect(infer::unary_dtype(*op, a)?)?;
                    // The compiler casts the operand to the dtype the op computes in.
                    if a != infer::unary_operand_dtype(*op, a)? {
                        return Err(bad(format!(
                            "r{k} applies {} to {a} without a cast",
                            op.name()
                        )));
                    }
                }
                Instr::Binary(op, a, b) => {
                    let (a, b) = (reg(*a)?, reg(*b)?);
                    let (operand, result) = infer::binary_dtypes(*op, a, b)?;
                    if a != b || a != operand {
                        return Err(bad(format!(
                            "r{k} {} needs {operand} operands, got {a} and {b}",
                            op.symbol()
                        )));
                    }
                    expect(result)?;
                }
                Instr::Where(c, a, b) => {
                    let (c, a, b) = (reg(*c)?, reg(*a)?, reg(*b)?);
                    if c != DType::Bool || a != dt || b != dt {
                        return Err(bad(format!("r{k} where({c}, {a}, {b}) declared {dt}")));
                    }
                }
                Instr::Cast(to, a) => {
                    reg(*a)?;
                    expect(*to)?;
                }
                Instr::Loop(l) => {
                    if depth + 1 > MAX_LOOP_DEPTH {
                        return Err(bad(format!("loops nested more than {MAX_LOOP_DEPTH} deep")));
                    }
                    let init: Vec<DType> = l.init.iter().map(|r| reg(*r)).collect::<Result<_>>()?;
                    let captured: Vec<DType> =
                        l.captured.iter().map(|r| reg(*r)).collect::<Result<_>>()?;
                    check_loop(l, &init, &captured, depth)?;
                    expect(init[l.result as usize])?;
                }
            }
        }
        Ok(())
    }
}

/// A loop's body against the registers that feed it (`init`, `captured`: their dtypes).
fn check_loop(
    l: &super::ir::LoopInstr,
    init: &[DType],
    captured: &[DType],
    depth: usize,
) -> Result<()> {
    let s = init.len();
    let body = &l.body;
    if s == 0 || l.next.len() != s || l.result as usize >= s {
        return Err(bad(format!(
            "loop of {s} state variables with {} next values returning {}",
            l.next.len(),
            l.result
        )));
    }
    let expected: Vec<DType> = init
        .iter()
        .copied()
        .chain([DType::I64])
        .chain(captured.iter().copied())
        .collect();
    let declared: Vec<DType> = body.inputs.iter().map(|i| i.dtype).collect();
    if declared != expected || body.inputs.iter().any(|i| !i.shape.is_empty()) {
        return Err(bad(format!(
            "loop body takes {declared:?} per element but is given {expected:?}"
        )));
    }
    body.validate_at(depth + 1)?;
    let at = |r: u32| body.dtypes.get(r as usize).copied();
    for (k, &r) in l.next.iter().enumerate() {
        if at(r) != Some(init[k]) {
            return Err(bad(format!(
                "loop state {k} is {} but its next value r{r} is {:?}",
                init[k],
                at(r)
            )));
        }
    }
    if at(l.stop) != Some(DType::Bool) {
        return Err(bad(format!("loop stop flag r{} is not bool", l.stop)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::ir::{InputSpec, LoopInstr};
    use super::*;
    use crate::dtype::Value;
    use crate::op::BinaryOp;

    fn scalar(dtype: DType) -> InputSpec {
        InputSpec {
            dtype,
            shape: vec![],
        }
    }

    /// `x` doubled until above 100: body inputs (state f64, trip i64).
    fn doubling(max_trips: u32) -> Program {
        let body = Program {
            instrs: vec![
                Instr::Load { input: 0 },
                Instr::Load { input: 1 },
                Instr::Const(Value::F64(2.0)),
                Instr::Binary(BinaryOp::Mul, 0, 2),
                Instr::Const(Value::F64(100.0)),
                Instr::Binary(BinaryOp::Gt, 3, 4),
            ],
            dtypes: vec![
                DType::F64,
                DType::I64,
                DType::F64,
                DType::F64,
                DType::F64,
                DType::Bool,
            ],
            inputs: vec![scalar(DType::F64), scalar(DType::I64)],
            out_shape: vec![],
            root: 5,
            stored: vec![],
        };
        Program {
            instrs: vec![
                Instr::Load { input: 0 },
                Instr::Loop(Box::new(LoopInstr {
                    body,
                    next: vec![3],
                    stop: 5,
                    init: vec![0],
                    captured: vec![],
                    max_trips,
                    result: 0,
                })),
            ],
            dtypes: vec![DType::F64, DType::F64],
            inputs: vec![InputSpec {
                dtype: DType::F64,
                shape: vec![5],
            }],
            out_shape: vec![5],
            root: 1,
            stored: vec![],
        }
    }

    #[test]
    fn loops_run_and_malformed_loops_are_refused() {
        let p = doubling(10);
        p.validate().unwrap();
        let exe = crate::kernel::Executable::new(p.clone());
        let input = crate::buffer::Buffer::F64(vec![1.0, 3.0, 200.0, 0.0, -1.0]);
        let bound = crate::kernel::Bound::new(&exe, &[0], &[5], &[(&[5], &input)]).unwrap();
        let crate::buffer::Buffer::F64(out) = bound.run_map().unwrap() else {
            panic!("not f64")
        };
        // 0 and -1 never pass 100: ten doublings.
        assert_eq!(out, vec![128.0, 192.0, 400.0, 0.0, -1024.0]);

        let broken = |f: &dyn Fn(&mut LoopInstr)| {
            let mut q = doubling(3);
            if let Instr::Loop(l) = &mut q.instrs[1] {
                f(l);
            }
            q.validate().unwrap_err().to_string()
        };
        assert!(broken(&|l| l.stop = 3).contains("stop flag"));
        assert!(broken(&|l| l.next = vec![5]).contains("next value"));
        assert!(broken(&|l| l.next = vec![]).contains("state variables"));
        assert!(broken(&|l| l.result = 1).contains("returning"));
        assert!(broken(&|l| l.init = vec![1]).contains("not defined before it"));
        assert!(broken(&|l| l.captured = vec![0]).contains("per element"));
        assert!(broken(&|l| l.body.instrs[3] = Instr::Binary(BinaryOp::Mul, 0, 9)).contains("r9"));
        // Nesting beyond the cap.
        let mut deep = doubling(1);
        for _ in 0..MAX_LOOP_DEPTH {
            let Instr::Loop(outer) = &deep.instrs[1] else {
                unreachable!()
            };
            let mut body = (**outer).clone();
            body.body = Program {
                out_shape: vec![],
                inputs: vec![scalar(DType::F64), scalar(DType::I64)],
                ..deep.clone()
            };
            body.body.instrs.push(Instr::Const(Value::Bool(true)));
            body.body.dtypes.push(DType::Bool);
            body.next = vec![1];
            body.stop = 2;
            deep.instrs[1] = Instr::Loop(Box::new(body));
        }
        assert!(deep.validate().unwrap_err().to_string().contains("nested"));
    }
}
