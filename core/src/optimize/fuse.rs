//! Fusion and lowering: every maximal region of elementwise nodes becomes one
//! kernel (a `Map` stage), a region feeding a reduction is evaluated inside the
//! reduction's per-chunk step, and generated leaves are recomputed wherever
//! they are used instead of being stored.

use crate::fast_hash::FastMap;
use std::sync::Arc;

use crate::DType;
use crate::error::{Error, Result};
use crate::graph::{Graph, NodeId};
use crate::kernel::{Executable, compile::compile, reduce::acc_dtype};
use crate::op::{Meta, Op, ReduceOp, ReduceSpec};
use crate::plan::{Finalize, Plan, ScanPhase, Stage, StageId, StageKind};
use crate::shape::Chunks;

use super::group::{self, Assign, LowerOptions};
use super::stencil;

/// Lowers an (optimized) graph into stages.
pub fn lower(graph: &Graph) -> Result<Plan> {
    lower_with(graph, &LowerOptions::default())
}

/// [`lower`] with options.
pub fn lower_with(graph: &Graph, opts: &LowerOptions) -> Result<Plan> {
    if opts.keep_loop_chunks {
        return lower_graph(graph, opts, false);
    }
    lower_graph(
        &super::band::band_loops(graph, opts.cores, !opts.gpu)?,
        opts,
        false,
    )
}

/// Lowers the steps of an `iterate` (see `repeat`): the step's input becomes
/// a placeholder stage.
fn lower_steps(graph: &Graph, opts: &LowerOptions) -> Result<Plan> {
    lower_graph(graph, opts, true)
}

