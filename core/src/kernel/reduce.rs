//! Reductions: per-chunk partial states accumulated inside the fused kernel,
//! combined in a tree, and finalized into the result dtype.
//!
//! Partial state columns (all with the partial's shape):
//! sum/prod/min/max/any/all → `[acc]`; mean → `[sum, count]`;
//! var/std → `[count, mean, m2]` (merged with Chan's formula);
//! argmin/argmax → `[best value, its index]` (ties go to the smaller index).

use num_complex::Complex64;

use super::exec::{Bound, internal};
use super::generate::fill_index;
use super::slot::{Slot, View};
use crate::buffer::{Buffer, Chunk};
use crate::dtype::DType;
use crate::error::Result;
use crate::op::{ReduceOp, ReduceSpec};
use crate::shape;

/// Elements per parallel part of a partial reduction. Fixed, so the summation
/// order (and hence the result) does not depend on the number of threads.
pub const PART: usize = 1 << 15;
/// Cap on the elements of all per-part accumulators of one chunk.
const ACC_BUDGET: usize = 1 << 22;

/// The dtype values are converted to before they are accumulated.
pub fn acc_dtype(op: ReduceOp, input: DType) -> DType {
    match op {
        ReduceOp::Sum | ReduceOp::Prod | ReduceOp::Mean if input.is_complex() => DType::C128,
        ReduceOp::Sum | ReduceOp::Prod if input.is_int() || input == DType::Bool => DType::I64,
        ReduceOp::Sum | ReduceOp::Prod | ReduceOp::Mean | ReduceOp::Var(_) | ReduceOp::Std(_) => {
            DType::F64
        }
        ReduceOp::Min | ReduceOp::Max | ReduceOp::ArgMin | ReduceOp::ArgMax => input,
        ReduceOp::Any | ReduceOp::All => DType::Bool,
    }
}

/// Accumulators of one part.
#[derive(Clone, Debug)]
enum Acc {
    /// sum/prod/min/max/any/all, and the sum of mean.
    Plain(Slot),
    /// var/std: count, Σ(x - shift), Σ(x - shift)².
    Moments {
        count: Vec<f64>,
        s: Vec<f64>,
        ss: Vec<f64>,
    },
    /// argmin/argmax: the best value so far and its index.
    Arg { best: Slot, index: Vec<i64> },
    /// Float sum/mean/var/std, accumulated exactly.
    Exact(super::exact_reduce::ExactAcc),
}

fn identity(op: ReduceOp, dtype: DType, len: usize) -> Slot {
    use crate::dtype::Value;
    let v = match (op, dtype) {
        (ReduceOp::Prod, DType::I64) => Value::I64(1),
        (ReduceOp::Prod, _) => Value::F64(1.0),
        (ReduceOp::All, _) => Value::Bool(true),
        (ReduceOp::Min | ReduceOp::ArgMin, d) => max_value(d),
        (ReduceOp::Max | ReduceOp::ArgMax, d) => min_value(d),
        (_, d) => Value::Bool(false).cast(d),
    };
    Slot::splat(v, len)
}

fn max_value(d: DType) -> crate::dtype::Value {
    use crate::dtype::Value;
    match d {
        DType::Bool => Value::Bool(true),
        DType::I32 => Value::I32(i32::MAX),
        DType::I64 => Value::I64(i64::MAX),
        DType::F32 => Value::F32(f32::INFINITY),
        _ => Value::F64(f64::INFINITY),
    }
}

fn min_value(d: DType) -> crate::dtype::Value {
    use crate::dtype::Value;
    match d {
        DType::Bool => Value::Bool(false),
        DType::I32 => Value::I32(i32::MIN),
        DType::I64 => Value::I64(i64::MIN),
        DType::F32 => Value::F32(f32::NEG_INFINITY),
        _ => Value::F64(f64::NEG_INFINITY),
    }
}

