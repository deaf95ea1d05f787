//! The README's API tour, kept compiling and running (smaller sizes).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use accel::{ReduceOp, *};

#[test]
fn readme_tour() -> anyhow::Result<()> {
    let x = arange(50_000, 2_500).astype(DType::F64);
    let y = arange(50_000, 2_500).astype(DType::F64);
    let mag = (x.powi(2) + y.powi(2)).sqrt();
    assert_eq!(mag.plan()?.tasks(), 20);
    let out: ndarray::ArrayD<f64> = mag.compute()?;
    assert_eq!(out[[2]], 8f64.sqrt());

    let a = from_ndarray(&ndarray::Array2::<f64>::zeros((100, 80)), [25, 20]);
    let b = full(&[100, 80], 1.5f64, [25, 20]);
    assert_eq!(
        full(&[100, 80], 1.5f64, "auto").chunks()?,
        vec![vec![100], vec![80]]
    );
    let t = arange(1_000, 100).astype(DType::F32);
    let g = ogrid(&[(-1.0, 0.0, 160), (-1.5, 0.0, 240)], &[54, 60]);
    let mut rng = Rng::new(42);
    let u = rng.uniform(&[100, 80], 0.0, 1.0, [25, 20]);
    let c = (&a * 2.0 + &u).sin() * b.exp() - 1;
    let m = where_(&c.gt(0.5), &c, 0.0).clip(-1.0, 1.0);
    let z = &g[1] + &g[0] * Complex64::new(0.0, 1.0);
    let total = m.sum();
    let col_mean = m.mean_axis(0);
    let sd = m.reduce(
        ReduceOp::Std(1),
        &ReduceOpts::axis(1).keepdims(true).split_every(4),
    );
    let v = m.slice(s![10..;2, ..;-1]).transpose().rechunk([10, 10]);
    let d = arange(16, 4).reshape(&[4, 4]).diag();
    let planned = total.plan()?;
    assert!(planned.tasks() < planned.tasks_unfused());
    let dir = std::env::temp_dir().join(format!("accel-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    accel::dot::write_dot(&dir.join("fused.dot"), &planned.dot_fused())?;
    std::fs::remove_dir_all(&dir)?;
    let s: f64 = total.compute::<f64>()?[[]];
    let run = Client::local().run(&[&col_mean, &sd])?;
    assert_eq!(run.outputs.len(), 2);
    assert!(s.is_finite());
    assert_eq!(v.shape()?, vec![80, 45]);
    assert_eq!(
        d.compute::<i64>()?.iter().copied().collect::<Vec<_>>(),
        vec![0, 5, 10, 15]
    );
    assert_eq!(z.dtype()?, DType::C128);
    assert_eq!(t.dtype()?, DType::F32);
    // A build error names the operands and the line.
    let bad = ones(&[3], DType::F64, 3) + ones(&[4], DType::F64, 4);
    let msg = bad.check().unwrap_err().to_string();
    assert!(
        msg.starts_with("add at ")
            && msg.contains("f64[3] and f64[4] cannot be broadcast together"),
        "{msg}"
    );
    Ok(())
}
