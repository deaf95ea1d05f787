//! One GPU opened through wgpu (Vulkan): compiled pipelines cached by their
//! shader text, and a kernel run per chunk (upload, dispatch, read back).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use accel_core::buffer::{Buffer, Chunk};
use accel_core::dtype::DType;
use accel_core::exec::{Fold, Operand};
use accel_core::kernel::Program;
use accel_core::kernel::ir::Instr;
use accel_core::shape;

use crate::wgsl::{self, Access, WORKGROUP};
use crate::{Error, Result};

mod lazy;
mod stencil;
mod timing;

pub(crate) use lazy::device_len;

/// Longest wait for one kernel: a hung device fails the task (which then
/// runs on the CPU) instead of hanging it.
const KERNEL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Which GPU a worker or an embedded client uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GpuChoice {
    /// The first hardware GPU with 64-bit floats and integers; none if there
    /// is none (software renderers such as lavapipe are passed over).
    Auto,
    /// CPU only.
    #[default]
    None,
    /// The first software (CPU-emulated) Vulkan device, such as Mesa's
    /// lavapipe: slower than accel's own CPU kernels, for tests.
    Software,
    /// The adapter with this index in [`adapters`]' list.
    Index(usize),
    /// CUDA device N (`cuda` or `cuda:N`).
    Cuda(usize),
}

impl std::str::FromStr for GpuChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<GpuChoice> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(GpuChoice::Auto),
            "none" | "" => Ok(GpuChoice::None),
            "software" => Ok(GpuChoice::Software),
            "cuda" => Ok(GpuChoice::Cuda(0)),
            other if other.starts_with("cuda:") => other[5..]
                .parse()
                .map(GpuChoice::Cuda)
                .map_err(|_| Error::Choice(format!("`{s}`: expected cuda:N"))),
            other => other.parse().map(GpuChoice::Index).map_err(|_| {
                Error::Choice(format!(
                    "`{s}`: expected auto, none, software, cuda[:N] or a Vulkan adapter number"
                ))
            }),
        }
    }
}

/// What an adapter is, for listings and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    pub index: usize,
    pub name: String,
    pub backend: String,
    pub software: bool,
    /// Has 64-bit floats and integers in shaders (accel's kernels need both).
    pub float64: bool,
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::VULKAN;
    wgpu::Instance::new(desc)
}

/// 64-bit floats and integers in shaders, and SPIR-V handed to the driver
/// as generated (see [`crate::spirv`]: exact float arithmetic).
const NEEDED: wgpu::Features = wgpu::Features::SHADER_F64
    .union(wgpu::Features::SHADER_INT64)
    .union(wgpu::Features::PASSTHROUGH_SHADERS);

fn summary(index: usize, a: &wgpu::Adapter) -> AdapterSummary {
    let info = a.get_info();
    AdapterSummary {
        index,
        name: info.name,
        backend: format!("{:?}", info.backend),
        software: info.device_type == wgpu::DeviceType::Cpu,
        float64: a.features().contains(NEEDED),
    }
}

/// The Vulkan adapters of this machine, in the order `GpuChoice::Index` counts.
pub fn adapters() -> Vec<AdapterSummary> {
    let found = pollster::block_on(instance().enumerate_adapters(wgpu::Backends::VULKAN));
    found
        .iter()
        .enumerate()
        .map(|(k, a)| summary(k, a))
        .collect()
}

/// Counts of tasks by where they ran.
#[derive(Debug, Default)]
struct Counters {
    kernels: AtomicU64,
    elements: AtomicU64,
    pipelines: AtomicU64,
}

/// What a kernel's run made: its values, or the device buffer holding them.
pub(crate) enum Made<B = wgpu::Buffer> {
    Values(Buffer),
    Kept(B),
}

/// An input on its way to a kernel: bytes to upload, or a copy kept on the
/// device (and its length).
enum Upload {
    Bytes(Vec<u8>),
    Kept(Arc<wgpu::Buffer>, u64),
}

/// A buffer bound to a kernel: the pool's (given back after), or a kept copy.
enum Held {
    Pooled(wgpu::Buffer),
    Kept(Arc<wgpu::Buffer>),
}

impl Held {
    fn buffer(&self) -> &wgpu::Buffer {
        match self {
            Held::Pooled(b) => b,
            Held::Kept(b) => b,
        }
    }
}

