//! The `fractal` seed workload: `cargo run --release --example fractal -- [--size small|bench] [--out DIR]`.

fn main() -> anyhow::Result<()> {
    let args = accel_examples::Args::from_env()?;
    for report in accel_examples::workloads::fractal::run(&args)? {
        report.print();
    }
    Ok(())
}
