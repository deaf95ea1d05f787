//! map_blocks on a cluster: functions registered by name in a worker binary
//! built with the worker library (`worker/examples/custom_worker.rs`) run
//! there and nowhere else, with results equal to ndarray's; closures, and
//! names no worker offers, are clear errors that leave the cluster serving.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::time::Duration;

use accel::{Blocks, MapBlocks, from_ndarray, map_blocks};
use accel_e2e::Cluster;
use ndarray::{Array2, Axis};

fn host(rows: usize, cols: usize) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        ((i * 37 + j * 11) % 29) as f64 * 0.5 - j as f64
    })
}

/// Lines of worker `k`'s log saying a task of stage `stage` finished.
fn finished_on(cluster: &Cluster, k: usize, stage: usize) -> usize {
    let tag = format!(" stage={stage} ");
    cluster
        .worker_log(k)
        .lines()
        .filter(|l| l.contains("task finished") && l.contains(&tag))
        .count()
}

#[test]
fn named_functions_run_on_the_workers_that_offer_them() {
    let mut cluster = Cluster::start(1).unwrap();
    cluster
        .add_worker_program("examples/custom_worker", &[])
        .unwrap();
    cluster.wait_for_workers(2).unwrap();
    let remote = cluster.client().unwrap();
    let (ha, hb) = (host(60, 40), host(60, 40).mapv(|v| v * 0.5 + 2.0));
    let a = from_ndarray(&ha, [15, 20]);
    let b = from_ndarray(&hb, [20, 40]);
    // Elementwise work before (fused into its own stage) and after.
    let y = &MapBlocks::named("scale_add")
        .arg(3.0)
        .apply(&[&(&a + 1.0), &b])
        * 2.0;
    let planned = remote.plan(&[&y]).unwrap();
    let stage = planned
        .plan
        .stages
        .iter()
        .position(|s| s.kind_name() == "map_blocks")
        .unwrap();
    let got = remote.compute::<f64>(&y).unwrap();
    let want = (((&ha + 1.0) * 3.0 + &hb) * 2.0).into_dyn();
    assert_eq!(got, want);
    assert_eq!(
        finished_on(&cluster, 1, stage),
        8,
        "every block ran on the custom worker"
    );
    assert_eq!(
        finished_on(&cluster, 0, stage),
        0,
        "the plain worker lacks the function"
    );

    // A function with other output blocks: one mean per block.
    let means = MapBlocks::named("block_mean")
        .chunks(vec![vec![1; 4], vec![1; 2]])
        .apply(&[&a]);
    let got = remote.compute::<f64>(&means).unwrap();
    for i in 0..4 {
        for j in 0..2 {
            let block = ha.slice(ndarray::s![i * 15..(i + 1) * 15, j * 20..(j + 1) * 20]);
            assert!((got[[i, j]] - block.mean().unwrap()).abs() < 1e-12);
        }
    }
    // Rows sorted (blocks span whole rows).
    let rows = from_ndarray(&ha, [7, 40]);
    let got = remote
        .compute::<f64>(&MapBlocks::named("sort_rows").apply(&[&rows]))
        .unwrap();
    let mut want = ha.clone();
    for mut row in want.axis_iter_mut(Axis(0)) {
        let mut v = row.to_vec();
        v.sort_by(f64::total_cmp);
        row.assign(&ndarray::Array1::from(v));
    }
    assert_eq!(got, want.into_dyn());

    // Closures cannot travel; names nobody offers cannot run. Neither stops the cluster.
    let closure = map_blocks(&[&a], |b: &Blocks<'_>| {
        b.input::<f64>(0).map(|v| v.to_owned())
    });
    let err = remote.compute::<f64>(&closure).unwrap_err().to_string();
    assert!(err.contains("closure runs only embedded"), "{err}");
    let unknown = MapBlocks::named("nope").apply(&[&a]);
    let err = remote.compute::<f64>(&unknown).unwrap_err().to_string();
    assert!(
        err.contains("no worker offers the map_blocks function 'nope'"),
        "{err}"
    );
    let err = remote
        .compute::<f64>(&MapBlocks::named("scale_add").apply(&[&a, &b]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("argument 0 asked for"), "{err}");
    assert_eq!(
        remote.compute::<f64>(&(&a * 1.0)).unwrap(),
        ha.clone().into_dyn()
    );

    // The only worker offering it is gone: a job calling it fails clearly
    // instead of waiting forever; other jobs still run.
    cluster.kill_worker(1).unwrap();
    cluster
        .wait_for(
            "the scheduler to drop the custom worker",
            Duration::from_secs(20),
            || cluster.scheduler_log().contains("worker stream closed"),
        )
        .unwrap();
    let err = remote
        .compute::<f64>(&MapBlocks::named("scale_add").arg(1.0).apply(&[&a, &b]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no worker offers the map_blocks function 'scale_add'"),
        "{err}"
    );
    assert_eq!(remote.compute::<f64>(&(&a * 1.0)).unwrap(), ha.into_dyn());
}