/// Folds `vals` into `acc[dst[k]]` (or into `acc[0]` when `dst` is None).
fn fold<T: Copy>(acc: &mut [T], vals: &[T], dst: Option<&[i64]>, id: T, f: impl Fn(T, T) -> T) {
    match dst {
        None => {
            // Eight independent lanes: vectorizes, and the order is fixed.
            let mut lanes = [id; 8];
            let mut it = vals.chunks_exact(8);
            for c in &mut it {
                for l in 0..8 {
                    lanes[l] = f(lanes[l], c[l]);
                }
            }
            let mut total = id;
            for l in lanes {
                total = f(total, l);
            }
            for &v in it.remainder() {
                total = f(total, v);
            }
            acc[0] = f(acc[0], total);
        }
        Some(dst) => {
            for (&d, &v) in dst.iter().zip(vals) {
                acc[d as usize] = f(acc[d as usize], v);
            }
        }
    }
}

fn nan_min<T: PartialOrd + Copy>(a: T, b: T) -> T {
    // NaN propagates: a NaN in either operand wins (x != x only for NaN).
    #[allow(clippy::eq_op)]
    if a != a || b < a { b } else { a }
}

fn nan_max<T: PartialOrd + Copy>(a: T, b: T) -> T {
    #[allow(clippy::eq_op)]
    if a != a || b > a { b } else { a }
}

/// Whether value `v` at index `i` beats the best `b` at index `j`: NaN beats
/// every number (NumPy reports the first NaN), equal values go to the smaller index.
#[inline]
#[allow(clippy::eq_op)] // x != x only for NaN
fn beats<T: PartialOrd + Copy>(v: T, i: i64, b: T, j: i64, min: bool) -> bool {
    let (v_nan, b_nan) = (v != v, b != b);
    if b_nan {
        return v_nan && i < j;
    }
    if v_nan {
        return true;
    }
    if if min { v < b } else { v > b } {
        true
    } else {
        v == b && i < j
    }
}

/// Folds values `vals` at global indices `at` into the best of `dst[k]` (or of 0).
fn arg_fold<T: PartialOrd + Copy>(
    best: &mut [T],
    index: &mut [i64],
    vals: &[T],
    at: &[i64],
    dst: Option<&[i64]>,
    min: bool,
) {
    for k in 0..vals.len() {
        let d = dst.map_or(0, |d| d[k] as usize);
        if beats(vals[k], at[k], best[d], index[d], min) {
            best[d] = vals[k];
            index[d] = at[k];
        }
    }
}

/// `arg_fold` over matching slot and view types.
fn arg_accumulate(
    min: bool,
    best: &mut Slot,
    index: &mut [i64],
    vals: View<'_>,
    at: &[i64],
    dst: Option<&[i64]>,
) -> Result<()> {
    let n = at.len();
    match (best, vals) {
        (Slot::F64(b), View::F64(v)) => arg_fold(b, index, &v[..n], at, dst, min),
        (Slot::F32(b), View::F32(v)) => arg_fold(b, index, &v[..n], at, dst, min),
        (Slot::I64(b), View::I64(v)) => arg_fold(b, index, &v[..n], at, dst, min),
        (Slot::I32(b), View::I32(v)) => arg_fold(b, index, &v[..n], at, dst, min),
        (Slot::Bool(b), View::Bool(v)) => arg_fold(b, index, &v[..n], at, dst, min),
        (b, v) => {
            return Err(internal(format!(
                "arg reduction of {} values into {}",
                v.dtype(),
                b.dtype()
            )));
        }
    }
    Ok(())
}

