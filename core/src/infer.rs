//! Type, shape and chunk inference: every node is checked when it is built.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::op::{BinaryOp, InAxis, Meta, ReduceOp, ReduceSpec, Remap, UnaryOp};
use crate::shape::{self, Chunks};

/// Result type of a unary op.
pub fn unary_dtype(op: UnaryOp, a: DType) -> Result<DType> {
    use UnaryOp::*;
    let refuse = |what: &str| {
        Err(Error::DType(format!(
            "{} is not defined for {a} operands{what}",
            op.name()
        )))
    };
    match op {
        Neg if a == DType::Bool => refuse("; use `not`"),
        Neg => Ok(a),
        Not if a != DType::Bool => refuse("; use a comparison to get a bool array"),
        Not => Ok(a),
        // Complex versions of these come from num-complex (principal branches, as NumPy).
        Sqrt | Exp | Log | Sin | Cos | Tan | Tanh | Arcsin | Arccos | Arctan | Sinh | Cosh
        | Log2 | Log10 => Ok(a.float_result()),
        Log1p | Expm1 if a.is_complex() => refuse("; use log(1 + z) or exp(z) - 1"),
        Log1p | Expm1 => Ok(a.float_result()),
        Sign if a == DType::Bool => refuse("; cast to a number type first"),
        Sign => Ok(a),
        IsNan | IsFinite => Ok(DType::Bool),
        Abs if a.is_complex() => Ok(DType::F64),
        Abs => Ok(a),
        Floor | Ceil if a.is_complex() => refuse(""),
        // NumPy 2 keeps integers integral: floor, ceil and round of an integer is itself.
        Floor | Ceil | Round => Ok(a),
        Re | Im if a.is_complex() => Ok(DType::F64),
        Re | Im => Ok(a),
        Powi(_) if a == DType::Bool => refuse(""),
        Powi(n) if n < 0 && !a.is_float() && !a.is_complex() => Err(Error::DType(format!(
            "integer arrays cannot be raised to the negative power {n}; cast to float first"
        ))),
        Powi(_) => Ok(a),
    }
}

/// The dtype a unary op computes in, given its operand's dtype `a`.
pub fn unary_operand_dtype(op: UnaryOp, a: DType) -> Result<DType> {
    use UnaryOp::*;
    let out = unary_dtype(op, a)?;
    Ok(match op {
        IsNan | IsFinite | Abs | Re | Im => a,
        _ if a.is_complex() => a,
        _ => out,
    })
}

/// The dtype both operands are converted to before a binary op, and its result dtype.
pub fn binary_dtypes(op: BinaryOp, a: DType, b: DType) -> Result<(DType, DType)> {
    use BinaryOp::*;
    let p = DType::promote(a, b);
    let refuse = |why: &str| {
        Err(Error::DType(format!(
            "{} of {a} and {b} operands is not supported{why}",
            op.symbol()
        )))
    };
    match op {
        Add | Sub | Mul if p == DType::Bool => {
            refuse("; use logical and/or, or astype() to a number type")
        }
        Add | Sub | Mul => Ok((p, p)),
        Div if p.is_float() || p.is_complex() => Ok((p, p)),
        Div => Ok((DType::F64, DType::F64)),
        Rem if p.is_complex() || p == DType::Bool => refuse(""),
        Rem => Ok((p, p)),
        Pow => Ok((p.float_result(), p.float_result())),
        Hypot | Arctan2 if p.is_complex() => refuse(" (defined for real numbers)"),
        Hypot | Arctan2 => Ok((p.float_result(), p.float_result())),
        FloorDiv if p.is_complex() => refuse(" (complex numbers are not ordered)"),
        FloorDiv if p == DType::Bool => refuse("; cast to a number type first"),
        FloorDiv => Ok((p, p)),
        Min | Max if p.is_complex() => refuse(" (complex numbers are not ordered)"),
        Min | Max => Ok((p, p)),
        Lt | Le | Gt | Ge if p.is_complex() => refuse(" (complex numbers are not ordered)"),
        Eq | Ne | Lt | Le | Gt | Ge => Ok((p, DType::Bool)),
        And | Or if a != DType::Bool || b != DType::Bool => {
            refuse("; logical and/or need bool operands")
        }
        And | Or => Ok((DType::Bool, DType::Bool)),
    }
}

