//! A stencil task as steps over device buffers: every field of the task in
//! one padded layout (the whole chunk as one band), the stage inputs copied
//! into it box by box from their chunks, each level an elementwise kernel
//! over windows of those buffers, and the cells a level keeps or takes from
//! its boundary rule as lists of element moves. A device runs the steps in
//! order with the fields in its own memory, reading the input chunks from
//! the copies it keeps of them (the previous stencil stage's results stay
//! there), and sends back only the output chunk's cells.
//! [`DevicePlan::run_on_host`] runs the same steps on the CPU: the reference
//! a device is checked against, itself checked against [`super::run_stencil`].

use std::sync::Arc;

use crate::buffer::{Buffer, Chunk};
use crate::dtype::{DType, Value};
use crate::error::Result;
use crate::exec::Operand;
use crate::kernel::{Bound, Executable};
use crate::op::Boundary;
use crate::shape;

use super::StencilKernel;
use super::run::{
    GhostMove, Layout, Piece, append_box, copy_box, ghost_moves, ghost_rules, internal, kept_spans,
    layout, level_box, out_slice, piece_boxes, read_at, with_room,
};

/// A stencil task for a device. Buffers ("slots") all hold `len` elements;
/// a field lives in one slot, and a slot is reused once its field's last
/// reader ran. Cells of a slot no step writes hold anything (a kept or
/// ghost cell never reads them into a result), as on the CPU.
#[derive(Debug)]
pub struct DevicePlan {
    /// Each slot's dtype.
    pub slots: Vec<DType>,
    /// Elements of every slot (the padded layout and its guards).
    pub len: usize,
    /// The chunks (or boxes of chunks) of the stage inputs that
    /// [`DeviceStep::Place`] steps read, each once.
    pub sources: Vec<Arc<Chunk>>,
    pub steps: Vec<DeviceStep>,
    /// The slot holding the output chunk's cells after the last step.
    pub result: u32,
    /// Where the chunk's first cell lies in the result slot.
    chunk_at: usize,
    strides: Vec<usize>,
    local: Vec<usize>,
}

/// A box of `extent` copied between two row-major buffers: its first cell
/// at `from` in the source (of `from_strides`), at `to` in the destination
/// (of `to_strides`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoxCopy {
    pub extent: Vec<usize>,
    pub from: usize,
    pub from_strides: Vec<usize>,
    pub to: usize,
    pub to_strides: Vec<usize>,
}

impl BoxCopy {
    /// One past the last element the box reads in its source, and writes in
    /// its destination (0 for an empty box).
    pub fn ends(&self) -> (usize, usize) {
        if self.extent.contains(&0) {
            return (0, 0);
        }
        let end = |at: usize, strides: &[usize]| {
            at + self
                .extent
                .iter()
                .zip(strides)
                .map(|(e, s)| (e - 1) * s)
                .sum::<usize>()
                + 1
        };
        (
            end(self.from, &self.from_strides),
            end(self.to, &self.to_strides),
        )
    }

    /// Cells in the box.
    pub fn cells(&self) -> usize {
        shape::size(&self.extent)
    }
}

/// One step of a [`DevicePlan`]; each reads what the steps before it wrote.
#[derive(Debug)]
pub enum DeviceStep {
    /// A box of source `source` (a stage input's chunk) copied into slot `to`.
    Place { source: u32, to: u32, copy: BoxCopy },
    /// `exe` over a box of `shape` whose first cell is at global `origin`:
    /// the box's element `i` reads input `k` at `reads[k].1 + i` of slot
    /// `reads[k].0`, and is written at `out.1 + i` of slot `out.0` (a slot
    /// no input reads).
    Map {
        exe: Arc<Executable>,
        origin: Vec<i64>,
        shape: Vec<usize>,
        reads: Vec<(u32, usize)>,
        out: (u32, usize),
    },
    /// `to[dst] = from[src]` for every `[src, dst]`. Where `from == to` no
    /// `dst` is also a `src`, so the moves may run in any order.
    Copy {
        from: u32,
        to: u32,
        pairs: Vec<[u32; 2]>,
    },
    /// Every position `at` of `slot` set to `value` (of the slot's dtype).
    Fill {
        slot: u32,
        at: Vec<u32>,
        value: Value,
    },
}

/// Slots by field, reused after a field's last reader.
struct Slots {
    dtypes: Vec<DType>,
    free: Vec<u32>,
}

