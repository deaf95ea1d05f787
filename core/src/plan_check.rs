//! Validation of plans that come from elsewhere (e.g. over the wire): after
//! `Plan::validate`, expanding and running any task of the plan returns
//! errors, never panics.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::infer;
use crate::kernel::Executable;
use crate::kernel::reduce::acc_dtype;
use crate::op::{Meta, ReduceSpec};
use crate::plan::{Finalize, Plan, Stage, StageKind};
use crate::shape::{self, Chunks};

fn bad(stage: usize, msg: impl std::fmt::Display) -> Error {
    Error::Graph(format!("invalid plan: stage {stage}: {msg}"))
}

/// Most tasks one plan may expand into (the runtime keeps a few words per task).
pub const MAX_TASKS: usize = 1 << 28;

impl Plan {
    /// Checks every stage against its inputs, in order.
    pub fn validate(&self) -> Result<()> {
        let mut tasks = 0usize;
        for st in &self.stages {
            let n = st
                .meta
                .chunks
                .0
                .iter()
                .try_fold(1usize, |a, c| a.checked_mul(c.len()));
            tasks = match n.and_then(|n| tasks.checked_add(n)) {
                Some(t) if t <= MAX_TASKS => t,
                _ => {
                    return Err(Error::Graph(format!(
                        "invalid plan: more than {MAX_TASKS} tasks"
                    )));
                }
            };
        }
        // A stage like an earlier (valid) one needs only its own inputs' order checked.
        let same = self.same_as_earlier();
        for (i, st) in self.stages.iter().enumerate() {
            let checked = if same[i].is_some() {
                check_order(i, st)
            } else {
                check_stage(self, i, st)
            };
            checked.map_err(|e| match e {
                Error::Graph(m) if m.starts_with("invalid plan") => Error::Graph(m),
                other => bad(i, other),
            })?;
        }
        if let Some(o) = self.outputs.iter().find(|o| o.index() >= self.stages.len()) {
            return Err(Error::Graph(format!(
                "invalid plan: output stage {} does not exist",
                o.0
            )));
        }
        for (s, sink) in &self.sinks {
            let st = self.stages.get(s.index()).ok_or_else(|| {
                Error::Graph(format!(
                    "invalid plan: written stage {} does not exist",
                    s.0
                ))
            })?;
            let array = match &st.kind {
                StageKind::Partial { finalize, .. } | StageKind::Combine { finalize, .. } => {
                    finalize.is_some()
                }
                _ => true,
            };
            if !array {
                return Err(Error::Graph(format!(
                    "invalid plan: stage {} holds partial reductions, which cannot be written",
                    s.0
                )));
            }
            sink.check(&st.meta.shape, st.meta.dtype)
                .map_err(|e| Error::Graph(format!("invalid plan: {e}")))?;
        }
        Ok(())
    }
}

fn check_meta(i: usize, m: &Meta) -> Result<()> {
    shape::checked_size(&m.shape).map_err(|e| bad(i, e))?;
    check_cover(i, m)
}

/// A reduction's iteration space is never stored: only its axes are
/// bounded, not its element count (a matmul's m × n × k can pass 2⁵³).
fn check_region(i: usize, m: &Meta) -> Result<()> {
    if m.shape.len() > shape::MAX_NDIM {
        return Err(bad(i, format!("a region of {} axes", m.shape.len())));
    }
    check_cover(i, m)
}

fn check_cover(i: usize, m: &Meta) -> Result<()> {
    if m.chunks.0.len() != m.shape.len()
        || m.chunks.shape() != m.shape
        || m.chunks
            .0
            .iter()
            .zip(&m.shape)
            .any(|(c, &n)| c.is_empty() || (n > 0 && c.contains(&0)))
    {
        return Err(bad(
            i,
            format!("chunks {:?} do not cover shape {:?}", m.chunks.0, m.shape),
        ));
    }
    Ok(())
}

/// Stage `i` reads only stages before it.
fn check_order(i: usize, st: &Stage) -> Result<()> {
    match st.inputs.iter().find(|s| s.index() >= i) {
        Some(s) => Err(bad(
            i,
            format!("reads stage {}, which does not come before it", s.0),
        )),
        None => Ok(()),
    }
}

