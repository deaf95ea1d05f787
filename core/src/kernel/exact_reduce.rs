//! Reductions whose results do not depend on chunking, thread count or
//! worker count: float `sum`, `mean`, `var` and `std` accumulate exactly (see
//! [`ExactSum`]) and round once, at the end.
//!
//! Partial state columns, per output element: the exact `Σx` as
//! [`WIRE_WORDS`] i64 columns (word k of every element's accumulator in
//! column k); then for var/std the exact `Σx²` likewise (each square split
//! exactly into two doubles with an FMA); then for mean/var/std the count
//! (f64). A state is exact when it has at least [`WIRE_WORDS`] columns.
//!
//! var = (Σx² − (Σx)²/n) / (n − ddof) is computed from the two exact sums in
//! double-double arithmetic: the cancellation that makes this formula
//! unusable in plain floats costs nothing here.

use super::exact_sum::{ExactStream, ExactSum, WIRE_WORDS};
use super::exec::internal;
use crate::buffer::{Buffer, Chunk};
use crate::dtype::DType;
use crate::error::Result;
use crate::op::ReduceOp;

/// Whether `op`, accumulating in `acc`, is computed exactly.
pub fn is_exact(op: ReduceOp, acc: DType) -> bool {
    acc == DType::F64
        && matches!(
            op,
            ReduceOp::Sum | ReduceOp::Mean | ReduceOp::Var(_) | ReduceOp::Std(_)
        )
}

/// Whether a partial state is an exact one.
pub fn is_exact_state(state: &Chunk) -> bool {
    state.col_count() >= WIRE_WORDS
}

fn squares(op: ReduceOp) -> bool {
    matches!(op, ReduceOp::Var(_) | ReduceOp::Std(_))
}

/// The accumulators of one part of a chunk, one per output element.
#[derive(Clone, Debug)]
pub struct ExactAcc {
    sums: Vec<ExactSum>,
    squares: Option<Vec<ExactSum>>,
    /// Streams into output element 0 (when there is one output element):
    /// Σx, then for var/std Σx² as its high and low halves.
    stream: Vec<ExactStream>,
}

impl ExactAcc {
    pub fn new(op: ReduceOp, outputs: usize) -> ExactAcc {
        ExactAcc {
            sums: vec![ExactSum::new(); outputs],
            squares: squares(op).then(|| vec![ExactSum::new(); outputs]),
            stream: Vec::new(),
        }
    }

    /// Adds `v[i]` to output element `dst[i]` (element 0 without `dst`).
    pub fn add(&mut self, v: &[f64], dst: Option<&[i64]>) -> Result<()> {
        match dst {
            None => {
                let with_squares = self.squares.is_some();
                if self.stream.is_empty() {
                    let streams = if with_squares { 3 } else { 1 };
                    self.stream = (0..streams).map(|_| ExactStream::default()).collect();
                }
                let st = &mut self.stream;
                st[0].add_slice(v);
                if with_squares && st.len() == 3 {
                    let mut hi = [0.0f64; 512];
                    let mut lo = [0.0f64; 512];
                    for part in v.chunks(512) {
                        for (k, &x) in part.iter().enumerate() {
                            (hi[k], lo[k]) = square(x);
                        }
                        st[1].add_slice(&hi[..part.len()]);
                        st[2].add_slice(&lo[..part.len()]);
                    }
                }
            }
            Some(dst) => {
                for (&x, &i) in v.iter().zip(dst) {
                    let i = i as usize;
                    let sum = self
                        .sums
                        .get_mut(i)
                        .ok_or_else(|| internal(format!("output element {i} out of range")))?;
                    sum.add(x);
                    if let Some(sq) = &mut self.squares {
                        let (hi, lo) = square(x);
                        sq[i].add(hi);
                        sq[i].add(lo);
                    }
                }
            }
        }
        Ok(())
    }

    /// Drains the streams into the accumulators.
    pub fn flush(&mut self) {
        let mut streams = std::mem::take(&mut self.stream).into_iter();
        if let (Some(sum), Some(s)) = (self.sums.first_mut(), streams.next()) {
            sum.merge(&s.finish());
        }
        if let Some(sq) = self.squares.as_mut().and_then(|s| s.first_mut()) {
            for s in streams {
                sq.merge(&s.finish());
            }
        }
    }

