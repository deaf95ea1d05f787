//! A stencil task's [`DevicePlan`] made ready for a backend: per step, the
//! kernel to launch, its `dims` words, its slots in binding order and its
//! invocations. Both backends launch the same steps: a level's kernel is
//! the program's, reading windows of slots ([`Access::Window`]); input boxes,
//! kept and ghost cells are moved by [`Moves`] kernels, word by word,
//! whatever the dtype.

use accel_core::dtype::{DType, Value};
use accel_core::kernel::Program;
use accel_core::shape;
use accel_core::stencil::{BoxCopy, DevicePlan, DeviceStep};

use crate::device::meta_words;
use crate::wgsl::{self, Access, WORKGROUP};
use crate::{Error, Result};

/// The move kernels, by what they do. `dims` holds the count, the words per
/// element and (a fill) the value's words; `in0` the positions: `[src, dst]`
/// pairs, or `dst` alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Moves {
    /// `out[dst] = in1[src]` between two slots.
    Across,
    /// `out[dst] = out[src]` within one slot (no `dst` is a `src`).
    Within,
    /// `out[dst] = the value in dims`.
    Fill,
    /// A box of `in1` copied into `out`: `dims` holds the count, the words
    /// per element, the axes, both first positions, the extent and both
    /// strides ([`box_meta`]); no positions.
    Box,
}

impl Moves {
    /// Words of `in0` per move, and the expression of a moved word `k`
    /// (the source element's first word at `in0[2t] * w`).
    fn parts(self) -> (u32, &'static str) {
        match self {
            Moves::Across => (2, "in1[in0[2u * t] * w + k]"),
            Moves::Within => (2, "out[in0[2u * t] * w + k]"),
            Moves::Fill | Moves::Box => (1, "dims[2u + k]"),
        }
    }

    /// Input bindings after `dims` (positions, and the source slot when it
    /// is another one).
    pub(crate) fn inputs(self) -> u32 {
        match self {
            Moves::Across => 2,
            Moves::Within | Moves::Fill | Moves::Box => 1,
        }
    }

    /// Every move kernel.
    pub(crate) const ALL: [Moves; 4] = [Moves::Across, Moves::Within, Moves::Fill, Moves::Box];

    /// The WGSL shader.
    pub(crate) fn wgsl(self) -> String {
        if self == Moves::Box {
            return wgsl_kernel("", BOX_WGSL);
        }
        let (step, value) = self.parts();
        let source = match self {
            Moves::Across => "@group(0) @binding(2) var<storage, read> in1: array<u32>;\n",
            Moves::Within | Moves::Fill | Moves::Box => "",
        };
        let body = format!(
            "    let w = dims[1];
    let d = in0[{step}u * t + {last}u] * w;
    for (var k: u32 = 0u; k < w; k = k + 1u) {{
        out[d + k] = {value};
    }}
",
            last = step - 1
        );
        wgsl_kernel(source, &body)
    }

    /// The CUDA kernel ([`crate::cuda::KERNEL`]), the same statements in C.
    pub(crate) fn cuda(self) -> String {
        if self == Moves::Box {
            return cuda_kernel("", BOX_CUDA);
        }
        let (step, value) = self.parts();
        let source = match self {
            Moves::Across => "const unsigned int* __restrict__ in1, ",
            Moves::Within | Moves::Fill | Moves::Box => "",
        };
        let body = format!(
            "    const unsigned int w = dims[1];
    const unsigned int d = in0[{step}u * t + {last}u] * w;
    for (unsigned int k = 0u; k < w; ++k) {{
        out[d + k] = {value};
    }}
",
            last = step - 1
        );
        cuda_kernel(source, &body)
    }
}

