//! The lowered graph: stages of identical tasks, one task per output chunk.
//! This is what runs, locally or on a cluster; tasks are plain data (a stage
//! id and a chunk index), expanded from the stages on demand.

use std::sync::Arc;

use crate::dtype::DType;
use crate::graph::NodeId;
use crate::kernel::Executable;
use crate::op::{HostArray, Meta, ReduceSpec, Remap};
use crate::shape::{self, grid_index, linear_index};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StageId(pub u32);

impl StageId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One chunk of one stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkKey {
    pub stage: StageId,
    pub chunk: u32,
}

#[derive(Clone, Debug)]
pub enum StageKind {
    /// Chunks cut out of user data.
    Source(Arc<HostArray>),
    /// Chunks read from a stored array.
    Read(Arc<crate::storage::Stored>),
    /// Chunks of user data that stayed with the client: each task fetches its
    /// box from the client's data plane (large sources do not travel in the plan).
    Remote(Arc<RemoteSource>),
    /// Chunk k is chunk k of output stage `stage` of the earlier job `job`,
    /// kept on the workers (`persist`): the task only takes it over.
    Persisted {
        job: u64,
        stage: StageId,
    },
    /// Chunks this process keeps (`persist` on the embedded runtime): chunk k
    /// is handed over as it is.
    Held(Arc<crate::op::HeldArray>),
    /// A fused elementwise kernel.
    Map(Arc<Executable>),
    /// A fused kernel reduced to a partial state per chunk (finalized at once when
    /// no combine step is needed).
    Partial {
        exe: Arc<Executable>,
        spec: ReduceSpec,
        finalize: Option<Finalize>,
        /// The iteration space: the reduced array's shape and chunks.
        region: Meta,
    },
    /// Merges groups of `fan_in[axis]` partial states along the reduced axes.
    Combine {
        spec: ReduceSpec,
        fan_in: Vec<usize>,
        finalize: Option<Finalize>,
    },
    Remap(Remap),
    Concat {
        axis: usize,
    },
    Reshape,
    /// A fused stencil: each task reads its inputs around its chunk.
    Stencil(Arc<crate::stencil::StencilKernel>),
    /// Block products of a matmul `a @ b` over the iteration space `region`
    /// (m × n × k, chunked like `a`'s rows, `b`'s columns and `a`'s
    /// columns): task (i, j, p) multiplies `a`'s block (i, p) by `b`'s block
    /// (p, j) in `dtype`, a partial state of a sum over the last axis.
    MatMul {
        dtype: DType,
        spec: ReduceSpec,
        finalize: Option<Finalize>,
        region: Meta,
    },
    /// A user function called on every block of its inputs (`map_blocks`).
    MapBlocks(Arc<crate::blocks::BlockCall>),
    /// One step of a blocked cumulative sum or product along `axis`.
    Scan {
        op: crate::op::ReduceOp,
        axis: usize,
        phase: ScanPhase,
    },
}

/// The three stages of a blocked scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanPhase {
    /// Each chunk scanned on its own.
    Local,
    /// What chunk c along the axis carries in: the carry of chunk c - 1
    /// combined with the last slab of its local scan (one slab per chunk).
    Carry,
    /// Each locally scanned chunk combined with its carry.
    Apply,
}

/// A user array served by the client that submitted the plan.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RemoteSource {
    /// host:port of the client's data plane.
    pub address: String,
    /// The array's id there.
    pub id: u64,
    pub shape: Vec<usize>,
    pub dtype: DType,
    /// What the client's data plane asks for before serving it.
    pub credential: Vec<u8>,
}

impl std::fmt::Debug for RemoteSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSource")
            .field("address", &self.address)
            .field("id", &self.id)
            .field("shape", &self.shape)
            .field("dtype", &self.dtype)
            .finish_non_exhaustive()
    }
}