fn accumulate(
    op: ReduceOp,
    acc: &mut Acc,
    vals: View<'_>,
    dst: Option<&[i64]>,
    n: usize,
    shift: f64,
) -> Result<()> {
    use ReduceOp::*;
    match (acc, vals) {
        (Acc::Exact(e), View::F64(v)) => e.add(&v[..n], dst)?,
        (Acc::Moments { count, s, ss }, View::F64(v)) => {
            let v = &v[..n];
            match dst {
                None => {
                    let (mut a, mut b) = ([0.0f64; 4], [0.0f64; 4]);
                    let mut it = v.chunks_exact(4);
                    for c in &mut it {
                        for l in 0..4 {
                            let d = c[l] - shift;
                            a[l] += d;
                            b[l] += d * d;
                        }
                    }
                    for &x in it.remainder() {
                        let d = x - shift;
                        a[0] += d;
                        b[0] += d * d;
                    }
                    count[0] += n as f64;
                    s[0] += a.iter().sum::<f64>();
                    ss[0] += b.iter().sum::<f64>();
                }
                Some(dst) => {
                    for (&i, &x) in dst.iter().zip(v) {
                        let d = x - shift;
                        count[i as usize] += 1.0;
                        s[i as usize] += d;
                        ss[i as usize] += d * d;
                    }
                }
            }
        }
        (Acc::Plain(a), v) => match (op, a, v) {
            (Sum | Mean, Slot::F64(a), View::F64(v)) => fold(a, &v[..n], dst, 0.0, |x, y| x + y),
            (Sum | Mean, Slot::I64(a), View::I64(v)) => {
                fold(a, &v[..n], dst, 0, |x: i64, y| x.wrapping_add(y))
            }
            (Sum | Mean, Slot::C128(ar, ai), View::C128(vr, vi)) => {
                fold(ar, &vr[..n], dst, 0.0, |x, y| x + y);
                fold(ai, &vi[..n], dst, 0.0, |x, y| x + y);
            }
            (Prod, Slot::F64(a), View::F64(v)) => fold(a, &v[..n], dst, 1.0, |x, y| x * y),
            (Prod, Slot::I64(a), View::I64(v)) => {
                fold(a, &v[..n], dst, 1, |x: i64, y| x.wrapping_mul(y))
            }
            (Min, Slot::F64(a), View::F64(v)) => fold(a, &v[..n], dst, f64::INFINITY, nan_min),
            (Min, Slot::F32(a), View::F32(v)) => fold(a, &v[..n], dst, f32::INFINITY, nan_min),
            (Min, Slot::I64(a), View::I64(v)) => fold(a, &v[..n], dst, i64::MAX, nan_min),
            (Min, Slot::I32(a), View::I32(v)) => fold(a, &v[..n], dst, i32::MAX, nan_min),
            (Min | All, Slot::Bool(a), View::Bool(v)) => fold(a, &v[..n], dst, true, |x, y| x & y),
            (Max, Slot::F64(a), View::F64(v)) => fold(a, &v[..n], dst, f64::NEG_INFINITY, nan_max),
            (Max, Slot::F32(a), View::F32(v)) => fold(a, &v[..n], dst, f32::NEG_INFINITY, nan_max),
            (Max, Slot::I64(a), View::I64(v)) => fold(a, &v[..n], dst, i64::MIN, nan_max),
            (Max, Slot::I32(a), View::I32(v)) => fold(a, &v[..n], dst, i32::MIN, nan_max),
            (Max | Any, Slot::Bool(a), View::Bool(v)) => fold(a, &v[..n], dst, false, |x, y| x | y),
            (op, a, v) => {
                return Err(internal(format!(
                    "{} cannot accumulate {} into {}",
                    op.name(),
                    v.dtype(),
                    a.dtype()
                )));
            }
        },
        (_, v) => return Err(internal(format!("moments of {} values", v.dtype()))),
    }
    Ok(())
}

/// Merges accumulator `b` into `a` (same op, same shape), in order.
fn merge(op: ReduceOp, a: &mut Acc, b: &Acc) -> Result<()> {
    match (a, b) {
        (Acc::Exact(a), Acc::Exact(b)) => {
            a.merge(b);
            Ok(())
        }
        (
            Acc::Moments { count, s, ss },
            Acc::Moments {
                count: c2,
                s: s2,
                ss: ss2,
            },
        ) => {
            for i in 0..count.len() {
                count[i] += c2[i];
                s[i] += s2[i];
                ss[i] += ss2[i];
            }
            Ok(())
        }
        (Acc::Plain(a), Acc::Plain(b)) => merge_plain(op, a, b),
        (
            Acc::Arg { best, index },
            Acc::Arg {
                best: b2,
                index: i2,
            },
        ) => {
            let dst: Vec<i64> = (0..index.len() as i64).collect();
            let min = op == ReduceOp::ArgMin;
            arg_accumulate(min, best, index, b2.view(i2.len()), i2, Some(&dst))
        }
        _ => Err(internal("mismatched accumulators".into())),
    }
}

fn slot_len(s: &Slot) -> usize {
    match s {
        Slot::Bool(v) => v.len(),
        Slot::I32(v) => v.len(),
        Slot::I64(v) => v.len(),
        Slot::F32(v) => v.len(),
        Slot::F64(v) => v.len(),
        Slot::C128(v, _) => v.len(),
    }
}

