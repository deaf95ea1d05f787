//! The lazy expression handle.

use std::panic::Location;
use std::sync::Arc;

use accel_core::{DType, Meta, Op};

use crate::error::{Error, Result};

/// One node of a user's expression: an operation, its inputs and its result type.
#[derive(Debug)]
pub(crate) struct Expr {
    pub op: Op,
    pub inputs: Vec<Arc<Expr>>,
    pub meta: Meta,
}

impl Drop for Expr {
    /// Drops long chains without recursion (users build 10,000-step chains).
    fn drop(&mut self) {
        let mut stack = std::mem::take(&mut self.inputs);
        while let Some(e) = stack.pop() {
            if let Ok(mut inner) = Arc::try_unwrap(e) {
                stack.append(&mut inner.inputs);
            }
        }
    }
}

/// A lazy, chunked n-dimensional array. Cloning is cheap (a reference count).
///
/// Operations never panic: an invalid one (mismatched shapes, dtypes or chunks)
/// yields an array that carries the error, with the source line that built it;
/// [`Array::check`], and every `compute`, report it.
#[derive(Clone, Debug)]
pub struct Array {
    pub(crate) node: std::result::Result<Arc<Expr>, Arc<Error>>,
}

impl Array {
    pub(crate) fn from_expr(op: Op, inputs: Vec<Arc<Expr>>, meta: Meta) -> Array {
        Array {
            node: Ok(Arc::new(Expr { op, inputs, meta })),
        }
    }

    pub(crate) fn failed(e: Error) -> Array {
        Array {
            node: Err(Arc::new(e)),
        }
    }

    /// An error raised while building `op` at the caller's location.
    #[track_caller]
    pub(crate) fn build_error(op: &str, source: accel_core::Error) -> Array {
        let loc = Location::caller();
        Array::failed(Error::Build {
            op: op.to_string(),
            location: format!("{}:{}", loc.file(), loc.line()),
            source,
        })
    }

    /// Builds a node from inputs, propagating their errors and checking the new one.
    #[track_caller]
    pub(crate) fn build(
        op_name: &str,
        inputs: &[&Array],
        make: impl FnOnce(&[&Meta]) -> accel_core::Result<(Op, Meta)>,
    ) -> Array {
        let mut exprs = Vec::with_capacity(inputs.len());
        for a in inputs {
            match &a.node {
                Ok(e) => exprs.push(e.clone()),
                Err(e) => {
                    return Array {
                        node: Err(e.clone()),
                    };
                }
            }
        }
        let metas: Vec<&Meta> = exprs.iter().map(|e| &e.meta).collect();
        match make(&metas) {
            Ok((op, meta)) => Array::from_expr(op, exprs, meta),
            Err(e) => Array::build_error(op_name, e),
        }
    }

    pub(crate) fn expr(&self) -> Result<&Arc<Expr>> {
        self.node.as_ref().map_err(|e| (**e).clone())
    }

    /// `Ok` if this array and everything it depends on were built without error.
    pub fn check(&self) -> Result<()> {
        self.expr().map(|_| ())
    }

    pub fn meta(&self) -> Result<&Meta> {
        Ok(&self.expr()?.meta)
    }

    pub fn shape(&self) -> Result<Vec<usize>> {
        Ok(self.meta()?.shape.clone())
    }

    pub fn dtype(&self) -> Result<DType> {
        Ok(self.meta()?.dtype)
    }

    pub fn ndim(&self) -> Result<usize> {
        Ok(self.meta()?.shape.len())
    }

    /// Chunk sizes along each axis.
    pub fn chunks(&self) -> Result<Vec<Vec<usize>>> {
        Ok(self.meta()?.chunks.0.clone())
    }

    /// Number of elements.
    pub fn len(&self) -> Result<usize> {
        Ok(self.meta()?.shape.iter().product())
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}
