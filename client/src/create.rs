//! Creating arrays: from ndarray data, constants, ranges, grids and random numbers.

use std::sync::Arc;

use accel_core::op::{Affine, GenKind, Generator, HostArray};
use accel_core::shape::Chunks;
use accel_core::{DType, Element, Meta, Op, Value};
use ndarray::{ArrayBase, Data, Dimension};

use crate::error::Error;
use crate::expr::Array;

/// How to cut an array into chunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkSpec {
    /// About 128 MiB per chunk, as square as the shape allows (dask's "auto").
    Auto,
    /// The same chunk edge along every axis.
    Edge(usize),
    /// At most this many elements along each axis.
    Shape(Vec<usize>),
    /// Explicit chunk sizes along each axis.
    Explicit(Vec<Vec<usize>>),
    /// An unparseable specification (reported when used).
    Invalid(String),
}

impl From<&str> for ChunkSpec {
    fn from(s: &str) -> Self {
        if s == "auto" {
            ChunkSpec::Auto
        } else {
            ChunkSpec::Invalid(format!(
                "unknown chunk specification {s:?} (use \"auto\" or sizes)"
            ))
        }
    }
}
impl From<usize> for ChunkSpec {
    fn from(n: usize) -> Self {
        ChunkSpec::Edge(n)
    }
}
impl From<&[usize]> for ChunkSpec {
    fn from(v: &[usize]) -> Self {
        ChunkSpec::Shape(v.to_vec())
    }
}
impl From<Vec<usize>> for ChunkSpec {
    fn from(v: Vec<usize>) -> Self {
        ChunkSpec::Shape(v)
    }
}
impl<const N: usize> From<[usize; N]> for ChunkSpec {
    fn from(v: [usize; N]) -> Self {
        ChunkSpec::Shape(v.to_vec())
    }
}
impl<const N: usize> From<&[usize; N]> for ChunkSpec {
    fn from(v: &[usize; N]) -> Self {
        ChunkSpec::Shape(v.to_vec())
    }
}
impl From<Vec<Vec<usize>>> for ChunkSpec {
    fn from(v: Vec<Vec<usize>>) -> Self {
        ChunkSpec::Explicit(v)
    }
}

impl ChunkSpec {
    /// The chunk grid for `shape` with elements of `dtype`.
    pub fn resolve(&self, shape: &[usize], dtype: DType) -> accel_core::Result<Chunks> {
        match self {
            ChunkSpec::Auto => Chunks::auto(shape, dtype.size()),
            ChunkSpec::Edge(n) => Chunks::regular(shape, &vec![*n; shape.len()]),
            ChunkSpec::Shape(c) => Chunks::regular(shape, c),
            ChunkSpec::Explicit(c) => Chunks::explicit(shape, c.clone()),
            ChunkSpec::Invalid(msg) => Err(accel_core::Error::Chunks(msg.clone())),
        }
    }
}

#[track_caller]
pub(crate) fn leaf(name: &str, op: Op, shape: &[usize], dtype: DType, chunks: ChunkSpec) -> Array {
    match chunks.resolve(shape, dtype) {
        Ok(chunks) => Array::from_expr(
            op,
            vec![],
            Meta {
                shape: shape.to_vec(),
                dtype,
                chunks,
            },
        ),
        Err(e) => Array::build_error(name, e),
    }
}

/// A chunked array holding a copy of `data` (any dimensionality, any layout).
#[track_caller]
pub fn from_ndarray<T, S, D>(data: &ArrayBase<S, D>, chunks: impl Into<ChunkSpec>) -> Array
where
    T: Element,
    S: Data<Elem = T>,
    D: Dimension,
{
    let shape = data.shape().to_vec();
    let values: Vec<T> = data.iter().copied().collect();
    let host = HostArray {
        shape: shape.clone(),
        data: T::wrap(values),
    };
    leaf(
        "from_ndarray",
        Op::Source(Arc::new(host)),
        &shape,
        T::DTYPE,
        chunks.into(),
    )
}

/// Like [`from_ndarray`], but takes the array instead of copying it (no copy
/// at all when it is in standard row-major layout): for sources as large as
/// the machine's memory allows.
#[track_caller]
pub fn from_owned<T, D>(data: ndarray::Array<T, D>, chunks: impl Into<ChunkSpec>) -> Array
where
    T: Element,
    D: Dimension,
{
    let shape = data.shape().to_vec();
    let n = data.len();
    let values: Vec<T> = if data.is_standard_layout() {
        match data.into_raw_vec_and_offset() {
            (v, Some(off)) if off > 0 || v.len() != n => v[off..off + n].to_vec(),
            (v, _) => v,
        }
    } else {
        data.iter().copied().collect()
    };
    let host = HostArray {
        shape: shape.clone(),
        data: T::wrap(values),
    };
    leaf(
        "from_owned",
        Op::Source(Arc::new(host)),
        &shape,
        T::DTYPE,
        chunks.into(),
    )
}

/// An array with every element equal to `value` (its Rust type sets the dtype).
#[track_caller]
pub fn full(shape: &[usize], value: impl Into<Value>, chunks: impl Into<ChunkSpec>) -> Array {
    let v = value.into();
    leaf("full", Op::Full(v), shape, v.dtype(), chunks.into())
}

