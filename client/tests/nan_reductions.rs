//! nansum, nanmean, nanmin, nanmax, nanvar and nanstd against scalar loops
//! over random data with NaNs, whole-array and along each axis, over several
//! chunkings; all-NaN slices give NaN as in NumPy.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use accel::{Array, ReduceOpts, from_ndarray};
use ndarray::{Array2, ArrayD, Axis, IxDyn};

/// Deterministic data: about a quarter NaN, and row 3 entirely NaN.
fn data(rows: usize, cols: usize) -> Array2<f64> {
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    Array2::from_shape_fn((rows, cols), |(i, _)| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let u = (s >> 11) as f64 / (1u64 << 53) as f64;
        if i == 3 || u < 0.25 {
            f64::NAN
        } else {
            u * 20.0 - 10.0
        }
    })
}

fn numbers(v: &[f64]) -> Vec<f64> {
    v.iter().copied().filter(|x| !x.is_nan()).collect()
}

fn reference(v: &[f64], what: &str) -> f64 {
    let n = numbers(v);
    let count = n.len() as f64;
    let mean = n.iter().sum::<f64>() / count;
    match what {
        "sum" => n.iter().sum(),
        "mean" => mean,
        "min" => n.iter().copied().reduce(f64::min).unwrap_or(f64::NAN),
        "max" => n.iter().copied().reduce(f64::max).unwrap_or(f64::NAN),
        "var1" if count <= 1.0 => f64::NAN,
        "var1" => n.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (count - 1.0),
        "std0" if count == 0.0 => f64::NAN,
        "std0" => (n.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / count).sqrt(),
        _ => unreachable!(),
    }
}

fn compute(x: &Array, what: &str, opts: &ReduceOpts) -> ArrayD<f64> {
    let a = match what {
        "sum" => x.nansum_with(opts),
        "mean" => x.nanmean_with(opts),
        "min" => x.nanmin_with(opts),
        "max" => x.nanmax_with(opts),
        "var1" => x.nanvar_with(1, opts),
        "std0" => x.nanstd_with(0, opts),
        _ => unreachable!(),
    };
    a.compute::<f64>().unwrap()
}

fn close(got: f64, want: f64) -> bool {
    (got.is_nan() && want.is_nan()) || (got - want).abs() <= 1e-12 * want.abs().max(1.0)
}

#[test]
fn nan_reductions_match_scalar_loops() {
    let d = data(7, 9);
    let whats = ["sum", "mean", "min", "max", "var1", "std0"];
    for chunks in [vec![2usize, 4], vec![7, 9], vec![3, 1]] {
        let x = from_ndarray(&d, chunks.clone());
        for what in whats {
            // Whole array.
            let all: Vec<f64> = d.iter().copied().collect();
            let got = compute(&x, what, &ReduceOpts::default())[IxDyn(&[])];
            assert!(
                close(got, reference(&all, what)),
                "{what} {chunks:?}: {got}"
            );
            // Along each axis, with and without keepdims.
            for axis in [0usize, 1] {
                for keep in [false, true] {
                    let opts = ReduceOpts::axis(axis as isize).keepdims(keep);
                    let got = compute(&x, what, &opts);
                    let lanes: Vec<f64> = d
                        .lanes(Axis(axis))
                        .into_iter()
                        .map(|l| reference(&l.to_vec(), what))
                        .collect();
                    assert_eq!(got.len(), lanes.len());
                    let want_ndim = if keep { 2 } else { 1 };
                    assert_eq!(got.ndim(), want_ndim, "{what} axis {axis} keepdims {keep}");
                    for (k, (&g, &w)) in got.iter().zip(&lanes).enumerate() {
                        assert!(close(g, w), "{what} axis {axis} lane {k}: {g} vs {w}");
                    }
                }
            }
        }
    }
}

#[test]
fn all_nan_rows_give_nan_and_integers_have_no_nan() {
    let d = data(7, 9);
    let x = from_ndarray(&d, vec![2, 4]);
    let row3 = x
        .nanmin_with(&ReduceOpts::axis(1))
        .compute::<f64>()
        .unwrap();
    assert!(row3[[3]].is_nan());
    assert!(
        x.nanmean_with(&ReduceOpts::axis(1))
            .compute::<f64>()
            .unwrap()[[3]]
        .is_nan()
    );
    assert_eq!(
        x.nansum_with(&ReduceOpts::axis(1))
            .compute::<f64>()
            .unwrap()[[3]],
        0.0
    );
    let i = from_ndarray(&ndarray::arr1(&[3i64, -1, 7]), 2);
    assert_eq!(i.nansum().compute::<i64>().unwrap()[[]], 9);
    assert_eq!(i.nanmax().compute::<i64>().unwrap()[[]], 7);
    assert_eq!(i.nanmean().compute::<f64>().unwrap()[[]], 3.0);
    assert_eq!(i.nanvar(0).compute::<f64>().unwrap()[[]], 32.0 / 3.0);
}
