//! WGSL generated from a fused kernel program: one invocation per output
//! element, every register a `let`, inputs and output in storage buffers.
//!
//! The shader is structural: chunk shapes, input strides and generator
//! counters arrive in a small `dims` buffer, so every chunk of a stage (and
//! every stage with the same program) runs the same compiled pipeline. What
//! the text does depend on is how each input is read (contiguous like the
//! output, one scalar, or through strides), as on the CPU's compiled path.
//!
//! Semantics follow the CPU interpreter (`accel_core::kernel::ops`) exactly:
//! wrapping integer arithmetic, NumPy's integer floor division and remainder
//! (0 for a zero divisor), NaN-propagating minimum and maximum, saturating
//! float-to-integer casts with NaN → 0, round half to even, float remainder
//! and floor division from the exact `fmod` (an integer long division of the
//! mantissas, as every libm computes it). Transcendentals are the CPU's
//! vector kernels written out (see [`crate::wgsl_math`]); what has no GPU
//! form with the CPU's bits or bounds is refused with [`Unsupported`], and
//! the task runs on the CPU.

use std::fmt::Write;

use accel_core::dtype::{DType, Value};
use accel_core::exec::Fold;
use accel_core::kernel::Program;
use accel_core::kernel::generate;
use accel_core::kernel::ir::Instr;
use accel_core::op::{BinaryOp, GenKind, UnaryOp};

/// Threads per workgroup; the dispatch is `ceil(n / WORKGROUP)` groups,
/// folded into a second dimension past the 65,535-group limit.
pub const WORKGROUP: u32 = 256;
/// Most workgroups along one dispatch dimension.
pub const MAX_GROUPS_X: u32 = 65_535;
/// Workgroups (x, y) for `invocations`: along x up to its limit, then
/// rows of that many along y (the shaders recover the index from both).
pub fn groups(invocations: u32) -> (u32, u32) {
    let groups = invocations.div_ceil(WORKGROUP);
    if groups <= MAX_GROUPS_X {
        (groups, 1)
    } else {
        (MAX_GROUPS_X, groups.div_ceil(MAX_GROUPS_X))
    }
}

/// Elements one invocation folds in a device fold (see [`generate_fold`]).
pub const STRIP: u32 = 256;

/// How a kernel input is read, per element of the output chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Laid out like the output: element `i` of the input.
    Contiguous,
    /// One value for every element (a broadcast scalar).
    Scalar,
    /// Through per-axis strides read from `dims` (broadcast axes have stride 0).
    Strided,
    /// Laid out like the output from a position read from `dims`: a window
    /// of a larger buffer (a stencil level reads its fields so). A shader
    /// with windowed inputs writes its output at a position from `dims` too
    /// (see [`Shader::window_words`]).
    Window,
}

/// Why a program cannot run on the GPU (it then runs on the CPU).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a GPU kernel: {0}")]
pub struct Unsupported(pub String);

fn refuse<T>(what: impl Into<String>) -> Result<T, Unsupported> {
    Err(Unsupported(what.into()))
}

/// A generated shader and the layout of the `dims` words it reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shader {
    pub source: String,
    /// The statements of the entry point once the element index `i` is
    /// known, and the functions they call (translated for CUDA by
    /// [`crate::cuda`]).
    pub body: String,
    pub functions: String,
    /// Dimensions of the iteration space.
    pub ndim: usize,
    /// Inputs read through strides, in input order (their strides follow the
    /// shape in `dims`).
    pub strided: Vec<usize>,
    /// Generator instructions, in program order (each takes two `dims` words,
    /// the low and high halves of its first element's counter).
    pub generators: Vec<usize>,
    /// Whether the shader counts elements outside its transcendentals' fast
    /// range in a `status` word (binding after the output); a chunk with
    /// any is computed on the CPU.
    pub flags: bool,
    /// Whether inputs are windows: then the `dims` words after the zero
    /// word are the output's first position and each input's, in order.
    pub windows: bool,
}

impl Shader {
    /// A hand-written shader (no program behind it) of `ndim` axes.
    pub fn fixed(source: String, ndim: usize) -> Shader {
        Shader {
            source,
            body: String::new(),
            functions: String::new(),
            ndim,
            strided: Vec::new(),
            generators: Vec::new(),
            flags: false,
            windows: false,
        }
    }

    /// The `dims` word after the generators' counters, always zero: float
    /// zero constants are built from it at run time. A literal zero lets the
    /// driver fold `0 * x` to 0 and `x + 0` to x (Mesa does, whatever the
    /// float controls say), which is wrong for infinities, NaN and -0.
    pub fn zero_word(&self) -> usize {
        zero_word(self.ndim, self.strided.len(), self.generators.len())
    }

    /// The `dims` word of the output's first position (windowed shaders);
    /// input `k`'s follows at `+ 1 + k`.
    pub fn window_words(&self) -> usize {
        self.zero_word() + 1
    }
}

fn zero_word(nd: usize, strided: usize, generators: usize) -> usize {
    1 + nd + strided * nd + 2 * generators
}

/// The run-time zero word's name in the entry point.
const ZERO_BITS: &str = "zero_bits";

/// Whether `program` calls a transcendental kernel (which has a fast range).
fn has_transcendentals(program: &Program) -> bool {
    use UnaryOp::*;
    program.instrs.iter().any(|ins| {
        matches!(
            ins,
            Instr::Unary(
                Exp | Log
                    | Sin
                    | Cos
                    | Tan
                    | Tanh
                    | Sinh
                    | Cosh
                    | Log2
                    | Log10
                    | Log1p
                    | Expm1
                    | Arctan
                    | Arcsin
                    | Arccos,
                _
            ) | Instr::Binary(BinaryOp::Pow | BinaryOp::Hypot | BinaryOp::Arctan2, ..)
        ) || matches!(ins, Instr::Unary(Abs | Sqrt | Sign, a) if program.dtypes[*a as usize] == DType::C128)
            || matches!(
                ins,
                Instr::Gen {
                    kind: GenKind::Normal { .. },
                    ..
                }
            )
            || matches!(ins, Instr::Loop(l) if has_transcendentals(&l.body))
    })
}

/// Checks that every operation of `program` has a GPU form (see
/// [`accel_core::kernel::portable`]).
pub fn check(program: &Program) -> Result<(), Unsupported> {
    accel_core::kernel::portable::check(program).map_err(Unsupported)
}

/// The WGSL type of a register.
fn ty(d: DType) -> &'static str {
    match d {
        DType::Bool => "bool",
        DType::I32 => "i32",
        DType::I64 => "i64",
        DType::F32 => "f32",
        DType::F64 => "f64",
        DType::C128 => "vec2<f64>",
    }
}

/// The element type of a storage buffer (booleans are stored as `u32`).
pub fn storage_ty(d: DType) -> &'static str {
    match d {
        DType::Bool => "u32",
        other => ty(other),
    }
}

/// A literal with exactly the value's bits (floats through their bit
/// pattern, so NaN payloads, infinities and subnormals survive).
fn literal(v: Value) -> String {
    match v {
        Value::Bool(b) => b.to_string(),
        Value::I32(x) if x == i32::MIN => "i32(-2147483647 - 1)".into(),
        Value::I32(x) => format!("{x}i"),
        Value::I64(x) => format!("bitcast<i64>({}lu)", x as u64),
        Value::F32(x) if x == 0.0 => format!("bitcast<f32>({ZERO_BITS} | {}u)", x.to_bits()),
        Value::F32(x) => format!("bitcast<f32>({}u)", x.to_bits()),
        Value::F64(x) => f64_literal(x),
        Value::C128(z) => format!("vec2<f64>({}, {})", f64_literal(z.re), f64_literal(z.im)),
    }
}

fn f64_literal(x: f64) -> String {
    if x == 0.0 {
        return format!("bitcast<f64>(u64({ZERO_BITS}) | {}lu)", x.to_bits());
    }
    format!("bitcast<f64>({}lu)", x.to_bits())
}

/// `value` converted to dtype `d` as a literal.
fn typed_literal(value: f64, d: DType) -> String {
    match d {
        DType::Bool => literal(Value::Bool(value != 0.0)),
        DType::I32 => literal(Value::I32(value as i32)),
        DType::I64 => literal(Value::I64(value as i64)),
        DType::F32 => literal(Value::F32(value as f32)),
        _ => literal(Value::F64(value)),
    }
}

/// Generates the shader for `program` with its inputs read as `access` says.
pub fn generate(
    program: &Program,
    access: &[Access],
    fma: crate::wgsl_math::Fma,
) -> Result<Shader, Unsupported> {
    generate_with(program, access, fma, None)
}

/// Generates the shader that folds `program`'s values by `fold` in strips:
/// invocation `s` folds elements `s·STRIP` up to `(s + 1)·STRIP` (in the
/// order of the indices) and writes one partial result, of the values' dtype.
pub fn generate_fold(
    program: &Program,
    access: &[Access],
    fma: crate::wgsl_math::Fma,
    fold: Fold,
) -> Result<Shader, Unsupported> {
    generate_with(program, access, fma, Some(fold))
}

/// What a fold's invocation keeps: the accumulator's declaration (with the
/// fold's identity), its step over the value `v`, and the word it stores.
pub struct FoldText {
    pub declare: String,
    pub step: String,
    pub store: String,
}

