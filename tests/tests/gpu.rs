//! A cluster of one CPU worker and one GPU worker (Mesa's lavapipe, a Vulkan
//! device on the CPU): fused kernels with a GPU form land on the GPU worker,
//! the rest are placed by load, and every result equals the embedded CPU's
//! (within the documented bound for functions the CPU takes from the C library).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use accel::{Client, DType, DynArray};
use accel_e2e::Cluster;

/// The metric `name` of the worker serving metrics at `at`.
fn metric(cluster: &Cluster, at: &str, name: &str) -> f64 {
    cluster.worker_metric(at, name).unwrap()
}

/// `got` is `want` bit for bit, or (floats) within a few ulps of the
/// largest of them: the GPU's `log`, `arcsin`, `arctan2`, ... are within
/// 3 ulp of the C library's, which the CPU uses, and sums carry that on.
fn assert_within_bound(got: &DynArray, want: &DynArray) {
    fn close(g: f64, w: f64, eps: f64) -> bool {
        g.to_bits() == w.to_bits()
            || (g.is_nan() && w.is_nan())
            || (g - w).abs() <= 8.0 * eps * g.abs().max(w.abs())
    }
    assert_eq!(got.dtype(), want.dtype());
    match (got, want) {
        (DynArray::F64(g), DynArray::F64(w)) => {
            assert_eq!(g.shape(), w.shape());
            for (a, b) in g.iter().zip(w) {
                assert!(close(*a, *b, f64::EPSILON), "{a} against {b}");
            }
        }
        (DynArray::F32(g), DynArray::F32(w)) => {
            assert_eq!(g.shape(), w.shape());
            for (a, b) in g.iter().zip(w) {
                let eps = f64::from(f32::EPSILON);
                assert!(close(f64::from(*a), f64::from(*b), eps), "{a} against {b}");
            }
        }
        (DynArray::C128(g), DynArray::C128(w)) => {
            assert_eq!(g.shape(), w.shape());
            for (a, b) in g.iter().zip(w) {
                let ok = close(a.re, b.re, f64::EPSILON) && close(a.im, b.im, f64::EPSILON);
                assert!(ok, "{a} against {b}");
            }
        }
        _ => assert_eq!(got, want),
    }
}

#[test]
fn kernels_with_a_gpu_form_run_on_the_gpu_worker_and_agree_with_the_cpu() {
    let mut cluster = Cluster::start(0).unwrap();
    cluster
        .add_worker_with(&["--gpu", "none", "--metrics-port", "0"])
        .unwrap();
    cluster
        .add_worker_with(&["--gpu", "software", "--metrics-port", "0"])
        .unwrap();
    cluster.wait_for_workers(2).unwrap();
    let (cpu_at, gpu_at) = (
        cluster.worker_metrics_address(0).unwrap(),
        cluster.worker_metrics_address(1).unwrap(),
    );
    assert!(cluster.worker_log(1).contains("fused kernels run on a GPU"));
    let remote = cluster.client().unwrap().with_progress(false);
    let local = Client::local().with_progress(false);
    // Two fused kernels on two idle workers: both on the GPU worker.
    let x = accel::arange(200_000, 100_000).astype(DType::F64);
    let y = (&x * 2.5 + 1.0).sqrt() - &x / 3.0;
    assert_eq!(
        remote.run(&[&y]).unwrap().outputs,
        local.run(&[&y]).unwrap().outputs
    );
    assert_eq!(
        metric(&cluster, &gpu_at, "accel_worker_gpu_kernels_total"),
        2.0
    );
    assert_eq!(
        metric(&cluster, &gpu_at, "accel_worker_tasks_computed_total"),
        2.0
    );
    // Their chunks stayed on the GPU until the client fetched them: each
    // read back once.
    assert_eq!(
        metric(&cluster, &gpu_at, "accel_worker_gpu_read_backs_total"),
        2.0
    );
    assert_eq!(
        metric(&cluster, &cpu_at, "accel_worker_tasks_computed_total"),
        0.0
    );
    // Two the GPU sends back (an infinity under `sin` in each chunk) are
    // computed by the GPU worker's CPUs, with the CPU's values.
    let data = ndarray::Array1::from_iter((0..200_000).map(|k| match k % 100_000 {
        3 => f64::INFINITY,
        _ => k as f64 / 1e5,
    }));
    let e = accel::from_ndarray(&data, 100_000).sin();
    let (got, want) = (remote.run(&[&e]).unwrap(), local.run(&[&e]).unwrap());
    assert_within_bound(&got.outputs[0], &want.outputs[0]);
    assert_eq!(
        metric(&cluster, &gpu_at, "accel_worker_gpu_kernels_total"),
        2.0
    );
    assert_eq!(
        metric(&cluster, &gpu_at, "accel_worker_gpu_declined_total"),
        2.0
    );
    // Every seed workload gives the embedded CPU's result (within the
    // documented bound where the CPU takes a function from the C library).
    for a in accel_examples::samples::arrays() {
        let (got, want) = (remote.run(&[&a]).unwrap(), local.run(&[&a]).unwrap());
        for (g, w) in got.outputs.iter().zip(&want.outputs) {
            assert_within_bound(g, w);
        }
    }
    assert!(metric(&cluster, &gpu_at, "accel_worker_gpu_kernels_total") > 2.0);
    assert_eq!(
        metric(&cluster, &gpu_at, "accel_worker_gpu_failed_total"),
        0.0
    );
    // The heat plate's stencil tasks ran there, every fused step on the device.
    assert!(metric(&cluster, &gpu_at, "accel_worker_gpu_stencils_total") > 0.0);
    // Partial reductions folded there are among its kernels.
    assert!(
        metric(&cluster, &gpu_at, "accel_worker_gpu_folded_total")
            <= metric(&cluster, &gpu_at, "accel_worker_gpu_kernels_total")
    );
}

