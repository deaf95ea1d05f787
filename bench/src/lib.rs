//! Measurements shared by accel's benchmark programs.

pub mod gpu_kernels;
pub mod json;
pub mod matmul;
pub mod zarr;

use std::time::{Duration, Instant};

use accel_core::exec::{run_task, run_task_into};
use accel_core::kernel::split_chunks;
use accel_core::plan::{ChunkKey, StageId, StageKind};
use accel_core::{Buffer, Chunk};
use rayon::prelude::*;

/// Best of `repeats` timings of `f` after one warm-up run.
pub fn best_of(repeats: usize, mut f: impl FnMut()) -> Duration {
    f();
    (0..repeats.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// The median of `times` (the mean of the middle two when their number is
/// even, as Python's `statistics.median`); NaN when there are none.
pub fn median(times: &[f64]) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        k if k % 2 == 1 => sorted[k / 2],
        k => (sorted[k / 2 - 1] + sorted[k / 2]) / 2.0,
    }
}

/// Results into the client: `repeats` timings, in seconds, of `client.run(&[a])`
/// after `warmups` untimed runs — the whole result computed and carried into
/// this process (from the workers, on a cluster). Returns the last run too.
pub fn receive_times(
    client: &accel::Client,
    a: &accel::Array,
    warmups: usize,
    repeats: usize,
) -> anyhow::Result<(Vec<f64>, accel::Run)> {
    let mut times = Vec::with_capacity(repeats);
    let mut last = None;
    for k in 0..warmups + repeats.max(1) {
        let t = Instant::now();
        let run = client.run(&[a])?;
        if k >= warmups {
            times.push(t.elapsed().as_secs_f64());
        }
        last = Some(std::hint::black_box(run));
    }
    Ok((times, last.ok_or_else(|| anyhow::anyhow!("no run"))?))
}

/// STREAM triad `a = b + s*c` over `n` preallocated f64 on all cores: this
/// machine's attainable memory bandwidth in GB/s (24 bytes per element).
pub fn triad_gbps(n: usize, repeats: usize) -> f64 {
    let b = vec![1.0f64; n];
    let c = vec![2.0f64; n];
    let mut a = vec![0.0f64; n];
    let s = 3.0;
    let t = best_of(repeats, || {
        a.par_chunks_mut(1 << 16)
            .zip(b.par_chunks(1 << 16))
            .zip(c.par_chunks(1 << 16))
            .for_each(|((a, b), c)| {
                for i in 0..a.len() {
                    a[i] = b[i] + s * c[i];
                }
            })
    });
    std::hint::black_box(&a);
    (24 * n) as f64 / t.as_secs_f64() / 1e9
}

/// GB/s of the fused map stage of `expr`: its input chunks are materialized
/// first, then only the kernel runs, writing into a preallocated result.
pub fn kernel_gbps(
    repeats: usize,
    expr: &accel::Array,
    bytes_per_element: usize,
) -> anyhow::Result<(f64, usize)> {
    let planned = expr.plan()?;
    let plan = &planned.plan;
    let last = StageId((plan.stages.len() - 1) as u32);
    anyhow::ensure!(
        matches!(plan.stage(last).kind, StageKind::Map(_)),
        "last stage is not a fused map"
    );
    let mut inputs: std::collections::HashMap<ChunkKey, std::sync::Arc<Chunk>> = Default::default();
    for (s, stage) in plan.stages.iter().enumerate().take(plan.stages.len() - 1) {
        for c in 0..stage.task_count() {
            let key = ChunkKey {
                stage: StageId(s as u32),
                chunk: c as u32,
            };
            let args: Vec<std::sync::Arc<Chunk>> = plan
                .task_inputs(key)
                .iter()
                .map(|k| inputs[k].clone())
                .collect();
            inputs.insert(key, run_task(plan, key, &args)?);
        }
    }
    let meta = &plan.stage(last).meta;
    let n: usize = meta.shape.iter().product();
    let mut out = Buffer::zeros(meta.dtype, n);
    let tasks = plan.stage(last).task_count();
    let args: Vec<Vec<std::sync::Arc<Chunk>>> = (0..tasks)
        .map(|c| {
            plan.task_inputs(ChunkKey {
                stage: last,
                chunk: c as u32,
            })
            .iter()
            .map(|k| inputs[k].clone())
            .collect()
        })
        .collect();
    let mut err = None;
    let t = best_of(repeats, || {
        let Some(slices) = split_chunks(&mut out, &meta.chunks) else {
            return;
        };
        // Chunks in parallel, like the local runner (each also splits its blocks).
        let results: Vec<_> = slices
            .into_par_iter()
            .enumerate()
            .map(|(c, sl)| {
                run_task_into(
                    plan,
                    ChunkKey {
                        stage: last,
                        chunk: c as u32,
                    },
                    &args[c],
                    sl,
                    None,
                )
            })
            .collect();
        if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
            err = Some(e);
        }
    });
    if let Some(e) = err {
        return Err(e.into());
    }
    Ok((
        (bytes_per_element * n) as f64 / t.as_secs_f64() / 1e9,
        tasks,
    ))
}

