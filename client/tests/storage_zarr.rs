//! Zarr arrays: stores written by zarr-python (v2: none, gzip, zstd and blosc
//! compressors, missing chunks read as the fill value) read bit for bit in
//! chunkings that do and do not line up with the storage chunks; round trips
//! through accel's v3 writer for every dtype, with writes rechunked to whole
//! storage chunks; frames into a stack; clear errors for missing, malformed,
//! corrupt and unsupported stores.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod stored;

use std::path::PathBuf;

use accel::{
    Client, Compression, DType, DynArray, Stored, Write, ZarrOptions, from_zarr, from_zarr_with,
};
use stored::{DTYPES, array, scratch, values};

fn fixture(name: &str) -> PathBuf {
    stored::fixture("zarr2", name)
}

fn read(a: &accel::Array) -> DynArray {
    Client::local().run(&[a]).unwrap().outputs.pop().unwrap()
}

#[test]
fn zarr_python_stores_read_bit_for_bit_with_every_compressor_and_chunking() {
    let want = values(DType::F64, &[20, 30]);
    for comp in ["none", "gzip", "zstd", "blosc"] {
        let path = fixture(&format!("float64_20x30_{comp}.zarr"));
        assert_eq!(read(&from_zarr(&path)), want, "{comp}, storage chunks");
        for chunks in [[20, 30], [5, 11], [14, 16], [1, 30]] {
            let a = from_zarr_with(&path, chunks.to_vec());
            assert_eq!(read(&a), want, "{comp} in chunks {chunks:?}");
        }
    }
    for (name, dtype, shape) in [
        ("bool_11.zarr", DType::Bool, vec![11]),
        ("int64_6x5.zarr", DType::I64, vec![6, 5]),
        ("float32_4x5x6.zarr", DType::F32, vec![4, 5, 6]),
        ("complex128_5x3.zarr", DType::C128, vec![5, 3]),
    ] {
        let a = from_zarr(fixture(name));
        assert_eq!(read(&a), values(dtype, &shape), "{name}");
        let odd: Vec<usize> = shape.iter().map(|&n| n.div_ceil(3)).collect();
        assert_eq!(
            read(&from_zarr_with(fixture(name), odd)),
            values(dtype, &shape),
            "{name}"
        );
    }
}

#[test]
fn chunks_never_written_read_as_the_fill_value() {
    let DynArray::I32(all) = values(DType::I32, &[9, 9]) else {
        unreachable!()
    };
    let got = Client::local()
        .compute::<i32>(&from_zarr_with(fixture("int32_9x9_fill.zarr"), vec![3, 5]))
        .unwrap();
    for ((i, j), v) in got
        .clone()
        .into_dimensionality::<ndarray::Ix2>()
        .unwrap()
        .indexed_iter()
    {
        let written = (i < 4 && j < 4) || (i == 8 && j == 8);
        let expect = if written { all[[i, j]] } else { -7 };
        assert_eq!(*v, expect, "({i}, {j})");
    }
}

#[test]
fn arrays_round_trip_through_zarr_for_every_dtype_and_compression() {
    let local = Client::local();
    for (dtype, name) in DTYPES {
        let want = values(dtype, &[13, 7]);
        for (k, compression) in [
            Compression::None,
            Compression::Zstd(5),
            Compression::Gzip(4),
        ]
        .into_iter()
        .enumerate()
        {
            let path = scratch(&format!("{name}_{k}.zarr"));
            // Array chunks of 5×5 straddle storage chunks of 4×3: the write is
            // rechunked to whole storage chunks.
            let opts = ZarrOptions {
                chunks: Some(vec![4, 3]),
                compression,
            };
            let w = Write::zarr(&array(&want, &[5, 5]), &path, &opts).unwrap();
            let written = local.write(&[w]).unwrap();
            assert_eq!(written.bytes, (91 * dtype.size()) as u64);
            assert_eq!(read(&from_zarr(&path)), want, "{name} {compression:?}");
            assert_eq!(
                read(&from_zarr_with(&path, vec![6, 2])),
                want,
                "{name} {compression:?}"
            );
        }
    }
}

