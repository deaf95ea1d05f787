//! A worker offering its own `map_blocks` functions: build it like any Rust
//! binary and start it in place of `accel-worker` (same flags):
//!
//! ```text
//! cargo build --release -p accel-worker --example custom_worker
//! target/release/examples/custom_worker http://scheduler:8786
//! ```
//!
//! Clients call the functions by name: `MapBlocks::named("scale_add").arg(2.0).apply(&[&a, &b])`.

use accel_worker::ndarray::{Array2, ArrayD, Axis, Ix2};
use accel_worker::{Blocks, Functions};

/// `a * k + b` for the scalar argument `k`.
fn scale_add(b: &Blocks<'_>) -> Result<ArrayD<f64>, String> {
    let k = b.arg_f64(0)?;
    let (x, y) = (b.input::<f64>(0)?, b.input::<f64>(1)?);
    Ok(&x * k + &y)
}

/// Each row of a 2-d block sorted (NumPy's `sort(axis=1)` when blocks span
/// whole rows); NaNs last.
fn sort_rows(b: &Blocks<'_>) -> Result<Array2<f64>, String> {
    let x = b
        .input::<f64>(0)?
        .into_dimensionality::<Ix2>()
        .map_err(|e| e.to_string())?;
    let mut out = x.to_owned();
    for mut row in out.axis_iter_mut(Axis(0)) {
        let mut v = row.to_vec();
        v.sort_by(f64::total_cmp);
        row.assign(
            &Array2::from_shape_vec((1, v.len()), v)
                .map_err(|e| e.to_string())?
                .row(0),
        );
    }
    Ok(out)
}

/// A 1×…×1 block holding the block's mean (declare `chunks` of ones).
fn block_mean(b: &Blocks<'_>) -> Result<ArrayD<f64>, String> {
    let x = b.input::<f64>(0)?;
    let mean = x.mean().unwrap_or(f64::NAN);
    Ok(ArrayD::from_elem(vec![1; x.ndim()], mean))
}

fn main() -> std::process::ExitCode {
    let functions = Functions::new()
        .with("scale_add", scale_add)
        .with("sort_rows", sort_rows)
        .with("block_mean", block_mean);
    accel_worker::cli::main_with(functions)
}
