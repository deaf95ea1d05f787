//! What the stored-array tests share: the fixture generator's values, and
//! scratch paths.

#![allow(dead_code, clippy::unwrap_used)] // each test file uses its own part

use std::path::PathBuf;

use accel::{ChunkSpec, DType, DynArray, from_ndarray};
use ndarray::{ArrayD, IxDyn};
use num_complex::Complex64;

pub fn fixture(kind: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind)
        .join(name)
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("accel-storage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The fixture generator's values: a function of the flat C-order index.
pub fn values(dtype: DType, shape: &[usize]) -> DynArray {
    let n: usize = shape.iter().product();
    let sh = IxDyn(shape);
    let i = 0..n as i64;
    match dtype {
        DType::Bool => {
            DynArray::Bool(ArrayD::from_shape_vec(sh, i.map(|i| i % 3 == 0).collect()).unwrap())
        }
        DType::I32 => DynArray::I32(
            ArrayD::from_shape_vec(sh, i.map(|i| ((i * 7919) % 1000 - 500) as i32).collect())
                .unwrap(),
        ),
        DType::I64 => DynArray::I64(
            ArrayD::from_shape_vec(sh, i.map(|i| i * 1_000_003 - (1 << 40)).collect()).unwrap(),
        ),
        DType::F32 => DynArray::F32(
            ArrayD::from_shape_vec(sh, i.map(|i| (i as f64 * 0.25 - 3.0) as f32).collect())
                .unwrap(),
        ),
        DType::F64 => DynArray::F64(
            ArrayD::from_shape_vec(sh, i.map(|i| i as f64 * 0.1 + 1.0 / 3.0).collect()).unwrap(),
        ),
        DType::C128 => DynArray::C128(
            ArrayD::from_shape_vec(
                sh,
                i.map(|i| Complex64::new(i as f64 * 0.5, 0.0 - i as f64 * 0.25))
                    .collect(),
            )
            .unwrap(),
        ),
    }
}

/// The same values as a lazy array, chunked as asked.
pub fn array(v: &DynArray, chunks: &[usize]) -> accel::Array {
    let c = ChunkSpec::from(chunks.to_vec());
    match v {
        DynArray::Bool(a) => from_ndarray(a, c),
        DynArray::I32(a) => from_ndarray(a, c),
        DynArray::I64(a) => from_ndarray(a, c),
        DynArray::F32(a) => from_ndarray(a, c),
        DynArray::F64(a) => from_ndarray(a, c),
        DynArray::C128(a) => from_ndarray(a, c),
    }
}

pub const DTYPES: [(DType, &str); 6] = [
    (DType::Bool, "bool"),
    (DType::I32, "int32"),
    (DType::I64, "int64"),
    (DType::F32, "float32"),
    (DType::F64, "float64"),
    (DType::C128, "complex128"),
];
