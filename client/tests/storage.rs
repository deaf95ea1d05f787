//! Arrays in `.npy` files: files written by NumPy read bit for bit (every
//! dtype, C and Fortran order, big-endian, 0-d to 3-d, any chunking), round
//! trips through accel's writer (byte-identical to NumPy's files), writes
//! fused into the tasks that make the chunks, frames written into a stack,
//! and clear errors for missing, truncated, malformed or unsupported files.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod stored;

use std::path::PathBuf;

use accel::{ChunkSpec, Client, DType, DynArray, Stored, Write, from_npy};
use stored::{DTYPES, array, scratch, values};

fn fixture(name: &str) -> PathBuf {
    stored::fixture("npy", name)
}

#[test]
fn numpy_files_read_bit_for_bit_in_any_chunking() {
    let local = Client::local();
    let mut cases: Vec<(String, DType, Vec<usize>)> = DTYPES
        .iter()
        .map(|(d, n)| (format!("{n}_7x10.npy"), *d, vec![7, 10]))
        .collect();
    cases.extend([
        ("float64_7x10_fortran.npy".into(), DType::F64, vec![7, 10]),
        ("float64_5x4_big.npy".into(), DType::F64, vec![5, 4]),
        ("int32_5x4_big.npy".into(), DType::I32, vec![5, 4]),
        ("float32_3x4x5.npy".into(), DType::F32, vec![3, 4, 5]),
        ("int64_13.npy".into(), DType::I64, vec![13]),
        ("float64_scalar.npy".into(), DType::F64, vec![]),
    ]);
    for (name, dtype, shape) in cases {
        let want = values(dtype, &shape);
        let chunkings: Vec<Vec<usize>> = match shape.len() {
            0 => vec![vec![]],
            1 => vec![vec![13], vec![4], vec![1]],
            2 => vec![shape.clone(), vec![3, 4], vec![2, 3], vec![5, 1]],
            _ => vec![vec![3, 4, 5], vec![2, 3, 2], vec![1, 4, 1]],
        };
        for chunks in chunkings {
            let a = from_npy(fixture(&name), chunks.clone());
            let got = local.run(&[&a]).unwrap().outputs.pop().unwrap();
            assert_eq!(got, want, "{name} in chunks {chunks:?}");
        }
    }
}

#[test]
fn arrays_written_to_npy_match_numpys_files_byte_for_byte_and_read_back() {
    let local = Client::local();
    for (dtype, name) in DTYPES {
        let want = values(dtype, &[7, 10]);
        let path = scratch(&format!("{name}.npy"));
        let written = local.to_npy(&array(&want, &[3, 4]), &path).unwrap();
        assert_eq!(written.bytes, 70 * dtype.size() as u64);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            std::fs::read(fixture(&format!("{name}_7x10.npy"))).unwrap(),
            "{name}: not the file NumPy writes"
        );
        for chunks in [[2, 5], [7, 1]] {
            let back = local.run(&[&from_npy(&path, chunks.to_vec())]).unwrap();
            assert_eq!(back.outputs[0], want, "{name}");
        }
    }
}

#[test]
fn reads_and_writes_fuse_into_the_tasks_that_compute_the_chunks() {
    let local = Client::local();
    let src = fixture("float64_7x10.npy");
    let y = from_npy(&src, vec![3, 4]) * 2.0 + 1.0;
    let path = scratch("fused.npy");
    let w = Write::npy(&y, &path).unwrap();
    let planned = local.plan_with(&[], std::slice::from_ref(&w)).unwrap();
    // One task per chunk reads its box, computes and writes: neither the read
    // nor the write has tasks of its own.
    assert_eq!(planned.tasks(), 9);
    assert_eq!(planned.plan.stages.len(), 1);
    assert!(
        planned.plan.stages[0].label.starts_with("read"),
        "{}",
        planned.plan.stages[0].label
    );
    assert_eq!(planned.plan.sinks.len(), 1);
    local.write(&[w]).unwrap();
    let back = local.compute::<f64>(&from_npy(&path, vec![7, 10])).unwrap();
    let DynArray::F64(x) = values(DType::F64, &[7, 10]) else {
        unreachable!()
    };
    assert_eq!(back, x.mapv(|v| v * 2.0 + 1.0));
}

