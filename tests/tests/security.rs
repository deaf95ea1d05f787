//! Secured clusters refuse strangers and keep roles apart, with distinct,
//! clear errors, while serving their rightful users: tokens (one per role)
//! and mutual TLS (certificates from `accel-scheduler --make-certs`).
//! Everything runs on real processes over 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::time::Duration;

use accel::{Client, Error, Security};
use accel_e2e::{Cluster, Options};
use accel_proto::pb;

fn secured(security: accel_e2e::Security, workers: usize) -> Cluster {
    let cluster = Cluster::start_with(
        workers,
        Options {
            security,
            ..Options::default()
        },
    )
    .unwrap();
    cluster.wait_for_workers(workers).unwrap();
    cluster
}

fn small_sum() -> accel::Array {
    (accel::arange(100_000, 10_000).astype(accel::DType::F64) * 0.5).sum()
}

fn expected() -> f64 {
    0.5 * 99_999.0 * 100_000.0 / 2.0
}

fn rightful_client_still_works(cluster: &Cluster) {
    let got = cluster
        .client()
        .unwrap()
        .compute::<f64>(&small_sum())
        .unwrap();
    assert_eq!(got[[]], expected());
}

/// Waits until worker `k` exits; its log then says why.
fn exits_with(cluster: &mut Cluster, k: usize, why: &str) {
    let status = cluster
        .wait_worker_exit(k, Duration::from_secs(20))
        .unwrap();
    assert!(!status.success());
    let log = cluster.worker_log(k);
    assert!(log.contains(why), "{log}");
}

/// A job run through the raw protocol, kept alive (its stream stays open):
/// its key and where its one output chunk is.
struct RawJob {
    job: u64,
    key: Vec<u8>,
    loc: pb::ChunkLocation,
    _updates: tonic::Streaming<pb::JobUpdate>,
    _rt: tokio::runtime::Runtime,
}

fn raw_job(cluster: &Cluster) -> RawJob {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (job, key, loc, updates) = rt.block_on(async {
        let mut s = cluster.raw_scheduler().await.unwrap();
        let plan = Client::local().plan(&[&small_sum()]).unwrap().plan;
        let mut updates = s
            .jobs
            .submit(accel_e2e::submission(&plan))
            .await
            .unwrap()
            .into_inner();
        let mut key = Vec::new();
        loop {
            let u = updates.message().await.unwrap().unwrap();
            if !u.job_key.is_empty() {
                key = u.job_key.clone();
            }
            if let Some(pb::job_update::Event::Done(d)) = u.event {
                let loc = d.outputs[0].chunks[0].clone();
                return (u.job, key, loc, updates);
            }
        }
    });
    RawJob {
        job,
        key,
        loc,
        _updates: updates,
        _rt: rt,
    }
}

fn fetch(
    address: &str,
    job: u64,
    loc: &pb::ChunkLocation,
    credential: &[u8],
) -> Result<(), String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_, key) = accel_proto::convert::task_from(loc.task.as_ref()).unwrap();
    rt.block_on(async {
        accel_worker::fetch::Peers::new(Duration::from_secs(5))
            .fetch(address, job, key, None, credential)
            .await
            .map(|_| ())
    })
}

