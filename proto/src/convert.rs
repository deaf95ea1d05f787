//! Conversions between core types and their wire form. Decoding checks
//! structure here and semantics with `Plan::validate`, so whatever arrives is
//! either a valid plan or an error.

use std::sync::Arc;

use accel_core::blocks::BlockCall;
use accel_core::dtype::{DType, Value};
use accel_core::kernel::ir::{InputSpec, LoopInstr};
use accel_core::kernel::{Executable, Instr, Program};
use accel_core::op::{
    BinaryOp, Boundary, GenKind, HostArray, InAxis, Meta, ReduceOp, ReduceSpec, Remap, UnaryOp,
};
use accel_core::plan::{Finalize, Plan, RemoteSource, ScanPhase, Stage, StageId, StageKind};
use accel_core::stencil::{Keep, Level, Read, StencilKernel};
use accel_core::storage::npy::NpyLayout;
use accel_core::storage::zarr::ZarrLayout;
use accel_core::storage::{Format, Sink, Stored};
use accel_core::{Buffer, Chunk, ChunkKey, Chunks};
use num_complex::Complex64;

use crate::{Error, pb};

fn malformed(msg: impl Into<String>) -> Error {
    Error::Malformed(msg.into())
}

fn usize_of(v: u64) -> Result<usize, Error> {
    usize::try_from(v).map_err(|_| malformed(format!("{v} does not fit in usize")))
}

fn dims(v: &[u64]) -> Result<Vec<usize>, Error> {
    v.iter().map(|&x| usize_of(x)).collect()
}

fn u64s(v: &[usize]) -> Vec<u64> {
    v.iter().map(|&x| x as u64).collect()
}

pub fn dtype_to(d: DType) -> pb::DType {
    match d {
        DType::Bool => pb::DType::Bool,
        DType::I32 => pb::DType::I32,
        DType::I64 => pb::DType::I64,
        DType::F32 => pb::DType::F32,
        DType::F64 => pb::DType::F64,
        DType::C128 => pb::DType::C128,
    }
}

pub fn dtype_from(d: i32) -> Result<DType, Error> {
    Ok(
        match pb::DType::try_from(d).map_err(|_| malformed(format!("unknown dtype {d}")))? {
            pb::DType::Bool => DType::Bool,
            pb::DType::I32 => DType::I32,
            pb::DType::I64 => DType::I64,
            pb::DType::F32 => DType::F32,
            pb::DType::F64 => DType::F64,
            pb::DType::C128 => DType::C128,
        },
    )
}

fn value_to(v: Value) -> pb::Value {
    use pb::value::V;
    let v = match v {
        Value::Bool(b) => V::B(b),
        Value::I32(x) => V::I32(x),
        Value::I64(x) => V::I64(x),
        Value::F32(x) => V::F32(x),
        Value::F64(x) => V::F64(x),
        Value::C128(c) => V::C128(pb::Complex { re: c.re, im: c.im }),
    };
    pb::Value { v: Some(v) }
}

fn value_from(v: Option<pb::Value>) -> Result<Value, Error> {
    use pb::value::V;
    Ok(
        match v
            .and_then(|v| v.v)
            .ok_or_else(|| malformed("missing value"))?
        {
            V::B(b) => Value::Bool(b),
            V::I32(x) => Value::I32(x),
            V::I64(x) => Value::I64(x),
            V::F32(x) => Value::F32(x),
            V::F64(x) => Value::F64(x),
            V::C128(c) => Value::C128(Complex64::new(c.re, c.im)),
        },
    )
}

fn axis_to(sizes: &[usize]) -> pb::Axis {
    let mut axis = pb::Axis::default();
    for &s in sizes {
        match (axis.sizes.last(), axis.counts.last_mut()) {
            (Some(&last), Some(count)) if last == s as u64 => *count += 1,
            _ => {
                axis.sizes.push(s as u64);
                axis.counts.push(1);
            }
        }
    }
    axis
}

/// Bounds what a peer can make this process allocate for one chunk grid.
const MAX_CHUNKS_PER_AXIS: u64 = 1 << 26;

/// Bounds the tasks of one plan, and so the state a scheduler keeps for it.
pub const MAX_TASKS: u64 = 1 << 24;

/// Bounds the chunk sizes one plan's grids hold in all: a run of 2²⁶ chunks
/// is a few bytes on the wire and 512 MiB decoded, so the runs of every
/// grid are added up before any is expanded. Four axes' worth of the
/// largest plan's tasks.
pub const MAX_GRID_ENTRIES: u64 = 4 * MAX_TASKS;

/// Bounds the stages of one plan (each has at least a meta and a kind).
pub const MAX_STAGES: usize = 1 << 20;

