//! The operation set of the expression graph and the rules that type-check it.

use std::fmt;
use std::sync::Arc;

use crate::buffer::Buffer;
use crate::dtype::{DType, Value};

/// Shape, dtype and chunk grid of a node's result.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Meta {
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub chunks: crate::shape::Chunks,
}

impl fmt::Display for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:?}", self.dtype, self.shape)?;
        let m = self.chunks.max_chunk();
        if !m.is_empty() && m != self.shape {
            write!(f, " chunks {m:?}")?;
        }
        Ok(())
    }
}

/// The output stage `stage` of cluster job `job`, whose chunks the workers
/// keep until every handle to it is gone.
pub struct Persisted {
    pub job: u64,
    pub stage: crate::plan::StageId,
    /// Keeps the job alive on the cluster; released when the last handle drops.
    pub keep: Arc<dyn std::any::Any + Send + Sync>,
}

impl fmt::Debug for Persisted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Persisted {{ job: {}, stage: {} }}",
            self.job, self.stage.0
        )
    }
}

/// Chunks this process computed and keeps (`persist` on the embedded
/// runtime): a task of its stage takes its chunk over without copying it.
#[derive(Clone, PartialEq)]
pub struct HeldArray {
    pub meta: Meta,
    /// One per chunk of `meta.chunks`, in the grid's order.
    pub chunks: Vec<Arc<crate::buffer::Chunk>>,
}

impl fmt::Debug for HeldArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HeldArray({}, {} chunks)", self.meta, self.chunks.len())
    }
}

impl HeldArray {
    /// Checks that every chunk has its grid cell's shape and the dtype.
    pub fn validate(&self) -> Result<(), String> {
        let grid = self.meta.chunks.grid();
        let count = self.meta.chunks.count();
        if self.chunks.len() != count {
            return Err(format!(
                "{} chunks held for a grid of {count}",
                self.chunks.len()
            ));
        }
        for (k, c) in self.chunks.iter().enumerate() {
            let want = self
                .meta
                .chunks
                .chunk_shape(&crate::shape::grid_index(k, &grid));
            if c.shape != want
                || c.col_count() != 1
                || c.dtype() != Some(self.meta.dtype)
                || c.host_cols()
                    .is_some_and(|cols| cols.iter().any(|b| b.len() != crate::shape::size(&want)))
            {
                return Err(format!("held chunk {k} does not match {}", self.meta));
            }
        }
        Ok(())
    }

    /// The whole array as one row-major buffer (to send it elsewhere).
    pub fn assemble(&self) -> crate::Result<HostArray> {
        let grid = self.meta.chunks.grid();
        let offsets = self.meta.chunks.offsets();
        let parts: Vec<(Vec<usize>, &crate::buffer::Chunk)> = self
            .chunks
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let idx = crate::shape::grid_index(k, &grid);
                let origin = idx
                    .iter()
                    .enumerate()
                    .map(|(d, &i)| offsets[d][i])
                    .collect();
                (origin, c.as_ref())
            })
            .collect();
        let nd = self.meta.shape.len();
        let data =
            crate::exec::boxes::assemble(self.meta.dtype, &vec![0; nd], &self.meta.shape, &parts)?;
        Ok(HostArray {
            shape: self.meta.shape.clone(),
            data,
        })
    }
}