/// Elementwise `a = a ⊕ b`.
fn merge_plain(op: ReduceOp, a: &mut Slot, b: &Slot) -> Result<()> {
    let idx: Vec<i64> = (0..slot_len(a) as i64).collect();
    let mut acc = Acc::Plain(std::mem::take(a));
    let r = accumulate(op, &mut acc, b.view(idx.len()), Some(&idx), idx.len(), 0.0);
    if let Acc::Plain(s) = acc {
        *a = s;
    }
    r
}

fn slot_to_buffer(s: Slot) -> Buffer {
    match s {
        Slot::Bool(v) => Buffer::Bool(v),
        Slot::I32(v) => Buffer::I32(v),
        Slot::I64(v) => Buffer::I64(v),
        Slot::F32(v) => Buffer::F32(v),
        Slot::F64(v) => Buffer::F64(v),
        Slot::C128(re, im) => Buffer::C128(
            re.into_iter()
                .zip(im)
                .map(|(r, i)| Complex64::new(r, i))
                .collect(),
        ),
    }
}

fn buffer_to_slot(b: &Buffer) -> Slot {
    match b {
        Buffer::Bool(v) => Slot::Bool(v.clone()),
        Buffer::I32(v) => Slot::I32(v.clone()),
        Buffer::I64(v) => Slot::I64(v.clone()),
        Buffer::F32(v) => Slot::F32(v.clone()),
        Buffer::F64(v) => Slot::F64(v.clone()),
        Buffer::C128(v) => Slot::C128(
            v.iter().map(|z| z.re).collect(),
            v.iter().map(|z| z.im).collect(),
        ),
    }
}

fn f64_col(c: &Chunk, k: usize) -> Result<&[f64]> {
    match c.cols()?.get(k) {
        Some(Buffer::F64(v)) => Ok(v),
        _ => Err(internal(format!(
            "partial state column {k} is missing or not f64"
        ))),
    }
}

fn i64_col(c: &Chunk, k: usize) -> Result<&[i64]> {
    match c.cols()?.get(k) {
        Some(Buffer::I64(v)) => Ok(v),
        _ => Err(internal(format!(
            "partial state column {k} is missing or not i64"
        ))),
    }
}

/// `(base, strides)` giving an element's index among the reduced axes of the
/// whole array from its coordinates within the bound chunk.
fn arg_index_map(bound: &Bound<'_>, axes: &[usize]) -> (i64, Vec<i64>) {
    let global = bound.global_shape();
    let mut strides = vec![0i64; global.len()];
    let mut s = 1i64;
    for &ax in axes.iter().rev() {
        if let Some(st) = strides.get_mut(ax) {
            *st = s;
            s = s.saturating_mul(global[ax] as i64);
        }
    }
    let base = bound
        .origin
        .iter()
        .zip(&strides)
        .map(|(&o, &st)| o * st)
        .sum();
    (base, strides)
}

/// Shape of the partial state of a chunk of `local_shape`.
pub fn partial_shape(local_shape: &[usize], axes: &[usize]) -> Vec<usize> {
    local_shape
        .iter()
        .enumerate()
        .map(|(d, &n)| if axes.contains(&d) { 1 } else { n })
        .collect()
}