#[test]
fn a_worker_asked_for_a_gpu_it_lacks_exits_with_a_clear_error() {
    let mut cluster = Cluster::start(0).unwrap();
    let k = cluster.add_worker_with(&["--gpu", "99"]).unwrap();
    let status = cluster
        .wait_worker_exit(k, std::time::Duration::from_secs(30))
        .unwrap();
    assert!(!status.success());
    let log = cluster.worker_log(k);
    assert!(log.contains("--gpu: there is no GPU 99"), "{log}");
}

/// A GPU lost in the middle of a job loses no data: the chunks only it
/// held (a persisted array left in device memory) are reported missing by
/// the task that reads them, recomputed on the CPU, and the result is the
/// fault-free one.
#[test]
fn a_lost_gpu_loses_no_data() {
    let mut cluster = Cluster::start(0).unwrap();
    cluster
        .add_worker_with(&[
            "--gpu",
            "software",
            "--metrics-port",
            "0",
            "--fault-lose-gpu-on",
            "pow",
        ])
        .unwrap();
    cluster.wait_for_workers(1).unwrap();
    let at = cluster.worker_metrics_address(0).unwrap();
    let remote = cluster.client().unwrap().with_progress(false);
    let local = Client::local().with_progress(false);
    let y = |n| (accel::arange(n, n / 4).astype(DType::F64) * 2.5 + 1.0).sqrt();
    let kept = remote.persist(&y(200_000)).unwrap();
    assert_eq!(metric(&cluster, &at, "accel_worker_gpu_kernels_total"), 4.0);
    assert_eq!(
        metric(&cluster, &at, "accel_worker_gpu_read_backs_total"),
        0.0
    );
    assert!(metric(&cluster, &at, "accel_worker_gpu_device_only_bytes") >= 200_000.0 * 8.0);
    // A complex power of the kept array: its first task takes the GPU for
    // lost, so it and every later kernel run on the CPU.
    let power = |a: &accel::Array| {
        let z = (a / 1e3 + 1.0).astype(DType::C128);
        accel::power(&z, &z).re()
    };
    let got = remote.run(&[&power(&kept)]).unwrap().outputs;
    let want = local.run(&[&power(&y(200_000))]).unwrap().outputs;
    assert_eq!(got, want);
    let log = cluster.worker_log(0);
    assert!(log.contains("lost: every kernel runs on the CPU"), "{log}");
    assert!(log.contains("a chunk the GPU lost"), "{log}");
    // Nothing came back from the lost GPU, and the persisted array is
    // whole again (recomputed on the CPU): read twice, same values.
    assert_eq!(
        metric(&cluster, &at, "accel_worker_gpu_read_backs_total"),
        0.0
    );
    let again = remote.run(&[&power(&kept)]).unwrap().outputs;
    assert_eq!(again, want);
}
