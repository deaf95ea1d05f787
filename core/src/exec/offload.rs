//! Kernels run somewhere other than the CPU pool (a GPU backend).

use std::sync::Arc;

use crate::buffer::{Buffer, Chunk};
use crate::dtype::DType;
use crate::kernel::Executable;
use crate::op::{ReduceOp, ReduceSpec};
use crate::stencil::{DevicePlan, StencilKernel};

/// A kernel input as a device is handed it: its chunk shape, dtype and
/// length, and its data, or, where it is one whole input chunk of the task
/// (not a box assembled for it), that chunk. A chunk never changes once
/// made, so a device may keep its copy under the chunk's identity for as
/// long as the chunk lives; a chunk that lives only on the device is read
/// back only if the device asks for its data.
#[derive(Clone, Copy, Debug)]
pub struct Operand<'a> {
    pub shape: &'a [usize],
    pub dtype: DType,
    pub len: usize,
    source: Source<'a>,
}

#[derive(Clone, Copy, Debug)]
enum Source<'a> {
    Data(&'a Buffer),
    Chunk(&'a Arc<Chunk>),
}

impl<'a> Operand<'a> {
    /// Data that is no chunk of its own (nothing to keep it under).
    pub fn plain(shape: &'a [usize], data: &'a Buffer) -> Operand<'a> {
        Operand {
            shape,
            dtype: data.dtype(),
            len: data.len(),
            source: Source::Data(data),
        }
    }

    /// A whole array chunk (its values wherever they are).
    pub fn of_chunk(chunk: &'a Arc<Chunk>) -> crate::Result<Operand<'a>> {
        let dtype = match (chunk.col_count(), chunk.dtype()) {
            (1, Some(d)) => d,
            _ => {
                return Err(crate::Error::Invalid(
                    "a kernel input that is no array chunk".into(),
                ));
            }
        };
        Ok(Operand {
            shape: &chunk.shape,
            dtype,
            len: chunk.len(),
            source: Source::Chunk(chunk),
        })
    }

    /// The chunk this input is, when it is a whole one.
    pub fn chunk(&self) -> Option<&'a Arc<Chunk>> {
        match self.source {
            Source::Chunk(c) => Some(c),
            Source::Data(_) => None,
        }
    }

    /// The values on the host (a chunk only on a device is read back).
    pub fn data(&self) -> crate::Result<&'a Buffer> {
        match self.source {
            Source::Data(d) => Ok(d),
            Source::Chunk(c) => c.data(),
        }
    }
}