    /// Adds another part's accumulators.
    pub fn merge(&mut self, other: &ExactAcc) {
        self.flush();
        let flushed;
        let other = if other.stream.is_empty() {
            other
        } else {
            let mut o = other.clone();
            o.flush();
            flushed = o;
            &flushed
        };
        for (a, b) in self.sums.iter_mut().zip(&other.sums) {
            a.merge(b);
        }
        if let (Some(a), Some(b)) = (&mut self.squares, &other.squares) {
            for (x, y) in a.iter_mut().zip(b) {
                x.merge(y);
            }
        }
    }

    /// The partial state columns (see the module documentation); `count` is
    /// the number of values behind each output element.
    pub fn into_cols(mut self, op: ReduceOp, count: f64) -> Vec<Buffer> {
        self.flush();
        let mut cols = words(&self.sums);
        if let Some(sq) = &self.squares {
            cols.extend(words(sq));
        }
        if op != ReduceOp::Sum {
            cols.push(Buffer::F64(vec![count; self.sums.len()]));
        }
        cols
    }

    fn from_cols(op: ReduceOp, cols: &[Buffer], outputs: usize) -> Result<(ExactAcc, Vec<f64>)> {
        let want = WIRE_WORDS * if squares(op) { 2 } else { 1 } + usize::from(op != ReduceOp::Sum);
        if cols.len() != want {
            return Err(internal(format!(
                "exact {} state with {} columns, expected {want}",
                op.name(),
                cols.len()
            )));
        }
        let sums = accumulators(&cols[..WIRE_WORDS], outputs)?;
        let squares = if squares(op) {
            Some(accumulators(&cols[WIRE_WORDS..2 * WIRE_WORDS], outputs)?)
        } else {
            None
        };
        let count = match cols.last() {
            _ if op == ReduceOp::Sum => Vec::new(),
            Some(Buffer::F64(c)) if c.len() == outputs => c.clone(),
            _ => {
                return Err(internal(format!(
                    "exact {} state without an f64 count column of its shape",
                    op.name()
                )));
            }
        };
        Ok((
            ExactAcc {
                sums,
                squares,
                stream: Vec::new(),
            },
            count,
        ))
    }
}

/// `x²` as `hi + lo` exactly.
fn square(x: f64) -> (f64, f64) {
    let hi = x * x;
    (hi, x.mul_add(x, -hi))
}

/// Column k holds word k of every accumulator.
fn words(sums: &[ExactSum]) -> Vec<Buffer> {
    let mut cols: Vec<Vec<i64>> = (0..WIRE_WORDS)
        .map(|_| Vec::with_capacity(sums.len()))
        .collect();
    for s in sums {
        for (col, w) in cols.iter_mut().zip(s.to_words()) {
            col.push(w);
        }
    }
    cols.into_iter().map(Buffer::I64).collect()
}

/// The `i64` columns of an exact sum, each with one word per output element.
fn word_columns(cols: &[Buffer], outputs: usize) -> Result<Vec<&[i64]>> {
    cols.iter()
        .map(|c| match c {
            Buffer::I64(v) if v.len() == outputs => Ok(v.as_slice()),
            _ => Err(internal(
                "exact state column is not i64 of its shape".into(),
            )),
        })
        .collect()
}

/// Output element `i`'s accumulator, decoded from its words.
fn decode(cols: &[&[i64]], i: usize) -> Result<ExactSum> {
    let mut w = [0i64; WIRE_WORDS];
    for (word, col) in w.iter_mut().zip(cols) {
        *word = col[i];
    }
    ExactSum::from_words(&w)
}

fn accumulators(cols: &[Buffer], outputs: usize) -> Result<Vec<ExactSum>> {
    let cols = word_columns(cols, outputs)?;
    (0..outputs).map(|i| decode(&cols, i)).collect()
}

/// Adds the accumulators held in `cols` to `into` (one per output element),
/// decoding one at a time: no state is built for a part being merged.
fn merge_words(into: &mut [ExactSum], cols: &[Buffer]) -> Result<()> {
    let cols = word_columns(cols, into.len())?;
    for (i, sum) in into.iter_mut().enumerate() {
        sum.merge(&decode(&cols, i)?);
    }
    Ok(())
}