fn lower_graph(graph: &Graph, opts: &LowerOptions, steps: bool) -> Result<Plan> {
    let n = graph.len();
    let live = graph.live();
    let mut consumers: Vec<Vec<NodeId>> = vec![Vec::new(); n];
    for (i, node) in graph.nodes.iter().enumerate() {
        if live[i] {
            for inp in &node.inputs {
                consumers[inp.index()].push(NodeId(i as u32));
            }
        }
    }
    let mut is_output = vec![false; n];
    for o in &graph.outputs {
        is_output[o.index()] = true;
    }

    let loops = crate::loops::Index::new(graph)?;
    let assign = group::assign(graph, &live, &consumers, &is_output, opts, &loops);

    let mut plan = Plan::default();
    let mut stage_of: FastMap<NodeId, StageId> = FastMap::default();
    let mut members: FastMap<NodeId, Vec<NodeId>> = FastMap::default();
    for (i, a) in assign.iter().enumerate() {
        if let Assign::Group(g) = a {
            members.entry(*g).or_default().push(NodeId(i as u32));
        }
    }
    let fused = fused_reads(graph, &live, &is_output, &consumers, &assign, &members);
    for i in 0..n {
        let id = NodeId(i as u32);
        if assign[i] != Assign::Group(id) {
            continue;
        }
        let node = graph.node(id);
        if fused[i] {
            continue; // Read by the tasks of the kernel that consumes it.
        }
        let group_nodes = members.remove(&id).unwrap_or_default();
        let label = if stencil_group(graph, &group_nodes) || node.op.is_elementwise() {
            String::new()
        } else {
            region_label(graph, &group_nodes)
        };
        let input_stages = |ids: &[NodeId]| -> Result<Vec<StageId>> {
            ids.iter()
                .map(|x| {
                    stage_of.get(x).copied().ok_or_else(|| {
                        Error::Graph(format!("node {} is read before it is computed", x.0))
                    })
                })
                .collect()
        };
        let inline = |x: NodeId| match assign[x.index()] {
            Assign::Inline => true,
            Assign::Group(g) => g == id && x != id || (x == id && node.op.is_elementwise()),
            Assign::Dead => false,
        };
        let stencil = stencil_group(graph, &group_nodes);
        let stage = match &node.op {
            _ if stencil => {
                let (kernel, ext) =
                    stencil::lower_stencil(graph, id, &group_nodes, &assign, &loops)?;
                let ops: Vec<String> = kernel
                    .levels
                    .iter()
                    .flat_map(|l| l.exe.program.op_names())
                    .collect();
                Stage {
                    kind: StageKind::Stencil(Arc::new(kernel)),
                    inputs: input_stages(&ext)?,
                    meta: node.meta.clone(),
                    nodes: group_nodes,
                    label: format!("stencil: {}", summarize(&ops)),
                    cache: Default::default(),
                }
            }
            Op::Source(h) => Stage {
                kind: StageKind::Source(h.clone()),
                inputs: vec![],
                meta: node.meta.clone(),
                nodes: group_nodes,
                label,
                cache: Default::default(),
            },
            Op::Persisted(p) => Stage {
                kind: StageKind::Persisted {
                    job: p.job,
                    stage: p.stage,
                },
                inputs: vec![],
                meta: node.meta.clone(),
                nodes: group_nodes,
                label: format!("persisted by job {}", p.job),
                cache: Default::default(),
            },
            Op::Held(h) => Stage {
                kind: StageKind::Held(h.clone()),
                inputs: vec![],
                meta: node.meta.clone(),
                nodes: group_nodes,
                label: "persisted".into(),
                cache: Default::default(),
            },
            Op::Read(s) => Stage {
                kind: StageKind::Read(s.clone()),
                inputs: vec![],
                meta: node.meta.clone(),
                nodes: group_nodes,
                label: format!("read {}", s.path.display()),
                cache: Default::default(),
            },
            op if op.is_elementwise() => {
                let (program, ext) = compile(graph, id, &inline, &node.meta.shape, None, &loops)?;
                let (program, ext) = take_reads(graph, &fused, program, ext);
                let label = summarize(&program.op_names());
                // An elementwise tail over a reduction's result alone runs in the
                // reduction's last task.
                if let [r] = ext.as_slice()
                    && matches!(graph.node(*r).op, Op::Reduce(_) | Op::MatMul { .. })
                    && !is_output[r.index()]
                    && graph.node(*r).meta.chunks == node.meta.chunks
                    && consumers[r.index()]
                        .iter()
                        .all(|c| assign[c.index()] == Assign::Group(id))
                    && let Some(&last) = stage_of.get(r)
                    && attach_epilogue(
                        &mut plan.stages[last.index()],
                        program.clone(),
                        node,
                        &label,
                    )
                {
                    stage_of.insert(id, last);
                    continue;
                }
                Stage {
                    kind: StageKind::Map(Arc::new(Executable::new(program))),
                    inputs: input_stages(&ext)?,
                    meta: node.meta.clone(),
                    nodes: group_nodes,
                    label,
                    cache: Default::default(),
                }
            }
            Op::Reduce(spec) => {
                let src = node.inputs[0];
                let region = graph.node(src).meta.clone();
                let acc = acc_dtype(spec.op, region.dtype);
                let (program, ext) =
                    compile(graph, src, &inline, &region.shape, Some(acc), &loops)?;
                let (program, ext) = take_reads(graph, &fused, program, ext);
                let label = summarize(&program.op_names());
                let inputs = input_stages(&ext)?;
                let exe = Arc::new(Executable::new(program));
                let last = push_reduction(
                    &mut plan,
                    spec,
                    |spec, finalize, region| StageKind::Partial {
                        exe,
                        spec,
                        finalize,
                        region,
                    },
                    inputs,
                    region,
                    &node.meta,
                    group_nodes,
                    format!("{label} → {} partial", spec.op.name()),
                );
                stage_of.insert(id, last);
                continue;
            }
            Op::MatMul { split_every } => {
                let (a, b) = (graph.node(node.inputs[0]), graph.node(node.inputs[1]));
                let dtype = DType::promote(a.meta.dtype, b.meta.dtype);
                let region = Meta {
                    shape: vec![a.meta.shape[0], b.meta.shape[1], a.meta.shape[1]],
                    dtype,
                    chunks: Chunks(vec![
                        a.meta.chunks.0[0].clone(),
                        b.meta.chunks.0[1].clone(),
                        a.meta.chunks.0[1].clone(),
                    ]),
                };
                let spec = ReduceSpec {
                    op: ReduceOp::Sum,
                    axes: vec![2],
                    keepdims: false,
                    split_every: *split_every,
                };
                let last = push_reduction(
                    &mut plan,
                    &spec,
                    |spec, finalize, region| StageKind::MatMul {
                        dtype,
                        spec,
                        finalize,
                        region,
                    },
                    input_stages(&node.inputs)?,
                    region,
                    &node.meta,
                    group_nodes,
                    "matmul blocks".into(),
                );
                stage_of.insert(id, last);
                continue;
            }
            Op::Scan { op, axis } => {
                let last = push_scan(
                    &mut plan,
                    *op,
                    *axis,
                    input_stages(&node.inputs)?,
                    node,
                    group_nodes,
                    label,
                );
                stage_of.insert(id, last);
                continue;
            }
            Op::Remap(m) => Stage {
                kind: StageKind::Remap(m.clone()),
                inputs: input_stages(&node.inputs)?,
                meta: node.meta.clone(),
                nodes: group_nodes,
                label,
                cache: Default::default(),
            },
            Op::MapBlocks(call) => Stage {
                kind: StageKind::MapBlocks(call.clone()),
                inputs: input_stages(&node.inputs)?,
                meta: node.meta.clone(),
                nodes: group_nodes,
                label: format!("map_blocks({})", call.name),
                cache: Default::default(),
            },
            Op::Concat { axis } => Stage {
                kind: StageKind::Concat { axis: *axis },
                inputs: input_stages(&node.inputs)?,
                meta: node.meta.clone(),
                nodes: group_nodes,
                label,
                cache: Default::default(),
            },
            Op::Reshape => Stage {
                kind: StageKind::Reshape,
                inputs: input_stages(&node.inputs)?,
                meta: node.meta.clone(),
                nodes: group_nodes,
                label,
                cache: Default::default(),
            },
            Op::RepeatArg if steps => super::repeat::placeholder(&node.meta),
            Op::RepeatArg => {
                return Err(Error::Graph(
                    "an iterate step's input is used outside the step".into(),
                ));
            }
            Op::Repeat(r) => {
                let input = input_stages(&node.inputs)?[0];
                let out = super::repeat::expand(&mut plan, r, input, id, &lower_steps, opts)?;
                stage_of.insert(id, out);
                continue;
            }
            other => {
                return Err(Error::Graph(format!("cannot lower {}", other.label())));
            }
        };
        plan.stages.push(stage);
        stage_of.insert(id, StageId((plan.stages.len() - 1) as u32));
    }
    plan.outputs = graph
        .outputs
        .iter()
        .map(|o| {
            stage_of
                .get(o)
                .copied()
                .ok_or_else(|| Error::Graph(format!("output node {} was not lowered", o.0)))
        })
        .collect::<Result<_>>()?;
    Ok(plan)
}