/// The last step of a reduction: the result dtype, and an elementwise kernel
/// over the result fused behind it (`sum(x) * 4 / n` needs no task of its own).
#[derive(Clone, Debug)]
pub struct Finalize {
    pub dtype: DType,
    pub epilogue: Option<Arc<Executable>>,
}

#[derive(Clone, Debug)]
pub struct Stage {
    pub kind: StageKind,
    pub inputs: Vec<StageId>,
    /// Shape, dtype and chunk grid of the stage's output. For partial states the
    /// reduced axes have one element per chunk.
    pub meta: Meta,
    /// Graph nodes computed by this stage (for DOT export).
    pub nodes: Vec<NodeId>,
    /// Human-readable summary (op names fused into it).
    pub label: String,
    /// Derived data, computed once on first use.
    pub cache: StageCache,
}

/// Chunk start offsets, computed once per stage: per-task lookups must not
/// cost time proportional to the number of chunks.
#[derive(Clone, Debug, Default)]
pub struct StageCache {
    offsets: std::sync::OnceLock<Vec<Vec<usize>>>,
    region_offsets: std::sync::OnceLock<Vec<Vec<usize>>>,
}

impl Stage {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            StageKind::Source(_) => "source",
            StageKind::Read(_) => "read",
            StageKind::Remote(_) => "remote source",
            StageKind::Persisted { .. } | StageKind::Held(_) => "persisted",
            StageKind::Map(_) => "map",
            StageKind::Partial { .. } => "partial",
            StageKind::Combine { .. } => "combine",
            StageKind::Remap(_) => "remap",
            StageKind::Concat { .. } => "concat",
            StageKind::Reshape => "reshape",
            StageKind::Stencil(_) => "stencil",
            StageKind::MatMul { .. } => "matmul",
            StageKind::MapBlocks(_) => "map_blocks",
            StageKind::Scan { phase, .. } => match phase {
                ScanPhase::Local => "scan",
                ScanPhase::Carry => "scan carry",
                ScanPhase::Apply => "scan apply",
            },
        }
    }

    pub fn task_count(&self) -> usize {
        self.meta.chunks.count()
    }

    /// Start offset of every chunk along each axis (plus the total at the end).
    pub fn offsets(&self) -> &[Vec<usize>] {
        self.cache
            .offsets
            .get_or_init(|| self.meta.chunks.offsets())
    }

    /// Offsets of a partial stage's iteration space (its own offsets otherwise).
    pub fn region_offsets(&self) -> &[Vec<usize>] {
        match &self.kind {
            StageKind::Partial { region, .. } | StageKind::MatMul { region, .. } => self
                .cache
                .region_offsets
                .get_or_init(|| region.chunks.offsets()),
            _ => self.offsets(),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// In topological order.
    pub stages: Vec<Stage>,
    /// The stage computing each requested output.
    pub outputs: Vec<StageId>,
    /// Stages whose chunks their tasks write to stored arrays.
    pub sinks: Vec<(StageId, Arc<crate::storage::Sink>)>,
}

impl Plan {
    /// Per stage, the latest earlier stage that runs the same kernel (the
    /// same `Arc`: the repeated steps of a time loop), when that one has
    /// inputs and an output of the same metas (older stages of the kernel
    /// are not looked at). What follows from a stage's kernel and metas
    /// alone (its checks, its tasks' memory) holds for both.
    pub fn same_as_earlier(&self) -> Vec<Option<StageId>> {
        let kernel = |st: &Stage| match &st.kind {
            StageKind::Map(exe) => Some(Arc::as_ptr(exe) as usize),
            StageKind::Stencil(k) => Some(Arc::as_ptr(k) as usize),
            _ => None,
        };
        let mut latest: crate::fast_hash::FastMap<usize, usize> = Default::default();
        let stages = &self.stages;
        let meta = |s: &StageId| stages.get(s.index()).map(|st| &st.meta);
        (0..stages.len())
            .map(|i| {
                let st = &stages[i];
                let k = kernel(st)?;
                let j = latest.insert(k, i)?;
                let e = &stages[j];
                let same = e.meta == st.meta
                    && e.inputs.len() == st.inputs.len()
                    && e.inputs
                        .iter()
                        .zip(&st.inputs)
                        .all(|(a, b)| meta(a).is_some() && meta(a) == meta(b));
                same.then_some(StageId(j as u32))
            })
            .collect()
    }

    /// This plan with every chunk kept by this process (`Held`) turned into
    /// source data, for sending to a cluster (borrowed when there is none).
    pub fn held_as_sources(&self) -> crate::Result<std::borrow::Cow<'_, Plan>> {
        if !self
            .stages
            .iter()
            .any(|s| matches!(s.kind, StageKind::Held(_)))
        {
            return Ok(std::borrow::Cow::Borrowed(self));
        }
        let mut plan = self.clone();
        for st in &mut plan.stages {
            if let StageKind::Held(h) = &st.kind {
                st.kind = StageKind::Source(Arc::new(h.assemble()?));
            }
        }
        Ok(std::borrow::Cow::Owned(plan))
    }

    /// Where the chunks of stage `s` are written.
    pub fn sinks_of(&self, s: StageId) -> impl Iterator<Item = &crate::storage::Sink> {
        self.sinks
            .iter()
            .filter(move |(x, _)| *x == s)
            .map(|(_, sink)| sink.as_ref())
    }

    pub fn stage(&self, id: StageId) -> &Stage {
        &self.stages[id.index()]
    }

    /// Whether `key` names a task of this plan (an assignment from the
    /// network is checked before the plan is indexed with it).
    pub fn has_task(&self, key: ChunkKey) -> bool {
        self.stages
            .get(key.stage.index())
            .is_some_and(|s| (key.chunk as usize) < s.task_count())
    }

    pub fn task_count(&self) -> usize {
        self.stages.iter().map(Stage::task_count).sum()
    }

    /// The chunks task `key` reads, in the order its kernel expects them.
    pub fn task_inputs(&self, key: ChunkKey) -> Vec<ChunkKey> {
        let stage = self.stage(key.stage);
        let grid = stage.meta.chunks.grid();
        let idx = grid_index(key.chunk as usize, &grid);
        let mut out = Vec::new();
        match &stage.kind {
            StageKind::Source(_)
            | StageKind::Read(_)
            | StageKind::Remote(_)
            | StageKind::Held(_)
            | StageKind::Persisted { .. } => {}
            StageKind::Map(_) | StageKind::Partial { .. } => {
                if let Some((space, origin, local)) = self.kernel_box(key) {
                    for &inp in &stage.inputs {
                        out.extend(self.covering_chunks(inp, &space, &origin, &local));
                    }
                }
            }
            StageKind::MapBlocks(_) => {
                for (inp, lo, len) in self.block_boxes(key) {
                    out.extend(self.chunks_over(inp, &lo, &len));
                }
            }
            StageKind::MatMul { .. } => {
                for (inp, lo, len) in self.matmul_blocks(key) {
                    out.extend(self.chunks_over(inp, &lo, &len));
                }
            }
            StageKind::Scan { axis, phase, .. } => {
                let axis = *axis;
                let same = |s: StageId, c: &[usize]| ChunkKey {
                    stage: s,
                    chunk: linear_index(c, &self.stage(s).meta.chunks.grid()) as u32,
                };
                match (phase, stage.inputs.as_slice()) {
                    (ScanPhase::Local, [inp]) => {
                        let lo = self.chunk_origin(key);
                        out.extend(self.chunks_over(*inp, &lo, &self.chunk_shape(key)));
                    }
                    (ScanPhase::Carry, [local]) if idx.get(axis).is_some_and(|&c| c > 0) => {
                        // Carry c - 1 (this stage) and local chunk c - 1.
                        let mut prev = idx.clone();
                        prev[axis] -= 1;
                        out.push(same(key.stage, &prev));
                        out.push(same(*local, &prev));
                    }
                    (ScanPhase::Apply, [local, carry]) => {
                        out.push(same(*local, &idx));
                        out.push(same(*carry, &idx));
                    }
                    _ => {}
                }
            }
            StageKind::Combine { fan_in, spec, .. } => {
                let inp = stage.inputs[0];
                let in_grid = self.stage(inp).meta.chunks.grid();
                let idx = full_rank(spec, &idx, in_grid.len());
                // Input grid = output grid with reduced axes multiplied by fan-in.
                let mut lo = vec![0; idx.len()];
                let mut hi = vec![0; idx.len()];
                for d in 0..idx.len() {
                    lo[d] = idx[d] * fan_in[d];
                    hi[d] = ((idx[d] + 1) * fan_in[d]).min(in_grid[d]);
                }
                for_each_in_box(&lo, &hi, |c| {
                    out.push(ChunkKey {
                        stage: inp,
                        chunk: linear_index(c, &in_grid) as u32,
                    })
                });
            }
            StageKind::Remap(map) => {
                let inp = stage.inputs[0];
                let in_stage = self.stage(inp);
                let (lo, hi) = remap_chunk_box(map, stage.offsets(), &idx, in_stage.offsets());
                let in_grid = in_stage.meta.chunks.grid();
                for_each_in_box(&lo, &hi, |c| {
                    out.push(ChunkKey {
                        stage: inp,
                        chunk: linear_index(c, &in_grid) as u32,
                    })
                });
            }
            StageKind::Concat { .. } => {
                if let Some((inp, lo, len)) = self.concat_source(key) {
                    out.extend(self.chunks_over(inp, &lo, &len));
                }
            }
            StageKind::Reshape => {
                let inp = stage.inputs[0];
                let in_stage = self.stage(inp);
                let in_meta = &in_stage.meta;
                let (lo, hi) = reshape_chunk_box(
                    &stage.meta,
                    stage.offsets(),
                    &idx,
                    in_meta,
                    in_stage.offsets(),
                );
                let in_grid = in_meta.chunks.grid();
                for_each_in_box(&lo, &hi, |c| {
                    out.push(ChunkKey {
                        stage: inp,
                        chunk: linear_index(c, &in_grid) as u32,
                    })
                });
            }
            StageKind::Stencil(k) => {
                for (i, &inp) in stage.inputs.iter().enumerate() {
                    let in_stage = self.stage(inp);
                    let in_grid = in_stage.meta.chunks.grid();
                    for part in self.stencil_parts(key, i, k) {
                        out.push(ChunkKey {
                            stage: inp,
                            chunk: linear_index(&part.chunk, &in_grid) as u32,
                        });
                    }
                }
            }
        }
        out
    }

    /// The parts of input `i`'s chunks that stencil task `key` reads.
    pub fn stencil_parts(
        &self,
        key: ChunkKey,
        i: usize,
        k: &crate::stencil::StencilKernel,
    ) -> Vec<crate::stencil::InputPart> {
        let stage = self.stage(key.stage);
        let (Some(&inp), Some(radius)) = (stage.inputs.get(i), k.inputs.get(i)) else {
            return Vec::new();
        };
        let in_stage = self.stage(inp);
        crate::stencil::input_parts(
            &in_stage.meta.shape,
            in_stage.offsets(),
            &self.chunk_origin(key),
            &self.chunk_shape(key),
            radius,
            &k.boundary,
        )
    }

    /// The box of each input chunk task `key` reads, in [`Plan::task_inputs`]
    /// order (lo, hi in the chunk's coordinates); `None` when it reads whole
    /// chunks. Workers fetch only these boxes from their peers.
    pub fn input_regions(&self, key: ChunkKey) -> Option<Vec<(Vec<usize>, Vec<usize>)>> {
        let stage = self.stage(key.stage);
        let StageKind::Stencil(k) = &stage.kind else {
            return None;
        };
        let mut out = Vec::new();
        for i in 0..stage.inputs.len() {
            out.extend(
                self.stencil_parts(key, i, k)
                    .into_iter()
                    .map(|p| (p.lo, p.hi)),
            );
        }
        Some(out)
    }

    /// The input of concatenate task `key` holding its chunk, and the box of
    /// that input it is (input coordinates): chunk k along the axis is the
    /// input's own chunk there; off the axis the input may be chunked otherwise.
    pub fn concat_source(&self, key: ChunkKey) -> Option<(StageId, Vec<usize>, Vec<usize>)> {
        let stage = self.stage(key.stage);
        let StageKind::Concat { axis } = stage.kind else {
            return None;
        };
        let idx = grid_index(key.chunk as usize, &stage.meta.chunks.grid());
        let mut lo = self.chunk_origin(key);
        let len = self.chunk_shape(key);
        let mut k = *idx.get(axis)?;
        for &inp in &stage.inputs {
            let in_stage = self.stage(inp);
            let n = in_stage.meta.chunks.0[axis]
                .iter()
                .filter(|&&s| s > 0)
                .count();
            if k < n {
                lo[axis] = in_stage.offsets()[axis][k];
                return Some((inp, lo, len));
            }
            k -= n;
        }
        None
    }

    /// The two blocks matmul task `key` multiplies: `(stage, lo, len)` of
    /// `a`'s block and of `b`'s, in their own coordinates.
    pub fn matmul_blocks(&self, key: ChunkKey) -> Vec<(StageId, Vec<usize>, Vec<usize>)> {
        let stage = self.stage(key.stage);
        let (StageKind::MatMul { spec, region, .. }, [a, b]) =
            (&stage.kind, stage.inputs.as_slice())
        else {
            return Vec::new();
        };
        let idx = grid_index(key.chunk as usize, &stage.meta.chunks.grid());
        let ridx = full_rank(spec, &idx, 3);
        let offs = stage.region_offsets();
        let o: Vec<usize> = ridx.iter().enumerate().map(|(d, &i)| offs[d][i]).collect();
        let l = region.chunks.chunk_shape(&ridx);
        vec![
            (*a, vec![o[0], o[2]], vec![l[0], l[2]]),
            (*b, vec![o[2], o[1]], vec![l[2], l[1]]),
        ]
    }

    /// The block of each input that `map_blocks` task `key` passes to its
    /// function: `(stage, lo, len)` in the input's coordinates. Blocks are cut
    /// at the first input's chunk boundaries (the output has its grid).
    pub fn block_boxes(&self, key: ChunkKey) -> Vec<(StageId, Vec<usize>, Vec<usize>)> {
        let stage = self.stage(key.stage);
        let (StageKind::MapBlocks(_), Some(&first)) = (&stage.kind, stage.inputs.first()) else {
            return Vec::new();
        };
        let f = self.stage(first);
        let idx = grid_index(key.chunk as usize, &f.meta.chunks.grid());
        let offs = f.offsets();
        let origin: Vec<usize> = idx.iter().enumerate().map(|(d, &i)| offs[d][i]).collect();
        let local = f.meta.chunks.chunk_shape(&idx);
        stage
            .inputs
            .iter()
            .map(|&inp| {
                let in_shape = &self.stage(inp).meta.shape;
                let (lo, len) =
                    crate::exec::boxes::needed_box(in_shape, &f.meta.shape, &origin, &local);
                (inp, lo, len)
            })
            .collect()
    }

    /// Looks up the function of every `map_blocks` stage that has none by its
    /// name in `functions`; returns the names found nowhere.
    pub fn bind_functions(&mut self, functions: &crate::blocks::Functions) -> Vec<String> {
        let mut missing = Vec::new();
        for st in &mut self.stages {
            if let StageKind::MapBlocks(call) = &mut st.kind
                && call.func.is_none()
            {
                match functions.get(&call.name) {
                    Some(f) => {
                        let mut bound = (**call).clone();
                        bound.func = Some(f.clone());
                        *call = Arc::new(bound);
                    }
                    None if !missing.contains(&call.name) => missing.push(call.name.clone()),
                    None => {}
                }
            }
        }
        missing
    }

    /// Names of the functions this plan's `map_blocks` stages call.
    pub fn function_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for st in &self.stages {
            if let StageKind::MapBlocks(call) = &st.kind
                && !names.contains(&call.name)
            {
                names.push(call.name.clone());
            }
        }
        names
    }

    /// The chunks of stage `inp` overlapping the box `lo..lo + len`, row-major.
    pub fn chunks_over(&self, inp: StageId, lo: &[usize], len: &[usize]) -> Vec<ChunkKey> {
        let in_stage = self.stage(inp);
        let (glo, ghi) = crate::exec::boxes::overlapping(in_stage.offsets(), lo, len);
        let grid = in_stage.meta.chunks.grid();
        let mut out = Vec::new();
        for_each_in_box(&glo, &ghi, |c| {
            out.push(ChunkKey {
                stage: inp,
                chunk: linear_index(c, &grid) as u32,
            })
        });
        out
    }

    /// The iteration space of a kernel task (map or partial reduction), and
    /// the box of it that task `key` computes: `(space shape, origin, shape)`.
    pub fn kernel_box(&self, key: ChunkKey) -> Option<(Vec<usize>, Vec<usize>, Vec<usize>)> {
        let stage = self.stage(key.stage);
        match &stage.kind {
            StageKind::Map(_) => Some((
                stage.meta.shape.clone(),
                self.chunk_origin(key),
                self.chunk_shape(key),
            )),
            StageKind::Partial { spec, region, .. } => {
                let idx = grid_index(key.chunk as usize, &stage.meta.chunks.grid());
                let ridx = full_rank(spec, &idx, region.shape.len());
                let offs = stage.region_offsets();
                let origin = ridx.iter().enumerate().map(|(d, &i)| offs[d][i]).collect();
                Some((
                    region.shape.clone(),
                    origin,
                    region.chunks.chunk_shape(&ridx),
                ))
            }
            _ => None,
        }
    }

    /// The chunks of stage `inp` a kernel over `space` reads for its box
    /// `origin..origin + local`, row-major: one when the input is chunked like
    /// the kernel, the overlapping ones when it is not.
    pub fn covering_chunks(
        &self,
        inp: StageId,
        space: &[usize],
        origin: &[usize],
        local: &[usize],
    ) -> Vec<ChunkKey> {
        let in_shape = &self.stage(inp).meta.shape;
        let (lo, len) = crate::exec::boxes::needed_box(in_shape, space, origin, local);
        self.chunks_over(inp, &lo, &len)
    }

    /// Global coordinate of the first element of chunk `chunk` of `stage`.
    pub fn chunk_origin(&self, key: ChunkKey) -> Vec<usize> {
        let stage = self.stage(key.stage);
        let idx = grid_index(key.chunk as usize, &stage.meta.chunks.grid());
        let offs = stage.offsets();
        idx.iter().enumerate().map(|(d, &i)| offs[d][i]).collect()
    }

    /// Shape of chunk `key`.
    pub fn chunk_shape(&self, key: ChunkKey) -> Vec<usize> {
        let m = &self.stage(key.stage).meta;
        m.chunks
            .chunk_shape(&grid_index(key.chunk as usize, &m.chunks.grid()))
    }
}

