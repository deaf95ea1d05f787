//! Every refusal: a clear error naming the operands, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use accel::{Client, DType, Error, concatenate, from_ndarray, ones, s, zeros};
use accel_core::graph::{Graph, Node, NodeId};
use accel_core::op::{Meta, Op};
use accel_core::{Chunks, Value};
use ndarray::SliceInfoElem;

fn message(a: &accel::Array) -> String {
    a.check().expect_err("expected a build error").to_string()
}

#[test]
fn shape_mismatch_names_both_operands_and_the_line() {
    let a = ones(&[3], DType::F64, 3);
    let b = ones(&[4], DType::F64, 4);
    let m = message(&(&a + &b));
    assert!(m.contains("f64[3]") && m.contains("f64[4]"), "{m}");
    assert!(m.contains("errors.rs:"), "{m}");
    assert!(m.starts_with("add"), "{m}");
    // The error travels through later operations and out of compute().
    let later = (&a + &b).sqrt() * 2.0;
    assert!(matches!(later.compute::<f64>(), Err(Error::Build { .. })));
}

#[test]
fn dtype_refusals() {
    let t = ones(&[4], DType::Bool, 2);
    assert!(message(&(&t + &t)).contains("logical"));
    let f = ones(&[4], DType::F64, 2);
    assert!(message(&f.and(&f)).contains("bool"));
    assert!(message(&f.not()).contains("not"));
    let c = f.astype(DType::C128);
    assert!(message(&c.lt(&c)).contains("not ordered"));
    assert!(message(&c.log1p()).contains("c128"));
    assert!(message(&accel::hypot(&c, &f)).contains("real numbers"));
    assert!(message(&c.floor_divide(&c)).contains("not ordered"));
    assert!(message(&t.sign()).contains("number type"));
    assert!(message(&accel::where_(&f, 1.0, 2.0)).contains("bool condition"));
    let i = ones(&[4], DType::I32, 2);
    assert!(message(&i.powi(-1)).contains("negative power"));
}

#[test]
fn reduction_refusals() {
    let a = ones(&[4, 5], DType::F64, 2);
    assert!(message(&a.sum_axis(2)).contains("out of bounds"));
    assert!(
        message(&a.reduce(
            accel::ReduceOp::Sum,
            &accel::ReduceOpts::default().split_every(1)
        ))
        .contains("split_every")
    );
    let empty = zeros(&[0], DType::F64, 1);
    assert!(message(&empty.min()).contains("no identity"));
    assert!(empty.sum().check().is_ok());
}

#[test]
fn structural_refusals() {
    let a = ones(&[4, 5], DType::F64, 2);
    assert!(message(&a.slice(s![.., .., 1])).contains("indices"));
    assert!(message(&a.slice(s![9, ..])).contains("out of bounds"));
    // Built by hand: `s![..;0, ..]` itself asserts a nonzero step in debug builds.
    let zero_step = [
        SliceInfoElem::Slice {
            start: 0,
            end: None,
            step: 0,
        },
        SliceInfoElem::from(..),
    ];
    assert!(message(&a.slice(zero_step)).contains("zero"));
    assert!(message(&a.reshape(&[3, 3])).contains("reshape"));
    assert!(message(&a.permute_axes(&[0, 0])).contains("permutation"));
    assert!(message(&ones(&[2, 2, 2], DType::F64, 2).diag()).contains("2-d"));
    let b = ones(&[4, 6], DType::F64, 3);
    assert!(message(&concatenate(&[&a, &b], 0)).contains("cannot concatenate"));
    assert!(message(&ones(&[4], DType::F64, "fast")).contains("chunk"));
    assert!(message(&ones(&[4], DType::F64, vec![vec![1, 2]])).contains("do not add up"));
}

#[test]
fn wrong_result_type_is_an_error() {
    let a = ones(&[4], DType::F64, 2);
    assert!(matches!(a.compute::<f32>(), Err(Error::WrongType { .. })));
}

#[test]
fn malformed_graphs_are_refused() {
    let meta = Meta {
        shape: vec![2],
        dtype: DType::F64,
        chunks: Chunks(vec![vec![2]]),
    };
    // A node that refers to a later node (a cycle or an unknown input).
    let forward = Node {
        op: Op::Unary(accel_core::op::UnaryOp::Sqrt),
        inputs: vec![NodeId(1)],
        meta: meta.clone(),
    };
    let leaf = Node {
        op: Op::Full(Value::F64(1.0)),
        inputs: vec![],
        meta: meta.clone(),
    };
    let err = Graph::validated(vec![forward, leaf.clone()], vec![NodeId(0)]).unwrap_err();
    assert!(err.to_string().contains("not defined before"), "{err}");
    // A node whose declared type disagrees with its op.
    let wrong = Node {
        op: Op::Unary(accel_core::op::UnaryOp::Not),
        inputs: vec![NodeId(0)],
        meta: meta.clone(),
    };
    assert!(Graph::validated(vec![leaf.clone(), wrong], vec![NodeId(1)]).is_err());
    // Unknown output, and chunks that do not cover the shape.
    assert!(Graph::validated(vec![leaf.clone()], vec![NodeId(5)]).is_err());
    let bad = Node {
        meta: Meta {
            chunks: Chunks(vec![vec![1]]),
            ..meta
        },
        ..leaf
    };
    assert!(Graph::validated(vec![bad], vec![NodeId(0)]).is_err());
}

#[test]
fn compute_of_a_failed_array_through_a_client() {
    let a = from_ndarray(&ndarray::Array1::<f64>::zeros(3), 3);
    let b = ones(&[2, 2], DType::F64, 2);
    assert!(Client::local().run(&[&(&a + &b)]).is_err());
}

/// Results larger than this machine's memory are refused before anything
/// runs (they would be gathered here), embedded and on a cluster alike.
#[test]
fn results_larger_than_memory_are_refused_before_running() {
    let huge = zeros(&[1 << 42], DType::F64, [1 << 26]) + 1.0;
    let e = Client::local()
        .compute::<f64>(&huge)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the results take 35184372088832 bytes") && e.contains("Write::npy"),
        "{e}"
    );
    // Reduced, the same array is fine to plan and hand back.
    let total = Client::local()
        .compute::<f64>(&(zeros(&[1 << 20], DType::F64, [1 << 18]) + 1.0).sum())
        .unwrap();
    assert_eq!(total[[]], (1u64 << 20) as f64);
}
