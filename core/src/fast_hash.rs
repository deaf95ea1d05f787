//! A fast, non-cryptographic hasher for the optimizer's maps, whose keys are
//! node ids and small structural keys built by this process, and for a
//! worker's chunk maps, whose keys (job ids, dense stage and chunk indices)
//! only its authenticated scheduler adds (no untrusted input chooses what
//! goes in, so hash flooding is not a concern).

use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a over 64-bit words.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        // A final mix so that small sequential ids spread over the table.
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^ (x >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0 ^ i).wrapping_mul(0x0000_0100_0000_01b3);
    }

    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

pub type FastMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<Fnv>>;
pub type FastSet<K> = std::collections::HashSet<K, BuildHasherDefault<Fnv>>;
