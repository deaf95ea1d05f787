//! accel: lazy chunked arrays with NumPy semantics whose elementwise chains,
//! reductions and views are fused into few coarse compiled tasks.
//!
//! ```
//! use accel::{arange, DType};
//! let x = arange(1_000_000, 100_000).astype(DType::F64);
//! let mag = (x.powi(2) + x.powi(2)).sqrt();
//! assert_eq!(mag.plan().unwrap().tasks(), 10); // one fused task per chunk
//! let out = mag.compute::<f64>().unwrap();
//! assert_eq!(out[[3]], (18.0f64).sqrt());
//! ```

mod arrange;
mod assemble;
mod client;
mod create;
pub mod dot;
mod elementwise;
mod embedded;
mod error;
mod expr;
mod gather;
mod iterate;
mod linalg;
mod loops;
mod lower;
mod map_blocks;
mod nan_reduce;
mod operand;
mod progress;
mod reduce;
mod remote;
mod scan;
mod scatter;
mod security;
mod stencil;
mod storage;
mod structure;

pub use accel_core::blocks::{BlockInfo, Blocks, Functions};
pub use accel_core::op::{Boundary, ReduceOp};
pub use accel_core::optimize::{auto_stencil_depth, auto_stencil_depth_whole_rows};
pub use accel_core::storage::zarr::Compression;
pub use accel_core::storage::{Sink, StorageError, Stored};
pub use accel_core::{DType, Scalar, Value};
pub use accel_gpu::{AdapterSummary, GpuChoice, OffloadCounts};
pub use arrange::{PadMode, stack};
pub use client::{Client, DynArray, Planned, Run};
pub use create::{
    ChunkSpec, Rng, arange, arange_range, from_ndarray, from_owned, full, linspace, ogrid, ones,
    zeros,
};
pub use elementwise::{arctan2, floor_divide, hypot, maximum, minimum, power, where_};
pub use embedded::RunStats;
pub use error::{Error, Result};
pub use expr::Array;
pub use linalg::{eye, matmul, matmul_with, outer, tensordot};
pub use loops::loop_until;
pub use map_blocks::{MapBlocks, map_blocks};
pub use ndarray::{NewAxis, s};
pub use num_complex::Complex64;
pub use operand::Operand;
pub use reduce::{DEFAULT_SPLIT_EVERY, ReduceOpts};
pub use security::Security;
pub use stencil::{Boundaries, Neighbours};
pub use storage::{Write, Written, ZarrOptions, from_npy, from_zarr, from_zarr_with};
pub use structure::concatenate;
