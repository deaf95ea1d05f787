//! Every seed workload at its small size: each checks itself against its scalar reference.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use accel_examples::Args;
use accel_examples::workloads::ALL;

#[test]
fn every_workload_passes_its_check_at_small_size() {
    let out = std::env::temp_dir().join(format!("accel-examples-{}", std::process::id()));
    let out_arg = out.display().to_string();
    let args = Args::parse([
        "--size".to_string(),
        "small".to_string(),
        "--out".to_string(),
        out_arg,
    ])
    .unwrap();
    for (name, run) in ALL {
        let reports = run(&args).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!reports.is_empty(), "{name}: nothing reported");
        for report in reports {
            assert!(
                report.tasks <= report.tasks_unfused,
                "{name}: fusion made more tasks"
            );
            assert!(!report.check.is_empty(), "{name}: no check reported");
        }
    }
    for picture in ["fractal.png", "heat50.png"] {
        let bytes = std::fs::read(out.join(picture)).unwrap();
        assert_eq!(&bytes[1..4], b"PNG", "{picture}");
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn arguments_are_validated() {
    assert!(Args::parse(["--size".to_string(), "huge".to_string()]).is_err());
    assert!(Args::parse(["--bogus".to_string()]).is_err());
}

#[test]
fn heat_frames_written_to_zarr_match_the_serial_loop_and_read_back() {
    use accel_examples::workloads::{heat, heat_frames};
    let client = accel::Client::local();
    let store = std::env::temp_dir().join(format!("accel-frames-{}.zarr", std::process::id()));
    let (frames, bytes) = heat_frames::write(&client, &store, 30, 40, 10, 10).unwrap();
    assert_eq!((frames, bytes), (5, 5 * 30 * 30 * 8));
    let movie = client.compute::<f64>(&accel::from_zarr(&store)).unwrap();
    let stats = heat_frames::stats(&client, &store).unwrap();
    assert_eq!(stats.len(), 5);
    for (k, (mean, _, max)) in stats.into_iter().enumerate() {
        let want = heat::serial(30, 10 * k);
        let got = movie.index_axis(ndarray::Axis(0), k);
        assert_eq!(got, want.clone().into_dyn(), "frame {k}");
        let expected = want.mean().unwrap();
        assert!(
            (mean - expected).abs() < 1e-12,
            "frame {k}: {mean} vs {expected}"
        );
        assert_eq!(max, 100.0);
    }
    std::fs::remove_dir_all(&store).unwrap();
}
