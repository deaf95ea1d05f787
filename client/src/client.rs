//! Running expressions: the embedded client and the results it returns.

use std::time::{Duration, Instant};

use accel_core::optimize::{LowerOptions, fuse::lower_with, optimize};
use std::collections::HashMap;
use std::sync::Arc;

use accel_core::kernel::split_chunks;
use accel_core::op::Op;
use accel_core::plan::{ChunkKey, Plan, StageId, StageKind};
use accel_core::{Buffer, DType, Element, Graph, shape};
use ndarray::{ArrayD, IxDyn};
use num_complex::Complex64;

use crate::embedded::{RunStats, run_plan};
use crate::error::{Error, Result};
use crate::expr::Array;
use crate::lower::to_graph;
use crate::storage::{Write, Written};

/// Runs array expressions. `Client::local()` runs them in this process on all
/// cores, with no set-up; `Client::connect(url)` runs them on a cluster.
#[derive(Clone, Debug, Default)]
pub struct Client {
    remote: Option<Arc<crate::remote::Remote>>,
    options: LowerOptions,
    /// Named `map_blocks` functions the embedded client can call.
    functions: accel_core::blocks::Functions,
    /// Whether long computations show a progress bar (when stderr is a terminal).
    progress: bool,
    /// The embedded client's GPU, offered every fused elementwise kernel.
    gpu: Option<Arc<accel_gpu::Offloader>>,
}

/// An expression prepared for running: the graph as built, after
/// optimization, and lowered into stages of tasks.
#[derive(Clone, Debug)]
pub struct Planned {
    pub graph: Graph,
    pub optimized: Graph,
    pub plan: Plan,
    pub planning_time: Duration,
}

/// One task per chunk per node; an iterated step counts once per step.
fn unfused(graph: &Graph) -> usize {
    graph
        .nodes
        .iter()
        .map(|n| match &n.op {
            accel_core::Op::Repeat(r) => r.times * unfused(&r.body),
            accel_core::Op::RepeatArg => 0,
            _ => n.meta.chunks.count(),
        })
        .sum()
}

impl Planned {
    /// Tasks a one-task-per-chunk-per-operation scheduler (like dask) would run.
    pub fn tasks_unfused(&self) -> usize {
        unfused(&self.graph)
    }

    /// Tasks accel runs.
    pub fn tasks(&self) -> usize {
        self.plan.task_count()
    }

    /// The projected peak memory of one task of each stage (inputs, output,
    /// working space), before anything runs.
    pub fn memory(&self) -> Vec<accel_core::plan_memory::StageMemory> {
        self.plan.memory_projection()
    }

    /// DOT of the expression graph as built.
    pub fn dot_graph(&self) -> String {
        accel_core::dot::graph_dot(&self.graph)
    }

    /// DOT of the fused stages.
    pub fn dot_fused(&self) -> String {
        accel_core::dot::plan_dot(&self.plan)
    }

    /// DOT of the individual tasks (up to `max_tasks`).
    pub fn dot_tasks(&self, max_tasks: usize) -> String {
        accel_core::dot::task_dot(&self.plan, max_tasks)
    }
}

/// A computed array of any dtype.
#[derive(Clone, Debug, PartialEq)]
pub enum DynArray {
    Bool(ArrayD<bool>),
    I32(ArrayD<i32>),
    I64(ArrayD<i64>),
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    C128(ArrayD<Complex64>),
}

impl DynArray {
    pub fn dtype(&self) -> DType {
        match self {
            DynArray::Bool(_) => DType::Bool,
            DynArray::I32(_) => DType::I32,
            DynArray::I64(_) => DType::I64,
            DynArray::F32(_) => DType::F32,
            DynArray::F64(_) => DType::F64,
            DynArray::C128(_) => DType::C128,
        }
    }

