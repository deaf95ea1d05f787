//! Slicing, transposes, diagonals, concatenation, rechunking and reshaping
//! against ndarray.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use accel::{DType, arange, concatenate, from_ndarray, s};
use ndarray::{Array2, ArrayD};

fn data(r: usize, c: usize) -> Array2<f64> {
    Array2::from_shape_fn((r, c), |(i, j)| (i * 100 + j) as f64)
}

#[test]
fn slices_with_steps_indices_and_new_axes() {
    let d = data(11, 13);
    let a = from_ndarray(&d, [4, 5]);
    let cases: Vec<(accel::Array, ArrayD<f64>)> = vec![
        (
            a.slice(s![1..9;2, ..]),
            d.slice(s![1..9;2, ..]).to_owned().into_dyn(),
        ),
        (
            a.slice(s![.., 3..;3]),
            d.slice(s![.., 3..;3]).to_owned().into_dyn(),
        ),
        (
            a.slice(s![..;-1, 2..10;-3]),
            d.slice(s![..;-1, 2..10;-3]).to_owned().into_dyn(),
        ),
        (
            a.slice(s![-3.., 4]),
            d.slice(s![-3.., 4]).to_owned().into_dyn(),
        ),
        (
            a.slice(s![5, accel::NewAxis, ..]),
            d.slice(s![5, ndarray::NewAxis, ..]).to_owned().into_dyn(),
        ),
        (
            a.slice(s![4..4, ..]),
            d.slice(s![4..4, ..]).to_owned().into_dyn(),
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got.compute::<f64>().unwrap(), want);
    }
}

#[test]
fn transpose_diag_rechunk_reshape() {
    let d = data(7, 9);
    let a = from_ndarray(&d, [3, 4]);
    assert_eq!(
        a.transpose().compute::<f64>().unwrap(),
        d.t().to_owned().into_dyn()
    );
    assert_eq!(
        a.diag().compute::<f64>().unwrap(),
        d.diag().to_owned().into_dyn()
    );
    assert_eq!(
        a.rechunk([2, 5]).compute::<f64>().unwrap(),
        d.clone().into_dyn()
    );
    assert_eq!(
        a.rechunk([2, 5]).chunks().unwrap(),
        vec![vec![2, 2, 2, 1], vec![5, 4]]
    );
    let r = a.reshape(&[3, 21]).compute::<f64>().unwrap();
    assert_eq!(
        r,
        d.clone().into_shape_with_order((3, 21)).unwrap().into_dyn()
    );
    // Structural ops compose with elementwise ones.
    let e = (a.transpose() * 2.0).slice(s![1.., ..;2]).sum();
    let want: f64 = d.t().slice(s![1.., ..;2]).iter().map(|v| v * 2.0).sum();
    assert_eq!(e.compute::<f64>().unwrap()[[]], want);
}

#[test]
fn diag_of_a_vector_is_a_matrix() {
    let v = ndarray::arr1(&[1.0, 2.0, 3.0, 4.0, 5.0]);
    let m = from_ndarray(&v, 2).diag().compute::<f64>().unwrap();
    assert_eq!(m, Array2::from_diag(&v).into_dyn());
}

#[test]
fn concatenate_promotes_and_keeps_chunks() {
    let a = from_ndarray(&data(4, 3), [2, 3]);
    let b = from_ndarray(&ndarray::Array2::<i32>::ones((3, 3)), [3, 3]);
    let c = concatenate(&[&a, &b], 0);
    assert_eq!(c.dtype().unwrap(), DType::F64);
    assert_eq!(c.chunks().unwrap()[0], vec![2, 2, 3]);
    let mut want: Vec<f64> = data(4, 3).iter().copied().collect();
    want.extend([1.0; 9]);
    assert_eq!(
        c.compute::<f64>()
            .unwrap()
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        want
    );
}

#[test]
fn generated_arrays_fold_through_views() {
    let n = 6;
    let a = arange(n * n, 7).reshape(&[n, n]);
    let got = a
        .slice(s![1..;2, ..;-1])
        .transpose()
        .compute::<i64>()
        .unwrap();
    let want = ndarray::Array::from_iter(0..(n * n) as i64)
        .into_shape_with_order((n, n))
        .unwrap();
    assert_eq!(got, want.slice(s![1..;2, ..;-1]).t().to_owned().into_dyn());
    let p = a.slice(s![1..;2, ..;-1]).transpose().plan().unwrap();
    assert_eq!(p.plan.stages.len(), 1);
}

#[test]
fn random_values_do_not_depend_on_chunking() {
    let mut r1 = accel::Rng::new(9);
    let mut r2 = accel::Rng::new(9);
    let a = r1
        .normal(&[50, 40], 1.0, 2.0, [7, 40])
        .compute::<f64>()
        .unwrap();
    let b = r2
        .normal(&[50, 40], 1.0, 2.0, [50, 3])
        .compute::<f64>()
        .unwrap();
    assert_eq!(a, b);
    let m = a.mean().unwrap();
    assert!((m - 1.0).abs() < 0.2, "mean {m}");
}

#[test]
fn reductions_along_axes_with_keepdims() {
    let d = data(9, 7);
    let a = from_ndarray(&d, [2, 3]);
    let opts = accel::ReduceOpts::axis(0).keepdims(true).split_every(2);
    let s = a
        .reduce(accel::ReduceOp::Sum, &opts)
        .compute::<f64>()
        .unwrap();
    assert_eq!(
        s,
        d.sum_axis(ndarray::Axis(0))
            .insert_axis(ndarray::Axis(0))
            .into_dyn()
    );
    let v = a.var(1).compute::<f64>().unwrap()[[]];
    let want = d.var(1.0);
    assert!((v - want).abs() < 1e-9 * want, "{v} vs {want}");
    let sd = a
        .reduce(accel::ReduceOp::Std(0), &accel::ReduceOpts::axis(1))
        .compute::<f64>()
        .unwrap();
    let wsd = d.std_axis(ndarray::Axis(1), 0.0).into_dyn();
    for (g, w) in sd.iter().zip(wsd.iter()) {
        assert!((g - w).abs() < 1e-9);
    }
    assert!(a.gt(500.0).any().compute::<bool>().unwrap()[[]]);
    assert_eq!(
        a.gt(-1.0).all_axis(1).compute::<bool>().unwrap(),
        ndarray::Array1::from_elem(9, true).into_dyn()
    );
    assert_eq!(a.min().compute::<f64>().unwrap()[[]], 0.0);
    assert_eq!(
        a.max_axis(-1).compute::<f64>().unwrap(),
        ndarray::Array1::from_iter((0..9).map(|i| (i * 100 + 6) as f64)).into_dyn()
    );
    let p = from_ndarray(&ndarray::arr1(&[1i32, 2, 3, 4]), 3)
        .prod()
        .compute::<i64>()
        .unwrap()[[]];
    assert_eq!(p, 24);
}
