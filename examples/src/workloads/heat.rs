//! 2-D explicit heat flow (seed 000): a square plate, the top row held at 100,
//! the other edges at 0, `T[i,j] ← γ·(T[i+1,j] + T[i-1,j] + T[i,j+1] + T[i,j-1])`
//! with γ = 0.25 for Nt steps. Written as the seed's time loop; accel fuses
//! several steps into one task per chunk and keeps only the latest field.

use accel::{Array, Boundary, from_ndarray};
use ndarray::Array2;

use crate::image::write_png;
use crate::report::time_runs;
use crate::{Args, Report};

/// L = 50, α = 2, dx = L/Nx, dt = dx²/(4α): γ = α·dt/dx² = 0.25.
pub const GAMMA: f64 = 0.25;

/// The 5-point update, in the seed's order of terms.
pub const FIVE_POINT: [(&[i64], f64); 4] = [
    (&[1, 0], GAMMA),
    (&[-1, 0], GAMMA),
    (&[0, 1], GAMMA),
    (&[0, -1], GAMMA),
];

/// The initial plate: zero, with the top row (index nx-1) at 100.
pub fn initial(nx: usize) -> Array2<f64> {
    let mut t = Array2::<f64>::zeros((nx, nx));
    t.row_mut(nx - 1).fill(100.0);
    t
}

/// The final field after `nt` steps, as the seed's loop reads.
pub fn build(nx: usize, nt: usize, chunk: usize) -> Array {
    let t = from_ndarray(&initial(nx), vec![chunk, chunk]);
    t.iterate(nt, |t| t.stencil(&FIVE_POINT, Boundary::Fixed))
}

/// The serial reference: two buffers, boundary cells never written.
pub fn serial(nx: usize, nt: usize) -> Array2<f64> {
    let mut t = initial(nx);
    let mut next = t.clone();
    for _ in 0..nt {
        for i in 1..nx - 1 {
            for j in 1..nx - 1 {
                next[[i, j]] =
                    GAMMA * (t[[i + 1, j]] + t[[i - 1, j]] + t[[i, j + 1]] + t[[i, j - 1]]);
            }
        }
        std::mem::swap(&mut t, &mut next);
    }
    t
}

/// The sizes of WORKLOADS.md: (nx, nt, chunk).
pub fn cases(args: &Args) -> Vec<(usize, usize, usize)> {
    args.pick(
        vec![(50, 1000, 25)],
        vec![(200, 4000, 100), (2000, 200, 1000)],
    )
}

pub fn run(args: &Args) -> anyhow::Result<Vec<Report>> {
    cases(args)
        .into_iter()
        .map(|(nx, nt, chunk)| run_case(args, nx, nt, chunk))
        .collect()
}

pub fn run_case(args: &Args, nx: usize, nt: usize, chunk: usize) -> anyhow::Result<Report> {
    let field = build(nx, nt, chunk);
    let planned = args.client.plan(&[&field])?;
    let (time, out) = time_runs(args.repeats, || Ok(args.client.compute::<f64>(&field)?))?;
    let want = serial(nx, nt);
    let diff = out
        .iter()
        .zip(want.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f64, f64::max);
    anyhow::ensure!(
        diff < 1e-9,
        "heat {nx}² × {nt} differs from the serial loop by {diff:e}"
    );
    let name = format!("heat{nx}");
    let png = args.out.join(format!("{name}.png"));
    // Row nx-1 (the hot edge) on top, as pcolormesh draws it.
    let rows_top_first = (0..nx).rev().flat_map(|i| (0..nx).map(move |j| (i, j)));
    write_png(
        &png,
        nx,
        nx,
        rows_top_first.map(|(i, j)| out[[i, j]]),
        0.0,
        100.0,
    )?;
    let mut r = Report::new(
        "heat",
        format!("Nx={nx}, Nt={nt}, chunks {chunk}²"),
        &planned,
        nx * nx * nt,
        0,
        time,
    );
    r.check = if diff == 0.0 {
        "exact (serial loop)".into()
    } else {
        format!("max diff {diff:.1e}")
    };
    let stencils: Vec<_> = planned
        .plan
        .stages
        .iter()
        .filter(|s| s.kind_name() == "stencil")
        .collect();
    let fused = stencils.len();
    let bands = stencils
        .first()
        .map(|s| format!(", on {} row bands", s.meta.chunks.0[0].len()))
        .filter(|_| planned.plan.stages.len() > fused + 1)
        .unwrap_or_default();
    r.notes.push(format!(
        "{nt} steps in {fused} fused stages ({} steps per task, auto rule{bands})",
        nt.div_ceil(fused.max(1))
    ));
    r.notes.push(format!("image: {}", png.display()));
    // Thousands of steps are too many to draw: the pictures show four.
    if nx <= 200 {
        let short = args.client.plan(&[&build(nx, 4, chunk)])?;
        r.notes.push(crate::report::write_graphs(
            &args.out,
            &format!("{name}-4-steps"),
            &short,
        )?);
    }
    Ok(r)
}
