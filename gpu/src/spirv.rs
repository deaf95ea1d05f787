//! WGSL compiled to SPIR-V with IEEE float semantics made explicit.
//!
//! A Vulkan driver may otherwise treat float arithmetic as reassociable: Mesa
//! folds `x - x` to 0 (wrong for infinities and NaN) and fuses `a * b + c`
//! into one rounding, so results would differ from the CPU's. naga's SPIR-V
//! carries neither the `NoContraction` decoration nor the float-controls
//! execution modes, so they are added here: every float add, subtract,
//! multiply, divide and negation is `NoContraction` (the driver must round
//! each one), and the entry point preserves signed zeros, infinities, NaN
//! and subnormals for 32- and 64-bit floats (NVIDIA's Vulkan driver
//! otherwise flushes float32 subnormals to zero, on loads too). The modes
//! are emitted whatever the device reports: NVIDIA's driver honours
//! `DenormPreserve` without advertising it, and a driver that refused the
//! module would fail the kernels, which then run on the CPU (a device that
//! fails three in a row is given up), never giving other values. The module then goes to the driver as is
//! (wgpu's passthrough), after naga validated it.

use crate::Error;

const OP_EXTENSION: u32 = 10;
const OP_EXT_INST: u32 = 12;
/// `Fma` in the GLSL.std.450 instruction set.
const GLSL_FMA: u32 = 50;
const OP_ENTRY_POINT: u32 = 15;
const OP_EXECUTION_MODE: u32 = 16;
const OP_CAPABILITY: u32 = 17;
const OP_DECORATE: u32 = 71;
const OP_MEMBER_DECORATE: u32 = 72;
const OP_FNEGATE: u32 = 127;
const OP_FADD: u32 = 129;
const OP_FSUB: u32 = 131;
const OP_FMUL: u32 = 133;
const OP_FDIV: u32 = 136;
const DECORATION_NO_CONTRACTION: u32 = 42;
const CAPABILITY_DENORM_PRESERVE: u32 = 4464;
const CAPABILITY_SIGNED_ZERO_INF_NAN_PRESERVE: u32 = 4466;
const MODE_DENORM_PRESERVE: u32 = 4459;
const MODE_SIGNED_ZERO_INF_NAN_PRESERVE: u32 = 4461;
const HEADER_WORDS: usize = 5;

/// Compiles a compute shader whose entry point is `main`.
pub fn compile(wgsl: &str) -> Result<Vec<u32>, Error> {
    let module = naga::front::wgsl::parse_str(wgsl)
        .map_err(|e| Error::Compile(format!("{}\n{wgsl}", e.emit_to_string(wgsl))))?;
    let caps = naga::valid::Capabilities::FLOAT64 | naga::valid::Capabilities::SHADER_INT64;
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
        .validate(&module)
        .map_err(|e| Error::Compile(format!("{}\n{wgsl}", e.emit_to_string(wgsl))))?;
    let restrict = naga::proc::BoundsCheckPolicy::Restrict;
    let options = naga::back::spv::Options {
        lang_version: (1, 3),
        bounds_check_policies: naga::proc::BoundsCheckPolicies {
            index: restrict,
            buffer: restrict,
            image_load: restrict,
            binding_array: restrict,
        },
        ..Default::default()
    };
    let pipeline = naga::back::spv::PipelineOptions {
        shader_stage: naga::ShaderStage::Compute,
        entry_point: "main".into(),
    };
    let words = naga::back::spv::write_vec(&module, &info, &options, Some(&pipeline))
        .map_err(|e| Error::Compile(format!("{e}\n{wgsl}")))?;
    strict_floats(&words)
}

/// One instruction: its opcode and all its words.
fn instructions(words: &[u32]) -> Result<Vec<&[u32]>, Error> {
    let mut out = Vec::new();
    let mut at = HEADER_WORDS;
    while at < words.len() {
        let count = (words[at] >> 16) as usize;
        if count == 0 || at + count > words.len() {
            return Err(Error::Compile(format!(
                "malformed SPIR-V at word {at} (count {count})"
            )));
        }
        out.push(&words[at..at + count]);
        at += count;
    }
    Ok(out)
}

fn opcode(ins: &[u32]) -> u32 {
    ins[0] & 0xffff
}

fn push(out: &mut Vec<u32>, op: u32, operands: &[u32]) {
    out.push(((operands.len() as u32 + 1) << 16) | op);
    out.extend_from_slice(operands);
}

