//! How a client proves who it is to a secured cluster.

use accel_proto::auth::Secret;

use crate::error::{Error, Result};

/// A client's credentials: the scheduler's client token, if it asks for one.
#[derive(Clone, Debug, Default)]
pub struct Security {
    pub token: Option<Secret>,
}

impl Security {
    /// No credentials (a cluster on loopback without a token).
    pub fn none() -> Security {
        Security::default()
    }

    /// The token itself.
    pub fn token(token: &str) -> Security {
        Security {
            token: Secret::from_text(token),
        }
    }

    /// The token in a file (its first line).
    pub fn token_file(path: impl AsRef<std::path::Path>) -> Result<Security> {
        Ok(Security {
            token: Some(Secret::from_file(path.as_ref()).map_err(Error::Invalid)?),
        })
    }

    /// From the environment, as `Client::connect` reads it: `ACCEL_TOKEN_FILE`
    /// (a file whose first line is the token), else `ACCEL_TOKEN`.
    pub fn from_env() -> Result<Security> {
        if let Some(path) = std::env::var_os("ACCEL_TOKEN_FILE") {
            return Security::token_file(path);
        }
        Ok(Security {
            token: std::env::var("ACCEL_TOKEN")
                .ok()
                .and_then(|t| Secret::from_text(&t)),
        })
    }
}
