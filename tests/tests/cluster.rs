//! Real processes on 127.0.0.1: results equal the embedded ones, several
//! clients at once, workers joining mid-job, refusals. (Dying workers:
//! resilience.rs and chaos.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::time::{Duration, Instant};

use accel::{Client, DType, Rng};
use accel_e2e::Cluster;
use accel_proto::{PROTOCOL_VERSION, pb};

#[test]
fn every_seed_workload_matches_the_embedded_result() {
    let cluster = Cluster::start(2).unwrap();
    let remote = cluster.client().unwrap();
    let local = Client::local();
    for a in accel_examples::samples::arrays() {
        let r = remote.run(&[&a]).unwrap();
        let l = local.run(&[&a]).unwrap();
        assert_eq!(r.outputs, l.outputs);
    }
    // The examples themselves, checked against their scalar references.
    let out = std::env::temp_dir().join(format!("accel-e2e-out-{}", std::process::id()));
    let mut args = accel_examples::Args::parse(
        ["--size", "small", "--out", &out.display().to_string()].map(String::from),
    )
    .unwrap();
    args.client = cluster.client().unwrap();
    for (name, run) in accel_examples::workloads::ALL {
        run(&args).unwrap_or_else(|e| panic!("{name} on the cluster: {e}"));
    }
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn two_clients_submit_at_once() {
    let cluster = Cluster::start(2).unwrap();
    let handles: Vec<_> = (0..2)
        .map(|k| {
            let (address, security) = (cluster.address.clone(), cluster.security());
            std::thread::spawn(move || {
                let client = Client::connect_with(&address, &security).unwrap();
                let x = accel::arange(200_000, 10_000).astype(DType::F64) * (k + 1) as f64;
                for _ in 0..3 {
                    let s = client.compute::<f64>(&x.sum()).unwrap()[[]];
                    assert_eq!(s, (k + 1) as f64 * 199_999.0 * 200_000.0 / 2.0);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// A job of many heavy tasks.
fn long_job() -> accel::Array {
    let mut rng = Rng::new(5);
    let n = 40_000_000;
    let x = rng.random(&[n], n / 200);
    (x.sin().exp().powi(3) + 1.0).log().sum()
}

#[test]
fn a_worker_that_joins_mid_job_receives_work() {
    let mut cluster = Cluster::start(1).unwrap();
    let client = cluster.client().unwrap();
    let job = std::thread::spawn(move || client.compute::<f64>(&long_job()));
    cluster
        .wait_for("the first worker to start", Duration::from_secs(20), || {
            cluster.assignments(0) > 0
        })
        .unwrap();
    let k = cluster.add_worker().unwrap();
    let result = job.join().unwrap().unwrap();
    assert!(result[[]].is_finite());
    assert!(cluster.assignments(k) > 0, "the new worker got no task");
}

#[test]
fn an_unreachable_scheduler_is_an_error_within_seconds() {
    let start = Instant::now();
    let err = Client::connect("http://127.0.0.1:1")
        .unwrap_err()
        .to_string();
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(8));
    assert!(Client::connect("not a url").is_err());
}

fn raw_submit(cluster: &Cluster, version: u32, plan: pb::Plan) -> tonic::Status {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = cluster.raw_scheduler().await.unwrap();
        let req = pb::SubmitRequest {
            hello: Some(pb::Hello {
                protocol_version: version,
                peer: "test".into(),
            }),
            plan: Some(plan),
            persisted_keys: Vec::new(),
        };
        c.jobs
            .submit(req)
            .await
            .expect_err("the submission must be refused")
    })
}

#[test]
fn other_protocol_versions_and_invalid_plans_are_refused() {
    let cluster = Cluster::start(0).unwrap();
    let plan = accel_proto::convert::plan_to(&accel::arange(10, 5).sum().plan().unwrap().plan);
    let status = raw_submit(&cluster, PROTOCOL_VERSION + 7, plan.clone());
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    let msg = status.message();
    assert!(
        msg.contains(&(PROTOCOL_VERSION + 7).to_string())
            && msg.contains(&PROTOCOL_VERSION.to_string()),
        "{msg}"
    );
    let mut bad = plan;
    bad.outputs.push(42);
    let status = raw_submit(&cluster, PROTOCOL_VERSION, bad);
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("refused plan"),
        "{}",
        status.message()
    );
}

#[test]
fn results_on_a_worker_the_client_cannot_reach_are_a_clear_error() {
    let mut cluster = Cluster::start(0).unwrap();
    // The worker tells the scheduler its chunks are at a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let advertised = format!("127.0.0.1:{port}");
    cluster
        .add_worker_with(&["--advertise", &advertised])
        .unwrap();
    cluster.wait_for_workers(1).unwrap();
    let client = cluster.client().unwrap();
    let x = accel::arange(1_000, 100).astype(DType::F64) * 2.0;
    let e = client.compute::<f64>(&x).unwrap_err().to_string();
    assert!(
        e.contains(&format!("cannot reach the worker at {advertised}"))
            && e.contains("--advertise"),
        "{e}"
    );
}