fn axis_from(a: &pb::Axis) -> Result<Vec<usize>, Error> {
    if a.sizes.len() != a.counts.len() {
        return Err(malformed("chunk runs and counts differ in length"));
    }
    let total: u64 = a
        .counts
        .iter()
        .try_fold(0u64, |t, &c| t.checked_add(c))
        .ok_or_else(|| malformed("too many chunks"))?;
    // Every chunk holds at least one element (or the axis is empty): bounds the allocation.
    let elements: u64 = a
        .sizes
        .iter()
        .zip(&a.counts)
        .try_fold(0u64, |t, (&s, &c)| {
            s.checked_mul(c).and_then(|x| t.checked_add(x))
        })
        .ok_or_else(|| malformed("chunk sizes overflow"))?;
    if total > elements.max(1) {
        return Err(malformed("more chunks than elements"));
    }
    if total > MAX_CHUNKS_PER_AXIS {
        return Err(malformed(format!(
            "{total} chunks along one axis (at most {MAX_CHUNKS_PER_AXIS})"
        )));
    }
    let mut out = Vec::with_capacity(usize_of(total)?);
    for (&s, &c) in a.sizes.iter().zip(&a.counts) {
        out.extend(std::iter::repeat_n(usize_of(s)?, usize_of(c)?));
    }
    Ok(out)
}

pub fn meta_to(m: &Meta) -> pb::Meta {
    pb::Meta {
        shape: u64s(&m.shape),
        dtype: dtype_to(m.dtype) as i32,
        chunks: m.chunks.0.iter().map(|c| axis_to(c)).collect(),
    }
}

pub fn meta_from(m: Option<pb::Meta>) -> Result<Meta, Error> {
    let m = m.ok_or_else(|| malformed("missing meta"))?;
    let max = accel_core::shape::MAX_NDIM;
    if m.shape.len() > max || m.chunks.len() > max {
        return Err(malformed(format!(
            "an array of {} axes (at most {max})",
            m.shape.len().max(m.chunks.len())
        )));
    }
    Ok(Meta {
        shape: dims(&m.shape)?,
        dtype: dtype_from(m.dtype)?,
        chunks: Chunks(m.chunks.iter().map(axis_from).collect::<Result<_, _>>()?),
    })
}

const UNARY: [(UnaryOp, &str); 27] = [
    (UnaryOp::Neg, "neg"),
    (UnaryOp::Not, "not"),
    (UnaryOp::Sqrt, "sqrt"),
    (UnaryOp::Exp, "exp"),
    (UnaryOp::Log, "log"),
    (UnaryOp::Sin, "sin"),
    (UnaryOp::Cos, "cos"),
    (UnaryOp::Tan, "tan"),
    (UnaryOp::Tanh, "tanh"),
    (UnaryOp::Abs, "abs"),
    (UnaryOp::Floor, "floor"),
    (UnaryOp::Ceil, "ceil"),
    (UnaryOp::Re, "re"),
    (UnaryOp::Im, "im"),
    (UnaryOp::Arcsin, "arcsin"),
    (UnaryOp::Arccos, "arccos"),
    (UnaryOp::Arctan, "arctan"),
    (UnaryOp::Sinh, "sinh"),
    (UnaryOp::Cosh, "cosh"),
    (UnaryOp::Log1p, "log1p"),
    (UnaryOp::Expm1, "expm1"),
    (UnaryOp::Log2, "log2"),
    (UnaryOp::Log10, "log10"),
    (UnaryOp::Sign, "sign"),
    (UnaryOp::Round, "round"),
    (UnaryOp::IsNan, "isnan"),
    (UnaryOp::IsFinite, "isfinite"),
];

const BINARY: [BinaryOp; 19] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Rem,
    BinaryOp::Pow,
    BinaryOp::Min,
    BinaryOp::Max,
    BinaryOp::Eq,
    BinaryOp::Ne,
    BinaryOp::Lt,
    BinaryOp::Le,
    BinaryOp::Gt,
    BinaryOp::Ge,
    BinaryOp::And,
    BinaryOp::Or,
    BinaryOp::Hypot,
    BinaryOp::Arctan2,
    BinaryOp::FloorDiv,
];

fn unary_to(op: UnaryOp) -> (String, i32) {
    match op {
        UnaryOp::Powi(n) => ("powi".into(), n),
        other => (
            UNARY
                .iter()
                .find(|(o, _)| *o == other)
                .map(|(_, n)| n.to_string())
                .unwrap_or_default(),
            0,
        ),
    }
}

fn unary_from(name: &str, power: i32) -> Result<UnaryOp, Error> {
    if name == "powi" {
        return Ok(UnaryOp::Powi(power));
    }
    UNARY
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(o, _)| *o)
        .ok_or_else(|| malformed(format!("unknown unary op {name:?}")))
}

