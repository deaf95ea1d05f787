//! Random kernel programs over every real dtype, with inputs full of special
//! values (NaN, signed zeros, infinities, extreme integers), and bitwise
//! comparison of results. Shared by the tests that hold another executor
//! (compiled kernels, GPU backends) against the interpreter.
#![allow(dead_code)]

use accel_core::buffer::Buffer;
use accel_core::dtype::{DType, Value};
use accel_core::kernel::Executable;
use accel_core::kernel::ir::{InputSpec, Instr, ProgramBuilder, Reg};
use accel_core::op::{BinaryOp, UnaryOp};

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

pub const REAL: [DType; 5] = [DType::Bool, DType::I32, DType::I64, DType::F32, DType::F64];

pub const F64S: [f64; 16] = [
    0.0,
    -0.0,
    1.5,
    -2.25,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    1e308,
    -5e-324,
    2.5,
    -3.5,
    0.5,
    9.007_199_254_740_993e15,
    -1e19,
    3e9,
    7.0,
];
pub const I64S: [i64; 10] = [
    0,
    1,
    -1,
    7,
    -9,
    i64::MIN,
    i64::MAX,
    1 << 40,
    -(1 << 33),
    3_000_000_000,
];

pub fn value(rng: &mut Rng, d: DType) -> Value {
    let special = rng.below(3) > 0;
    match d {
        DType::Bool => Value::Bool(rng.below(2) == 1),
        DType::I32 => Value::I32(if special {
            rng.pick(&I64S) as i32
        } else {
            rng.next() as i32 % 1000
        }),
        DType::I64 => Value::I64(if special {
            rng.pick(&I64S)
        } else {
            rng.next() as i64 % 100_000
        }),
        DType::F32 => Value::F32(if special {
            rng.pick(&F64S) as f32
        } else {
            (rng.next() as i32 as f32) / 65536.0
        }),
        DType::F64 => Value::F64(if special {
            rng.pick(&F64S)
        } else {
            (rng.next() as i64 as f64) / 4.5e15
        }),
        DType::C128 => unreachable!("real dtypes only"),
    }
}

pub fn buffer(rng: &mut Rng, d: DType, n: usize) -> Buffer {
    let vals: Vec<Value> = (0..n).map(|_| value(rng, d)).collect();
    match d {
        DType::Bool => Buffer::Bool(
            vals.iter()
                .map(|v| matches!(v, Value::Bool(true)))
                .collect(),
        ),
        DType::I32 => Buffer::I32(
            vals.iter()
                .map(|v| if let Value::I32(x) = v { *x } else { 0 })
                .collect(),
        ),
        DType::I64 => Buffer::I64(
            vals.iter()
                .map(|v| if let Value::I64(x) = v { *x } else { 0 })
                .collect(),
        ),
        DType::F32 => Buffer::F32(
            vals.iter()
                .map(|v| if let Value::F32(x) = v { *x } else { 0.0 })
                .collect(),
        ),
        DType::F64 => Buffer::F64(
            vals.iter()
                .map(|v| if let Value::F64(x) = v { *x } else { 0.0 })
                .collect(),
        ),
        DType::C128 => unreachable!("real dtypes only"),
    }
}

/// The bits of a float, any NaN as one NaN: IEEE 754 leaves the sign and
/// payload of an operation's NaN result to the hardware (x86 keeps the first
/// operand's, and a compiler may swap the operands of a commutative
/// operation), so NaNs are compared as NaN and everything else bit for bit.
pub fn f64_bits(x: f64) -> u64 {
    if x.is_nan() {
        f64::NAN.to_bits()
    } else {
        x.to_bits()
    }
}

pub fn f32_bits(x: f32) -> u64 {
    if x.is_nan() {
        f32::NAN.to_bits() as u64
    } else {
        x.to_bits() as u64
    }
}

/// Bits of every element (see [`f64_bits`] for NaNs).
pub fn bits(b: &Buffer) -> Vec<u64> {
    match b {
        Buffer::Bool(v) => v.iter().map(|&x| x as u64).collect(),
        Buffer::I32(v) => v.iter().map(|&x| x as u32 as u64).collect(),
        Buffer::I64(v) => v.iter().map(|&x| x as u64).collect(),
        Buffer::F32(v) => v.iter().map(|&x| f32_bits(x)).collect(),
        Buffer::F64(v) => v.iter().map(|&x| f64_bits(x)).collect(),
        Buffer::C128(v) => v.iter().map(|x| f64_bits(x.re) ^ f64_bits(x.im)).collect(),
    }
}

