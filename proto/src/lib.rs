//! accel-proto: the wire protocol (accel.proto), its generated code, and the
//! conversions between wire and core types. No logic beyond checking that
//! what arrives is well-formed.

pub mod auth;
pub mod convert;
pub mod http_auth;
pub mod incoming;
pub mod scheduler_file;
pub mod tls;

/// Generated from accel.proto.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("accel.v1");
}

/// Checked at every connection; peers of another version are refused.
pub const PROTOCOL_VERSION: u32 = 3;

/// Largest plan message (a submission, or a job's plan sent to a worker):
/// plans carry their source data, so a submission above this is refused
/// before it is sent.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// Largest message of a worker's session (reports, registration).
pub const MAX_WORKER_MESSAGE_BYTES: usize = 32 << 20;

/// Largest request about a job (release, missing results).
pub const MAX_CONTROL_MESSAGE_BYTES: usize = 1 << 20;

/// Wire data that does not decode into a valid core value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error(transparent)]
    Core(#[from] accel_core::Error),
    #[error("protocol version {theirs} is not supported (this side speaks {ours})")]
    Version { ours: u32, theirs: u32 },
}

/// Refuses a peer that speaks another protocol version.
pub fn check_version(theirs: u32) -> Result<(), Error> {
    if theirs == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(Error::Version {
            ours: PROTOCOL_VERSION,
            theirs,
        })
    }
}
