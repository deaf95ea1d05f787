//! CUDA C generated from a fused kernel program, compiled at run time with
//! NVRTC and run through the CUDA driver (both loaded dynamically: building
//! needs no CUDA toolkit, and a machine without one gets a clear error).
//!
//! The kernel is the WGSL backend's, translated: [`crate::wgsl`] writes the
//! program's statements and the functions they call in a small subset of
//! WGSL (`let`/`var`, calls, `select`, `bitcast`, typed literals), which
//! maps line by line onto CUDA C++. Both backends therefore compute the
//! same operations in the same order; CUDA's `fma` is fused (compiled with
//! `--fmad=false`, so nothing else is), and signed integers wrap through
//! unsigned arithmetic, as signed overflow is undefined in C.

use std::fmt::Write;

use accel_core::dtype::DType;
use accel_core::exec::Fold;
use accel_core::kernel::Program;

use crate::wgsl::{self, Access, Unsupported};
use crate::wgsl_math::Fma;

/// The kernel's name in the module.
pub const KERNEL: &str = "accel_kernel";

/// A generated CUDA kernel and the layout its launch follows (the same
/// `dims` words and bindings as the WGSL shader's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CudaSource {
    pub source: String,
    pub shader: wgsl::Shader,
}

/// Conversions, bit casts, selection, wrapping arithmetic and float32
/// division and root (IEEE under [`NVRTC_OPTIONS`]) for the translated
/// statements.
const PRELUDE: &str = r#"template <class T> __device__ __forceinline__ double f64(T x) { return (double)x; }
template <class T> __device__ __forceinline__ float f32(T x) { return (float)x; }
template <class T> __device__ __forceinline__ int i32(T x) { return (int)x; }
template <class T> __device__ __forceinline__ long long i64(T x) { return (long long)x; }
template <class T> __device__ __forceinline__ unsigned int u32(T x) { return (unsigned int)x; }
template <class T> __device__ __forceinline__ unsigned long long u64(T x) { return (unsigned long long)x; }
template <class T> __device__ __forceinline__ T sel(T f, T t, bool c) { return c ? t : f; }
__device__ __forceinline__ double as_f64(unsigned long long x) { return __longlong_as_double((long long)x); }
__device__ __forceinline__ unsigned long long as_u64(double x) { return (unsigned long long)__double_as_longlong(x); }
__device__ __forceinline__ long long as_i64(unsigned long long x) { return (long long)x; }
__device__ __forceinline__ float as_f32(unsigned int x) { return __uint_as_float(x); }
__device__ __forceinline__ unsigned int as_u32(float x) { return __float_as_uint(x); }
__device__ __forceinline__ int wadd_i32(int a, int b) { return (int)((unsigned int)a + (unsigned int)b); }
__device__ __forceinline__ int wsub_i32(int a, int b) { return (int)((unsigned int)a - (unsigned int)b); }
__device__ __forceinline__ int wmul_i32(int a, int b) { return (int)((unsigned int)a * (unsigned int)b); }
__device__ __forceinline__ int wneg_i32(int a) { return (int)(0u - (unsigned int)a); }
__device__ __forceinline__ long long wadd_i64(long long a, long long b) { return (long long)((unsigned long long)a + (unsigned long long)b); }
__device__ __forceinline__ long long wsub_i64(long long a, long long b) { return (long long)((unsigned long long)a - (unsigned long long)b); }
__device__ __forceinline__ long long wmul_i64(long long a, long long b) { return (long long)((unsigned long long)a * (unsigned long long)b); }
__device__ __forceinline__ long long wneg_i64(long long a) { return (long long)(0ull - (unsigned long long)a); }
__device__ __forceinline__ float div_f32(float a, float b) { return a / b; }
__device__ __forceinline__ float sqrt_f32(float a) { return sqrtf(a); }
"#;

/// The C type of a WGSL type name.
fn c_type(t: &str) -> &str {
    match t {
        "f64" => "double",
        "f32" => "float",
        "i32" => "int",
        "i64" => "long long",
        "u32" => "unsigned int",
        "u64" => "unsigned long long",
        "vec2<f64>" => "double2",
        "vec3<f64>" => "double3",
        other => other,
    }
}

/// `name: type` → `type name`.
fn c_param(p: &str) -> String {
    match p.split_once(':') {
        Some((name, t)) => format!("{} {}", c_type(t.trim()), name.trim()),
        None => p.to_string(),
    }
}

