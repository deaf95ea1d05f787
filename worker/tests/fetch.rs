//! Fetching chunks from peers never hangs: a peer that accepts connections
//! but never answers (frozen, cut off) is given up on after the stall
//! timeout, and a dead one is an error at once. Chunks are served only to
//! holders of the data key (any job) or of a job's key (that job).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::time::{Duration, Instant};

use accel_core::{ChunkKey, StageId};
use accel_worker::fetch::Peers;

const KEY: ChunkKey = ChunkKey {
    stage: StageId(0),
    chunk: 0,
};

#[test]
fn a_peer_that_never_answers_is_given_up_after_the_stall_timeout() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // Accepts connections and never says a word, like a frozen process.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = silent.local_addr().unwrap().to_string();
        let held = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((c, _)) = silent.accept().await {
                conns.push(c);
            }
        });
        let peers = Peers::new(Duration::from_millis(500));
        let start = Instant::now();
        let err = peers.fetch(&address, 1, KEY, None, &[]).await.unwrap_err();
        let waited = start.elapsed();
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        assert!(
            err.contains("did not answer") || err.contains("sent nothing"),
            "{err}"
        );
        held.abort();
    });
}

#[test]
fn a_dead_peer_is_an_error_at_once() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let peers = Peers::new(Duration::from_secs(30));
        let start = Instant::now();
        let err = peers
            .fetch(&format!("127.0.0.1:{port}"), 1, KEY, None, &[])
            .await
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(err.contains("cannot reach peer"), "{err}");
    });
}

#[test]
fn chunks_are_served_only_to_holders_of_a_key_that_reads_them() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use accel_core::{Buffer, Chunk};
    use accel_proto::auth::Secret;
    use accel_worker::Store;
    use accel_worker::fetch::{DataKey, Service, StoreChunks};

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Arc::new(Store::new(None));
        let chunk = Arc::new(Chunk::array(vec![3], Buffer::F64(vec![1.0, 2.0, 3.0])));
        store.add_plan(
            store.generation(),
            7,
            Ok(Arc::new(accel_core::Plan::default())),
        );
        assert!(store.insert(store.generation(), 7, KEY, chunk.clone()));
        let key = Arc::new(DataKey::default());
        let service = Service {
            source: Arc::new(StoreChunks {
                store: store.clone(),
                key: key.clone(),
            }),
            serving: Arc::new(AtomicUsize::new(0)),
            tls: None,
            served: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(service.serve(listener, std::future::pending()));
        let peers = Peers::new(Duration::from_secs(5));
        // Not attached yet: nobody may read.
        let data = Secret::random().unwrap();
        let err = peers
            .fetch(&address, 7, KEY, None, data.bytes())
            .await
            .unwrap_err();
        assert!(err.contains("permission denied"), "{err}");
        key.set(Some(data.clone()));
        let got = peers
            .fetch(&address, 7, KEY, None, data.bytes())
            .await
            .unwrap();
        assert_eq!(*got, *chunk);
        let job7 = data.job_key(7);
        assert_eq!(
            *peers
                .fetch(&address, 7, KEY, None, job7.bytes())
                .await
                .unwrap(),
            *chunk
        );
        for (job, cred) in [
            (7, data.job_key(8)),
            (7, Secret::random().unwrap()),
            (7, Secret::from_bytes(Vec::new())),
        ] {
            let err = peers
                .fetch(&address, job, KEY, None, cred.bytes())
                .await
                .unwrap_err();
            assert!(err.contains("permission denied"), "{err}");
        }
        server.abort();
    });
}

