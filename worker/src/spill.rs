//! Chunks on local disk: one file per spilled chunk, holding its shape, the
//! dtype of each column and the elements, compressed with LZ4 when that saves
//! at least a tenth of the bytes (random floats do not compress; zeros, masks
//! and integers often do).

use std::io::Write;
use std::path::{Path, PathBuf};

use accel_core::{Buffer, Chunk, DType};

/// "ACSP", format 1.
const MAGIC: &[u8; 4] = b"ACS1";

fn dtype_code(d: DType) -> u8 {
    match d {
        DType::Bool => 0,
        DType::I32 => 1,
        DType::I64 => 2,
        DType::F32 => 3,
        DType::F64 => 4,
        DType::C128 => 5,
    }
}

fn dtype_of(c: u8) -> Option<DType> {
    Some(match c {
        0 => DType::Bool,
        1 => DType::I32,
        2 => DType::I64,
        3 => DType::F32,
        4 => DType::F64,
        5 => DType::C128,
        _ => return None,
    })
}

/// The spill folder of one worker: created on first use, removed with it.
pub struct SpillDir {
    dir: PathBuf,
    /// Whether the folder was made by this worker (and is removed on drop).
    owned: bool,
    next: std::sync::atomic::AtomicU64,
}

impl SpillDir {
    /// `dir` given by the user (kept on exit), or a fresh temporary folder.
    pub fn new(dir: Option<PathBuf>) -> SpillDir {
        let (dir, owned) = match dir {
            Some(d) => (d, false),
            None => (
                std::env::temp_dir().join(format!(
                    "accel-worker-{}-{}",
                    std::process::id(),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos())
                )),
                true,
            ),
        };
        SpillDir {
            dir,
            owned,
            next: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes `chunk` to a new file; returns it and the bytes it takes on disk.
    pub fn write(&self, chunk: &Chunk) -> std::io::Result<(PathBuf, u64)> {
        std::fs::create_dir_all(&self.dir)?;
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self.dir.join(format!("{n}.chunk"));
        // A chunk only on the GPU is read back first.
        let cols = chunk.cols().map_err(std::io::Error::other)?;
        let mut raw = Vec::with_capacity(chunk.nbytes());
        for col in cols {
            raw.extend_from_slice(&col.le_bytes());
        }
        let packed = lz4_flex::block::compress(&raw);
        let compressed = packed.len() * 10 < raw.len() * 9;
        let body = if compressed { &packed } else { &raw };
        let mut head = Vec::with_capacity(32);
        head.extend_from_slice(MAGIC);
        head.push(u8::from(compressed));
        // The header counts axes and columns in a byte each.
        let count = |n: usize, what: &str| {
            u8::try_from(n).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("a chunk of {n} {what} cannot be spilled (at most 255)"),
                )
            })
        };
        head.push(count(chunk.shape.len(), "axes")?);
        head.push(count(cols.len(), "columns")?);
        for &d in &chunk.shape {
            head.extend_from_slice(&(d as u64).to_le_bytes());
        }
        for c in cols {
            head.push(dtype_code(c.dtype()));
        }
        head.extend_from_slice(&(raw.len() as u64).to_le_bytes());
        let mut f = std::fs::File::create(&path)?;
        let written = f.write_all(&head).and_then(|_| f.write_all(body));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok((path, (head.len() + body.len()) as u64))
    }
}

impl Drop for SpillDir {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn bad(path: &Path, why: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{}: {why}", path.display()),
    )
}