#[test]
fn tokens_keep_strangers_out_and_roles_apart() {
    let mut cluster = secured(accel_e2e::Security::Token, 1);
    let url = cluster.address.clone();
    let worker_token = std::fs::read_to_string(cluster.path("worker.token")).unwrap();
    let client_token = std::fs::read_to_string(cluster.path("client.token")).unwrap();
    let compute = |security: Security| {
        Client::connect_with(&url, &security)
            .unwrap()
            .compute::<f64>(&small_sum())
            .unwrap_err()
    };
    let err = compute(Security::none());
    assert!(matches!(err, Error::Unauthenticated { .. }), "{err}");
    assert!(err.to_string().contains("needs a client token"), "{err}");
    let err = compute(Security::token("not-the-token"));
    assert!(matches!(err, Error::Unauthenticated { .. }), "{err}");
    assert!(err.to_string().contains("wrong client token"), "{err}");
    let err = compute(Security::token(&worker_token));
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("a worker token cannot act as a client"),
        "{err}"
    );
    // No message names a token.
    for t in [&worker_token, &client_token] {
        assert!(!err.to_string().contains(t.trim()));
        assert!(!cluster.scheduler_log().contains(t.trim()));
    }

    // Workers with no token or a client's: refused, and they stop (retrying cannot help).
    let token_file = cluster.path("client.token");
    let k = cluster
        .add_worker_as(&["--token-file", token_file.to_str().unwrap()])
        .unwrap();
    exits_with(&mut cluster, k, "a client token cannot act as a worker");
    let k = cluster.add_worker_as(&[]).unwrap();
    exits_with(&mut cluster, k, "needs a worker token");

    // The data plane: a job's key reads that job's chunks, nothing else does.
    let first = raw_job(&cluster);
    let (job, key, loc) = (first.job, first.key.clone(), first.loc.clone());
    assert!(fetch(&loc.address, job, &loc, &key).is_ok());
    for credential in [
        Vec::new(),
        b"stranger".to_vec(),
        worker_token.trim().as_bytes().to_vec(),
        client_token.trim().as_bytes().to_vec(),
    ] {
        let err = fetch(&loc.address, job, &loc, &credential).unwrap_err();
        assert!(err.contains("permission denied"), "{err}");
    }
    let second = raw_job(&cluster);
    let (other, other_key) = (second.job, second.key.clone());
    assert_ne!(other, job);
    let err = fetch(&loc.address, job, &loc, &other_key).unwrap_err();
    assert!(err.contains("permission denied"), "{err}");
    // Nor can another job's key release it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        let mut s = cluster.raw_scheduler().await.unwrap();
        s.control
            .release(pb::ReleaseRequest {
                job,
                job_key: other_key,
            })
            .await
            .unwrap_err()
    });
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(
        fetch(&loc.address, job, &loc, &key).is_ok(),
        "the chunk is still there"
    );
    rightful_client_still_works(&cluster);
}