fn binary_from(name: &str) -> Result<BinaryOp, Error> {
    BINARY
        .iter()
        .find(|o| o.symbol() == name)
        .copied()
        .ok_or_else(|| malformed(format!("unknown binary op {name:?}")))
}

fn gen_to(kind: &GenKind, base: i64, strides: &[i64]) -> pb::Gen {
    use pb::r#gen::Kind;
    let kind = match *kind {
        GenKind::Arange { start, step } => Kind::Arange(pb::Arange { start, step }),
        GenKind::Linspace {
            start,
            stop,
            num,
            endpoint,
        } => Kind::Linspace(pb::Linspace {
            start,
            stop,
            num,
            endpoint,
        }),
        GenKind::Uniform {
            seed,
            stream,
            low,
            high,
        } => Kind::Uniform(pb::Random {
            seed,
            stream,
            a: low,
            b: high,
        }),
        GenKind::Normal {
            seed,
            stream,
            mean,
            std,
        } => Kind::Normal(pb::Random {
            seed,
            stream,
            a: mean,
            b: std,
        }),
    };
    pb::Gen {
        kind: Some(kind),
        base,
        strides: strides.to_vec(),
    }
}

fn gen_from(g: pb::Gen) -> Result<Instr, Error> {
    use pb::r#gen::Kind;
    let kind = match g
        .kind
        .ok_or_else(|| malformed("generator without a kind"))?
    {
        Kind::Arange(a) => GenKind::Arange {
            start: a.start,
            step: a.step,
        },
        Kind::Linspace(l) => GenKind::Linspace {
            start: l.start,
            stop: l.stop,
            num: l.num,
            endpoint: l.endpoint,
        },
        Kind::Uniform(r) => GenKind::Uniform {
            seed: r.seed,
            stream: r.stream,
            low: r.a,
            high: r.b,
        },
        Kind::Normal(r) => GenKind::Normal {
            seed: r.seed,
            stream: r.stream,
            mean: r.a,
            std: r.b,
        },
    };
    Ok(Instr::Gen {
        kind,
        base: g.base,
        strides: g.strides,
    })
}

pub fn program_to(p: &Program) -> pb::Program {
    use pb::instr::Op;
    let instrs = p
        .instrs
        .iter()
        .zip(&p.dtypes)
        .map(|(ins, &dt)| {
            let op = match ins {
                Instr::Load { input } => Op::Load(*input),
                Instr::Const(v) => Op::Constant(value_to(*v)),
                Instr::Gen {
                    kind,
                    base,
                    strides,
                } => Op::Gen(gen_to(kind, *base, strides)),
                Instr::Unary(u, a) => {
                    let (op, power) = unary_to(*u);
                    Op::Unary(pb::Unary { op, power, a: *a })
                }
                Instr::Binary(b, x, y) => Op::Binary(pb::Binary {
                    op: b.symbol().into(),
                    a: *x,
                    b: *y,
                }),
                Instr::Where(c, a, b) => Op::Where(pb::Where {
                    c: *c,
                    a: *a,
                    b: *b,
                }),
                Instr::Cast(t, a) => Op::Cast(pb::Cast {
                    to: dtype_to(*t) as i32,
                    a: *a,
                }),
                Instr::Loop(l) => Op::LoopBody(pb::LoopBody {
                    body: Some(program_to(&l.body)),
                    next: l.next.clone(),
                    stop: l.stop,
                    init: l.init.clone(),
                    captured: l.captured.clone(),
                    max_trips: l.max_trips,
                    result: l.result,
                }),
            };
            pb::Instr {
                dtype: dtype_to(dt) as i32,
                op: Some(op),
            }
        })
        .collect();
    pb::Program {
        instrs,
        inputs: p
            .inputs
            .iter()
            .map(|s| pb::InputSpec {
                dtype: dtype_to(s.dtype) as i32,
                shape: u64s(&s.shape),
            })
            .collect(),
        out_shape: u64s(&p.out_shape),
        root: p.root,
        stored: p
            .stored
            .iter()
            .map(|(k, s)| pb::StoredInput {
                input: *k,
                array: Some(stored_to(s)),
            })
            .collect(),
    }
}

/// Decodes and validates a kernel program.
pub fn program_from(p: Option<pb::Program>) -> Result<Program, Error> {
    let program = program_unchecked(p)?;
    program.validate()?;
    Ok(program)
}