fn check_stage(plan: &Plan, i: usize, st: &Stage) -> Result<()> {
    check_meta(i, &st.meta)?;
    check_order(i, st)?;
    let inputs: Vec<&Meta> = st
        .inputs
        .iter()
        .map(|s| &plan.stages[s.index()].meta)
        .collect();
    let arity = |n: usize| {
        if inputs.len() == n {
            Ok(())
        } else {
            Err(bad(
                i,
                format!("{} takes {n} inputs, got {}", st.kind_name(), inputs.len()),
            ))
        }
    };
    let same = |want: Meta| {
        if want == st.meta {
            Ok(())
        } else {
            Err(bad(i, format!("declares {} but computes {want}", st.meta)))
        }
    };
    match &st.kind {
        StageKind::Persisted { .. } => arity(0)?,
        StageKind::Held(h) => {
            arity(0)?;
            h.validate().map_err(|e| bad(i, e))?;
            if h.meta != st.meta {
                return Err(bad(i, "persisted data does not match its declared meta"));
            }
        }
        StageKind::Remote(r) => {
            arity(0)?;
            if r.shape != st.meta.shape || r.dtype != st.meta.dtype {
                return Err(bad(
                    i,
                    "remote source does not match its declared shape and dtype",
                ));
            }
        }
        StageKind::Read(s) => {
            arity(0)?;
            if s.shape != st.meta.shape || s.dtype != st.meta.dtype {
                return Err(bad(
                    i,
                    "stored array does not match its declared shape and dtype",
                ));
            }
        }
        StageKind::Source(h) => {
            arity(0)?;
            if h.shape != st.meta.shape
                || h.data.dtype() != st.meta.dtype
                || h.data.len() != shape::size(&h.shape)
            {
                return Err(bad(
                    i,
                    "source data does not match its declared shape and dtype",
                ));
            }
        }
        StageKind::Map(exe) => check_kernel(i, exe, &inputs, &st.meta, st.meta.dtype)?,
        StageKind::Partial {
            exe,
            spec,
            finalize,
            region,
        } => {
            check_region(i, region)?;
            let state = infer::reduce(region, spec)?;
            check_kernel(i, exe, &inputs, region, acc_dtype(spec.op, region.dtype))?;
            let grid = region.chunks.grid();
            check_reduction_output(i, spec, finalize, &grid, region, &state, &st.meta)?;
        }
        StageKind::MatMul {
            dtype,
            spec,
            finalize,
            region,
        } => {
            arity(2)?;
            check_region(i, region)?;
            let (a, b) = (inputs[0], inputs[1]);
            let product = infer::matmul(a, b, spec.split_every)?;
            let sum_last =
                spec.op == crate::op::ReduceOp::Sum && spec.axes == [2] && !spec.keepdims;
            if !sum_last
                || region.shape != [a.shape[0], b.shape[1], a.shape[1]]
                || region.dtype != *dtype
                || *dtype != DType::promote(a.dtype, b.dtype)
            {
                return Err(bad(i, "matmul iteration space does not match its operands"));
            }
            let state = infer::reduce(region, spec)?;
            if state.dtype != product.dtype {
                return Err(bad(i, "matmul result dtype differs from its sum's"));
            }
            let grid = region.chunks.grid();
            check_reduction_output(i, spec, finalize, &grid, region, &state, &st.meta)?;
        }
        StageKind::MapBlocks(_) => {
            if inputs.is_empty() {
                return Err(bad(i, "map_blocks takes at least one input"));
            }
            crate::blocks::infer(&inputs, &st.meta)?;
        }
        StageKind::Scan { op, axis, phase } => {
            check_scan(i, plan, st, &inputs, *op, *axis, *phase)?
        }
        StageKind::Combine {
            spec,
            fan_in,
            finalize,
        } => {
            arity(1)?;
            let input = inputs[0];
            let nd = input.shape.len();
            if !matches!(
                plan.stages[st.inputs[0].index()].kind,
                StageKind::Partial { .. } | StageKind::Combine { .. } | StageKind::MatMul { .. }
            ) {
                return Err(bad(i, "combine reads a stage that is not a reduction"));
            }
            // Fan-in merges chunks along reduced axes only, and is bounded so
            // that the chunk ranges it spans cannot overflow.
            let kept_merged = (0..nd).any(|d| !spec.axes.contains(&d) && fan_in.get(d) != Some(&1));
            if fan_in.len() != nd
                || fan_in.contains(&0)
                || fan_in.iter().any(|&f| f > u32::MAX as usize)
                || kept_merged
                || spec.axes.iter().any(|&a| a >= nd)
            {
                return Err(bad(
                    i,
                    format!(
                        "fan-in {fan_in:?} or axes {:?} do not fit {nd} axes",
                        spec.axes
                    ),
                ));
            }
            let grid: Vec<usize> = input
                .chunks
                .grid()
                .iter()
                .zip(fan_in)
                .map(|(&g, &f)| g.div_ceil(f))
                .collect();
            // The region as far as the output can tell: the input's grid along kept axes.
            let region = Meta {
                dtype: match finalize {
                    Some(f) => f.dtype,
                    None => input.dtype,
                },
                ..input.clone()
            };
            let state = infer::reduce(&region, spec).or_else(|_| {
                infer::reduce(
                    &Meta {
                        dtype: DType::F64,
                        ..region.clone()
                    },
                    spec,
                )
            })?;
            check_reduction_output(i, spec, finalize, &grid, &region, &state, &st.meta)?;
        }
        StageKind::Remap(map) => {
            arity(1)?;
            same(infer::remap(
                inputs[0],
                map,
                &st.meta.shape,
                Some(st.meta.chunks.clone()),
            )?)?;
        }
        StageKind::Concat { axis } => same(infer::concat(&inputs, *axis)?)?,
        StageKind::Stencil(k) => check_stencil(i, k, &inputs, &st.meta)?,
        StageKind::Reshape => {
            arity(1)?;
            infer::reshape(inputs[0], &st.meta.shape)?;
            if inputs[0].dtype != st.meta.dtype {
                return Err(bad(i, "reshape changes the dtype"));
            }
        }
    }
    Ok(())
}

