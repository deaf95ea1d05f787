//! `b**2 - 4*a*c` with a, b, c uniform (seed 003). Timed as the peers time
//! it: a, b and c drawn before the clock starts (kept in memory with
//! `persist`), the expression alone timed. The `generated` variant leaves the
//! drawing to the fused kernel (no input arrays at all).

use accel::Rng;

use crate::report::{max_rel_err, time_runs};
use crate::{Args, Report};

pub fn run(args: &Args) -> anyhow::Result<Vec<Report>> {
    let (n, chunk) = args.pick((1_000_000, 250_000), (50_000_000, 2_500_000));
    let mut rng = Rng::new(4);
    let drawn = [
        rng.random(&[n], chunk),
        rng.random(&[n], chunk),
        rng.random(&[n], chunk),
    ];
    let kept = drawn
        .iter()
        .map(|x| Ok(args.client.persist(x)?))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut inputs: Option<Vec<Vec<f64>>> = None;
    let mut reports = Vec::new();
    // In memory: reads 3 arrays and writes one (32 bytes per element);
    // generated: writes one (8).
    for (variant, [a, b, c], bytes) in [
        (None, [&kept[0], &kept[1], &kept[2]], 32),
        (Some("generated"), [&drawn[0], &drawn[1], &drawn[2]], 8),
    ] {
        let d = b.powi(2) - 4.0 * a * c;
        let planned = d.plan()?;
        let (time, got) = time_runs(args.repeats, || Ok(args.client.compute::<f64>(&d)?))?;
        // The inputs' values, for the check, are brought out only after the
        // first timed runs: held through them, they would be memory the
        // peers don't hold.
        let v = match &inputs {
            Some(v) => v,
            None => inputs.insert(
                kept.iter()
                    .map(|x| Ok(args.client.compute::<f64>(x)?.into_raw_vec_and_offset().0))
                    .collect::<anyhow::Result<Vec<_>>>()?,
            ),
        };
        let want = (0..n).map(|i| v[1][i] * v[1][i] - 4.0 * v[0][i] * v[2][i]);
        let err = max_rel_err(got.iter().copied(), want);
        anyhow::ensure!(err < 1e-12, "discriminant relative error {err:e}");
        let mut r = Report::new(
            "discriminant",
            format!("n={n:.0e}, chunks {chunk:.0e}"),
            &planned,
            n,
            n * bytes,
            time,
        )
        .with_graphs(variant, &args.out, &planned)?;
        r.check = format!("max rel err {err:.1e}");
        reports.push(r);
    }
    Ok(reports)
}
