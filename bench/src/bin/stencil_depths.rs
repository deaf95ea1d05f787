//! How many time steps to fuse per stencil task: the seed's heat workload at
//! several fixed stencil depths and at the automatic rule, run in turn
//! (round after round, so that the machine's drift reaches every depth
//! alike), each result checked against the serial loop.
//!
//! `cargo run --release -p accel-bench --bin stencil_depths -- [--nx 2000]
//! [--nt 200] [--chunk 1000] [--depths 0,5,8,10] [--rounds 5]
//! [--bands on|off|both]` (depth 0: the automatic rule; `--bands`: the loop
//! on row bands where the optimizer would take them, on the field's own
//! chunks, or each depth both ways).

use accel::Client;
use accel_examples::workloads::heat;
use anyhow::{Context, bail};

struct Options {
    nx: usize,
    nt: usize,
    chunk: usize,
    depths: Vec<usize>,
    rounds: usize,
    /// Loop bands on (true) and/or off (false), each depth run each way.
    bands: Vec<bool>,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        nx: 2000,
        nt: 200,
        chunk: 1000,
        depths: vec![0, 5, 8, 10],
        rounds: 5,
        bands: vec![true],
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
            "--bands" => {
                o.bands = match value.as_str() {
                    "on" => vec![true],
                    "off" => vec![false],
                    "both" => vec![true, false],
                    _ => bail!("--bands takes on, off or both"),
                }
            }
            _ => bail!(
                "unknown argument {flag:?} (--nx, --nt, --chunk, --depths, --rounds, --bands)"
            ),
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
    let client = |(d, bands): (usize, bool)| {
        base.clone()
            .with_stencil_depth((d > 0).then_some(d))
            .with_loop_bands(bands)
    };
    let variants: Vec<(usize, bool)> = o
        .depths
        .iter()
        .flat_map(|&d| o.bands.iter().map(move |&b| (d, b)))
        .collect();
    println!(
        "heat {}² × {} steps in {}² chunks, {} threads, {} rounds",
        o.nx,
        o.nt,
        o.chunk,
        rayon::current_num_threads(),
        o.rounds
    );
    let mut tasks = Vec::new();
    for &v in &variants {
        let c = client(v);
        tasks.push(c.plan(&[&field])?.plan.task_count());
        let got = c.compute::<f64>(&field)?;
        // A NaN anywhere fails the check (it compares false).
        let close = got.shape() == want.shape()
            && got
                .iter()
                .zip(want.iter())
                .all(|(a, b)| (a - b).abs() < 1e-9);
        if !close {
            bail!(
                "depth {}: the result differs from the serial loop by 1e-9 or more",
                v.0
            );
        }
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for _ in 0..o.rounds {
        for (i, &v) in variants.iter().enumerate() {
            let c = client(v);
            let t = std::time::Instant::now();
            c.compute::<f64>(&field)?;
            times[i].push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    println!("| depth | loop bands | tasks | median ms | min ms |\n|---|---|---:|---:|---:|");
    for ((&(d, bands), t), n) in variants.iter().zip(times).zip(tasks) {
        let name = if d == 0 {
            "auto".to_string()
        } else {
            d.to_string()
        };
        let bands = if bands { "on" } else { "off" };
        let min = t.iter().copied().fold(f64::INFINITY, f64::min);
        println!("| {name} | {bands} | {n} | {:.1} | {min:.1} |", median(t));
    }
    Ok(())
}
