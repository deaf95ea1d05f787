//! `x + 1` applied 25 times to ones(n) (seed 002): one fused task per chunk.

use accel::{Array, DType, from_ndarray, ones};

use crate::report::time_runs;
use crate::{Args, Report};

pub fn chain(mut x: Array, steps: usize) -> Array {
    for _ in 0..steps {
        x = x + 1.0;
    }
    x
}

pub fn run(args: &Args) -> anyhow::Result<Report> {
    let (n, chunk) = args.pick((10_000, 2_500), (50_000_000, 2_500_000));
    // As the seed writes it: constant folding turns ones(n)+1+…+1 into full(26).
    let x = chain(ones(&[n], DType::F64, chunk), 25);
    let planned = x.plan()?;
    let (time, got) = time_runs(args.repeats, || Ok(args.client.compute::<f64>(&x)?))?;
    anyhow::ensure!(got.iter().all(|&v| v == 26.0), "inc25 is not 26 everywhere");
    // The same chain over data that cannot be folded: 25 adds fused into one pass.
    // Host data travels inside the plan, so on a cluster it is limited in size.
    let over_data = if args.client.describe() == "local" || n * 8 <= 64 << 20 {
        let data = from_ndarray(&ndarray::Array1::<f64>::ones(n), chunk);
        let y = chain(data, 25);
        let planned_data = y.plan()?;
        let (time_data, got_data) =
            time_runs(args.repeats, || Ok(args.client.compute::<f64>(&y)?))?;
        anyhow::ensure!(
            got_data.iter().all(|&v| v == 26.0),
            "inc25 over data is not 26 everywhere"
        );
        format!(
            "over host data (no folding): {:.3} ms, {:.1} GB/s read+write, {} → {} tasks",
            time_data.as_secs_f64() * 1e3,
            (n * 16) as f64 / time_data.as_secs_f64() / 1e9,
            planned_data.tasks_unfused(),
            planned_data.tasks()
        )
    } else {
        "over host data: not run on a cluster at this size (the source array would exceed the plan size limit)".into()
    };
    let mut r = Report::new(
        "inc25",
        format!("n={n:.0e}, chunks {chunk:.0e}"),
        &planned,
        n,
        n * 8,
        time,
    );
    r.notes
        .push(crate::report::write_graphs(&args.out, "inc25", &planned)?);
    r.check = "all 26.0".into();
    r.notes.push(over_data);
    Ok(r)
}
