//! Complex values in the compiled loop: each one is two float64 registers
//! (or two two-lane vectors), computed by the interpreter's formulas
//! operation for operation, and a complex modulus compared with a constant
//! decided by the interpreter's proxy.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value as CVal, types};

use super::{Emitter, Layout, Unsupported, unsupported};
use crate::dtype::DType;
use crate::kernel::ir::Instr;
use crate::op::{BinaryOp, UnaryOp};

impl Emitter<'_, '_> {
    /// Instruction `k` when it makes or reads complex values: its value, and
    /// the imaginary part of a complex one; None for an instruction over real
    /// values only.
    pub(super) fn complex(
        &mut self,
        l: &Layout<'_>,
        k: usize,
        vals: &[Option<CVal>],
        ims: &[Option<CVal>],
        i: CVal,
    ) -> Result<Option<(CVal, Option<CVal>)>, Unsupported> {
        let p = l.p;
        let ins = &p.instrs[k];
        let is_complex = |r: u32| p.dtypes[r as usize] == DType::C128;
        if p.dtypes[k] != DType::C128 && !ins.operands().into_iter().any(is_complex) {
            return Ok(None);
        }
        let z = |r: &u32| match (vals[*r as usize], ims[*r as usize]) {
            (Some(re), Some(im)) => Ok((re, im)),
            _ => unsupported(format!("complex r{r} undefined")),
        };
        let x = |r: &u32| vals[*r as usize].ok_or_else(|| Unsupported(format!("r{r} undefined")));
        Ok(Some(match ins {
            Instr::Load { input } => {
                let flags = MemFlagsData::trusted();
                let addr = self.element_addr(l.bases[*input as usize], i, DType::C128, l.ptr);
                let mut part = |at: i32| {
                    let first = self.b.ins().load(types::F64, flags, addr, at);
                    if self.lanes == 1 {
                        return first;
                    }
                    let second = self.b.ins().load(types::F64, flags, addr, at + 16);
                    let v = self.b.ins().scalar_to_vector(types::F64X2, first);
                    self.b.ins().insertlane(v, second, 1)
                };
                let re = part(0);
                (re, Some(part(8)))
            }
            Instr::Unary(op, a) => {
                let (re, im) = z(a)?;
                self.complex_unary(*op, re, im)?
            }
            Instr::Binary(op, a, c) => {
                let (a, c) = (z(a)?, z(c)?);
                self.complex_binary(*op, a, c)?
            }
            Instr::Where(c, a, f) => {
                let (cond, a, f) = (x(c)?, z(a)?, z(f)?);
                let re = self.choose(cond, a.0, f.0);
                (re, Some(self.choose(cond, a.1, f.1)))
            }
            Instr::Cast(to, a) => match (p.dtypes[*a as usize], *to) {
                (DType::C128, DType::C128) => {
                    let (re, im) = z(a)?;
                    (re, Some(im))
                }
                (DType::C128, DType::Bool) => {
                    let (re, im) = z(a)?;
                    let zero = self.fconst(types::F64, 0.0);
                    let r = self.b.ins().fcmp(FloatCC::NotEqual, re, zero);
                    let j = self.b.ins().fcmp(FloatCC::NotEqual, im, zero);
                    (self.b.ins().bor(r, j), None)
                }
                // The real part, cast as a float64 would be.
                (DType::C128, real) => (self.cast(DType::F64, real, z(a)?.0)?, None),
                (real, _) => {
                    let re = self.cast(real, DType::F64, x(a)?)?;
                    (re, Some(self.fconst(types::F64, 0.0)))
                }
            },
            Instr::Const(_) | Instr::Gen { .. } | Instr::Loop(_) => {
                return unsupported("complex instruction without a lowering");
            }
        }))
    }

    /// Complex unary operations, as `ops::unary` computes them.
    fn complex_unary(
        &mut self,
        op: UnaryOp,
        re: CVal,
        im: CVal,
    ) -> Result<(CVal, Option<CVal>), Unsupported> {
        use UnaryOp::*;
        let ins = self.b.ins();
        Ok(match op {
            Neg => {
                let r = ins.fneg(re);
                (r, Some(self.b.ins().fneg(im)))
            }
            // num-complex's z * z.
            Powi(2) => self.complex_binary(BinaryOp::Mul, (re, im), (re, im))?,
            Re => (re, None),
            Im => (im, None),
            IsNan => {
                let r = ins.fcmp(FloatCC::Unordered, re, re);
                let j = self.b.ins().fcmp(FloatCC::Unordered, im, im);
                (self.b.ins().bor(r, j), None)
            }
            IsFinite => {
                let inf = self.fconst(types::F64, f64::INFINITY);
                let (ar, ai) = (self.b.ins().fabs(re), self.b.ins().fabs(im));
                let r = self.b.ins().fcmp(FloatCC::LessThan, ar, inf);
                let j = self.b.ins().fcmp(FloatCC::LessThan, ai, inf);
                (self.b.ins().band(r, j), None)
            }
            _ => return unsupported(format!("{} of complex128", op.name())),
        })
    }

