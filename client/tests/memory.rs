//! The plan-time memory projection: per-task peaks of each stage, and the
//! refusal of a plan whose task cannot fit, with chunks that would.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use accel::{Boundary, Client, DType, from_ndarray};

#[test]
fn a_task_needs_its_inputs_its_output_and_its_working_space() {
    let x = from_ndarray(&ndarray::Array2::<f64>::zeros((400, 300)), vec![100, 100]);
    let y = (&x * 2.0).sin();
    let m = y.plan().unwrap().memory();
    // The source stage makes 100×100 f64 chunks; the map reads one and makes one.
    assert_eq!(m.len(), 2);
    assert_eq!((m[0].inputs, m[0].output), (0, 80_000));
    assert_eq!(
        (m[1].inputs, m[1].output, m[1].scratch),
        (80_000, 80_000, 0)
    );
    // A stencil holds its fields in the chunk grown by its halo.
    let five: [(&[i64], f64); 4] = [
        (&[1, 0], 0.25),
        (&[-1, 0], 0.25),
        (&[0, 1], 0.25),
        (&[0, -1], 0.25),
    ];
    let s = x.iterate(3, |t| t.stencil(&five, Boundary::Periodic));
    // Its own chunks, not row bands (see `Client::with_loop_bands`).
    let m = Client::local()
        .with_loop_bands(false)
        .plan(&[&s])
        .unwrap()
        .memory();
    let st = m.last().unwrap();
    assert!(st.scratch >= 106 * 106 * 8, "{st:?}");
    assert!(
        st.inputs > 80_000,
        "the halo strips of the neighbours: {st:?}"
    );
}

#[test]
fn a_plan_whose_task_cannot_fit_in_this_machine_is_refused_before_it_runs() {
    // One chunk of 2 TiB: nothing is allocated, the plan is refused.
    let huge = accel::zeros(&[1 << 38], DType::F64, vec![1 << 38]) + 1.0;
    let err = Client::local()
        .compute::<f64>(&huge)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the plan cannot fit")
            && err.contains("stage 0")
            && err.contains("2.0 TiB")
            && err.contains("this machine's memory")
            && err.contains("chunks of about"),
        "{err}"
    );
    let ok = accel::zeros(&[1 << 20], DType::F64, vec![1 << 16]) + 1.0;
    assert_eq!(
        Client::local().compute::<f64>(&ok.sum()).unwrap()[[]],
        (1 << 20) as f64
    );
}