/// Decodes a kernel program (loop bodies are validated with the program
/// holding them).
fn program_unchecked(p: Option<pb::Program>) -> Result<Program, Error> {
    use pb::instr::Op;
    let p = p.ok_or_else(|| malformed("missing program"))?;
    let mut instrs = Vec::with_capacity(p.instrs.len());
    let mut dtypes = Vec::with_capacity(p.instrs.len());
    for ins in p.instrs {
        dtypes.push(dtype_from(ins.dtype)?);
        instrs.push(
            match ins
                .op
                .ok_or_else(|| malformed("instruction without an op"))?
            {
                Op::Load(i) => Instr::Load { input: i },
                Op::Constant(v) => Instr::Const(value_from(Some(v))?),
                Op::Gen(g) => gen_from(g)?,
                Op::Unary(u) => Instr::Unary(unary_from(&u.op, u.power)?, u.a),
                Op::Binary(b) => Instr::Binary(binary_from(&b.op)?, b.a, b.b),
                Op::Where(w) => Instr::Where(w.c, w.a, w.b),
                Op::Cast(c) => Instr::Cast(dtype_from(c.to)?, c.a),
                Op::LoopBody(l) => Instr::Loop(Box::new(LoopInstr {
                    body: program_unchecked(l.body)?,
                    next: l.next,
                    stop: l.stop,
                    init: l.init,
                    captured: l.captured,
                    max_trips: l.max_trips,
                    result: l.result,
                })),
            },
        );
    }
    let program = Program {
        instrs,
        dtypes,
        inputs: p
            .inputs
            .into_iter()
            .map(|s| {
                Ok(InputSpec {
                    dtype: dtype_from(s.dtype)?,
                    shape: dims(&s.shape)?,
                })
            })
            .collect::<Result<_, Error>>()?,
        out_shape: dims(&p.out_shape)?,
        root: p.root,
        stored: p
            .stored
            .into_iter()
            .map(|s| Ok((s.input, Arc::new(stored_from(s.array)?))))
            .collect::<Result<_, Error>>()?,
    };
    Ok(program)
}

fn reduce_to(s: &ReduceSpec) -> pb::ReduceSpec {
    let (op, ddof) = match s.op {
        ReduceOp::Sum => ("sum", 0),
        ReduceOp::Prod => ("prod", 0),
        ReduceOp::Mean => ("mean", 0),
        ReduceOp::Min => ("min", 0),
        ReduceOp::Max => ("max", 0),
        ReduceOp::Var(d) => ("var", d),
        ReduceOp::Std(d) => ("std", d),
        ReduceOp::Any => ("any", 0),
        ReduceOp::All => ("all", 0),
        ReduceOp::ArgMin => ("argmin", 0),
        ReduceOp::ArgMax => ("argmax", 0),
    };
    pb::ReduceSpec {
        op: op.into(),
        ddof,
        axes: s.axes.iter().map(|&a| a as u32).collect(),
        keepdims: s.keepdims,
        split_every: s.split_every as u32,
    }
}

fn reduce_from(s: Option<pb::ReduceSpec>) -> Result<ReduceSpec, Error> {
    let s = s.ok_or_else(|| malformed("missing reduction"))?;
    let op = match s.op.as_str() {
        "sum" => ReduceOp::Sum,
        "prod" => ReduceOp::Prod,
        "mean" => ReduceOp::Mean,
        "min" => ReduceOp::Min,
        "max" => ReduceOp::Max,
        "var" => ReduceOp::Var(s.ddof),
        "std" => ReduceOp::Std(s.ddof),
        "any" => ReduceOp::Any,
        "all" => ReduceOp::All,
        "argmin" => ReduceOp::ArgMin,
        "argmax" => ReduceOp::ArgMax,
        other => return Err(malformed(format!("unknown reduction {other:?}"))),
    };
    Ok(ReduceSpec {
        op,
        axes: s.axes.iter().map(|&a| a as usize).collect(),
        keepdims: s.keepdims,
        split_every: s.split_every as usize,
    })
}

fn finalize_to(f: &Option<Finalize>) -> Option<pb::Finalize> {
    f.as_ref().map(|f| pb::Finalize {
        dtype: dtype_to(f.dtype) as i32,
        epilogue: f.epilogue.as_ref().map(|e| program_to(&e.program)),
    })
}

fn finalize_from(f: Option<pb::Finalize>) -> Result<Option<Finalize>, Error> {
    f.map(|f| {
        Ok(Finalize {
            dtype: dtype_from(f.dtype)?,
            epilogue: match f.epilogue {
                Some(p) => Some(Arc::new(Executable::new(program_from(Some(p))?))),
                None => None,
            },
        })
    })
    .transpose()
}