    /// Complex binary operations by the interpreter's formulas
    /// (`complex::binary`, `ops::binary`), operation for operation.
    fn complex_binary(
        &mut self,
        op: BinaryOp,
        (ar, ai): (CVal, CVal),
        (br, bi): (CVal, CVal),
    ) -> Result<(CVal, Option<CVal>), Unsupported> {
        use BinaryOp::*;
        let b = &mut self.b;
        Ok(match op {
            Add => (b.ins().fadd(ar, br), Some(b.ins().fadd(ai, bi))),
            Sub => (b.ins().fsub(ar, br), Some(b.ins().fsub(ai, bi))),
            Mul => {
                let (rr, ii) = (b.ins().fmul(ar, br), b.ins().fmul(ai, bi));
                let (ri, ir) = (b.ins().fmul(ar, bi), b.ins().fmul(ai, br));
                (b.ins().fsub(rr, ii), Some(b.ins().fadd(ri, ir)))
            }
            Div => {
                let (rr, ii) = (b.ins().fmul(br, br), b.ins().fmul(bi, bi));
                let d = b.ins().fadd(rr, ii);
                let (p, q) = (b.ins().fmul(ar, br), b.ins().fmul(ai, bi));
                let num_re = b.ins().fadd(p, q);
                let (p, q) = (b.ins().fmul(ai, br), b.ins().fmul(ar, bi));
                let num_im = b.ins().fsub(p, q);
                (b.ins().fdiv(num_re, d), Some(b.ins().fdiv(num_im, d)))
            }
            Eq => {
                let r = b.ins().fcmp(FloatCC::Equal, ar, br);
                let j = b.ins().fcmp(FloatCC::Equal, ai, bi);
                (b.ins().band(r, j), None)
            }
            Ne => {
                let r = b.ins().fcmp(FloatCC::NotEqual, ar, br);
                let j = b.ins().fcmp(FloatCC::NotEqual, ai, bi);
                (b.ins().bor(r, j), None)
            }
            _ => return unsupported(format!("{} of complex128", op.symbol())),
        })
    }

    /// Complex moduli that are only compared with `c`, one per element
    /// position of a trip, as `hypot::modulus_proxy` gives them: `+inf` or 0
    /// for points clearly outside or inside the circle; near it (rare: one
    /// branch for all positions) the modulus itself (no call: a call would
    /// make every value live across it go through the stack).
    pub(super) fn modulus_proxy(&mut self, z: &[(CVal, CVal)], c: f64) -> Vec<CVal> {
        let (above, below) = crate::kernel::hypot::proxy_bounds(c);
        let huge = self.fconst(types::F64, 1e200);
        let above = self.fconst(types::F64, above);
        let below = self.fconst(types::F64, below);
        let inf = self.fconst(types::F64, f64::INFINITY);
        let zero = self.fconst(types::F64, 0.0);
        let mut quick = Vec::with_capacity(z.len());
        let mut decided = Vec::with_capacity(z.len());
        let mut undecided: Option<CVal> = None;
        for &(re, im) in z {
            let (rr, ii) = (self.b.ins().fmul(re, re), self.b.ins().fmul(im, im));
            let s = self.b.ins().fadd(rr, ii);
            let sure = self.b.ins().fcmp(FloatCC::LessThan, s, huge);
            let outside = self.b.ins().fcmp(FloatCC::GreaterThan, s, above);
            let inside = self.b.ins().fcmp(FloatCC::LessThan, s, below);
            quick.push(self.choose(outside, inf, zero));
            let either = self.b.ins().bor(outside, inside);
            let ok = self.b.ins().band(sure, either);
            decided.push(ok);
            let not = if self.lanes == 1 {
                self.b.ins().bxor_imm_u(ok, 1)
            } else {
                self.b.ins().bnot(ok)
            };
            undecided = Some(match undecided {
                None => not,
                Some(u) => self.b.ins().bor(u, not),
            });
        }
        let Some(undecided) = undecided else {
            return quick;
        };
        let any = if self.lanes == 1 {
            undecided
        } else {
            self.b.ins().vany_true(undecided)
        };
        let ty = self.b.func.dfg.value_type(quick[0]);
        let near = self.b.create_block();
        let merge = self.b.create_block();
        for _ in z {
            self.b.append_block_param(merge, ty);
        }
        let args: Vec<_> = quick.iter().map(|&q| q.into()).collect();
        self.b.ins().brif(any, near, &[], merge, &args);
        self.b.switch_to_block(near);
        let mut moduli = Vec::with_capacity(z.len());
        for (u, &(re, im)) in z.iter().enumerate() {
            let exact = self.modulus_near(re, im);
            moduli.push(self.choose(decided[u], quick[u], exact));
        }
        let args: Vec<_> = moduli.iter().map(|&m| m.into()).collect();
        self.b.ins().jump(merge, &args);
        self.b.switch_to_block(merge);
        self.b.block_params(merge).to_vec()
    }