/// Evaluates a bound kernel over its chunk and reduces it to a partial state.
pub fn run_partial(bound: &Bound<'_>, spec: &ReduceSpec) -> Result<Chunk> {
    let local = bound.local_shape.clone();
    let len = shape::size(&local);
    let pshape = partial_shape(&local, &spec.axes);
    let plen = shape::size(&pshape);
    let reduced_extent = len.checked_div(plen).unwrap_or(0);
    let mut dst_strides: Vec<i64> = shape::strides(&pshape)
        .into_iter()
        .map(|s| s as i64)
        .collect();
    for &ax in &spec.axes {
        dst_strides[ax] = 0;
    }
    let scatter = plen > 1;
    let value_dtype = bound.root_dtype();
    let exact = super::exact_reduce::is_exact(spec.op, value_dtype);
    let moments = !exact && matches!(spec.op, ReduceOp::Var(_) | ReduceOp::Std(_));
    let shift = if moments && len > 0 {
        bound.value_at(0)?.as_f64()
    } else {
        0.0
    };
    let arg = spec.op.is_arg();
    // Global index of an element among the reduced axes (row-major over them).
    let (arg_base, arg_strides) = arg_index_map(bound, &spec.axes);
    let new_acc = || {
        if arg {
            Acc::Arg {
                best: identity(spec.op, value_dtype, plen),
                index: vec![i64::MAX; plen],
            }
        } else if exact {
            Acc::Exact(super::exact_reduce::ExactAcc::new(spec.op, plen))
        } else if moments {
            Acc::Moments {
                count: vec![0.0; plen],
                s: vec![0.0; plen],
                ss: vec![0.0; plen],
            }
        } else {
            Acc::Plain(identity(spec.op, value_dtype, plen))
        }
    };
    // An exact accumulator weighs about as much as 130 plain ones.
    let weight = if exact { 130 } else { 1 };
    let max_parts = (ACC_BUDGET / weight / plen.max(1)).max(1);
    // Exact parts are longer: each drains a 32 KiB table once.
    let part = if exact { 8 * PART } else { PART };
    let part_len = part.max(len.div_ceil(max_parts));
    let parts = bound.fold_parts(
        part_len,
        || (new_acc(), Vec::<i64>::new(), Vec::<i64>::new()),
        |(acc, idx, at), start, slot, n| {
            if let Acc::Arg { best, index } = acc {
                at.resize(n, 0);
                fill_index(arg_base, &arg_strides, &local, start, at);
                let dst = if scatter {
                    idx.resize(n, 0);
                    fill_index(0, &dst_strides, &local, start, idx);
                    Some(idx.as_slice())
                } else {
                    None
                };
                arg_accumulate(spec.op == ReduceOp::ArgMin, best, index, slot, at, dst)
            } else if scatter {
                idx.resize(n, 0);
                fill_index(0, &dst_strides, &local, start, idx);
                accumulate(spec.op, acc, slot, Some(idx), n, shift)
            } else {
                accumulate(spec.op, acc, slot, None, n, shift)
            }
        },
    )?;
    // The first part is the total so far (one part: no merge at all).
    let mut parts = parts.into_iter().map(|(acc, _, _)| acc);
    let mut total = parts.next().unwrap_or_else(new_acc);
    if let Acc::Exact(e) = &mut total {
        e.flush(); // in place: no copy of its tables
    }
    for mut acc in parts {
        if let Acc::Exact(e) = &mut acc {
            e.flush();
        }
        merge(spec.op, &mut total, &acc)?;
    }
    let cols = match total {
        Acc::Exact(e) => e.into_cols(spec.op, reduced_extent as f64),
        Acc::Arg { best, index } => vec![slot_to_buffer(best), Buffer::I64(index)],
        Acc::Plain(slot) => {
            let acc = slot_to_buffer(slot);
            if spec.op == ReduceOp::Mean {
                vec![acc, Buffer::F64(vec![reduced_extent as f64; plen])]
            } else {
                vec![acc]
            }
        }
        Acc::Moments { count, s, ss } => {
            let mut mean = vec![0.0; plen];
            let mut m2 = vec![0.0; plen];
            for i in 0..plen {
                if count[i] > 0.0 {
                    mean[i] = shift + s[i] / count[i];
                    m2[i] = (ss[i] - s[i] * s[i] / count[i]).max(0.0);
                }
            }
            vec![Buffer::F64(count), Buffer::F64(mean), Buffer::F64(m2)]
        }
    };
    Ok(Chunk::new(pshape, cols))
}

