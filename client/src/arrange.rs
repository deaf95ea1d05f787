//! Rearranging arrays, built from views, concatenation and broadcasting:
//! `expand_dims`, `squeeze`, `flip`, `roll`, `stack`, `broadcast_to`, `pad`.

use accel_core::op::{InAxis, Remap};
use accel_core::{Op, Value, infer};
use ndarray::SliceInfoElem;

use crate::create::{ChunkSpec, full};
use crate::expr::Array;
use crate::structure::concatenate;

/// How [`Array::pad`] fills the new cells (NumPy's `mode`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PadMode {
    /// A constant (cast to the array's dtype).
    Constant(f64),
    /// The edge value repeated: `a a | a b c`.
    Edge,
    /// Mirrored about the edge, the edge not repeated: `c b | a b c`.
    Reflect,
    /// Mirrored with the edge repeated: `b a | a b c`.
    Symmetric,
    /// The other end of the axis: `b c | a b c`.
    Wrap,
}

/// Resolves a NumPy axis (negative counts from the end) among `n` axes.
fn axis_of(axis: isize, n: usize) -> Result<usize, accel_core::Error> {
    let k = if axis < 0 { axis + n as isize } else { axis };
    if k < 0 || k >= n as isize {
        return Err(accel_core::Error::Invalid(format!(
            "axis {axis} is out of bounds for an array of {n} dimensions"
        )));
    }
    Ok(k as usize)
}

fn full_range() -> SliceInfoElem {
    SliceInfoElem::Slice {
        start: 0,
        end: None,
        step: 1,
    }
}

/// `start..end` (with `step`) along `axis`, every other axis whole.
fn along(a: &Array, ndim: usize, axis: usize, start: usize, end: usize, step: isize) -> Array {
    let mut info = vec![full_range(); ndim];
    info[axis] = SliceInfoElem::Slice {
        start: start as isize,
        end: Some(end as isize),
        step,
    };
    a.slice(info)
}

impl Array {
    /// A new axis of length 1 at position `axis` (which may be `ndim`, or negative).
    #[track_caller]
    pub fn expand_dims(&self, axis: isize) -> Array {
        let n = match self.ndim() {
            Ok(n) => n,
            Err(e) => return Array::failed(e),
        };
        let at = match axis_of(axis, n + 1) {
            Ok(k) => k,
            Err(e) => return Array::build_error("expand_dims", e),
        };
        let mut info = vec![full_range(); n];
        info.insert(at, SliceInfoElem::NewAxis);
        self.slice(info)
    }

    /// Drops every axis of length 1.
    #[track_caller]
    pub fn squeeze(&self) -> Array {
        match self.shape() {
            Ok(shape) => {
                let info: Vec<SliceInfoElem> = shape
                    .iter()
                    .map(|&n| {
                        if n == 1 {
                            SliceInfoElem::Index(0)
                        } else {
                            full_range()
                        }
                    })
                    .collect();
                self.slice(info)
            }
            Err(e) => Array::failed(e),
        }
    }

    /// Drops `axis`, which must have length 1.
    #[track_caller]
    pub fn squeeze_axis(&self, axis: isize) -> Array {
        let shape = match self.shape() {
            Ok(s) => s,
            Err(e) => return Array::failed(e),
        };
        let k = match axis_of(axis, shape.len()) {
            Ok(k) => k,
            Err(e) => return Array::build_error("squeeze", e),
        };
        if shape[k] != 1 {
            return Array::build_error(
                "squeeze",
                accel_core::Error::Shape(format!(
                    "cannot squeeze axis {axis} of length {} (shape {shape:?})",
                    shape[k]
                )),
            );
        }
        let mut info = vec![full_range(); shape.len()];
        info[k] = SliceInfoElem::Index(0);
        self.slice(info)
    }

    /// The elements in reverse order along `axis`.
    #[track_caller]
    pub fn flip(&self, axis: isize) -> Array {
        let shape = match self.shape() {
            Ok(s) => s,
            Err(e) => return Array::failed(e),
        };
        match axis_of(axis, shape.len()) {
            Ok(k) => along(self, shape.len(), k, 0, shape[k], -1),
            Err(e) => Array::build_error("flip", e),
        }
    }