/// A literal string operand: UTF-8, NUL-terminated, padded to whole words.
fn string_words(s: &str) -> Vec<u32> {
    let mut bytes = s.as_bytes().to_vec();
    bytes.push(0);
    while !bytes.len().is_multiple_of(4) {
        bytes.push(0);
    }
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The module with the float-controls capability, extension and execution
/// modes, and `NoContraction` on every float arithmetic result.
pub fn strict_floats(words: &[u32]) -> Result<Vec<u32>, Error> {
    if words.len() < HEADER_WORDS {
        return Err(Error::Compile("SPIR-V shorter than its header".into()));
    }
    let ins = instructions(words)?;
    let entry = ins
        .iter()
        .find(|i| opcode(i) == OP_ENTRY_POINT && i.len() > 2)
        .map(|i| i[2])
        .ok_or_else(|| Error::Compile("SPIR-V without an entry point".into()))?;
    let exact: Vec<u32> = ins
        .iter()
        .filter(|i| {
            let arithmetic = matches!(
                opcode(i),
                OP_FNEGATE | OP_FADD | OP_FSUB | OP_FMUL | OP_FDIV
            ) && i.len() > 2;
            // A decorated `fma` is one fused operation, never a multiply and an add.
            let fma = opcode(i) == OP_EXT_INST && i.len() > 4 && i[4] == GLSL_FMA;
            arithmetic || fma
        })
        .map(|i| i[2])
        .collect();
    let mut out = words[..HEADER_WORDS].to_vec();
    let (mut capabilities_done, mut modes_done, mut decorations_done) = (false, false, false);
    for (k, i) in ins.iter().enumerate() {
        let op = opcode(i);
        if !capabilities_done && op != OP_CAPABILITY {
            for capability in [
                CAPABILITY_DENORM_PRESERVE,
                CAPABILITY_SIGNED_ZERO_INF_NAN_PRESERVE,
            ] {
                push(&mut out, OP_CAPABILITY, &[capability]);
            }
            push(
                &mut out,
                OP_EXTENSION,
                &string_words("SPV_KHR_float_controls"),
            );
            capabilities_done = true;
        }
        if !decorations_done && (op == OP_DECORATE || op == OP_MEMBER_DECORATE) {
            for &id in &exact {
                push(&mut out, OP_DECORATE, &[id, DECORATION_NO_CONTRACTION]);
            }
            decorations_done = true;
        }
        out.extend_from_slice(i);
        // The execution modes follow the entry points and existing modes.
        let next = ins.get(k + 1).map(|n| opcode(n));
        if !modes_done
            && (op == OP_ENTRY_POINT || op == OP_EXECUTION_MODE)
            && !matches!(next, Some(OP_ENTRY_POINT | OP_EXECUTION_MODE))
        {
            for mode in [MODE_DENORM_PRESERVE, MODE_SIGNED_ZERO_INF_NAN_PRESERVE] {
                for width in [32, 64] {
                    push(&mut out, OP_EXECUTION_MODE, &[entry, mode, width]);
                }
            }
            modes_done = true;
        }
    }
    if !(modes_done && decorations_done) {
        return Err(Error::Compile(
            "SPIR-V without execution modes or decorations to extend".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHADER: &str = "@group(0) @binding(0) var<storage, read_write> out: array<f64>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let x = out[gid.x];
    out[gid.x] = x * x + (x - x);
}
";

    #[test]
    fn float_arithmetic_is_marked_exact_and_the_entry_point_preserves_nan() {
        let words = compile(SHADER).expect("compiles");
        let ins = instructions(&words).expect("parses");
        let count = |op: u32, pred: &dyn Fn(&[u32]) -> bool| {
            ins.iter().filter(|i| opcode(i) == op && pred(i)).count()
        };
        let arithmetic =
            count(OP_FMUL, &|_| true) + count(OP_FADD, &|_| true) + count(OP_FSUB, &|_| true);
        assert_eq!(arithmetic, 3);
        assert_eq!(
            count(OP_DECORATE, &|i| i.get(2)
                == Some(&DECORATION_NO_CONTRACTION)),
            arithmetic
        );
        assert_eq!(
            count(OP_EXECUTION_MODE, &|i| i.get(2)
                == Some(&MODE_SIGNED_ZERO_INF_NAN_PRESERVE)),
            2
        );
        assert_eq!(
            count(OP_EXECUTION_MODE, &|i| i.get(2)
                == Some(&MODE_DENORM_PRESERVE)),
            2
        );
        for capability in [
            CAPABILITY_DENORM_PRESERVE,
            CAPABILITY_SIGNED_ZERO_INF_NAN_PRESERVE,
        ] {
            assert_eq!(count(OP_CAPABILITY, &|i| i[1] == capability), 1);
        }
        assert_eq!(string_words("ab"), vec![u32::from_le_bytes(*b"ab\0\0")]);
    }

    #[test]
    fn bad_wgsl_is_a_compile_error_with_the_source() {
        let e = compile("fn main( {").expect_err("refused");
        assert!(
            matches!(e, Error::Compile(ref m) if m.contains("fn main( {")),
            "{e}"
        );
    }
}
