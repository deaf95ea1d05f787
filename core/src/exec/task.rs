//! Runs one task: a stage's computation for one output chunk, given its input chunks.

use crate::exec::offload::Operand;
use std::sync::Arc;

use crate::buffer::{Buffer, Chunk};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::exec::{boxes, scan};
use crate::kernel::{Bound, OutSlice, reduce};
use crate::op::ReduceSpec;
use crate::op::{HostArray, Remap};
use crate::plan::{ChunkKey, Finalize, Plan, ScanPhase, StageKind, chunk_of};
use crate::shape::{self, grid_index};

/// Computes chunk `key` of a `Map` stage straight into its rows of the result.
/// An `offload` (a GPU) is offered the kernel first; its result is copied
/// into the rows.
pub fn run_task_into(
    plan: &Plan,
    key: ChunkKey,
    inputs: &[Arc<Chunk>],
    rows: Vec<OutSlice<'_>>,
    offload: Option<&dyn crate::exec::Offload>,
) -> Result<()> {
    run_task_into_or_back(plan, key, inputs, rows, offload).map_err(|(e, _)| e)
}

/// [`run_task_into`], handing the rows back with an error that came
/// before any of them was written (an input a GPU cannot give back): the
/// task can run again into them.
#[allow(clippy::type_complexity)]
pub fn run_task_into_or_back<'r>(
    plan: &Plan,
    key: ChunkKey,
    inputs: &[Arc<Chunk>],
    rows: Vec<OutSlice<'r>>,
    offload: Option<&dyn crate::exec::Offload>,
) -> std::result::Result<(), (Error, Option<Vec<OutSlice<'r>>>)> {
    let StageKind::Map(exe) = &plan.stage(key.stage).kind else {
        return Err((
            internal("only map tasks write into caller memory"),
            Some(rows),
        ));
    };
    let origin = plan.chunk_origin(key);
    let local = plan.chunk_shape(key);
    let ins = match kernel_inputs(plan, key, exe, inputs) {
        Ok(ins) => ins,
        Err(e) => return Err((e, Some(rows))),
    };
    let operands = match operands_of(&ins) {
        Ok(o) => o,
        Err(e) => return Err((e, Some(rows))),
    };
    if let Some(data) = offload.and_then(|o| o.run_map(exe, &origin, &local, &operands)) {
        return write_rows(&data, rows).map_err(|e| (e, None));
    }
    let bound = views_of(&ins).and_then(|views| Bound::new(exe, &origin, &local, &views));
    match bound {
        Ok(b) => b
            .streaming(streams(plan, key))
            .run_map_rows(rows)
            .map_err(|e| (e, None)),
        Err(e) => Err((e, Some(rows))),
    }
}

/// Results at least this large may be written past the caches.
const STREAM_RESULT_BYTES: usize = 8 << 20;

/// Whether tasks writing this array into one row-major result interleave
/// their writes: the array is large, and its chunks split its rows into
/// runs shorter than a huge page, so every page is shared by several tasks.
/// Such a result is mapped up front, in parallel (see
/// [`crate::memory::populate_parallel`]), and written with non-temporal
/// stores: each task writes a fraction of each page, long after the kernel
/// cleared it out of the cache. A result whose chunks are long contiguous
/// runs is better written fresh: every page is cleared just before one task
/// writes all of it, while it is still in cache.
pub fn writes_interleave(meta: &crate::op::Meta) -> bool {
    let size = meta.dtype.size();
    if shape::size(&meta.shape).saturating_mul(size) < STREAM_RESULT_BYTES {
        return false;
    }
    let chunk = meta.chunks.max_chunk();
    let mut run = size;
    for (c, n) in chunk.iter().zip(&meta.shape).rev() {
        run = run.saturating_mul(*c);
        if c != n {
            break;
        }
    }
    run < crate::memory::HUGE_PAGE
}

/// Whether a task writing into the caller's result streams its stores.
fn streams(plan: &Plan, key: ChunkKey) -> bool {
    writes_interleave(&plan.stage(key.stage).meta)
}

/// Copies a chunk's elements, in order, into its rows of a larger result.
fn write_rows(data: &Buffer, rows: Vec<OutSlice<'_>>) -> Result<()> {
    let mut at = 0;
    for row in rows {
        let n = match (row, data) {
            (OutSlice::Bool(r), Buffer::Bool(d)) => copy_run(r, d, at)?,
            (OutSlice::I32(r), Buffer::I32(d)) => copy_run(r, d, at)?,
            (OutSlice::I64(r), Buffer::I64(d)) => copy_run(r, d, at)?,
            (OutSlice::F32(r), Buffer::F32(d)) => copy_run(r, d, at)?,
            (OutSlice::F64(r), Buffer::F64(d)) => copy_run(r, d, at)?,
            (OutSlice::C128(r), Buffer::C128(d)) => copy_run(r, d, at)?,
            (r, d) => {
                return Err(internal(&format!(
                    "a {} chunk written into {} rows",
                    d.dtype(),
                    r.dtype()
                )));
            }
        };
        at += n;
    }
    match at == data.len() {
        true => Ok(()),
        false => Err(internal("a chunk of another size than its rows")),
    }
}