    /// The typed array, if `T` is its element type.
    pub fn into_typed<T: Element>(self) -> Result<ArrayD<T>> {
        let actual = self.dtype();
        let (shape, buf) = match self {
            DynArray::Bool(a) => into_parts(a),
            DynArray::I32(a) => into_parts(a),
            DynArray::I64(a) => into_parts(a),
            DynArray::F32(a) => into_parts(a),
            DynArray::F64(a) => into_parts(a),
            DynArray::C128(a) => into_parts(a),
        };
        let wrong = || Error::WrongType {
            actual,
            requested: T::DTYPE,
        };
        let v = T::unwrap(buf).ok_or_else(wrong)?;
        ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|e| Error::Invalid(e.to_string()))
    }

    fn from_buffer(shape: &[usize], buf: Buffer) -> Result<DynArray> {
        let sh = IxDyn(shape);
        let bad = |e: ndarray::ShapeError| Error::Invalid(e.to_string());
        Ok(match buf {
            Buffer::Bool(v) => DynArray::Bool(ArrayD::from_shape_vec(sh, v).map_err(bad)?),
            Buffer::I32(v) => DynArray::I32(ArrayD::from_shape_vec(sh, v).map_err(bad)?),
            Buffer::I64(v) => DynArray::I64(ArrayD::from_shape_vec(sh, v).map_err(bad)?),
            Buffer::F32(v) => DynArray::F32(ArrayD::from_shape_vec(sh, v).map_err(bad)?),
            Buffer::F64(v) => DynArray::F64(ArrayD::from_shape_vec(sh, v).map_err(bad)?),
            Buffer::C128(v) => DynArray::C128(ArrayD::from_shape_vec(sh, v).map_err(bad)?),
        })
    }
}

fn into_parts<T: Element>(a: ArrayD<T>) -> (Vec<usize>, Buffer) {
    let shape = a.shape().to_vec();
    let v = if a.is_standard_layout() {
        a.into_raw_vec_and_offset().0
    } else {
        a.iter().copied().collect()
    };
    (shape, T::wrap(v))
}

/// Results of one run, with what it cost.
#[derive(Clone, Debug)]
pub struct Run {
    pub outputs: Vec<DynArray>,
    pub stats: RunStats,
    pub planned: Planned,
}

impl Client {
    /// The embedded client: the same plans, run in-process on all cores.
    pub fn local() -> Client {
        Client {
            progress: true,
            ..Client::default()
        }
    }

    /// Whether a computation shows a progress bar on stderr (tasks done,
    /// elapsed, ETA) when stderr is a terminal and it lasts over half a
    /// second; on by default.
    pub fn with_progress(mut self, show: bool) -> Client {
        self.progress = show;
        self
    }

    /// A client of the scheduler at `url` (`http://host:port`), with the
    /// credentials of the environment ([`crate::Security::from_env`]); an
    /// unreachable scheduler is an error within a few seconds, naming the address.
    pub fn connect(url: &str) -> Result<Client> {
        Client::connect_with(url, &crate::Security::from_env()?)
    }

    /// A client of the scheduler whose address is in `path` (written by
    /// `accel-scheduler --scheduler-file`), waiting up to a minute for it.
    pub fn from_scheduler_file(path: impl AsRef<std::path::Path>) -> Result<Client> {
        let url = accel_proto::scheduler_file::read(path.as_ref(), Duration::from_secs(60))
            .map_err(Error::Invalid)?;
        Client::connect(&url)
    }

    /// [`Client::connect`] with explicit credentials.
    pub fn connect_with(url: &str, security: &crate::Security) -> Result<Client> {
        Ok(Client {
            remote: Some(Arc::new(crate::remote::Remote::connect(url, security)?)),
            options: LowerOptions::default(),
            functions: Default::default(),
            progress: true,
            gpu: None,
        })
    }

    /// Caps the halo, in cells, of fused stencil steps (temporal blocking):
    /// k steps of a one-cell stencil fuse into one task per chunk when the cap
    /// is at least k. `None` (the default) picks the depth with the least
    /// estimated time per step: per-task costs and a large chunk's trip
    /// through memory against the redundant halo work that grows with k
    /// (see [`auto_stencil_depth`]).
    ///
    /// [`auto_stencil_depth`]: accel_core::optimize::auto_stencil_depth
    pub fn with_stencil_depth(mut self, depth: Option<usize>) -> Client {
        self.options.stencil_depth = depth.map(|d| d.max(1));
        self
    }

