//! What chunking-invariant reductions cost: float `sum`, `mean`, `var` and
//! `std` accumulate exactly (their result does not depend on the chunking,
//! the threads or the workers); `max` over the same data, a plain fold, and a
//! hand-written parallel Rust sum give the baseline of the same run. The
//! data is held in memory before timing.
//!
//! `cargo run --release -p accel-bench --bin reductions [-- --quick]`

use std::time::Duration;

use accel::{Array, Client, from_owned};
use rayon::prelude::*;

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let n: usize = if quick { 1 << 22 } else { 1 << 26 };
    let chunk = n / 16;
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let host: Vec<f64> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        })
        .collect();
    let client = Client::local().with_progress(false);
    let hand = {
        let h = &host;
        let t = accel_bench::best_of(5, || {
            let v: f64 = h.par_chunks(1 << 16).map(|c| c.iter().sum::<f64>()).sum();
            std::hint::black_box(v);
        });
        t.as_secs_f64()
    };
    let x = client.persist(&from_owned(ndarray::Array1::from(host), vec![chunk]))?;
    println!(
        "{n} float64 values in memory ({} MB, {} chunks), {} threads",
        n * 8 / 1_000_000,
        n / chunk,
        rayon::current_num_threads()
    );
    println!("| reduction | ms | ns/element | GB/s | vs max |");
    println!("|---|---|---|---|---|");
    let time = |a: &Array| -> anyhow::Result<Duration> {
        client.compute::<f64>(a)?;
        let mut err = None;
        let t = accel_bench::best_of(5, || {
            if let Err(e) = client.compute::<f64>(a) {
                err = Some(e);
            }
        });
        match err {
            Some(e) => Err(e.into()),
            None => Ok(t),
        }
    };
    let base = time(&x.max())?.as_secs_f64();
    let row = |name: &str, t: f64| {
        println!(
            "| {name} | {:.1} | {:.3} | {:.1} | {:.2}× |",
            t * 1e3,
            t * 1e9 / n as f64,
            (n * 8) as f64 / t / 1e9,
            t / base
        );
    };
    row("max (plain fold)", base);
    // A product folds like the plain (chunking-dependent) float sum did.
    row(
        "prod (plain fold, as sums were)",
        time(&x.prod())?.as_secs_f64(),
    );
    row("hand-written parallel sum (not invariant)", hand);
    for (name, a) in [
        ("sum (exact)", x.sum()),
        ("mean (exact)", x.mean()),
        ("var (exact sums of x and x²)", x.var(0)),
        ("nansum (exact)", x.nansum()),
    ] {
        row(name, time(&a)?.as_secs_f64());
    }
    Ok(())
}