fn copy_run<T: Copy>(row: &mut [T], data: &[T], at: usize) -> Result<usize> {
    let src = data
        .get(at..at + row.len())
        .ok_or_else(|| internal("rows longer than their chunk"))?;
    row.copy_from_slice(src);
    Ok(row.len())
}

/// One input of a kernel: a chunk handed in, or the box of a stored array
/// the task read itself (a fused read).
enum KernelInput<'a> {
    Chunk(&'a Arc<Chunk>),
    Read(Vec<usize>, Buffer),
}

impl KernelInput<'_> {
    fn data(&self) -> Result<&Buffer> {
        match self {
            KernelInput::Chunk(c) => c.data(),
            KernelInput::Read(_, d) => Ok(d),
        }
    }
}

/// A kernel's inputs in program order, over the iteration space (`origin`,
/// `local`): the task's input chunks (several for an input chunked unlike the
/// kernel: their overlap is assembled into the box), with the boxes of its
/// fused reads.
fn kernel_inputs<'a>(
    plan: &Plan,
    key: ChunkKey,
    exe: &crate::kernel::Executable,
    inputs: &'a [Arc<Chunk>],
) -> Result<Vec<KernelInput<'a>>> {
    let p = &exe.program;
    let (space, origin, local) = plan
        .kernel_box(key)
        .ok_or_else(|| internal("kernel inputs of a task that runs no kernel"))?;
    let stage = plan.stage(key.stage);
    let mut fed = stage.inputs.iter();
    let mut chunks = inputs.iter();
    let mut reads = p.stored.iter().peekable();
    (0..p.inputs.len() as u32)
        .map(|k| match reads.next_if(|(i, _)| *i == k) {
            Some((_, s)) => {
                let spec = &p.inputs[k as usize];
                let (o, l) = boxes::needed_box(&spec.shape, &space, &origin, &local);
                let data = s.read_box(&o, &l)?;
                Ok(KernelInput::Read(l, data))
            }
            None => {
                let inp = *fed
                    .next()
                    .ok_or_else(|| internal("fewer input stages than the kernel reads"))?;
                let in_shape = &plan.stage(inp).meta.shape;
                let (lo, len) = boxes::needed_box(in_shape, &space, &origin, &local);
                box_input(plan, inp, &lo, len, &mut chunks)
            }
        })
        .collect()
}

/// The box `lo..lo + len` of stage `inp`, from the next of `chunks` (those
/// [`Plan::chunks_over`] lists): the chunk itself when it is exactly the box,
/// else the overlapping parts assembled.
fn box_input<'a>(
    plan: &Plan,
    inp: crate::plan::StageId,
    lo: &[usize],
    len: Vec<usize>,
    chunks: &mut impl Iterator<Item = &'a Arc<Chunk>>,
) -> Result<KernelInput<'a>> {
    let keys = plan.chunks_over(inp, lo, &len);
    let mut parts = Vec::with_capacity(keys.len());
    for key in &keys {
        let c = chunks
            .next()
            .ok_or_else(|| internal("fewer input chunks than the task reads"))?;
        parts.push((plan.chunk_origin(*key), c));
    }
    match parts.as_slice() {
        [(o, c)] if o.as_slice() == lo && c.shape == len => Ok(KernelInput::Chunk(c)),
        _ => {
            let parts: Vec<(Vec<usize>, &Chunk)> =
                parts.into_iter().map(|(o, c)| (o, c.as_ref())).collect();
            let dtype = plan.stage(inp).meta.dtype;
            let data = boxes::assemble(dtype, lo, &len, &parts)?;
            Ok(KernelInput::Read(len, data))
        }
    }
}

/// One task of a blocked scan (see [`crate::exec::scan`]).
fn scan_task(
    plan: &Plan,
    key: ChunkKey,
    op: crate::op::ReduceOp,
    axis: usize,
    phase: ScanPhase,
    inputs: &[Arc<Chunk>],
) -> Result<Buffer> {
    let stage = plan.stage(key.stage);
    let dtype = stage.meta.dtype;
    let local = plan.chunk_shape(key);
    match (phase, stage.inputs.as_slice(), inputs) {
        (ScanPhase::Local, [inp], _) => {
            let origin = plan.chunk_origin(key);
            let input = box_input(plan, *inp, &origin, local.clone(), &mut inputs.iter())?;
            let mut data = scan::to_dtype(input.data()?, dtype)?;
            scan::scan_in_place(op, &mut data, &local, axis)?;
            Ok(data)
        }
        (ScanPhase::Carry, _, []) => scan::next_carry(op, axis, dtype, &local, None),
        (ScanPhase::Carry, _, [carry, prev]) => {
            scan::next_carry(op, axis, dtype, &local, Some((carry, prev)))
        }
        (ScanPhase::Apply, _, [part, carry]) => scan::apply(op, axis, part, carry),
        _ => Err(internal("a scan task with unexpected inputs")),
    }
}