/// A move kernel in WGSL: `dims`, `in0`, the bindings `source` declares,
/// then `out`; `body` runs for each invocation `t` below `dims[0]`.
fn wgsl_kernel(source: &str, body: &str) -> String {
    let out = if source.is_empty() { 2 } else { 3 };
    format!(
        "@group(0) @binding(0) var<storage, read> dims: array<u32>;
@group(0) @binding(1) var<storage, read> in0: array<u32>;
{source}@group(0) @binding({out}) var<storage, read_write> out: array<u32>;
@compute @workgroup_size({WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {{
    let t = gid.x + gid.y * groups.x * {WORKGROUP}u;
    if (t >= dims[0]) {{
        return;
    }}
{body}}}
"
    )
}

/// [`wgsl_kernel`] in C.
fn cuda_kernel(source: &str, body: &str) -> String {
    format!(
        "extern \"C\" __global__ void {kernel}(const unsigned int* __restrict__ dims, const unsigned int* __restrict__ in0, {source}unsigned int* out) {{
    const unsigned int t = (blockIdx.y * gridDim.x + blockIdx.x) * blockDim.x + threadIdx.x;
    if (t >= dims[0]) {{
        return;
    }}
{body}}}
",
        kernel = crate::cuda::KERNEL
    )
}

/// The box kernel's body: invocation `t` is the box's cell `t` in row-major
/// order, its positions in both buffers summed axis by axis from the last.
const BOX_WGSL: &str = "    let w = dims[1];
    let nd = dims[2];
    var rest = t;
    var s = dims[3];
    var d = dims[4];
    for (var a: u32 = nd; a > 0u; a = a - 1u) {
        let c = rest % dims[4u + a];
        rest = rest / dims[4u + a];
        s = s + c * dims[4u + nd + a];
        d = d + c * dims[4u + 2u * nd + a];
    }
    for (var k: u32 = 0u; k < w; k = k + 1u) {
        out[d * w + k] = in0[s * w + k];
    }
";

/// [`BOX_WGSL`] in C.
const BOX_CUDA: &str = "    const unsigned int w = dims[1];
    const unsigned int nd = dims[2];
    unsigned int rest = t;
    unsigned int s = dims[3];
    unsigned int d = dims[4];
    for (unsigned int a = nd; a > 0u; --a) {
        const unsigned int c = rest % dims[4u + a];
        rest = rest / dims[4u + a];
        s += c * dims[4u + nd + a];
        d += c * dims[4u + 2u * nd + a];
    }
    for (unsigned int k = 0u; k < w; ++k) {
        out[d * w + k] = in0[s * w + k];
    }
";

/// The `dims` words of a [`Moves::Box`] copy of elements of `w` words from
/// a buffer of `from_len` elements into one of `to_len`: refused where it
/// reaches outside either, or a word's position does not fit in 32 bits.
pub(crate) fn box_meta(
    copy: &BoxCopy,
    w: u32,
    (from_len, to_len): (usize, usize),
) -> Result<Vec<u32>> {
    let nd = copy.extent.len();
    if copy.from_strides.len() != nd || copy.to_strides.len() != nd {
        return Err(Error::Layout("a box copy of mismatched axes".into()));
    }
    let (read_end, write_end) = copy.ends();
    if read_end > from_len || write_end > to_len {
        return Err(Error::Layout("a box copy outside its buffers".into()));
    }
    let words = |n: usize| n as u64 * u64::from(w) <= u64::from(u32::MAX);
    if !words(from_len) || !words(to_len) {
        return Err(Error::TooLarge(
            4 * from_len.max(to_len) as u64 * u64::from(w),
        ));
    }
    let word = |x: usize| u32::try_from(x).map_err(|_| Error::TooLarge(x as u64));
    let mut meta = vec![
        word(copy.cells())?,
        w,
        word(nd)?,
        word(copy.from)?,
        word(copy.to)?,
    ];
    for v in [&copy.extent, &copy.from_strides, &copy.to_strides] {
        for &x in v {
            meta.push(word(x)?);
        }
    }
    Ok(meta)
}

/// 32-bit words per element in a device buffer (booleans take one).
pub(crate) fn words(d: DType) -> u32 {
    (d.size().max(4) / 4) as u32
}

/// Bytes of a slot of `plan` holding `d`.
pub(crate) fn slot_bytes(plan: &DevicePlan, d: DType) -> u64 {
    plan.len as u64 * u64::from(words(d)) * 4
}

