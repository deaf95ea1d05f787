//! Shapes, broadcasting and chunk grids.

use crate::error::{Error, Result};

/// Bytes per chunk that `"auto"` chunking aims for (dask's default).
pub const AUTO_CHUNK_BYTES: usize = 128 << 20;

/// Number of elements of a shape.
pub fn size(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Most elements one array may have: every byte offset of it (16-byte
/// elements included) fits in a word, and every index in an f64.
pub const MAX_ELEMENTS: usize = 1 << 53;

/// Most axes one array may have (NumPy's limit).
pub const MAX_NDIM: usize = 64;

/// The number of elements of `shape`, or an error if it has more than
/// [`MAX_ELEMENTS`] or more than [`MAX_NDIM`] axes (a shape from a file or
/// the network whose product would wrap).
pub fn checked_size(shape: &[usize]) -> Result<usize> {
    if shape.len() > MAX_NDIM {
        return Err(Error::Shape(format!(
            "{} axes (at most {MAX_NDIM})",
            shape.len()
        )));
    }
    // An empty axis makes the array empty, whatever the others say.
    if shape.contains(&0) {
        return Ok(0);
    }
    shape
        .iter()
        .try_fold(1usize, |a, &n| a.checked_mul(n))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| {
            Error::Shape(format!(
                "shape {shape:?} has more than {MAX_ELEMENTS} elements"
            ))
        })
}

/// Row-major strides (in elements) of a shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// NumPy broadcasting of two shapes (aligned at the trailing axis).
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i < n - a.len() {
            1
        } else {
            a[i - (n - a.len())]
        };
        let db = if i < n - b.len() {
            1
        } else {
            b[i - (n - b.len())]
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
    }
    Some(out)
}

/// The chunk grid of an array: for each axis, the sizes of its chunks in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Chunks(pub Vec<Vec<usize>>);

impl Chunks {
    /// Regular chunks of at most `chunk[d]` elements along each axis.
    pub fn regular(shape: &[usize], chunk: &[usize]) -> Result<Chunks> {
        if chunk.len() != shape.len() {
            return Err(Error::Chunks(format!(
                "chunk shape {chunk:?} has {} axes but the array shape {shape:?} has {}",
                chunk.len(),
                shape.len()
            )));
        }
        let mut count: Option<usize> = Some(1);
        for (&n, &c) in shape.iter().zip(chunk) {
            if c == 0 && n > 0 {
                return Err(Error::Chunks(format!(
                    "chunk size 0 along an axis of length {n} (shape {shape:?})"
                )));
            }
            count = count.and_then(|k| k.checked_mul(n.div_ceil(c.max(1)).max(1)));
        }
        // Counted before any list of them is made: metadata from a file
        // (2⁴⁰ chunks of 1) must not ask for terabytes.
        match count {
            Some(k) if k <= MAX_CHUNKS => {}
            _ => {
                return Err(Error::Chunks(format!(
                    "chunks of {chunk:?} split shape {shape:?} into more than {MAX_CHUNKS} \
                     chunks (a task each): choose larger chunks"
                )));
            }
        }
        let dims = shape
            .iter()
            .zip(chunk)
            .map(|(&n, &c)| split_axis(n, c.max(1)))
            .collect();
        Ok(Chunks(dims))
    }

    /// Explicit chunk sizes per axis; they must add up to the shape.
    pub fn explicit(shape: &[usize], dims: Vec<Vec<usize>>) -> Result<Chunks> {
        if dims.len() != shape.len() {
            return Err(Error::Chunks(format!(
                "chunks for {} axes given for an array of shape {shape:?}",
                dims.len()
            )));
        }
        for (d, (sizes, &n)) in dims.iter().zip(shape).enumerate() {
            if sizes.iter().sum::<usize>() != n || (n > 0 && sizes.contains(&0)) {
                return Err(Error::Chunks(format!(
                    "chunk sizes {sizes:?} along axis {d} do not add up to its length {n}"
                )));
            }
        }
        let dims = dims
            .into_iter()
            .map(|d| if d.is_empty() { vec![0] } else { d })
            .collect();
        Ok(Chunks(dims))
    }