/// Replaces WGSL literal suffixes: `1.5lf` → `1.5`, `7lu` → `7ull`,
/// `7li` → `7ll`, `7i` → `7` (`7u` stays).
fn literals(line: &str) -> String {
    let b = line.as_bytes();
    let mut out = String::with_capacity(line.len() + 8);
    let mut k = 0;
    while k < b.len() {
        let starts_number = b[k].is_ascii_digit()
            && (k == 0 || !(b[k - 1].is_ascii_alphanumeric() || b[k - 1] == b'_'));
        if !starts_number {
            out.push(b[k] as char);
            k += 1;
            continue;
        }
        let mut end = k;
        let hex = b[k] == b'0' && b.get(k + 1) == Some(&b'x');
        if hex {
            end += 2;
        }
        while end < b.len()
            && (b[end].is_ascii_digit()
                || b[end] == b'.'
                || (hex && b[end].is_ascii_hexdigit())
                || (!hex && (b[end] == b'e' || b[end] == b'E')))
        {
            end += 1;
        }
        out.push_str(&line[k..end]);
        let rest = &line[end..];
        let boundary = |n: usize| {
            rest.as_bytes()
                .get(n)
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
        };
        let (suffix, skip) = if rest.starts_with("lf") && boundary(2) {
            ("", 2)
        } else if rest.starts_with("lu") && boundary(2) {
            ("ull", 2)
        } else if rest.starts_with("li") && boundary(2) {
            ("ll", 2)
        } else if rest.starts_with('i') && boundary(1) {
            ("", 1)
        } else {
            ("", 0)
        };
        out.push_str(suffix);
        k = end + skip;
    }
    out
}

/// One WGSL line of the subset [`crate::wgsl`] writes, as CUDA C++.
fn translate_line(line: &str) -> String {
    let indent = &line[..line.len() - line.trim_start().len()];
    let t = line.trim_start();
    let t = if let Some(rest) = t.strip_prefix("fn ") {
        // fn name(a: T, ...) -> R { ...
        let (name, rest) = rest.split_once('(').unwrap_or((rest, ""));
        let (params, rest) = rest.split_once(')').unwrap_or((rest, ""));
        let params: Vec<String> = params
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(c_param)
            .collect();
        let (ret, body) = match rest.trim_start().strip_prefix("->") {
            Some(r) => {
                let (ret, body) = r.trim_start().split_once(' ').unwrap_or((r, ""));
                (c_type(ret.trim()).to_string(), body.to_string())
            }
            None => ("void".to_string(), rest.to_string()),
        };
        format!(
            "__device__ __forceinline__ {ret} {name}({}) {}",
            params.join(", "),
            body.trim_start()
        )
    } else if let Some(rest) = t.strip_prefix("let ").or_else(|| t.strip_prefix("var ")) {
        let constant = t.starts_with("let ");
        let (lhs, rhs) = rest.split_once(" = ").unwrap_or((rest, ""));
        let decl = match lhs.split_once(':') {
            Some((name, ty)) => format!("{} {}", c_type(ty.trim()), name.trim()),
            None => format!("auto {}", lhs.trim()),
        };
        let qualifier = if constant { "const " } else { "" };
        format!("{qualifier}{decl} = {rhs}")
    } else if let Some(rest) = t.strip_prefix("const ") {
        let (lhs, rhs) = rest.split_once(" = ").unwrap_or((rest, ""));
        let (name, ty) = lhs.split_once(':').unwrap_or((lhs, "u64"));
        format!(
            "__device__ const {} {} = {rhs}",
            c_type(ty.trim()),
            name.trim()
        )
    } else {
        t.to_string()
    };
    let t = t
        .replace("bitcast<f64>(", "as_f64(")
        .replace("bitcast<u64>(", "as_u64(")
        .replace("bitcast<i64>(", "as_i64(")
        .replace("bitcast<f32>(", "as_f32(")
        .replace("bitcast<u32>(", "as_u32(")
        .replace("vec2<f64>(", "make_double2(")
        .replace("vec3<f64>(", "make_double3(");
    let t = calls(
        &t,
        &[
            ("select", "sel"),
            ("round", "rint"),
            ("abs", "fabs"),
            ("min", "fmin"),
            ("max", "fmax"),
        ],
    );
    format!("{indent}{}", literals(&t))
}

