//! Putting result chunks in place: whole chunks (embedded runs) and frames
//! of chunks as they arrive from workers (cluster runs), each copied once,
//! straight into the result buffer.

use accel_core::plan::{ChunkKey, Plan};
use accel_core::{Buffer, Chunk, shape, with_buffer};

use crate::error::Result;

/// Copies `chunk` into the row-major `dst` of `shape` at `origin`.
pub fn paste(
    dst: &mut Buffer,
    shape: &[usize],
    origin: &[usize],
    chunk: &Chunk,
) -> accel_core::Result<()> {
    let src = chunk.data()?;
    let cshape = &chunk.shape;
    let nd = shape.len();
    let total = shape::size(cshape);
    if total == 0 {
        return Ok(());
    }
    let strides = shape::strides(shape);
    let row = if nd == 0 { 1 } else { cshape[nd - 1] };
    macro_rules! paste_rows {
        ($d:expr, $s:expr) => {{
            let mut c = vec![0usize; nd.saturating_sub(1)];
            for r in 0..total / row {
                let start: usize = (0..nd)
                    .map(|k| (origin[k] + if k + 1 < nd { c[k] } else { 0 }) * strides[k])
                    .sum();
                $d[start..start + row].copy_from_slice(&$s[r * row..(r + 1) * row]);
                for k in (0..c.len()).rev() {
                    c[k] += 1;
                    if c[k] < cshape[k] {
                        break;
                    }
                    c[k] = 0;
                }
            }
        }};
    }
    match (dst, src) {
        (Buffer::Bool(d), Buffer::Bool(s)) => paste_rows!(d, s),
        (Buffer::I32(d), Buffer::I32(s)) => paste_rows!(d, s),
        (Buffer::I64(d), Buffer::I64(s)) => paste_rows!(d, s),
        (Buffer::F32(d), Buffer::F32(s)) => paste_rows!(d, s),
        (Buffer::F64(d), Buffer::F64(s)) => paste_rows!(d, s),
        (Buffer::C128(d), Buffer::C128(s)) => paste_rows!(d, s),
        (d, s) => {
            let (dd, sd) = (with_buffer!(&*d, v => v.len()), s.dtype());
            return Err(accel_core::Error::Task {
                task: "assemble".into(),
                message: format!("internal: chunk of {sd} for a result buffer of {dd} elements"),
            });
        }
    }
    Ok(())
}

/// Copies the chunk bytes `bytes`, which start at byte `offset` of a
/// row-major chunk of `cshape`, into the row-major `dst` of `shape` at
/// `origin`: each run of a chunk row lands where it belongs.
pub fn paste_bytes(
    dst: &mut Buffer,
    shape: &[usize],
    origin: &[usize],
    cshape: &[usize],
    offset: usize,
    bytes: &[u8],
) -> accel_core::Result<()> {
    let size = dst.dtype().size();
    let bad = |m: String| accel_core::Error::Task {
        task: "assemble".into(),
        message: m,
    };
    if !offset.is_multiple_of(size) || !bytes.len().is_multiple_of(size) {
        return Err(bad(format!(
            "a frame of {} bytes at {offset} splits {} elements",
            bytes.len(),
            dst.dtype()
        )));
    }
    let nd = shape.len();
    let row = if nd == 0 { 1 } else { cshape[nd - 1].max(1) };
    let strides = shape::strides(shape);
    let (mut e, end) = (offset / size, (offset + bytes.len()) / size);
    if end > shape::size(cshape) {
        return Err(bad("a frame beyond the end of its chunk".into()));
    }
    let mut coords = vec![0usize; nd.saturating_sub(1)];
    while e < end {
        let (r, c) = (e / row, e % row);
        let run = (row - c).min(end - e);
        // Coordinates of chunk row r, last axis excluded.
        let mut rest = r;
        for k in (0..coords.len()).rev() {
            coords[k] = rest % cshape[k].max(1);
            rest /= cshape[k].max(1);
        }
        let mut at = 0usize;
        for k in 0..nd {
            let x = if k + 1 < nd { coords[k] } else { c };
            at += (origin[k] + x) * strides[k];
        }
        let from = (e - offset / size) * size;
        dst.write_le_bytes(at * size, &bytes[from..from + run * size])?;
        e += run;
    }
    Ok(())
}

