//! The `inc25` seed workload: `cargo run --release --example inc25 -- [--size small|bench] [--out DIR]`.

fn main() -> anyhow::Result<()> {
    let args = accel_examples::Args::from_env()?;
    let report = accel_examples::workloads::inc25::run(&args)?;
    report.print();
    Ok(())
}
