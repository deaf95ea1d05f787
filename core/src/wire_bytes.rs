//! Buffers as their little-endian wire bytes, without copying where the
//! machine's own layout is that (every little-endian target): chunks go out
//! as slices of their memory, and frames are written straight into place.

use crate::buffer::Buffer;
use crate::error::{Error, Result};

fn bad(msg: String) -> Error {
    Error::Graph(msg)
}

impl Buffer {
    /// The elements as little-endian bytes (bools as 0/1, complex as re, im),
    /// borrowed on little-endian machines.
    pub fn le_bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        #[cfg(target_endian = "little")]
        {
            let (ptr, len) = crate::with_buffer!(self, v => (v.as_ptr() as *const u8, std::mem::size_of_val(v.as_slice())));
            // SAFETY: every element type is plain data without padding
            // (bool is one byte, Complex64 is repr(C) {re, im}); the slice
            // covers exactly the vector's initialized elements and borrows it.
            std::borrow::Cow::Borrowed(unsafe { std::slice::from_raw_parts(ptr, len) })
        }
        #[cfg(not(target_endian = "little"))]
        {
            std::borrow::Cow::Owned(portable_bytes(self))
        }
    }

    /// Writes little-endian element bytes at byte `offset` of the buffer; the
    /// range must cover whole elements. Bools must be 0 or 1.
    pub fn write_le_bytes(&mut self, offset: usize, src: &[u8]) -> Result<()> {
        let size = self.dtype().size();
        let end = offset
            .checked_add(src.len())
            .filter(|&e| e <= self.nbytes())
            .ok_or_else(|| {
                bad(format!(
                    "{} bytes at {offset} overrun a buffer of {}",
                    src.len(),
                    self.nbytes()
                ))
            })?;
        if !offset.is_multiple_of(size) || !end.is_multiple_of(size) {
            return Err(bad(format!(
                "bytes {offset}..{end} do not cover whole {} elements",
                self.dtype()
            )));
        }
        match self {
            Buffer::Bool(v) => {
                for (d, &b) in v[offset..end].iter_mut().zip(src) {
                    if b > 1 {
                        return Err(bad(format!("byte {b} is not a bool")));
                    }
                    *d = b == 1;
                }
                Ok(())
            }
            _ => {
                write_numeric(self, offset, src);
                Ok(())
            }
        }
    }
}

/// Raw copy into a numeric buffer (every bit pattern is a valid element).
fn write_numeric(buf: &mut Buffer, offset: usize, src: &[u8]) {
    #[cfg(target_endian = "little")]
    {
        let (ptr, len) = crate::with_buffer!(buf, v => (v.as_mut_ptr() as *mut u8, std::mem::size_of_val(v.as_slice())));
        debug_assert!(offset + src.len() <= len);
        // SAFETY: numeric elements accept any bit pattern; the caller checked
        // that the range lies inside the vector, which this borrows mutably.
        let dst = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
        dst[offset..offset + src.len()].copy_from_slice(src);
    }
    #[cfg(not(target_endian = "little"))]
    {
        portable_write(buf, offset, src);
    }
}

#[cfg(not(target_endian = "little"))]
fn portable_bytes(buf: &Buffer) -> Vec<u8> {
    let mut out = Vec::with_capacity(buf.nbytes());
    match buf {
        Buffer::Bool(v) => out.extend(v.iter().map(|&b| b as u8)),
        Buffer::I32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Buffer::I64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Buffer::F32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Buffer::F64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Buffer::C128(v) => v.iter().for_each(|z| {
            out.extend_from_slice(&z.re.to_le_bytes());
            out.extend_from_slice(&z.im.to_le_bytes());
        }),
    }
    out
}

#[cfg(not(target_endian = "little"))]
fn portable_write(buf: &mut Buffer, offset: usize, src: &[u8]) {
    let size = buf.dtype().size();
    for (k, e) in src.chunks_exact(size).enumerate() {
        let i = offset / size + k;
        match buf {
            Buffer::Bool(_) => unreachable!(),
            Buffer::I32(v) => v[i] = i32::from_le_bytes(e.try_into().unwrap_or_default()),
            Buffer::I64(v) => v[i] = i64::from_le_bytes(e.try_into().unwrap_or_default()),
            Buffer::F32(v) => v[i] = f32::from_le_bytes(e.try_into().unwrap_or_default()),
            Buffer::F64(v) => v[i] = f64::from_le_bytes(e.try_into().unwrap_or_default()),
            Buffer::C128(v) => {
                let re = f64::from_le_bytes(e[..8].try_into().unwrap_or_default());
                let im = f64::from_le_bytes(e[8..].try_into().unwrap_or_default());
                v[i] = num_complex::Complex64::new(re, im);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::dtype::DType;
    use num_complex::Complex64;

    fn samples() -> Vec<Buffer> {
        vec![
            Buffer::Bool(vec![true, false, true]),
            Buffer::I32(vec![1, -2, i32::MAX]),
            Buffer::I64(vec![-1, 2, i64::MIN]),
            Buffer::F32(vec![1.5, f32::NAN, -0.0]),
            Buffer::F64(vec![1.5, f64::INFINITY, -0.0]),
            Buffer::C128(vec![Complex64::new(1.0, -2.0), Complex64::new(0.5, 3.0)]),
        ]
    }

    #[test]
    fn bytes_round_trip_in_pieces_for_every_dtype() {
        for b in samples() {
            let bytes = b.le_bytes().into_owned();
            assert_eq!(bytes.len(), b.nbytes());
            let size = b.dtype().size();
            let mut back = Buffer::zeros(b.dtype(), b.len());
            // Written element by element, in reverse, like frames out of order.
            for k in (0..b.len()).rev() {
                back.write_le_bytes(k * size, &bytes[k * size..(k + 1) * size])
                    .unwrap();
            }
            let same = match (&b, &back) {
                (Buffer::F32(x), Buffer::F32(y)) => {
                    x.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits())
                }
                (Buffer::F64(x), Buffer::F64(y)) => {
                    x.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits())
                }
                _ => b == back,
            };
            assert!(same, "{b:?} came back as {back:?}");
        }
    }

    #[test]
    fn little_endian_layout() {
        assert_eq!(&*Buffer::I32(vec![1]).le_bytes(), &[1, 0, 0, 0]);
        assert_eq!(&*Buffer::Bool(vec![true, false]).le_bytes(), &[1, 0]);
        let c = Buffer::C128(vec![Complex64::new(1.0, 2.0)])
            .le_bytes()
            .into_owned();
        assert_eq!(&c[..8], &1.0f64.to_le_bytes());
        assert_eq!(&c[8..], &2.0f64.to_le_bytes());
    }

    #[test]
    fn ragged_or_overlong_writes_and_bad_bools_are_refused() {
        let mut f = Buffer::zeros(DType::F64, 2);
        assert!(
            f.write_le_bytes(4, &[0; 8]).is_err(),
            "not on an element boundary"
        );
        assert!(f.write_le_bytes(8, &[0; 16]).is_err(), "past the end");
        assert!(f.write_le_bytes(usize::MAX, &[0; 8]).is_err());
        let mut b = Buffer::zeros(DType::Bool, 2);
        assert!(b.write_le_bytes(0, &[1, 7]).is_err());
        assert!(b.write_le_bytes(0, &[1, 0]).is_ok());
    }
}
