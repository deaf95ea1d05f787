//! The embedded client with a GPU (Mesa's lavapipe, a Vulkan device on the
//! CPU): fused elementwise kernels run there, one per chunk, and give the
//! CPU's bits; kernels without an exact GPU form run on the CPU.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use accel::{Client, DType, GpuChoice, OffloadCounts, arange, from_ndarray, where_};
use ndarray::Array1;

fn lavapipe() -> Client {
    Client::local()
        .with_progress(false)
        .with_gpu(GpuChoice::Software)
        .expect("lavapipe (the test command installs mesa-vulkan-drivers)")
}

fn counts(c: &Client) -> OffloadCounts {
    c.gpu().expect("a GPU").1
}

/// The values' bits (NaN equals NaN).
fn bits(v: &ndarray::ArrayD<f64>) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn fused_chains_run_on_the_gpu_with_the_cpus_bits() {
    let gpu = lavapipe();
    let n = 100_000;
    let data = Array1::from_iter((0..n).map(|k| ((k as f64) * 0.37).sin() * 1e3));
    let x = from_ndarray(&data, n / 4);
    let y = arange(n, n / 4).astype(DType::F64);
    // One fused kernel per chunk: 4 on the GPU (4 more tasks hold the source chunks).
    let expr = where_(&x.gt(0.0), (&x * 2.5 + &y).sqrt(), (-&x).floor()) - &y / 3.0;
    assert_eq!(expr.plan().unwrap().tasks(), 8);
    let want = Client::local()
        .with_progress(false)
        .compute::<f64>(&expr)
        .unwrap();
    let got = gpu.compute::<f64>(&expr).unwrap();
    let same = want
        .iter()
        .zip(&got)
        .all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(same, "GPU and CPU results differ");
    assert_eq!(
        counts(&gpu),
        OffloadCounts {
            on_gpu: 4,
            declined: 0,
            failed: 0,
            folded: 0,
            stencils: 0,
            resident: 0,
            read_back: 0
        }
    );
    // Random numbers are the same bits on either device.
    let mut rng = accel::Rng::new(42);
    let u = rng.uniform(&[300, 500], -1.0, 1.0, 100) * 2.0;
    let want = Client::local()
        .with_progress(false)
        .compute::<f64>(&u)
        .unwrap();
    let got = gpu.compute::<f64>(&u).unwrap();
    assert_eq!(want, got);
    assert_eq!(counts(&gpu).on_gpu, 4 + 15);
    // Normals too: Box–Muller on the CPU's logarithm and cosine kernels.
    let z = rng.normal(&[300, 500], 2.0, 0.5, 100) - &u;
    let want = Client::local()
        .with_progress(false)
        .compute::<f64>(&z)
        .unwrap();
    let got = gpu.compute::<f64>(&z).unwrap();
    assert_eq!(bits(&want), bits(&got));
    assert_eq!(counts(&gpu).on_gpu, 4 + 15 + 15);
}

#[test]
fn transcendentals_run_on_the_gpu_within_the_cpus_bounds() {
    let gpu = lavapipe();
    let x = arange(40_000, 10_000).astype(DType::F64) / 100.0 - 200.0;
    // sin, cos, exp, tanh and pow are the CPU's kernels operation for operation.
    let e = x.sin() * x.cos() + (&x / 50.0).exp() - x.tanh();
    let want = Client::local()
        .with_progress(false)
        .compute::<f64>(&e)
        .unwrap();
    assert_eq!(gpu.compute::<f64>(&e).unwrap(), want);
    assert_eq!(counts(&gpu).on_gpu, 4);
    // log(0) is the CPU's: that chunk falls back, the others stay on the GPU.
    let l = (&x + 200.0).log();
    let want = Client::local()
        .with_progress(false)
        .compute::<f64>(&l)
        .unwrap();
    let got = gpu.compute::<f64>(&l).unwrap();
    assert_eq!(got[0], f64::NEG_INFINITY);
    for (a, b) in got.iter().zip(&want) {
        assert!(
            a == b || ((a - b) / b).abs() <= 2.0 * f64::EPSILON,
            "{a} vs {b}"
        );
    }
    assert_eq!(
        counts(&gpu),
        OffloadCounts {
            on_gpu: 7,
            declined: 1,
            failed: 0,
            folded: 0,
            stencils: 0,
            resident: 0,
            read_back: 0
        }
    );
}

