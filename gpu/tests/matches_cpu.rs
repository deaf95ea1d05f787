//! GPU kernels (WGSL on Mesa's lavapipe, a Vulkan device on the CPU) against
//! the CPU interpreter: random programs over every real dtype with special
//! values, broadcast and strided inputs, generated ranges and random
//! numbers at chunk offsets. Results must agree bit for bit (NaNs as NaN).
//!
//! `ACCEL_TEST_GPU=cuda` (or `cuda:N`, or a Vulkan adapter's index) runs the
//! checks of results on that device instead; the checks of lavapipe's own
//! counters and buffer pool stay on lavapipe.

#![allow(clippy::expect_used)]

#[path = "../../core/tests/support/random_program.rs"]
mod random_program;
#[path = "../../core/tests/support/stencils.rs"]
mod stencils;

use accel_core::buffer::Buffer;
use accel_core::dtype::DType;
use accel_core::kernel::Executable;
use accel_core::kernel::exec::Bound;
use accel_core::kernel::ir::{InputSpec, Instr, ProgramBuilder};
use accel_core::kernel::vmath;
use accel_core::op::{BinaryOp, GenKind, UnaryOp};
use accel_gpu::{Backend, Gpu, GpuChoice, wgsl};
use num_complex::Complex64;
use random_program::*;

fn lavapipe() -> Gpu {
    match Gpu::open(GpuChoice::Software) {
        Ok(Some(g)) => g,
        Ok(None) => panic!("no software GPU opened"),
        Err(e) => panic!("{e} (the test command installs mesa-vulkan-drivers)"),
    }
}

/// The device whose results are checked: `ACCEL_TEST_GPU` (a GPU choice as
/// `--gpu` reads it), lavapipe when unset.
fn device() -> Backend {
    match std::env::var("ACCEL_TEST_GPU") {
        Err(_) => Backend::Vulkan(lavapipe()),
        Ok(choice) => {
            let choice: GpuChoice = choice.parse().expect("ACCEL_TEST_GPU is a GPU choice");
            let opened = accel_gpu::open_backend(choice).expect("ACCEL_TEST_GPU opens");
            opened.expect("ACCEL_TEST_GPU names a GPU")
        }
    }
}