/// A compiled kernel: its pipeline and the layout of its bindings.
pub(crate) struct Pipeline {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    shader: wgsl::Shader,
}

/// An opened GPU.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    summary: AdapterSummary,
    max_binding: u64,
    pipelines: Mutex<HashMap<String, Arc<Pipeline>>>,
    counters: Counters,
    /// Whether the kernels' `fma` is the device's or an exact emulation.
    fma: crate::wgsl_math::Fma,
    /// Pipelines by program (skips generating a stage's shader per task).
    by_program: crate::memo::ProgramMemo<Pipeline>,
    /// Serializes submissions: one kernel at a time keeps memory bounded
    /// and the device's queue short (the CPU pool runs the rest).
    submit: Mutex<()>,
    /// Device buffers of finished kernels, reused by the next ones.
    pool: crate::pool::BufferPool,
    /// Copies of input chunks kept in device memory.
    resident: crate::resident::Resident<wgpu::Buffer>,
    max_buffer: u64,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpu({} #{})", self.summary.name, self.summary.index)
    }
}

impl Gpu {
    /// Opens the GPU `choice` names; `Ok(None)` for `None`, and for `Auto`
    /// on a machine without a suitable GPU.
    pub fn open(choice: GpuChoice) -> Result<Option<Gpu>> {
        let inst = instance();
        let found = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::VULKAN));
        let listed: Vec<AdapterSummary> = found
            .iter()
            .enumerate()
            .map(|(k, a)| summary(k, a))
            .collect();
        let pick = match choice {
            GpuChoice::None => return Ok(None),
            GpuChoice::Auto => listed.iter().position(|s| !s.software && s.float64),
            GpuChoice::Software => listed.iter().position(|s| s.software),
            GpuChoice::Index(k) if k < listed.len() => Some(k),
            GpuChoice::Cuda(_) => {
                return Err(Error::Choice(
                    "a CUDA device is opened by accel_gpu::open".into(),
                ));
            }
            GpuChoice::Index(k) => {
                return Err(Error::Choice(format!(
                    "there is no GPU {k}: this machine has {} Vulkan adapter(s){}",
                    listed.len(),
                    describe(&listed)
                )));
            }
        };
        let Some(k) = pick else {
            if choice == GpuChoice::Auto {
                return Ok(None);
            }
            return Err(Error::Choice(format!(
                "no software Vulkan device (install Mesa's lavapipe: apt-get install mesa-vulkan-drivers){}",
                describe(&listed)
            )));
        };
        let adapter = &found[k];
        let summary = listed[k].clone();
        if !summary.float64 {
            return Err(Error::Choice(format!(
                "GPU {k} ({}) lacks 64-bit floats or integers in shaders (SHADER_F64, SHADER_INT64) or SPIR-V passthrough, which accel's kernels need",
                summary.name
            )));
        }
        let limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("accel"),
            required_features: NEEDED,
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| Error::Device(format!("{}: {e}", summary.name)))?;
        // Errors outside an error scope are logged, never a panic.
        device.on_uncaptured_error(Arc::new(|e: wgpu::Error| {
            tracing::error!("GPU error: {e}");
        }));
        let mut gpu = Gpu {
            device,
            queue,
            summary,
            max_binding: limits
                .max_storage_buffer_binding_size
                .min(limits.max_buffer_size),
            pipelines: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            submit: Mutex::new(()),
            pool: Default::default(),
            max_buffer: limits.max_buffer_size,
            fma: crate::wgsl_math::Fma::Native,
            by_program: Default::default(),
            resident: crate::resident::Resident::with_limit(crate::resident::keep_limit_from_env(
                None,
            )?),
        };
        if !gpu.fma_is_fused()? {
            gpu.fma = crate::wgsl_math::Fma::Emulated;
        }
        Ok(Some(gpu))
    }

    pub fn summary(&self) -> &AdapterSummary {
        &self.summary
    }

    /// Device buffers kept for the next kernels.
    pub fn kept_buffers(&self) -> usize {
        self.pool.kept()
    }

    /// Kernels run, elements computed and pipelines compiled so far.
    pub fn counts(&self) -> (u64, u64, u64) {
        let c = &self.counters;
        (
            c.kernels.load(Ordering::Relaxed),
            c.elements.load(Ordering::Relaxed),
            c.pipelines.load(Ordering::Relaxed),
        )
    }

    /// Runs `program` over the output chunk at `origin` of shape `local`,
    /// its inputs as (chunk shape, data) in program-input order (lined up
    /// as on the CPU: trailing axes, length-1 axes broadcast).
    pub fn run_map(
        &self,
        program: &Program,
        origin: &[usize],
        local: &[usize],
        inputs: &[(&[usize], &Buffer)],
    ) -> Result<Buffer> {
        self.run_operands(program, origin, local, &plain(inputs), None)
    }

    /// [`Gpu::run_map`]'s values folded by `fold` on the device: one partial
    /// result per strip of [`wgsl::STRIP`] elements (in index order), of the
    /// values' dtype; only those come back.
    pub fn run_fold(
        &self,
        program: &Program,
        origin: &[usize],
        local: &[usize],
        inputs: &[(&[usize], &Buffer)],
        fold: Fold,
    ) -> Result<Buffer> {
        self.run_operands(program, origin, local, &plain(inputs), Some(fold))
    }

    /// Runs `program` (its map, or the fold `fold`) over one chunk; an
    /// input that is a whole chunk is read from device memory when a copy of
    /// it is kept there, and kept after its upload (see [`crate::resident`]).
    pub fn run_operands(
        &self,
        program: &Program,
        origin: &[usize],
        local: &[usize],
        inputs: &[Operand<'_>],
        fold: Option<Fold>,
    ) -> Result<Buffer> {
        match self.launch(program, origin, local, inputs, fold, false)? {
            Made::Values(data) => Ok(data),
            Made::Kept(_) => Err(Error::Device("a kernel's values left on the device".into())),
        }
    }

    /// [`Gpu::run_operands`]'s map made a chunk of shape `local`, whose
    /// values stay on the device for the kernels that read it next (read
    /// back on first use on the host; at once when too large to keep).
    pub fn run_chunk(
        &self,
        program: &Program,
        origin: &[usize],
        local: &[usize],
        inputs: &[Operand<'_>],
    ) -> Result<Arc<Chunk>> {
        let root = result_dtype(program)?;
        let keep = self.keeps(device_len(root, shape::size(local)));
        Ok(
            match self.launch(program, origin, local, inputs, None, keep)? {
                Made::Values(data) => Arc::new(Chunk::array(local.to_vec(), data)),
                Made::Kept(out) => self.chunk_on_device(local, root, out),
            },
        )
    }

    /// Runs a kernel; with `keep_out`, its values stay in device memory.
    fn launch(
        &self,
        program: &Program,
        origin: &[usize],
        local: &[usize],
        inputs: &[Operand<'_>],
        fold: Option<Fold>,
        keep_out: bool,
    ) -> Result<Made> {
        let Launch {
            access,
            strides,
            root,
            n,
            n32,
        } = Launch::new(program, local, &operand_infos(inputs))?;
        if n == 0 {
            return Ok(Made::Values(Buffer::zeros(root, 0)));
        }
        // A strip's end, `first + STRIP`, must not wrap in u32.
        if fold.is_some() && n > (u32::MAX - crate::wgsl::STRIP) as usize {
            return Err(Error::TooLarge(n as u64));
        }
        let pipe = self.pipeline(program, &access, fold)?;
        let meta = meta_words(program, &pipe.shader, n32, &signed(origin), local, &strides);
        // Results: one per element, or one per strip.
        let results = match fold {
            None => n,
            Some(_) => n.div_ceil(wgsl::STRIP as usize),
        };
        let out_bytes = (results * root.size().max(4)) as u64;
        for b in inputs
            .iter()
            .map(|o| device_len(o.dtype, o.len))
            .chain([out_bytes])
        {
            if b > self.max_binding {
                return Err(Error::TooLarge(b));
            }
        }
        // Copies of chunks that died go back to the pool first.
        self.pool.give(self.resident.sweep());
        let uploads = inputs
            .iter()
            .map(|o| self.upload(o))
            .collect::<Result<Vec<_>>>()?;
        let data = match self.dispatch(&pipe, &meta, uploads, (root, results), keep_out) {
            Err(Error::OutOfMemory(e)) => {
                // Kept copies are what a full device can give up.
                self.resident.clear();
                return Err(Error::OutOfMemory(e));
            }
            other => other?,
        };
        self.counters.kernels.fetch_add(1, Ordering::Relaxed);
        self.counters
            .elements
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(data)
    }

    /// Runs a compiled kernel over `n` invocations, each writing one result:
    /// uploads `dims` and the inputs' bytes, reads the results back.
    fn dispatch(
        &self,
        pipe: &Pipeline,
        meta: &[u32],
        inputs: Vec<Upload>,
        (root, n): (DType, usize),
        keep_out: bool,
    ) -> Result<Made> {
        let n32 = u32::try_from(n).map_err(|_| Error::TooLarge(n as u64 * 8))?;
        let out_bytes = (n * root.size().max(4)) as u64;
        use wgpu::BufferUsages as U;
        let take =
            |bytes: u64, usage: U| self.pool.take(&self.device, bytes, usage, self.max_buffer);
        // (buffer, bytes bound): pooled buffers may be larger than their contents.
        let mut bound: Vec<(Held, u64)> = Vec::with_capacity(inputs.len() + 3);
        for input in std::iter::once(Upload::Bytes(bytes_of_words(meta))).chain(inputs) {
            match input {
                Upload::Bytes(bytes) => {
                    let b = take(bytes.len() as u64, U::STORAGE | U::COPY_DST);
                    self.queue.write_buffer(&b, 0, &bytes);
                    bound.push((Held::Pooled(b), bytes.len() as u64));
                }
                Upload::Kept(b, bytes) => bound.push((Held::Kept(b), bytes)),
            }
        }
        let out = take(out_bytes, U::STORAGE | U::COPY_SRC);
        bound.push((Held::Pooled(out), out_bytes));
        // One word after the result: elements outside a transcendental's fast range.
        if pipe.shader.flags {
            let s = take(4, U::STORAGE | U::COPY_SRC | U::COPY_DST);
            self.queue.write_buffer(&s, 0, &[0u8; 4]);
            bound.push((Held::Pooled(s), 4));
        }
        let status_at = pipe.shader.flags.then(|| bound.len() - 1);
        let out_at = bound.len() - 1 - usize::from(pipe.shader.flags);
        // A result kept on the device: only the status word comes back.
        let values_bytes = if keep_out { 0 } else { out_bytes };
        let readback_bytes = values_bytes + if pipe.shader.flags { 4 } else { 0 };
        let readback = take(readback_bytes.max(4), U::MAP_READ | U::COPY_DST);
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let refs: Vec<(&wgpu::Buffer, u64)> = bound.iter().map(|(b, n)| (b.buffer(), *n)).collect();
        let group = self.bind(&pipe.layout, &refs);
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            pass.set_pipeline(&pipe.pipeline);
            pass.set_bind_group(0, &group, &[]);
            let (gx, gy) = wgsl::groups(n32);
            pass.dispatch_workgroups(gx, gy, 1);
        }
        if !keep_out {
            enc.copy_buffer_to_buffer(bound[out_at].0.buffer(), 0, &readback, 0, out_bytes);
        }
        if let Some(k) = status_at {
            enc.copy_buffer_to_buffer(bound[k].0.buffer(), 0, &readback, values_bytes, 4);
        }
        let read = self.submit_and_read(enc, [scope, oom], &readback, readback_bytes, |view| {
            let special = view
                .get(values_bytes as usize..values_bytes as usize + 4)
                .map_or(0, |w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
            let data = (!keep_out).then(|| download(root, view, n));
            (data, special)
        });
        // The kernel is done with every buffer (the wait above): keep them.
        let mut kept_out = None;
        let mut pooled = Vec::with_capacity(bound.len() + 1);
        for (k, (b, _)) in bound.into_iter().enumerate() {
            match b {
                Held::Pooled(b) if keep_out && k == out_at => kept_out = Some(b),
                Held::Pooled(b) => pooled.push(b),
                Held::Kept(_) => {}
            }
        }
        pooled.push(readback);
        self.pool.give(pooled);
        let (data, special) = read?;
        if special > 0 {
            self.pool.give(kept_out);
            return Err(Error::SpecialValues(special));
        }
        match (data, kept_out) {
            (Some(data), _) => Ok(Made::Values(data)),
            (None, Some(out)) => Ok(Made::Kept(out)),
            (None, None) => Err(Error::Device(
                "a kernel's result buffer went missing".into(),
            )),
        }
    }

    /// An input's data for the device: a kept copy of its chunk (uploaded
    /// now when there is none), or its bytes to upload.
    fn upload(&self, o: &Operand<'_>) -> Result<Upload> {
        let Some(chunk) = o.chunk() else {
            return Ok(Upload::Bytes(upload_bytes(o.data()?)));
        };
        Ok(Upload::Kept(
            self.kept_copy(chunk)?,
            device_len(o.dtype, o.len),
        ))
    }

    /// The device's copy of `chunk`: the kept one (always, for a chunk whose
    /// values are only on the device), or one uploaded now (and kept when
    /// it fits).
    pub(crate) fn kept_copy(&self, chunk: &Arc<Chunk>) -> Result<Arc<wgpu::Buffer>> {
        let bytes = chunk_device_bytes(chunk)?;
        let copy = self.resident.get_or_upload(chunk, bytes, || {
            let data = chunk.data()?;
            // Its own scopes: a buffer that failed is never kept.
            let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
            let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
            let b = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: bytes.max(4).next_multiple_of(4),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            self.queue.write_buffer(&b, 0, &upload_bytes(data));
            if let Some(e) = pollster::block_on(oom.pop()) {
                return Err(Error::OutOfMemory(e.to_string()));
            }
            if let Some(e) = pollster::block_on(scope.pop()) {
                return Err(Error::Device(e.to_string()));
            }
            Ok(b)
        });
        if let Err(Error::OutOfMemory(_)) = &copy {
            // Kept copies are what a full device can give up.
            self.resident.clear();
        }
        copy
    }

    /// Inputs read from device memory instead of uploaded, and chunks kept.
    pub fn resident(&self) -> (u64, usize) {
        (self.resident.hits(), self.resident.kept())
    }

    /// A bind group of `bound` (buffer, bytes bound) in binding order.
    pub(crate) fn bind(
        &self,
        layout: &wgpu::BindGroupLayout,
        bound: &[(&wgpu::Buffer, u64)],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry<'_>> = bound
            .iter()
            .enumerate()
            .map(|(k, (b, bytes))| wgpu::BindGroupEntry {
                binding: k as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b,
                    offset: 0,
                    // A binding is at least one word (an empty input binds one).
                    size: std::num::NonZeroU64::new((*bytes).max(4)),
                }),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout,
            entries: &entries,
        })
    }

    /// Submits `enc` (recorded under `scopes`: validation errors, then out
    /// of memory), waits for the device, and hands `read` the first `bytes`
    /// of `readback` (a mapped-read buffer `enc` copied results into).
    pub(crate) fn submit_and_read<T>(
        &self,
        enc: wgpu::CommandEncoder,
        [scope, oom]: [wgpu::ErrorScopeGuard; 2],
        readback: &wgpu::Buffer,
        bytes: u64,
        read: impl FnOnce(&[u8]) -> T,
    ) -> Result<T> {
        let guard = self
            .submit
            .lock()
            .map_err(|_| Error::Device("poisoned".into()))?;
        self.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        // Nothing to read (a result kept on the device): the wait is all.
        match bytes {
            0 => drop(tx.send(Ok(()))),
            _ => readback
                .slice(..bytes)
                .map_async(wgpu::MapMode::Read, move |r| drop(tx.send(r))),
        }
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(KERNEL_TIMEOUT),
            })
            .map_err(|e| Error::Device(format!("waiting for the kernel: {e}")))?;
        drop(guard);
        if let Some(e) = pollster::block_on(oom.pop()) {
            return Err(Error::OutOfMemory(e.to_string()));
        }
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Device(e.to_string()));
        }
        rx.recv()
            .map_err(|_| Error::Device("the read-back never completed".into()))?
            .map_err(|e| Error::Device(format!("reading the result back: {e}")))?;
        if bytes == 0 {
            return Ok(read(&[]));
        }
        let out = {
            let view = readback
                .slice(..bytes)
                .get_mapped_range()
                .map_err(|e| Error::Device(format!("reading the result back: {e}")))?;
            read(&view)
        };
        readback.unmap();
        Ok(out)
    }

    /// The pipeline of `program` read through `access` (its map, or the
    /// fold `fold`), compiled on first use.
    fn pipeline(
        &self,
        program: &Program,
        access: &[Access],
        fold: Option<Fold>,
    ) -> Result<Arc<Pipeline>> {
        self.by_program.get_or_make(program, access, fold, || {
            let shader = match fold {
                None => wgsl::generate(program, access, self.fma)?,
                Some(f) => wgsl::generate_fold(program, access, self.fma, f)?,
            };
            self.compile(shader, program.inputs.len() as u32)
        })
    }

    /// Whether the device's `fma` is fused: `fma(a, a, -(1 + 2^-29))` with
    /// `a = 1 + 2^-30` is 2^-60 with one rounding and 0 with two.
    fn fma_is_fused(&self) -> Result<bool> {
        let source = format!(
            "@group(0) @binding(0) var<storage, read> dims: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<f64>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {{
    if (gid.x >= dims[0]) {{
        return;
    }}
    let a = 1.0lf + f64(dims[1]) * bitcast<f64>({}lu);
    out[gid.x] = fma(a, a, -(1.0lf + bitcast<f64>({}lu)));
}}
",
            2f64.powi(-30).to_bits(),
            2f64.powi(-29).to_bits()
        );
        let pipe = self.compile(wgsl::Shader::fixed(source, 1), 0)?;
        match self.dispatch(&pipe, &[1, 1], Vec::new(), (DType::F64, 1), false)? {
            Made::Values(Buffer::F64(v)) => Ok(v.first() == Some(&2f64.powi(-60))),
            _ => Err(Error::Device("the fma probe returned no float".into())),
        }
    }

    /// Compiles `shader` (of `inputs` input bindings), once per text.
    fn compile(&self, shader: wgsl::Shader, inputs: u32) -> Result<Arc<Pipeline>> {
        let mut cache = self
            .pipelines
            .lock()
            .map_err(|_| Error::Device("poisoned".into()))?;
        if let Some(p) = cache.get(&shader.source) {
            return Ok(p.clone());
        }
        let spirv = crate::spirv::compile(&shader.source)?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let entry = [wgpu::PassthroughShaderEntryPoint {
            name: "main".into(),
            workgroup_size: (WORKGROUP, 1, 1),
        }];
        // SAFETY: naga generated and validated this SPIR-V from our WGSL;
        // the added decorations and modes only constrain float rounding.
        let module = unsafe {
            self.device
                .create_shader_module_passthrough(wgpu::ShaderModuleDescriptorPassthrough {
                    label: None,
                    entry_points: entry.as_slice().into(),
                    spirv: Some(spirv.into()),
                    ..Default::default()
                })
        };
        let bindings = inputs + 2 + u32::from(shader.flags);
        let entries: Vec<wgpu::BindGroupLayoutEntry> = (0..bindings)
            .map(|b| wgpu::BindGroupLayoutEntry {
                binding: b,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: b <= inputs,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: None,
                entries: &entries,
            });
        let pl = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: None,
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: None,
                layout: Some(&pl),
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Compile(format!("{e}\n{}", shader.source)));
        }
        self.counters.pipelines.fetch_add(1, Ordering::Relaxed);
        let p = Arc::new(Pipeline {
            pipeline,
            layout,
            shader,
        });
        cache.insert(p.shader.source.clone(), p.clone());
        Ok(p)
    }
}

