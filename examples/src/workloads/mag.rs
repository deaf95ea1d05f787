//! `sqrt(x**2 + y**2)` with x = y = arange(n) (seed 004).

use accel::{DType, arange};

use crate::report::time_runs;
use crate::{Args, Report};

pub fn build(n: usize, chunk: usize) -> accel::Array {
    let x = arange(n, chunk).astype(DType::F64);
    let y = arange(n, chunk).astype(DType::F64);
    (x.powi(2) + y.powi(2)).sqrt()
}

pub fn run(args: &Args) -> anyhow::Result<Report> {
    let (n, chunk) = args.pick((1_000_000, 100_000), (50_000_000, 2_500_000));
    let mag = build(n, chunk);
    let planned = mag.plan()?;
    let (time, out) = time_runs(args.repeats, || Ok(args.client.compute::<f64>(&mag)?))?;
    // Reference: the same IEEE operations in a scalar loop, so equality is exact;
    // and within an ulp of sqrt(2)*i as the workload states.
    let mut exact = true;
    let mut worst_ulp = 0.0f64;
    for (i, &v) in out.iter().enumerate() {
        let x = i as f64;
        exact &= v == (x * x + x * x).sqrt();
        let want = std::f64::consts::SQRT_2 * x;
        if want > 0.0 {
            worst_ulp = worst_ulp.max((v - want).abs() / (want * f64::EPSILON));
        }
    }
    anyhow::ensure!(
        exact && worst_ulp <= 2.0,
        "mag differs from the scalar reference (worst {worst_ulp:.1} ulp)"
    );
    let mut r = Report::new(
        "mag",
        format!("n={n:.0e}, chunks {chunk:.0e}"),
        &planned,
        n,
        n * 8,
        time,
    );
    r.notes
        .push(crate::report::write_graphs(&args.out, "mag", &planned)?);
    r.check = format!("exact; ≤{worst_ulp:.1} ulp of √2·i");
    Ok(r)
}