/// Chunks of the broadcast result of several operands: non-broadcast axes must agree.
pub fn broadcast_metas(metas: &[&Meta]) -> Result<(Vec<usize>, Chunks)> {
    let mut out_shape: Vec<usize> = Vec::new();
    for m in metas {
        out_shape = shape::broadcast(&out_shape, &m.shape).ok_or_else(|| {
            Error::Shape(format!(
                "operands {} cannot be broadcast together",
                describe(metas)
            ))
        })?;
    }
    let nd = out_shape.len();
    let mut chunks: Vec<Option<Vec<usize>>> = vec![None; nd];
    for m in metas {
        let off = nd - m.shape.len();
        for (d, sizes) in m.chunks.0.iter().enumerate() {
            if m.shape[d] != out_shape[off + d] {
                continue; // broadcast axis
            }
            // The first operand spanning an axis sets its chunks; the kernel
            // reads the others' overlapping chunks (no rechunk tasks).
            if chunks[off + d].is_none() {
                chunks[off + d] = Some(sizes.clone());
            }
        }
    }
    let chunks = chunks
        .into_iter()
        .zip(&out_shape)
        .map(|(c, &n)| c.unwrap_or_else(|| vec![n]))
        .collect();
    Ok((out_shape, Chunks(chunks)))
}

fn describe(metas: &[&Meta]) -> String {
    metas
        .iter()
        .map(|m| m.to_string())
        .collect::<Vec<_>>()
        .join(" and ")
}

pub fn unary(op: UnaryOp, a: &Meta) -> Result<Meta> {
    Ok(Meta {
        dtype: unary_dtype(op, a.dtype)?,
        ..a.clone()
    })
}

pub fn binary(op: BinaryOp, a: &Meta, b: &Meta) -> Result<Meta> {
    let (_, dtype) = binary_dtypes(op, a.dtype, b.dtype)
        .map_err(|e| Error::DType(format!("{} ({a} and {b})", strip(&e))))?;
    let (shape, chunks) = broadcast_metas(&[a, b])?;
    Ok(Meta {
        shape,
        dtype,
        chunks,
    })
}

pub fn where_(c: &Meta, a: &Meta, b: &Meta) -> Result<Meta> {
    if c.dtype != DType::Bool {
        return Err(Error::DType(format!(
            "where() needs a bool condition, got {c}"
        )));
    }
    let (shape, chunks) = broadcast_metas(&[c, a, b])?;
    Ok(Meta {
        shape,
        dtype: DType::promote(a.dtype, b.dtype),
        chunks,
    })
}

pub fn cast(a: &Meta, dtype: DType) -> Meta {
    Meta { dtype, ..a.clone() }
}

/// Result dtype of a reduction.
pub fn reduce_dtype(op: ReduceOp, a: DType) -> Result<DType> {
    use ReduceOp::*;
    let refuse = || {
        Err(Error::DType(format!(
            "{} is not supported for {a} arrays",
            op.name()
        )))
    };
    match op {
        Sum | Prod if a.is_complex() && op == Prod => refuse(),
        Sum | Prod if a == DType::Bool || a.is_int() => Ok(DType::I64),
        Sum | Prod => Ok(a),
        Mean => Ok(a.float_result()),
        Min | Max | Var(_) | Std(_) if a.is_complex() => refuse(),
        Min | Max => Ok(a),
        Var(_) | Std(_) => Ok(a.float_result()),
        Any | All => Ok(DType::Bool),
        ArgMin | ArgMax if a.is_complex() => refuse(),
        ArgMin | ArgMax => Ok(DType::I64),
    }
}

