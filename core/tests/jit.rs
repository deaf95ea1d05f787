//! Compiled kernels against the interpreter: random programs over every real
//! dtype, scalar and full inputs, special values (NaN, signed zeros,
//! infinities, extreme integers); both must give identical bits. Programs
//! with an operation the compiler leaves to the interpreter check that the
//! fallback is taken.

#[path = "support/random_program.rs"]
mod random_program;

use accel_core::buffer::Buffer;
use accel_core::dtype::{DType, Value};
use accel_core::kernel::exec::Bound;
use accel_core::kernel::ir::{InputSpec, Instr, ProgramBuilder};
use accel_core::kernel::{Executable, jit};
use accel_core::op::{BinaryOp, UnaryOp};
use random_program::*;

/// How a task reads each input: scalars broadcast from one element.
fn access_of(inputs: &[(Vec<usize>, Buffer)], n: usize) -> Vec<jit::Access> {
    inputs
        .iter()
        .map(|(s, _)| {
            if s[0] == 1 && n != 1 {
                jit::Access::Scalar
            } else {
                jit::Access::Contiguous
            }
        })
        .collect()
}

/// Fails with the program and the inputs at the first element whose bits differ.
fn assert_same_bits(
    case: usize,
    fast: &Buffer,
    reference: &Buffer,
    exe: &Executable,
    inputs: &[(Vec<usize>, Buffer)],
) {
    let (f, r) = (bits(fast), bits(reference));
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
        let access = access_of(&inputs, n);
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
        assert_same_bits(case, &fast, &reference, &exe, &inputs);
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

/// Parts of complex test values: points on, near and off circles of the
/// compared radii, special values, and parts outside the modulus's safe
/// range (huge, and tiny beside a normal part).
const PARTS: [f64; 18] = [
    0.0,
    -0.0,
    1.2,
    1.6,
    2.0,
    -2.0,
    0.5,
    -1.5,
    1.000_000_000_000_000_2,
    1.999_999_999_999_999_8,
    1e-170,
    1e155,
    1e200,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    3.0,
    -0.25,
];

fn complex_value(rng: &mut Rng) -> num_complex::Complex64 {
    num_complex::Complex64::new(rng.pick(&PARTS), rng.pick(&PARTS))
}

/// A random program that computes with complex values and returns a real
/// one: arithmetic, casts, selects, tests, moduli compared with constants
/// (the compiled loop's proxy) and read otherwise (staged), and a complex
/// transcendental (staged, with everything complex that reads it).
fn complex_case(rng: &mut Rng, n: usize) -> (Executable, Vec<(Vec<usize>, Buffer)>) {
    let mut b = ProgramBuilder::new();
    let full = |k: usize| k.is_multiple_of(3) || n == 1;
    let z_shape = if rng.below(4) == 0 { vec![1] } else { vec![n] };
    let zs = Buffer::C128((0..z_shape[0]).map(|_| complex_value(rng)).collect());
    let xs = Buffer::F64(
        (0..n)
            .map(|k| if full(k) { rng.pick(&PARTS) } else { 1.5 })
            .collect(),
    );
    let ks = Buffer::I32((0..n).map(|k| k as i32 % 7 - 3).collect());
    let z = b.input(InputSpec {
        dtype: DType::C128,
        shape: z_shape.clone(),
    });
    let x = b.input(InputSpec {
        dtype: DType::F64,
        shape: vec![n],
    });
    let k = b.input(InputSpec {
        dtype: DType::I32,
        shape: vec![n],
    });
    let inputs = vec![(z_shape, zs), (vec![n], xs), (vec![n], ks)];
    let xc = b.cast(x, DType::C128);
    let cc = b.push(Instr::Const(Value::C128(complex_value(rng))), DType::C128);
    let (mut cs, mut reals, mut ints) = (vec![z, xc, cc], vec![x], vec![k]);
    let mut bools = vec![b.cast(x, DType::Bool)];
    for _ in 0..3 + rng.below(12) {
        let (a, c) = (rng.pick(&cs), rng.pick(&cs));
        match rng.below(11) {
            0 | 1 => {
                let op = rng.pick(&[BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div]);
                cs.push(b.push(Instr::Binary(op, a, c), DType::C128));
            }
            2 => {
                let op = rng.pick(&[UnaryOp::Neg, UnaryOp::Powi(2)]);
                cs.push(b.push(Instr::Unary(op, a), DType::C128));
            }
            3 => {
                let op = rng.pick(&[UnaryOp::Re, UnaryOp::Im]);
                reals.push(b.push(Instr::Unary(op, a), DType::F64));
            }
            4 => {
                let op = rng.pick(&[UnaryOp::IsNan, UnaryOp::IsFinite]);
                bools.push(b.push(Instr::Unary(op, a), DType::Bool));
            }
            5 => {
                let op = rng.pick(&[BinaryOp::Eq, BinaryOp::Ne]);
                bools.push(b.push(Instr::Binary(op, a, c), DType::Bool));
            }
            6 | 7 => {
                // A modulus read only by a comparison with a constant.
                let m = b.push(Instr::Unary(UnaryOp::Abs, a), DType::F64);
                let r = b.push(
                    Instr::Const(Value::F64(rng.pick(&[2.0, 0.5, 3.0, 1e-90]))),
                    DType::F64,
                );
                let op = rng.pick(&[
                    BinaryOp::Gt,
                    BinaryOp::Ge,
                    BinaryOp::Lt,
                    BinaryOp::Le,
                    BinaryOp::Eq,
                    BinaryOp::Ne,
                ]);
                let (l, rr) = if rng.below(2) == 0 { (m, r) } else { (r, m) };
                bools.push(b.push(Instr::Binary(op, l, rr), DType::Bool));
            }
            8 => {
                let cond = rng.pick(&bools);
                if rng.below(2) == 0 {
                    cs.push(b.push(Instr::Where(cond, a, c), DType::C128));
                } else {
                    let (i, j) = (rng.pick(&ints), rng.pick(&ints));
                    ints.push(b.push(Instr::Where(cond, i, j), DType::I32));
                    let q = b.push(
                        Instr::Const(Value::I32(rng.below(5) as i32 - 2)),
                        DType::I32,
                    );
                    bools.push(b.push(
                        Instr::Binary(BinaryOp::Eq, *ints.last().unwrap_or(&k), q),
                        DType::Bool,
                    ));
                }
            }
            9 => match rng.below(4) {
                0 => bools.push(b.cast(a, DType::Bool)),
                1 => reals.push(b.cast(a, DType::F64)),
                2 => ints.push(b.cast(a, DType::I32)),
                _ => {
                    // A modulus read twice: computed in full by the interpreter.
                    let m = b.push(Instr::Unary(UnaryOp::Abs, a), DType::F64);
                    reals.push(b.push(Instr::Binary(BinaryOp::Add, m, m), DType::F64));
                }
            },
            _ => {
                let e = b.push(Instr::Unary(UnaryOp::Exp, a), DType::C128);
                cs.push(b.push(Instr::Binary(BinaryOp::Add, e, c), DType::C128));
            }
        }
    }
    let root = match rng.below(3) {
        0 => *reals.last().unwrap_or(&x),
        1 => *ints.last().unwrap_or(&k),
        _ => {
            let last = *bools.last().unwrap_or(&x);
            b.cast(last, DType::F64)
        }
    };
    (Executable::new(b.finish(root, vec![n])), inputs)
}

#[test]
fn compiled_complex_kernels_match_the_interpreter_bit_for_bit() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut compiled = 0;
    for case in 0..600 {
        let n = [1, 2, 7, 8, 9, 513, 1000][case % 7];
        let (exe, inputs) = complex_case(&mut rng, n);
        let views: Vec<(&[usize], &Buffer)> =
            inputs.iter().map(|(s, b)| (s.as_slice(), b)).collect();
        let bound = Bound::new(&exe, &[0], &[n], &views).expect("binds");
        let access = access_of(&inputs, n);
        let lowerable = jit::split(&exe.program, &access).is_ok();
        assert_eq!(bound.is_compiled(), lowerable, "case {case}");
        compiled += usize::from(lowerable);
        let fast = bound.run_map().expect("compiled run");
        let reference = Bound::new(&exe, &[0], &[n], &views)
            .expect("binds")
            .interpreted()
            .run_map()
            .expect("interpreted run");
        assert_same_bits(case, &fast, &reference, &exe, &inputs);
    }
    assert!(compiled > 300, "{compiled} complex programs compiled");
}