/// A server-side connection that counts the writes reaching the socket.
struct CountingWrites {
    inner: tokio::net::TcpStream,
    writes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl tokio::io::AsyncRead for CountingWrites {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for CountingWrites {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let me = self.get_mut();
        me.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::pin::Pin::new(&mut me.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[test]
fn a_small_chunk_leaves_in_one_write_and_a_large_one_arrives_whole() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use accel_core::{Buffer, Chunk};
    use accel_worker::Store;

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Arc::new(Store::new(None));
        store.add_plan(
            store.generation(),
            7,
            Ok(Arc::new(accel_core::Plan::default())),
        );
        // An exact sum's partial: one element in each of 38 columns.
        let small = Arc::new(Chunk::new(
            vec![1],
            (0..38).map(|k| Buffer::F64(vec![k as f64 + 0.5])).collect(),
        ));
        // Three columns of 3 MiB each: larger than any buffer on the way.
        let n = 3 << 17;
        let large = Arc::new(Chunk::new(
            vec![n],
            vec![
                Buffer::F64((0..n).map(|i| i as f64).collect()),
                Buffer::I64((0..n as i64).map(|i| -i).collect()),
                Buffer::F64((0..n).map(|i| (i as f64).sqrt()).collect()),
            ],
        ));
        let big = ChunkKey {
            stage: StageId(1),
            chunk: 0,
        };
        assert!(store.insert(store.generation(), 7, KEY, small.clone()));
        assert!(store.insert(store.generation(), 7, big, large.clone()));
        let (service, data) = keyed_service(store);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let writes = Arc::new(AtomicUsize::new(0));
        let counted = writes.clone();
        let server = tokio::spawn(async move {
            while let Ok((inner, _)) = listener.accept().await {
                let (service, writes) = (service.clone(), counted.clone());
                tokio::spawn(async move {
                    let _ = service.serve_stream(CountingWrites { inner, writes }).await;
                });
            }
        });
        let peers = Peers::new(Duration::from_secs(5));
        for _ in 0..3 {
            let before = writes.load(Ordering::SeqCst);
            let got = peers
                .fetch(&address, 7, KEY, None, data.bytes())
                .await
                .unwrap();
            assert_eq!(*got, *small);
            // The reply's length, header and 38 columns: one write.
            assert_eq!(writes.load(Ordering::SeqCst) - before, 1);
        }
        for _ in 0..2 {
            let got = peers
                .fetch(&address, 7, big, None, data.bytes())
                .await
                .unwrap();
            assert_eq!(*got, *large);
        }
        server.abort();
    });
}

/// A kept connection the peer has closed since (a data plane lets
/// connections idle for minutes go) costs the next fetch nothing: it is
/// made again, once, before anything is reported.
#[test]
fn a_kept_connection_the_peer_closed_is_made_again() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use accel_core::{Buffer, Chunk};
    use accel_worker::Store;

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Arc::new(Store::new(None));
        let chunk = Arc::new(Chunk::array(vec![2], Buffer::F64(vec![4.0, 5.0])));
        let plan = Ok(Arc::new(accel_core::Plan::default()));
        store.add_plan(store.generation(), 3, plan);
        assert!(store.insert(store.generation(), 3, KEY, chunk.clone()));
        let (service, data) = keyed_service(store);
        // Each connection is served for 300 ms, then closed.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        let server = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let service = service.clone();
                tokio::spawn(async move {
                    let served = service.serve_stream(s);
                    let _ = tokio::time::timeout(Duration::from_millis(300), served).await;
                });
            }
        });
        let peers = Peers::new(Duration::from_secs(5));
        let fetch = || peers.fetch(&address, 3, KEY, None, data.bytes());
        assert_eq!(*fetch().await.unwrap(), *chunk);
        assert_eq!(*fetch().await.unwrap(), *chunk, "the kept connection");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(*fetch().await.unwrap(), *chunk, "a new connection");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::Relaxed), 2);
        // An answer on a kept connection is not retried: one refusal.
        let err = peers
            .fetch(&address, 4, KEY, None, data.bytes())
            .await
            .unwrap_err();
        assert!(
            err.contains("not here") || err.contains("permission"),
            "{err}"
        );
        assert_eq!(accepted.load(std::sync::atomic::Ordering::Relaxed), 2);
        server.abort();
    });
}

/// A data plane over `store` whose data key is a fresh secret (returned).
fn keyed_service(
    store: std::sync::Arc<accel_worker::Store>,
) -> (accel_worker::fetch::Service, accel_proto::auth::Secret) {
    use accel_worker::fetch::{DataKey, Service, StoreChunks};
    use std::sync::Arc;
    let key = Arc::new(DataKey::default());
    let data = accel_proto::auth::Secret::random().unwrap();
    key.set(Some(data.clone()));
    let service = Service {
        source: Arc::new(StoreChunks { store, key }),
        serving: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        tls: None,
        served: Default::default(),
    };
    (service, data)
}
