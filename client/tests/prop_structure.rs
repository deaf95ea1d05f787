//! Random views (slices with steps, transposes, rechunks, reshapes) and
//! reductions along random axes over random chunkings, against ndarray.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use accel::{ReduceOp, ReduceOpts, from_ndarray};
use ndarray::{ArrayD, Axis, IxDyn, SliceInfoElem};
use proptest::prelude::*;

fn data(shape: &[usize]) -> ArrayD<f64> {
    let mut k = 0.0;
    ArrayD::from_shape_fn(IxDyn(shape), |_| {
        k += 1.0;
        (k * 7.0) % 23.0 - 11.0
    })
}

/// One slice element per axis: (start, end, step) with possibly negative parts.
fn slice_elems(shape: &[usize]) -> impl Strategy<Value = Vec<SliceInfoElem>> + use<> {
    let per_axis: Vec<_> = shape
        .iter()
        .map(|&n| {
            let n = n as isize;
            (
                -n..=n,
                prop::option::of(-n..=n),
                prop_oneof![1isize..=3, -3isize..=-1],
            )
                .prop_map(|(start, end, step)| SliceInfoElem::Slice {
                    start,
                    end,
                    step,
                })
        })
        .collect();
    per_axis
}

fn case() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (1usize..=3).prop_flat_map(|nd| {
        (
            prop::collection::vec(1usize..=9, nd),
            prop::collection::vec(1usize..=4, nd),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, ..ProptestConfig::default() })]

    #[test]
    fn slices_and_transposes_match_ndarray(((shape, chunks), elems) in case().prop_flat_map(|(s, c)| {
        let e = slice_elems(&s);
        (Just((s, c)), e)
    })) {
        let d = data(&shape);
        let a = from_ndarray(&d, chunks.clone());
        let got = a.slice(elems.as_slice()).compute::<f64>().unwrap();
        let want = d.slice(elems.as_slice()).to_owned();
        prop_assert_eq!(got, want.clone());
        let t = a.slice(elems.as_slice()).transpose().compute::<f64>().unwrap();
        prop_assert_eq!(t, want.t().to_owned());
        let r = a.rechunk(chunks.iter().map(|c| c + 1).collect::<Vec<_>>()).slice(elems.as_slice()).compute::<f64>().unwrap();
        prop_assert_eq!(r, want);
    }

    #[test]
    fn reductions_along_any_axis((shape, chunks) in case(), axis in 0usize..3, keep in any::<bool>(), fan in 2usize..5) {
        let axis = axis % shape.len();
        let d = data(&shape);
        let a = from_ndarray(&d, chunks);
        let opts = ReduceOpts::axis(axis as isize).keepdims(keep).split_every(fan);
        let fix = |x: ArrayD<f64>| if keep { x.insert_axis(Axis(axis)) } else { x };
        let s = a.reduce(ReduceOp::Sum, &opts).compute::<f64>().unwrap();
        prop_assert_eq!(s, fix(d.sum_axis(Axis(axis))));
        let m = a.reduce(ReduceOp::Max, &opts).compute::<f64>().unwrap();
        prop_assert_eq!(m, fix(d.fold_axis(Axis(axis), f64::NEG_INFINITY, |x, &y| x.max(y))));
        let v = a.reduce(ReduceOp::Var(0), &opts).compute::<f64>().unwrap();
        let wv = fix(d.var_axis(Axis(axis), 0.0));
        for (g, w) in v.iter().zip(wv.iter()) {
            prop_assert!((g - w).abs() <= 1e-9 * w.abs().max(1.0), "var {} vs {}", g, w);
        }
        let flat = a.reshape(&[d.len()]).sum().compute::<f64>().unwrap()[[]];
        prop_assert_eq!(flat, d.sum());
    }
}