/// [`FoldText`] of `fold` over values of dtype `d`.
pub fn fold_text(fold: Fold, d: DType, v: &str) -> Result<FoldText, Unsupported> {
    let identity = match (fold, d) {
        (Fold::Sum, DType::I64) => Value::I64(0),
        (Fold::Prod, DType::I64) => Value::I64(1),
        (Fold::Min, DType::I32) => Value::I32(i32::MAX),
        (Fold::Min, DType::I64) => Value::I64(i64::MAX),
        (Fold::Max, DType::I32) => Value::I32(i32::MIN),
        (Fold::Max, DType::I64) => Value::I64(i64::MIN),
        (Fold::Any, DType::Bool) => Value::Bool(false),
        (Fold::All, DType::Bool) => Value::Bool(true),
        _ => return refuse(format!("a device fold {fold:?} of {d}")),
    };
    let step = match fold {
        Fold::Sum => format!("wadd_i64({FOLD_ACC}, {v})"),
        Fold::Prod => format!("wmul_i64({FOLD_ACC}, {v})"),
        Fold::Min => format!("select({FOLD_ACC}, {v}, {v} < {FOLD_ACC})"),
        Fold::Max => format!("select({FOLD_ACC}, {v}, {v} > {FOLD_ACC})"),
        Fold::Any => format!("{FOLD_ACC} || {v}"),
        Fold::All => format!("{FOLD_ACC} && {v}"),
    };
    let store = match d {
        DType::Bool => format!("select(0u, 1u, {FOLD_ACC})"),
        _ => FOLD_ACC.to_string(),
    };
    Ok(FoldText {
        declare: format!("var {FOLD_ACC}: {} = {};", ty(d), literal(identity)),
        step: format!("{FOLD_ACC} = {step};"),
        store,
    })
}

/// The accumulator of a fold's invocation.
const FOLD_ACC: &str = "fold_acc";

fn generate_with(
    program: &Program,
    access: &[Access],
    fma: crate::wgsl_math::Fma,
    fold: Option<Fold>,
) -> Result<Shader, Unsupported> {
    check(program)?;
    if access.len() != program.inputs.len() {
        return refuse("an access pattern per input");
    }
    let nd = program.out_shape.len();
    let strided: Vec<usize> = (0..access.len())
        .filter(|&k| access[k] == Access::Strided)
        .collect();
    let generators: Vec<usize> = (0..program.instrs.len())
        .filter(|&k| matches!(program.instrs[k], Instr::Gen { .. }))
        .collect();
    let flags = has_transcendentals(program);
    let windows = access.contains(&Access::Window);
    if windows && (fold.is_some() || access.iter().any(|&a| a != Access::Window)) {
        return refuse("windowed inputs mixed with other reads, or folded");
    }
    // The statements of `main` after the element index `i` is known.
    let mut body = String::new();
    let zero_at = zero_word(nd, strided.len(), generators.len());
    let _ = writeln!(body, "    let {ZERO_BITS} = dims[{zero_at}];");
    if flags {
        body.push_str("    var slow: bool = false;\n");
    }
    if !strided.is_empty() || !generators.is_empty() {
        coordinates(&mut body, nd);
    }
    let mut lines = Body {
        program,
        access,
        strided: &strided,
        generators: &generators,
        nd,
        window_at: zero_at + 1,
        src: &mut body,
        prefix: String::new(),
        loads: None,
        indent: "    ".into(),
    };
    for k in 0..program.instrs.len() {
        lines.instr(k)?;
    }
    let root = program.root as usize;
    let stored = match program.dtypes[root] {
        DType::Bool => format!("select(0u, 1u, r{root})"),
        _ => format!("r{root}"),
    };
    if flags {
        body.push_str("    if (slow) {\n        atomicAdd(&status[0], 1u);\n    }\n");
    }
    let root_dtype = program.dtypes[root];
    let folding = fold
        .map(|f| fold_text(f, root_dtype, &format!("r{root}")))
        .transpose()?;
    match &folding {
        None if windows => {
            let _ = writeln!(body, "    out[i + dims[{}]] = {stored};", zero_at + 1);
        }
        None => {
            let _ = writeln!(body, "    out[i] = {stored};");
        }
        Some(f) => {
            let _ = writeln!(body, "    {}", f.step);
        }
    }
    let mut functions = String::from(HELPERS);
    functions.push_str(&float_division());
    if flags {
        functions.push_str(&crate::wgsl_math::library(fma));
    }
    let mut src = String::new();
    header(&mut src, program, flags);
    src.push_str(WRAPPING);
    src.push_str(FLOAT32_ROUNDED);
    src.push_str(&functions);
    let _ = writeln!(src, "@compute @workgroup_size({WORKGROUP})");
    src.push_str(
        "fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {\n",
    );
    match &folding {
        None => {
            let _ = writeln!(src, "    let i = gid.x + gid.y * groups.x * {WORKGROUP}u;");
            src.push_str("    if (i >= dims[0]) {\n        return;\n    }\n");
            src.push_str(&body);
        }
        Some(f) => {
            let _ = writeln!(
                src,
                "    let fold_strip = gid.x + gid.y * groups.x * {WORKGROUP}u;
    let fold_n = dims[0];
    if (fold_strip >= fold_n / {STRIP}u + select(0u, 1u, fold_n % {STRIP}u != 0u)) {{
        return;
    }}
    {}
    let fold_first = fold_strip * {STRIP}u;
    let fold_last = min(fold_first + {STRIP}u, fold_n);
    for (var i: u32 = fold_first; i < fold_last; i = i + 1u) {{",
                f.declare
            );
            src.push_str(&body);
            let _ = writeln!(src, "    }}\n    out[fold_strip] = {};", f.store);
        }
    }
    src.push_str("}\n");
    Ok(Shader {
        source: src,
        body,
        functions,
        ndim: nd,
        strided,
        generators,
        flags,
        windows,
    })
}

/// Bindings and helper functions.
fn header(src: &mut String, program: &Program, flags: bool) {
    src.push_str("@group(0) @binding(0) var<storage, read> dims: array<u32>;\n");
    for (k, spec) in program.inputs.iter().enumerate() {
        let _ = writeln!(
            src,
            "@group(0) @binding({}) var<storage, read> in{k}: array<{}>;",
            k + 1,
            storage_ty(spec.dtype)
        );
    }
    let _ = writeln!(
        src,
        "@group(0) @binding({}) var<storage, read_write> out: array<{}>;\n",
        program.inputs.len() + 1,
        storage_ty(program.dtypes[program.root as usize])
    );
    if flags {
        let _ = writeln!(
            src,
            "@group(0) @binding({}) var<storage, read_write> status: array<atomic<u32>>;\n",
            program.inputs.len() + 2
        );
    }
}

/// Wrapping integer arithmetic: WGSL's own (two's complement); CUDA C
/// defines these over unsigned integers (signed overflow is undefined in C).
const WRAPPING: &str = "fn wadd_i32(a: i32, b: i32) -> i32 { return a + b; }
fn wsub_i32(a: i32, b: i32) -> i32 { return a - b; }
fn wmul_i32(a: i32, b: i32) -> i32 { return a * b; }
fn wneg_i32(a: i32) -> i32 { return -a; }
fn wadd_i64(a: i64, b: i64) -> i64 { return a + b; }
fn wsub_i64(a: i64, b: i64) -> i64 { return a - b; }
fn wmul_i64(a: i64, b: i64) -> i64 { return a * b; }
fn wneg_i64(a: i64) -> i64 { return -a; }
";

/// Float32 division and square root, correctly rounded. Vulkan lets a
/// device round them loosely (2.5 ulp for a division; NVIDIA's `sqrt` was an
/// ulp off): computed in float64 and rounded once, they are the correctly
/// rounded float32 results (53 ≥ 2·24 + 2 bits), wherever the device's
/// float64 division and root are, which the float64 tests check on each
/// device. WGSL only, like [`WRAPPING`]: CUDA's own are IEEE already
/// (NVRTC's `--prec-div` and `--prec-sqrt`).
const FLOAT32_ROUNDED: &str = "fn div_f32(a: f32, b: f32) -> f32 { return f32(f64(a) / f64(b)); }
fn sqrt_f32(a: f32) -> f32 { return f32(sqrt(f64(a))); }
";

/// Integer floor division and remainder with NumPy's rules, NaN tests by
/// bits (a compiler may assume `x != x` is false), rounding half to even by
/// hand (lavapipe rounds f64 ties toward zero on some CPUs and drops the
/// sign of a zero result), SplitMix64.
const HELPERS: &str = r#"fn floordiv_i32(a: i32, b: i32) -> i32 {
    if (b == 0i) { return 0i; }
    if (b == -1i) { return wneg_i32(a); }
    let q = a / b;
    if ((a % b != 0i) && ((a < 0i) != (b < 0i))) { return q - 1i; }
    return q;
}
fn floordiv_i64(a: i64, b: i64) -> i64 {
    if (b == 0li) { return 0li; }
    if (b == -1li) { return wneg_i64(a); }
    let q = a / b;
    if ((a % b != 0li) && ((a < 0li) != (b < 0li))) { return q - 1li; }
    return q;
}
fn rem_i32(a: i32, b: i32) -> i32 {
    if (b == 0i || b == -1i) { return 0i; }
    let r = a % b;
    if (r != 0i && ((r < 0i) != (b < 0i))) { return r + b; }
    return r;
}
fn rem_i64(a: i64, b: i64) -> i64 {
    if (b == 0li || b == -1li) { return 0li; }
    let r = a % b;
    if (r != 0li && ((r < 0li) != (b < 0li))) { return r + b; }
    return r;
}
fn cadd(a: vec2<f64>, b: vec2<f64>) -> vec2<f64> {
    return vec2<f64>(a.x + b.x, a.y + b.y);
}
fn csub(a: vec2<f64>, b: vec2<f64>) -> vec2<f64> {
    return vec2<f64>(a.x - b.x, a.y - b.y);
}
fn cneg(a: vec2<f64>) -> vec2<f64> {
    return vec2<f64>(-a.x, -a.y);
}
fn cmul(a: vec2<f64>, b: vec2<f64>) -> vec2<f64> {
    return vec2<f64>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}
fn cpowi_dyn(z: vec2<f64>, n: i32) -> vec2<f64> {
    if (n == 0i) {
        return vec2<f64>(1.0lf, 0.0lf);
    }
    var b: vec2<f64> = z;
    if (n < 0i) {
        let q: f64 = z.x * z.x + z.y * z.y;
        b = vec2<f64>(z.x / q, -z.y / q);
    }
    var e: u32 = u32(select(n, 0i - n, n < 0i));
    while ((e & 1u) == 0u) {
        b = cmul(b, b);
        e = e >> 1u;
    }
    var acc: vec2<f64> = b;
    while (e > 1u) {
        e = e >> 1u;
        b = cmul(b, b);
        if ((e & 1u) == 1u) {
            acc = cmul(acc, b);
        }
    }
    return acc;
}
fn cdiv(a: vec2<f64>, b: vec2<f64>) -> vec2<f64> {
    let d = b.x * b.x + b.y * b.y;
    return vec2<f64>((a.x * b.x + a.y * b.y) / d, (a.y * b.x - a.x * b.y) / d);
}
fn isnan_f64(x: f64) -> bool {
    return (bitcast<u64>(x) & 0x7ffffffffffffffflu) > 0x7ff0000000000000lu;
}
fn isnan_f32(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}
fn isfinite_f64(x: f64) -> bool {
    return (bitcast<u64>(x) & 0x7ff0000000000000lu) != 0x7ff0000000000000lu;
}
fn isfinite_f32(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}
fn round_even_f64(x: f64) -> f64 {
    if ((bitcast<u64>(x) & 0x7ffffffffffffffflu) >= 0x4330000000000000lu) { return x; }
    let f = floor(x);
    let d = x - f;
    var r = f;
    if (d > 0.5lf || (d == 0.5lf && floor(f * 0.5lf) * 2.0lf != f)) { r = f + 1.0lf; }
    return bitcast<f64>(bitcast<u64>(r) | (bitcast<u64>(x) & 0x8000000000000000lu));
}
fn round_even_f32(x: f32) -> f32 {
    if ((bitcast<u32>(x) & 0x7fffffffu) >= 0x4b000000u) { return x; }
    let f = floor(x);
    let d = x - f;
    var r = f;
    if (d > 0.5f || (d == 0.5f && floor(f * 0.5f) * 2.0f != f)) { r = f + 1.0f; }
    return bitcast<f32>(bitcast<u32>(r) | (bitcast<u32>(x) & 0x80000000u));
}
fn mix64(x: u64) -> u64 {
    var z = (x ^ (x >> 30u)) * 0xbf58476d1ce4e5b9lu;
    z = (z ^ (z >> 27u)) * 0x94d049bb133111eblu;
    return z ^ (z >> 31u);
}

"#;

/// Exact `fmod` (an integer long division of the mantissas, `STEP` bits at
/// a time, subnormals included), then NumPy's remainder and floor division
/// from it with the CPU's formulas, for one float type.
const FLOAT_DIVISION: &str = r#"fn fmod_T(a: T, b: T) -> T {
    let sign = bitcast<U>(a) & SIGN;
    let ax = bitcast<U>(a) & ABS;
    let bx = bitcast<U>(b) & ABS;
    if (ax >= INF || bx > INF || bx == ZERO) {
        return bitcast<T>(QNAN);
    }
    if (ax < bx) {
        return a;
    }
    var ea: U = ax >> MANT_BITS;
    var eb: U = bx >> MANT_BITS;
    var ma: U = ax & MANT;
    var mb: U = bx & MANT;
    if (ea == ZERO) { ea = ONE; } else { ma = ma | IMPLICIT; }
    if (eb == ZERO) { eb = ONE; } else { mb = mb | IMPLICIT; }
    var m: U = ma % mb;
    var n: U = ea - eb;
    while (n > ZERO && m != ZERO) {
        var s: U = STEP;
        if (n < STEP) { s = n; }
        m = (m << u32(s)) % mb;
        n = n - s;
    }
    if (m == ZERO) {
        return bitcast<T>(sign);
    }
    var e: U = eb;
    while (m < IMPLICIT && e > ONE) {
        m = m << 1u;
        e = e - ONE;
    }
    if (m < IMPLICIT) {
        return bitcast<T>(sign | m);
    }
    return bitcast<T>(sign | (e << MANT_BITS) | (m & MANT));
}
fn rem_T(a: T, b: T) -> T {
    let r = fmod_T(a, b);
    if (r != 0.0F && ((r < 0.0F) != (b < 0.0F))) { return r + b; }
    return r;
}
fn floordiv_T(a: T, b: T) -> T {
    if (b == 0.0F) { return a / b; }
    let m = fmod_T(a, b);
    var div: T = (a - m) / b;
    if (m != 0.0F && ((b < 0.0F) != (m < 0.0F))) { div = div - 1.0F; }
    if (div == 0.0F) {
        return bitcast<T>(bitcast<U>(a / b) & SIGN);
    }
    let f = floor(div);
    if (div - f > 0.5F) { return f + 1.0F; }
    return f;
}
"#;

