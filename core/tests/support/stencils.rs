//! Stencil kernels built by hand (explicit diffusion, every boundary rule,
//! one to three axes, one to three fused steps) and chunks of arrays at
//! corners, edges and inside, for the tests that hold a stencil's device
//! plan against the CPU's run.
#![allow(dead_code, clippy::expect_used)]

use std::sync::Arc;

use accel_core::buffer::Buffer;
use accel_core::dtype::{DType, Value};
use accel_core::kernel::Executable;
use accel_core::kernel::ir::{InputSpec, Instr, ProgramBuilder};
use accel_core::op::{BinaryOp, Boundary};
use accel_core::stencil::{DevicePlan, Keep, Level, Piece, Read, StencilKernel, device_plan};

/// `steps` explicit diffusion steps of one f64 field: each level reads the
/// previous field at its centre and one cell either way per axis (and keeps
/// `Fixed` edges).
pub fn diffusion(nd: usize, boundary: Boundary, steps: usize) -> StencilKernel {
    let mut levels = Vec::new();
    for j in 0..steps {
        let field = j as u32; // the input, then each level in turn
        let mut b = ProgramBuilder::new();
        let mut reads = Vec::new();
        let mut load = |b: &mut ProgramBuilder, offset: Vec<i64>| {
            reads.push(Read { field, offset });
            b.input(InputSpec {
                dtype: DType::F64,
                shape: vec![1; nd],
            })
        };
        let c = load(&mut b, vec![0; nd]);
        let mut sum = b.push(Instr::Const(Value::F64(0.0)), DType::F64);
        for d in 0..nd {
            for s in [-1i64, 1] {
                let mut o = vec![0; nd];
                o[d] = s;
                let x = load(&mut b, o);
                sum = b.push(Instr::Binary(BinaryOp::Add, sum, x), DType::F64);
            }
        }
        let w = b.push(Instr::Const(Value::F64(2.0 * nd as f64)), DType::F64);
        let wc = b.push(Instr::Binary(BinaryOp::Mul, w, c), DType::F64);
        let lap = b.push(Instr::Binary(BinaryOp::Sub, sum, wc), DType::F64);
        let k = b.push(Instr::Const(Value::F64(0.1)), DType::F64);
        let step = b.push(Instr::Binary(BinaryOp::Mul, k, lap), DType::F64);
        let root = b.push(Instr::Binary(BinaryOp::Add, c, step), DType::F64);
        levels.push(Level {
            exe: Arc::new(Executable::new(b.finish(root, vec![1; nd]))),
            radius: vec![steps - 1 - j; nd],
            reads,
            keep: (boundary == Boundary::Fixed).then(|| Keep {
                field,
                depth: vec![1; nd],
            }),
        });
    }
    StencilKernel {
        boundary: vec![boundary; nd],
        halo: vec![steps; nd],
        inputs: vec![vec![steps; nd]],
        levels,
    }
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
        }]]
    }

    pub fn plan(&self) -> DevicePlan {
        device_plan(
            &self.kernel,
            &self.shape,
            &self.origin,
            &self.local,
            &self.pieces(),
            &[DType::F64],
        )
        .expect("plans")
        .expect("small enough")
    }
}

/// Every boundary rule, one to three fused steps, one to three axes, chunks
/// at the array's corners, edges and inside, halos wider than the array.
pub fn cases() -> Vec<Case> {
    let rules = [
        Boundary::Fixed,
        Boundary::Periodic,
        Boundary::Reflect,
        Boundary::Nearest,
        Boundary::Constant(-2.5),
    ];
    let chunks: [(&[usize], &[usize], &[usize]); 7] = [
        (&[40], &[0], &[13]),
        (&[40], &[27], &[13]),
        (&[30, 20], &[0, 0], &[10, 20]),
        (&[30, 20], &[10, 7], &[10, 7]),
        (&[30, 20], &[20, 13], &[10, 7]),
        (&[4, 3], &[0, 0], &[4, 3]),
        (&[9, 8, 7], &[3, 0, 4], &[3, 8, 3]),
    ];
    let mut out = Vec::new();
    for rule in rules {
        for steps in 1..=3 {
            for (shape, origin, local) in chunks {
                let n: usize = shape.iter().product();
                out.push(Case {
                    what: format!("{rule:?} {steps} steps {shape:?} {origin:?}+{local:?}"),
                    kernel: diffusion(shape.len(), rule, steps),
                    shape: shape.to_vec(),
                    origin: origin.to_vec(),
                    local: local.to_vec(),
                    data: Buffer::F64(
                        (0..n)
                            .map(|i| ((i as f64) * 0.731).sin() * 10.0 + i as f64 * 0.01)
                            .collect(),
                    ),
                });
            }
        }
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
