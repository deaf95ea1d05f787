//! Kernel programs: SSA over typed block registers.
//!
//! A program computes one value per output element. Instruction `k` defines
//! register `k`; operands always refer to earlier registers and already have the
//! dtype the operation needs (the compiler inserts casts).

use crate::dtype::{DType, Value};
use crate::op::{BinaryOp, GenKind, UnaryOp};

pub type Reg = u32;

#[derive(Clone, Debug, PartialEq)]
pub enum Instr {
    /// Element of program input `input`, read through broadcast strides.
    Load {
        input: u32,
    },
    Const(Value),
    /// Generated value: `kind` evaluated at counter `base + Σ coord[d] * strides[d]`
    /// (global coordinates of the output element).
    Gen {
        kind: GenKind,
        base: i64,
        strides: Vec<i64>,
    },
    Unary(UnaryOp, Reg),
    Binary(BinaryOp, Reg, Reg),
    Where(Reg, Reg, Reg),
    Cast(DType, Reg),
    /// An elementwise loop with an early exit (see [`LoopInstr`]); its value
    /// is one state variable after the last trip.
    Loop(Box<LoopInstr>),
}

/// A loop inside a kernel. Per element: the state starts as `init`; each
/// trip runs `body` on it, and the state becomes the body's `next` values;
/// the element is done after the trip whose `stop` is true, or after
/// `max_trips` trips.
#[derive(Clone, Debug, PartialEq)]
pub struct LoopInstr {
    /// Inputs: the state variables, the trip counter (int64 from 0), then
    /// the captured values, all per element (shapes empty).
    pub body: Program,
    /// Body registers holding the next state, one per state variable.
    pub next: Vec<Reg>,
    /// Body register holding the stop flag (bool).
    pub stop: Reg,
    /// Registers of the enclosing program: initial state, captured values.
    pub init: Vec<Reg>,
    pub captured: Vec<Reg>,
    pub max_trips: u32,
    /// The state variable that is the instruction's value.
    pub result: u32,
}

impl Instr {
    /// Registers this instruction reads.
    pub fn operands(&self) -> Vec<Reg> {
        match self {
            Instr::Load { .. } | Instr::Const(_) | Instr::Gen { .. } => vec![],
            Instr::Unary(_, a) | Instr::Cast(_, a) => vec![*a],
            Instr::Binary(_, a, b) => vec![*a, *b],
            Instr::Where(c, a, b) => vec![*c, *a, *b],
            Instr::Loop(l) => l.init.iter().chain(&l.captured).copied().collect(),
        }
    }
}

/// How a program input lines up with the output: its global shape, aligned at
/// the trailing axis; axes of length 1 are broadcast.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub instrs: Vec<Instr>,
    /// dtype of every register.
    pub dtypes: Vec<DType>,
    pub inputs: Vec<InputSpec>,
    /// Global shape of the output (the iteration space).
    pub out_shape: Vec<usize>,
    /// Register holding the result.
    pub root: Reg,
    /// Inputs that the task reads from a stored array itself (the box under
    /// its iteration space) instead of receiving a chunk: a read fused into
    /// the kernel. Sorted by input index.
    pub stored: Vec<(u32, std::sync::Arc<crate::storage::Stored>)>,
}

impl Program {
    /// The operations the kernel performs, in order (for stage labels).
    pub fn op_names(&self) -> Vec<String> {
        let reads = self.stored.iter().map(|_| "read".to_string());
        reads
            .chain(self.instrs.iter().filter_map(|ins| match ins {
                Instr::Load { .. } | Instr::Const(_) => None,
                Instr::Gen { kind, .. } => Some(gen_name(kind).to_string()),
                Instr::Unary(op, _) => Some(op.name()),
                Instr::Binary(op, ..) => Some(op.symbol().to_string()),
                Instr::Where(..) => Some("where".into()),
                Instr::Cast(t, _) => Some(format!("astype({t})")),
                Instr::Loop(l) => Some(format!(
                    "loop≤{}[{}]",
                    l.max_trips,
                    l.body.op_names().join(" ")
                )),
            }))
            .collect()
    }

    /// Complex moduli (`Abs` of a complex register) whose one reader compares
    /// them with a real constant `c`, as (modulus, comparison, c): such a
    /// modulus need only be right about which side of `c` it is on
    /// ([`super::hypot::modulus_proxy`]). Registers in `keep` (readable
    /// after the program) and the root are left out.
    pub fn modulus_comparisons(&self, keep: &[Reg]) -> Vec<(usize, usize, f64)> {
        let mut readers = vec![0u32; self.instrs.len()];
        for ins in &self.instrs {
            for r in ins.operands() {
                readers[r as usize] += 1;
            }
        }
        let mut found = Vec::new();
        for (k, ins) in self.instrs.iter().enumerate() {
            let Instr::Binary(op, a, b) = ins else {
                continue;
            };
            if !op.is_comparison() {
                continue;
            }
            for (m, other) in [(*a as usize, *b as usize), (*b as usize, *a as usize)] {
                let is_modulus = matches!(self.instrs[m], Instr::Unary(crate::op::UnaryOp::Abs, z)
                    if self.dtypes[z as usize] == DType::C128);
                if let Instr::Const(crate::dtype::Value::F64(c)) = self.instrs[other]
                    && is_modulus
                    && readers[m] == 1
                    && m != self.root as usize
                    && !keep.contains(&(m as Reg))
                    && super::hypot::proxy_allowed(c)
                {
                    found.push((m, k, c));
                }
            }
        }
        found
    }