/// Contiguous row-major data handed in by the user.
#[derive(Clone, Debug, PartialEq)]
pub struct HostArray {
    pub shape: Vec<usize>,
    pub data: Buffer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    Not,
    Sqrt,
    Exp,
    Log,
    Sin,
    Cos,
    Tan,
    Tanh,
    Arcsin,
    Arccos,
    Arctan,
    Sinh,
    Cosh,
    /// `ln(1 + x)`, exact for small `x`.
    Log1p,
    /// `exp(x) - 1`, exact for small `x`.
    Expm1,
    Log2,
    Log10,
    /// -1, 0 or 1 (NaN stays NaN); `z / |z|` for complex numbers.
    Sign,
    /// Round half to even (NumPy's `round` with no decimals).
    Round,
    IsNan,
    IsFinite,
    Abs,
    Floor,
    Ceil,
    /// Real part (identity for real dtypes).
    Re,
    /// Imaginary part (zero for real dtypes).
    Im,
    /// Integer power by repeated multiplication (NumPy's `x**n` for literal n).
    Powi(i32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    /// Remainder with the sign of the divisor (NumPy's `%`).
    Rem,
    /// Floating-point power.
    Pow,
    Min,
    Max,
    /// `sqrt(a² + b²)` without overflow.
    Hypot,
    /// The angle of the point `(b, a)`: `arctan(a / b)` in the right quadrant.
    Arctan2,
    /// Floor division (NumPy's `//`): `floor(a / b)`; integers divided by zero give 0.
    FloorDiv,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl BinaryOp {
    pub fn is_comparison(self) -> bool {
        use BinaryOp::*;
        matches!(self, Eq | Ne | Lt | Le | Gt | Ge)
    }
    pub fn symbol(self) -> &'static str {
        use BinaryOp::*;
        match self {
            Add => "add",
            Sub => "sub",
            Mul => "mul",
            Div => "div",
            Rem => "rem",
            Pow => "pow",
            Min => "minimum",
            Max => "maximum",
            Hypot => "hypot",
            Arctan2 => "arctan2",
            FloorDiv => "floordiv",
            Eq => "eq",
            Ne => "ne",
            Lt => "lt",
            Le => "le",
            Gt => "gt",
            Ge => "ge",
            And => "and",
            Or => "or",
        }
    }
}

impl UnaryOp {
    pub fn name(self) -> String {
        match self {
            UnaryOp::Powi(n) => format!("powi{n}"),
            other => format!("{other:?}").to_lowercase(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Prod,
    Mean,
    Min,
    Max,
    /// Variance with `ddof` delta degrees of freedom.
    Var(u32),
    Std(u32),
    Any,
    All,
    /// Index of the first smallest element (NaN counts as smallest), row-major
    /// over the reduced axes of the whole array.
    ArgMin,
    /// Index of the first largest element (NaN counts as largest).
    ArgMax,
}

impl ReduceOp {
    pub fn is_arg(self) -> bool {
        matches!(self, ReduceOp::ArgMin | ReduceOp::ArgMax)
    }

    pub fn name(self) -> String {
        match self {
            ReduceOp::Var(d) => format!("var(ddof={d})"),
            ReduceOp::Std(d) => format!("std(ddof={d})"),
            other => format!("{other:?}").to_lowercase(),
        }
    }
}

/// A reduction over some axes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReduceSpec {
    pub op: ReduceOp,
    /// Sorted, distinct axes of the input.
    pub axes: Vec<usize>,
    pub keepdims: bool,
    /// Fan-in of the combine tree (at least 2).
    pub split_every: usize,
}

/// Values that are a pure function of the element's index: generated inside kernels.
#[derive(Clone, Debug, PartialEq)]
pub enum GenKind {
    /// `start + i * step`.
    Arange { start: f64, step: f64 },
    /// NumPy's linspace: `start + i * step`, and exactly `stop` at the last point with `endpoint`.
    Linspace {
        start: f64,
        stop: f64,
        num: u64,
        endpoint: bool,
    },
    /// Uniform in [low, high) from a counter-based generator.
    Uniform {
        seed: u64,
        stream: u64,
        low: f64,
        high: f64,
    },
    /// Normal(mean, std) by Box–Muller from two counter-based uniforms.
    Normal {
        seed: u64,
        stream: u64,
        mean: f64,
        std: f64,
    },
}

/// Maps an element's coordinates to the generator's 1-D counter:
/// `i = base + Σ coord[d] * strides[d]`. Slicing, transposing, taking a
/// diagonal or reshaping a generator only changes this map.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Affine {
    pub base: i64,
    pub strides: Vec<i64>,
}

impl Affine {
    /// The counter of a contiguous row-major array of `shape`.
    pub fn row_major(shape: &[usize]) -> Affine {
        Affine {
            base: 0,
            strides: crate::shape::strides(shape)
                .into_iter()
                .map(|s| s as i64)
                .collect(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Generator {
    pub kind: GenKind,
    pub index: Affine,
}

/// How one input axis of a [`Remap`] is addressed from the output coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InAxis {
    pub base: i64,
    /// `(output axis, coefficient)`; `None` for a fixed index.
    pub src: Option<(usize, i64)>,
}

/// A structural view: each input axis coordinate is affine in one output axis.
/// Covers slicing with steps, integer indexing, new axes, transposes,
/// diagonals and rechunking.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Remap {
    pub axes: Vec<InAxis>,
}

impl Remap {
    pub fn identity(ndim: usize) -> Remap {
        Remap {
            axes: (0..ndim)
                .map(|d| InAxis {
                    base: 0,
                    src: Some((d, 1)),
                })
                .collect(),
        }
    }
}

/// What a stencil reads beyond the edge of the array along one axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Boundary {
    /// A constant value (cast to the array's dtype).
    Constant(f64),
    /// The array wraps around: index -1 is index n-1.
    Periodic,
    /// Mirrored at the edge, the edge included (`c b a | a b c`), as
    /// scipy.ndimage and Dask call "reflect".
    Reflect,
    /// The edge value repeated (`a a a | a b c`).
    Nearest,
    /// The update leaves the cells within the stencil's reach of this edge
    /// unchanged (Dirichlet conditions, as in the heat equation); reads beyond
    /// the edge never happen then, and behave as `Nearest` if asked for.
    Fixed,
}

impl Boundary {
    pub fn name(self) -> String {
        match self {
            Boundary::Constant(v) => format!("constant({v})"),
            other => format!("{other:?}").to_lowercase(),
        }
    }
}

/// A node's operation. Inputs are stored beside it in the graph.
#[derive(Clone, Debug)]
pub enum Op {
    /// User data, cut into chunks on demand.
    Source(Arc<HostArray>),
    /// A stored array (a `.npy` file, a Zarr array) read box by box by the tasks.
    Read(Arc<crate::storage::Stored>),
    /// Chunks kept on a cluster's workers by an earlier job (`persist`).
    Persisted(Arc<Persisted>),
    /// Chunks kept by this process (`persist` on the embedded runtime).
    Held(Arc<HeldArray>),
    /// Every element equal (a 0-d `Full` is a scalar constant).
    Full(Value),
    Gen(Generator),
    Unary(UnaryOp),
    Binary(BinaryOp),
    /// `where(cond, a, b)`.
    Where,
    Cast(DType),
    Reduce(ReduceSpec),
    Remap(Remap),
    Concat {
        axis: usize,
    },
    Reshape,
    /// Matrix product of two 2-d arrays: blocked products of chunk pairs,
    /// summed along the contracted axis in a tree of fan-in `split_every`.
    MatMul {
        split_every: usize,
    },
    /// Cumulative sum or product (`op` is `Sum` or `Prod`) along `axis`.
    Scan {
        op: ReduceOp,
        axis: usize,
    },
    /// `out[i] = in[i + offset]`, reading beyond the edges per axis as its
    /// boundary says: the building block of stencils.
    Shift {
        offset: Vec<i64>,
        boundary: Vec<Boundary>,
    },
    /// `keep_edges(new, old)`: `old` within `depth[d]` cells of either end of
    /// axis d, `new` elsewhere (a stencil update with fixed boundary cells).
    KeepEdges {
        depth: Vec<usize>,
    },
    /// An elementwise loop with an early exit (a user kernel's `for` loop):
    /// inputs are `[init.., next.., stop]` with `states` initial values, the
    /// body's next values (computed from [`Op::LoopArg`]s of this `id`) and
    /// its stop flag. Each element runs the body at most `max_trips` times,
    /// keeping the state of the trip whose flag was true; the value is
    /// state variable `result`.
    Loop {
        id: u64,
        states: u32,
        max_trips: u32,
        result: u32,
    },
    /// A user function applied to every block (`map_blocks`): inputs
    /// broadcast to the first one, cut at its chunk boundaries; the output
    /// (the node's meta) has as many blocks per axis as the first input.
    MapBlocks(Arc<crate::blocks::BlockCall>),
    /// Inside the body of loop `id`: state variable `index` of the current
    /// trip, or the trip counter (int64, from 0) when `index == states`.
    LoopArg {
        id: u64,
        index: u32,
    },
    /// A step applied `times` times to the input (`iterate`). Lowered once
    /// for as many steps as one fused stage holds, then repeated, so that
    /// planning does not grow with `times`.
    Repeat(Arc<Repeat>),
    /// Inside a [`Repeat`]'s body: the field the step is applied to.
    RepeatArg,
}

/// The step of an [`Op::Repeat`].
pub struct Repeat {
    pub times: usize,
    /// One step: a graph whose one output is computed from its one
    /// [`Op::RepeatArg`] leaf (and from leaves of its own).
    pub body: crate::graph::Graph,
}

impl fmt::Debug for Repeat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Repeat {{ times: {}, body: {} nodes }}",
            self.times,
            self.body.len()
        )
    }
}

