//! The workload `matmul`: `C = A @ B` for `n`×`n` float64 `A` and `B` in
//! `c`×`c` chunks, with `accel::matmul`.
//!
//! Element `k` (row-major) of `A` is draw `k` of SplitMix64 seeded with 42,
//! of `B` with seed 43, as a float64 in `[0, 1)` (the top 53 bits times
//! 2⁻⁵³): the same bits `bench/peers/matmul.py` builds with NumPy. The inputs
//! are held in memory before timing (`Client::persist`: in this process
//! embedded, on the workers on a cluster); a timed run is the product
//! computed and carried into this process as one ndarray.
//!
//! Every run's result is checked against values computed here without
//! `gemm`: sampled entries (every output chunk's corners and a few inside) as
//! compensated sums of the products, and every output chunk's sum (so the
//! whole sum too) from the column sums of `A` and the row sums of `B`.

use std::time::Instant;

use accel::{Client, from_owned};
use anyhow::Context;

use crate::json::Json;

/// SplitMix64's seeds of `A` and `B` (the peers' `SEED` and `SEED + 1`).
const SEED_A: u64 = 42;
const SEED_B: u64 = 43;
/// `|entry - reference| / |reference|` allowed (the summation orders differ).
const ENTRY_RTOL: f64 = 1e-12;
/// `|chunk sum - reference| / |reference|` allowed.
const SUM_RTOL: f64 = 1e-10;

/// `(n, chunk)` of a size, as the peers have them.
pub fn dims(size: &str) -> (usize, usize) {
    if size == "small" {
        (1000, 250)
    } else {
        (4000, 1000)
    }
}

/// "4000×4000 @ 4000×4000 f64, chunks 1000×1000", as the peers write it.
pub fn case(n: usize, c: usize) -> String {
    format!("{n}×{n} @ {n}×{n} f64, chunks {c}×{c}")
}

/// Draws `1..=n·n` of SplitMix64(`seed`) as float64 in `[0, 1)`, an `n`×`n`
/// row-major matrix.
pub fn splitmix64_uniform(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed;
    (0..n * n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 * (-53f64).exp2()
        })
        .collect()
}

/// Neumaier's compensated sum.
fn sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let (mut s, mut comp) = (0.0f64, 0.0f64);
    for v in values {
        let t = s + v;
        comp += if s.abs() >= v.abs() {
            (s - t) + v
        } else {
            (v - t) + s
        };
        s = t;
    }
    s + comp
}

/// Every output chunk's first and last element, and a few fixed entries
/// inside (the peers check the same ones).
fn samples(n: usize, c: usize) -> Vec<(usize, usize)> {
    let edges: Vec<(usize, usize)> = (0..n)
        .step_by(c)
        .map(|lo| (lo, (lo + c).min(n) - 1))
        .collect();
    let mut points: Vec<(usize, usize)> = Vec::new();
    for &(i0, i1) in &edges {
        for &(j0, j1) in &edges {
            points.push((i0, j0));
            points.push((i1, j1));
        }
    }
    points.extend((0..8).map(|k| ((7919 * k + 13) % n, (104_729 * k + 17) % n)));
    points.sort_unstable();
    points.dedup();
    points
}

/// What every result is checked against, computed once without `gemm`.
struct Reference {
    n: usize,
    c: usize,
    /// `(i, j, C[i, j])` from a compensated sum of `A[i, k]·B[k, j]`.
    entries: Vec<(usize, usize, f64)>,
    /// Sum of output chunk `(I, J)`, row-major over the chunk grid:
    /// `Σ_k (Σ_{i∈I} A[i, k]) · (Σ_{j∈J} B[k, j])`.
    chunk_sums: Vec<f64>,
}

impl Reference {
    fn new(a: &[f64], b: &[f64], n: usize, c: usize) -> Reference {
        let entries = samples(n, c)
            .into_iter()
            .map(|(i, j)| (i, j, sum((0..n).map(|k| a[i * n + k] * b[k * n + j]))))
            .collect();
        let grid: Vec<usize> = (0..n).step_by(c).collect();
        // Per row chunk of A, its column sums; per column chunk of B, its row sums.
        let col_sums: Vec<Vec<f64>> = grid
            .iter()
            .map(|&lo| {
                (0..n)
                    .map(|k| sum((lo..(lo + c).min(n)).map(|i| a[i * n + k])))
                    .collect()
            })
            .collect();
        let row_sums: Vec<Vec<f64>> = grid
            .iter()
            .map(|&lo| {
                (0..n)
                    .map(|k| sum(b[k * n + lo..k * n + (lo + c).min(n)].iter().copied()))
                    .collect()
            })
            .collect();
        let chunk_sums = col_sums
            .iter()
            .flat_map(|ca| {
                row_sums
                    .iter()
                    .map(|rb| sum(ca.iter().zip(rb).map(|(x, y)| x * y)))
            })
            .collect();
        Reference {
            n,
            c,
            entries,
            chunk_sums,
        }
    }

