//! The CPU executor: evaluates a program block by block over one chunk,
//! blocks in parallel on rayon, with registers reused by liveness so the
//! working set of a block stays in L1/L2.

use std::sync::Arc;

use num_complex::Complex64;
use rayon::prelude::*;

use super::generate::{fill_affine_f64, fill_index, generate};
use super::ir::Reg;
use super::ir::{Instr, Program};
use super::ops;
use super::slot::{Slot, View, ViewMut};
use crate::buffer::{Buffer, Element};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::shape::{self, Chunks};

/// Elements per block: small enough that every live register stays in cache.
pub const BLOCK: usize = 512;
/// Elements per parallel work item.
pub const SUPER: usize = BLOCK * 64;

/// A program with its registers mapped onto reusable slots.
#[derive(Clone, Debug)]
pub struct Executable {
    pub program: Program,
    slot_of: Vec<u32>,
    slot_dtypes: Vec<DType>,
    /// The root may be written straight to the output (no later instruction reads it).
    root_to_output: bool,
    /// The bodies of loop instructions, by instruction index.
    loops: Vec<(usize, Executable)>,
    /// Compiled forms, by which inputs are scalars.
    jit: super::jit::Memo,
    /// The interpreter's share of each split compiled form, by its frontier
    /// (built once per stage, not per task).
    staged: StagedMemo,
    /// Per instruction: for a complex modulus read only by one comparison
    /// with a constant, that constant (see [`Program::modulus_comparisons`]).
    proxies: Vec<Option<f64>>,
    /// What binding derives from the program and its inputs' access pattern.
    derived: DerivedMemo,
}

/// What binding the program to inputs read one way derives from the program
/// alone: worked out once per executable and access pattern and shared by
/// every task (a stencil binds once per level of every task).
struct Derived {
    /// Per instruction: the input it reads in place (contiguous real loads).
    direct: Vec<Option<usize>>,
    /// Per instruction: the chain of in-place additions it ends, evaluated in
    /// one pass; and the instructions such chains absorb.
    sums: Vec<Option<super::sum_chain::SumChain>>,
    absorbed: Vec<bool>,
    /// The compiled program, when there is one for these inputs.
    jit: Option<Arc<super::jit::Compiled>>,
    /// For a program split between interpreter and compiled loop: the
    /// interpreter's registers.
    staging: Option<Arc<Executable>>,
}

/// The access pattern of a binding (and whether compiling was on).
type DerivedKey = (Vec<super::jit::Access>, bool);

/// [`Executable::derived`]: a clone starts empty (it fills on first use).
/// The first access pattern bound is kept apart, where bindings borrow it
/// without a lock or a reference count: two threads binding the same
/// kernel once per stencil level each fought over both (a lock and three
/// counters per binding, ~3 % of heat's time on two cores).
#[derive(Default)]
struct DerivedMemo {
    first: std::sync::OnceLock<(DerivedKey, Derived)>,
    others: std::sync::Mutex<Vec<(DerivedKey, Arc<Derived>)>>,
}

/// A binding's [`Derived`]: the memo's first, borrowed, or another, shared.
enum DerivedRef<'a> {
    Borrowed(&'a Derived),
    Shared(Arc<Derived>),
}

impl std::ops::Deref for DerivedRef<'_> {
    type Target = Derived;
    fn deref(&self) -> &Derived {
        match self {
            DerivedRef::Borrowed(d) => d,
            DerivedRef::Shared(d) => d,
        }
    }
}

impl Clone for DerivedMemo {
    fn clone(&self) -> DerivedMemo {
        DerivedMemo::default()
    }
}

impl std::fmt::Debug for DerivedMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DerivedMemo")
    }
}

/// [`Executable::staged`]: a clone starts empty (it fills on first use).
#[derive(Default)]
struct StagedMemo(std::sync::Mutex<Vec<(Vec<Reg>, Arc<Executable>)>>);

impl Clone for StagedMemo {
    fn clone(&self) -> StagedMemo {
        StagedMemo::default()
    }
}

impl std::fmt::Debug for StagedMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StagedMemo")
    }
}

impl Executable {
    pub fn new(program: Program) -> Executable {
        Executable::keeping(program, &[])
    }

    /// An executable whose registers `keep` (besides the root) stay readable
    /// after the last instruction (a loop body's next state and stop flag).
    fn keeping(program: Program, keep: &[Reg]) -> Executable {
        let mut proxies = vec![None; program.instrs.len()];
        for (m, _, c) in program.modulus_comparisons(keep) {
            proxies[m] = Some(c);
        }
        let n = program.instrs.len();
        let mut last_use = vec![0usize; n];
        for (k, ins) in program.instrs.iter().enumerate() {
            for r in ins.operands() {
                last_use[r as usize] = k;
            }
        }
        last_use[program.root as usize] = usize::MAX;
        for &r in keep {
            if let Some(u) = last_use.get_mut(r as usize) {
                *u = usize::MAX;
            }
        }
        let mut slot_of = vec![0u32; n];
        let mut slot_dtypes: Vec<DType> = Vec::new();
        let mut free: Vec<u32> = Vec::new();
        for (k, ins) in program.instrs.iter().enumerate() {
            let dt = program.dtypes[k];
            let pinned = matches!(ins, Instr::Const(_));
            let reuse = if pinned {
                None
            } else {
                free.iter().position(|&s| slot_dtypes[s as usize] == dt)
            };
            slot_of[k] = match reuse {
                Some(p) => free.swap_remove(p),
                None => {
                    slot_dtypes.push(dt);
                    (slot_dtypes.len() - 1) as u32
                }
            };
            // Operands whose last use is this instruction free their slots (after
            // the destination was chosen, so it never aliases an operand).
            for r in ins.operands() {
                if last_use[r as usize] == k
                    && !matches!(program.instrs[r as usize], Instr::Const(_))
                    && !free.contains(&slot_of[r as usize])
                {
                    free.push(slot_of[r as usize]);
                }
            }
            if last_use[k] == 0 && !pinned {
                free.push(slot_of[k]);
            }
        }
        let root = program.root as usize;
        let root_to_output = program.instrs[root + 1..]
            .iter()
            .all(|ins| !ins.operands().contains(&program.root));
        let loops = program
            .instrs
            .iter()
            .enumerate()
            .filter_map(|(k, ins)| match ins {
                Instr::Loop(l) => {
                    let keep: Vec<Reg> = l.next.iter().copied().chain([l.stop]).collect();
                    Some((k, Executable::keeping(l.body.clone(), &keep)))
                }
                _ => None,
            })
            .collect();
        Executable {
            program,
            slot_of,
            slot_dtypes,
            root_to_output,
            loops,
            jit: Default::default(),
            staged: Default::default(),
            proxies,
            derived: Default::default(),
        }
    }

