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
    let w = z.sqrt().exp() + power(&z, 0.5) + z.arcsin();
    let q = hypot(&a, &u) + arctan2(&a, &u) + a.floor_divide(3.0) + u.log1p() + u.round().sign();
    let nan_mask = c.isnan() | c.isfinite().not();
    let mixed = &a + &from_ndarray(&ndarray::Array2::<f64>::ones((100, 80)), [30, 80]);
    let total = m.sum();
    let col_mean = m.mean_axis(0);
    let sd = m.reduce(
        ReduceOp::Std(1),
        &ReduceOpts::axis(1).keepdims(true).split_every(4),
    );
    let (imax, first_min) = (m.argmax(), m.argmin_axis(1));
    let robust = c.nanmean() + c.nanstd(1) + c.nanmax_with(&ReduceOpts::axis(0));
    let v = m.slice(s![10..;2, ..;-1]).transpose().rechunk([10, 10]);
    let d = arange(16, 4).reshape(&[4, 4]).diag();
    let r = stack(&[&m, &m.flip(0)], 0)
        .roll(3, -1)
        .pad(&[(0, 0), (1, 1), (2, 2)], PadMode::Reflect);
    let e = t.expand_dims(0).broadcast_to(&[4, 1_000]).sum_axis(0);
    let p = matmul(&a.transpose(), &(&u * 2.0)).tanh();
    let k = tensordot(&a, &u, &[1], &[1]) + outer(&d, &d).trace() + eye(100, 25).tril(0);
    let running = c.cumsum(0) + u.cumprod(-1);
    let escape = &loop_until(&[Operand::from(&z), 0i64.into()], 50, |s, i| {
        let next = s[0].powi(2) + &z;
        let out = next.abs().gt(2.0);
        (vec![next, where_(&out, i, 50)], out)
    })[1];
    let ranks = map_blocks(&[&u], |b: &Blocks<'_>| {
        let x = b.input::<f64>(0)?;
        Ok::<_, String>(x.mapv(|v| v * b.info().origin[0] as f64))
    });
    let smoothed = MapBlocks::named("smooth")
        .arg(0.5)
        .dtype(DType::F64)
        .apply(&[&u, &a]);
    let smooth = Functions::new().with("smooth", |b: &Blocks<'_>| {
        let (w, x, y) = (b.arg_f64(0)?, b.input::<f64>(0)?, b.input::<f64>(1)?);
        Ok::<_, String>(&x * w + &y * (1.0 - w))
    });
    let got = Client::local()
        .with_functions(smooth)
        .compute::<f64>(&smoothed)?;
    let want = Client::local().compute::<f64>(&(&u * 0.5 + &a * 0.5))?;
    assert_eq!(got, want);
    let ranks = ranks.compute::<f64>()?;
    let ax = ndarray::Axis(0);
    let row = u.compute::<f64>()?.index_axis(ax, 30).mapv(|v| v * 25.0);
    assert_eq!(ranks.index_axis(ax, 30), row);
    assert_eq!(p.shape()?, vec![80, 80]);
    assert_eq!(k.shape()?, vec![100, 100]);
    assert_eq!(running.shape()?, vec![100, 80]);
    assert_eq!(escape.dtype()?, DType::I64);
    assert_eq!(escape.plan()?.tasks(), z.plan()?.tasks());
    assert_eq!(w.dtype()?, DType::C128);
    assert_eq!(q.shape()?, vec![100, 80]);
    assert!(!nan_mask.any().compute::<bool>()?[[]]);
    assert_eq!(mixed.chunks()?, vec![vec![25; 4], vec![20; 4]]);
    assert!(imax.compute::<i64>()?[[]] >= 0);
    assert_eq!(first_min.shape()?, vec![100]);
    assert!(robust.compute::<f64>()?.iter().all(|v| v.is_finite()));
    assert_eq!(r.shape()?, vec![2, 102, 84]);
    assert_eq!(e.compute::<f32>()?[[999]], 3996.0);
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

    // Stencils and time stepping (smaller: 20² in 10² chunks, 40 steps).
    let mut plate = ndarray::Array2::<f64>::zeros((20, 20));
    plate.row_mut(19).fill(100.0);
    let g = 0.25;
    let five_point: [(&[i64], f64); 4] = [(&[1, 0], g), (&[-1, 0], g), (&[0, 1], g), (&[0, -1], g)];
    let t0 = from_ndarray(&plate, [10, 10]);
    let t = t0.iterate(40, |t| t.stencil(&five_point, Boundary::Fixed));
    let field = t.compute::<f64>()?;
    assert_eq!(field[[19, 5]], 100.0);
    assert!(field[[18, 5]] > 0.0 && field[[0, 5]] == 0.0);
    let u = t0.map_overlap([Boundary::Periodic, Boundary::Reflect], |n| {
        (n.at(&[-1, 0]) + n.at(&[1, 0]) - n.center() * 2.0)
            .abs()
            .sqrt()
    });
    assert_eq!(u.compute::<f64>()?[[0, 3]], 10.0); // |100 + 0 - 0|^½ across the periodic edge
    let rolled = t0.shift(&[0, 1], Boundary::Periodic);
    assert_eq!(rolled.compute::<f64>()?[[19, 19]], 100.0);
    let (last, frames) = t0.iterate_frames(40, 10, |t| t.stencil(&five_point, Boundary::Fixed));
    assert_eq!(frames.len(), 5);
    assert_eq!(last.compute::<f64>()?, field);
    Ok(())
}