/// Reads a spilled chunk back.
pub fn read(path: &Path) -> std::io::Result<Chunk> {
    let bytes = std::fs::read(path)?;
    let at = |a: usize, n: usize| bytes.get(a..a + n).ok_or_else(|| bad(path, "truncated"));
    if at(0, 4)? != MAGIC {
        return Err(bad(path, "not a spilled chunk"));
    }
    let head = at(4, 3)?;
    let (compressed, nd, ncols) = (head[0] == 1, head[1] as usize, head[2] as usize);
    let mut pos = 7;
    let mut shape = Vec::with_capacity(nd);
    for _ in 0..nd {
        let mut b = [0u8; 8];
        b.copy_from_slice(at(pos, 8)?);
        shape.push(u64::from_le_bytes(b) as usize);
        pos += 8;
    }
    let dtypes = at(pos, ncols)?
        .iter()
        .map(|&c| dtype_of(c).ok_or_else(|| bad(path, "unknown dtype")))
        .collect::<std::io::Result<Vec<_>>>()?;
    pos += ncols;
    let mut b = [0u8; 8];
    b.copy_from_slice(at(pos, 8)?);
    let raw_len = u64::from_le_bytes(b);
    pos += 8;
    // The length the shape and dtypes call for, checked before anything of
    // that size is allocated: a damaged header must not ask for exabytes.
    let n = accel_core::shape::checked_size(&shape).map_err(|e| bad(path, &e.to_string()))?;
    let expected = dtypes.iter().try_fold(0usize, |t, d| {
        n.checked_mul(d.size()).and_then(|b| t.checked_add(b))
    });
    if expected.map(|e| e as u64) != Some(raw_len) {
        return Err(bad(path, "its length does not match its shape"));
    }
    let raw_len = raw_len as usize;
    let body = &bytes[pos..];
    let raw = if compressed {
        lz4_flex::block::decompress(body, raw_len).map_err(|e| bad(path, &e.to_string()))?
    } else {
        body.to_vec()
    };
    let mut cols = Vec::with_capacity(ncols);
    let mut off = 0;
    for d in dtypes {
        let mut col = Buffer::zeros(d, n);
        let len = n * d.size();
        let src = raw.get(off..off + len).ok_or_else(|| bad(path, "short"))?;
        col.write_le_bytes(0, src)
            .map_err(|e| bad(path, &e.to_string()))?;
        cols.push(col);
        off += len;
    }
    if off != raw.len() {
        return Err(bad(path, "longer than its header says"));
    }
    Ok(Chunk::new(shape, cols))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn chunks_come_back_bit_identical_compressed_or_not() {
        let dir = SpillDir::new(None);
        let noise: Vec<f64> = (0..5000u64)
            .map(|i| f64::from_bits(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 2))
            .collect();
        let cases = [
            Chunk::array(vec![50, 100], Buffer::F64(noise)),
            Chunk::array(vec![4096], Buffer::I32(vec![7; 4096])),
            Chunk::array(vec![3], Buffer::Bool(vec![true, false, true])),
            Chunk::new(
                vec![2, 2],
                vec![
                    Buffer::F64(vec![1.0, -0.0, f64::NAN, 2.5]),
                    Buffer::I64(vec![1, 2, 3, 4]),
                ],
            ),
        ];
        for c in &cases {
            let (path, on_disk) = dir.write(c).unwrap();
            let back = read(&path).unwrap();
            assert_eq!(back.shape, c.shape);
            for (a, b) in back.cols().unwrap().iter().zip(c.cols().unwrap()) {
                assert_eq!(a.le_bytes(), b.le_bytes());
            }
            if c.dtype() == Some(accel_core::DType::I32) {
                assert!(on_disk < 1000, "{on_disk} bytes for a run of sevens");
            }
        }
        let p = dir.path().to_path_buf();
        drop(dir);
        assert!(
            !p.exists(),
            "the temporary spill folder goes with the worker"
        );
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_panic() {
        let dir = SpillDir::new(None);
        let (path, _) = dir
            .write(&Chunk::array(vec![100], Buffer::F64(vec![1.5; 100])))
            .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for cut in [0, 3, 10, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            assert!(read(&path).is_err(), "cut at {cut}");
        }
        // A header stating a length its shape does not make, or a shape of
        // more elements than any array holds: errors before allocating.
        let raw_len_at = 4 + 3 + 8 + 1;
        for (at, value) in [(raw_len_at, 1u64 << 56), (7, 1 << 62)] {
            let mut damaged = bytes.clone();
            damaged[at..at + 8].copy_from_slice(&value.to_le_bytes());
            std::fs::write(&path, &damaged).unwrap();
            let e = read(&path).unwrap_err().to_string();
            assert!(e.contains(&path.display().to_string()), "{e}");
        }
    }

    #[test]
    fn a_chunk_of_more_axes_than_a_header_counts_is_not_spilled() {
        let dir = SpillDir::new(None);
        let e = dir
            .write(&Chunk::array(vec![1; 256], Buffer::F64(vec![1.0])))
            .unwrap_err();
        assert!(e.to_string().contains("256 axes"), "{e}");
    }
}
