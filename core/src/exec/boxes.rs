//! Boxes of an array assembled from whichever of its chunks overlap them:
//! how a kernel reads an input chunked differently from its own chunks.

use crate::buffer::{Buffer, Chunk};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::shape;

/// The box of an input (shape `in_shape`, aligned at the trailing axes of the
/// kernel's iteration space `space`) that the kernel's box `origin..origin +
/// local` reads: whole along the input's broadcast axes (length 1).
pub fn needed_box(
    in_shape: &[usize],
    space: &[usize],
    origin: &[usize],
    local: &[usize],
) -> (Vec<usize>, Vec<usize>) {
    let off = space.len().saturating_sub(in_shape.len());
    in_shape
        .iter()
        .enumerate()
        .map(|(d, &n)| {
            if n == 1 && space.get(off + d) != Some(&1) {
                (0, 1)
            } else {
                (
                    origin.get(off + d).copied().unwrap_or(0),
                    local.get(off + d).copied().unwrap_or(n),
                )
            }
        })
        .unzip()
}

/// Grid index ranges (`lo..hi` per axis) of the chunks with offsets `offsets`
/// that overlap the box `lo..lo + len`.
pub fn overlapping(
    offsets: &[Vec<usize>],
    lo: &[usize],
    len: &[usize],
) -> (Vec<usize>, Vec<usize>) {
    offsets
        .iter()
        .zip(lo.iter().zip(len))
        .map(|(offs, (&l, &n))| {
            let chunks = offs.len().saturating_sub(1);
            if n == 0 || chunks == 0 || offs.last() == Some(&0) {
                return (0, chunks.min(1));
            }
            // Chunk i spans offs[i]..offs[i + 1].
            let first = offs.partition_point(|&s| s <= l).saturating_sub(1);
            let last = offs[..chunks].partition_point(|&s| s < l + n);
            (first.min(chunks - 1), last.max(first + 1).min(chunks))
        })
        .unzip()
}

/// Copies the parts of `parts` (chunks with their global origins) that fall in
/// the box `lo..lo + shape` into one row-major buffer of that box.
pub fn assemble(
    dtype: DType,
    lo: &[usize],
    shape: &[usize],
    parts: &[(Vec<usize>, &Chunk)],
) -> Result<Buffer> {
    let nd = shape.len();
    let mut out = Buffer::zeros(dtype, shape::size(shape));
    let out_strides = shape::strides(shape);
    for (corigin, chunk) in parts {
        let src = chunk.data()?;
        if src.dtype() != dtype || chunk.shape.len() != nd || corigin.len() != nd {
            return Err(Error::Task {
                task: "kernel".into(),
                message: format!(
                    "internal: a {} chunk {:?} cannot fill a {dtype} box {shape:?}",
                    src.dtype(),
                    chunk.shape
                ),
            });
        }
        if nd == 0 {
            copy_run(&mut out, 0, src, 0, 1.min(src.len()));
            continue;
        }
        // The intersection, in global coordinates.
        let a: Vec<usize> = (0..nd).map(|d| lo[d].max(corigin[d])).collect();
        let b: Vec<usize> = (0..nd)
            .map(|d| (lo[d] + shape[d]).min(corigin[d] + chunk.shape[d]))
            .collect();
        if a.iter().zip(&b).any(|(x, y)| x >= y) {
            continue;
        }
        let src_strides = shape::strides(&chunk.shape);
        let extent: Vec<usize> = (0..nd - 1).map(|d| b[d] - a[d]).collect();
        let row = b[nd - 1] - a[nd - 1];
        let mut c = vec![0usize; nd - 1];
        loop {
            let (mut s, mut o) = (0, 0);
            for d in 0..nd {
                let g = a[d] + if d < nd - 1 { c[d] } else { 0 };
                s += (g - corigin[d]) * src_strides[d];
                o += (g - lo[d]) * out_strides[d];
            }
            copy_run(&mut out, o, src, s, row);
            if !shape::next_index(&mut c, &extent) {
                break;
            }
        }
    }
    Ok(out)
}

/// `dst[o..o + n] = src[s..s + n]` for buffers of one dtype.
fn copy_run(dst: &mut Buffer, o: usize, src: &Buffer, s: usize, n: usize) {
    match (dst, src) {
        (Buffer::Bool(d), Buffer::Bool(v)) => d[o..o + n].copy_from_slice(&v[s..s + n]),
        (Buffer::I32(d), Buffer::I32(v)) => d[o..o + n].copy_from_slice(&v[s..s + n]),
        (Buffer::I64(d), Buffer::I64(v)) => d[o..o + n].copy_from_slice(&v[s..s + n]),
        (Buffer::F32(d), Buffer::F32(v)) => d[o..o + n].copy_from_slice(&v[s..s + n]),
        (Buffer::F64(d), Buffer::F64(v)) => d[o..o + n].copy_from_slice(&v[s..s + n]),
        (Buffer::C128(d), Buffer::C128(v)) => d[o..o + n].copy_from_slice(&v[s..s + n]),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn overlapping_chunks_of_a_box() {
        let offs = vec![vec![0, 4, 8, 10]];
        assert_eq!(overlapping(&offs, &[0], &[4]), (vec![0], vec![1]));
        assert_eq!(overlapping(&offs, &[3], &[2]), (vec![0], vec![2]));
        assert_eq!(overlapping(&offs, &[4], &[6]), (vec![1], vec![3]));
        assert_eq!(overlapping(&offs, &[9], &[1]), (vec![2], vec![3]));
        assert_eq!(overlapping(&[vec![0, 0]], &[0], &[0]), (vec![0], vec![1]));
    }

    #[test]
    fn a_box_across_four_chunks() {
        // A 4×4 array of 0..16 in 2×2 chunks; the box rows 1..3, cols 1..4.
        let full: Vec<f64> = (0..16).map(f64::from).collect();
        let chunk = |r: usize, c: usize| {
            let v: Vec<f64> = (0..4).map(|k| full[(r + k / 2) * 4 + c + k % 2]).collect();
            Chunk::array(vec![2, 2], Buffer::F64(v))
        };
        let cs = [chunk(0, 0), chunk(0, 2), chunk(2, 0), chunk(2, 2)];
        let parts: Vec<(Vec<usize>, &Chunk)> = [(0, 0), (0, 2), (2, 0), (2, 2)]
            .iter()
            .zip(&cs)
            .map(|(&(r, c), ch)| (vec![r, c], ch))
            .collect();
        let b = assemble(DType::F64, &[1, 1], &[2, 3], &parts).unwrap();
        assert_eq!(b, Buffer::F64(vec![5.0, 6.0, 7.0, 9.0, 10.0, 11.0]));
    }
}