/// Little-endian element bytes of a buffer.
pub fn buffer_bytes(buf: &Buffer) -> Vec<u8> {
    let mut data = Vec::with_capacity(buf.nbytes());
    match buf {
        Buffer::Bool(v) => data.extend(v.iter().map(|&b| b as u8)),
        Buffer::I32(v) => v
            .iter()
            .for_each(|x| data.extend_from_slice(&x.to_le_bytes())),
        Buffer::I64(v) => v
            .iter()
            .for_each(|x| data.extend_from_slice(&x.to_le_bytes())),
        Buffer::F32(v) => v
            .iter()
            .for_each(|x| data.extend_from_slice(&x.to_le_bytes())),
        Buffer::F64(v) => v
            .iter()
            .for_each(|x| data.extend_from_slice(&x.to_le_bytes())),
        Buffer::C128(v) => v.iter().for_each(|z| {
            data.extend_from_slice(&z.re.to_le_bytes());
            data.extend_from_slice(&z.im.to_le_bytes());
        }),
    }
    data
}

fn host_to(h: &HostArray) -> pb::HostArray {
    pb::HostArray {
        dtype: dtype_to(h.data.dtype()) as i32,
        shape: u64s(&h.shape),
        data: buffer_bytes(&h.data),
    }
}

fn host_from(h: pb::HostArray) -> Result<HostArray, Error> {
    let dtype = dtype_from(h.dtype)?;
    let shape = dims(&h.shape)?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .ok_or_else(|| malformed("source too large"))?;
    Ok(HostArray {
        data: buffer_from_bytes(dtype, n, &h.data)?,
        shape,
    })
}

/// A buffer of `n` elements of `dtype` from little-endian bytes.
pub fn buffer_from_bytes(dtype: DType, n: usize, d: &[u8]) -> Result<Buffer, Error> {
    if Some(d.len()) != n.checked_mul(dtype.size()) {
        return Err(malformed(format!(
            "{} bytes cannot hold {n} {dtype} elements",
            d.len()
        )));
    }
    let f8 = |k: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[k * 8..k * 8 + 8]);
        b
    };
    let f4 = |k: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&d[k * 4..k * 4 + 4]);
        b
    };
    let data = match dtype {
        DType::Bool => Buffer::Bool(d.iter().map(|&b| b != 0).collect()),
        DType::I32 => Buffer::I32((0..n).map(|k| i32::from_le_bytes(f4(k))).collect()),
        DType::I64 => Buffer::I64((0..n).map(|k| i64::from_le_bytes(f8(k))).collect()),
        DType::F32 => Buffer::F32((0..n).map(|k| f32::from_le_bytes(f4(k))).collect()),
        DType::F64 => Buffer::F64((0..n).map(|k| f64::from_le_bytes(f8(k))).collect()),
        DType::C128 => Buffer::C128(
            (0..n)
                .map(|k| {
                    Complex64::new(
                        f64::from_le_bytes(f8(2 * k)),
                        f64::from_le_bytes(f8(2 * k + 1)),
                    )
                })
                .collect(),
        ),
    };
    Ok(data)
}

fn remap_to(m: &Remap) -> pb::Remap {
    pb::Remap {
        axes: m
            .axes
            .iter()
            .map(|a| pb::InAxis {
                base: a.base,
                src_axis: a.src.map(|(j, _)| j as u32),
                coef: a.src.map(|(_, c)| c).unwrap_or(0),
            })
            .collect(),
    }
}

fn remap_from(m: pb::Remap) -> Remap {
    Remap {
        axes: m
            .axes
            .into_iter()
            .map(|a| InAxis {
                base: a.base,
                src: a.src_axis.map(|j| (j as usize, a.coef)),
            })
            .collect(),
    }
}

fn boundary_to(b: &Boundary) -> pb::Boundary {
    use pb::boundary::Rule;
    pb::Boundary {
        rule: Some(match b {
            Boundary::Constant(v) => Rule::Constant(*v),
            Boundary::Periodic => Rule::Periodic(true),
            Boundary::Reflect => Rule::Reflect(true),
            Boundary::Nearest => Rule::Nearest(true),
            Boundary::Fixed => Rule::Fixed(true),
        }),
    }
}

fn boundary_from(b: &pb::Boundary) -> Result<Boundary, Error> {
    use pb::boundary::Rule;
    Ok(
        match b.rule.ok_or_else(|| malformed("boundary without a rule"))? {
            Rule::Constant(v) => Boundary::Constant(v),
            Rule::Periodic(_) => Boundary::Periodic,
            Rule::Reflect(_) => Boundary::Reflect,
            Rule::Nearest(_) => Boundary::Nearest,
            Rule::Fixed(_) => Boundary::Fixed,
        },
    )
}

