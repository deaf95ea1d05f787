//! GPU kernels (WGSL on Mesa's lavapipe, a Vulkan device on the CPU) against
//! the CPU interpreter: random programs over every real dtype with special
//! values, broadcast and strided inputs, generated ranges and random
//! numbers at chunk offsets. Results must agree bit for bit (NaNs as NaN).

#![allow(clippy::expect_used)]

#[path = "../../core/tests/support/random_program.rs"]
mod random_program;

use accel_core::buffer::Buffer;
use accel_core::dtype::DType;
use accel_core::kernel::Executable;
use accel_core::kernel::exec::Bound;
use accel_core::kernel::ir::{InputSpec, Instr, ProgramBuilder};
use accel_core::op::{BinaryOp, GenKind, UnaryOp};
use accel_gpu::{Gpu, GpuChoice, wgsl};
use random_program::*;

fn lavapipe() -> Gpu {
    match Gpu::open(GpuChoice::Software) {
        Ok(Some(g)) => g,
        Ok(None) => panic!("no software GPU opened"),
        Err(e) => panic!("{e} (the test command installs mesa-vulkan-drivers)"),
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
    let gpu = lavapipe();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut ran, mut declined) = (0, 0);
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
        let got = gpu
            .run_map(&exe.program, &[0], &[n], &views)
            .unwrap_or_else(|e| panic!("case {case}: {e}\n{}", exe.program.listing().join("\n")));
        assert_same(&format!("case {case}"), &exe, &got, &reference);
        ran += 1;
    }
    assert!(ran > 250, "{ran} programs ran on the GPU");
    assert!(declined > 20, "{declined} programs left to the CPU");
    // Pipelines are cached by their text: far fewer than the programs run.
    let (kernels, _, pipelines) = gpu.counts();
    assert_eq!(kernels, ran);
    assert!(pipelines <= ran, "{pipelines} pipelines for {ran} kernels");
}

/// `x[i, j] * w[j] + y[j, i]`-style reads: a broadcast row, a transposed
/// (strided) input and a scalar, over a 2-D chunk at an offset.
#[test]
fn broadcast_and_strided_inputs_line_up_as_on_the_cpu() {
    let gpu = lavapipe();
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
    let views: Vec<(&[usize], &Buffer)> = shapes
        .iter()
        .map(|s| s.as_slice())
        .zip([&xs, &ws, &cs])
        .collect();
    let got = gpu
        .run_map(&exe.program, &[0, 0], &[rows, cols], &views)
        .expect("runs");
    assert_same(
        "broadcasts",
        &exe,
        &got,
        &cpu(&exe, &[0, 0], &[rows, cols], &views),
    );
}

/// Ranges, linspace and uniform random numbers at a chunk in the middle of
/// a 2-D array: the counter comes from the chunk's origin.
#[test]
fn generated_values_match_at_any_chunk_origin() {
    let gpu = lavapipe();
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
    let e = Gpu::open(GpuChoice::Index(99)).expect_err("no such adapter");
    assert!(e.to_string().contains("there is no GPU 99"), "{e}");
    // lavapipe is software: `auto` passes it over.
    assert!(
        accel_gpu::adapters()
            .iter()
            .any(|a| a.software && a.float64)
    );
}
