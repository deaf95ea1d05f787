//! Stencils: neighbour reads with boundary rules, weighted neighbour sums and
//! `map_overlap`-style bodies. They fuse with the elementwise work around them,
//! and consecutive steps fuse into one task per chunk with a deeper halo.

use std::cell::RefCell;

use accel_core::op::Boundary;
use accel_core::{Op, infer};

use crate::expr::Array;

/// A boundary rule for every axis, or the same rule for all of them.
#[derive(Clone, Debug, PartialEq)]
pub enum Boundaries {
    All(Boundary),
    PerAxis(Vec<Boundary>),
}

impl Boundaries {
    fn for_ndim(&self, nd: usize) -> Vec<Boundary> {
        match self {
            Boundaries::All(b) => vec![*b; nd],
            Boundaries::PerAxis(v) => v.clone(),
        }
    }
}

impl From<Boundary> for Boundaries {
    fn from(b: Boundary) -> Self {
        Boundaries::All(b)
    }
}
impl From<Vec<Boundary>> for Boundaries {
    fn from(v: Vec<Boundary>) -> Self {
        Boundaries::PerAxis(v)
    }
}
impl<const N: usize> From<[Boundary; N]> for Boundaries {
    fn from(v: [Boundary; N]) -> Self {
        Boundaries::PerAxis(v.to_vec())
    }
}

/// The neighbours of every element of one array, handed to a
/// [`Array::map_overlap`] body.
pub struct Neighbours {
    center: Array,
    boundary: Vec<Boundary>,
    /// Largest |offset| read along each axis (for fixed edges).
    reach: RefCell<Vec<usize>>,
}

impl Neighbours {
    /// The array read at `offset` from every element: `at(&[1, 0])[i, j]` is
    /// `a[i + 1, j]`.
    #[track_caller]
    pub fn at(&self, offset: &[i64]) -> Array {
        {
            let mut reach = self.reach.borrow_mut();
            for (r, o) in reach.iter_mut().zip(offset) {
                *r = (*r).max(o.unsigned_abs() as usize);
            }
        }
        self.center.shift(offset, self.boundary.clone())
    }

    /// The element itself.
    pub fn center(&self) -> Array {
        self.center.clone()
    }
}

impl Array {
    /// `out[i] = self[i + offset]`, with cells beyond the edges given by the
    /// boundary rule (`Fixed` reads as `Nearest`: it only makes sense for a
    /// stencil update, see [`Array::map_overlap`]).
    #[track_caller]
    pub fn shift(&self, offset: &[i64], boundary: impl Into<Boundaries>) -> Array {
        let boundary = boundary.into();
        let offset = offset.to_vec();
        Array::build("shift", &[self], |m| {
            let b = boundary.for_ndim(m[0].shape.len());
            let meta = infer::shift(m[0], &offset, &b)?;
            Ok((
                Op::Shift {
                    offset,
                    boundary: b,
                },
                meta,
            ))
        })
    }

    /// A stencil with an elementwise body over neighbour values:
    /// `t.map_overlap(Boundary::Fixed, |n| (n.at(&[1, 0]) + n.at(&[-1, 0])) * 0.5)`.
    /// The halo is what the body reads. With a `Fixed` boundary along an axis,
    /// cells within that reach of its ends keep their value (Dirichlet
    /// conditions); other rules say what reads beyond the edge see.
    #[track_caller]
    pub fn map_overlap(
        &self,
        boundary: impl Into<Boundaries>,
        body: impl FnOnce(&Neighbours) -> Array,
    ) -> Array {
        let nd = match self.ndim() {
            Ok(n) => n,
            Err(_) => return self.clone(),
        };
        let boundary = boundary.into().for_ndim(nd);
        let nb = Neighbours {
            center: self.clone(),
            boundary: boundary.clone(),
            reach: RefCell::new(vec![0; nd]),
        };
        let out = body(&nb);
        let reach = nb.reach.into_inner();
        let depth: Vec<usize> = (0..nd)
            .map(|d| {
                if boundary.get(d) == Some(&Boundary::Fixed) {
                    reach[d]
                } else {
                    0
                }
            })
            .collect();
        if depth.iter().all(|&x| x == 0) {
            return out;
        }
        let old = match out.dtype() {
            Ok(dt) if Ok(dt) != self.dtype() => self.astype(dt),
            _ => self.clone(),
        };
        Array::build("map_overlap", &[&out, &old], |m| {
            let meta = infer::keep_edges(m[0], m[1], &depth)?;
            Ok((Op::KeepEdges { depth }, meta))
        })
    }

    /// A weighted sum of neighbours, `Σ w · self[i + offset]`:
    /// the heat equation's update is
    /// `t.stencil(&[(&[1, 0], g), (&[-1, 0], g), (&[0, 1], g), (&[0, -1], g)], Boundary::Fixed)`.
    /// Points of equal weight are summed first, then scaled once.
    #[track_caller]
    pub fn stencil(&self, points: &[(&[i64], f64)], boundary: impl Into<Boundaries>) -> Array {
        if points.is_empty() {
            return Array::build_error(
                "stencil",
                accel_core::Error::Invalid("a stencil needs at least one point".into()),
            );
        }
        self.map_overlap(boundary, |n| {
            let mut groups: Vec<(f64, Array)> = Vec::new();
            for &(offset, w) in points {
                let v = n.at(offset);
                match groups
                    .iter_mut()
                    .find(|(gw, _)| gw.to_bits() == w.to_bits())
                {
                    Some((_, acc)) => *acc = &*acc + &v,
                    None => groups.push((w, v)),
                }
            }
            let mut total: Option<Array> = None;
            for (w, sum) in groups {
                let term = if w == 1.0 { sum } else { sum * w };
                total = Some(match total {
                    None => term,
                    Some(t) => t + term,
                });
            }
            total.unwrap_or_else(|| n.center())
        })
    }

    /// Like [`Array::iterate`], also returning every `every`-th field
    /// (steps 0, every, 2·every, …, and the last): compute them together with
    /// `Client::run` to get a movie of the evolution.
    pub fn iterate_frames(
        &self,
        n: usize,
        every: usize,
        mut step: impl FnMut(&Array) -> Array,
    ) -> (Array, Vec<Array>) {
        let every = every.max(1);
        let mut frames = vec![self.clone()];
        let mut t = self.clone();
        for i in 1..=n {
            t = step(&t);
            if i % every == 0 || i == n {
                frames.push(t.clone());
            }
        }
        (t, frames)
    }
}