/// Merges exact partial states of the same shape (the order does not matter).
pub fn combine(op: ReduceOp, parts: &[&Chunk]) -> Result<Chunk> {
    let Some(first) = parts.first() else {
        return Err(internal("combine of no partial states".into()));
    };
    let outputs = crate::shape::size(&first.shape);
    let (mut acc, mut count) = ExactAcc::from_cols(op, first.cols()?, outputs)?;
    for p in &parts[1..] {
        if p.cols()?.len() != first.cols()?.len() {
            return Err(internal(format!(
                "exact {} states with {} and {} columns",
                op.name(),
                first.cols()?.len(),
                p.cols()?.len()
            )));
        }
        merge_words(&mut acc.sums, &p.cols()?[..WIRE_WORDS])?;
        if let Some(sq) = &mut acc.squares {
            merge_words(sq, &p.cols()?[WIRE_WORDS..2 * WIRE_WORDS])?;
        }
        if op != ReduceOp::Sum {
            match p.cols()?.last() {
                Some(Buffer::F64(c)) if c.len() == outputs => {
                    for (a, b) in count.iter_mut().zip(c) {
                        *a += b;
                    }
                }
                _ => {
                    return Err(internal(format!(
                        "exact {} state without an f64 count column of its shape",
                        op.name()
                    )));
                }
            }
        }
    }
    let mut cols = acc.into_cols(op, 0.0);
    if op != ReduceOp::Sum {
        cols.pop();
        cols.push(Buffer::F64(count));
    }
    Ok(Chunk::new(first.shape.clone(), cols))
}

/// The result values of a complete exact state.
pub fn finalize(op: ReduceOp, out_dtype: DType, state: &Chunk) -> Result<Buffer> {
    let outputs = crate::shape::size(&state.shape);
    let (acc, count) = ExactAcc::from_cols(op, state.cols()?, outputs)?;
    Ok(match (op, out_dtype) {
        (ReduceOp::Sum, DType::F32) => Buffer::F32(acc.sums.iter().map(ExactSum::to_f32).collect()),
        (ReduceOp::Sum, _) => Buffer::F64(acc.sums.iter().map(ExactSum::to_f64).collect()),
        (ReduceOp::Mean, _) => Buffer::F64(
            acc.sums
                .iter()
                .zip(&count)
                .map(|(s, &n)| s.to_f64() / n)
                .collect(),
        ),
        (ReduceOp::Var(ddof) | ReduceOp::Std(ddof), _) => {
            let sq = acc.squares.unwrap_or_default();
            let v = acc.sums.iter().zip(&sq).zip(&count).map(|((s, q), &n)| {
                let var = variance(s, q, n, ddof as f64);
                if matches!(op, ReduceOp::Std(_)) {
                    var.sqrt()
                } else {
                    var
                }
            });
            Buffer::F64(v.collect())
        }
        _ => return Err(internal(format!("{} is not an exact reduction", op.name()))),
    })
}

/// `(Σx² − (Σx)²/n) / (n − ddof)` from the exact sums, in double-double.
fn variance(sum: &ExactSum, sum_sq: &ExactSum, n: f64, ddof: f64) -> f64 {
    let (s, q) = (sum.to_f64(), sum_sq.to_f64());
    if !s.is_finite() || !q.is_finite() || n - ddof <= 0.0 {
        // NaN or infinite data, or too few values: the plain formula says so.
        return (q - s * s / n) / (n - ddof).max(0.0);
    }
    let s = (s, rest(sum, s));
    let q = (q, rest(sum_sq, q));
    let mean_sq = dd_div(dd_mul(s, s), n);
    let m2 = dd_sub(q, mean_sq);
    dd_div(m2, n - ddof).0.max(0.0)
}

/// `exact − hi`, rounded: the low part of a double-double.
fn rest(exact: &ExactSum, hi: f64) -> f64 {
    let mut r = exact.clone();
    r.add(-hi);
    r.to_f64()
}

type Dd = (f64, f64);

fn two_sum(a: f64, b: f64) -> Dd {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

fn quick_two_sum(a: f64, b: f64) -> Dd {
    let s = a + b;
    (s, b - (s - a))
}

fn dd_mul(a: Dd, b: Dd) -> Dd {
    let p = a.0 * b.0;
    let e = a.0.mul_add(b.0, -p) + (a.0 * b.1 + a.1 * b.0);
    quick_two_sum(p, e)
}

fn dd_sub(a: Dd, b: Dd) -> Dd {
    let (s, e) = two_sum(a.0, -b.0);
    quick_two_sum(s, e + (a.1 - b.1))
}

fn dd_div(a: Dd, d: f64) -> Dd {
    let q = a.0 / d;
    let p = q * d;
    let e = q.mul_add(d, -p);
    let r = ((a.0 - p) - e + a.1) / d;
    quick_two_sum(q, r)
}
