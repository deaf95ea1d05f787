//! Lowering of [`Op::Repeat`] (a step applied N times, `iterate`): the step
//! is unrolled and lowered only for as many steps as one fused stage holds
//! (k), and for the remainder; the plan then repeats those stages, sharing
//! their kernels. Planning costs a few small lowerings whatever N is, and
//! the stages are the ones the unrolled loop would give: the same tasks and
//! the same bits.

use std::sync::{Mutex, PoisonError};

use crate::error::{Error, Result};
use crate::fast_hash::FastMap;
use crate::graph::{Graph, Node, NodeId};
use crate::op::{Meta, Op, Repeat};
use crate::plan::{Plan, Stage, StageId, StageKind};

use super::group::LowerOptions;

/// The job id of the placeholder stage that stands for the step's input in a
/// lowered step (never sent anywhere: splicing replaces it).
const ARG_JOB: u64 = u64::MAX;

/// Steps lowered at most into one stage (stencil halos are capped at 64
/// cells; elementwise steps fuse without limit, but kernels stay small).
const MAX_STEPS: usize = 64;

/// The stage a step's input lowers to inside [`expand`].
pub fn placeholder(meta: &Meta) -> Stage {
    Stage {
        kind: StageKind::Persisted {
            job: ARG_JOB,
            stage: StageId(0),
        },
        inputs: vec![],
        meta: meta.clone(),
        nodes: vec![],
        label: "step input".into(),
        cache: Default::default(),
    }
}

fn is_placeholder(s: &Stage) -> bool {
    matches!(s.kind, StageKind::Persisted { job: ARG_JOB, .. })
}

/// Checks a repeat's body: one output, one argument, both of the input's meta.
pub fn check(r: &Repeat, input: &Meta) -> Result<()> {
    let bad = |m: String| Err(Error::Graph(format!("invalid iterate step: {m}")));
    let args: Vec<&Node> = r
        .body
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::RepeatArg))
        .collect();
    let [arg] = args.as_slice() else {
        return bad(format!("{} step inputs, expected 1", args.len()));
    };
    let [out] = r.body.outputs.as_slice() else {
        return bad(format!("{} results, expected 1", r.body.outputs.len()));
    };
    if &arg.meta != input {
        return bad(format!("its input is {}, the field is {input}", arg.meta));
    }
    let out_meta = &r.body.node(*out).meta;
    if out_meta != input {
        return bad(format!("it turns {input} into {out_meta}"));
    }
    Ok(())
}

/// `k` steps of the body, one after the other, optimized.
fn unroll(body: &Graph, k: usize) -> Result<Graph> {
    let live = body.live();
    let root = body.outputs[0];
    let mut g = Graph::new();
    let arg_meta = body
        .nodes
        .iter()
        .find(|n| matches!(n.op, Op::RepeatArg))
        .map(|n| n.meta.clone())
        .ok_or_else(|| Error::Graph("iterate step without an input".into()))?;
    let mut prev = g.push_checked_inputs(Node {
        op: Op::RepeatArg,
        inputs: vec![],
        meta: arg_meta,
    })?;
    let mut map = vec![NodeId(0); body.len()];
    for _ in 0..k {
        for (i, n) in body.nodes.iter().enumerate() {
            if !live[i] {
                continue;
            }
            map[i] = if matches!(n.op, Op::RepeatArg) {
                prev
            } else {
                g.push_checked_inputs(Node {
                    op: n.op.clone(),
                    inputs: n.inputs.iter().map(|x| map[x.index()]).collect(),
                    meta: n.meta.clone(),
                })?
            };
        }
        prev = map[root.index()];
    }
    g.outputs = vec![prev];
    super::optimize(&g)
}

/// Per stage: whether it reads the step's input (directly or not).
fn dependent(plan: &Plan) -> Vec<bool> {
    let mut dep = vec![false; plan.stages.len()];
    for (i, s) in plan.stages.iter().enumerate() {
        dep[i] = is_placeholder(s) || s.inputs.iter().any(|x| dep[x.index()]);
    }
    dep
}

