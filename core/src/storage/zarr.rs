//! Zarr arrays (v2 and v3, read; v3, written) on a filesystem, through the
//! `zarrs` crate. The array's metadata is read or created once, when the plan
//! is made, and travels in the plan as JSON: a task rebuilds the array from
//! it without touching the store's metadata, then reads the storage chunks
//! that overlap its box, or writes whole storage chunks.

use std::path::Path;
use std::sync::Arc;

use num_complex::Complex64;
use zarrs::array::{
    Array, ArrayBuilder, ArrayMetadata, ArraySubset, BytesToBytesCodecTraits, CodecOptions,
    FillValueMetadata, data_type,
};
use zarrs::filesystem::FilesystemStore;

use crate::buffer::Buffer;
use crate::dtype::DType;

use super::StorageError;

/// What a task needs to use the array: its metadata, and its storage chunks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ZarrLayout {
    /// The array's metadata document (`.zarray` or `zarr.json`), as JSON.
    pub metadata: String,
    /// Shape of a storage chunk.
    pub chunks: Vec<usize>,
}

/// How chunks are compressed in a Zarr array accel creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    None,
    /// zstd at this level (1–22).
    #[default]
    Zstd3,
    Zstd(i32),
    /// gzip at this level (0–9).
    Gzip(u32),
}

fn err(path: &Path, message: impl std::fmt::Display) -> StorageError {
    StorageError::new(path, message.to_string())
}

fn store(path: &Path) -> Result<Arc<FilesystemStore>, StorageError> {
    // Every array opened after this decodes zstd within its chunks' size.
    super::zarr_guard::install();
    FilesystemStore::new(path)
        .map(Arc::new)
        .map_err(|e| err(path, e))
}

/// Options of every read and write: one codec thread, since the tasks
/// already keep every core busy.
fn options() -> CodecOptions {
    CodecOptions::default().with_concurrent_target(1)
}

fn dtype_of(path: &Path, meta: &serde_json::Value) -> Result<DType, StorageError> {
    let name = meta
        .get("data_type")
        .or_else(|| meta.get("dtype"))
        .and_then(|v| v.as_str())
        .ok_or_else(|| err(path, "the array metadata has no data type"))?;
    Ok(match name {
        "bool" | "|b1" => DType::Bool,
        "int32" | "<i4" => DType::I32,
        "int64" | "<i8" => DType::I64,
        "float32" | "<f4" => DType::F32,
        "float64" | "<f8" => DType::F64,
        "complex128" | "<c16" => DType::C128,
        other => {
            return Err(err(
                path,
                format!(
                    "data type {other:?} is not supported (bool, int32, int64, float32, float64, complex128 are)"
                ),
            ));
        }
    })
}

fn chunks_of(path: &Path, meta: &serde_json::Value) -> Result<Vec<usize>, StorageError> {
    let v = meta
        .get("chunks")
        .or_else(|| meta.pointer("/chunk_grid/configuration/chunk_shape"))
        .and_then(|v| v.as_array())
        .ok_or_else(|| err(path, "only regular chunk grids are supported"))?;
    v.iter()
        .map(|x| {
            x.as_u64()
                .and_then(|x| usize::try_from(x).ok())
                .filter(|&x| x > 0)
                .ok_or_else(|| err(path, "malformed chunk shape"))
        })
        .collect()
}

/// Reads the metadata of the Zarr array at `path`.
pub fn open(path: &Path) -> Result<(Vec<usize>, DType, ZarrLayout), StorageError> {
    if !path.is_dir() {
        return Err(err(path, "no such Zarr store (not a directory)"));
    }
    let array = Array::open(store(path)?, "/").map_err(|e| err(path, e))?;
    let json = serde_json::to_value(array.metadata()).map_err(|e| err(path, e))?;
    let dtype = dtype_of(path, &json)?;
    let chunks = chunks_of(path, &json)?;
    let shape = array
        .shape()
        .iter()
        .map(|&x| usize::try_from(x).map_err(|_| err(path, "array too large")))
        .collect::<Result<Vec<_>, _>>()?;
    if chunks.len() != shape.len() {
        return Err(err(
            path,
            "the chunk shape does not match the array's dimensions",
        ));
    }
    let metadata = serde_json::to_string(&json).map_err(|e| err(path, e))?;
    Ok((shape, dtype, ZarrLayout { metadata, chunks }))
}