/// A write rechunked for one axis takes whole storage chunks along every
/// axis: no two tasks share a storage chunk (one's update would be lost).
#[test]
fn a_write_rechunked_for_one_axis_shares_no_storage_chunk_along_another() {
    let local = Client::local();
    let want = ndarray::Array2::from_shape_fn((8, 10), |(i, j)| (i * 10 + j) as f64 + 0.5);
    // Rows 3 + 5 straddle storage chunks of 4; columns 4 + 6 are aligned,
    // but their largest chunk (6) is not a multiple of 4.
    let chunks = vec![vec![3, 5], vec![4, 6]];
    let x = accel::from_ndarray(&want, chunks);
    let path = scratch("aligned_on_every_axis.zarr");
    let opts = ZarrOptions {
        chunks: Some(vec![4, 4]),
        compression: Compression::None,
    };
    let w = Write::zarr(&x, &path, &opts).unwrap();
    // Every task's box starts and ends on storage chunks (or the array's end).
    let plan = local.plan_with(&[], std::slice::from_ref(&w)).unwrap().plan;
    let (stage, _) = plan.sinks.first().expect("a sink stage");
    for (axis, offsets) in plan.stage(*stage).meta.chunks.offsets().iter().enumerate() {
        let end = [8, 10][axis];
        assert!(
            offsets.iter().all(|&o| o % 4 == 0 || o == end),
            "axis {axis}: tasks at {offsets:?}"
        );
    }
    local.write(&[w]).unwrap();
    let got = local.compute::<f64>(&from_zarr(&path)).unwrap();
    assert_eq!(got, want.into_dyn());
}

#[test]
fn frames_go_into_a_stack_and_misaligned_writes_are_refused_or_rechunked() {
    let local = Client::local();
    let path = scratch("frames.zarr");
    let stack = Stored::create_zarr(
        &path,
        &[4, 6, 8],
        DType::F64,
        &[1, 3, 4],
        Compression::Zstd3,
    )
    .unwrap();
    let frame = |k: usize| accel::arange(48, 5).astype(DType::F64).reshape(&[6, 8]) + k as f64;
    let frames: Vec<accel::Array> = (0..4).map(frame).collect();
    let writes: Vec<Write> = frames
        .iter()
        .enumerate()
        .map(|(k, f)| Write::into(f, &stack, &[k, 0, 0]).unwrap())
        .collect();
    // Each frame's 5-element chunks were rechunked to whole storage chunks.
    assert!(writes.iter().all(|w| w.nbytes().unwrap() == 48 * 8));
    local.write(&writes).unwrap();
    let back = local.compute::<f64>(&from_zarr(&path)).unwrap();
    for k in 0..4 {
        for i in 0..48 {
            assert_eq!(back[[k, i / 8, i % 8]], i as f64 + k as f64);
        }
    }
    let small = accel::zeros(&[3, 4], DType::F64, vec![3, 4]);
    let err = Write::into(&small, &stack, &[0, 1, 0])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("frames.zarr") && err.contains("chunks of 3"),
        "{err}"
    );
    let shared = Stored::create_zarr(
        scratch("shared.zarr"),
        &[4, 6, 8],
        DType::F64,
        &[2, 3, 4],
        Compression::None,
    )
    .unwrap();
    let err = Write::into(&frames[0], &shared, &[0, 0, 0])
        .unwrap_err()
        .to_string();
    assert!(err.contains("chunks of 1 along that axis"), "{err}");
}