    /// Whether a time loop (`iterate`) of neighbour reads over a small field
    /// (up to 2 MiB, two or more axes, its last axis split into chunks) may
    /// run on row bands spanning the whole last axis: as many as the field
    /// had chunks, or (embedded client) as the cores where fewer. Halos then
    /// lie only above and below a task. A larger field in fewer chunks than
    /// the embedded client's cores has its rows split further, to about a
    /// chunk per core (bands of at least 64 rows; loops of four steps or
    /// more), unless the client has a GPU. On by default; the loop's result keeps the field's
    /// chunks either way.
    pub fn with_loop_bands(mut self, on: bool) -> Client {
        self.options.keep_loop_chunks = !on;
        self
    }

    /// Runs fused elementwise kernels on a GPU (embedded client): `auto`
    /// takes a CUDA device if there is one, else the first hardware Vulkan
    /// GPU with 64-bit floats, if any; `software` Mesa's lavapipe (for
    /// tests); `Cuda(n)` CUDA device n; `Index(n)` the n-th Vulkan adapter
    /// ([`accel_gpu::adapters`]). Kernels the GPU has no exact form for, and
    /// any that fail there, run on the CPU. An explicit choice that cannot
    /// be opened is an error; on a cluster, workers take `--gpu` instead.
    pub fn with_gpu(mut self, choice: accel_gpu::GpuChoice) -> Result<Client> {
        self.gpu = accel_gpu::open(choice).map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(self)
    }

    /// Runs fused kernels on a GPU already opened (`accel_gpu::open`): one
    /// device, and its kept chunks, shared by several embedded clients.
    pub fn with_shared_gpu(mut self, gpu: Arc<accel_gpu::Offloader>) -> Client {
        self.gpu = Some(gpu);
        self
    }

    /// The embedded client's GPU and how many kernels ran on it, if it has one.
    pub fn gpu(&self) -> Option<(&accel_gpu::AdapterSummary, accel_gpu::OffloadCounts)> {
        self.gpu.as_ref().map(|o| (o.summary(), o.counts()))
    }

    /// The error of the latest kernel that failed on this client's GPU and
    /// ran on the CPU instead (`counts.failed` says how many did).
    pub fn gpu_last_failure(&self) -> Option<String> {
        self.gpu.as_ref().and_then(|o| o.last_failure())
    }

    /// Named `map_blocks` functions for the embedded client to call
    /// ([`crate::MapBlocks::named`]); on a cluster the workers carry them.
    pub fn with_functions(mut self, functions: accel_core::blocks::Functions) -> Client {
        self.functions = functions;
        self
    }

    /// Where this client runs plans: `local` or the scheduler's address.
    pub fn describe(&self) -> String {
        match &self.remote {
            Some(r) => r.address().to_string(),
            None => "local".into(),
        }
    }

    /// Builds, optimizes and lowers the expressions without running them.
    pub fn plan(&self, arrays: &[&Array]) -> Result<Planned> {
        self.plan_with(arrays, &[])
    }

    /// [`Client::plan`] for computing `arrays` and carrying out `writes` in one run.
    pub fn plan_with(&self, arrays: &[&Array], writes: &[Write]) -> Result<Planned> {
        for w in writes {
            w.check_unspent()?;
        }
        let t = Instant::now();
        let mut all: Vec<&Array> = arrays.to_vec();
        all.extend(writes.iter().map(|w| &w.array));
        let graph = to_graph(&all)?;
        let optimized = optimize(&graph)?;
        let mut options = self.options.clone();
        if self.remote.is_none() {
            // The embedded client runs on this process's pool.
            options.cores = Some(rayon::current_num_threads());
            // A device given up or lost runs nothing: the CPU's plan.
            options.gpu = self.gpu.as_ref().is_some_and(|o| o.usable());
        }
        let mut plan = lower_with(&optimized, &options)?;
        // The written arrays' stages are the tasks' to write, not the client's to fetch.
        let written = plan.outputs.split_off(arrays.len());
        plan.sinks = written
            .into_iter()
            .zip(writes)
            .map(|(s, w)| (s, Arc::new(w.sink.clone())))
            .collect();
        if !writes.is_empty() {
            plan.validate()?;
        }
        self.bind_functions(&mut plan)?;
        Ok(Planned {
            graph,
            optimized,
            plan,
            planning_time: t.elapsed(),
        })
    }

