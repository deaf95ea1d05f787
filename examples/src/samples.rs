//! Small expressions covering every kind of stage: the seed workloads, views,
//! concatenation, reshapes and reductions. Tests use them as sample plans.

use accel::{
    Array, Boundary, Complex64, DType, PadMode, ReduceOpts, arange, arctan2, concatenate, eye,
    from_ndarray, matmul_with, outer, s, stack, tensordot,
};

use crate::workloads::{fractal, heat, mag, pi};

pub fn arrays() -> Vec<Array> {
    let x = from_ndarray(
        &ndarray::Array2::<f64>::from_shape_fn((12, 10), |(i, j)| (i * 10 + j) as f64),
        [5, 4],
    );
    let n = 20;
    let t = arange(n * n, 7).reshape(&[n, n]).astype(DType::F64);
    vec![
        mag::build(1000, 100),
        fractal::build(30, 40, [10, 10]),
        fractal::build_kernel(30, 40, [10, 10]),
        pi::build(10_000, 1000, 3),
        &t + t.diag().tanh().sum(),
        x.slice(s![1..;2, ..;-1]).transpose().rechunk([3, 3]),
        concatenate(&[&x, &(&x * 2.0)], 0).reshape(&[240]).std(1),
        x.mean_axis(0),
        x.astype(DType::C128).powi(2).sum(),
        heat::build(30, 23, 7),
        (&x * 0.5 + 1.0)
            .stencil(&heat::FIVE_POINT, Boundary::Periodic)
            .iterate(3, |t| {
                t.stencil(&[(&[-1, 1], 0.7), (&[2, 0], 0.3)], Boundary::Reflect)
            })
            .sqrt(),
        x.map_overlap([Boundary::Constant(-1.0), Boundary::Nearest], |n| {
            n.at(&[-6, 0]) * n.at(&[0, 5]) - n.center()
        }),
        // The wider NumPy surface: ufuncs, complex functions, rearrangements,
        // NaN-aware and arg reductions.
        (&x / 119.0).arcsin() + arctan2(&x, 3.0) + x.log1p().round() + x.floor_divide(7.0),
        (&x.astype(DType::C128) * Complex64::new(0.1, -0.2))
            .sqrt()
            .exp(),
        stack(&[&x.flip(1), &x.roll(3, 0)], 0).pad(&[(0, 0), (2, 1), (1, 1)], PadMode::Reflect),
        x.slice(s![0..1, ..])
            .broadcast_to(&[3, 12, 10])
            .expand_dims(0)
            .squeeze(),
        accel::where_(&(&x % 7.0).equal(0.0), f64::NAN, &x).nanvar_with(1, &ReduceOpts::axis(0)),
        x.argmax_axis(1) + (&x * -1.0).argmin(),
        // Linear algebra: blocked products summed in a tree, triangles, identity.
        matmul_with(&x.transpose(), &x.rechunk([3, 7]), 2).tril(1) + eye(10, 4),
        tensordot(&x, &x, &[0], &[0]).trace() + outer(&x.diag(), &x.diag()).sum(),
        // Blocked scans: chunk scans, a chain of carries, their application.
        x.cumsum(0) - (&x * 0.01).cumprod(-1),
    ]
}
