//! The storage workload `zarr`: read a Zarr store, apply `sqrt(2x + 1)`,
//! write a new Zarr store, the tasks (on a cluster, the workers) reading and
//! writing the files themselves.
//!
//! The source is a 2-D float64 Zarr v2 store written once by zarr-python
//! (`bench/peers/zarr_data.py`, run by `bench/run` before the suites), next
//! to a `src.json` holding NumPy's sum of `sqrt(2x + 1)` over it. Every run's
//! output is checked: its layout, strips of rows against `sqrt(2x + 1)`
//! computed here with ndarray from the source, and its whole sum against
//! NumPy's.

use std::path::{Path, PathBuf};
use std::time::Instant;

use accel::{Array, Client, Compression, Stored, Write, ZarrOptions, from_zarr, s};
use anyhow::Context;

use crate::json::Json;

/// Rows on each side of a storage-chunk boundary in a checked strip.
const STRIP: usize = 8;
/// `|sum - NumPy's sum| / NumPy's sum` allowed (the summation orders differ).
const SUM_RTOL: f64 = 1e-10;

/// The source store of one size, as `bench/peers/zarr_data.py` left it.
pub struct Source {
    pub dir: PathBuf,
    pub src: PathBuf,
    pub shape: Vec<usize>,
    pub chunks: Vec<usize>,
    /// NumPy's sum of `sqrt(2x + 1)` over the whole source.
    pub sum_y: f64,
    /// Bytes of the source's chunk files.
    pub stored_bytes: u64,
}

impl Source {
    /// The store under `data/zarr-SIZE`; fails with a hint when it is missing.
    pub fn open(data: &Path, size: &str) -> anyhow::Result<Source> {
        let dir = data.join(format!("zarr-{size}"));
        let hint = || {
            format!(
                "no complete source store in {}: bench/run writes it, or run \
                 `bench/.venv/bin/python bench/peers/zarr_data.py --size {size}`",
                dir.display()
            )
        };
        let sidecar = std::fs::read_to_string(dir.join("src.json")).with_context(hint)?;
        let meta: serde_json::Value = serde_json::from_str(&sidecar).context("src.json")?;
        let dir = dir.canonicalize().with_context(hint)?;
        let src = dir.join("src.zarr");
        let stored = Stored::open_zarr(&src).with_context(hint)?;
        let chunks = stored
            .storage_chunks()
            .context("the source is not a Zarr store")?
            .to_vec();
        anyhow::ensure!(
            stored.dtype == accel::DType::F64 && stored.shape.len() == 2,
            "{}: expected a 2-D float64 array",
            src.display()
        );
        let sum_y = meta
            .get("sum_y")
            .and_then(serde_json::Value::as_f64)
            .context("src.json has no sum_y")?;
        Ok(Source {
            stored_bytes: dir_bytes(&src),
            dir,
            src,
            shape: stored.shape,
            chunks,
            sum_y,
        })
    }

    /// "16384×16384 f64, chunks 2048×4096, zstd 3", as the peers write it.
    pub fn case(&self) -> String {
        format!(
            "{}×{} f64, chunks {}×{}, zstd 3",
            self.shape[0], self.shape[1], self.chunks[0], self.chunks[1]
        )
    }

    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Bytes of every file under `path` (metadata included).
pub fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// Removes `path` if it exists, then flushes the page cache's dirty pages, so
/// that the writeback of one run does not slow the next down.
fn clear(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        std::fs::remove_dir_all(path)
            .with_context(|| format!("cannot remove {}", path.display()))?;
    }
    // Best effort: a missing `sync` only makes the timings noisier.
    let _ = std::process::Command::new("sync").status();
    Ok(())
}

/// The timed work: the source opened, the chain built, the store created and
/// every chunk read, computed and written by the tasks.
fn transform(client: &Client, src: &Path, dst: &Path) -> anyhow::Result<accel::Written> {
    let x = from_zarr(src);
    let y = (x * 2.0 + 1.0).sqrt();
    let opts = ZarrOptions {
        chunks: None,
        compression: Compression::Zstd(3),
    };
    Ok(client.write(&[Write::zarr(&y, dst, &opts)?])?)
}

/// Rows `a..b` of a 2-D store, computed on the embedded client.
fn rows(store: &Array, a: usize, b: usize) -> anyhow::Result<ndarray::ArrayD<f64>> {
    Ok(Client::local()
        .with_progress(false)
        .compute::<f64>(&store.slice(s![a..b, ..]))?)
}

/// Units in the last place between two finite floats of one sign.
fn ulps(a: f64, b: f64) -> u64 {
    if a == b {
        0
    } else if a.is_nan() || b.is_nan() || a.is_sign_negative() != b.is_sign_negative() {
        u64::MAX
    } else {
        a.to_bits().abs_diff(b.to_bits())
    }
}