/// [`FLOAT_DIVISION`] for f64 (11 bits a step: m < 2^53) and f32 (8: m < 2^24).
fn float_division() -> String {
    let words = [
        [
            ("_T", "_f64"),
            ("<T>", "<f64>"),
            (": T", ": f64"),
            ("-> T", "-> f64"),
            ("<U>", "<u64>"),
            (": U", ": u64"),
            ("SIGN", "0x8000000000000000lu"),
            ("ABS", "0x7ffffffffffffffflu"),
            ("INF", "0x7ff0000000000000lu"),
            ("QNAN", "0x7ff8000000000000lu"),
            ("MANT_BITS", "52u"),
            ("IMPLICIT", "0x0010000000000000lu"),
            ("MANT", "0x000ffffffffffffflu"),
            ("ZERO", "0lu"),
            ("ONE", "1lu"),
            ("STEP", "11lu"),
            ("F", "lf"),
        ],
        [
            ("_T", "_f32"),
            ("<T>", "<f32>"),
            (": T", ": f32"),
            ("-> T", "-> f32"),
            ("<U>", "<u32>"),
            (": U", ": u32"),
            ("SIGN", "0x80000000u"),
            ("ABS", "0x7fffffffu"),
            ("INF", "0x7f800000u"),
            ("QNAN", "0x7fc00000u"),
            ("MANT_BITS", "23u"),
            ("IMPLICIT", "0x00800000u"),
            ("MANT", "0x007fffffu"),
            ("ZERO", "0u"),
            ("ONE", "1u"),
            ("STEP", "8u"),
            ("F", "f"),
        ],
    ];
    words
        .iter()
        .map(|w| {
            w.iter().fold(FLOAT_DIVISION.to_string(), |t, (from, to)| {
                t.replace(from, to)
            })
        })
        .collect()
}

/// `c0 .. c{nd-1}`: the element's coordinates in the output chunk, whose
/// shape is `dims[1..=nd]`.
fn coordinates(src: &mut String, nd: usize) {
    src.push_str("    var rest = i;\n");
    for d in (0..nd).rev() {
        if d == 0 {
            let _ = writeln!(src, "    let c0 = rest;");
        } else {
            let _ = writeln!(
                src,
                "    let c{d} = rest % dims[{}];\n    rest = rest / dims[{}];",
                d + 1,
                d + 1
            );
        }
    }
}

/// The body under construction: one `let` per instruction.
struct Body<'a> {
    program: &'a Program,
    access: &'a [Access],
    strided: &'a [usize],
    generators: &'a [usize],
    nd: usize,
    /// The `dims` word of the output's window position (windowed shaders).
    window_at: usize,
    src: &'a mut String,
    /// Prefix of this body's names (a loop body's are `l{k}_...`).
    prefix: String,
    /// For a loop body: the expressions its inputs stand for (state
    /// variables, trip counter, captured registers).
    loads: Option<Vec<String>>,
    /// Indentation of its statements.
    indent: String,
}