    /// [`Derived`] for inputs read as `access`, from the memo.
    fn derived(&self, access: &[super::jit::Access]) -> DerivedRef<'_> {
        let on = super::jit::enabled();
        let first = || {
            self.derived
                .first
                .get()
                .filter(|(k, _)| k.0 == access && k.1 == on)
                .map(|(_, d)| DerivedRef::Borrowed(d))
        };
        if let Some(d) = first() {
            return d;
        }
        if self.derived.first.get().is_none() {
            // Two threads may both derive it; one of them is kept.
            let _ = self
                .derived
                .first
                .set(((access.to_vec(), on), self.derive(access)));
            if let Some(d) = first() {
                return d;
            }
        }
        if let Ok(memo) = self.derived.others.lock()
            && let Some((_, d)) = memo.iter().find(|(k, _)| k.0 == access && k.1 == on)
        {
            return DerivedRef::Shared(d.clone());
        }
        let d = Arc::new(self.derive(access));
        if let Ok(mut memo) = self.derived.others.lock() {
            memo.push(((access.to_vec(), on), d.clone()));
        }
        DerivedRef::Shared(d)
    }

    fn derive(&self, access: &[super::jit::Access]) -> Derived {
        let p = &self.program;
        let direct: Vec<Option<usize>> = p
            .instrs
            .iter()
            .map(|ins| match ins {
                Instr::Load { input }
                    if access.get(*input as usize) == Some(&super::jit::Access::Contiguous)
                        && p.inputs[*input as usize].dtype != DType::C128 =>
                {
                    Some(*input as usize)
                }
                _ => None,
            })
            .collect();
        let (sums, absorbed) = super::sum_chain::find(p, &direct);
        let jit = if super::jit::enabled() {
            self.jit.get(p, access)
        } else {
            None
        };
        // The interpreter's share of a split program, with the registers it
        // hands over kept readable until the end of the block.
        let staging = jit
            .as_ref()
            .filter(|c| c.split.is_hybrid())
            .map(|c| self.staged(&c.split.frontier));
        Derived {
            direct,
            sums,
            absorbed,
            jit,
            staging,
        }
    }

    /// The slot of register `r`.
    /// Instruction `k`, the unary `op` of `a` over `n` elements: a modulus
    /// that is only compared with a constant is computed only as far as
    /// that comparison needs.
    pub(super) fn unary(
        &self,
        k: usize,
        op: crate::op::UnaryOp,
        a: View<'_>,
        target: ViewMut<'_>,
        n: usize,
    ) -> Result<()> {
        match (self.proxies[k], a, target) {
            (Some(c), View::C128(re, im), ViewMut::F64(o)) => {
                super::hypot::modulus_proxy(&re[..n], &im[..n], c, &mut o[..n]);
                Ok(())
            }
            (_, a, target) => ops::unary(op, a, target),
        }
    }

    pub(super) fn slot_of(&self, r: Reg) -> usize {
        self.slot_of[r as usize] as usize
    }

    /// The compiled body of the loop at instruction `k`, and its scratch's index.
    pub(super) fn nested(&self, k: usize) -> Option<(&Executable, usize)> {
        self.loops
            .iter()
            .position(|(i, _)| *i == k)
            .map(|j| (&self.loops[j].1, j))
    }

    pub(super) fn scratch(&self) -> Scratch {
        self.scratch_rows(BLOCK)
    }

    /// This program as the interpreter runs it when `frontier` must stay
    /// readable (the part of a split program computed before the compiled loop).
    fn staged(&self, frontier: &[Reg]) -> Arc<Executable> {
        let mut memo = self
            .staged
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, e)) = memo.iter().find(|(f, _)| f == frontier) {
            return e.clone();
        }
        let e = Arc::new(Executable::keeping(self.program.clone(), frontier));
        memo.push((frontier.to_vec(), e.clone()));
        e
    }

    /// Registers for blocks of at most `rows` (≤ BLOCK) elements: a tiny
    /// chunk does not clear and free full-size blocks.
    pub(super) fn scratch_rows(&self, rows: usize) -> Scratch {
        let mut slots: Vec<Slot> = self
            .slot_dtypes
            .iter()
            .map(|&d| Slot::new(d, rows))
            .collect();
        for (k, ins) in self.program.instrs.iter().enumerate() {
            if let Instr::Const(v) = ins {
                slots[self.slot_of[k] as usize] = Slot::splat(*v, rows);
            }
        }
        Scratch {
            slots,
            index: vec![0; rows],
            nested: self
                .loops
                .iter()
                .map(|(_, e)| e.scratch_rows(rows))
                .collect(),
        }
    }

    /// Number of physical registers (for tests and diagnostics).
    pub fn slot_count(&self) -> usize {
        self.slot_dtypes.len()
    }
}

/// Per-thread registers of an executable (and of its loop bodies).
#[derive(Default)]
pub(super) struct Scratch {
    pub(super) slots: Vec<Slot>,
    index: Vec<i64>,
    pub(super) nested: Vec<Scratch>,
}

/// How an input is read for one chunk.
enum Access {
    /// Same layout as the output chunk: element = `flat + base`.
    Contiguous,
    /// One element for the whole chunk.
    Scalar,
    /// Broadcast or otherwise strided.
    Strided(Vec<i64>),
}

struct BoundInput<'a> {
    buf: &'a Buffer,
    access: Access,
    /// Position in `buf` of the chunk's first element.
    offset: usize,
}

/// A program bound to one output chunk and its input chunks.
pub struct Bound<'a> {
    exe: &'a Executable,
    inputs: Vec<BoundInput<'a>>,
    /// Per generator instruction: counter of the chunk's first element
    /// (empty for a program without generators).
    gen_base: Vec<i64>,
    /// In-place inputs, sum chains, compiled form (see [`Derived`]).
    derived: DerivedRef<'a>,
    /// Whether to prefetch the next block of in-place inputs (streaming from
    /// memory); stencil windows are read from cache-sized bands instead.
    prefetch: bool,
    /// Whether to run the compiled program where there is one (false: the
    /// interpreter only, see [`Bound::interpreted`]).
    compiled: bool,
    /// Whether results go to memory past the caches (see [`Bound::streaming`]).
    streaming: bool,
    /// Shape of the output chunk.
    pub local_shape: Vec<usize>,
    /// Global coordinate of the chunk's first element (may be negative in stencil halos).
    pub origin: Vec<i64>,
}

