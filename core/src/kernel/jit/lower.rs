//! Lowering of a kernel program to one Cranelift function: a single loop over
//! the elements that keeps every intermediate in registers and reads each
//! input once per element.
//!
//! Only operations whose result the interpreter defines bit for bit the same
//! way are lowered (IEEE arithmetic, comparisons, selects, casts, exact
//! rounding, complex arithmetic by the interpreter's formulas, a complex
//! modulus compared with a constant); anything else (transcendentals,
//! generators, loops, strided inputs) is `Unsupported` and the interpreter
//! runs it. Complex values live in the loop as two f64 registers; a complex
//! result, or a complex value the interpreter computes, keeps the reading
//! part of the program in the interpreter.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    AbiParam, Endianness, InstBuilder, MemFlagsData, Type, Value as CVal, types,
};
use cranelift_codegen::isa::TargetFrontendConfig;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};

use super::super::ir::{Instr, Program, Reg};
use crate::dtype::{DType, Value};
use crate::op::{BinaryOp, UnaryOp};

mod complex;

/// Why a program is left to the interpreter.
#[derive(Debug)]
pub struct Unsupported(pub String);

fn unsupported<T>(what: impl Into<String>) -> Result<T, Unsupported> {
    Err(Unsupported(what.into()))
}

/// The machine type of a dtype's elements (bools are bytes holding 0 or 1).
pub fn ctype(d: DType) -> Result<Type, Unsupported> {
    Ok(match d {
        DType::Bool => types::I8,
        DType::I32 => types::I32,
        DType::I64 => types::I64,
        DType::F32 => types::F32,
        DType::F64 => types::F64,
        DType::C128 => return unsupported("complex values"),
    })
}

pub fn elem_size(d: DType) -> i64 {
    match d {
        DType::Bool => 1,
        DType::I32 | DType::F32 => 4,
        DType::I64 | DType::F64 => 8,
        DType::C128 => 16,
    }
}

/// How a task reads a program input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Laid out like the output.
    Contiguous,
    /// One element for all.
    Scalar,
    /// Through broadcast strides (the interpreter gathers it).
    Strided,
}

/// Which instructions the interpreter computes first, block by block
/// (`staged`: those the compiler does not lower and everything they read),
/// which the compiled loop evaluates (`evaluate`), and which staged values
/// it reads (`frontier`, in the order of the pointers after the inputs').
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Split {
    pub staged: Vec<bool>,
    pub evaluate: Vec<bool>,
    pub frontier: Vec<Reg>,
}

impl Split {
    /// Whether the interpreter has work in every block.
    pub fn is_hybrid(&self) -> bool {
        !self.frontier.is_empty()
    }
}

/// Whether instruction `k` can be lowered (its operands aside); `proxied[k]`
/// marks a complex modulus that only a comparison with a constant reads.
fn instr_lowers(
    p: &Program,
    k: usize,
    access: &[Access],
    proxied: &[Option<f64>],
) -> Result<(), Unsupported> {
    match &p.instrs[k] {
        Instr::Load { input } => {
            if access.get(*input as usize) == Some(&Access::Strided) {
                return unsupported("strided input");
            }
            Ok(())
        }
        Instr::Const(_) | Instr::Where(..) | Instr::Cast(..) => Ok(()),
        Instr::Gen { .. } => unsupported("generated values"),
        Instr::Loop(_) => unsupported("loops"),
        Instr::Unary(UnaryOp::Abs, _) if proxied[k].is_some() => Ok(()),
        Instr::Unary(op, a) => unary_supported(*op, p.dtypes[*a as usize]),
        Instr::Binary(op, a, _) => binary_supported(*op, p.dtypes[*a as usize]),
    }
}

/// Whether the loop computes instruction `k` again rather than read the
/// interpreter's block of it (constants and plain loads are as cheap).
fn redo(p: &Program, k: usize, access: &[Access]) -> bool {
    match p.instrs[k] {
        Instr::Const(_) => true,
        Instr::Load { input } => access.get(input as usize) != Some(&Access::Strided),
        _ => false,
    }
}