impl Body<'_> {
    fn dtype(&self, r: u32) -> DType {
        self.program.dtypes[r as usize]
    }

    /// The name of register `r`.
    fn reg(&self, r: u32) -> String {
        format!("{}r{r}", self.prefix)
    }

    /// Writes a statement at the body's indentation.
    fn stmt(&mut self, s: &str) {
        let _ = writeln!(self.src, "{}{s}", self.indent);
    }

    fn line(&mut self, k: usize, expr: &str) {
        let t = ty(self.program.dtypes[k]);
        let r = self.reg(k as u32);
        self.stmt(&format!("let {r}: {t} = {expr};"));
    }

    fn instr(&mut self, k: usize) -> Result<(), Unsupported> {
        let expr = match &self.program.instrs[k] {
            Instr::Load { input } => self.load(*input as usize),
            Instr::Const(v) => literal(*v),
            Instr::Gen { .. } if self.loads.is_some() => {
                return refuse("generated values inside a loop");
            }
            Instr::Gen { kind, strides, .. } => self.generated(k, kind, strides)?,
            Instr::Unary(op, a) => self.unary(k, *op, *a)?,
            Instr::Binary(BinaryOp::Pow, a, b) if self.dtype(*a) == DType::C128 => {
                let Some(Instr::Const(w)) = self.program.instrs.get(*b as usize) else {
                    if self.dtype(*b) != DType::C128 {
                        return refuse("a complex exponent of another dtype");
                    }
                    let (z, w) = (self.reg(*a), self.reg(*b));
                    return {
                        let value = self.complex_pow_array(k, &z, &w);
                        self.line(k, &value);
                        Ok(())
                    };
                };
                let Value::C128(w) = w.cast(DType::C128) else {
                    return refuse("a complex exponent of another dtype");
                };
                let z = self.reg(*a);
                self.complex_pow(k, &z, w)
            }
            Instr::Binary(BinaryOp::Pow, a, b) => {
                let d = self.dtype(*a);
                let (x, y) = (widen(d, &self.reg(*a)), widen(d, &self.reg(*b)));
                self.stmt(&format!("slow = slow || !pow_ok({x}, {y});"));
                narrow(d, &format!("pow_f64({x}, {y})"))
            }
            Instr::Binary(BinaryOp::Arctan2, a, b) => {
                let d = self.dtype(*a);
                let (y, x) = (widen(d, &self.reg(*a)), widen(d, &self.reg(*b)));
                self.stmt(&format!("slow = slow || !atan2_ok({y}, {x});"));
                narrow(d, &format!("atan2_f64({y}, {x})"))
            }
            // The CPU's float32 formula (see `accel_core::kernel::ops`): exact
            // squares, two roundings in float64, one to float32. Infinities and
            // NaNs are the CPU's.
            Instr::Binary(BinaryOp::Hypot, a, b) if self.dtype(*a) == DType::F32 => {
                let (x, y) = (
                    widen(DType::F32, &self.reg(*a)),
                    widen(DType::F32, &self.reg(*b)),
                );
                self.stmt(&format!(
                    "slow = slow || !isfinite_f64({x}) || !isfinite_f64({y});"
                ));
                narrow(DType::F32, &format!("sqrt({x} * {x} + {y} * {y})"))
            }
            Instr::Binary(BinaryOp::Hypot, a, b) => {
                let (x, y) = (self.reg(*a), self.reg(*b));
                self.stmt(&format!("slow = slow || !hypot_ok({x}, {y});"));
                format!("hypot_f64({x}, {y})")
            }
            Instr::Binary(op, a, b) => binary(*op, self.dtype(*a), &self.reg(*a), &self.reg(*b))?,
            Instr::Where(c, a, b) => {
                format!(
                    "select({}, {}, {})",
                    self.reg(*b),
                    self.reg(*a),
                    self.reg(*c)
                )
            }
            Instr::Cast(to, a) => cast(self.dtype(*a), *to, &self.reg(*a)),
            Instr::Loop(l) => self.looped(k, l)?,
        };
        self.line(k, &expr);
        Ok(())
    }

    /// A loop instruction: its state in variables, its body once per trip
    /// (the trip counter and captured values as its other inputs), until
    /// the stop flag or the last trip; its value is one state variable.
    fn looped(
        &mut self,
        k: usize,
        l: &accel_core::kernel::ir::LoopInstr,
    ) -> Result<String, Unsupported> {
        let p = format!("{}l{k}_", self.prefix);
        let body = &l.body;
        let n_state = l.init.len();
        for (j, &r) in l.init.iter().enumerate() {
            let t = ty(body
                .inputs
                .get(j)
                .ok_or_else(|| Unsupported("a loop state without its input".into()))?
                .dtype);
            let init = self.reg(r);
            self.stmt(&format!("var {p}s{j}: {t} = {init};"));
        }
        let trips = i32::try_from(l.max_trips)
            .map_err(|_| Unsupported("a loop of over 2^31 trips".into()))?;
        self.stmt(&format!("var {p}trip: i32 = 0i;"));
        self.stmt(&format!("while ({p}trip < {trips}i) {{"));
        let loads: Vec<String> = (0..n_state)
            .map(|j| format!("{p}s{j}"))
            .chain([format!("i64({p}trip)")])
            .chain(l.captured.iter().map(|&r| self.reg(r)))
            .collect();
        let indent = format!("{}    ", self.indent);
        let mut inner = Body {
            program: body,
            access: &[],
            strided: &[],
            generators: &[],
            nd: self.nd,
            window_at: self.window_at,
            src: &mut *self.src,
            prefix: p.clone(),
            loads: Some(loads),
            indent,
        };
        for j in 0..body.instrs.len() {
            inner.instr(j)?;
        }
        for (j, &r) in l.next.iter().enumerate() {
            let next = inner.reg(r);
            inner.stmt(&format!("{p}s{j} = {next};"));
        }
        let stop = inner.reg(l.stop);
        inner.stmt(&format!("if ({stop}) {{"));
        inner.stmt("    break;");
        inner.stmt("}");
        inner.stmt(&format!("{p}trip = {p}trip + 1i;"));
        self.stmt("}");
        Ok(format!("{p}s{}", l.result))
    }

    fn load(&self, input: usize) -> String {
        if let Some(loads) = &self.loads {
            return loads.get(input).cloned().unwrap_or_default();
        }
        let d = self.program.inputs[input].dtype;
        let at = match self.access[input] {
            Access::Contiguous => "i".to_string(),
            Access::Scalar => "0u".to_string(),
            Access::Window => format!("i + dims[{}]", self.window_at + 1 + input),
            Access::Strided => {
                let slot = self.strided.iter().position(|&s| s == input).unwrap_or(0);
                let first = 1 + self.nd + slot * self.nd;
                (0..self.nd)
                    .map(|d| format!("c{d} * dims[{}]", first + d))
                    .collect::<Vec<_>>()
                    .join(" + ")
            }
        };
        match d {
            DType::Bool => format!("in{input}[{at}] != 0u"),
            _ => format!("in{input}[{at}]"),
        }
    }

    /// A generated value at the element's counter `base + Σ c[d] * strides[d]`.
    fn generated(
        &mut self,
        k: usize,
        kind: &GenKind,
        strides: &[i64],
    ) -> Result<String, Unsupported> {
        let slot = self.generators.iter().position(|&g| g == k).unwrap_or(0);
        let base_at = 1 + self.nd + self.strided.len() * self.nd + 2 * slot;
        let mut counter = format!(
            "bitcast<i64>(u64(dims[{base_at}u]) | (u64(dims[{}u]) << 32u))",
            base_at + 1
        );
        for (d, &s) in strides.iter().enumerate() {
            if s != 0 {
                counter = format!(
                    "wadd_i64({counter}, wmul_i64(i64(c{d}), {}))",
                    literal(Value::I64(s))
                );
            }
        }
        let g = format!("{}g{k}", self.prefix);
        self.stmt(&format!("let {g}: i64 = {counter};"));
        let d = self.program.dtypes[k];
        if let (GenKind::Arange { start, step }, DType::I64 | DType::I32) = (kind, d) {
            // Integer ranges stay exact beyond 2^53 (as on the CPU).
            let exact = format!(
                "wadd_i64({}, wmul_i64({g}, {}))",
                literal(Value::I64(*start as i64)),
                literal(Value::I64(*step as i64))
            );
            return Ok(cast(DType::I64, d, &exact));
        }
        let value = match *kind {
            GenKind::Arange { start, step } => {
                format!("{} + f64({g}) * {}", f64_literal(start), f64_literal(step))
            }
            GenKind::Linspace {
                start,
                stop,
                num,
                endpoint,
            } => {
                let (step, last) = generate::linspace_step(start, stop, num, endpoint);
                format!(
                    "select({} + f64({g}) * {}, {}, {g} == {})",
                    f64_literal(start),
                    f64_literal(step),
                    f64_literal(stop),
                    literal(Value::I64(last))
                )
            }
            GenKind::Uniform {
                seed,
                stream,
                low,
                high,
            } => {
                let key = generate::key(seed, stream);
                let z = format!(
                    "mix64({}lu + (u64({g}) + 1lu) * {}lu)",
                    key,
                    generate::GOLDEN
                );
                let unit = format!(
                    "(bitcast<f64>(0x3ff0000000000000lu | ({z} >> 12u)) - {})",
                    f64_literal(1.0)
                );
                format!(
                    "{} + {} * {unit}",
                    f64_literal(low),
                    f64_literal(high - low)
                )
            }
            GenKind::Normal {
                seed,
                stream,
                mean,
                std,
            } => self.normal(k, &g, generate::key(seed, stream), mean, std),
        };
        Ok(cast(DType::F64, d, &value))
    }

    /// Box–Muller on counters 2g and 2g+1, as the CPU computes it: the
    /// logarithm and cosine are its vector kernels (`ln_dd_f64`, `cos_f64`).
    fn normal(&mut self, k: usize, g: &str, key: u64, mean: f64, std: f64) -> String {
        let one = f64_literal(1.0);
        let unit = |c: &str| {
            format!(
                "(bitcast<f64>(0x3ff0000000000000lu | (mix64({key}lu + ({c} + 1lu) * {}lu) >> 12u)) - {one})",
                generate::GOLDEN
            )
        };
        let p = format!("{}n{k}", self.prefix);
        self.stmt(&format!("let {p}c: u64 = u64({g}) * 2lu;"));
        let first = unit(&format!("{p}c"));
        let second = unit(&format!("({p}c + 1lu)"));
        self.stmt(&format!("let {p}u: f64 = {one} - {first};"));
        self.stmt(&format!(
            "let {p}a: f64 = {} * {second};",
            f64_literal(std::f64::consts::TAU)
        ));
        // Never outside the kernels' range (u in (0, 1], angles below 2π).
        self.stmt(&format!("slow = slow || !log_ok({p}u) || !trig_ok({p}a);"));
        format!(
            "{} + {} * sqrt({} * log_f64({p}u)) * cos_f64({p}a)",
            f64_literal(mean),
            f64_literal(std),
            f64_literal(-2.0)
        )
    }

    fn unary(&mut self, k: usize, op: UnaryOp, a: u32) -> Result<String, Unsupported> {
        use UnaryOp::*;
        let d = self.dtype(a);
        let x = self.reg(a);
        if d == DType::C128 {
            return self.complex_unary(k, op, &x);
        }
        let float = matches!(d, DType::F32 | DType::F64);
        let zero = typed_literal(0.0, d);
        let one = typed_literal(1.0, d);
        Ok(match op {
            Neg if d == DType::Bool => x,
            Neg if float => format!("-{x}"),
            Neg => format!("wneg_{}({x})", ty(d)),
            Not => format!("!{x}"),
            // Correctly rounded on every backend ([`FLOAT32_ROUNDED`]).
            Sqrt if d == DType::F32 => format!("sqrt_f32({x})"),
            Sqrt => format!("sqrt({x})"),
            Abs if d == DType::Bool => x,
            Abs if float => format!("abs({x})"),
            Abs => format!("select({x}, wneg_{}({x}), {x} < {zero})", ty(d)),
            Floor if float => format!("floor({x})"),
            Ceil if float => format!("ceil({x})"),
            Round if float => format!("round_even_{}({x})", ty(d)),
            Floor | Ceil | Round | Re => x,
            Im => zero,
            Sign if float => format!(
                "select(select(select({zero}, {x}, {nan}), -{one}, {x} < {zero}), {one}, {x} > {zero})",
                nan = isnan(d, &x)
            ),
            Sign => format!("select(select({zero}, -{one}, {x} < {zero}), {one}, {x} > {zero})"),
            IsNan if float => isnan(d, &x),
            IsFinite if float => format!("isfinite_{}({x})", ty(d)),
            IsNan => "false".into(),
            IsFinite => "true".into(),
            Powi(n) => self.powi(k, d, &x, n)?,
            Exp | Log | Sin | Cos | Tan | Tanh | Log2 | Log10 | Log1p | Expm1 | Arctan | Arcsin
            | Arccos
                if float =>
            {
                let name = match op {
                    Exp => "exp",
                    Log => "log",
                    Sin => "sin",
                    Cos => "cos",
                    Tan => "tan",
                    Log2 => "log2",
                    Log10 => "log10",
                    Log1p => "log1p",
                    Expm1 => "expm1",
                    Arctan => "atan",
                    Arcsin => "asin",
                    Arccos => "acos",
                    _ => "tanh",
                };
                let guard = match op {
                    Sin | Cos | Tan => "trig",
                    other => other_name(other),
                };
                let wide = widen(d, &x);
                self.stmt(&format!("slow = slow || !{guard}_ok({wide});"));
                narrow(d, &format!("{name}_f64({wide})"))
            }
            // float32: the float64 kernel's, rounded (the CPU's is the C library's).
            Sinh | Cosh if float => {
                let wide = widen(d, &x);
                self.stmt(&format!("slow = slow || !exp_ok({wide});"));
                let part = if op == Sinh { "x" } else { "y" };
                narrow(d, &format!("sinh_cosh_f64({wide}).{part}"))
            }
            _ => return refuse(format!("{} of {d}", op.name())),
        })
    }

    /// Complex numbers as `vec2<f64>` (re, im), with the CPU's formulas.
    fn complex_unary(&mut self, k: usize, op: UnaryOp, x: &str) -> Result<String, Unsupported> {
        use UnaryOp::*;
        Ok(match op {
            // e^re (cos im, sin im), as the CPU computes it in the kernels' range.
            Exp => {
                let e = format!("{}ce{k}", self.prefix);
                self.stmt(&format!(
                    "slow = slow || !exp_ok({x}.x) || !trig_ok({x}.y);"
                ));
                self.stmt(&format!("let {e}: f64 = exp_f64({x}.x);"));
                format!("vec2<f64>({e} * cos_f64({x}.y), {e} * sin_f64({x}.y))")
            }
            // sin/cos of one part, sinh/cosh of the other (the CPU's `complex::trig`).
            Sin | Cos | Sinh | Cosh => {
                let circular = matches!(op, Sin | Cos);
                let (t, h) = if circular { ("x", "y") } else { ("y", "x") };
                let hc = format!("{}ch{k}", self.prefix);
                self.stmt(&format!(
                    "slow = slow || !exp_ok({x}.{h}) || !trig_ok({x}.{t});"
                ));
                self.stmt(&format!("let {hc}: vec2<f64> = sinh_cosh_f64({x}.{h});"));
                let (s, c) = (format!("sin_f64({x}.{t})"), format!("cos_f64({x}.{t})"));
                let (sh, ch) = (format!("{hc}.x"), format!("{hc}.y"));
                match op {
                    Sin => format!("vec2<f64>({s} * {ch}, {c} * {sh})"),
                    Cos => format!("vec2<f64>({c} * {ch}, -({s} * {sh}))"),
                    Sinh => format!("vec2<f64>({sh} * {c}, {ch} * {s})"),
                    _ => format!("vec2<f64>({ch} * {c}, {sh} * {s})"),
                }
            }
            // The same of twice the parts, over cos 2a + cosh 2b (tan) or
            // cosh 2a + cos 2b (tanh), as num-complex and the CPU compute them.
            Tan | Tanh => {
                let p = format!("{}ct{k}", self.prefix);
                let (t, h) = if op == Tan { ("x", "y") } else { ("y", "x") };
                self.stmt(&format!("let {p}t: f64 = {x}.{t} + {x}.{t};"));
                self.stmt(&format!("let {p}h: f64 = {x}.{h} + {x}.{h};"));
                self.stmt(&format!("slow = slow || !exp_ok({p}h) || !trig_ok({p}t);"));
                self.stmt(&format!("let {p}hc: vec2<f64> = sinh_cosh_f64({p}h);"));
                self.stmt(&format!("let {p}s: f64 = sin_f64({p}t);"));
                self.stmt(&format!("let {p}c: f64 = cos_f64({p}t);"));
                if op == Tan {
                    self.stmt(&format!("let {p}d: f64 = {p}c + {p}hc.y;"));
                    format!("vec2<f64>({p}s / {p}d, {p}hc.x / {p}d)")
                } else {
                    self.stmt(&format!("let {p}d: f64 = {p}hc.y + {p}c;"));
                    format!("vec2<f64>({p}hc.x / {p}d, {p}s / {p}d)")
                }
            }
            // num-complex's: the logarithm of the modulus, and the argument;
            // for log2 and log10 each part over ln 2 or ln 10.
            Log | Log2 | Log10 => {
                let p = format!("{}cl{k}", self.prefix);
                self.stmt(&format!("slow = slow || !hypot_ok({x}.x, {x}.y);"));
                self.stmt(&format!("let {p}m: f64 = hypot_f64({x}.x, {x}.y);"));
                self.stmt(&format!(
                    "slow = slow || !log_ok({p}m) || !atan2_ok({x}.y, {x}.x);"
                ));
                let (re, im) = (format!("log_f64({p}m)"), format!("atan2_f64({x}.y, {x}.x)"));
                match op {
                    Log => format!("vec2<f64>({re}, {im})"),
                    _ => {
                        let base = if op == Log2 {
                            std::f64::consts::LN_2
                        } else {
                            std::f64::consts::LN_10
                        };
                        let c = f64_literal(base);
                        format!("vec2<f64>({re} / {c}, {im} / {c})")
                    }
                }
            }
            // The CPU's `complex::atan`, in its order: -i atanh(iz), whose
            // parts are log1p and arctan2 of the same real expressions.
            Arctan => {
                let p = format!("{}ca{k}", self.prefix);
                self.stmt(&format!("let {p}x: f64 = -{x}.y;"));
                self.stmt(&format!("let {p}y: f64 = {x}.x;"));
                self.stmt(&format!(
                    "let {p}l: f64 = 4.0lf * {p}x / ((1.0lf - {p}x) * (1.0lf - {p}x) + {p}y * {p}y);"
                ));
                self.stmt(&format!("let {p}u: f64 = 2.0lf * {p}y;"));
                self.stmt(&format!(
                    "let {p}v: f64 = (1.0lf - {p}x) * (1.0lf + {p}x) - {p}y * {p}y;"
                ));
                self.stmt(&format!(
                    "slow = slow || !log1p_ok({p}l) || !atan2_ok({p}u, {p}v);"
                ));
                format!("vec2<f64>(0.5lf * atan2_f64({p}u, {p}v), -(0.25lf * log1p_f64({p}l)))")
            }
            // z / |z| (the CPU's `complex::sign`), 0 at 0; NaN and infinite
            // parts go back to the CPU.
            Sign => {
                let p = format!("{}cg{k}", self.prefix);
                self.stmt(&format!(
                    "slow = slow || !isfinite_f64({x}.x) || !isfinite_f64({x}.y) || !hypot_ok({x}.x, {x}.y);"
                ));
                self.stmt(&format!("let {p}r: f64 = hypot_f64({x}.x, {x}.y);"));
                format!(
                    "select(vec2<f64>({x}.x / {p}r, {x}.y / {p}r), vec2<f64>(0.0lf, 0.0lf), {p}r == 0.0lf)"
                )
            }
            Sqrt => {
                let p = format!("{}cs{k}", self.prefix);
                self.complex_sqrt(&p, x)
            }
            // The CPU's `complex::asin` and `acos` (Kahan's): arctan2 and
            // asinh of products of the square roots of 1 - z and 1 + z.
            Arcsin | Arccos => {
                let p = format!("{}cn{k}", self.prefix);
                self.stmt(&format!(
                    "let {p}m: vec2<f64> = vec2<f64>(1.0lf - {x}.x, -{x}.y);"
                ));
                self.stmt(&format!(
                    "let {p}q: vec2<f64> = vec2<f64>(1.0lf + {x}.x, {x}.y);"
                ));
                let a = self.complex_sqrt(&format!("{p}a"), &format!("{p}m"));
                self.stmt(&format!("let {p}ra: vec2<f64> = {a};"));
                let b = self.complex_sqrt(&format!("{p}b"), &format!("{p}q"));
                self.stmt(&format!("let {p}rb: vec2<f64> = {b};"));
                let (a, b) = (format!("{p}ra"), format!("{p}rb"));
                let (u, v, h) = if op == Arcsin {
                    (
                        format!("{x}.x"),
                        format!("{a}.x * {b}.x - {a}.y * {b}.y"),
                        format!("{a}.x * {b}.y - {a}.y * {b}.x"),
                    )
                } else {
                    (
                        format!("{a}.x"),
                        format!("{b}.x"),
                        format!("{b}.x * {a}.y - {b}.y * {a}.x"),
                    )
                };
                self.stmt(&format!("let {p}u: f64 = {u};"));
                self.stmt(&format!("let {p}v: f64 = {v};"));
                self.stmt(&format!("slow = slow || !atan2_ok({p}u, {p}v);"));
                let im = self.asinh(&format!("{p}h"), &h);
                let re = format!("atan2_f64({p}u, {p}v)");
                match op {
                    Arcsin => format!("vec2<f64>({re}, {im})"),
                    _ => format!("vec2<f64>(2.0lf * {re}, {im})"),
                }
            }
            // num-complex's `powi`: squarings and products in its order, of
            // the reciprocal (conj / |z|²) for negative powers.
            Powi(n) => self.complex_powi(k, x, n),
            Neg => format!("cneg({x})"),
            Abs => {
                self.stmt(&format!("slow = slow || !hypot_ok({x}.x, {x}.y);"));
                format!("hypot_f64({x}.x, {x}.y)")
            }
            Re => format!("{x}.x"),
            Im => format!("{x}.y"),
            IsNan => format!("isnan_f64({x}.x) || isnan_f64({x}.y)"),
            IsFinite => format!("isfinite_f64({x}.x) && isfinite_f64({x}.y)"),
            Round => format!("vec2<f64>(round_even_f64({x}.x), round_even_f64({x}.y))"),
            _ => return refuse(format!("{} of complex128", op.name())),
        })
    }

    /// num-complex's square root of the complex `x`, its statements named
    /// from `p`: a zero part gives the square root of a real (signs as
    /// num-complex sets them); otherwise the root of the modulus at half
    /// the argument.
    fn complex_sqrt(&mut self, p: &str, x: &str) -> String {
        self.stmt(&format!(
            "slow = slow || !isfinite_f64({x}.x) || !isfinite_f64({x}.y);"
        ));
        self.stmt(&format!(
            "let {p}p: bool = {x}.x != 0.0lf && {x}.y != 0.0lf;"
        ));
        self.stmt(&format!(
            "slow = slow || ({p}p && (!hypot_ok({x}.x, {x}.y) || !atan2_ok({x}.y, {x}.x)));"
        ));
        self.stmt(&format!("let {p}r: f64 = sqrt(hypot_f64({x}.x, {x}.y));"));
        self.stmt(&format!("let {p}t: f64 = atan2_f64({x}.y, {x}.x) / 2.0lf;"));
        self.stmt(&format!(
            "let {p}g: vec2<f64> = vec2<f64>({p}r * cos_f64({p}t), {p}r * sin_f64({p}t));"
        ));
        // im = 0: √re and im for re's sign bit clear, else ±i√-re with im's sign.
        self.stmt(&format!(
            "let {p}n: f64 = flip_sign(sqrt(-{x}.x), bitcast<u64>({x}.y) & SIGN64);"
        ));
        self.stmt(&format!(
            "let {p}a: vec2<f64> = select(vec2<f64>(0.0lf, {p}n), vec2<f64>(sqrt({x}.x), {x}.y), (bitcast<u64>({x}.x) & SIGN64) == 0lu);"
        ));
        // re = 0: √(|im|/2) (1, ±1).
        self.stmt(&format!("let {p}h: f64 = sqrt(abs({x}.y) / 2.0lf);"));
        self.stmt(&format!(
            "let {p}b: vec2<f64> = vec2<f64>({p}h, flip_sign({p}h, bitcast<u64>({x}.y) & SIGN64));"
        ));
        format!("select(select({p}g, {p}b, {x}.x == 0.0lf), {p}a, {x}.y == 0.0lf)")
    }

    /// std's `f64::asinh` of `v`, its statements named from `p`:
    /// `log1p(|v| + |v| / (hypot(1, 1/|v|) + 1/|v|))` with `v`'s sign, and
    /// `v` itself at ±0. Where the reciprocal or log1p's argument leave the
    /// kernels' range, the CPU computes it.
    fn asinh(&mut self, p: &str, v: &str) -> String {
        self.stmt(&format!("let {p}v: f64 = {v};"));
        self.stmt(&format!("let {p}x: f64 = abs({p}v);"));
        self.stmt(&format!("let {p}i: f64 = 1.0lf / {p}x;"));
        self.stmt(&format!("let {p}z: bool = {p}x == 0.0lf;"));
        self.stmt(&format!(
            "slow = slow || !({p}z || (isfinite_f64({p}x) && hypot_ok(1.0lf, {p}i)));"
        ));
        self.stmt(&format!(
            "let {p}l: f64 = {p}x + {p}x / (hypot_f64(1.0lf, {p}i) + {p}i);"
        ));
        self.stmt(&format!("slow = slow || !({p}z || log1p_ok({p}l));"));
        format!("select(flip_sign(log1p_f64({p}l), bitcast<u64>({p}v) & SIGN64), {p}v, {p}z)")
    }

    /// Complex `z**w` for an exponent `w` known when the kernel is made, as
    /// the CPU computes it (`complex::pow`): 1 for w = 0; for z = 0, 0
    /// where Re w > 0, else NaN; an integer w up to 100 by num-complex's
    /// `powi` (`complex_powi`: the same bits); any other w by
    /// num-complex's `exp(w ln z)`, on the GPU's modulus, logarithm,
    /// arctan2, exp, cos and sin. Arguments beyond those kernels' ranges
    /// send the chunk back.
    fn complex_pow(&mut self, k: usize, z: &str, w: num_complex::Complex64) -> String {
        if w.re == 0.0 && w.im == 0.0 {
            return "vec2<f64>(1.0lf, 0.0lf)".to_string();
        }
        let p = format!("{}cw{k}", self.prefix);
        self.stmt(&format!(
            "let {p}z: bool = {z}.x == 0.0lf && {z}.y == 0.0lf;"
        ));
        let value = if w.im == 0.0 && w.re.fract() == 0.0 && w.re.abs() <= 100.0 {
            self.complex_powi(k, z, w.re as i32)
        } else {
            let wl = literal(Value::C128(w));
            self.stmt(&format!(
                "slow = slow || (!{p}z && !hypot_ok({z}.x, {z}.y));"
            ));
            self.stmt(&format!("let {p}m: f64 = hypot_f64({z}.x, {z}.y);"));
            self.stmt(&format!(
                "slow = slow || (!{p}z && (!log_ok({p}m) || !atan2_ok({z}.y, {z}.x)));"
            ));
            self.stmt(&format!(
                "let {p}t: vec2<f64> = cmul({wl}, vec2<f64>(log_f64({p}m), atan2_f64({z}.y, {z}.x)));"
            ));
            self.stmt(&format!(
                "slow = slow || (!{p}z && (!exp_ok({p}t.x) || !trig_ok({p}t.y)));"
            ));
            self.stmt(&format!("let {p}e: f64 = exp_f64({p}t.x);"));
            format!("vec2<f64>({p}e * cos_f64({p}t.y), {p}e * sin_f64({p}t.y))")
        };
        let at_zero = if w.re > 0.0 { 0.0 } else { f64::NAN };
        let at_zero = literal(Value::C128(num_complex::Complex64::new(at_zero, at_zero)));
        format!("select({value}, {at_zero}, {p}z)")
    }

    /// Complex `z**w` for an array of exponents, element by element in the
    /// CPU's cases (see `accel_core::kernel::complex`): 1 for `w = 0`; at
    /// `z = 0`, 0 for `Re w > 0`, else NaN; integer exponents up to 100 by
    /// num-complex's squarings (the same bits); any other as `exp(w ln z)`
    /// on the kernels, range-checked like the scalar exponent's.
    fn complex_pow_array(&mut self, k: usize, z: &str, w: &str) -> String {
        let p = format!("{}ca{k}", self.prefix);
        self.stmt(&format!(
            "let {p}one: bool = {w}.x == 0.0lf && {w}.y == 0.0lf;"
        ));
        self.stmt(&format!(
            "let {p}z: bool = {z}.x == 0.0lf && {z}.y == 0.0lf;"
        ));
        self.stmt(&format!(
            "let {p}int: bool = {w}.y == 0.0lf && abs({w}.x) <= 100.0lf && floor({w}.x) == {w}.x;"
        ));
        // Converted only where in range (an out-of-range conversion is
        // undefined in CUDA C).
        self.stmt(&format!(
            "let {p}n: i32 = i32(select(0.0lf, {w}.x, {p}int));"
        ));
        self.stmt(&format!("let {p}pi: vec2<f64> = cpowi_dyn({z}, {p}n);"));
        // The general case's range checks, where it is the one taken.
        let general = format!("!{p}one && !{p}z && !{p}int");
        self.stmt(&format!(
            "slow = slow || ({general} && !hypot_ok({z}.x, {z}.y));"
        ));
        self.stmt(&format!("let {p}m: f64 = hypot_f64({z}.x, {z}.y);"));
        self.stmt(&format!(
            "slow = slow || ({general} && (!log_ok({p}m) || !atan2_ok({z}.y, {z}.x)));"
        ));
        self.stmt(&format!(
            "let {p}t: vec2<f64> = cmul({w}, vec2<f64>(log_f64({p}m), atan2_f64({z}.y, {z}.x)));"
        ));
        self.stmt(&format!(
            "slow = slow || ({general} && (!exp_ok({p}t.x) || !trig_ok({p}t.y)));"
        ));
        self.stmt(&format!("let {p}e: f64 = exp_f64({p}t.x);"));
        self.stmt(&format!(
            "let {p}g: vec2<f64> = vec2<f64>({p}e * cos_f64({p}t.y), {p}e * sin_f64({p}t.y));"
        ));
        let nan = literal(Value::C128(num_complex::Complex64::new(f64::NAN, f64::NAN)));
        self.stmt(&format!(
            "let {p}at0: vec2<f64> = select({nan}, vec2<f64>(0.0lf, 0.0lf), {w}.x > 0.0lf);"
        ));
        format!(
            "select(select(select({p}g, {p}pi, {p}int), {p}at0, {p}z), vec2<f64>(1.0lf, 0.0lf), {p}one)"
        )
    }

    /// Complex `z**n` as num-complex computes it (the CPU's): 1 for n = 0;
    /// for n < 0, `w = (re / |z|², -im / |z|²)`; then squarings of the base
    /// while the exponent is even, and the product of the squares whose bits
    /// are set, in that order. The exponent is known here: the loop unrolls.
    fn complex_powi(&mut self, k: usize, z: &str, n: i32) -> String {
        let p = format!("{}cp{k}", self.prefix);
        if n == 0 {
            return "vec2<f64>(1.0lf, 0.0lf)".to_string();
        }
        let mut base = z.to_string();
        if n < 0 {
            self.stmt(&format!("let {p}n: f64 = {z}.x * {z}.x + {z}.y * {z}.y;"));
            self.stmt(&format!(
                "let {p}i: vec2<f64> = vec2<f64>({z}.x / {p}n, -{z}.y / {p}n);"
            ));
            base = format!("{p}i");
        }
        let mut e = n.unsigned_abs();
        let mut step = 0;
        let mut square = |this: &mut Self, b: &str| {
            let name = format!("{p}b{step}");
            step += 1;
            this.stmt(&format!("let {name}: vec2<f64> = cmul({b}, {b});"));
            name
        };
        while e & 1 == 0 {
            base = square(self, &base);
            e >>= 1;
        }
        if e == 1 {
            return base;
        }
        let mut acc = base.clone();
        let mut products = 0;
        while e > 1 {
            e >>= 1;
            base = square(self, &base);
            if e & 1 == 1 {
                let name = format!("{p}a{products}");
                products += 1;
                self.stmt(&format!("let {name}: vec2<f64> = cmul({acc}, {base});"));
                acc = name;
            }
        }
        acc
    }

    /// `x**n` by squaring, the multiplications in the CPU's order.
    fn powi(&mut self, k: usize, d: DType, x: &str, n: i32) -> Result<String, Unsupported> {
        let float = matches!(d, DType::F32 | DType::F64);
        if n < 0 && !float {
            return refuse("negative integer powers of integers");
        }
        let t = ty(d);
        let one = typed_literal(1.0, d);
        let (o, b) = (
            format!("{}p{k}", self.prefix),
            format!("{}b{k}", self.prefix),
        );
        self.stmt(&format!("var {o}: {t} = {one};"));
        self.stmt(&format!("var {b}: {t} = {x};"));
        let mul = |x: &str, y: &str| match float {
            true => format!("{x} * {y}"),
            false => format!("wmul_{t}({x}, {y})"),
        };
        let mut e = n.unsigned_abs();
        while e > 0 {
            if e & 1 == 1 {
                self.stmt(&format!("{o} = {};", mul(&o, &b)));
            }
            e >>= 1;
            if e > 0 {
                self.stmt(&format!("{b} = {};", mul(&b, &b)));
            }
        }
        Ok(if n < 0 {
            binary(BinaryOp::Div, d, &one, &o)?
        } else {
            o
        })
    }
}