impl<'a> Bound<'a> {
    /// `origin` is the global coordinate of the chunk's first element; `inputs`
    /// are the input chunks as (shape, data), in program-input order.
    pub fn new(
        exe: &'a Executable,
        origin: &[usize],
        local_shape: &[usize],
        inputs: &[(&'a [usize], &'a Buffer)],
    ) -> Result<Bound<'a>> {
        let p = &exe.program;
        let nd = p.out_shape.len();
        if inputs.len() != p.inputs.len() || origin.len() != nd || local_shape.len() != nd {
            return Err(internal(format!(
                "kernel with {} inputs over {nd}-d chunks bound to {} inputs, origin {origin:?}, shape {local_shape:?}",
                p.inputs.len(),
                inputs.len()
            )));
        }
        let out_strides = shape::strides(local_shape);
        let mut bound = Vec::with_capacity(inputs.len());
        for (spec, &(cshape, buf)) in p.inputs.iter().zip(inputs) {
            if buf.dtype() != spec.dtype {
                return Err(internal(format!(
                    "input chunk is {} where the kernel expects {}",
                    buf.dtype(),
                    spec.dtype
                )));
            }
            let off = nd - spec.shape.len();
            let mut strides = vec![0i64; nd];
            let cstrides = shape::strides(cshape);
            let mut expect_len = 1;
            for (d, &n) in spec.shape.iter().enumerate() {
                if n != 1 || p.out_shape[off + d] == 1 {
                    if cshape.len() != spec.shape.len() || cshape[d] != local_shape[off + d] {
                        return Err(internal(format!(
                            "input chunk of shape {cshape:?} does not line up with output chunk {local_shape:?}"
                        )));
                    }
                    strides[off + d] = cstrides[d] as i64;
                    expect_len *= cshape[d];
                }
            }
            if buf.len() != expect_len && !(expect_len == 1 && buf.len() == 1) {
                return Err(internal(format!(
                    "input chunk holds {} elements, expected {expect_len}",
                    buf.len()
                )));
            }
            let contiguous = strides
                .iter()
                .zip(&out_strides)
                .zip(local_shape)
                .all(|((&s, &o), &n)| n <= 1 || s == o as i64);
            let access = if strides.iter().all(|&s| s == 0) {
                Access::Scalar
            } else if contiguous {
                Access::Contiguous
            } else {
                Access::Strided(strides)
            };
            bound.push(BoundInput {
                buf,
                access,
                offset: 0,
            });
        }
        let origin: Vec<i64> = origin.iter().map(|&o| o as i64).collect();
        Ok(Bound::assemble(exe, &origin, local_shape, bound))
    }

    /// Binds a program whose every input is laid out exactly like the output
    /// block, starting at the given position of its buffer (stencil levels:
    /// shifted windows of one padded field). `origin` is the global
    /// coordinate of the first element and may lie outside the array.
    pub fn windows(
        exe: &'a Executable,
        origin: &[i64],
        local_shape: &[usize],
        inputs: &[(&'a Buffer, usize)],
    ) -> Result<Bound<'a>> {
        let p = &exe.program;
        let nd = p.out_shape.len();
        let len = shape::size(local_shape);
        if inputs.len() != p.inputs.len() || origin.len() != nd || local_shape.len() != nd {
            return Err(internal(format!(
                "stencil level with {} inputs over {nd}-d boxes bound to {} windows, origin {origin:?}, shape {local_shape:?}",
                p.inputs.len(),
                inputs.len()
            )));
        }
        let mut bound = Vec::with_capacity(inputs.len());
        for (spec, &(buf, offset)) in p.inputs.iter().zip(inputs) {
            if buf.dtype() != spec.dtype || offset + len > buf.len() {
                return Err(internal(format!(
                    "window {offset}..{} of a {} field of {} elements for a {} input",
                    offset + len,
                    buf.dtype(),
                    buf.len(),
                    spec.dtype
                )));
            }
            bound.push(BoundInput {
                buf,
                access: Access::Contiguous,
                offset,
            });
        }
        let mut b = Bound::assemble(exe, origin, local_shape, bound);
        b.prefetch = false;
        Ok(b)
    }

    fn assemble(
        exe: &'a Executable,
        origin: &[i64],
        local_shape: &[usize],
        bound: Vec<BoundInput<'a>>,
    ) -> Bound<'a> {
        let p = &exe.program;
        let has_gen = p.instrs.iter().any(|ins| matches!(ins, Instr::Gen { .. }));
        let gen_base = if has_gen {
            p.instrs
                .iter()
                .map(|ins| match ins {
                    Instr::Gen { base, strides, .. } => {
                        base + origin
                            .iter()
                            .zip(strides)
                            .map(|(&o, &s)| o.wrapping_mul(s))
                            .fold(0i64, i64::wrapping_add)
                    }
                    _ => 0,
                })
                .collect()
        } else {
            Vec::new()
        };
        let access: Vec<super::jit::Access> = bound
            .iter()
            .map(|b| match b.access {
                Access::Contiguous => super::jit::Access::Contiguous,
                Access::Scalar => super::jit::Access::Scalar,
                Access::Strided(_) => super::jit::Access::Strided,
            })
            .collect();
        let derived = exe.derived(&access);
        Bound {
            exe,
            inputs: bound,
            gen_base,
            derived,
            prefetch: true,
            compiled: true,
            streaming: false,
            local_shape: local_shape.to_vec(),
            origin: origin.to_vec(),
        }
    }

    pub fn len(&self) -> usize {
        shape::size(&self.local_shape)
    }

    /// The same binding evaluated by the interpreter only (the reference the
    /// compiled kernels are tested against).
    pub fn interpreted(mut self) -> Self {
        self.compiled = false;
        self
    }

    /// The compiled program this binding runs, if any.
    fn jit(&self) -> Option<&Arc<super::jit::Compiled>> {
        self.derived.jit.as_ref().filter(|_| self.compiled)
    }

    /// For a split compiled program: the interpreter's registers.
    fn staging(&self) -> Option<&Arc<Executable>> {
        self.derived.staging.as_ref().filter(|_| self.compiled)
    }

    /// Writes results with non-temporal stores, computed first into a
    /// cache-resident block: for destinations that are large and not read
    /// back soon (a task writing into the caller's result array), where
    /// ordinary stores would read every destination line from memory first.
    pub fn streaming(mut self, on: bool) -> Self {
        self.streaming = on;
        self
    }

    /// Whether the compiled loop reads values the interpreter computes first.
    pub fn is_split(&self) -> bool {
        self.staging().is_some()
    }

    /// Whether this binding runs compiled code.
    pub fn is_compiled(&self) -> bool {
        self.jit().is_some()
    }

    /// Whether its compiled code also runs four lanes wide (AVX2).
    pub fn is_wide(&self) -> bool {
        self.jit().is_some_and(|c| c.is_wide())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Asks the memory system for the block of every in-place input starting
    /// at `start`: instructions read inputs one after another, so without this
    /// only one input stream is in flight at a time.
    fn prefetch_inputs(&self, start: usize) {
        for i in self.derived.direct.iter().flatten() {
            let at = start + self.inputs[*i].offset;
            let range = at..at + BLOCK;
            match self.inputs[*i].buf {
                Buffer::F64(v) => prefetch(v.get(range).unwrap_or(&[])),
                Buffer::F32(v) => prefetch(v.get(range).unwrap_or(&[])),
                Buffer::I64(v) => prefetch(v.get(range).unwrap_or(&[])),
                Buffer::I32(v) => prefetch(v.get(range).unwrap_or(&[])),
                _ => {}
            }
        }
    }

    /// The value of register `r` for the current block: its slot (in `exe`'s
    /// layout), or the input chunk itself for a contiguous load (read in
    /// place, no copy).
    fn operand_in<'v>(
        &'v self,
        exe: &Executable,
        slots: &'v [Slot],
        r: Reg,
        start: usize,
        n: usize,
    ) -> View<'v> {
        match self.derived.direct[r as usize] {
            Some(i) => buffer_view(self.inputs[i].buf, start + self.inputs[i].offset, n),
            None => slots[exe.slot_of[r as usize] as usize].view(n),
        }
    }

    /// Evaluates elements `start..start + n` (n ≤ BLOCK). When `out` is given
    /// and the root is computed by an operation, the root is written straight
    /// into it and `None` is returned; otherwise the root's value is returned.
    fn eval_block<'s>(
        &'s self,
        sc: &'s mut Scratch,
        start: usize,
        n: usize,
        out: Option<ViewMut<'_>>,
    ) -> Result<Option<View<'s>>> {
        self.eval_with(self.exe, None, sc, start, n, out)
    }

    /// [`Bound::eval_block`] with registers laid out by `exe`, evaluating
    /// only the instructions `only` flags (all when None).
    fn eval_with<'s>(
        &'s self,
        exe: &'s Executable,
        only: Option<&[bool]>,
        sc: &'s mut Scratch,
        start: usize,
        n: usize,
        mut out: Option<ViewMut<'_>>,
    ) -> Result<Option<View<'s>>> {
        let p = &exe.program;
        let mut wrote_root = false;
        for (k, ins) in p.instrs.iter().enumerate() {
            // Sum chains span instructions: not used for a part of the program.
            if self.derived.direct[k].is_some()
                || (only.is_none() && self.derived.absorbed[k])
                || only.is_some_and(|m| !m[k])
            {
                continue;
            }
            let dst = exe.slot_of[k] as usize;
            match ins {
                Instr::Const(_) => continue,
                Instr::Load { input } => {
                    let inp = &self.inputs[*input as usize];
                    load(
                        inp,
                        &self.local_shape,
                        start,
                        n,
                        &mut sc.index,
                        &mut sc.slots[dst],
                    );
                    continue;
                }
                Instr::Gen { kind, strides, .. } => {
                    let base = self.gen_base[k];
                    let direct = match &mut sc.slots[dst] {
                        Slot::F64(o) => fill_affine_f64(
                            kind,
                            base,
                            strides,
                            &self.local_shape,
                            start,
                            &mut o[..n],
                        ),
                        _ => false,
                    };
                    if !direct {
                        fill_index(base, strides, &self.local_shape, start, &mut sc.index[..n]);
                        generate(kind, &sc.index[..n], &mut sc.slots[dst]);
                    }
                    continue;
                }
                _ => {}
            }
            let to_out = k as Reg == p.root && exe.root_to_output && out.is_some();
            let mut slot = if to_out {
                Slot::default()
            } else {
                std::mem::take(&mut sc.slots[dst])
            };
            let target = match (to_out, out.take()) {
                (true, Some(o)) => o,
                (_, o) => {
                    out = o;
                    slot.view_mut(n)
                }
            };
            let v = |r: &Reg| self.operand_in(exe, &sc.slots, *r, start, n);
            let chain = if only.is_none() {
                &self.derived.sums[k]
            } else {
                &None
            };
            let r = match (chain, target) {
                (Some(chain), ViewMut::F64(o)) => self.sum_chain(chain, start, n, o),
                (_, target) => match ins {
                    Instr::Unary(op, a) => exe.unary(k, *op, v(a), target, n),
                    Instr::Binary(op, a, b) => ops::binary(*op, v(a), v(b), target),
                    Instr::Where(c, a, b) => ops::select(v(c), v(a), v(b), target),
                    Instr::Cast(_, a) => ops::cast(v(a), target),
                    Instr::Loop(l) => {
                        let init: Vec<View<'_>> = l.init.iter().map(&v).collect();
                        let captured: Vec<View<'_>> = l.captured.iter().map(&v).collect();
                        match exe.nested(k) {
                            Some((body, j)) => super::loop_exec::run(
                                l,
                                body,
                                &mut sc.nested[j],
                                &init,
                                &captured,
                                n,
                                target,
                            ),
                            None => Err(internal(format!("r{k} has no compiled loop body"))),
                        }
                    }
                    _ => Ok(()),
                },
            };
            if to_out {
                wrote_root = true;
            } else {
                sc.slots[dst] = slot;
            }
            r?;
        }
        if wrote_root {
            return Ok(None);
        }
        Ok(Some(self.operand_in(exe, &sc.slots, p.root, start, n)))
    }

    /// The chain of in-place additions that is the whole program, if it is
    /// one: then one vectorized pass over each piece does all the work (a
    /// wider loop than the compiled one, and no per-block interpretation).
    fn whole_chain(&self) -> Option<&super::sum_chain::SumChain> {
        let p = &self.exe.program;
        let root = p.root as usize;
        let chain = self.derived.sums.get(root)?.as_ref()?;
        let rest_is_operands = p.instrs.iter().enumerate().all(|(k, ins)| {
            k == root
                || self.derived.absorbed.get(k) == Some(&true)
                || matches!(ins, Instr::Load { .. } | Instr::Const(_))
        });
        rest_is_operands.then_some(chain)
    }

    /// One pass of a chain of in-place f64 additions (see `sum_chain`).
    fn sum_chain(
        &self,
        chain: &super::sum_chain::SumChain,
        start: usize,
        n: usize,
        out: &mut [f64],
    ) -> Result<()> {
        let mut terms: Vec<&[f64]> = Vec::with_capacity(chain.terms.len());
        for &i in &chain.terms {
            let inp = &self.inputs[i];
            let at = start + inp.offset;
            match inp.buf {
                Buffer::F64(v) if at + n <= v.len() => terms.push(&v[at..at + n]),
                _ => return Err(internal("sum chain over a non-f64 or short input".into())),
            }
        }
        let out = out
            .get_mut(..n)
            .ok_or_else(|| internal("sum chain block too short".into()))?;
        super::sum_chain::eval(&terms, chain.scale, out);
        Ok(())
    }

    /// Evaluates only the elements at `cols` of every row (`row_len` long) of
    /// the box, into the same positions of `out` (the whole box), row after
    /// row on this thread: stencil levels whose outer columns nothing reads.
    /// False, and nothing written, where the program has no such lean path
    /// (then evaluate the whole box).
    pub fn map_cols_into(
        &self,
        out: OutSlice<'_>,
        row_len: usize,
        cols: std::ops::Range<usize>,
    ) -> Result<bool> {
        const MAX_TERMS: usize = 8;
        let (OutSlice::F64(out), Some(chain)) = (out, self.whole_chain()) else {
            return Ok(false);
        };
        if chain.terms.len() > MAX_TERMS {
            return Ok(false);
        }
        let len = self.len();
        if row_len == 0 || cols.end > row_len || out.len() != len || !len.is_multiple_of(row_len) {
            return Err(internal(format!(
                "columns {cols:?} of rows of {row_len} in a box of {len} elements"
            )));
        }
        let width = cols.len();
        let mut inputs: [(&[f64], usize); MAX_TERMS] = [(&[], 0); MAX_TERMS];
        for (slot, &i) in inputs.iter_mut().zip(&chain.terms) {
            match self.inputs[i].buf {
                Buffer::F64(v) => *slot = (v, self.inputs[i].offset),
                _ => return Err(internal("sum chain over a non-f64 input".into())),
            }
        }
        let inputs = &inputs[..chain.terms.len()];
        for row in 0..len / row_len {
            let start = row * row_len + cols.start;
            let mut terms: [&[f64]; MAX_TERMS] = [&[]; MAX_TERMS];
            for (t, &(v, offset)) in terms.iter_mut().zip(inputs) {
                *t = v
                    .get(offset + start..offset + start + width)
                    .ok_or_else(|| internal("sum chain over a short input".into()))?;
            }
            super::sum_chain::eval(
                &terms[..inputs.len()],
                chain.scale,
                &mut out[start..start + width],
            );
        }
        Ok(true)
    }

    /// Evaluates the chunk into its rows inside a larger result (see [`split_chunks`]).
    pub fn run_map_rows(&self, mut rows: Vec<OutSlice<'_>>) -> Result<()> {
        if rows.len() == 1 {
            return self.run_map_into(rows.remove(0));
        }
        macro_rules! typed {
            ($variant:ident) => {{
                let typed: Vec<_> = rows
                    .into_iter()
                    .map(|r| match r {
                        OutSlice::$variant(s) => Ok(s),
                        other => Err(internal(format!(
                            "rows of mixed dtypes ({})",
                            other.dtype()
                        ))),
                    })
                    .collect::<Result<_>>()?;
                self.map_rows(typed)
            }};
        }
        let dtype = self.root_dtype();
        match rows.first().map(OutSlice::dtype) {
            None => Ok(()),
            Some(d) if d != dtype => Err(internal(format!("{d} rows for a {dtype} kernel"))),
            Some(DType::Bool) => typed!(Bool),
            Some(DType::I32) => typed!(I32),
            Some(DType::I64) => typed!(I64),
            Some(DType::F32) => typed!(F32),
            Some(DType::F64) => typed!(F64),
            Some(DType::C128) => typed!(C128),
        }
    }

    /// Rows of equal length covering the chunk in order. Long rows are
    /// evaluated in place block by block; short rows are grouped, evaluated in
    /// full blocks of the chunk's flat index space and copied into the rows
    /// (a short row would otherwise cut every block short).
    fn map_rows<T: Store>(&self, mut rows: Vec<&mut [T]>) -> Result<()> {
        let row_len = self.local_shape.last().copied().unwrap_or(1);
        if rows.len() * row_len != self.len() || rows.iter().any(|r| r.len() != row_len) {
            return Err(internal(format!(
                "{} rows of the wrong length for a chunk of shape {:?}",
                rows.len(),
                self.local_shape
            )));
        }
        if row_len >= SUPER {
            for (r, row) in rows.into_iter().enumerate() {
                self.map_slice(row, r * row_len)?;
            }
            return Ok(());
        }
        let group = (SUPER / row_len.max(1)).max(1);
        if self.streaming {
            // A group of rows is contiguous in the chunk's own index space:
            // computed there in cache, then streamed row by row.
            return rows.par_chunks_mut(group).enumerate().try_for_each(
                |(g, group_rows)| -> Result<()> {
                    let len = group_rows.len() * row_len;
                    let mut hot = T::take_hot(len);
                    let done = self.map_slice_cached(&mut hot[..len], g * group * row_len);
                    if done.is_ok() {
                        for (row, from) in group_rows.iter_mut().zip(hot.chunks(row_len)) {
                            super::stream::copy_streaming(from, row);
                        }
                        super::stream::fence();
                    }
                    T::give_hot(hot);
                    done
                },
            );
        }
        if let Some(compiled) = self.jit()
            && T::DTYPE == self.root_dtype()
        {
            // Compiled: each row is written in place, a call per row (per
            // block of it for a split program).
            let step = if self.staging().is_some() {
                BLOCK
            } else {
                row_len.max(1)
            };
            return rows.par_chunks_mut(group).enumerate().try_for_each_init(
                || self.staging().map(|s| s.scratch_rows(self.block_rows())),
                |sc, (g, group_rows)| -> Result<()> {
                    for (i, row) in group_rows.iter_mut().enumerate() {
                        let first = (g * group + i) * row_len;
                        for (j, piece) in row.chunks_mut(step).enumerate() {
                            // SAFETY: `piece` holds its length of elements of
                            // the root's dtype (`T::DTYPE` was checked).
                            unsafe {
                                self.run_compiled(
                                    compiled,
                                    sc.as_mut(),
                                    first + j * step,
                                    piece.len(),
                                    piece.as_mut_ptr() as *mut u8,
                                )?
                            };
                        }
                    }
                    Ok(())
                },
            );
        }
        rows.par_chunks_mut(group).enumerate().try_for_each_init(
            || self.exe.scratch_rows(self.block_rows()),
            |sc, (g, group_rows)| -> Result<()> {
                let first = g * group * row_len;
                let len = group_rows.len() * row_len;
                let mut s = 0;
                while s < len {
                    let n = BLOCK.min(len - s);
                    let v = self
                        .eval_block(sc, first + s, n, None)?
                        .ok_or_else(|| internal("block without a value".into()))?;
                    // Copy the block into the rows it spans.
                    let mut k = 0;
                    while k < n {
                        let (r, c) = ((s + k) / row_len, (s + k) % row_len);
                        let m = (row_len - c).min(n - k);
                        T::store(v.sub(k, m), &mut group_rows[r][c..c + m])?;
                        k += m;
                    }
                    s += n;
                }
                Ok(())
            },
        )
    }

    /// Evaluates the whole chunk into caller-provided memory.
    pub fn run_map_into(&self, out: OutSlice<'_>) -> Result<()> {
        let dtype = self.root_dtype();
        let len = self.len();
        let wrong = |got: DType| {
            internal(format!(
                "{got} destination for a {dtype} kernel of {len} elements"
            ))
        };
        match out {
            OutSlice::Bool(o) if dtype == DType::Bool && o.len() == len => self.map_slice(o, 0),
            OutSlice::I32(o) if dtype == DType::I32 && o.len() == len => self.map_slice(o, 0),
            OutSlice::I64(o) if dtype == DType::I64 && o.len() == len => self.map_slice(o, 0),
            OutSlice::F32(o) if dtype == DType::F32 && o.len() == len => self.map_slice(o, 0),
            OutSlice::F64(o) if dtype == DType::F64 && o.len() == len => self.map_slice(o, 0),
            OutSlice::C128(o) if dtype == DType::C128 && o.len() == len => self.map_slice(o, 0),
            other => Err(wrong(other.dtype())),
        }
    }

    /// Evaluates the whole chunk into a new buffer.
    pub fn run_map(&self) -> Result<Buffer> {
        let dtype = self.exe.program.dtypes[self.exe.program.root as usize];
        let len = self.len();
        Ok(match dtype {
            DType::Bool => Buffer::Bool(self.map_into(len)?),
            DType::I32 => Buffer::I32(self.map_into(len)?),
            DType::I64 => Buffer::I64(self.map_into(len)?),
            DType::F32 => Buffer::F32(self.map_into(len)?),
            DType::F64 => Buffer::F64(self.map_into(len)?),
            DType::C128 => Buffer::C128(self.map_into(len)?),
        })
    }

    fn map_into<T: Store>(&self, len: usize) -> Result<Vec<T>> {
        let mut out = T::zeroed(len);
        self.map_slice(&mut out, 0)?;
        Ok(out)
    }

    /// Evaluates elements `offset..offset + out.len()` into `out`.
    pub fn map_slice<T: Store>(&self, out: &mut [T], offset: usize) -> Result<()> {
        if !self.streaming {
            return self.map_slice_cached(out, offset);
        }
        out.par_chunks_mut(SUPER)
            .enumerate()
            .try_for_each(|(si, piece)| -> Result<()> {
                let n = piece.len();
                let mut hot = T::take_hot(n);
                let done = self.map_slice_cached(&mut hot[..n], offset + si * SUPER);
                if done.is_ok() {
                    super::stream::copy_streaming(&hot[..n], piece);
                    super::stream::fence();
                }
                T::give_hot(hot);
                done
            })
    }

    /// [`Bound::map_slice`] with ordinary stores.
    fn map_slice_cached<T: Store>(&self, out: &mut [T], offset: usize) -> Result<()> {
        if let Some(chain) = self.whole_chain() {
            return out
                .par_chunks_mut(SUPER)
                .enumerate()
                .try_for_each(|(si, piece)| match T::view_mut(piece) {
                    Some(ViewMut::F64(o)) => {
                        let n = o.len();
                        self.sum_chain(chain, offset + si * SUPER, n, o)
                    }
                    _ => Err(internal("sum chain into a non-f64 destination".into())),
                });
        }
        if let Some(compiled) = self.jit()
            && T::DTYPE == self.root_dtype()
        {
            return self.map_slice_compiled(compiled, out, offset);
        }
        out.par_chunks_mut(SUPER).enumerate().try_for_each_init(
            || self.exe.scratch_rows(self.block_rows()),
            |sc, (si, piece)| -> Result<()> {
                let base = offset + si * SUPER;
                for (bi, dst) in piece.chunks_mut(BLOCK).enumerate() {
                    let n = dst.len();
                    if self.prefetch {
                        self.prefetch_inputs(base + (bi + 1) * BLOCK);
                    }
                    if let Some(v) = self.eval_block(sc, base + bi * BLOCK, n, T::view_mut(dst))? {
                        T::store(v, dst)?;
                    }
                }
                Ok(())
            },
        )
    }

    /// [`Bound::map_slice`] through the compiled kernel: one call per
    /// parallel piece, or per block when the interpreter computes part of
    /// the program first.
    fn map_slice_compiled<T: Store>(
        &self,
        compiled: &super::jit::Compiled,
        out: &mut [T],
        offset: usize,
    ) -> Result<()> {
        if let Some(staging) = self.staging() {
            return out.par_chunks_mut(SUPER).enumerate().try_for_each_init(
                || staging.scratch_rows(self.block_rows()),
                |sc, (si, piece)| -> Result<()> {
                    let base = offset + si * SUPER;
                    for (bi, dst) in piece.chunks_mut(BLOCK).enumerate() {
                        let (start, n) = (base + bi * BLOCK, dst.len());
                        // SAFETY: `dst` holds `n` elements of the root's dtype
                        // (`T::DTYPE` was checked against it).
                        unsafe {
                            self.call_split(
                                compiled,
                                staging,
                                sc,
                                start,
                                n,
                                dst.as_mut_ptr() as *mut u8,
                            )?
                        };
                    }
                    Ok(())
                },
            );
        }
        out.par_chunks_mut(SUPER)
            .enumerate()
            .try_for_each(|(si, piece)| -> Result<()> {
                let start = offset + si * SUPER;
                let n = piece.len();
                let ptrs = self.input_ptrs(start, n)?;
                // SAFETY: `input_ptrs` checked that every input holds the
                // elements the kernel reads; `piece` holds `n` elements of the
                // root's dtype (`T::DTYPE` was checked against it).
                unsafe { compiled.call(&ptrs, piece.as_mut_ptr() as *mut u8, n) };
                Ok(())
            })
    }

    /// Pointers to the inputs' elements `start..start + n` (a scalar's one
    /// element; a strided input's is null, the compiled loop never reads it).
    fn input_ptrs(&self, start: usize, n: usize) -> Result<Vec<*const u8>> {
        self.inputs
            .iter()
            .map(|inp| match inp.access {
                Access::Scalar => element_ptr(inp.buf, inp.offset, 1),
                Access::Contiguous => element_ptr(inp.buf, inp.offset + start, n),
                Access::Strided(_) => Ok(std::ptr::null()),
            })
            .collect()
    }

    /// One block of a split program: the interpreter's part into `sc`, then
    /// the compiled loop reading it.
    ///
    /// # Safety
    /// `out` points at `n` writable elements of the root's dtype.
    unsafe fn call_split(
        &self,
        compiled: &super::jit::Compiled,
        staging: &Executable,
        sc: &mut Scratch,
        start: usize,
        n: usize,
        out: *mut u8,
    ) -> Result<()> {
        self.eval_with(staging, Some(&compiled.split.staged), sc, start, n, None)?;
        let mut ptrs = self.input_ptrs(start, n)?;
        for &r in &compiled.split.frontier {
            ptrs.push(slot_ptr(&mut sc.slots[staging.slot_of(r)], n)? as *const u8);
        }
        // SAFETY: inputs and staged blocks hold `n` elements each (checked
        // above); the caller vouches for `out`.
        unsafe { compiled.call(&ptrs, out, n) };
        Ok(())
    }

    /// Calls `f(start, root_slot, n)` for every block, in parallel over
    /// fixed parts of `part_len` elements; returns one fold result per part, in order.
    pub fn fold_parts<A: Send>(
        &self,
        part_len: usize,
        init: impl Fn() -> A + Sync,
        f: impl Fn(&mut A, usize, View<'_>, usize) -> Result<()> + Sync,
    ) -> Result<Vec<A>> {
        let len = self.len();
        let nparts = len.div_ceil(part_len.max(1)).max(1);
        let registers = || {
            (
                self.scratch(),
                Slot::new(self.root_dtype(), self.block_rows()),
            )
        };
        let part = |(sc, block): &mut (Scratch, Slot), part: usize| -> Result<A> {
            let mut acc = init();
            let lo = part * part_len;
            let hi = ((part + 1) * part_len).min(len);
            let mut s = lo;
            while s < hi {
                let n = BLOCK.min(hi - s);
                let v = match self.jit() {
                    Some(compiled) => {
                        self.block_compiled(compiled, sc, s, n, block)?;
                        block.view(n)
                    }
                    None => self
                        .eval_block(sc, s, n, None)?
                        .ok_or_else(|| internal("block without a value".into()))?,
                };
                f(&mut acc, s, v, n)?;
                s += n;
            }
            Ok(acc)
        };
        if nparts == 1 {
            // One part: no parallel iterator to set up for a small chunk.
            return Ok(vec![part(&mut registers(), 0)?]);
        }
        (0..nparts)
            .into_par_iter()
            .map_init(registers, part)
            .collect()
    }

    /// Rows of a block register for this chunk: a tiny chunk needs only its length.
    fn block_rows(&self) -> usize {
        BLOCK.min(self.len()).max(1)
    }

    /// Elements `start..start + n` (n ≤ BLOCK) through the compiled kernel,
    /// into `block` (`sc`: the interpreter's registers of a split program).
    fn block_compiled(
        &self,
        compiled: &super::jit::Compiled,
        sc: &mut Scratch,
        start: usize,
        n: usize,
        block: &mut Slot,
    ) -> Result<()> {
        if block.dtype() != self.root_dtype() {
            return Err(internal("compiled block of the wrong dtype".into()));
        }
        let out = slot_ptr(block, n)?;
        // SAFETY: `block` holds at least `n` elements of the root's dtype.
        unsafe { self.run_compiled(compiled, Some(sc), start, n, out) }
    }

    /// Elements `start..start + n` through the compiled kernel into `out`
    /// (for a split program n ≤ BLOCK, and `sc` the interpreter's registers).
    ///
    /// # Safety
    /// `out` points at `n` writable elements of the root's dtype.
    unsafe fn run_compiled(
        &self,
        compiled: &super::jit::Compiled,
        sc: Option<&mut Scratch>,
        start: usize,
        n: usize,
        out: *mut u8,
    ) -> Result<()> {
        if let Some(staging) = self.staging() {
            let Some(sc) = sc.filter(|_| n <= BLOCK) else {
                return Err(internal(format!(
                    "split block of {n} elements without registers"
                )));
            };
            // SAFETY: the caller vouches for `out`.
            return unsafe { self.call_split(compiled, staging, sc, start, n, out) };
        }
        let ptrs = self.input_ptrs(start, n)?;
        // SAFETY: the inputs were checked by `input_ptrs`; the caller vouches
        // for `out`.
        unsafe { compiled.call(&ptrs, out, n) };
        Ok(())
    }

    /// Registers for evaluating blocks: the interpreter's share of a split
    /// program, or the whole program's.
    fn scratch(&self) -> Scratch {
        match (self.staging(), self.jit()) {
            (Some(staging), _) => staging.scratch_rows(self.block_rows()),
            // A whole program compiled uses no interpreter registers.
            (None, Some(_)) => Scratch::default(),
            (None, None) => self.exe.scratch_rows(self.block_rows()),
        }
    }

    /// The value at flat position `i` (used for the shift of variance partials).
    pub fn value_at(&self, i: usize) -> Result<crate::dtype::Value> {
        let mut sc = self.exe.scratch();
        match self.eval_block(&mut sc, i, 1, None)? {
            Some(v) => Ok(v.get(0)),
            None => Err(internal("block without a value".into())),
        }
    }
}

