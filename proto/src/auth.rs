//! Credentials: shared tokens for the control plane (gRPC metadata), keys
//! for the data plane. A worker reads any chunk with the cluster's data key
//! (handed out by the scheduler when it attaches); a client reads only its
//! own job's chunks, with a key derived from the data key and the job id.
//! Secrets compare in constant time and never print.

use std::fmt;
use std::path::Path;

use ring::hmac;
use tonic::Status;
use tonic::metadata::{MetadataMap, MetadataValue};

/// gRPC metadata carrying `Bearer <token>`.
pub const AUTHORIZATION: &str = "authorization";

/// A secret: a token or a key. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// A token given as text (surrounding whitespace ignored); `None` if empty.
    pub fn from_text(text: &str) -> Option<Secret> {
        let t = text.trim();
        (!t.is_empty()).then(|| Secret(t.as_bytes().to_vec()))
    }

    /// The token in a file (its first line); an error names the file, never its content.
    pub fn from_file(path: &Path) -> Result<Secret, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
        let first = text.lines().next().unwrap_or("");
        Secret::from_text(first)
            .ok_or_else(|| format!("the token file {} is empty", path.display()))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Constant-time equality with `other` (time depends only on the lengths).
    pub fn matches(&self, other: &[u8]) -> bool {
        ct_eq(&self.0, other)
    }

    /// A fresh random key of 32 bytes.
    pub fn random() -> Result<Secret, String> {
        let mut key = vec![0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
            .map_err(|_| "the system's random number generator failed".to_string())?;
        Ok(Secret(key))
    }

    /// The key of job `job` derived from this (data) key: HMAC-SHA256.
    pub fn job_key(&self, job: u64) -> Secret {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let tag = hmac::sign(
            &key,
            &[b"accel job ".as_slice(), &job.to_le_bytes()].concat(),
        );
        Secret(tag.as_ref().to_vec())
    }

    /// Adds `Bearer <token>` to `metadata`.
    pub fn attach(&self, metadata: &mut MetadataMap) -> Result<(), String> {
        let text = std::str::from_utf8(&self.0).map_err(|_| "a token must be text".to_string())?;
        let value: MetadataValue<_> = format!("Bearer {text}")
            .parse()
            .map_err(|_| "a token must be printable ASCII".to_string())?;
        metadata.insert(AUTHORIZATION, value);
        Ok(())
    }
}

/// Adds the bearer token (if any) to every request of a gRPC client.
#[derive(Clone, Debug, Default)]
pub struct Bearer(pub Option<Secret>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(t) = &self.0 {
            t.attach(req.metadata_mut())
                .map_err(Status::invalid_argument)?;
        }
        Ok(req)
    }
}

/// Checks every call's credentials for one role before its body is read:
/// the token, and with mutual TLS the roles the certificate names.
#[derive(Clone, Debug)]
pub struct Gate {
    pub tokens: Tokens,
    pub role: Role,
}

impl tonic::service::Interceptor for Gate {
    fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        self.tokens.check(req.metadata(), self.role)?;
        if let Some(certs) = req.peer_certs()
            && let Some(first) = certs.first()
            && let Some(roles) = crate::tls::cert_roles(first)
            && !roles.contains(&self.role)
        {
            return Err(Status::permission_denied(format!(
                "this certificate does not grant the {} role",
                self.role.name()
            )));
        }
        Ok(req)
    }
}

/// Constant-time byte equality (the lengths are not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Who is calling the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Worker,
    Client,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::Client => "client",
        }
    }
}

/// The tokens a scheduler accepts, per role (`None`: that role needs none).
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    pub worker: Option<Secret>,
    pub client: Option<Secret>,
}

impl Tokens {
    /// One token for both roles.
    pub fn shared(token: Secret) -> Tokens {
        Tokens {
            worker: Some(token.clone()),
            client: Some(token),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.worker.is_none() && self.client.is_none()
    }

    /// Checks the bearer token in `metadata` for `role`: a missing or
    /// unknown token is UNAUTHENTICATED, the other role's token
    /// PERMISSION_DENIED. Nothing about the tokens goes into the message.
    pub fn check(&self, metadata: &MetadataMap, role: Role) -> Result<(), Status> {
        let Some(want) = (match role {
            Role::Worker => &self.worker,
            Role::Client => &self.client,
        }) else {
            return Ok(());
        };
        let given = metadata
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::as_bytes);
        let Some(given) = given else {
            return Err(Status::unauthenticated(format!(
                "this scheduler needs a {} token (--token-file, ACCEL_TOKEN)",
                role.name()
            )));
        };
        if want.matches(given) {
            return Ok(());
        }
        let other = match role {
            Role::Worker => (&self.client, Role::Client),
            Role::Client => (&self.worker, Role::Worker),
        };
        if let (Some(t), who) = other
            && t.matches(given)
        {
            return Err(Status::permission_denied(format!(
                "a {} token cannot act as a {}",
                who.name(),
                role.name()
            )));
        }
        Err(Status::unauthenticated(format!(
            "wrong {} token",
            role.name()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(token: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        Secret::from_text(token)
            .unwrap_or_else(|| Secret::from_bytes(b"x".to_vec()))
            .attach(&mut m)
            .unwrap();
        m
    }

    #[test]
    fn roles_and_wrong_tokens_are_told_apart() {
        let t = Tokens {
            worker: Secret::from_text("w-secret"),
            client: Secret::from_text("c-secret"),
        };
        assert!(t.check(&with("w-secret"), Role::Worker).is_ok());
        assert!(t.check(&with("c-secret"), Role::Client).is_ok());
        let e = t.check(&with("c-secret"), Role::Worker).unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(!e.message().contains("secret"), "{}", e.message());
        let e = t.check(&with("nope"), Role::Client).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        let e = t.check(&MetadataMap::new(), Role::Client).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        assert!(
            Tokens::default()
                .check(&MetadataMap::new(), Role::Worker)
                .is_ok()
        );
        assert_eq!(format!("{:?}", t.worker), "Some(Secret(<redacted>))");
    }

    #[test]
    fn job_keys_differ_per_job_and_key() {
        let a = Secret::random().unwrap();
        let b = Secret::random().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.job_key(1), a.job_key(1));
        assert_ne!(a.job_key(1), a.job_key(2));
        assert_ne!(a.job_key(1), b.job_key(1));
        assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abd") && !ct_eq(b"ab", b"abc"));
    }
}