fn stencil_to(k: &StencilKernel) -> pb::Stencil {
    pb::Stencil {
        boundary: k.boundary.iter().map(boundary_to).collect(),
        halo: u64s(&k.halo),
        inputs: k
            .inputs
            .iter()
            .map(|r| pb::StencilInput { radius: u64s(r) })
            .collect(),
        levels: k
            .levels
            .iter()
            .map(|l| pb::StencilLevel {
                program: Some(program_to(&l.exe.program)),
                radius: u64s(&l.radius),
                reads: l
                    .reads
                    .iter()
                    .map(|r| pb::StencilRead {
                        field: r.field,
                        offset: r.offset.clone(),
                    })
                    .collect(),
                keeps_edges: l.keep.is_some(),
                keep_field: l.keep.as_ref().map_or(0, |k| k.field),
                keep_depth: l.keep.as_ref().map_or_else(Vec::new, |k| u64s(&k.depth)),
            })
            .collect(),
    }
}

fn stencil_from(k: pb::Stencil) -> Result<StencilKernel, Error> {
    let mut levels = Vec::with_capacity(k.levels.len());
    for l in k.levels {
        levels.push(Level {
            exe: Arc::new(Executable::new(program_from(l.program)?)),
            radius: dims(&l.radius)?,
            reads: l
                .reads
                .into_iter()
                .map(|r| Read {
                    field: r.field,
                    offset: r.offset,
                })
                .collect(),
            keep: if l.keeps_edges {
                Some(Keep {
                    field: l.keep_field,
                    depth: dims(&l.keep_depth)?,
                })
            } else {
                None
            },
        });
    }
    Ok(StencilKernel {
        boundary: k
            .boundary
            .iter()
            .map(boundary_from)
            .collect::<Result<_, _>>()?,
        halo: dims(&k.halo)?,
        inputs: k
            .inputs
            .iter()
            .map(|i| dims(&i.radius))
            .collect::<Result<_, _>>()?,
        levels,
    })
}

pub fn plan_to(plan: &Plan) -> pb::Plan {
    use pb::stage::Kind;
    let stages = plan
        .stages
        .iter()
        .map(|s| {
            let kind = match &s.kind {
                StageKind::Source(h) => Kind::Source(host_to(h)),
                // Callers send `Plan::held_as_sources`; a held array that
                // cannot be assembled goes as empty data, which the
                // receiver's plan check refuses.
                StageKind::Held(h) => Kind::Source(host_to(&h.assemble().unwrap_or_else(|_| {
                    accel_core::op::HostArray {
                        shape: h.meta.shape.clone(),
                        data: Buffer::zeros(h.meta.dtype, 0),
                    }
                }))),
                StageKind::Read(s) => Kind::Read(stored_to(s)),
                StageKind::Persisted { job, stage } => Kind::Persisted(pb::Persisted {
                    job: *job,
                    stage: stage.0,
                }),
                StageKind::Remote(r) => Kind::Remote(pb::RemoteSource {
                    address: r.address.clone(),
                    id: r.id,
                    shape: u64s(&r.shape),
                    dtype: dtype_to(r.dtype) as i32,
                    credential: r.credential.clone(),
                }),
                StageKind::Map(exe) => Kind::Map(program_to(&exe.program)),
                StageKind::Partial {
                    exe,
                    spec,
                    finalize,
                    region,
                } => Kind::Partial(pb::Partial {
                    program: Some(program_to(&exe.program)),
                    spec: Some(reduce_to(spec)),
                    finalize: finalize_to(finalize),
                    region: Some(meta_to(region)),
                }),
                StageKind::Combine {
                    spec,
                    fan_in,
                    finalize,
                } => Kind::Combine(pb::Combine {
                    spec: Some(reduce_to(spec)),
                    fan_in: u64s(fan_in),
                    finalize: finalize_to(finalize),
                }),
                StageKind::Remap(m) => Kind::Remap(remap_to(m)),
                StageKind::Concat { axis } => Kind::ConcatAxis(*axis as u32),
                StageKind::Reshape => Kind::Reshape(true),
                StageKind::Stencil(k) => Kind::Stencil(stencil_to(k)),
                StageKind::MapBlocks(call) => Kind::MapBlocks(pb::MapBlocks {
                    name: call.name.clone(),
                    args: call.args.iter().map(|&v| value_to(v)).collect(),
                }),
                StageKind::Scan { op, axis, phase } => Kind::Scan(pb::Scan {
                    op: op.name(),
                    axis: *axis as u32,
                    phase: match phase {
                        ScanPhase::Local => 0,
                        ScanPhase::Carry => 1,
                        ScanPhase::Apply => 2,
                    },
                }),
                StageKind::MatMul {
                    dtype,
                    spec,
                    finalize,
                    region,
                } => Kind::Matmul(pb::MatMul {
                    dtype: dtype_to(*dtype) as i32,
                    spec: Some(reduce_to(spec)),
                    finalize: finalize_to(finalize),
                    region: Some(meta_to(region)),
                }),
            };
            pb::Stage {
                meta: Some(meta_to(&s.meta)),
                inputs: s.inputs.iter().map(|i| i.0).collect(),
                label: s.label.clone(),
                kind: Some(kind),
            }
        })
        .collect();
    pb::Plan {
        stages,
        outputs: plan.outputs.iter().map(|o| o.0).collect(),
        sinks: plan
            .sinks
            .iter()
            .map(|(s, sink)| pb::Sink {
                stage: s.0,
                target: Some(stored_to(&sink.target)),
                offset: u64s(&sink.offset),
            })
            .collect(),
    }
}