/// A value's words as a fill writes them.
fn value_words(v: Value) -> Vec<u32> {
    let bytes: Vec<u8> = match v {
        Value::Bool(b) => u32::from(b).to_ne_bytes().to_vec(),
        Value::I32(x) => x.to_ne_bytes().to_vec(),
        Value::I64(x) => x.to_ne_bytes().to_vec(),
        Value::F32(x) => x.to_ne_bytes().to_vec(),
        Value::F64(x) => x.to_ne_bytes().to_vec(),
        Value::C128(z) => [z.re.to_ne_bytes(), z.im.to_ne_bytes()].concat(),
    };
    bytes
        .chunks_exact(4)
        .map(|w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
        .collect()
}

/// A step ready to launch with a backend's kernel `K`.
pub(crate) struct Prepared<K> {
    pub kernel: K,
    pub meta: Vec<u32>,
    /// A move step's positions, bound after `dims`.
    pub index: Option<Vec<u32>>,
    /// A box step's source (one of the plan's), bound after `dims`.
    pub source: Option<u32>,
    /// Slots in binding order (a level: its reads, then its output).
    pub slots: Vec<u32>,
    pub invocations: u32,
    /// Whether the status word is bound last.
    pub status: bool,
}

/// A backend's kernels: a level's program read through windows, and the
/// move kernels (each with the generated shader its `dims` follow).
pub(crate) trait Kernels {
    type Kernel;
    fn level(&self, program: &Program, access: &[Access]) -> Result<Self::Kernel>;
    fn shader(kernel: &Self::Kernel) -> &wgsl::Shader;
    fn moves(&self, kind: Moves) -> Result<Self::Kernel>;
}

/// Every step of `plan` ready to launch, checked against the plan's slots;
/// refuses (before anything is uploaded) a level the device has no form
/// for, and a plan whose slots' words or whose steps' invocations a 32-bit
/// index cannot count. Steps of no invocations (an empty box) are left out.
pub(crate) fn prepare<B: Kernels>(
    backend: &B,
    plan: &DevicePlan,
) -> Result<Vec<Prepared<B::Kernel>>> {
    let len = u32::try_from(plan.len).map_err(|_| Error::TooLarge(plan.len as u64))?;
    // The move kernels index slots by word.
    if let Some(words) = plan
        .slots
        .iter()
        .map(|&d| plan.len as u64 * u64::from(words(d)))
        .max()
        && words > u64::from(u32::MAX)
    {
        return Err(Error::TooLarge(4 * words));
    }
    let mut steps = Vec::with_capacity(plan.steps.len());
    for step in &plan.steps {
        let prepared = prepare_step(backend, plan, step, len)?;
        if prepared.invocations > 0 {
            steps.push(prepared);
        }
    }
    Ok(steps)
}

fn slot_dtype(plan: &DevicePlan, s: u32) -> Result<DType> {
    plan.slots
        .get(s as usize)
        .copied()
        .ok_or_else(|| Error::Layout("a stencil step on a slot beyond its plan".into()))
}

/// A level's kernel over its box, reading windows of slots.
fn prepare_level<B: Kernels>(
    backend: &B,
    plan: &DevicePlan,
    exe: &accel_core::kernel::Executable,
    (origin, box_shape): (&[i64], &[usize]),
    reads: &[(u32, usize)],
    (out, at): (u32, usize),
) -> Result<Prepared<B::Kernel>> {
    let program = &exe.program;
    // A kernel reading no window would not be told where its own lies.
    if reads.is_empty() || reads.len() != program.inputs.len() {
        return Err(Error::Unsupported(wgsl::Unsupported(
            "a stencil level that reads no field".into(),
        )));
    }
    let access = vec![Access::Window; program.inputs.len()];
    let kernel = backend.level(program, &access)?;
    let n = shape::size(box_shape);
    let n32 = u32::try_from(n).map_err(|_| Error::TooLarge(n as u64))?;
    if reads
        .iter()
        .map(|r| r.1)
        .chain([at])
        .any(|a| a + n > plan.len)
    {
        return Err(Error::Layout("a stencil window outside its slot".into()));
    }
    let shader = B::shader(&kernel);
    let mut meta = meta_words(program, shader, n32, origin, box_shape, &[]);
    meta.push(at as u32);
    meta.extend(reads.iter().map(|r| r.1 as u32));
    let mut slots: Vec<u32> = reads.iter().map(|r| r.0).collect();
    slots.push(out);
    let root = program.dtypes.get(program.root as usize).copied();
    let wanted = program.inputs.iter().map(|i| Some(i.dtype)).chain([root]);
    for (&s, want) in slots.iter().zip(wanted) {
        if Some(slot_dtype(plan, s)?) != want {
            return Err(Error::Layout(
                "a stencil level reads or writes a slot of another dtype".into(),
            ));
        }
    }
    Ok(Prepared {
        status: shader.flags,
        kernel,
        meta,
        index: None,
        source: None,
        slots,
        invocations: n32,
    })
}

fn prepare_step<B: Kernels>(
    backend: &B,
    plan: &DevicePlan,
    step: &DeviceStep,
    len: u32,
) -> Result<Prepared<B::Kernel>> {
    let slot_dtype = |s: u32| slot_dtype(plan, s);
    let within = |at: u32| {
        if at < len {
            Ok(at)
        } else {
            Err(Error::Layout("a stencil move outside its slot".into()))
        }
    };
    let moves = |kind: Moves, meta: Vec<u32>, index: Vec<u32>, slots: Vec<u32>| {
        Ok(Prepared {
            kernel: backend.moves(kind)?,
            invocations: meta[0],
            meta,
            index: Some(index),
            source: None,
            slots,
            status: false,
        })
    };
    match step {
        DeviceStep::Map {
            exe,
            origin,
            shape: box_shape,
            reads,
            out,
        } => prepare_level(backend, plan, exe, (origin, box_shape), reads, *out),
        DeviceStep::Copy { from, to, pairs } => {
            let d = slot_dtype(*to)?;
            if slot_dtype(*from)? != d {
                return Err(Error::Layout("a stencil move between dtypes".into()));
            }
            let index = pairs
                .iter()
                .flat_map(|p| [within(p[0]), within(p[1])])
                .collect::<Result<Vec<u32>>>()?;
            let meta = vec![pairs.len() as u32, words(d)];
            if from == to {
                moves(Moves::Within, meta, index, vec![*to])
            } else {
                moves(Moves::Across, meta, index, vec![*from, *to])
            }
        }
        DeviceStep::Fill { slot, at, value } => {
            let d = slot_dtype(*slot)?;
            if value.dtype() != d {
                return Err(Error::Layout("a stencil fill of another dtype".into()));
            }
            let mut meta = vec![at.len() as u32, words(d)];
            meta.extend(value_words(*value));
            let index = at
                .iter()
                .map(|&p| within(p))
                .collect::<Result<Vec<u32>>>()?;
            moves(Moves::Fill, meta, index, vec![*slot])
        }
        DeviceStep::Place { source, to, copy } => {
            let d = slot_dtype(*to)?;
            let source_chunk = plan.sources.get(*source as usize).ok_or_else(|| {
                Error::Layout("a stencil step on a source beyond its plan".into())
            })?;
            if source_chunk.dtype() != Some(d) || source_chunk.col_count() != 1 {
                return Err(Error::Layout("a stencil input of another dtype".into()));
            }
            let meta = box_meta(copy, words(d), (source_chunk.len(), plan.len))?;
            Ok(Prepared {
                kernel: backend.moves(Moves::Box)?,
                invocations: meta[0],
                meta,
                index: None,
                source: Some(*source),
                slots: vec![*to],
                status: false,
            })
        }
    }
}

/// The `dims` words copying the output chunk out of `plan`'s result slot
/// into a buffer of its own ([`DevicePlan::result_box`]), and its cells.
pub(crate) fn result_meta(plan: &DevicePlan) -> Result<(Vec<u32>, usize)> {
    let copy = plan.result_box();
    let cells = copy.cells();
    let meta = box_meta(&copy, words(plan.dtype()), (plan.len, cells))?;
    Ok((meta, cells))
}
