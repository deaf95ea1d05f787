//! Writes the heat solver's frames into a Zarr store, from the workers:
//! `cargo run --release --example heat_frames -- [--scheduler URL] [--store DIR]
//! [--nx 1000] [--nt 2000] [--every 500] [--chunk 250]`; then read it back with
//! `cargo run --release --example frame_stats -- --store DIR`.

use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let opts = Opts::parse()?;
    let client = match &opts.scheduler {
        Some(url) => accel::Client::connect(url)?.with_progress(false),
        None => accel::Client::local().with_progress(false),
    };
    let start = Instant::now();
    let (frames, bytes) = accel_examples::workloads::heat_frames::write(
        &client,
        &opts.store,
        opts.nx,
        opts.nt,
        opts.every,
        opts.chunk,
    )?;
    let (nx, nt) = (opts.nx, opts.nt);
    println!(
        "heat {nx}×{nx}, {nt} steps: {frames} frames ({:.1} MB) written to {} in {:.2} s on {}",
        bytes as f64 / 1e6,
        opts.store.display(),
        start.elapsed().as_secs_f64(),
        client.describe(),
    );
    Ok(())
}

struct Opts {
    scheduler: Option<String>,
    store: std::path::PathBuf,
    nx: usize,
    nt: usize,
    every: usize,
    chunk: usize,
}

impl Opts {
    fn parse() -> anyhow::Result<Opts> {
        let mut o = Opts {
            scheduler: None,
            store: "out/heat.zarr".into(),
            nx: 1000,
            nt: 2000,
            every: 500,
            chunk: 250,
        };
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            let mut value = || {
                it.next()
                    .ok_or_else(|| anyhow::anyhow!("{a} needs a value"))
            };
            match a.as_str() {
                "--scheduler" => o.scheduler = Some(value()?),
                "--store" => o.store = value()?.into(),
                "--nx" => o.nx = value()?.parse()?,
                "--nt" => o.nt = value()?.parse()?,
                "--every" => o.every = value()?.parse()?,
                "--chunk" => o.chunk = value()?.parse()?,
                other => anyhow::bail!("unknown argument {other:?}"),
            }
        }
        Ok(o)
    }
}
