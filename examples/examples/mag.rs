//! The `mag` seed workload: `cargo run --release --example mag -- [--size small|bench] [--out DIR]`.

fn main() -> anyhow::Result<()> {
    let args = accel_examples::Args::from_env()?;
    let report = accel_examples::workloads::mag::run(&args)?;
    report.print();
    Ok(())
}