/// The result buffers being filled, and which chunks are in.
pub struct Results {
    buffers: Vec<Buffer>,
    shapes: Vec<Vec<usize>>,
    got: Vec<Vec<bool>>,
}

impl Results {
    pub fn new(plan: &Plan) -> Results {
        let metas: Vec<_> = plan.outputs.iter().map(|s| &plan.stage(*s).meta).collect();
        Results {
            buffers: metas
                .iter()
                .map(|m| Buffer::zeros(m.dtype, shape::size(&m.shape)))
                .collect(),
            shapes: metas.iter().map(|m| m.shape.clone()).collect(),
            got: metas
                .iter()
                .map(|m| vec![false; m.chunks.count()])
                .collect(),
        }
    }

    /// Writes a frame of output chunk `key` (bytes from `offset` of the chunk) into place.
    pub fn paste_frame(
        &mut self,
        output: usize,
        plan: &Plan,
        key: ChunkKey,
        offset: usize,
        bytes: &[u8],
    ) -> Result<()> {
        paste_bytes(
            &mut self.buffers[output],
            &self.shapes[output],
            &plan.chunk_origin(key),
            &plan.chunk_shape(key),
            offset,
            bytes,
        )?;
        Ok(())
    }

    /// Every byte of output chunk `chunk` arrived.
    pub fn mark(&mut self, output: usize, chunk: usize) {
        if let Some(g) = self.got[output].get_mut(chunk) {
            *g = true;
        }
    }

    /// Every chunk of every output is in.
    pub fn complete(&self) -> bool {
        self.got.iter().all(|g| g.iter().all(|x| *x))
    }

    pub fn finish(self) -> Vec<Buffer> {
        self.buffers
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A 3-d chunk pasted whole and pasted frame by frame (in pieces of any
    /// whole-element size, in any order) gives the same array.
    #[test]
    fn frames_land_where_the_whole_chunk_would() {
        let shape = [5, 7, 6];
        let (origin, cshape) = ([1, 2, 3], [3, 4, 3]);
        let n: usize = cshape.iter().product();
        let chunk = Chunk::array(
            cshape.to_vec(),
            Buffer::F64((0..n).map(|i| i as f64 + 0.5).collect()),
        );
        let mut whole = Buffer::zeros(accel_core::DType::F64, shape.iter().product());
        paste(&mut whole, &shape, &origin, &chunk).unwrap();
        for piece in [1, 2, 5, 7, 36] {
            let bytes = chunk.data().unwrap().le_bytes().into_owned();
            let mut framed = Buffer::zeros(accel_core::DType::F64, shape.iter().product());
            let starts: Vec<usize> = (0..n).step_by(piece).collect();
            for &s in starts.iter().rev() {
                let e = (s + piece).min(n);
                paste_bytes(
                    &mut framed,
                    &shape,
                    &origin,
                    &cshape,
                    s * 8,
                    &bytes[s * 8..e * 8],
                )
                .unwrap();
            }
            assert_eq!(framed, whole, "pieces of {piece}");
        }
    }

    #[test]
    fn frames_that_split_elements_or_overrun_are_refused() {
        let mut out = Buffer::zeros(accel_core::DType::F64, 10);
        assert!(paste_bytes(&mut out, &[10], &[0], &[4], 4, &[0; 8]).is_err());
        assert!(paste_bytes(&mut out, &[10], &[0], &[4], 0, &[0; 12]).is_err());
        assert!(paste_bytes(&mut out, &[10], &[8], &[4], 0, &[0; 40]).is_err());
        assert!(paste_bytes(&mut out, &[10], &[6], &[4], 0, &[0; 32]).is_ok());
    }
}
