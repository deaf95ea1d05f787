//! Random expression trees over random shapes, broadcasts and chunkings,
//! compared with a plain ndarray evaluation of the same expression. Leaves
//! are chunked alike or independently, and some are views (flipped,
//! transposed, strided, concatenated): any chunking combines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use accel::{Array, DType, concatenate, from_ndarray, maximum, minimum, where_};
use ndarray::{ArrayD, Axis, IxDyn, Slice, Zip};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum E {
    Leaf(usize),
    Const(f64),
    Neg(Box<E>),
    Abs(Box<E>),
    Sqrt(Box<E>),
    Sin(Box<E>),
    Tanh(Box<E>),
    Exp(Box<E>),
    Square(Box<E>),
    Add(Box<E>, Box<E>),
    Sub(Box<E>, Box<E>),
    Mul(Box<E>, Box<E>),
    Div(Box<E>, Box<E>),
    Min(Box<E>, Box<E>),
    Max(Box<E>, Box<E>),
    WhereGt(Box<E>, Box<E>, Box<E>, Box<E>),
}

fn expr(leaves: usize) -> impl Strategy<Value = E> {
    let leaf = prop_oneof![
        4 => (0..leaves).prop_map(E::Leaf),
        1 => (-3.0f64..3.0).prop_map(E::Const),
    ];
    leaf.prop_recursive(5, 40, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|a| E::Neg(Box::new(a))),
            inner.clone().prop_map(|a| E::Abs(Box::new(a))),
            inner.clone().prop_map(|a| E::Sqrt(Box::new(a))),
            inner.clone().prop_map(|a| E::Sin(Box::new(a))),
            inner.clone().prop_map(|a| E::Tanh(Box::new(a))),
            inner.clone().prop_map(|a| E::Exp(Box::new(a))),
            inner.clone().prop_map(|a| E::Square(Box::new(a))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| E::Add(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| E::Sub(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| E::Mul(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| E::Div(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| E::Min(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| E::Max(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone(), inner.clone(), inner.clone()).prop_map(
                |(a, b, c, d)| E::WhereGt(Box::new(a), Box::new(b), Box::new(c), Box::new(d))
            ),
        ]
    })
}

/// Bounded values keep exp() finite; sqrt takes |x|; division by values near zero
/// is avoided by dividing by (1 + |x|).
fn build(e: &E, leaves: &[Array]) -> Array {
    let b = |x: &E| build(x, leaves);
    match e {
        E::Leaf(i) => leaves[*i].clone(),
        E::Const(c) => accel::full(&[], *c, "auto"),
        E::Neg(a) => -b(a),
        E::Abs(a) => b(a).abs(),
        E::Sqrt(a) => b(a).abs().sqrt(),
        E::Sin(a) => b(a).sin(),
        E::Tanh(a) => b(a).tanh(),
        E::Exp(a) => b(a).tanh().exp(),
        E::Square(a) => b(a).tanh().powi(2),
        E::Add(x, y) => b(x) + b(y),
        E::Sub(x, y) => b(x) - b(y),
        E::Mul(x, y) => b(x).tanh() * b(y).tanh(),
        E::Div(x, y) => b(x) / (b(y).abs() + 1.0),
        E::Min(x, y) => minimum(b(x), b(y)),
        E::Max(x, y) => maximum(b(x), b(y)),
        E::WhereGt(p, q, x, y) => where_(&b(p).gt(b(q)), b(x), b(y)),
    }
}

/// The same expression on full-size ndarray arrays (leaves pre-broadcast).
fn reference(e: &E, leaves: &[ArrayD<f64>], shape: &[usize]) -> ArrayD<f64> {
    let r = |x: &E| reference(x, leaves, shape);
    let zip2 = |x: ArrayD<f64>, y: ArrayD<f64>, f: fn(f64, f64) -> f64| {
        let mut out = x.clone();
        Zip::from(&mut out)
            .and(&x)
            .and(&y)
            .for_each(|o, &a, &b| *o = f(a, b));
        out
    };
    match e {
        E::Leaf(i) => leaves[*i].clone(),
        E::Const(c) => ArrayD::from_elem(IxDyn(shape), *c),
        E::Neg(a) => r(a).mapv(|v| -v),
        E::Abs(a) => r(a).mapv(f64::abs),
        E::Sqrt(a) => r(a).mapv(|v| v.abs().sqrt()),
        E::Sin(a) => r(a).mapv(f64::sin),
        E::Tanh(a) => r(a).mapv(f64::tanh),
        E::Exp(a) => r(a).mapv(|v| v.tanh().exp()),
        E::Square(a) => r(a).mapv(|v| v.tanh() * v.tanh()),
        E::Add(x, y) => zip2(r(x), r(y), |a, b| a + b),
        E::Sub(x, y) => zip2(r(x), r(y), |a, b| a - b),
        E::Mul(x, y) => zip2(r(x), r(y), |a, b| a.tanh() * b.tanh()),
        E::Div(x, y) => zip2(r(x), r(y), |a, b| a / (b.abs() + 1.0)),
        E::Min(x, y) => zip2(r(x), r(y), f64::min),
        E::Max(x, y) => zip2(r(x), r(y), f64::max),
        E::WhereGt(p, q, x, y) => {
            let (p, q, x, y) = (r(p), r(q), r(x), r(y));
            let mut out = x.clone();
            Zip::from(&mut out)
                .and(&p)
                .and(&q)
                .and(&y)
                .for_each(|o, &p, &q, &y| {
                    if p <= q {
                        *o = y
                    }
                });
            out
        }
    }
}

/// One leaf: leading axes dropped, which axes it keeps (a dropped axis has
/// length 1 there), integer or not, its own chunk sizes (or the case's), and
/// how it is built (see [`leaf_array`]).
#[derive(Clone, Debug)]
struct LeafSpec {
    skip: usize,
    keep: Vec<bool>,
    int: bool,
    own_chunks: Option<Vec<usize>>,
    view: u8,
}

/// Output shape, per-axis chunk sizes, the leaves, a seed.
type Case = (Vec<usize>, Vec<usize>, Vec<LeafSpec>, u64);

fn case() -> impl Strategy<Value = Case> {
    (1usize..=3).prop_flat_map(|nd| {
        let leaf = (
            0..=nd,
            prop::collection::vec(any::<bool>(), nd),
            any::<bool>(),
            prop::option::of(prop::collection::vec(1usize..=5, nd)),
            0u8..5,
        )
            .prop_map(|(skip, keep, int, own_chunks, view)| LeafSpec {
                skip,
                keep,
                int,
                own_chunks,
                view,
            });
        (
            prop::collection::vec(1usize..=7, nd),
            prop::collection::vec(1usize..=4, nd),
            prop::collection::vec(leaf, 1..=3),
            any::<u64>(),
        )
    })
}

/// An accel array equal to `data`, built as `view` says: 0 directly; 1 the
/// flip of flipped data; 2 the transpose of transposed data; 3 every other
/// element of a twice-as-long array; 4 two pieces concatenated, each chunked
/// its own way. Views change the chunk grid the expression sees.
fn leaf_array(data: &ArrayD<f64>, chunks: &[usize], view: u8, int: bool) -> Array {
    let make = |d: &ArrayD<f64>, c: Vec<usize>| {
        if int {
            from_ndarray(&d.mapv(|v| v as i32), c)
        } else {
            from_ndarray(d, c)
        }
    };
    let nd = data.ndim();
    let last = nd.saturating_sub(1);
    let n = data.shape().get(last).copied().unwrap_or(1);
    match view {
        1 if nd > 0 => {
            let mut f = data.clone();
            f.invert_axis(Axis(last));
            make(&f, chunks.to_vec()).flip(last as isize)
        }
        2 if nd > 1 => {
            let t = data.clone().reversed_axes();
            let c: Vec<usize> = chunks.iter().rev().copied().collect();
            make(&t.as_standard_layout().to_owned(), c).transpose()
        }
        3 if nd > 0 => {
            let mut shape = data.shape().to_vec();
            shape[last] *= 2;
            let wide = ArrayD::from_shape_fn(IxDyn(&shape), |ix| {
                let mut i = ndarray::Dimension::slice(&ix).to_vec();
                if i[last] % 2 == 0 {
                    i[last] /= 2;
                    data[IxDyn(&i)]
                } else {
                    f64::NAN
                }
            });
            let full_axis = ndarray::SliceInfoElem::Slice {
                start: 0,
                end: None,
                step: 1,
            };
            let mut info = vec![full_axis; nd];
            info[last] = ndarray::SliceInfoElem::Slice {
                start: 0,
                end: None,
                step: 2,
            };
            make(&wide, chunks.to_vec()).slice(info)
        }
        4 if nd > 0 && n >= 2 => {
            let p = n / 2;
            let a = data.slice_axis(Axis(last), Slice::from(..p)).to_owned();
            let b = data.slice_axis(Axis(last), Slice::from(p..)).to_owned();
            let mut cb = chunks.to_vec();
            cb[last] = cb[last] % 3 + 1;
            concatenate(&[&make(&a, chunks.to_vec()), &make(&b, cb)], last)
        }
        _ => make(data, chunks.to_vec()),
    }
}

fn leaf_data(shape: &[usize], seed: u64) -> ArrayD<f64> {
    let mut s = seed | 1;
    ArrayD::from_shape_fn(IxDyn(shape), |_| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % 2000) as f64 / 500.0 - 2.0
    })
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0) * 64.0
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn elementwise_trees_match_ndarray((shape, chunk, leaf_specs, seed) in case(), tree in expr(3)) {
        let nd = shape.len();
        let mut arrays = Vec::new();
        let mut full = Vec::new();
        for (k, spec) in leaf_specs.iter().enumerate() {
            let lshape: Vec<usize> = (0..nd).map(|d| if spec.keep[d] { shape[d] } else { 1 }).collect();
            let mut data = leaf_data(&lshape, seed.wrapping_add(k as u64 * 7919));
            if spec.int {
                // Integer leaves: i32 arithmetic stays exact and promotes like NumPy.
                data.mapv_inplace(|v| (v * 3.0).round());
            }
            // Drop some leading axes of length 1 (NumPy aligns trailing axes).
            let lead = (0..spec.skip).take_while(|&d| lshape[d] == 1).count();
            let trimmed = data.clone().into_shape_with_order(IxDyn(&lshape[lead..])).unwrap();
            let sizes = spec.own_chunks.as_ref().unwrap_or(&chunk);
            let chunks: Vec<usize> = (lead..nd).map(|d| if lshape[d] == 1 { 1 } else { sizes[d] }).collect();
            arrays.push(leaf_array(&trimmed, &chunks, spec.view, spec.int));
            full.push(data.broadcast(IxDyn(&shape)).unwrap().to_owned());
        }
        let leaves = leaf_specs.len();
        let tree = clamp_leaves(&tree, leaves);
        let got_arr = build(&tree, &arrays);
        let want = reference(&tree, &full, &shape);
        let got_shape = got_arr.shape().unwrap();
        // Leaves that all broadcast along an axis give a smaller result (NumPy's rule).
        let got_arr = got_arr.astype(DType::F64);
        let got = got_arr.compute::<f64>().unwrap();
        let got = if got_shape != shape { got.broadcast(IxDyn(&shape)).unwrap().to_owned() } else { got };
        prop_assert_eq!(got.shape(), want.shape());
        for (g, w) in got.iter().zip(want.iter()) {
            prop_assert!(close(*g, *w), "got {} want {} in {:?}", g, w, tree);
        }
        // Reductions of the same tree: sum and max along the last axis, and the mean of all.
        let ax = (nd - 1) as isize;
        if got_shape == shape {
            let s = got_arr.sum_axis(ax).compute::<f64>().unwrap();
            let ws = want.sum_axis(ndarray::Axis(nd - 1));
            for (g, w) in s.iter().zip(ws.iter()) {
                prop_assert!((g - w).abs() <= 1e-9 * w.abs().max(1.0), "sum {} vs {}", g, w);
            }
            let m = got_arr.max_axis(ax).compute::<f64>().unwrap();
            let wm = want.fold_axis(ndarray::Axis(nd - 1), f64::NEG_INFINITY, |a, &b| a.max(b));
            for (g, w) in m.iter().zip(wm.iter()) {
                prop_assert!(close(*g, *w), "max {} vs {}", g, w);
            }
            let mean = got_arr.mean().compute::<f64>().unwrap()[[]];
            let wmean = want.mean().unwrap();
            prop_assert!((mean - wmean).abs() <= 1e-9 * wmean.abs().max(1.0));
        }
    }

    #[test]
    fn integer_ops_are_exact(n in 1usize..200, chunk in 1usize..50, seed in any::<u64>(), k in 1i64..9) {
        let a0 = leaf_data(&[n], seed).mapv(|v| (v * 1000.0) as i64);
        let b0 = leaf_data(&[n], seed ^ 0xabc).mapv(|v| (v * 100.0) as i64);
        let a = from_ndarray(&a0, chunk);
        let b = from_ndarray(&b0, chunk);
        let e = (&a * &b - &a % k + minimum(&a, &b) * 3 - (-&b).abs()).astype(DType::I32);
        let got = e.compute::<i32>().unwrap();
        for i in 0..n {
            let (x, y) = (a0[[i]], b0[[i]]);
            let want = (x * y - x.rem_euclid(k) + x.min(y) * 3 - y.abs()) as i32;
            prop_assert_eq!(got[[i]], want);
        }
        let total = a.sum().compute::<i64>().unwrap()[[]];
        prop_assert_eq!(total, a0.sum());
    }
}

/// Leaf indices beyond the number of leaves of this case wrap around.
fn clamp_leaves(e: &E, n: usize) -> E {
    let c = |x: &E| Box::new(clamp_leaves(x, n));
    match e {
        E::Leaf(i) => E::Leaf(i % n),
        E::Const(v) => E::Const(*v),
        E::Neg(a) => E::Neg(c(a)),
        E::Abs(a) => E::Abs(c(a)),
        E::Sqrt(a) => E::Sqrt(c(a)),
        E::Sin(a) => E::Sin(c(a)),
        E::Tanh(a) => E::Tanh(c(a)),
        E::Exp(a) => E::Exp(c(a)),
        E::Square(a) => E::Square(c(a)),
        E::Add(x, y) => E::Add(c(x), c(y)),
        E::Sub(x, y) => E::Sub(c(x), c(y)),
        E::Mul(x, y) => E::Mul(c(x), c(y)),
        E::Div(x, y) => E::Div(c(x), c(y)),
        E::Min(x, y) => E::Min(c(x), c(y)),
        E::Max(x, y) => E::Max(c(x), c(y)),
        E::WhereGt(p, q, x, y) => E::WhereGt(c(p), c(q), c(x), c(y)),
    }
}