pub fn reduce(a: &Meta, spec: &ReduceSpec) -> Result<Meta> {
    let nd = a.shape.len();
    if let Some(&bad) = spec.axes.iter().find(|&&ax| ax >= nd) {
        return Err(Error::Invalid(format!(
            "axis {bad} is out of bounds for an array of {nd} dimensions ({a})"
        )));
    }
    if spec.axes.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::Invalid(format!(
            "reduction axes {:?} must be sorted and distinct",
            spec.axes
        )));
    }
    if spec.split_every < 2 {
        return Err(Error::Invalid(format!(
            "split_every must be at least 2, got {}",
            spec.split_every
        )));
    }
    let dtype = reduce_dtype(spec.op, a.dtype)?;
    let reduced: usize = spec.axes.iter().map(|&ax| a.shape[ax]).product();
    if reduced == 0
        && matches!(
            spec.op,
            ReduceOp::Min | ReduceOp::Max | ReduceOp::ArgMin | ReduceOp::ArgMax
        )
    {
        return Err(Error::Invalid(format!(
            "{} of an empty selection of {a} has no identity",
            spec.op.name()
        )));
    }
    let mut shape = Vec::new();
    let mut chunks = Vec::new();
    for d in 0..nd {
        if spec.axes.contains(&d) {
            if spec.keepdims {
                shape.push(1);
                chunks.push(vec![1]);
            }
        } else {
            shape.push(a.shape[d]);
            chunks.push(a.chunks.0[d].clone());
        }
    }
    Ok(Meta {
        shape,
        dtype,
        chunks: Chunks(chunks),
    })
}

/// Meta of a structural view. `chunks` overrides the natural chunking (rechunk).
pub fn remap(a: &Meta, map: &Remap, out_shape: &[usize], chunks: Option<Chunks>) -> Result<Meta> {
    if map.axes.len() != a.shape.len() {
        return Err(Error::Graph(format!(
            "remap addresses {} axes of a {}-d input",
            map.axes.len(),
            a.shape.len()
        )));
    }
    let empty = out_shape.contains(&0);
    for (d, ax) in map.axes.iter().enumerate() {
        let n_in = a.shape[d] as i64;
        let (lo, hi) = match ax.src {
            None => (ax.base, ax.base),
            Some((j, c)) => {
                let Some(&n) = out_shape.get(j) else {
                    return Err(Error::Graph(format!("remap refers to output axis {j}")));
                };
                if n == 0 {
                    continue;
                }
                let last = ax.base + c * (n as i64 - 1);
                (ax.base.min(last), ax.base.max(last))
            }
        };
        if !empty && (lo < 0 || hi >= n_in) {
            return Err(Error::Shape(format!(
                "index range {lo}..={hi} is out of bounds for axis {d} of length {n_in} ({a})"
            )));
        }
    }
    let chunks = match chunks {
        Some(c) => {
            if c.shape() != out_shape {
                return Err(Error::Chunks(format!(
                    "chunks {:?} do not match shape {out_shape:?}",
                    c.0
                )));
            }
            c
        }
        None => natural_remap_chunks(a, map, out_shape),
    };
    Ok(Meta {
        shape: out_shape.to_vec(),
        dtype: a.dtype,
        chunks,
    })
}

/// Output chunk boundaries where the addressed input crosses one of its chunk boundaries.
fn natural_remap_chunks(a: &Meta, map: &Remap, out_shape: &[usize]) -> Chunks {
    let offsets = a.chunks.offsets();
    let mut dims = Vec::with_capacity(out_shape.len());
    for (j, &n) in out_shape.iter().enumerate() {
        let mut cuts: Vec<usize> = Vec::new();
        for (d, ax) in map.axes.iter().enumerate() {
            let Some((src, c)) = ax.src else { continue };
            if src != j || c == 0 {
                continue;
            }
            for &b in &offsets[d][1..offsets[d].len() - 1] {
                let b = b as i64;
                // First output position whose input coordinate lies on the other side of b.
                let pos = if c > 0 {
                    (b - ax.base + c - 1).div_euclid(c)
                } else {
                    (ax.base - b).div_euclid(-c) + 1
                };
                if pos > 0 && (pos as usize) < n {
                    cuts.push(pos as usize);
                }
            }
        }
        cuts.sort_unstable();
        cuts.dedup();
        let mut sizes = Vec::with_capacity(cuts.len() + 1);
        let mut prev = 0;
        for c in cuts {
            sizes.push(c - prev);
            prev = c;
        }
        sizes.push(n - prev);
        dims.push(sizes);
    }
    Chunks(dims)
}

