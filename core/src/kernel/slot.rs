//! Block registers: one typed vector of block length per live SSA value.

use crate::dtype::{DType, Value};

/// A register's storage. Complex values are kept as separate real and imaginary
/// vectors so every loop over them is a plain f64 loop.
#[derive(Clone, Debug)]
pub enum Slot {
    Bool(Vec<bool>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    C128(Vec<f64>, Vec<f64>),
}

impl Default for Slot {
    fn default() -> Self {
        Slot::Bool(Vec::new())
    }
}

impl Slot {
    pub fn new(dtype: DType, len: usize) -> Slot {
        match dtype {
            DType::Bool => Slot::Bool(vec![false; len]),
            DType::I32 => Slot::I32(vec![0; len]),
            DType::I64 => Slot::I64(vec![0; len]),
            DType::F32 => Slot::F32(vec![0.0; len]),
            DType::F64 => Slot::F64(vec![0.0; len]),
            DType::C128 => Slot::C128(vec![0.0; len], vec![0.0; len]),
        }
    }

    /// A slot whose first `len` elements are `v`.
    pub fn splat(v: Value, len: usize) -> Slot {
        match v {
            Value::Bool(x) => Slot::Bool(vec![x; len]),
            Value::I32(x) => Slot::I32(vec![x; len]),
            Value::I64(x) => Slot::I64(vec![x; len]),
            Value::F32(x) => Slot::F32(vec![x; len]),
            Value::F64(x) => Slot::F64(vec![x; len]),
            Value::C128(c) => Slot::C128(vec![c.re; len], vec![c.im; len]),
        }
    }

    pub fn dtype(&self) -> DType {
        match self {
            Slot::Bool(_) => DType::Bool,
            Slot::I32(_) => DType::I32,
            Slot::I64(_) => DType::I64,
            Slot::F32(_) => DType::F32,
            Slot::F64(_) => DType::F64,
            Slot::C128(..) => DType::C128,
        }
    }

    /// Element `i` as a value.
    pub fn get(&self, i: usize) -> Value {
        match self {
            Slot::Bool(v) => Value::Bool(v[i]),
            Slot::I32(v) => Value::I32(v[i]),
            Slot::I64(v) => Value::I64(v[i]),
            Slot::F32(v) => Value::F32(v[i]),
            Slot::F64(v) => Value::F64(v[i]),
            Slot::C128(r, m) => Value::C128(num_complex::Complex64::new(r[i], m[i])),
        }
    }
}

/// A register's first `n` elements, or the same range of an input chunk read in place.
#[derive(Clone, Copy, Debug)]
pub enum View<'a> {
    Bool(&'a [bool]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    F32(&'a [f32]),
    F64(&'a [f64]),
    C128(&'a [f64], &'a [f64]),
}

/// Where an instruction writes: a register, or the output chunk itself.
#[derive(Debug)]
pub enum ViewMut<'a> {
    Bool(&'a mut [bool]),
    I32(&'a mut [i32]),
    I64(&'a mut [i64]),
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
    C128(&'a mut [f64], &'a mut [f64]),
}

impl Slot {
    pub fn view(&self, n: usize) -> View<'_> {
        match self {
            Slot::Bool(v) => View::Bool(&v[..n]),
            Slot::I32(v) => View::I32(&v[..n]),
            Slot::I64(v) => View::I64(&v[..n]),
            Slot::F32(v) => View::F32(&v[..n]),
            Slot::F64(v) => View::F64(&v[..n]),
            Slot::C128(r, i) => View::C128(&r[..n], &i[..n]),
        }
    }

    pub fn view_mut(&mut self, n: usize) -> ViewMut<'_> {
        match self {
            Slot::Bool(v) => ViewMut::Bool(&mut v[..n]),
            Slot::I32(v) => ViewMut::I32(&mut v[..n]),
            Slot::I64(v) => ViewMut::I64(&mut v[..n]),
            Slot::F32(v) => ViewMut::F32(&mut v[..n]),
            Slot::F64(v) => ViewMut::F64(&mut v[..n]),
            Slot::C128(r, i) => ViewMut::C128(&mut r[..n], &mut i[..n]),
        }
    }
}

impl<'a> View<'a> {
    /// Elements `start..start + n`.
    pub fn sub(&self, start: usize, n: usize) -> View<'a> {
        let r = start..start + n;
        match *self {
            View::Bool(v) => View::Bool(&v[r]),
            View::I32(v) => View::I32(&v[r]),
            View::I64(v) => View::I64(&v[r]),
            View::F32(v) => View::F32(&v[r]),
            View::F64(v) => View::F64(&v[r]),
            View::C128(re, im) => View::C128(&re[r.clone()], &im[r]),
        }
    }

    pub fn dtype(&self) -> DType {
        match self {
            View::Bool(_) => DType::Bool,
            View::I32(_) => DType::I32,
            View::I64(_) => DType::I64,
            View::F32(_) => DType::F32,
            View::F64(_) => DType::F64,
            View::C128(..) => DType::C128,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            View::Bool(v) => v.len(),
            View::I32(v) => v.len(),
            View::I64(v) => v.len(),
            View::F32(v) => v.len(),
            View::F64(v) => v.len(),
            View::C128(v, _) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as a value.
    pub fn get(&self, i: usize) -> Value {
        match self {
            View::Bool(v) => Value::Bool(v[i]),
            View::I32(v) => Value::I32(v[i]),
            View::I64(v) => Value::I64(v[i]),
            View::F32(v) => Value::F32(v[i]),
            View::F64(v) => Value::F64(v[i]),
            View::C128(r, m) => Value::C128(num_complex::Complex64::new(r[i], m[i])),
        }
    }
}

impl ViewMut<'_> {
    pub fn dtype(&self) -> DType {
        match self {
            ViewMut::Bool(_) => DType::Bool,
            ViewMut::I32(_) => DType::I32,
            ViewMut::I64(_) => DType::I64,
            ViewMut::F32(_) => DType::F32,
            ViewMut::F64(_) => DType::F64,
            ViewMut::C128(..) => DType::C128,
        }
    }
}
