//! How a client proves who it is to a secured cluster.

use std::path::PathBuf;

use accel_proto::auth::Secret;
use accel_proto::tls::TlsFiles;

use crate::error::{Error, Result};

/// A client's credentials: the scheduler's client token, if it asks for
/// one, and its TLS files for an `https://` scheduler.
#[derive(Clone, Debug, Default)]
pub struct Security {
    pub token: Option<Secret>,
    pub tls: TlsFiles,
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
            tls: TlsFiles::default(),
        }
    }

    /// The token in a file (its first line).
    pub fn token_file(path: impl AsRef<std::path::Path>) -> Result<Security> {
        Ok(Security {
            token: Some(Secret::from_file(path.as_ref()).map_err(Error::Invalid)?),
            tls: TlsFiles::default(),
        })
    }

    /// TLS with this certificate, key and CA (PEM files): mutual TLS with
    /// the cluster's CA (`accel-scheduler --make-certs` writes them).
    pub fn with_tls(
        mut self,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
        ca: impl Into<PathBuf>,
    ) -> Security {
        self.tls = TlsFiles {
            cert: Some(cert.into()),
            key: Some(key.into()),
            ca: Some(ca.into()),
            server_name: self.tls.server_name,
        };
        self
    }

    /// From the environment, as `Client::connect` reads it: `ACCEL_TOKEN_FILE`
    /// (a file whose first line is the token), else `ACCEL_TOKEN`; and
    /// `ACCEL_TLS_CERT`, `ACCEL_TLS_KEY`, `ACCEL_TLS_CA`, `ACCEL_TLS_SERVER_NAME`.
    pub fn from_env() -> Result<Security> {
        let mut s = match std::env::var_os("ACCEL_TOKEN_FILE") {
            Some(path) => Security::token_file(path)?,
            None => Security {
                token: std::env::var("ACCEL_TOKEN")
                    .ok()
                    .and_then(|t| Secret::from_text(&t)),
                tls: TlsFiles::default(),
            },
        };
        s.tls = TlsFiles::from_env();
        Ok(s)
    }
}
