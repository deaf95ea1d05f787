//! Single `.npy` files: the header is read (or written) once, when the plan
//! is made; each task then reads or writes only its own box, as runs of
//! contiguous elements at computed file offsets (positioned I/O, no seeking
//! state shared between tasks).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::buffer::Buffer;
use crate::dtype::DType;
use crate::shape;

use super::StorageError;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Where the elements are and how they are laid out.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NpyLayout {
    /// Byte offset of the first element.
    pub data_offset: u64,
    /// Column-major (the last axis varies slowest).
    pub fortran_order: bool,
    /// Elements stored big-endian.
    pub big_endian: bool,
}

fn err(path: &Path, message: impl Into<String>) -> StorageError {
    StorageError::new(path, message)
}

/// The descr string of a dtype, and back.
fn descr(dtype: DType) -> &'static str {
    match dtype {
        DType::Bool => "|b1",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::C128 => "<c16",
    }
}

fn parse_descr(path: &Path, d: &str) -> Result<(DType, bool), StorageError> {
    // The first character, whatever its width (a header is untrusted text).
    let first = d.chars().next().map_or(0, char::len_utf8);
    let (order, code) = d.split_at(first);
    let big = match order {
        "<" | "|" | "=" => false,
        ">" => true,
        _ => {
            return Err(err(
                path,
                format!("malformed .npy header: unreadable dtype {d:?}"),
            ));
        }
    };
    let dtype = match code {
        "b1" => DType::Bool,
        "i4" => DType::I32,
        "i8" => DType::I64,
        "f4" => DType::F32,
        "f8" => DType::F64,
        "c16" => DType::C128,
        _ => {
            return Err(err(
                path,
                format!(
                    "dtype {d:?} is not supported (bool, int32, int64, float32, float64, complex128 are)"
                ),
            ));
        }
    };
    Ok((dtype, big))
}

/// The value of `key` in the header dictionary, as written by NumPy.
fn field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

/// Reads the header of the `.npy` file at `path`.
pub fn open(path: &Path) -> Result<(Vec<usize>, DType, NpyLayout), StorageError> {
    let mut f = File::open(path).map_err(|e| err(path, e.to_string()))?;
    let mut pre = [0u8; 10];
    f.read_exact(&mut pre)
        .map_err(|_| err(path, "not a .npy file (too short)"))?;
    if &pre[..6] != MAGIC {
        return Err(err(path, "not a .npy file (no \\x93NUMPY magic)"));
    }
    let (len, start) = match pre[6] {
        1 => (u16::from_le_bytes([pre[8], pre[9]]) as usize, 10),
        2 | 3 => {
            let mut b = [0u8; 2];
            f.read_exact(&mut b)
                .map_err(|_| err(path, "truncated .npy header"))?;
            (
                u32::from_le_bytes([pre[8], pre[9], b[0], b[1]]) as usize,
                12,
            )
        }
        v => {
            return Err(err(
                path,
                format!(".npy format version {v} is not supported"),
            ));
        }
    };
    if len > 1 << 20 {
        return Err(err(path, "malformed .npy header (too long)"));
    }
    let mut h = vec![0u8; len];
    f.read_exact(&mut h)
        .map_err(|_| err(path, "truncated .npy header"))?;
    let header = String::from_utf8_lossy(&h);
    let bad = || err(path, format!("malformed .npy header {header:?}"));
    let d = field(&header, "descr")
        .ok_or_else(bad)?
        .trim_matches(['\'', '"']);
    let (dtype, big_endian) = parse_descr(path, d)?;
    let fortran_order = match field(&header, "fortran_order").ok_or_else(bad)? {
        "True" => true,
        "False" => false,
        _ => return Err(bad()),
    };
    let dims = field(&header, "shape").ok_or_else(bad)?;
    let shape: Vec<usize> = dims
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let data_offset = (start + len) as u64;
    // Untrusted sizes: a product past u64 is a malformed header, not a
    // wrapped number that passes the check below.
    let need = shape
        .iter()
        .try_fold(dtype.size() as u64, |n, &d| n.checked_mul(d as u64))
        .and_then(|n| n.checked_add(data_offset))
        .ok_or_else(|| {
            err(
                path,
                format!("malformed .npy header: shape {shape:?} is too large"),
            )
        })?;
    let have = f.metadata().map_err(|e| err(path, e.to_string()))?.len();
    if have < need {
        return Err(err(
            path,
            format!("truncated: {have} bytes, the header promises {need}"),
        ));
    }
    Ok((
        shape,
        dtype,
        NpyLayout {
            data_offset,
            fortran_order,
            big_endian,
        },
    ))
}

