//! cumsum and cumprod against sequential loops over random shapes, axes and
//! chunkings (NaNs included), with the task count of the blocked scan.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use accel::{DType, from_ndarray};
use ndarray::{ArrayD, Axis, IxDyn};
use proptest::prelude::*;

fn data(shape: &[usize], seed: u64, nan: bool) -> ArrayD<f64> {
    let mut s = seed | 1;
    ArrayD::from_shape_fn(IxDyn(shape), |_| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        if nan && s.is_multiple_of(13) {
            f64::NAN
        } else {
            (s % 7) as f64 - 3.0
        }
    })
}

/// The scan along `axis`, one lane at a time, in order.
fn reference(d: &ArrayD<f64>, axis: usize, prod: bool) -> ArrayD<f64> {
    let mut out = d.clone();
    for mut lane in out.lanes_mut(Axis(axis)) {
        let mut acc = if prod { 1.0 } else { 0.0 };
        for v in lane.iter_mut() {
            acc = if prod { acc * *v } else { acc + *v };
            *v = acc;
        }
    }
    out
}

fn same(a: &ArrayD<f64>, b: &ArrayD<f64>) -> bool {
    a.shape() == b.shape()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_scans_match_sequential_loops(
        shape in prop::collection::vec(1usize..9, 1..=3),
        chunk in prop::collection::vec(1usize..5, 3),
        axis_pick in 0usize..3, seed in any::<u64>(), nan in any::<bool>(),
    ) {
        let nd = shape.len();
        let axis = axis_pick % nd;
        // Small integers: sums are exact in any order; products of values in
        // -3..=3 over at most 8 terms are exact too.
        let d = data(&shape, seed, nan);
        let x = from_ndarray(&d, chunk[..nd].to_vec());
        let s = x.cumsum(axis as isize).compute::<f64>().unwrap();
        prop_assert!(same(&s, &reference(&d, axis, false)), "cumsum {:?} axis {}", shape, axis);
        let p = x.cumprod(-(nd as isize) + axis as isize).compute::<f64>().unwrap();
        prop_assert!(same(&p, &reference(&d, axis, true)), "cumprod {:?} axis {}", shape, axis);
        if !nan {
            let i = x.astype(DType::I32).cumsum(axis as isize);
            prop_assert_eq!(i.dtype().unwrap(), DType::I64);
            let want = reference(&d, axis, false).mapv(|v| v as i64);
            prop_assert_eq!(i.compute::<i64>().unwrap(), want);
        }
    }
}

#[test]
fn a_blocked_scan_has_three_steps_per_chunk() {
    // 10 chunks along the axis: 10 scans, 10 carries, 10 applications.
    let d = data(&[100], 3, false);
    let x = from_ndarray(&d, 10);
    let c = x.cumsum(0);
    assert_eq!(c.plan().unwrap().tasks(), 10 + 3 * 10);
    // One chunk along the axis needs no carries.
    let y = from_ndarray(&d, 100).cumsum(0);
    assert_eq!(y.plan().unwrap().tasks(), 1 + 1);
    // Large floats: equal to a sequential loop within rounding.
    let f = ArrayD::from_shape_fn(IxDyn(&[10_000]), |ix| ((ix[0] * 7919) % 1000) as f64 / 7.0);
    let got = from_ndarray(&f, 999).cumsum(0).compute::<f64>().unwrap();
    let want = reference(&f, 0, false);
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "{g} vs {w}");
    }
    assert!(x.cumsum(1).check().is_err());
    assert!(x.gt(0.0).cumsum(0).dtype().unwrap() == DType::I64);
}