pub fn concat(inputs: &[&Meta], axis: usize) -> Result<Meta> {
    let Some(first) = inputs.first() else {
        return Err(Error::Invalid(
            "concatenate needs at least one array".into(),
        ));
    };
    let nd = first.shape.len();
    if axis >= nd {
        return Err(Error::Invalid(format!(
            "axis {axis} is out of bounds for {nd}-d arrays"
        )));
    }
    // Off the axis, the first array's chunks; the others are read box by box.
    let mut chunks = first.chunks.0.clone();
    let mut shape = first.shape.clone();
    chunks[axis].clear();
    shape[axis] = 0;
    for m in inputs {
        let same_rank = m.shape.len() == nd;
        let same_dtype = m.dtype == first.dtype;
        let same_other = same_rank && (0..nd).all(|d| d == axis || m.shape[d] == first.shape[d]);
        if !same_rank || !same_dtype || !same_other {
            return Err(Error::Shape(format!(
                "cannot concatenate {first} and {m} along axis {axis}"
            )));
        }
        shape[axis] += m.shape[axis];
        chunks[axis].extend(m.chunks.0[axis].iter().copied().filter(|&s| s > 0));
    }
    if chunks[axis].is_empty() {
        chunks[axis].push(0);
    }
    Ok(Meta {
        shape,
        dtype: first.dtype,
        chunks: Chunks(chunks),
    })
}

/// A cumulative sum or product along `axis`: same shape and chunks; the
/// dtype a sum or product of the elements has (integers and bools give i64).
pub fn scan(a: &Meta, op: ReduceOp, axis: usize) -> Result<Meta> {
    if !matches!(op, ReduceOp::Sum | ReduceOp::Prod) {
        return Err(Error::Invalid(format!(
            "cumulative {} is not defined; use sum or prod",
            op.name()
        )));
    }
    if axis >= a.shape.len() {
        return Err(Error::Invalid(format!(
            "axis {axis} is out of bounds for {a}"
        )));
    }
    Ok(Meta {
        dtype: reduce_dtype(op, a.dtype)?,
        ..a.clone()
    })
}

/// An elementwise loop over `[init.., next.., stop]` (see `Op::Loop`): each
/// next value has its state's dtype, the flag is bool, and the result spans
/// the broadcast of everything (values the body captures from outside widen
/// its next values).
pub fn loop_(inputs: &[&Meta], states: u32, result: u32) -> Result<Meta> {
    let s = states as usize;
    if s == 0 || inputs.len() != 2 * s + 1 || result >= states {
        return Err(Error::Graph(format!(
            "a loop of {states} state variables over {} inputs returning variable {result}",
            inputs.len()
        )));
    }
    for k in 0..s {
        if inputs[s + k].dtype != inputs[k].dtype {
            return Err(Error::DType(format!(
                "loop state {k} starts as {} but the body makes it {}",
                inputs[k].dtype,
                inputs[s + k].dtype
            )));
        }
    }
    if inputs[2 * s].dtype != DType::Bool {
        return Err(Error::DType(format!(
            "a loop's stop condition must be bool, got {}",
            inputs[2 * s]
        )));
    }
    let (shape, chunks) = broadcast_metas(inputs)?;
    Ok(Meta {
        shape,
        dtype: inputs[result as usize].dtype,
        chunks,
    })
}

