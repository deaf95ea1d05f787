//! Fused kernels timed alone on a GPU: inputs and output in device memory,
//! the kernel run many times in a row. Memory-bound chains are measured in
//! GB/s against a triad kernel on the same device in the same run (the
//! device's practical bandwidth); the fractal in ns per pixel. Whole
//! computes (uploads and read-backs included) are the suite's `accel-gpu`
//! rows.

use accel::{Array, DType, from_ndarray};
use accel_core::StageKind;
use accel_core::buffer::Buffer;
use accel_core::kernel::Program;
use accel_gpu::{Backend, GpuChoice};

use crate::json::Json;

/// Elements of each memory-bound chain, and the fractal's size.
fn sizes(size: &str) -> (usize, (usize, usize)) {
    if size == "bench" {
        (1 << 25, (1600, 2400))
    } else {
        (1 << 20, (160, 240))
    }
}

/// The chains: name, inputs, the expression over them.
type Chain = (&'static str, usize, fn(&[Array]) -> Array);

const CHAINS: [Chain; 4] = [
    ("triad", 2, |v| &v[0] + &v[1] * 3.0),
    ("mag", 2, |v| (v[0].powi(2) + v[1].powi(2)).sqrt()),
    ("trig", 2, |v| v[0].powi(2).sin() * v[1].exp()),
    ("discriminant", 3, |v| &v[1] * &v[1] - &v[0] * &v[2] * 4.0),
];

/// The fused kernel of `a` (its last elementwise stage) and its chunk shape.
fn kernel_of(a: &Array) -> anyhow::Result<(Program, Vec<usize>)> {
    let planned = a.plan()?;
    let stage = planned
        .plan
        .stages
        .iter()
        .rev()
        .find(|s| matches!(s.kind, StageKind::Map(_)))
        .ok_or_else(|| anyhow::anyhow!("no fused kernel in the plan"))?;
    let StageKind::Map(exe) = &stage.kind else {
        anyhow::bail!("no fused kernel in the plan");
    };
    Ok((
        exe.program.clone(),
        stage
            .meta
            .chunks
            .chunk_shape(&vec![0; stage.meta.shape.len()]),
    ))
}

/// Values in [0, 1) for every input of `program` over a chunk of `local`.
fn inputs_for(program: &Program, local: &[usize]) -> Vec<(Vec<usize>, Buffer)> {
    program
        .inputs
        .iter()
        .map(|spec| {
            let off = local.len() - spec.shape.len();
            let shape: Vec<usize> = spec
                .shape
                .iter()
                .enumerate()
                .map(|(d, &s)| if s == 1 { 1 } else { local[off + d] })
                .collect();
            let n: usize = shape.iter().product();
            let x = |i: usize| (i as f64 + 0.5) / n as f64;
            let data = match spec.dtype {
                DType::Bool => Buffer::Bool((0..n).map(|i| i % 2 == 1).collect()),
                DType::I32 => Buffer::I32((0..n).map(|i| (i % 7) as i32).collect()),
                DType::I64 => Buffer::I64((0..n).map(|i| (i % 7) as i64).collect()),
                DType::F32 => Buffer::F32((0..n).map(|i| x(i) as f32).collect()),
                DType::F64 => Buffer::F64((0..n).map(x).collect()),
                DType::C128 => Buffer::C128(
                    (0..n)
                        .map(|i| num_complex::Complex64::new(x(i), 0.5))
                        .collect(),
                ),
            };
            (shape, data)
        })
        .collect()
}

/// One record per kernel (and a failure record where one fails), on the
/// GPU `choice` opens; none without a GPU.
pub fn rows(choice: GpuChoice, size: &str, repeats: u32) -> Vec<Json> {
    let backend = match accel_gpu::open_backend(choice) {
        Ok(Some(b)) => b,
        Ok(None) => return Vec::new(),
        Err(e) => return vec![failed("gpu-kernel", size, "?", e.to_string())],
    };
    let device = format!("{} ({})", backend.summary().name, backend.summary().backend);
    let (n, (height, width)) = sizes(size);
    let mut out = Vec::new();
    for (name, arity, chain) in CHAINS {
        let args: Vec<Array> = (0..arity)
            .map(|_| from_ndarray(&ndarray::Array1::<f64>::zeros(n), n))
            .collect();
        let case = format!("{name} n={n}");
        match time(&backend, &chain(&args), repeats) {
            Ok((secs, bytes, elements)) => {
                let gbps = bytes as f64 / secs / 1e9;
                eprintln!("  {case}: {:.3} ms, {gbps:.1} GB/s", secs * 1e3);
                out.push(ok(name, &case, size, &device, secs, Some(bytes), elements));
            }
            Err(e) => out.push(failed(name, size, &device, format!("{e:#}"))),
        }
    }
    let fractal = accel_examples::workloads::fractal::build_kernel(height, width, [height, width]);
    let case = format!("fractal {height}×{width}");
    match time(&backend, &fractal, repeats) {
        Ok((secs, _, elements)) => {
            eprintln!("  {case}: {:.2} ns/pixel", secs * 1e9 / elements as f64);
            out.push(ok("fractal", &case, size, &device, secs, None, elements));
        }
        Err(e) => out.push(failed("fractal", size, &device, format!("{e:#}"))),
    }
    out
}

/// Seconds per run of `a`'s fused kernel on the device (the mean of the
/// runs of one submission, recorded as the suite's `median_s`), the bytes it
/// reads and writes in device memory (booleans take a word there), and its
/// elements.
fn time(backend: &Backend, a: &Array, repeats: u32) -> anyhow::Result<(f64, usize, usize)> {
    let (program, local) = kernel_of(a)?;
    let inputs = inputs_for(&program, &local);
    let views: Vec<(&[usize], &Buffer)> = inputs.iter().map(|(s, b)| (s.as_slice(), b)).collect();
    let t = backend.time_map(&program, &local, &views, repeats)?;
    let elements: usize = local.iter().product();
    let root = program.dtypes[program.root as usize];
    let bytes = inputs
        .iter()
        .map(|(_, b)| b.len() * b.dtype().size().max(4))
        .sum::<usize>()
        + elements * root.size().max(4);
    Ok((t.as_secs_f64(), bytes, elements))
}

fn ok(
    workload: &str,
    case: &str,
    size: &str,
    device: &str,
    secs: f64,
    bytes: Option<usize>,
    elements: usize,
) -> Json {
    Json::Obj(vec![
        ("workload".into(), "gpu-kernel".into()),
        ("kernel_of".into(), workload.into()),
        ("case".into(), case.into()),
        ("size".into(), size.into()),
        ("runner".into(), "accel-gpu".into()),
        ("device".into(), device.into()),
        ("status".into(), "ok".into()),
        ("median_s".into(), secs.into()),
        ("bytes".into(), bytes.into()),
        ("gbps".into(), bytes.map(|b| b as f64 / secs / 1e9).into()),
        ("elements".into(), elements.into()),
        (
            "ns_per_element".into(),
            (secs * 1e9 / elements as f64).into(),
        ),
    ])
}

fn failed(workload: &str, size: &str, device: &str, error: String) -> Json {
    eprintln!("  {workload} kernel FAILED: {error}");
    Json::Obj(vec![
        ("workload".into(), "gpu-kernel".into()),
        ("kernel_of".into(), workload.into()),
        ("case".into(), "".into()),
        ("size".into(), size.into()),
        ("runner".into(), "accel-gpu".into()),
        ("device".into(), device.into()),
        ("status".into(), "failed".into()),
        ("median_s".into(), Json::Null),
        ("error".into(), error.into()),
    ])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn get<'a>(rec: &'a Json, key: &str) -> Option<&'a Json> {
        match rec {
            Json::Obj(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// On lavapipe: every kernel times, each chain moves its inputs' and
    /// output's bytes (the triad 24 per element), the fractal has no bytes.
    #[test]
    fn every_kernel_is_timed_on_a_software_gpu() {
        let rows = rows(GpuChoice::Software, "small", 1);
        assert_eq!(rows.len(), CHAINS.len() + 1);
        let n = 1usize << 20;
        for r in &rows {
            let what = format!("{:?}", get(r, "kernel_of"));
            assert!(
                matches!(get(r, "status"), Some(Json::Str(s)) if s == "ok"),
                "{what}: {r:?}"
            );
            assert!(
                matches!(get(r, "median_s"), Some(Json::Num(t)) if *t > 0.0),
                "{what}"
            );
        }
        let bytes: Vec<Option<&Json>> = rows.iter().map(|r| get(r, "bytes")).collect();
        assert!(
            matches!(bytes[0], Some(Json::Num(b)) if *b == (24 * n) as f64),
            "{bytes:?}"
        );
        assert!(
            matches!(bytes[3], Some(Json::Num(b)) if *b == (32 * n) as f64),
            "{bytes:?}"
        );
        assert!(matches!(bytes[4], Some(Json::Null)), "{bytes:?}");
    }
}
