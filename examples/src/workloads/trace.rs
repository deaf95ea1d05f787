//! `a + sum(tanh(diag(a)))` with a = arange(n*n).reshape(n, n) (seed 003).

use accel::{DType, arange};

use crate::report::{max_rel_err, time_runs};
use crate::{Args, Report};

pub fn run(args: &Args) -> anyhow::Result<Report> {
    let (n, chunk) = args.pick((100, 25), (4000, 1000));
    let a = arange(n * n, n * chunk)
        .reshape(&[n, n])
        .rechunk([chunk, chunk])
        .astype(DType::F64);
    let out = &a + a.diag().tanh().sum();
    let planned = out.plan()?;
    let (time, got) = time_runs(args.repeats, || Ok(args.client.compute::<f64>(&out)?))?;
    let s: f64 = (0..n).map(|i| ((i * n + i) as f64).tanh()).sum();
    let want = (0..n * n).map(|k| k as f64 + s);
    let err = max_rel_err(got.iter().copied(), want);
    anyhow::ensure!(err < 1e-12, "trace relative error {err:e}");
    let mut r = Report::new(
        "trace",
        format!("{n}×{n}, chunks {chunk}×{chunk}"),
        &planned,
        n * n,
        n * n * 8,
        time,
    );
    r.notes
        .push(crate::report::write_graphs(&args.out, "trace", &planned)?);
    r.check = format!("max rel err {err:.1e}");
    Ok(r)
}