#[test]
fn mutual_tls_refuses_plaintext_strangers_and_the_wrong_roles() {
    let mut cluster = secured(accel_e2e::Security::MutualTls, 1);
    assert!(
        cluster.address.starts_with("https://"),
        "{}",
        cluster.address
    );
    let certs = cluster.certs();
    let plain = cluster.address.replacen("https://", "http://", 1);
    let err = Client::connect_with(&plain, &Security::none())
        .and_then(|c| c.compute::<f64>(&small_sum()))
        .unwrap_err();
    assert!(err.to_string().contains(&plain), "{err}");
    assert!(
        err.to_string().contains("if the scheduler uses TLS"),
        "{err}"
    );

    // Certificates from another CA, or none at all: the handshake fails.
    let other = cluster.path("other-certs");
    accel_proto::tls::make_certs(&other, &[]).unwrap();
    let stranger = Security::none().with_tls(
        other.join("client.pem"),
        other.join("client.key"),
        certs.join("ca.pem"),
    );
    let err = Client::connect_with(&cluster.address, &stranger)
        .and_then(|c| c.compute::<f64>(&small_sum()))
        .unwrap_err();
    assert!(
        matches!(err, Error::Unreachable { .. } | Error::Remote { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("signed by the cluster's CA"),
        "{err}"
    );

    // The worker's certificate cannot submit jobs.
    let as_worker = Security::none().with_tls(
        certs.join("worker.pem"),
        certs.join("worker.key"),
        certs.join("ca.pem"),
    );
    let err = Client::connect_with(&cluster.address, &as_worker)
        .unwrap()
        .compute::<f64>(&small_sum())
        .unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");

    // A worker with a client's certificate is refused and stops.
    let path = |f: &str| certs.join(f).to_string_lossy().into_owned();
    let (cert, key, ca) = (path("client.pem"), path("client.key"), path("ca.pem"));
    let k = cluster
        .add_worker_as(&["--tls-cert", &cert, "--tls-key", &key, "--tls-ca", &ca])
        .unwrap();
    exits_with(&mut cluster, k, "does not grant the worker role");
    rightful_client_still_works(&cluster);
}

#[test]
fn without_security_nothing_listens_beyond_loopback_unless_told_to() {
    use std::process::{Command, Stdio};
    let scheduler = accel_e2e::program("accel-scheduler").unwrap();
    let out = Command::new(&scheduler)
        .args(["--host", "0.0.0.0", "--port", "0", "--no-dashboard"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0") && err.contains("--insecure"),
        "{err}"
    );
    // Told to: it listens, and says what that means.
    let mut child = Command::new(&scheduler)
        .args([
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--insecure",
            "--no-dashboard",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.contains("listening on http://0.0.0.0:"), "{line}");
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("with workers and clients unauthenticated (--insecure)"),
        "{log}"
    );
    // Half secured is not secured: a token for clients only leaves anyone
    // free to attach as a worker; TLS without a CA encrypts but says
    // nothing of who connects.
    let dir = std::env::temp_dir().join(format!("accel-half-secured-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("client.token");
    std::fs::write(&token, "a client token of some length").unwrap();
    accel_proto::tls::make_certs(&dir, &[]).unwrap();
    let (cert, key) = (dir.join("scheduler.pem"), dir.join("scheduler.key"));
    let half: [Vec<&std::ffi::OsStr>; 2] = [
        vec!["--client-token-file".as_ref(), token.as_os_str()],
        vec![
            "--tls-cert".as_ref(),
            cert.as_os_str(),
            "--tls-key".as_ref(),
            key.as_os_str(),
        ],
    ];
    for (flags, open) in half
        .iter()
        .zip(["workers unauthenticated", "workers and clients"])
    {
        let out = Command::new(&scheduler)
            .args(["--host", "0.0.0.0", "--port", "0", "--no-dashboard"])
            .args(flags)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("refusing to listen") && err.contains(open),
            "{err}"
        );
    }
    // The dashboard shows every job and worker: beyond loopback, it needs a
    // token even where the scheduler's port is secured by mutual TLS.
    let ca = dir.join("ca.pem");
    let mtls: [&std::ffi::OsStr; 6] = [
        "--tls-cert".as_ref(),
        cert.as_os_str(),
        "--tls-key".as_ref(),
        key.as_os_str(),
        "--tls-ca".as_ref(),
        ca.as_os_str(),
    ];
    let out = Command::new(&scheduler)
        .args(["--host", "127.0.0.1", "--port", "0"])
        .args(["--dashboard-address", "0.0.0.0:0"])
        .args(mtls)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to serve the dashboard on 0.0.0.0")
            && err.contains("--dashboard-token-file"),
        "{err}"
    );
    // A worker's /metrics beyond loopback needs a token too, even where its
    // chunks are served over mutual TLS.
    let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let out = Command::new(accel_e2e::program("accel-worker").unwrap())
        .args(["https://127.0.0.1:1", "--listen", "0.0.0.0:0"])
        .args(["--metrics-port", "0"])
        .args([
            "--tls-cert",
            &path("worker.pem"),
            "--tls-key",
            &path("worker.key"),
        ])
        .args(["--tls-ca", &path("ca.pem")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to serve /metrics on 0.0.0.0")
            && err.contains("--metrics-token-file"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);

    // A worker of an unsecured cluster does not serve chunks beyond loopback either.
    let mut cluster = Cluster::start_with(
        0,
        Options {
            security: accel_e2e::Security::None,
            ..Options::default()
        },
    )
    .unwrap();
    let k = cluster.add_worker_as(&["--listen", "0.0.0.0:0"]).unwrap();
    exits_with(&mut cluster, k, "refusing to serve chunks on 0.0.0.0");
}

/// A worker's `/metrics` asks for its token (the workers' one, or
/// `--metrics-token-file`); `/health` stays open for probes.
#[test]
fn a_workers_metrics_ask_for_its_token() {
    let mut cluster = Cluster::start_with(0, Options::default()).unwrap();
    cluster.add_worker_with(&["--metrics-port", "0"]).unwrap();
    cluster.wait_for_workers(1).unwrap();
    let at = cluster.worker_metrics_address(0).unwrap();
    rightful_client_still_works(&cluster);
    let (code, body) = accel_e2e::http_get(&at, "/metrics").unwrap();
    assert_eq!(code, 401, "{body}");
    assert!(!body.contains("accel_worker_"), "{body}");
    let (code, _) = accel_e2e::http_get_as(&at, "/metrics", Some("not-the-token")).unwrap();
    assert_eq!(code, 401);
    // The sum's ten partial sums and their combination.
    assert_eq!(
        cluster
            .worker_metric(&at, "accel_worker_tasks_computed_total")
            .unwrap(),
        11.0
    );
    assert_eq!(
        accel_e2e::http_get(&at, "/health").unwrap(),
        (200, "ok\n".to_string())
    );
}
