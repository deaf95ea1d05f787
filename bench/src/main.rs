//! accel's kernel benchmark: GB/s of fused memory-bound chains against a
//! STREAM-style triad measured in the same run, and ns/element of the
//! compute-bound workloads against hand-written parallel Rust loops.
//!
//! `cargo run --release -p accel-bench` (add `-- --quick` for small sizes).

use std::time::Duration;

use accel::{Array, Complex64, DType, arange, from_ndarray};
use rayon::prelude::*;

/// Timed runs after the warm-up (`ACCEL_BENCH_REPEATS` overrides, e.g. for profiling).
fn repeats() -> usize {
    std::env::var("ACCEL_BENCH_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// Best of `repeats()` after one warm-up.
fn best(f: impl FnMut()) -> Duration {
    accel_bench::best_of(repeats(), f)
}

/// Planning time of heat (200², chunks 100²) against the number of steps:
/// `iterate` records the step once; the written-out loop builds every step.
fn heat_planning() -> anyhow::Result<()> {
    use accel_examples::workloads::heat::{FIVE_POINT, initial};
    println!("\nplanning heat 200² (chunks 100²), best of {}:", repeats());
    let t0 = from_ndarray(&initial(200), vec![100, 100]);
    for nt in [1000, 4000, 16000] {
        let step = |t: &accel::Array| t.stencil(&FIVE_POINT, accel::Boundary::Fixed);
        let looped = t0.iterate(nt, step);
        let mut written = t0.clone();
        for _ in 0..nt {
            written = step(&written);
        }
        let client = accel::Client::local();
        let mut tasks = 0;
        // The first plan of a loop searches for the steps a stage holds;
        // later ones (the same loop computed again) take what it found.
        let first = best(|| {
            accel_core::optimize::forget_planned_loops();
            tasks = client.plan(&[&looped]).map(|p| p.tasks()).unwrap_or(0);
        });
        let again = best(|| {
            std::hint::black_box(client.plan(&[&looped]).map(|p| p.tasks()).unwrap_or(0));
        });
        let unrolled = best(|| {
            std::hint::black_box(client.plan(&[&written]).map(|p| p.tasks()).unwrap_or(0));
        });
        println!(
            "  Nt={nt:<6} iterate {:7.3} ms (planned again {:6.3} ms)   loop written out {:8.2} ms   ({tasks} tasks)",
            first.as_secs_f64() * 1e3,
            again.as_secs_f64() * 1e3,
            unrolled.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

/// GB/s of the same chains written as fused parallel Rust loops (the ceiling for a kernel).
fn hand_fused(n: usize, triad_gbps: f64) -> Vec<(&'static str, f64)> {
    let r = accel_bench::hand_fused_gbps(n, repeats());
    for (name, g) in &r {
        println!(
            "hand-fused {name:<13} (plain Rust)   {g:6.1} GB/s = {:5.1} % of triad",
            100.0 * g / triad_gbps
        );
    }
    r
}

/// Each kernel's GB/s alone (inputs in memory), as a share of the triad.
fn print_kernels(cases: &[(&str, &Array, usize)], triad_gbps: f64) -> anyhow::Result<()> {
    for &(name, expr, bytes) in cases {
        let (gbps, _) = accel_bench::kernel_gbps(repeats(), expr, bytes)?;
        println!(
            "  {name:<13} {gbps:6.1} GB/s = {:5.1} % of triad",
            100.0 * gbps / triad_gbps
        );
    }
    Ok(())
}

/// End-to-end seconds of `expr.compute()` (planning, running, assembling).
fn end_to_end<T: accel_core::Element>(expr: &Array) -> anyhow::Result<Duration> {
    let mut err = None;
    let t = best(|| {
        if let Err(e) = expr.compute::<T>() {
            err = Some(e);
        }
    });
    match err {
        Some(e) => Err(e.into()),
        None => Ok(t),
    }
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = std::env::var("ACCEL_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 2_000_000 } else { 50_000_000 });
    let chunk = n / 20;
    println!(
        "accel bench: {} threads, n = {n:.0e}, best of {}\n",
        rayon::current_num_threads(),
        repeats()
    );

    let triad_gbps = accel_bench::triad_gbps(n, repeats());
    println!("STREAM triad (plain Rust, rayon)        {triad_gbps:6.1} GB/s  (24 B/element)");

    let ones = ndarray::Array1::<f64>::from_elem(n, 1.5);
    let x = from_ndarray(&ones, chunk);
    let y = from_ndarray(&ones, chunk);
    let z = from_ndarray(&ones, chunk);
    let mag = (x.powi(2) + y.powi(2)).sqrt();
    let disc = y.powi(2) - 4.0 * &x * &z;
    let mut inc = x.clone();
    for _ in 0..25 {
        inc = inc + 1.0;
    }
    let hand_gbps = hand_fused(n, triad_gbps);
    println!("\nfused kernels over data (kernel only, preallocated result):");
    let cases: [(&str, &Array, usize); 3] = [
        ("mag", &mag, 24),
        ("discriminant", &disc, 32),
        ("inc25", &inc, 16),
    ];
    for &(name, expr, bytes) in &cases {
        let (gbps, tasks) = accel_bench::kernel_gbps(repeats(), expr, bytes)?;
        let hand = hand_gbps
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, g)| *g)
            .unwrap_or(f64::NAN);
        println!(
            "  {name:<13} {gbps:6.1} GB/s = {:5.1} % of triad, {:5.1} % of a hand-fused loop  ({tasks} tasks, {bytes} B/element)",
            100.0 * gbps / triad_gbps,
            100.0 * gbps / hand
        );
    }

    accel_core::kernel::jit::wide::set_enabled(false);
    println!("  the same kernels compiled two lanes wide only (Cranelift, ACCEL_JIT_WIDE=0):");
    print_kernels(&cases, triad_gbps)?;
    accel_core::kernel::jit::wide::set_enabled(true);
    accel_core::kernel::jit::set_enabled(false);
    println!("  the same kernels interpreted (ACCEL_JIT=0):");
    print_kernels(&cases, triad_gbps)?;
    accel_core::kernel::jit::set_enabled(true);

    if std::env::args().any(|a| a == "--kernels-only") {
        return Ok(());
    }
    heat_planning()?;
    println!("\nend to end (compute(): plan, run, fresh result array):");
    let mag_gen = {
        let a = arange(n, chunk).astype(DType::F64);
        (a.powi(2) + a.powi(2)).sqrt()
    };
    let t = end_to_end::<f64>(&mag_gen)?;
    println!(
        "  mag (x = arange)  {:8.2} ms  {:5.2} ns/element  {:5.1} GB/s written",
        t.as_secs_f64() * 1e3,
        t.as_secs_f64() * 1e9 / n as f64,
        (8 * n) as f64 / t.as_secs_f64() / 1e9
    );
    let t = end_to_end::<f64>(&mag)?;
    println!(
        "  mag (x, y data)   {:8.2} ms  {:5.2} ns/element",
        t.as_secs_f64() * 1e3,
        t.as_secs_f64() * 1e9 / n as f64
    );

    // trig: sin(a**2) * exp(b) vs a hand-written parallel loop over the same inputs.
    let side = if quick { 1000 } else { 4000 };
    let mut rng = accel::Rng::new(3);
    let a = rng
        .random(&[side, side], [side / 8, side])
        .compute::<f64>()?;
    let b = rng
        .random(&[side, side], [side / 8, side])
        .compute::<f64>()?;
    let (aa, bb) = (
        from_ndarray(&a, [side / 8, side]),
        from_ndarray(&b, [side / 8, side]),
    );
    let trig = aa.powi(2).sin() * bb.exp();
    let (trig_gbps, _) = accel_bench::kernel_gbps(repeats(), &trig, 24)?;
    let trig_ns = 24.0 / trig_gbps;
    let (sa, sb) = (a.as_slice().unwrap_or(&[]), b.as_slice().unwrap_or(&[]));
    let mut out = vec![0.0f64; side * side];
    let hand = best(|| {
        out.par_chunks_mut(1 << 14).enumerate().for_each(|(k, o)| {
            let base = k << 14;
            for (i, o) in o.iter_mut().enumerate() {
                *o = (sa[base + i] * sa[base + i]).sin() * sb[base + i].exp();
            }
        })
    });
    let hand_ns = hand.as_secs_f64() * 1e9 / (side * side) as f64;
    println!("\ncompute-bound kernels:");
    println!(
        "  trig      accel {trig_ns:6.3} ns/element   hand-written parallel loop (std sin/exp) {hand_ns:6.3} ns/element   ratio {:.2}",
        hand_ns / trig_ns
    );

    // fractal: accel (whole computation) vs a hand-written parallel scalar loop.
    let (h, w) = if quick { (400, 600) } else { (1600, 2400) };
    let frac = accel_examples::workloads::fractal::build(h, w, [h.div_ceil(3), w.div_ceil(4)]);
    let t = end_to_end::<i32>(&frac)?;
    let accel_px = t.as_secs_f64() * 1e9 / (h * w) as f64;
    let mut img = vec![0i32; h * w];
    let hand = best(|| {
        img.par_chunks_mut(w).enumerate().for_each(|(r, row)| {
            let y = if r + 1 == h {
                0.0
            } else {
                -1.0 + r as f64 / (h - 1) as f64
            };
            for (col, px) in row.iter_mut().enumerate() {
                let x = if col + 1 == w {
                    0.0
                } else {
                    -1.5 + col as f64 * (1.5 / (w - 1) as f64)
                };
                let c = Complex64::new(x, y);
                let mut z = c;
                *px = accel_examples::workloads::fractal::MAX_ITER;
                for i in 0..accel_examples::workloads::fractal::MAX_ITER {
                    z = z * z + c;
                    if z.norm() > 2.0 {
                        if *px == accel_examples::workloads::fractal::MAX_ITER {
                            *px = i;
                        }
                        z = Complex64::new(2.0, 0.0);
                    }
                }
            }
        })
    });
    std::hint::black_box(&img);
    let hand_px = hand.as_secs_f64() * 1e9 / (h * w) as f64;
    println!(
        "  fractal   accel {accel_px:6.2} ns/pixel     hand-written parallel loop {hand_px:6.2} ns/pixel   ratio {:.2}",
        hand_px / accel_px
    );
    Ok(())
}
