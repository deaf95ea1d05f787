//! A complex modulus compared with a constant (`abs(z) > 2`, the escape test
//! of a fractal) is computed only as far as the comparison needs: the
//! results must be those of comparing the full modulus (accel's own, which is
//! correctly rounded; std's `hypot` can be an ulp away from it).

#![allow(clippy::unwrap_used)]

use accel::{Complex64, from_ndarray};
use ndarray::Array1;

/// Points on, just off, inside and outside the circle of radius `r`, and
/// special values.
fn points(r: f64) -> Vec<Complex64> {
    let mut s = 0x853c_49e6_748f_ea9bu64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let nudge = |v: f64, k: i64| f64::from_bits((v.to_bits() as i64 + k) as u64);
    let mut z = Vec::new();
    for i in 0..4000 {
        let t = (next() >> 11) as f64 / (1u64 << 53) as f64 * std::f64::consts::TAU;
        let scale = [1.0, 0.5, 1.5, 1.0][i % 4];
        let (k, l) = ((next() % 7) as i64 - 3, (next() % 7) as i64 - 3);
        z.push(Complex64::new(
            nudge(r * scale * t.cos(), k),
            nudge(r * scale * t.sin(), l),
        ));
    }
    for v in [0.0, f64::NAN, f64::INFINITY, -f64::INFINITY, 1e300, r] {
        z.push(Complex64::new(v, 0.0));
        z.push(Complex64::new(r, v));
    }
    z
}

/// A comparison's name, the accel expression, and the same comparison in Rust.
type Check = (&'static str, accel::Array, fn(f64, f64) -> bool);

#[test]
fn comparing_a_modulus_with_a_constant_equals_comparing_the_modulus() {
    for r in [2.0, 0.75, 3e40] {
        let zs = points(r);
        let x = from_ndarray(&Array1::from(zs.clone()), 1000);
        // The modulus as the result of a computation: computed in full.
        let modulus = x.abs().compute::<f64>().unwrap();
        let modulus_ge = (x.powi(2) + &x).abs().compute::<f64>().unwrap();
        for (z, m) in zs.iter().zip(&modulus) {
            assert!(m.is_nan() || *m == z.norm() || (m - z.norm()).abs() <= 2.0 * f64::EPSILON * m);
        }
        let checks: [Check; 4] = [
            ("gt", x.abs().gt(r), |a, b| a > b),
            ("le", x.abs().le(r), |a, b| a <= b),
            ("eq", x.abs().equal(r), |a, b| a == b),
            ("ge", (x.powi(2) + &x).abs().ge(r), |a, b| a >= b),
        ];
        for (name, expr, op) in checks {
            let got = expr.compute::<bool>().unwrap();
            let want = if name == "ge" { &modulus_ge } else { &modulus };
            for (i, (g, &m)) in got.iter().zip(want).enumerate() {
                assert_eq!(*g, op(m, r), "{name} r={r}: z={}, |z|={m}", zs[i]);
            }
        }
        // The modulus itself, read by more than the comparison, is exact.
        let m = x.abs();
        let both = m.gt(r) & m.lt(2.0 * r);
        let got = both.compute::<bool>().unwrap();
        for (g, &m) in got.iter().zip(&modulus) {
            assert_eq!(*g, m > r && m < 2.0 * r);
        }
    }
}
