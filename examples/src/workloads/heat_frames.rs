//! The heat solver as a movie on disk: every `every`-th field of the time
//! loop goes into one Zarr store (frame, x, y), written by the tasks that
//! compute each frame (on a cluster, by the workers); a second program reads
//! the store back and prints statistics per frame.

use std::path::Path;

use accel::{Client, Compression, DType, Stored, Write, from_zarr};

use super::heat::{FIVE_POINT, initial};

/// The frames of an `nx`² plate over `nt` steps, every `every`-th step
/// (with the first and the last), written into a new Zarr store at `path`.
/// Returns the number of frames and bytes written.
pub fn write(
    client: &Client,
    path: &Path,
    nx: usize,
    nt: usize,
    every: usize,
    chunk: usize,
) -> anyhow::Result<(usize, u64)> {
    let t = accel::from_ndarray(&initial(nx), vec![chunk, chunk]);
    let (_, frames) = t.iterate_frames(nt, every, |t| {
        t.stencil(&FIVE_POINT, accel::Boundary::Fixed)
    });
    let store = Stored::create_zarr(
        path,
        &[frames.len(), nx, nx],
        DType::F64,
        &[1, chunk, chunk],
        Compression::Zstd3,
    )?;
    let writes: Vec<Write> = frames
        .iter()
        .enumerate()
        .map(|(k, f)| Write::into(f, &store, &[k, 0, 0]))
        .collect::<accel::Result<_>>()?;
    let written = client.write(&writes)?;
    Ok((frames.len(), written.bytes))
}

/// Per frame of the store at `path`: mean, minimum and maximum temperature.
pub fn stats(client: &Client, path: &Path) -> anyhow::Result<Vec<(f64, f64, f64)>> {
    let movie = from_zarr(path);
    let (mean, min, max) = (
        movie.mean_axis(2).mean_axis(1),
        movie.min_axis(2).min_axis(1),
        movie.max_axis(2).max_axis(1),
    );
    let run = client.run(&[&mean, &min, &max])?;
    let cols: Vec<Vec<f64>> = run
        .outputs
        .into_iter()
        .map(|o| Ok(o.into_typed::<f64>()?.iter().copied().collect()))
        .collect::<accel::Result<_>>()?;
    Ok((0..cols[0].len())
        .map(|k| (cols[0][k], cols[1][k], cols[2][k]))
        .collect())
}
