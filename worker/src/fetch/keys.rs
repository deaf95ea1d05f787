//! Who may read a worker's chunks: a peer presenting the cluster's data key
//! (any chunk), or a client presenting its job's key (that job's chunks).

use std::sync::{PoisonError, RwLock};

use accel_proto::auth::Secret;

/// The data key handed out by the scheduler this worker is attached to.
#[derive(Debug, Default)]
pub struct DataKey(RwLock<Option<Secret>>);

impl DataKey {
    pub fn set(&self, key: Option<Secret>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = key;
    }

    pub fn get(&self) -> Option<Secret> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The key's bytes to present to peers (empty while detached).
    pub fn credential(&self) -> Vec<u8> {
        self.get().map(|k| k.bytes().to_vec()).unwrap_or_default()
    }

    /// Whether `credential` may read chunks of `job`.
    pub fn allows(&self, job: u64, credential: &[u8]) -> bool {
        // Checked under the lock: no copy of the key per request.
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|k| k.matches(credential) || k.job_key(job).matches(credential))
    }
}
