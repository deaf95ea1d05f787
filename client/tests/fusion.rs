//! Golden fusion tests: the exact stages and task counts of each seed workload.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use accel::{Array, DType, arange, from_ndarray, full, ogrid, ones, where_};
use accel_examples::workloads::{fractal, inc25, mag, pi};

/// "kind×tasks" of every stage, e.g. ["map×10"].
fn stages(a: &Array) -> Vec<String> {
    let p = a.plan().unwrap();
    p.plan
        .stages
        .iter()
        .map(|s| format!("{}×{}", s.kind_name(), s.task_count()))
        .collect()
}

#[test]
fn inc25_is_one_task_per_chunk() {
    assert_eq!(
        stages(&inc25::chain(ones(&[10_000], DType::F64, 2_500), 25)),
        ["map×4"]
    );
    // Over data that cannot be folded, the 25 adds still fuse into one kernel.
    let data = from_ndarray(&ndarray::Array1::<f64>::zeros(10_000), 2_500);
    let y = inc25::chain(data, 25);
    assert_eq!(stages(&y), ["source×4", "map×4"]);
    let p = y.plan().unwrap();
    assert_eq!(p.tasks_unfused(), 4 * 26 + 25); // 25 scalar constants count once each
}

#[test]
fn mag_is_one_task_per_chunk() {
    assert_eq!(stages(&mag::build(1_000_000, 100_000)), ["map×10"]);
}

#[test]
fn fractal_is_twelve_tasks() {
    assert_eq!(stages(&fractal::build(160, 240, [54, 60])), ["map×12"]);
    let p = fractal::build(160, 240, [54, 60]).plan().unwrap();
    assert!(p.tasks_unfused() > 2000, "unfused {}", p.tasks_unfused());
    // The seed's per-pixel function with its early exit: one kernel too.
    assert_eq!(
        stages(&fractal::build_kernel(160, 240, [54, 60])),
        ["map×12"]
    );
}

#[test]
fn pi_fuses_generation_compare_and_partial_sum() {
    // 100 partial tasks (one per chunk) and a combine tree of fan-in 16 (7 + 1);
    // the scalar tail `* 4 / n` runs inside the last combine.
    assert_eq!(
        stages(&pi::build(1_000_000, 10_000, 1)),
        ["partial×100", "combine×7", "combine×1"]
    );
    // The same with keepdims, along an axis, and with a single chunk (no combine at all).
    let x = accel::from_ndarray(&ndarray::Array2::<f64>::ones((40, 30)), [10, 30]);
    let m = x.reduce(
        accel::ReduceOp::Sum,
        &accel::ReduceOpts::axis(0).keepdims(true),
    ) / 40.0
        + 1.0;
    assert_eq!(stages(&m), ["source×4", "partial×4", "combine×1"]);
    assert_eq!(
        m.compute::<f64>().unwrap(),
        ndarray::Array2::<f64>::from_elem((1, 30), 2.0).into_dyn()
    );
    let single = x.rechunk([40, 30]).sum().sqrt();
    assert_eq!(stages(&single), ["source×4", "remap×1", "partial×1"]);
    assert_eq!(single.compute::<f64>().unwrap()[[]], 1200f64.sqrt());
}

#[test]
fn trace_reads_the_diagonal_of_a_generated_array() {
    let n = 100;
    let a = arange(n * n, n * 25)
        .reshape(&[n, n])
        .rechunk([25, 25])
        .astype(DType::F64);
    let out = &a + a.diag().tanh().sum();
    // The diagonal of a generated array is itself generated: no materialized copy.
    assert_eq!(stages(&out), ["partial×4", "combine×1", "map×16"]);
}

#[test]
fn region_shared_by_two_consumers_is_materialized_once() {
    let x = from_ndarray(&ndarray::Array1::<f64>::zeros(100), 10);
    let a = (&x + 1.0).sin();
    let out = &a.sum() + &a;
    assert_eq!(
        stages(&out),
        ["source×10", "map×10", "partial×10", "combine×1", "map×10"]
    );
}

#[test]
fn where_chains_over_broadcast_grids_fuse() {
    let g = ogrid(&[(0.0, 1.0, 30), (0.0, 1.0, 40)], &[10, 20]);
    let f = full(&[30, 40], 0i32, [10, 20]);
    let out = where_(&(&g[0] + &g[1]).gt(1.0), 1, &f);
    assert_eq!(stages(&out), ["map×6"]);
}
