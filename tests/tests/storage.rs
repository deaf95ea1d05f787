//! Stored arrays on a cluster: the workers read and write the files
//! themselves (the client sends only metadata), results equal the embedded
//! client's, and a file the workers cannot use is a clear error naming it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use accel::{Client, DType, Write, from_ndarray, from_npy};
use accel_e2e::Cluster;
use prost::Message;

#[test]
fn workers_read_and_write_npy_files_and_nothing_goes_through_the_client() {
    let cluster = Cluster::start(2).unwrap();
    cluster.wait_for_workers(2).unwrap();
    let remote = cluster.client().unwrap();
    let local = Client::local();
    let src = cluster.path("src.npy");
    // A 16 MB source file, written by the embedded client.
    let n = 2_000_000;
    let data = ndarray::Array2::from_shape_fn((2000, 1000), |(i, j)| (i * 1000 + j) as f64 * 0.5);
    local
        .to_npy(&from_ndarray(&data, vec![500, 500]), &src)
        .unwrap();
    // Read in chunks that do not follow any storage layout, fused into a map,
    // and written by the workers into a new file.
    let x = from_npy(&src, vec![300, 700]);
    let y = (&x * 2.0).sin() + 1.0;
    let out = cluster.path("out.npy");
    let w = Write::npy(&y, &out).unwrap();
    let planned = remote.plan_with(&[], std::slice::from_ref(&w)).unwrap();
    let bytes = accel_proto::convert::plan_to(&planned.plan).encoded_len();
    assert!(
        bytes < 10_000,
        "the plan carries {bytes} bytes for a {} MB file",
        n * 8 / 1_000_000
    );
    let written = remote.write(&[w]).unwrap();
    assert_eq!(written.bytes, (n * 8) as u64);
    let back = from_npy(&out, vec![1000, 1000]);
    let expected = local.run(&[&y]).unwrap().outputs;
    assert_eq!(local.run(&[&back]).unwrap().outputs, expected);
    assert_eq!(remote.run(&[&back]).unwrap().outputs, expected);
    // A reduction straight over the file, on the cluster.
    let s = from_npy(&src, vec![400, 1000]).sum_axis(1);
    assert_eq!(
        remote.run(&[&s]).unwrap().outputs,
        local.run(&[&s]).unwrap().outputs
    );
}

#[test]
fn a_file_the_workers_cannot_read_fails_the_job_naming_it_and_the_cluster_carries_on() {
    let cluster = Cluster::start(2).unwrap();
    cluster.wait_for_workers(2).unwrap();
    let remote = cluster.client().unwrap();
    let path = cluster.path("vanishing.npy");
    Client::local()
        .to_npy(&accel::arange(1000, 100).astype(DType::F64), &path)
        .unwrap();
    let x = from_npy(&path, vec![100]);
    // Gone between planning and running (as if the workers did not share the disk).
    std::fs::remove_file(&path).unwrap();
    let err = remote.compute::<f64>(&x.sum()).unwrap_err().to_string();
    assert!(
        err.contains("vanishing.npy") && err.contains("No such file"),
        "{err}"
    );
    let ok = accel::arange(1000, 100).astype(DType::F64).sum();
    assert_eq!(remote.compute::<f64>(&ok).unwrap()[[]], 499_500.0);
}

#[test]
fn workers_read_and_write_zarr_stores() {
    let cluster = Cluster::start(2).unwrap();
    cluster.wait_for_workers(2).unwrap();
    let remote = cluster.client().unwrap();
    let local = Client::local();
    let x = accel::Rng::new(4).random(&[600, 500], vec![150, 125]);
    let src = cluster.path("src.zarr");
    let opts = accel::ZarrOptions {
        chunks: Some(vec![100, 100]),
        compression: accel::Compression::Zstd3,
    };
    // Written by the workers, chunks of 150×125 rechunked to whole 100×100 storage chunks.
    remote.to_zarr(&x, &src, &opts).unwrap();
    let y = (accel::from_zarr_with(&src, vec![120, 250]) * 3.0)
        .exp()
        .sum_axis(0);
    // The same chunks (so the same order of summation) straight from the generator.
    let same = (x.rechunk(vec![120, 250]) * 3.0).exp().sum_axis(0);
    let want = local.run(&[&same]).unwrap().outputs;
    assert_eq!(remote.run(&[&y]).unwrap().outputs, want);
    assert_eq!(local.run(&[&y]).unwrap().outputs, want);
}