/// The data of a real-valued block register holding at least `n` elements.
fn slot_ptr(slot: &mut Slot, n: usize) -> Result<*mut u8> {
    Ok(match slot {
        Slot::Bool(v) if v.len() >= n => v.as_mut_ptr() as *mut u8,
        Slot::I32(v) if v.len() >= n => v.as_mut_ptr() as *mut u8,
        Slot::I64(v) if v.len() >= n => v.as_mut_ptr() as *mut u8,
        Slot::F32(v) if v.len() >= n => v.as_mut_ptr() as *mut u8,
        Slot::F64(v) if v.len() >= n => v.as_mut_ptr() as *mut u8,
        _ => {
            return Err(internal(
                "compiled block into a complex or short slot".into(),
            ));
        }
    })
}

/// A pointer to element `at` of `buf`, after checking that `n` elements
/// from there exist.
fn element_ptr(buf: &Buffer, at: usize, n: usize) -> Result<*const u8> {
    fn at_of<T>(v: &[T], at: usize, n: usize) -> Result<*const u8> {
        match v.get(at..at + n) {
            Some(s) => Ok(s.as_ptr() as *const u8),
            None => Err(internal(format!(
                "compiled kernel reads {at}..{} of {} elements",
                at + n,
                v.len()
            ))),
        }
    }
    match buf {
        Buffer::Bool(v) => at_of(v, at, n),
        Buffer::I32(v) => at_of(v, at, n),
        Buffer::I64(v) => at_of(v, at, n),
        Buffer::F32(v) => at_of(v, at, n),
        Buffer::F64(v) => at_of(v, at, n),
        Buffer::C128(v) => at_of(v, at, n),
    }
}

