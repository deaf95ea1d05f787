//! persist on the embedded client: the result is kept in memory and later
//! expressions start from it (the persisted computation is not in their plans).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::sync::Arc;

use accel::{Client, Rng};
use accel_core::exec::run_task;
use accel_core::plan::{ChunkKey, StageId};

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
        // The 16 kept chunks, nothing generated or recomputed.
        assert_eq!(plan.stages[0].kind_name(), "persisted");
        assert_eq!(plan.stages[0].task_count(), 16);
        assert!(plan.stages.iter().all(|s| !s.label.contains("uniform")));
    }
}

#[test]
fn kept_chunks_are_handed_over_not_copied() {
    let local = Client::local();
    let x = Rng::new(5).random(&[300, 200], vec![100, 100]);
    let p = local.persist(&x).unwrap();
    let plan = (&p + 1.0).plan().unwrap().plan;
    assert_eq!(plan.stages[0].kind_name(), "persisted");
    let key = |chunk| ChunkKey {
        stage: StageId(0),
        chunk,
    };
    let mut seen = Vec::new();
    for c in 0..6 {
        let a = run_task(&plan, key(c), &[]).unwrap();
        let b = run_task(&plan, key(c), &[]).unwrap();
        // Both are the kept chunk itself.
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.shape, vec![100, 100]);
        seen.push(a);
    }
    let whole = local.compute::<f64>(&x).unwrap();
    for (c, chunk) in seen.iter().enumerate() {
        let (r0, c0) = (c / 2 * 100, c % 2 * 100);
        let want = whole.slice(ndarray::s![r0..r0 + 100, c0..c0 + 100]);
        let accel_core::Buffer::F64(got) = chunk.data().unwrap() else {
            panic!("a float64 chunk expected");
        };
        assert!(
            want.iter()
                .zip(got)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
    }
    // A chunk number past the grid is an error, not a panic.
    assert!(run_task(&plan, key(6), &[]).is_err());
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

#[test]
fn any_array_persists_and_computes_as_the_original() {
    let local = Client::local();
    let x = Rng::new(11).random(&[90, 60], vec![40, 25]);
    let five: [(&[i64], f64); 4] = [
        (&[1, 0], 0.25),
        (&[-1, 0], 0.25),
        (&[0, 1], 0.25),
        (&[0, -1], 0.25),
    ];
    let cases: Vec<accel::Array> = vec![
        x.sum(),
        x.sum_axis(1),
        x.rechunk(vec![30, 60]),
        x.gt(0.5),
        x.iterate(7, |t| t.stencil(&five, accel::Boundary::Fixed)),
    ];
    for a in cases {
        let kept = local.persist(&a).unwrap();
        assert_eq!(
            local.run(&[&kept]).unwrap().outputs,
            local.run(&[&a]).unwrap().outputs
        );
        let twice = |v: &accel::Array| v.astype(accel::DType::F64) * 2.0;
        assert_eq!(
            local.run(&[&twice(&kept)]).unwrap().outputs,
            local.run(&[&twice(&a)]).unwrap().outputs
        );
    }
}