    /// About [`AUTO_CHUNK_BYTES`] per chunk, splitting the leading axes first
    /// and keeping chunks as square as the shape allows (like dask's "auto").
    pub fn auto(shape: &[usize], itemsize: usize) -> Result<Chunks> {
        Chunks::auto_elems(shape, (AUTO_CHUNK_BYTES / itemsize.max(1)).max(1))
    }

    /// Chunks of about `target` elements, as square as the shape allows; an
    /// error if that makes more than [`MAX_CHUNKS`] of them.
    pub fn auto_elems(shape: &[usize], target: usize) -> Result<Chunks> {
        let target = target.max(1);
        let nd = shape.len();
        if nd == 0 {
            return Ok(Chunks(Vec::new()));
        }
        // An empty array is one (empty) chunk, however long its other axes.
        if shape.contains(&0) {
            return Ok(Chunks(shape.iter().map(|&n| vec![n]).collect()));
        }
        // Equal edge length per axis, then give the slack of short axes to the others.
        let mut chunk = vec![0usize; nd];
        let mut remaining = target as f64;
        let mut free: Vec<usize> = (0..nd).collect();
        loop {
            let edge = remaining.powf(1.0 / free.len().max(1) as f64);
            let short: Vec<usize> = free
                .iter()
                .copied()
                .filter(|&d| (shape[d] as f64) <= edge)
                .collect();
            if short.is_empty() {
                for &d in &free {
                    chunk[d] = (edge.floor() as usize).max(1);
                }
                break;
            }
            for &d in &short {
                chunk[d] = shape[d].max(1);
                remaining /= shape[d].max(1) as f64;
            }
            free.retain(|d| !short.contains(d));
            if free.is_empty() {
                break;
            }
        }
        // Counted before the lists are made, as for explicit chunk shapes.
        Chunks::regular(shape, &chunk)
    }

    pub fn ndim(&self) -> usize {
        self.0.len()
    }

    /// Number of chunks along each axis.
    pub fn grid(&self) -> Vec<usize> {
        self.0.iter().map(Vec::len).collect()
    }

    /// Total number of chunks.
    pub fn count(&self) -> usize {
        self.0.iter().map(Vec::len).product()
    }

    /// Start offset of every chunk along each axis (plus the total at the end).
    pub fn offsets(&self) -> Vec<Vec<usize>> {
        self.0
            .iter()
            .map(|sizes| {
                let mut o = Vec::with_capacity(sizes.len() + 1);
                let mut acc = 0;
                o.push(0);
                for &s in sizes {
                    acc += s;
                    o.push(acc);
                }
                o
            })
            .collect()
    }

    /// Shape of the chunk at grid index `idx`.
    pub fn chunk_shape(&self, idx: &[usize]) -> Vec<usize> {
        self.0.iter().zip(idx).map(|(s, &i)| s[i]).collect()
    }

    /// Largest chunk along each axis.
    pub fn max_chunk(&self) -> Vec<usize> {
        self.0
            .iter()
            .map(|s| s.iter().copied().max().unwrap_or(0))
            .collect()
    }

    /// Shape described by these chunks.
    pub fn shape(&self) -> Vec<usize> {
        self.0.iter().map(|s| s.iter().sum()).collect()
    }
}

/// Most chunks one array may have (a task each): a graph this size already
/// takes the scheduler tens of gigabytes and many minutes.
pub const MAX_CHUNKS: usize = 1 << 27;

fn split_axis(n: usize, c: usize) -> Vec<usize> {
    if n == 0 {
        return vec![0];
    }
    let mut v = vec![c; n / c];
    if !n.is_multiple_of(c) {
        v.push(n % c);
    }
    v
}

