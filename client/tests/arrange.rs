//! expand_dims, squeeze, flip, roll, stack, broadcast_to and pad against
//! index-by-index references on plain ndarray arrays, over several chunkings.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use accel::{Array, DType, PadMode, from_ndarray, stack};
use ndarray::{Array2, ArrayD, Axis, IxDyn};

/// A 2-d array whose values say where they came from.
fn data(rows: usize, cols: usize) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |(i, j)| (100 * i + j) as f64)
}

fn got(a: &Array) -> ArrayD<f64> {
    a.compute::<f64>().unwrap()
}

const CHUNKINGS: [[usize; 2]; 3] = [[2, 3], [5, 7], [1, 1]];

#[test]
fn expand_dims_squeeze_and_flip_match_ndarray() {
    let d = data(5, 7);
    for c in CHUNKINGS {
        let x = from_ndarray(&d, c.to_vec());
        let e = x.expand_dims(1);
        assert_eq!(e.shape().unwrap(), vec![5, 1, 7]);
        assert_eq!(got(&e), d.clone().insert_axis(Axis(1)).into_dyn());
        assert_eq!(got(&x.expand_dims(-1)).shape(), &[5, 7, 1]);
        assert_eq!(got(&e.squeeze()), d.clone().into_dyn());
        assert_eq!(got(&e.squeeze_axis(-2)), d.clone().into_dyn());
        let mut flipped = d.clone();
        flipped.invert_axis(Axis(1));
        assert_eq!(got(&x.flip(1)), flipped.clone().into_dyn());
        flipped.invert_axis(Axis(0));
        assert_eq!(got(&x.flip(0).flip(-1)), flipped.into_dyn());
    }
}

#[test]
fn roll_matches_numpy_for_any_shift() {
    let d = data(5, 7);
    for c in CHUNKINGS {
        let x = from_ndarray(&d, c.to_vec());
        for shift in [-9isize, -1, 0, 3, 7, 15] {
            for axis in [0usize, 1] {
                let n = d.shape()[axis] as isize;
                let want = ArrayD::from_shape_fn(IxDyn(&[5, 7]), |ix| {
                    let mut src = [ix[0], ix[1]];
                    src[axis] = (ix[axis] as isize - shift).rem_euclid(n) as usize;
                    d[src]
                });
                assert_eq!(
                    got(&x.roll(shift, axis as isize)),
                    want,
                    "shift {shift} axis {axis}"
                );
            }
        }
    }
}

#[test]
fn stack_joins_along_a_new_axis() {
    let (a, b) = (data(3, 4), data(3, 4) * -1.0);
    let (x, y) = (from_ndarray(&a, 2), from_ndarray(&b, 3));
    let y = y.rechunk(vec![2, 2]);
    for axis in [0isize, 1, 2, -1] {
        let k = axis.rem_euclid(3) as usize;
        let want = ndarray::stack(Axis(k), &[a.view(), b.view()]).unwrap();
        assert_eq!(got(&stack(&[&x, &y], axis)), want.into_dyn(), "axis {axis}");
    }
    assert!(
        stack(&[&x, &from_ndarray(&data(4, 3), 2)], 0)
            .check()
            .is_err()
    );
}

#[test]
fn broadcast_to_repeats_without_storing() {
    let row = from_ndarray(&ndarray::arr1(&[1.0, 2.0, 3.0]), 2);
    let b = row.broadcast_to(&[4, 3]);
    let want = ndarray::arr1(&[1.0, 2.0, 3.0])
        .broadcast((4, 3))
        .unwrap()
        .to_owned();
    assert_eq!(got(&b), want.into_dyn());
    // A column against a row, and a result far larger than its input: one
    // input chunk, a few output chunks.
    let col = from_ndarray(&ndarray::arr2(&[[1.0], [2.0]]), 1);
    let big = col.broadcast_to(&[3, 2, 1_500_000]);
    assert_eq!(big.shape().unwrap(), vec![3, 2, 1_500_000]);
    let sum = big.sum().compute::<f64>().unwrap()[[]];
    assert_eq!(sum, 3.0 * 1_500_000.0 * 3.0);
    assert!(row.broadcast_to(&[4, 2]).check().is_err());
    assert!(row.broadcast_to(&[2]).check().is_err());
}

/// NumPy's pad, one index at a time.
fn pad_reference(d: &Array2<f64>, w: [(usize, usize); 2], mode: PadMode) -> ArrayD<f64> {
    let (r, c) = d.dim();
    let shape = [r + w[0].0 + w[0].1, c + w[1].0 + w[1].1];
    let source = |i: usize, before: usize, n: usize| -> Option<usize> {
        let k = i as isize - before as isize;
        let n = n as isize;
        let k = if (0..n).contains(&k) {
            k
        } else {
            match mode {
                PadMode::Constant(_) => return None,
                PadMode::Edge => k.clamp(0, n - 1),
                PadMode::Reflect if k < 0 => -k,
                PadMode::Reflect => 2 * (n - 1) - k,
                PadMode::Symmetric if k < 0 => -k - 1,
                PadMode::Symmetric => 2 * n - 1 - k,
                PadMode::Wrap => k.rem_euclid(n),
            }
        };
        Some(k as usize)
    };
    ArrayD::from_shape_fn(IxDyn(&shape), |ix| {
        match (source(ix[0], w[0].0, r), source(ix[1], w[1].0, c)) {
            (Some(i), Some(j)) => d[[i, j]],
            _ => match mode {
                PadMode::Constant(v) => v,
                _ => unreachable!(),
            },
        }
    })
}

#[test]
fn pad_in_every_mode_matches_numpy() {
    let d = data(5, 7);
    let modes = [
        PadMode::Constant(-1.5),
        PadMode::Edge,
        PadMode::Reflect,
        PadMode::Symmetric,
        PadMode::Wrap,
    ];
    for c in CHUNKINGS {
        let x = from_ndarray(&d, c.to_vec());
        for mode in modes {
            for w in [[(1, 2), (3, 0)], [(0, 0), (2, 2)], [(4, 4), (6, 5)]] {
                let want = pad_reference(&d, w, mode);
                let p = x.pad(&w, mode);
                assert_eq!(got(&p), want, "{mode:?} {w:?} chunks {c:?}");
            }
        }
    }
    // Integer arrays keep their dtype; too-wide reflections are refused.
    let i = from_ndarray(&ndarray::arr1(&[1i64, 2, 3]), 2);
    let p = i.pad(&[(2, 1)], PadMode::Constant(9.0));
    assert_eq!(p.dtype().unwrap(), DType::I64);
    assert_eq!(
        p.compute::<i64>()
            .unwrap()
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        vec![9, 9, 1, 2, 3, 9]
    );
    let err = i.pad(&[(3, 0)], PadMode::Reflect).check().unwrap_err();
    assert!(err.to_string().contains("wider"), "{err}");
    assert!(i.pad(&[(1, 1), (1, 1)], PadMode::Edge).check().is_err());
}

#[test]
fn padding_feeds_a_chain_and_a_reduction() {
    // Values are small integers: every summation order gives the same bits.
    let d = data(6, 6);
    let x = from_ndarray(&d, 3);
    let y = (x.pad(&[(1, 1), (1, 1)], PadMode::Wrap) * 2.0 + 1.0).sum();
    let want: f64 = pad_reference(&d, [(1, 1), (1, 1)], PadMode::Wrap)
        .iter()
        .map(|v| v * 2.0 + 1.0)
        .sum();
    assert_eq!(y.compute::<f64>().unwrap()[[]], want);
}