/// Prefetches every cache line of `data` into L1.
fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let bytes = std::mem::size_of_val(data);
        let base = data.as_ptr() as *const i8;
        for off in (0..bytes).step_by(64) {
            // SAFETY: `off` stays inside `data`; a prefetch never faults and does
            // not change memory, it only hints the cache.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    base.add(off),
                );
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// Elements `start..start + n` of a real buffer, in place.
fn buffer_view(buf: &Buffer, start: usize, n: usize) -> View<'_> {
    match buf {
        Buffer::Bool(v) => View::Bool(&v[start..start + n]),
        Buffer::I32(v) => View::I32(&v[start..start + n]),
        Buffer::I64(v) => View::I64(&v[start..start + n]),
        Buffer::F32(v) => View::F32(&v[start..start + n]),
        Buffer::F64(v) => View::F64(&v[start..start + n]),
        // Never direct (see `Bound::new`); an empty view keeps this total.
        Buffer::C128(_) => View::C128(&[], &[]),
    }
}

fn load(
    inp: &BoundInput<'_>,
    local_shape: &[usize],
    start: usize,
    n: usize,
    index: &mut [i64],
    dst: &mut Slot,
) {
    let at = start + inp.offset;
    macro_rules! gather {
        ($src:expr, $dst:expr) => {
            match &inp.access {
                Access::Contiguous => $dst[..n].copy_from_slice(&$src[at..at + n]),
                Access::Scalar => {
                    let v = $src[inp.offset];
                    $dst[..n].iter_mut().for_each(|x| *x = v);
                }
                Access::Strided(strides) => {
                    fill_index(0, strides, local_shape, start, &mut index[..n]);
                    for (d, &i) in $dst[..n].iter_mut().zip(&index[..n]) {
                        *d = $src[inp.offset + i as usize];
                    }
                }
            }
        };
    }
    match (inp.buf, dst) {
        (Buffer::Bool(s), Slot::Bool(d)) => gather!(s, d),
        (Buffer::I32(s), Slot::I32(d)) => gather!(s, d),
        (Buffer::I64(s), Slot::I64(d)) => gather!(s, d),
        (Buffer::F32(s), Slot::F32(d)) => gather!(s, d),
        (Buffer::F64(s), Slot::F64(d)) => gather!(s, d),
        (Buffer::C128(s), Slot::C128(re, im)) => {
            let mut tmp = vec![Complex64::new(0.0, 0.0); n];
            gather!(s, tmp);
            for (k, z) in tmp.iter().enumerate() {
                re[k] = z.re;
                im[k] = z.im;
            }
        }
        // Bound::new checked the dtypes.
        _ => {}
    }
}

