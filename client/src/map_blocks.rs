//! `map_blocks`: your own Rust function applied to every block of arrays.
//!
//! ```no_run
//! # use accel::*;
//! let x = Rng::new(1).random(&[1000, 1000], [250, 250]);
//! // Embedded: any closure.
//! let y = map_blocks(&[&x], |b: &Blocks<'_>| b.input::<f64>(0).map(|v| v.mapv(f64::sqrt)));
//! // On a cluster: a function the workers registered under a name.
//! let z = MapBlocks::named("smooth").arg(0.5).apply(&[&x]);
//! ```
//!
//! The function is a fusion barrier: its inputs are computed (fused) before
//! it, and elementwise work after it fuses into the kernel that reads its
//! blocks. It gets one block per input, cut at the first input's chunk
//! boundaries (other inputs broadcast to the first one's shape, chunked any
//! way), and returns the output block: by default of the first input's
//! dtype and block shape; [`MapBlocks::dtype`] and [`MapBlocks::chunks`]
//! declare others. It must be pure: a lost chunk is computed again.

use std::fmt::Display;
use std::sync::Arc;

use accel_core::blocks::{BlockCall, BlockFn, Blocks, IntoBlock, block_fn};
use accel_core::op::{Meta, Op};
use accel_core::{Chunks, DType, Value};

use crate::expr::Array;

/// A `map_blocks` call being described: the function, then what it returns.
#[derive(Clone, Debug)]
pub struct MapBlocks {
    call: BlockCall,
    dtype: Option<DType>,
    chunks: Option<Vec<Vec<usize>>>,
}

impl MapBlocks {
    /// A closure: runs embedded ([`crate::Client::local`]); a cluster needs
    /// [`MapBlocks::named`] functions, which its workers carry.
    pub fn closure<F, R, E>(f: F) -> MapBlocks
    where
        F: Fn(&Blocks<'_>) -> std::result::Result<R, E> + Send + Sync + 'static,
        R: IntoBlock,
        E: Display,
    {
        MapBlocks::from_fn("closure", block_fn(f))
    }

    fn from_fn(name: &str, f: BlockFn) -> MapBlocks {
        let mut call = BlockCall::named(name, Vec::new());
        call.func = Some(f);
        MapBlocks {
            call,
            dtype: None,
            chunks: None,
        }
    }

    /// The function registered as `name`: on a cluster by the workers
    /// (`accel_worker::Functions`), embedded by [`crate::Client::with_functions`].
    pub fn named(name: &str) -> MapBlocks {
        MapBlocks {
            call: BlockCall::named(name, Vec::new()),
            dtype: None,
            chunks: None,
        }
    }

    /// The output's dtype (default: the first input's).
    pub fn dtype(mut self, dtype: DType) -> MapBlocks {
        self.dtype = Some(dtype);
        self
    }

    /// The output's block sizes along each axis (default: the first input's),
    /// as many blocks per axis as the first input has.
    pub fn chunks(mut self, chunks: Vec<Vec<usize>>) -> MapBlocks {
        self.chunks = Some(chunks);
        self
    }

    /// Appends a scalar argument, read by the function with `Blocks::arg`.
    pub fn arg(mut self, v: impl Into<Value>) -> MapBlocks {
        self.call.args.push(v.into());
        self
    }

    /// The array of the function's output blocks over `inputs`.
    #[track_caller]
    pub fn apply(&self, inputs: &[&Array]) -> Array {
        let op = format!("map_blocks({})", self.call.name);
        Array::build(&op, inputs, |metas| {
            let Some(first) = metas.first() else {
                return Err(accel_core::Error::Invalid(
                    "map_blocks needs at least one input array".into(),
                ));
            };
            let chunks = match &self.chunks {
                Some(c) => Chunks(c.clone()),
                None => first.chunks.clone(),
            };
            let out = Meta {
                shape: chunks.shape(),
                dtype: self.dtype.unwrap_or(first.dtype),
                chunks,
            };
            let meta = accel_core::blocks::infer(metas, &out)?;
            Ok((Op::MapBlocks(Arc::new(self.call.clone())), meta))
        })
    }
}

/// `f` applied to every block of `inputs` (embedded only; see [`MapBlocks`]
/// for other dtypes, block shapes and named functions that run on a cluster).
#[track_caller]
pub fn map_blocks<F, R, E>(inputs: &[&Array], f: F) -> Array
where
    F: Fn(&Blocks<'_>) -> std::result::Result<R, E> + Send + Sync + 'static,
    R: IntoBlock,
    E: Display,
{
    MapBlocks::closure(f).apply(inputs)
}
