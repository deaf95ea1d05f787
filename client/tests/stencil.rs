#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic
//! Stencils against serial references: every boundary rule, 1-D to 3-D, odd
//! chunkings, fused time steps, and the task counts of temporal blocking.

use accel::{Array, Boundary, Client, from_ndarray};
use ndarray::{ArrayD, IxDyn};

/// Deterministic pseudo-random data in [-1, 1).
fn data(shape: &[usize], seed: u64) -> ArrayD<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    ArrayD::from_shape_fn(IxDyn(shape), |_| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    })
}

/// The value `a` has at `idx + off` under `b` (None: the cell is outside and
/// the rule is constant, handled by the caller).
fn read(a: &ArrayD<f64>, idx: &[usize], off: &[i64], b: &[Boundary]) -> f64 {
    let mut at = Vec::with_capacity(idx.len());
    for d in 0..idx.len() {
        let n = a.shape()[d] as i64;
        let x = idx[d] as i64 + off[d];
        let y = if (0..n).contains(&x) {
            x
        } else {
            match b[d] {
                Boundary::Constant(v) => return v,
                Boundary::Periodic => x.rem_euclid(n),
                Boundary::Reflect => {
                    if x < 0 {
                        -x - 1
                    } else {
                        2 * n - 1 - x
                    }
                }
                Boundary::Nearest | Boundary::Fixed => x.clamp(0, n - 1),
            }
        };
        at.push(y as usize);
    }
    a[IxDyn(&at)]
}

/// One step of `Σ w·a[i + off]` with fixed edges where the rule says so.
fn reference_step(a: &ArrayD<f64>, points: &[(&[i64], f64)], b: &[Boundary]) -> ArrayD<f64> {
    let nd = a.ndim();
    let mut reach = vec![0usize; nd];
    for (off, _) in points {
        for d in 0..nd {
            reach[d] = reach[d].max(off[d].unsigned_abs() as usize);
        }
    }
    ArrayD::from_shape_fn(a.raw_dim(), |ix| {
        let idx: Vec<usize> = (0..nd).map(|d| ix[d]).collect();
        let fixed = (0..nd).any(|d| {
            b[d] == Boundary::Fixed && (idx[d] < reach[d] || idx[d] + reach[d] >= a.shape()[d])
        });
        if fixed {
            return a[ix];
        }
        points
            .iter()
            .map(|(off, w)| w * read(a, &idx, off, b))
            .sum()
    })
}

