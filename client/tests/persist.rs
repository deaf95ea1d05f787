//! persist on the embedded client: the result is kept in memory and later
//! expressions start from it (the persisted computation is not in their plans).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use accel::{Client, Rng};

#[test]
fn later_computations_start_from_the_kept_result() {
    let local = Client::local();
    let x = Rng::new(3).random(&[600, 400], vec![150, 100]).sin().exp();
    let p = local.persist(&x).unwrap();
    assert_eq!(p.shape().unwrap(), vec![600, 400]);
    for (y, same) in [
        ((&p * 2.0).sum_axis(0), (&x * 2.0).sum_axis(0)),
        ((&p - 1.0).max(), (&x - 1.0).max()),
    ] {
        let run = local.run(&[&y]).unwrap();
        assert_eq!(run.outputs, local.run(&[&same]).unwrap().outputs);
        let plan = &run.planned.plan;
        // 16 chunks cut from the kept result, nothing generated or recomputed.
        assert_eq!(plan.stages[0].kind_name(), "source");
        assert_eq!(plan.stages[0].task_count(), 16);
        assert!(plan.stages.iter().all(|s| !s.label.contains("uniform")));
    }
}

#[test]
fn from_owned_takes_the_array_and_matches_from_ndarray() {
    let a = ndarray::Array2::from_shape_fn((30, 20), |(i, j)| (i * 20 + j) as f64);
    let t = a.t().to_owned(); // not in standard layout
    let local = Client::local();
    for src in [a.clone(), t.clone()] {
        let want = local
            .run(&[&accel::from_ndarray(&src, vec![7, 6])])
            .unwrap()
            .outputs;
        let got = local
            .run(&[&accel::from_owned(src, vec![7, 6])])
            .unwrap()
            .outputs;
        assert_eq!(got, want);
    }
}
