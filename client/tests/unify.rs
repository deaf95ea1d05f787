//! Operands chunked differently combine without rechunk tasks: the result is
//! chunked like the first operand (per axis, the first that spans it) and each
//! kernel task reads the overlapping chunks of the others.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use accel::{concatenate, from_ndarray, where_};
use ndarray::{Array1, Array2, Axis, concatenate as nd_concatenate};

fn grid(n: usize, m: usize, scale: f64) -> Array2<f64> {
    Array2::from_shape_fn((n, m), |(i, j)| scale * (i * m + j) as f64)
}

#[test]
fn elementwise_operands_with_different_chunks_take_the_first_grid() {
    let (a, b) = (grid(10, 6, 1.0), grid(10, 6, -0.5));
    let x = from_ndarray(&a, vec![5, 6]); // 2 chunks
    let y = from_ndarray(&b, vec![2, 4]); // 5 × 2 = 10 chunks
    let z = &x * 2.0 + &y;
    assert_eq!(z.chunks().unwrap(), vec![vec![5, 5], vec![6]]);
    let p = z.plan().unwrap();
    // 2 + 10 source chunks and 2 fused map tasks: no rechunk stage.
    assert_eq!(p.tasks(), 2 + 10 + 2);
    assert_eq!(p.plan.stages.len(), 3);
    let dot = p.dot_tasks(100);
    assert!(!dot.contains("remap"), "{dot}");
    // Each map task reads its 1 chunk of x and the 3 × 2 chunks of y it overlaps.
    assert_eq!(dot.matches("->").count(), 2 * (1 + 6));
    assert_eq!(z.compute::<f64>().unwrap(), (&a * 2.0 + &b).into_dyn());
    // The other order takes y's grid.
    let w = &y - &x;
    assert_eq!(w.chunks().unwrap(), vec![vec![2; 5], vec![4, 2]]);
    assert_eq!(w.plan().unwrap().tasks(), 2 + 10 + 10);
    assert_eq!(w.compute::<f64>().unwrap(), (&b - &a).into_dyn());
}

#[test]
fn broadcasts_where_and_reductions_read_boxes_too() {
    let a = grid(9, 7, 0.25);
    let row = Array1::from_iter((0..7).map(|j| j as f64 - 3.0));
    let x = from_ndarray(&a, vec![4, 3]);
    let r = from_ndarray(&row, 5);
    let c = from_ndarray(&a, vec![3, 7]);
    let e = where_(&x.gt(&r), &c, -&x).sum_axis(1);
    let want: Vec<f64> = (0..9)
        .map(|i| {
            (0..7)
                .map(|j| {
                    if a[[i, j]] > row[j] {
                        a[[i, j]]
                    } else {
                        -a[[i, j]]
                    }
                })
                .sum()
        })
        .collect();
    let got = e.compute::<f64>().unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "{g} vs {w}");
    }
}

#[test]
fn concatenate_accepts_different_chunks_off_the_axis() {
    let (a, b) = (grid(4, 9, 1.0), grid(3, 9, 10.0));
    let x = from_ndarray(&a, vec![2, 3]);
    let y = from_ndarray(&b, vec![3, 4]);
    let c = concatenate(&[&x, &y], 0);
    assert_eq!(c.chunks().unwrap(), vec![vec![2, 2, 3], vec![3, 3, 3]]);
    let want = nd_concatenate(Axis(0), &[a.view(), b.view()]).unwrap();
    assert_eq!(c.compute::<f64>().unwrap(), want.clone().into_dyn());
    // 6 + 3 source chunks, 9 concatenate tasks (those from y assemble their box).
    assert_eq!(c.plan().unwrap().tasks(), 6 + 3 + 9);
    // And it feeds a kernel chunked otherwise again.
    let z = from_ndarray(&want, vec![7, 2]);
    let s = (&z - &c).abs().sum().compute::<f64>().unwrap()[[]];
    assert_eq!(s, 0.0);
}
