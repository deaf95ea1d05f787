//! `map_blocks` embedded: closures and named functions over one or several
//! inputs chunked any way, against ndarray references; where blocks are cut,
//! what the function is told, fusion around it (exact task counts), other
//! dtypes and block shapes, and each way a function can fail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use accel::{Blocks, Client, DType, Functions, MapBlocks, from_ndarray, map_blocks};
use ndarray::{Array2, ArrayD, Axis, IxDyn};
use proptest::prelude::*;

fn grid(rows: usize, cols: usize) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        ((i * 31 + j * 17) % 23) as f64 - 0.5 * j as f64
    })
}

/// `x * 2 + global row index`, from the block's origin: the function must be
/// told where its block sits.
fn double_plus_row(b: &Blocks<'_>) -> Result<ArrayD<f64>, String> {
    let x = b.input::<f64>(0)?;
    let row0 = b.info().origin[0];
    let mut out = x.mapv(|v| 2.0 * v);
    for (r, mut row) in out.axis_iter_mut(Axis(0)).enumerate() {
        row += (row0 + r) as f64;
    }
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn closures_see_their_blocks_for_any_chunking(
        rows in 1usize..30, cols in 1usize..30,
        a in (1usize..12, 1usize..12), b in (1usize..12, 1usize..12), c in 1usize..12,
    ) {
        let xa = grid(rows, cols);
        let xb = grid(rows, cols).mapv(|v| v * 0.25 + 1.0);
        let xc = ndarray::Array1::from_shape_fn(cols, |j| j as f64 - 3.0);
        let x = from_ndarray(&xa, [a.0, a.1]);
        let y = from_ndarray(&xb, [b.0, b.1]);
        let z = from_ndarray(&xc, [c]);
        let first = map_blocks(&[&x], double_plus_row);
        let combined = map_blocks(&[&x, &y, &z], |b: &Blocks<'_>| {
            let (x, y, z) = (b.input::<f64>(0)?, b.input::<f64>(1)?, b.input::<f64>(2)?);
            // Every block lines up with the first input's block.
            if x.shape() != y.shape() || z.len() != x.shape()[1] {
                return Err(format!("misaligned blocks {:?} {:?} {:?}", x.shape(), y.shape(), z.shape()));
            }
            Ok(&x - &y * &z)
        });
        let client = Client::local();
        let got = client.compute::<f64>(&first).unwrap();
        let want = ArrayD::from_shape_fn(IxDyn(&[rows, cols]), |ix| 2.0 * xa[[ix[0], ix[1]]] + ix[0] as f64);
        prop_assert_eq!(got, want);
        let got = client.compute::<f64>(&combined).unwrap();
        let want = (&xa - &xb * &xc).into_dyn();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn elementwise_work_fuses_before_and_after() {
    let host = grid(40, 30);
    let x = from_ndarray(&host, [20, 15]);
    let y = &map_blocks(&[&(&x * 3.0 - 1.0)], |b: &Blocks<'_>| {
        b.input::<f64>(0).map(|v| v.mapv(f64::abs))
    }) + 0.5;
    let planned = Client::local().plan(&[&y]).unwrap();
    let kinds: Vec<&str> = planned.plan.stages.iter().map(|s| s.kind_name()).collect();
    assert_eq!(kinds, ["source", "map", "map_blocks", "map"]);
    assert_eq!(planned.tasks(), 16);
    assert!(planned.dot_fused().contains("map_blocks(closure)"));
    let got = Client::local().compute::<f64>(&y).unwrap();
    let want = host.mapv(|v| (v * 3.0 - 1.0).abs() + 0.5).into_dyn();
    assert_eq!(got, want);
}

#[test]
fn declared_dtype_and_block_shapes() {
    let host = grid(12, 10);
    let x = from_ndarray(&host, [5, 4]);
    // Per block: its sum, as a 1×1 block; and its element count as int64.
    let sums = MapBlocks::closure(|b: &Blocks<'_>| {
        let v = b.input::<f64>(0)?;
        Ok::<_, String>(ArrayD::from_elem(IxDyn(&[1, 1]), v.sum()))
    })
    .chunks(vec![vec![1; 3], vec![1; 3]])
    .apply(&[&x]);
    let counts = MapBlocks::closure(|b: &Blocks<'_>| {
        let n = b.raw(0)?.data.len() as i64;
        Ok::<_, String>(ArrayD::from_elem(IxDyn(&[1, 1]), n))
    })
    .dtype(DType::I64)
    .chunks(vec![vec![1; 3], vec![1; 3]])
    .apply(&[&x]);
    assert_eq!(sums.shape().unwrap(), [3, 3]);
    let client = Client::local();
    let got = client.compute::<f64>(&sums).unwrap();
    let got_n = client.compute::<i64>(&counts).unwrap();
    let (rows, cols) = ([0, 5, 10, 12], [0, 4, 8, 10]);
    for i in 0..3 {
        for j in 0..3 {
            let block = host.slice(ndarray::s![rows[i]..rows[i + 1], cols[j]..cols[j + 1]]);
            assert_eq!(got[[i, j]], block.sum());
            assert_eq!(got_n[[i, j]], block.len() as i64);
        }
    }
    // A grid other than the first input's is refused when built.
    let bad = MapBlocks::closure(|b: &Blocks<'_>| b.input::<f64>(0).map(|v| v.to_owned()))
        .chunks(vec![vec![12], vec![10]])
        .apply(&[&x]);
    let err = bad.check().unwrap_err().to_string();
    assert!(err.contains("as many blocks along each axis"), "{err}");
}