/// Splits `p` between the interpreter and the compiled loop; an error when
/// the interpreter would compute the result itself.
pub fn split(p: &Program, access: &[Access]) -> Result<Split, Unsupported> {
    let n = p.instrs.len();
    if p.dtypes.get(p.root as usize) == Some(&DType::C128) {
        return unsupported("a complex result");
    }
    let mut proxied = vec![None; n];
    let modulus = p.modulus_comparisons(&[]);
    for &(m, _, c) in &modulus {
        proxied[m] = Some(c);
    }
    let mut staged = vec![false; n];
    // Staged values are read by the loop from blocks of real dtypes only, and
    // a comparison of a staged modulus stays with it (the interpreter decides
    // which side of the constant each value is on without computing the
    // modulus in full): both stage their readers, until nothing changes.
    loop {
        let before = staged.iter().filter(|&&x| x).count();
        // Operands come before their readers: one backward pass closes the set.
        for k in (0..n).rev() {
            if instr_lowers(p, k, access, &proxied).is_err() {
                staged[k] = true;
            }
            if staged[k] {
                for r in p.instrs[k].operands() {
                    staged[r as usize] = true;
                }
            }
        }
        for k in 0..n {
            let complex_read = p.instrs[k].operands().iter().any(|&r| {
                let r = r as usize;
                staged[r] && p.dtypes[r] == DType::C128 && !redo(p, r, access)
            });
            if complex_read {
                staged[k] = true;
            }
        }
        for &(m, cmp, _) in &modulus {
            if staged[m] {
                staged[cmp] = true;
            }
        }
        if staged.iter().filter(|&&x| x).count() == before {
            break;
        }
    }
    let root = p.root as usize;
    if staged.get(root) != Some(&false) {
        return unsupported("the result needs the interpreter");
    }
    let mut read = vec![false; n];
    for k in (0..n).filter(|&k| !staged[k]) {
        for r in p.instrs[k].operands() {
            read[r as usize] = true;
        }
    }
    let evaluate: Vec<bool> = (0..n)
        .map(|k| !staged[k] || (read[k] && redo(p, k, access)))
        .collect();
    let frontier: Vec<Reg> = (0..n)
        .filter(|&k| staged[k] && read[k] && !evaluate[k])
        .map(|k| k as Reg)
        .collect();
    for &r in &frontier {
        ctype(p.dtypes[r as usize])?;
    }
    Ok(Split {
        staged,
        evaluate,
        frontier,
    })
}

/// Checks, without generating code, that every instruction can be lowered
/// (inputs laid out like the output).
pub fn check(p: &Program) -> Result<(), Unsupported> {
    let access = vec![Access::Contiguous; p.inputs.len()];
    let s = split(p, &access)?;
    if s.is_hybrid() || s.staged.iter().any(|&x| x) {
        return unsupported("part of the program needs the interpreter");
    }
    Ok(())
}

fn unary_supported(op: UnaryOp, d: DType) -> Result<(), Unsupported> {
    use UnaryOp::*;
    let ok = match d {
        DType::F64 | DType::F32 => matches!(
            op,
            Neg | Sqrt | Abs | Floor | Ceil | Round | Re | Im | Sign | IsNan | IsFinite | Powi(_)
        ),
        DType::I64 | DType::I32 => match op {
            Powi(n) => n >= 0,
            _ => matches!(
                op,
                Neg | Abs | Re | Im | Floor | Ceil | Round | Sign | IsNan | IsFinite
            ),
        },
        DType::Bool => matches!(op, Not | Abs | Re | Im),
        DType::C128 => matches!(op, Neg | Powi(2) | Re | Im | IsNan | IsFinite),
    };
    if ok {
        Ok(())
    } else {
        unsupported(format!("{} of {d}", op.name()))
    }
}

fn binary_supported(op: BinaryOp, d: DType) -> Result<(), Unsupported> {
    use BinaryOp::*;
    let cmp = op.is_comparison();
    let ok = match d {
        DType::F64 | DType::F32 => cmp || matches!(op, Add | Sub | Mul | Div | Min | Max),
        DType::I64 | DType::I32 => cmp || matches!(op, Add | Sub | Mul | Min | Max),
        DType::Bool => cmp || matches!(op, And | Or | Min | Max),
        DType::C128 => matches!(op, Add | Sub | Mul | Div | Eq | Ne),
    };
    if ok {
        Ok(())
    } else {
        unsupported(format!("{} of {d}", op.symbol()))
    }
}

