//! Stencil kernels built by hand (explicit diffusion, every boundary rule,
//! one to three axes, one to three fused steps) and chunks of arrays at
//! corners, edges and inside, for the tests that hold a stencil's device
//! plan against the CPU's run.
#![allow(dead_code, clippy::expect_used)]

use std::sync::Arc;

use accel_core::buffer::{Buffer, Chunk as ArrayChunk};
use accel_core::dtype::{DType, Value};
use accel_core::kernel::Executable;
use accel_core::kernel::ir::{InputSpec, Instr, ProgramBuilder};
use accel_core::op::{BinaryOp, Boundary};
use accel_core::stencil::{DevicePlan, Keep, Level, Piece, Read, StencilKernel, device_plan};

/// One level's program: reads of `fields` at offsets (in program-input
/// order), combined by `body` over their registers.
fn level(
    nd: usize,
    dtype: DType,
    reads: Vec<Read>,
    radius: usize,
    keep: Option<Keep>,
    body: impl FnOnce(&mut ProgramBuilder, &[u32]) -> u32,
) -> Level {
    let mut b = ProgramBuilder::new();
    let regs: Vec<u32> = reads
        .iter()
        .map(|_| {
            b.input(InputSpec {
                dtype,
                shape: vec![1; nd],
            })
        })
        .collect();
    let root = body(&mut b, &regs);
    Level {
        exe: Arc::new(Executable::new(b.finish(root, vec![1; nd]))),
        radius: vec![radius; nd],
        reads,
        keep,
    }
}

/// Reads of `field` at its centre, then one cell either way per axis.
fn cross(nd: usize, field: u32) -> Vec<Read> {
    let mut reads = vec![Read {
        field,
        offset: vec![0; nd],
    }];
    for d in 0..nd {
        for s in [-1i64, 1] {
            let mut offset = vec![0; nd];
            offset[d] = s;
            reads.push(Read { field, offset });
        }
    }
    reads
}

fn sum(b: &mut ProgramBuilder, dtype: DType, regs: &[u32]) -> u32 {
    let mut acc = regs[0];
    for &r in &regs[1..] {
        acc = b.push(Instr::Binary(BinaryOp::Add, acc, r), dtype);
    }
    acc
}

fn constant(b: &mut ProgramBuilder, v: f64) -> u32 {
    b.push(Instr::Const(Value::F64(v)), DType::F64)
}

/// `c + 0.1 (Σ neighbours - 2 nd c)`: one explicit diffusion step.
fn diffusion_step(b: &mut ProgramBuilder, nd: usize, cross: &[u32]) -> u32 {
    let c = cross[0];
    let s = sum(b, DType::F64, &cross[1..]);
    let w = constant(b, 2.0 * nd as f64);
    let wc = b.push(Instr::Binary(BinaryOp::Mul, w, c), DType::F64);
    let lap = b.push(Instr::Binary(BinaryOp::Sub, s, wc), DType::F64);
    let k = constant(b, 0.1);
    let step = b.push(Instr::Binary(BinaryOp::Mul, k, lap), DType::F64);
    b.push(Instr::Binary(BinaryOp::Add, c, step), DType::F64)
}

fn keeps(boundary: Boundary, nd: usize, field: u32) -> Option<Keep> {
    (boundary == Boundary::Fixed).then(|| Keep {
        field,
        depth: vec![1; nd],
    })
}

fn kernel(nd: usize, boundary: Boundary, steps: usize, levels: Vec<Level>) -> StencilKernel {
    StencilKernel {
        boundary: vec![boundary; nd],
        halo: vec![steps; nd],
        inputs: vec![vec![steps; nd]],
        levels,
    }
}

/// `steps` explicit diffusion steps of one f64 field: each level reads the
/// previous field at its centre and one cell either way per axis (and keeps
/// `Fixed` edges).
pub fn diffusion(nd: usize, boundary: Boundary, steps: usize) -> StencilKernel {
    let levels = (0..steps)
        .map(|j| {
            let field = j as u32; // the input, then each level in turn
            level(
                nd,
                DType::F64,
                cross(nd, field),
                steps - 1 - j,
                keeps(boundary, nd, field),
                |b, r| diffusion_step(b, nd, r),
            )
        })
        .collect();
    kernel(nd, boundary, steps, levels)
}

