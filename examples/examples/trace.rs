//! The `trace` seed workload: `cargo run --release --example trace -- [--size small|bench] [--out DIR]`.

fn main() -> anyhow::Result<()> {
    let args = accel_examples::Args::from_env()?;
    let report = accel_examples::workloads::trace::run(&args)?;
    report.print();
    Ok(())
}