/// Grid index → linear chunk number (row-major over the grid).
pub fn linear_index(idx: &[usize], grid: &[usize]) -> usize {
    idx.iter().zip(grid).fold(0, |acc, (&i, &g)| acc * g + i)
}

/// Linear chunk number → grid index.
pub fn grid_index(mut lin: usize, grid: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; grid.len()];
    for d in (0..grid.len()).rev() {
        let g = grid[d].max(1);
        idx[d] = lin % g;
        lin /= g;
    }
    idx
}

/// Steps `idx` to the next index of a row-major box of `extent` (last axis
/// fastest); false once every index has been visited (idx is back at zeros).
pub fn next_index(idx: &mut [usize], extent: &[usize]) -> bool {
    for d in (0..idx.len()).rev() {
        idx[d] += 1;
        if idx[d] < extent[d] {
            return true;
        }
        idx[d] = 0;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast(&[3, 1], &[1, 4]), Some(vec![3, 4]));
        assert_eq!(broadcast(&[4], &[3, 4]), Some(vec![3, 4]));
        assert_eq!(broadcast(&[], &[2]), Some(vec![2]));
        assert_eq!(broadcast(&[3], &[4]), None);
    }

    #[test]
    fn regular_chunks_and_edges() {
        let c = Chunks::regular(&[10, 4], &[3, 4]).unwrap();
        assert_eq!(c.0, vec![vec![3, 3, 3, 1], vec![4]]);
        assert_eq!(c.count(), 4);
        assert!(Chunks::regular(&[10], &[0]).is_err());
        // Too many chunks is an error before any list of them is made.
        let e = Chunks::regular(&[1 << 40], &[1]).unwrap_err().to_string();
        assert!(e.contains("choose larger chunks"), "{e}");
        assert!(Chunks::regular(&[1 << 20, 1 << 20], &[1, 1 << 20]).is_ok());
        assert!(Chunks::regular(&[usize::MAX, usize::MAX], &[1, 1]).is_err());
        // An empty array is one chunk, whatever its other axes.
        assert_eq!(
            Chunks::auto(&[1 << 62, 0], 8).unwrap().0,
            vec![vec![1usize << 62], vec![0]]
        );
        // Auto chunks of an enormous shape are too many, not terabytes of lists.
        let e = Chunks::auto(&[1 << 62], 8).unwrap_err().to_string();
        assert!(e.contains("choose larger chunks"), "{e}");
        assert!(Chunks::auto(&[usize::MAX], 8).is_err());
        assert!(Chunks::auto_elems(&[1 << 40, 1 << 24], 0).is_err());
        assert_eq!(checked_size(&[1 << 20, 1 << 20]).unwrap(), 1 << 40);
        assert_eq!(checked_size(&[usize::MAX, 0]).unwrap(), 0);
        assert!(checked_size(&[1 << 32, 1 << 32]).is_err());
        assert!(checked_size(&[1 << 40, 1 << 24]).is_err());
        assert!(checked_size(&[1; 65]).is_err());
        assert!(Chunks::explicit(&[10], vec![vec![3, 3]]).is_err());
    }

    #[test]
    fn auto_chunks_about_128_mib() {
        let c = Chunks::auto(&[100_000_000], 8).unwrap();
        assert_eq!(c.0[0][0], 16 << 20);
        let c = Chunks::auto(&[40_000, 40_000], 8).unwrap();
        let m = c.max_chunk();
        assert!(m[0] * m[1] * 8 <= AUTO_CHUNK_BYTES && m[0] * m[1] * 8 > AUTO_CHUNK_BYTES / 2);
        let c = Chunks::auto(&[3, 100_000_000], 8).unwrap();
        assert_eq!(c.max_chunk()[0], 3);
    }

    #[test]
    fn grid_round_trip() {
        let g = [3, 4, 2];
        for lin in 0..24 {
            assert_eq!(linear_index(&grid_index(lin, &g), &g), lin);
        }
    }
}
