//! A guard between zarrs and the chunk files it decodes. A zstd frame states
//! how large it decompresses, and the decoder allocates that much before it
//! reads a byte: a corrupt or hostile chunk stating terabytes would abort
//! the process (a worker, or the embedded client) instead of failing its
//! task. The guard refuses a stored value whose zstd frames state more than
//! a chunk of the array can hold.

use std::sync::Arc;

use zarrs::storage::byte_range::ByteRangeIterator;
use zarrs::storage::{Bytes, MaybeBytesIterator, ReadableStorageTraits, StorageError, StoreKey};

/// The first bytes of every zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// A readable store whose values are checked before zarrs decodes them.
pub(super) struct Guarded<S> {
    inner: Arc<S>,
    /// The most a value may decompress to; `None`: nothing is checked.
    limit: Option<usize>,
}

impl<S> Guarded<S> {
    pub(super) fn new(inner: Arc<S>, limit: Option<usize>) -> Guarded<S> {
        Guarded { inner, limit }
    }
}

/// The limit for an array whose (outer) chunks hold `chunk_bytes` bytes, if
/// its codecs use zstd: twice the chunk and a little, since a codec before
/// zstd may grow incompressible data a bit.
pub(super) fn zstd_limit(metadata: &str, chunk_bytes: usize) -> Option<usize> {
    metadata
        .contains("zstd")
        .then(|| chunk_bytes.saturating_mul(2).saturating_add(1 << 16))
}

/// Refuses `bytes` if they are zstd frames stating more than `limit` bytes.
pub(super) fn check(bytes: &[u8], limit: usize, key: &StoreKey) -> Result<(), StorageError> {
    if !bytes.starts_with(&ZSTD_MAGIC) {
        return Ok(());
    }
    match zstd::bulk::Decompressor::upper_bound(bytes) {
        Some(n) if n > limit => Err(StorageError::Other(format!(
            "chunk {key} is corrupt: its zstd data says it decompresses to {n} bytes, \
             more than a chunk of this array holds ({limit} at most)"
        ))),
        _ => Ok(()),
    }
}

impl<S: ReadableStorageTraits> ReadableStorageTraits for Guarded<S> {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        let got = self.inner.get_partial_many(key, byte_ranges)?;
        let Some(limit) = self.limit else {
            return Ok(got);
        };
        let key = key.clone();
        Ok(got.map(|values| {
            Box::new(
                values.map(move |value| {
                    value.and_then(|b: Bytes| check(&b, limit, &key).map(|()| b))
                }),
            ) as Box<dyn Iterator<Item = Result<Bytes, StorageError>> + 'a>
        }))
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        self.inner.size_key(key)
    }

    fn supports_get_partial(&self) -> bool {
        self.inner.supports_get_partial()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> StoreKey {
        StoreKey::new("c/0/0").unwrap()
    }

    #[test]
    fn a_frame_within_the_chunk_passes() {
        let data = vec![7u8; 4096];
        let frame = zstd::bulk::compress(&data, 3).unwrap();
        assert!(check(&frame, 8192, &key()).is_ok());
        assert!(check(&frame, 4095, &key()).is_err());
    }

    #[test]
    fn a_frame_stating_a_huge_size_is_refused() {
        // A frame header stating 2^40 bytes, then one empty raw block.
        let mut frame = ZSTD_MAGIC.to_vec();
        frame.push(0b1100_0000); // 8-byte content size, single segment off
        frame.push(0x50); // window descriptor
        frame.extend_from_slice(&(1u64 << 40).to_le_bytes());
        frame.extend_from_slice(&[0x01, 0x00, 0x00]); // last block, raw, 0 bytes
        let e = check(&frame, 1 << 20, &key());
        assert!(e.is_err_and(|e| e.to_string().contains("corrupt")));
    }

    #[test]
    fn other_values_are_not_looked_at() {
        assert!(check(&[1, 2, 3, 4, 5], 1, &key()).is_ok());
        assert_eq!(zstd_limit("{\"codecs\":[\"bytes\"]}", 10), None);
        assert_eq!(zstd_limit("{\"name\":\"zstd\"}", 10), Some(20 + 65536));
    }
}