/// A matmul task: the product of its two blocks, as a partial sum over the
/// contracted axis (finalized at once when that axis has one chunk).
fn matmul_task(plan: &Plan, key: ChunkKey, dtype: DType, inputs: &[Arc<Chunk>]) -> Result<Chunk> {
    let blocks = plan.matmul_blocks(key);
    let [(ia, la, a_len), (ib, lb, b_len)] = blocks.as_slice() else {
        return Err(internal("a matmul task without its two blocks"));
    };
    let (m, k, n) = (a_len[0], a_len[1], b_len[1]);
    let mut chunks = inputs.iter();
    let a = box_input(plan, *ia, la, a_len.clone(), &mut chunks)?;
    let b = box_input(plan, *ib, lb, b_len.clone(), &mut chunks)?;
    let acc = crate::kernel::matmul::block_product(dtype, a.data()?, b.data()?, m, k, n)?;
    Ok(Chunk::new(vec![m, n, 1], vec![acc]))
}

/// A `map_blocks` task: the user function called on its input blocks.
fn map_blocks_task(
    plan: &Plan,
    key: ChunkKey,
    call: &crate::blocks::BlockCall,
    inputs: &[Arc<Chunk>],
) -> Result<Buffer> {
    let stage = plan.stage(key.stage);
    let boxes = plan.block_boxes(key);
    let mut chunks = inputs.iter();
    let mut held = Vec::with_capacity(boxes.len());
    let mut input_origins = Vec::with_capacity(boxes.len());
    for (inp, lo, len) in boxes {
        held.push(box_input(plan, inp, &lo, len, &mut chunks)?);
        input_origins.push(lo);
    }
    let views = views_of(&held)?;
    let refs: Vec<crate::blocks::BlockRef<'_>> = views
        .iter()
        .map(|&(shape, data)| crate::blocks::BlockRef { shape, data })
        .collect();
    let grid = stage.meta.chunks.grid();
    let info = crate::blocks::BlockInfo {
        index: grid_index(key.chunk as usize, &grid),
        grid,
        origin: plan.chunk_origin(key),
        shape: plan.chunk_shape(key),
        array_shape: stage.meta.shape.clone(),
        input_origins,
    };
    crate::blocks::call(call, &refs, &info, stage.meta.dtype)
}

