//! The data plane: chunks between processes over plain TCP. A worker writes
//! a chunk's own memory to the socket; the fetcher reads it in pieces of
//! whole elements and puts each piece in its final place (a chunk's buffer,
//! or the client's result array). A peer that stops sending in the middle of
//! a chunk (frozen, cut off, dead) is given up on after a stall timeout,
//! never waited for forever.

mod keys;
mod peers;
mod serve;
mod sink;
mod stream;
mod wire;

use std::time::Duration;

pub use keys::DataKey;
pub use peers::{FetchError, Frame, Peers};
pub use serve::{ChunkSource, Piece, Service, StoreChunks};
pub use sink::ChunkSink;

/// A box of a chunk: lo (inclusive) and hi (exclusive) per axis.
pub type Region = (Vec<usize>, Vec<usize>);

/// Bytes read per piece: a multiple of every element size, so pieces hold
/// whole elements, and small enough to stay in cache on the way to their place.
pub const FRAME: usize = 1 << 20;

/// Default for how long a peer may stay silent while serving a chunk.
pub const DEFAULT_STALL: Duration = Duration::from_secs(10);
