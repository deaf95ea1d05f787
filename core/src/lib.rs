//! accel-core: dtypes, chunk grids, the expression graph and its optimizer,
//! lowering into stages of coarse tasks, the kernel IR and its CPU executor.
//!
//! No networking and no async: everything here is plain synchronous code that
//! the embedded client and the distributed runtime share.

pub mod blocks;
pub mod buffer;
pub mod chunk;
pub mod dot;
pub mod dtype;
pub mod error;
pub mod exec;
pub mod fast_hash;
pub mod graph;
pub mod infer;
pub mod kernel;
pub mod loops;
pub mod memory;
pub mod op;
pub mod optimize;
pub mod plan;
pub mod plan_check;
pub mod plan_memory;
pub mod plan_rows;
pub mod shape;
pub mod stencil;
pub mod storage;
pub mod wire_bytes;

pub use buffer::{Buffer, Chunk, Element};
pub use dtype::{DType, Scalar, Value};
pub use error::{Error, Result};
pub use graph::{Graph, Node, NodeId};
pub use op::{Meta, Op};
pub use plan::{ChunkKey, Plan, Stage, StageId, StageKind};
pub use shape::Chunks;