/// Emits `fn(inputs: *const *const u8, out: *mut u8, n: i64)` into `func`:
/// `inputs[i]` points at the first element of input `i` (for inputs in
/// `scalar`, at the one element every output element reads).
///
/// Programs over f64 only run two elements per trip in SSE registers (the
/// same IEEE operations lane by lane, so the same bits), then a scalar tail.
pub fn emit(
    p: &Program,
    access: &[Access],
    split: &Split,
    func: &mut cranelift_codegen::ir::Function,
    config: TargetFrontendConfig,
) -> Result<(), Unsupported> {
    if split.staged.len() != p.instrs.len() || split.staged[p.root as usize] {
        return unsupported("a split of another program");
    }
    let ptr = config.pointer_type();
    let vector = vector_lowers(p, access, split);
    let unroll: i64 = if p.dtypes.contains(&DType::C128) {
        4
    } else {
        2
    };
    func.signature.params.push(AbiParam::new(ptr));
    func.signature.params.push(AbiParam::new(ptr));
    func.signature.params.push(AbiParam::new(types::I64));
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(func, &mut fctx);
    let entry = b.create_block();
    let uheader = b.create_block();
    let ubody = b.create_block();
    let vheader = b.create_block();
    let vbody = b.create_block();
    let header = b.create_block();
    let body = b.create_block();
    let exit = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.append_block_param(uheader, types::I64);
    b.append_block_param(vheader, types::I64);
    b.append_block_param(header, types::I64);

    b.switch_to_block(entry);
    let params = b.block_params(entry).to_vec();
    let (inputs_ptr, out_ptr, n) = (params[0], params[1], params[2]);
    let flags = MemFlagsData::trusted();
    let mut bases = Vec::with_capacity(p.inputs.len() + split.frontier.len());
    for i in 0..p.inputs.len() + split.frontier.len() {
        bases.push(b.ins().load(ptr, flags, inputs_ptr, (i * 8) as i32));
    }
    // Loop invariants: constants and scalar inputs, computed once (and
    // splatted for the two-lane loop).
    // Complex values: real parts in `hoisted`, imaginary parts here.
    let mut hoisted: Vec<Option<CVal>> = vec![None; p.instrs.len()];
    let mut hoisted_im: Vec<Option<CVal>> = vec![None; p.instrs.len()];
    for (k, ins) in p.instrs.iter().enumerate() {
        if !split.evaluate[k] {
            continue;
        }
        match ins {
            Instr::Const(Value::C128(z)) => {
                hoisted[k] = Some(b.ins().f64const(z.re));
                hoisted_im[k] = Some(b.ins().f64const(z.im));
            }
            Instr::Const(v) => hoisted[k] = Some(constant(&mut b, *v)?),
            Instr::Load { input } if access.get(*input as usize) == Some(&Access::Scalar) => {
                let base = bases[*input as usize];
                let d = p.inputs[*input as usize].dtype;
                if d == DType::C128 {
                    hoisted[k] = Some(b.ins().load(types::F64, flags, base, 0));
                    hoisted_im[k] = Some(b.ins().load(types::F64, flags, base, 8));
                } else {
                    hoisted[k] = Some(b.ins().load(ctype(d)?, flags, base, 0));
                }
            }
            _ => {}
        }
    }
    let (splats, splats_im): (Vec<Option<CVal>>, Vec<Option<CVal>>) = if vector {
        let mut two = Vec::with_capacity(p.instrs.len());
        for (k, v) in hoisted.iter().enumerate() {
            two.push(v.map(|v| splat(&mut b, p.dtypes[k], v)));
        }
        let im = hoisted_im
            .iter()
            .map(|v| v.map(|v| b.ins().splat(types::F64X2, v)))
            .collect();
        (two, im)
    } else {
        (Vec::new(), Vec::new())
    };
    let zero = b.ins().iconst(types::I64, 0);
    b.ins()
        .jump(if vector { uheader } else { header }, &[zero.into()]);

    let mut proxied = vec![None; p.instrs.len()];
    for (m, _, c) in p.modulus_comparisons(&[]) {
        proxied[m] = Some(c);
    }
    let layout = Layout {
        p,
        split,
        bases: &bases,
        out: out_ptr,
        ptr,
        proxied,
    };
    let mut e = Emitter {
        b: &mut b,
        lanes: 1,
    };
    if vector {
        // Several two-lane trips per iteration, interleaved: less loop
        // overhead, and independent chains that fill the pipeline (four for
        // complex programs, whose iterations are long dependency chains).
        e.b.switch_to_block(uheader);
        let i = e.b.block_params(uheader)[0];
        let end = e.b.ins().iadd_imm_s(i, 2 * unroll);
        let more = e.b.ins().icmp(IntCC::SignedLessThanOrEqual, end, n);
        e.b.ins().brif(more, ubody, &[], vheader, &[i.into()]);
        e.b.switch_to_block(ubody);
        e.lanes = 2;
        let at: Vec<CVal> = (0..unroll)
            .map(|u| e.b.ins().iadd_imm_s(i, 2 * u))
            .collect();
        e.trip(&layout, (&splats, &splats_im), &at)?;
        e.b.ins().jump(uheader, &[end.into()]);
        e.b.switch_to_block(vheader);
        let i = e.b.block_params(vheader)[0];
        let end = e.b.ins().iadd_imm_s(i, 2);
        let more = e.b.ins().icmp(IntCC::SignedLessThanOrEqual, end, n);
        e.b.ins().brif(more, vbody, &[], header, &[i.into()]);
        e.b.switch_to_block(vbody);
        e.lanes = 2;
        e.trip(&layout, (&splats, &splats_im), &[i])?;
        e.b.ins().jump(vheader, &[end.into()]);
        e.lanes = 1;
    }
    e.b.switch_to_block(header);
    let i = e.b.block_params(header)[0];
    let more = e.b.ins().icmp(IntCC::SignedLessThan, i, n);
    e.b.ins().brif(more, body, &[], exit, &[]);
    e.b.switch_to_block(body);
    e.trip(&layout, (&hoisted, &hoisted_im), &[i])?;
    let next = e.b.ins().iadd_imm_s(i, 1);
    e.b.ins().jump(header, &[next.into()]);

    b.switch_to_block(exit);
    b.ins().return_(&[]);
    b.seal_all_blocks();
    b.finalize(config);
    Ok(())
}

