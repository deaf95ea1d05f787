//! Stencil kernels: fused regions that read neighbours. A task computes its
//! output chunk from its input fields grown by a halo. Every field lives in one
//! padded layout (the chunk grown by the kernel's halo on every side), so a
//! read at an offset is a shifted window of the same buffer and each level of
//! the kernel is an ordinary elementwise program over contiguous windows.
//! Successive levels (fused time steps) are computed on shrinking halos.

mod device;
mod geometry;
mod run;

use std::sync::Arc;

use crate::kernel::Executable;
use crate::op::Boundary;

pub use device::{BoxCopy, DevicePiece, DevicePlan, DeviceStep, device_plan, device_plan_of};
pub use geometry::{InputPart, input_parts};
pub use run::{Piece, crop, run_stencil};
pub(crate) use run::{STREAM_CHUNK_BYTES, band_rows_of};

/// One fused stencil region, bound to no chunk in particular.
#[derive(Clone, Debug)]
pub struct StencilKernel {
    /// What lies beyond each edge of the array, per axis.
    pub boundary: Vec<Boundary>,
    /// Cells around the output chunk held in the padded layout, per axis.
    pub halo: Vec<usize>,
    /// Per stage input: how far around the output chunk it is read, per axis.
    pub inputs: Vec<Vec<usize>>,
    /// Computed in order; the last one is the output (radius zero).
    pub levels: Vec<Level>,
}

/// One field computed by the kernel.
#[derive(Clone, Debug)]
pub struct Level {
    pub exe: Arc<Executable>,
    /// How far around the output chunk this field is needed, per axis.
    pub radius: Vec<usize>,
    /// Per program input: the field it reads (stage inputs first, then
    /// levels in order) and at which offset.
    pub reads: Vec<Read>,
    /// Cells near the array's edges that keep another field's value.
    pub keep: Option<Keep>,
}

impl Level {
    /// The dtype of the field this level computes.
    pub fn dtype(&self) -> crate::DType {
        let p = &self.exe.program;
        p.dtypes
            .get(p.root as usize)
            .copied()
            .unwrap_or(crate::DType::F64)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    pub field: u32,
    pub offset: Vec<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keep {
    pub field: u32,
    pub depth: Vec<usize>,
}

impl StencilKernel {
    pub fn ndim(&self) -> usize {
        self.halo.len()
    }

    /// Radius of every field: stage inputs, then levels.
    pub fn field_radius(&self, f: usize) -> Option<&[usize]> {
        if f < self.inputs.len() {
            self.inputs.get(f).map(Vec::as_slice)
        } else {
            self.levels
                .get(f - self.inputs.len())
                .map(|l| l.radius.as_slice())
        }
    }

    /// Checks the kernel's internal consistency (plans come from the network).
    pub fn validate(&self, input_dtypes: &[crate::DType]) -> Result<(), String> {
        let nd = self.ndim();
        if input_dtypes.len() != self.inputs.len() {
            return Err(format!(
                "a stencil with {} inputs given {}",
                self.inputs.len(),
                input_dtypes.len()
            ));
        }
        let field_dtype = |f: usize| -> Option<crate::DType> {
            match f.checked_sub(input_dtypes.len()) {
                None => input_dtypes.get(f).copied(),
                Some(j) => self.levels.get(j).map(|l| l.dtype()),
            }
        };
        if self.boundary.len() != nd {
            return Err(format!(
                "{} boundaries for a {nd}-d stencil",
                self.boundary.len()
            ));
        }
        if self.levels.is_empty() {
            return Err("a stencil kernel without levels".into());
        }
        let within = |r: &[usize]| r.len() == nd && r.iter().zip(&self.halo).all(|(a, h)| a <= h);
        for (i, r) in self.inputs.iter().enumerate() {
            if !within(r) {
                return Err(format!(
                    "input {i} is read {r:?} beyond a halo of {:?}",
                    self.halo
                ));
            }
        }
        let ni = self.inputs.len();
        for (j, level) in self.levels.iter().enumerate() {
            if !within(&level.radius) {
                return Err(format!(
                    "level {j} is needed {:?} beyond a halo of {:?}",
                    level.radius, self.halo
                ));
            }
            let p = &level.exe.program;
            if p.out_shape.len() != nd || level.reads.len() != p.inputs.len() {
                return Err(format!("level {j} does not match its program"));
            }
            let field_ok = |f: u32, need: &[usize]| -> Result<(), String> {
                let f = f as usize;
                if f >= ni + j {
                    return Err(format!("level {j} reads field {f}, not computed before it"));
                }
                let have = self.field_radius(f).unwrap_or(&[]);
                if have.len() != nd || have.iter().zip(need).any(|(h, n)| h < n) {
                    return Err(format!(
                        "level {j} reads field {f} {need:?} around the chunk, which holds only {have:?}"
                    ));
                }
                Ok(())
            };
            for (k, read) in level.reads.iter().enumerate() {
                if read.offset.len() != nd {
                    return Err(format!("level {j} reads at offset {:?}", read.offset));
                }
                let need: Vec<usize> = level
                    .radius
                    .iter()
                    .zip(&read.offset)
                    .map(|(&r, &o)| r + o.unsigned_abs() as usize)
                    .collect();
                field_ok(read.field, &need)?;
                if field_dtype(read.field as usize) != Some(p.inputs[k].dtype) {
                    return Err(format!(
                        "level {j} reads field {} as the wrong dtype",
                        read.field
                    ));
                }
            }
            if let Some(keep) = &level.keep {
                if keep.depth.len() != nd {
                    return Err(format!("level {j} keeps edges of depth {:?}", keep.depth));
                }
                field_ok(keep.field, &level.radius)?;
                if field_dtype(keep.field as usize) != Some(level.dtype()) {
                    return Err(format!("level {j} keeps edges of a field of another dtype"));
                }
            }
        }
        if self
            .levels
            .last()
            .is_some_and(|l| l.radius.iter().any(|&r| r > 0))
        {
            return Err("the last level of a stencil must be the output chunk itself".into());
        }
        Ok(())
    }
}
