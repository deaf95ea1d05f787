//! Structural operations: slicing, transposes, diagonals, concatenation,
//! rechunking and reshaping.

use accel_core::op::{InAxis, Remap};
use accel_core::{DType, Op, infer};
use ndarray::{NewAxis, SliceInfoElem, s};

use crate::create::ChunkSpec;
use crate::error::Error;
use crate::expr::Array;

impl Array {
    /// NumPy-style basic indexing with ndarray's `s![]` macro: ranges with
    /// steps (negative steps count from the end of the range, as in ndarray),
    /// integer indices (which drop the axis) and `NewAxis`.
    #[track_caller]
    pub fn slice(&self, info: impl AsRef<[SliceInfoElem]>) -> Array {
        let info = info.as_ref().to_vec();
        Array::build("slice", &[self], |m| {
            let in_shape = &m[0].shape;
            let mut axes = Vec::with_capacity(in_shape.len());
            let mut out_shape = Vec::new();
            let mut d = 0;
            for elem in &info {
                match *elem {
                    SliceInfoElem::NewAxis => out_shape.push(1),
                    SliceInfoElem::Index(i) => {
                        let n = *in_shape.get(d).ok_or_else(|| too_many(&info, in_shape))? as isize;
                        let k = if i < 0 { i + n } else { i };
                        if k < 0 || k >= n {
                            return Err(accel_core::Error::Shape(format!(
                                "index {i} is out of bounds for axis {d} of length {n}"
                            )));
                        }
                        axes.push(InAxis {
                            base: k as i64,
                            src: None,
                        });
                        d += 1;
                    }
                    SliceInfoElem::Slice { start, end, step } => {
                        let n = *in_shape.get(d).ok_or_else(|| too_many(&info, in_shape))? as isize;
                        if step == 0 {
                            return Err(accel_core::Error::Invalid(
                                "slice step cannot be zero".into(),
                            ));
                        }
                        let clamp = |x: isize| (if x < 0 { x + n } else { x }).clamp(0, n);
                        let (s, e) = (clamp(start), clamp(end.unwrap_or(n)));
                        let len = if e > s {
                            (e - s + step.abs() - 1) / step.abs()
                        } else {
                            0
                        };
                        let base = if step > 0 { s } else { e - 1 };
                        axes.push(InAxis {
                            base: if len > 0 { base as i64 } else { 0 },
                            src: Some((out_shape.len(), step as i64)),
                        });
                        out_shape.push(len as usize);
                        d += 1;
                    }
                }
            }
            while d < in_shape.len() {
                axes.push(InAxis {
                    base: 0,
                    src: Some((out_shape.len(), 1)),
                });
                out_shape.push(in_shape[d]);
                d += 1;
            }
            let map = Remap { axes };
            let meta = infer::remap(m[0], &map, &out_shape, None)?;
            Ok((Op::Remap(map), meta))
        })
    }

    /// Reverses the axes.
    #[track_caller]
    pub fn transpose(&self) -> Array {
        let n = self.ndim().unwrap_or(0);
        self.permute_axes(&(0..n).rev().collect::<Vec<_>>())
    }

    /// Output axis k is input axis `perm[k]`.
    #[track_caller]
    pub fn permute_axes(&self, perm: &[usize]) -> Array {
        let perm = perm.to_vec();
        Array::build("transpose", &[self], |m| {
            let n = m[0].shape.len();
            let mut sorted = perm.clone();
            sorted.sort_unstable();
            if sorted != (0..n).collect::<Vec<_>>() {
                return Err(accel_core::Error::Invalid(format!(
                    "{perm:?} is not a permutation of the {n} axes of {}",
                    m[0]
                )));
            }
            let mut axes = vec![InAxis { base: 0, src: None }; n];
            for (k, &p) in perm.iter().enumerate() {
                axes[p] = InAxis {
                    base: 0,
                    src: Some((k, 1)),
                };
            }
            let shape: Vec<usize> = perm.iter().map(|&p| m[0].shape[p]).collect();
            let map = Remap { axes };
            let meta = infer::remap(m[0], &map, &shape, None)?;
            Ok((Op::Remap(map), meta))
        })
    }

    /// The main diagonal of a 2-d array; a 1-d array becomes a square matrix
    /// with it on the diagonal (NumPy's `diag`).
    #[track_caller]
    pub fn diag(&self) -> Array {
        match self.ndim() {
            Ok(1) => {
                // where(i == j, v[:, None], 0): elementwise, so it fuses.
                let chunks = match self.chunks() {
                    Ok(c) => c[0].clone(),
                    Err(e) => return Array::failed(e),
                };
                let n: usize = chunks.iter().sum();
                let idx = crate::create::arange(n, ChunkSpec::Explicit(vec![chunks]));
                let rows = idx.slice(s![.., NewAxis]);
                let cols = idx.slice(s![NewAxis, ..]);
                crate::elementwise::where_(&rows.equal(&cols), self.slice(s![.., NewAxis]), 0)
            }
            Ok(_) => Array::build("diag", &[self], |m| {
                let (map, shape) = infer::diag_remap(m[0])?;
                let meta = infer::remap(m[0], &map, &shape, None)?;
                Ok((Op::Remap(map), meta))
            }),
            Err(e) => Array::failed(e),
        }
    }

    /// The same values cut into different chunks.
    #[track_caller]
    pub fn rechunk(&self, chunks: impl Into<ChunkSpec>) -> Array {
        let spec = chunks.into();
        Array::build("rechunk", &[self], |m| {
            let chunks = spec.resolve(&m[0].shape, m[0].dtype)?;
            let map = Remap::identity(m[0].shape.len());
            let meta = infer::remap(m[0], &map, &m[0].shape, Some(chunks))?;
            Ok((Op::Remap(map), meta))
        })
    }

    /// The same elements in row-major order with a new shape.
    #[track_caller]
    pub fn reshape(&self, shape: &[usize]) -> Array {
        let shape = shape.to_vec();
        Array::build("reshape", &[self], |m| {
            Ok((Op::Reshape, infer::reshape(m[0], &shape)?))
        })
    }
}

fn too_many(info: &[SliceInfoElem], shape: &[usize]) -> accel_core::Error {
    accel_core::Error::Shape(format!(
        "{} indices given for an array of shape {shape:?}",
        info.iter()
            .filter(|e| !matches!(e, SliceInfoElem::NewAxis))
            .count()
    ))
}

/// Joins arrays along an existing axis (dtypes are promoted; chunks of the
/// other axes must agree).
#[track_caller]
pub fn concatenate(arrays: &[&Array], axis: usize) -> Array {
    let dtypes: Vec<DType> = arrays.iter().filter_map(|a| a.dtype().ok()).collect();
    let Some(common) = dtypes.iter().copied().reduce(DType::promote) else {
        return match arrays.first() {
            Some(a) => (*a).clone(),
            None => Array::failed(Error::Invalid(
                "concatenate needs at least one array".into(),
            )),
        };
    };
    let cast: Vec<Array> = arrays.iter().map(|a| a.astype(common)).collect();
    let refs: Vec<&Array> = cast.iter().collect();
    Array::build("concatenate", &refs, |m| {
        Ok((Op::Concat { axis }, infer::concat(m, axis)?))
    })
}
