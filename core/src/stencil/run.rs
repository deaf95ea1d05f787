//! Runs a stencil kernel for one output chunk.

use std::sync::Arc;

use crate::buffer::{Buffer, Chunk};
use crate::dtype::{DType, Value};
use crate::error::{Error, Result};
use crate::kernel::stream::{extend_streaming, fence};
use crate::kernel::{Bound, OutSlice};
use crate::op::Boundary;
use crate::shape;

use super::StencilKernel;

/// Input data at hand: a whole input chunk or the part of it the task needs.
pub struct Piece<'a> {
    /// Global coordinate of the data's first element.
    pub lo: Vec<usize>,
    pub shape: Vec<usize>,
    pub data: &'a Buffer,
    /// The chunk whose data `data` is, where there is one: a device keeps
    /// its copy of the data under it (see [`crate::exec::Operand`]).
    pub chunk: Option<&'a Arc<Chunk>>,
}

/// A field of a task: its buffer holds the padded layout from position
/// `shift` on (stage inputs: all of it; levels: the rows of one band).
struct Field {
    buf: Buffer,
    shift: usize,
}

/// The padded layout shared by every field of a task.
pub(super) struct Layout {
    /// Global coordinate of padded index 0 along each axis.
    pub(super) start: Vec<i64>,
    pub(super) padded: Vec<usize>,
    pub(super) strides: Vec<usize>,
    /// Slack before and after the padded box, so windows read at any offset
    /// within the halo stay inside the buffer.
    pub(super) guard: usize,
}

impl Layout {
    pub(super) fn pos(&self, coord: &[usize]) -> usize {
        self.guard
            + coord
                .iter()
                .zip(&self.strides)
                .map(|(c, s)| c * s)
                .sum::<usize>()
    }
}

