//! Reads the frames the `heat_frames` example wrote and prints statistics
//! per frame: `cargo run --release --example frame_stats -- [--store DIR]
//! [--scheduler URL]`.

fn main() -> anyhow::Result<()> {
    let mut store = std::path::PathBuf::from("out/heat.zarr");
    let mut client = accel::Client::local().with_progress(false);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--store", Some(v)) => store = v.into(),
            ("--scheduler", Some(v)) => client = accel::Client::connect(&v)?.with_progress(false),
            _ => anyhow::bail!("usage: frame_stats [--store DIR] [--scheduler URL]"),
        }
    }
    println!("{:>5} {:>10} {:>10} {:>10}", "frame", "mean", "min", "max");
    for (k, (mean, min, max)) in accel_examples::workloads::heat_frames::stats(&client, &store)?
        .into_iter()
        .enumerate()
    {
        println!("{k:>5} {mean:>10.4} {min:>10.4} {max:>10.4}");
    }
    Ok(())
}