/// Lowers a graph whose [`Op::RepeatArg`] becomes a [`placeholder`] stage.
pub type LowerSteps<'a> = &'a dyn Fn(&Graph, &LowerOptions) -> Result<Plan>;

/// `k` steps lowered, and the number of stages that depend on the input
/// (the placeholder included).
fn lowered(
    body: &Graph,
    k: usize,
    lower: LowerSteps<'_>,
    opts: &LowerOptions,
) -> Result<(Plan, usize)> {
    let plan = lower(&unroll(body, k)?, opts)?;
    let n = dependent(&plan).iter().filter(|&&d| d).count();
    Ok((plan, n))
}

/// Steps per stage found for the loops this process planned, by a hash of
/// the step's graph, the step cap and the options: planning the same loop
/// again (a computation run once more) lowers only the steps it fuses.
/// Any step count plans the same computation, so a hash that collides
/// could cost fusion (or refuse a loop as too many tasks), never a result.
static STEPS_FOUND: Mutex<Option<FastMap<u64, usize>>> = Mutex::new(None);

/// Loops remembered at most (forgotten all at once beyond).
const LOOPS_REMEMBERED: usize = 256;

/// Forgets the steps per stage found so far: the next plan of every loop
/// searches again (to measure planning from scratch).
pub fn forget_planned_loops() {
    *STEPS_FOUND.lock().unwrap_or_else(PoisonError::into_inner) = None;
}

fn loop_key(body: &Graph, limit: usize, opts: &LowerOptions) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    super::hash_graph(body, &mut h);
    limit.hash(&mut h);
    opts.hash(&mut h);
    h.finish()
}

/// [`search_steps`], remembered per loop.
fn steps_per_stage(
    body: &Graph,
    limit: usize,
    lower: LowerSteps<'_>,
    opts: &LowerOptions,
) -> Result<(usize, Plan)> {
    let limit = limit.clamp(1, MAX_STEPS);
    let key = loop_key(body, limit, opts);
    // Not held while lowering: a step may hold a loop of its own.
    let known = STEPS_FOUND
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .and_then(|m| m.get(&key).copied());
    if let Some(k) = known {
        return Ok((k, lowered(body, k, lower, opts)?.0));
    }
    let (k, plan) = search_steps(body, limit, lower, opts)?;
    let mut memo = STEPS_FOUND.lock().unwrap_or_else(PoisonError::into_inner);
    let map = memo.get_or_insert_with(FastMap::default);
    if map.len() >= LOOPS_REMEMBERED {
        map.clear();
    }
    map.insert(key, k);
    Ok((k, plan))
}

/// The most steps (≤ `limit`) that lower into as many stages as one step,
/// with their plan.
fn search_steps(
    body: &Graph,
    limit: usize,
    lower: LowerSteps<'_>,
    opts: &LowerOptions,
) -> Result<(usize, Plan)> {
    let (one, per_step) = lowered(body, 1, lower, opts)?;
    if limit == 1 {
        return Ok((1, one));
    }
    // Elementwise steps fuse without limit: try all of them first.
    let fits = |k: usize| -> Result<Option<Plan>> {
        let (plan, n) = lowered(body, k, lower, opts)?;
        Ok((n == per_step).then_some(plan))
    };
    let (top, n_top) = lowered(body, limit, lower, opts)?;
    if n_top == per_step {
        return Ok((limit, top));
    }
    let (mut lo, mut best, mut hi) = (1, one, limit);
    // Invariant: lo steps fit (best is their plan), hi steps do not.
    // Stencil steps: the deepest fused block of the unrolled steps shows
    // how many fit (the depth rule's choice); confirm it and one more
    // before searching.
    if let Some(guess) = deepest_block(&top, &best) {
        for k in [guess, guess + 1] {
            if k <= lo || k >= hi {
                continue;
            }
            match fits(k)? {
                Some(plan) => {
                    lo = k;
                    best = plan;
                }
                None => {
                    hi = k;
                    break;
                }
            }
        }
    }
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        match fits(mid)? {
            Some(plan) => {
                lo = mid;
                best = plan;
            }
            None => hi = mid,
        }
    }
    Ok((lo, best))
}

