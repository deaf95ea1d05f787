//! The `pi` seed workload: `cargo run --release --example pi -- [--size small|bench] [--out DIR]`.

fn main() -> anyhow::Result<()> {
    let args = accel_examples::Args::from_env()?;
    let report = accel_examples::workloads::pi::run(&args)?;
    report.print();
    Ok(())
}
