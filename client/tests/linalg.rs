//! matmul, dot, tensordot, outer, trace, eye, tril and triu against
//! ndarray's products and index-by-index references, over random shapes and
//! chunkings (the operands chunked independently), with golden task counts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use accel::{DType, eye, from_ndarray, matmul, matmul_with, outer, tensordot};
use ndarray::{Array1, Array2, ArrayD, IxDyn};
use proptest::prelude::*;

/// Small integers as floats: every summation order gives the same bits.
fn ints(rows: usize, cols: usize, seed: u64) -> Array2<f64> {
    let mut s = seed | 1;
    Array2::from_shape_fn((rows, cols), |_| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % 9) as f64 - 4.0
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_matmuls_match_ndarray(
        m in 1usize..40, k in 1usize..40, n in 1usize..40,
        ca in (1usize..16, 1usize..16), cb in (1usize..16, 1usize..16),
        split in 2usize..5, seed in any::<u64>(),
    ) {
        let (a, b) = (ints(m, k, seed), ints(k, n, seed ^ 0x9e37));
        let x = from_ndarray(&a, vec![ca.0, ca.1]);
        let y = from_ndarray(&b, vec![cb.0, cb.1]);
        let got = matmul_with(&x, &y, split).compute::<f64>().unwrap();
        prop_assert_eq!(got, a.dot(&b).into_dyn());
        // Integers: exact, as i64.
        let xi = x.astype(DType::I32);
        let yi = y.astype(DType::I64);
        let gi = matmul(&xi, &yi).compute::<i64>().unwrap();
        prop_assert_eq!(gi, a.dot(&b).mapv(|v| v as i64).into_dyn());
    }

    #[test]
    fn random_tensordots_match_a_loop(
        s in (1usize..6, 1usize..6, 1usize..6, 1usize..6),
        c in 1usize..4, seed in any::<u64>(),
    ) {
        // a: (p, q, r), b: (r, q, t); contract a's axes (1, 2) with b's (1, 0).
        let (p, q, r, t) = s;
        let a = ints(p, q * r, seed).into_shape_with_order(IxDyn(&[p, q, r])).unwrap();
        let b = ints(r, q * t, seed ^ 5).into_shape_with_order(IxDyn(&[r, q, t])).unwrap();
        let x = from_ndarray(&a, c);
        let y = from_ndarray(&b, c + 1);
        let got = tensordot(&x, &y, &[1, 2], &[1, 0]).compute::<f64>().unwrap();
        let want = ArrayD::from_shape_fn(IxDyn(&[p, t]), |ix| {
            let mut acc = 0.0;
            for j in 0..q {
                for l in 0..r {
                    acc += a[[ix[0], j, l]] * b[[l, j, ix[1]]];
                }
            }
            acc
        });
        prop_assert_eq!(got, want);
    }
}

#[test]
fn golden_task_count_of_a_blocked_matmul() {
    // 4×4 blocks of a, 4×4 of b: 64 block products, then sums of 4 partials
    // per output block in one combine level (split_every 4): 16 tasks.
    let a = ints(40, 40, 1);
    let x = from_ndarray(&a, 10);
    let y = from_ndarray(&a, 10);
    let p = matmul_with(&x, &y, 4).plan().unwrap();
    assert_eq!(p.tasks(), 16 + 16 + 64 + 16);
    // With split_every 2 the tree has two levels: 64 + 32 + 16.
    let p2 = matmul_with(&x, &y, 2).plan().unwrap();
    assert_eq!(p2.tasks(), 16 + 16 + 64 + 32 + 16);
    // An elementwise tail runs inside the last combine task.
    let tail = (matmul_with(&x, &y, 4) * 2.0 + 1.0).plan().unwrap();
    assert_eq!(tail.tasks(), 16 + 16 + 64 + 16);
    let got = (matmul(&x, &y) * 2.0 + 1.0).compute::<f64>().unwrap();
    assert_eq!(got, (a.dot(&a) * 2.0 + 1.0).into_dyn());
}

#[test]
fn vectors_dot_outer_trace_eye_and_triangles() {
    let a = ints(6, 5, 7);
    let v = Array1::from_iter((0..5).map(|i| i as f64 - 2.0));
    let x = from_ndarray(&a, vec![4, 2]);
    let u = from_ndarray(&v, 3);
    assert_eq!(x.dot(&u).compute::<f64>().unwrap(), a.dot(&v).into_dyn());
    assert_eq!(matmul(&u, &u).compute::<f64>().unwrap()[[]], v.dot(&v));
    let w = Array1::from_iter((0..6).map(|i| i as f64));
    assert_eq!(
        matmul(&from_ndarray(&w, 4), &x).compute::<f64>().unwrap(),
        w.dot(&a).into_dyn()
    );
    let o = outer(&u, &from_ndarray(&w, 2)).compute::<f64>().unwrap();
    assert_eq!(
        o,
        ArrayD::from_shape_fn(IxDyn(&[5, 6]), |ix| v[ix[0]] * w[ix[1]])
    );
    let sq = ints(7, 7, 3);
    let s = from_ndarray(&sq, 3);
    assert_eq!(s.trace().compute::<f64>().unwrap()[[]], sq.diag().sum());
    assert_eq!(
        eye(5, 2).compute::<f64>().unwrap(),
        Array2::<f64>::eye(5).into_dyn()
    );
    for k in [-2i64, 0, 3] {
        let lower = ArrayD::from_shape_fn(IxDyn(&[7, 7]), |ix| {
            if ix[1] as i64 - ix[0] as i64 <= k {
                sq[[ix[0], ix[1]]]
            } else {
                0.0
            }
        });
        let upper = ArrayD::from_shape_fn(IxDyn(&[7, 7]), |ix| {
            if ix[1] as i64 - ix[0] as i64 >= k {
                sq[[ix[0], ix[1]]]
            } else {
                0.0
            }
        });
        assert_eq!(s.tril(k).compute::<f64>().unwrap(), lower);
        assert_eq!(s.triu(k).compute::<f64>().unwrap(), upper);
    }
    // matmul with the identity, and refusals.
    assert_eq!(
        matmul(&s, &eye(7, 3)).compute::<f64>().unwrap(),
        sq.clone().into_dyn()
    );
    assert!(matmul(&x, &x).check().is_err());
    assert!(matmul(&x.gt(0.0), &u.gt(0.0)).check().is_err());
    let c = x.astype(DType::C128) * accel::Complex64::new(0.0, 1.0);
    let cc = matmul(&c, &c.transpose())
        .compute::<accel::Complex64>()
        .unwrap();
    let want = a.dot(&a.t()).mapv(|v| -v);
    for (g, w) in cc.iter().zip(want.iter()) {
        assert_eq!((g.re, g.im), (*w, 0.0));
    }
}