/// A chunk whose values need the CPU's special-value paths (an infinity
/// under `sin`) is sent back by the GPU and computed on the CPU.
#[test]
fn kernels_the_gpu_sends_back_run_on_the_cpu() {
    let gpu = lavapipe();
    let data = Array1::from_iter((0..10_000).map(|k| match k % 2_500 {
        7 => f64::INFINITY,
        _ => k as f64 / 1e4,
    }));
    let e = from_ndarray(&data, 2_500).sin() * 2.0;
    let want = Client::local()
        .with_progress(false)
        .compute::<f64>(&e)
        .unwrap();
    assert_eq!(bits(&gpu.compute::<f64>(&e).unwrap()), bits(&want));
    assert_eq!(
        counts(&gpu),
        OffloadCounts {
            on_gpu: 0,
            declined: 4,
            failed: 0,
            folded: 0,
            stencils: 0,
            resident: 0,
            read_back: 0
        }
    );
}

#[test]
fn no_gpu_and_a_missing_gpu() {
    assert!(Client::local().gpu().is_none());
    assert!(
        Client::local()
            .with_gpu(GpuChoice::None)
            .unwrap()
            .gpu()
            .is_none()
    );
    let e = Client::local()
        .with_gpu(GpuChoice::Index(57))
        .expect_err("no such GPU");
    assert!(e.to_string().contains("there is no GPU 57"), "{e}");
}

#[test]
fn the_masked_fractal_runs_on_the_gpu() {
    let gpu = lavapipe();
    // The seed's masked Mandelbrot iteration: complex squares, the escape
    // test |z| > 2 and `where`s, 20 steps fused into one kernel per chunk.
    let image = accel_examples::workloads::fractal::build(120, 180, [60, 90]);
    assert_eq!(image.plan().unwrap().tasks(), 4);
    let got = gpu.compute::<i32>(&image).unwrap();
    assert_eq!(
        got.as_slice().unwrap(),
        accel_examples::workloads::fractal::reference(120, 180)
    );
    assert_eq!(counts(&gpu).on_gpu, 4);
}

#[test]
fn loops_run_on_the_gpu() {
    let gpu = lavapipe();
    let cpu = Client::local().with_progress(false);
    // The fractal from the seed's per-pixel function (`loop_until`: pixels
    // leave the loop as they diverge).
    let image = accel_examples::workloads::fractal::build_kernel(120, 180, [60, 90]);
    let got = gpu.compute::<i32>(&image).unwrap();
    assert_eq!(
        got.as_slice().unwrap(),
        accel_examples::workloads::fractal::reference(120, 180)
    );
    assert_eq!(counts(&gpu).on_gpu, 4);
    // Collatz steps (integer state, `%`, `//`, a trip cap) and nested loops.
    let n = arange(5_000, 1_250).astype(DType::I64) + 1;
    let steps = &accel::loop_until(&[accel::Operand::from(&n), 0i64.into()], 500, |s, _| {
        let odd = (&s[0] % 2).equal(1);
        let next = where_(&odd, &s[0] * 3 + 1, s[0].floor_divide(2));
        (vec![next.clone(), &s[1] + 1], next.le(1))
    })[1];
    assert_eq!(
        gpu.compute::<i64>(steps).unwrap(),
        cpu.compute::<i64>(steps).unwrap()
    );
    let w = arange(3_000, 1_000).astype(DType::F64) / 7.0;
    let total = &accel::loop_until(&[accel::Operand::from(0.0), 0i64.into()], 4, |outer, _| {
        let inner = &accel::loop_until(&[accel::Operand::from(0.0), 0i64.into()], 9, |s, j| {
            (
                vec![&s[0] + j.astype(DType::F64) * &w, &s[1] + 1],
                (j + 1).ge(5),
            )
        })[0];
        let count = &outer[1] + 1;
        (vec![&outer[0] + inner, count.clone()], count.ge(3))
    })[0];
    assert_eq!(
        gpu.compute::<f64>(total).unwrap(),
        cpu.compute::<f64>(total).unwrap()
    );
    assert_eq!(counts(&gpu).on_gpu, 4 + 4 + 3);
}

