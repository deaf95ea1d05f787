use accel::*;

#[test]
fn mag_small() -> anyhow::Result<()> {
    let x = arange(1000, 100).astype(DType::F64);
    let y = arange(1000, 100).astype(DType::F64);
    let m = (x.powi(2) + y.powi(2)).sqrt();
    let p = m.plan()?;
    println!("{}", p.dot_fused());
    assert_eq!(p.tasks(), 10);
    let out = m.compute::<f64>()?;
    for i in 0..1000 {
        assert!((out[[i]] - 2f64.sqrt() * i as f64).abs() <= 1e-12 * i as f64);
    }
    Ok(())
}

#[test]
fn pi_and_sum() -> anyhow::Result<()> {
    let mut rng = Rng::new(7);
    let n = 1_000_000;
    let x = rng.random(&[n], 100_000);
    let y = rng.random(&[n], 100_000);
    let inside = (x.powi(2) + y.powi(2)).lt(1.0);
    let pi = inside.sum().astype(DType::F64) * 4.0 / n as f64;
    let p = pi.plan()?;
    println!("{}", p.dot_fused());
    let v = pi.compute::<f64>()?;
    println!("pi = {}", v[[]]);
    assert!((v[[]] - std::f64::consts::PI).abs() < 0.01);
    Ok(())
}