    /// Checks one result: its shape, the sampled entries, every chunk's sum
    /// and the whole sum.
    fn check(&self, out: &ndarray::ArrayD<f64>) -> anyhow::Result<String> {
        let (n, c) = (self.n, self.c);
        anyhow::ensure!(
            out.shape() == [n, n],
            "result of shape {:?}, expected [{n}, {n}]",
            out.shape()
        );
        let rel = |got: f64, want: f64| (got - want).abs() / want.abs();
        let mut worst = 0.0f64;
        for &(i, j, want) in &self.entries {
            let e = rel(out[[i, j]], want);
            anyhow::ensure!(
                e < ENTRY_RTOL,
                "C[{i}, {j}] = {} but a plain loop gives {want} (rel err {e:.1e} ≥ {ENTRY_RTOL:.0e})",
                out[[i, j]]
            );
            worst = worst.max(e);
        }
        let grid = n.div_ceil(c);
        let mut worst_sum = 0.0f64;
        let mut got_sums = Vec::with_capacity(grid * grid);
        for bi in 0..grid {
            for bj in 0..grid {
                let block = out.slice(ndarray::s![
                    bi * c..((bi + 1) * c).min(n),
                    bj * c..((bj + 1) * c).min(n)
                ]);
                let got = sum(block.iter().copied());
                let want = self.chunk_sums[bi * grid + bj];
                let e = rel(got, want);
                anyhow::ensure!(
                    e < SUM_RTOL,
                    "output chunk ({bi}, {bj}) sums to {got}, expected {want} (rel err {e:.1e} ≥ {SUM_RTOL:.0e})"
                );
                worst_sum = worst_sum.max(e);
                got_sums.push(got);
            }
        }
        let (got, want) = (sum(got_sums), sum(self.chunk_sums.iter().copied()));
        let e = rel(got, want);
        anyhow::ensure!(
            e < SUM_RTOL,
            "the result sums to {got}, expected {want} (rel err {e:.1e} ≥ {SUM_RTOL:.0e})"
        );
        Ok(format!(
            "{} entries max rel err {worst:.0e} vs a plain loop (< {ENTRY_RTOL:.0e}); {} chunk sums \
             max rel err {worst_sum:.0e}, whole sum {e:.0e} (< {SUM_RTOL:.0e})",
            self.entries.len(),
            self.chunk_sums.len()
        ))
    }
}

/// The workload on `client`: the inputs persisted, a warm-up, then `repeats`
/// timed runs, each result checked. Returns the record of `runner`.
pub fn run(client: &Client, runner: &str, size: &str, repeats: usize) -> anyhow::Result<Json> {
    let (n, c) = dims(size);
    let (a_host, b_host) = (splitmix64_uniform(n, SEED_A), splitmix64_uniform(n, SEED_B));
    let reference = Reference::new(&a_host, &b_host, n, c);
    // On a cluster the inputs go where the workers read them (.npy files in
    // a scratch folder beside the binary), then into the workers' memory.
    let distributed = runner == "accel-distributed";
    let scratch = std::env::temp_dir().join(format!("accel-bench-matmul-{}", std::process::id()));
    let persist = |host: Vec<f64>, name: &str| -> anyhow::Result<accel::Array> {
        let array = from_owned(ndarray::Array2::from_shape_vec((n, n), host)?, vec![c, c]);
        if !distributed {
            return Ok(client.persist(&array)?);
        }
        std::fs::create_dir_all(&scratch)?;
        let path = scratch.join(format!("{name}.npy"));
        Client::local().with_progress(false).to_npy(&array, &path)?;
        Ok(client.persist(&accel::from_npy(&path, vec![c, c]))?)
    };
    let held = persist(a_host, "a")
        .context("persisting A")
        .and_then(|a| Ok((a, persist(b_host, "b").context("persisting B")?)));
    // Persisted: the files are no longer read.
    let _ = std::fs::remove_dir_all(&scratch);
    let (a, b) = held?;

    let planned = client.plan(&[&accel::matmul(&a, &b)])?;
    let (tasks, tasks_before) = (planned.tasks(), planned.tasks_unfused());

    let mut times = Vec::new();
    let mut message = String::new();
    for k in 0..=repeats.max(1) {
        let t = Instant::now();
        let out = client.compute::<f64>(&accel::matmul(&a, &b))?;
        let elapsed = t.elapsed().as_secs_f64();
        message = reference.check(&out).with_context(|| format!("run {k}"))?;
        drop(out);
        if k > 0 {
            times.push(elapsed);
        }
    }
    let median = crate::median(&times);
    let flops = 2.0 * (n as f64).powi(3);
    let held = if distributed {
        "on the 2 workers (from .npy files written for them)"
    } else {
        "in this process"
    };
    Ok(Json::Obj(vec![
        ("workload".into(), "matmul".into()),
        ("case".into(), case(n, c).into()),
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
        ("elements".into(), (n * n).into()),
        ("bytes".into(), Json::Null),
        ("flops".into(), flops.into()),
        ("gflops".into(), (flops / median / 1e9).into()),
        ("check".into(), message.into()),
        ("error".into(), Json::Null),
        (
            "note".into(),
            format!(
                "client.compute(matmul(a, b)), the result carried into this process as one \
                 ndarray; A and B from_owned(SplitMix64 draws) and Client::persist-ed {held} \
                 before timing; block products by gemm's kernels on the runner's rayon threads, \
                 summed in a tree"
            )
            .into(),
        ),
    ]))
}