/// The interpreter's result of `exe` over `n` elements of `views`.
#[allow(clippy::expect_used)] // a test helper: failing to run fails the test
fn interpreted(exe: &Executable, n: usize, views: &[(&[usize], &Buffer)]) -> Buffer {
    Bound::new(exe, &[0], &[n], views)
        .expect("binds")
        .interpreted()
        .run_map()
        .expect("interpreted run")
}

/// A random program of the wide (AVX2) subset: float64 `+ − × ÷ √`,
/// negation, absolute value and integer powers over contiguous and scalar inputs and
/// constants; long chains, shared operands, and now and then more streams
/// than the wide loop has base registers (those stay two lanes wide).
fn wide_case(rng: &mut Rng, n: usize) -> (Executable, Vec<(Vec<usize>, Buffer)>) {
    let mut b = ProgramBuilder::new();
    let mut regs = Vec::new();
    let mut inputs = Vec::new();
    // Every tenth program reads 8 streams: more than the wide loop's bases.
    let many = rng.below(10) == 0;
    for _ in 0..if many { 8 } else { 1 + rng.below(6) } {
        let scalar = !many && rng.below(4) == 0;
        let shape = if scalar { vec![1] } else { vec![n] };
        inputs.push((shape.clone(), buffer(rng, DType::F64, shape[0])));
        regs.push(b.input(InputSpec {
            dtype: DType::F64,
            shape,
        }));
    }
    if many {
        let mut acc = regs[0];
        for &r in &regs.clone()[1..] {
            acc = b.push(Instr::Binary(BinaryOp::Add, acc, r), DType::F64);
        }
        regs.push(acc);
    }
    let steps = [3, 12, 40][rng.below(3)];
    for _ in 0..steps {
        let a = *regs.last().unwrap_or(&0);
        let a = if rng.below(3) == 0 {
            rng.pick(&regs)
        } else {
            a
        };
        let r = match rng.below(8) {
            0 => {
                let power = rng.below(13) as i32 - 6;
                let op = rng.pick(&[
                    UnaryOp::Neg,
                    UnaryOp::Sqrt,
                    UnaryOp::Abs,
                    UnaryOp::Powi(2),
                    UnaryOp::Powi(power),
                ]);
                b.push(Instr::Unary(op, a), DType::F64)
            }
            1 => b.push(Instr::Const(Value::F64(rng.pick(&F64S))), DType::F64),
            _ => {
                let op = rng.pick(&[BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div]);
                let other = rng.pick(&regs);
                let (x, y) = if rng.below(2) == 0 {
                    (a, other)
                } else {
                    (other, a)
                };
                b.push(Instr::Binary(op, x, y), DType::F64)
            }
        };
        regs.push(r);
    }
    let root = *regs.last().unwrap_or(&0);
    (Executable::new(b.finish(root, vec![n])), inputs)
}

