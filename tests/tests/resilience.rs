//! Real processes on 127.0.0.1, hurt on purpose: workers killed (-9), frozen
//! past the heartbeat timeout, stopped politely, killed by a poisoned task;
//! the scheduler killed and restarted. Every result is compared with the
//! embedded run bit for bit, and recomputations are counted exactly.
//!
//! The deterministic cases use the workers' hidden fault-injection flags: the
//! final combine of the job stalls (holding its thread) until a gate file
//! appears, so the test acts while every partial chunk is held and needed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::time::{Duration, Instant};

use accel::{Array, Client, DType, DynArray, Rng, Run};
use accel_e2e::{Cluster, Options};

const STALL: &str = "fault injection: stalling";
const WAIT: Duration = Duration::from_secs(60);

/// Eight partial sums (random numbers generated inside the kernel) feeding
/// one combine task: every partial is needed until the combine finishes.
fn partials_then_combine() -> Array {
    let n = 8 * 200_000;
    let x = Rng::new(11).random(&[n], n / 8);
    (x.sin().exp() + 1.0).log().sum()
}

fn embedded(a: &Array) -> Vec<DynArray> {
    Client::local().run(&[a]).unwrap().outputs
}

fn run_in_background(cluster: &Cluster, a: &Array) -> std::thread::JoinHandle<accel::Result<Run>> {
    let (address, security, a) = (cluster.address.clone(), cluster.security(), a.clone());
    std::thread::spawn(move || Client::connect_with(&address, &security)?.run(&[&a]))
}

/// Two single-thread workers whose combine tasks stall until `gate` exists.
fn stalling_cluster(options: Options) -> (Cluster, std::path::PathBuf) {
    let mut cluster = Cluster::start_with(0, options).unwrap();
    let gate = cluster.path("gate");
    let g = gate.display().to_string();
    for _ in 0..2 {
        cluster
            .add_worker_with(&["--fault-stall-on", "combine", "--fault-gate", &g])
            .unwrap();
    }
    cluster.wait_for_workers(2).unwrap();
    (cluster, gate)
}

/// The worker (among `among`) whose combine task is stalling.
fn staller(cluster: &Cluster, among: &[usize]) -> usize {
    let find = || {
        among
            .iter()
            .copied()
            .find(|&k| cluster.worker_log(k).contains(STALL))
    };
    cluster
        .wait_for("a combine to stall", WAIT, || find().is_some())
        .unwrap();
    find().unwrap()
}

/// Tasks worker `k` finished (its log says so, one line each).
fn finished_on(cluster: &Cluster, k: usize) -> usize {
    cluster
        .worker_log(k)
        .lines()
        .filter(|l| l.contains("task finished"))
        .count()
}

#[test]
fn killing_the_holder_of_needed_chunks_mid_job_gives_the_same_bits() {
    let (mut cluster, gate) = stalling_cluster(Options::default());
    let a = partials_then_combine();
    let job = run_in_background(&cluster, &a);
    let holder = staller(&cluster, &[0, 1]);
    let other = 1 - holder;
    let lost = finished_on(&cluster, holder);
    assert!(lost > 0, "the combine runs where most partials are");
    cluster.kill_worker(holder).unwrap();
    // Its partials are recomputed on the survivor, which then runs the combine.
    cluster
        .wait_for("the survivor to run the combine", WAIT, || {
            cluster.worker_log(other).contains(STALL)
        })
        .unwrap();
    std::fs::write(&gate, b"").unwrap();
    let run = job.join().unwrap().unwrap();
    assert_eq!(run.outputs, embedded(&a));
    assert_eq!(
        run.stats.recomputed, lost,
        "exactly the chunks that died with the worker ran again"
    );
    assert_eq!(
        finished_on(&cluster, other),
        8 + 1,
        "8 partials and the combine"
    );
}

