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

impl Program {
    /// Checks operands, input references, generator strides and every register's dtype.
    pub fn validate(&self) -> Result<()> {
        let n = self.instrs.len();
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
            }
        }
        Ok(())
    }
}