/// Every fused kernel of the seed workloads that has a GPU form, as CUDA C
/// compiled to PTX by NVRTC (the test command puts the PyPI wheel's NVRTC
/// on `LD_LIBRARY_PATH`); running them needs a GPU.
#[test]
fn the_seed_workloads_kernels_compile_for_cuda() {
    use accel_core::StageKind;
    use accel_gpu::wgsl::Access;
    assert!(
        accel_gpu::cuda::nvrtc_available(),
        "libnvrtc not found (pip install nvidia-cuda-nvrtc-cu12; scripts/test.sh sets LD_LIBRARY_PATH)"
    );
    let (mut compiled, mut loops) = (0, 0);
    let mut arrays = accel_examples::samples::arrays();
    arrays.push(accel_examples::workloads::fractal::build_kernel(
        60,
        90,
        [30, 45],
    ));
    let mut levels = 0;
    for a in arrays {
        let plan = a.plan().unwrap().plan;
        for stage in &plan.stages {
            // A stencil's levels read windows of its device buffers.
            let (exes, access) = match &stage.kind {
                StageKind::Map(exe) | StageKind::Partial { exe, .. } => {
                    (vec![exe.clone()], Access::Contiguous)
                }
                StageKind::Stencil(k) => (
                    k.levels.iter().map(|l| l.exe.clone()).collect(),
                    Access::Window,
                ),
                _ => continue,
            };
            for exe in exes {
                let access = vec![access; exe.program.inputs.len()];
                let Ok(k) = accel_gpu::cuda::generate(&exe.program, &access) else {
                    continue;
                };
                accel_gpu::cuda::compile_ptx(&k.source, Some("compute_80"))
                    .unwrap_or_else(|e| panic!("{}: {e}\n{}", stage.label, k.source));
                compiled += 1;
                levels += usize::from(access.contains(&Access::Window));
                loops += usize::from(k.source.contains("while ("));
            }
        }
    }
    for k in accel_gpu::cuda::stencil_move_kernels() {
        let ptx = accel_gpu::cuda::compile_ptx(&k.source, Some("compute_80"))
            .unwrap_or_else(|e| panic!("{e}\n{}", k.source));
        assert!(ptx.contains(".entry accel_kernel"), "{ptx}");
    }
    assert!(compiled >= 8, "{compiled} kernels compiled");
    assert!(levels >= 4, "{levels} stencil levels compiled");
    assert!(loops >= 1, "the loop_until fractal compiled");
}