impl Op {
    /// Ops that join elementwise regions into stencil kernels.
    pub fn is_stencil(&self) -> bool {
        matches!(self, Op::Shift { .. } | Op::KeepEdges { .. })
    }

    /// Elementwise ops (and leaves that are computed per element) fuse into kernels.
    pub fn is_elementwise(&self) -> bool {
        matches!(
            self,
            Op::Full(_)
                | Op::Gen(_)
                | Op::Unary(_)
                | Op::Binary(_)
                | Op::Where
                | Op::Cast(_)
                | Op::Loop { .. }
                | Op::LoopArg { .. }
        )
    }

    /// Leaves whose values depend only on the index: recomputed wherever used.
    pub fn is_generated(&self) -> bool {
        matches!(self, Op::Full(_) | Op::Gen(_))
    }

    /// Short label for DOT export and messages.
    pub fn label(&self) -> String {
        match self {
            Op::Source(_) => "source".into(),
            Op::Read(s) => format!("read {}", s.kind()),
            Op::Persisted(p) => format!("persisted(job {})", p.job),
            Op::Held(_) => "persisted".into(),
            Op::Full(v) => format!("full({v})"),
            Op::Gen(g) => match &g.kind {
                GenKind::Arange { .. } => "arange".into(),
                GenKind::Linspace { .. } => "linspace".into(),
                GenKind::Uniform { .. } => "uniform".into(),
                GenKind::Normal { .. } => "normal".into(),
            },
            Op::Unary(u) => u.name(),
            Op::Binary(b) => b.symbol().into(),
            Op::Where => "where".into(),
            Op::Cast(d) => format!("astype({d})"),
            Op::Reduce(r) => format!("{}{:?}", r.op.name(), r.axes),
            Op::Remap(_) => "remap".into(),
            Op::Concat { axis } => format!("concatenate(axis={axis})"),
            Op::Reshape => "reshape".into(),
            Op::MatMul { .. } => "matmul".into(),
            Op::Scan { op, axis } => format!("cum{}(axis={axis})", op.name()),
            Op::Shift { offset, .. } => format!("shift{offset:?}"),
            Op::KeepEdges { depth } => format!("keep_edges{depth:?}"),
            Op::Loop { max_trips, .. } => format!("loop(≤{max_trips})"),
            Op::LoopArg { index, .. } => format!("loop_arg({index})"),
            Op::MapBlocks(c) => format!("map_blocks({})", c.name),
            Op::Repeat(r) => format!("repeat(×{})", r.times),
            Op::RepeatArg => "step input".into(),
        }
    }
}