    /// One line per instruction, for DOT labels and debugging.
    pub fn listing(&self) -> Vec<String> {
        self.instrs
            .iter()
            .enumerate()
            .map(|(k, ins)| {
                let d = self.dtypes[k];
                match ins {
                    Instr::Load { input } => format!("r{k}:{d} = load in{input}"),
                    Instr::Const(v) => format!("r{k}:{d} = {v}"),
                    Instr::Gen { kind, .. } => format!("r{k}:{d} = {}", gen_name(kind)),
                    Instr::Unary(op, a) => format!("r{k}:{d} = {} r{a}", op.name()),
                    Instr::Binary(op, a, b) => format!("r{k}:{d} = {} r{a} r{b}", op.symbol()),
                    Instr::Where(c, a, b) => format!("r{k}:{d} = where r{c} r{a} r{b}"),
                    Instr::Cast(t, a) => format!("r{k}:{d} = cast<{t}> r{a}"),
                    Instr::Loop(l) => format!(
                        "r{k}:{d} = loop≤{} init {:?} captured {:?} {{ {} }} next {:?} stop r{} result {}",
                        l.max_trips,
                        l.init,
                        l.captured,
                        l.body.listing().join("; "),
                        l.next,
                        l.stop,
                        l.result
                    ),
                }
            })
            .collect()
    }
}

fn gen_name(kind: &GenKind) -> &'static str {
    match kind {
        GenKind::Arange { .. } => "arange",
        GenKind::Linspace { .. } => "linspace",
        GenKind::Uniform { .. } => "uniform",
        GenKind::Normal { .. } => "normal",
    }
}

/// Builds programs with per-program common-subexpression elimination.
#[derive(Default)]
pub struct ProgramBuilder {
    instrs: Vec<Instr>,
    dtypes: Vec<DType>,
    inputs: Vec<InputSpec>,
    /// Registers by a hash of their instruction, for common-subexpression reuse.
    seen: crate::fast_hash::FastMap<u64, Vec<Reg>>,
}

/// A hash of everything in an instruction except float payloads (those are
/// compared exactly by [`identical`]).
fn shape_hash(ins: &Instr, dtype: DType) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = crate::fast_hash::Fnv::default();
    std::mem::discriminant(ins).hash(&mut h);
    dtype.hash(&mut h);
    match ins {
        Instr::Load { input } => input.hash(&mut h),
        Instr::Const(v) => v.dtype().hash(&mut h),
        Instr::Gen { base, strides, .. } => {
            base.hash(&mut h);
            strides.hash(&mut h);
        }
        Instr::Unary(op, a) => {
            op.hash(&mut h);
            a.hash(&mut h);
        }
        Instr::Binary(op, a, b) => {
            op.hash(&mut h);
            a.hash(&mut h);
            b.hash(&mut h);
        }
        Instr::Where(c, a, b) => {
            c.hash(&mut h);
            a.hash(&mut h);
            b.hash(&mut h);
        }
        Instr::Cast(d, a) => {
            d.hash(&mut h);
            a.hash(&mut h);
        }
        Instr::Loop(l) => {
            l.init.hash(&mut h);
            l.captured.hash(&mut h);
            l.max_trips.hash(&mut h);
            l.result.hash(&mut h);
        }
    }
    h.finish()
}

/// Whether two instructions compute the same values (constants compared by
/// their printed form, which tells apart -0.0 and 0.0).
fn identical(a: &Instr, b: &Instr) -> bool {
    match (a, b) {
        (Instr::Const(x), Instr::Const(y)) => format!("{x:?}") == format!("{y:?}"),
        (Instr::Gen { .. }, Instr::Gen { .. }) | (Instr::Loop(_), Instr::Loop(_)) => {
            format!("{a:?}") == format!("{b:?}")
        }
        _ => a == b,
    }
}

impl ProgramBuilder {
    pub fn new() -> ProgramBuilder {
        ProgramBuilder::default()
    }

    pub fn dtype(&self, r: Reg) -> DType {
        self.dtypes[r as usize]
    }

    /// Appends `ins` (or returns the register of an identical earlier instruction).
    pub fn push(&mut self, ins: Instr, dtype: DType) -> Reg {
        let key = shape_hash(&ins, dtype);
        if let Some(regs) = self.seen.get(&key)
            && let Some(&r) = regs.iter().find(|&&r| {
                self.dtypes[r as usize] == dtype && identical(&self.instrs[r as usize], &ins)
            })
        {
            return r;
        }
        self.instrs.push(ins);
        self.dtypes.push(dtype);
        let r = (self.instrs.len() - 1) as Reg;
        self.seen.entry(key).or_default().push(r);
        r
    }

    pub fn input(&mut self, spec: InputSpec) -> Reg {
        let dtype = spec.dtype;
        let idx = self.inputs.len() as u32;
        self.inputs.push(spec);
        self.push(Instr::Load { input: idx }, dtype)
    }

    /// `r` converted to `dtype` (no instruction if it already is).
    pub fn cast(&mut self, r: Reg, dtype: DType) -> Reg {
        if self.dtype(r) == dtype {
            r
        } else {
            self.push(Instr::Cast(dtype, r), dtype)
        }
    }

    pub fn finish(self, root: Reg, out_shape: Vec<usize>) -> Program {
        Program {
            instrs: self.instrs,
            dtypes: self.dtypes,
            inputs: self.inputs,
            out_shape,
            root,
            stored: Vec::new(),
        }
    }
}
