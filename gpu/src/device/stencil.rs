//! A stencil task on the GPU: the steps of its [`DevicePlan`] recorded in
//! one command buffer, each a compute pass (so each sees the previous
//! ones' writes), over slots that stay in device memory; the stage inputs
//! go up before, and only the result slot comes back.

use std::sync::Arc;

use accel_core::buffer::Buffer;
use accel_core::dtype::{DType, Value};
use accel_core::shape;
use accel_core::stencil::{DevicePlan, DeviceStep};
use wgpu::BufferUsages as U;

use super::{Gpu, Pipeline, download, meta_words, upload_bytes};
use crate::wgsl::{self, Access, MAX_GROUPS_X, WORKGROUP};
use crate::{Error, Result};

/// The move shaders, by what they do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Moves {
    /// `out[dst] = in1[src]` between two slots.
    Across,
    /// `out[dst] = out[src]` within one slot.
    Within,
    /// `out[dst] = the value in dims`.
    Fill,
}

impl Moves {
    /// The shader: `dims` holds the count, the words per element and (a
    /// fill) the value's words; `in0` the positions, `[src, dst]` pairs or
    /// `dst` alone. Elements are moved as words, whatever their dtype.
    fn source(self) -> String {
        let (bindings, step, value) = match self {
            Moves::Across => (
                "@group(0) @binding(2) var<storage, read> in1: array<u32>;\n@group(0) @binding(3) var<storage, read_write> out: array<u32>;",
                2,
                "in1[in0[2u * t] * w + k]",
            ),
            Moves::Within => (
                "@group(0) @binding(2) var<storage, read_write> out: array<u32>;",
                2,
                "out[in0[2u * t] * w + k]",
            ),
            Moves::Fill => (
                "@group(0) @binding(2) var<storage, read_write> out: array<u32>;",
                1,
                "dims[2u + k]",
            ),
        };
        format!(
            "@group(0) @binding(0) var<storage, read> dims: array<u32>;
@group(0) @binding(1) var<storage, read> in0: array<u32>;
{bindings}
@compute @workgroup_size({WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {{
    let t = gid.x + gid.y * groups.x * {WORKGROUP}u;
    if (t >= dims[0]) {{
        return;
    }}
    let w = dims[1];
    let d = in0[{step}u * t + {last}u] * w;
    for (var k: u32 = 0u; k < w; k = k + 1u) {{
        out[d + k] = {value};
    }}
}}
",
            last = step - 1
        )
    }

    /// Its input bindings (after `dims`), as [`Gpu::compile`] counts them.
    fn inputs(self) -> u32 {
        match self {
            Moves::Across => 2,
            Moves::Within | Moves::Fill => 1,
        }
    }
}

/// 32-bit words per element in a storage buffer (booleans take one).
fn words(d: DType) -> u32 {
    (d.size().max(4) / 4) as u32
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

/// A step ready to record: its pipeline, `dims` words, bindings (slot
/// numbers or the step's own index buffer) and invocations.
struct Recorded {
    pipe: Arc<Pipeline>,
    meta: Vec<u32>,
    /// Positions for a move step, uploaded into the binding after `dims`.
    index: Option<Vec<u32>>,
    slots: Vec<u32>,
    invocations: u32,
    /// Whether the status word is bound last.
    status: bool,
}

impl Gpu {
    /// Runs `plan` on this device: the result slot's contents. Declines
    /// (`Unsupported`, `TooLarge`, `SpecialValues`) before or after the
    /// fact exactly as [`Gpu::run_map`] does.
    pub fn run_stencil(&self, plan: &DevicePlan) -> Result<Buffer> {
        let len = u32::try_from(plan.len).map_err(|_| Error::TooLarge(plan.len as u64))?;
        let slot_bytes = |d: DType| plan.len as u64 * u64::from(words(d)) * 4;
        if let Some(b) = plan.slots.iter().map(|&d| slot_bytes(d)).max()
            && b > self.max_binding
        {
            return Err(Error::TooLarge(b));
        }
        let steps = plan
            .steps
            .iter()
            .map(|s| self.record(plan, s, len))
            .collect::<Result<Vec<_>>>()?;
        let take =
            |bytes: u64, usage: U| self.pool.take(&self.device, bytes, usage, self.max_buffer);
        let slots: Vec<wgpu::Buffer> = plan
            .slots
            .iter()
            .map(|&d| take(slot_bytes(d), U::STORAGE | U::COPY_DST | U::COPY_SRC))
            .collect();
        let status = take(4, U::STORAGE | U::COPY_SRC | U::COPY_DST);
        self.queue.write_buffer(&status, 0, &[0u8; 4]);
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        for (s, slot) in slots.iter().enumerate() {
            match plan.uploads.iter().find(|(u, _)| *u as usize == s) {
                Some((_, data)) => self.queue.write_buffer(slot, 0, &upload_bytes(data)),
                // Cells no step writes read as zeros, not as another task's.
                None => enc.clear_buffer(slot, 0, None),
            }
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let mut scratch = Vec::new();
        for step in &steps {
            let meta = take(4 * step.meta.len() as u64, U::STORAGE | U::COPY_DST);
            self.queue
                .write_buffer(&meta, 0, bytemuck::cast_slice(&step.meta));
            let mut bound: Vec<(&wgpu::Buffer, u64)> = vec![(&meta, 4 * step.meta.len() as u64)];
            let index = step.index.as_ref().map(|at| {
                let b = take(4 * at.len() as u64, U::STORAGE | U::COPY_DST);
                self.queue.write_buffer(&b, 0, bytemuck::cast_slice(at));
                (b, 4 * at.len() as u64)
            });
            if let Some((b, bytes)) = &index {
                bound.push((b, *bytes));
            }
            for &s in &step.slots {
                let d = plan.slots[s as usize];
                bound.push((&slots[s as usize], slot_bytes(d)));
            }
            if step.status {
                bound.push((&status, 4));
            }
            let entries: Vec<wgpu::BindGroupEntry<'_>> = bound
                .iter()
                .enumerate()
                .map(|(k, (b, bytes))| wgpu::BindGroupEntry {
                    binding: k as u32,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: b,
                        offset: 0,
                        size: std::num::NonZeroU64::new((*bytes).max(4)),
                    }),
                })
                .collect();
            let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &step.pipe.layout,
                entries: &entries,
            });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                pass.set_pipeline(&step.pipe.pipeline);
                pass.set_bind_group(0, &group, &[]);
                let groups = step.invocations.div_ceil(WORKGROUP);
                let (gx, gy) = if groups <= MAX_GROUPS_X {
                    (groups, 1)
                } else {
                    (MAX_GROUPS_X, groups.div_ceil(MAX_GROUPS_X))
                };
                pass.dispatch_workgroups(gx, gy, 1);
            }
            scratch.push(meta);
            scratch.extend(index.map(|(b, _)| b));
        }
        let dtype = plan.dtype();
        let out_bytes = slot_bytes(dtype);
        let readback = take(out_bytes + 4, U::MAP_READ | U::COPY_DST);
        let result = slots
            .get(plan.result as usize)
            .ok_or_else(|| Error::Layout("a stencil's result beyond its slots".into()))?;
        enc.copy_buffer_to_buffer(result, 0, &readback, 0, out_bytes);
        enc.copy_buffer_to_buffer(&status, 0, &readback, out_bytes, 4);
        let (data, special) =
            self.submit_and_read(enc, [scope, oom], &readback, out_bytes + 4, |view| {
                let special = view
                    .get(out_bytes as usize..out_bytes as usize + 4)
                    .map_or(0, |w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
                (download(dtype, view, plan.len), special)
            })?;
        let kernels = steps.len() as u64;
        self.pool
            .give(slots.into_iter().chain(scratch).chain([status, readback]));
        if special > 0 {
            return Err(Error::SpecialValues(special));
        }
        self.counters
            .kernels
            .fetch_add(kernels, std::sync::atomic::Ordering::Relaxed);
        Ok(data)
    }

