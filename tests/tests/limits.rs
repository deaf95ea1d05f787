//! Bounded messages and handshakes: every service refuses a message above
//! its kind's limit with RESOURCE_EXHAUSTED without taking it into memory
//! (the process's RSS does not jump), a data-plane request header above its
//! cap is refused before it is read, and a connection that stalls in its
//! handshake is closed. The cluster keeps serving throughout.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::io::{Read, Write};
use std::time::Duration;

use accel_e2e::{Cluster, Options, Security};
use accel_proto::pb;

const MIB: u64 = 1 << 20;

fn plain_cluster(extra: &[&str]) -> Cluster {
    let cluster = Cluster::start_with(
        1,
        Options {
            security: Security::None,
            scheduler_args: extra.iter().map(|s| s.to_string()).collect(),
            ..Options::default()
        },
    )
    .unwrap();
    cluster.wait_for_workers(1).unwrap();
    cluster
}

fn rss(cluster: &Cluster) -> (u64, u64) {
    let (s, w) = cluster.rss();
    (s.unwrap(), w[0].unwrap())
}

#[test]
fn oversized_messages_are_refused_per_kind_without_being_read() {
    let cluster = plain_cluster(&[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let before = rss(&cluster);
    rt.block_on(async {
        let mut s = cluster.raw_scheduler().await.unwrap();
        // A release request beyond the 1 MiB control limit.
        let status = s
            .control
            .release(pb::ReleaseRequest {
                job: 1,
                job_key: vec![7; 8 << 20],
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        // A worker registering with 40 MiB (the worker limit is 32 MiB).
        let register = pb::WorkerMessage {
            msg: Some(pb::worker_message::Msg::Register(pb::Register {
                hello: Some(pb::Hello {
                    protocol_version: accel_proto::PROTOCOL_VERSION,
                    peer: "big".into(),
                }),
                name: "x".repeat(40 << 20),
                ..Default::default()
            })),
        };
        let status = s
            .workers
            .attach(tokio_stream::iter([register]))
            .await
            .map(|_| ())
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        // A submission beyond the 256 MiB plan limit.
        let plan = pb::Plan {
            stages: vec![pb::Stage {
                label: "x".repeat(300 << 20),
                ..Default::default()
            }],
            ..Default::default()
        };
        let status = s
            .jobs
            .submit(pb::SubmitRequest {
                hello: Some(pb::Hello {
                    protocol_version: accel_proto::PROTOCOL_VERSION,
                    peer: "big".into(),
                }),
                plan: Some(plan),
                persisted_keys: Vec::new(),
            })
            .await
            .map(|_| ())
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    });
    // A data-plane request announcing a 2 GiB header.
    let worker_address = cluster
        .scheduler_log()
        .lines()
        .find(|l| l.contains("worker joined"))
        .and_then(|l| l.split("address=").nth(1))
        .and_then(|a| a.split_whitespace().next())
        .unwrap()
        .to_string();
    let mut conn = std::net::TcpStream::connect(&worker_address).unwrap();
    conn.write_all(b"ACCELDP1").unwrap();
    conn.write_all(&(2u32 << 30).to_le_bytes()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = conn.read_to_end(&mut rest);
    let after = rss(&cluster);
    assert!(
        after.0 < before.0 + 64 * MIB,
        "scheduler RSS grew from {} to {} MiB",
        before.0 / MIB,
        after.0 / MIB
    );
    assert!(
        after.1 < before.1 + 64 * MIB,
        "worker RSS grew from {} to {} MiB",
        before.1 / MIB,
        after.1 / MIB
    );
    // Still serving.
    let x = accel::arange(1000, 100).astype(accel::DType::F64).sum();
    assert_eq!(
        cluster.client().unwrap().compute::<f64>(&x).unwrap()[[]],
        499_500.0
    );
}

#[test]
fn a_connection_stalled_in_its_handshake_is_closed() {
    let cluster = plain_cluster(&["--handshake-timeout", "1"]);
    let port = cluster.address.rsplit(':').next().unwrap();
    let mut silent = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    // Closed by the scheduler (EOF or reset; it may have sent its own
    // HTTP/2 settings first), not left open until our read times out.
    let mut got = Vec::new();
    if let Err(e) = silent.read_to_end(&mut got) {
        assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the stalled connection was not closed: {e}"
        );
    }
    let x = accel::arange(1000, 100).astype(accel::DType::F64).sum();
    assert_eq!(
        cluster.client().unwrap().compute::<f64>(&x).unwrap()[[]],
        499_500.0
    );
}