/// The range check of a float function computed by a kernel of `wgsl_math`.
fn other_name(op: UnaryOp) -> &'static str {
    match op {
        UnaryOp::Exp => "exp",
        UnaryOp::Expm1 => "expm1",
        UnaryOp::Log | UnaryOp::Log2 | UnaryOp::Log10 => "log",
        UnaryOp::Log1p => "log1p",
        UnaryOp::Arctan => "atan",
        UnaryOp::Arcsin => "asin",
        UnaryOp::Arccos => "acos",
        _ => "tanh",
    }
}

/// A float as f64 (the transcendental kernels compute in f64; an f32
/// result is the f64 one rounded, within an ulp of `std`).
fn widen(d: DType, x: &str) -> String {
    match d {
        DType::F32 => format!("f64({x})"),
        _ => x.to_string(),
    }
}

fn narrow(d: DType, x: &str) -> String {
    match d {
        DType::F32 => format!("f32({x})"),
        _ => x.to_string(),
    }
}

fn isnan(d: DType, x: &str) -> String {
    format!("isnan_{}({x})", ty(d))
}

fn binary(op: BinaryOp, d: DType, x: &str, y: &str) -> Result<String, Unsupported> {
    use BinaryOp::*;
    let float = matches!(d, DType::F32 | DType::F64);
    let t = ty(d);
    if d == DType::C128 {
        return Ok(match op {
            Add => format!("cadd({x}, {y})"),
            Sub => format!("csub({x}, {y})"),
            Mul => format!("cmul({x}, {y})"),
            Div => format!("cdiv({x}, {y})"),
            Eq => format!("{x}.x == {y}.x && {x}.y == {y}.y"),
            Ne => format!("!({x}.x == {y}.x) || !({x}.y == {y}.y)"),
            _ => return refuse(format!("{} of complex128", op.symbol())),
        });
    }
    Ok(match op {
        Add if !float => format!("wadd_{t}({x}, {y})"),
        Sub if !float => format!("wsub_{t}({x}, {y})"),
        Mul if !float => format!("wmul_{t}({x}, {y})"),
        Add => format!("{x} + {y}"),
        Sub => format!("{x} - {y}"),
        Mul => format!("{x} * {y}"),
        // Correctly rounded on every backend ([`FLOAT32_ROUNDED`]).
        Div if d == DType::F32 => format!("div_f32({x}, {y})"),
        Div if float => format!("{x} / {y}"),
        Rem => format!("rem_{}({x}, {y})", ty(d)),
        FloorDiv => format!("floordiv_{}({x}, {y})", ty(d)),
        Min | And if d == DType::Bool => format!("{x} & {y}"),
        Max | Or if d == DType::Bool => format!("{x} | {y}"),
        Min if float => format!(
            "select(select({x}, {y}, {y} < {x}), {}, {} || {})",
            typed_literal(f64::NAN, d),
            isnan(d, x),
            isnan(d, y)
        ),
        Max if float => format!(
            "select(select({x}, {y}, {y} > {x}), {}, {} || {})",
            typed_literal(f64::NAN, d),
            isnan(d, x),
            isnan(d, y)
        ),
        Min => format!("select({x}, {y}, {y} < {x})"),
        Max => format!("select({x}, {y}, {y} > {x})"),
        Eq | Ne | Lt | Le | Gt | Ge if d == DType::Bool => {
            format!("u32({x}) {} u32({y})", comparison(op))
        }
        // `!=` must hold for NaN: written as a negated ordered equality.
        Ne if float => format!("!({x} == {y})"),
        Eq | Ne | Lt | Le | Gt | Ge => format!("{x} {} {y}", comparison(op)),
        _ => return refuse(format!("{} of {d}", op.symbol())),
    })
}