#[test]
fn wide_kernels_match_the_interpreter_bit_for_bit() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut wide, mut narrow) = (0, 0);
    for case in 0..600 {
        let n = [1, 7, 8, 9, 63, 1000, 70_001][case % 7];
        let (exe, inputs) = wide_case(&mut rng, n);
        let views: Vec<(&[usize], &Buffer)> =
            inputs.iter().map(|(s, b)| (s.as_slice(), b)).collect();
        let bound = Bound::new(&exe, &[0], &[n], &views).expect("binds");
        assert!(
            bound.is_compiled(),
            "case {case}: every such program compiles"
        );
        if bound.is_wide() {
            wide += 1;
        } else {
            narrow += 1;
        }
        let fast = bound.run_map().expect("compiled run");
        assert_same_bits(case, &fast, &interpreted(&exe, n, &views), &exe, &inputs);
    }
    // Twenty values live at once: more than the sixteen ymm registers.
    let n = 1001;
    let mut b = ProgramBuilder::new();
    let x = b.input(InputSpec {
        dtype: DType::F64,
        shape: vec![n],
    });
    let mut live = vec![x];
    for _ in 0..20 {
        let last = *live.last().unwrap_or(&x);
        live.push(b.push(Instr::Unary(UnaryOp::Sqrt, last), DType::F64));
    }
    let mut sum = live[0];
    for &r in &live[1..] {
        sum = b.push(Instr::Binary(BinaryOp::Add, sum, r), DType::F64);
    }
    let exe = Executable::new(b.finish(sum, vec![n]));
    let inputs = vec![(vec![n], buffer(&mut rng, DType::F64, n))];
    let views: Vec<(&[usize], &Buffer)> = inputs.iter().map(|(s, b)| (s.as_slice(), b)).collect();
    let bound = Bound::new(&exe, &[0], &[n], &views).expect("binds");
    assert!(bound.is_compiled() && !bound.is_wide());
    let reference = interpreted(&exe, n, &views);
    assert_same_bits(
        600,
        &bound.run_map().expect("runs"),
        &reference,
        &exe,
        &inputs,
    );
    if jit::wide::available() {
        assert!(wide > 300, "{wide} programs ran four lanes wide");
        assert!(
            narrow > 20,
            "{narrow} programs past the base registers stayed two lanes wide"
        );
    } else {
        assert_eq!(wide, 0, "no wide code without AVX2");
    }
}