/// The kernels' hand-fused parallel Rust loops: each reads its own input
/// streams (`mag` two, `discriminant` three, `inc25` and `harmonic` one)
/// and writes a preallocated result, compiled by rustc for this build's
/// target (AVX2 on x86-64). Returns GB/s (best of `repeats`) with the same
/// byte counts as [`kernel_gbps`]'s cases: the ceiling a fused kernel is
/// measured against where the loop itself cannot reach the memory's speed.
pub fn hand_fused_gbps(n: usize, repeats: usize) -> Vec<(&'static str, f64)> {
    let x = vec![1.5f64; n];
    let y = vec![1.5f64; n];
    let z = vec![1.5f64; n];
    let t = vec![1.5f32; n];
    let mut out = vec![0.0f64; n];
    let mut out32 = vec![0.0f32; n];
    let gbps = |d: Duration, bytes: usize| (bytes * n) as f64 / d.as_secs_f64() / 1e9;
    let w = (2.0 * std::f64::consts::PI * 5.0 * 1e-3) as f32;
    let mag = best_of(repeats, || {
        par_map3(&mut out, &x, &y, &z, |a, b, _| (a * a + b * b).sqrt())
    });
    let disc = best_of(repeats, || {
        par_map3(&mut out, &x, &y, &z, |a, b, c| b * b - 4.0 * a * c)
    });
    let inc = best_of(repeats, || {
        par_map3(&mut out, &x, &x, &x, |a, _, _| {
            let mut v = a;
            for _ in 0..25 {
                v += 1.0;
            }
            v
        })
    });
    let harmonic = best_of(repeats, || {
        out32
            .par_chunks_mut(PIECE)
            .zip(t.par_chunks(PIECE))
            .for_each(|(o, t)| {
                for (o, &t) in o.iter_mut().zip(t) {
                    *o = (t * w).sin();
                }
            })
    });
    std::hint::black_box((&out, &out32));
    vec![
        ("mag", gbps(mag, 24)),
        ("discriminant", gbps(disc, 32)),
        ("inc25", gbps(inc, 16)),
        ("harmonic", gbps(harmonic, 8)),
    ]
}

/// Elements per parallel piece of the hand-fused loops.
const PIECE: usize = 1 << 16;

/// `out[i] = f(a[i], b[i], c[i])` in parallel pieces; `f` is inlined into
/// the loop, which rustc vectorizes.
fn par_map3(
    out: &mut [f64],
    a: &[f64],
    b: &[f64],
    c: &[f64],
    f: impl Fn(f64, f64, f64) -> f64 + Sync,
) {
    out.par_chunks_mut(PIECE)
        .zip(a.par_chunks(PIECE))
        .zip(b.par_chunks(PIECE).zip(c.par_chunks(PIECE)))
        .for_each(|((o, a), (b, c))| {
            for (((o, &a), &b), &c) in o.iter_mut().zip(a).zip(b).zip(c) {
                *o = f(a, b, c);
            }
        });
}