#[test]
fn a_source_larger_than_a_message_is_served_by_the_client_chunk_by_chunk() {
    let cluster = Cluster::start(2).unwrap();
    cluster.wait_for_workers(2).unwrap();
    let remote = cluster.client().unwrap();
    // 320 MiB: above the 256 MiB message limit that a plan carrying it would hit.
    let n: usize = 40 << 20;
    let data = ndarray::Array1::from_iter((0..n).map(|i| (i % 1024) as f64));
    let x = from_ndarray(&data, n / 16);
    let got = remote.compute::<f64>(&(&x * 2.0).sum()).unwrap()[[]];
    let blocks = (n / 1024) as f64;
    assert_eq!(got, 2.0 * blocks * (1023.0 * 1024.0 / 2.0));
    // Results computed from it are right to the last element.
    let y = remote.compute::<f64>(&(&x + 1.0)).unwrap();
    assert!(
        y.iter()
            .enumerate()
            .all(|(i, &v)| v == (i % 1024) as f64 + 1.0)
    );
}

#[test]
fn the_heat_frames_example_writes_its_movie_from_the_workers() {
    use accel_examples::workloads::{heat, heat_frames};
    let cluster = Cluster::start(2).unwrap();
    cluster.wait_for_workers(2).unwrap();
    let remote = cluster.client().unwrap();
    let store = cluster.path("heat.zarr");
    let (frames, _) = heat_frames::write(&remote, &store, 60, 100, 25, 20).unwrap();
    assert_eq!(frames, 5);
    let local = Client::local();
    let movie = local.compute::<f64>(&accel::from_zarr(&store)).unwrap();
    for k in 0..5 {
        let want = heat::serial(60, 25 * k).into_dyn();
        assert_eq!(movie.index_axis(ndarray::Axis(0), k), want, "frame {k}");
    }
    let (on_cluster, here) = (
        heat_frames::stats(&remote, &store).unwrap(),
        heat_frames::stats(&local, &store).unwrap(),
    );
    assert_eq!(on_cluster, here);
}

#[test]
fn workers_confined_to_storage_roots_refuse_every_other_path() {
    let mut cluster = Cluster::start(0).unwrap();
    let data = cluster.path("data");
    let secret = cluster.path("secret");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&secret).unwrap();
    let root = data.to_str().unwrap().to_string();
    let canonical_root = std::fs::canonicalize(&data).unwrap().display().to_string();
    for _ in 0..2 {
        cluster.add_worker_with(&["--storage-root", &root]).unwrap();
    }
    cluster.wait_for_workers(2).unwrap();
    let remote = cluster.client().unwrap();
    let local = Client::local();
    let x = accel::arange(1000, 100).astype(DType::F64);
    let want = local.run(&[&(&x * 2.0)]).unwrap().outputs;

    // Under the root: written and read back by the workers.
    remote.to_npy(&(&x * 2.0), data.join("ok.npy")).unwrap();
    let back = from_npy(data.join("ok.npy"), vec![250]);
    assert_eq!(remote.run(&[&back]).unwrap().outputs, want);
    let opts = accel::ZarrOptions {
        chunks: Some(vec![100]),
        compression: accel::Compression::Zstd3,
    };
    remote.to_zarr(&x, data.join("ok.zarr"), &opts).unwrap();

    // Outside it: a file the workers' user could read, named directly, by `..`
    // or through a link inside the root.
    local.to_npy(&x, secret.join("key.npy")).unwrap();
    std::os::unix::fs::symlink(&secret, data.join("link")).unwrap();
    for (path, resolved) in [
        (secret.join("key.npy"), false),
        (data.join("../secret/key.npy"), true),
        (data.join("link/key.npy"), true),
    ] {
        let err = remote
            .compute::<f64>(&from_npy(&path, vec![100]).sum())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--storage-root") && err.contains(&canonical_root),
            "{}: {err}",
            path.display()
        );
        assert!(!resolved || err.contains("resolves to"), "{err}");
    }
    // Nor written there: the job fails and leaves no file behind.
    let err = remote
        .to_npy(&x, secret.join("planted.npy"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("--storage-root"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&secret)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("key.npy")]);

    // The cluster carries on.
    assert_eq!(remote.run(&[&back]).unwrap().outputs, want);
    // A root that does not exist stops the worker at start, naming it.
    let k = cluster
        .add_worker_with(&["--storage-root", "/nonexistent/accel-root"])
        .unwrap();
    let status = cluster
        .wait_worker_exit(k, std::time::Duration::from_secs(20))
        .unwrap();
    assert!(!status.success());
    let log = cluster.worker_log(k);
    assert!(
        log.contains("--storage-root") && log.contains("/nonexistent/accel-root"),
        "{log}"
    );
}