/// Typed mutable memory a chunk can be written into in place.
#[derive(Debug)]
pub enum OutSlice<'a> {
    Bool(&'a mut [bool]),
    I32(&'a mut [i32]),
    I64(&'a mut [i64]),
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
    C128(&'a mut [Complex64]),
}

impl OutSlice<'_> {
    pub fn dtype(&self) -> DType {
        match self {
            OutSlice::Bool(_) => DType::Bool,
            OutSlice::I32(_) => DType::I32,
            OutSlice::I64(_) => DType::I64,
            OutSlice::F32(_) => DType::F32,
            OutSlice::F64(_) => DType::F64,
            OutSlice::C128(_) => DType::C128,
        }
    }
}

/// Splits a row-major result of chunk grid `chunks` into, for every chunk
/// (by linear index), its rows: the contiguous runs along the last axis that
/// the chunk covers. Tasks then write their chunks in place, concurrently.
pub fn split_chunks<'a>(buf: &'a mut Buffer, chunks: &Chunks) -> Option<Vec<Vec<OutSlice<'a>>>> {
    fn split<'a, T>(
        mut v: &'a mut [T],
        chunks: &Chunks,
        wrap: fn(&'a mut [T]) -> OutSlice<'a>,
    ) -> Option<Vec<Vec<OutSlice<'a>>>> {
        let shape = chunks.shape();
        let grid = chunks.grid();
        let mut out: Vec<Vec<OutSlice<'a>>> = (0..chunks.count()).map(|_| Vec::new()).collect();
        if v.len() != shape::size(&shape) {
            return None;
        }
        if let Some((first, rest)) = chunks.0.split_first()
            && rest.iter().all(|c| c.len() == 1)
        {
            // Chunks of whole rows: each is one contiguous range.
            let inner: usize = shape[1..].iter().product();
            for (piece, &n) in out.iter_mut().zip(first) {
                let (head, tail) = std::mem::take(&mut v).split_at_mut(n * inner);
                piece.push(wrap(head));
                v = tail;
            }
            return Some(out);
        }
        let Some((&row_len, lead)) = shape.split_last() else {
            out[0].push(wrap(v));
            return Some(out);
        };
        let last = shape.len() - 1;
        // Chunk index of every coordinate of each leading axis.
        let owner: Vec<Vec<usize>> = (0..last)
            .map(|d| {
                chunks.0[d]
                    .iter()
                    .enumerate()
                    .flat_map(|(i, &n)| std::iter::repeat_n(i, n))
                    .collect()
            })
            .collect();
        let rows = v.len().checked_div(row_len).unwrap_or(0);
        let mut coord = vec![0usize; last];
        let mut idx = vec![0usize; shape.len()];
        for _ in 0..rows {
            for d in 0..last {
                idx[d] = owner[d][coord[d]];
            }
            for (j, &n) in chunks.0[last].iter().enumerate() {
                idx[last] = j;
                let (head, tail) = std::mem::take(&mut v).split_at_mut(n);
                out[shape::linear_index(&idx, &grid)].push(wrap(head));
                v = tail;
            }
            for d in (0..last).rev() {
                coord[d] += 1;
                if coord[d] < lead[d] {
                    break;
                }
                coord[d] = 0;
            }
        }
        Some(out)
    }
    match buf {
        Buffer::Bool(v) => split(v, chunks, OutSlice::Bool),
        Buffer::I32(v) => split(v, chunks, OutSlice::I32),
        Buffer::I64(v) => split(v, chunks, OutSlice::I64),
        Buffer::F32(v) => split(v, chunks, OutSlice::F32),
        Buffer::F64(v) => split(v, chunks, OutSlice::F64),
        Buffer::C128(v) => split(v, chunks, OutSlice::C128),
    }
}

