//! Compiled fused kernels: a program becomes one machine-code loop (Cranelift)
//! that keeps every intermediate in registers and reads each input stream
//! once, interleaved. The block interpreter stays the reference and the
//! fallback: programs with operations the compiler does not lower (see
//! [`lower::check`]), or inputs read through strides, run there, and the
//! property tests require both to give identical bits.
//!
//! Compiled code is cached by the program's structure (instructions, dtypes,
//! constants' bits, which inputs are scalars), so the tasks of a stage, and
//! identical stages of later jobs, compile once per process.
//! `ACCEL_JIT=0` (or [`set_enabled`]) turns compilation off; `ACCEL_JIT_WIDE=0`
//! keeps it to Cranelift's two-lane code (see [`wide`]).

mod lower;
pub mod wide;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module, default_libcall_names};

use super::ir::{Instr, Program};
use crate::dtype::Value;

pub use lower::{Access, Split, Unsupported, check, split};

/// Kernels kept in the process-wide cache before it starts over.
const CACHE_CAP: usize = 4096;

type KernelFn = unsafe extern "C" fn(*const *const u8, *mut u8, i64);

/// One compiled program.
pub struct Compiled {
    f: KernelFn,
    /// Owns the code `f` points into; freed when the last user drops it.
    module: Mutex<Option<JITModule>>,
    /// Microseconds spent compiling (for diagnostics and the benchmark).
    pub compile_us: u64,
    /// What the interpreter computes first, block by block, and hands over.
    pub split: Split,
    /// The same program four lanes wide (AVX2), when it is plain float64
    /// arithmetic: it runs all but the last `n mod STEP` elements.
    wide: Option<wide::Wide>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Compiled({} µs)", self.compile_us)
    }
}

impl Drop for Compiled {
    fn drop(&mut self) {
        if let Some(module) = self.module.get_mut().ok().and_then(Option::take) {
            // SAFETY: `f` points into this module's memory, and `f` goes away
            // with `self`: nobody can call it any more.
            unsafe { module.free_memory() };
        }
    }
}

impl Compiled {
    /// Computes `n` output elements into `out`.
    ///
    /// # Safety
    /// `inputs` holds one pointer per program input, in order, then one per
    /// frontier register of [`Compiled::split`]; a scalar input's points at
    /// one readable element, a strided input's is never read, every other
    /// pointer at `n` readable elements of its dtype; `out` at `n` writable
    /// elements of the root's dtype.
    pub unsafe fn call(&self, inputs: &[*const u8], out: *mut u8, n: usize) {
        let Some(w) = &self.wide else {
            // SAFETY: the caller upholds the contract above, which is the
            // generated function's; `n` fits i64 (it is a slice length).
            return unsafe { (self.f)(inputs.as_ptr(), out, n as i64) };
        };
        let main = n / wide::Wide::STEP * wide::Wide::STEP;
        if main > 0 {
            // SAFETY: as above, for the first `main` elements.
            unsafe { w.call(inputs, out, main) };
        }
        if main == n {
            return;
        }
        // The tail: streams and the output moved on by `main` float64 elements.
        let mut moved = [std::ptr::null::<u8>(); wide::MAX_INPUTS];
        for (k, (&p, &stream)) in inputs.iter().zip(&w.streams).enumerate() {
            // SAFETY: a stream holds `n` elements of 8 bytes, `main < n`.
            moved[k] = if stream {
                unsafe { p.add(main * 8) }
            } else {
                p
            };
        }
        // SAFETY: the same contract for the last `n - main` elements.
        unsafe { (self.f)(moved.as_ptr(), out.add(main * 8), (n - main) as i64) }
    }

    /// Whether the program also runs four lanes wide (AVX2).
    pub fn is_wide(&self) -> bool {
        self.wide.is_some()
    }
}

static DISABLED: AtomicBool = AtomicBool::new(false);
static COMPILED: AtomicU64 = AtomicU64::new(0);

/// Whether programs are compiled (on unless `ACCEL_JIT=0` or turned off here).
pub fn enabled() -> bool {
    static FROM_ENV: OnceLock<bool> = OnceLock::new();
    let env = *FROM_ENV.get_or_init(|| std::env::var("ACCEL_JIT").map_or(true, |v| v != "0"));
    env && !DISABLED.load(Ordering::Relaxed)
}

/// Turns compilation on or off for this process (benchmarks and tests
/// compare the two; results are identical either way).
pub fn set_enabled(on: bool) {
    DISABLED.store(!on, Ordering::Relaxed);
}

/// Number of programs compiled by this process so far.
pub fn compiled_count() -> u64 {
    COMPILED.load(Ordering::Relaxed)
}