/// A wave: `u₁` a diffusion step of `u₀`, then `u_{j+1} = 2 u_j - u_{j-1} +
/// 0.1 Δu_j`: each level reads the two fields before it, so three are live.
pub fn wave(nd: usize, boundary: Boundary, steps: usize) -> StencilKernel {
    let levels = (0..steps)
        .map(|j| {
            let field = j as u32;
            let radius = steps - 1 - j;
            let keep = keeps(boundary, nd, field);
            if j == 0 {
                return level(nd, DType::F64, cross(nd, 0), radius, keep, |b, r| {
                    diffusion_step(b, nd, r)
                });
            }
            let mut reads = cross(nd, field);
            reads.push(Read {
                field: field - 1,
                offset: vec![0; nd],
            });
            level(nd, DType::F64, reads, radius, keep, |b, r| {
                let (cross, before) = (&r[..r.len() - 1], r[r.len() - 1]);
                let next = diffusion_step(b, nd, cross);
                let two = b.push(Instr::Binary(BinaryOp::Add, cross[0], cross[0]), DType::F64);
                let back = b.push(Instr::Binary(BinaryOp::Sub, two, before), DType::F64);
                let moved = b.push(Instr::Binary(BinaryOp::Sub, next, cross[0]), DType::F64);
                b.push(Instr::Binary(BinaryOp::Add, back, moved), DType::F64)
            })
        })
        .collect();
    kernel(nd, boundary, steps, levels)
}

/// `steps` sums of each 32-bit integer cell and its neighbours (wrapping):
/// kept, copied and constant ghost cells of one-word elements.
pub fn integer_sums(nd: usize, boundary: Boundary, steps: usize) -> StencilKernel {
    let levels = (0..steps)
        .map(|j| {
            let field = j as u32;
            level(
                nd,
                DType::I32,
                cross(nd, field),
                steps - 1 - j,
                keeps(boundary, nd, field),
                |b, r| sum(b, DType::I32, r),
            )
        })
        .collect();
    kernel(nd, boundary, steps, levels)
}

/// One stencil task: a kernel over the chunk (`origin`, `local`) of an
/// array of `shape` whose values are `data`.
pub struct Case {
    pub what: String,
    pub kernel: StencilKernel,
    pub shape: Vec<usize>,
    pub origin: Vec<usize>,
    pub local: Vec<usize>,
    pub data: Buffer,
}

impl Case {
    /// The whole array as the task's one piece of its one input.
    pub fn pieces(&self) -> Vec<Vec<Piece<'_>>> {
        vec![vec![Piece {
            lo: vec![0; self.shape.len()],
            shape: self.shape.clone(),
            data: &self.data,
            chunk: None,
        }]]
    }

    pub fn dtypes(&self) -> [DType; 1] {
        [self.data.dtype()]
    }

    pub fn plan(&self) -> DevicePlan {
        self.plan_of(&self.pieces())
    }

    /// The array cut into chunks of at most `block` cells per axis, as a
    /// worker holds it: each chunk where it lies, and its data.
    pub fn blocks(&self, block: &[usize]) -> Vec<(Vec<usize>, Arc<ArrayChunk>)> {
        let nd = self.shape.len();
        let counts: Vec<usize> = (0..nd)
            .map(|d| self.shape[d].div_ceil(block[d]).max(1))
            .collect();
        let strides = accel_core::shape::strides(&self.shape);
        let mut pick = vec![0usize; nd];
        let mut out = Vec::new();
        loop {
            let lo: Vec<usize> = (0..nd).map(|d| pick[d] * block[d]).collect();
            let ext: Vec<usize> = (0..nd)
                .map(|d| block[d].min(self.shape[d].saturating_sub(lo[d])))
                .collect();
            let mut idx = Vec::new();
            let mut at = vec![0usize; nd];
            if !ext.contains(&0) {
                loop {
                    idx.push((0..nd).map(|d| (lo[d] + at[d]) * strides[d]).sum());
                    if !accel_core::shape::next_index(&mut at, &ext) {
                        break;
                    }
                }
            }
            let data = self.data.gather(&idx);
            out.push((lo, Arc::new(ArrayChunk::array(ext, data))));
            if !accel_core::shape::next_index(&mut pick, &counts) {
                return out;
            }
        }
    }

    /// The task's one input as the pieces `blocks` (each its chunk's data).
    pub fn pieces_of(blocks: &[(Vec<usize>, Arc<ArrayChunk>)]) -> Vec<Vec<Piece<'_>>> {
        vec![
            blocks
                .iter()
                .map(|(lo, c)| Piece {
                    lo: lo.clone(),
                    shape: c.shape.clone(),
                    data: c.data().expect("host chunk"),
                    chunk: Some(c),
                })
                .collect(),
        ]
    }

    pub fn plan_of(&self, pieces: &[Vec<Piece<'_>>]) -> DevicePlan {
        device_plan(
            &self.kernel,
            &self.shape,
            &self.origin,
            &self.local,
            pieces,
            &self.dtypes(),
        )
        .expect("plans")
        .expect("small enough")
    }
}