/// Computes output chunk (`origin`, `local`) of an array of `shape` from the
/// pieces of every stage input.
pub fn run_stencil(
    k: &StencilKernel,
    shape: &[usize],
    origin: &[usize],
    local: &[usize],
    inputs: &[Vec<Piece<'_>>],
    input_dtypes: &[DType],
) -> Result<Buffer> {
    let nd = k.ndim();
    if shape.len() != nd
        || origin.len() != nd
        || local.len() != nd
        || inputs.len() != k.inputs.len()
    {
        return Err(internal("stencil task does not match its kernel"));
    }
    let ghost_rules = ghost_rules(k);
    let mut lay = layout(k, &ghost_rules, shape, origin, local);
    // Room for every field to be placed up to SKEW_SLACK cells into its
    // buffer (see `skew_to_line` and `skew_away`).
    lay.guard += SKEW_SLACK;
    let ni = k.inputs.len();
    let nfields = ni + k.levels.len();
    // Free fields after their last reader; reuse their memory.
    let mut last_use = vec![0usize; nfields];
    for (j, level) in k.levels.iter().enumerate() {
        for r in &level.reads {
            last_use[r.field as usize] = j;
        }
        if let Some(keep) = &level.keep {
            last_use[keep.field as usize] = j;
        }
    }
    let mut pool: Vec<Buffer> = Vec::new();
    let mut fields: Vec<Option<Field>> = (0..nfields).map(|_| None).collect();

    // Every field is laid out band by band in a buffer holding only the
    // band's rows grown by the halo: the inputs' cells copied in and every
    // level's computed stay in cache until the next level reads them. The
    // last level's chunk cells are appended to the result band by band (or
    // written there in place, below).
    let last = k
        .levels
        .len()
        .checked_sub(1)
        .ok_or_else(|| internal("stencil without levels"))?;
    let out_dtype = k.levels[last].dtype();
    let band = band_rows(k, &lay, local[0]);
    let band_len = (band.min(local[0]) + 2 * k.halo[0]) * lay.strides[0] + 2 * lay.guard;
    // Where the chunk's first cell lies in the layout.
    let chunk_at = lay.pos(
        &(0..nd)
            .map(|d| (origin[d] as i64 - lay.start[d]) as usize)
            .collect::<Vec<_>>(),
    );
    // Where the layout's rows are the chunk's own (no padded columns), the
    // last level writes the result in place, band by band, at padded
    // position less `chunk_at`: no band buffer copied out. A large result
    // is appended instead, its stores past the caches (see `append_box`).
    let in_place = k.levels[last].radius.iter().all(|&r| r == 0)
        && (1..nd).all(|d| lay.padded[d] == local[d] && lay.start[d] == origin[d] as i64)
        && shape::size(local) * out_dtype.size() < STREAM_CHUNK_BYTES;
    let mut result = if in_place {
        Buffer::zeros(out_dtype, shape::size(local))
    } else {
        with_room(out_dtype, shape::size(local))
    };
    // Rows beyond the array's ends along the first axis are overwritten by
    // their boundary rule after every level, or (fixed edges) only ever read
    // by kept cells: not computed, unless the axis wraps around.
    let clip_rows = k.boundary[0] != Boundary::Periodic;
    let mut b0 = 0;
    while b0 < local[0] {
        let rows = band.min(local[0] - b0);
        let mut borigin = origin.to_vec();
        borigin[0] += b0;
        let mut blocal = local.to_vec();
        blocal[0] = rows;
        // Band buffers start at the band's first row less the halo (and
        // the slack, which a field may be placed into).
        let shift = b0 * lay.strides[0] + SKEW_SLACK;
        // Where the first level's box starts, in the padded layout.
        let first_level = k
            .levels
            .first()
            .ok_or_else(|| internal("stencil without levels"))?;
        let first_box =
            lay.guard + level_box(first_level, &lay, (shape, &borigin, &blocal), clip_rows).start;
        for (i, pieces) in inputs.iter().enumerate() {
            let dtype = *input_dtypes
                .get(i)
                .ok_or_else(|| internal("missing input dtype"))?;
            let mut buf = match fields[i].take() {
                Some(f) => f.buf,
                None => take(&mut pool, dtype, band_len),
            };
            let radius = &k.inputs[i];
            let needed = (shape, &borigin[..], &blocal[..]);
            let at = first_box
                .checked_sub(shift)
                .ok_or_else(|| internal("stencil input before its buffer"))?;
            let shift = shift - skew_to_line(&buf, at);
            for p in pieces {
                place(&lay, needed, radius, &k.boundary, p, (&mut buf, shift))?;
            }
            fill_ghosts(&lay, needed, radius, &ghost_rules, (&mut buf, shift))?;
            fields[i] = Some(Field { buf, shift });
        }
        for (j, level) in k.levels.iter().enumerate() {
            let into_result = in_place && j == last;
            // The previous band's buffer of this level, if any, is reused.
            let mut out = match fields[ni + j].take() {
                Some(f) => f.buf,
                None if into_result => std::mem::replace(&mut result, with_room(out_dtype, 0)),
                None => take(&mut pool, level.dtype(), band_len),
            };
            let at = if into_result {
                Place::Fixed(chunk_at)
            } else {
                Place::Movable(shift)
            };
            let placed = run_level(
                level,
                &lay,
                (shape, &borigin, &blocal),
                &fields,
                &ghost_rules,
                clip_rows,
                (&mut out, at),
            )?;
            fields[ni + j] = Some(Field {
                buf: out,
                shift: placed,
            });
            // Scratch levels nobody reads any more go back to the pool.
            for (f, slot) in fields.iter_mut().enumerate() {
                if f >= ni
                    && f < ni + j
                    && last_use[f] <= j
                    && let Some(b) = slot.take()
                {
                    pool.push(b.buf);
                }
            }
        }
        if !in_place {
            let out = fields[ni + last]
                .as_ref()
                .ok_or_else(|| internal("stencil without a result"))?;
            // The band's first chunk cell, where its buffer holds it.
            let first = (chunk_at + b0 * lay.strides[0])
                .checked_sub(out.shift)
                .ok_or_else(|| internal("stencil result before its buffer"))?;
            append_box(&mut result, &out.buf, &lay.strides, first, &blocal)?;
        }
        b0 += rows;
    }
    // (A chunk without rows ran no band: its empty result is as made.)
    if in_place && let Some(f) = fields[ni + last].take() {
        result = f.buf;
    }
    pool.extend(fields.into_iter().flatten().map(|f| f.buf));
    give_back(pool);
    Ok(result)
}

/// Where a level's result goes in its buffer: from padded position `shift`
/// on, or from up to [`SKEW_SLACK`] cells before it, as the level picks
/// (see [`skew_away`]).
#[derive(Clone, Copy)]
enum Place {
    Fixed(usize),
    Movable(usize),
}

/// The padded layout of a task: the chunk grown by the halo on every side,
/// except beyond the array's end along the last axis where nothing there is
/// ever read but by kept cells (fixed edges): those columns would only be
/// computed and thrown away (15 of 130 columns on a 100-wide chunk at the
/// edge with a halo of 15). Reads past the layout's columns land in the next or previous
/// row, or in the guard, and feed only kept cells.
pub(super) fn layout(
    k: &StencilKernel,
    ghost_rules: &[Boundary],
    shape: &[usize],
    origin: &[usize],
    local: &[usize],
) -> Layout {
    let nd = k.ndim();
    let clipped = |d: usize| {
        nd >= 2
            && d == nd - 1
            && k.boundary[d] != Boundary::Periodic
            && ghost_rules[d] == Boundary::Periodic
    };
    let (start, padded): (Vec<i64>, Vec<usize>) = (0..nd)
        .map(|d| {
            let (mut lo, mut hi) = (
                origin[d] as i64 - k.halo[d] as i64,
                (origin[d] + local[d] + k.halo[d]) as i64,
            );
            if clipped(d) {
                (lo, hi) = (lo.max(0), hi.min(shape[d] as i64));
            }
            (lo, (hi - lo).max(0) as usize)
        })
        .unzip();
    let strides = shape::strides(&padded);
    let guard: usize = (0..nd).map(|d| k.halo[d] * strides[d]).sum();
    Layout {
        start,
        padded,
        strides,
        guard,
    }
}

/// The global range (first cell, length) of the cells within `r` of the
/// chunk along axis `d` that the layout holds.
fn span(lay: &Layout, origin: usize, local: usize, r: usize, d: usize) -> (i64, usize) {
    let lo = (origin as i64 - r as i64).max(lay.start[d]);
    let hi = ((origin + local + r) as i64).min(lay.start[d] + lay.padded[d] as i64);
    (lo, (hi - lo).max(0) as usize)
}

/// Rows of the output chunk computed through all levels at a time: enough
/// that the rows every level touches for one band stay in cache (about
/// 1 MiB for three live fields), at least 8, and the whole chunk when small.
fn band_rows(k: &StencilKernel, lay: &Layout, rows: usize) -> usize {
    band_rows_of(lay.padded[1..].iter().product(), k.halo[0], rows)
}

/// Rows per band of a task of `rows` rows whose fields hold `row_cells`
/// cells per row and reach `halo` rows beyond a band on each side: the
/// band's rows of three fields, halo included, fit in about 1 MiB of cache
/// (float64 cells). A chunk of fewer than two bands' rows is one band.
pub(crate) fn band_rows_of(row_cells: usize, halo: usize, rows: usize) -> usize {
    let fit = (1usize << 20) / (3 * (row_cells * 8).max(1));
    let band = fit.saturating_sub(2 * halo).max(8);
    if band * 2 > rows { rows } else { band }
}

/// Fewest unread columns per row worth evaluating the rows one by one
/// (measured on heat 200²: 4 and 8 were slower than the whole box, 16 ~6 %
/// faster).
const MIN_SKIPPED_COLUMNS: usize = 16;

/// The box a level computes: the band's rows grown by the level's radius
/// (clipped to the array when `clip_rows`), across the whole padded width.
pub(super) struct LevelBox {
    /// Global coordinates of its first cell.
    pub(super) origin: Vec<i64>,
    pub(super) shape: Vec<usize>,
    /// Its first cell's padded position, less the guard.
    pub(super) start: usize,
}

pub(super) fn level_box(
    level: &super::Level,
    lay: &Layout,
    (shape, origin, local): (&[usize], &[usize], &[usize]),
    clip_rows: bool,
) -> LevelBox {
    let r0 = level.radius[0] as i64;
    let (mut top, mut end) = (origin[0] as i64 - r0, (origin[0] + local[0]) as i64 + r0);
    if clip_rows {
        (top, end) = (top.max(0), end.min(shape[0] as i64));
    }
    let first_row = (top - lay.start[0]) as usize;
    let mut box_shape = lay.padded.clone();
    box_shape[0] = (end - top).max(0) as usize;
    let mut box_origin = lay.start.clone();
    box_origin[0] = top;
    LevelBox {
        origin: box_origin,
        shape: box_shape,
        start: first_row * lay.strides[0],
    }
}

/// The padded position (guard included) of the window `read` takes for a
/// level box starting at `start`.
pub(super) fn read_at(lay: &Layout, start: usize, read: &super::Read) -> i64 {
    let offset: i64 = read
        .offset
        .iter()
        .zip(&lay.strides)
        .map(|(&o, &s)| o * s as i64)
        .sum();
    (lay.guard + start) as i64 + offset
}

/// Computes one level on the rows of one band (grown by the level's radius),
/// then keeps its edges and fills its ghost cells there. `out` holds the
/// padded layout from the position `place` gives on (see [`Place`]);
/// returns the position its buffer then starts at.
fn run_level(
    level: &super::Level,
    lay: &Layout,
    (shape, origin, local): (&[usize], &[usize], &[usize]),
    fields: &[Option<Field>],
    ghost_rules: &[Boundary],
    clip_rows: bool,
    (out, place): (&mut Buffer, Place),
) -> Result<usize> {
    let (mut shift, movable) = match place {
        Place::Fixed(at) => (at, false),
        Place::Movable(at) => (at, true),
    };
    let LevelBox {
        origin: box_origin,
        shape: box_shape,
        start,
    } = level_box(level, lay, (shape, origin, local), clip_rows);
    let len = shape::size(&box_shape);
    {
        let mut windows = Vec::with_capacity(level.reads.len());
        for read in &level.reads {
            let field = fields
                .get(read.field as usize)
                .and_then(Option::as_ref)
                .ok_or_else(|| internal("stencil level reads a field that is gone"))?;
            let at = read_at(lay, start, read) - field.shift as i64;
            if at < 0 {
                return Err(internal("stencil window before its field"));
            }
            windows.push((&field.buf, at as usize));
        }
        let at = (lay.guard + start)
            .checked_sub(shift)
            .ok_or_else(|| internal("stencil level before its buffer"))?;
        let skew = if movable {
            skew_away(&windows, out, at).min(shift)
        } else {
            0
        };
        shift -= skew;
        let at = at + skew;
        let bound = Bound::windows(&level.exe, &box_origin, &box_shape, &windows)?;
        // Columns of the padded width beyond the level's radius are never
        // read: where enough of them to pay for a call per row, skip them.
        let nd = shape.len();
        let (row_len, r) = (lay.padded[nd - 1], level.radius[nd - 1]);
        let (lo, need) = span(lay, origin[nd - 1], local[nd - 1], r, nd - 1);
        let first = (lo - lay.start[nd - 1]) as usize;
        let trimmed = nd > 1
            && need + MIN_SKIPPED_COLUMNS <= row_len
            && bound.map_cols_into(out_slice(out, at, len)?, row_len, first..first + need)?;
        if !trimmed {
            bound.run_map_into(out_slice(out, at, len)?)?;
        }
    }
    if let Some(keep) = &level.keep {
        let old = fields
            .get(keep.field as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| internal("stencil keeps edges of a field that is gone"))?;
        keep_edges(
            lay,
            (shape, origin, local),
            &level.radius,
            &keep.depth,
            (&old.buf, old.shift),
            (&mut *out, shift),
        )?;
    }
    if level.radius.iter().any(|&r| r > 0) {
        fill_ghosts(
            lay,
            (shape, origin, local),
            &level.radius,
            ghost_rules,
            (out, shift),
        )?;
    }
    Ok(shift)
}

/// Slack, in cells, a band buffer keeps before its padded layout (and after
/// it), within which a field is placed: 4 KiB of float64 and a line.
const SKEW_SLACK: usize = 520;

/// A load whose address matches a pending store's in its low 12 bits waits
/// for that store (the core compares those bits first). A level's kernel
/// streams its result while it reads its input windows; where a window
/// trails the result by a few dozen bytes modulo 4 KiB, nearly every load
/// waits: heat's kernel ran at 0.22 ns per cell with its buffers well apart
/// and up to 0.34 with them 16–200 bytes apart (mod 4 KiB). Where the
/// allocator puts the buffers decides it, for as long as a thread keeps
/// them (mimalloc puts every large block on a 4 KiB boundary: a window one
/// cell behind the result, always).
const ALIAS_HAZARD: i64 = 4096 - 128;

const PAGE: i64 = 4096;
const LINE: i64 = 64;

/// Bytes from `addr` to the next cache line, as whole cells of `size`
/// bytes (0 where that is not a whole number of cells). Windows whose
/// first cell starts a line cross fewer lines: heat's kernel read its rows
/// at 0.21 ns per cell from a line's start and 0.25 from its middle.
fn to_line(addr: usize, size: usize) -> usize {
    let gap = (LINE as usize - addr % LINE as usize) % LINE as usize;
    if size == 0 || !gap.is_multiple_of(size) {
        0
    } else {
        gap
    }
}

/// How many cells further into `buf` (within [`SKEW_SLACK`]) to place a
/// stage input whose first level's box starts at cell `at`: to the start of
/// a cache line (see [`to_line`]).
fn skew_to_line(buf: &Buffer, at: usize) -> usize {
    let size = buf.dtype().size();
    if size == 0 {
        return 0;
    }
    to_line(start_addr(buf) + at * size, size) / size
}

/// How many cells (at most [`SKEW_SLACK`]) further into `out` to place a
/// level's result, now at cell `at`: to the start of a cache line (see
/// [`to_line`]), then by whole lines so that each input window (buffer and
/// first cell) of the same cell size lies as far as it can from trailing
/// it by [`ALIAS_HAZARD`] bytes modulo 4 KiB. This runs per level of every
/// task: no heap, a handful of candidates.
fn skew_away(windows: &[(&Buffer, usize)], out: &Buffer, at: usize) -> usize {
    let size = out.dtype().size();
    if size == 0 {
        return 0;
    }
    let out_at = (start_addr(out) + at * size) as i64;
    let first = to_line(out_at as usize, size) as i64;
    // The skews (bytes, modulo 4 KiB) that would put each window right at
    // the hazard; streams of another cell size drift apart and never stay there.
    let mut bad = [0i64; 8];
    let mut n = 0;
    for (b, w) in windows.iter().filter(|(b, _)| b.dtype().size() == size) {
        if n == bad.len() {
            break;
        }
        bad[n] = ((start_addr(b) + w * size) as i64 - out_at - ALIAS_HAZARD).rem_euclid(PAGE);
        n += 1;
    }
    let bad = &mut bad[..n];
    bad.sort_unstable();
    let clearance = |t: i64| {
        bad.iter()
            .map(|&p| {
                let d = (p - t).rem_euclid(PAGE);
                d.min(PAGE - d)
            })
            .min()
            .unwrap_or(PAGE)
    };
    let reach = (SKEW_SLACK * size) as i64;
    // The best skew lies mid-way between two neighbouring bad ones (around
    // the circle), moved back to a line's start and kept within reach.
    let mut best = (clearance(first), first);
    for i in 0..bad.len() {
        let next = bad.get(i + 1).copied().unwrap_or(bad[0] + PAGE);
        let mid = bad[i] + (next - bad[i]) / 2;
        let t = first + (mid - first).rem_euclid(PAGE) / LINE * LINE;
        if t < reach && clearance(t) > best.0 {
            best = (clearance(t), t);
        }
    }
    best.1 as usize / size
}

/// The address of a buffer's first cell.
fn start_addr(buf: &Buffer) -> usize {
    match buf {
        Buffer::Bool(v) => v.as_ptr() as usize,
        Buffer::I32(v) => v.as_ptr() as usize,
        Buffer::I64(v) => v.as_ptr() as usize,
        Buffer::F32(v) => v.as_ptr() as usize,
        Buffer::F64(v) => v.as_ptr() as usize,
        Buffer::C128(v) => v.as_ptr() as usize,
    }
}

/// The boundary rule ghost cells are filled by, per axis. Along a `Fixed`
/// axis whose every shifted read happens in a level that keeps at least that
/// many edge cells, ghost cells only ever feed kept (overwritten) cells, so
/// they are not filled at all (`Periodic` marks "nothing to fill").
pub(super) fn ghost_rules(k: &StencilKernel) -> Vec<Boundary> {
    (0..k.ndim())
        .map(|d| {
            let b = k.boundary[d];
            if b != Boundary::Fixed {
                return b;
            }
            let unread = k.levels.iter().all(|l| {
                let reach = l
                    .reads
                    .iter()
                    .map(|r| r.offset[d].unsigned_abs() as usize)
                    .max()
                    .unwrap_or(0);
                reach == 0 || l.keep.as_ref().is_some_and(|kp| kp.depth[d] >= reach)
            });
            if unread { Boundary::Periodic } else { b }
        })
        .collect()
}

pub(super) fn internal(msg: &str) -> Error {
    Error::Task {
        task: "stencil".into(),
        message: format!("internal error: {msg}"),
    }
}

thread_local! {
    /// Field buffers of finished tasks, reused by the next task on this thread
    /// (a task's garbage cells never reach a result, so stale contents are fine).
    static SPARE: std::cell::RefCell<Vec<Buffer>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Spare field memory kept per thread, in elements.
const SPARE_LIMIT: usize = 1 << 22;

fn take(pool: &mut Vec<Buffer>, dtype: DType, len: usize) -> Buffer {
    if let Some(i) = pool
        .iter()
        .position(|b| b.dtype() == dtype && b.len() == len)
    {
        return pool.swap_remove(i);
    }
    let spare = SPARE.with(|s| {
        let mut s = s.borrow_mut();
        s.iter()
            .position(|b| b.dtype() == dtype && b.len() == len)
            .map(|i| s.swap_remove(i))
    });
    spare.unwrap_or_else(|| Buffer::zeros(dtype, len))
}

/// Keeps a task's field buffers for the next task on this thread, up to a limit.
fn give_back(pool: Vec<Buffer>) {
    SPARE.with(|s| {
        let mut s = s.borrow_mut();
        for b in pool {
            let held: usize = s.iter().map(Buffer::len).sum();
            if held + b.len() <= SPARE_LIMIT {
                s.push(b);
            }
        }
    });
}

pub(super) fn out_slice(buf: &mut Buffer, at: usize, len: usize) -> Result<OutSlice<'_>> {
    let range = at..at + len;
    if range.end > buf.len() {
        return Err(internal("stencil level outside its field"));
    }
    Ok(match buf {
        Buffer::Bool(v) => OutSlice::Bool(&mut v[range]),
        Buffer::I32(v) => OutSlice::I32(&mut v[range]),
        Buffer::I64(v) => OutSlice::I64(&mut v[range]),
        Buffer::F32(v) => OutSlice::F32(&mut v[range]),
        Buffer::F64(v) => OutSlice::F64(&mut v[range]),
        Buffer::C128(v) => OutSlice::C128(&mut v[range]),
    })
}

/// Copies the parts of an input piece the task needs into the padded field,
/// once for each periodic image that lands in the needed box.
pub(super) fn place(
    lay: &Layout,
    geometry: (&[usize], &[usize], &[usize]),
    radius: &[usize],
    boundary: &[Boundary],
    p: &Piece<'_>,
    (buf, shift): (&mut Buffer, usize),
) -> Result<()> {
    if p.data.len() != shape::size(&p.shape) {
        return Err(internal("stencil input piece of the wrong shape"));
    }
    let src_strides = shape::strides(&p.shape);
    piece_boxes(
        lay,
        geometry,
        (radius, boundary),
        (&p.lo, &p.shape),
        |src_at, dst_at, extent| {
            let dst_at = dst_at
                .checked_sub(shift)
                .ok_or_else(|| internal("stencil input placed before its buffer"))?;
            copy_box(
                p.data,
                &src_strides,
                src_at,
                buf,
                &lay.strides,
                dst_at,
                extent,
            )
        },
    )
}

/// The boxes of the piece at `lo` of `piece_shape` that the task needs, one
/// for each periodic image that lands in the needed box: `emit` gets each
/// box's first cell in the piece (row-major), its position in the padded
/// layout, and its extent.
pub(super) fn piece_boxes(
    lay: &Layout,
    (shape, origin, local): (&[usize], &[usize], &[usize]),
    (radius, boundary): (&[usize], &[Boundary]),
    (lo, piece_shape): (&[usize], &[usize]),
    mut emit: impl FnMut(usize, usize, &[usize]) -> Result<()>,
) -> Result<()> {
    let nd = shape.len();
    if lo.len() != nd || piece_shape.len() != nd {
        return Err(internal("stencil input piece of the wrong shape"));
    }
    // Per axis, the images (shift, lo, hi in global coordinates) of the piece
    // inside the needed box.
    let mut per_axis: Vec<Vec<(i64, i64, i64)>> = Vec::with_capacity(nd);
    for d in 0..nd {
        let n = shape[d] as i64;
        let need_lo = origin[d] as i64 - radius[d] as i64;
        let need_hi = (origin[d] + local[d] + radius[d]) as i64;
        let shifts: &[i64] = if boundary[d] == Boundary::Periodic {
            &[-n, 0, n]
        } else {
            &[0]
        };
        let mut v = Vec::new();
        for &t in shifts {
            let a = (lo[d] as i64 + t).max(need_lo);
            let b = ((lo[d] + piece_shape[d]) as i64 + t).min(need_hi);
            if a < b {
                v.push((t, a, b));
            }
        }
        if v.is_empty() {
            return Ok(());
        }
        per_axis.push(v);
    }
    let src_strides = shape::strides(piece_shape);
    let counts: Vec<usize> = per_axis.iter().map(Vec::len).collect();
    let mut pick = vec![0usize; nd];
    let mut dst_lo = vec![0usize; nd];
    let mut extent = vec![0usize; nd];
    loop {
        let mut src_at = 0;
        for d in 0..nd {
            let (t, a, b) = per_axis[d][pick[d]];
            src_at += (a - t - lo[d] as i64) as usize * src_strides[d];
            dst_lo[d] = (a - lay.start[d]) as usize;
            extent[d] = (b - a) as usize;
        }
        emit(src_at, lay.pos(&dst_lo), &extent)?;
        if !shape::next_index(&mut pick, &counts) {
            return Ok(());
        }
    }
}

/// Result chunks at least this large are written past the caches.
pub(crate) const STREAM_CHUNK_BYTES: usize = 1 << 20;

/// Appends the box `extent` at `src_at` of `src` to `dst` (of the same
/// dtype), row by row: a result is built in order, band by band, and never
/// zero-filled first. A large result's stores bypass the cache: it is read
/// again only by later tasks, long after it would have left the cache, and
/// ordinary stores would first read every line of it from memory.
pub(super) fn append_box(
    dst: &mut Buffer,
    src: &Buffer,
    src_strides: &[usize],
    src_at: usize,
    extent: &[usize],
) -> Result<()> {
    fn rows<T: Copy>(
        out: &mut Vec<T>,
        s: &[T],
        ss: &[usize],
        sa: usize,
        extent: &[usize],
    ) -> Option<()> {
        let stream = out.capacity() * std::mem::size_of::<T>() >= STREAM_CHUNK_BYTES;
        let nd = extent.len();
        if extent.contains(&0) {
            return Some(());
        }
        if nd == 0 {
            out.push(*s.get(sa)?);
            return Some(());
        }
        // The result is contiguous: only the source decides what folds.
        let extent = fold_contiguous(extent, ss, &shape::strides(extent));
        let run = extent[extent.len() - 1];
        walk_rows(&extent, |idx| {
            let so = sa + idx.iter().zip(ss).map(|(i, st)| i * st).sum::<usize>();
            let row = s.get(so..so + run)?;
            if stream {
                extend_streaming(out, row);
            } else {
                out.extend_from_slice(row);
            }
            Some(())
        })?;
        fence();
        Some(())
    }
    let (ss, sa) = (src_strides, src_at);
    let ok = match (dst, src) {
        (Buffer::Bool(d), Buffer::Bool(s)) => rows(d, s, ss, sa, extent),
        (Buffer::I32(d), Buffer::I32(s)) => rows(d, s, ss, sa, extent),
        (Buffer::I64(d), Buffer::I64(s)) => rows(d, s, ss, sa, extent),
        (Buffer::F32(d), Buffer::F32(s)) => rows(d, s, ss, sa, extent),
        (Buffer::F64(d), Buffer::F64(s)) => rows(d, s, ss, sa, extent),
        (Buffer::C128(d), Buffer::C128(s)) => rows(d, s, ss, sa, extent),
        _ => None,
    };
    ok.ok_or_else(|| internal("stencil result box outside its field"))
}

/// Calls `row` with the index (every axis but the last) of each row of a
/// box of `extent` (at least one axis, none empty), in row-major order,
/// until it returns None. Most arrays have few axes: the index stays off the
/// heap then.
fn walk_rows(extent: &[usize], mut row: impl FnMut(&[usize]) -> Option<()>) -> Option<()> {
    let outer = &extent[..extent.len().saturating_sub(1)];
    let mut small = [0usize; 8];
    let mut large = Vec::new();
    let idx: &mut [usize] = if outer.len() <= small.len() {
        &mut small[..outer.len()]
    } else {
        large.resize(outer.len(), 0);
        &mut large
    };
    loop {
        row(idx)?;
        if !shape::next_index(idx, outer) {
            return Some(());
        }
    }
}

/// `extent` (at least one axis) with its trailing axes folded into one
/// run while both buffers (row-major `a` and `b` strides) hold them back to
/// back: one long copy instead of one per row, which a CPU can do without
/// reading the destination's cache lines first. The leading axes stay, with
/// their strides.
fn fold_contiguous(extent: &[usize], a: &[usize], b: &[usize]) -> Vec<usize> {
    let nd = extent.len();
    let mut first = nd - 1;
    while first > 0
        && a[first - 1] == extent[first] * a[first]
        && b[first - 1] == extent[first] * b[first]
    {
        first -= 1;
    }
    let mut folded = extent[..first].to_vec();
    folded.push(extent[first..].iter().product());
    folded
}

/// An empty buffer of `dtype` with room for `len` elements.
pub(super) fn with_room(dtype: DType, len: usize) -> Buffer {
    use crate::memory::with_capacity;
    match dtype {
        DType::Bool => Buffer::Bool(with_capacity(len)),
        DType::I32 => Buffer::I32(with_capacity(len)),
        DType::I64 => Buffer::I64(with_capacity(len)),
        DType::F32 => Buffer::F32(with_capacity(len)),
        DType::F64 => Buffer::F64(with_capacity(len)),
        DType::C128 => Buffer::C128(with_capacity(len)),
    }
}

/// Copies an `extent` box between two row-major buffers of one dtype.
pub(super) fn copy_box(
    src: &Buffer,
    src_strides: &[usize],
    src_at: usize,
    dst: &mut Buffer,
    dst_strides: &[usize],
    dst_at: usize,
    extent: &[usize],
) -> Result<()> {
    fn rows<T: Copy>(
        s: &[T],
        ss: &[usize],
        sa: usize,
        d: &mut [T],
        ds: &[usize],
        da: usize,
        extent: &[usize],
    ) -> Option<()> {
        let nd = extent.len();
        if extent.contains(&0) {
            return Some(());
        }
        if nd == 0 {
            *d.get_mut(da)? = *s.get(sa)?;
            return Some(());
        }
        let extent = fold_contiguous(extent, ss, ds);
        let run = extent[extent.len() - 1];
        walk_rows(&extent, |idx| {
            let so = sa + idx.iter().zip(ss).map(|(i, st)| i * st).sum::<usize>();
            let dof = da + idx.iter().zip(ds).map(|(i, st)| i * st).sum::<usize>();
            d.get_mut(dof..dof + run)?
                .copy_from_slice(s.get(so..so + run)?);
            Some(())
        })
    }
    let ok = match (src, dst) {
        (Buffer::Bool(s), Buffer::Bool(d)) => {
            rows(s, src_strides, src_at, d, dst_strides, dst_at, extent)
        }
        (Buffer::I32(s), Buffer::I32(d)) => {
            rows(s, src_strides, src_at, d, dst_strides, dst_at, extent)
        }
        (Buffer::I64(s), Buffer::I64(d)) => {
            rows(s, src_strides, src_at, d, dst_strides, dst_at, extent)
        }
        (Buffer::F32(s), Buffer::F32(d)) => {
            rows(s, src_strides, src_at, d, dst_strides, dst_at, extent)
        }
        (Buffer::F64(s), Buffer::F64(d)) => {
            rows(s, src_strides, src_at, d, dst_strides, dst_at, extent)
        }
        (Buffer::C128(s), Buffer::C128(d)) => {
            rows(s, src_strides, src_at, d, dst_strides, dst_at, extent)
        }
        _ => None,
    };
    ok.ok_or_else(|| internal("stencil copy out of range or between dtypes"))
}

/// A write of ghost cells, at padded positions (guard included).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum GhostMove {
    /// `len` cells from `from` on copied to `to` on.
    Copy { from: usize, to: usize, len: usize },
    /// `len` cells from `at` on set to the constant (cast to the field's dtype).
    Fill { at: usize, len: usize, value: f64 },
}