pub fn value_bits(v: Value) -> u64 {
    match v {
        Value::Bool(x) => x as u64,
        Value::I32(x) => x as u32 as u64,
        Value::I64(x) => x as u64,
        Value::F32(x) => f32_bits(x),
        Value::F64(x) => f64_bits(x),
        Value::C128(x) => f64_bits(x.re) ^ f64_bits(x.im),
    }
}

pub fn unary_ops(d: DType, rng: &mut Rng) -> UnaryOp {
    use UnaryOp::*;
    let n = rng.below(9) as i32 - 3;
    match d {
        DType::Bool => rng.pick(&[Not, Abs, Re, Im]),
        DType::I32 | DType::I64 => rng.pick(&[
            Neg,
            Abs,
            Re,
            Im,
            Floor,
            Ceil,
            Round,
            Sign,
            IsNan,
            IsFinite,
            Powi(n.abs()),
        ]),
        _ => rng.pick(&[
            Neg,
            Sqrt,
            Abs,
            Floor,
            Ceil,
            Round,
            Re,
            Im,
            Sign,
            IsNan,
            IsFinite,
            Powi(n),
            Powi(2),
            // Left to the interpreter.
            Exp,
        ]),
    }
}

pub fn unary_dtype(op: UnaryOp, d: DType) -> DType {
    match op {
        UnaryOp::IsNan | UnaryOp::IsFinite => DType::Bool,
        _ => d,
    }
}

pub fn binary_op(d: DType, rng: &mut Rng) -> BinaryOp {
    use BinaryOp::*;
    let cmp = [Eq, Ne, Lt, Le, Gt, Ge];
    let op = match d {
        DType::Bool => rng.pick(&[And, Or, Min, Max]),
        DType::I32 | DType::I64 => rng.pick(&[Add, Sub, Mul, Min, Max, FloorDiv]),
        _ => rng.pick(&[Add, Sub, Mul, Div, Min, Max, Rem]),
    };
    if rng.below(4) == 0 {
        rng.pick(&cmp)
    } else {
        op
    }
}

/// A random program and its input buffers. Inputs are full (`n`
/// elements) or scalar (broadcast from shape [1]).
pub fn random_case(
    rng: &mut Rng,
    n: usize,
    only_f64: bool,
) -> (Executable, Vec<(Vec<usize>, Buffer)>) {
    let dtypes: &[DType] = if only_f64 { &[DType::F64] } else { &REAL };
    let mut b = ProgramBuilder::new();
    let mut regs: Vec<Reg> = Vec::new();
    let mut inputs = Vec::new();
    for _ in 0..1 + rng.below(4) {
        let d = rng.pick(dtypes);
        let scalar = rng.below(4) == 0;
        let shape = if scalar { vec![1] } else { vec![n] };
        inputs.push((shape.clone(), buffer(rng, d, shape[0])));
        regs.push(b.input(InputSpec { dtype: d, shape }));
    }
    for _ in 0..2 + rng.below(10) {
        let a = rng.pick(&regs);
        let da = b.dtype(a);
        // f64-only programs (the two-lane loop) stay clear of bools.
        let kinds = if only_f64 { 3 } else { 6 };
        let r = match rng.below(kinds) {
            0 => {
                let mut op = unary_ops(da, rng);
                while only_f64 && unary_dtype(op, da) != DType::F64 {
                    op = unary_ops(da, rng);
                }
                b.push(Instr::Unary(op, a), unary_dtype(op, da))
            }
            1 | 2 => {
                let other = rng.pick(&regs);
                let c = b.cast(other, da);
                let mut op = binary_op(da, rng);
                while only_f64 && op.is_comparison() {
                    op = binary_op(da, rng);
                }
                let d = if op.is_comparison() { DType::Bool } else { da };
                b.push(Instr::Binary(op, a, c), d)
            }
            3 => {
                let cond = rng.pick(&regs);
                let cond = b.cast(cond, DType::Bool);
                let other = rng.pick(&regs);
                let c = b.cast(other, da);
                b.push(Instr::Where(cond, a, c), da)
            }
            4 => {
                let to = rng.pick(&REAL);
                b.cast(a, to)
            }
            _ => {
                let d = rng.pick(dtypes);
                let v = value(rng, d);
                b.push(Instr::Const(v), d)
            }
        };
        regs.push(r);
    }
    let root = *regs.last().unwrap_or(&0);
    (Executable::new(b.finish(root, vec![n])), inputs)
}
