//! Runs loop instructions (user kernels with early exits) over one block:
//! the block's elements iterate together, and after every trip the ones that
//! stopped leave, their result written out, and the others are compacted,
//! so a trip costs only as much as the elements still running it.

use super::exec::{Executable, Scratch};
use super::ir::{Instr, LoopInstr, Reg};
use super::ops;
use super::slot::{Slot, View, ViewMut};
use crate::error::{Error, Result};

fn internal(msg: String) -> Error {
    super::exec::internal(format!("loop: {msg}"))
}

/// Runs `l` for the `n` elements whose initial state and captured values are
/// `init` and `captured`, writing each element's result into `out`.
pub(super) fn run(
    l: &LoopInstr,
    body: &Executable,
    sc: &mut Scratch,
    init: &[View<'_>],
    captured: &[View<'_>],
    n: usize,
    mut out: ViewMut<'_>,
) -> Result<()> {
    let copy = |views: &[View<'_>]| -> Vec<Slot> {
        views
            .iter()
            .map(|v| {
                let mut s = Slot::new(v.dtype(), n);
                gather_into(*v, None, &mut s);
                s
            })
            .collect()
    };
    let (mut state, mut captured) = (copy(init), copy(captured));
    let spare =
        |slots: &[Slot]| -> Vec<Slot> { slots.iter().map(|s| Slot::new(s.dtype(), n)).collect() };
    let (mut state_next, mut captured_next) = (spare(&state), spare(&captured));
    let mut lanes: Vec<u32> = (0..n as u32).collect();
    let mut trip_counter = vec![0i64; n];
    let (mut keep, mut done): (Vec<u32>, Vec<u32>) = (Vec::with_capacity(n), Vec::new());
    let result = l.result as usize;
    let mut m = n;
    for trip in 0..l.max_trips {
        if m == 0 {
            break;
        }
        trip_counter[..m].fill(i64::from(trip));
        {
            let inputs: Vec<View<'_>> = state
                .iter()
                .map(|s| s.view(m))
                .chain([View::I64(&trip_counter[..m])])
                .chain(captured.iter().map(|s| s.view(m)))
                .collect();
            eval(body, sc, &inputs, m)?;
            let View::Bool(stop) = value(body, sc, &inputs, l.stop, m) else {
                return Err(internal("stop flag is not bool".into()));
            };
            // Split without a branch per element (the stop flags of a
            // diverging fractal are unpredictable): each index is written to
            // both lists and only one of them advances.
            // Counted first (a vectorized pass): a trip where nothing stops
            // moves nothing.
            let stopped = stop.iter().filter(|&&s| s).count();
            keep.clear();
            done.clear();
            if stopped > 0 {
                // One slot of slack: the write past the last kept index.
                keep.resize(m - stopped + 1, 0);
                done.resize(stopped + 1, 0);
                let (mut nk, mut nd) = (0, 0);
                for (i, &s) in stop.iter().enumerate() {
                    keep[nk] = i as u32;
                    done[nd] = i as u32;
                    nk += usize::from(!s);
                    nd += usize::from(s);
                }
                keep.truncate(nk);
                done.truncate(nd);
            }
            let finished = value(body, sc, &inputs, l.next[result], m);
            scatter(finished, &done, &lanes, &mut out)?;
            let moved = (!done.is_empty()).then_some(keep.as_slice());
            for (k, &r) in l.next.iter().enumerate() {
                gather_into(value(body, sc, &inputs, r, m), moved, &mut state_next[k]);
            }
            if !done.is_empty() {
                for (k, c) in captured.iter().enumerate() {
                    gather_into(c.view(m), Some(&keep), &mut captured_next[k]);
                }
            }
        }
        std::mem::swap(&mut state, &mut state_next);
        if done.is_empty() {
            continue; // every element goes on: nothing moves
        }
        std::mem::swap(&mut captured, &mut captured_next);
        // `keep` is increasing and keep[w] ≥ w: compacting forwards is safe.
        for (w, &i) in keep.iter().enumerate() {
            lanes[w] = lanes[i as usize];
        }
        m = keep.len();
    }
    // Out of trips: the elements still running keep their last state.
    let rest: Vec<u32> = (0..m as u32).collect();
    scatter(state[result].view(m), &rest, &lanes, &mut out)
}

/// The value of body register `r` over the first `m` elements.
fn value<'v>(
    exe: &'v Executable,
    sc: &'v Scratch,
    inputs: &[View<'v>],
    r: Reg,
    m: usize,
) -> View<'v> {
    match exe.program.instrs[r as usize] {
        Instr::Load { input } => inputs[input as usize].sub(0, m),
        _ => sc.slots[exe.slot_of(r)].view(m),
    }
}

/// Evaluates a loop body over `m` elements whose inputs are `inputs`.
fn eval(exe: &Executable, sc: &mut Scratch, inputs: &[View<'_>], m: usize) -> Result<()> {
    for (k, ins) in exe.program.instrs.iter().enumerate() {
        if matches!(ins, Instr::Load { .. } | Instr::Const(_)) {
            continue;
        }
        let dst = exe.slot_of(k as Reg);
        let mut slot = std::mem::take(&mut sc.slots[dst]);
        let target = slot.view_mut(m);
        let r = {
            let v = |r: &Reg| match exe.program.instrs[*r as usize] {
                Instr::Load { input } => inputs[input as usize].sub(0, m),
                _ => sc.slots[exe.slot_of(*r)].view(m),
            };
            match ins {
                Instr::Unary(op, a) => exe.unary(k, *op, v(a), target, m),
                Instr::Binary(op, a, b) => ops::binary(*op, v(a), v(b), target),
                Instr::Where(c, a, b) => ops::select(v(c), v(a), v(b), target),
                Instr::Cast(_, a) => ops::cast(v(a), target),
                Instr::Loop(inner) => {
                    let init: Vec<View<'_>> = inner.init.iter().map(&v).collect();
                    let captured: Vec<View<'_>> = inner.captured.iter().map(&v).collect();
                    match exe.nested(k) {
                        Some((body, j)) => {
                            run(inner, body, &mut sc.nested[j], &init, &captured, m, target)
                        }
                        None => Err(internal(format!("r{k} has no compiled body"))),
                    }
                }
                Instr::Gen { .. } | Instr::Load { .. } | Instr::Const(_) => {
                    Err(internal(format!("r{k} cannot run inside a loop body")))
                }
            }
        };
        sc.slots[dst] = slot;
        r?;
    }
    Ok(())
}

/// `dst[w] = src[idx[w]]` (or `dst[..] = src` without `idx`).
fn gather_into(src: View<'_>, idx: Option<&[u32]>, dst: &mut Slot) {
    fn pick<T: Copy>(src: &[T], idx: Option<&[u32]>, dst: &mut [T]) {
        match idx {
            None => dst[..src.len()].copy_from_slice(src),
            Some(idx) => {
                for (d, &i) in dst.iter_mut().zip(idx) {
                    *d = src[i as usize];
                }
            }
        }
    }
    match (src, dst) {
        (View::Bool(s), Slot::Bool(d)) => pick(s, idx, d),
        (View::I32(s), Slot::I32(d)) => pick(s, idx, d),
        (View::I64(s), Slot::I64(d)) => pick(s, idx, d),
        (View::F32(s), Slot::F32(d)) => pick(s, idx, d),
        (View::F64(s), Slot::F64(d)) => pick(s, idx, d),
        (View::C128(sr, si), Slot::C128(dr, di)) => {
            pick(sr, idx, dr);
            pick(si, idx, di);
        }
        // Dtypes are fixed by the compiler and checked by `Program::validate`.
        (s, d) => *d = Slot::new(s.dtype(), 0),
    }
}

/// `out[lanes[i]] = src[i]` for every `i` in `idx`.
fn scatter(src: View<'_>, idx: &[u32], lanes: &[u32], out: &mut ViewMut<'_>) -> Result<()> {
    fn put<T: Copy>(src: &[T], idx: &[u32], lanes: &[u32], out: &mut [T]) {
        for &i in idx {
            out[lanes[i as usize] as usize] = src[i as usize];
        }
    }
    match (src, out) {
        (View::Bool(s), ViewMut::Bool(o)) => put(s, idx, lanes, o),
        (View::I32(s), ViewMut::I32(o)) => put(s, idx, lanes, o),
        (View::I64(s), ViewMut::I64(o)) => put(s, idx, lanes, o),
        (View::F32(s), ViewMut::F32(o)) => put(s, idx, lanes, o),
        (View::F64(s), ViewMut::F64(o)) => put(s, idx, lanes, o),
        (View::C128(sr, si), ViewMut::C128(or, oi)) => {
            put(sr, idx, lanes, or);
            put(si, idx, lanes, oi);
        }
        (s, o) => {
            return Err(internal(format!(
                "a {} result into a {} register",
                s.dtype(),
                o.dtype()
            )));
        }
    }
    Ok(())
}