fn max_diff(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

const RULES: [Boundary; 5] = [
    Boundary::Constant(0.5),
    Boundary::Periodic,
    Boundary::Reflect,
    Boundary::Nearest,
    Boundary::Fixed,
];

fn check(
    shape: &[usize],
    chunks: &[usize],
    points: &[(&[i64], f64)],
    steps: usize,
    depth: Option<usize>,
) {
    // On the field's chunks and (small loops) on row bands.
    for bands in [false, true] {
        let client = Client::local()
            .with_stencil_depth(depth)
            .with_loop_bands(bands);
        for rule in RULES {
            let b = vec![rule; shape.len()];
            let init = data(shape, shape.iter().sum::<usize>() as u64 + steps as u64);
            let x = from_ndarray(&init, chunks);
            let out = x.iterate(steps, |t| t.stencil(points, b.clone()));
            let got = client.compute::<f64>(&out).unwrap();
            let mut want = init;
            for _ in 0..steps {
                want = reference_step(&want, points, &b);
            }
            let diff = max_diff(&got, &want);
            assert!(
                diff < 1e-12,
                "{rule:?} on {shape:?} chunks {chunks:?}, {steps} steps, depth {depth:?}, bands {bands}: max diff {diff}"
            );
        }
    }
}

const LAPLACE_1D: [(&[i64], f64); 3] = [(&[-1], 0.25), (&[0], 0.5), (&[1], 0.25)];
const FIVE_POINT: [(&[i64], f64); 4] = [
    (&[1, 0], 0.25),
    (&[-1, 0], 0.25),
    (&[0, 1], 0.25),
    (&[0, -1], 0.25),
];

#[test]
fn one_dimensional_every_rule() {
    check(&[23], &[5], &LAPLACE_1D, 1, None);
    check(&[23], &[5], &LAPLACE_1D, 6, None);
    check(&[23], &[4], &[(&[-2], 0.3), (&[1], 0.7)], 3, Some(4));
}

#[test]
fn two_dimensional_every_rule_odd_chunks() {
    check(&[13, 11], &[5, 4], &FIVE_POINT, 1, None);
    check(&[13, 11], &[5, 4], &FIVE_POINT, 7, Some(3));
    let nine: Vec<(&[i64], f64)> = vec![
        (&[-1, -1], 0.05),
        (&[-1, 0], 0.1),
        (&[-1, 1], 0.05),
        (&[0, -1], 0.1),
        (&[0, 0], 0.4),
        (&[0, 1], 0.1),
        (&[1, -1], 0.05),
        (&[1, 0], 0.1),
        (&[1, 1], 0.05),
    ];
    check(&[9, 14], &[4, 5], &nine, 4, None);
}

/// Rows this wide are computed a few at a time (bands of the chunk that fit
/// in cache): every rule at the edges between bands and the array's ends.
#[test]
fn wide_chunks_computed_in_bands_every_rule() {
    check(&[40, 6000], &[40, 6000], &FIVE_POINT, 3, None);
    check(&[41, 6000], &[41, 2500], &FIVE_POINT, 2, Some(2));
    let seven: Vec<(&[i64], f64)> = vec![
        (&[1, 0, 0], 0.1),
        (&[-1, 0, 0], 0.2),
        (&[0, 1, 0], 0.1),
        (&[0, -1, 0], 0.2),
        (&[0, 0, 2], 0.1),
        (&[0, 0, -1], 0.2),
        (&[0, 0, 0], 0.1),
    ];
    check(&[21, 40, 700], &[21, 20, 700], &seven, 2, None);
}

#[test]
fn three_dimensional_every_rule() {
    let seven: Vec<(&[i64], f64)> = vec![
        (&[1, 0, 0], 0.1),
        (&[-1, 0, 0], 0.2),
        (&[0, 1, 0], 0.1),
        (&[0, -1, 0], 0.2),
        (&[0, 0, 1], 0.1),
        (&[0, 0, -1], 0.2),
        (&[0, 0, 0], 0.1),
    ];
    check(&[7, 6, 5], &[3, 4, 2], &seven, 3, None);
}

#[test]
fn halos_deeper_than_a_chunk_read_further_chunks() {
    // Offsets of 5 with chunks of 2: each task reads three chunks either side.
    check(&[17], &[2], &[(&[-5], 0.5), (&[5], 0.5)], 2, None);
    check(
        &[9, 8],
        &[2, 3],
        &[(&[3, -4], 1.0), (&[0, 0], 1.0)],
        1,
        None,
    );
}

/// The seed's heat flow: fixed edges, top row hot.
fn heat_init(nx: usize, chunk: usize) -> (ArrayD<f64>, Array) {
    let mut t = ArrayD::<f64>::zeros(IxDyn(&[nx, nx]));
    for j in 0..nx {
        t[[nx - 1, j]] = 100.0;
    }
    let a = from_ndarray(&t, vec![chunk, chunk]);
    (t, a)
}

fn heat_serial(mut t: ArrayD<f64>, steps: usize) -> ArrayD<f64> {
    let nx = t.shape()[0];
    let mut next = t.clone();
    for _ in 0..steps {
        for i in 1..nx - 1 {
            for j in 1..nx - 1 {
                next[[i, j]] =
                    0.25 * (t[[i + 1, j]] + t[[i - 1, j]] + t[[i, j + 1]] + t[[i, j - 1]]);
            }
        }
        std::mem::swap(&mut t, &mut next);
    }
    t
}

#[test]
fn heat_matches_the_serial_loop_bit_for_bit() {
    let (t0, a) = heat_init(50, 25);
    let out = a.iterate(300, |t| t.stencil(&FIVE_POINT, Boundary::Fixed));
    let got = out.compute::<f64>().unwrap();
    let want = heat_serial(t0, 300);
    assert_eq!(max_diff(&got, &want), 0.0);
}

#[test]
fn temporal_blocking_task_counts() {
    // 200² in 100² chunks: the rule fuses 15 one-cell steps per task.
    let k = accel::auto_stencil_depth(&[100, 100]);
    assert_eq!(k, 15);
    let (_, a) = heat_init(200, 100);
    let out = a.iterate(40, |t| t.stencil(&FIVE_POINT, Boundary::Fixed));
    // The field's own chunks, not row bands (see `Client::with_loop_bands`).
    let local = || Client::local().with_loop_bands(false);
    let plan = local().plan(&[&out]).unwrap();
    // 4 source chunks + ⌈40/15⌉ = 3 fused blocks of 4 tasks.
    assert_eq!(plan.tasks(), 4 + 3 * 4);
    let plan = local().with_stencil_depth(Some(10)).plan(&[&out]).unwrap();
    assert_eq!(plan.tasks(), 4 + 4 * 4);
    let plan = local().with_stencil_depth(Some(1)).plan(&[&out]).unwrap();
    assert_eq!(plan.tasks(), 4 + 40 * 4);
    // Steps that do not divide evenly: 43 = 8 blocks of 5 and one of 3.
    let out = a.iterate(43, |t| t.stencil(&FIVE_POINT, Boundary::Fixed));
    let plan = local().with_stencil_depth(Some(5)).plan(&[&out]).unwrap();
    assert_eq!(plan.tasks(), 4 + 9 * 4);
    // A 9-point stencil reaches 2 cells per step: depth 10 fuses 5 steps.
    let wide: Vec<(&[i64], f64)> = vec![
        (&[2, 0], 0.25),
        (&[-2, 0], 0.25),
        (&[0, 2], 0.25),
        (&[0, -2], 0.25),
    ];
    let out = a.iterate(20, |t| t.stencil(&wide, Boundary::Nearest));
    let plan = local().with_stencil_depth(Some(10)).plan(&[&out]).unwrap();
    assert_eq!(plan.tasks(), 4 + 4 * 4);
}

#[test]
fn elementwise_work_fuses_into_the_stencil() {
    let init = data(&[30, 20], 7);
    let x = from_ndarray(&init, vec![10, 10]);
    let y = ((&x * 2.0 + 1.0).stencil(&FIVE_POINT, Boundary::Reflect) - 3.0).abs();
    let plan = Client::local().plan(&[&y]).unwrap();
    assert_eq!(
        plan.tasks(),
        6 + 6,
        "sources + one fused stencil task per chunk"
    );
    let pre = init.mapv(|v| v * 2.0 + 1.0);
    let want = reference_step(&pre, &FIVE_POINT, &[Boundary::Reflect; 2]).mapv(|v| (v - 3.0).abs());
    assert!(max_diff(&y.compute::<f64>().unwrap(), &want) < 1e-12);
}

#[test]
fn map_overlap_bodies_are_elementwise_expressions() {
    let init = data(&[40], 3);
    let x = from_ndarray(&init, vec![7]);
    let y = x.map_overlap(Boundary::Periodic, |n| {
        accel::maximum(n.at(&[-1]), n.at(&[1])) - n.center() * n.at(&[2]).sin()
    });
    let got = y.compute::<f64>().unwrap();
    let n = 40i64;
    for i in 0..40i64 {
        let at = |o: i64| init[[(i + o).rem_euclid(n) as usize]];
        let want = at(-1).max(at(1)) - at(0) * at(2).sin();
        assert!((got[[i as usize]] - want).abs() < 1e-15, "at {i}");
    }
}

#[test]
fn frames_every_k_steps() {
    let (t0, a) = heat_init(20, 10);
    let (last, frames) = a.iterate_frames(12, 5, |t| t.stencil(&FIVE_POINT, Boundary::Fixed));
    assert_eq!(frames.len(), 4); // steps 0, 5, 10, 12
    let refs: Vec<&Array> = frames.iter().chain([&last]).collect();
    let run = Client::local().run(&refs).unwrap();
    for (k, steps) in [0, 5, 10, 12, 12].iter().enumerate() {
        let got = run.outputs[k].clone().into_typed::<f64>().unwrap();
        assert_eq!(
            max_diff(&got, &heat_serial(t0.clone(), *steps)),
            0.0,
            "frame {k}"
        );
    }
}

#[test]
fn bad_stencils_are_clear_errors() {
    let x = from_ndarray(&data(&[10, 10], 1), vec![5, 5]);
    let e = x
        .shift(&[1], Boundary::Nearest)
        .check()
        .unwrap_err()
        .to_string();
    assert!(e.contains("one offset and one boundary per axis"), "{e}");
    let e = x
        .shift(&[11, 0], Boundary::Nearest)
        .check()
        .unwrap_err()
        .to_string();
    assert!(e.contains("reaches past the whole axis"), "{e}");
    let e = x
        .stencil(&[], Boundary::Nearest)
        .check()
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least one point"), "{e}");
    let row = from_ndarray(&data(&[10], 2), vec![5]);
    let y = x.map_overlap(Boundary::Nearest, |n| n.at(&[1, 0]) + &row);
    let e = y.compute::<f64>().unwrap_err().to_string();
    assert!(e.contains("broadcast"), "{e}");
}

#[test]
fn tasks_read_halo_strips_not_whole_neighbours() {
    // 3 × 3 chunks of 10², one-cell steps fused 4 deep: the centre task reads
    // its own chunk whole and 4-cell strips (or 4 × 4 corners) of its neighbours.
    let (_, a) = heat_init(30, 10);
    let out = a.iterate(4, |t| t.stencil(&FIVE_POINT, Boundary::Fixed));
    let planned = Client::local()
        .with_stencil_depth(Some(4))
        .with_loop_bands(false)
        .plan(&[&out])
        .unwrap();
    let plan = &planned.plan;
    let stencil = plan.outputs[0];
    let centre = accel_core::ChunkKey {
        stage: stencil,
        chunk: 4,
    };
    let regions = plan.input_regions(centre).unwrap();
    let inputs = plan.task_inputs(centre);
    assert_eq!(regions.len(), 9);
    assert_eq!(inputs.len(), 9);
    let mut sizes: Vec<usize> = regions
        .iter()
        .map(|(lo, hi)| lo.iter().zip(hi).map(|(a, b)| b - a).product())
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![16, 16, 16, 16, 40, 40, 40, 40, 100]);
    // Map tasks read whole chunks.
    let src = accel_core::ChunkKey {
        stage: plan.stages[stencil.index()].inputs[0],
        chunk: 0,
    };
    assert!(plan.input_regions(src).is_none());
}

