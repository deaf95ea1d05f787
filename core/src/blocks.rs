//! `map_blocks`: user Rust functions applied to every block of arrays.
//!
//! A function is called once per output chunk with that chunk's blocks of
//! every input (cut at the first input's chunk boundaries) and returns the
//! output block. It runs where the task runs: in the client's process
//! (embedded), or on a worker that registered it under its name (cluster).
//! Functions must be pure: a lost chunk is recomputed by calling them again.

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use ndarray::{ArrayViewD, IxDyn};

use crate::buffer::{Buffer, Element};
use crate::dtype::{DType, Value};
use crate::error::{Error, Result};
use crate::op::{HostArray, Meta};
use crate::shape;

/// A type-erased block function: the blocks of one task in, the output block out.
pub type BlockFn = Arc<dyn Fn(&Blocks<'_>) -> std::result::Result<HostArray, String> + Send + Sync>;

/// What a `map_blocks` node calls.
#[derive(Clone)]
pub struct BlockCall {
    /// The function's registered name (`"closure"` for an unnamed closure).
    pub name: String,
    /// The function itself; `None` until it is looked up by name where it runs.
    pub func: Option<BlockFn>,
    /// Scalars passed to every call (what a named function cannot capture).
    pub args: Vec<Value>,
}

impl BlockCall {
    pub fn named(name: &str, args: Vec<Value>) -> BlockCall {
        BlockCall {
            name: name.to_string(),
            func: None,
            args,
        }
    }
}

impl fmt::Debug for BlockCall {
    /// Also the identity used to merge equal nodes: two different closures
    /// never print alike (their addresses differ).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "map_blocks({:?}, args {:?}", self.name, self.args)?;
        if let Some(func) = &self.func {
            write!(f, ", fn at {:p}", Arc::as_ptr(func) as *const ())?;
        }
        write!(f, ")")
    }
}

/// Where a block sits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// The block's position in the chunk grid.
    pub index: Vec<usize>,
    /// Blocks along each axis.
    pub grid: Vec<usize>,
    /// Global coordinate of the output block's first element.
    pub origin: Vec<usize>,
    /// The output block's shape (what the function must return).
    pub shape: Vec<usize>,
    /// The whole output array's shape.
    pub array_shape: Vec<usize>,
    /// Per input: global coordinate of the first element of its block.
    pub input_origins: Vec<Vec<usize>>,
}

/// One input block: its shape and row-major elements.
#[derive(Clone, Copy, Debug)]
pub struct BlockRef<'a> {
    pub shape: &'a [usize],
    pub data: &'a Buffer,
}

/// The arguments of one call: the input blocks, where they sit, the scalars.
#[derive(Debug)]
pub struct Blocks<'a> {
    inputs: &'a [BlockRef<'a>],
    info: &'a BlockInfo,
    args: &'a [Value],
}

impl<'a> Blocks<'a> {
    pub fn new(inputs: &'a [BlockRef<'a>], info: &'a BlockInfo, args: &'a [Value]) -> Blocks<'a> {
        Blocks { inputs, info, args }
    }

    /// Number of input blocks.
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Input block `i` as an ndarray view of element type `T`.
    pub fn input<T: Element>(&self, i: usize) -> std::result::Result<ArrayViewD<'a, T>, String> {
        let b = self.raw(i)?;
        let data = T::slice(b.data)
            .ok_or_else(|| format!("input {i} holds {}, not {}", b.data.dtype(), T::DTYPE))?;
        ArrayViewD::from_shape(IxDyn(b.shape), data).map_err(|e| e.to_string())
    }

    /// Input block `i` whatever its dtype.
    pub fn raw(&self, i: usize) -> std::result::Result<BlockRef<'a>, String> {
        self.inputs.get(i).copied().ok_or_else(|| {
            format!(
                "input {i} asked for, but the function was given {}",
                self.inputs.len()
            )
        })
    }

    pub fn info(&self) -> &'a BlockInfo {
        self.info
    }

    /// Scalar argument `i`.
    pub fn arg(&self, i: usize) -> std::result::Result<Value, String> {
        self.args.get(i).copied().ok_or_else(|| {
            format!(
                "argument {i} asked for, but {} were passed",
                self.args.len()
            )
        })
    }

    /// Scalar argument `i` as a float (any real number converts).
    pub fn arg_f64(&self, i: usize) -> std::result::Result<f64, String> {
        match self.arg(i)? {
            Value::F64(x) => Ok(x),
            Value::F32(x) => Ok(x as f64),
            Value::I64(x) => Ok(x as f64),
            Value::I32(x) => Ok(x as f64),
            Value::Bool(x) => Ok(if x { 1.0 } else { 0.0 }),
            Value::C128(_) => Err(format!("argument {i} is complex, not a real number")),
        }
    }

    /// Scalar argument `i` as an integer.
    pub fn arg_i64(&self, i: usize) -> std::result::Result<i64, String> {
        match self.arg(i)? {
            Value::I64(x) => Ok(x),
            Value::I32(x) => Ok(x as i64),
            Value::Bool(x) => Ok(x as i64),
            other => Err(format!("argument {i} is {}, not an integer", other.dtype())),
        }
    }
}

