//! Long chains, memory release, complex numbers and the embedded runner.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use accel::{Client, Complex64, DType, arange, from_ndarray, ones};

#[test]
fn a_ten_thousand_step_chain_builds_optimizes_and_runs() {
    // Runs on a test thread's small stack: every graph walk must be iterative.
    let data = from_ndarray(&ndarray::Array1::<f64>::zeros(1000), 250);
    let mut x = data.clone();
    for _ in 0..10_000 {
        x = x + 1.0;
    }
    let p = x.plan().unwrap();
    assert_eq!(p.tasks(), 8); // 4 source chunks + 4 fused map tasks
    let out = x.compute::<f64>().unwrap();
    assert!(out.iter().all(|&v| v == 10_000.0));
    drop(x);
    // The folded form of the same chain on a constant.
    let mut y = ones(&[10], DType::F64, 5);
    for _ in 0..10_000 {
        y = y + 1.0;
    }
    assert!(y.compute::<f64>().unwrap().iter().all(|&v| v == 10_001.0));
}

#[test]
fn chunks_are_released_after_their_last_consumer() {
    // mag at 5e6 elements in 20 chunks: the result is written in place and no
    // intermediate (x**2, y**2) is ever held.
    let n = 5_000_000;
    let x = arange(n, n / 20).astype(DType::F64);
    let mag = (x.powi(2) + x.powi(2)).sqrt();
    let run = Client::local().run(&[&mag]).unwrap();
    assert_eq!(run.stats.peak_bytes, 0);
    // Source data feeding a fused map: at most a few input chunks live at once.
    let d = from_ndarray(&ndarray::Array1::<f64>::zeros(n), n / 20);
    let y = (&d * 2.0 + 1.0).sin();
    let run = Client::local().run(&[&y]).unwrap();
    let chunk_bytes = n / 20 * 8;
    assert!(
        run.stats.peak_bytes <= 4 * chunk_bytes,
        "peak {}",
        run.stats.peak_bytes
    );
}

#[test]
fn complex_arithmetic_abs_re_im_where() {
    let re = from_ndarray(&ndarray::arr1(&[1.0, -2.0, 0.5, 3.0]), 2);
    let z = &re + Complex64::new(0.0, 1.0) * &re.powi(2);
    let w = (&z * &z - &z / Complex64::new(2.0, -1.0)).powi(3);
    let got = w.compute::<Complex64>().unwrap();
    for (k, &x) in [1.0f64, -2.0, 0.5, 3.0].iter().enumerate() {
        let z = Complex64::new(x, x * x);
        let want = (z * z - z / Complex64::new(2.0, -1.0)).powi(3);
        assert!(
            (got[[k]] - want).norm() <= 1e-12 * want.norm().max(1.0),
            "{k}: {} vs {want}",
            got[[k]]
        );
    }
    assert_eq!(
        z.abs().compute::<f64>().unwrap()[[1]],
        Complex64::new(-2.0, 4.0).norm()
    );
    assert_eq!(z.im().compute::<f64>().unwrap()[[3]], 9.0);
    let masked = accel::where_(&z.re().gt(0.0), &z, 0.0)
        .re()
        .sum()
        .compute::<f64>()
        .unwrap()[[]];
    assert_eq!(masked, 4.5);
}

#[test]
fn several_outputs_share_one_run() {
    let a = arange(100, 30).astype(DType::F64);
    let b = &a * 2.0;
    let s = b.sum();
    let run = Client::local().run(&[&b, &s, &a]).unwrap();
    assert_eq!(
        run.outputs[1].clone().into_typed::<f64>().unwrap()[[]],
        9900.0
    );
    assert_eq!(
        run.outputs[0].clone().into_typed::<f64>().unwrap()[[99]],
        198.0
    );
    assert_eq!(
        run.outputs[2].clone().into_typed::<f64>().unwrap()[[5]],
        5.0
    );
}