/// The inputs as a device is handed them (see [`Operand`]).
fn operands_of<'a>(ins: &'a [KernelInput<'_>]) -> Result<Vec<Operand<'a>>> {
    ins.iter()
        .map(|i| match i {
            KernelInput::Chunk(c) => Operand::of_chunk(c),
            KernelInput::Read(shape, data) => Ok(Operand::plain(shape, data)),
        })
        .collect()
}

/// The inputs' values on the host (chunks only on a device are read back).
fn views_of<'a>(ins: &'a [KernelInput<'_>]) -> Result<Vec<(&'a [usize], &'a Buffer)>> {
    ins.iter()
        .map(|i| match i {
            KernelInput::Chunk(c) => Ok((c.shape.as_slice(), c.data()?)),
            KernelInput::Read(shape, data) => Ok((shape.as_slice(), data)),
        })
        .collect()
}

/// Computes chunk `key` of `plan` from its inputs (in [`Plan::task_inputs`]
/// order), and writes it to the stored arrays the plan sends this stage to.
pub fn run_task(plan: &Plan, key: ChunkKey, inputs: &[Arc<Chunk>]) -> Result<Arc<Chunk>> {
    run_task_with(plan, key, inputs, None)
}

/// [`run_task`], offering the task's elementwise kernel to `offload` (a GPU)
/// first.
pub fn run_task_with(
    plan: &Plan,
    key: ChunkKey,
    inputs: &[Arc<Chunk>],
    offload: Option<&dyn crate::exec::Offload>,
) -> Result<Arc<Chunk>> {
    let chunk = compute_task(plan, key, inputs, offload)?;
    for sink in plan.sinks_of(key.stage) {
        write_sink(plan, key, sink, &chunk)?;
    }
    Ok(chunk)
}

/// Writes one chunk of an output into its box of the stored array.
fn write_sink(
    plan: &Plan,
    key: ChunkKey,
    sink: &crate::storage::Sink,
    chunk: &Chunk,
) -> Result<()> {
    let (origin, local) = sink.place(&plan.chunk_origin(key), &chunk.shape);
    sink.target
        .write_box(&origin, &local, chunk.data()?)
        .map_err(|e| Error::Task {
            task: format!("write of chunk {} of stage {}", key.chunk, key.stage.0),
            message: e.to_string(),
        })
}

fn compute_task(
    plan: &Plan,
    key: ChunkKey,
    inputs: &[Arc<Chunk>],
    offload: Option<&dyn crate::exec::Offload>,
) -> Result<Arc<Chunk>> {
    let stage = plan.stage(key.stage);
    let origin = plan.chunk_origin(key);
    let local = plan.chunk_shape(key);
    let chunk = match &stage.kind {
        StageKind::Source(h) => Chunk::array(local.clone(), copy_box(h, &origin, &local)),
        StageKind::Read(s) => Chunk::array(local.clone(), s.read_box(&origin, &local)?),
        StageKind::Held(h) => {
            return h
                .chunks
                .get(key.chunk as usize)
                .cloned()
                .ok_or_else(|| internal("a persisted chunk beyond its array"));
        }
        StageKind::Remote(_) => {
            return Err(internal(
                "a remote source is fetched from the client by the worker, not computed",
            ));
        }
        // The persisted chunk, handed in as the task's only input.
        StageKind::Persisted { job, .. } => match inputs {
            [only] => return Ok(only.clone()),
            _ => {
                return Err(Error::Invalid(format!(
                    "this array is kept on a cluster (job {job}): compute it with the client that persisted it"
                )));
            }
        },
        StageKind::Map(exe) => {
            let ins = kernel_inputs(plan, key, exe, inputs)?;
            let operands = operands_of(&ins)?;
            match offload.and_then(|o| o.run_map_chunk(exe, &origin, &local, &operands)) {
                Some(chunk) => {
                    if chunk.shape != local || !chunk.consistent() {
                        return Err(internal("a device's chunk of the wrong size"));
                    }
                    return Ok(chunk);
                }
                None => {
                    let views = views_of(&ins)?;
                    Chunk::array(
                        local.clone(),
                        Bound::new(exe, &origin, &local, &views)?.run_map()?,
                    )
                }
            }
        }
        StageKind::Partial {
            exe,
            spec,
            finalize,
            ..
        } => {
            let (_, rorigin, rshape) = plan
                .kernel_box(key)
                .ok_or_else(|| internal("a partial reduction without its region"))?;
            let ins = kernel_inputs(plan, key, exe, inputs)?;
            let operands = operands_of(&ins)?;
            let folded = match offload {
                Some(o) => device_fold(o, exe, spec, &rorigin, &rshape, &operands)?,
                None => DeviceFold::NotThisOne,
            };
            // A fold the device tried and gave back is the CPU's, whole: its
            // map would meet what stopped the fold, and count as a second try.
            let offloaded = match folded {
                DeviceFold::NotThisOne => {
                    offload.and_then(|o| o.run_map(exe, &rorigin, &rshape, &operands))
                }
                _ => None,
            };
            let state = match (folded, offloaded) {
                (DeviceFold::Folded(state), _) => state,
                (_, offloaded) => match offloaded {
                    // The kernel's values from the device, reduced here exactly
                    // as the CPU reduces its own (same values, same state).
                    Some(values) => {
                        let read = values_of(exe)?;
                        let data = [(rshape.as_slice(), &values)];
                        let bound = Bound::new(&read, &rorigin, &rshape, &data)?.interpreted();
                        reduce::run_partial(&bound, spec)?
                    }
                    None => {
                        let views = views_of(&ins)?;
                        reduce::run_partial(&Bound::new(exe, &rorigin, &rshape, &views)?, spec)?
                    }
                },
            };
            match finalize {
                Some(f) => finish(spec, f, &state, &origin, &local)?,
                None => state,
            }
        }
        StageKind::Combine { spec, finalize, .. } => {
            let parts: Vec<&Chunk> = inputs.iter().map(|c| c.as_ref()).collect();
            let state = reduce::combine(spec, &parts)?;
            match finalize {
                Some(f) => finish(spec, f, &state, &origin, &local)?,
                None => state,
            }
        }
        StageKind::Remap(map) => {
            let in_key = plan.task_inputs(key);
            remap_chunk(
                plan,
                stage.meta.dtype,
                map,
                &origin,
                &local,
                &in_key,
                inputs,
            )?
        }
        StageKind::Concat { .. } => match plan.concat_source(key) {
            None => Chunk::array(
                local.clone(),
                Buffer::zeros(stage.meta.dtype, shape::size(&local)),
            ),
            Some((inp, lo, len)) => {
                let keys = plan.task_inputs(key);
                if keys.len() != inputs.len() {
                    return Err(internal("concatenate chunk with missing sources"));
                }
                let parts: Vec<(Vec<usize>, &Chunk)> = keys
                    .iter()
                    .zip(inputs)
                    .map(|(k, c)| (plan.chunk_origin(*k), c.as_ref()))
                    .collect();
                match parts.as_slice() {
                    // Chunked alike off the axis: the input's chunk, unchanged.
                    [(o, c)] if *o == lo && c.shape == len => return Ok(inputs[0].clone()),
                    _ => {
                        let dtype = plan.stage(inp).meta.dtype;
                        Chunk::array(len.clone(), boxes::assemble(dtype, &lo, &len, &parts)?)
                    }
                }
            }
        },
        StageKind::MatMul {
            dtype,
            spec,
            finalize,
            ..
        } => {
            let state = matmul_task(plan, key, *dtype, inputs)?;
            match finalize {
                Some(f) => finish(spec, f, &state, &origin, &local)?,
                None => state,
            }
        }
        StageKind::MapBlocks(call) => {
            Chunk::array(local.clone(), map_blocks_task(plan, key, call, inputs)?)
        }
        StageKind::Scan { op, axis, phase } => Chunk::array(
            local.clone(),
            scan_task(plan, key, *op, *axis, *phase, inputs)?,
        ),
        StageKind::Stencil(k) => {
            match stencil_chunk(plan, key, k, (&origin, &local), inputs, offload)? {
                Computed::OnDevice(chunk) => {
                    return checked(chunk, &local);
                }
                Computed::OnCpu(data) => Chunk::array(local.clone(), data),
            }
        }
        StageKind::Reshape => {
            let in_key = plan.task_inputs(key);
            reshape_chunk(
                plan,
                stage.meta.dtype,
                &origin,
                &local,
                &stage.meta.shape,
                &in_key,
                inputs,
            )?
        }
    };
    let want = shape::size(&chunk.shape);
    if chunk.cols()?.iter().any(|c| c.len() != want) {
        return Err(internal("task produced a chunk of the wrong size"));
    }
    Ok(Arc::new(chunk))
}

/// A stencil task's output chunk, as the device made it or the CPU's cells.
enum Computed {
    OnDevice(Arc<Chunk>),
    OnCpu(Buffer),
}

/// `chunk` when it has the shape `local` and one column of its size.
fn checked(chunk: Arc<Chunk>, local: &[usize]) -> Result<Arc<Chunk>> {
    if chunk.shape != local || chunk.col_count() != 1 || !chunk.consistent() {
        return Err(internal("a device produced a chunk of the wrong size"));
    }
    Ok(chunk)
}

/// Runs a stencil task, on `offload` where it takes it. Each input is either
/// the whole input chunk or just the box of it the task reads (what a
/// worker fetches from a peer).
fn stencil_chunk(
    plan: &Plan,
    key: ChunkKey,
    k: &crate::stencil::StencilKernel,
    (origin, local): (&[usize], &[usize]),
    inputs: &[Arc<Chunk>],
    offload: Option<&dyn crate::exec::Offload>,
) -> Result<Computed> {
    let stage = plan.stage(key.stage);
    let (placed, dtypes) = stencil_inputs(plan, key, k, inputs)?;
    let shape = &stage.meta.shape;
    if let Some(o) = offload.filter(|o| o.takes_stencils(k)) {
        // The inputs' values stay wherever they are (a device's own chunks
        // are never read back to be placed there again).
        let pieces = placed
            .iter()
            .map(|list| {
                list.iter()
                    .map(|(lo, c)| {
                        Ok(crate::stencil::DevicePiece {
                            lo: lo.clone(),
                            values: Operand::of_chunk(c)?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        match crate::stencil::device_plan_of(k, shape, origin, local, &pieces, &dtypes) {
            Ok(Some(p)) => {
                if let Some(chunk) = o.run_stencil(&p) {
                    return Ok(Computed::OnDevice(chunk));
                }
            }
            Ok(None) => {}
            // A device never fails a task the CPU can compute.
            Err(e) => tracing::warn!("stencil task on the device: {e}; computing it on the CPU"),
        }
    }
    let pieces = placed
        .iter()
        .map(|list| {
            list.iter()
                .map(|(lo, c)| {
                    Ok(crate::stencil::Piece {
                        lo: lo.clone(),
                        shape: c.shape.clone(),
                        data: c.data()?,
                        chunk: Some(*c),
                    })
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    crate::stencil::run_stencil(k, shape, origin, local, &pieces, &dtypes).map(Computed::OnCpu)
}

/// A stencil task's inputs, each chunk with where its first element lies.
type Placed<'a> = Vec<Vec<(Vec<usize>, &'a Arc<Chunk>)>>;

/// A stencil task's input chunks (where each lies in its array), and
/// their dtypes.
fn stencil_inputs<'a>(
    plan: &Plan,
    key: ChunkKey,
    k: &crate::stencil::StencilKernel,
    inputs: &'a [Arc<Chunk>],
) -> Result<(Placed<'a>, Vec<DType>)> {
    let stage = plan.stage(key.stage);
    let mut given = inputs.iter();
    let mut pieces = Vec::with_capacity(stage.inputs.len());
    let mut dtypes = Vec::with_capacity(stage.inputs.len());
    for (i, &inp) in stage.inputs.iter().enumerate() {
        let in_stage = plan.stage(inp);
        dtypes.push(in_stage.meta.dtype);
        let offs = in_stage.offsets();
        let mut list = Vec::new();
        for part in plan.stencil_parts(key, i, k) {
            let chunk = given
                .next()
                .ok_or_else(|| internal("stencil task given too few inputs"))?;
            let whole = in_stage.meta.chunks.chunk_shape(&part.chunk);
            let boxed: Vec<usize> = part.lo.iter().zip(&part.hi).map(|(a, b)| b - a).collect();
            let chunk_lo: Vec<usize> = part
                .chunk
                .iter()
                .enumerate()
                .map(|(d, &c)| offs[d][c])
                .collect();
            let lo = if chunk.shape == whole {
                chunk_lo
            } else if chunk.shape == boxed {
                chunk_lo.iter().zip(&part.lo).map(|(a, b)| a + b).collect()
            } else {
                return Err(internal(
                    "stencil input of neither the chunk's shape nor its part's",
                ));
            };
            list.push((lo, chunk));
        }
        pieces.push(list);
    }
    if given.next().is_some() {
        return Err(internal("stencil task given too many inputs"));
    }
    Ok((pieces, dtypes))
}

/// A program that reads the values `exe` computes (one input laid out like
/// its output): what a reduction folds when a device computed the kernel.
fn values_of(exe: &crate::kernel::Executable) -> Result<crate::kernel::Executable> {
    let p = &exe.program;
    Ok(read_values(root_dtype(exe)?, p.out_shape.clone()))
}

fn root_dtype(exe: &crate::kernel::Executable) -> Result<DType> {
    let p = &exe.program;
    p.dtypes
        .get(p.root as usize)
        .copied()
        .ok_or_else(|| internal("a kernel without its result register"))
}

/// A program that reads values of `dtype` and shape `shape` as they are.
fn read_values(dtype: DType, shape: Vec<usize>) -> crate::kernel::Executable {
    let mut b = crate::kernel::ir::ProgramBuilder::new();
    let r = b.input(crate::kernel::ir::InputSpec {
        dtype,
        shape: shape.clone(),
    });
    crate::kernel::Executable::new(b.finish(r, shape))
}

/// What a device made of a partial reduction it may fold itself.
enum DeviceFold {
    /// Not an order-free reduction (see [`crate::exec::Fold`]): the device
    /// may still compute its values.
    NotThisOne,
    /// The device declined or failed: the CPU computes it.
    Declined,
    /// The partial state, from the device's strips.
    Folded(Chunk),
}

/// The state of a partial reduction whose values `offload` folds itself
/// (see [`crate::exec::Fold`]): its strips' results folded here as the CPU
/// folds values, which gives the CPU's state (the fold does not depend on
/// the order).
fn device_fold(
    offload: &dyn crate::exec::Offload,
    exe: &crate::kernel::Executable,
    spec: &crate::op::ReduceSpec,
    rorigin: &[usize],
    rshape: &[usize],
    operands: &[Operand<'_>],
) -> Result<DeviceFold> {
    let dtype = root_dtype(exe)?;
    let Some(fold) = crate::exec::Fold::of(spec, dtype, rshape.len()) else {
        return Ok(DeviceFold::NotThisOne);
    };
    if shape::size(rshape) == 0 {
        return Ok(DeviceFold::NotThisOne);
    }
    let Some(parts) = offload.run_fold(exe, rorigin, rshape, operands, fold) else {
        return Ok(DeviceFold::Declined);
    };
    if parts.dtype() != dtype || parts.is_empty() {
        return Err(internal("a device fold returned the wrong values"));
    }
    let len = [parts.len()];
    let read = read_values(dtype, len.to_vec());
    let whole = crate::op::ReduceSpec {
        axes: vec![0],
        ..spec.clone()
    };
    let data = [(&len[..], &parts)];
    let mut state =
        reduce::run_partial(&Bound::new(&read, &[0], &len, &data)?.interpreted(), &whole)?;
    state.shape = reduce::partial_shape(rshape, &spec.axes);
    Ok(DeviceFold::Folded(state))
}

/// Finalizes a complete reduction state, then runs the fused epilogue on it.
fn finish(
    spec: &ReduceSpec,
    f: &Finalize,
    state: &Chunk,
    origin: &[usize],
    local: &[usize],
) -> Result<Chunk> {
    let result = reduce::finalize(spec, f.dtype, state)?;
    let Some(exe) = &f.epilogue else {
        return Ok(result);
    };
    let views = [(result.shape.as_slice(), result.data()?)];
    let data = Bound::new(exe, origin, local, &views)?.run_map()?;
    Ok(Chunk::array(local.to_vec(), data))
}

fn internal(msg: &str) -> Error {
    Error::Task {
        task: "structure".into(),
        message: format!("internal error: {msg}"),
    }
}

/// Copies the box `origin..origin + shape` out of a row-major host array
/// (the box must lie inside it).
pub fn copy_box(h: &HostArray, origin: &[usize], shape: &[usize]) -> Buffer {
    let nd = shape.len();
    let total = shape::size(shape);
    let src_strides = shape::strides(&h.shape);
    macro_rules! copy {
        ($v:expr, $variant:ident) => {{
            let mut out = crate::memory::with_capacity(total);
            if nd == 0 {
                out.extend_from_slice(&$v[..1]);
            } else if total > 0 {
                let row = shape[nd - 1];
                let mut c = vec![0usize; nd - 1];
                for _ in 0..total / row {
                    let start: usize = (0..nd)
                        .map(|d| (origin[d] + if d < nd - 1 { c[d] } else { 0 }) * src_strides[d])
                        .sum();
                    out.extend_from_slice(&$v[start..start + row]);
                    crate::shape::next_index(&mut c, &shape[..nd - 1]);
                }
            }
            Buffer::$variant(out)
        }};
    }
    match &h.data {
        Buffer::Bool(v) => copy!(v, Bool),
        Buffer::I32(v) => copy!(v, I32),
        Buffer::I64(v) => copy!(v, I64),
        Buffer::F32(v) => copy!(v, F32),
        Buffer::F64(v) => copy!(v, F64),
        Buffer::C128(v) => copy!(v, C128),
    }
}

/// Gathers `(source, offset)` pairs from several buffers of one dtype.
fn gather_multi(bufs: &[&Buffer], idx: &[(u32, usize)]) -> Result<Buffer> {
    let Some(first) = bufs.first() else {
        return Ok(Buffer::zeros(crate::dtype::DType::F64, 0));
    };
    macro_rules! gather {
        ($variant:ident) => {{
            let srcs: Vec<&[_]> = bufs
                .iter()
                .map(|b| match b {
                    Buffer::$variant(v) => Ok(v.as_slice()),
                    _ => Err(internal("inputs of different dtypes")),
                })
                .collect::<Result<_>>()?;
            let mut out = Vec::with_capacity(idx.len());
            for &(s, o) in idx {
                out.push(srcs[s as usize][o]);
            }
            Buffer::$variant(out)
        }};
    }
    Ok(match first {
        Buffer::Bool(_) => gather!(Bool),
        Buffer::I32(_) => gather!(I32),
        Buffer::I64(_) => gather!(I64),
        Buffer::F32(_) => gather!(F32),
        Buffer::F64(_) => gather!(F64),
        Buffer::C128(_) => gather!(C128),
    })
}

/// Input chunks of a box task: their grid indices, in task-input order, and a lookup.
struct BoxInputs {
    lo: Vec<usize>,
    dims: Vec<usize>,
    strides: Vec<Vec<usize>>,
}

impl BoxInputs {
    fn new(plan: &Plan, in_keys: &[ChunkKey], inputs: &[Arc<Chunk>]) -> Result<BoxInputs> {
        let Some(first) = in_keys.first() else {
            return Err(internal("structural task without inputs"));
        };
        let grid = plan.stage(first.stage).meta.chunks.grid();
        let idxs: Vec<Vec<usize>> = in_keys
            .iter()
            .map(|k| grid_index(k.chunk as usize, &grid))
            .collect();
        let nd = grid.len();
        let lo: Vec<usize> = (0..nd)
            .map(|d| idxs.iter().map(|i| i[d]).min().unwrap_or(0))
            .collect();
        let hi: Vec<usize> = (0..nd)
            .map(|d| idxs.iter().map(|i| i[d]).max().unwrap_or(0))
            .collect();
        let dims = lo.iter().zip(&hi).map(|(l, h)| h - l + 1).collect();
        Ok(BoxInputs {
            lo,
            dims,
            strides: inputs.iter().map(|c| shape::strides(&c.shape)).collect(),
        })
    }

    /// Task-input position of the chunk at absolute grid index `g`.
    fn slot(&self, g: &[usize]) -> usize {
        g.iter()
            .zip(&self.lo)
            .zip(&self.dims)
            .fold(0, |acc, ((&g, &l), &n)| acc * n + (g - l))
    }
}

/// Builds an output chunk whose element at local coordinate `c` is the input
/// element at global coordinate `source(c)`, reading from the box of input
/// chunks `in_keys` (in task-input order).
fn gather_chunk(
    plan: &Plan,
    dtype: DType,
    local: &[usize],
    in_keys: &[ChunkKey],
    inputs: &[Arc<Chunk>],
    mut source: impl FnMut(&[usize], &mut [usize]),
) -> Result<Chunk> {
    let total = shape::size(local);
    if total == 0 || in_keys.is_empty() {
        return Ok(Chunk::array(local.to_vec(), Buffer::zeros(dtype, 0)));
    }
    let bx = BoxInputs::new(plan, in_keys, inputs)?;
    let in_offs = plan.stage(in_keys[0].stage).offsets();
    let nd_in = in_offs.len();
    let mut idx = Vec::with_capacity(total);
    let mut coord = vec![0usize; local.len()];
    let mut x = vec![0usize; nd_in];
    let mut g = vec![0usize; nd_in];
    for _ in 0..total {
        source(&coord, &mut x);
        for d in 0..nd_in {
            g[d] = chunk_of(&in_offs[d], x[d]);
        }
        let s = bx.slot(&g);
        let off: usize = (0..nd_in)
            .map(|d| (x[d] - in_offs[d][g[d]]) * bx.strides[s][d])
            .sum();
        idx.push((s as u32, off));
        shape::next_index(&mut coord, local);
    }
    let bufs = inputs
        .iter()
        .map(|c| c.data())
        .collect::<Result<Vec<&Buffer>>>()?;
    Ok(Chunk::array(local.to_vec(), gather_multi(&bufs, &idx)?))
}

/// A structural view: each input coordinate is affine in one output coordinate.
fn remap_chunk(
    plan: &Plan,
    dtype: DType,
    map: &Remap,
    origin: &[usize],
    local: &[usize],
    in_keys: &[ChunkKey],
    inputs: &[Arc<Chunk>],
) -> Result<Chunk> {
    // A translation (rechunking, slices of unit step) is a box of the input:
    // copied a row at a time, not gathered cell by cell (≈ 12 ns a cell).
    if let Some(lo) = translated_box(map, origin) {
        let parts: Vec<(Vec<usize>, &Chunk)> = in_keys
            .iter()
            .zip(inputs)
            .map(|(k, c)| (plan.chunk_origin(*k), c.as_ref()))
            .collect();
        if covers(&parts, &lo, local) {
            let data = boxes::assemble(dtype, &lo, local, &parts)?;
            return Ok(Chunk::array(local.to_vec(), data));
        }
    }
    gather_chunk(plan, dtype, local, in_keys, inputs, |c, x| {
        for (d, ax) in map.axes.iter().enumerate() {
            x[d] = match ax.src {
                Some((j, k)) => (ax.base + k * (origin[j] + c[j]) as i64) as usize,
                None => ax.base as usize,
            };
        }
    })
}

/// The input box (its first cell) an output chunk at `origin` reads when
/// `map` only shifts every axis in place; None for any other view.
fn translated_box(map: &Remap, origin: &[usize]) -> Option<Vec<usize>> {
    if map.axes.len() != origin.len() {
        return None;
    }
    map.axes
        .iter()
        .zip(origin)
        .enumerate()
        .map(|(d, (ax, &o))| match ax.src {
            Some((j, 1)) if j == d => usize::try_from(ax.base + o as i64).ok(),
            _ => None,
        })
        .collect()
}

/// Whether `parts` (disjoint chunks with their origins) hold every cell of
/// the box `lo..lo + shape`.
fn covers(parts: &[(Vec<usize>, &Chunk)], lo: &[usize], shape: &[usize]) -> bool {
    let held: usize = parts
        .iter()
        .map(|(o, c)| {
            (0..shape.len())
                .map(|d| {
                    let a = lo[d].max(o.get(d).copied().unwrap_or(0));
                    let end = o.get(d).copied().unwrap_or(0) + c.shape.get(d).copied().unwrap_or(0);
                    (lo[d] + shape[d]).min(end).saturating_sub(a)
                })
                .product::<usize>()
        })
        .sum();
    held == shape::size(shape)
}

/// The same row-major element order in another shape.
fn reshape_chunk(
    plan: &Plan,
    dtype: DType,
    origin: &[usize],
    local: &[usize],
    out_shape: &[usize],
    in_keys: &[ChunkKey],
    inputs: &[Arc<Chunk>],
) -> Result<Chunk> {
    let ostr = shape::strides(out_shape);
    let in_shape = match in_keys.first() {
        Some(k) => plan.stage(k.stage).meta.shape.clone(),
        None => Vec::new(),
    };
    gather_chunk(plan, dtype, local, in_keys, inputs, |c, x| {
        let mut flat: usize = c
            .iter()
            .zip(origin)
            .zip(&ostr)
            .map(|((c, o), s)| (c + o) * s)
            .sum();
        for d in (0..in_shape.len()).rev() {
            let n = in_shape[d].max(1);
            x[d] = flat % n;
            flat /= n;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::{covers, translated_box, writes_interleave};
    use crate::buffer::{Buffer, Chunk};
    use crate::op::{InAxis, Remap};

    /// Rechunking and unit-step slices are boxes of their input; steps,
    /// transposes and fixed indices are not.
    #[test]
    fn translations_are_boxes_and_other_views_are_not() {
        let shifted = |bases: &[i64]| Remap {
            axes: bases
                .iter()
                .enumerate()
                .map(|(d, &base)| InAxis {
                    base,
                    src: Some((d, 1)),
                })
                .collect(),
        };
        assert_eq!(
            translated_box(&Remap::identity(2), &[3, 4]),
            Some(vec![3, 4])
        );
        assert_eq!(
            translated_box(&shifted(&[1, 10]), &[3, 4]),
            Some(vec![4, 14])
        );
        assert_eq!(translated_box(&shifted(&[-3]), &[2]), None);
        let mut stepped = shifted(&[0, 0]);
        stepped.axes[1].src = Some((1, 2));
        assert_eq!(translated_box(&stepped, &[0, 0]), None);
        let mut swapped = shifted(&[0, 0]);
        swapped.axes[0].src = Some((1, 1));
        swapped.axes[1].src = Some((0, 1));
        assert_eq!(translated_box(&swapped, &[0, 0]), None);
        assert_eq!(translated_box(&shifted(&[0]), &[0, 0]), None);
        // Coverage: two chunks side by side hold a box across their seam, one alone does not.
        let chunk = |n: usize| Chunk::array(vec![2, n], Buffer::zeros(DType::F64, 2 * n));
        let (left, right) = (chunk(5), chunk(5));
        let both = [(vec![0, 0], &left), (vec![0, 5], &right)];
        assert!(covers(&both, &[0, 3], &[2, 4]));
        assert!(!covers(&both[..1], &[0, 3], &[2, 4]));
        assert!(!covers(&both, &[0, 3], &[3, 4]));
    }
    use crate::dtype::DType;
    use crate::op::Meta;
    use crate::shape::Chunks;

    /// Whether a float64 array of `shape` in chunks of `chunk` interleaves.
    fn interleaves(shape: &[usize], chunk: &[usize]) -> bool {
        writes_interleave(&Meta {
            shape: shape.to_vec(),
            dtype: DType::F64,
            chunks: Chunks::regular(shape, chunk).expect("valid chunks"),
        })
    }

    #[test]
    fn only_large_results_split_into_short_runs_interleave() {
        // 128 MB in 1000×1000 chunks: 8 KB runs share every huge page.
        assert!(interleaves(&[4000, 4000], &[1000, 1000]));
        // Whole rows: 4 MB runs of one task each.
        assert!(!interleaves(&[4000, 4000], &[128, 4000]));
        // Contiguous 1-d chunks of 20 MB.
        assert!(!interleaves(&[50_000_000], &[2_500_000]));
        // Short runs, but a small result.
        assert!(!interleaves(&[200, 200], &[100, 100]));
        // Whole trailing planes make long runs in 3-d too.
        assert!(!interleaves(&[64, 512, 512], &[8, 512, 512]));
        assert!(interleaves(&[64, 512, 512], &[8, 512, 256]));
    }
}