    /// Elements shifted by `shift` along `axis`, those pushed off one end coming
    /// back at the other (NumPy's `roll` with an axis).
    #[track_caller]
    pub fn roll(&self, shift: isize, axis: isize) -> Array {
        let shape = match self.shape() {
            Ok(s) => s,
            Err(e) => return Array::failed(e),
        };
        let k = match axis_of(axis, shape.len()) {
            Ok(k) => k,
            Err(e) => return Array::build_error("roll", e),
        };
        let n = shape[k];
        if n == 0 {
            return self.clone();
        }
        let s = shift.rem_euclid(n as isize) as usize;
        if s == 0 {
            return self.clone();
        }
        let nd = shape.len();
        let tail = along(self, nd, k, n - s, n, 1);
        let head = along(self, nd, k, 0, n - s, 1);
        concatenate(&[&tail, &head], k)
    }

    /// The array repeated along new leading axes and along its axes of length
    /// 1 to `shape` (NumPy's broadcasting rules). The repeated axes are not
    /// stored: every chunk reads the same elements.
    #[track_caller]
    pub fn broadcast_to(&self, shape: &[usize]) -> Array {
        self.broadcast_with(shape, None)
    }

    /// [`Array::broadcast_to`] with the result's chunks given (`None`: the
    /// kept axes keep theirs, repeated axes get chunks of about a megaelement).
    #[track_caller]
    fn broadcast_with(&self, shape: &[usize], chunks: Option<Vec<Vec<usize>>>) -> Array {
        let target = shape.to_vec();
        Array::build("broadcast_to", &[self], |m| {
            let a = m[0];
            let refuse = |why: String| {
                accel_core::Error::Shape(format!("cannot broadcast {a} to {target:?}: {why}"))
            };
            let lead = target
                .len()
                .checked_sub(a.shape.len())
                .ok_or_else(|| refuse("it has fewer dimensions".into()))?;
            let mut axes = Vec::with_capacity(a.shape.len());
            let mut kept: Vec<Option<Vec<usize>>> = Vec::with_capacity(target.len());
            for (j, &n) in target.iter().enumerate() {
                let Some(d) = j.checked_sub(lead) else {
                    kept.push(None);
                    continue;
                };
                let m = a.shape[d];
                if m == n {
                    axes.push(InAxis {
                        base: 0,
                        src: Some((j, 1)),
                    });
                    kept.push(Some(a.chunks.0[d].clone()));
                } else if m == 1 {
                    // Every output index reads input index 0.
                    axes.push(InAxis {
                        base: 0,
                        src: Some((j, 0)),
                    });
                    kept.push(None);
                } else {
                    return Err(refuse(format!("axis {j} has length {m}, not 1 or {n}")));
                }
            }
            let chunks = match &chunks {
                Some(c) => c.clone(),
                None => repeated_chunks(&target, kept, &a.chunks),
            };
            let map = Remap { axes };
            let meta = infer::remap(a, &map, &target, Some(accel_core::Chunks(chunks)))?;
            Ok((Op::Remap(map), meta))
        })
    }

    /// Widens each axis by `widths[d] = (before, after)` cells, filled as `mode`
    /// says. `Reflect` needs widths below the axis length; `Symmetric` and
    /// `Wrap` at most the axis length.
    #[track_caller]
    pub fn pad(&self, widths: &[(usize, usize)], mode: PadMode) -> Array {
        let shape = match self.shape() {
            Ok(s) => s,
            Err(e) => return Array::failed(e),
        };
        if widths.len() != shape.len() {
            return Array::build_error(
                "pad",
                accel_core::Error::Invalid(format!(
                    "{} pad widths for an array of {} dimensions",
                    widths.len(),
                    shape.len()
                )),
            );
        }
        let mut out = self.clone();
        for (axis, &(before, after)) in widths.iter().enumerate() {
            if before == 0 && after == 0 {
                continue;
            }
            let n = shape[axis];
            let limit = match mode {
                PadMode::Reflect => n.saturating_sub(1),
                PadMode::Symmetric | PadMode::Wrap => n,
                PadMode::Constant(_) => usize::MAX,
                PadMode::Edge if n == 0 => 0,
                PadMode::Edge => usize::MAX,
            };
            if before.max(after) > limit {
                return Array::build_error(
                    "pad",
                    accel_core::Error::Invalid(format!(
                        "{mode:?} padding of {} cells is wider than axis {axis} (length {n}) allows",
                        before.max(after)
                    )),
                );
            }
            let lo = pad_piece(&out, axis, n, before, mode, true);
            let hi = pad_piece(&out, axis, n, after, mode, false);
            let parts: Vec<&Array> = [lo.as_ref(), Some(&out), hi.as_ref()]
                .into_iter()
                .flatten()
                .collect();
            out = concatenate(&parts, axis);
        }
        out
    }
}