/// Kernels run, bindings made and pipelines compiled, where the device
/// under test is a wgpu device (lavapipe unless `ACCEL_TEST_GPU` says otherwise).
fn lavapipe_counts(gpu: &Backend) -> Option<(u64, u64, u64)> {
    match gpu {
        Backend::Vulkan(g) => Some(g.counts()),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

fn cpu(
    exe: &Executable,
    origin: &[usize],
    local: &[usize],
    inputs: &[(&[usize], &Buffer)],
) -> Buffer {
    Bound::new(exe, origin, local, inputs)
        .expect("binds")
        .interpreted()
        .run_map()
        .expect("interpreter runs")
}

/// Inputs as (chunk shape, data), in program order.
fn paired<'a, const N: usize>(
    shapes: &'a [Vec<usize>; N],
    data: [&'a Buffer; N],
) -> Vec<(&'a [usize], &'a Buffer)> {
    shapes.iter().map(Vec::as_slice).zip(data).collect()
}

fn assert_same(case: &str, exe: &Executable, gpu: &Buffer, cpu: &Buffer) {
    assert_eq!(gpu.dtype(), cpu.dtype(), "{case}");
    let (g, c) = (bits(gpu), bits(cpu));
    assert_eq!(g.len(), c.len(), "{case}");
    if let Some(i) = (0..g.len()).find(|&i| g[i] != c[i]) {
        panic!(
            "{case}, element {i}: GPU {:x} CPU {:x}\n{}",
            g[i],
            c[i],
            exe.program.listing().join("\n")
        );
    }
}

#[test]
fn random_programs_match_the_interpreter_bit_for_bit() {
    let gpu = device();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut ran, mut declined, mut special, mut exps) = (0, 0, 0, 0);
    for case in 0..400 {
        let n = [1, 7, 513, 1000, 70_001][case % 5];
        let (exe, inputs) = random_case(&mut rng, n, case % 3 == 2);
        let views: Vec<(&[usize], &Buffer)> =
            inputs.iter().map(|(s, b)| (s.as_slice(), b)).collect();
        let reference = cpu(&exe, &[0], &[n], &views);
        if let Err(why) = wgsl::check(&exe.program) {
            declined += 1;
            assert!(
                matches!(
                    gpu.run_map(&exe.program, &[0], &[n], &views),
                    Err(accel_gpu::Error::Unsupported(_))
                ),
                "case {case}: refused ({why}) but ran"
            );
            continue;
        }
        let got = match gpu.run_map(&exe.program, &[0], &[n], &views) {
            Ok(got) => got,
            // exp of a non-finite or huge input: the CPU's job.
            Err(accel_gpu::Error::SpecialValues(_)) => {
                special += 1;
                continue;
            }
            Err(e) => panic!("case {case}: {e}\n{}", exe.program.listing().join("\n")),
        };
        assert_same(&format!("case {case}"), &exe, &got, &reference);
        ran += 1;
        exps += usize::from(exe.program.op_names().iter().any(|o| o == "exp"));
    }
    assert!(ran > 250, "{ran} programs ran on the GPU");
    assert!(exps > 3, "{exps} programs with exp ran on the GPU");
    assert!(special > 10, "{special} programs met special values");
    // Every operation the random programs draw has a GPU form (float `%`
    // since it is an exact long division); refusals are tested in `wgsl`.
    assert_eq!(declined, 0, "programs left to the CPU");
    if let Some((kernels, _, _)) = lavapipe_counts(&gpu) {
        assert_eq!(kernels, ran as u64);
    }
}

/// `x[i, j] * w[j] + y[j, i]`-style reads: a broadcast row, a transposed
/// (strided) input and a scalar, over a 2-D chunk at an offset.
#[test]
fn broadcast_and_strided_inputs_line_up_as_on_the_cpu() {
    let gpu = device();
    let (rows, cols) = (37, 300);
    let mut b = ProgramBuilder::new();
    let x = b.input(InputSpec {
        dtype: DType::F64,
        shape: vec![rows, cols],
    });
    let w = b.input(InputSpec {
        dtype: DType::F64,
        shape: vec![cols],
    });
    let c = b.input(InputSpec {
        dtype: DType::I32,
        shape: vec![rows, 1],
    });
    let xw = b.push(Instr::Binary(BinaryOp::Mul, x, w), DType::F64);
    let cf = b.cast(c, DType::F64);
    let r = b.push(Instr::Binary(BinaryOp::Sub, xw, cf), DType::F64);
    let exe = Executable::new(b.finish(r, vec![rows, cols]));
    let xs = Buffer::F64((0..rows * cols).map(|k| k as f64 * 0.37 - 11.0).collect());
    let ws = Buffer::F64((0..cols).map(|k| 1.0 / (k as f64 + 1.0)).collect());
    let cs = Buffer::I32((0..rows).map(|k| k as i32 * 7 - 100).collect());
    let shapes = [vec![rows, cols], vec![cols], vec![rows, 1]];
    let views = paired(&shapes, [&xs, &ws, &cs]);
    let got = gpu
        .run_map(&exe.program, &[0, 0], &[rows, cols], &views)
        .expect("runs");
    assert_same(
        "broadcasts",
        &exe,
        &got,
        &cpu(&exe, &[0, 0], &[rows, cols], &views),
    );
    // Another chunk of the stage (fewer rows, another origin) reuses the pipeline.
    let compiled = lavapipe_counts(&gpu).map(|c| c.2);
    let half = rows / 2;
    let (xs, cs) = (
        Buffer::F64((0..half * cols).map(|k| k as f64 - 5.0).collect()),
        Buffer::I32((0..half).map(|k| k as i32).collect()),
    );
    let shapes = [vec![half, cols], vec![cols], vec![half, 1]];
    let views = paired(&shapes, [&xs, &ws, &cs]);
    let got = gpu
        .run_map(&exe.program, &[half, 0], &[half, cols], &views)
        .expect("runs");
    assert_same(
        "second chunk",
        &exe,
        &got,
        &cpu(&exe, &[half, 0], &[half, cols], &views),
    );
    assert_eq!(
        lavapipe_counts(&gpu).map(|c| c.2),
        compiled,
        "compiled once per structure"
    );
}

/// Ranges, linspace, uniform and normal random numbers at a chunk in the
/// middle of a 2-D array: the counter comes from the chunk's origin.
#[test]
fn generated_values_match_at_any_chunk_origin() {
    let gpu = device();
    let kinds = [
        (
            GenKind::Arange {
                start: -3.5,
                step: 0.25,
            },
            DType::F64,
        ),
        (
            GenKind::Arange {
                start: 7.0,
                step: 3.0,
            },
            DType::I64,
        ),
        (
            GenKind::Arange {
                start: 1.0,
                step: 2.0,
            },
            DType::I32,
        ),
        (
            GenKind::Linspace {
                start: -1.0,
                stop: 1.0,
                num: 60_000,
                endpoint: true,
            },
            DType::F64,
        ),
        (
            GenKind::Uniform {
                seed: 42,
                stream: 3,
                low: -2.0,
                high: 5.0,
            },
            DType::F64,
        ),
        (
            GenKind::Uniform {
                seed: 7,
                stream: 0,
                low: 0.0,
                high: 1.0,
            },
            DType::F32,
        ),
        (
            GenKind::Normal {
                seed: 42,
                stream: 5,
                mean: 0.0,
                std: 1.0,
            },
            DType::F64,
        ),
        (
            GenKind::Normal {
                seed: 9,
                stream: 1,
                mean: -3.0,
                std: 0.5,
            },
            DType::F32,
        ),
    ];
    let (shape, origin, local) = ([200, 300], [100, 150], [100, 150]);
    for (kind, dtype) in kinds {
        let mut b = ProgramBuilder::new();
        let g = b.push(
            Instr::Gen {
                kind: kind.clone(),
                base: 11,
                strides: vec![300, 1],
            },
            dtype,
        );
        let sq = b.push(Instr::Unary(UnaryOp::Powi(2), g), dtype);
        let exe = Executable::new(b.finish(sq, shape.to_vec()));
        let got = gpu
            .run_map(&exe.program, &origin, &local, &[])
            .expect("runs");
        assert_same(
            &format!("{kind:?}"),
            &exe,
            &got,
            &cpu(&exe, &origin, &local, &[]),
        );
    }
}

#[test]
fn a_choice_reads_from_flags_and_a_bad_one_is_a_clear_error() {
    assert_eq!("auto".parse::<GpuChoice>().ok(), Some(GpuChoice::Auto));
    assert_eq!("none".parse::<GpuChoice>().ok(), Some(GpuChoice::None));
    assert_eq!("2".parse::<GpuChoice>().ok(), Some(GpuChoice::Index(2)));
    let e = "fast".parse::<GpuChoice>().expect_err("refused");
    assert!(e.to_string().contains("auto, none, software"), "{e}");
    assert_eq!("cuda".parse::<GpuChoice>().ok(), Some(GpuChoice::Cuda(0)));
    assert_eq!("cuda:3".parse::<GpuChoice>().ok(), Some(GpuChoice::Cuda(3)));
    assert!("cuda:x".parse::<GpuChoice>().is_err());
    // This machine has no CUDA driver: an explicit CUDA device is an error,
    // `auto` quietly finds no GPU (lavapipe is software).
    let e = accel_gpu::open(GpuChoice::Cuda(0)).expect_err("no CUDA here");
    assert!(e.to_string().contains("no CUDA device 0"), "{e}");
    assert!(accel_gpu::open(GpuChoice::Auto).expect("auto").is_none());
    let e = Gpu::open(GpuChoice::Index(99)).expect_err("no such adapter");
    assert!(e.to_string().contains("there is no GPU 99"), "{e}");
    // lavapipe is software: `auto` passes it over.
    assert!(
        accel_gpu::adapters()
            .iter()
            .any(|a| a.software && a.float64)
    );
}

/// Distance in ulps between two finite doubles of the same sign (or zero).
fn ulps(a: f64, b: f64) -> u64 {
    if a == b || (a.is_nan() && b.is_nan()) {
        return 0;
    }
    let key = |x: f64| {
        let b = x.to_bits() as i64;
        if b < 0 { i64::MIN - b } else { b }
    };
    key(a).abs_diff(key(b))
}

fn ulps32(a: f32, b: f32) -> u64 {
    ulps(f64::from(a), f64::from(b)) >> 29
}

/// One function over `xs` (and `ys` for pow) on the GPU and the CPU.
fn run_fn(
    gpu: &Backend,
    op: Option<UnaryOp>,
    d: DType,
    xs: &[f64],
    ys: &[f64],
) -> (Buffer, Buffer) {
    let (_, got, want) = run_two(gpu, d, xs, ys, |b, x, y| match op {
        Some(op) => b.push(Instr::Unary(op, x), d),
        None => b.push(Instr::Binary(BinaryOp::Pow, x, y), d),
    });
    (got, want)
}

/// The program `body` builds from two inputs of dtype `d` (`xs` and `ys`),
/// with its GPU and CPU results.
fn run_two(
    gpu: &Backend,
    d: DType,
    xs: &[f64],
    ys: &[f64],
    body: impl FnOnce(&mut ProgramBuilder, u32, u32) -> u32,
) -> (Executable, Buffer, Buffer) {
    let n = xs.len();
    let mut b = ProgramBuilder::new();
    let x = b.input(InputSpec {
        dtype: d,
        shape: vec![n],
    });
    let y = b.input(InputSpec {
        dtype: d,
        shape: vec![n],
    });
    let r = body(&mut b, x, y);
    let exe = Executable::new(b.finish(r, vec![n]));
    let buf = |v: &[f64]| match d {
        DType::F32 => Buffer::F32(v.iter().map(|&x| x as f32).collect()),
        _ => Buffer::F64(v.to_vec()),
    };
    let (bx, by) = (buf(xs), buf(ys));
    let shape = [n];
    let views: Vec<(&[usize], &Buffer)> = vec![(&shape[..], &bx), (&shape[..], &by)];
    let got = gpu
        .run_map(&exe.program, &[0], &[n], &views)
        .unwrap_or_else(|e| panic!("{d}: {e}\n{}", exe.program.listing().join("\n")));
    let want = cpu(&exe, &[0], &[n], &views);
    (exe, got, want)
}

/// A function (`None`: pow), its arguments, and `std`'s version.
type Case = (Option<UnaryOp>, Vec<f64>, Vec<f64>, fn(f64, f64) -> f64);

/// sin, cos, tan, exp, tanh, sinh, cosh and pow are the CPU's kernels
/// operation for operation: the same bits in f64. log, log2, log10, log1p
/// and expm1 (the CPU's are the C library's) and the f32 forms (computed in
/// f64, rounded) are within the kernels' bound of `std`.
#[test]
fn transcendentals_follow_the_cpus_kernels() {
    let gpu = device();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut unit = move || (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
    let n = 60_000;
    let sweep = |lo: f64, hi: f64, unit: &mut dyn FnMut() -> f64| -> Vec<f64> {
        (0..n).map(|_| lo + (hi - lo) * unit()).collect()
    };
    let log_sweep = |lo: f64, hi: f64, unit: &mut dyn FnMut() -> f64| -> Vec<f64> {
        (0..n)
            .map(|_| (lo.ln() + (hi.ln() - lo.ln()) * unit()).exp())
            .collect()
    };
    // log1p's and expm1's arguments: tiny ones of both signs (where they
    // differ most from log(1 + x) and exp(x) - 1), then up to -1 and 10^5.
    let mut signed_small: Vec<f64> = log_sweep(1e-300, 1.0, &mut unit)
        .into_iter()
        .enumerate()
        .map(|(k, x)| if k % 2 == 0 { x } else { -x * 0.999 })
        .collect();
    signed_small.extend(sweep(-0.999_999, 1.0, &mut unit)[..n / 2].iter());
    signed_small.extend(log_sweep(1.0, 1e5, &mut unit)[..n / 2].iter());
    signed_small.extend([0.0, -0.0]);
    // arcsin's and arccos's: all of [-1, 1], both sides of ±1/2, tiny ones, ±1.
    let mut unit_interval = sweep(-1.0, 1.0, &mut unit);
    unit_interval.extend(sweep(0.49, 0.51, &mut unit)[..n / 4].iter());
    unit_interval.extend(sweep(-0.51, -0.49, &mut unit)[..n / 4].iter());
    unit_interval.extend(log_sweep(1e-300, 1e-3, &mut unit)[..n / 4].iter());
    unit_interval.extend([1.0, -1.0, 0.5, -0.5, 0.0, -0.0]);
    let zeros = vec![0.0; unit_interval.len()];
    let mut trig = sweep(-1e6, 1e6, &mut unit);
    trig.extend(sweep(-7.0, 7.0, &mut unit));
    trig.extend((1..20_000).map(|k| k as f64 * std::f64::consts::FRAC_PI_2));
    let cases: Vec<Case> = vec![
        (Some(UnaryOp::Sin), trig.clone(), trig.clone(), |x, _| {
            x.sin()
        }),
        (Some(UnaryOp::Cos), trig.clone(), trig.clone(), |x, _| {
            x.cos()
        }),
        (Some(UnaryOp::Tan), trig.clone(), trig, |x, _| x.tan()),
        (
            Some(UnaryOp::Exp),
            sweep(-700.0, 700.0, &mut unit),
            vec![0.0; n],
            |x, _| x.exp(),
        ),
        (
            Some(UnaryOp::Tanh),
            sweep(-25.0, 25.0, &mut unit),
            vec![0.0; n],
            |x, _| x.tanh(),
        ),
        (
            Some(UnaryOp::Sinh),
            sweep(-700.0, 700.0, &mut unit),
            vec![0.0; n],
            |x, _| x.sinh(),
        ),
        (
            Some(UnaryOp::Cosh),
            sweep(-3.0, 3.0, &mut unit),
            vec![0.0; n],
            |x, _| x.cosh(),
        ),
        (
            Some(UnaryOp::Log),
            log_sweep(1e-300, 1e300, &mut unit),
            vec![0.0; n],
            |x, _| x.ln(),
        ),
        (
            None,
            log_sweep(1e-5, 1e5, &mut unit),
            sweep(-50.0, 50.0, &mut unit),
            f64::powf,
        ),
        (
            Some(UnaryOp::Log2),
            log_sweep(1e-300, 1e300, &mut unit),
            vec![0.0; n],
            |x, _| x.log2(),
        ),
        (
            Some(UnaryOp::Log10),
            log_sweep(1e-300, 1e300, &mut unit),
            vec![0.0; n],
            |x, _| x.log10(),
        ),
        (
            Some(UnaryOp::Log1p),
            signed_small.clone(),
            vec![0.0; signed_small.len()],
            |x, _| x.ln_1p(),
        ),
        (
            Some(UnaryOp::Expm1),
            {
                let mut v = sweep(-700.0, 700.0, &mut unit);
                v.extend(signed_small.iter().filter(|x| x.abs() < 1.0));
                v
            },
            vec![0.0; 2 * n],
            |x, _| x.exp_m1(),
        ),
        (
            Some(UnaryOp::Arctan),
            {
                // Both sides of 1 and of tan(π/12), and large arguments of both signs.
                let mut v = sweep(-2.0, 2.0, &mut unit);
                v.extend(sweep(0.25, 0.29, &mut unit)[..n / 4].iter());
                v.extend(log_sweep(1e-300, 1e300, &mut unit).iter().map(|x| -x));
                v
            },
            vec![0.0; 2 * n + n / 4],
            |x, _| x.atan(),
        ),
        (
            Some(UnaryOp::Arcsin),
            unit_interval.clone(),
            zeros.clone(),
            |x, _| x.asin(),
        ),
        (Some(UnaryOp::Arccos), unit_interval, zeros, |x, _| x.acos()),
    ];
    for (op, xs, ys, reference) in cases {
        let ys = &ys[..xs.len().min(ys.len())];
        let xs = &xs[..ys.len()];
        let (got, cpu) = run_fn(&gpu, op, DType::F64, xs, ys);
        let (Buffer::F64(got), Buffer::F64(cpu)) = (got, cpu) else {
            panic!("f64 results")
        };
        // The CPU takes these from the C library; the GPU is within the bound of it.
        let libm = [
            UnaryOp::Log,
            UnaryOp::Log2,
            UnaryOp::Log10,
            UnaryOp::Log1p,
            UnaryOp::Expm1,
            UnaryOp::Arctan,
            UnaryOp::Arcsin,
            UnaryOp::Arccos,
        ];
        let mut worst = 0;
        for k in 0..xs.len() {
            let want = reference(xs[k], ys[k]);
            let e = ulps(got[k], want);
            worst = worst.max(e);
            if want == 0.0 {
                assert_eq!(
                    got[k].to_bits(),
                    want.to_bits(),
                    "{op:?}({}): signed zero",
                    xs[k]
                );
            }
            assert!(
                e as f64 <= vmath::ULP_BOUND_F64,
                "{op:?}({}, {}): GPU {} std {want}",
                xs[k],
                ys[k],
                got[k]
            );
            if !op.is_some_and(|o| libm.contains(&o)) {
                assert_eq!(
                    got[k].to_bits(),
                    cpu[k].to_bits(),
                    "{op:?}({}, {})",
                    xs[k],
                    ys[k]
                );
            }
        }
        eprintln!(
            "{op:?}: at most {worst} ulp from std over {} arguments",
            xs.len()
        );
        // f32: arguments that are normal floats (others are the CPU's).
        let normal = |v: f64| (v as f32).is_normal() || v == 0.0;
        let keep: Vec<usize> = (0..xs.len())
            .filter(|&k| normal(xs[k]) && normal(ys[k]))
            .collect();
        let xs: Vec<f64> = keep.iter().map(|&k| xs[k]).collect();
        let ys: Vec<f64> = keep.iter().map(|&k| ys[k]).collect();
        let (got32, _) = run_fn(&gpu, op, DType::F32, &xs, &ys);
        let Buffer::F32(got32) = got32 else {
            panic!("f32 results")
        };
        let mut worst32 = 0;
        for k in 0..xs.len() {
            let (x, y) = (xs[k] as f32, ys[k] as f32);
            let want = reference(f64::from(x), f64::from(y)) as f32;
            if want == 0.0 || want.is_infinite() {
                assert_eq!(
                    got32[k].to_bits(),
                    want.to_bits(),
                    "f32 {op:?}({x}, {y}): zero or overflow"
                );
            }
            if want.is_finite() && want.abs() > f32::MIN_POSITIVE {
                worst32 = worst32.max(ulps32(got32[k], want));
                assert!(
                    ulps32(got32[k], want) as f64 <= vmath::ULP_BOUND_F32,
                    "f32 {op:?}({x}, {y}): GPU {} std {want}",
                    got32[k]
                );
            }
        }
        eprintln!(
            "f32 {op:?}: at most {worst32} ulp from std over {} arguments",
            xs.len()
        );
    }
    // Outside the fast range the whole chunk is the CPU's.
    let xs = [1.0, f64::NAN, 2.0];
    let (bx, by) = (Buffer::F64(xs.to_vec()), Buffer::F64(xs.to_vec()));
    let views: Vec<(&[usize], &Buffer)> = vec![(&[3][..], &bx), (&[3][..], &by)];
    let mut b = ProgramBuilder::new();
    let x = b.input(InputSpec {
        dtype: DType::F64,
        shape: vec![3],
    });
    let _ = b.input(InputSpec {
        dtype: DType::F64,
        shape: vec![3],
    });
    let s = b.push(Instr::Unary(UnaryOp::Sin, x), DType::F64);
    let exe = Executable::new(b.finish(s, vec![3]));
    assert!(matches!(
        gpu.run_map(&exe.program, &[0], &[3], &views),
        Err(accel_gpu::Error::SpecialValues(1))
    ));
}

/// Whether the device sends the chunk of the program `body` builds over
/// `inputs` (one chunk each, of one length) back to the CPU.
fn sent_back(
    gpu: &Backend,
    inputs: &[Buffer],
    body: impl FnOnce(&mut ProgramBuilder, &[u32]) -> u32,
) -> bool {
    let n = inputs.first().map_or(0, Buffer::len);
    let mut b = ProgramBuilder::new();
    let regs: Vec<u32> = inputs
        .iter()
        .map(|d| {
            b.input(InputSpec {
                dtype: d.dtype(),
                shape: vec![n],
            })
        })
        .collect();
    let r = body(&mut b, &regs);
    let exe = Executable::new(b.finish(r, vec![n]));
    let shape = [n];
    let views: Vec<(&[usize], &Buffer)> = inputs.iter().map(|d| (&shape[..], d)).collect();
    matches!(
        gpu.run_map(&exe.program, &[0], &[n], &views),
        Err(accel_gpu::Error::SpecialValues(1))
    )
}

/// `arctan2(y, x)` in every quadrant, on both sides of |y| = |x|, on the
/// axes with signed zeros, and over quotients from 1 down to the normal
/// range: within the kernels' bound of `std` (the C library's, which the
/// CPU uses), zeros, ±π/2 and ±π exactly. NaN, infinities, subnormals and
/// quotients below the normal range send the chunk back to the CPU.
#[test]
fn arctan2_is_within_the_bound_of_std() {
    let gpu = device();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut unit = || (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
    let (mut ys, mut xs) = (Vec::new(), Vec::new());
    for k in 0..4000 {
        // Around the circle at every scale, then far apart in size.
        let angle = std::f64::consts::PI * (2.0 * unit() - 1.0);
        let r = 10f64.powf(600.0 * unit() - 300.0);
        ys.push(r * angle.sin());
        xs.push(r * angle.cos());
        let sign = |u: f64| if u < 0.5 { -1.0 } else { 1.0 };
        let (a, b) = (
            10f64.powf(300.0 * unit() - 150.0),
            10f64.powf(300.0 * unit() - 150.0),
        );
        let (sa, sb) = (sign(unit()), sign(unit()));
        if k % 2 == 0 {
            ys.push(sa * a);
            xs.push(sb * b);
        } else {
            // |y| and |x| a few ulps apart (the π/4 diagonals).
            let near = f64::from_bits(a.to_bits() + (k as u64 % 7));
            ys.push(sa * a);
            xs.push(sb * near);
        }
    }
    for (y, x) in [
        (0.0, 1.0),
        (-0.0, 1.0),
        (0.0, -1.0),
        (-0.0, -1.0),
        (0.0, 0.0),
        (-0.0, 0.0),
        (0.0, -0.0),
        (-0.0, -0.0),
        (1.0, 0.0),
        (-1.0, 0.0),
        (1.0, -0.0),
        (-1e300, -0.0),
        (0.0, -5e-300),
        (3.0, 3.0),
        (-3.0, -3.0),
        (1e-300, 1e7),
        (-1e-300, -1e7),
    ] {
        ys.push(y);
        xs.push(x);
    }
    let n = ys.len();
    let (_, got, want) = run_two(&gpu, DType::F64, &ys, &xs, |b, y, x| {
        b.push(Instr::Binary(BinaryOp::Arctan2, y, x), DType::F64)
    });
    let (Buffer::F64(got), Buffer::F64(cpu)) = (got, want) else {
        panic!("f64 results")
    };
    let mut worst = 0;
    for k in 0..n {
        let want = ys[k].atan2(xs[k]);
        assert_eq!(cpu[k].to_bits(), want.to_bits(), "the CPU's is std's");
        let e = ulps(got[k], want);
        worst = worst.max(e);
        assert!(
            e as f64 <= vmath::ULP_BOUND_F64,
            "arctan2({}, {}): GPU {} std {want}",
            ys[k],
            xs[k],
            got[k]
        );
        if ys[k] == 0.0 || xs[k] == 0.0 {
            assert_eq!(
                got[k].to_bits(),
                want.to_bits(),
                "arctan2({}, {})",
                ys[k],
                xs[k]
            );
        }
    }
    eprintln!("arctan2: at most {worst} ulp from std over {n} arguments");
    // float32, computed in float64 and rounded: pairs of normal floats.
    let normal = |v: f64| (v as f32).is_normal() || v == 0.0;
    let keep: Vec<usize> = (0..n).filter(|&k| normal(ys[k]) && normal(xs[k])).collect();
    assert!(keep.len() > 1000, "{} float32 pairs", keep.len());
    let ys32: Vec<f64> = keep.iter().map(|&k| ys[k]).collect();
    let xs32: Vec<f64> = keep.iter().map(|&k| xs[k]).collect();
    let (_, got32, _) = run_two(&gpu, DType::F32, &ys32, &xs32, |b, y, x| {
        b.push(Instr::Binary(BinaryOp::Arctan2, y, x), DType::F32)
    });
    let Buffer::F32(got32) = got32 else {
        panic!("f32 results")
    };
    for k in 0..keep.len() {
        let (y, x) = (ys32[k] as f32, xs32[k] as f32);
        let want = y.atan2(x);
        assert!(
            ulps32(got32[k], want) as f64 <= vmath::ULP_BOUND_F32,
            "f32 arctan2({y}, {x}): GPU {} std {want}",
            got32[k]
        );
    }
    // What the GPU leaves to the CPU.
    for (y, x) in [
        (f64::NAN, 1.0),
        (1.0, f64::NAN),
        (f64::INFINITY, 1.0),
        (1.0, f64::NEG_INFINITY),
        (1e-310, 1.0),
        (1.0, -1e-310),
        (1e-200, 1e200),
    ] {
        let inputs = [Buffer::F64(vec![0.5, y]), Buffer::F64(vec![1.0, x])];
        let sent = sent_back(&gpu, &inputs, |b, r| {
            b.push(Instr::Binary(BinaryOp::Arctan2, r[0], r[1]), DType::F64)
        });
        assert!(sent, "arctan2({y}, {x}) ran on the GPU");
    }
}

/// `count` complex numbers at random angles, their moduli spread evenly over
/// the powers of ten from `lo` to `hi`.
fn polar_sweep(seed: u64, count: usize, (lo, hi): (f64, f64)) -> Vec<Complex64> {
    let mut rng = Rng(seed);
    let mut unit = || (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
    (0..count)
        .map(|_| {
            let angle = std::f64::consts::PI * (2.0 * unit() - 1.0);
            Complex64::from_polar(10f64.powf(lo + (hi - lo) * unit()), angle)
        })
        .collect()
}

/// The GPU's and the CPU's complex `op` of every one of `zs` (one chunk).
fn complex_on_both(
    gpu: &Backend,
    op: UnaryOp,
    zs: &[Complex64],
) -> (Vec<Complex64>, Vec<Complex64>) {
    complex_kernel_on_both(gpu, zs, |b, z| b.push(Instr::Unary(op, z), DType::C128))
}

/// The GPU's and the CPU's results of the complex kernel `build` makes of
/// its input, over `zs` (one chunk).
fn complex_kernel_on_both(
    gpu: &Backend,
    zs: &[Complex64],
    build: impl FnOnce(&mut ProgramBuilder, u32) -> u32,
) -> (Vec<Complex64>, Vec<Complex64>) {
    let n = zs.len();
    let mut b = ProgramBuilder::new();
    let z = b.input(InputSpec {
        dtype: DType::C128,
        shape: vec![n],
    });
    let r = build(&mut b, z);
    let exe = Executable::new(b.finish(r, vec![n]));
    let data = Buffer::C128(zs.to_vec());
    let shape = [n];
    let views: Vec<(&[usize], &Buffer)> = vec![(&shape[..], &data)];
    let got = gpu
        .run_map(&exe.program, &[0], &[n], &views)
        .unwrap_or_else(|e| panic!("{e}"));
    let (Buffer::C128(got), Buffer::C128(cpu)) = (got, cpu(&exe, &[0], &[n], &views)) else {
        panic!("complex results")
    };
    (got, cpu)
}

/// Checks every part of the GPU's `op(z)` within the kernels' bound of the
/// CPU's as `error(k, gpu, cpu)` counts it for the k-th argument, zeros with
/// the CPU's sign; the worst error.
fn assert_parts_within_bound(
    op: UnaryOp,
    zs: &[Complex64],
    (got, cpu): (&[Complex64], &[Complex64]),
    error: impl Fn(usize, f64, f64) -> f64,
) -> f64 {
    let mut worst = 0.0f64;
    for k in 0..zs.len() {
        for (g, c) in [(got[k].re, cpu[k].re), (got[k].im, cpu[k].im)] {
            let e = error(k, g, c);
            worst = worst.max(e);
            assert!(
                e <= vmath::ULP_BOUND_F64,
                "{op:?}({}): GPU {} CPU {}",
                zs[k],
                got[k],
                cpu[k]
            );
            if c == 0.0 {
                assert_eq!(g.to_bits(), c.to_bits(), "{op:?}({}): signed zero", zs[k]);
            }
        }
    }
    worst
}

/// Checks that each of `zs`, in a chunk after 1 + i, sends the chunk of
/// complex `op` back to the CPU.
fn assert_sent_back(gpu: &Backend, op: UnaryOp, zs: &[Complex64]) {
    for &z in zs {
        let inputs = [Buffer::C128(vec![Complex64::new(1.0, 1.0), z])];
        let sent = sent_back(gpu, &inputs, |b, r| {
            b.push(Instr::Unary(op, r[0]), DType::C128)
        });
        assert!(sent, "{op:?}({z}) ran on the GPU");
    }
}

/// Complex `log`, `log2` and `log10` (num-complex's: the logarithm of the
/// modulus and the argument, over ln 2 or ln 10) in every quadrant and at
/// every scale, each part within the kernels' bound of the CPU's; 0,
/// non-finite parts and moduli beyond the modulus kernel's range (10^±150)
/// send the chunk back.
#[test]
fn complex_logarithms_are_within_the_bound_of_the_cpus() {
    let gpu = device();
    let mut zs = polar_sweep(0x0bad_5eed_1234_5678, 3000, (-100.0, 100.0));
    // The unit circle (a real part of 0 to a few ulps), the axes, signed zeros.
    zs.extend((0..200).map(|k| Complex64::from_polar(1.0, k as f64 * 0.031_415_926)));
    zs.extend([
        Complex64::new(-1.0, 0.0),
        Complex64::new(-1.0, -0.0),
        Complex64::new(0.0, 2.0),
        Complex64::new(-0.0, -2.0),
        Complex64::new(3.0, 0.0),
        Complex64::new(1e150, -1e-150),
    ]);
    type Reference = fn(Complex64) -> Complex64;
    let cases: [(UnaryOp, Reference); 3] = [
        (UnaryOp::Log, Complex64::ln),
        (UnaryOp::Log2, Complex64::log2),
        (UnaryOp::Log10, Complex64::log10),
    ];
    // An ulp of `x`'s binade.
    let ulp = |x: f64| {
        let a = x.abs();
        f64::from_bits(a.to_bits() + 1) - a
    };
    for (op, reference) in cases {
        // log2 and log10 divide the natural logarithm's parts by ln 2 or
        // ln 10: the bound is the logarithm's, in ulps of its parts, and the
        // two roundings of the quotients.
        let ln_base = match op {
            UnaryOp::Log2 => std::f64::consts::LN_2,
            UnaryOp::Log10 => std::f64::consts::LN_10,
            _ => 1.0,
        };
        let (got, cpu) = complex_on_both(&gpu, op, &zs);
        for (z, c) in zs.iter().zip(&cpu) {
            assert_eq!(*c, reference(*z), "the CPU's is num-complex's");
        }
        let worst = assert_parts_within_bound(op, &zs, (&got, &cpu), |_, g, c| {
            if op == UnaryOp::Log {
                ulps(g, c) as f64
            } else {
                ((g - c).abs() - ulp(c)).max(0.0) * ln_base / ulp(c * ln_base)
            }
        });
        eprintln!(
            "complex {op:?}: at most {worst:.2} ulp (of the natural logarithm's parts) from the CPU over {} arguments",
            zs.len()
        );
        assert_sent_back(
            &gpu,
            op,
            &[
                Complex64::new(0.0, 0.0),
                Complex64::new(f64::INFINITY, 1.0),
                Complex64::new(1.0, f64::NAN),
                // Beyond the modulus kernel's safe range: num-complex's.
                Complex64::new(1e300, 1e300),
            ],
        );
    }
}

/// Complex `sign` (z / |z|, 0 at 0: the CPU's) in every quadrant, at every
/// scale and on the axes, within the kernels' bound of the CPU's; NaN,
/// infinite parts and moduli beyond 10^±150 send the chunk back.
#[test]
fn complex_sign_is_within_the_bound_of_the_cpus() {
    let gpu = device();
    let mut zs = polar_sweep(0x5161_0000_dead_beef, 3000, (-100.0, 100.0));
    zs.extend([
        Complex64::new(0.0, 0.0),
        Complex64::new(-0.0, -0.0),
        Complex64::new(-3.0, 0.0),
        Complex64::new(0.0, -1e-140),
        Complex64::new(3.0, 4.0),
    ]);
    let (got, cpu) = complex_on_both(&gpu, UnaryOp::Sign, &zs);
    let worst = assert_parts_within_bound(UnaryOp::Sign, &zs, (&got, &cpu), |_, g, c| {
        ulps(g, c) as f64
    });
    eprintln!(
        "complex sign: at most {worst} ulp from the CPU over {} arguments",
        zs.len()
    );
    assert_sent_back(
        &gpu,
        UnaryOp::Sign,
        &[
            Complex64::new(f64::INFINITY, 1.0),
            Complex64::new(1.0, f64::NAN),
            Complex64::new(1e300, 1e300),
        ],
    );
}

/// Complex `arctan` (the CPU's: -i atanh(iz), whose parts are log1p and
/// arctan2 of the same real expressions) in every quadrant, at every scale
/// and next to ±i, each part within the kernels' bound of the CPU's; NaN,
/// infinite parts and ±i (a pole) send the chunk back.
#[test]
fn complex_arctan_is_within_the_bound_of_the_cpus() {
    let gpu = device();
    let mut zs = polar_sweep(0xa7a7_0000_1111_2222, 3000, (-50.0, 50.0));
    // Next to the poles ±i, the real axis and the branch cuts beyond ±i.
    zs.extend((1..100).map(|k| Complex64::new(k as f64 * 1e-9, 1.0 + k as f64 * 1e-7)));
    zs.extend((1..100).map(|k| Complex64::new(-(k as f64) * 1e-6, -1.0 - k as f64 * 1e-3)));
    zs.extend((1..100).map(|k| Complex64::new(k as f64 * 0.3 - 15.0, 0.0)));
    zs.extend([
        Complex64::new(0.0, 0.0),
        Complex64::new(-0.0, -0.0),
        Complex64::new(0.0, 2.0),
        Complex64::new(-0.0, -2.0),
    ]);
    let (got, cpu) = complex_on_both(&gpu, UnaryOp::Arctan, &zs);
    let worst = assert_parts_within_bound(UnaryOp::Arctan, &zs, (&got, &cpu), |_, g, c| {
        ulps(g, c) as f64
    });
    eprintln!(
        "complex arctan: at most {worst} ulp from the CPU over {} arguments",
        zs.len()
    );
    assert_sent_back(
        &gpu,
        UnaryOp::Arctan,
        &[
            Complex64::new(f64::INFINITY, 1.0),
            Complex64::new(1.0, f64::NAN),
            Complex64::new(0.0, 1.0),
        ],
    );
}

/// Complex `arcsin` and `arccos` (the CPU's, Kahan's: arctan2 and asinh of
/// products of the square roots of 1 - z and 1 + z) in every quadrant, at
/// every scale, along the real axis between the branch points and on the
/// cuts beyond them (both signs of zero), each part within the kernels'
/// bound of the CPU's in ulps of the result's modulus: the parts are sums of
/// products of the roots' parts, each as uncertain as the roots' moduli.
/// Non-finite parts, moduli beyond the roots' range and an asinh argument
/// below 10^-150 send the chunk back.
#[test]
fn complex_arcsin_and_arccos_are_within_the_bound_of_the_cpus() {
    let gpu = device();
    let mut zs = polar_sweep(0xa5c0_5000_0bad_cafe, 3000, (-40.0, 40.0));
    // The real axis between the branch points, the cuts beyond them.
    zs.extend((0..200).map(|k| Complex64::new(k as f64 * 0.01 - 1.0, 0.0)));
    for im in [0.0, -0.0, 1e-9, -1e-9] {
        zs.extend((1..50).map(|k| Complex64::new(1.0 + k as f64 * 0.37, im)));
        zs.extend((1..50).map(|k| Complex64::new(-1.0 - k as f64 * 0.37, im)));
    }
    // Next to the branch points, the imaginary axis, signed zeros.
    zs.extend((1..50).map(|k| Complex64::new(1.0 - k as f64 * 1e-8, k as f64 * 1e-8)));
    zs.extend((1..50).map(|k| Complex64::new(0.0, k as f64 * 0.7 - 17.0)));
    zs.extend([
        Complex64::new(0.0, 0.0),
        Complex64::new(-0.0, -0.0),
        Complex64::new(1.0, 0.0),
        Complex64::new(-1.0, -0.0),
    ]);
    for op in [UnaryOp::Arcsin, UnaryOp::Arccos] {
        let (got, cpu) = complex_on_both(&gpu, op, &zs);
        let mut plain = 0u64;
        for k in 0..zs.len() {
            plain = plain
                .max(ulps(got[k].re, cpu[k].re))
                .max(ulps(got[k].im, cpu[k].im));
        }
        let worst = assert_parts_within_bound(op, &zs, (&got, &cpu), |k, g, c| {
            if g.to_bits() == c.to_bits() {
                0.0
            } else {
                (g - c).abs() / (cpu[k].norm() * f64::EPSILON)
            }
        });
        eprintln!(
            "complex {op:?}: at most {worst:.2} ulp of the modulus from the CPU over {} arguments ({plain} ulp of a part)",
            zs.len()
        );
        assert_sent_back(
            &gpu,
            op,
            &[
                Complex64::new(f64::INFINITY, 1.0),
                Complex64::new(1.0, f64::NAN),
                Complex64::new(1e300, 1e300),
                Complex64::new(0.5, 1e-200),
            ],
        );
    }
}

/// The GPU's and the CPU's `z ** w` for every one of `zs` (one chunk), the
/// exponent a constant of the kernel.
fn complex_power_on_both(
    gpu: &Backend,
    zs: &[Complex64],
    w: Complex64,
) -> (Vec<Complex64>, Vec<Complex64>) {
    complex_kernel_on_both(gpu, zs, |b, z| {
        let e = b.push(Instr::Const(accel_core::dtype::Value::C128(w)), DType::C128);
        b.push(Instr::Binary(BinaryOp::Pow, z, e), DType::C128)
    })
}

/// Complex powers by a constant exponent, as the CPU computes them (NumPy's
/// cases, then num-complex's): integer exponents up to 100 by num-complex's
/// squarings and products, bit for bit, zero bases and a zero exponent
/// exactly; other exponents by exp(w ln z), each part within the kernels'
/// bound of the CPU's in ulps of the result's modulus, plus the rounding of
/// the exponent `w ln z` itself, which exp turns into a relative error
/// (4 |w| |ln z| ulps). Non-finite parts, and moduli beyond the modulus
/// kernel's range, send the chunk back.
#[test]
fn complex_powers_follow_the_cpus() {
    let gpu = device();
    let mut zs = polar_sweep(0x9a0e_c0de_0000_0077, 2000, (-3.0, 3.0));
    zs.extend([
        Complex64::new(0.0, 0.0),
        Complex64::new(-0.0, 0.0),
        Complex64::new(0.0, -0.0),
        Complex64::new(-2.0, 0.0),
        Complex64::new(-2.0, -0.0),
        Complex64::new(0.0, 3.0),
        Complex64::new(1.0, 1.0),
    ]);
    let exact = [
        Complex64::new(2.0, 0.0),
        Complex64::new(3.0, 0.0),
        Complex64::new(-1.0, 0.0),
        Complex64::new(-7.0, 0.0),
        Complex64::new(17.0, 0.0),
        Complex64::new(-0.0, 0.0),
        Complex64::new(0.0, -0.0),
    ];
    for w in exact {
        // Integer powers of large moduli overflow alike on both devices.
        let (got, cpu) = complex_power_on_both(&gpu, &zs, w);
        for k in 0..zs.len() {
            for (g, c) in [(got[k].re, cpu[k].re), (got[k].im, cpu[k].im)] {
                assert!(
                    g.to_bits() == c.to_bits() || (g.is_nan() && c.is_nan()),
                    "({}) ** {w}: GPU {} CPU {}",
                    zs[k],
                    got[k],
                    cpu[k]
                );
            }
        }
    }
    let bounded = [
        Complex64::new(0.5, 0.0),
        Complex64::new(-0.3, 0.0),
        Complex64::new(2.5, 1.0),
        Complex64::new(0.0, 1.0),
        Complex64::new(101.0, 0.0),
        Complex64::new(-1.5, -0.25),
    ];
    let mut worst = 0.0f64;
    for w in bounded {
        // Moduli whose powers stay finite and normal.
        let reach = 250.0 / w.norm();
        let zs: Vec<Complex64> = zs
            .iter()
            .copied()
            .filter(|z| {
                let l = z.ln();
                *z == Complex64::new(0.0, 0.0) || (w * l).re.abs() < reach.min(600.0)
            })
            .collect();
        let (got, cpu) = complex_power_on_both(&gpu, &zs, w);
        for k in 0..zs.len() {
            if zs[k].norm() == 0.0 {
                let want = if w.re > 0.0 { 0.0f64 } else { f64::NAN };
                for (g, c) in [(got[k].re, cpu[k].re), (got[k].im, cpu[k].im)] {
                    assert!(g.to_bits() == c.to_bits() || (g.is_nan() && c.is_nan()));
                    assert!(c == want || (c.is_nan() && want.is_nan()));
                }
                continue;
            }
            let allowance = vmath::ULP_BOUND_F64 + 4.0 * w.norm() * zs[k].ln().norm();
            for (g, c) in [(got[k].re, cpu[k].re), (got[k].im, cpu[k].im)] {
                let e = (g - c).abs() / (cpu[k].norm() * f64::EPSILON);
                worst = worst.max(e / allowance);
                assert!(
                    e <= allowance,
                    "({}) ** {w}: GPU {} CPU {} ({e:.1} ulp of the modulus, allowed {allowance:.1})",
                    zs[k],
                    got[k],
                    cpu[k]
                );
            }
        }
    }
    eprintln!("complex powers: at most {worst:.2} of the allowance from the CPU");
    for bad in [
        Complex64::new(f64::INFINITY, 1.0),
        Complex64::new(1.0, f64::NAN),
        Complex64::new(1e300, 1e300),
    ] {
        let inputs = [Buffer::C128(vec![Complex64::new(1.0, 1.0), bad])];
        let sent = sent_back(&gpu, &inputs, |b, r| {
            let w = b.push(
                Instr::Const(accel_core::dtype::Value::C128(Complex64::new(0.5, 0.0))),
                DType::C128,
            );
            b.push(Instr::Binary(BinaryOp::Pow, r[0], w), DType::C128)
        });
        assert!(sent, "({bad}) ** 0.5 ran on the GPU");
    }
}

/// The GPU's and the CPU's `zs[k] ** ws[k]` (one chunk of each).
fn complex_array_power_on_both(
    gpu: &Backend,
    zs: &[Complex64],
    ws: &[Complex64],
) -> Result<(Vec<Complex64>, Vec<Complex64>), accel_gpu::Error> {
    let n = zs.len();
    let mut b = ProgramBuilder::new();
    let spec = || InputSpec {
        dtype: DType::C128,
        shape: vec![n],
    };
    let (z, w) = (b.input(spec()), b.input(spec()));
    let r = b.push(Instr::Binary(BinaryOp::Pow, z, w), DType::C128);
    let exe = Executable::new(b.finish(r, vec![n]));
    let (zd, wd) = (Buffer::C128(zs.to_vec()), Buffer::C128(ws.to_vec()));
    let shape = [n];
    let views: Vec<(&[usize], &Buffer)> = vec![(&shape[..], &zd), (&shape[..], &wd)];
    let got = gpu.run_map(&exe.program, &[0], &[n], &views)?;
    let (Buffer::C128(got), Buffer::C128(cpu)) = (got, cpu(&exe, &[0], &[n], &views)) else {
        panic!("complex results")
    };
    Ok((got, cpu))
}

/// Complex powers of an array of exponents pick the CPU's case element by
/// element: a zero exponent, zero bases and integer exponents up to 100
/// (num-complex's squarings, in a loop) give the CPU's bits; any other
/// exponent exp(w ln z), within the constant exponent's allowance. A
/// non-finite part sends the chunk back.
#[test]
fn complex_powers_of_array_exponents_follow_the_cpus() {
    let gpu = device();
    let bases = polar_sweep(0x9a0e_c0de_0000_0078, 400, (-2.0, 2.0));
    let exponents = [
        Complex64::new(0.0, 0.0),
        Complex64::new(-0.0, 0.0),
        Complex64::new(2.0, 0.0),
        Complex64::new(-3.0, 0.0),
        Complex64::new(17.0, 0.0),
        Complex64::new(100.0, 0.0),
        Complex64::new(-100.0, 0.0),
        Complex64::new(0.5, 0.0),
        Complex64::new(101.0, 0.0),
        Complex64::new(2.5, 1.0),
        Complex64::new(-1.5, -0.25),
        Complex64::new(3.0, 1e-300),
    ];
    let (mut zs, mut ws) = (Vec::new(), Vec::new());
    for (k, z) in bases.iter().enumerate() {
        let w = exponents[k % exponents.len()];
        // Moduli whose powers stay finite and normal.
        if (w * z.ln()).re.abs() < 250.0 {
            zs.push(*z);
            ws.push(w);
        }
    }
    for w in [
        Complex64::new(2.0, 0.0),
        Complex64::new(-0.5, 0.0),
        Complex64::new(0.0, 0.0),
    ] {
        zs.push(Complex64::new(0.0, 0.0));
        ws.push(w);
    }
    let (got, cpu) = complex_array_power_on_both(&gpu, &zs, &ws).expect("runs on the GPU");
    let mut worst = 0.0f64;
    for k in 0..zs.len() {
        let (z, w) = (zs[k], ws[k]);
        let exact = w.im == 0.0 && w.re.fract() == 0.0 && w.re.abs() <= 100.0;
        for (g, c) in [(got[k].re, cpu[k].re), (got[k].im, cpu[k].im)] {
            if exact || z.norm() == 0.0 {
                assert!(
                    g.to_bits() == c.to_bits() || (g.is_nan() && c.is_nan()),
                    "({z}) ** ({w}): GPU {} CPU {}",
                    got[k],
                    cpu[k]
                );
                continue;
            }
            let allowance = vmath::ULP_BOUND_F64 + 4.0 * w.norm() * z.ln().norm();
            let e = (g - c).abs() / (cpu[k].norm() * f64::EPSILON);
            worst = worst.max(e / allowance);
            assert!(
                e <= allowance,
                "({z}) ** ({w}): GPU {} CPU {} ({e:.1} ulp of the modulus, allowed {allowance:.1})",
                got[k],
                cpu[k]
            );
        }
    }
    eprintln!(
        "complex powers of array exponents: at most {worst:.2} of the allowance over {} pairs",
        zs.len()
    );
    // Non-finite parts go back to the CPU, unless an exact case takes them.
    let sent = |z: Complex64, w: Complex64| {
        matches!(
            complex_array_power_on_both(&gpu, &[Complex64::new(1.0, 1.0), z], &[w, w]),
            Err(accel_gpu::Error::SpecialValues(1))
        )
    };
    assert!(sent(
        Complex64::new(f64::INFINITY, 1.0),
        Complex64::new(0.5, 0.0)
    ));
    assert!(sent(Complex64::new(1e300, 1e300), Complex64::new(0.5, 0.0)));
    assert!(!sent(
        Complex64::new(1e300, 1e300),
        Complex64::new(0.0, 0.0)
    ));
}

/// float32 `hypot` is the CPU's formula (exact squares summed and rooted in
/// float64, then rounded), so the same bits over every scale, subnormals
/// included; infinite and NaN parts send the chunk back to the CPU.
#[test]
fn float32_hypot_matches_the_cpu_bit_for_bit() {
    let gpu = device();
    let mut rng = Rng(0x5eed_f00d_0000_0032);
    let mut part = || {
        // Any finite float32, of either sign, from its bits.
        let v = f32::from_bits((rng.next() >> 32) as u32);
        if v.is_finite() { f64::from(v) } else { 1.5 }
    };
    let (mut xs, mut ys): (Vec<f64>, Vec<f64>) = (0..20_000).map(|_| (part(), part())).unzip();
    for (x, y) in [
        (0.0, 0.0),
        (-0.0, 0.0),
        (3.0, -4.0),
        (f64::from(f32::MAX), f64::from(f32::MAX)),
    ] {
        xs.push(x);
        ys.push(y);
    }
    let (_, got, cpu) = run_two(&gpu, DType::F32, &xs, &ys, |b, x, y| {
        b.push(Instr::Binary(BinaryOp::Hypot, x, y), DType::F32)
    });
    let (Buffer::F32(got), Buffer::F32(cpu)) = (got, cpu) else {
        panic!("f32 results")
    };
    for k in 0..xs.len() {
        let (x, y) = (xs[k] as f32, ys[k] as f32);
        assert_eq!(
            cpu[k].to_bits(),
            x.hypot(y).to_bits(),
            "hypot({x}, {y}): the C library's"
        );
        assert_eq!(got[k].to_bits(), cpu[k].to_bits(), "hypot({x}, {y})");
    }
    for bad in [f32::INFINITY, f32::NAN] {
        let inputs = [Buffer::F32(vec![1.0, bad]), Buffer::F32(vec![2.0, 2.0])];
        let sent = sent_back(&gpu, &inputs, |b, r| {
            b.push(Instr::Binary(BinaryOp::Hypot, r[0], r[1]), DType::F32)
        });
        assert!(sent, "hypot({bad}, 2) ran on the GPU");
    }
}

/// Complex `sqrt` (num-complex's: a zero part gives a real root, otherwise
/// the root of the modulus at half the argument): exactly the CPU's on the
/// axes, and elsewhere each part within the kernels' bound of the CPU's in
/// ulps of the root's modulus (next to the negative real axis the real part
/// is a cosine near π/2: small against the modulus, and as uncertain in
/// the CPU's own result). Non-finite parts and moduli beyond 10^±150 send
/// the chunk back.
#[test]
fn complex_sqrt_is_within_the_bound_of_the_cpus() {
    let gpu = device();
    let mut zs = polar_sweep(0x51de_0f5a_ce00_0001, 3000, (-100.0, 100.0));
    // Next to the negative real axis, on both sides.
    zs.extend((1..100).map(|k| Complex64::new(-2.0, k as f64 * 1e-12)));
    zs.extend((1..100).map(|k| Complex64::new(-2.0, -(k as f64) * 1e-9)));
    // The axes with signed zeros: square roots of reals.
    zs.extend([
        Complex64::new(4.0, 0.0),
        Complex64::new(4.0, -0.0),
        Complex64::new(-4.0, 0.0),
        Complex64::new(-4.0, -0.0),
        Complex64::new(-0.0, 0.0),
        Complex64::new(-0.0, -0.0),
        Complex64::new(0.0, -0.0),
        Complex64::new(0.0, 0.0),
        Complex64::new(0.0, 2.0),
        Complex64::new(-0.0, -2.0),
        Complex64::new(0.0, 1e-300),
        Complex64::new(-1e300, 0.0),
    ]);
    let (got, cpu) = complex_on_both(&gpu, UnaryOp::Sqrt, &zs);
    let (axes, off): (Vec<usize>, Vec<usize>) =
        (0..zs.len()).partition(|&k| zs[k].re == 0.0 || zs[k].im == 0.0);
    for k in axes {
        assert_eq!(cpu[k], zs[k].sqrt(), "the CPU's is num-complex's");
        for (g, c) in [(got[k].re, cpu[k].re), (got[k].im, cpu[k].im)] {
            assert_eq!(
                g.to_bits(),
                c.to_bits(),
                "sqrt({:?}): GPU {:?}",
                zs[k],
                got[k]
            );
        }
    }
    let pick = |v: &[Complex64]| off.iter().map(|&k| v[k]).collect::<Vec<_>>();
    let (zs, got, cpu) = (pick(&zs), pick(&got), pick(&cpu));
    for (z, c) in zs.iter().zip(&cpu) {
        assert_eq!(*c, z.sqrt(), "the CPU's is num-complex's");
    }
    // In ulps of the root's modulus (the CPU's).
    let worst = assert_parts_within_bound(UnaryOp::Sqrt, &zs, (&got, &cpu), |k, g, c| {
        (g - c).abs() / (cpu[k].norm() * f64::EPSILON)
    });
    eprintln!(
        "complex sqrt: at most {worst:.2} ulp of the modulus from the CPU over {} arguments",
        zs.len()
    );
    assert_sent_back(
        &gpu,
        UnaryOp::Sqrt,
        &[
            Complex64::new(f64::INFINITY, 1.0),
            Complex64::new(1.0, f64::NAN),
            Complex64::new(f64::NAN, 0.0),
            Complex64::new(1e300, 1e300),
        ],
    );
}

/// Kernels reuse the device buffers of earlier ones: a smaller chunk in a
/// larger buffer, and a status word left set by a chunk sent back to the
/// CPU, still give the CPU's bits; one set of buffers serves a stage.
#[test]
fn reused_device_buffers_carry_nothing_over() {
    let gpu = lavapipe();
    let sine = |n: usize| {
        let mut b = ProgramBuilder::new();
        let x = b.input(InputSpec {
            dtype: DType::F64,
            shape: vec![n],
        });
        let s = b.push(Instr::Unary(UnaryOp::Sin, x), DType::F64);
        Executable::new(b.finish(s, vec![n]))
    };
    let run = |xs: &[f64]| {
        let n = xs.len();
        let exe = sine(n);
        let buf = Buffer::F64(xs.to_vec());
        let shape = [n];
        let views: Vec<(&[usize], &Buffer)> = vec![(&shape[..], &buf)];
        let got = gpu.run_map(&exe.program, &[0], &[n], &views);
        (exe, buf, got)
    };
    // 30 elements, then 20 in the same (256-byte) buffers.
    let (exe, buf, got) = run(&(0..30).map(|i| i as f64 * 0.1).collect::<Vec<_>>());
    assert_same(
        "30",
        &exe,
        &got.expect("runs"),
        &cpu(&exe, &[0], &[30], &[(&[30], &buf)]),
    );
    let kept = gpu.kept_buffers();
    assert!(kept >= 4, "{kept} buffers kept");
    let (exe, buf, got) = run(&(0..20).map(|i| 1.0 - i as f64 * 0.05).collect::<Vec<_>>());
    assert_same(
        "20",
        &exe,
        &got.expect("runs"),
        &cpu(&exe, &[0], &[20], &[(&[20], &buf)]),
    );
    // A value outside sin's fast range sets the status word: the chunk
    // goes back to the CPU, and the next kernel starts from a clear word.
    let (_, _, got) = run(&[0.5, 1e300, 0.25]);
    assert!(matches!(got, Err(accel_gpu::Error::SpecialValues(1))));
    let (exe, buf, got) = run(&[0.5, 0.75, 0.25]);
    assert_same(
        "after",
        &exe,
        &got.expect("runs"),
        &cpu(&exe, &[0], &[3], &[(&[3], &buf)]),
    );
    assert_eq!(
        gpu.kept_buffers(),
        kept,
        "every kernel reused the same buffers"
    );
}

/// Complex arithmetic (the CPU's formulas), the correctly rounded modulus,
/// `exp`, parts, squares, equality, `where` and casts: random chains over inputs
/// with special values give the CPU's bits (chunks that meet a modulus
/// outside its safe range go to the CPU).
#[test]
fn complex_programs_match_the_interpreter_bit_for_bit() {
    let gpu = device();
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    let specials = [
        0.0,
        -0.0,
        1.5,
        -2.25,
        1e-3,
        3e5,
        f64::NAN,
        f64::INFINITY,
        2.0,
        -7.0,
    ];
    let (mut ran, mut special, mut exps, mut trigs) = (0, 0, 0, 0);
    let (mut tans, mut powers) = (0, 0);
    for case in 0..240 {
        let n = [1, 33, 5000][case % 3];
        let value = |rng: &mut Rng| {
            if rng.below(8) == 0 {
                rng.pick(&specials)
            } else {
                (rng.next() as i64 as f64) / 4e18
            }
        };
        let mut b = ProgramBuilder::new();
        let mut regs = Vec::new();
        let mut inputs = Vec::new();
        for _ in 0..2 {
            let data: Vec<Complex64> = (0..n)
                .map(|_| Complex64::new(value(&mut rng), value(&mut rng)))
                .collect();
            inputs.push(Buffer::C128(data));
            regs.push(b.input(InputSpec {
                dtype: DType::C128,
                shape: vec![n],
            }));
        }
        let real = b.input(InputSpec {
            dtype: DType::F64,
            shape: vec![n],
        });
        let reals: Vec<f64> = (0..n).map(|_| value(&mut rng)).collect();
        inputs.push(Buffer::F64(reals));
        for _ in 0..6 {
            let a = rng.pick(&regs);
            let c = rng.pick(&regs);
            let r = match rng.below(10) {
                0 => b.push(
                    Instr::Binary(rng.pick(&[BinaryOp::Add, BinaryOp::Sub]), a, c),
                    DType::C128,
                ),
                1 => b.push(Instr::Binary(BinaryOp::Mul, a, c), DType::C128),
                2 => b.push(Instr::Binary(BinaryOp::Div, a, c), DType::C128),
                3 => {
                    let n = rng.pick(&[2, 2, -1, 0, 3, 5, -4, 7]);
                    b.push(Instr::Unary(UnaryOp::Powi(n), a), DType::C128)
                }
                4 => b.push(Instr::Unary(UnaryOp::Neg, a), DType::C128),
                7 => b.push(Instr::Unary(UnaryOp::Exp, a), DType::C128),
                8 => {
                    let f = rng.pick(&[
                        UnaryOp::Sin,
                        UnaryOp::Cos,
                        UnaryOp::Sinh,
                        UnaryOp::Cosh,
                        UnaryOp::Tan,
                        UnaryOp::Tanh,
                    ]);
                    b.push(Instr::Unary(f, a), DType::C128)
                }
                5 => {
                    // A real part of the chain: |a| - re(c), back to complex.
                    let m = b.push(Instr::Unary(UnaryOp::Abs, a), DType::F64);
                    let re = b.push(Instr::Unary(UnaryOp::Re, c), DType::F64);
                    let d = b.push(Instr::Binary(BinaryOp::Sub, m, re), DType::F64);
                    b.cast(d, DType::C128)
                }
                6 => {
                    let m = b.push(Instr::Unary(UnaryOp::Abs, a), DType::F64);
                    let two = b.push(Instr::Const(accel_core::dtype::Value::F64(2.0)), DType::F64);
                    let out = b.push(Instr::Binary(BinaryOp::Gt, m, two), DType::Bool);
                    b.push(Instr::Where(out, c, a), DType::C128)
                }
                _ => {
                    let rc = b.cast(real, DType::C128);
                    b.push(Instr::Binary(BinaryOp::Add, a, rc), DType::C128)
                }
            };
            regs.push(r);
        }
        let last = *regs.last().expect("a register");
        let root = match case % 4 {
            0 => last,
            1 => b.push(Instr::Unary(UnaryOp::Abs, last), DType::F64),
            2 => b.push(Instr::Binary(BinaryOp::Eq, last, regs[0]), DType::Bool),
            _ => b.push(Instr::Unary(UnaryOp::IsFinite, last), DType::Bool),
        };
        let exe = Executable::new(b.finish(root, vec![n]));
        let shape = [n];
        let views: Vec<(&[usize], &Buffer)> = inputs.iter().map(|b| (&shape[..], b)).collect();
        let reference = cpu(&exe, &[0], &[n], &views);
        match gpu.run_map(&exe.program, &[0], &[n], &views) {
            Ok(got) => {
                assert_same(&format!("complex case {case}"), &exe, &got, &reference);
                ran += 1;
                let ops = exe.program.op_names();
                exps += usize::from(ops.iter().any(|o| o == "exp"));
                trigs +=
                    usize::from(ops.iter().any(|o| {
                        ["sin", "cos", "sinh", "cosh", "tan", "tanh"].contains(&o.as_str())
                    }));
                tans += usize::from(ops.iter().any(|o| o == "tan" || o == "tanh"));
                powers += usize::from(ops.iter().any(|o| o.starts_with("powi") && o != "powi2"));
            }
            Err(accel_gpu::Error::SpecialValues(_)) => special += 1,
            Err(e) => panic!(
                "complex case {case}: {e}\n{}",
                exe.program.listing().join("\n")
            ),
        }
    }
    assert!(ran > 40, "{ran} complex programs ran on the GPU");
    assert!(
        exps > 10,
        "{exps} programs with a complex exp ran on the GPU"
    );
    assert!(
        trigs > 10,
        "{trigs} programs with a complex sin, cos, sinh, cosh, tan or tanh ran on the GPU"
    );
    assert!(
        tans > 5,
        "{tans} programs with a complex tan or tanh ran on the GPU"
    );
    assert!(
        powers > 10,
        "{powers} programs with complex integer powers ran on the GPU"
    );
    assert!(
        special > 5,
        "{special} met a modulus outside its safe range"
    );
}

/// Float `%` and `//` (NumPy's rules from the exact `fmod`) over every pair
/// of special values (signed zeros, subnormals, the extremes, infinities,
/// NaN) and over random pairs whose ratio spans the whole exponent range:
/// the CPU's bits in f64 and f32.
#[test]
fn float_remainder_and_floor_division_match_the_cpu_bit_for_bit() {
    let gpu = device();
    let specials = [
        0.0,
        1.0,
        0.5,
        3.0,
        7.25,
        0.1,
        std::f64::consts::PI,
        123_456_789.123,
        1e20,
        1e300,
        1e-300,
        5e-324,
        2.5e-310,
        f64::MIN_POSITIVE,
        f64::MAX,
        f64::INFINITY,
        f64::NAN,
    ];
    let signed: Vec<f64> = specials.iter().flat_map(|&v| [v, -v]).collect();
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for &x in &signed {
        for &y in &signed {
            xs.push(x);
            ys.push(y);
        }
    }
    let mut rng = Rng(0x5eed_f00d_0bad_cafe);
    let wide = |rng: &mut Rng| {
        let mantissa = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 + 0.5;
        let exponent = rng.below(2040) as i32 - 1020;
        let sign = if rng.below(2) == 0 { 1.0 } else { -1.0 };
        sign * mantissa * 2f64.powi(exponent)
    };
    for _ in 0..20_000 {
        xs.push(wide(&mut rng));
        ys.push(wide(&mut rng));
    }
    // Ratios near whole numbers, where the floor's correction decides.
    for k in 0..2_000 {
        let y = wide(&mut rng);
        xs.push(y * (k as f64 - 1000.0) * (1.0 + f64::EPSILON * (k % 3) as f64));
        ys.push(y);
    }
    for op in [BinaryOp::Rem, BinaryOp::FloorDiv] {
        for d in [DType::F64, DType::F32] {
            let (exe, got, want) = run_two(&gpu, d, &xs, &ys, |b, x, y| {
                b.push(Instr::Binary(op, x, y), d)
            });
            wgsl::check(&exe.program).expect("float % and // run on the GPU");
            assert_same(&format!("{} of {d}", op.symbol()), &exe, &got, &want);
        }
    }
}

/// Arithmetic with a zero constant (`x * 0`, `0 / x`, `x + -0`, `min(-0, x)`
/// ...) on infinities, NaN, signed zeros and subnormals: the CPU's bits.
/// Written as literals, a driver folds these (`0 * x` to 0, `x + 0` to x).
#[test]
fn zero_constants_are_not_folded_away() {
    let gpu = device();
    let xs = [
        f64::NEG_INFINITY,
        f64::INFINITY,
        -1.0,
        1.0,
        -0.0,
        0.0,
        -5e-324,
        f64::NAN,
    ];
    let n = xs.len();
    for d in [DType::F64, DType::F32] {
        for op in [
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::Div,
            BinaryOp::Min,
            BinaryOp::Max,
        ] {
            for c in [0.0, -0.0] {
                for constant_first in [true, false] {
                    let mut b = ProgramBuilder::new();
                    let x = b.input(InputSpec {
                        dtype: d,
                        shape: vec![n],
                    });
                    let value = match d {
                        DType::F32 => accel_core::dtype::Value::F32(c as f32),
                        _ => accel_core::dtype::Value::F64(c),
                    };
                    let z = b.push(Instr::Const(value), d);
                    let (p, q) = if constant_first { (z, x) } else { (x, z) };
                    let r = b.push(Instr::Binary(op, p, q), d);
                    let exe = Executable::new(b.finish(r, vec![n]));
                    let data = match d {
                        DType::F32 => Buffer::F32(xs.iter().map(|&v| v as f32).collect()),
                        _ => Buffer::F64(xs.to_vec()),
                    };
                    let shape = [n];
                    let views: Vec<(&[usize], &Buffer)> = vec![(&shape[..], &data)];
                    let got = gpu
                        .run_map(&exe.program, &[0], &[n], &views)
                        .unwrap_or_else(|e| panic!("{op:?} {d}: {e}"));
                    let case = format!("{} with {c} of {d}", op.symbol());
                    assert_same(&case, &exe, &got, &cpu(&exe, &[0], &[n], &views));
                }
            }
        }
    }
}

/// `round` takes ties to even and keeps the sign of a zero result, as
/// NumPy's does, whatever the driver's own `round` does with them (lavapipe
/// rounds f64 ties toward zero on some CPUs); so do floor and ceil.
#[test]
fn rounding_takes_ties_to_even_and_keeps_signed_zeros() {
    let gpu = device();
    let mut xs = vec![
        -4.5,
        -3.5,
        -2.5,
        -1.5,
        -0.5,
        -0.3,
        -0.0,
        0.0,
        0.3,
        0.5,
        1.5,
        2.5,
        3.5,
        4.5,
        -3.7,
        3.7,
        0.499_999_999_999_999_94,
        4_503_599_627_370_495.5,
        8_388_607.5,
        8_388_609.0,
        9.007_199_254_740_993e15,
        -1e300,
        5e-324,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    xs.extend((0..200).map(|k| k as f64 * 0.25 - 25.0));
    let n = xs.len();
    for d in [DType::F64, DType::F32] {
        for op in [UnaryOp::Round, UnaryOp::Floor, UnaryOp::Ceil] {
            let mut b = ProgramBuilder::new();
            let x = b.input(InputSpec {
                dtype: d,
                shape: vec![n],
            });
            let r = b.push(Instr::Unary(op, x), d);
            let exe = Executable::new(b.finish(r, vec![n]));
            let data = match d {
                DType::F32 => Buffer::F32(xs.iter().map(|&v| v as f32).collect()),
                _ => Buffer::F64(xs.clone()),
            };
            let shape = [n];
            let views: Vec<(&[usize], &Buffer)> = vec![(&shape[..], &data)];
            let got = gpu
                .run_map(&exe.program, &[0], &[n], &views)
                .unwrap_or_else(|e| panic!("{op:?} {d}: {e}"));
            assert_same(
                &format!("{} of {d}", op.name()),
                &exe,
                &got,
                &cpu(&exe, &[0], &[n], &views),
            );
        }
    }
    // Complex: each part on its own.
    let mut b = ProgramBuilder::new();
    let z = b.input(InputSpec {
        dtype: DType::C128,
        shape: vec![n],
    });
    let r = b.push(Instr::Unary(UnaryOp::Round, z), DType::C128);
    let exe = Executable::new(b.finish(r, vec![n]));
    let data = Buffer::C128(
        xs.iter()
            .zip(xs.iter().rev())
            .map(|(&re, &im)| Complex64::new(re, im))
            .collect(),
    );
    let shape = [n];
    let views: Vec<(&[usize], &Buffer)> = vec![(&shape[..], &data)];
    let got = gpu.run_map(&exe.program, &[0], &[n], &views).expect("runs");
    assert_same("complex round", &exe, &got, &cpu(&exe, &[0], &[n], &views));
}

/// The partial results a device fold leaves, one per strip of `STRIP`
/// values, each the CPU's fold of its strip: integer sums and products
/// (wrapping), extremes, any and all, over strip boundaries and a 2-D chunk
/// with a broadcast row at an offset.
#[test]
fn device_folds_match_the_cpus_fold_of_each_strip() {
    use accel_core::exec::Fold;
    let gpu = device();
    let strip = accel_gpu::wgsl::STRIP as usize;
    let mut rng = Rng(0x5eed_f01d_0000_0001);
    let mut folded = 0;
    for (case, shape) in [
        vec![1],
        vec![255],
        vec![256],
        vec![257],
        vec![1000],
        vec![70_001],
        vec![37, 300],
    ]
    .into_iter()
    .enumerate()
    {
        let n: usize = shape.iter().product();
        let cols = *shape.last().expect("an axis");
        let xs = Buffer::F64((0..n).map(|_| (rng.next() as i64 as f64) / 4e18).collect());
        let ws = Buffer::F64(
            (0..cols)
                .map(|_| (rng.next() as i64 as f64) / 4e18)
                .collect(),
        );
        let origin = vec![case; shape.len()];
        for (values, folds) in [
            (DType::Bool, &[Fold::Any, Fold::All][..]),
            (DType::I32, &[Fold::Min, Fold::Max][..]),
            (
                DType::I64,
                &[Fold::Sum, Fold::Prod, Fold::Min, Fold::Max][..],
            ),
        ] {
            // v = x * w, then: x * w < 0.3 (bool), or (x * w) · 1e4 as an integer.
            let mut b = ProgramBuilder::new();
            let x = b.input(InputSpec {
                dtype: DType::F64,
                shape: shape.clone(),
            });
            let w = b.input(InputSpec {
                dtype: DType::F64,
                shape: vec![cols],
            });
            let v = b.push(Instr::Binary(BinaryOp::Mul, x, w), DType::F64);
            let root = match values {
                DType::Bool => {
                    let c = b.push(Instr::Const(accel_core::dtype::Value::F64(0.3)), DType::F64);
                    b.push(Instr::Binary(BinaryOp::Lt, v, c), DType::Bool)
                }
                d => {
                    let c = b.push(Instr::Const(accel_core::dtype::Value::F64(1e4)), DType::F64);
                    let s = b.push(Instr::Binary(BinaryOp::Mul, v, c), DType::F64);
                    b.cast(s, d)
                }
            };
            let exe = Executable::new(b.finish(root, shape.clone()));
            let shapes = [shape.clone(), vec![cols]];
            let views = paired(&shapes, [&xs, &ws]);
            let reference = cpu(&exe, &origin, &shape, &views);
            for &fold in folds {
                let parts = gpu
                    .run_fold(&exe.program, &origin, &shape, &views, fold)
                    .unwrap_or_else(|e| panic!("{fold:?} of {values} over {shape:?}: {e}"));
                assert_eq!(parts.len(), n.div_ceil(strip), "{fold:?} over {shape:?}");
                let case = format!("{fold:?} of {values} over {shape:?}");
                match (&reference, &parts) {
                    (Buffer::Bool(v), Buffer::Bool(p)) => {
                        for (s, values) in v.chunks(strip).enumerate() {
                            let want = match fold {
                                Fold::Any => values.iter().any(|&b| b),
                                _ => values.iter().all(|&b| b),
                            };
                            assert_eq!(p[s], want, "{case}, strip {s}");
                        }
                    }
                    (Buffer::I32(v), Buffer::I32(p)) => {
                        for (s, values) in v.chunks(strip).enumerate() {
                            let want = match fold {
                                Fold::Min => values.iter().copied().min(),
                                _ => values.iter().copied().max(),
                            };
                            assert_eq!(Some(p[s]), want, "{case}, strip {s}");
                        }
                    }
                    (Buffer::I64(v), Buffer::I64(p)) => {
                        for (s, values) in v.chunks(strip).enumerate() {
                            let want = match fold {
                                Fold::Sum => values.iter().fold(0i64, |a, &b| a.wrapping_add(b)),
                                Fold::Prod => values.iter().fold(1i64, |a, &b| a.wrapping_mul(b)),
                                Fold::Min => values.iter().copied().min().unwrap_or(i64::MAX),
                                _ => values.iter().copied().max().unwrap_or(i64::MIN),
                            };
                            assert_eq!(p[s], want, "{case}, strip {s}");
                        }
                    }
                    _ => panic!("{case}: the partials' dtype {}", parts.dtype()),
                }
                folded += 1;
            }
        }
        // A fold the device has no order-free form for is refused.
        let mut b = ProgramBuilder::new();
        let x = b.input(InputSpec {
            dtype: DType::F64,
            shape: shape.clone(),
        });
        let exe = Executable::new(b.finish(x, shape.clone()));
        let shapes = [shape.clone()];
        let views = paired(&shapes, [&xs]);
        assert!(matches!(
            gpu.run_fold(&exe.program, &origin, &shape, &views, Fold::Sum),
            Err(accel_gpu::Error::Unsupported(_))
        ));
    }
    assert_eq!(folded, 7 * 8);
}

/// Stencil tasks run step by step on the device (levels over windows of
/// buffers kept there, kept and ghost cells moved there) give the host's
/// run of the same plan, bit for bit: every boundary rule, one to three
/// axes and fused steps, chunks at corners, edges and inside, waves (three
/// live fields), 32-bit integers, chunks the CPU runs in bands or trims.
/// Each input is the whole array, then chunks of a third of it: boxes of
/// several chunks, periodic images among them, placed on the device.
#[test]
fn stencil_plans_run_on_the_device_with_the_hosts_bits() {
    let gpu = device();
    let mut ran = 0;
    for case in stencils::cases() {
        let block: Vec<usize> = case.shape.iter().map(|n| n.div_ceil(3).max(1)).collect();
        let blocks = case.blocks(&block);
        let pieces = stencils::Case::pieces_of(&blocks);
        for plan in [case.plan(), case.plan_of(&pieces)] {
            let want = plan.run_on_host().expect("runs");
            let got = gpu
                .run_stencil(&plan)
                .unwrap_or_else(|e| panic!("{}: {e}", case.what));
            assert!(
                stencils::same_bits(&want, &got),
                "{}: {want:?} against {got:?}",
                case.what
            );
            ran += 1;
        }
    }
    assert_eq!(ran, 2 * (5 * (3 * 7 + 2 * 4) + 2 * 2));
}

/// A stencil task reads its input chunks from the device's copies: each
/// uploaded by the first task that reads it, then read there by every other,
/// and an output chunk made on the device is read there by the next stage.
#[test]
fn stencil_inputs_stay_in_device_memory() {
    let gpu = device();
    let case = stencils::cases()
        .into_iter()
        .find(|c| c.shape.len() == 2 && c.kernel.boundary[0] == accel_core::op::Boundary::Periodic)
        .expect("a periodic case on a plane");
    let block: Vec<usize> = case.shape.iter().map(|n| n.div_ceil(3).max(1)).collect();
    let blocks = case.blocks(&block);
    let pieces = stencils::Case::pieces_of(&blocks);
    let plan = case.plan_of(&pieces);
    let sources = plan.sources.len() as u64;
    assert!(sources > 1, "{}", case.what);
    let (hits, _) = gpu.resident();
    let first = gpu.run_stencil(&plan).expect("runs");
    assert_eq!(gpu.resident().0, hits, "the first task uploads its chunks");
    let second = gpu.run_stencil(&plan).expect("runs");
    assert_eq!(
        gpu.resident().0 - hits,
        sources,
        "the second reads them there"
    );
    assert!(stencils::same_bits(&first, &second));
    // The output chunk stays on the device, and is the next task's input
    // there: nothing is read back until the host reads it.
    let out = gpu.run_stencil_chunk(&plan).expect("runs");
    assert!(!out.on_host(), "the output's cells stay on the device");
    assert_eq!(gpu.device_chunks().0, 0);
    assert_eq!(gpu.device_chunks().1, 1);
    let nd = out.shape.len();
    let next_pieces = vec![vec![accel_core::stencil::DevicePiece {
        lo: vec![0; nd],
        values: accel_core::exec::Operand::of_chunk(&out).expect("an array chunk"),
    }]];
    let next_plan = accel_core::stencil::device_plan_of(
        &case.kernel,
        &out.shape,
        &vec![0; nd],
        &out.shape,
        &next_pieces,
        &case.dtypes(),
    )
    .expect("plans")
    .expect("small enough");
    let (hits, _) = gpu.resident();
    let got = gpu.run_stencil(&next_plan).expect("runs");
    assert_eq!(
        gpu.resident().0 - hits,
        1,
        "the output chunk is read on the device"
    );
    assert_eq!(gpu.device_chunks().0, 0, "and never read back");
    assert!(!out.on_host());
    // Read on the host at last: once, and the same cells.
    assert!(stencils::same_bits(out.data().expect("reads back"), &first));
    assert!(stencils::same_bits(out.data().expect("reads back"), &first));
    assert_eq!(gpu.device_chunks().0, 1);
    let want = next_plan.run_on_host().expect("runs");
    assert!(stencils::same_bits(&want, &got));
}