/// Whether the two-lane loop can run the compiled part of `p`: values of
/// float64 (`F64X2`), complex128 (two of them), bools (lane masks in
/// `I64X2`) and int32 (sign-extended in `I64X2`), with the operations below;
/// anything else runs one element per trip.
fn vector_lowers(p: &Program, access: &[Access], split: &Split) -> bool {
    use DType::*;
    let real_or_complex = |d: DType| matches!(d, F64 | C128);
    let in_vectors = |d: DType| matches!(d, F64 | C128 | Bool | I32);
    let used = |k: usize| split.evaluate[k] || split.frontier.contains(&(k as Reg));
    let proxied: Vec<usize> = p
        .modulus_comparisons(&[])
        .into_iter()
        .map(|(m, _, _)| m)
        .collect();
    if !matches!(p.dtypes[p.root as usize], F64 | I32) {
        return false;
    }
    (0..p.instrs.len()).filter(|&k| used(k)).all(|k| {
        let d = p.dtypes[k];
        if !in_vectors(d) {
            return false;
        }
        if !split.evaluate[k] {
            // Read from the interpreter's block.
            return matches!(d, F64 | I32);
        }
        let of = |r: &Reg| p.dtypes[*r as usize];
        match &p.instrs[k] {
            Instr::Load { input } => {
                let scalar = access.get(*input as usize) == Some(&Access::Scalar);
                matches!(p.inputs[*input as usize].dtype, F64 | C128 | I32) || scalar
            }
            Instr::Const(_) | Instr::Where(..) => true,
            Instr::Unary(UnaryOp::Abs, _) if proxied.contains(&k) => true,
            Instr::Unary(op, a) => match of(a) {
                F64 | C128 => true,
                Bool => *op == UnaryOp::Not,
                _ => false,
            },
            Instr::Binary(op, a, _) => match of(a) {
                F64 | C128 | Bool => true,
                I32 => op.is_comparison() || matches!(op, BinaryOp::Min | BinaryOp::Max),
                _ => false,
            },
            Instr::Cast(to, a) => {
                let from = of(a);
                from == *to
                    || (*to == Bool && matches!(from, F64 | C128 | I32))
                    || (from == Bool && matches!(*to, F64 | I32))
                    || (real_or_complex(from) && real_or_complex(*to))
            }
            Instr::Gen { .. } | Instr::Loop(_) => false,
        }
    })
}