fn describe(listed: &[AdapterSummary]) -> String {
    listed
        .iter()
        .map(|s| {
            format!(
                "\n  {}: {} ({}{}{})",
                s.index,
                s.name,
                s.backend,
                if s.software { ", software" } else { "" },
                if s.float64 { "" } else { ", no float64" }
            )
        })
        .collect()
}

/// A kernel run over one chunk, as every backend works it out first.
pub(crate) struct Launch {
    pub access: Vec<Access>,
    /// Per input, its element stride along each output axis.
    pub strides: Vec<Vec<i64>>,
    pub root: DType,
    /// Elements of the chunk (a `u32` too: kernels index with 32 bits).
    pub n: usize,
    pub n32: u32,
}

impl Launch {
    pub fn new(program: &Program, local: &[usize], inputs: &[Info<'_>]) -> Result<Launch> {
        let (access, strides) = line_up(program, local, inputs)?;
        let root = result_dtype(program)?;
        let n = shape::size(local);
        let n32 = u32::try_from(n).map_err(|_| Error::TooLarge(n as u64 * 8))?;
        Ok(Launch {
            access,
            strides,
            root,
            n,
            n32,
        })
    }
}

/// How each input lines up with the output chunk (as `Bound::new` does on
/// the CPU): its access pattern and, per output axis, its element stride.
pub(crate) fn line_up(
    program: &Program,
    local: &[usize],
    inputs: &[Info<'_>],
) -> Result<(Vec<Access>, Vec<Vec<i64>>)> {
    let nd = program.out_shape.len();
    if inputs.len() != program.inputs.len() || local.len() != nd {
        return Err(Error::Layout(format!(
            "a kernel of {} inputs over {nd}-d chunks given {} inputs and a chunk of shape {local:?}",
            program.inputs.len(),
            inputs.len()
        )));
    }
    let out_strides = shape::strides(local);
    let mut access = Vec::with_capacity(inputs.len());
    let mut all = Vec::with_capacity(inputs.len());
    for (spec, &(cshape, dtype, len)) in program.inputs.iter().zip(inputs) {
        if dtype != spec.dtype {
            return Err(Error::Layout(format!(
                "input chunk is {dtype} where the kernel expects {}",
                spec.dtype
            )));
        }
        let off = nd - spec.shape.len();
        let cstrides = shape::strides(cshape);
        let mut strides = vec![0i64; nd];
        let mut expect = 1;
        for (d, &len) in spec.shape.iter().enumerate() {
            if len != 1 || program.out_shape[off + d] == 1 {
                if cshape.len() != spec.shape.len() || cshape[d] != local[off + d] {
                    return Err(Error::Layout(format!(
                        "input chunk of shape {cshape:?} does not line up with output chunk {local:?}"
                    )));
                }
                strides[off + d] = cstrides[d] as i64;
                expect *= cshape[d];
            }
        }
        if len != expect && !(expect == 1 && len == 1) {
            return Err(Error::Layout(format!(
                "input chunk holds {len} elements, expected {expect}"
            )));
        }
        let contiguous = strides
            .iter()
            .zip(&out_strides)
            .zip(local)
            .all(|((&s, &o), &n)| n <= 1 || s == o as i64);
        access.push(if strides.iter().all(|&s| s == 0) {
            Access::Scalar
        } else if contiguous {
            Access::Contiguous
        } else {
            Access::Strided
        });
        all.push(strides);
    }
    Ok((access, all))
}

/// An input as a kernel lines it up: its chunk shape, dtype and length.
pub(crate) type Info<'a> = (&'a [usize], DType, usize);

/// The inputs' shapes, dtypes and lengths (values never read back).
pub(crate) fn operand_infos<'a>(inputs: &[Operand<'a>]) -> Vec<Info<'a>> {
    inputs.iter().map(|o| (o.shape, o.dtype, o.len)).collect()
}