/// What a block function may return: any ndarray of an accel element type.
pub trait IntoBlock {
    fn into_block(self) -> HostArray;
}

impl<T: Element, D: ndarray::Dimension> IntoBlock for ndarray::Array<T, D> {
    fn into_block(self) -> HostArray {
        let shape = self.shape().to_vec();
        let n = self.len();
        let v = if self.is_standard_layout() {
            match self.into_raw_vec_and_offset() {
                (v, Some(0) | None) if v.len() == n => v,
                (v, Some(off)) => v[off..off + n].to_vec(),
                (v, None) => v,
            }
        } else {
            self.iter().copied().collect()
        };
        HostArray {
            shape,
            data: T::wrap(v),
        }
    }
}

impl IntoBlock for HostArray {
    fn into_block(self) -> HostArray {
        self
    }
}

/// Erases a typed function `f(blocks) -> Result<array, error>` into a [`BlockFn`].
pub fn block_fn<F, R, E>(f: F) -> BlockFn
where
    F: Fn(&Blocks<'_>) -> std::result::Result<R, E> + Send + Sync + 'static,
    R: IntoBlock,
    E: fmt::Display,
{
    Arc::new(move |b: &Blocks<'_>| f(b).map(IntoBlock::into_block).map_err(|e| e.to_string()))
}

/// Block functions by name: what a worker (or the embedded client) can call.
#[derive(Clone, Default)]
pub struct Functions {
    map: BTreeMap<String, BlockFn>,
}

impl fmt::Debug for Functions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.map.keys()).finish()
    }
}

impl Functions {
    pub fn new() -> Functions {
        Functions::default()
    }

