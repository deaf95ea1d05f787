//! argmin/argmax against scalar loops over random data with NaNs and ties,
//! flat and along each axis, over several chunkings and split_every values.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use accel::{DType, ReduceOpts, from_ndarray};
use accel_core::op::ReduceOp;
use ndarray::{Array2, Axis};

/// Values from a small set (many ties), some NaN (unless `nans` is false).
fn data(rows: usize, cols: usize, seed: u64, nans: bool) -> Array2<f64> {
    let mut s = seed | 1;
    Array2::from_shape_fn((rows, cols), |_| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let k = s % 11;
        if nans && k == 0 && s.is_multiple_of(7) {
            f64::NAN
        } else {
            k as f64 - 5.0
        }
    })
}

/// NumPy's rule: the first NaN if any, else the first extreme value.
fn reference(v: &[f64], min: bool) -> i64 {
    if let Some(i) = v.iter().position(|x| x.is_nan()) {
        return i as i64;
    }
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if (min && x < v[best]) || (!min && x > v[best]) {
            best = i;
        }
    }
    best as i64
}

#[test]
fn arg_reductions_match_numpy_rules() {
    for (seed, nans) in [(3u64, true), (77, false), (1234, true)] {
        let d = data(9, 13, seed, nans);
        for chunks in [vec![2usize, 3], vec![9, 13], vec![4, 1], vec![1, 5]] {
            let x = from_ndarray(&d, chunks.clone());
            for (op, min) in [(ReduceOp::ArgMin, true), (ReduceOp::ArgMax, false)] {
                for split in [2usize, 16] {
                    let flat: Vec<f64> = d.iter().copied().collect();
                    let got = x
                        .reduce(op, &ReduceOpts::default().split_every(split))
                        .compute::<i64>()
                        .unwrap()[[]];
                    assert_eq!(
                        got,
                        reference(&flat, min),
                        "{op:?} flat {chunks:?} seed {seed}"
                    );
                    for axis in [0usize, 1] {
                        let opts = ReduceOpts::axis(axis as isize).split_every(split);
                        let got = x.reduce(op, &opts).compute::<i64>().unwrap();
                        let want: Vec<i64> = d
                            .lanes(Axis(axis))
                            .into_iter()
                            .map(|l| reference(&l.to_vec(), min))
                            .collect();
                        assert_eq!(
                            got.iter().copied().collect::<Vec<_>>(),
                            want,
                            "{op:?} axis {axis}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn arg_reductions_of_other_dtypes_and_fused_inputs() {
    let d = data(6, 8, 99, false);
    let x = from_ndarray(&d, vec![4, 3]);
    let i = x.astype(DType::I32);
    let flat: Vec<f64> = d.iter().copied().collect();
    assert_eq!(
        i.argmax().compute::<i64>().unwrap()[[]],
        reference(&flat, false)
    );
    // On a fused expression: the index of the largest square.
    let sq: Vec<f64> = flat.iter().map(|v| v * v).collect();
    assert_eq!(
        x.powi(2).argmax().compute::<i64>().unwrap()[[]],
        reference(&sq, false)
    );
    // Bools: the first true.
    let b = x.gt(3.0);
    let first = flat.iter().position(|&v| v > 3.0).unwrap() as i64;
    assert_eq!(b.argmax().compute::<i64>().unwrap()[[]], first);
    // Empty and complex inputs are refused.
    let empty = from_ndarray(&Array2::<f64>::zeros((0, 3)), 2);
    assert!(empty.argmin().check().is_err());
    assert!(x.astype(DType::C128).argmin().check().is_err());
}
