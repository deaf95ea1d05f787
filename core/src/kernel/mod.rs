//! Kernel programs and their CPU executor.

pub mod check;
pub mod compile;
pub mod complex;
pub mod exact_reduce;
pub mod exact_sum;
pub mod exec;
pub mod generate;
pub mod hypot;
pub mod ir;
pub mod jit;
mod loop_exec;
pub mod matmul;
pub mod ops;
pub mod portable;
pub mod reduce;
pub mod slot;
pub mod stream;
pub mod sum_chain;
pub mod vmath;

pub use exec::{Bound, Executable, OutSlice, split_chunks};
pub use ir::{Instr, Program};