fn stored_to(s: &Stored) -> pb::Stored {
    pb::Stored {
        path: s.path.to_string_lossy().into_owned(),
        shape: u64s(&s.shape),
        dtype: dtype_to(s.dtype) as i32,
        format: Some(match &s.format {
            Format::Npy(l) => pb::stored::Format::Npy(pb::NpyLayout {
                data_offset: l.data_offset,
                fortran_order: l.fortran_order,
                big_endian: l.big_endian,
            }),
            Format::Zarr(z) => pb::stored::Format::Zarr(pb::ZarrLayout {
                metadata: z.metadata.clone(),
                chunks: u64s(&z.chunks),
            }),
        }),
    }
}

fn stored_from(s: Option<pb::Stored>) -> Result<Stored, Error> {
    let s = s.ok_or_else(|| malformed("stored array without a description"))?;
    let format = match s
        .format
        .ok_or_else(|| malformed("stored array without a format"))?
    {
        pb::stored::Format::Npy(l) => Format::Npy(NpyLayout {
            data_offset: l.data_offset,
            fortran_order: l.fortran_order,
            big_endian: l.big_endian,
        }),
        pb::stored::Format::Zarr(z) => Format::Zarr(ZarrLayout {
            metadata: z.metadata,
            chunks: dims(&z.chunks)?,
        }),
    };
    Ok(Stored {
        path: s.path.into(),
        shape: dims(&s.shape)?,
        dtype: dtype_from(s.dtype)?,
        format,
    })
}

/// The chunks a meta's grid holds once expanded (saturating).
fn grid_entries(m: Option<&pb::Meta>) -> u64 {
    m.map_or(0, |m| {
        m.chunks
            .iter()
            .flat_map(|a| &a.counts)
            .fold(0u64, |t, &c| t.saturating_add(c))
    })
}

/// Refuses a plan whose grids would expand past [`MAX_GRID_ENTRIES`], or
/// with more than [`MAX_STAGES`] stages, before anything is expanded.
fn check_plan_size(p: &pb::Plan) -> Result<(), Error> {
    use pb::stage::Kind;
    if p.stages.len() > MAX_STAGES {
        return Err(malformed(format!(
            "a plan of {} stages (at most {MAX_STAGES})",
            p.stages.len()
        )));
    }
    let entries = p.stages.iter().fold(0u64, |t, s| {
        let region = match &s.kind {
            Some(Kind::Partial(pt)) => grid_entries(pt.region.as_ref()),
            Some(Kind::Matmul(mm)) => grid_entries(mm.region.as_ref()),
            _ => 0,
        };
        t.saturating_add(grid_entries(s.meta.as_ref()))
            .saturating_add(region)
    });
    if entries > MAX_GRID_ENTRIES {
        return Err(malformed(format!(
            "a plan whose chunk grids hold more than {MAX_GRID_ENTRIES} chunks in all"
        )));
    }
    Ok(())
}