#[test]
fn missing_malformed_corrupt_and_unsupported_stores_are_clear_errors() {
    let local = Client::local();
    let err = |a: &accel::Array| local.run(&[a]).unwrap_err().to_string();
    let e = err(&from_zarr(scratch("nowhere.zarr")));
    assert!(
        e.contains("nowhere.zarr") && e.contains("no such Zarr store"),
        "{e}"
    );
    let e = err(&from_zarr(fixture("uint16_4.zarr")));
    assert!(
        e.contains("uint16_4.zarr") && e.contains("not supported"),
        "{e}"
    );
    // Garbled metadata.
    let bad = scratch("garbled.zarr");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join(".zarray"), b"{\"zarr_format\": 2, \"shape\": ").unwrap();
    let e = err(&from_zarr(&bad));
    assert!(e.contains("garbled.zarr"), "{e}");
    // A corrupt chunk fails the task that reads it, naming the store.
    let corrupt = scratch("corrupt.zarr");
    let _ = std::fs::remove_dir_all(&corrupt);
    copy_dir(&fixture("float64_20x30_zstd.zarr"), &corrupt);
    std::fs::write(corrupt.join("1.1"), b"not zstd at all").unwrap();
    let e = err(&from_zarr(&corrupt).sum());
    assert!(e.contains("corrupt.zarr"), "{e}");
    // A zstd frame stating 2^40 bytes: the decoder would allocate that much
    // up front and abort this process; the read is refused instead.
    let mut frame = vec![0x28, 0xB5, 0x2F, 0xFD, 0b1100_0000, 0x50];
    frame.extend_from_slice(&(1u64 << 40).to_le_bytes());
    frame.extend_from_slice(&[0x01, 0x00, 0x00]);
    std::fs::write(corrupt.join("1.1"), &frame).unwrap();
    let e = err(&from_zarr(&corrupt).sum());
    assert!(
        e.contains("corrupt.zarr") && e.contains("decompresses to 1099511627776 bytes"),
        "{e}"
    );
    // The same behind a skippable frame, in a v3 store accel wrote.
    let v3 = scratch("corrupt_v3.zarr");
    let x = from_zarr(fixture("float64_20x30_zstd.zarr"));
    local.to_zarr(&x, &v3, &ZarrOptions::default()).unwrap();
    let mut hidden = vec![0x50, 0x2A, 0x4D, 0x18, 0, 0, 0, 0];
    hidden.extend_from_slice(&frame);
    let chunk = v3.join("c/0/0");
    assert!(chunk.exists());
    std::fs::write(&chunk, &hidden).unwrap();
    let e = err(&from_zarr(&v3).sum());
    assert!(
        e.contains("corrupt_v3.zarr") && e.contains("corrupt zstd data"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&v3);
    // A gzip chunk that inflates a thousandfold: refused once it passes the
    // chunk's size, instead of growing to the end.
    let bomb = scratch("gzip_bomb.zarr");
    let _ = std::fs::remove_dir_all(&bomb);
    copy_dir(&fixture("float64_20x30_gzip.zarr"), &bomb);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &vec![0u8; 64 << 20]).unwrap();
    std::fs::write(bomb.join("1.1"), gz.finish().unwrap()).unwrap();
    let e = err(&from_zarr(&bomb).sum());
    assert!(
        e.contains("gzip_bomb.zarr") && e.contains("corrupt gzip data"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&bomb);
}

/// A run that fails leaves the destination as it was, and no staging files;
/// one that succeeds replaces it.
#[test]
fn a_failed_write_leaves_the_destination_as_it_was() {
    let local = Client::local();
    let corrupt = scratch("corrupt_input.zarr");
    let _ = std::fs::remove_dir_all(&corrupt);
    copy_dir(&fixture("float64_20x30_zstd.zarr"), &corrupt);
    std::fs::write(corrupt.join("1.1"), b"not zstd at all").unwrap();
    let bad = from_zarr(&corrupt) * 2.0;
    let good = from_zarr(fixture("float64_20x30_zstd.zarr")) * 2.0;
    let expected = local.run(&[&good]).unwrap().outputs;
    let dir = scratch("replaced");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (npy, zarr) = (dir.join("out.npy"), dir.join("out.zarr"));
    let opts = ZarrOptions::default();
    // Nothing there: still nothing after a failure.
    assert!(local.to_npy(&bad, &npy).is_err());
    assert!(local.to_zarr(&bad, &zarr, &opts).is_err());
    let names = || {
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert!(names().is_empty(), "{:?}", names());
    // The previous arrays survive a failed rewrite, and a good one replaces them.
    let old = (from_zarr(fixture("float64_20x30_zstd.zarr")) + 1.0).sqrt();
    let old_values = local.run(&[&old]).unwrap().outputs;
    local.to_npy(&old, &npy).unwrap();
    local.to_zarr(&old, &zarr, &opts).unwrap();
    assert!(local.to_npy(&bad, &npy).is_err());
    assert!(local.to_zarr(&bad, &zarr, &opts).is_err());
    assert_eq!(names(), ["out.npy", "out.zarr"]);
    let npy_back = || accel::from_npy(&npy, vec![20, 30]);
    assert_eq!(local.run(&[&npy_back()]).unwrap().outputs, old_values);
    assert_eq!(local.run(&[&from_zarr(&zarr)]).unwrap().outputs, old_values);
    local.to_npy(&good, &npy).unwrap();
    local.to_zarr(&good, &zarr, &opts).unwrap();
    assert_eq!(names(), ["out.npy", "out.zarr"]);
    assert_eq!(local.run(&[&npy_back()]).unwrap().outputs, expected);
    assert_eq!(local.run(&[&from_zarr(&zarr)]).unwrap().outputs, expected);
    // A write carried out once is not carried out again: its hidden store
    // has moved into place.
    let w = Write::zarr(&old, &zarr, &opts).unwrap();
    local.write(std::slice::from_ref(&w)).unwrap();
    let e = local.write(&[w]).unwrap_err().to_string();
    assert!(e.contains("carried out already"), "{e}");
    assert_eq!(local.run(&[&from_zarr(&zarr)]).unwrap().outputs, old_values);
    assert_eq!(names(), ["out.npy", "out.zarr"]);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&corrupt);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