/// The stages of a blocked scan: each chunk scanned, then (with more than one
/// chunk along the axis) a chain of carries and their application.
fn push_scan(
    plan: &mut Plan,
    op: ReduceOp,
    axis: usize,
    inputs: Vec<StageId>,
    node: &crate::graph::Node,
    nodes: Vec<NodeId>,
    label: String,
) -> StageId {
    let mut push = |kind: StageKind, inputs: Vec<StageId>, meta: Meta, what: &str| {
        plan.stages.push(Stage {
            kind,
            inputs,
            meta,
            nodes: nodes.clone(),
            label: format!("{label} {what}"),
            cache: Default::default(),
        });
        StageId((plan.stages.len() - 1) as u32)
    };
    let scan = |phase| StageKind::Scan { op, axis, phase };
    let local = push(
        scan(ScanPhase::Local),
        inputs,
        node.meta.clone(),
        "(chunks)",
    );
    let along = node.meta.chunks.0[axis].len();
    if along <= 1 {
        return local;
    }
    let mut carry_meta = node.meta.clone();
    carry_meta.shape[axis] = along;
    carry_meta.chunks.0[axis] = vec![1; along];
    let carry = push(scan(ScanPhase::Carry), vec![local], carry_meta, "(carries)");
    push(
        scan(ScanPhase::Apply),
        vec![local, carry],
        node.meta.clone(),
        "(apply)",
    )
}

/// Makes `program` the epilogue of a reduction's finalizing stage, if it has none yet.
fn attach_epilogue(
    stage: &mut Stage,
    program: crate::kernel::Program,
    node: &crate::graph::Node,
    label: &str,
) -> bool {
    let (StageKind::Partial {
        finalize: Some(f), ..
    }
    | StageKind::MatMul {
        finalize: Some(f), ..
    }
    | StageKind::Combine {
        finalize: Some(f), ..
    }) = &mut stage.kind
    else {
        return false;
    };
    if f.epilogue.is_some() {
        return false;
    }
    f.epilogue = Some(Arc::new(Executable::new(program)));
    stage.meta = node.meta.clone();
    stage.label = format!("{} → {label}", stage.label);
    true
}

