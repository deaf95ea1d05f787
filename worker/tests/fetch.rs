//! Fetching chunks from peers never hangs: a peer that accepts connections
//! but never answers (frozen, cut off) is given up on after the stall
//! timeout, and a dead one is an error at once.

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
        let err = peers.fetch(&address, 1, KEY, None).await.unwrap_err();
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
            .fetch(&format!("127.0.0.1:{port}"), 1, KEY, None)
            .await
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(err.contains("cannot reach peer"), "{err}");
    });
}
