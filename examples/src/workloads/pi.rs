//! Monte-Carlo π (seed 002): fraction of uniform points inside the unit circle.

use accel::{Array, DType, Rng};

use crate::report::time_runs;
use crate::{Args, Report};

pub fn build(n: usize, chunk: usize, seed: u64) -> Array {
    let mut rng = Rng::new(seed);
    let x = rng.random(&[n], chunk);
    let y = rng.random(&[n], chunk);
    let inside = (x.powi(2) + y.powi(2)).lt(1.0);
    inside.sum().astype(DType::F64) * 4.0 / n as f64
}

pub fn run(args: &Args) -> anyhow::Result<Report> {
    let (n, chunk) = args.pick((1_000_000, 100_000), (1_000_000_000, 10_000_000));
    let pi = build(n, chunk, 2);
    let planned = pi.plan()?;
    let (time, got) = time_runs(args.repeats, || Ok(args.client.compute::<f64>(&pi)?))?;
    let value = got[[]];
    let p = std::f64::consts::PI / 4.0;
    let sigma = 4.0 * (p * (1.0 - p) / n as f64).sqrt();
    let dev = (value - std::f64::consts::PI).abs() / sigma;
    anyhow::ensure!(dev < 4.0, "pi = {value} is {dev:.1} sigma from π");
    // Counter-based random numbers: another chunking gives the very same value.
    let other = args.client.compute::<f64>(&build(n, chunk / 4 + 7, 2))?[[]];
    anyhow::ensure!(
        other == value,
        "pi depends on the chunking: {value} vs {other}"
    );
    let mut r = Report::new(
        "pi",
        format!("{n:.0e} samples, chunks {chunk:.0e}"),
        &planned,
        n,
        0,
        time,
    );
    r.notes
        .push(crate::report::write_graphs(&args.out, "pi", &planned)?);
    r.check = format!("{dev:.1}σ from π; chunking-invariant");
    r.notes.push(format!("pi ≈ {value:.6}"));
    Ok(r)
}
