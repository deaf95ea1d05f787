//! How many time steps to fuse per stencil task: the seed's heat workload at
//! several fixed stencil depths and at the automatic rule, run in turn
//! (round after round, so that the machine's drift reaches every depth
//! alike), each result checked against the serial loop.
//!
//! `cargo run --release -p accel-bench --bin stencil_depths -- [--nx 2000]
//! [--nt 200] [--chunk 1000] [--depths 0,5,8,10] [--rounds 5]`
//! (depth 0: the automatic rule).

use accel::Client;
use accel_examples::workloads::heat;
use anyhow::{Context, bail};

struct Options {
    nx: usize,
    nt: usize,
    chunk: usize,
    depths: Vec<usize>,
    rounds: usize,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        nx: 2000,
        nt: 200,
        chunk: 1000,
        depths: vec![0, 5, 8, 10],
        rounds: 5,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        let number = |v: &str| -> anyhow::Result<usize> {
            v.parse()
                .with_context(|| format!("{flag}: {v:?} is not a whole number"))
        };
        match flag.as_str() {
            "--nx" => o.nx = number(&value)?,
            "--nt" => o.nt = number(&value)?,
            "--chunk" => o.chunk = number(&value)?,
            "--rounds" => o.rounds = number(&value)?,
            "--depths" => {
                o.depths = value
                    .split(',')
                    .map(|d| number(d.trim()))
                    .collect::<anyhow::Result<_>>()?
            }
            _ => bail!("unknown argument {flag:?} (--nx, --nt, --chunk, --depths, --rounds)"),
        }
    }
    if o.nx < 3 || o.chunk == 0 || o.depths.is_empty() || o.rounds == 0 {
        bail!("need --nx ≥ 3, --chunk ≥ 1, some depths and at least one round");
    }
    Ok(o)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let o = options()?;
    let field = heat::build(o.nx, o.nt, o.chunk);
    let want = heat::serial(o.nx, o.nt);
    let base = Client::local().with_progress(false);
    let client = |d: usize| base.clone().with_stencil_depth((d > 0).then_some(d));
    println!(
        "heat {}² × {} steps in {}² chunks, {} threads, {} rounds",
        o.nx,
        o.nt,
        o.chunk,
        rayon::current_num_threads(),
        o.rounds
    );
    let mut tasks = Vec::new();
    for &d in &o.depths {
        let c = client(d);
        tasks.push(c.plan(&[&field])?.plan.task_count());
        let got = c.compute::<f64>(&field)?;
        // A NaN anywhere fails the check (it compares false).
        let close = got.shape() == want.shape()
            && got
                .iter()
                .zip(want.iter())
                .all(|(a, b)| (a - b).abs() < 1e-9);
        if !close {
            bail!("depth {d}: the result differs from the serial loop by 1e-9 or more");
        }
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); o.depths.len()];
    for _ in 0..o.rounds {
        for (i, &d) in o.depths.iter().enumerate() {
            let c = client(d);
            let t = std::time::Instant::now();
            c.compute::<f64>(&field)?;
            times[i].push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    println!("| depth | tasks | median ms | min ms |\n|---|---:|---:|---:|");
    for ((d, t), n) in o.depths.iter().zip(times).zip(tasks) {
        let name = if *d == 0 {
            "auto".to_string()
        } else {
            d.to_string()
        };
        let min = t.iter().copied().fold(f64::INFINITY, f64::min);
        println!("| {name} | {n} | {:.1} | {min:.1} |", median(t));
    }
    Ok(())
}
