//! The masked Mandelbrot iteration of seed 004, one fused task per chunk;
//! and the same image from a user kernel with an early exit (the seed's
//! `numba.vectorize` function, written with `loop_until`).

use accel::{Array, Complex64, DType, Operand, full, loop_until, ogrid, where_};

use crate::image::write_png;
use crate::report::time_runs;
use crate::{Args, Report};

pub const MAX_ITER: i32 = 20;

/// Builds the image exactly as the seed's loop reads.
pub fn build(height: usize, width: usize, chunks: [usize; 2]) -> Array {
    let g = ogrid(&[(-1.0, 0.0, height), (-1.5, 0.0, width)], &chunks);
    let (y, x) = (&g[0], &g[1]);
    let c = x + y * Complex64::new(0.0, 1.0);
    let mut fractal = full(&[height, width], MAX_ITER, chunks);
    let mut z = c.clone();
    for i in 0..MAX_ITER {
        z = z.powi(2) + &c;
        let diverged = z.abs().gt(2.0);
        let diverging_now = &diverged & fractal.equal(MAX_ITER);
        fractal = where_(&diverging_now, i, &fractal);
        z = where_(&diverged, 2.0, &z);
    }
    fractal
}

/// The image from the seed's per-pixel function (`numba.vectorize`):
///
/// ```python
/// def pixel(c):
///     z = c
///     for i in range(MAX_ITER):
///         z = z**2 + c
///         if abs(z) > 2:
///             return i
///     return MAX_ITER
/// ```
///
/// as one fused kernel per chunk whose pixels leave the loop as they diverge.
pub fn build_kernel(height: usize, width: usize, chunks: [usize; 2]) -> Array {
    let g = ogrid(&[(-1.0, 0.0, height), (-1.5, 0.0, width)], &chunks);
    let (y, x) = (&g[0], &g[1]);
    let c = x + y * Complex64::new(0.0, 1.0);
    let state = [
        Operand::from(&c),
        full(&[], MAX_ITER, Vec::<usize>::new()).into(),
    ];
    let out = loop_until(&state, MAX_ITER as u32, |s, i| {
        let z = s[0].powi(2) + &c;
        let diverged = z.abs().gt(2.0);
        let escape = where_(&diverged, i.astype(DType::I32), MAX_ITER);
        (vec![z, escape], diverged)
    });
    out[1].clone()
}

/// The same computation as a scalar loop over pixels.
pub fn reference(height: usize, width: usize) -> Vec<i32> {
    let lin = |start: f64, stop: f64, num: usize, i: usize| {
        if i + 1 == num {
            stop
        } else {
            start + i as f64 * ((stop - start) / (num - 1).max(1) as f64)
        }
    };
    let mut out = vec![MAX_ITER; height * width];
    for r in 0..height {
        let y = lin(-1.0, 0.0, height, r);
        for col in 0..width {
            let c = Complex64::new(lin(-1.5, 0.0, width, col), y);
            let mut z = c;
            let px = &mut out[r * width + col];
            for i in 0..MAX_ITER {
                z = Complex64::new(z.re * z.re - z.im * z.im, 2.0 * z.re * z.im) + c;
                let diverged = z.re.hypot(z.im) > 2.0;
                if diverged && *px == MAX_ITER {
                    *px = i;
                }
                if diverged {
                    z = Complex64::new(2.0, 0.0);
                }
            }
        }
    }
    out
}

pub fn run(args: &Args) -> anyhow::Result<Vec<Report>> {
    let (height, width): (usize, usize) = args.pick((160, 240), (1600, 2400));
    let chunks = [height.div_ceil(3), width.div_ceil(4)];
    let want = reference(height, width);
    let size = format!("{height}×{width}, chunks {}×{}", chunks[0], chunks[1]);
    let mut reports = Vec::new();
    for (variant, fractal) in [
        (None, build(height, width, chunks)),
        (Some("loop_until"), build_kernel(height, width, chunks)),
    ] {
        let planned = fractal.plan()?;
        let (time, got) = time_runs(args.repeats, || Ok(args.client.compute::<i32>(&fractal)?))?;
        let diff = got.iter().zip(&want).filter(|(a, b)| a != b).count();
        anyhow::ensure!(
            diff == 0,
            "fractal{} differs from the scalar reference in {diff} pixels",
            variant.map(|v| format!(" [{v}]")).unwrap_or_default()
        );
        let mut r = Report::new(
            "fractal",
            size.clone(),
            &planned,
            height * width,
            height * width * 4,
            time,
        )
        .with_graphs(variant, &args.out, &planned)?;
        r.check = "identical int32 image".into();
        if variant.is_none() {
            let png = args.out.join("fractal.png");
            write_png(
                &png,
                width,
                height,
                got.iter().map(|&v| v as f64),
                0.0,
                MAX_ITER as f64,
            )?;
            r.notes.push(format!("image: {}", png.display()));
        }
        reports.push(r);
    }
    Ok(reports)
}
