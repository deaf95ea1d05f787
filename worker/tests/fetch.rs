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
