//! NVRTC compilation and the CUDA driver: a kernel per program structure,
//! run per chunk (upload, launch, read back), like the wgpu backend.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use accel_core::buffer::{Buffer, Chunk};
use accel_core::exec::{Fold, Operand};
use accel_core::kernel::Program;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};

use super::{CudaSource, KERNEL, NVRTC_OPTIONS};
use crate::device::{
    AdapterSummary, Launch, Made, chunk_device_bytes, device_len, download, meta_words,
    operand_infos, result_dtype, signed, upload_bytes,
};
use crate::wgsl::WORKGROUP;
use crate::{Error, Result};

/// Whether NVRTC (libnvrtc) can be loaded (from `LD_LIBRARY_PATH` or the
/// system's library path; the PyPI wheel `nvidia-cuda-nvrtc-cu12` has one).
pub fn nvrtc_available() -> bool {
    // SAFETY: loads and unloads the library to see whether it is there.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Whether the CUDA driver (libcuda) can be loaded.
fn driver_available() -> bool {
    // SAFETY: as above, for libcuda.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

fn nvrtc_missing() -> Error {
    Error::Device(
        "NVRTC (libnvrtc.so) not found: install the CUDA toolkit or `pip install nvidia-cuda-nvrtc-cu12` and put its lib folder on LD_LIBRARY_PATH".into(),
    )
}

/// Compiles a generated kernel to PTX for `arch` (e.g. `compute_90`; the
/// NVRTC default when `None`).
pub fn compile_ptx(source: &str, arch: Option<&str>) -> Result<String> {
    if !nvrtc_available() {
        return Err(nvrtc_missing());
    }
    let mut options: Vec<String> = NVRTC_OPTIONS.iter().map(|s| s.to_string()).collect();
    if let Some(a) = arch {
        options.push(format!("--gpu-architecture={a}"));
    }
    let opts = cudarc::nvrtc::CompileOptions {
        options,
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(source, opts)
        .map(|ptx| ptx.to_src())
        .map_err(|e| Error::Compile(format!("{e:?}\n{source}")))
}

/// Compiles a generated kernel to machine code for `arch` (e.g. `sm_90`),
/// which the driver loads as it is. The driver refuses PTX from an NVRTC
/// newer than itself (its compiler does not know that PTX version), but
/// runs the machine code of a newer minor version.
pub fn compile_cubin(source: &str, arch: &str) -> Result<Vec<u8>> {
    use cudarc::nvrtc::{result, sys};
    if !nvrtc_available() {
        return Err(nvrtc_missing());
    }
    let src = std::ffi::CString::new(source)
        .map_err(|_| Error::Compile("a kernel's source holds a NUL byte".into()))?;
    let prog = result::create_program(&src, None).map_err(|e| Error::Compile(format!("{e:?}")))?;
    let mut options: Vec<String> = NVRTC_OPTIONS.iter().map(|s| s.to_string()).collect();
    options.push(format!("--gpu-architecture={arch}"));
    // SAFETY: `prog` was created above and is destroyed once, below; the
    // log and the cubin are read into buffers of the sizes NVRTC gives.
    let cubin = unsafe {
        match result::compile_program(prog, &options) {
            Err(e) => {
                let log = result::get_program_log(prog)
                    .map(|l| {
                        std::ffi::CStr::from_ptr(l.as_ptr())
                            .to_string_lossy()
                            .into_owned()
                    })
                    .unwrap_or_default();
                Err(Error::Compile(format!("{e:?}: {log}\n{source}")))
            }
            Ok(()) => {
                let mut size = 0usize;
                sys::nvrtcGetCUBINSize(prog, &mut size)
                    .result()
                    .and_then(|()| {
                        let mut cubin = vec![0u8; size];
                        sys::nvrtcGetCUBIN(prog, cubin.as_mut_ptr().cast())
                            .result()
                            .map(|()| cubin)
                    })
                    .map_err(|e| Error::Compile(format!("reading the machine code: {e:?}")))
            }
        }
    };
    // SAFETY: created above, and not destroyed before.
    let _ = unsafe { result::destroy_program(prog) };
    cubin
}

/// Errors after which a CUDA context is unusable: every later call fails,
/// and the values only the device held are gone.
const FATAL: [&str; 8] = [
    "CUDA_ERROR_ILLEGAL_ADDRESS",
    "CUDA_ERROR_LAUNCH_FAILED",
    "CUDA_ERROR_ECC_UNCORRECTABLE",
    "CUDA_ERROR_HARDWARE_STACK_ERROR",
    "CUDA_ERROR_ILLEGAL_INSTRUCTION",
    "CUDA_ERROR_MISALIGNED_ADDRESS",
    "CUDA_ERROR_INVALID_PC",
    "CUDA_ERROR_CONTEXT_IS_DESTROYED",
];

/// One CUDA device.
pub struct CudaGpu {
    pub(super) stream: Arc<CudaStream>,
    ctx: Arc<CudaContext>,
    summary: AdapterSummary,
    /// The virtual (`compute_90`) and real (`sm_90`) architectures.
    arch: String,
    sm: String,
    kernels: Mutex<HashMap<String, (CudaFunction, crate::wgsl::Shader)>>,
    pub(super) by_program: crate::memo::ProgramMemo<(CudaFunction, crate::wgsl::Shader)>,
    /// Copies of input chunks kept in device memory.
    pub(super) resident: crate::resident::Resident<CudaSlice<u8>>,
    compiled: AtomicU64,
}

impl std::fmt::Debug for CudaGpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaGpu({} #{})", self.summary.name, self.summary.index)
    }
}

/// Blocks of [`WORKGROUP`] threads for `threads` invocations, folded into
/// a second grid dimension past the first's limit.
pub(super) fn launch_config(threads: u32) -> LaunchConfig {
    let (gx, gy) = crate::wgsl::groups(threads);
    LaunchConfig {
        grid_dim: (gx, gy, 1),
        block_dim: (WORKGROUP, 1, 1),
        shared_mem_bytes: 0,
    }
}

pub(super) fn driver(e: impl std::fmt::Debug) -> Error {
    let text = format!("CUDA: {e:?}");
    if text.contains("CUDA_ERROR_OUT_OF_MEMORY") {
        Error::OutOfMemory(text)
    } else {
        Error::Device(text)
    }
}

impl CudaGpu {
    /// Device `ordinal`, or `Ok(None)` when this machine has no CUDA driver
    /// or no such device. A device whose kernels cannot be compiled and
    /// loaded (no NVRTC, or one the driver cannot take) is an error.
    pub fn open(ordinal: usize) -> Result<Option<CudaGpu>> {
        if !driver_available() {
            return Ok(None);
        }
        if !nvrtc_available() {
            return Err(nvrtc_missing());
        }
        let count = CudaContext::device_count().map_err(driver)?;
        if ordinal >= count.max(0) as usize {
            return Ok(None);
        }
        let ctx = CudaContext::new(ordinal).map_err(driver)?;
        // SAFETY: every allocation, copy and launch of this device goes on
        // its one stream (the legacy default stream, `default_stream` below;
        // no other is made), whose order alone puts each use after the
        // allocation and each read after the write: events per allocation
        // would only cost time. A second stream would need them back on.
        unsafe { ctx.disable_event_tracking() };
        let name = ctx.name().map_err(driver)?;
        let major = ctx
            .attribute(cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
            .map_err(driver)?;
        let minor = ctx
            .attribute(cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
            .map_err(driver)?;
        // Half the device's memory may hold kept chunks (or ACCEL_GPU_KEEP).
        let memory = ctx.total_mem().ok().map(|b| b as u64);
        let keep = crate::resident::keep_limit_from_env(memory)?;
        let gpu = CudaGpu {
            stream: ctx.default_stream(),
            ctx,
            summary: AdapterSummary {
                index: ordinal,
                name,
                backend: "CUDA".into(),
                software: false,
                float64: true,
            },
            arch: format!("compute_{major}{minor}"),
            sm: format!("sm_{major}{minor}"),
            kernels: Mutex::new(HashMap::new()),
            by_program: Default::default(),
            resident: crate::resident::Resident::with_limit(keep),
            compiled: AtomicU64::new(0),
        };
        gpu.probed().map(Some)
    }

    /// The device, once a kernel compiled for it has loaded.
    fn probed(self) -> Result<CudaGpu> {
        const PROBE: &str = "extern \"C\" __global__ void accel_probe(int *x) { x[0] = 1; }";
        self.module(PROBE).map_err(|e| {
            Error::Device(format!(
                "cannot load a kernel on {}: {e}",
                self.summary.name
            ))
        })?;
        Ok(self)
    }

    /// Compiles and loads `source`: machine code for this device, else PTX
    /// for the driver to compile (an NVRTC that does not know the device).
    fn module(&self, source: &str) -> Result<Arc<cudarc::driver::CudaModule>> {
        let native = compile_cubin(source, &self.sm).and_then(|cubin| {
            self.ctx
                .load_module(cudarc::nvrtc::Ptx::from_binary(cubin))
                .map_err(driver)
        });
        match native {
            Ok(m) => Ok(m),
            Err(first) => {
                let ptx = compile_ptx(source, Some(&self.arch))
                    .map_err(|e| Error::Compile(format!("{first}; as PTX: {e}")))?;
                self.ctx
                    .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
                    .map_err(|e| Error::Device(format!("{first}; as PTX: {}", driver(e))))
            }
        }
    }

    /// What a failed call means for the device: out of memory gives up the
    /// kept copies of host chunks; a fatal error loses the device (its
    /// chunks are recomputed).
    pub(super) fn failed(&self, e: Error) -> Error {
        match e {
            Error::OutOfMemory(m) => {
                self.resident.clear();
                Error::OutOfMemory(m)
            }
            Error::Device(m) if FATAL.iter().any(|f| m.contains(f)) => {
                self.lose();
                Error::Device(format!(
                    "{m}: the GPU's context is unusable, its chunks lost"
                ))
            }
            other => other,
        }
    }

    pub fn summary(&self) -> &AdapterSummary {
        &self.summary
    }

    /// Kernels compiled so far.
    pub fn compiled(&self) -> u64 {
        self.compiled.load(Ordering::Relaxed)
    }

    pub(super) fn kernel(&self, cuda: CudaSource) -> Result<(CudaFunction, crate::wgsl::Shader)> {
        let mut cache = self
            .kernels
            .lock()
            .map_err(|_| Error::Device("poisoned".into()))?;
        if let Some(k) = cache.get(&cuda.source) {
            return Ok(k.clone());
        }
        let module = self.module(&cuda.source)?;
        let f = module.load_function(KERNEL).map_err(driver)?;
        self.compiled.fetch_add(1, Ordering::Relaxed);
        cache.insert(cuda.source, (f.clone(), cuda.shader.clone()));
        Ok((f, cuda.shader))
    }

    /// Inputs read from device memory instead of uploaded, and chunks kept.
    pub fn resident(&self) -> (u64, usize) {
        (self.resident.hits(), self.resident.kept())
    }

    /// The time of one run of `program` over a chunk of shape `local` from
    /// `inputs` already on the device (see [`crate::Gpu::time_map`]).
    pub fn time_map(
        &self,
        program: &Program,
        local: &[usize],
        inputs: &[(&[usize], &Buffer)],
        repeats: u32,
    ) -> Result<std::time::Duration> {
        let Launch {
            access,
            strides,
            root,
            n,
            n32,
        } = Launch::new(program, local, &crate::device::pair_infos(inputs))?;
        if n == 0 {
            return Ok(std::time::Duration::ZERO);
        }
        let kernel = self.by_program.get_or_make(program, &access, None, || {
            self.kernel(super::generate(program, &access)?)
                .map(Arc::new)
        })?;
        let (f, shader) = (&kernel.0, &kernel.1);
        let origin = signed(&vec![0; local.len()]);
        let meta = meta_words(program, shader, n32, &origin, local, &strides);
        let s = &self.stream;
        let dims = s.clone_htod(&meta).map_err(driver)?;
        let ins = inputs
            .iter()
            .map(|(_, b)| s.clone_htod(&upload_bytes(b)).map_err(driver))
            .collect::<Result<Vec<_>>>()?;
        let mut out = s
            .alloc_zeros::<u8>(n * root.size().max(4))
            .map_err(driver)?;
        let mut status = s.alloc_zeros::<u32>(1).map_err(driver)?;
        let mut run = |times: u32| -> Result<std::time::Duration> {
            s.synchronize().map_err(driver)?;
            let start = std::time::Instant::now();
            for _ in 0..times {
                let mut launch = s.launch_builder(f);
                launch.arg(&dims);
                for b in &ins {
                    launch.arg(b);
                }
                launch.arg(&mut out);
                if shader.flags {
                    launch.arg(&mut status);
                }
                // SAFETY: as in `run`: the kernel's own parameters, in order.
                unsafe { launch.launch(launch_config(n32)) }.map_err(driver)?;
            }
            s.synchronize().map_err(driver)?;
            Ok(start.elapsed())
        };
        run(1)?;
        Ok(run(repeats.max(1))? / repeats.max(1))
    }

    /// Runs `program` (its map, or the fold `fold`) over one chunk, reading
    /// kept copies of input chunks (see [`crate::Gpu::run_operands`]).
    pub fn run_operands(
        &self,
        program: &Program,
        origin: &[usize],
        local: &[usize],
        inputs: &[Operand<'_>],
        fold: Option<Fold>,
    ) -> Result<Buffer> {
        match self
            .launch(program, origin, local, inputs, fold, false)
            .map_err(|e| self.failed(e))?
        {
            Made::Values(data) => Ok(data),
            Made::Kept(_) => Err(Error::Device("a kernel's values left on the device".into())),
        }
    }

    /// The map made a chunk whose values stay on the device for the kernels
    /// that read it next (see [`crate::Gpu::run_chunk`]).
    pub fn run_chunk(
        &self,
        program: &Program,
        origin: &[usize],
        local: &[usize],
        inputs: &[Operand<'_>],
    ) -> Result<Arc<Chunk>> {
        let root = result_dtype(program)?;
        let keep = self.keeps(device_len(root, accel_core::shape::size(local)));
        Ok(
            match self
                .launch(program, origin, local, inputs, None, keep)
                .map_err(|e| self.failed(e))?
            {
                Made::Values(data) => Arc::new(Chunk::array(local.to_vec(), data)),
                Made::Kept(out) => self.chunk_on_device(local, root, out),
            },
        )
    }

    /// Runs a kernel: its values, or, with `keep`, the device buffer
    /// holding them (only the status word read back).
    fn launch(
        &self,
        program: &Program,
        origin: &[usize],
        local: &[usize],
        inputs: &[Operand<'_>],
        fold: Option<Fold>,
        keep: bool,
    ) -> Result<Made<CudaSlice<u8>>> {
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
        let kernel = self.by_program.get_or_make(program, &access, fold, || {
            let source = match fold {
                None => super::generate(program, &access)?,
                Some(f) => super::generate_fold(program, &access, f)?,
            };
            self.kernel(source).map(Arc::new)
        })?;
        // Results: one per element, or one per strip.
        let results = match fold {
            None => n,
            Some(_) => n.div_ceil(crate::wgsl::STRIP as usize),
        };
        let threads = u32::try_from(results).map_err(|_| Error::TooLarge(results as u64))?;
        let (f, shader) = (&kernel.0, &kernel.1);
        let meta = meta_words(program, shader, n32, &signed(origin), local, &strides);
        let s = &self.stream;
        let dims = s.clone_htod(&meta).map_err(driver)?;
        // Copies of chunks that died are freed first.
        drop(self.resident.sweep());
        let ins = inputs
            .iter()
            .map(|o| match o.chunk() {
                Some(c) => self.kept_copy(c),
                None => s
                    .clone_htod(&upload_bytes(o.data()?))
                    .map(Arc::new)
                    .map_err(driver),
            })
            .collect::<Result<Vec<_>>>()?;
        let out_bytes = results * root.size().max(4);
        let mut out = s.alloc_zeros::<u8>(out_bytes).map_err(driver)?;
        let mut status = s.alloc_zeros::<u32>(1).map_err(driver)?;
        let cfg = launch_config(threads);
        let mut launch = s.launch_builder(f);
        launch.arg(&dims);
        for b in &ins {
            launch.arg(b.as_ref());
        }
        launch.arg(&mut out);
        if shader.flags {
            launch.arg(&mut status);
        }
        // SAFETY: the kernel's parameters are exactly these buffers, in this
        // order, generated with it ([`super::generate`]); every index it
        // forms is below the element count in `dims[0]` or reads `dims`
        // words `meta_words` wrote.
        unsafe { launch.launch(cfg) }.map_err(driver)?;
        let special = s.clone_dtoh(&status).map_err(driver)?;
        if let Some(&k) = special.first()
            && k > 0
        {
            return Err(Error::SpecialValues(k));
        }
        if keep {
            return Ok(Made::Kept(out));
        }
        let bytes = s.clone_dtoh(&out).map_err(driver)?;
        Ok(Made::Values(download(root, &bytes, results)))
    }

    /// The device's copy of `chunk`: the kept one (always, for a chunk whose
    /// values are only on the device), or one uploaded now.
    pub(super) fn kept_copy(&self, chunk: &Arc<Chunk>) -> Result<Arc<CudaSlice<u8>>> {
        self.resident
            .get_or_upload(chunk, chunk_device_bytes(chunk)?, || {
                self.stream
                    .clone_htod(&upload_bytes(chunk.data()?))
                    .map_err(driver)
            })
    }
}
