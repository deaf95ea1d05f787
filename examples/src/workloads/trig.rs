//! `sin(a**2) * exp(b)` with a, b uniform in [0, 1) (seed 003). Timed as the
//! peers time it: a and b drawn before the clock starts (kept in memory with
//! `persist`), the expression alone timed. The `generated` variant leaves the
//! drawing to the fused kernel.

use accel::Rng;

use crate::report::{max_rel_err, time_runs};
use crate::{Args, Report};

pub fn run(args: &Args) -> anyhow::Result<Vec<Report>> {
    let (n, chunk) = args.pick((1000, 250), (4000, 1000));
    let mut rng = Rng::new(3);
    let drawn = [
        rng.random(&[n, n], [chunk, chunk]),
        rng.random(&[n, n], [chunk, chunk]),
    ];
    let kept = [
        args.client.persist(&drawn[0])?,
        args.client.persist(&drawn[1])?,
    ];
    // The inputs feed a scalar std reference, brought out after the first
    // timed runs: held through them, they would be memory the peers don't hold.
    let mut inputs = None;
    let mut reports = Vec::new();
    for (variant, [a, b]) in [
        (None, [&kept[0], &kept[1]]),
        (Some("generated"), [&drawn[0], &drawn[1]]),
    ] {
        let out = a.powi(2).sin() * b.exp();
        let planned = out.plan()?;
        let (time, got) = time_runs(args.repeats, || Ok(args.client.compute::<f64>(&out)?))?;
        let (ia, ib) = match &inputs {
            Some(held) => held,
            None => inputs.insert((
                args.client.compute::<f64>(&kept[0])?,
                args.client.compute::<f64>(&kept[1])?,
            )),
        };
        let want = ia
            .iter()
            .zip(ib.iter())
            .map(|(&a, &b)| (a * a).sin() * b.exp());
        let err = max_rel_err(got.iter().copied(), want);
        anyhow::ensure!(err < 1e-12, "trig relative error {err:e} exceeds 1e-12");
        let mut r = Report::new(
            "trig",
            format!("{n}×{n}, chunks {chunk}×{chunk}"),
            &planned,
            n * n,
            n * n * 8,
            time,
        )
        .with_graphs(variant, &args.out, &planned)?;
        r.check = format!("max rel err {err:.1e}");
        reports.push(r);
    }
    Ok(reports)
}
