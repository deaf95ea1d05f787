//! `loop_until`: elementwise loops with early exits against scalar loops,
//! over random chunkings, nested, with captured arrays; the loop fuses into
//! one kernel; invalid loops are clear errors.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use accel::{Array, DType, Operand, arange, from_ndarray, loop_until, where_};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;

/// Collatz steps of `n` until it reaches 1 (at most `cap` steps).
fn collatz_steps(mut n: i64, cap: u32) -> (i64, i64) {
    let mut steps = 0;
    for _ in 0..cap {
        n = if n % 2 == 1 { 3 * n + 1 } else { n / 2 };
        steps += 1;
        if n <= 1 {
            break;
        }
    }
    (n, steps)
}

fn collatz(n: &Array, cap: u32) -> Vec<Array> {
    loop_until(&[Operand::from(n), 0i64.into()], cap, |s, _| {
        let odd = (&s[0] % 2).equal(1);
        let next = where_(&odd, &s[0] * 3 + 1, s[0].floor_divide(2));
        (vec![next.clone(), &s[1] + 1], next.le(1))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn loops_match_scalar_loops_for_any_chunking(
        rows in 1usize..12, cols in 1usize..12,
        chunk in (1usize..6, 1usize..6), cap in 0u32..40, offset in 1i64..50,
    ) {
        let host = ArrayD::from_shape_fn(IxDyn(&[rows, cols]), |ix| (ix[0] * cols + ix[1]) as i64);
        let n = from_ndarray(&host, vec![chunk.0, chunk.1]) + offset;
        let out = collatz(&n, cap);
        let (last, steps) = (out[0].compute::<i64>().unwrap(), out[1].compute::<i64>().unwrap());
        for (k, (l, s)) in last.iter().zip(&steps).enumerate() {
            let want = collatz_steps(k as i64 + offset, cap);
            prop_assert_eq!((*l, *s), want, "element {}", k);
        }
        // One fused task per chunk: the loop adds no stage to the expression.
        let chunks = rows.div_ceil(chunk.0) * cols.div_ceil(chunk.1);
        prop_assert_eq!(out[1].plan().unwrap().tasks(), (&n + 1).plan().unwrap().tasks());
        prop_assert_eq!(out[1].plan().unwrap().tasks(), 2 * chunks); // source + kernel
    }
}

#[test]
fn captured_arrays_nested_loops_and_reductions_compose() {
    // Per element: Σ_{j < n} (j * w) by an inner loop, inside an outer loop
    // that repeats it `n % 3 + 1` times and accumulates; w is captured from
    // outside and chunked differently.
    let n_host = ArrayD::from_shape_fn(IxDyn(&[7, 5]), |ix| ((ix[0] * 5 + ix[1]) % 9) as i64);
    let w_host = ArrayD::from_shape_fn(IxDyn(&[7, 5]), |ix| 1.0 + ix[1] as f64 * 0.5);
    let n = from_ndarray(&n_host, vec![3, 2]);
    let w = from_ndarray(&w_host, vec![7, 1]);
    let reps = (&n % 3) + 1;
    let total = &loop_until(&[Operand::from(0.0), 0i64.into()], 10, |outer, _| {
        let inner = &loop_until(&[Operand::from(0.0), 0i64.into()], 100, |s, j| {
            let stop = (j + 1).ge(&n);
            (vec![&s[0] + j.astype(DType::F64) * &w, &s[1] + 1], stop)
        })[0];
        let inner = where_(&n.equal(0), 0.0, inner);
        let count = &outer[1] + 1;
        (vec![&outer[0] + &inner, count.clone()], count.ge(&reps))
    })[0];
    let got = total.compute::<f64>().unwrap();
    let mut want_sum = 0.0;
    for (k, (&nv, &wv)) in n_host.iter().zip(&w_host).enumerate() {
        let inner: f64 = (0..nv).map(|j| j as f64 * wv).sum();
        let want = inner * (nv % 3 + 1) as f64;
        assert_eq!(got.as_slice().unwrap()[k], want, "element {k}");
        want_sum += want;
    }
    // A reduction over the loop fuses with it too.
    let s = total.sum().compute::<f64>().unwrap();
    assert!((s[[]] - want_sum).abs() < 1e-9);
}

#[test]
fn zero_trips_keep_the_initial_state() {
    let x = arange(6, vec![4]);
    let out = &loop_until(&[Operand::from(&x)], 0, |s, _| {
        (vec![&s[0] * 2], s[0].gt(0))
    })[0];
    assert_eq!(
        out.compute::<i64>().unwrap().as_slice().unwrap(),
        &[0, 1, 2, 3, 4, 5]
    );
}

#[test]
fn invalid_loops_are_clear_errors() {
    let x = arange(6, vec![3]).astype(DType::F64);
    // A reduction inside the body.
    let r = &loop_until(&[Operand::from(&x)], 3, |s, _| {
        (vec![&s[0] + x.sum()], s[0].gt(s[0].sum()))
    })[0];
    let e = r.compute::<f64>().unwrap_err().to_string();
    assert!(e.contains("only elementwise operations"), "{e}");
    // A float next value for an integer state.
    let r = &loop_until(&[Operand::from(0i64)], 3, |s, _| {
        (vec![&s[0] + 0.5], s[0].gt(1))
    })[0];
    let e = r.compute::<i64>().unwrap_err().to_string();
    assert!(
        e.contains("starts as i64 but the body makes it f64") && e.contains("tests/loops.rs"),
        "{e}"
    );
    // A non-bool flag.
    let r = &loop_until(&[Operand::from(&x)], 3, |s, _| {
        (vec![&s[0] + 1.0], &s[0] * 1.0)
    })[0];
    let e = r.compute::<f64>().unwrap_err().to_string();
    assert!(e.contains("stop condition must be bool"), "{e}");
    // A loop argument taken out of its loop.
    let mut leaked = None;
    let _ = loop_until(&[Operand::from(&x)], 3, |s, _| {
        leaked = Some(s[0].clone());
        (vec![&s[0] + 1.0], s[0].gt(2.0))
    });
    let e = (leaked.unwrap() + &x)
        .compute::<f64>()
        .unwrap_err()
        .to_string();
    assert!(e.contains("loop"), "{e}");
}
