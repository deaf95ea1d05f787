//! `sin(a**2) * exp(b)` with a, b uniform in [0, 1) (seed 003).

use accel::Rng;

use crate::report::{max_rel_err, time_runs};
use crate::{Args, Report};

pub fn run(args: &Args) -> anyhow::Result<Report> {
    let (n, chunk) = args.pick((1000, 250), (4000, 1000));
    let mut rng = Rng::new(3);
    let a = rng.random(&[n, n], [chunk, chunk]);
    let b = rng.random(&[n, n], [chunk, chunk]);
    let out = a.powi(2).sin() * b.exp();
    let planned = out.plan()?;
    let (time, got) = time_runs(args.repeats, || Ok(args.client.compute::<f64>(&out)?))?;
    // The inputs, computed on their own, feed a scalar std reference.
    let inputs = args.client.run(&[&a, &b])?;
    let [ia, ib] = [&inputs.outputs[0], &inputs.outputs[1]];
    let (ia, ib) = (
        ia.clone().into_typed::<f64>()?,
        ib.clone().into_typed::<f64>()?,
    );
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
    );
    r.notes
        .push(crate::report::write_graphs(&args.out, "trig", &planned)?);
    r.check = format!("max rel err {err:.1e}");
    Ok(r)
}
