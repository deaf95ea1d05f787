//! The `discriminant` seed workload: `cargo run --release --example discriminant -- [--size small|bench] [--out DIR]`.

fn main() -> anyhow::Result<()> {
    let args = accel_examples::Args::from_env()?;
    for report in accel_examples::workloads::discriminant::run(&args)? {
        report.print();
    }
    Ok(())
}