/// Smooth f64 values over an array of `n` cells.
fn smooth(n: usize) -> Buffer {
    Buffer::F64(
        (0..n)
            .map(|i| ((i as f64) * 0.731).sin() * 10.0 + i as f64 * 0.01)
            .collect(),
    )
}

fn case(kernel: StencilKernel, (shape, origin, local): Chunk<'_>, data: Buffer) -> Case {
    Case {
        what: format!(
            "{:?} {} levels {shape:?} {origin:?}+{local:?}",
            kernel.boundary[0],
            kernel.levels.len()
        ),
        kernel,
        shape: shape.to_vec(),
        origin: origin.to_vec(),
        local: local.to_vec(),
        data,
    }
}

type Chunk<'a> = (&'a [usize], &'a [usize], &'a [usize]);

/// Every boundary rule; diffusion over one to three fused steps and one to
/// three axes, at the array's corners, edges and inside, halos wider than
/// the array; waves (three live fields); integer sums (one-word moves and
/// fills); a chunk the CPU computes in row bands, and one whose deep levels
/// it computes on trimmed rows.
pub fn cases() -> Vec<Case> {
    let rules = [
        Boundary::Fixed,
        Boundary::Periodic,
        Boundary::Reflect,
        Boundary::Nearest,
        Boundary::Constant(-2.5),
    ];
    let chunks: [Chunk<'_>; 7] = [
        (&[40], &[0], &[13]),
        (&[40], &[27], &[13]),
        (&[30, 20], &[0, 0], &[10, 20]),
        (&[30, 20], &[10, 7], &[10, 7]),
        (&[30, 20], &[20, 13], &[10, 7]),
        (&[4, 3], &[0, 0], &[4, 3]),
        (&[9, 8, 7], &[3, 0, 4], &[3, 8, 3]),
    ];
    let size = |c: Chunk<'_>| c.0.iter().product::<usize>();
    let mut out = Vec::new();
    for rule in rules {
        for steps in 1..=3 {
            for c in chunks {
                out.push(case(diffusion(c.0.len(), rule, steps), c, smooth(size(c))));
            }
        }
        for c in [chunks[0], chunks[3], chunks[4], chunks[6]] {
            out.push(case(wave(c.0.len(), rule, 3), c, smooth(size(c))));
            let ints = Buffer::I32((0..size(c)).map(|i| (i % 11) as i32 - 5).collect());
            out.push(case(integer_sums(c.0.len(), rule, 2), c, ints));
        }
    }
    for rule in [Boundary::Fixed, Boundary::Reflect] {
        let banded: Chunk<'_> = (&[300, 1200], &[100, 0], &[100, 1200]);
        out.push(case(diffusion(2, rule, 2), banded, smooth(size(banded))));
        let trimmed: Chunk<'_> = (&[60, 80], &[20, 20], &[20, 40]);
        out.push(case(diffusion(2, rule, 10), trimmed, smooth(size(trimmed))));
    }
    out
}

/// Whether two buffers hold the same bits.
pub fn same_bits(a: &Buffer, b: &Buffer) -> bool {
    match (a, b) {
        (Buffer::F64(x), Buffer::F64(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
        }
        _ => a == b,
    }
}