/// Chunks for a broadcast: kept axes as they are, repeated axes (innermost
/// first) cut so an output chunk holds about as many elements as the larger
/// of the input's chunks and a megaelement.
fn repeated_chunks(
    target: &[usize],
    kept: Vec<Option<Vec<usize>>>,
    input: &accel_core::Chunks,
) -> Vec<Vec<usize>> {
    let per_chunk: usize = input.max_chunk().iter().product::<usize>().max(1 << 20);
    let kept_elems: usize = kept
        .iter()
        .flatten()
        .map(|c| c.iter().copied().max().unwrap_or(1).max(1))
        .product();
    let mut budget = (per_chunk / kept_elems.max(1)).max(1);
    let mut out = vec![Vec::new(); target.len()];
    for (j, k) in kept.into_iter().enumerate().rev() {
        out[j] = match k {
            Some(c) => c,
            None => {
                let n = target[j];
                let step = budget.clamp(1, n.max(1));
                budget = (budget / step).max(1);
                let mut v = vec![step; n / step];
                if !n.is_multiple_of(step) || n == 0 {
                    v.push(n % step);
                }
                v
            }
        };
    }
    out
}

/// The cells one side of `axis` gets (`before` or after); `None` for none.
fn pad_piece(
    a: &Array,
    axis: usize,
    n: usize,
    width: usize,
    mode: PadMode,
    before: bool,
) -> Option<Array> {
    if width == 0 {
        return None;
    }
    let (shape, chunks) = match (a.shape(), a.chunks()) {
        (Ok(s), Ok(c)) => (s, c),
        (Err(e), _) | (_, Err(e)) => return Some(Array::failed(e)),
    };
    let nd = shape.len();
    Some(match mode {
        PadMode::Constant(v) => {
            let dtype = match a.dtype() {
                Ok(d) => d,
                Err(e) => return Some(Array::failed(e)),
            };
            let mut s = shape.clone();
            s[axis] = width;
            let mut c = chunks;
            c[axis] = vec![width];
            full(&s, Value::F64(v).cast(dtype), ChunkSpec::Explicit(c))
        }
        PadMode::Edge => {
            let edge = if before {
                along(a, nd, axis, 0, 1, 1)
            } else {
                along(a, nd, axis, n - 1, n, 1)
            };
            let mut s = shape.clone();
            s[axis] = width;
            let mut c = chunks;
            c[axis] = vec![width];
            edge.broadcast_with(&s, Some(c))
        }
        PadMode::Reflect if before => along(a, nd, axis, 1, width + 1, -1),
        PadMode::Reflect => along(a, nd, axis, n - 1 - width, n - 1, -1),
        PadMode::Symmetric if before => along(a, nd, axis, 0, width, -1),
        PadMode::Symmetric => along(a, nd, axis, n - width, n, -1),
        PadMode::Wrap if before => along(a, nd, axis, n - width, n, 1),
        PadMode::Wrap => along(a, nd, axis, 0, width, 1),
    })
}

/// Joins arrays of one shape along a new axis at `axis` (NumPy's `stack`).
#[track_caller]
pub fn stack(arrays: &[&Array], axis: isize) -> Array {
    let Some(first) = arrays.first() else {
        return Array::failed(crate::Error::Invalid(
            "stack needs at least one array".into(),
        ));
    };
    let shape = match first.shape() {
        Ok(s) => s,
        Err(e) => return Array::failed(e),
    };
    for a in arrays {
        match a.shape() {
            Ok(s) if s == shape => {}
            Ok(s) => {
                return Array::build_error(
                    "stack",
                    accel_core::Error::Shape(format!(
                        "stack needs arrays of one shape, got {shape:?} and {s:?}"
                    )),
                );
            }
            Err(e) => return Array::failed(e),
        }
    }
    let k = match axis_of(axis, shape.len() + 1) {
        Ok(k) => k,
        Err(e) => return Array::build_error("stack", e),
    };
    let expanded: Vec<Array> = arrays.iter().map(|a| a.expand_dims(k as isize)).collect();
    let refs: Vec<&Array> = expanded.iter().collect();
    concatenate(&refs, k)
}