/// Where a task's fused kernel may run instead of the CPU. The task runner
/// asks first; `None` means "run it on the CPU" (a program the device has
/// no exact form for, or a failure on the device, which the implementation
/// reports itself), so a device never fails a task the CPU can compute.
pub trait Offload: Send + Sync {
    /// The values of the kernel `exe` over the box at `origin` of shape
    /// `local` (an output chunk, or the region a partial reduction folds),
    /// from its inputs as (chunk shape, data) in program order.
    fn run_map(
        &self,
        exe: &Executable,
        origin: &[usize],
        local: &[usize],
        inputs: &[Operand<'_>],
    ) -> Option<Buffer>;

    /// [`Offload::run_map`]'s values made the chunk of shape `local`: a
    /// device may keep its own copy of the chunk for the kernels that read
    /// it next.
    fn run_map_chunk(
        &self,
        exe: &Executable,
        origin: &[usize],
        local: &[usize],
        inputs: &[Operand<'_>],
    ) -> Option<Arc<Chunk>> {
        self.run_map(exe, origin, local, inputs)
            .map(|data| Arc::new(Chunk::array(local.to_vec(), data)))
    }

    /// [`Offload::run_map`]'s values folded by `fold` on the device, in
    /// strips: partial results of the values' dtype (far fewer than the
    /// values) whose fold is the whole box's. `None`: fold on the CPU.
    fn run_fold(
        &self,
        _exe: &Executable,
        _origin: &[usize],
        _local: &[usize],
        _inputs: &[Operand<'_>],
        _fold: Fold,
    ) -> Option<Buffer> {
        None
    }

    /// Whether tasks of stencil `k` are offered to [`Offload::run_stencil`]
    /// (only a device that would run them says yes: the CPU would plan them
    /// for nothing).
    fn takes_stencils(&self, _k: &StencilKernel) -> bool {
        false
    }

    /// The output chunk of `plan` once its steps ran on the device (which
    /// may keep its own copy of the chunk for the tasks that read it next);
    /// `None`: the CPU computes the task.
    fn run_stencil(&self, _plan: &DevicePlan) -> Option<Arc<Chunk>> {
        None
    }
}

/// A reduction a device may fold itself: one whose result does not depend
/// on the order its values are folded in, so the device's strips and the
/// CPU's fold of them give the CPU's own result, bit for bit. Integer sums
/// and products wrap (as the CPU's do), so they are exact in any order too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fold {
    Sum,
    Prod,
    Min,
    Max,
    Any,
    All,
}

impl Fold {
    /// Every fold, in a fixed order (an index per fold for tables).
    pub const ALL: [Fold; 6] = [
        Fold::Sum,
        Fold::Prod,
        Fold::Min,
        Fold::Max,
        Fold::Any,
        Fold::All,
    ];

    /// The fold a device may do for `spec` over values of `dtype` in a box
    /// of `ndim` axes: every axis reduced, and an order-free operation on
    /// that dtype (int64 sums and products, int32/int64 extremes, bool
    /// any/all; float sums keep the CPU's exact accumulators).
    pub fn of(spec: &ReduceSpec, dtype: DType, ndim: usize) -> Option<Fold> {
        if spec.axes.len() != ndim || spec.axes.iter().enumerate().any(|(k, &a)| a != k) {
            return None;
        }
        match (spec.op, dtype) {
            (ReduceOp::Sum, DType::I64) => Some(Fold::Sum),
            (ReduceOp::Prod, DType::I64) => Some(Fold::Prod),
            (ReduceOp::Min, DType::I32 | DType::I64) => Some(Fold::Min),
            (ReduceOp::Max, DType::I32 | DType::I64) => Some(Fold::Max),
            (ReduceOp::Any, DType::Bool) => Some(Fold::Any),
            (ReduceOp::All, DType::Bool) => Some(Fold::All),
            _ => None,
        }
    }

    /// Its position in the list above (0 to 5): a key for tables of kernels.
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(op: ReduceOp, axes: Vec<usize>) -> ReduceSpec {
        ReduceSpec {
            op,
            axes,
            keepdims: false,
            split_every: 16,
        }
    }

    #[test]
    fn only_order_free_reductions_of_whole_boxes_fold_on_a_device() {
        let all = |op| spec(op, vec![0, 1]);
        assert_eq!(
            Fold::of(&all(ReduceOp::Sum), DType::I64, 2),
            Some(Fold::Sum)
        );
        assert_eq!(
            Fold::of(&all(ReduceOp::Prod), DType::I64, 2),
            Some(Fold::Prod)
        );
        assert_eq!(
            Fold::of(&all(ReduceOp::Min), DType::I32, 2),
            Some(Fold::Min)
        );
        assert_eq!(
            Fold::of(&all(ReduceOp::Max), DType::I64, 2),
            Some(Fold::Max)
        );
        assert_eq!(
            Fold::of(&all(ReduceOp::Any), DType::Bool, 2),
            Some(Fold::Any)
        );
        assert_eq!(
            Fold::of(&all(ReduceOp::All), DType::Bool, 2),
            Some(Fold::All)
        );
        // Float sums and extremes (order, signed zeros), means, moments and
        // positions stay with the CPU's accumulators.
        for (op, d) in [
            (ReduceOp::Sum, DType::F64),
            (ReduceOp::Max, DType::F64),
            (ReduceOp::Min, DType::F32),
            (ReduceOp::Mean, DType::I64),
            (ReduceOp::Var(0), DType::I64),
            (ReduceOp::ArgMax, DType::I64),
            (ReduceOp::Sum, DType::I32),
        ] {
            assert_eq!(Fold::of(&all(op), d, 2), None, "{op:?} of {d}");
        }
        // Along some axes only: each output element folds its own values.
        assert_eq!(Fold::of(&spec(ReduceOp::Sum, vec![1]), DType::I64, 2), None);
        assert_eq!(Fold::of(&spec(ReduceOp::Sum, vec![0]), DType::I64, 2), None);
        assert_eq!(
            Fold::of(&spec(ReduceOp::Sum, vec![0]), DType::I64, 1),
            Some(Fold::Sum)
        );
        let all = [
            Fold::Sum,
            Fold::Prod,
            Fold::Min,
            Fold::Max,
            Fold::Any,
            Fold::All,
        ];
        for (k, f) in all.iter().enumerate() {
            assert_eq!(f.index(), k);
        }
    }
}