/// Creates (or replaces) `path` as a C-order `.npy` file of `shape` and
/// `dtype`, every element zero until written.
pub fn create(path: &Path, shape: &[usize], dtype: DType) -> Result<NpyLayout, StorageError> {
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {dims}, }}",
        descr(dtype)
    );
    // Version 1.0; the data starts at a multiple of 64 bytes, the header ends with '\n'.
    let total = (10 + header.len() + 1).div_ceil(64) * 64;
    header.push_str(&" ".repeat(total - 10 - header.len() - 1));
    header.push('\n');
    let mut bytes = Vec::with_capacity(total);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&[1, 0]);
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    let f = File::create(path).map_err(|e| err(path, e.to_string()))?;
    f.write_all_at(&bytes, 0)
        .and_then(|_| f.set_len(total as u64 + (shape::size(shape) * dtype.size()) as u64))
        .map_err(|e| err(path, e.to_string()))?;
    Ok(NpyLayout {
        data_offset: total as u64,
        fortran_order: false,
        big_endian: false,
    })
}

/// Runs of elements of the box (`origin`, `local`) of an array of `shape`
/// that are contiguous in the file: (element offset in the file, offset in
/// the row-major box, length). In C order a run is a row of the box; in
/// Fortran order a run goes down axis 0.
fn runs(
    shape: &[usize],
    fortran: bool,
    origin: &[usize],
    local: &[usize],
    mut f: impl FnMut(usize, usize, usize, usize) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    let nd = shape.len();
    if shape::size(local) == 0 {
        return Ok(());
    }
    if nd == 0 {
        return f(0, 0, 1, 1);
    }
    // File strides, and the axis along which runs go.
    let (fstrides, axis) = if fortran {
        let mut s = vec![1usize; nd];
        for k in 1..nd {
            s[k] = s[k - 1] * shape[k - 1];
        }
        (s, 0)
    } else {
        (shape::strides(shape), nd - 1)
    };
    let bstrides = shape::strides(local);
    let len = local[axis];
    let mut idx = vec![0usize; nd];
    loop {
        let file: usize = (0..nd).map(|k| (origin[k] + idx[k]) * fstrides[k]).sum();
        let at: usize = (0..nd).map(|k| idx[k] * bstrides[k]).sum();
        f(file, at, len, bstrides[axis])?;
        // Next run: advance every axis but the run's.
        let mut k = nd;
        loop {
            if k == 0 {
                return Ok(());
            }
            k -= 1;
            if k == axis {
                continue;
            }
            idx[k] += 1;
            if idx[k] < local[k] {
                break;
            }
            idx[k] = 0;
        }
    }
}

/// Reads the box (`origin`, `local`) of the stored array.
pub fn read_box(
    path: &Path,
    shape: &[usize],
    dtype: DType,
    layout: &NpyLayout,
    origin: &[usize],
    local: &[usize],
) -> Result<Buffer, StorageError> {
    let f = File::open(path).map_err(|e| err(path, e.to_string()))?;
    let size = dtype.size();
    let mut out = Buffer::zeros(dtype, shape::size(local));
    let mut run = Vec::new();
    runs(
        shape,
        layout.fortran_order,
        origin,
        local,
        |file, at, len, step| {
            run.resize(len * size, 0);
            f.read_exact_at(&mut run, layout.data_offset + (file * size) as u64)
                .map_err(|e| err(path, format!("reading: {e}")))?;
            if layout.big_endian {
                swap_elements(&mut run, dtype);
            }
            if step == 1 {
                out.write_le_bytes(at * size, &run)
            } else {
                (0..len).try_for_each(|i| {
                    out.write_le_bytes((at + i * step) * size, &run[i * size..(i + 1) * size])
                })
            }
            .map_err(|e| err(path, e.to_string()))
        },
    )?;
    Ok(out)
}

/// Writes `data` (row-major, of shape `local`) into the box at `origin`.
pub fn write_box(
    path: &Path,
    shape: &[usize],
    layout: &NpyLayout,
    origin: &[usize],
    local: &[usize],
    data: &Buffer,
) -> Result<(), StorageError> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| err(path, e.to_string()))?;
    let size = data.dtype().size();
    let bytes = data.le_bytes();
    let mut run = Vec::new();
    runs(
        shape,
        layout.fortran_order,
        origin,
        local,
        |file, at, len, step| {
            run.clear();
            if step == 1 {
                run.extend_from_slice(&bytes[at * size..(at + len) * size]);
            } else {
                for i in 0..len {
                    let e = (at + i * step) * size;
                    run.extend_from_slice(&bytes[e..e + size]);
                }
            }
            if layout.big_endian {
                swap_elements(&mut run, data.dtype());
            }
            f.write_all_at(&run, layout.data_offset + (file * size) as u64)
                .map_err(|e| err(path, format!("writing: {e}")))
        },
    )
}

/// Reverses the bytes of every element (complex: of each half).
fn swap_elements(bytes: &mut [u8], dtype: DType) {
    let unit = match dtype {
        DType::C128 => 8,
        d => d.size(),
    };
    for e in bytes.chunks_exact_mut(unit) {
        e.reverse();
    }
}