/// The host's instruction set, detected once (None: not supported here).
fn isa() -> Option<OwnedTargetIsa> {
    static ISA: OnceLock<Option<OwnedTargetIsa>> = OnceLock::new();
    ISA.get_or_init(|| {
        let mut flags = settings::builder();
        flags.set("opt_level", "speed").ok()?;
        flags.set("is_pic", "false").ok()?;
        flags.set("use_colocated_libcalls", "false").ok()?;
        let builder = cranelift_native::builder().ok()?;
        builder.finish(settings::Flags::new(flags)).ok()
    })
    .clone()
}

/// Compiles `p` for inputs read as `access` says.
pub fn compile(p: &Program, access: &[Access]) -> Result<Compiled, Unsupported> {
    let started = Instant::now();
    let isa = isa().ok_or_else(|| Unsupported("no code generator for this CPU".into()))?;
    let config = isa.frontend_config();
    let mut module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
    let mut ctx = module.make_context();
    let split = lower::split(p, access)?;
    lower::emit(p, access, &split, &mut ctx.func, config)?;
    let id = module
        .declare_function("kernel", Linkage::Local, &ctx.func.signature)
        .map_err(|e| Unsupported(format!("declaring the kernel: {e}")))?;
    module
        .define_function(id, &mut ctx)
        .map_err(|e| Unsupported(format!("compiling the kernel: {e:?}")))?;
    module.clear_context(&mut ctx);
    module
        .finalize_definitions()
        .map_err(|e| Unsupported(format!("linking the kernel: {e}")))?;
    let code = module.get_finalized_function(id);
    // SAFETY: `code` is the function `emit` generated, whose signature is
    // (pointer, pointer, i64) -> () in the host's calling convention.
    let f = unsafe { std::mem::transmute::<*const u8, KernelFn>(code) };
    let wide = wide::build(p, access, &split);
    COMPILED.fetch_add(1, Ordering::Relaxed);
    Ok(Compiled {
        f,
        module: Mutex::new(Some(module)),
        compile_us: started.elapsed().as_micros() as u64,
        split,
        wide,
    })
}

/// The cache key: everything the generated code depends on.
fn key(p: &Program, access: &[Access]) -> String {
    let wide = if wide::available() { 'w' } else { 'n' };
    let mut k = format!("{wide}{:?}|{:?}|{}|", p.dtypes, p.root, p.instrs.len());
    for inp in &p.inputs {
        let _ = write!(k, "{:?},", inp.dtype);
    }
    for a in access {
        k.push(match a {
            Access::Contiguous => 'v',
            Access::Scalar => 's',
            Access::Strided => 'x',
        });
    }
    for ins in &p.instrs {
        match ins {
            // Constants by their bits (NaN payloads and signed zeros differ).
            Instr::Const(v) => {
                let bits = match v {
                    Value::F64(x) => x.to_bits(),
                    Value::F32(x) => x.to_bits() as u64,
                    Value::I64(x) => *x as u64,
                    Value::I32(x) => *x as u32 as u64,
                    Value::Bool(x) => *x as u64,
                    Value::C128(c) => c.re.to_bits() ^ c.im.to_bits().rotate_left(1),
                };
                let _ = write!(k, ";c{:?}{bits:x}", v.dtype());
            }
            other => {
                let _ = write!(k, ";{other:?}");
            }
        }
    }
    k
}

type Cache = Mutex<HashMap<String, Option<Arc<Compiled>>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The compiled form of `p` from the process-wide cache, compiling it on
/// first use; None when compilation is off or `p` is left to the interpreter.
pub fn lookup(p: &Program, access: &[Access]) -> Option<Arc<Compiled>> {
    if !enabled() || split(p, access).is_err() {
        return None;
    }
    let k = key(p, access);
    let mut cache = cache().lock().ok()?;
    if let Some(hit) = cache.get(&k) {
        return hit.clone();
    }
    let compiled = compile(p, access).ok().map(Arc::new);
    if cache.len() >= CACHE_CAP {
        cache.clear();
    }
    cache.insert(k, compiled.clone());
    compiled
}

/// Per-executable memo of compiled forms by input access pattern, so that
/// binding a task to a stage's program costs no cache key.
#[derive(Default)]
pub struct Memo(Mutex<Vec<MemoEntry>>);

/// An access pattern and the program's compiled form for it.
type MemoEntry = (Vec<Access>, Option<Arc<Compiled>>);

impl Memo {
    pub fn get(&self, p: &Program, access: &[Access]) -> Option<Arc<Compiled>> {
        if !enabled() {
            return None;
        }
        let mut memo = self.0.lock().ok()?;
        if let Some((_, c)) = memo.iter().find(|(a, _)| a == access) {
            return c.clone();
        }
        let c = lookup(p, access);
        memo.push((access.to_vec(), c.clone()));
        c
    }
}

impl Clone for Memo {
    fn clone(&self) -> Memo {
        Memo::default()
    }
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Memo")
    }
}