#[test]
fn a_task_that_kills_every_worker_fails_its_job_after_the_limit_and_the_cluster_carries_on() {
    let mut cluster = Cluster::start_with(
        0,
        Options {
            scheduler_args: vec!["--allowed-failures".into(), "2".into()],
            worker_args: vec!["--fault-crash-on".into(), "combine".into()],
            ..Options::default()
        },
    )
    .unwrap();
    cluster.add_worker().unwrap();
    cluster.wait_for_workers(1).unwrap();
    let poison = run_in_background(&cluster, &partials_then_combine());
    // A healthy job (no combine) submitted at the same time finishes despite the deaths.
    let healthy = (accel::arange(400_000, 20_000).astype(DType::F64) * 2.0 + 1.0).sqrt();
    let healthy_job = run_in_background(&cluster, &healthy);
    let start = Instant::now();
    while !poison.is_finished() {
        assert!(start.elapsed() < WAIT, "the poisoned job never ended");
        let k = cluster.workers.len() - 1;
        if cluster.worker_exited(k) {
            cluster.add_worker().unwrap(); // a replacement, as an orchestrator would start
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let err = poison.join().unwrap().unwrap_err().to_string();
    let deaths = (0..cluster.workers.len())
        .filter(|&k| cluster.worker_exited(k))
        .count();
    assert_eq!(deaths, 2, "{err}");
    assert!(
        err.contains("combine")
            && err.contains("stage 1 chunk 0")
            && err.contains("was running on 2 workers that died")
            && err.contains("w0 (worker 1)")
            && err.contains("w1 (worker 2)")
            && err.contains("allowed failures: 2"),
        "{err}"
    );
    if cluster.worker_exited(cluster.workers.len() - 1) {
        cluster.add_worker().unwrap();
    }
    let run = healthy_job.join().unwrap().unwrap();
    assert_eq!(run.outputs, embedded(&healthy));
    // The next job runs.
    let client = cluster.client().unwrap();
    let x = accel::arange(1000, 100).astype(DType::F64) * 3.0;
    assert_eq!(client.run(&[&x]).unwrap().outputs, embedded(&x));
}

#[test]
fn a_frozen_worker_is_declared_dead_its_late_reports_are_ignored_and_it_rejoins_empty() {
    let (mut cluster, gate) = stalling_cluster(Options {
        heartbeat_timeout: 3.0,
        ..Options::default()
    });
    let a = partials_then_combine();
    let job = run_in_background(&cluster, &a);
    let holder = staller(&cluster, &[0, 1]);
    let other = 1 - holder;
    let lost = finished_on(&cluster, holder);
    cluster.freeze_worker(holder).unwrap();
    // After the heartbeat timeout its partials are recomputed on the other worker.
    cluster
        .wait_for("the other worker to run the combine", WAIT, || {
            cluster.worker_log(other).contains(STALL)
        })
        .unwrap();
    // Resumed while its stalled combine is still running there: the stall
    // ends when the gate opens, and the worker learns it was declared dead.
    cluster.resume_worker(holder).unwrap();
    std::fs::write(&gate, b"").unwrap();
    let run = job.join().unwrap().unwrap();
    assert_eq!(run.outputs, embedded(&a));
    assert_eq!(run.stats.recomputed, lost);
    cluster
        .wait_for("the frozen worker to rejoin", WAIT, || {
            let log = cluster.worker_log(holder);
            log.contains("declared this worker dead") && log.contains("attaching again")
        })
        .unwrap();
    cluster.wait_for_workers(3).unwrap();
    // It rejoined empty and takes part in the next job.
    let before = cluster.assignments(holder);
    let x = Rng::new(3).random(&[2_000_000], 50_000).exp().sum();
    let client = cluster.client().unwrap();
    assert_eq!(client.run(&[&x]).unwrap().outputs, embedded(&x));
    assert!(
        cluster.assignments(holder) > before,
        "the rejoined worker got no task"
    );
    assert!(!cluster.worker_exited(holder));
}

#[test]
fn a_worker_stopped_with_sigterm_hands_its_chunks_over_and_nothing_is_recomputed() {
    let (mut cluster, gate) = stalling_cluster(Options::default());
    let a = partials_then_combine();
    let job = run_in_background(&cluster, &a);
    let holder = staller(&cluster, &[0, 1]);
    let leaving = 1 - holder;
    let handed = finished_on(&cluster, leaving);
    assert!(handed > 0, "partials are spread over both workers");
    cluster.stop_worker(leaving).unwrap();
    let status = cluster
        .wait_worker_exit(leaving, Duration::from_secs(30))
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(cluster.worker_log(leaving).contains("retired"));
    std::fs::write(&gate, b"").unwrap();
    let run = job.join().unwrap().unwrap();
    assert_eq!(run.outputs, embedded(&a));
    assert_eq!(
        run.stats.recomputed, 0,
        "handed-off chunks are not recomputed"
    );
    let retired = cluster
        .scheduler_log()
        .lines()
        .filter(|l| l.contains("worker retired"))
        .count();
    assert_eq!(retired, 1);
}

#[test]
fn when_the_scheduler_dies_clients_fail_fast_and_workers_rejoin_a_new_one() {
    let (mut cluster, gate) = stalling_cluster(Options::default());
    let job = run_in_background(&cluster, &partials_then_combine());
    staller(&cluster, &[0, 1]);
    cluster.kill_scheduler().unwrap();
    let killed = Instant::now();
    let err = job.join().unwrap().unwrap_err().to_string();
    assert!(killed.elapsed() < Duration::from_secs(10), "{err}");
    assert!(
        err.contains("lost the connection to the scheduler"),
        "{err}"
    );
    cluster.restart_scheduler().unwrap();
    cluster.wait_for_workers(2).unwrap();
    for k in 0..2 {
        assert!(cluster.worker_log(k).contains("attaching again"));
        assert!(!cluster.worker_exited(k));
    }
    std::fs::write(&gate, b"").unwrap();
    let a = partials_then_combine();
    let client = cluster.client().unwrap();
    assert_eq!(client.run(&[&a]).unwrap().outputs, embedded(&a));
}

#[test]
fn workers_drop_each_jobs_plan_and_chunks_when_it_ends() {
    let cluster = Cluster::start(2).unwrap();
    cluster.wait_for_workers(2).unwrap();
    let client = cluster.client().unwrap();
    let src = ndarray::Array1::from_iter((0..200_000).map(|i| i as f64));
    for job in 1..=4u64 {
        let x = accel::from_ndarray(&src, 25_000) * job as f64;
        let y = &x + &x.sum();
        assert_eq!(client.run(&[&y]).unwrap().outputs, embedded(&y));
        let line = format!("job={job} chunks=0 plans=0");
        cluster
            .wait_for("both workers to forget the job", WAIT, || {
                (0..2).all(|k| {
                    cluster
                        .worker_log(k)
                        .lines()
                        .any(|l| l.contains("job forgotten") && l.contains(&line))
                })
            })
            .unwrap();
    }
}