#[track_caller]
pub fn zeros(shape: &[usize], dtype: DType, chunks: impl Into<ChunkSpec>) -> Array {
    leaf(
        "zeros",
        Op::Full(Value::Bool(false).cast(dtype)),
        shape,
        dtype,
        chunks.into(),
    )
}

#[track_caller]
pub fn ones(shape: &[usize], dtype: DType, chunks: impl Into<ChunkSpec>) -> Array {
    leaf(
        "ones",
        Op::Full(Value::Bool(true).cast(dtype)),
        shape,
        dtype,
        chunks.into(),
    )
}

fn gen_leaf(name: &str, kind: GenKind, shape: &[usize], dtype: DType, chunks: ChunkSpec) -> Array {
    if dtype == DType::Bool || dtype == DType::C128 {
        return Array::failed(Error::Invalid(format!(
            "{name} cannot produce {dtype} values"
        )));
    }
    let g = Generator {
        kind,
        index: Affine::row_major(shape),
    };
    leaf(name, Op::Gen(g), shape, dtype, chunks)
}

/// `0, 1, …, n-1` as i64 (NumPy's `arange(n)`); `.astype(DType::F64)` gives floats.
#[track_caller]
pub fn arange(n: usize, chunks: impl Into<ChunkSpec>) -> Array {
    gen_leaf(
        "arange",
        GenKind::Arange {
            start: 0.0,
            step: 1.0,
        },
        &[n],
        DType::I64,
        chunks.into(),
    )
}

/// `start, start + step, …` up to (excluding) `stop`, in `dtype`.
#[track_caller]
pub fn arange_range(
    start: f64,
    stop: f64,
    step: f64,
    dtype: DType,
    chunks: impl Into<ChunkSpec>,
) -> Array {
    if step == 0.0 || !step.is_finite() || !start.is_finite() || !stop.is_finite() {
        return Array::failed(Error::Invalid(format!(
            "arange({start}, {stop}, {step}) needs finite bounds and a non-zero step"
        )));
    }
    let n = ((stop - start) / step).ceil().max(0.0) as usize;
    gen_leaf(
        "arange",
        GenKind::Arange { start, step },
        &[n],
        dtype,
        chunks.into(),
    )
}

/// `num` evenly spaced f64 values from `start` to `stop` inclusive (NumPy's linspace).
#[track_caller]
pub fn linspace(start: f64, stop: f64, num: usize, chunks: impl Into<ChunkSpec>) -> Array {
    gen_leaf(
        "linspace",
        GenKind::Linspace {
            start,
            stop,
            num: num as u64,
            endpoint: true,
        },
        &[num],
        DType::F64,
        chunks.into(),
    )
}

/// Broadcastable coordinate arrays like NumPy's `ogrid[a:b:n*1j, …]`: axis k
/// gets `linspace(start, stop, num)` shaped `(1, …, num, …, 1)`, chunked along
/// its own axis by `chunks[k]`.
pub fn ogrid(axes: &[(f64, f64, usize)], chunks: &[usize]) -> Vec<Array> {
    let nd = axes.len();
    axes.iter()
        .enumerate()
        .map(|(k, &(start, stop, num))| {
            let mut shape = vec![1; nd];
            shape[k] = num;
            let mut chunk = vec![1; nd];
            chunk[k] = chunks.get(k).copied().unwrap_or(num.max(1));
            let mut strides = vec![0; nd];
            strides[k] = 1;
            let g = Generator {
                kind: GenKind::Linspace {
                    start,
                    stop,
                    num: num as u64,
                    endpoint: true,
                },
                index: Affine { base: 0, strides },
            };
            leaf(
                "ogrid",
                Op::Gen(g),
                &shape,
                DType::F64,
                ChunkSpec::Shape(chunk),
            )
        })
        .collect()
}

/// Counter-based random numbers: a value depends only on (seed, draw, index),
/// so the same seed gives the same array for any chunking or worker count.
/// Each draw from one `Rng` is an independent stream.
#[derive(Clone, Debug)]
pub struct Rng {
    seed: u64,
    stream: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { seed, stream: 0 }
    }

    fn next_stream(&mut self) -> u64 {
        self.stream += 1;
        self.stream
    }

    /// Uniform f64 in `[low, high)`.
    #[track_caller]
    pub fn uniform(
        &mut self,
        shape: &[usize],
        low: f64,
        high: f64,
        chunks: impl Into<ChunkSpec>,
    ) -> Array {
        let kind = GenKind::Uniform {
            seed: self.seed,
            stream: self.next_stream(),
            low,
            high,
        };
        gen_leaf("uniform", kind, shape, DType::F64, chunks.into())
    }

    /// Uniform f64 in `[0, 1)`.
    #[track_caller]
    pub fn random(&mut self, shape: &[usize], chunks: impl Into<ChunkSpec>) -> Array {
        self.uniform(shape, 0.0, 1.0, chunks)
    }

    /// Normal f64 with the given mean and standard deviation.
    #[track_caller]
    pub fn normal(
        &mut self,
        shape: &[usize],
        mean: f64,
        std: f64,
        chunks: impl Into<ChunkSpec>,
    ) -> Array {
        let kind = GenKind::Normal {
            seed: self.seed,
            stream: self.next_stream(),
            mean,
            std,
        };
        gen_leaf("normal", kind, shape, DType::F64, chunks.into())
    }
}