/// Host inputs' shapes, dtypes and lengths.
pub(crate) fn pair_infos<'a>(inputs: &[(&'a [usize], &Buffer)]) -> Vec<Info<'a>> {
    inputs
        .iter()
        .map(|&(s, b)| (s, b.dtype(), b.len()))
        .collect()
}

/// The dtype of a kernel's result.
pub(crate) fn result_dtype(program: &Program) -> Result<DType> {
    program
        .dtypes
        .get(program.root as usize)
        .copied()
        .ok_or_else(|| Error::Layout("a kernel without its result register".into()))
}

/// Bytes of an array chunk in device memory, its values wherever they are.
pub(crate) fn chunk_device_bytes(chunk: &Chunk) -> Result<u64> {
    match (chunk.col_count(), chunk.dtype()) {
        (1, Some(d)) => Ok(device_len(d, chunk.len())),
        _ => Err(Error::Layout(
            "a device input that is no array chunk".into(),
        )),
    }
}

/// Inputs as (chunk shape, data), none of them a chunk of its own.
pub(crate) fn plain<'a>(inputs: &[(&'a [usize], &'a Buffer)]) -> Vec<Operand<'a>> {
    inputs.iter().map(|&(s, b)| Operand::plain(s, b)).collect()
}

/// Chunk coordinates as the signed ones [`meta_words`] takes.
pub(crate) fn signed(origin: &[usize]) -> Vec<i64> {
    origin.iter().map(|&o| o as i64).collect()
}