/// Every seed example at its small size on the embedded client with a GPU:
/// each checks its result against its own scalar reference.
#[test]
fn every_seed_example_runs_with_a_gpu() {
    let out = std::env::temp_dir().join(format!("accel-gpu-out-{}", std::process::id()));
    let mut args = accel_examples::Args::parse(
        ["--size", "small", "--out", &out.display().to_string()].map(String::from),
    )
    .unwrap();
    args.client = lavapipe();
    for (name, run) in accel_examples::workloads::ALL {
        run(&args).unwrap_or_else(|e| panic!("{name} with a GPU: {e}"));
    }
    let counts = counts(&args.client);
    assert!(counts.on_gpu > 50, "{counts:?}");
    assert_eq!(counts.failed, 0);
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn reductions_fold_the_gpus_values_with_the_cpus_bits() {
    let gpu = lavapipe();
    let cpu = Client::local().with_progress(false);
    let x = arange(40_000, 10_000).astype(DType::F64) / 1e3;
    let y = (x.sin() * &x).exp() - 1.0;
    // The kernel of each partial runs on the GPU; the exact sums, the
    // moments, the extremes and their positions are the CPU's.
    let sums = [
        y.sum(),
        y.mean(),
        y.std(0),
        y.max(),
        y.argmin(),
        y.gt(0.5).sum(),
    ];
    for s in &sums {
        assert_eq!(
            gpu.run(&[s]).unwrap().outputs,
            cpu.run(&[s]).unwrap().outputs
        );
    }
    assert_eq!(counts(&gpu).on_gpu, 4 * sums.len() as u64);
}

#[test]
fn order_free_reductions_are_folded_on_the_gpu() {
    let gpu = lavapipe();
    let cpu = Client::local().with_progress(false);
    let x = arange(40_000, 10_000).astype(DType::F64) / 1e3;
    let y = (x.sin() * &x).exp() - 1.0;
    let ints = (&y * 1e3).astype(DType::I64);
    // Counts, integer sums, extremes, any and all: the GPU folds its values
    // in strips and only the strips' results come back; the CPU folds those
    // into its own result.
    let folds = [
        y.gt(0.5).sum(),
        ints.sum(),
        ints.max(),
        (&y * 100.0).astype(DType::I32).min(),
        y.gt(50.0).any(),
        y.lt(1e9).all(),
    ];
    for s in &folds {
        assert_eq!(
            gpu.run(&[s]).unwrap().outputs,
            cpu.run(&[s]).unwrap().outputs
        );
    }
    let c = counts(&gpu);
    assert_eq!((c.on_gpu, c.folded), (4 * 6, 4 * 6), "{c:?}");
    // Float sums keep the CPU's exact accumulators: values come back.
    assert_eq!(
        gpu.run(&[&y.sum()]).unwrap().outputs,
        cpu.run(&[&y.sum()]).unwrap().outputs
    );
    let c = counts(&gpu);
    assert_eq!((c.on_gpu, c.folded), (4 * 7, 4 * 6), "{c:?}");
    // A fold the GPU gives back (sin of an infinity: outside its fast
    // range) is the CPU's, whole: declined once per chunk, not tried again.
    let z = from_ndarray(
        &Array1::from_shape_fn(1000, |k| if k % 7 == 0 { f64::INFINITY } else { k as f64 }),
        250,
    );
    let any = z.sin().gt(0.5).any();
    assert_eq!(
        gpu.run(&[&any]).unwrap().outputs,
        cpu.run(&[&any]).unwrap().outputs
    );
    let c = counts(&gpu);
    assert_eq!((c.on_gpu, c.declined, c.folded), (4 * 7, 4, 4 * 6), "{c:?}");
}

/// Stencil tasks run on the GPU, every level of a task there, and give the
/// CPU's bits: every boundary rule over one to three axes, several fused
/// steps per task, an integer Game of Life with a `where`, and a grid
/// generated inside the stencil (its origin before the array's start).
#[test]
fn stencils_run_on_the_gpu_with_the_cpus_bits() {
    use accel::{Array, Boundary, from_ndarray};
    use ndarray::{ArrayD, IxDyn};
    let rules = [
        Boundary::Fixed,
        Boundary::Periodic,
        Boundary::Reflect,
        Boundary::Nearest,
        Boundary::Constant(0.5),
    ];
    let field = |shape: &[usize]| {
        let n: usize = shape.iter().product();
        ArrayD::from_shape_vec(
            IxDyn(shape),
            (0..n).map(|i| ((i as f64) * 0.377).sin() * 3.0).collect(),
        )
        .unwrap()
    };
    // (shape, chunks, steps, fused steps per task)
    let cases: [(&[usize], &[usize], usize, usize); 4] = [
        (&[60], &[25], 7, 3),
        (&[40, 30], &[15, 30], 6, 2),
        (&[40, 30], &[20, 11], 5, 3),
        (&[10, 9, 8], &[5, 9, 4], 3, 2),
    ];
    let cpu = Client::local().with_progress(false).with_loop_bands(false);
    let mut expected_stencils = 0;
    let gpu = lavapipe().with_loop_bands(false);
    for (shape, chunks, steps, depth) in cases {
        for rule in rules {
            let x = from_ndarray(&field(shape), chunks);
            let nd = shape.len();
            let step = |t: &Array| {
                t.map_overlap(vec![rule; nd], |n| {
                    let mut sum = n.center() * -(2.0 * nd as f64);
                    for d in 0..nd {
                        for s in [-1i64, 1] {
                            let mut o = vec![0; nd];
                            o[d] = s;
                            sum = sum + n.at(&o);
                        }
                    }
                    n.center() + sum * 0.1
                })
            };
            let out = x.iterate(steps, step);
            let cpu = cpu.clone().with_stencil_depth(Some(depth));
            let gpu = gpu.clone().with_stencil_depth(Some(depth));
            let plan = gpu.plan(&[&out]).unwrap();
            let source_chunks: usize = shape
                .iter()
                .zip(chunks)
                .map(|(n, c)| n.div_ceil(*c))
                .product();
            expected_stencils += plan.tasks() - source_chunks;
            let want = cpu.compute::<f64>(&out).unwrap();
            let got = gpu.compute::<f64>(&out).unwrap();
            let same = want
                .iter()
                .zip(&got)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same,
                "{rule:?} on {shape:?} in {chunks:?}: GPU and CPU differ"
            );
        }
    }
    let c = counts(&gpu);
    assert_eq!(
        (c.stencils, c.on_gpu),
        (expected_stencils as u64, expected_stencils as u64),
        "{c:?}"
    );
    assert_eq!((c.declined, c.failed), (0, 0), "{c:?}");

    // Life on a torus, in 32-bit integers: neighbours counted, a `where`.
    let mut board = ArrayD::<i32>::zeros(IxDyn(&[24, 20]));
    for (i, j) in [
        (1, 2),
        (2, 3),
        (3, 1),
        (3, 2),
        (3, 3),
        (10, 10),
        (10, 11),
        (10, 12),
    ] {
        board[[i, j]] = 1;
    }
    let life = from_ndarray(&board, vec![12, 10]).iterate(8, |t| {
        t.map_overlap(Boundary::Periodic, |n| {
            let mut count = n.at(&[-1, -1]);
            for o in [[-1, 0], [-1, 1], [0, -1], [0, 1], [1, -1], [1, 0], [1, 1]] {
                count = count + n.at(&o);
            }
            let born = count.equal(3i32);
            let stays = count.equal(2i32).and(n.center().equal(1i32));
            where_(&born.or(&stays), 1i32, 0i32).astype(DType::I32)
        })
    });
    let want = cpu.compute::<i32>(&life).unwrap();
    let got = gpu.compute::<i32>(&life).unwrap();
    assert_eq!(want, got);
    assert!(got.iter().sum::<i32>() > 0, "life goes on");
    // A source term on a grid generated inside the stencil.
    let grid = arange(48, 16).astype(DType::F64) / 7.0;
    let heated = from_ndarray(&field(&[48]), vec![16]).iterate(4, |t| {
        t.map_overlap(Boundary::Reflect, |n| {
            (n.at(&[-1]) + n.at(&[1])) * 0.5 + grid.sin() * 0.01
        })
    });
    let want = cpu.compute::<f64>(&heated).unwrap();
    let got = gpu.compute::<f64>(&heated).unwrap();
    assert!(
        want.iter()
            .zip(&got)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
    let after = counts(&gpu);
    assert!(after.stencils > c.stencils + 4, "{after:?}");
    assert_eq!(after.failed, 0, "{after:?}");
}

/// A stencil stage's output chunks stay on the GPU for the next stage, and
/// its input chunks are uploaded once: on a ring of 3 chunks, each task
/// reads its own chunk and both neighbours'.
#[test]
fn stencil_stages_read_their_inputs_from_device_memory() {
    use accel::{Array, Boundary};
    let n = 60;
    let data = Array1::from_iter((0..n).map(|k| ((k as f64) * 0.61).cos()));
    let x = from_ndarray(&data, n / 3);
    let step = |t: &Array| {
        t.map_overlap(Boundary::Periodic, |c| {
            c.center() + (c.at(&[-1]) + c.at(&[1]) - c.center() * 2.0) * 0.2
        })
    };
    // 6 steps, 2 per task: 3 stages of 3 tasks.
    let out = x.iterate(6, step);
    let gpu = lavapipe().with_stencil_depth(Some(2));
    let cpu = Client::local()
        .with_progress(false)
        .with_stencil_depth(Some(2));
    let before = counts(&gpu);
    let got = gpu.compute::<f64>(&out).unwrap();
    let after = counts(&gpu);
    let want = cpu.compute::<f64>(&out).unwrap();
    assert!(
        want.iter()
            .zip(&got)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
    assert_eq!(after.stencils - before.stencils, 9, "{after:?}");
    // 27 chunks read: the first stage uploads the 3 source chunks and reads
    // them there 6 more times; the next stages read every input there.
    assert_eq!(after.resident - before.resident, 6 + 9 + 9, "{after:?}");
    // The first two stages' chunks never leave the GPU; the last stage's 3
    // come back once, into the result.
    assert_eq!(after.read_back - before.read_back, 3, "{after:?}");
    assert_eq!((after.failed, after.declined), (0, 0), "{after:?}");
}

/// Chunks stay in device memory while they live: those the GPU made (drawn
/// there, then persisted) are read from it by every later kernel, and those
/// from the host after their first upload, with the CPU's bits; boxes
/// assembled across chunks are uploaded each time, and a chunk that died is
/// never taken for a new one.
#[test]
fn persisted_chunks_are_read_from_device_memory() {
    let gpu = lavapipe();
    let cpu = Client::local().with_progress(false);
    let n = 40_000;
    let mut rng = accel::Rng::new(7);
    let a = gpu.persist(&rng.uniform(&[n], 0.0, 1.0, n / 4)).unwrap();
    let b = gpu.persist(&rng.uniform(&[n], 0.0, 1.0, n / 4)).unwrap();
    let e = (a.powi(2).sin() * b.exp()) - &a;
    let want = cpu
        .compute::<f64>(&(a.powi(2).sin() * b.exp() - &a))
        .unwrap();
    let before = counts(&gpu);
    let first = gpu.compute::<f64>(&e).unwrap();
    let after_first = counts(&gpu);
    // 4 tasks, each reading a chunk of a and one of b (the kernel loads a
    // once): a and b were drawn on the GPU, which kept its copies of them.
    assert_eq!(after_first.on_gpu - before.on_gpu, 4);
    assert_eq!(after_first.resident - before.resident, 8, "{after_first:?}");
    // Read back once when persisted (a held chunk is never on the GPU
    // alone), and read on the GPU from its copies since.
    assert_eq!(before.read_back, 8, "{before:?}");
    assert_eq!(after_first.read_back, 8, "{after_first:?}");
    let second = gpu.compute::<f64>(&e).unwrap();
    let after_second = counts(&gpu);
    assert_eq!(
        after_second.resident - after_first.resident,
        8,
        "{after_second:?}"
    );
    // A result made by a kernel with a status word (sin's range check):
    // its kept copy is the values, not the word.
    let waves = gpu.persist(&a.sin()).unwrap();
    let before = counts(&gpu).resident;
    let got = gpu.compute::<f64>(&(&waves * 3.0 + &b)).unwrap();
    assert_eq!(counts(&gpu).resident - before, 8);
    let want_waves = cpu.compute::<f64>(&(a.sin() * 3.0 + &b)).unwrap();
    assert_eq!(bits(&got), bits(&want_waves));
    drop(waves);
    // Data from the host: uploaded by the first kernel that reads it, then kept.
    let host = ndarray::Array1::from_iter((0..n).map(|i| i as f64 / 7.0));
    let h = gpu.persist(&accel::from_ndarray(&host, n / 4)).unwrap();
    let before = counts(&gpu).resident;
    gpu.compute::<f64>(&(&h * 2.0)).unwrap();
    assert_eq!(counts(&gpu).resident, before);
    let twice = gpu.compute::<f64>(&(&h * 2.0)).unwrap();
    assert_eq!(counts(&gpu).resident - before, 4);
    assert!(twice.iter().zip(&host).all(|(t, x)| *t == x * 2.0));
    assert_eq!(bits(&first), bits(&want));
    assert_eq!(bits(&second), bits(&want));
    // Chunked unlike the kernel: boxes assembled per task, never kept.
    let c = gpu.persist(&rng.uniform(&[n], 0.0, 1.0, n / 5)).unwrap();
    let mixed = &a + &c;
    let before = counts(&gpu).resident;
    gpu.compute::<f64>(&mixed).unwrap();
    gpu.compute::<f64>(&mixed).unwrap();
    // a's 4 chunks each run, never c's boxes.
    assert_eq!(counts(&gpu).resident - before, 8);
    // Dropped arrays free their copies; new chunks from the host (perhaps
    // where dead ones were) are uploaded, never matched.
    drop((a, b, c, e, mixed, h));
    let other = ndarray::Array1::from_iter((0..n).map(|i| (i as f64).sqrt()));
    let fresh = gpu.persist(&accel::from_ndarray(&other, n / 4)).unwrap();
    let before = counts(&gpu).resident;
    let got = gpu.compute::<f64>(&(&fresh * 2.0)).unwrap();
    assert_eq!(counts(&gpu).resident, before);
    let want = cpu.compute::<f64>(&(&fresh * 2.0)).unwrap();
    assert_eq!(bits(&got), bits(&want));
    let c = counts(&gpu);
    assert_eq!((c.failed, c.declined), (0, 0), "{c:?}");
}

/// A chunk the GPU made and left there is read back when the CPU needs it:
/// a kernel the GPU sends back, reading a stencil stage's chunks, gets their
/// values once each, and the CPU's answer.
#[test]
fn chunks_left_on_the_gpu_come_back_for_the_cpu() {
    use accel::{Array, Boundary};
    let n = 60;
    let data = Array1::from_iter((0..n).map(|k| 1.0 + ((k as f64) * 0.61).cos() * 0.5));
    let x = from_ndarray(&data, n / 3);
    let step = |t: &Array| {
        t.map_overlap(Boundary::Periodic, |c| {
            c.center() + (c.at(&[-1]) + c.at(&[1]) - c.center() * 2.0) * 0.2
        })
    };
    // An infinity in each chunk of the kernel's other input: the GPU sends
    // every chunk back to the CPU's special-value paths.
    let scale = Array1::from_iter((0..n).map(|k| match k % (n / 3) {
        5 => f64::INFINITY,
        _ => 1.0 + k as f64 / 64.0,
    }));
    let e = (x.iterate(4, step) * from_ndarray(&scale, n / 3)).sin();
    let gpu = lavapipe().with_stencil_depth(Some(2));
    let cpu = Client::local()
        .with_progress(false)
        .with_stencil_depth(Some(2));
    let got = gpu.compute::<f64>(&e).unwrap();
    assert_eq!(bits(&got), bits(&cpu.compute::<f64>(&e).unwrap()));
    // 2 stencil stages of 3 tasks on the GPU; the second's 3 chunks come
    // back for the 3 tasks of the last kernel on the CPU, the first's never.
    let c = counts(&gpu);
    assert_eq!((c.stencils, c.declined, c.read_back), (6, 3, 3), "{c:?}");
}

/// A GPU lost in the middle of a job loses no data in the embedded client
/// either: the chunks only it held are recomputed (on the CPU: the device
/// is given up) and the job gives the CPU's result. The GPU is lost by the
/// `map_blocks` function between the stencil stages and the last kernel,
/// which then finds the first stage's chunks gone.
#[test]
fn a_lost_gpu_loses_no_data_in_the_embedded_client() {
    use accel::{Array, Blocks, Boundary, map_blocks};
    let device = accel_gpu::open(GpuChoice::Software)
        .expect("opens")
        .expect("lavapipe (the test command installs mesa-vulkan-drivers)");
    let gpu = Client::local()
        .with_progress(false)
        .with_shared_gpu(device.clone())
        .with_stencil_depth(Some(2));
    let cpu = Client::local()
        .with_progress(false)
        .with_stencil_depth(Some(2));
    let n = 60;
    let data = Array1::from_iter((0..n).map(|k| ((k as f64) * 0.61).cos()));
    let step = |t: &Array| {
        t.map_overlap(Boundary::Periodic, |c| {
            c.center() + (c.at(&[-1]) + c.at(&[1]) - c.center() * 2.0) * 0.2
        })
    };
    let job = |lose: bool| {
        let device = device.clone();
        let first = from_ndarray(&data, n / 3).iterate(2, step);
        let second = first.iterate(2, step);
        let passed = map_blocks(&[&second], move |b: &Blocks<'_>| {
            if lose {
                device.lose_device();
            }
            Ok::<_, String>(b.input::<f64>(0)?.to_owned())
        });
        &passed + &first
    };
    let run = gpu.run(&[&job(true)]).unwrap();
    let Some(accel::DynArray::F64(got)) = run.outputs.first() else {
        panic!("one float64 output");
    };
    let want = cpu.compute::<f64>(&job(false)).unwrap();
    assert_eq!(bits(got), bits(&want));
    // The first stage's 3 chunks, lost with the GPU, were made again.
    assert!(run.stats.recomputed >= 3, "{:?}", run.stats);
    // The first stage ran on the GPU before the loss; the recomputed
    // stages after it ran on the CPU (the device given up, none failed).
    let c = counts(&gpu);
    assert!(c.stencils >= 3 && c.declined > 0 && c.failed == 0, "{c:?}");
    // Given up for good: a new job runs on the CPU alone.
    let again = gpu.compute::<f64>(&job(false)).unwrap();
    assert_eq!(bits(&again), bits(&want));
    assert_eq!(counts(&gpu).on_gpu, c.on_gpu);
}

/// A task that writes its chunk straight into the result's rows, and whose
/// input the GPU cannot give back (a device that stopped answering, not one
/// known lost), fails before writing any row and hands the rows back: the
/// embedded client runs it again into them once the input is made again.
#[test]
fn rows_come_back_from_a_task_whose_input_the_gpu_cannot_give_back() {
    use accel_core::buffer::{Buffer, Chunk, DeviceCopy};
    use accel_core::exec::run_task_into_or_back;
    use accel_core::kernel::OutSlice;
    use accel_core::{ChunkKey, StageId};
    use std::sync::Arc;

    #[derive(Debug)]
    struct Unanswered;
    impl DeviceCopy for Unanswered {
        fn download(&self) -> Result<Buffer, String> {
            Err("the device stopped answering".into())
        }
    }
    let data = Array1::from_iter((0..8).map(|k| k as f64 * 0.5));
    let array = from_ndarray(&data, 8) * 2.0 + 1.0;
    let planned = Client::local().plan(&[&array]).unwrap();
    let plan = &planned.plan;
    let key = ChunkKey {
        stage: StageId(plan.stages.len() as u32 - 1),
        chunk: 0,
    };
    let mut out = vec![f64::NAN; 8];
    let gone = Arc::new(Chunk::on_device(vec![8], DType::F64, Arc::new(Unanswered)));
    let rows = vec![OutSlice::F64(&mut out)];
    let (e, back) = run_task_into_or_back(plan, key, &[gone], rows, None).unwrap_err();
    assert!(e.to_string().contains("stopped answering"), "{e}");
    let rows = back.expect("no row was written: the rows come back");
    let host = Arc::new(Chunk::array(vec![8], Buffer::F64(data.to_vec())));
    if let Err((e, _)) = run_task_into_or_back(plan, key, &[host], rows, None) {
        panic!("{e}");
    }
    let want: Vec<f64> = data.iter().map(|x| x * 2.0 + 1.0).collect();
    assert_eq!(out, want);
}

/// A loop over a larger field keeps its chunks on a GPU, which runs its
/// tasks one after another (on the CPU alone it would take a band per core
/// where its chunks are fewer), and gives the CPU's bits; once the device
/// is lost, the loop is planned as on the CPU.
#[test]
fn larger_loops_keep_their_chunks_on_a_gpu() {
    use accel::Boundary;
    let mut t = ndarray::ArrayD::<f64>::zeros(ndarray::IxDyn(&[600, 600]));
    for j in 0..600 {
        t[[599, j]] = 100.0;
    }
    // 2.9 MB in one chunk: more cores than chunks wherever there are two.
    let field = from_ndarray(&t, vec![600, 600]);
    let five = [
        (&[1i64, 0][..], 0.25),
        (&[-1, 0][..], 0.25),
        (&[0, 1][..], 0.25),
        (&[0, -1][..], 0.25),
    ];
    let looped = field.iterate(6, |x| x.stencil(&five, Boundary::Fixed));
    let gpu = lavapipe();
    let kept = Client::local().with_progress(false).with_loop_bands(false);
    let on_gpu = gpu.plan(&[&looped]).unwrap();
    assert_eq!(on_gpu.tasks(), kept.plan(&[&looped]).unwrap().tasks());
    let cpu = Client::local().with_progress(false);
    if rayon::current_num_threads() > 1 {
        assert!(cpu.plan(&[&looped]).unwrap().tasks() > on_gpu.tasks());
    }
    let want = cpu.compute::<f64>(&looped).unwrap();
    assert_eq!(bits(&gpu.compute::<f64>(&looped).unwrap()), bits(&want));
    let c = counts(&gpu);
    assert!(c.stencils > 0 && c.failed == 0, "{c:?}");
    // A device lost runs nothing: the loop is planned as on the CPU alone.
    let device = accel_gpu::open(GpuChoice::Software).unwrap().unwrap();
    let lost = Client::local()
        .with_progress(false)
        .with_shared_gpu(device.clone());
    device.lose_device();
    assert_eq!(
        lost.plan(&[&looped]).unwrap().tasks(),
        cpu.plan(&[&looped]).unwrap().tasks()
    );
    assert_eq!(bits(&lost.compute::<f64>(&looped).unwrap()), bits(&want));
}