    /// Registers `f` under `name` (replacing any function of that name).
    pub fn register<F, R, E>(&mut self, name: &str, f: F) -> &mut Functions
    where
        F: Fn(&Blocks<'_>) -> std::result::Result<R, E> + Send + Sync + 'static,
        R: IntoBlock,
        E: fmt::Display,
    {
        self.map.insert(name.to_string(), block_fn(f));
        self
    }

    /// [`Functions::register`], by value.
    pub fn with<F, R, E>(mut self, name: &str, f: F) -> Functions
    where
        F: Fn(&Blocks<'_>) -> std::result::Result<R, E> + Send + Sync + 'static,
        R: IntoBlock,
        E: fmt::Display,
    {
        self.register(name, f);
        self
    }

    pub fn get(&self, name: &str) -> Option<&BlockFn> {
        self.map.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    pub fn names(&self) -> Vec<String> {
        self.map.keys().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The meta of `map_blocks` over `inputs` declaring its output `out`: the
/// inputs broadcast to the first one's shape; the output has the first
/// input's number of dimensions and blocks along each axis (its own block
/// sizes). Returns `out` when it is consistent.
pub fn infer(inputs: &[&Meta], out: &Meta) -> Result<Meta> {
    let Some(first) = inputs.first() else {
        return Err(Error::Invalid("map_blocks needs at least one input".into()));
    };
    for (k, m) in inputs.iter().enumerate().skip(1) {
        if shape::broadcast(&first.shape, &m.shape).as_deref() != Some(first.shape.as_slice()) {
            return Err(Error::Shape(format!(
                "map_blocks: input {k} of shape {:?} does not broadcast to the first input's {:?}",
                m.shape, first.shape
            )));
        }
    }
    if out.shape.len() != first.shape.len() || out.chunks.grid() != first.chunks.grid() {
        return Err(Error::Chunks(format!(
            "map_blocks: output chunks {:?} must have as many blocks along each axis as the \
             first input's {:?}",
            out.chunks.0, first.chunks.0
        )));
    }
    if out.chunks.shape() != out.shape {
        return Err(Error::Chunks(format!(
            "map_blocks: output chunks {:?} do not cover the shape {:?}",
            out.chunks.0, out.shape
        )));
    }
    Ok(out.clone())
}

/// Calls `call` for one block; checks what comes back against `want`
/// (shape) and `dtype`. A panic in the function is a failed task.
pub fn call(
    call: &BlockCall,
    inputs: &[BlockRef<'_>],
    info: &BlockInfo,
    dtype: DType,
) -> Result<Buffer> {
    let fail = |message: String| Error::Function {
        name: call.name.clone(),
        block: info.index.clone(),
        message,
    };
    let Some(func) = &call.func else {
        return Err(fail(
            "no function of that name is registered here (register it with \
             Functions::register in the worker or the embedded client)"
                .into(),
        ));
    };
    let blocks = Blocks::new(inputs, info, &call.args);
    let out = match catch_unwind(AssertUnwindSafe(|| func(&blocks))) {
        Ok(Ok(out)) => out,
        Ok(Err(message)) => return Err(fail(message)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            return Err(fail(format!("panicked: {what}")));
        }
    };
    if out.data.dtype() != dtype {
        return Err(fail(format!(
            "returned {}, but map_blocks declared {dtype}",
            out.data.dtype()
        )));
    }
    if out.shape != info.shape || out.data.len() != shape::size(&info.shape) {
        return Err(fail(format!(
            "returned a block of shape {:?} ({} elements), but this block is {:?}",
            out.shape,
            out.data.len(),
            info.shape
        )));
    }
    Ok(out.data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ArrayD;

    fn info(shape: &[usize]) -> BlockInfo {
        BlockInfo {
            index: vec![0; shape.len()],
            grid: vec![1; shape.len()],
            origin: vec![0; shape.len()],
            shape: shape.to_vec(),
            array_shape: shape.to_vec(),
            input_origins: vec![vec![0; shape.len()]],
        }
    }

    #[test]
    fn calls_check_dtype_shape_and_catch_panics() {
        let data = Buffer::F64(vec![1.0, 2.0, 3.0]);
        let inputs = [BlockRef {
            shape: &[3],
            data: &data,
        }];
        let fs = Functions::new()
            .with("double", |b: &Blocks<'_>| {
                b.input::<f64>(0).map(|x| x.mapv(|v| 2.0 * v))
            })
            .with("short", |_: &Blocks<'_>| {
                Ok::<_, String>(ArrayD::<f64>::zeros(IxDyn(&[2])))
            })
            .with(
                "panics",
                |_: &Blocks<'_>| -> std::result::Result<ArrayD<f64>, String> { panic!("boom") },
            );
        let mut c = BlockCall::named("double", vec![]);
        c.func = fs.get("double").cloned();
        let out = call(&c, &inputs, &info(&[3]), DType::F64).unwrap();
        assert_eq!(out, Buffer::F64(vec![2.0, 4.0, 6.0]));
        let err = call(&c, &inputs, &info(&[3]), DType::I64).unwrap_err();
        assert!(err.to_string().contains("declared i64"), "{err}");
        c.func = fs.get("short").cloned();
        let err = call(&c, &inputs, &info(&[3]), DType::F64).unwrap_err();
        assert!(err.to_string().contains("shape [2]"), "{err}");
        c.func = fs.get("panics").cloned();
        let err = call(&c, &inputs, &info(&[3]), DType::F64).unwrap_err();
        assert!(err.to_string().contains("panicked: boom"), "{err}");
        c.func = None;
        let err = call(&c, &inputs, &info(&[3]), DType::F64).unwrap_err();
        assert!(err.to_string().contains("no function"), "{err}");
    }
}
