//! The masked Mandelbrot iteration of seed 004, one fused task per chunk.

use accel::{Array, Complex64, full, ogrid, where_};

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

pub fn run(args: &Args) -> anyhow::Result<Report> {
    let (height, width): (usize, usize) = args.pick((160, 240), (1600, 2400));
    let chunks = [height.div_ceil(3), width.div_ceil(4)];
    let fractal = build(height, width, chunks);
    let planned = fractal.plan()?;
    let (time, got) = time_runs(args.repeats, || Ok(args.client.compute::<i32>(&fractal)?))?;
    let want = reference(height, width);
    let diff = got.iter().zip(&want).filter(|(a, b)| a != b).count();
    anyhow::ensure!(
        diff == 0,
        "fractal differs from the scalar reference in {diff} pixels"
    );
    let png = args.out.join("fractal.png");
    write_png(
        &png,
        width,
        height,
        got.iter().map(|&v| v as f64),
        0.0,
        MAX_ITER as f64,
    )?;
    let mut r = Report::new(
        "fractal",
        format!("{height}×{width}, chunks {}×{}", chunks[0], chunks[1]),
        &planned,
        height * width,
        height * width * 4,
        time,
    );
    r.notes
        .push(crate::report::write_graphs(&args.out, "fractal", &planned)?);
    r.check = "identical int32 image".into();
    r.notes.push(format!("image: {}", png.display()));
    Ok(r)
}