/// A loop invariant of dtype `d` in the two-lane loop's representation.
fn splat(b: &mut FunctionBuilder<'_>, d: DType, v: CVal) -> CVal {
    match d {
        DType::Bool => {
            let wide = b.ins().uextend(types::I64, v);
            let mask = b.ins().ineg(wide);
            b.ins().splat(types::I64X2, mask)
        }
        DType::I32 => {
            let wide = b.ins().sextend(types::I64, v);
            b.ins().splat(types::I64X2, wide)
        }
        _ => b.ins().splat(types::F64X2, v),
    }
}

fn constant(b: &mut FunctionBuilder<'_>, v: Value) -> Result<CVal, Unsupported> {
    Ok(match v {
        Value::Bool(x) => b.ins().iconst(types::I8, x as i64),
        Value::I32(x) => b.ins().iconst(types::I32, x as i64),
        Value::I64(x) => b.ins().iconst(types::I64, x),
        Value::F32(x) => b.ins().f32const(x),
        Value::F64(x) => b.ins().f64const(x),
        Value::C128(_) => return unsupported("complex constant"),
    })
}

/// What one trip of the loop reads: the program, its split, the pointers
/// (inputs, then staged blocks), the output pointer and the pointer type.
struct Layout<'a> {
    p: &'a Program,
    split: &'a Split,
    bases: &'a [CVal],
    out: CVal,
    ptr: Type,
    /// Per instruction: the constant a complex modulus is only compared with.
    proxied: Vec<Option<f64>>,
}

struct Emitter<'a, 'b> {
    b: &'a mut FunctionBuilder<'b>,
    /// Elements per operation: 1, or 2 (f64 programs' main loop).
    lanes: u8,
}