#[test]
fn named_functions_and_arguments() {
    let host = grid(9, 7);
    let x = from_ndarray(&host, [4, 3]);
    let functions = Functions::new().with("affine", |b: &Blocks<'_>| {
        let (k, c) = (b.arg_f64(0)?, b.arg_i64(1)?);
        b.input::<f64>(0).map(|v| v.mapv(|e| e * k + c as f64))
    });
    let y = MapBlocks::named("affine").arg(2.5).arg(3i64).apply(&[&x]);
    let client = Client::local().with_functions(functions);
    assert_eq!(
        client.compute::<f64>(&y).unwrap(),
        host.mapv(|e| e * 2.5 + 3.0).into_dyn()
    );
    // Not registered with this client: refused before anything runs.
    let err = Client::local().compute::<f64>(&y).unwrap_err().to_string();
    assert!(err.contains("no map_blocks function named affine"), "{err}");
    // Too few arguments: the function's own error, naming the block.
    let short = MapBlocks::named("affine").arg(1.0).apply(&[&x]);
    let err = client.compute::<f64>(&short).unwrap_err().to_string();
    assert!(
        err.contains("argument 1 asked for, but 1 were passed"),
        "{err}"
    );
    assert!(err.contains("function 'affine' failed on block"), "{err}");
}

#[test]
fn failing_functions_are_clear_errors() {
    let x = from_ndarray(&grid(8, 8), [4, 4]);
    let client = Client::local();
    let cases: Vec<(accel::Array, &str)> = vec![
        (
            map_blocks(&[&x], |_: &Blocks<'_>| {
                Ok::<_, String>(ArrayD::<f64>::zeros(IxDyn(&[3, 4])))
            }),
            "returned a block of shape [3, 4]",
        ),
        (
            map_blocks(&[&x], |_: &Blocks<'_>| {
                Ok::<_, String>(ArrayD::<i64>::zeros(IxDyn(&[4, 4])))
            }),
            "returned i64, but map_blocks declared f64",
        ),
        (
            map_blocks(&[&x], |b: &Blocks<'_>| {
                b.input::<f32>(0).map(|v| v.to_owned())
            }),
            "input 0 holds f64, not f32",
        ),
        (
            map_blocks(&[&x], |b: &Blocks<'_>| -> Result<ArrayD<f64>, String> {
                if b.info().index == [1, 0] {
                    panic!("bad block");
                }
                Ok(ArrayD::zeros(IxDyn(&b.info().shape)))
            }),
            "panicked: bad block",
        ),
    ];
    for (array, want) in cases {
        let err = client.compute::<f64>(&array).unwrap_err().to_string();
        assert!(err.contains(want), "{err} (wanted {want})");
    }
    // The client still works afterwards.
    let ok = map_blocks(&[&x], |b: &Blocks<'_>| {
        b.input::<f64>(0).map(|v| v.to_owned())
    });
    assert_eq!(client.compute::<f64>(&ok).unwrap(), grid(8, 8).into_dyn());
    // No inputs, or inputs that do not broadcast to the first one.
    let none = map_blocks(&[], |b: &Blocks<'_>| {
        b.input::<f64>(0).map(|v| v.to_owned())
    });
    assert!(none.check().is_err());
    let wide = from_ndarray(&grid(8, 9), [4, 4]);
    let err = map_blocks(&[&x, &wide], |b: &Blocks<'_>| {
        b.input::<f64>(0).map(|v| v.to_owned())
    })
    .check()
    .unwrap_err()
    .to_string();
    assert!(err.contains("does not broadcast"), "{err}");
}

#[test]
fn distinct_closures_are_never_merged() {
    let x = from_ndarray(&grid(6, 6), [3, 3]);
    let a = map_blocks(&[&x], |b: &Blocks<'_>| {
        b.input::<f64>(0).map(|v| v.mapv(|e| e + 1.0))
    });
    let b = map_blocks(&[&x], |b: &Blocks<'_>| {
        b.input::<f64>(0).map(|v| v.mapv(|e| e - 1.0))
    });
    let diff = Client::local().compute::<f64>(&(&a - &b)).unwrap();
    assert!(diff.iter().all(|&d| d == 2.0));
}
