//! Compiled kernels against the interpreter: random programs over every real
//! dtype, scalar and full inputs, special values (NaN, signed zeros,
//! infinities, extreme integers); both must give identical bits. Programs
//! with an operation the compiler leaves to the interpreter check that the
//! fallback is taken.

use accel_core::buffer::Buffer;
use accel_core::dtype::{DType, Value};
use accel_core::kernel::exec::Bound;
use accel_core::kernel::ir::{InputSpec, Instr, ProgramBuilder, Reg};
use accel_core::kernel::{Executable, jit};
use accel_core::op::{BinaryOp, UnaryOp};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

const REAL: [DType; 5] = [DType::Bool, DType::I32, DType::I64, DType::F32, DType::F64];

const F64S: [f64; 16] = [
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
const I64S: [i64; 10] = [
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

fn value(rng: &mut Rng, d: DType) -> Value {
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

fn buffer(rng: &mut Rng, d: DType, n: usize) -> Buffer {
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
fn f64_bits(x: f64) -> u64 {
    if x.is_nan() {
        f64::NAN.to_bits()
    } else {
        x.to_bits()
    }
}

fn f32_bits(x: f32) -> u64 {
    if x.is_nan() {
        f32::NAN.to_bits() as u64
    } else {
        x.to_bits() as u64
    }
}

/// Bits of every element (see [`f64_bits`] for NaNs).
fn bits(b: &Buffer) -> Vec<u64> {
    match b {
        Buffer::Bool(v) => v.iter().map(|&x| x as u64).collect(),
        Buffer::I32(v) => v.iter().map(|&x| x as u32 as u64).collect(),
        Buffer::I64(v) => v.iter().map(|&x| x as u64).collect(),
        Buffer::F32(v) => v.iter().map(|&x| f32_bits(x)).collect(),
        Buffer::F64(v) => v.iter().map(|&x| f64_bits(x)).collect(),
        Buffer::C128(v) => v.iter().map(|x| f64_bits(x.re) ^ f64_bits(x.im)).collect(),
    }
}

fn value_bits(v: Value) -> u64 {
    match v {
        Value::Bool(x) => x as u64,
        Value::I32(x) => x as u32 as u64,
        Value::I64(x) => x as u64,
        Value::F32(x) => f32_bits(x),
        Value::F64(x) => f64_bits(x),
        Value::C128(x) => f64_bits(x.re) ^ f64_bits(x.im),
    }
}

fn unary_ops(d: DType, rng: &mut Rng) -> UnaryOp {
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

fn unary_dtype(op: UnaryOp, d: DType) -> DType {
    match op {
        UnaryOp::IsNan | UnaryOp::IsFinite => DType::Bool,
        _ => d,
    }
}

fn binary_op(d: DType, rng: &mut Rng) -> BinaryOp {
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
fn random_case(rng: &mut Rng, n: usize, only_f64: bool) -> (Executable, Vec<(Vec<usize>, Buffer)>) {
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

#[test]
fn compiled_kernels_match_the_interpreter_bit_for_bit() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut compiled, mut fallback, mut split) = (0, 0, 0);
    for case in 0..900 {
        let n = [1, 7, 513, 1000, 70_001][case % 5];
        let (exe, inputs) = random_case(&mut rng, n, case % 3 == 2);
        let views: Vec<(&[usize], &Buffer)> =
            inputs.iter().map(|(s, b)| (s.as_slice(), b)).collect();
        let bound = Bound::new(&exe, &[0], &[n], &views).expect("binds");
        let access: Vec<jit::Access> = inputs
            .iter()
            .map(|(s, _)| {
                if s[0] == 1 && n != 1 {
                    jit::Access::Scalar
                } else {
                    jit::Access::Contiguous
                }
            })
            .collect();
        let lowerable = jit::split(&exe.program, &access).is_ok();
        assert_eq!(
            bound.is_compiled(),
            lowerable,
            "case {case}: compiled exactly when the result lowers: {:#?}",
            exe.program.listing()
        );
        if bound.is_split() {
            split += 1;
        }
        if lowerable {
            compiled += 1;
        } else {
            fallback += 1;
        }
        let fast = bound.run_map().expect("compiled run");
        let reference = Bound::new(&exe, &[0], &[n], &views)
            .expect("binds")
            .interpreted()
            .run_map()
            .expect("interpreted run");
        assert_eq!(fast.dtype(), reference.dtype());
        // Reductions read the same values block by block.
        let fold = |b: Bound<'_>| {
            b.fold_parts(700, Vec::new, |acc: &mut Vec<u64>, _, v, n| {
                acc.extend((0..n).map(|i| value_bits(v.get(i))));
                Ok(())
            })
            .expect("folds")
            .concat()
        };
        let folded = fold(Bound::new(&exe, &[0], &[n], &views).expect("binds"));
        let folded_ref = fold(
            Bound::new(&exe, &[0], &[n], &views)
                .expect("binds")
                .interpreted(),
        );
        if let Some(i) = (0..folded_ref.len()).find(|&i| folded.get(i) != folded_ref.get(i)) {
            panic!(
                "case {case}, element {i}: folded blocks differ ({:?} vs {:x})\n{}",
                folded.get(i).map(|x| format!("{x:x}")),
                folded_ref[i],
                exe.program.listing().join("\n")
            );
        }
        let (f, r) = (bits(&fast), bits(&reference));
        if let Some(i) = (0..f.len()).find(|&i| f[i] != r[i]) {
            panic!(
                "case {case}, element {i}: compiled {:x} interpreted {:x}\n{}\ninputs: {:?}",
                f[i],
                r[i],
                exe.program.listing().join("\n"),
                inputs
                    .iter()
                    .map(|(_, b)| format!("{:?}", b.get(i.min(b.len() - 1))))
                    .collect::<Vec<_>>()
            );
        }
    }
    // Both paths were exercised.
    assert!(compiled > 300, "{compiled} compiled programs");
    assert!(fallback > 30, "{fallback} programs left to the interpreter");
    assert!(
        split > 30,
        "{split} programs split between interpreter and compiled loop"
    );
}

#[test]
fn strided_inputs_and_transcendentals_are_staged_by_the_interpreter() {
    // exp(y) broadcast along rows: the interpreter gathers y and takes exp
    // block by block; the compiled loop adds and scales.
    let mut b = ProgramBuilder::new();
    let x = b.input(InputSpec {
        dtype: DType::F64,
        shape: vec![40, 30],
    });
    let y = b.input(InputSpec {
        dtype: DType::F64,
        shape: vec![30],
    });
    let e = b.push(Instr::Unary(UnaryOp::Exp, y), DType::F64);
    let s = b.push(Instr::Binary(BinaryOp::Add, x, e), DType::F64);
    let h = b.push(Instr::Const(Value::F64(0.5)), DType::F64);
    let m = b.push(Instr::Binary(BinaryOp::Mul, s, h), DType::F64);
    let exe = Executable::new(b.finish(m, vec![40, 30]));
    let xs = Buffer::F64((0..1200).map(|i| f64::from(i) / 7.0).collect());
    let ys = Buffer::F64((0..30).map(|i| f64::from(i) / 10.0 - 1.0).collect());
    let inputs: [(&[usize], &Buffer); 2] = [(&[40, 30], &xs), (&[30], &ys)];
    let bound = Bound::new(&exe, &[0, 0], &[40, 30], &inputs).expect("binds");
    assert!(bound.is_compiled() && bound.is_split());
    let Buffer::F64(out) = bound.run_map().expect("runs") else {
        panic!("f64 result")
    };
    let reference = Bound::new(&exe, &[0, 0], &[40, 30], &inputs)
        .expect("binds")
        .interpreted()
        .run_map()
        .expect("runs");
    assert_eq!(bits(&Buffer::F64(out.clone())), bits(&reference));
    let Buffer::F64(ys) = &ys else { unreachable!() };
    assert_eq!(out[35], (35.0 / 7.0 + ys[5].exp()) * 0.5);
}

#[test]
fn compiled_programs_are_cached_by_structure() {
    let program = |k: f64| {
        let mut b = ProgramBuilder::new();
        let x = b.input(InputSpec {
            dtype: DType::F64,
            shape: vec![100],
        });
        let c = b.push(Instr::Const(Value::F64(k)), DType::F64);
        let s = b.push(Instr::Binary(BinaryOp::Mul, x, c), DType::F64);
        b.finish(s, vec![100])
    };
    let first = jit::lookup(&program(0.25), &[jit::Access::Contiguous]).expect("compiles");
    // The same structure (another stage, another job) hits the cache ...
    let again = jit::lookup(&program(0.25), &[jit::Access::Contiguous]).expect("compiles");
    assert!(std::sync::Arc::ptr_eq(&first, &again));
    // ... another constant, or a scalar input, does not.
    let other = jit::lookup(&program(-0.25), &[jit::Access::Contiguous]).expect("compiles");
    assert!(!std::sync::Arc::ptr_eq(&first, &other));
    let scalar = jit::lookup(&program(0.25), &[jit::Access::Scalar]).expect("compiles");
    assert!(!std::sync::Arc::ptr_eq(&first, &scalar));
    // Every task of a stage binds the executable's one compiled form.
    let exe = Executable::new(program(0.25));
    let xs = Buffer::F64(vec![2.0; 10]);
    for i in 0..10 {
        let bound = Bound::new(&exe, &[i * 10], &[10], &[(&[10], &xs)]).expect("binds");
        assert!(bound.is_compiled());
        let Buffer::F64(out) = bound.run_map().expect("runs") else {
            panic!("f64 result")
        };
        assert_eq!(out, vec![0.5; 10]);
    }
}

#[test]
fn rows_inside_a_larger_result_are_written_in_place() {
    use accel_core::kernel::OutSlice;
    // A chunk of 6 rows × 700 inside a result 1000 wide: plain and split.
    for transcendental in [false, true] {
        let mut b = ProgramBuilder::new();
        let x = b.input(InputSpec {
            dtype: DType::F64,
            shape: vec![6, 700],
        });
        let y = if transcendental {
            b.push(Instr::Unary(UnaryOp::Exp, x), DType::F64)
        } else {
            b.push(Instr::Unary(UnaryOp::Sqrt, x), DType::F64)
        };
        let c = b.push(Instr::Const(Value::F64(3.0)), DType::F64);
        let m = b.push(Instr::Binary(BinaryOp::Mul, y, c), DType::F64);
        let exe = Executable::new(b.finish(m, vec![6, 700]));
        let xs = Buffer::F64((0..4200).map(|i| f64::from(i) / 1000.0).collect());
        let inputs: [(&[usize], &Buffer); 1] = [(&[6, 700], &xs)];
        let run = |compiled: bool| {
            let mut result = vec![-1.0f64; 6 * 1000];
            let bound = Bound::new(&exe, &[0, 0], &[6, 700], &inputs).expect("binds");
            assert_eq!(bound.is_split(), transcendental);
            let bound = if compiled { bound } else { bound.interpreted() };
            let rows: Vec<OutSlice<'_>> = result
                .chunks_mut(1000)
                .map(|r| OutSlice::F64(&mut r[..700]))
                .collect();
            bound.run_map_rows(rows).expect("runs");
            result
        };
        let (fast, reference) = (run(true), run(false));
        assert_eq!(
            fast.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            reference.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(fast[1000 + 5], reference[1000 + 5]);
        assert_eq!(fast[999], -1.0, "outside the chunk's columns: untouched");
    }
}