/// Decodes a plan and checks it completely ([`Plan::validate`]).
pub fn plan_from(p: pb::Plan) -> Result<Plan, Error> {
    use pb::stage::Kind;
    check_plan_size(&p)?;
    let mut stages = Vec::with_capacity(p.stages.len());
    for s in p.stages {
        let kind = match s.kind.ok_or_else(|| malformed("stage without a kind"))? {
            Kind::Source(h) => StageKind::Source(Arc::new(host_from(h)?)),
            Kind::Read(s) => StageKind::Read(Arc::new(stored_from(Some(s))?)),
            Kind::Persisted(p) => StageKind::Persisted {
                job: p.job,
                stage: StageId(p.stage),
            },
            Kind::Remote(r) => StageKind::Remote(Arc::new(RemoteSource {
                address: r.address,
                id: r.id,
                shape: dims(&r.shape)?,
                dtype: dtype_from(r.dtype)?,
                credential: r.credential,
            })),
            Kind::Map(prog) => StageKind::Map(Arc::new(Executable::new(program_from(Some(prog))?))),
            Kind::Partial(pt) => StageKind::Partial {
                exe: Arc::new(Executable::new(program_from(pt.program)?)),
                spec: reduce_from(pt.spec)?,
                finalize: finalize_from(pt.finalize)?,
                region: meta_from(pt.region)?,
            },
            Kind::Combine(c) => StageKind::Combine {
                spec: reduce_from(c.spec)?,
                fan_in: dims(&c.fan_in)?,
                finalize: finalize_from(c.finalize)?,
            },
            Kind::Remap(m) => StageKind::Remap(remap_from(m)),
            Kind::ConcatAxis(a) => StageKind::Concat { axis: a as usize },
            Kind::Reshape(_) => StageKind::Reshape,
            Kind::Stencil(k) => StageKind::Stencil(Arc::new(stencil_from(k)?)),
            Kind::MapBlocks(m) => StageKind::MapBlocks(Arc::new(BlockCall::named(
                &m.name,
                m.args
                    .into_iter()
                    .map(|v| value_from(Some(v)))
                    .collect::<Result<_, _>>()?,
            ))),
            Kind::Scan(sc) => StageKind::Scan {
                op: match sc.op.as_str() {
                    "sum" => ReduceOp::Sum,
                    "prod" => ReduceOp::Prod,
                    other => return Err(malformed(format!("unknown scan {other:?}"))),
                },
                axis: sc.axis as usize,
                phase: match sc.phase {
                    0 => ScanPhase::Local,
                    1 => ScanPhase::Carry,
                    2 => ScanPhase::Apply,
                    other => return Err(malformed(format!("unknown scan phase {other}"))),
                },
            },
            Kind::Matmul(mm) => StageKind::MatMul {
                dtype: dtype_from(mm.dtype)?,
                spec: reduce_from(mm.spec)?,
                finalize: finalize_from(mm.finalize)?,
                region: meta_from(mm.region)?,
            },
        };
        stages.push(Stage {
            kind,
            inputs: s.inputs.into_iter().map(StageId).collect(),
            meta: meta_from(s.meta)?,
            nodes: Vec::new(),
            label: s.label,
            cache: Default::default(),
        });
    }
    let mut tasks = 0u64;
    for st in &stages {
        tasks = st
            .meta
            .chunks
            .0
            .iter()
            .try_fold(1u64, |n, axis| n.checked_mul(axis.len() as u64))
            .and_then(|n| tasks.checked_add(n))
            .filter(|&t| t <= MAX_TASKS)
            .ok_or_else(|| malformed(format!("a plan of more than {MAX_TASKS} tasks")))?;
    }
    let sinks = p
        .sinks
        .into_iter()
        .map(|s| {
            let sink = Sink {
                target: stored_from(s.target)?,
                offset: dims(&s.offset)?,
            };
            Ok((StageId(s.stage), Arc::new(sink)))
        })
        .collect::<Result<_, Error>>()?;
    let plan = Plan {
        stages,
        outputs: p.outputs.into_iter().map(StageId).collect(),
        sinks,
    };
    plan.validate()?;
    Ok(plan)
}

/// Wire id of a task (job and chunk).
pub fn task_to(job: u64, key: ChunkKey) -> pb::TaskId {
    pb::TaskId {
        job,
        stage: key.stage.0,
        chunk: key.chunk,
    }
}

pub fn task_from(t: Option<&pb::TaskId>) -> Result<(u64, ChunkKey), Error> {
    let t = t.ok_or_else(|| malformed("missing task id"))?;
    Ok((
        t.job,
        ChunkKey {
            stage: StageId(t.stage),
            chunk: t.chunk,
        },
    ))
}

/// Header and element bytes of a chunk (all its columns, one after another).
/// A chunk only on a GPU is read back first.
pub fn chunk_to(c: &Chunk) -> Result<(pb::ChunkHeader, Vec<u8>), Error> {
    let cols = c.cols()?;
    let mut data = Vec::with_capacity(c.nbytes());
    for col in cols {
        data.extend(buffer_bytes(col));
    }
    let header = pb::ChunkHeader {
        shape: u64s(&c.shape),
        cols: cols.iter().map(|b| dtype_to(b.dtype()) as i32).collect(),
        total_bytes: data.len() as u64,
    };
    Ok((header, data))
}

pub fn chunk_from(h: &pb::ChunkHeader, data: &[u8]) -> Result<Chunk, Error> {
    let shape = dims(&h.shape)?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .ok_or_else(|| malformed("chunk too large"))?;
    let mut cols = Vec::with_capacity(h.cols.len());
    let mut at = 0usize;
    for &d in &h.cols {
        let dtype = dtype_from(d)?;
        let len = n
            .checked_mul(dtype.size())
            .ok_or_else(|| malformed("chunk too large"))?;
        let bytes = data
            .get(at..at + len)
            .ok_or_else(|| malformed("chunk data shorter than its header"))?;
        cols.push(buffer_from_bytes(dtype, n, bytes)?);
        at += len;
    }
    if at != data.len() || cols.is_empty() {
        return Err(malformed("chunk data does not match its header"));
    }
    Ok(Chunk::new(shape, cols))
}