impl Slots {
    fn take(&mut self, dtype: DType) -> u32 {
        if let Some(i) = self
            .free
            .iter()
            .position(|&s| self.dtypes[s as usize] == dtype)
        {
            return self.free.swap_remove(i);
        }
        self.dtypes.push(dtype);
        (self.dtypes.len() - 1) as u32
    }
}

/// The plan of output chunk (`origin`, `local`) of an array of `shape`, from
/// the pieces of every stage input (as [`super::run_stencil`] takes them).
/// `Ok(None)` where the layout holds more elements than 32-bit positions
/// address.
pub fn device_plan(
    k: &StencilKernel,
    shape: &[usize],
    origin: &[usize],
    local: &[usize],
    inputs: &[Vec<Piece<'_>>],
    input_dtypes: &[DType],
) -> Result<Option<DevicePlan>> {
    let pieces: Vec<Vec<DevicePiece<'_>>> = inputs
        .iter()
        .map(|list| list.iter().map(DevicePiece::of).collect())
        .collect();
    device_plan_of(k, shape, origin, local, &pieces, input_dtypes)
}

/// A stencil input piece as a device plan reads it: where it lies, and its
/// chunk (values wherever they are: a chunk left on the device by the
/// previous stage is never read back) or host data.
#[derive(Clone, Debug)]
pub struct DevicePiece<'a> {
    /// Global coordinate of the piece's first element.
    pub lo: Vec<usize>,
    pub values: Operand<'a>,
}

impl<'a> DevicePiece<'a> {
    /// A host piece: its chunk where its data is that whole chunk's.
    pub fn of(p: &'a Piece<'a>) -> DevicePiece<'a> {
        let whole = p.chunk.filter(|c| {
            c.shape == p.shape
                && c.host_cols()
                    .and_then(<[_]>::first)
                    .is_some_and(|d| std::ptr::eq(d, p.data))
        });
        DevicePiece {
            lo: p.lo.clone(),
            values: match whole.map(Operand::of_chunk) {
                Some(Ok(o)) => o,
                _ => Operand::plain(&p.shape, p.data),
            },
        }
    }
}

