//! The one error type of the `accel` client library.

/// What went wrong, with the user's source location for errors found while
/// building an expression.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("{op} at {location}: {source}")]
    Build {
        op: String,
        location: String,
        source: accel_core::Error,
    },
    #[error(transparent)]
    Core(#[from] accel_core::Error),
    #[error("the array holds {actual} elements; compute::<{requested}>() cannot return them")]
    WrongType {
        actual: accel_core::DType,
        requested: accel_core::DType,
    },
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("cannot reach the scheduler at {address}: {message}")]
    Unreachable { address: String, message: String },
    #[error("scheduler at {address}: {message}")]
    Remote { address: String, message: String },
    /// Missing or wrong credentials: retrying cannot help.
    #[error("scheduler at {address} refused the credentials: {message}")]
    Unauthenticated { address: String, message: String },
    /// Valid credentials of a role that may not do this.
    #[error("scheduler at {address}: permission denied: {message}")]
    PermissionDenied { address: String, message: String },
}

pub type Result<T> = std::result::Result<T, Error>;
