//! The `heat` seed workload (2-D heat flow, fused time steps):
//! `cargo run --release --example heat -- [--size small|bench] [--out DIR] [--scheduler URL]`.

fn main() -> anyhow::Result<()> {
    let args = accel_examples::Args::from_env()?;
    for report in accel_examples::workloads::heat::run(&args)? {
        report.print();
    }
    Ok(())
}