/// A finalized reduction without keepdims drops the reduced axes from its grid;
/// put them back (at index 0) to address the reduction's input.
pub fn full_rank(spec: &ReduceSpec, idx: &[usize], nd: usize) -> Vec<usize> {
    if idx.len() == nd {
        return idx.to_vec();
    }
    let mut it = idx.iter();
    (0..nd)
        .map(|d| {
            if spec.axes.contains(&d) {
                0
            } else {
                it.next().copied().unwrap_or(0)
            }
        })
        .collect()
}

/// The chunk of `input` that lines up (under broadcasting) with output chunk `idx`.
/// Calls `f` on every grid index in `lo..hi` (per axis, exclusive).
pub fn for_each_in_box(lo: &[usize], hi: &[usize], mut f: impl FnMut(&[usize])) {
    if lo.iter().zip(hi).any(|(l, h)| l >= h) {
        if lo.is_empty() {
            f(&[]);
        }
        return;
    }
    let mut c = lo.to_vec();
    loop {
        f(&c);
        let mut d = c.len();
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            c[d] += 1;
            if c[d] < hi[d] {
                break;
            }
            c[d] = lo[d];
        }
    }
}

/// Index of the chunk containing coordinate `x` given chunk start offsets.
pub fn chunk_of(offsets: &[usize], x: usize) -> usize {
    match offsets.binary_search(&x) {
        Ok(i) => i.min(offsets.len().saturating_sub(2)),
        Err(i) => i - 1,
    }
}