/// The cells of a field beyond the array's non-periodic edges, within its
/// radius of the chunk, from the boundary rule. Axis by axis, so corners
/// follow the same rule as NumPy's `pad`.
pub(super) fn fill_ghosts(
    lay: &Layout,
    geometry: (&[usize], &[usize], &[usize]),
    radius: &[usize],
    boundary: &[Boundary],
    (buf, shift): (&mut Buffer, usize),
) -> Result<()> {
    let outside = || internal("stencil ghost cells outside their buffer");
    ghost_moves(lay, geometry, radius, boundary, |_, m| match m {
        GhostMove::Fill { at, len, value } => {
            let at = at.checked_sub(shift).ok_or_else(outside)?;
            fill(buf, at, len, Value::F64(value).cast(buf.dtype()))
        }
        GhostMove::Copy { from, to, len } => {
            let (from, to) = (from.checked_sub(shift), to.checked_sub(shift));
            let (from, to) = from.zip(to).ok_or_else(outside)?;
            copy_within(buf, from, to, len)
        }
    })
}

/// [`fill_ghosts`]'s writes, in order, each with its axis: the writes of
/// one axis read only cells no write of that axis changes, so they may run
/// in any order (or at once), but after the previous axis's.
pub(super) fn ghost_moves(
    lay: &Layout,
    (shape, origin, local): (&[usize], &[usize], &[usize]),
    radius: &[usize],
    boundary: &[Boundary],
    mut emit: impl FnMut(usize, GhostMove) -> Result<()>,
) -> Result<()> {
    let nd = shape.len();
    for d in 0..nd {
        let n = shape[d] as i64;
        // An empty axis has no cells to copy from (and no result to feed).
        if boundary[d] == Boundary::Periodic || n == 0 {
            continue;
        }
        let lo = origin[d] as i64 - radius[d] as i64;
        let hi = (origin[d] + local[d] + radius[d]) as i64;
        let ghosts = (lo..0).chain(n.max(lo)..hi);
        let outer: usize = lay.padded[..d].iter().product();
        // Along later axes only the field's own rows (of axis 0) are touched.
        let per_row: usize = lay.padded[1..d.max(1)].iter().product();
        let (o_lo, o_hi) = if d == 0 {
            (0, outer)
        } else {
            let r_lo = (origin[0] as i64 - radius[0] as i64 - lay.start[0]).max(0) as usize;
            let r_hi = ((origin[0] + local[0] + radius[0]) as i64 - lay.start[0]) as usize;
            (r_lo * per_row, (r_hi * per_row).min(outer))
        };
        let inner: usize = lay.padded[d + 1..].iter().product();
        let plane = |x: i64| (x - lay.start[d]) as usize;
        for x in ghosts {
            let src = match boundary[d] {
                Boundary::Constant(_) => None,
                Boundary::Reflect => Some(if x < 0 { -x - 1 } else { 2 * n - 1 - x }),
                _ => Some(if x < 0 { 0 } else { n - 1 }),
            };
            let dst_plane = plane(x);
            match (src, boundary[d]) {
                (None, Boundary::Constant(value)) => {
                    for o in o_lo..o_hi {
                        let at = lay.guard + (o * lay.padded[d] + dst_plane) * inner;
                        emit(
                            d,
                            GhostMove::Fill {
                                at,
                                len: inner,
                                value,
                            },
                        )?;
                    }
                }
                (Some(s), _) => {
                    let src_plane = plane(s.clamp(0, n - 1));
                    for o in o_lo..o_hi {
                        let from = lay.guard + (o * lay.padded[d] + src_plane) * inner;
                        let to = lay.guard + (o * lay.padded[d] + dst_plane) * inner;
                        emit(
                            d,
                            GhostMove::Copy {
                                from,
                                to,
                                len: inner,
                            },
                        )?;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn fill(buf: &mut Buffer, at: usize, n: usize, v: Value) -> Result<()> {
    let ok = match (buf, v) {
        (Buffer::Bool(b), Value::Bool(x)) => b.get_mut(at..at + n).map(|s| s.fill(x)),
        (Buffer::I32(b), Value::I32(x)) => b.get_mut(at..at + n).map(|s| s.fill(x)),
        (Buffer::I64(b), Value::I64(x)) => b.get_mut(at..at + n).map(|s| s.fill(x)),
        (Buffer::F32(b), Value::F32(x)) => b.get_mut(at..at + n).map(|s| s.fill(x)),
        (Buffer::F64(b), Value::F64(x)) => b.get_mut(at..at + n).map(|s| s.fill(x)),
        (Buffer::C128(b), Value::C128(x)) => b.get_mut(at..at + n).map(|s| s.fill(x)),
        _ => None,
    };
    ok.ok_or_else(|| internal("stencil boundary fill out of range"))
}

fn copy_within(buf: &mut Buffer, from: usize, to: usize, n: usize) -> Result<()> {
    let len = buf.len();
    if from.max(to) + n > len {
        return Err(internal("stencil boundary copy out of range"));
    }
    match buf {
        Buffer::Bool(b) => b.copy_within(from..from + n, to),
        Buffer::I32(b) => b.copy_within(from..from + n, to),
        Buffer::I64(b) => b.copy_within(from..from + n, to),
        Buffer::F32(b) => b.copy_within(from..from + n, to),
        Buffer::F64(b) => b.copy_within(from..from + n, to),
        Buffer::C128(b) => b.copy_within(from..from + n, to),
    }
    Ok(())
}

/// Cells within `depth[d]` of either end of axis d (counted around periodic
/// edges) take `old`'s value, inside the level's radius. `out` holds the
/// padded layout from position `shift` on (a band of it), `old` all of it.
fn keep_edges(
    lay: &Layout,
    (shape, origin, local): (&[usize], &[usize], &[usize]),
    radius: &[usize],
    depth: &[usize],
    (old, old_shift): (&Buffer, usize),
    (out, shift): (&mut Buffer, usize),
) -> Result<()> {
    let nd = shape.len();
    if depth.iter().all(|&x| x == 0) {
        return Ok(());
    }
    if nd == 2 {
        let [(lo0, ext0), (lo1, ext1)] =
            [0, 1].map(|d| span(lay, origin[d], local[d], radius[d], d));
        let (lo, ext) = ([lo0, lo1], [ext0, ext1]);
        // Both buffers of one dtype, whichever it is.
        macro_rules! same_dtype {
            ($($v:ident),*) => {
                match (old, &mut *out) {
                    $((Buffer::$v(s), Buffer::$v(d)) => {
                        keep_edges_2d(lay, shape, lo, ext, depth, (s, old_shift), (d, shift))
                    })*
                    _ => None,
                }
            };
        }
        let done = same_dtype!(Bool, I32, I64, F32, F64, C128);
        match done {
            Some(true) => return Ok(()),
            Some(false) => {}
            None => return Err(internal("stencil kept edges out of range")),
        }
    }
    keep_edges_any(
        lay,
        (shape, origin, local),
        radius,
        depth,
        (old, old_shift),
        (out, shift),
    )
}

/// [`keep_edges`] for any number of axes.
fn keep_edges_any(
    lay: &Layout,
    geometry: (&[usize], &[usize], &[usize]),
    radius: &[usize],
    depth: &[usize],
    (old, old_shift): (&Buffer, usize),
    (out, shift): (&mut Buffer, usize),
) -> Result<()> {
    fn keep<T: Copy>(s: &[T], d: &mut [T], (from, to): (usize, usize), n: usize) -> Option<()> {
        let (from, to) = (s.get(from..from + n)?, d.get_mut(to..to + n)?);
        // Usually a cell or two per edge (two where a chunk's halo wraps
        // around the array's end): no memcpy call.
        if n <= 4 {
            for (t, f) in to.iter_mut().zip(from) {
                *t = *f;
            }
        } else {
            to.copy_from_slice(from);
        }
        Some(())
    }
    let ok = kept_spans(lay, geometry, radius, depth, |at, n| {
        let ends = (at.checked_sub(old_shift)?, at.checked_sub(shift)?);
        match (old, &mut *out) {
            (Buffer::Bool(s), Buffer::Bool(d)) => keep(s, d, ends, n),
            (Buffer::I32(s), Buffer::I32(d)) => keep(s, d, ends, n),
            (Buffer::I64(s), Buffer::I64(d)) => keep(s, d, ends, n),
            (Buffer::F32(s), Buffer::F32(d)) => keep(s, d, ends, n),
            (Buffer::F64(s), Buffer::F64(d)) => keep(s, d, ends, n),
            (Buffer::C128(s), Buffer::C128(d)) => keep(s, d, ends, n),
            _ => None,
        }
    });
    ok.ok_or_else(|| internal("stencil kept edges out of range"))
}

/// The cells a level keeps (within `depth[d]` of either end of an axis d,
/// counted around periodic edges, inside the level's radius), as runs
/// (padded position, guard included; length) in order, until `emit` says
/// None.
pub(super) fn kept_spans(
    lay: &Layout,
    (shape, origin, local): (&[usize], &[usize], &[usize]),
    radius: &[usize],
    depth: &[usize],
    mut emit: impl FnMut(usize, usize) -> Option<()>,
) -> Option<()> {
    let nd = shape.len();
    if nd == 0 || depth.iter().all(|&x| x == 0) {
        return Some(());
    }
    // Global range of the level along each axis.
    let (lo, ext): (Vec<i64>, Vec<usize>) = (0..nd)
        .map(|d| span(lay, origin[d], local[d], radius[d], d))
        .unzip();
    if ext.contains(&0) {
        return Some(());
    }
    // Per axis, whether each cell of that range lies within `depth` of an
    // end (counted around periodic edges); the position along the axis is
    // stepped, not divided, per cell.
    let in_band: Vec<Vec<bool>> = (0..nd)
        .map(|d| {
            let n = shape[d] as i64;
            let (m, dep) = (n.max(1), depth[d] as i64);
            let mut c = lo[d].rem_euclid(m);
            (0..ext[d])
                .map(|_| {
                    let kept = c < dep || c >= n - dep;
                    c += 1;
                    if c == m {
                        c = 0;
                    }
                    kept
                })
                .collect()
        })
        .collect();
    let last = nd - 1;
    // The kept columns of the last axis, as runs of consecutive cells.
    let mut col_runs: Vec<(usize, usize)> = Vec::new();
    for i in (0..ext[last]).filter(|&i| in_band[last][i]) {
        match col_runs.last_mut() {
            Some((a, n)) if *a + *n == i => *n += 1,
            _ => col_runs.push((i, 1)),
        }
    }
    let col0 = (lo[last] - lay.start[last]) as usize;
    let base: usize = lay.guard
        + col0 * lay.strides[last]
        + (0..last)
            .map(|d| (lo[d] - lay.start[d]) as usize * lay.strides[d])
            .sum::<usize>();
    // Rows (every axis but the last) are walked in place (no list of them):
    // this runs per level of every task, and a list would be a heap block.
    let run = ext[last];
    let mut idx = vec![0usize; last];
    loop {
        let whole = (0..last).any(|k| in_band[k][idx[k]]);
        let at = base + (0..last).map(|k| idx[k] * lay.strides[k]).sum::<usize>();
        if whole {
            emit(at, run)?;
        } else {
            for &(c, n) in &col_runs {
                emit(at + c, n)?;
            }
        }
        if !shape::next_index(&mut idx, &ext[..last]) {
            return Some(());
        }
    }
}

/// [`keep_edges`] over two axes without a heap block (it runs per level of
/// every task): the kept rows whole, then each run of kept columns down the
/// other rows. None when a copy would fall outside the buffers; false (and
/// nothing copied) when the kept rows or columns form more runs than it tracks.
#[allow(clippy::too_many_arguments)]
fn keep_edges_2d<T: Copy>(
    lay: &Layout,
    shape: &[usize],
    lo: [i64; 2],
    ext: [usize; 2],
    depth: &[usize],
    (s, old_shift): (&[T], usize),
    (d, shift): (&mut [T], usize),
) -> Option<bool> {
    let mut cols = [(0usize, 0usize); MAX_RUNS];
    let mut rows = [(0usize, 0usize); MAX_RUNS];
    let (Some(ncols), Some(nrows)) = (
        kept_runs(lo[1], ext[1], shape[1], depth[1], &mut cols),
        kept_runs(lo[0], ext[0], shape[0], depth[0], &mut rows),
    ) else {
        return Some(false);
    };
    let stride = lay.strides[0];
    let base = lay.guard
        + (lo[0] - lay.start[0]) as usize * stride
        + (lo[1] - lay.start[1]) as usize * lay.strides[1];
    let at = |r: usize| -> Option<(usize, usize)> {
        let at = base + r * stride;
        Some((at.checked_sub(old_shift)?, at.checked_sub(shift)?))
    };
    // Kept rows whole; between them, each kept column walked down the rows
    // (a strided copy per column, not a copy call per row and run).
    let mut row = 0;
    for (kept, kept_len) in rows[..nrows].iter().copied().chain([(ext[0], 0)]) {
        if row < kept {
            let (from, to) = at(row)?;
            let span = (kept - row - 1) * stride + 1;
            for &(c, n) in &cols[..ncols] {
                for c in c..c + n {
                    let src = s.get(from + c..from + c + span)?.iter().step_by(stride);
                    let dst = d.get_mut(to + c..to + c + span)?.iter_mut().step_by(stride);
                    for (t, f) in dst.zip(src) {
                        *t = *f;
                    }
                }
            }
        }
        for r in kept..kept + kept_len {
            let (from, to) = at(r)?;
            d.get_mut(to..to + ext[1])?
                .copy_from_slice(s.get(from..from + ext[1])?);
        }
        row = kept + kept_len;
    }
    Some(true)
}

/// Runs of kept cells most [`keep_edges_2d`] tracks per axis.
const MAX_RUNS: usize = 8;

/// The cells `lo..lo + ext` of an axis of `n` cells that lie within `depth`
/// of an end (positions counted modulo `n`, so around periodic edges), as
/// runs (offset from `lo`, length) in order, worked out per period rather
/// than per cell. None when there are more than `runs` holds.
fn kept_runs(
    lo: i64,
    ext: usize,
    n: usize,
    depth: usize,
    runs: &mut [(usize, usize); MAX_RUNS],
) -> Option<usize> {
    let (n, dep, end) = (n as i64, depth as i64, lo + ext as i64);
    let m = n.max(1);
    // Kept positions within one period: [0, a) and [b, m).
    let (a, b) = (dep.clamp(0, m), (n - dep).clamp(0, m));
    let spans: &[(i64, i64)] = if a >= b { &[(0, m)] } else { &[(0, a), (b, m)] };
    let mut count = 0;
    let mut k = lo.div_euclid(m);
    while k * m < end {
        for &(x, y) in spans {
            let (x, y) = ((k * m + x).max(lo), (k * m + y).min(end));
            if x >= y {
                continue;
            }
            let (at, len) = ((x - lo) as usize, (y - x) as usize);
            match runs[..count].last_mut() {
                Some((s, l)) if *s + *l == at => *l += len,
                _ if count == MAX_RUNS => return None,
                _ => {
                    runs[count] = (at, len);
                    count += 1;
                }
            }
        }
        k += 1;
    }
    Some(count)
}

/// The box `lo..hi` (in the chunk's coordinates) of every column of a chunk:
/// the halo strip a worker serves to a peer's stencil task.
pub fn crop(
    chunk: &crate::buffer::Chunk,
    lo: &[usize],
    hi: &[usize],
) -> Result<crate::buffer::Chunk> {
    let nd = chunk.shape.len();
    if lo.len() != nd || hi.len() != nd || (0..nd).any(|d| lo[d] > hi[d] || hi[d] > chunk.shape[d])
    {
        return Err(Error::Invalid(format!(
            "box {lo:?}..{hi:?} is not inside a chunk of shape {:?}",
            chunk.shape
        )));
    }
    let extent: Vec<usize> = (0..nd).map(|d| hi[d] - lo[d]).collect();
    let src_strides = shape::strides(&chunk.shape);
    let at: usize = lo.iter().zip(&src_strides).map(|(a, s)| a * s).sum();
    let mut cols = Vec::with_capacity(chunk.cols()?.len());
    for col in chunk.cols()? {
        if col.len() != shape::size(&chunk.shape) {
            return Err(Error::Invalid(
                "cannot crop a chunk whose columns are not of its shape".into(),
            ));
        }
        let mut out = Buffer::zeros(col.dtype(), shape::size(&extent));
        copy_box(
            col,
            &src_strides,
            at,
            &mut out,
            &shape::strides(&extent),
            0,
            &extent,
        )?;
        cols.push(out);
    }
    Ok(crate::buffer::Chunk::new(extent, cols))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trailing axes fold while both buffers hold them back to back, and no further.
    #[test]
    fn contiguous_trailing_axes_fold_into_one_run() {
        // A band of whole rows into a result laid out alike: one run.
        assert_eq!(
            fold_contiguous(&[100, 200], &[200, 1], &[200, 1]),
            vec![20000]
        );
        // Rows padded on either side: row by row.
        assert_eq!(
            fold_contiguous(&[100, 200], &[230, 1], &[200, 1]),
            vec![100, 200]
        );
        assert_eq!(
            fold_contiguous(&[100, 200], &[200, 1], &[230, 1]),
            vec![100, 200]
        );
        // Three axes, the last two whole in both, the first padded in one.
        assert_eq!(
            fold_contiguous(&[4, 5, 6], &[40, 6, 1], &[30, 6, 1]),
            vec![4, 30]
        );
        assert_eq!(fold_contiguous(&[7], &[1], &[1]), vec![7]);
        // The folded copy moves the same cells as the row-by-row one.
        let src = Buffer::F64((0..4 * 40).map(|i| i as f64).collect());
        let mut a = Buffer::F64(vec![-1.0; 4 * 30]);
        copy_box(&src, &[40, 6, 1], 3, &mut a, &[30, 6, 1], 0, &[4, 5, 6]).expect("copies");
        let Buffer::F64(got) = &a else { unreachable!() };
        for (i, g) in got.iter().enumerate() {
            assert_eq!(*g, (3 + (i / 30) * 40 + i % 30) as f64);
        }
        let mut out = with_room(DType::F64, 4 * 30);
        append_box(&mut out, &src, &[40, 6, 1], 3, &[4, 5, 6]).expect("appends");
        assert_eq!(out, a);
    }

    /// Whatever the allocator's placement, a level's result is put where no
    /// window it reads trails it by the hazard distance modulo 4 KiB.
    #[test]
    fn results_are_placed_clear_of_their_windows_modulo_4k() {
        let clearance = |ahead: i64| {
            let d = (ahead - ALIAS_HAZARD).rem_euclid(4096);
            d.min(4096 - d)
        };
        let input = Buffer::F64(vec![0.0; 6000]);
        let out = Buffer::F64(vec![0.0; 6000]);
        let (pin, pout) = (start_addr(&input) as i64, start_addr(&out) as i64);
        // Heat's windows: a row (200 cells) up and down, a cell left and right.
        for base in (0..512usize).step_by(7) {
            let around = 1000 + base;
            let windows: Vec<(&Buffer, usize)> =
                [around + 200, around - 200, around + 1, around - 1]
                    .into_iter()
                    .map(|w| (&input, w))
                    .collect();
            let at = 1000;
            let skew = skew_away(&windows, &out, at);
            assert!(skew < SKEW_SLACK, "skew {skew}");
            let out_at = pout + ((at + skew) * 8) as i64;
            assert_eq!(out_at % 64, 0, "the result starts a cache line");
            let worst = windows
                .iter()
                .map(|(_, w)| clearance(pin + (*w * 8) as i64 - out_at))
                .min()
                .expect("windows");
            // Four windows on a 4 KiB circle leave a gap of at least 1 KiB
            // for the result: half of it clear of every one, less the line
            // it is moved back to.
            assert!(worst >= 512 - 64, "clearance {worst} bytes at base {base}");
        }
        // Windows of another cell size drift: nothing to avoid but the
        // line's middle.
        let narrow = Buffer::F32(vec![0.0; 100]);
        let skew = skew_away(&[(&narrow, 3)], &out, 5);
        assert!(skew < 8);
        assert_eq!((pout as usize + (5 + skew) * 8) % 64, 0);
        // A stage input starts its first box on a line too.
        let skew = skew_to_line(&input, 1001);
        assert!(skew < 8);
        assert_eq!((pin as usize + (1001 + skew) * 8) % 64, 0);
    }

    /// Columns beyond the array's end are left out of the layout exactly
    /// where nothing but kept cells reads them.
    #[test]
    fn layouts_stop_at_fixed_column_edges() {
        let kernel = |boundary: Vec<Boundary>, halo: Vec<usize>| StencilKernel {
            boundary,
            halo,
            inputs: Vec::new(),
            levels: Vec::new(),
        };
        let (fixed, unread) = (Boundary::Fixed, Boundary::Periodic);
        // boundary, ghost rule, origin, local: start and padded width of the last axis
        let cases = [
            (fixed, unread, 100, 100, 85, 115),
            (fixed, unread, 0, 100, 0, 115),
            (fixed, unread, 0, 200, 0, 200),
            (fixed, unread, 50, 100, 35, 130),
            (fixed, fixed, 100, 100, 85, 130),
            (Boundary::Reflect, Boundary::Reflect, 100, 100, 85, 130),
            (Boundary::Periodic, unread, 100, 100, 85, 130),
        ];
        for (b, rule, o, l, start, width) in cases {
            let k = kernel(vec![b, b], vec![15, 15]);
            let lay = layout(&k, &[rule, rule], &[200, 200], &[0, o], &[100, l]);
            assert_eq!(lay.start, vec![-15, start], "{b:?} {rule:?} at {o}");
            assert_eq!(lay.padded, vec![130, width], "{b:?} {rule:?} at {o}");
            assert_eq!(lay.guard, 15 * width + 15);
            let (lo, n) = span(&lay, o, l, 3, 1);
            assert_eq!((lo, n), ((o as i64 - 3).max(start), n), "{b:?}");
            assert!(lo + n as i64 <= start + width as i64);
        }
        // One axis: no rows to fall back on, nothing is clipped.
        let k = kernel(vec![fixed], vec![4]);
        let lay = layout(&k, &[unread], &[20], &[0], &[10]);
        assert_eq!((lay.start, lay.padded), (vec![-4], vec![18]));
    }

    /// The two-axis path keeps exactly the cells the general one keeps: plates
    /// whose halos reach past one or both ends (and wrap around a small plate).
    #[test]
    fn kept_edges_over_two_axes_match_the_general_walk() {
        // shape, origin, local, radius (= halo), depth
        let cases: [[[usize; 2]; 5]; 9] = [
            [[200, 200], [0, 100], [100, 100], [3, 3], [1, 1]],
            [[200, 200], [100, 0], [100, 100], [0, 0], [1, 2]],
            [[50, 40], [10, 10], [20, 20], [2, 2], [1, 1]],
            [[3, 5], [0, 0], [3, 5], [4, 7], [1, 2]],
            [[7, 9], [2, 3], [3, 4], [5, 5], [2, 1]],
            // Whole rows, kept columns at both ends (a band of a plate with
            // fixed edges): one run per row seam.
            [[30, 40], [10, 0], [10, 40], [2, 0], [1, 1]],
            [[30, 40], [0, 0], [10, 40], [3, 0], [2, 3]],
            [[30, 40], [20, 0], [10, 40], [0, 0], [1, 2]],
            [[30, 40], [0, 0], [30, 40], [0, 0], [1, 1]],
        ];
        // And a sweep: halos past both ends, wrapping around small plates.
        let mut sweep = Vec::new();
        for n in [1usize, 2, 3, 5, 9, 16] {
            for (o, l) in [(0usize, n), (n / 2, n - n / 2)] {
                for r in [0usize, 1, 3, 7] {
                    for dep in [1usize, 2, 4] {
                        sweep.push([
                            [n, n + 1],
                            [o, 0],
                            [l.max(1), n + 1],
                            [r, r / 2 + 1],
                            [dep, 1],
                        ]);
                    }
                }
            }
        }
        let (mut handled, mut total) = (0, 0);
        for [shape, origin, local, radius, depth] in cases.into_iter().chain(sweep) {
            if origin[0] + local[0] > shape[0] {
                continue;
            }
            total += 1;
            let padded: Vec<usize> = (0..2).map(|d| local[d] + 2 * radius[d]).collect();
            let strides = shape::strides(&padded);
            let guard: usize = (0..2).map(|d| radius[d] * strides[d]).sum();
            let lay = Layout {
                start: (0..2)
                    .map(|d| origin[d] as i64 - radius[d] as i64)
                    .collect(),
                padded,
                strides,
                guard,
            };
            let len = shape::size(&lay.padded) + 2 * lay.guard;
            let old = Buffer::F64((0..len).map(|i| i as f64).collect());
            let mut fast = Buffer::F64(vec![-1.0; len]);
            let mut general = fast.clone();
            keep_edges(
                &lay,
                (&shape, &origin, &local),
                &radius,
                &depth,
                (&old, 0),
                (&mut fast, 0),
            )
            .expect("keeps");
            keep_edges_any(
                &lay,
                (&shape, &origin, &local),
                &radius,
                &depth,
                (&old, 0),
                (&mut general, 0),
            )
            .expect("keeps");
            assert_eq!(
                fast, general,
                "shape {shape:?} origin {origin:?} radius {radius:?}"
            );
            let lo = [0, 1].map(|d| origin[d] as i64 - radius[d] as i64);
            let ext = [0, 1].map(|d| local[d] + 2 * radius[d]);
            let Buffer::F64(o) = &old else { unreachable!() };
            let mut direct = vec![-1.0; len];
            if keep_edges_2d(&lay, &shape, lo, ext, &depth, (o, 0), (&mut direct, 0)) == Some(true)
            {
                handled += 1;
                assert_eq!(Buffer::F64(direct), general);
            }
            let Buffer::F64(v) = &fast else {
                unreachable!()
            };
            // Only the chunk in the plate's interior keeps nothing.
            let interior = shape == [50, 40];
            assert_eq!(v.iter().any(|&x| x >= 0.0), !interior, "shape {shape:?}");
        }
        // Only plates much smaller than their halos wrap into too many runs.
        assert!(
            handled * 10 >= total * 9,
            "the two-axis path took {handled} of {total}"
        );
    }
}