fn comparison(op: BinaryOp) -> &'static str {
    use BinaryOp::*;
    match op {
        Eq => "==",
        Ne => "!=",
        Lt => "<",
        Le => "<=",
        Gt => ">",
        _ => ">=",
    }
}

/// `x` (of dtype `from`) as dtype `to`, with the CPU's `as` semantics.
fn cast(from: DType, to: DType, x: &str) -> String {
    if from == to {
        return x.to_string();
    }
    let float_from = matches!(from, DType::F32 | DType::F64);
    match (from, to) {
        (DType::C128, DType::Bool) => format!("!({x}.x == 0.0lf) || !({x}.y == 0.0lf)"),
        (DType::C128, _) => cast(DType::F64, to, &format!("{x}.x")),
        // The zero imaginary part built at run time: a literal one is folded away.
        (_, DType::C128) => format!(
            "vec2<f64>({}, {})",
            cast(from, DType::F64, x),
            f64_literal(0.0)
        ),
        (DType::Bool, _) => format!(
            "select({}, {}, {x})",
            typed_literal(0.0, to),
            typed_literal(1.0, to)
        ),
        (_, DType::Bool) if float_from => format!("!({x} == {})", typed_literal(0.0, from)),
        (_, DType::Bool) => format!("{x} != {}", typed_literal(0.0, from)),
        (DType::F32 | DType::F64, DType::I32 | DType::I64) => {
            // Saturating, NaN → 0; the bounds are exact powers of two.
            let (lo, hi) = if to == DType::I32 {
                (-2_147_483_648.0, 2_147_483_648.0)
            } else {
                (-9_223_372_036_854_775_808.0, 9_223_372_036_854_775_808.0)
            };
            let (min, max) = if to == DType::I32 {
                (literal(Value::I32(i32::MIN)), literal(Value::I32(i32::MAX)))
            } else {
                (literal(Value::I64(i64::MIN)), literal(Value::I64(i64::MAX)))
            };
            format!(
                "select(select(select({t}({x}), {min}, {x} < {lo}), {max}, {x} >= {hi}), {zero}, {nan})",
                t = ty(to),
                lo = typed_literal(lo, from),
                hi = typed_literal(hi, from),
                zero = typed_literal(0.0, to),
                nan = isnan(from, x)
            )
        }
        _ => format!("{}({x})", ty(to)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wgsl_math::Fma;
    use accel_core::kernel::ir::{InputSpec, ProgramBuilder};

    fn axpy() -> Program {
        let mut b = ProgramBuilder::new();
        let x = b.input(InputSpec {
            dtype: DType::F64,
            shape: vec![8],
        });
        let y = b.input(InputSpec {
            dtype: DType::F64,
            shape: vec![8],
        });
        let a = b.push(Instr::Const(Value::F64(2.0)), DType::F64);
        let ax = b.push(Instr::Binary(BinaryOp::Mul, a, x), DType::F64);
        let r = b.push(Instr::Binary(BinaryOp::Add, ax, y), DType::F64);
        b.finish(r, vec![8])
    }

    #[test]
    fn an_elementwise_chain_is_one_let_per_instruction() {
        let shader = generate(&axpy(), &[Access::Contiguous, Access::Scalar], Fma::Native)
            .expect("generates");
        let body: Vec<&str> = shader
            .source
            .lines()
            .skip_while(|l| !l.starts_with("fn main"))
            .collect();
        assert_eq!(
            body,
            [
                "fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {",
                "    let i = gid.x + gid.y * groups.x * 256u;",
                "    if (i >= dims[0]) {",
                "        return;",
                "    }",
                "    let zero_bits = dims[2];",
                "    let r0: f64 = in0[i];",
                "    let r1: f64 = in1[0u];",
                "    let r2: f64 = bitcast<f64>(4611686018427387904lu);",
                "    let r3: f64 = r2 * r0;",
                "    let r4: f64 = r3 + r1;",
                "    out[i] = r4;",
                "}",
            ]
        );
        assert!(
            shader
                .source
                .contains("@group(0) @binding(3) var<storage, read_write> out: array<f64>;")
        );
    }

    #[test]
    fn functions_without_a_gpu_form_are_refused() {
        let refused = |dtype: DType, op: UnaryOp| {
            let mut b = ProgramBuilder::new();
            let x = b.input(InputSpec {
                dtype,
                shape: vec![4],
            });
            let e = b.push(Instr::Unary(op, x), dtype);
            check(&b.finish(e, vec![4]))
        };
        assert_eq!(
            refused(DType::I64, UnaryOp::Powi(-2)),
            Err(Unsupported("powi-2 of i64".into()))
        );
        // Complex powers: by an exponent known when the kernel is made,
        // not by an array of them.
        let power = |constant: bool| {
            let mut b = ProgramBuilder::new();
            let z = b.input(InputSpec {
                dtype: DType::C128,
                shape: vec![4],
            });
            let w = match constant {
                true => b.push(
                    Instr::Const(Value::C128(num_complex::Complex64::new(0.5, 1.0))),
                    DType::C128,
                ),
                false => z,
            };
            let e = b.push(Instr::Binary(BinaryOp::Pow, z, w), DType::C128);
            check(&b.finish(e, vec![4]))
        };
        assert_eq!(power(false), Ok(()));
        assert_eq!(power(true), Ok(()));
        // What used to be refused: float32 sinh, complex square roots,
        // logarithms, signs and inverse trigonometric functions.
        assert_eq!(refused(DType::F32, UnaryOp::Sinh), Ok(()));
        for op in [
            UnaryOp::Sqrt,
            UnaryOp::Log10,
            UnaryOp::Log2,
            UnaryOp::Sign,
            UnaryOp::Arctan,
            UnaryOp::Arcsin,
            UnaryOp::Arccos,
        ] {
            assert_eq!(refused(DType::C128, op), Ok(()), "{op:?}");
        }
    }

    #[test]
    fn float32_roots_and_quotients_are_rounded_from_float64() {
        let mut b = ProgramBuilder::new();
        let spec = || InputSpec {
            dtype: DType::F32,
            shape: vec![4],
        };
        let (x, y) = (b.input(spec()), b.input(spec()));
        let q = b.push(Instr::Binary(BinaryOp::Div, x, y), DType::F32);
        let r = b.push(Instr::Unary(UnaryOp::Sqrt, q), DType::F32);
        let p = b.finish(r, vec![4]);
        let access = [Access::Contiguous, Access::Contiguous];
        let src = generate(&p, &access, Fma::Native)
            .expect("generates")
            .source;
        assert!(src.contains("div_f32(r0, r1)"), "{src}");
        assert!(src.contains("sqrt_f32(r2)"), "{src}");
        assert!(src.contains(FLOAT32_ROUNDED), "{src}");
        // Float64 keeps the device's own operations.
        assert_eq!(
            binary(BinaryOp::Div, DType::F64, "a", "b"),
            Ok("a / b".into())
        );
    }

    #[test]
    fn strided_inputs_and_generators_read_their_words_from_meta() {
        let mut b = ProgramBuilder::new();
        let x = b.input(InputSpec {
            dtype: DType::I32,
            shape: vec![3, 1],
        });
        let g = b.push(
            Instr::Gen {
                kind: GenKind::Arange {
                    start: 5.0,
                    step: 2.0,
                },
                base: 0,
                strides: vec![4, 1],
            },
            DType::I64,
        );
        let xc = b.cast(x, DType::I64);
        let s = b.push(Instr::Binary(BinaryOp::FloorDiv, g, xc), DType::I64);
        let p = b.finish(s, vec![3, 4]);
        let shader = generate(&p, &[Access::Strided], Fma::Native).expect("generates");
        assert_eq!(shader.strided, vec![0]);
        assert_eq!(shader.generators, vec![1]);
        let src = &shader.source;
        assert!(src.contains("let c1 = rest % dims[2];"), "{src}");
        assert!(src.contains("in0[c0 * dims[3] + c1 * dims[4]]"), "{src}");
        // meta: n, 2 shape words, 2 strides, then the generator's counter.
        assert!(src.contains("let g1: i64 = wadd_i64(wadd_i64(bitcast<i64>(u64(dims[5u]) | (u64(dims[6u]) << 32u)), wmul_i64(i64(c0), bitcast<i64>(4lu))), wmul_i64(i64(c1), bitcast<i64>(1lu)));"), "{src}");
        assert!(src.contains("floordiv_i64(r1, r2)"), "{src}");
    }
}