    /// Embedded: gives every named `map_blocks` stage its function. On a
    /// cluster: refuses closures, which cannot travel to the workers.
    fn bind_functions(&self, plan: &mut Plan) -> Result<()> {
        if self.remote.is_some() {
            let closure = plan
                .stages
                .iter()
                .any(|s| matches!(&s.kind, StageKind::MapBlocks(c) if c.func.is_some()));
            if closure {
                return Err(Error::Invalid(
                    "map_blocks with a closure runs only embedded: on a cluster, register the \
                     function by name in the workers (accel_worker::Functions) and call \
                     MapBlocks::named"
                        .into(),
                ));
            }
            return Ok(());
        }
        let missing = plan.bind_functions(&self.functions);
        if !missing.is_empty() {
            return Err(Error::Invalid(format!(
                "no map_blocks function named {} is registered with this client \
                 (Client::with_functions)",
                missing.join(", ")
            )));
        }
        Ok(())
    }

    /// Computes `arrays` and writes `writes` in one run (shared work is done
    /// once); the stores are written by the tasks, on a cluster by the workers.
    pub fn write(&self, writes: &[Write]) -> Result<Written> {
        let bytes = writes.iter().map(Write::nbytes).sum::<Result<u64>>()?;
        let run = self.run_with(&[], writes)?;
        Ok(Written {
            bytes,
            stats: run.stats,
        })
    }

    /// Computes `array` into a new `.npy` file at `path` (replacing any).
    pub fn to_npy(&self, array: &Array, path: impl AsRef<std::path::Path>) -> Result<Written> {
        self.write(&[Write::npy(array, path)?])
    }

    /// Computes `array` into a new Zarr v3 array at `path` (replacing any).
    pub fn to_zarr(
        &self,
        array: &Array,
        path: impl AsRef<std::path::Path>,
        opts: &crate::ZarrOptions,
    ) -> Result<Written> {
        self.write(&[Write::zarr(array, path, opts)?])
    }

    /// Computes `array` and keeps its chunks where they were computed — the
    /// workers' memory on a cluster, this process's embedded — as the input
    /// of later computations, which then start from them instead of
    /// recomputing. The chunks are released when the last handle to the
    /// returned array (or to an array built on it) is dropped, or when this
    /// client disconnects.
    pub fn persist(&self, array: &Array) -> Result<Array> {
        let meta = array.meta()?.clone();
        let planned = self.plan(&[array])?;
        match &self.remote {
            Some(remote) => {
                let (job, keep) = remote.persist(&planned.plan)?;
                let p = accel_core::op::Persisted {
                    job,
                    stage: planned.plan.outputs[0],
                    keep,
                };
                Ok(Array::from_expr(Op::Persisted(Arc::new(p)), vec![], meta))
            }
            None => {
                let held = self.hold(&planned.plan)?;
                // Chunked as the array says: kept as they are; otherwise (a
                // plan that chunks its output its own way) as one host array.
                let op = if held.meta == meta {
                    Op::Held(Arc::new(held))
                } else {
                    Op::Source(Arc::new(held.assemble()?))
                };
                Ok(Array::from_expr(op, vec![], meta))
            }
        }
    }

