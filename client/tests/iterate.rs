#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic
//! `iterate` records its step once and the plan repeats it: the same stages,
//! tasks and bits as the unrolled loop, a graph whose size does not depend
//! on the number of steps, and the unrolled loop when the step changes from
//! call to call.

use accel::{Array, Boundary, Client, from_ndarray};
use ndarray::{ArrayD, IxDyn};

const FIVE_POINT: [(&[i64], f64); 4] = [
    (&[1, 0], 0.25),
    (&[-1, 0], 0.25),
    (&[0, 1], 0.25),
    (&[0, -1], 0.25),
];

fn plate(nx: usize, chunk: usize) -> Array {
    let mut t = ArrayD::<f64>::zeros(IxDyn(&[nx, nx]));
    for j in 0..nx {
        t[[nx - 1, j]] = 100.0;
    }
    from_ndarray(&t, vec![chunk, chunk])
}

/// The loop `iterate` stands for, written out.
fn unrolled(a: &Array, n: usize, mut step: impl FnMut(&Array) -> Array) -> Array {
    let mut t = a.clone();
    for _ in 0..n {
        t = step(&t);
    }
    t
}

fn bits(a: &Array) -> Vec<u64> {
    a.compute::<f64>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

fn heat(t: &Array) -> Array {
    t.stencil(&FIVE_POINT, Boundary::Fixed)
}

#[test]
fn repeated_steps_plan_and_compute_like_the_unrolled_loop() {
    // Square chunks, and bands of whole rows (a deeper automatic depth).
    let square = plate(60, 20);
    let rows = square.rechunk(vec![20, 60]);
    assert_eq!(accel::auto_stencil_depth_whole_rows(&[20, 60]), 20);
    for (a, steps, depth) in [
        (&square, 2, None),
        (&square, 37, None),
        (&square, 100, None),
        (&square, 43, Some(5)),
        (&square, 9, Some(1)),
        (&rows, 45, None),
        (&rows, 64, None),
        (&rows, 20, None),
    ] {
        // Row bands (see `small_loops_run_on_row_bands`) apply only to the
        // recorded loop: compare the loops as planned alike.
        let client = Client::local()
            .with_stencil_depth(depth)
            .with_loop_bands(false);
        let looped = a.iterate(steps, heat);
        let written = unrolled(a, steps, heat);
        let (p, q) = (
            client.plan(&[&looped]).unwrap(),
            client.plan(&[&written]).unwrap(),
        );
        assert_eq!(p.tasks(), q.tasks(), "{steps} steps, depth {depth:?}");
        assert!(p.graph.len() < q.graph.len(), "recorded once, not unrolled");
        assert_eq!(p.plan.stages.len(), q.plan.stages.len());
        assert_eq!(p.tasks_unfused(), q.tasks_unfused());
        let labels = |x: &accel::Planned| -> Vec<String> {
            x.plan.stages.iter().map(|s| s.label.clone()).collect()
        };
        assert_eq!(labels(&p), labels(&q));
        if std::ptr::eq(a, &rows) {
            let fused = p
                .plan
                .stages
                .iter()
                .filter(|s| s.kind_name() == "stencil")
                .count();
            assert_eq!(fused, steps.div_ceil(20), "{steps} steps on whole rows");
        }
        assert_eq!(bits(&looped), bits(&written), "{steps} steps");
    }
}

#[test]
fn the_graph_does_not_grow_with_the_steps() {
    let a = plate(200, 100);
    let sizes: Vec<(usize, usize)> = [10, 1000, 4000]
        .iter()
        .map(|&n| {
            let client = Client::local().with_loop_bands(false);
            let p = client.plan(&[&a.iterate(n, heat)]).unwrap();
            (p.graph.len(), p.tasks())
        })
        .collect();
    assert_eq!(sizes[0].0, sizes[1].0);
    assert_eq!(sizes[1].0, sizes[2].0);
    assert!(sizes[2].0 < 50, "{sizes:?}");
    // 4 source chunks, then ⌈n/15⌉ fused blocks of 4 tasks.
    assert_eq!(sizes[1].1, 4 + 67 * 4);
    assert_eq!(sizes[2].1, 4 + 267 * 4);
}

/// A loop over a small field whose last axis is chunked runs on row bands
/// spanning that axis, as many as the field had chunks or as the embedded
/// client's cores where fewer; its result has the field's chunks and the
/// loop's bits. Other loops keep their chunks.
#[test]
fn small_loops_run_on_row_bands() {
    let a = plate(200, 100);
    let mut calls = 0;
    let looped = a.iterate(40, |t| {
        calls += 1;
        heat(t)
    });
    // A step that builds the same computation each time is built twice.
    assert_eq!(calls, 2);
    let banded = Client::local().plan(&[&looped]).unwrap();
    let kept = Client::local()
        .with_loop_bands(false)
        .plan(&[&looped])
        .unwrap();
    let chunks = |p: &accel::Planned| -> Vec<Vec<Vec<usize>>> {
        p.plan
            .stages
            .iter()
            .map(|s| s.meta.chunks.0.clone())
            .collect()
    };
    // Four chunks, at most one band per core: 200 rows in n bands.
    let n = 4.min(rayon::current_num_threads()).max(1);
    let height = 200usize.div_ceil(n);
    let mut rows = vec![height; 200 / height];
    if 200 % height != 0 {
        rows.push(200 % height);
    }
    let bands = vec![rows.clone(), vec![200]];
    let squares = vec![vec![100; 2], vec![100; 2]];
    let fused = 40usize.div_ceil(accel::auto_stencil_depth_whole_rows(&[height, 200]));
    let (b, k) = (chunks(&banded), chunks(&kept));
    // The source, into bands, the fused blocks of steps, back.
    assert_eq!(b.len(), 1 + 1 + fused + 1, "{b:?}");
    assert_eq!(b[0], squares);
    assert!(b[1..=fused + 1].iter().all(|c| *c == bands), "{b:?}");
    assert_eq!(b[fused + 2], squares);
    assert!(k.iter().all(|c| *c == squares), "{k:?}");
    let nb = rows.len();
    assert_eq!(banded.tasks(), 4 + nb + fused * nb + 4);
    assert_eq!(kept.tasks(), 4 + 3 * 4);
    let want = bits(&unrolled(&a, 40, heat));
    for client in [Client::local(), Client::local().with_loop_bands(false)] {
        let got: Vec<u64> = client
            .compute::<f64>(&looped)
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect();
        assert_eq!(got, want);
    }
    // Too large (2.9 MB) and in more chunks than it would have bands, rows
    // not chunked across, or a step with more than neighbour reads (reading
    // another array): chunks kept.
    let captured = plate(200, 100) * 0.5;
    let others = [
        // 10 row chunks: more than the 9 bands of 64 rows 600 rows allow.
        plate(600, 60).iterate(3, heat),
        from_ndarray(&ArrayD::<f64>::zeros(IxDyn(&[200, 200])), vec![50, 200]).iterate(3, heat),
        a.iterate(3, |t| heat(t) + &captured),
    ];
    for looped in &others {
        let on = Client::local().plan(&[looped]).unwrap();
        let off = Client::local()
            .with_loop_bands(false)
            .plan(&[looped])
            .unwrap();
        assert_eq!(chunks(&on), chunks(&off));
        assert_eq!(on.tasks(), off.tasks());
    }
}

/// A loop over a larger field in fewer chunks than the embedded client's
/// cores runs on one band per core (at least 64 rows each), with the loop's
/// bits; where there are no more cores than chunks, or fewer than four
/// steps, it keeps its chunks.
#[test]
fn larger_loops_take_a_band_per_core_where_chunks_are_fewer() {
    // 2.9 MB in one chunk.
    let a = plate(600, 600);
    let looped = a.iterate(12, heat);
    let planned = Client::local().plan(&[&looped]).unwrap();
    let kept = Client::local()
        .with_loop_bands(false)
        .plan(&[&looped])
        .unwrap();
    let n = rayon::current_num_threads().min(600 / 64);
    let firsts: Vec<Vec<usize>> = planned
        .plan
        .stages
        .iter()
        .map(|s| s.meta.chunks.0[0].clone())
        .collect();
    if n > 1 {
        // n bands whose heights differ by one row at most, taller first.
        let rows: Vec<usize> = (0..n).map(|b| 600 / n + usize::from(b < 600 % n)).collect();
        // The source, into bands, the fused blocks of steps, back.
        assert_eq!(firsts.first(), Some(&vec![600]));
        assert_eq!(firsts.last(), Some(&vec![600]));
        assert!(
            firsts[1..firsts.len() - 1].iter().all(|c| *c == rows),
            "{firsts:?}"
        );
        assert!(planned.tasks() > kept.tasks());
    } else {
        assert_eq!(planned.tasks(), kept.tasks());
    }
    let want = bits(&unrolled(&a, 12, heat));
    assert_eq!(bits(&looped), want);
    let off: Vec<u64> = Client::local()
        .with_loop_bands(false)
        .compute::<f64>(&looped)
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect();
    assert_eq!(off, want);
    // Three steps would not repay the copies into bands and back.
    let short = a.iterate(3, heat);
    assert_eq!(
        Client::local().plan(&[&short]).unwrap().tasks(),
        Client::local()
            .with_loop_bands(false)
            .plan(&[&short])
            .unwrap()
            .tasks()
    );
}

#[test]
fn steps_that_change_are_unrolled() {
    let a = plate(30, 10);
    let mut calls = 0;
    let looped = a.iterate(7, |t| {
        calls += 1;
        heat(t) + calls as f64
    });
    assert_eq!(calls, 7, "the loop's calls, no more");
    let mut k = 0;
    let written = unrolled(&a, 7, |t| {
        k += 1;
        heat(t) + k as f64
    });
    assert_eq!(bits(&looped), bits(&written));
}

#[test]
fn elementwise_and_reducing_steps_repeat_too() {
    let x = from_ndarray(
        &ArrayD::from_shape_fn(IxDyn(&[1000]), |i| i[0] as f64 / 7.0),
        vec![300],
    );
    let decay = |t: &Array| t * 0.999 + 0.5;
    let looped = x.iterate(1000, decay);
    let plan = Client::local().plan(&[&looped]).unwrap();
    assert!(plan.graph.len() < 10);
    assert_eq!(bits(&looped), bits(&unrolled(&x, 1000, decay)));
    // A step with a reduction inside: two stages per step.
    let center = |t: &Array| (t - t.mean()) * 1.5;
    let looped = x.iterate(6, center);
    let written = unrolled(&x, 6, center);
    let (p, q) = (
        Client::local().plan(&[&looped]).unwrap(),
        Client::local().plan(&[&written]).unwrap(),
    );
    assert_eq!(p.tasks(), q.tasks());
    assert_eq!(bits(&looped), bits(&written));
}

#[test]
fn a_step_that_reshapes_or_retypes_its_field_is_unrolled() {
    let x = from_ndarray(&ArrayD::from_elem(IxDyn(&[8]), 1.0), vec![4]);
    // Another dtype after the first step: not a repeat of one step.
    let looped = x.iterate(3, |t| t.astype(accel::DType::F32) * 2.0);
    let out = looped.compute::<f32>().unwrap();
    assert!(out.iter().all(|&v| v == 8.0));
}

#[test]
fn a_step_input_used_outside_its_step_is_a_clear_error() {
    let a = plate(20, 10);
    let mut leaked = None;
    let out = a.iterate(5, |t| {
        leaked = Some(t.clone());
        heat(t)
    });
    assert!(out.compute::<f64>().is_ok());
    let err = leaked.unwrap().compute::<f64>().unwrap_err().to_string();
    assert!(err.contains("iterate step's input"), "{err}");
}

#[test]
fn too_many_steps_is_a_clear_error_not_an_exhausted_memory() {
    let a = plate(20, 10);
    let err = Client::local()
        .plan(&[&a.iterate(1 << 40, heat)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("would plan about"), "{err}");
}

/// Planning a loop again takes the steps per stage found the first time,
/// for the same options and step cap only: plans alternating between two
/// depth caps, and loops of 2 and 23 steps of the same step, each match
/// the unrolled loop's, and compute its bits.
#[test]
fn a_loop_planned_again_is_planned_alike() {
    let a = plate(40, 20);
    let looped = a.iterate(23, heat);
    let written = unrolled(&a, 23, heat);
    let (short, short_written) = (a.iterate(2, heat), unrolled(&a, 2, heat));
    for depth in [Some(4), None, Some(4), Some(7), None, Some(7)] {
        let client = Client::local()
            .with_stencil_depth(depth)
            .with_loop_bands(false);
        for (looped, written) in [(&short, &short_written), (&looped, &written)] {
            let p = client.plan(&[looped]).unwrap();
            let q = client.plan(&[written]).unwrap();
            assert_eq!(p.tasks(), q.tasks(), "depth {depth:?}");
            assert_eq!(p.plan.stages.len(), q.plan.stages.len(), "depth {depth:?}");
        }
    }
    let tasks = |depth: usize| {
        Client::local()
            .with_stencil_depth(Some(depth))
            .with_loop_bands(false)
            .plan(&[&looped])
            .unwrap()
            .tasks()
    };
    assert!(tasks(4) > tasks(7), "the caps give different plans");
    assert_eq!(bits(&looped), bits(&written));
}