/// Copies a block register into typed output memory.
pub trait Store: Element {
    fn store(v: View<'_>, dst: &mut [Self]) -> Result<()>;
    /// `dst` as an instruction destination, where the layouts agree.
    fn view_mut(dst: &mut [Self]) -> Option<ViewMut<'_>>;
    /// Zero-filled memory (calloc'd where the type allows, so pages are touched once).
    fn zeroed(len: usize) -> Vec<Self>;
    /// At least `len` elements of this thread's cache-resident block (a new
    /// one when it is already taken); hand it back with [`Store::give_hot`].
    fn take_hot(len: usize) -> Vec<Self>;
    fn give_hot(block: Vec<Self>);
}

/// The hot blocks of [`Store::take_hot`], one per thread and element type.
macro_rules! hot_block {
    ($hot:ident, $zero:expr) => {
        fn take_hot(len: usize) -> Vec<Self> {
            let mut v = $hot.take();
            if v.len() < len {
                v.resize(len, $zero);
            }
            v
        }
        fn give_hot(block: Vec<Self>) {
            $hot.set(block);
        }
    };
}

macro_rules! store_real {
    ($t:ty, $variant:ident, $zero:expr, $hot:ident) => {
        thread_local! {
            static $hot: std::cell::Cell<Vec<$t>> = const { std::cell::Cell::new(Vec::new()) };
        }
        impl Store for $t {
            fn zeroed(len: usize) -> Vec<Self> {
                crate::memory::zeroed_vec($zero, len)
            }
            hot_block!($hot, $zero);
            fn view_mut(dst: &mut [Self]) -> Option<ViewMut<'_>> {
                Some(ViewMut::$variant(dst))
            }
            fn store(v: View<'_>, dst: &mut [Self]) -> Result<()> {
                match v {
                    View::$variant(v) => {
                        dst.copy_from_slice(&v[..dst.len()]);
                        Ok(())
                    }
                    other => Err(internal(format!(
                        "kernel result is {} where {} was expected",
                        other.dtype(),
                        <$t as Element>::DTYPE
                    ))),
                }
            }
        }
    };
}
store_real!(bool, Bool, false, HOT_BOOL);
store_real!(i32, I32, 0i32, HOT_I32);
store_real!(i64, I64, 0i64, HOT_I64);
store_real!(f32, F32, 0.0f32, HOT_F32);
store_real!(f64, F64, 0.0f64, HOT_F64);

thread_local! {
    static HOT_C128: std::cell::Cell<Vec<Complex64>> = const { std::cell::Cell::new(Vec::new()) };
}

impl Store for Complex64 {
    fn zeroed(len: usize) -> Vec<Self> {
        vec![Complex64::new(0.0, 0.0); len]
    }
    hot_block!(HOT_C128, Complex64::new(0.0, 0.0));
    fn view_mut(_: &mut [Self]) -> Option<ViewMut<'_>> {
        None // interleaved storage; registers keep re and im apart
    }
    fn store(v: View<'_>, dst: &mut [Self]) -> Result<()> {
        match v {
            View::C128(re, im) => {
                for (k, d) in dst.iter_mut().enumerate() {
                    *d = Complex64::new(re[k], im[k]);
                }
                Ok(())
            }
            other => Err(internal(format!(
                "kernel result is {} where c128 was expected",
                other.dtype()
            ))),
        }
    }
}

pub(crate) fn internal(message: String) -> Error {
    Error::Task {
        task: "kernel".into(),
        message: format!("internal error: {message}"),
    }
}

