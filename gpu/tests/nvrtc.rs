//! CUDA C generation compiled by NVRTC (from the PyPI wheel
//! `nvidia-cuda-nvrtc-cu12`, which the test command installs and puts on
//! `LD_LIBRARY_PATH`): random programs over every real dtype, every
//! transcendental, generators and strided inputs compile to PTX (and to
//! sm_90 machine code). Running them needs a GPU (the GPU benchmark).

#![allow(clippy::expect_used)]

#[path = "../../core/tests/support/random_program.rs"]
mod random_program;

use accel_core::dtype::DType;
use accel_core::kernel::ir::{InputSpec, Instr, ProgramBuilder};
use accel_core::op::{BinaryOp, GenKind, UnaryOp};
use accel_gpu::cuda;
use accel_gpu::wgsl::Access;
use random_program::*;

fn nvrtc() {
    assert!(
        cuda::nvrtc_available(),
        "libnvrtc not found: pip install nvidia-cuda-nvrtc-cu12 and add its nvidia/cuda_nvrtc/lib to LD_LIBRARY_PATH (scripts/test.sh does both)"
    );
}

#[test]
fn generated_kernels_compile_to_ptx() {
    nvrtc();
    let mut rng = Rng(0x5851_f42d_4c95_7f2d);
    let mut compiled = 0;
    for case in 0..40 {
        let (exe, inputs) = random_case(&mut rng, 100, case % 3 == 2);
        let access: Vec<Access> = inputs
            .iter()
            .map(|(s, _)| {
                if s[0] == 1 {
                    Access::Scalar
                } else {
                    Access::Contiguous
                }
            })
            .collect();
        let Ok(k) = cuda::generate(&exe.program, &access) else {
            continue;
        };
        let ptx = cuda::compile_ptx(&k.source, Some("compute_80"))
            .unwrap_or_else(|e| panic!("case {case}: {e}"));
        assert!(ptx.contains(".entry accel_kernel"), "{ptx}");
        // The machine code a device loads without its driver's compiler
        // (an H100/H200's sm_90): an ELF image.
        if case % 8 == 0 {
            let cubin = cuda::compile_cubin(&k.source, "sm_90")
                .unwrap_or_else(|e| panic!("case {case}: {e}"));
            assert_eq!(cubin.get(..4), Some(&b"\x7fELF"[..]), "case {case}");
        }
        compiled += 1;
    }
    assert!(compiled > 20, "{compiled} kernels compiled");
}

#[test]
fn a_compile_error_says_where() {
    nvrtc();
    let e = cuda::compile_cubin(
        "extern \"C\" __global__ void k() { undefined_name; }",
        "sm_90",
    )
    .expect_err("does not compile")
    .to_string();
    assert!(e.contains("undefined_name"), "{e}");
}