    /// Runs `plan` (one output) here and keeps its chunks as they are: later
    /// tasks take them over without copying.
    fn hold(&self, plan: &Plan) -> Result<accel_core::op::HeldArray> {
        let out = *plan
            .outputs
            .first()
            .ok_or_else(|| Error::Invalid("no output".into()))?;
        let meta = plan.stage(out).meta.clone();
        let mut chunks: Vec<Option<Arc<accel_core::Chunk>>> = vec![None; meta.chunks.count()];
        run_plan(
            Arc::new(plan.clone()),
            HashMap::new(),
            |_, key, chunk| {
                if key.stage == out
                    && let Some(slot) = chunks.get_mut(key.chunk as usize)
                {
                    *slot = Some(chunk.clone());
                }
                Ok(())
            },
            &crate::progress::Progress::new(self.progress, plan.task_count() as u64),
            self.gpu
                .clone()
                .map(|g| g as Arc<dyn accel_core::exec::Offload>),
        )?;
        let chunks = chunks
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::Invalid("persist: a chunk of the result is missing".into()))?;
        // A held chunk has nothing to be recomputed from: it never lives on
        // a GPU alone (a lost device would lose it). The device keeps its
        // copy for the kernels that read it.
        for c in &chunks {
            c.move_to_host()?;
        }
        let held = accel_core::op::HeldArray { meta, chunks };
        held.validate().map_err(Error::Invalid)?;
        Ok(held)
    }

    /// Computes several arrays in one run (shared work is done once).
    pub fn run(&self, arrays: &[&Array]) -> Result<Run> {
        self.run_with(arrays, &[])
    }

    /// Computes `arrays` and carries out `writes` in one run. New stores
    /// (`Write::npy`, `Write::zarr`) move into place only once the run
    /// succeeded: a failed run leaves what was at their paths.
    pub fn run_with(&self, arrays: &[&Array], writes: &[Write]) -> Result<Run> {
        let run = self.run_writing(arrays, writes)?;
        for w in writes {
            w.commit()?;
        }
        Ok(run)
    }

    fn run_writing(&self, arrays: &[&Array], writes: &[Write]) -> Result<Run> {
        let planned = self.plan_with(arrays, writes)?;
        if let Some(remote) = &self.remote {
            check_results_fit(&planned.plan)?;
            let progress =
                crate::progress::Progress::new(self.progress, planned.plan.task_count() as u64);
            let (outputs, stats) = remote.run(&planned.plan, &progress)?;
            let outputs = outputs
                .into_iter()
                .zip(&planned.plan.outputs)
                .map(|(buf, s)| DynArray::from_buffer(&planned.plan.stage(*s).meta.shape, buf))
                .collect::<Result<_>>()?;
            return Ok(Run {
                outputs,
                stats,
                planned,
            });
        }
        let plan = &planned.plan;
        if let Some(total) = accel_core::memory::total_memory() {
            plan.check_memory(total, "this machine's memory")
                .map_err(|e| Error::Invalid(format!("the plan cannot fit: {e}")))?;
        }
        check_results_fit(plan)?;
        if plan
            .stages
            .iter()
            .any(|s| matches!(s.kind, StageKind::Persisted { .. }))
        {
            return Err(Error::Invalid(
                "this array is kept on a cluster: compute it with the client that persisted it"
                    .into(),
            ));
        }
        // Terminal map stages are written in place into the result, each task
        // into its own rows; every other output is pasted chunk by chunk.
        let in_place: Vec<bool> = plan
            .outputs
            .iter()
            .map(|s| {
                let st = plan.stage(*s);
                matches!(st.kind, StageKind::Map(_))
                    && plan.sinks_of(*s).next().is_none()
                    && plan.outputs.iter().filter(|o| *o == s).count() == 1
                    && !plan.stages.iter().any(|x| x.inputs.contains(s))
                    && shape::size(&st.meta.shape) > 0
            })
            .collect();
        // Tasks written in place write whole rows where that costs no input
        // copies (see `plan_rows`): each page of the result then has one writer.
        // Not with a GPU, whose buffers are sized for the planned chunks.
        let mut widened = plan.clone();
        if self.gpu.is_none() {
            for (s, _) in plan.outputs.iter().zip(&in_place).filter(|(_, d)| **d) {
                accel_core::plan_rows::widen_to_rows(&mut widened, *s);
            }
        }
        let plan = &Arc::new(widened);
        let alloc = |s: &StageId| {
            let m = &plan.stage(*s).meta;
            Buffer::zeros(m.dtype, shape::size(&m.shape))
        };
        // A result whose chunks interleave within its pages is mapped up
        // front, page by page in parallel, rather than by tasks racing for
        // the same pages.
        let mut direct_bufs: Vec<Option<Buffer>> = plan
            .outputs
            .iter()
            .zip(&in_place)
            .map(|(s, &d)| {
                let m = &plan.stage(*s).meta;
                d.then(|| match accel_core::exec::writes_interleave(m) {
                    true => Buffer::zeros_populated(m.dtype, shape::size(&m.shape)),
                    false => alloc(s),
                })
            })
            .collect();
        let mut pasted: Vec<Option<Buffer>> = plan
            .outputs
            .iter()
            .zip(&in_place)
            .map(|(s, &d)| (!d).then(|| alloc(s)))
            .collect();
        let mut direct = HashMap::new();
        for (buf, s) in direct_bufs.iter_mut().zip(&plan.outputs) {
            let Some(buf) = buf else { continue };
            let pieces = split_chunks(buf, &plan.stage(*s).meta.chunks)
                .ok_or_else(|| Error::Invalid("result does not match its chunks".into()))?;
            for (c, rows) in pieces.into_iter().enumerate() {
                direct.insert(
                    ChunkKey {
                        stage: *s,
                        chunk: c as u32,
                    },
                    rows,
                );
            }
        }
        let stats = run_plan(
            plan.clone(),
            direct,
            |o, key, chunk| match &mut pasted[o] {
                Some(buf) => crate::assemble::paste(
                    buf,
                    &plan.stage(key.stage).meta.shape,
                    &plan.chunk_origin(key),
                    chunk,
                ),
                None => Ok(()),
            },
            &crate::progress::Progress::new(self.progress, plan.task_count() as u64),
            self.gpu
                .clone()
                .map(|g| g as Arc<dyn accel_core::exec::Offload>),
        )?;
        let results: Vec<Buffer> = direct_bufs
            .into_iter()
            .zip(pasted)
            .filter_map(|(d, p)| d.or(p))
            .collect();
        let outputs = results
            .into_iter()
            .zip(&plan.outputs)
            .map(|(buf, s)| DynArray::from_buffer(&plan.stage(*s).meta.shape, buf))
            .collect::<Result<_>>()?;
        Ok(Run {
            outputs,
            stats,
            planned,
        })
    }

    /// Computes one array as an `ndarray` of element type `T` (which must be its dtype).
    pub fn compute<T: Element>(&self, a: &Array) -> Result<ArrayD<T>> {
        let dtype = a.dtype()?;
        if dtype != T::DTYPE {
            return Err(Error::WrongType {
                actual: dtype,
                requested: T::DTYPE,
            });
        }
        let mut run = self.run(&[a])?;
        run.outputs
            .pop()
            .ok_or_else(|| Error::Invalid("no output".into()))?
            .into_typed()
    }
}