/// A scan stage computes what its phase says from what the phase before made.
fn check_scan(
    i: usize,
    plan: &Plan,
    st: &crate::plan::Stage,
    inputs: &[&Meta],
    op: crate::op::ReduceOp,
    axis: usize,
    phase: crate::plan::ScanPhase,
) -> Result<()> {
    use crate::plan::ScanPhase;
    let is_phase = |k: usize, want: ScanPhase| {
        matches!(plan.stages[st.inputs[k].index()].kind,
            StageKind::Scan { op: o, axis: a, phase: p } if o == op && a == axis && p == want)
    };
    let ok = match (phase, inputs) {
        (ScanPhase::Local, [m]) => {
            let want = infer::scan(m, op, axis)?;
            want.shape == st.meta.shape && want.dtype == st.meta.dtype
        }
        (ScanPhase::Carry, [m]) => {
            let mut shape = m.shape.clone();
            let along = m.chunks.0.get(axis).map_or(0, Vec::len);
            if axis < shape.len() {
                shape[axis] = along;
            }
            let mut chunks = m.chunks.0.clone();
            if axis < chunks.len() {
                chunks[axis] = vec![1; along];
            }
            is_phase(0, ScanPhase::Local)
                && st.meta.shape == shape
                && st.meta.chunks.0 == chunks
                && st.meta.dtype == m.dtype
        }
        (ScanPhase::Apply, [m, _]) => {
            is_phase(0, ScanPhase::Local) && is_phase(1, ScanPhase::Carry) && st.meta == **m
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(bad(
            i,
            format!("scan {phase:?} stage does not follow from its inputs"),
        ))
    }
}

/// A stencil's levels are valid programs over the stage's shape, its inputs
/// have that shape, its reads stay within its halo, and its halo within the array.
fn check_stencil(
    i: usize,
    k: &crate::stencil::StencilKernel,
    inputs: &[&Meta],
    out: &Meta,
) -> Result<()> {
    let nd = out.shape.len();
    if k.ndim() != nd || nd == 0 {
        return Err(bad(i, "stencil halo does not match the array"));
    }
    let empty = out.shape.contains(&0);
    if !empty && k.halo.iter().zip(&out.shape).any(|(&h, &n)| h > n.max(1)) {
        return Err(bad(i, "stencil halo wider than the array"));
    }
    if inputs.iter().any(|m| m.shape != out.shape) {
        return Err(bad(i, "stencil input of another shape"));
    }
    let dtypes: Vec<DType> = inputs.iter().map(|m| m.dtype).collect();
    k.validate(&dtypes).map_err(|m| bad(i, m))?;
    for level in &k.levels {
        let p = &level.exe.program;
        p.validate()?;
        if p.out_shape != out.shape || p.inputs.iter().any(|s| s.shape != out.shape) {
            return Err(bad(i, "stencil level over another shape"));
        }
    }
    if k.levels.last().map(|l| l.dtype()) != Some(out.dtype) {
        return Err(bad(i, "stencil computes another dtype than declared"));
    }
    Ok(())
}

/// A kernel over `space` whose inputs broadcast to it.
fn check_kernel(
    i: usize,
    exe: &Executable,
    inputs: &[&Meta],
    space: &Meta,
    root: DType,
) -> Result<()> {
    let p = &exe.program;
    p.validate()?;
    // Fused reads are read by the task, not fed by a stage.
    let fed: Vec<&crate::kernel::ir::InputSpec> = p
        .inputs
        .iter()
        .enumerate()
        .filter(|(k, _)| !p.stored.iter().any(|(s, _)| *s as usize == *k))
        .map(|(_, spec)| spec)
        .collect();
    if p.out_shape != space.shape || fed.len() != inputs.len() {
        return Err(bad(
            i,
            "kernel iteration space or inputs do not match the stage",
        ));
    }
    if p.dtypes[p.root as usize] != root {
        return Err(bad(
            i,
            format!(
                "kernel computes {} where {root} is needed",
                p.dtypes[p.root as usize]
            ),
        ));
    }
    for (spec, m) in fed.into_iter().zip(inputs) {
        if spec.shape != m.shape || spec.dtype != m.dtype {
            return Err(bad(
                i,
                format!("kernel input {:?} {} fed by {m}", spec.shape, spec.dtype),
            ));
        }
        // Any chunking is read box by box; the shapes must broadcast.
        let (shape, _) = infer::broadcast_metas(&[space, *m])?;
        if shape != space.shape {
            return Err(bad(i, format!("input {m} does not broadcast to {space}")));
        }
    }
    Ok(())
}

/// The output of a partial or combine stage: a state grid, or the finalized result.
fn check_reduction_output(
    i: usize,
    spec: &ReduceSpec,
    finalize: &Option<Finalize>,
    grid: &[usize],
    region: &Meta,
    result: &Meta,
    declared: &Meta,
) -> Result<()> {
    let Some(f) = finalize else {
        let mut chunks = region.chunks.0.clone();
        let mut shape = region.shape.clone();
        for &ax in &spec.axes {
            chunks[ax] = vec![1; grid[ax]];
            shape[ax] = grid[ax];
        }
        if declared.shape != shape || declared.chunks != Chunks(chunks) {
            return Err(bad(i, "partial state grid does not match the reduction"));
        }
        return Ok(());
    };
    if spec.axes.iter().any(|&ax| grid[ax] != 1) {
        return Err(bad(i, "finalizes before the reduced axes are combined"));
    }
    if f.dtype != result.dtype {
        return Err(bad(
            i,
            format!("finalizes to {} instead of {}", f.dtype, result.dtype),
        ));
    }
    match &f.epilogue {
        None if declared.shape == result.shape
            && declared.chunks == result.chunks
            && declared.dtype == result.dtype =>
        {
            Ok(())
        }
        None => Err(bad(
            i,
            format!("declares {declared} but the reduction gives {result}"),
        )),
        Some(exe) => {
            if declared.shape != result.shape || declared.chunks != result.chunks {
                return Err(bad(i, "epilogue changes the shape of the reduction"));
            }
            check_kernel(i, exe, &[result], declared, declared.dtype)
        }
    }
}
