//! The `harmonic` seed workload: `cargo run --release --example harmonic -- [--size small|bench] [--out DIR]`.

fn main() -> anyhow::Result<()> {
    let args = accel_examples::Args::from_env()?;
    let report = accel_examples::workloads::harmonic::run(&args)?;
    report.print();
    Ok(())
}