/// The README's "Data in files" block, in a scratch folder and smaller.
#[test]
fn readme_storage() -> anyhow::Result<()> {
    use accel::{Compression, ZarrOptions};
    let dir = std::env::temp_dir().join(format!("accel-readme-data-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("data"))?;
    std::fs::create_dir_all(dir.join("out"))?;
    let p = |f: &str| dir.join(f);
    let src = Rng::new(1).random(&[100, 100], [40, 40]);
    Client::local().to_npy(&src, p("data/field.npy"))?;
    Client::local().to_zarr(&src, p("data/field.zarr"), &ZarrOptions::default())?;

    let x = from_npy(p("data/field.npy"), [10, 10]);
    let z = from_zarr(p("data/field.zarr"));
    let w = from_zarr_with(p("data/field.zarr"), [5, 40]);
    let y = (x * 2.0 + 1.0).sqrt();
    let client = Client::local();
    client.to_npy(&y, p("out/y.npy"))?;
    client.to_zarr(
        &y,
        p("out/y.zarr"),
        &ZarrOptions {
            chunks: Some(vec![50, 50]),
            compression: Compression::Zstd(3),
        },
    )?;
    let store = Stored::create_zarr(
        p("out/movie.zarr"),
        &[3, 100, 100],
        DType::F64,
        &[1, 50, 50],
        Compression::Zstd3,
    )?;
    let frames = [&z, &w, &y];
    let writes: Vec<Write> = frames
        .iter()
        .enumerate()
        .map(|(k, f)| Write::into(f, &store, &[k, 0, 0]))
        .collect::<Result<_>>()?;
    client.write(&writes)?;
    let kept = client.persist(&y)?;
    let a = client.compute::<f64>(&kept.sum())?[[]];
    let b = client.compute::<f64>(&(&kept * &kept).mean())?[[]];
    drop(kept);

    let want = client.compute::<f64>(&(src.clone() * 2.0 + 1.0).sqrt())?;
    assert_eq!(client.compute::<f64>(&from_zarr(p("out/y.zarr")))?, want);
    assert_eq!(
        client.compute::<f64>(&from_npy(p("out/y.npy"), [100, 100]))?,
        want
    );
    let movie = client.compute::<f64>(&from_zarr(p("out/movie.zarr")))?;
    let s = client.compute::<f64>(&src)?;
    assert_eq!(movie.index_axis(ndarray::Axis(0), 0), s);
    assert_eq!(movie.index_axis(ndarray::Axis(0), 2), want);
    assert!((a - want.sum()).abs() < 1e-9 * a.abs());
    assert!((b - want.mapv(|v| v * v).mean().unwrap()).abs() < 1e-9 * b.abs());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn readme_gpus() -> anyhow::Result<()> {
    // `auto` finds no GPU on a machine without one (lavapipe is software):
    // the same code then runs on the CPU.
    let x = arange(10_000, 2_500).astype(DType::F64);
    let client = accel::Client::local().with_gpu(accel::GpuChoice::Auto)?;
    let y = client.compute::<f64>(&((&x * 2.5 + 1.0).sqrt() - x.sin()))?;
    assert_eq!(y[[4]], 11f64.sqrt() - 4f64.sin());
    if let Some((gpu, counts)) = client.gpu() {
        println!(
            "{}: {} kernels on the GPU, {} on the CPU",
            gpu.name, counts.on_gpu, counts.declined
        );
    }
    Ok(())
}