#[test]
fn wide_chunks_are_computed_in_row_bands() {
    // Rows of 1200 cells: each task runs its levels band by band (so they stay
    // in cache); the result must not depend on where the bands fall.
    check(&[70, 1200], &[70, 600], &FIVE_POINT, 4, Some(4));
    check(
        &[70, 1200],
        &[35, 1200],
        &[(&[-2, 1], 0.5), (&[1, -1], 0.5)],
        3,
        None,
    );
}

#[test]
fn empty_arrays_and_single_cells() {
    let empty = from_ndarray(&ArrayD::<f64>::zeros(IxDyn(&[0, 4])), vec![1, 2]);
    let out = empty.stencil(&FIVE_POINT, Boundary::Reflect);
    assert_eq!(out.compute::<f64>().unwrap().shape(), &[0, 4]);
    // Rows without columns, through a loop of fused steps.
    let narrow = from_ndarray(&ArrayD::<f64>::zeros(IxDyn(&[3, 0])), vec![2, 1]);
    let out = narrow.iterate(3, |t| t.stencil(&FIVE_POINT, Boundary::Fixed));
    assert_eq!(out.compute::<f64>().unwrap().shape(), &[3, 0]);
    let one = from_ndarray(&ArrayD::<f64>::from_elem(IxDyn(&[1, 1]), 2.0), vec![1, 1]);
    for rule in RULES {
        let got = one
            .iterate(3, |t| t.stencil(&FIVE_POINT, rule))
            .compute::<f64>()
            .unwrap();
        let mut want = ArrayD::<f64>::from_elem(IxDyn(&[1, 1]), 2.0);
        for _ in 0..3 {
            want = reference_step(&want, &FIVE_POINT, &[rule; 2]);
        }
        assert_eq!(got, want, "{rule:?}");
    }
}