/// Box of input chunks touched by output chunk `idx` of a remap.
fn remap_chunk_box(
    map: &Remap,
    out_offs: &[Vec<usize>],
    idx: &[usize],
    in_offs: &[Vec<usize>],
) -> (Vec<usize>, Vec<usize>) {
    let mut lo = Vec::with_capacity(map.axes.len());
    let mut hi = Vec::with_capacity(map.axes.len());
    for (d, ax) in map.axes.iter().enumerate() {
        let (a, b) = match ax.src {
            None => (ax.base, ax.base),
            Some((j, c)) => {
                let (s, e) = (
                    out_offs[j][idx[j]] as i64,
                    out_offs[j][idx[j] + 1] as i64 - 1,
                );
                let (x, y) = (ax.base + c * s, ax.base + c * e.max(s));
                (x.min(y), x.max(y))
            }
        };
        let a = chunk_of(&in_offs[d], a.max(0) as usize);
        let b = chunk_of(&in_offs[d], b.max(0) as usize);
        lo.push(a);
        hi.push(b + 1);
    }
    (lo, hi)
}

/// Box of input chunks that can hold the flat range of output chunk `idx` of a reshape.
fn reshape_chunk_box(
    out: &Meta,
    out_offs: &[Vec<usize>],
    idx: &[usize],
    input: &Meta,
    in_offs: &[Vec<usize>],
) -> (Vec<usize>, Vec<usize>) {
    let ostr = shape::strides(&out.shape);
    let first: usize = idx
        .iter()
        .enumerate()
        .map(|(d, &i)| out_offs[d][i] * ostr[d])
        .sum();
    let last: usize = idx
        .iter()
        .enumerate()
        .map(|(d, &i)| (out_offs[d][i + 1].max(1) - 1) * ostr[d])
        .sum();
    let unravel = |mut f: usize| {
        let mut c = vec![0; input.shape.len()];
        for d in (0..input.shape.len()).rev() {
            let n = input.shape[d].max(1);
            c[d] = f % n;
            f /= n;
        }
        c
    };
    let (a, b) = (unravel(first), unravel(last));
    let nd = input.shape.len();
    let mut lo = vec![0; nd];
    let mut hi = vec![0; nd];
    let mut diverged = false;
    for d in 0..nd {
        let grid = in_offs[d].len() - 1;
        if diverged {
            lo[d] = 0;
            hi[d] = grid;
        } else {
            lo[d] = chunk_of(&in_offs[d], a[d]);
            hi[d] = chunk_of(&in_offs[d], b[d]) + 1;
            diverged = a[d] != b[d];
        }
    }
    (lo, hi)
}