/// Steps in the deepest stencil stage of `many` steps, counted in the
/// levels that one step (`one`) lowers to.
fn deepest_block(many: &Plan, one: &Plan) -> Option<usize> {
    let levels = |s: &Stage| match &s.kind {
        StageKind::Stencil(k) => k.levels.len(),
        _ => 0,
    };
    let per_step: usize = one.stages.iter().map(levels).sum();
    let deepest = many.stages.iter().map(levels).max()?;
    (per_step > 0 && deepest >= per_step).then(|| deepest / per_step)
}

/// Appends the stages of `repeat` applied to stage `input` and returns the
/// stage holding the result. `node` is the repeat's node (for DOT export).
pub fn expand(
    plan: &mut Plan,
    repeat: &Repeat,
    input: StageId,
    node: NodeId,
    lower: LowerSteps<'_>,
    opts: &LowerOptions,
) -> Result<StageId> {
    if repeat.times == 0 {
        return Ok(input);
    }
    let (k, full) = steps_per_stage(&repeat.body, repeat.times, lower, opts)?;
    let (rounds, rest) = (repeat.times / k, repeat.times % k);
    // Refused before anything is built: a plan this large would exhaust
    // memory long before it could run.
    let dep = dependent(&full);
    let per_round: usize = full
        .stages
        .iter()
        .zip(&dep)
        .filter(|(s, d)| **d && !is_placeholder(s))
        .map(|(s, _)| s.task_count())
        .sum();
    if rounds.saturating_mul(per_round) > crate::plan_check::MAX_TASKS {
        return Err(Error::Invalid(format!(
            "iterate of {} steps would plan about {} tasks (more than {}); \
             use fewer steps per run, or larger chunks",
            repeat.times,
            rounds.saturating_mul(per_round),
            crate::plan_check::MAX_TASKS
        )));
    }
    let mut at = input;
    // The unrolled loop's stages are cut from the result backwards: the
    // shorter one comes first.
    if rest > 0 {
        let (part, _) = lowered(&repeat.body, rest, lower, opts)?;
        at = splice(plan, &part, at, node, &mut FastMap::default())?;
    }
    let mut shared = FastMap::default();
    for _ in 0..rounds {
        at = splice(plan, &full, at, node, &mut shared)?;
    }
    Ok(at)
}

/// Appends a copy of `sub`'s stages reading `input` for the placeholder;
/// stages that do not depend on it are appended once per `shared` map.
fn splice(
    plan: &mut Plan,
    sub: &Plan,
    input: StageId,
    node: NodeId,
    shared: &mut FastMap<usize, StageId>,
) -> Result<StageId> {
    let dep = dependent(sub);
    let mut map: Vec<StageId> = Vec::with_capacity(sub.stages.len());
    for (i, s) in sub.stages.iter().enumerate() {
        let id = if is_placeholder(s) {
            if s.meta != plan.stage(input).meta {
                return Err(Error::Graph(format!(
                    "iterate step over {} applied to {}",
                    s.meta,
                    plan.stage(input).meta
                )));
            }
            input
        } else if let Some(&id) = shared.get(&i).filter(|_| !dep[i]) {
            id
        } else {
            let stage = Stage {
                kind: s.kind.clone(),
                inputs: s.inputs.iter().map(|x| map[x.index()]).collect(),
                meta: s.meta.clone(),
                nodes: vec![node],
                label: s.label.clone(),
                cache: Default::default(),
            };
            plan.stages.push(stage);
            let id = StageId((plan.stages.len() - 1) as u32);
            if !dep[i] {
                shared.insert(i, id);
            }
            id
        };
        map.push(id);
    }
    let out = sub
        .outputs
        .first()
        .ok_or_else(|| Error::Graph("a lowered step without a result".into()))?;
    if !sub.sinks.is_empty() {
        return Err(Error::Graph("an iterate step cannot write stores".into()));
    }
    Ok(map[out.index()])
}