    /// What recording `step` takes; refuses a level the GPU has no form for
    /// before anything is uploaded.
    fn record(&self, plan: &DevicePlan, step: &DeviceStep, len: u32) -> Result<Recorded> {
        let slot_dtype = |s: u32| {
            plan.slots
                .get(s as usize)
                .copied()
                .ok_or_else(|| Error::Layout("a stencil step on a slot beyond its plan".into()))
        };
        let within = |at: u32| {
            if at < len {
                Ok(at)
            } else {
                Err(Error::Layout("a stencil move outside its slot".into()))
            }
        };
        Ok(match step {
            DeviceStep::Map {
                exe,
                origin,
                shape: box_shape,
                reads,
                out: (out, at),
            } => {
                let program = &exe.program;
                let access = vec![Access::Window; program.inputs.len()];
                let pipe = self.pipeline(program, &access, None)?;
                let n = shape::size(box_shape);
                let n32 = u32::try_from(n).map_err(|_| Error::TooLarge(n as u64))?;
                if reads
                    .iter()
                    .map(|r| r.1)
                    .chain([*at])
                    .any(|a| a + n > plan.len)
                {
                    return Err(Error::Layout("a stencil window outside its slot".into()));
                }
                let mut meta = meta_words(program, &pipe.shader, n32, origin, box_shape, &[]);
                meta.push(*at as u32);
                meta.extend(reads.iter().map(|r| r.1 as u32));
                let mut slots: Vec<u32> = reads.iter().map(|r| r.0).collect();
                slots.push(*out);
                for (k, &s) in slots.iter().enumerate() {
                    let want = match program.inputs.get(k) {
                        Some(spec) => spec.dtype,
                        None => plan_root(program)?,
                    };
                    if slot_dtype(s)? != want {
                        return Err(Error::Layout(
                            "a stencil level reads a slot of another dtype".into(),
                        ));
                    }
                }
                Recorded {
                    status: pipe.shader.flags,
                    pipe,
                    meta,
                    index: None,
                    slots,
                    invocations: n32,
                }
            }
            DeviceStep::Copy { from, to, pairs } => {
                let d = slot_dtype(*to)?;
                if slot_dtype(*from)? != d {
                    return Err(Error::Layout("a stencil move between dtypes".into()));
                }
                let kind = if from == to {
                    Moves::Within
                } else {
                    Moves::Across
                };
                let index = pairs
                    .iter()
                    .flat_map(|p| [within(p[0]), within(p[1])])
                    .collect::<Result<Vec<u32>>>()?;
                let slots = if from == to {
                    vec![*to]
                } else {
                    vec![*from, *to]
                };
                self.moves(kind, vec![pairs.len() as u32, words(d)], index, slots)?
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
                self.moves(Moves::Fill, meta, index, vec![*slot])?
            }
        })
    }

    fn moves(
        &self,
        kind: Moves,
        meta: Vec<u32>,
        index: Vec<u32>,
        slots: Vec<u32>,
    ) -> Result<Recorded> {
        let pipe = self.compile(wgsl::Shader::fixed(kind.source(), 1), kind.inputs())?;
        Ok(Recorded {
            pipe,
            invocations: meta[0],
            meta,
            index: Some(index),
            slots,
            status: false,
        })
    }
}

fn plan_root(program: &accel_core::kernel::Program) -> Result<DType> {
    program
        .dtypes
        .get(program.root as usize)
        .copied()
        .ok_or_else(|| Error::Layout("a kernel without its result register".into()))
}
