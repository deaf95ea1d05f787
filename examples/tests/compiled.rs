#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic
//! Whole programs with compiled kernels against the same programs run by the
//! interpreter alone: the sample arrays (every op kind, chunkings, views,
//! reductions, stencils, scans, products) and the seed workloads' graphs must
//! give identical results. One test in its own binary: it switches
//! compilation off and on for the whole process.

use accel::Client;
use accel_core::kernel::jit;

#[test]
fn compiled_and_interpreted_programs_agree() {
    let mut arrays = accel_examples::samples::arrays();
    arrays.push(accel_examples::workloads::heat::build(60, 300, 20));
    arrays.push(accel_examples::workloads::fractal::build(60, 90, [20, 30]));
    let client = Client::local().with_progress(false);
    let run = |on: bool| {
        jit::set_enabled(on);
        let outs: Vec<_> = arrays
            .iter()
            .map(|a| client.run(&[a]).map(|r| r.outputs))
            .collect();
        jit::set_enabled(true);
        outs
    };
    let before = jit::compiled_count();
    let compiled = run(true);
    assert!(jit::compiled_count() > before, "some kernels compiled");
    let interpreted = run(false);
    for (i, (c, r)) in compiled.iter().zip(&interpreted).enumerate() {
        match (c, r) {
            (Ok(c), Ok(r)) => assert!(c == r, "sample {i}: compiled and interpreted differ"),
            (Err(c), Err(r)) => assert_eq!(c.to_string(), r.to_string(), "sample {i}"),
            _ => panic!("sample {i}: {:?} against {:?}", c.is_ok(), r.is_ok()),
        }
    }
}
