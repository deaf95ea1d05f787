//! The `trig` seed workload: `cargo run --release --example trig -- [--size small|bench] [--out DIR]`.

fn main() -> anyhow::Result<()> {
    let args = accel_examples::Args::from_env()?;
    for report in accel_examples::workloads::trig::run(&args)? {
        report.print();
    }
    Ok(())
}