impl Bound<'_> {
    /// dtype of the program's result register.
    /// Shape of the whole array the kernel computes chunks of.
    pub fn global_shape(&self) -> &[usize] {
        &self.exe.program.out_shape
    }

    pub fn root_dtype(&self) -> DType {
        self.exe.program.dtypes[self.exe.program.root as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::Value;
    use crate::kernel::ir::{InputSpec, ProgramBuilder};
    use crate::op::BinaryOp;

    /// x + 1 + 1 + … over an input.
    fn chain(len: usize) -> Executable {
        let mut b = ProgramBuilder::new();
        let mut r = b.input(InputSpec {
            dtype: DType::F64,
            shape: vec![10],
        });
        let one = b.push(Instr::Const(Value::F64(1.0)), DType::F64);
        for _ in 0..len {
            r = b.push(Instr::Binary(BinaryOp::Add, r, one), DType::F64);
        }
        Executable::new(b.finish(r, vec![10]))
    }

    #[test]
    fn registers_are_reused_along_a_chain() {
        let exe = chain(1000);
        // The constant, the input and two alternating temporaries.
        assert!(exe.slot_count() <= 4, "{} slots", exe.slot_count());
        let data = Buffer::F64((0..10).map(f64::from).collect());
        let bound = Bound::new(&exe, &[0], &[10], &[(&[10], &data)]).unwrap();
        assert_eq!(
            bound.run_map().unwrap(),
            Buffer::F64((1000..1010).map(f64::from).collect())
        );
    }

    #[test]
    fn results_land_in_caller_memory() {
        let exe = chain(3);
        let data = Buffer::F64(vec![2.0; 10]);
        let bound = Bound::new(&exe, &[0], &[10], &[(&[10], &data)]).unwrap();
        let mut out = vec![0.0; 10];
        bound.run_map_into(OutSlice::F64(&mut out)).unwrap();
        assert_eq!(out, vec![5.0; 10]);
        let mut wrong = vec![0.0f32; 10];
        assert!(bound.run_map_into(OutSlice::F32(&mut wrong)).is_err());
    }

    /// `x * 2 + 1` (or `x * 2 + 1 > 0`) over a 2-d chunk of `shape`.
    fn affine_2d(shape: [usize; 2], compare: bool) -> Executable {
        let mut b = ProgramBuilder::new();
        let x = b.input(InputSpec {
            dtype: DType::F64,
            shape: shape.to_vec(),
        });
        let two = b.push(Instr::Const(Value::F64(2.0)), DType::F64);
        let one = b.push(Instr::Const(Value::F64(1.0)), DType::F64);
        let m = b.push(Instr::Binary(BinaryOp::Mul, x, two), DType::F64);
        let mut r = b.push(Instr::Binary(BinaryOp::Add, m, one), DType::F64);
        if compare {
            let zero = b.push(Instr::Const(Value::F64(0.0)), DType::F64);
            r = b.push(Instr::Binary(BinaryOp::Gt, r, zero), DType::Bool);
        }
        Executable::new(b.finish(r, shape.to_vec()))
    }

    #[test]
    fn streamed_results_equal_cached_ones() {
        // Short rows (grouped), rows longer than a parallel piece, one row.
        for shape in [[3000, 7], [2, SUPER + 5], [1, 3 * SUPER + 1]] {
            let n = shape[0] * shape[1];
            let data = Buffer::F64((0..n).map(|i| (i as f64).sin() * 1e3).collect());
            for compare in [false, true] {
                let exe = affine_2d(shape, compare);
                let bind = |stream: bool| {
                    Bound::new(&exe, &[0, 0], &shape, &[(&shape, &data)])
                        .unwrap()
                        .streaming(stream)
                };
                // Each chunk row inside a wider row of a larger result, at an odd offset.
                let stride = shape[1] + 3;
                let mut results = Vec::new();
                for stream in [false, true] {
                    let mut whole = Buffer::zeros(
                        exe.program.dtypes[exe.program.root as usize],
                        shape[0] * stride + 1,
                    );
                    let rows: Vec<OutSlice<'_>> = match &mut whole {
                        Buffer::F64(v) => v[1..]
                            .chunks_mut(stride)
                            .map(|r| OutSlice::F64(&mut r[..shape[1]]))
                            .collect(),
                        Buffer::Bool(v) => v[1..]
                            .chunks_mut(stride)
                            .map(|r| OutSlice::Bool(&mut r[..shape[1]]))
                            .collect(),
                        _ => unreachable!(),
                    };
                    bind(stream).run_map_rows(rows).unwrap();
                    results.push(whole);
                }
                assert_eq!(results[0], results[1], "rows of {shape:?}");
                let compact: Vec<Buffer> = [false, true].map(|s| bind(s).run_map().unwrap()).into();
                assert_eq!(compact[0], compact[1], "chunk of {shape:?}");
                if let (Buffer::F64(w), Buffer::F64(c)) = (&results[1], &compact[0]) {
                    assert_eq!(w[1..1 + shape[1]], c[..shape[1]]);
                }
            }
        }
    }

    #[test]
    fn column_ranges_of_a_sum_chain_equal_the_whole_box() {
        let (rows, row_len) = (4, 40);
        let mut b = ProgramBuilder::new();
        let spec = InputSpec {
            dtype: DType::F64,
            shape: vec![rows, row_len],
        };
        let [x, y, z] = [0, 1, 2].map(|_| b.input(spec.clone()));
        let s = b.push(Instr::Binary(BinaryOp::Add, x, y), DType::F64);
        let s = b.push(Instr::Binary(BinaryOp::Add, s, z), DType::F64);
        let c = b.push(Instr::Const(Value::F64(0.25)), DType::F64);
        let r = b.push(Instr::Binary(BinaryOp::Mul, s, c), DType::F64);
        let exe = Executable::new(b.finish(r, vec![rows, row_len]));
        let field = Buffer::F64((0..300).map(|i| (i as f64 * 0.7).cos()).collect());
        let windows = [(&field, 0), (&field, 1), (&field, row_len + 1)];
        let bound = Bound::windows(&exe, &[0, 0], &[rows, row_len], &windows).unwrap();
        let mut whole = vec![0.0; rows * row_len];
        bound.run_map_into(OutSlice::F64(&mut whole)).unwrap();
        let mut part = vec![f64::NAN; rows * row_len];
        assert!(
            bound
                .map_cols_into(OutSlice::F64(&mut part), row_len, 5..30)
                .unwrap()
        );
        for (i, (p, w)) in part.iter().zip(&whole).enumerate() {
            match (5..30).contains(&(i % row_len)) {
                true => assert_eq!(p.to_bits(), w.to_bits(), "element {i}"),
                false => assert!(p.is_nan(), "element {i} outside the columns was written"),
            }
        }
        assert!(
            bound
                .map_cols_into(OutSlice::F64(&mut part), row_len, 5..41)
                .is_err()
        );
        // Not a sum chain: no lean path, nothing written.
        let other = chain(2);
        let data = Buffer::F64(vec![1.0; 10]);
        let plain = Bound::new(&other, &[0], &[10], &[(&[10], &data)]).unwrap();
        let mut untouched = vec![f64::NAN; 10];
        assert!(
            !plain
                .map_cols_into(OutSlice::F64(&mut untouched), 5, 0..2)
                .unwrap()
        );
        assert!(untouched.iter().all(|v| v.is_nan()));
    }

    /// `((a + b) + c) * w` over `n` elements, and the same with `tail` more
    /// instructions after it (then not a chain on its own).
    fn weighted_sum(n: usize, w: f64, tail: bool) -> Executable {
        let mut b = ProgramBuilder::new();
        let spec = InputSpec {
            dtype: DType::F64,
            shape: vec![n],
        };
        let [x, y, z] = [0, 1, 2].map(|_| b.input(spec.clone()));
        let s = b.push(Instr::Binary(BinaryOp::Add, x, y), DType::F64);
        let s = b.push(Instr::Binary(BinaryOp::Add, s, z), DType::F64);
        let c = b.push(Instr::Const(Value::F64(w)), DType::F64);
        let mut r = b.push(Instr::Binary(BinaryOp::Mul, s, c), DType::F64);
        if tail {
            r = b.push(Instr::Unary(crate::op::UnaryOp::Sqrt, r), DType::F64);
        }
        Executable::new(b.finish(r, vec![n]))
    }

    #[test]
    fn a_program_that_is_one_sum_chain_runs_as_one_pass_with_the_same_bits() {
        // Past one piece (SUPER) so the pass is split, with an odd tail.
        let n = SUPER + 1234;
        let special = [
            f64::NAN,
            f64::INFINITY,
            -f64::INFINITY,
            -0.0,
            0.0,
            1e308,
            -1e-310,
        ];
        let col = |seed: u64| -> Vec<f64> {
            (0..n as u64)
                .map(|i| {
                    let h = crate::kernel::generate::mix64(i ^ seed.wrapping_mul(0x9e37));
                    if h.is_multiple_of(7) {
                        special[(h >> 8) as usize % special.len()]
                    } else {
                        (h >> 11) as f64 / (1u64 << 40) as f64 - 4096.0
                    }
                })
                .collect()
        };
        let cols = [col(1), col(2), col(3)];
        // Bit for bit, NaN payloads aside (as everywhere: which operand's
        // NaN an instruction passes on is the compiler's choice).
        let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan();
        let bufs: Vec<Buffer> = cols.iter().cloned().map(Buffer::F64).collect();
        let shape = [n];
        let inputs: Vec<(&[usize], &Buffer)> = bufs.iter().map(|b| (&shape[..], b)).collect();
        for w in [0.25, -3.0, f64::NAN] {
            let exe = weighted_sum(n, w, false);
            let bound = Bound::new(&exe, &[0], &[n], &inputs).unwrap();
            assert!(bound.whole_chain().is_some());
            let Buffer::F64(got) = bound.run_map().unwrap() else {
                panic!("float64 result expected")
            };
            for i in 0..n {
                let want = ((cols[0][i] + cols[1][i]) + cols[2][i]) * w;
                assert!(same(got[i], want), "element {i}, w = {w}");
            }
        }
        // More than the chain: evaluated instruction by instruction, and
        // the chain's bits still under the square root.
        let exe = weighted_sum(n, 0.5, true);
        let bound = Bound::new(&exe, &[0], &[n], &inputs).unwrap();
        assert!(bound.whole_chain().is_none());
        let Buffer::F64(got) = bound.run_map().unwrap() else {
            panic!("float64 result expected")
        };
        for i in 0..n {
            let want = (((cols[0][i] + cols[1][i]) + cols[2][i]) * 0.5).sqrt();
            assert!(same(got[i], want), "element {i}");
        }
    }

    #[test]
    fn misaligned_inputs_are_an_error_not_a_panic() {
        let exe = chain(1);
        let data = Buffer::F64(vec![2.0; 7]);
        assert!(Bound::new(&exe, &[0], &[10], &[(&[7], &data)]).is_err());
        let ints = Buffer::I64(vec![2; 10]);
        assert!(Bound::new(&exe, &[0], &[10], &[(&[10], &ints)]).is_err());
    }
}
