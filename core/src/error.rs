//! The one error type of accel-core.

/// Everything that can go wrong building, optimizing or running a graph.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("shape mismatch: {0}")]
    Shape(String),
    #[error("dtype error: {0}")]
    DType(String),
    #[error("chunk mismatch: {0}")]
    Chunks(String),
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("invalid graph: {0}")]
    Graph(String),
    #[error("function '{name}' failed on block {block:?}: {message}")]
    Function {
        name: String,
        block: Vec<usize>,
        message: String,
    },
    #[error("task {task} failed: {message}")]
    Task { task: String, message: String },
    /// A GPU failed to give back values it holds.
    #[error("device error: {0}")]
    Device(String),
}

pub type Result<T> = std::result::Result<T, Error>;