#[test]
fn dot_export_shows_fused_ops() {
    let x = arange(1000, 100).astype(DType::F64);
    let p = (x.powi(2) + 1.0).sqrt().plan().unwrap();
    let before = p.dot_graph();
    let after = p.dot_fused();
    assert!(before.matches("label=").count() >= 4, "{before}");
    assert!(
        after.contains("map × 10 tasks") && after.contains("sqrt") && after.contains("powi2"),
        "{after}"
    );
    assert!(p.dot_tasks(5).contains("… 5 more tasks"));
    let dir = std::env::temp_dir().join(format!("accel-dot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    accel::dot::write_dot(&dir.join("g.dot"), &after).unwrap();
    assert!(dir.join("g.dot").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn numpy_promotion_with_scalars() {
    let f = ones(&[3], DType::F32, 3);
    assert_eq!((&f * 2.0).dtype().unwrap(), DType::F32);
    let i = ones(&[3], DType::I32, 3);
    assert_eq!((&i + 1).dtype().unwrap(), DType::I32);
    assert_eq!((&i / 2).dtype().unwrap(), DType::F64);
    assert_eq!((&i + &f).dtype().unwrap(), DType::F64);
    assert_eq!(
        (&i * Complex64::new(0.0, 1.0)).dtype().unwrap(),
        DType::C128
    );
    assert_eq!((&i % 2).compute::<i32>().unwrap()[[0]], 1);
    assert_eq!(((-&i) % 3).compute::<i32>().unwrap()[[0]], 2);
    assert_eq!((2.0f64 - &f).compute::<f32>().unwrap()[[0]], 1.0);
}

#[test]
fn results_written_in_place_are_written_in_whole_rows_when_no_input_is_copied() {
    // 8 MiB results whose 256-wide chunks split every row (and so share every
    // page): the embedded run widens the tasks to whole rows when each still
    // reads one chunk of each input.
    let client = Client::local();
    let n = 1024;
    let a = arange(n * n, n * 256)
        .reshape(&[n, n])
        .rechunk([256, 256])
        .astype(DType::F64);
    let s = a.diag().tanh().sum();
    let out = &a + &s;
    let mut run = client.run(&[&out]).unwrap();
    // 4 partial sums, their combine, and 16 map tasks planned; the 16 run as 4.
    assert_eq!(run.planned.tasks(), 21);
    assert_eq!(run.stats.tasks, 9);
    let t: f64 = (0..n).map(|i| ((i * n + i) as f64).tanh()).sum();
    let got = run.outputs.remove(0).into_typed::<f64>().unwrap();
    let want: Vec<f64> = (0..n * n).map(|k| k as f64 + t).collect();
    assert_eq!(got.shape(), &[n, n]);
    assert!(got.iter().zip(&want).all(|(g, w)| g == w));

    // Three axes: every axis after the first is taken whole.
    let b = arange(16 * 256 * 256, 1 << 16)
        .reshape(&[16, 256, 256])
        .rechunk([4, 128, 64])
        .astype(DType::F64);
    let y = &b * 0.5 - 3.0;
    let mut run = client.run(&[&y]).unwrap();
    assert_eq!(run.planned.tasks(), 4 * 2 * 4);
    assert_eq!(run.stats.tasks, 4);
    let got = run.outputs.remove(0).into_typed::<f64>().unwrap();
    assert!(
        got.iter()
            .enumerate()
            .all(|(k, &v)| v == k as f64 * 0.5 - 3.0)
    );

    // A row of real data broadcast over a result chunked 256², held in one
    // chunk: each whole-row task reads that chunk as it is.
    let data = ndarray::Array2::from_shape_fn((n, n), |(i, j)| (i * 3 + j) as f64);
    let row = ndarray::Array1::from_shape_fn(n, |j| (j * j) as f64);
    let v = from_ndarray(&row, n);
    let grid = arange(n * n, n * 256)
        .reshape(&[n, n])
        .rechunk([256, 256])
        .astype(DType::F64);
    let sum = &grid + &v;
    let mut run = client.run(&[&sum]).unwrap();
    assert_eq!(run.planned.tasks(), 1 + 16);
    assert_eq!(run.stats.tasks, 1 + 4);
    let got = run.outputs.remove(0).into_typed::<f64>().unwrap();
    assert!(
        got.indexed_iter()
            .all(|(ix, &g)| g == (ix[0] * n + ix[1]) as f64 + row[ix[1]])
    );

    // An input chunked like the result: whole rows would read four of its
    // chunks per task, so the tasks stay as planned.
    let x = from_ndarray(&data, [256, 256]);
    let z = (&x + 1.0).sqrt();
    let mut run = client.run(&[&z]).unwrap();
    assert_eq!(run.stats.tasks, run.planned.tasks());
    let got = run.outputs.remove(0).into_typed::<f64>().unwrap();
    assert!(got.iter().zip(&data).all(|(&g, &d)| g == (d + 1.0).sqrt()));
}