/// Merges partial states of the same shape, in the order given.
pub fn combine(spec: &ReduceSpec, parts: &[&Chunk]) -> Result<Chunk> {
    let Some(first) = parts.first() else {
        return Err(internal("combine of no partial states".into()));
    };
    if parts
        .iter()
        .any(|p| p.shape != first.shape || p.col_count() != first.col_count())
    {
        return Err(internal(
            "combine of partial states with different shapes".into(),
        ));
    }
    if super::exact_reduce::is_exact_state(first) {
        return super::exact_reduce::combine(spec.op, parts);
    }
    let moments = matches!(spec.op, ReduceOp::Var(_) | ReduceOp::Std(_));
    if moments {
        let mut count = f64_col(first, 0)?.to_vec();
        let mut mean = f64_col(first, 1)?.to_vec();
        let mut m2 = f64_col(first, 2)?.to_vec();
        for p in &parts[1..] {
            let (nb, mb, m2b) = (f64_col(p, 0)?, f64_col(p, 1)?, f64_col(p, 2)?);
            for i in 0..count.len() {
                let n = count[i] + nb[i];
                if nb[i] == 0.0 {
                    continue;
                }
                let delta = mb[i] - mean[i];
                mean[i] += delta * nb[i] / n;
                m2[i] += m2b[i] + delta * delta * count[i] * nb[i] / n;
                count[i] = n;
            }
        }
        return Ok(Chunk::new(
            first.shape.clone(),
            vec![Buffer::F64(count), Buffer::F64(mean), Buffer::F64(m2)],
        ));
    }
    if spec.op.is_arg() {
        let mut acc = Acc::Arg {
            best: buffer_to_slot(&first.cols()?[0]),
            index: i64_col(first, 1)?.to_vec(),
        };
        for p in &parts[1..] {
            let other = Acc::Arg {
                best: buffer_to_slot(&p.cols()?[0]),
                index: i64_col(p, 1)?.to_vec(),
            };
            merge(spec.op, &mut acc, &other)?;
        }
        let Acc::Arg { best, index } = acc else {
            return Err(internal("arg accumulator changed kind".into()));
        };
        return Ok(Chunk::new(
            first.shape.clone(),
            vec![slot_to_buffer(best), Buffer::I64(index)],
        ));
    }
    let mut cols = Vec::with_capacity(first.cols()?.len());
    for k in 0..first.cols()?.len() {
        // The count column of mean adds up like a sum.
        let op = if k == 1 { ReduceOp::Sum } else { spec.op };
        let mut acc = buffer_to_slot(&first.cols()?[k]);
        for p in &parts[1..] {
            merge_plain(op, &mut acc, &buffer_to_slot(&p.cols()?[k]))?;
        }
        cols.push(slot_to_buffer(acc));
    }
    Ok(Chunk::new(first.shape.clone(), cols))
}

/// Turns a complete partial state into the reduction's result.
pub fn finalize(spec: &ReduceSpec, out_dtype: DType, state: &Chunk) -> Result<Chunk> {
    let shape: Vec<usize> = if spec.keepdims {
        state.shape.clone()
    } else {
        state
            .shape
            .iter()
            .enumerate()
            .filter(|(d, _)| !spec.axes.contains(d))
            .map(|(_, &n)| n)
            .collect()
    };
    let data = match spec.op {
        _ if super::exact_reduce::is_exact_state(state) => {
            super::exact_reduce::finalize(spec.op, out_dtype, state)?
        }
        ReduceOp::Mean => match (&state.cols()?[0], f64_col(state, 1)?) {
            (Buffer::C128(s), c) => Buffer::C128(s.iter().zip(c).map(|(s, &c)| s / c).collect()),
            (Buffer::F64(s), c) => Buffer::F64(s.iter().zip(c).map(|(s, c)| s / c).collect()),
            _ => return Err(internal("mean state is not f64 or c128".into())),
        },
        ReduceOp::Var(ddof) | ReduceOp::Std(ddof) => {
            let (count, m2) = (f64_col(state, 0)?, f64_col(state, 2)?);
            let v = count.iter().zip(m2).map(|(&n, &m2)| {
                let var = m2 / (n - ddof as f64).max(0.0);
                if matches!(spec.op, ReduceOp::Std(_)) {
                    var.sqrt()
                } else {
                    var
                }
            });
            Buffer::F64(v.collect())
        }
        ReduceOp::ArgMin | ReduceOp::ArgMax => Buffer::I64(i64_col(state, 1)?.to_vec()),
        _ => state.cols()?[0].clone(),
    };
    let data = match (data, out_dtype) {
        (Buffer::F64(v), DType::F32) => Buffer::F32(v.into_iter().map(|x| x as f32).collect()),
        (d, _) => d,
    };
    if data.dtype() != out_dtype {
        return Err(internal(format!(
            "{} finalized to {} instead of {out_dtype}",
            spec.op.name(),
            data.dtype()
        )));
    }
    Ok(Chunk::array(shape, data))
}