    /// The modulus of a point the proxy could not place, on the same side of
    /// every proxied constant `c` (1e-100 ≤ c ≤ 1e100) as
    /// `hypot::modulus_exact`: the same correctly rounded value for parts in
    /// its safe range; `+inf` where a part is infinite or the larger part is
    /// beyond it (the modulus is then far above any `c`); NaN for a NaN part
    /// otherwise; the larger part where the smaller is too small to change
    /// it, or where the larger is itself below the range (zero included).
    fn modulus_near(&mut self, re: CVal, im: CVal) -> CVal {
        use crate::kernel::hypot::{SAFE_HI, SAFE_LO};
        let t = types::F64;
        let (ax, ay) = (self.b.ins().fabs(re), self.b.ins().fabs(im));
        let x_first = self.b.ins().fcmp(FloatCC::GreaterThanOrEqual, ax, ay);
        let hi = self.choose(x_first, ax, ay);
        let lo = self.choose(x_first, ay, ax);
        // hypot::corrected: sqrt(hi² + lo²) and one correction step.
        let lo2 = self.b.ins().fmul(lo, lo);
        let sum = self.b.ins().fma(hi, hi, lo2);
        let h = self.b.ins().sqrt(sum);
        let h_sq = self.b.ins().fmul(h, h);
        let x_sq = self.b.ins().fmul(hi, hi);
        let neg_lo = self.b.ins().fneg(lo);
        let d = self.b.ins().fsub(h_sq, x_sq);
        let e1 = self.b.ins().fma(neg_lo, lo, d);
        let neg_h_sq = self.b.ins().fneg(h_sq);
        let e2 = self.b.ins().fma(h, h, neg_h_sq);
        let neg_x_sq = self.b.ins().fneg(x_sq);
        let e3 = self.b.ins().fma(hi, hi, neg_x_sq);
        let e12 = self.b.ins().fadd(e1, e2);
        let e = self.b.ins().fsub(e12, e3);
        let two = self.fconst(t, 2.0);
        let h2 = self.b.ins().fmul(two, h);
        let q = self.b.ins().fdiv(e, h2);
        let corrected = self.b.ins().fsub(h, q);
        // Outside the safe range.
        let zero = self.fconst(t, 0.0);
        let lo_limit = self.fconst(t, SAFE_LO);
        let hi_limit = self.fconst(t, SAFE_HI);
        let inf = self.fconst(t, f64::INFINITY);
        let nan = self.fconst(t, f64::NAN);
        let lo_nonzero = self.b.ins().fcmp(FloatCC::NotEqual, lo, zero);
        let lo_tiny = self.b.ins().fcmp(FloatCC::LessThan, lo, lo_limit);
        let lo_small = self.b.ins().band(lo_nonzero, lo_tiny);
        let hi_tiny = self.b.ins().fcmp(FloatCC::LessThan, hi, lo_limit);
        let drop_lo = self.b.ins().bor(lo_small, hi_tiny);
        let huge = self.b.ins().fcmp(FloatCC::GreaterThan, hi, hi_limit);
        let x_inf = self.b.ins().fcmp(FloatCC::Equal, ax, inf);
        let y_inf = self.b.ins().fcmp(FloatCC::Equal, ay, inf);
        let any_inf = self.b.ins().bor(x_inf, y_inf);
        let any_nan = self.b.ins().fcmp(FloatCC::Unordered, ax, ay);
        let m = self.choose(drop_lo, hi, corrected);
        let m = self.choose(huge, inf, m);
        let m = self.choose(any_nan, nan, m);
        self.choose(any_inf, inf, m)
    }
}