/// [`device_plan`] of pieces whose values may be on the device.
pub fn device_plan_of(
    k: &StencilKernel,
    shape: &[usize],
    origin: &[usize],
    local: &[usize],
    inputs: &[Vec<DevicePiece<'_>>],
    input_dtypes: &[DType],
) -> Result<Option<DevicePlan>> {
    let nd = k.ndim();
    if shape.len() != nd
        || origin.len() != nd
        || local.len() != nd
        || inputs.len() != k.inputs.len()
        || input_dtypes.len() != k.inputs.len()
    {
        return Err(internal("stencil task does not match its kernel"));
    }
    let rules = ghost_rules(k);
    let lay = layout(k, &rules, shape, origin, local);
    let len = shape::size(&lay.padded) + 2 * lay.guard;
    if u32::try_from(len).is_err() {
        return Ok(None);
    }
    let geometry = (shape, origin, local);
    let mut slots = Slots {
        dtypes: Vec::new(),
        free: Vec::new(),
    };
    let mut sources = Vec::new();
    let mut steps = Vec::new();
    let mut field_slot: Vec<u32> = Vec::with_capacity(inputs.len() + k.levels.len());
    for (i, pieces) in inputs.iter().enumerate() {
        let slot = slots.take(input_dtypes[i]);
        field_slot.push(slot);
        let at = Placed {
            lay: &lay,
            rules: &rules,
            geometry,
            len,
        };
        let dtype = input_dtypes[i];
        steps.extend(input_steps(k, i, &at, pieces, (slot, dtype), &mut sources)?);
        // Its cells beyond the array's edges, from the boundary rule.
        ghost_steps(
            &lay,
            geometry,
            &k.inputs[i],
            &rules,
            (slot, dtype),
            len,
            &mut steps,
        )?;
    }
    let ni = k.inputs.len();
    let last_use = last_uses(k);
    let mut live = vec![true; ni + k.levels.len()];
    let clip_rows = k.boundary[0] != Boundary::Periodic;
    for (j, level) in k.levels.iter().enumerate() {
        let out = slots.take(level.dtype());
        let at = Placed {
            lay: &lay,
            rules: &rules,
            geometry,
            len,
        };
        level_steps(level, &at, clip_rows, (&field_slot, out), &mut steps)?;
        field_slot.push(out);
        for f in 0..ni + j {
            if live[f] && last_use[f] <= j {
                live[f] = false;
                slots.free.push(field_slot[f]);
            }
        }
    }
    let result = *field_slot
        .last()
        .ok_or_else(|| internal("stencil without a result"))?;
    let chunk_at = lay.pos(
        &(0..nd)
            .map(|d| (origin[d] as i64 - lay.start[d]) as usize)
            .collect::<Vec<_>>(),
    );
    Ok(Some(DevicePlan {
        slots: slots.dtypes,
        len,
        sources,
        steps,
        result,
        chunk_at,
        strides: lay.strides,
        local: local.to_vec(),
    }))
}

/// Where a task's fields lie: their layout, ghost rules, the chunk, and
/// every slot's length.
struct Placed<'a> {
    lay: &'a Layout,
    rules: &'a [Boundary],
    geometry: (&'a [usize], &'a [usize], &'a [usize]),
    len: usize,
}

/// The steps placing stage input `i`'s pieces into its slot (of `dtype`):
/// a box per piece and periodic image, read from the piece's chunk (added
/// to `sources` once). A piece that is no chunk's data becomes a chunk of
/// its own.
fn input_steps(
    k: &StencilKernel,
    i: usize,
    at: &Placed<'_>,
    pieces: &[DevicePiece<'_>],
    (slot, dtype): (u32, DType),
    sources: &mut Vec<Arc<Chunk>>,
) -> Result<Vec<DeviceStep>> {
    let mut steps = Vec::new();
    for p in pieces {
        let v = &p.values;
        if v.len != shape::size(v.shape) || v.dtype != dtype {
            return Err(internal("stencil input piece of the wrong shape or dtype"));
        }
        let chunk = match v.chunk() {
            Some(c) => c.clone(),
            None => Arc::new(Chunk::array(v.shape.to_vec(), v.data()?.clone())),
        };
        let source = match sources.iter().position(|s| Arc::ptr_eq(s, &chunk)) {
            Some(s) => s,
            None => {
                sources.push(chunk);
                sources.len() - 1
            }
        } as u32;
        let from_strides = shape::strides(v.shape);
        piece_boxes(
            at.lay,
            at.geometry,
            (&k.inputs[i], &k.boundary),
            (&p.lo, v.shape),
            |from, to, extent| {
                let copy = BoxCopy {
                    extent: extent.to_vec(),
                    from,
                    from_strides: from_strides.clone(),
                    to,
                    to_strides: at.lay.strides.clone(),
                };
                let (read_end, write_end) = copy.ends();
                if read_end > v.len || write_end > at.len {
                    return Err(internal("stencil input placed outside its slot"));
                }
                steps.push(DeviceStep::Place {
                    source,
                    to: slot,
                    copy,
                });
                Ok(())
            },
        )?;
    }
    Ok(steps)
}

/// Per field (stage inputs, then levels), the last level that reads it.
fn last_uses(k: &StencilKernel) -> Vec<usize> {
    let mut last_use = vec![0usize; k.inputs.len() + k.levels.len()];
    for (j, level) in k.levels.iter().enumerate() {
        for r in &level.reads {
            if let Some(u) = last_use.get_mut(r.field as usize) {
                *u = j;
            }
        }
        if let Some(u) = level
            .keep
            .as_ref()
            .and_then(|keep| last_use.get_mut(keep.field as usize))
        {
            *u = j;
        }
    }
    last_use
}

/// A level's steps into slot `out`: its kernel over its box, the cells it
/// keeps, its ghost cells.
fn level_steps(
    level: &super::Level,
    at: &Placed<'_>,
    clip_rows: bool,
    (field_slot, out): (&[u32], u32),
    steps: &mut Vec<DeviceStep>,
) -> Result<()> {
    let (lay, len) = (at.lay, at.len);
    let slot_of = |f: u32| {
        field_slot
            .get(f as usize)
            .copied()
            .ok_or_else(|| internal("stencil level reads a field computed after it"))
    };
    let lb = level_box(level, lay, at.geometry, clip_rows);
    let n = shape::size(&lb.shape);
    let mut reads = Vec::with_capacity(level.reads.len());
    for read in &level.reads {
        let w = usize::try_from(read_at(lay, lb.start, read))
            .ok()
            .filter(|w| w + n <= len)
            .ok_or_else(|| internal("stencil window outside its field"))?;
        reads.push((slot_of(read.field)?, w));
    }
    steps.push(DeviceStep::Map {
        exe: level.exe.clone(),
        origin: lb.origin,
        shape: lb.shape,
        reads,
        out: (out, lay.guard + lb.start),
    });
    if let Some(keep) = &level.keep {
        let mut pairs = Vec::new();
        kept_spans(lay, at.geometry, &level.radius, &keep.depth, |p, n| {
            pairs.extend((p..p + n).map(|p| [p as u32, p as u32]));
            (p + n <= len).then_some(())
        })
        .ok_or_else(|| internal("stencil kept edges out of range"))?;
        if !pairs.is_empty() {
            steps.push(DeviceStep::Copy {
                from: slot_of(keep.field)?,
                to: out,
                pairs,
            });
        }
    }
    if level.radius.iter().any(|&r| r > 0) {
        ghost_steps(
            lay,
            at.geometry,
            &level.radius,
            at.rules,
            (out, level.dtype()),
            len,
            steps,
        )?;
    }
    Ok(())
}

/// A level's ghost cells as steps: per axis, one step of copies or of
/// constants (an axis has one rule), after the previous axis's.
fn ghost_steps(
    lay: &Layout,
    geometry: (&[usize], &[usize], &[usize]),
    radius: &[usize],
    rules: &[Boundary],
    (slot, dtype): (u32, DType),
    len: usize,
    steps: &mut Vec<DeviceStep>,
) -> Result<()> {
    let nd = radius.len();
    let mut pairs: Vec<Vec<[u32; 2]>> = vec![Vec::new(); nd];
    let mut fills: Vec<(Vec<u32>, f64)> = vec![(Vec::new(), 0.0); nd];
    let outside = || internal("stencil ghost cells outside their buffer");
    ghost_moves(lay, geometry, radius, rules, |d, m| {
        match m {
            GhostMove::Copy { from, to, len: n } => {
                if from.max(to) + n > len {
                    return Err(outside());
                }
                pairs[d].extend((0..n).map(|k| [(from + k) as u32, (to + k) as u32]));
            }
            GhostMove::Fill { at, len: n, value } => {
                if at + n > len {
                    return Err(outside());
                }
                fills[d].0.extend((at..at + n).map(|p| p as u32));
                fills[d].1 = value;
            }
        }
        Ok(())
    })?;
    for (copies, (at, value)) in pairs.into_iter().zip(fills) {
        if !copies.is_empty() {
            steps.push(DeviceStep::Copy {
                from: slot,
                to: slot,
                pairs: copies,
            });
        }
        if !at.is_empty() {
            steps.push(DeviceStep::Fill {
                slot,
                at,
                value: Value::F64(value).cast(dtype),
            });
        }
    }
    Ok(())
}

impl DevicePlan {
    /// The dtype of the result.
    pub fn dtype(&self) -> DType {
        self.slots
            .get(self.result as usize)
            .copied()
            .unwrap_or(DType::F64)
    }

    /// The output chunk's shape.
    pub fn chunk_shape(&self) -> &[usize] {
        &self.local
    }

    /// Where the output chunk lies in the result slot: the box a device
    /// copies out of it into a buffer of the chunk's own (row-major) layout.
    pub fn result_box(&self) -> BoxCopy {
        BoxCopy {
            extent: self.local.clone(),
            from: self.chunk_at,
            from_strides: self.strides.clone(),
            to: 0,
            to_strides: shape::strides(&self.local),
        }
    }

    /// Runs the steps on the CPU, in order: the output chunk's cells.
    pub fn run_on_host(&self) -> Result<Buffer> {
        let mut bufs: Vec<Buffer> = self
            .slots
            .iter()
            .map(|&d| Buffer::zeros(d, self.len))
            .collect();
        for step in &self.steps {
            match step {
                DeviceStep::Map {
                    exe,
                    origin,
                    shape: box_shape,
                    reads,
                    out: (out, at),
                } => {
                    let mut target =
                        std::mem::replace(slot_mut(&mut bufs, *out)?, Buffer::Bool(Vec::new()));
                    let mut windows = Vec::with_capacity(reads.len());
                    for &(s, w) in reads {
                        let b = bufs
                            .get(s as usize)
                            .ok_or_else(|| internal("a step reads a slot beyond the plan"))?;
                        windows.push((b, w));
                    }
                    let n = shape::size(box_shape);
                    Bound::windows(exe, origin, box_shape, &windows)?.run_map_into(out_slice(
                        &mut target,
                        *at,
                        n,
                    )?)?;
                    *slot_mut(&mut bufs, *out)? = target;
                }
                DeviceStep::Copy { from, to, pairs } if from == to => {
                    move_cells(slot_mut(&mut bufs, *to)?, None, pairs)?;
                }
                DeviceStep::Copy { from, to, pairs } => {
                    let mut target =
                        std::mem::replace(slot_mut(&mut bufs, *to)?, Buffer::Bool(Vec::new()));
                    let src = bufs
                        .get(*from as usize)
                        .ok_or_else(|| internal("a step reads a slot beyond the plan"))?;
                    move_cells(&mut target, Some(src), pairs)?;
                    *slot_mut(&mut bufs, *to)? = target;
                }
                DeviceStep::Fill { slot, at, value } => {
                    fill_cells(slot_mut(&mut bufs, *slot)?, at, *value)?;
                }
                DeviceStep::Place { source, to, copy } => {
                    let src = self
                        .sources
                        .get(*source as usize)
                        .ok_or_else(|| internal("a step reads a source beyond the plan"))?;
                    copy_box(
                        src.data()?,
                        &copy.from_strides,
                        copy.from,
                        slot_mut(&mut bufs, *to)?,
                        &copy.to_strides,
                        copy.to,
                        &copy.extent,
                    )?;
                }
            }
        }
        let result = bufs
            .get(self.result as usize)
            .ok_or_else(|| internal("a plan's result beyond its slots"))?;
        let mut out = with_room(self.dtype(), shape::size(&self.local));
        append_box(&mut out, result, &self.strides, self.chunk_at, &self.local)?;
        Ok(out)
    }
}

fn slot_mut(bufs: &mut [Buffer], s: u32) -> Result<&mut Buffer> {
    bufs.get_mut(s as usize)
        .ok_or_else(|| internal("a step writes a slot beyond the plan"))
}

/// `dst[d] = src[s]` for each `[s, d]`; `src` None: within `dst`.
fn move_cells(dst: &mut Buffer, src: Option<&Buffer>, pairs: &[[u32; 2]]) -> Result<()> {
    fn moves<T: Copy>(d: &mut [T], s: Option<&[T]>, pairs: &[[u32; 2]]) -> Option<()> {
        for &[a, b] in pairs {
            let v = match s {
                Some(s) => *s.get(a as usize)?,
                None => *d.get(a as usize)?,
            };
            *d.get_mut(b as usize)? = v;
        }
        Some(())
    }
    let ok = match (dst, src) {
        (Buffer::Bool(d), None) => moves(d, None, pairs),
        (Buffer::I32(d), None) => moves(d, None, pairs),
        (Buffer::I64(d), None) => moves(d, None, pairs),
        (Buffer::F32(d), None) => moves(d, None, pairs),
        (Buffer::F64(d), None) => moves(d, None, pairs),
        (Buffer::C128(d), None) => moves(d, None, pairs),
        (Buffer::Bool(d), Some(Buffer::Bool(s))) => moves(d, Some(s), pairs),
        (Buffer::I32(d), Some(Buffer::I32(s))) => moves(d, Some(s), pairs),
        (Buffer::I64(d), Some(Buffer::I64(s))) => moves(d, Some(s), pairs),
        (Buffer::F32(d), Some(Buffer::F32(s))) => moves(d, Some(s), pairs),
        (Buffer::F64(d), Some(Buffer::F64(s))) => moves(d, Some(s), pairs),
        (Buffer::C128(d), Some(Buffer::C128(s))) => moves(d, Some(s), pairs),
        _ => None,
    };
    ok.ok_or_else(|| internal("a move outside its slots or between dtypes"))
}

fn fill_cells(buf: &mut Buffer, at: &[u32], value: Value) -> Result<()> {
    fn set<T: Copy>(d: &mut [T], at: &[u32], v: T) -> Option<()> {
        for &p in at {
            *d.get_mut(p as usize)? = v;
        }
        Some(())
    }
    let ok = match (buf, value) {
        (Buffer::Bool(d), Value::Bool(v)) => set(d, at, v),
        (Buffer::I32(d), Value::I32(v)) => set(d, at, v),
        (Buffer::I64(d), Value::I64(v)) => set(d, at, v),
        (Buffer::F32(d), Value::F32(v)) => set(d, at, v),
        (Buffer::F64(d), Value::F64(v)) => set(d, at, v),
        (Buffer::C128(d), Value::C128(v)) => set(d, at, v),
        _ => None,
    };
    ok.ok_or_else(|| internal("a fill outside its slot or of another dtype"))
}