/// Checks the store at `dst`: layout, strips of rows straddling storage-chunk
/// boundaries (and the last rows) against ndarray's `sqrt(2x + 1)` of the
/// same rows of the source, and the whole sum against NumPy's.
fn check(source: &Source, dst: &Path) -> anyhow::Result<String> {
    let out = Stored::open_zarr(dst)?;
    anyhow::ensure!(
        out.shape == source.shape && out.dtype == accel::DType::F64,
        "output is {:?} {:?}, expected {:?} float64",
        out.shape,
        out.dtype,
        source.shape
    );
    anyhow::ensure!(
        out.storage_chunks() == Some(&source.chunks[..]),
        "output stored in chunks {:?}, expected the source's {:?}",
        out.storage_chunks(),
        source.chunks
    );
    let (nrows, ch) = (source.shape[0], source.chunks[0]);
    let mut strips = vec![(nrows - STRIP.min(nrows), nrows)];
    if nrows > ch {
        strips.insert(0, (ch - STRIP.min(ch), (ch + STRIP).min(nrows)));
    }
    let (src, dst_array) = (from_zarr(&source.src), from_zarr(dst));
    let (mut worst, mut checked) = (0u64, 0usize);
    for (a, b) in strips {
        let want = rows(&src, a, b)?.mapv(|x| (2.0 * x + 1.0).sqrt());
        let got = rows(&dst_array, a, b)?;
        anyhow::ensure!(got.shape() == want.shape(), "strip {a}..{b}: wrong shape");
        for (g, w) in got.iter().zip(want.iter()) {
            worst = worst.max(ulps(*g, *w));
        }
        checked += want.len();
    }
    anyhow::ensure!(
        worst == 0,
        "rows differ from ndarray's sqrt(2x + 1) by up to {worst} ulp"
    );
    let sum = Client::local()
        .with_progress(false)
        .compute::<f64>(&dst_array.sum())?[[]];
    let rel = (sum - source.sum_y).abs() / source.sum_y.abs();
    anyhow::ensure!(
        rel < SUM_RTOL,
        "sum of the output {sum} differs from NumPy's {} (rel {rel:.1e})",
        source.sum_y
    );
    Ok(format!(
        "{checked} elements exact vs ndarray; sum rel err {rel:.0e} vs NumPy (< {SUM_RTOL:.0e})"
    ))
}

/// The workload on `client`: a warm-up, then `repeats` timed runs, each
/// output checked. Returns the record of `runner`.
pub fn run(
    client: &Client,
    runner: &str,
    source: &Source,
    size: &str,
    repeats: usize,
) -> anyhow::Result<Json> {
    let out_dir = source.dir.join("out");
    std::fs::create_dir_all(&out_dir)?;
    let dst = out_dir.join(format!("{runner}.zarr"));
    let nbytes = 8 * source.elements() as u64;

    // Tasks, from a plan of the same write (it creates the store's metadata).
    clear(&dst)?;
    let (tasks, tasks_before) = {
        let y = (from_zarr(&source.src) * 2.0 + 1.0).sqrt();
        let w = Write::zarr(&y, &dst, &ZarrOptions::default())?;
        let planned = client.plan_with(&[], &[w])?;
        (planned.tasks(), planned.tasks_unfused())
    };

    let mut times = Vec::new();
    let (mut message, mut stored_out) = (String::new(), 0);
    for k in 0..=repeats.max(1) {
        clear(&dst)?;
        let t = Instant::now();
        let written = transform(client, &source.src, &dst)?;
        let elapsed = t.elapsed().as_secs_f64();
        anyhow::ensure!(
            written.bytes == nbytes,
            "wrote {} bytes, expected {nbytes}",
            written.bytes
        );
        stored_out = dir_bytes(&dst);
        message = check(source, &dst).with_context(|| format!("run {k}"))?;
        if k > 0 {
            times.push(elapsed);
        }
    }
    clear(&dst)?;
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let median = if sorted.len() % 2 == 0 {
        (median + sorted[sorted.len() / 2 - 1]) / 2.0
    } else {
        median
    };
    Ok(Json::Obj(vec![
        ("workload".into(), "zarr".into()),
        ("case".into(), source.case().into()),
        ("size".into(), size.into()),
        ("runner".into(), runner.into()),
        ("status".into(), "ok".into()),
        ("median_s".into(), median.into()),
        (
            "times_s".into(),
            Json::List(times.iter().map(|&t| t.into()).collect()),
        ),
        ("setup_s".into(), Json::Null),
        ("tasks".into(), tasks.into()),
        ("tasks_before".into(), tasks_before.into()),
        ("elements".into(), source.elements().into()),
        ("bytes".into(), (nbytes as f64).into()),
        ("read_bytes".into(), (nbytes as f64).into()),
        ("written_bytes".into(), (nbytes as f64).into()),
        (
            "stored_read_bytes".into(),
            (source.stored_bytes as f64).into(),
        ),
        ("stored_written_bytes".into(), (stored_out as f64).into()),
        ("check".into(), message.into()),
        ("error".into(), Json::Null),
        (
            "note".into(),
            "from_zarr(src) → sqrt(2x + 1) → Client::write(Write::zarr(.., Zstd(3))), \
             the tasks reading and writing the files; Zarr v2 source (zarr-python) in the \
             page cache, v3 output in its chunks; the output store removed and `sync` run \
             before each run (untimed), nothing fsynced in the timed run"
                .into(),
        ),
    ]))
}
