//! Which kernel programs have a GPU form: the operations whose GPU code gives
//! the CPU interpreter's bits (IEEE-rounded arithmetic, comparisons,
//! selections, casts, integer and float division and remainder with NumPy's
//! rules (the float remainder exact, as the CPU's `fmod`), generated ranges
//! and random numbers, uniform and normal) or stays within the CPU's documented ulp
//! bounds (the transcendentals the CPU vectorizes: sin, cos, tan, exp, log,
//! tanh, pow; see `accel_gpu::wgsl_math`), and complex arithmetic with the
//! CPU's formulas, its correctly rounded modulus, its `exp`, logarithms,
//! `sqrt`, `sign`, trigonometry and its inverses, and powers by constant
//! exponents. The scheduler uses this to
//! prefer GPU workers for a stage; the backends refuse the rest.

use super::Program;
use super::ir::Instr;
use crate::dtype::DType;
use crate::op::{BinaryOp, UnaryOp};

/// `Err(what)` names the first operation without a GPU form.
pub fn check(program: &Program) -> Result<(), String> {
    for (k, ins) in program.instrs.iter().enumerate() {
        let d = program.dtypes[k];
        match ins {
            Instr::Loop(l) => {
                if l.body.instrs.iter().any(|i| matches!(i, Instr::Gen { .. })) {
                    return Err("generated values inside a loop".into());
                }
                check(&l.body)?;
            }
            Instr::Unary(op, a) => unary(*op, program.dtypes[*a as usize])?,
            // A complex power of an array of exponents picks its case per
            // element; a complex exponent of another dtype has no GPU form.
            Instr::Binary(BinaryOp::Pow, a, b)
                if program.dtypes[*a as usize] == DType::C128
                    && program.dtypes[*b as usize] != DType::C128
                    && !matches!(program.instrs.get(*b as usize), Some(Instr::Const(_))) =>
            {
                return Err("a complex exponent of another dtype".into());
            }
            Instr::Binary(op, a, _) => binary(*op, program.dtypes[*a as usize])?,
            Instr::Gen { strides, .. } if strides.len() != program.out_shape.len() => {
                return Err("a generator over other axes than the kernel's".into());
            }
            Instr::Gen { .. } if d == DType::C128 => {
                return Err("complex generated values".into());
            }
            _ => {}
        }
    }
    Ok(())
}

/// Complex numbers: arithmetic, modulus, `exp`, logarithms, `sqrt`, `sign`,
/// trigonometry and its inverses, parts, tests, integer powers and powers by
/// constant exponents, comparisons for
/// equality (`where`, casts, loads and constants need nothing more).
fn complex_unary(op: UnaryOp) -> Result<(), String> {
    use UnaryOp::*;
    match op {
        Neg | Abs | Re | Im | IsNan | IsFinite | Round | Powi(_) | Exp | Sin | Cos | Sinh
        | Cosh | Tan | Tanh | Log | Log2 | Log10 | Sqrt | Sign | Arctan | Arcsin | Arccos => Ok(()),
        _ => Err(format!("{} of complex128", op.name())),
    }
}

fn complex_binary(op: BinaryOp) -> Result<(), String> {
    use BinaryOp::*;
    match op {
        Add | Sub | Mul | Div | Pow | Eq | Ne => Ok(()),
        _ => Err(format!("{} of complex128", op.symbol())),
    }
}

fn unary(op: UnaryOp, d: DType) -> Result<(), String> {
    use UnaryOp::*;
    if d == DType::C128 {
        return complex_unary(op);
    }
    let float = matches!(d, DType::F32 | DType::F64);
    match op {
        Neg | Abs | Floor | Ceil | Round | Re | Im | Sign | IsNan | IsFinite | Not => Ok(()),
        Powi(n) if n >= 0 || float => Ok(()),
        Sqrt | Exp | Log | Sin | Cos | Tan | Tanh if float => Ok(()),
        // Within the kernels' bound of the C library's, which the CPU uses
        // (float32 sinh and cosh too: the float64 kernel's, rounded).
        Log2 | Log10 | Log1p | Expm1 | Arctan | Arcsin | Arccos | Sinh | Cosh if float => Ok(()),
        _ => Err(format!("{} of {d}", op.name())),
    }
}

fn binary(op: BinaryOp, d: DType) -> Result<(), String> {
    use BinaryOp::*;
    if d == DType::C128 {
        return complex_binary(op);
    }
    let float = matches!(d, DType::F32 | DType::F64);
    match op {
        Add | Sub | Mul | Min | Max | Eq | Ne | Lt | Le | Gt | Ge | And | Or => Ok(()),
        Div | Pow if float => Ok(()),
        // Within the kernels' bound of the C library's, which the CPU uses.
        Arctan2 if float => Ok(()),
        Hypot if float => Ok(()),
        // Floats through an exact integer long division of the mantissas
        // (`fmod` has one exact result), then the CPU's formulas.
        Rem | FloorDiv => Ok(()),
        _ => Err(format!("{} of {d}", op.symbol())),
    }
}
