//! `sin(2*pi*f*t)` with t = arange(n)*dt in float32 (seed 000).

use accel::{DType, arange};

use crate::report::time_runs;
use crate::{Args, Report};

pub fn run(args: &Args) -> anyhow::Result<Report> {
    let (n, chunk) = args.pick((1_000_000, 250_000), (100_000_000, 5_000_000));
    let (f, dt) = (5.0f64, 1e-3f64);
    let t = arange(n, chunk).astype(DType::F32) * dt;
    let wave = (2.0 * std::f64::consts::PI * f * t).sin();
    let planned = wave.plan()?;
    let (time, got) = time_runs(args.repeats, || Ok(args.client.compute::<f32>(&wave)?))?;
    // NumPy's rules: the f64 literals take the f32 array's type.
    let (dt32, w32) = (dt as f32, (2.0 * std::f64::consts::PI * f) as f32);
    let mut worst = 0.0f32;
    for (i, &g) in got.iter().enumerate() {
        let want = (w32 * ((i as f32) * dt32)).sin();
        worst = worst.max((g - want).abs());
    }
    anyhow::ensure!(
        worst <= 1e-5,
        "harmonic differs from the f32 reference by {worst:e}"
    );
    let mut r = Report::new(
        "harmonic",
        format!("n={n:.0e} f32, chunks {chunk:.0e}"),
        &planned,
        n,
        n * 4,
        time,
    );
    r.notes.push(crate::report::write_graphs(
        &args.out, "harmonic", &planned,
    )?);
    r.check = format!("max abs err {worst:.1e} (f32)");
    Ok(r)
}
