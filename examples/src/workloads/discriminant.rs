//! `b**2 - 4*a*c` with a, b, c uniform (seed 003).

use accel::Rng;

use crate::report::{max_rel_err, time_runs};
use crate::{Args, Report};

pub fn run(args: &Args) -> anyhow::Result<Report> {
    let (n, chunk) = args.pick((1_000_000, 250_000), (50_000_000, 2_500_000));
    let mut rng = Rng::new(4);
    let a = rng.random(&[n], chunk);
    let b = rng.random(&[n], chunk);
    let c = rng.random(&[n], chunk);
    let d = b.powi(2) - 4.0 * &a * &c;
    let planned = d.plan()?;
    let (time, got) = time_runs(args.repeats, || Ok(args.client.compute::<f64>(&d)?))?;
    let inputs = args.client.run(&[&a, &b, &c])?;
    let v: Vec<_> = inputs
        .outputs
        .into_iter()
        .map(|o| o.into_typed::<f64>())
        .collect::<Result<_, _>>()?;
    let want = (0..n).map(|i| v[1][i] * v[1][i] - 4.0 * v[0][i] * v[2][i]);
    let err = max_rel_err(got.iter().copied(), want);
    anyhow::ensure!(err < 1e-12, "discriminant relative error {err:e}");
    let mut r = Report::new(
        "discriminant",
        format!("n={n:.0e}, chunks {chunk:.0e}"),
        &planned,
        n,
        n * 8,
        time,
    );
    r.notes.push(crate::report::write_graphs(
        &args.out,
        "discriminant",
        &planned,
    )?);
    r.check = format!("max rel err {err:.1e}");
    Ok(r)
}
