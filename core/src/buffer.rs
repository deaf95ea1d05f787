//! Typed, contiguous element storage for chunks and host arrays.

use num_complex::Complex64;

use crate::dtype::{DType, Value};
use crate::memory::zeroed_vec;

/// Row-major elements of one dtype.
#[derive(Clone, Debug, PartialEq)]
pub enum Buffer {
    Bool(Vec<bool>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    C128(Vec<Complex64>),
}

/// Runs `$body` with `$v` bound to the inner Vec, whatever the variant.
#[macro_export]
macro_rules! with_buffer {
    ($buf:expr, $v:ident => $body:expr) => {
        match $buf {
            $crate::buffer::Buffer::Bool($v) => $body,
            $crate::buffer::Buffer::I32($v) => $body,
            $crate::buffer::Buffer::I64($v) => $body,
            $crate::buffer::Buffer::F32($v) => $body,
            $crate::buffer::Buffer::F64($v) => $body,
            $crate::buffer::Buffer::C128($v) => $body,
        }
    };
}

impl Buffer {
    /// `len` copies of the zero value of `dtype`.
    pub fn zeros(dtype: DType, len: usize) -> Buffer {
        match dtype {
            DType::Bool => Buffer::Bool(zeroed_vec(false, len)),
            DType::I32 => Buffer::I32(zeroed_vec(0, len)),
            DType::I64 => Buffer::I64(zeroed_vec(0, len)),
            DType::F32 => Buffer::F32(zeroed_vec(0.0, len)),
            DType::F64 => Buffer::F64(zeroed_vec(0.0, len)),
            DType::C128 => Buffer::C128(zeroed_vec(Complex64::new(0.0, 0.0), len)),
        }
    }

    /// [`Buffer::zeros`] with its memory mapped now, in parallel (see
    /// [`crate::memory::populate_parallel`]): for large results that tasks
    /// then fill chunk by chunk from several threads.
    pub fn zeros_populated(dtype: DType, len: usize) -> Buffer {
        let mut b = Buffer::zeros(dtype, len);
        let bytes = len * dtype.size();
        let start = with_buffer!(&mut b, v => v.as_mut_ptr() as *mut u8);
        // SAFETY: the buffer was just zeroed and is owned here; zero bytes
        // are a valid element of every dtype.
        unsafe { crate::memory::populate_parallel(start, bytes) };
        b
    }

    /// `len` copies of `v`.
    pub fn filled(v: Value, len: usize) -> Buffer {
        match v {
            Value::Bool(x) => Buffer::Bool(vec![x; len]),
            Value::I32(x) => Buffer::I32(vec![x; len]),
            Value::I64(x) => Buffer::I64(vec![x; len]),
            Value::F32(x) => Buffer::F32(vec![x; len]),
            Value::F64(x) => Buffer::F64(vec![x; len]),
            Value::C128(x) => Buffer::C128(vec![x; len]),
        }
    }

    pub fn dtype(&self) -> DType {
        match self {
            Buffer::Bool(_) => DType::Bool,
            Buffer::I32(_) => DType::I32,
            Buffer::I64(_) => DType::I64,
            Buffer::F32(_) => DType::F32,
            Buffer::F64(_) => DType::F64,
            Buffer::C128(_) => DType::C128,
        }
    }

    pub fn len(&self) -> usize {
        with_buffer!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn nbytes(&self) -> usize {
        self.len() * self.dtype().size()
    }

    /// Element `i` as a typed value.
    pub fn get(&self, i: usize) -> Option<Value> {
        Some(match self {
            Buffer::Bool(v) => Value::Bool(*v.get(i)?),
            Buffer::I32(v) => Value::I32(*v.get(i)?),
            Buffer::I64(v) => Value::I64(*v.get(i)?),
            Buffer::F32(v) => Value::F32(*v.get(i)?),
            Buffer::F64(v) => Value::F64(*v.get(i)?),
            Buffer::C128(v) => Value::C128(*v.get(i)?),
        })
    }

    /// A new buffer with `self[idx[k]]` at position k.
    pub fn gather(&self, idx: &[usize]) -> Buffer {
        match self {
            Buffer::Bool(v) => Buffer::Bool(idx.iter().map(|&i| v[i]).collect()),
            Buffer::I32(v) => Buffer::I32(idx.iter().map(|&i| v[i]).collect()),
            Buffer::I64(v) => Buffer::I64(idx.iter().map(|&i| v[i]).collect()),
            Buffer::F32(v) => Buffer::F32(idx.iter().map(|&i| v[i]).collect()),
            Buffer::F64(v) => Buffer::F64(idx.iter().map(|&i| v[i]).collect()),
            Buffer::C128(v) => Buffer::C128(idx.iter().map(|&i| v[i]).collect()),
        }
    }
}

/// Element types that live in a [`Buffer`]: the bridge to typed `ndarray` arrays.
pub trait Element: Copy + Send + Sync + 'static {
    const DTYPE: DType;
    fn wrap(v: Vec<Self>) -> Buffer;
    fn unwrap(b: Buffer) -> Option<Vec<Self>>;
    fn slice(b: &Buffer) -> Option<&[Self]>;
}

macro_rules! element {
    ($t:ty, $variant:ident) => {
        impl Element for $t {
            const DTYPE: DType = DType::$variant;
            fn wrap(v: Vec<Self>) -> Buffer {
                Buffer::$variant(v)
            }
            fn unwrap(b: Buffer) -> Option<Vec<Self>> {
                match b {
                    Buffer::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn slice(b: &Buffer) -> Option<&[Self]> {
                match b {
                    Buffer::$variant(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}
element!(bool, Bool);
element!(i32, I32);
element!(i64, I64);
element!(f32, F32);
element!(f64, F64);
element!(Complex64, C128);

pub use crate::chunk::{Chunk, DeviceCopy};