/// Renames calls of `from` to `to` (whole identifiers only).
fn calls(line: &str, renames: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    'scan: while !rest.is_empty() {
        for (from, to) in renames {
            if let Some(after) = rest.strip_prefix(from)
                && after.starts_with('(')
                && !out
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                out.push_str(to);
                rest = after;
                continue 'scan;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

/// WGSL text of the subset as CUDA C++.
pub fn translate(wgsl: &str) -> String {
    wgsl.lines()
        .map(translate_line)
        .fold(String::new(), |mut s, l| {
            s.push_str(&l);
            s.push('\n');
            s
        })
}

/// The C element type of a buffer.
fn storage_c_type(d: DType) -> &'static str {
    c_type(wgsl::storage_ty(d))
}

/// The CUDA kernel for `program` with its inputs read as `access` says.
pub fn generate(program: &Program, access: &[Access]) -> Result<CudaSource, Unsupported> {
    let shader = wgsl::generate(program, access, Fma::Native)?;
    let mut src = head(program, &shader);
    src.push_str(
        "    const unsigned int i = (blockIdx.y * gridDim.x + blockIdx.x) * blockDim.x + threadIdx.x;\n",
    );
    src.push_str("    if (i >= dims[0]) {\n        return;\n    }\n");
    src.push_str(&translate(&shader.body));
    src.push_str("}\n");
    Ok(CudaSource {
        source: src,
        shader,
    })
}

/// The CUDA kernel folding `program`'s values by `fold` in strips of
/// [`wgsl::STRIP`] elements, one partial result each (see [`wgsl::generate_fold`]).
pub fn generate_fold(
    program: &Program,
    access: &[Access],
    fold: Fold,
) -> Result<CudaSource, Unsupported> {
    let shader = wgsl::generate_fold(program, access, Fma::Native, fold)?;
    let root = program.root as usize;
    let f = wgsl::fold_text(fold, program.dtypes[root], &format!("r{root}"))?;
    let strip = wgsl::STRIP;
    let mut src = head(program, &shader);
    let _ = writeln!(
        src,
        "    const unsigned int fold_strip = (blockIdx.y * gridDim.x + blockIdx.x) * blockDim.x + threadIdx.x;
    const unsigned int fold_n = dims[0];
    if (fold_strip >= fold_n / {strip}u + (fold_n % {strip}u != 0u ? 1u : 0u)) {{
        return;
    }}"
    );
    src.push_str(&translate(&format!("    {}", f.declare)));
    let _ = writeln!(
        src,
        "    const unsigned int fold_first = fold_strip * {strip}u;
    const unsigned int fold_last = min(fold_first + {strip}u, fold_n);
    for (unsigned int i = fold_first; i < fold_last; ++i) {{"
    );
    src.push_str(&translate(&shader.body));
    src.push_str("    }\n");
    src.push_str(&translate(&format!("    out[fold_strip] = {};", f.store)));
    src.push_str("}\n");
    Ok(CudaSource {
        source: src,
        shader,
    })
}

/// The kernels that move a stencil's kept and ghost cells between and
/// within its device buffers (copies across, copies within, constant
/// fills; see [`accel_core::stencil::DeviceStep`]).
pub fn stencil_move_kernels() -> [CudaSource; 4] {
    use crate::steps::Moves;
    Moves::ALL.map(|kind| CudaSource {
        source: kind.cuda(),
        shader: wgsl::Shader::fixed(kind.wgsl(), 1),
    })
}

/// The prelude, the helper functions and the kernel's signature up to its
/// opening brace.
fn head(program: &Program, shader: &wgsl::Shader) -> String {
    let mut src = String::from(PRELUDE);
    src.push_str(&translate(&shader.functions));
    let mut params = vec!["const unsigned int* __restrict__ dims".to_string()];
    for (k, spec) in program.inputs.iter().enumerate() {
        params.push(format!(
            "const {}* __restrict__ in{k}",
            storage_c_type(spec.dtype)
        ));
    }
    params.push(format!(
        "{}* __restrict__ out",
        storage_c_type(program.dtypes[program.root as usize])
    ));
    if shader.flags {
        params.push("unsigned int* status".into());
    }
    let _ = writeln!(
        src,
        "extern \"C\" __global__ void {KERNEL}({}) {{",
        params.join(", ")
    );
    src
}

/// NVRTC options: IEEE division and square root, no flushing of
/// subnormals, and no contraction of `a * b + c` (the CPU rounds twice).
pub const NVRTC_OPTIONS: [&str; 4] = [
    "--fmad=false",
    "--prec-div=true",
    "--prec-sqrt=true",
    "--ftz=false",
];

#[cfg(feature = "cuda")]
pub use runtime::{CudaGpu, compile_cubin, compile_ptx, nvrtc_available};

#[cfg(feature = "cuda")]
mod lazy;
#[cfg(feature = "cuda")]
mod runtime;
#[cfg(feature = "cuda")]
mod stencil;

#[cfg(test)]
mod tests {
    use super::*;
    use accel_core::dtype::Value;
    use accel_core::kernel::ir::{InputSpec, Instr, ProgramBuilder};
    use accel_core::op::{BinaryOp, UnaryOp};

    #[test]
    fn wgsl_lines_become_cuda_lines() {
        let cases = [
            (
                "fn f(a: f64, b: u32) -> vec2<f64> {",
                "__device__ __forceinline__ double2 f(double a, unsigned int b) {",
            ),
            (
                "    let r3: f64 = select(r1, -r2, r0);",
                "    const double r3 = sel(r1, -r2, r0);",
            ),
            (
                "    var p1: i64 = bitcast<i64>(1lu);",
                "    long long p1 = as_i64(1ull);",
            ),
            (
                "    let z = round(x * 2.0lf) + abs(y);",
                "    const auto z = rint(x * 2.0) + fabs(y);",
            ),
            (
                "    if (b == -1i) { return wneg_i32(a); }",
                "    if (b == -1) { return wneg_i32(a); }",
            ),
            (
                "const SIGN64: u64 = 9223372036854775808lu;",
                "__device__ const unsigned long long SIGN64 = 9223372036854775808ull;",
            ),
            (
                "    let t1_0 = fused(x, p0, t0_0);",
                "    const auto t1_0 = fused(x, p0, t0_0);",
            ),
            (
                "    let m = min(th, 2.0lf) + vec3<f64>(a, b, c).x;",
                "    const auto m = fmin(th, 2.0) + make_double3(a, b, c).x;",
            ),
        ];
        for (wgsl, cuda) in cases {
            assert_eq!(translate_line(wgsl), cuda, "{wgsl}");
        }
        // Identifiers that merely contain a renamed name are left alone.
        assert_eq!(
            translate_line("    let r = fabs_x(max_y(1i));"),
            "    const auto r = fabs_x(max_y(1));"
        );
    }

    #[test]
    fn float32_division_and_roots_are_cudas_own() {
        let mut b = ProgramBuilder::new();
        let spec = || InputSpec {
            dtype: DType::F32,
            shape: vec![8],
        };
        let (x, y) = (b.input(spec()), b.input(spec()));
        let q = b.push(Instr::Binary(BinaryOp::Div, x, y), DType::F32);
        let r = b.push(Instr::Unary(UnaryOp::Sqrt, q), DType::F32);
        let p = b.finish(r, vec![8]);
        let access = [Access::Contiguous, Access::Contiguous];
        let src = generate(&p, &access).expect("generates").source;
        assert!(
            src.contains("div_f32(r0, r1)") && src.contains("sqrt_f32(r2)"),
            "{src}"
        );
        // IEEE under NVRTC's options: no detour through float64 (WGSL's).
        assert!(
            src.contains("float div_f32(float a, float b) { return a / b; }"),
            "{src}"
        );
        assert!(!src.contains("f32(f64(a) / f64(b))"), "{src}");
    }

    #[test]
    fn a_kernel_takes_its_buffers_as_parameters() {
        let mut b = ProgramBuilder::new();
        let x = b.input(InputSpec {
            dtype: DType::F64,
            shape: vec![8],
        });
        let k = b.input(InputSpec {
            dtype: DType::I32,
            shape: vec![1],
        });
        let two = b.push(Instr::Const(Value::F64(2.0)), DType::F64);
        let s = b.push(Instr::Unary(UnaryOp::Sin, x), DType::F64);
        let kf = b.cast(k, DType::F64);
        let m = b.push(Instr::Binary(BinaryOp::Mul, s, two), DType::F64);
        let r = b.push(Instr::Binary(BinaryOp::Add, m, kf), DType::F64);
        let p = b.finish(r, vec![8]);
        let cuda = generate(&p, &[Access::Contiguous, Access::Scalar]).expect("generates");
        let src = &cuda.source;
        assert!(src.contains("extern \"C\" __global__ void accel_kernel(const unsigned int* __restrict__ dims, const double* __restrict__ in0, const int* __restrict__ in1, double* __restrict__ out, unsigned int* status) {"), "{src}");
        let body: Vec<&str> = src
            .lines()
            .skip_while(|l| !l.starts_with("extern"))
            .collect();
        assert_eq!(
            body[1..],
            [
                "    const unsigned int i = (blockIdx.y * gridDim.x + blockIdx.x) * blockDim.x + threadIdx.x;",
                "    if (i >= dims[0]) {",
                "        return;",
                "    }",
                "    const auto zero_bits = dims[2];",
                "    bool slow = false;",
                "    const double r0 = in0[i];",
                "    const int r1 = in1[0u];",
                "    const double r2 = as_f64(4611686018427387904ull);",
                "    slow = slow || !trig_ok(r0);",
                "    const double r3 = sin_f64(r0);",
                "    const double r4 = f64(r1);",
                "    const double r5 = r3 * r2;",
                "    const double r6 = r5 + r4;",
                "    if (slow) {",
                "        atomicAdd(&status[0], 1u);",
                "    }",
                "    out[i] = r6;",
                "}",
            ]
        );
        assert!(src.contains("__device__ __forceinline__ double sin_f64(double x) {"));
    }
}
