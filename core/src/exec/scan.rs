//! Blocked cumulative sums and products: each chunk scanned alone, a chain of
//! carries along the axis (one slab per chunk), then each chunk combined with
//! the carry it receives.

use num_complex::Complex64;

use crate::buffer::{Buffer, Chunk};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::op::ReduceOp;
use crate::shape;

fn wrong(what: String) -> Error {
    Error::Task {
        task: "scan".into(),
        message: format!("internal: {what}"),
    }
}

/// `(outer, n, inner)`: the shape seen as outer × n (the axis) × inner.
fn split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape::size(&shape[..axis]),
        shape[axis],
        shape::size(&shape[axis + 1..]),
    )
}

/// The values converted to the scan's dtype (bools and integers to i64).
pub fn to_dtype(b: &Buffer, dtype: DType) -> Result<Buffer> {
    Ok(match (b, dtype) {
        (b, d) if b.dtype() == d => b.clone(),
        (Buffer::Bool(v), DType::I64) => Buffer::I64(v.iter().map(|&x| i64::from(x)).collect()),
        (Buffer::I32(v), DType::I64) => Buffer::I64(v.iter().map(|&x| i64::from(x)).collect()),
        (b, d) => return Err(wrong(format!("a {} chunk in a {d} scan", b.dtype()))),
    })
}

/// Scans `data` (row-major `shape`) in place along `axis`.
pub fn scan_in_place(op: ReduceOp, data: &mut Buffer, shape: &[usize], axis: usize) -> Result<()> {
    let (outer, n, inner) = split(shape, axis);
    fn run<T: Copy>(v: &mut [T], outer: usize, n: usize, inner: usize, f: impl Fn(T, T) -> T) {
        for o in 0..outer {
            let base = o * n * inner;
            for i in 1..n {
                let (prev, cur) =
                    v[base + (i - 1) * inner..base + (i + 1) * inner].split_at_mut(inner);
                for (c, &p) in cur.iter_mut().zip(prev.iter()) {
                    *c = f(p, *c);
                }
            }
        }
    }
    match data {
        Buffer::I64(v) => run(v, outer, n, inner, |x: i64, y: i64| match op {
            ReduceOp::Prod => x.wrapping_mul(y),
            _ => x.wrapping_add(y),
        }),
        Buffer::F64(v) => run(v, outer, n, inner, |x: f64, y: f64| match op {
            ReduceOp::Prod => x * y,
            _ => x + y,
        }),
        Buffer::F32(v) => run(v, outer, n, inner, |x: f32, y: f32| match op {
            ReduceOp::Prod => x * y,
            _ => x + y,
        }),
        Buffer::C128(v) => run(v, outer, n, inner, |x: Complex64, y: Complex64| match op {
            ReduceOp::Prod => x * y,
            _ => x + y,
        }),
        other => return Err(wrong(format!("scan of {} values", other.dtype()))),
    }
    Ok(())
}

/// The carry into the next chunk along the axis: `carry ⊕ last slab of
/// local` (shape of `local` with the axis cut to 1); `None` for the first
/// chunk, which carries in the identity.
pub fn next_carry(
    op: ReduceOp,
    axis: usize,
    dtype: DType,
    carry_shape: &[usize],
    prev: Option<(&Chunk, &Chunk)>,
) -> Result<Buffer> {
    let Some((carry, local)) = prev else {
        let one = if op == ReduceOp::Prod { 1.0 } else { 0.0 };
        return Ok(Buffer::filled(
            crate::dtype::Value::F64(one).cast(dtype),
            shape::size(carry_shape),
        ));
    };
    let (outer, n, inner) = split(&local.shape, axis);
    let slab: Vec<usize> = (0..outer)
        .flat_map(|o| (0..inner).map(move |j| (o * n + n - 1) * inner + j))
        .collect();
    let last = local.data()?.gather(&slab);
    if carry.data()?.len() != last.len() {
        return Err(wrong(
            "a carry of another shape than its chunk's slab".into(),
        ));
    }
    // The carry is one slab: applying it to the slab is the same operation.
    let slab_chunk = Chunk::array(carry.shape.clone(), last);
    apply(op, axis, &slab_chunk, carry)
}

/// `local ⊕ carry`, the carry broadcast along the axis.
pub fn apply(op: ReduceOp, axis: usize, local: &Chunk, carry: &Chunk) -> Result<Buffer> {
    let (outer, n, inner) = split(&local.shape, axis);
    if carry.data()?.len() != outer * inner {
        return Err(wrong(
            "a carry of another shape than its chunk's slab".into(),
        ));
    }
    fn add<T: Copy>(
        v: &[T],
        c: &[T],
        (outer, n, inner): (usize, usize, usize),
        f: impl Fn(T, T) -> T,
    ) -> Vec<T> {
        let mut out = Vec::with_capacity(v.len());
        for o in 0..outer {
            let carry = &c[o * inner..(o + 1) * inner];
            for i in 0..n {
                let row = &v[(o * n + i) * inner..(o * n + i + 1) * inner];
                out.extend(row.iter().zip(carry).map(|(&x, &k)| f(k, x)));
            }
        }
        out
    }
    let dims = (outer, n, inner);
    Ok(match (local.data()?, carry.data()?) {
        (Buffer::I64(a), Buffer::I64(b)) => Buffer::I64(add(a, b, dims, |x: i64, y: i64| {
            if op == ReduceOp::Prod {
                x.wrapping_mul(y)
            } else {
                x.wrapping_add(y)
            }
        })),
        (Buffer::F64(a), Buffer::F64(b)) => Buffer::F64(add(a, b, dims, |x: f64, y: f64| {
            if op == ReduceOp::Prod { x * y } else { x + y }
        })),
        (Buffer::F32(a), Buffer::F32(b)) => Buffer::F32(add(a, b, dims, |x: f32, y: f32| {
            if op == ReduceOp::Prod { x * y } else { x + y }
        })),
        (Buffer::C128(a), Buffer::C128(b)) => {
            Buffer::C128(add(a, b, dims, |x: Complex64, y: Complex64| {
                if op == ReduceOp::Prod { x * y } else { x + y }
            }))
        }
        (a, b) => {
            return Err(wrong(format!(
                "applying a {} carry to a {} chunk",
                b.dtype(),
                a.dtype()
            )));
        }
    })
}
