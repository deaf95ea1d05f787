//! Runs every seed workload on the embedded client and prints one table:
//! `cargo run --release --example gallery -- [--size small|bench] [--out DIR]`.

use accel_examples::workloads::ALL;
use accel_examples::{Args, Report};

fn main() -> anyhow::Result<()> {
    let args = Args::from_env()?;
    println!(
        "accel gallery: {} size, {} threads, pictures in {}\n",
        if args.size == accel_examples::Size::Small {
            "small"
        } else {
            "bench"
        },
        rayon_threads(),
        args.out.display()
    );
    println!("{}", Report::table_header());
    let mut failures = Vec::new();
    let mut notes = Vec::new();
    for (name, run) in ALL {
        match run(&args) {
            Ok(reports) => {
                for r in reports {
                    println!("{}", r.table_row());
                    notes.extend(r.notes.iter().map(|n| format!("{name}: {n}")));
                }
            }
            Err(e) => {
                println!("| {name:<13} | FAILED: {e}");
                failures.push(name);
            }
        }
    }
    println!();
    for n in notes {
        println!("{n}");
    }
    anyhow::ensure!(failures.is_empty(), "failed: {failures:?}");
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