/// `a @ b` for 2-d `a` (m × k) and `b` (k × n): m × n, rows chunked like
/// `a`'s and columns like `b`'s; the contraction follows `a`'s chunks (`b`
/// is read box by box where it is chunked otherwise).
pub fn matmul(a: &Meta, b: &Meta, split_every: usize) -> Result<Meta> {
    if a.shape.len() != 2 || b.shape.len() != 2 {
        return Err(Error::Shape(format!(
            "matmul multiplies 2-d arrays, got {a} and {b}"
        )));
    }
    if a.shape[1] != b.shape[0] {
        return Err(Error::Shape(format!(
            "matmul of {a} and {b}: {} columns against {} rows",
            a.shape[1], b.shape[0]
        )));
    }
    if split_every < 2 {
        return Err(Error::Invalid(format!(
            "split_every must be at least 2, got {split_every}"
        )));
    }
    let dtype = match DType::promote(a.dtype, b.dtype) {
        DType::Bool => {
            return Err(Error::DType(format!(
                "matmul of bool arrays ({a} and {b}) is not supported; cast to a number type"
            )));
        }
        // Integer products accumulate exactly in i64, as sums of integers do.
        DType::I32 => DType::I64,
        d => d,
    };
    Ok(Meta {
        shape: vec![a.shape[0], b.shape[1]],
        dtype,
        chunks: Chunks(vec![a.chunks.0[0].clone(), b.chunks.0[1].clone()]),
    })
}

pub fn reshape(a: &Meta, shape: &[usize]) -> Result<Meta> {
    // Checked: products that wrap would let any two shapes match.
    let elements = shape::checked_size(&a.shape)?;
    if shape::checked_size(shape)? != elements {
        return Err(Error::Shape(format!(
            "cannot reshape {a} ({elements} elements) into shape {shape:?}"
        )));
    }
    let target = shape::size(&a.chunks.max_chunk());
    Ok(Meta {
        shape: shape.to_vec(),
        dtype: a.dtype,
        chunks: Chunks::auto_elems(shape, target)?,
    })
}

/// The standard remap that selects the diagonal of a 2-d array.
pub fn diag_remap(a: &Meta) -> Result<(Remap, Vec<usize>)> {
    if a.shape.len() != 2 {
        return Err(Error::Shape(format!(
            "diag of a 2-d array was expected, got {a}"
        )));
    }
    let n = a.shape[0].min(a.shape[1]);
    let ax = InAxis {
        base: 0,
        src: Some((0, 1)),
    };
    Ok((Remap { axes: vec![ax, ax] }, vec![n]))
}

fn strip(e: &Error) -> String {
    match e {
        Error::DType(s) | Error::Shape(s) | Error::Chunks(s) | Error::Invalid(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A shift keeps shape, dtype and chunks; one offset and one boundary per axis.
pub fn shift(a: &Meta, offset: &[i64], boundary: &[crate::op::Boundary]) -> Result<Meta> {
    let nd = a.shape.len();
    if nd == 0 {
        return Err(Error::Shape(
            "a stencil needs an array of at least one dimension, got a scalar".into(),
        ));
    }
    if offset.len() != nd || boundary.len() != nd {
        return Err(Error::Shape(format!(
            "a {nd}-d array needs one offset and one boundary per axis, got offset {offset:?} and {} boundaries",
            boundary.len()
        )));
    }
    for (d, (&o, b)) in offset.iter().zip(boundary).enumerate() {
        let n = a.shape[d] as u64;
        // (An empty array has nothing to read: any offset gives an empty result.)
        if o.unsigned_abs() > n && !a.shape.contains(&0) {
            return Err(Error::Shape(format!(
                "offset {o} along axis {d} reaches past the whole axis of length {n}"
            )));
        }
        if let crate::op::Boundary::Constant(v) = b
            && !v.is_finite()
            && !a.dtype.is_float()
            && !a.dtype.is_complex()
        {
            return Err(Error::DType(format!(
                "boundary constant {v} cannot be stored in {}",
                a.dtype
            )));
        }
    }
    Ok(a.clone())
}

/// `keep_edges(new, old)`: both alike, one depth per axis.
pub fn keep_edges(new: &Meta, old: &Meta, depth: &[usize]) -> Result<Meta> {
    if new.shape != old.shape || new.dtype != old.dtype || new.chunks != old.chunks {
        return Err(Error::Shape(format!(
            "keep_edges needs two alike arrays, got {new} and {old}"
        )));
    }
    if depth.len() != new.shape.len() {
        return Err(Error::Shape(format!(
            "keep_edges on a {}-d array needs one depth per axis, got {depth:?}",
            new.shape.len()
        )));
    }
    Ok(new.clone())
}