impl Emitter<'_, '_> {
    /// One trip of the loop at each element position of `at` (`lanes`
    /// elements each), interleaved instruction by instruction so that the
    /// positions' dependency chains overlap: every instruction, then the
    /// store of the root.
    fn trip(
        &mut self,
        l: &Layout<'_>,
        hoisted: (&[Option<CVal>], &[Option<CVal>]),
        at: &[CVal],
    ) -> Result<(), Unsupported> {
        let flags = MemFlagsData::trusted();
        let mut vals = vec![hoisted.0.to_vec(); at.len()];
        let mut ims = vec![hoisted.1.to_vec(); at.len()];
        for (k, ins) in l.p.instrs.iter().enumerate() {
            if vals[0][k].is_some() {
                continue;
            }
            if let Some(j) = l.split.frontier.iter().position(|&r| r as usize == k) {
                // Computed by the interpreter into a block the loop reads.
                let d = l.p.dtypes[k];
                for (u, &i) in at.iter().enumerate() {
                    let addr = self.element_addr(l.bases[l.p.inputs.len() + j], i, d, l.ptr);
                    vals[u][k] = Some(self.load_elems(d, addr)?);
                }
                continue;
            }
            if !l.split.evaluate[k] {
                continue;
            }
            if let (Instr::Unary(UnaryOp::Abs, a), Some(c)) = (ins, l.proxied[k]) {
                let z = (0..at.len())
                    .map(|u| match (vals[u][*a as usize], ims[u][*a as usize]) {
                        (Some(re), Some(im)) => Ok((re, im)),
                        _ => unsupported(format!("complex r{a} undefined")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                for (u, m) in self.modulus_proxy(&z, c).into_iter().enumerate() {
                    vals[u][k] = Some(m);
                }
                continue;
            }
            for (u, &i) in at.iter().enumerate() {
                if let Some((re, im)) = self.complex(l, k, &vals[u], &ims[u], i)? {
                    vals[u][k] = Some(re);
                    ims[u][k] = im;
                    continue;
                }
                let v = |r: &u32| {
                    vals[u][*r as usize].ok_or_else(|| Unsupported(format!("r{r} undefined")))
                };
                let out = match ins {
                    Instr::Load { input } => {
                        let d = l.p.inputs[*input as usize].dtype;
                        let addr = self.element_addr(l.bases[*input as usize], i, d, l.ptr);
                        self.load_elems(d, addr)?
                    }
                    Instr::Unary(op, a) => {
                        self.unary(*op, l.p.dtypes[*a as usize], l.p.dtypes[k], v(a)?)?
                    }
                    Instr::Binary(op, a, c) => {
                        self.binary(*op, l.p.dtypes[*a as usize], v(a)?, v(c)?)?
                    }
                    Instr::Where(c, a, f) => self.choose(v(c)?, v(a)?, v(f)?),
                    Instr::Cast(to, a) => self.cast(l.p.dtypes[*a as usize], *to, v(a)?)?,
                    Instr::Const(_) | Instr::Gen { .. } | Instr::Loop(_) => {
                        return unsupported("instruction without a lowering");
                    }
                };
                vals[u][k] = Some(out);
            }
        }
        let d = l.p.dtypes[l.p.root as usize];
        for (u, &i) in at.iter().enumerate() {
            let root =
                vals[u][l.p.root as usize].ok_or_else(|| Unsupported("root undefined".into()))?;
            let addr = self.element_addr(l.out, i, d, l.ptr);
            if self.lanes == 2 && d == DType::I32 {
                // Sign-extended lanes back to two int32s.
                for lane in 0..2u8 {
                    let wide = self.b.ins().extractlane(root, lane);
                    let x = self.b.ins().ireduce(types::I32, wide);
                    self.b.ins().store(flags, x, addr, 4 * i32::from(lane));
                }
            } else {
                self.b.ins().store(flags, root, addr, 0);
            }
        }
        Ok(())
    }

    /// Elements of dtype `d` (not complex) from `addr`: one, or two in the
    /// two-lane loop's representation.
    fn load_elems(&mut self, d: DType, addr: CVal) -> Result<CVal, Unsupported> {
        let flags = MemFlagsData::trusted();
        let t = ctype(d)?;
        Ok(match (self.lanes, d) {
            (1, _) => self.b.ins().load(t, flags, addr, 0),
            (_, DType::F64) => self.b.ins().load(types::F64X2, flags, addr, 0),
            (_, DType::I32) => self.b.ins().sload32x2(flags, addr, 0),
            _ => return unsupported(format!("two-lane loads of {d}")),
        })
    }

    /// An integer or bool constant in the loop's representation (bools as
    /// lane masks in the two-lane loop).
    fn iconst_of(&mut self, d: DType, x: i64) -> Result<CVal, Unsupported> {
        Ok(if self.lanes == 1 {
            self.b.ins().iconst(ctype(d)?, x)
        } else {
            let x = if d == DType::Bool { -x } else { x };
            let c = self.b.ins().iconst(types::I64, x);
            self.b.ins().splat(types::I64X2, c)
        })
    }

    /// `t`, or its two-lane vector in the vector loop.
    fn vtype(&self, t: Type) -> Type {
        match self.lanes {
            1 => t,
            _ if t == types::F64 => types::F64X2,
            // Bools as lane masks, int32s sign-extended.
            _ if t == types::I8 || t == types::I32 => types::I64X2,
            _ => t.by(2).unwrap_or(t),
        }
    }

    /// `cond ? x : y` per lane (vector comparisons give lane masks).
    fn choose(&mut self, cond: CVal, x: CVal, y: CVal) -> CVal {
        if self.lanes == 1 {
            return self.b.ins().select(cond, x, y);
        }
        let t = self.b.func.dfg.value_type(x);
        let mask = if self.b.func.dfg.value_type(cond) == t {
            cond
        } else {
            let little = MemFlagsData::new().with_endianness(Endianness::Little);
            self.b.ins().bitcast(t, little, cond)
        };
        self.b.ins().bitselect(mask, x, y)
    }

    fn element_addr(&mut self, base: CVal, i: CVal, d: DType, ptr: Type) -> CVal {
        let off = self.b.ins().imul_imm_s(i, elem_size(d));
        let off = if ptr == types::I64 {
            off
        } else {
            self.b.ins().ireduce(ptr, off)
        };
        self.b.ins().iadd(base, off)
    }

    fn fconst(&mut self, t: Type, x: f64) -> CVal {
        let c = if t == types::F32 {
            self.b.ins().f32const(x as f32)
        } else {
            self.b.ins().f64const(x)
        };
        if self.lanes == 1 {
            c
        } else {
            let vt = self.vtype(t);
            self.b.ins().splat(vt, c)
        }
    }

    fn unary(&mut self, op: UnaryOp, from: DType, to: DType, a: CVal) -> Result<CVal, Unsupported> {
        use UnaryOp::*;
        let t = ctype(from)?;
        let ins = self.b.ins();
        Ok(match from {
            DType::F64 | DType::F32 => match op {
                Neg => ins.fneg(a),
                Sqrt => ins.sqrt(a),
                Abs => ins.fabs(a),
                Floor => ins.floor(a),
                Ceil => ins.ceil(a),
                Round => ins.nearest(a),
                Re => a,
                Im => self.fconst(t, 0.0),
                Sign => self.float_sign(t, a),
                IsNan => ins.fcmp(FloatCC::Unordered, a, a),
                IsFinite => {
                    let m = ins.fabs(a);
                    let inf = self.fconst(t, f64::INFINITY);
                    self.b.ins().fcmp(FloatCC::LessThan, m, inf)
                }
                Powi(2) => ins.fmul(a, a),
                Powi(n) => {
                    let one = self.fconst(t, 1.0);
                    let o = self.powi(a, n.unsigned_abs(), one, |b, x, y| b.ins().fmul(x, y));
                    if n < 0 { self.b.ins().fdiv(one, o) } else { o }
                }
                _ => return unsupported(op.name()),
            },
            DType::I64 | DType::I32 => match op {
                Neg => ins.ineg(a),
                Abs => {
                    let neg = ins.icmp_imm_s(IntCC::SignedLessThan, a, 0);
                    let m = self.b.ins().ineg(a);
                    self.b.ins().select(neg, m, a)
                }
                Re | Floor | Ceil | Round => a,
                Im => ins.iconst(t, 0),
                Sign => {
                    let pos = ins.icmp_imm_s(IntCC::SignedGreaterThan, a, 0);
                    let neg = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, a, 0);
                    let one = self.b.ins().iconst(t, 1);
                    let minus = self.b.ins().iconst(t, -1);
                    let zero = self.b.ins().iconst(t, 0);
                    let low = self.b.ins().select(neg, minus, zero);
                    self.b.ins().select(pos, one, low)
                }
                IsNan => ins.iconst(types::I8, 0),
                IsFinite => ins.iconst(types::I8, 1),
                Powi(n) if n >= 0 => {
                    let one = ins.iconst(t, 1);
                    self.powi(a, n as u32, one, |b, x, y| b.ins().imul(x, y))
                }
                _ => return unsupported(op.name()),
            },
            DType::Bool => match op {
                Not if self.lanes == 2 => ins.bnot(a),
                Not => ins.bxor_imm_u(a, 1),
                Abs | Re => a,
                Im => self.iconst_of(DType::Bool, 0)?,
                _ => return unsupported(op.name()),
            },
            DType::C128 => return unsupported(format!("{} to {to}", op.name())),
        })
    }

    /// `x**e` by squaring, multiplying in the interpreter's order (`o` starts
    /// at one and takes the bits of `e` from the lowest).
    fn powi(
        &mut self,
        x: CVal,
        mut e: u32,
        one: CVal,
        mul: impl Fn(&mut FunctionBuilder<'_>, CVal, CVal) -> CVal,
    ) -> CVal {
        let mut o = one;
        let mut base = x;
        while e > 0 {
            if e & 1 == 1 {
                o = mul(self.b, o, base);
            }
            e >>= 1;
            if e > 0 {
                base = mul(self.b, base, base);
            }
        }
        o
    }

    /// NumPy's sign: 1, -1, NaN for NaN, +0 for both zeros.
    fn float_sign(&mut self, t: Type, a: CVal) -> CVal {
        let zero = self.fconst(t, 0.0);
        let one = self.fconst(t, 1.0);
        let minus = self.fconst(t, -1.0);
        let pos = self.b.ins().fcmp(FloatCC::GreaterThan, a, zero);
        let neg = self.b.ins().fcmp(FloatCC::LessThan, a, zero);
        let nan = self.b.ins().fcmp(FloatCC::Unordered, a, a);
        let rest = self.choose(nan, a, zero);
        let low = self.choose(neg, minus, rest);
        self.choose(pos, one, low)
    }

    fn binary(&mut self, op: BinaryOp, d: DType, a: CVal, c: CVal) -> Result<CVal, Unsupported> {
        use BinaryOp::*;
        let t = ctype(d)?;
        if op.is_comparison() {
            return Ok(match d {
                DType::F64 | DType::F32 => {
                    let cc = match op {
                        Eq => FloatCC::Equal,
                        Ne => FloatCC::NotEqual,
                        Lt => FloatCC::LessThan,
                        Le => FloatCC::LessThanOrEqual,
                        Gt => FloatCC::GreaterThan,
                        _ => FloatCC::GreaterThanOrEqual,
                    };
                    self.b.ins().fcmp(cc, a, c)
                }
                _ => {
                    let signed = d != DType::Bool;
                    let cc = match (op, signed) {
                        (Eq, _) => IntCC::Equal,
                        (Ne, _) => IntCC::NotEqual,
                        (Lt, true) => IntCC::SignedLessThan,
                        (Le, true) => IntCC::SignedLessThanOrEqual,
                        (Gt, true) => IntCC::SignedGreaterThan,
                        (_, true) => IntCC::SignedGreaterThanOrEqual,
                        (Lt, false) => IntCC::UnsignedLessThan,
                        (Le, false) => IntCC::UnsignedLessThanOrEqual,
                        (Gt, false) => IntCC::UnsignedGreaterThan,
                        (_, false) => IntCC::UnsignedGreaterThanOrEqual,
                    };
                    self.b.ins().icmp(cc, a, c)
                }
            });
        }
        let ins = self.b.ins();
        Ok(match d {
            DType::F64 | DType::F32 => match op {
                Add => ins.fadd(a, c),
                Sub => ins.fsub(a, c),
                Mul => ins.fmul(a, c),
                Div => ins.fdiv(a, c),
                Min | Max => {
                    // NaN if either is NaN, else the smaller (larger), the
                    // first operand on ties (so minimum(0, -0) is 0).
                    let cc = if op == Min {
                        FloatCC::LessThan
                    } else {
                        FloatCC::GreaterThan
                    };
                    let takes_c = ins.fcmp(cc, c, a);
                    let pick = self.choose(takes_c, c, a);
                    let nan = self.b.ins().fcmp(FloatCC::Unordered, a, c);
                    let qnan = self.fconst(t, f64::NAN);
                    self.choose(nan, qnan, pick)
                }
                _ => return unsupported(op.symbol()),
            },
            DType::I64 | DType::I32 => match op {
                Add => ins.iadd(a, c),
                Sub => ins.isub(a, c),
                Mul => ins.imul(a, c),
                Min => {
                    let lt = ins.icmp(IntCC::SignedLessThan, c, a);
                    self.choose(lt, c, a)
                }
                Max => {
                    let gt = ins.icmp(IntCC::SignedGreaterThan, c, a);
                    self.choose(gt, c, a)
                }
                _ => return unsupported(op.symbol()),
            },
            DType::Bool => match op {
                And | Min => ins.band(a, c),
                Or | Max => ins.bor(a, c),
                _ => return unsupported(op.symbol()),
            },
            DType::C128 => return unsupported(op.symbol()),
        })
    }

    /// Rust's `as` between real dtypes (saturating float to int, NaN to 0;
    /// wrapping int to int), and `!= 0` to bool.
    fn cast(&mut self, from: DType, to: DType, a: CVal) -> Result<CVal, Unsupported> {
        let (tf, tt) = (ctype(from)?, ctype(to)?);
        let float = |d: DType| matches!(d, DType::F32 | DType::F64);
        let ins = self.b.ins();
        Ok(match (from, to) {
            _ if from == to => a,
            (_, DType::Bool) if float(from) => {
                let zero = self.fconst(tf, 0.0);
                self.b.ins().fcmp(FloatCC::NotEqual, a, zero)
            }
            (_, DType::Bool) if self.lanes == 2 => {
                let zero = self.iconst_of(from, 0)?;
                self.b.ins().icmp(IntCC::NotEqual, a, zero)
            }
            (_, DType::Bool) => ins.icmp_imm_s(IntCC::NotEqual, a, 0),
            (DType::Bool, _) if self.lanes == 2 => {
                let (one, zero) = if float(to) {
                    (self.fconst(tt, 1.0), self.fconst(tt, 0.0))
                } else {
                    (self.iconst_of(to, 1)?, self.iconst_of(to, 0)?)
                };
                self.choose(a, one, zero)
            }
            (DType::Bool, _) if float(to) => {
                let wide = ins.uextend(types::I64, a);
                self.b.ins().fcvt_from_sint(tt, wide)
            }
            (DType::Bool, _) => ins.uextend(tt, a),
            (DType::F32, DType::F64) => ins.fpromote(tt, a),
            (DType::F64, DType::F32) => ins.fdemote(tt, a),
            _ if float(from) => ins.fcvt_to_sint_sat(tt, a),
            _ if float(to) => ins.fcvt_from_sint(tt, a),
            (DType::I32, DType::I64) => ins.sextend(tt, a),
            (DType::I64, DType::I32) => ins.ireduce(tt, a),
            _ => return unsupported(format!("cast {from} to {to}")),
        })
    }
}
