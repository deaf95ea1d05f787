//! Dense products of two row-major blocks: the body of a matmul task. Floats
//! and complex numbers go through the `gemm` crate's vectorized kernels;
//! integers through an exact (wrapping) i-k-j loop.

use num_complex::Complex64;

use crate::buffer::Buffer;
use crate::dtype::DType;
use crate::error::{Error, Result};

fn wrong(what: &str) -> Error {
    Error::Task {
        task: "matmul".into(),
        message: format!("internal: {what}"),
    }
}

macro_rules! converter {
    ($name:ident, $t:ty, $($variant:ident => $conv:expr),*) => {
        /// The block's elements converted to the product's type.
        fn $name(b: &Buffer) -> Result<Vec<$t>> {
            match b {
                $(Buffer::$variant(v) => Ok(v.iter().map($conv).collect()),)*
                other => Err(wrong(&format!("a {} block in a product of {}", other.dtype(), stringify!($t)))),
            }
        }
    };
}

converter!(f64s, f64, F64 => |&x| x, F32 => |&x| f64::from(x), I64 => |&x| x as f64, I32 => |&x| f64::from(x));
converter!(f32s, f32, F32 => |&x| x, I32 => |&x| x as f32);
converter!(i64s, i64, I64 => |&x| x, I32 => |&x| i64::from(x));
converter!(c64s, Complex64, C128 => |&x| x, F64 => |&x| Complex64::new(x, 0.0),
    F32 => |&x| Complex64::new(f64::from(x), 0.0), I64 => |&x| Complex64::new(x as f64, 0.0),
    I32 => |&x| Complex64::new(f64::from(x), 0.0));

/// `c = a @ b` with `a` m × k and `b` k × n, row-major slices of exactly that size.
fn gemm_into<T: Copy + 'static>(
    a: &[T],
    b: &[T],
    c: &mut [T],
    m: usize,
    k: usize,
    n: usize,
    one: T,
) {
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the slices hold m·k, k·n and m·n elements (checked by the
    // caller), and the strides below address exactly those row-major blocks;
    // `gemm` supports f32, f64 and Complex64, the only types used here.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            one,
            one,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
}

/// The product of an m × k block and a k × n block, in `dtype` (the
/// operands' promoted type), returned in the accumulator type of a sum:
/// f64 for floats (f32 products widened), i64 for integers, c128.
pub fn block_product(
    dtype: DType,
    a: &Buffer,
    b: &Buffer,
    m: usize,
    k: usize,
    n: usize,
) -> Result<Buffer> {
    if a.len() != m * k || b.len() != k * n {
        return Err(wrong(&format!(
            "blocks of {} and {} elements for a {m}×{k} by {k}×{n} product",
            a.len(),
            b.len()
        )));
    }
    Ok(match dtype {
        DType::F64 => {
            let (a, b) = (f64s(a)?, f64s(b)?);
            let mut c = crate::memory::zeroed_vec(0.0f64, m * n);
            gemm_into(&a, &b, &mut c, m, k, n, 1.0);
            Buffer::F64(c)
        }
        DType::F32 => {
            let (a, b) = (f32s(a)?, f32s(b)?);
            let mut c = vec![0.0f32; m * n];
            gemm_into(&a, &b, &mut c, m, k, n, 1.0);
            Buffer::F64(c.into_iter().map(f64::from).collect())
        }
        DType::C128 => {
            let (a, b) = (c64s(a)?, c64s(b)?);
            let mut c = vec![Complex64::new(0.0, 0.0); m * n];
            gemm_into(&a, &b, &mut c, m, k, n, Complex64::new(1.0, 0.0));
            Buffer::C128(c)
        }
        DType::I64 | DType::I32 => {
            let (a, b) = (i64s(a)?, i64s(b)?);
            let mut c = vec![0i64; m * n];
            for i in 0..m {
                let row = &mut c[i * n..(i + 1) * n];
                for p in 0..k {
                    let x = a[i * k + p];
                    for (o, &y) in row.iter_mut().zip(&b[p * n..(p + 1) * n]) {
                        *o = o.wrapping_add(x.wrapping_mul(y));
                    }
                }
            }
            Buffer::I64(c)
        }
        DType::Bool => return Err(wrong("matmul of bool blocks")),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn products_match_a_triple_loop() {
        for (m, k, n) in [(1, 1, 1), (3, 5, 2), (17, 9, 33), (64, 64, 64), (0, 3, 2)] {
            let a: Vec<f64> = (0..m * k).map(|i| (i % 7) as f64 - 3.0).collect();
            let b: Vec<f64> = (0..k * n).map(|i| (i % 5) as f64 * 0.5).collect();
            let want = naive(&a, &b, m, k, n);
            let got = block_product(
                DType::F64,
                &Buffer::F64(a.clone()),
                &Buffer::F64(b.clone()),
                m,
                k,
                n,
            )
            .unwrap();
            // Small integers and halves: every order of summation is exact.
            assert_eq!(got, Buffer::F64(want.clone()), "{m}×{k}×{n}");
            let ai: Vec<i64> = a.iter().map(|&x| x as i64).collect();
            let bi: Vec<i64> = b.iter().map(|&x| (2.0 * x) as i64).collect();
            let gi =
                block_product(DType::I64, &Buffer::I64(ai), &Buffer::I64(bi), m, k, n).unwrap();
            let wi: Vec<i64> = want.iter().map(|&x| (2.0 * x) as i64).collect();
            assert_eq!(gi, Buffer::I64(wi));
        }
    }

    #[test]
    fn wrong_sizes_are_an_error() {
        let a = Buffer::F64(vec![1.0; 6]);
        assert!(block_product(DType::F64, &a, &a, 2, 2, 2).is_err());
    }
}