/// Writing an array over the file it is computed from would create (zero)
/// the file before any task read it: refused, and the file is untouched.
#[test]
fn an_array_is_never_written_over_the_store_it_reads() {
    let local = Client::local();
    let path = scratch("in_place.npy");
    std::fs::copy(fixture("float64_7x10.npy"), &path).unwrap();
    let before = std::fs::read(&path).unwrap();
    let y = from_npy(&path, vec![3, 4]) * 2.0 + 1.0;
    // The same file, named another way.
    let other_name = path.parent().unwrap().join(".").join("in_place.npy");
    for target in [&path, &other_name] {
        let e = Write::npy(&y, target).unwrap_err().to_string();
        assert!(e.contains("computed from this very store"), "{e}");
    }
    let stored = accel::Stored::open_npy(&path).unwrap();
    let e = Write::into(&y, &stored, &[0, 0]).unwrap_err().to_string();
    assert!(e.contains("computed from this very store"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // Another path is fine.
    let w = Write::npy(&y, scratch("not_in_place.npy")).unwrap();
    local.write(&[w]).unwrap();
}

#[test]
fn frames_are_written_into_a_stack_in_one_run() {
    let local = Client::local();
    let path = scratch("stack.npy");
    let stack = Stored::create_npy(&path, &[3, 4, 5], DType::F32).unwrap();
    let frames: Vec<accel::Array> = (0..3)
        .map(|k| accel::arange(20, 7).astype(DType::F32).reshape(&[4, 5]) * (k + 1) as f32)
        .collect();
    let writes: Vec<Write> = frames
        .iter()
        .enumerate()
        .map(|(k, f)| Write::into(f, &stack, &[k, 0, 0]).unwrap())
        .collect();
    local.write(&writes).unwrap();
    let back = local
        .compute::<f32>(&from_npy(&path, vec![2, 4, 5]))
        .unwrap();
    for k in 0..3 {
        for i in 0..20 {
            assert_eq!(back[[k, i / 5, i % 5]], i as f32 * (k + 1) as f32);
        }
    }
    // A frame that does not fit, or of another dtype, is refused at once.
    let big = accel::zeros(&[4, 6], DType::F32, vec![4, 6]);
    let err = Write::into(&big, &stack, &[0, 0, 0])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("stack.npy") && err.contains("does not fit"),
        "{err}"
    );
    let err = Write::into(&frames[0], &stack, &[3, 0, 0])
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not fit"), "{err}");
    let wrong = accel::zeros(&[4, 5], DType::F64, vec![4, 5]);
    let err = Write::into(&wrong, &stack, &[0, 0, 0])
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds f32"), "{err}");
}

#[test]
fn missing_truncated_malformed_and_unsupported_files_are_clear_errors() {
    let local = Client::local();
    let err = |p: &PathBuf| {
        local
            .run(&[&from_npy(p, ChunkSpec::Auto)])
            .unwrap_err()
            .to_string()
    };
    let missing = scratch("nowhere/missing.npy");
    let e = err(&missing);
    assert!(
        e.contains("missing.npy") && e.contains("No such file"),
        "{e}"
    );
    let good = std::fs::read(fixture("float64_7x10.npy")).unwrap();
    let cut = scratch("cut.npy");
    std::fs::write(&cut, &good[..good.len() - 8]).unwrap();
    let e = err(&cut);
    assert!(e.contains("cut.npy") && e.contains("truncated"), "{e}");
    let garbled = scratch("garbled.npy");
    let mut g = good.clone();
    g[20..40].fill(b'#');
    std::fs::write(&garbled, &g).unwrap();
    let e = err(&garbled);
    assert!(e.contains("garbled.npy") && e.contains("malformed"), "{e}");
    // Headers no file could honour: sizes past 2⁶⁴ bytes, a dtype that
    // starts with a character of several bytes.
    let npy = |header: &str| -> Vec<u8> {
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        b.extend_from_slice(&[0u8; 64]);
        b
    };
    for (name, header, says) in [
        (
            "huge.npy",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
            "too large",
        ),
        (
            "accent.npy",
            "{'descr': '\u{e9}f8', 'fortran_order': False, 'shape': (8,), }",
            "dtype",
        ),
    ] {
        let path = scratch(name);
        std::fs::write(&path, npy(header)).unwrap();
        let e = err(&path);
        assert!(e.contains(name) && e.contains(says), "{e}");
    }
    let not_npy = scratch("text.npy");
    std::fs::write(&not_npy, b"just some text").unwrap();
    let e = err(&not_npy);
    assert!(e.contains("not a .npy file"), "{e}");
    let e = err(&fixture("uint16_4.npy"));
    assert!(
        e.contains("uint16_4.npy") && e.contains("<u2") && e.contains("not supported"),
        "{e}"
    );
    // The error points at the user's line.
    assert!(e.contains("storage.rs"), "{e}");
}

#[test]
fn a_read_with_several_consumers_or_feeding_a_stencil_keeps_its_own_tasks() {
    let local = Client::local();
    let src = fixture("float64_7x10.npy");
    let x = from_npy(&src, vec![3, 4]);
    // Two kernels read it: one read task per chunk, shared.
    let two = local.plan(&[&(&x * 2.0), &(&x + 1.0).sum()]).unwrap();
    assert_eq!(two.plan.stages[0].kind_name(), "read");
    // A stencil reads halos across chunks: the read keeps its tasks.
    let five: [(&[i64], f64); 2] = [(&[1, 0], 0.5), (&[-1, 0], 0.5)];
    let st = local
        .plan(&[&x.stencil(&five, accel::Boundary::Periodic)])
        .unwrap();
    assert_eq!(st.plan.stages[0].kind_name(), "read");
    // A reduction reads it inside its partial tasks.
    let sum = local.plan(&[&x.sum()]).unwrap();
    assert!(sum.plan.stages.iter().all(|s| s.kind_name() != "read"));
    assert_eq!(
        local.run(&[&x.sum()]).unwrap().outputs[0],
        local
            .run(&[&array(&values(DType::F64, &[7, 10]), &[3, 4]).sum()])
            .unwrap()
            .outputs[0]
    );
    // Broadcast against a row read from a file: the row's box is read per task.
    let row = from_npy(fixture("int64_13.npy"), vec![13]).astype(DType::F64);
    let grid = accel::ones(&[4, 13], DType::F64, vec![2, 13]);
    let b = (&grid * &row).sum_axis(0);
    let DynArray::I64(r) = values(DType::I64, &[13]) else {
        unreachable!()
    };
    let got = local.compute::<f64>(&b).unwrap();
    for (j, v) in got.iter().enumerate() {
        assert_eq!(*v, 4.0 * r[j] as f64);
    }
}
