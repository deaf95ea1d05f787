//! Linear algebra: `matmul`/`dot`/`tensordot` as blocked products summed in a
//! tree, and the helpers built from elementwise pieces (`outer`, `trace`,
//! `eye`, `tril`, `triu`).

use accel_core::op::Op;
use accel_core::{DType, infer};
use ndarray::{NewAxis, s};

use crate::create::{ChunkSpec, arange};
use crate::elementwise::where_;
use crate::expr::Array;
use crate::reduce::DEFAULT_SPLIT_EVERY;

/// The matrix product of 2-d arrays, NumPy's `a @ b`; a 1-d `a` is a row
/// vector and a 1-d `b` a column vector (their axis is dropped from the
/// result). Blocks of `a` and `b` are multiplied by one task each and the
/// partial products summed in a tree; the result is chunked like `a`'s rows
/// and `b`'s columns. Integers multiply exactly and give i64.
#[track_caller]
pub fn matmul(a: &Array, b: &Array) -> Array {
    matmul_with(a, b, DEFAULT_SPLIT_EVERY)
}

/// [`matmul`] with the fan-in of the tree that sums partial products.
#[track_caller]
pub fn matmul_with(a: &Array, b: &Array, split_every: usize) -> Array {
    let (na, nb) = match (a.ndim(), b.ndim()) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(e), _) | (_, Err(e)) => return Array::failed(e),
    };
    let a2 = if na == 1 {
        a.slice(s![NewAxis, ..])
    } else {
        a.clone()
    };
    let b2 = if nb == 1 {
        b.slice(s![.., NewAxis])
    } else {
        b.clone()
    };
    let product = Array::build("matmul", &[&a2, &b2], |m| {
        Ok((
            Op::MatMul { split_every },
            infer::matmul(m[0], m[1], split_every)?,
        ))
    });
    match (na, nb) {
        (1, 1) => product.slice(s![0, 0]),
        (1, _) => product.slice(s![0, ..]),
        (_, 1) => product.slice(s![.., 0]),
        _ => product,
    }
}

/// Sums over `axes_a` of `a` against `axes_b` of `b` (NumPy's `tensordot`
/// with explicit axes): the result's axes are `a`'s other axes, then `b`'s.
#[track_caller]
pub fn tensordot(a: &Array, b: &Array, axes_a: &[usize], axes_b: &[usize]) -> Array {
    let (sa, sb) = match (a.shape(), b.shape()) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(e), _) | (_, Err(e)) => return Array::failed(e),
    };
    let bad = |why: String| Array::build_error("tensordot", accel_core::Error::Shape(why));
    if axes_a.len() != axes_b.len()
        || axes_a.iter().any(|&x| x >= sa.len())
        || axes_b.iter().any(|&x| x >= sb.len())
    {
        return bad(format!(
            "axes {axes_a:?} of {sa:?} cannot pair with axes {axes_b:?} of {sb:?}"
        ));
    }
    if let Some(k) = (0..axes_a.len()).find(|&k| sa[axes_a[k]] != sb[axes_b[k]]) {
        return bad(format!(
            "axis {} of {sa:?} has length {} but axis {} of {sb:?} has {}",
            axes_a[k], sa[axes_a[k]], axes_b[k], sb[axes_b[k]]
        ));
    }
    let free_a: Vec<usize> = (0..sa.len()).filter(|d| !axes_a.contains(d)).collect();
    let free_b: Vec<usize> = (0..sb.len()).filter(|d| !axes_b.contains(d)).collect();
    let size = |s: &[usize], axes: &[usize]| axes.iter().map(|&d| s[d]).product::<usize>();
    let k = size(&sa, axes_a);
    let perm_a: Vec<usize> = free_a.iter().chain(axes_a).copied().collect();
    let perm_b: Vec<usize> = axes_b.iter().chain(&free_b).copied().collect();
    let a2 = a.permute_axes(&perm_a).reshape(&[size(&sa, &free_a), k]);
    let b2 = b.permute_axes(&perm_b).reshape(&[k, size(&sb, &free_b)]);
    let out: Vec<usize> = free_a
        .iter()
        .map(|&d| sa[d])
        .chain(free_b.iter().map(|&d| sb[d]))
        .collect();
    matmul(&a2, &b2).reshape(&out)
}

/// The outer product of two arrays (flattened): `out[i, j] = a[i] * b[j]`.
#[track_caller]
pub fn outer(a: &Array, b: &Array) -> Array {
    let flat = |x: &Array| match x.shape() {
        Ok(s) if s.len() == 1 => x.clone(),
        Ok(s) => x.reshape(&[s.iter().product()]),
        Err(e) => Array::failed(e),
    };
    flat(a).slice(s![.., NewAxis]) * flat(b).slice(s![NewAxis, ..])
}

/// The `n` × `n` identity matrix (f64), computed inside the kernels that use it.
#[track_caller]
pub fn eye(n: usize, chunks: impl Into<ChunkSpec>) -> Array {
    let chunks = chunks.into();
    let spec = match &chunks {
        ChunkSpec::Edge(c) => ChunkSpec::Edge(*c),
        ChunkSpec::Shape(v) if v.len() == 2 => ChunkSpec::Edge(v[0]),
        other => other.clone(),
    };
    let rows = arange(n, spec.clone()).slice(s![.., NewAxis]);
    let cols = match &chunks {
        ChunkSpec::Shape(v) if v.len() == 2 => arange(n, ChunkSpec::Edge(v[1])),
        _ => arange(n, spec),
    }
    .slice(s![NewAxis, ..]);
    rows.equal(&cols).astype(DType::F64)
}

impl Array {
    /// `self @ other` (see [`matmul`]).
    #[track_caller]
    pub fn dot(&self, other: &Array) -> Array {
        matmul(self, other)
    }

    /// The sum of the main diagonal of a 2-d array.
    #[track_caller]
    pub fn trace(&self) -> Array {
        self.diag().sum()
    }

    /// The lower triangle: elements with `col - row <= k`, zero elsewhere.
    #[track_caller]
    pub fn tril(&self, k: i64) -> Array {
        self.triangle(k, true)
    }

    /// The upper triangle: elements with `col - row >= k`, zero elsewhere.
    #[track_caller]
    pub fn triu(&self, k: i64) -> Array {
        self.triangle(k, false)
    }

    #[track_caller]
    fn triangle(&self, k: i64, lower: bool) -> Array {
        let chunks = match (self.ndim(), self.chunks()) {
            (Ok(2), Ok(c)) => c,
            (Err(e), _) | (Ok(2), Err(e)) => return Array::failed(e),
            (Ok(n), _) => {
                return Array::build_error(
                    if lower { "tril" } else { "triu" },
                    accel_core::Error::Shape(format!("needs a 2-d array, got {n} dimensions")),
                );
            }
        };
        let n_rows: usize = chunks[0].iter().sum();
        let n_cols: usize = chunks[1].iter().sum();
        let rows = arange(n_rows, ChunkSpec::Explicit(vec![chunks[0].clone()]));
        let cols = arange(n_cols, ChunkSpec::Explicit(vec![chunks[1].clone()]));
        let diff = cols.slice(s![NewAxis, ..]) - rows.slice(s![.., NewAxis]);
        let keep = if lower { diff.le(k) } else { diff.ge(k) };
        where_(&keep, self, 0)
    }
}