/// The `meta` words a shader reads: element count, chunk shape, strides of
/// strided inputs, and each generator's counter at the chunk's first element
/// (`origin` may lie before the array: a stencil level's box).
pub(crate) fn meta_words(
    program: &Program,
    shader: &wgsl::Shader,
    n: u32,
    origin: &[i64],
    local: &[usize],
    strides: &[Vec<i64>],
) -> Vec<u32> {
    let mut meta = vec![n];
    meta.extend(local.iter().map(|&l| l as u32));
    for &k in &shader.strided {
        meta.extend(strides[k].iter().map(|&s| s as u32));
    }
    for &g in &shader.generators {
        let base = match &program.instrs[g] {
            Instr::Gen { base, strides, .. } => origin
                .iter()
                .zip(strides)
                .map(|(&o, &s)| o.wrapping_mul(s))
                .fold(*base, i64::wrapping_add),
            _ => 0,
        };
        meta.push(base as u64 as u32);
        meta.push((base as u64 >> 32) as u32);
    }
    // The shader's run-time zero (`Shader::zero_word`).
    meta.push(0);
    meta
}

fn bytes_of_words(words: &[u32]) -> Vec<u8> {
    bytemuck::cast_slice(words).to_vec()
}

/// A chunk's bytes as the shader reads them (booleans widened to `u32`).
pub(crate) fn upload_bytes(b: &Buffer) -> Vec<u8> {
    match b {
        Buffer::Bool(v) => v.iter().flat_map(|&x| (x as u32).to_ne_bytes()).collect(),
        Buffer::I32(v) => bytemuck::cast_slice(v).to_vec(),
        Buffer::I64(v) => bytemuck::cast_slice(v).to_vec(),
        Buffer::F32(v) => bytemuck::cast_slice(v).to_vec(),
        Buffer::F64(v) => bytemuck::cast_slice(v).to_vec(),
        Buffer::C128(v) => v
            .iter()
            .flat_map(|z| [z.re.to_ne_bytes(), z.im.to_ne_bytes()])
            .flatten()
            .collect(),
    }
}