#[test]
fn every_transcendental_generator_and_strided_read_compiles() {
    nvrtc();
    let mut b = ProgramBuilder::new();
    let x = b.input(InputSpec {
        dtype: DType::F64,
        shape: vec![4, 1],
    });
    let y = b.input(InputSpec {
        dtype: DType::F32,
        shape: vec![4, 6],
    });
    let g = b.push(
        Instr::Gen {
            kind: GenKind::Uniform {
                seed: 1,
                stream: 2,
                low: 0.0,
                high: 1.0,
            },
            base: 0,
            strides: vec![6, 1],
        },
        DType::F64,
    );
    let normal = b.push(
        Instr::Gen {
            kind: GenKind::Normal {
                seed: 3,
                stream: 4,
                mean: 0.0,
                std: 2.0,
            },
            base: 0,
            strides: vec![6, 1],
        },
        DType::F64,
    );
    let xg = b.push(Instr::Binary(BinaryOp::Add, x, g), DType::F64);
    let mut acc = b.push(Instr::Binary(BinaryOp::Add, xg, normal), DType::F64);
    for op in [
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Tan,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Tanh,
        UnaryOp::Sinh,
        UnaryOp::Cosh,
        UnaryOp::Log2,
        UnaryOp::Log10,
        UnaryOp::Log1p,
        UnaryOp::Expm1,
        UnaryOp::Arctan,
        UnaryOp::Arcsin,
        UnaryOp::Arccos,
    ] {
        let v = b.push(Instr::Unary(op, acc), DType::F64);
        acc = b.push(Instr::Binary(BinaryOp::Add, acc, v), DType::F64);
    }
    let a2 = b.push(Instr::Binary(BinaryOp::Arctan2, acc, g), DType::F64);
    let p = b.push(Instr::Binary(BinaryOp::Pow, a2, g), DType::F64);
    let ye = b.push(Instr::Unary(UnaryOp::Exp, y), DType::F32);
    // float32 sinh (the float64 kernel's, rounded) and hypot (in float64).
    let ys = b.push(Instr::Unary(UnaryOp::Sinh, ye), DType::F32);
    let yf = b.push(Instr::Binary(BinaryOp::Hypot, ye, ys), DType::F32);
    let y64 = b.cast(yf, DType::F64);
    // Float `%` and `//` (the exact `fmod`'s long division) in both widths.
    let rem32 = b.push(Instr::Binary(BinaryOp::Rem, yf, y), DType::F32);
    let rem64 = b.cast(rem32, DType::F64);
    let q = b.push(Instr::Binary(BinaryOp::FloorDiv, p, rem64), DType::F64);
    let r = b.push(Instr::Binary(BinaryOp::Mul, q, y64), DType::F64);
    // A complex exp of (r, r) and a complex sin and cosh of that (sinh and
    // cosh from the series and from exp), its tan, tanh, sqrt, log2, log10,
    // sign, arctan, arcsin, arccos, log, integer powers (a negative one
    // through the reciprocal) and a power by a constant exponent, its real
    // part back.
    let rc = b.cast(r, DType::C128);
    let ic = b.push(Instr::Binary(BinaryOp::Mul, rc, rc), DType::C128);
    let ce = b.push(Instr::Unary(UnaryOp::Exp, ic), DType::C128);
    let cs = b.push(Instr::Unary(UnaryOp::Sin, ce), DType::C128);
    let cc = b.push(Instr::Unary(UnaryOp::Cosh, cs), DType::C128);
    let ct = b.push(Instr::Unary(UnaryOp::Tan, cc), DType::C128);
    let ch = b.push(Instr::Unary(UnaryOp::Tanh, ct), DType::C128);
    let sq = b.push(Instr::Unary(UnaryOp::Sqrt, ch), DType::C128);
    let l2 = b.push(Instr::Unary(UnaryOp::Log2, sq), DType::C128);
    let l10 = b.push(Instr::Unary(UnaryOp::Log10, l2), DType::C128);
    let sg = b.push(Instr::Unary(UnaryOp::Sign, l10), DType::C128);
    let at = b.push(Instr::Unary(UnaryOp::Arctan, sg), DType::C128);
    let asn = b.push(Instr::Unary(UnaryOp::Arcsin, at), DType::C128);
    let acs = b.push(Instr::Unary(UnaryOp::Arccos, asn), DType::C128);
    let lg = b.push(Instr::Unary(UnaryOp::Log, acs), DType::C128);
    let p5 = b.push(Instr::Unary(UnaryOp::Powi(5), lg), DType::C128);
    let pm = b.push(Instr::Unary(UnaryOp::Powi(-3), p5), DType::C128);
    let cw = b.push(
        Instr::Const(accel_core::dtype::Value::C128(num_complex::Complex64::new(
            0.5, -1.5,
        ))),
        DType::C128,
    );
    let pw = b.push(Instr::Binary(BinaryOp::Pow, pm, cw), DType::C128);
    // A complex power of an array of exponents: its cases, and the loop of
    // squarings, per element.
    let pa = b.push(Instr::Binary(BinaryOp::Pow, pw, lg), DType::C128);
    let r = b.push(Instr::Unary(UnaryOp::Re, pa), DType::F64);
    let program = b.finish(r, vec![4, 6]);
    let k = cuda::generate(&program, &[Access::Strided, Access::Contiguous]).expect("generates");
    let ptx = cuda::compile_ptx(&k.source, None).unwrap_or_else(|e| panic!("{e}"));
    // Compiled without contraction: the kernels' own `fma`s stay, nothing else fuses.
    assert!(
        ptx.contains("fma.rn.f64"),
        "the kernels' fma calls are fused multiply-adds"
    );
    assert!(ptx.contains(".entry accel_kernel"));
}

#[test]
fn a_multiply_then_add_is_not_contracted() {
    nvrtc();
    let mut b = ProgramBuilder::new();
    let spec = || InputSpec {
        dtype: DType::F64,
        shape: vec![8],
    };
    let (x, y, z) = (b.input(spec()), b.input(spec()), b.input(spec()));
    let m = b.push(Instr::Binary(BinaryOp::Mul, x, y), DType::F64);
    let r = b.push(Instr::Binary(BinaryOp::Add, m, z), DType::F64);
    let program = b.finish(r, vec![8]);
    let k = cuda::generate(&program, &[Access::Contiguous; 3]).expect("generates");
    let ptx = cuda::compile_ptx(&k.source, Some("compute_80")).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        ptx.contains("mul.rn.f64") && ptx.contains("add.rn.f64"),
        "{ptx}"
    );
    assert!(!ptx.contains("fma"), "{ptx}");
}

/// Every device fold compiles: a strip loop around the element's statements
/// (a transcendental's range check included), one result per strip.
#[test]
fn fold_kernels_compile_to_ptx() {
    use accel_core::exec::Fold;
    nvrtc();
    for (d, folds) in [
        (DType::Bool, &[Fold::Any, Fold::All][..]),
        (DType::I32, &[Fold::Min, Fold::Max][..]),
        (
            DType::I64,
            &[Fold::Sum, Fold::Prod, Fold::Min, Fold::Max][..],
        ),
    ] {
        let mut b = ProgramBuilder::new();
        let x = b.input(InputSpec {
            dtype: DType::F64,
            shape: vec![8, 8],
        });
        let e = b.push(Instr::Unary(UnaryOp::Exp, x), DType::F64);
        let root = match d {
            DType::Bool => {
                let one = b.push(Instr::Const(accel_core::dtype::Value::F64(1.0)), DType::F64);
                b.push(Instr::Binary(BinaryOp::Lt, e, one), DType::Bool)
            }
            d => b.cast(e, d),
        };
        let program = b.finish(root, vec![8, 8]);
        for &fold in folds {
            let k = cuda::generate_fold(&program, &[Access::Strided], fold).expect("generates");
            assert!(k.source.contains("fold_acc"), "{}", k.source);
            let ptx = cuda::compile_ptx(&k.source, None)
                .unwrap_or_else(|e| panic!("{fold:?} of {d}: {e}"));
            assert!(ptx.contains(".entry accel_kernel"));
        }
    }
}
