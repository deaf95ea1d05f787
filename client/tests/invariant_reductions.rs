//! Float sum, mean, var and std (and their NaN versions) give the same bits
//! for any chunking, on values whose plain sums would differ in their last
//! bits between chunkings; sums equal the correctly rounded exact sum.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use accel::{Array, from_ndarray};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;

/// Values over many magnitudes and both signs (so the order of additions
/// shows), a few NaNs when asked.
fn data(shape: &[usize], seed: u64, nan: bool) -> ArrayD<f64> {
    let mut s = seed | 1;
    ArrayD::from_shape_fn(IxDyn(shape), |_| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let mant = (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
        let exp = ((s >> 3) % 40) as i32 - 20;
        if nan && s.is_multiple_of(17) {
            f64::NAN
        } else {
            mant * 2f64.powi(exp)
        }
    })
}

/// The exact sum of `xs` rounded once (Shewchuk's partials, as Python's
/// `math.fsum`), for finite values whose partial sums do not overflow.
fn fsum(xs: impl IntoIterator<Item = f64>) -> f64 {
    let mut partials: Vec<f64> = Vec::new();
    for mut x in xs {
        let mut kept = 0;
        for i in 0..partials.len() {
            let mut y = partials[i];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        partials.truncate(kept);
        partials.push(x);
    }
    // Round the partials' exact sum once, correcting a half-way case.
    let mut hi = 0.0;
    let mut lo = 0.0;
    while let Some(x) = partials.pop() {
        let prev = hi;
        hi = prev + x;
        lo = x - (hi - prev);
        if lo != 0.0 {
            break;
        }
    }
    if let Some(&next) = partials.last()
        && ((lo < 0.0 && next < 0.0) || (lo > 0.0 && next > 0.0))
    {
        let y = lo * 2.0;
        let x = hi + y;
        if y == x - hi {
            hi = x;
        }
    }
    hi
}

/// One reduction of an array.
type Reduction = fn(&Array) -> Array;

fn bits(a: &Array) -> Vec<u64> {
    a.compute::<f64>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn reductions_do_not_depend_on_chunking(
        shape in prop::collection::vec(1usize..24, 1..=3),
        c1 in prop::collection::vec(1usize..9, 3),
        c2 in prop::collection::vec(1usize..9, 3),
        seed in any::<u64>(), nan in any::<bool>(),
    ) {
        let nd = shape.len();
        let d = data(&shape, seed, nan);
        let (x, y) = (from_ndarray(&d, c1[..nd].to_vec()), from_ndarray(&d, c2[..nd].to_vec()));
        let cases: Vec<(&str, Reduction)> = vec![
            ("sum", |a| a.sum()),
            ("mean", |a| a.mean()),
            ("var", |a| a.var(1)),
            ("std", |a| a.std(0)),
            ("sum axis 0", |a| a.sum_axis(0)),
            ("mean axis -1", |a| a.mean_axis(-1)),
            ("var axis 0", |a| a.reduce(accel::ReduceOp::Var(0), &accel::ReduceOpts::axis(0))),
            ("nansum", |a| a.nansum()),
            ("nanmean", |a| a.nanmean()),
            ("nanvar", |a| a.nanvar(1)),
            ("sum of a fused chain", |a| (a * 3.0 - 1.0).sum()),
        ];
        for (name, f) in cases {
            prop_assert_eq!(bits(&f(&x)), bits(&f(&y)), "{} of {:?}: {:?} vs {:?}", name, shape, &c1[..nd], &c2[..nd]);
        }
        if !nan {
            let got = x.sum().compute::<f64>().unwrap()[[]];
            prop_assert_eq!(got.to_bits(), fsum(d.iter().copied()).to_bits());
        }
    }
}

#[test]
fn variance_survives_a_large_mean() {
    // 1e9 + small deviations: the one-pass formula in plain floats loses
    // every digit here; exact sums keep them.
    let n = 10_000;
    let host = ArrayD::from_shape_fn(IxDyn(&[n]), |ix| 1e9 + (ix[0] % 7) as f64 - 3.0);
    let x = from_ndarray(&host, vec![333]);
    let mean = host.iter().sum::<f64>() / n as f64;
    let want = host.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
    let got = x.var(0).compute::<f64>().unwrap()[[]];
    assert!((got - want).abs() <= 1e-12 * want, "var {got} vs {want}");
}