pub(crate) fn download(d: DType, bytes: &[u8], n: usize) -> Buffer {
    fn words<T: bytemuck::Pod>(bytes: &[u8], n: usize) -> Vec<T> {
        let mut v: Vec<T> = vec![T::zeroed(); n];
        let dst: &mut [u8] = bytemuck::cast_slice_mut(&mut v);
        let len = dst.len().min(bytes.len());
        dst[..len].copy_from_slice(&bytes[..len]);
        v
    }
    match d {
        DType::Bool => Buffer::Bool(words::<u32>(bytes, n).into_iter().map(|x| x != 0).collect()),
        DType::I32 => Buffer::I32(words(bytes, n)),
        DType::I64 => Buffer::I64(words(bytes, n)),
        DType::F32 => Buffer::F32(words(bytes, n)),
        DType::F64 => Buffer::F64(words(bytes, n)),
        DType::C128 => {
            let parts: Vec<f64> = words(bytes, 2 * n);
            Buffer::C128(
                parts
                    .chunks_exact(2)
                    .map(|p| num_complex::Complex64::new(p[0], p[1]))
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use accel_core::dtype::{DType, Value};
    use accel_core::kernel::ir::{InputSpec, Instr, ProgramBuilder};
    use accel_core::op::{BinaryOp, GenKind};

    use crate::wgsl::{self, Access};

    /// The zero word the shader reads is the last `meta` word, and zero,
    /// with strided inputs and generators ahead of it.
    #[test]
    fn the_run_time_zero_is_the_last_meta_word() {
        let mut b = ProgramBuilder::new();
        let x = b.input(InputSpec {
            dtype: DType::F64,
            shape: vec![4, 5],
        });
        let g = b.push(
            Instr::Gen {
                kind: GenKind::Arange {
                    start: 0.0,
                    step: 1.0,
                },
                base: 3,
                strides: vec![5, 1],
            },
            DType::F64,
        );
        let zero = b.push(Instr::Const(Value::F64(-0.0)), DType::F64);
        let xg = b.push(Instr::Binary(BinaryOp::Mul, x, g), DType::F64);
        let r = b.push(Instr::Binary(BinaryOp::Add, xg, zero), DType::F64);
        let program = b.finish(r, vec![4, 5]);
        let shader = wgsl::generate(&program, &[Access::Strided], crate::wgsl_math::Fma::Native)
            .expect("generates");
        let meta = super::meta_words(&program, &shader, 20, &[0, 0], &[4, 5], &[vec![1, 4]]);
        assert_eq!(meta.len(), shader.zero_word() + 1);
        assert_eq!(meta.last(), Some(&0));
        let read = format!("let zero_bits = dims[{}];", shader.zero_word());
        assert!(shader.body.contains(&read), "{}", shader.body);
        // -0.0 is built from it, not written as a literal the driver folds.
        assert!(
            shader
                .body
                .contains("bitcast<f64>(u64(zero_bits) | 9223372036854775808lu)"),
            "{}",
            shader.body
        );
    }
}
