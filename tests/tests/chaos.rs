//! Chaos: a job of more than a thousand chunks (a stencil, a transpose, a
//! rechunk and a reduction) on three workers while a killer kills -9 a
//! random worker about every second and starts a replacement. The result
//! must equal the embedded one bit for bit, for several seeds.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::time::{Duration, Instant};

use accel::{Array, Boundary, Client, Rng};
use accel_e2e::{Cluster, SplitMix};

const FIVE_POINT: [(&[i64], f64); 4] = [
    (&[1, 0], 0.25),
    (&[-1, 0], 0.25),
    (&[0, 1], 0.25),
    (&[0, -1], 0.25),
];

/// 32 × 32 chunks of random numbers, four fused periodic stencil steps and a
/// long elementwise chain, the
/// field plus its transpose, rechunked to 16 × 16 chunks, reduced along axis 0.
fn chaos_job(seed: u64) -> Array {
    let (n, c) = (3840, 120);
    let x = Rng::new(seed).random(&[n, n], vec![c, c]);
    let s = x.iterate(4, |t| t.stencil(&FIVE_POINT, Boundary::Periodic));
    // Compute-heavy elementwise work fused into the stencil's tasks, so the
    // job runs long enough for several kills.
    let s = (0..80).fold(s, |t, _| (t.sin() + 1.5).sqrt());
    let t = (&s.transpose() * 0.5 + &s).rechunk(vec![2 * c, 2 * c]);
    (t.sin() * t.cos()).exp().sum_axis(0)
}

/// Runs the job on a cluster of 3 workers, killing one every ~second (at
/// most `max_kills`); returns the outputs, the kills done and the time taken.
fn run_with_killer(
    a: &Array,
    seed: u64,
    max_kills: usize,
) -> (Vec<accel::DynArray>, usize, Duration, usize) {
    let mut cluster = Cluster::start(3).unwrap();
    cluster.wait_for_workers(3).unwrap();
    let client = cluster.client().unwrap();
    let job = {
        let a = a.clone();
        std::thread::spawn(move || client.run(&[&a]))
    };
    let start = Instant::now();
    let mut rng = SplitMix(seed);
    let mut kills = 0;
    let mut next_kill = Duration::from_millis(700 + rng.next_u64() % 600);
    while !job.is_finished() {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the job did not finish"
        );
        if kills < max_kills && start.elapsed() >= next_kill {
            let alive: Vec<usize> = (0..cluster.workers.len())
                .filter(|&k| !cluster.worker_exited(k))
                .collect();
            let victim = alive[(rng.next_u64() % alive.len() as u64) as usize];
            cluster.kill_worker(victim).unwrap();
            cluster.add_worker().unwrap();
            kills += 1;
            next_kill = start.elapsed() + Duration::from_millis(700 + rng.next_u64() % 600);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let run = job.join().unwrap().unwrap();
    (run.outputs, kills, start.elapsed(), run.stats.recomputed)
}

#[test]
fn killing_random_workers_every_second_never_changes_the_result() {
    let probe = chaos_job(1);
    let planned = probe.plan().unwrap();
    assert!(planned.tasks() >= 1000, "{} tasks", planned.tasks());
    // The same job without faults, for the time it takes.
    let (clean, _, clean_time, _) = run_with_killer(&probe, 1, 0);
    assert!(clean == Client::local().run(&[&probe]).unwrap().outputs);
    eprintln!("fault-free: {:.2}s", clean_time.as_secs_f64());
    for seed in [1, 2, 3] {
        let a = chaos_job(seed);
        let expected = Client::local().run(&[&a]).unwrap().outputs;
        let (outputs, kills, took, recomputed) = run_with_killer(&a, seed, 8);
        eprintln!(
            "seed {seed}: {} tasks, {kills} workers killed, {recomputed} tasks recomputed, {:.2}s",
            planned.tasks(),
            took.as_secs_f64()
        );
        assert!(
            outputs == expected,
            "seed {seed}: the result differs from the embedded one"
        );
    }
}