/// Creates (or replaces) a Zarr v3 array at `path`: metadata only, every
/// chunk absent (reading as zero) until written.
pub fn create(
    path: &Path,
    shape: &[usize],
    dtype: DType,
    chunks: &[usize],
    compression: Compression,
) -> Result<ZarrLayout, StorageError> {
    if chunks.len() != shape.len() || chunks.contains(&0) {
        return Err(err(
            path,
            format!("storage chunks {chunks:?} do not fit shape {shape:?}"),
        ));
    }
    if path.exists() {
        std::fs::remove_dir_all(path).map_err(|e| err(path, e))?;
    }
    std::fs::create_dir_all(path).map_err(|e| err(path, e))?;
    let dims = |v: &[usize]| v.iter().map(|&x| x as u64).collect::<Vec<u64>>();
    let dt = match dtype {
        DType::Bool => data_type::bool(),
        DType::I32 => data_type::int32(),
        DType::I64 => data_type::int64(),
        DType::F32 => data_type::float32(),
        DType::F64 => data_type::float64(),
        DType::C128 => data_type::complex128(),
    };
    let zero = || FillValueMetadata::Number(0.into());
    let fill = match dtype {
        DType::Bool => FillValueMetadata::Bool(false),
        DType::C128 => FillValueMetadata::Array(vec![zero(), zero()]),
        _ => zero(),
    };
    let mut builder = ArrayBuilder::new(dims(shape), dims(chunks), dt, fill);
    use zarrs::array::codec::{GzipCodec, ZstdCodec};
    let codecs: Vec<Arc<dyn BytesToBytesCodecTraits>> = match compression {
        Compression::None => vec![],
        Compression::Zstd3 => vec![Arc::new(ZstdCodec::new(3, false))],
        Compression::Zstd(level) => vec![Arc::new(ZstdCodec::new(level, false))],
        Compression::Gzip(level) => {
            vec![Arc::new(GzipCodec::new(level).map_err(|e| err(path, e))?)]
        }
    };
    builder.bytes_to_bytes_codecs(codecs);
    let array = builder.build(store(path)?, "/").map_err(|e| err(path, e))?;
    array.store_metadata().map_err(|e| err(path, e))?;
    let json = serde_json::to_string(array.metadata()).map_err(|e| err(path, e))?;
    Ok(ZarrLayout {
        metadata: json,
        chunks: chunks.to_vec(),
    })
}

/// The array, rebuilt from the metadata in the plan.
fn array(path: &Path, layout: &ZarrLayout) -> Result<Array<FilesystemStore>, StorageError> {
    let meta: ArrayMetadata =
        serde_json::from_str(&layout.metadata).map_err(|e| err(path, format!("metadata: {e}")))?;
    Array::new_with_metadata(store(path)?, "/", meta).map_err(|e| err(path, e))
}

fn subset(origin: &[usize], local: &[usize]) -> ArraySubset {
    let ranges: Vec<std::ops::Range<u64>> = origin
        .iter()
        .zip(local)
        .map(|(&o, &l)| o as u64..(o + l) as u64)
        .collect();
    ArraySubset::new_with_ranges(&ranges)
}

/// Reads the box (`origin`, `local`): the storage chunks overlapping it are
/// decoded, only its elements kept.
pub fn read_box(
    path: &Path,
    dtype: DType,
    layout: &ZarrLayout,
    origin: &[usize],
    local: &[usize],
) -> Result<Buffer, StorageError> {
    let a = array(path, layout)?;
    let s = subset(origin, local);
    let opts = options();
    let e = |x| err(path, x);
    Ok(match dtype {
        DType::Bool => Buffer::Bool(
            a.retrieve_array_subset_opt::<Vec<bool>>(&s, &opts)
                .map_err(e)?,
        ),
        DType::I32 => Buffer::I32(
            a.retrieve_array_subset_opt::<Vec<i32>>(&s, &opts)
                .map_err(e)?,
        ),
        DType::I64 => Buffer::I64(
            a.retrieve_array_subset_opt::<Vec<i64>>(&s, &opts)
                .map_err(e)?,
        ),
        DType::F32 => Buffer::F32(
            a.retrieve_array_subset_opt::<Vec<f32>>(&s, &opts)
                .map_err(e)?,
        ),
        DType::F64 => Buffer::F64(
            a.retrieve_array_subset_opt::<Vec<f64>>(&s, &opts)
                .map_err(e)?,
        ),
        DType::C128 => Buffer::C128(
            a.retrieve_array_subset_opt::<Vec<Complex64>>(&s, &opts)
                .map_err(e)?,
        ),
    })
}

/// Writes `data` into the box (`origin`, `local`), which covers whole
/// storage chunks (or runs to the array's edge), so no other task's chunk is
/// read or touched.
pub fn write_box(
    path: &Path,
    layout: &ZarrLayout,
    origin: &[usize],
    local: &[usize],
    data: &Buffer,
) -> Result<(), StorageError> {
    // Writing a chunk creates the directories above it: a store removed
    // while this task ran (its job failed and the client cleaned its staging
    // store up) would come back as litter holding one chunk.
    if !path.is_dir() {
        return Err(err(
            path,
            "no Zarr store at this path here: it was removed, or this worker does not \
             share the filesystem it was created on",
        ));
    }
    let a = array(path, layout)?;
    let s = subset(origin, local);
    let opts = options();
    let r = match data {
        Buffer::Bool(v) => a.store_array_subset_opt(&s, v.as_slice(), &opts),
        Buffer::I32(v) => a.store_array_subset_opt(&s, v.as_slice(), &opts),
        Buffer::I64(v) => a.store_array_subset_opt(&s, v.as_slice(), &opts),
        Buffer::F32(v) => a.store_array_subset_opt(&s, v.as_slice(), &opts),
        Buffer::F64(v) => a.store_array_subset_opt(&s, v.as_slice(), &opts),
        Buffer::C128(v) => a.store_array_subset_opt(&s, v.as_slice(), &opts),
    };
    r.map_err(|e| err(path, format!("writing: {e}")))
}