/// The partial stage and the combine tree of a reduction; returns the last stage.
#[allow(clippy::too_many_arguments)]
fn push_reduction(
    plan: &mut Plan,
    spec: &ReduceSpec,
    first: impl FnOnce(ReduceSpec, Option<Finalize>, Meta) -> StageKind,
    inputs: Vec<StageId>,
    region: Meta,
    result: &Meta,
    nodes: Vec<NodeId>,
    label: String,
) -> StageId {
    let nd = region.shape.len();
    let mut grid: Vec<usize> = region.chunks.grid();
    let state_meta = |grid: &[usize]| {
        let mut chunks = region.chunks.0.clone();
        let mut shape = region.shape.clone();
        for &ax in &spec.axes {
            chunks[ax] = vec![1; grid[ax]];
            shape[ax] = grid[ax];
        }
        Meta {
            shape,
            dtype: result.dtype,
            chunks: Chunks(chunks),
        }
    };
    let done = |grid: &[usize]| spec.axes.iter().all(|&ax| grid[ax] <= 1);
    let finished = done(&grid);
    let finalize = finished.then_some(Finalize {
        dtype: result.dtype,
        epilogue: None,
    });
    plan.stages.push(Stage {
        kind: first(spec.clone(), finalize, region.clone()),
        inputs,
        meta: if finished {
            result.clone()
        } else {
            state_meta(&grid)
        },
        nodes: nodes.clone(),
        label,
        cache: Default::default(),
    });
    let mut last = StageId((plan.stages.len() - 1) as u32);
    while !done(&grid) {
        let busy = spec.axes.iter().filter(|&&ax| grid[ax] > 1).count().max(1);
        let per_axis = (spec.split_every as f64).powf(1.0 / busy as f64).floor() as usize;
        let mut fan_in = vec![1; nd];
        for &ax in &spec.axes {
            if grid[ax] > 1 {
                // No more than the chunks there are: one level merges them all.
                fan_in[ax] = per_axis.clamp(2, grid[ax]);
                grid[ax] = grid[ax].div_ceil(fan_in[ax]);
            }
        }
        let finished = done(&grid);
        plan.stages.push(Stage {
            kind: StageKind::Combine {
                spec: spec.clone(),
                fan_in,
                finalize: finished.then_some(Finalize {
                    dtype: result.dtype,
                    epilogue: None,
                }),
            },
            inputs: vec![last],
            meta: if finished {
                result.clone()
            } else {
                state_meta(&grid)
            },
            nodes: nodes.clone(),
            label: format!("{} combine", spec.op.name()),
            cache: Default::default(),
        });
        last = StageId((plan.stages.len() - 1) as u32);
    }
    last
}

/// Stored reads whose every consumer is in one elementwise or reduction
/// kernel (not a stencil, not an output): that kernel's tasks read them
/// themselves, so they get no tasks of their own.
fn fused_reads(
    graph: &Graph,
    live: &[bool],
    is_output: &[bool],
    consumers: &[Vec<NodeId>],
    assign: &[Assign],
    members: &FastMap<NodeId, Vec<NodeId>>,
) -> Vec<bool> {
    (0..graph.len())
        .map(|i| {
            if !live[i] || is_output[i] || !matches!(graph.nodes[i].op, Op::Read(_)) {
                return false;
            }
            let mut groups = consumers[i].iter().map(|c| assign[c.index()]);
            let Some(Assign::Group(g)) = groups.next() else {
                return false;
            };
            let kernel =
                graph.node(g).op.is_elementwise() || matches!(graph.node(g).op, Op::Reduce(_));
            kernel
                && groups.all(|a| a == Assign::Group(g))
                && !stencil_group(graph, members.get(&g).map_or(&[], Vec::as_slice))
        })
        .collect()
}

/// Moves the fused reads among a kernel's external inputs into the program
/// (the task reads them); returns the inputs that stay stage inputs.
fn take_reads(
    graph: &Graph,
    fused: &[bool],
    mut program: crate::kernel::Program,
    ext: Vec<NodeId>,
) -> (crate::kernel::Program, Vec<NodeId>) {
    let mut rest = Vec::with_capacity(ext.len());
    for (k, x) in ext.into_iter().enumerate() {
        match &graph.node(x).op {
            Op::Read(s) if fused[x.index()] => program.stored.push((k as u32, s.clone())),
            _ => rest.push(x),
        }
    }
    (program, rest)
}

fn stencil_group(graph: &Graph, nodes: &[NodeId]) -> bool {
    nodes.iter().any(|m| graph.node(*m).op.is_stencil())
}

/// Summary of the ops of a non-kernel stage.
fn region_label(graph: &Graph, nodes: &[NodeId]) -> String {
    summarize(
        &nodes
            .iter()
            .map(|&n| graph.node(n).op.label())
            .collect::<Vec<_>>(),
    )
}

/// "arange, powi2, add, sqrt"; long lists keep their ends.
fn summarize(labels: &[String]) -> String {
    if labels.len() <= 8 {
        labels.join(", ")
    } else {
        format!(
            "{}, … ({} ops), {}",
            labels[..4].join(", "),
            labels.len(),
            labels[labels.len() - 3..].join(", ")
        )
    }
}