impl Array {
    /// Computes this array on the embedded client.
    pub fn compute<T: Element>(&self) -> Result<ArrayD<T>> {
        Client::local().compute(self)
    }

    /// Computes this array, whatever its dtype.
    pub fn compute_dyn(&self) -> Result<DynArray> {
        let mut run = Client::local().run(&[self])?;
        run.outputs
            .pop()
            .ok_or_else(|| Error::Invalid("no output".into()))
    }

    /// The optimized, lowered plan (task counts, DOT export).
    pub fn plan(&self) -> Result<Planned> {
        Client::local().plan(&[self])
    }
}

/// Refuses, before anything runs, results this machine could not hold:
/// each is gathered into one array here, wherever it was computed.
fn check_results_fit(plan: &accel_core::Plan) -> Result<()> {
    let Some(total) = accel_core::memory::total_memory() else {
        return Ok(());
    };
    let bytes = plan.outputs.iter().try_fold(0u64, |t, s| {
        let m = &plan.stage(*s).meta;
        let n = accel_core::shape::checked_size(&m.shape).ok()? as u64;
        n.checked_mul(m.dtype.size() as u64)
            .and_then(|b| t.checked_add(b))
    });
    match bytes {
        Some(b) if b <= total => Ok(()),
        _ => Err(Error::Invalid(format!(
            "the results take {}, more than this machine's memory ({total} bytes): \
             write them to storage (Write::npy, Write::zarr) or reduce them first",
            bytes.map_or("more bytes than a word counts".to_string(), |b| format!(
                "{b} bytes"
            ))
        ))),
    }
}
