//! TLS for every connection of a cluster: gRPC to the scheduler and the
//! data planes of workers and clients. With a CA, both sides present
//! certificates (mutual TLS) and verify them against it, under one server
//! name (`accel` unless told otherwise), since peers dial each other by IP.
//! Certificates may name roles (`worker.role.accel`, `client.role.accel`):
//! one that names roles may only act in those.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The name every certificate of a cluster's own CA carries.
pub const SERVER_NAME: &str = "accel";
/// Names a certificate holds to grant a role.
pub const WORKER_ROLE: &str = "worker.role.accel";
pub const CLIENT_ROLE: &str = "client.role.accel";

/// Where a process's TLS material is (PEM files).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// This process's certificate chain and key: what it proves itself with.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// The CA that peers' certificates must chain to; given, peers must
    /// present one (mutual TLS).
    pub ca: Option<PathBuf>,
    /// The name server certificates are checked against (default: `accel`
    /// with a CA, the URL's host without).
    pub server_name: Option<String>,
}

impl TlsFiles {
    pub fn is_empty(&self) -> bool {
        self.cert.is_none() && self.key.is_none() && self.ca.is_none()
    }

    /// `ACCEL_TLS_CERT`, `ACCEL_TLS_KEY`, `ACCEL_TLS_CA`, `ACCEL_TLS_SERVER_NAME`.
    pub fn from_env() -> TlsFiles {
        let path = |v: &str| std::env::var_os(v).map(PathBuf::from);
        TlsFiles {
            cert: path("ACCEL_TLS_CERT"),
            key: path("ACCEL_TLS_KEY"),
            ca: path("ACCEL_TLS_CA"),
            server_name: std::env::var("ACCEL_TLS_SERVER_NAME").ok(),
        }
    }
}

/// Loaded TLS settings: what a process accepts and how it connects.
#[derive(Clone)]
pub struct Tls {
    server: Option<Arc<rustls::ServerConfig>>,
    client: Arc<rustls::ClientConfig>,
    server_name: Option<ServerName<'static>>,
    /// PEM texts for tonic's client configuration.
    ca_pem: Option<String>,
    identity_pem: Option<(String, String)>,
    mutual: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("serves", &self.server.is_some())
            .field("mutual", &self.mutual)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path, what: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
}

fn certs(pem: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{} holds no valid certificate: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(certs)
}

impl Tls {
    /// Loads `files`; `None` when they name nothing. A key without a
    /// certificate (or the reverse), unreadable or invalid files are errors
    /// naming the file.
    pub fn load(files: &TlsFiles) -> Result<Option<Tls>, String> {
        if files.is_empty() {
            return Ok(None);
        }
        let identity = match (&files.cert, &files.key) {
            (Some(c), Some(k)) => {
                let (cert_pem, key_pem) = (read(c, "certificate")?, read(k, "key")?);
                let chain = certs(&cert_pem, c)?;
                let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                    .map_err(|e| format!("{} holds no valid private key: {e}", k.display()))?;
                Some((chain, key, cert_pem, key_pem))
            }
            (None, None) => None,
            _ => return Err("--tls-cert and --tls-key go together".into()),
        };
        let ca_pem = files.ca.as_deref().map(|p| read(p, "CA")).transpose()?;
        let roots = match (&ca_pem, &files.ca) {
            (Some(pem), Some(path)) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in certs(pem, path)? {
                    roots
                        .add(c)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                }
                roots
            }
            _ => rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        };
        let roots = Arc::new(roots);
        let tls_err = |e: rustls::Error| format!("TLS configuration: {e}");
        let server = match &identity {
            Some((chain, key, _, _)) => {
                let builder = rustls::ServerConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .map_err(tls_err)?;
                let builder = if files.ca.is_some() {
                    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                        roots.clone(),
                        provider(),
                    )
                    .build()
                    .map_err(|e| format!("TLS client verification: {e}"))?;
                    builder.with_client_cert_verifier(verifier)
                } else {
                    builder.with_no_client_auth()
                };
                let mut config = builder
                    .with_single_cert(chain.clone(), key.clone_key())
                    .map_err(tls_err)?;
                config.alpn_protocols = vec![b"h2".to_vec()];
                Some(Arc::new(config))
            }
            None => None,
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_root_certificates(roots);
        let client = match &identity {
            Some((chain, key, _, _)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(tls_err)?,
            None => builder.with_no_client_auth(),
        };
        let name = match (&files.server_name, &files.ca) {
            (Some(n), _) => Some(n.clone()),
            (None, Some(_)) => Some(SERVER_NAME.to_string()),
            (None, None) => None,
        };
        let server_name = name
            .map(|n| {
                ServerName::try_from(n.clone()).map_err(|_| format!("invalid server name {n}"))
            })
            .transpose()?;
        Ok(Some(Tls {
            server,
            client: Arc::new(client),
            server_name,
            ca_pem,
            identity_pem: identity.map(|(_, _, c, k)| (c, k)),
            mutual: files.ca.is_some(),
        }))
    }

    /// Accepts TLS connections (this process has a certificate), if it can.
    pub fn acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.server.clone().map(tokio_rustls::TlsAcceptor::from)
    }

    pub fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(self.client.clone())
    }

    /// The name to check a server's certificate against when dialling `host`.
    pub fn name_for(&self, host: &str) -> Result<ServerName<'static>, String> {
        match &self.server_name {
            Some(n) => Ok(n.clone()),
            None => ServerName::try_from(host.to_string())
                .map_err(|_| format!("{host} is not a name a certificate can hold")),
        }
    }

    /// Whether peers must present certificates.
    pub fn is_mutual(&self) -> bool {
        self.mutual
    }

    /// The same settings for tonic's client channel.
    pub fn tonic_client(&self, host: &str) -> Result<tonic::transport::ClientTlsConfig, String> {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};
        let mut c = ClientTlsConfig::new();
        c = match &self.ca_pem {
            Some(ca) => c.ca_certificate(Certificate::from_pem(ca)),
            None => c.with_webpki_roots(),
        };
        if let Some((cert, key)) = &self.identity_pem {
            c = c.identity(Identity::from_pem(cert, key));
        }
        let name = match &self.server_name {
            Some(n) => n.to_str().into_owned(),
            None => host.to_string(),
        };
        Ok(c.domain_name(name))
    }
}

/// Which roles a peer's certificate grants: `None` when it names none
/// (it may then act in any role, like a shared token).
pub fn cert_roles(der: &CertificateDer<'_>) -> Option<Vec<crate::auth::Role>> {
    use crate::auth::Role;
    let cert = webpki::EndEntityCert::try_from(der).ok()?;
    let names = |n: &str| {
        ServerName::try_from(n)
            .ok()
            .is_some_and(|s| cert.verify_is_valid_for_subject_name(&s).is_ok())
    };
    let roles: Vec<Role> = [(WORKER_ROLE, Role::Worker), (CLIENT_ROLE, Role::Client)]
        .into_iter()
        .filter(|(n, _)| names(n))
        .map(|(_, r)| r)
        .collect();
    (!roles.is_empty()).then_some(roles)
}

/// Writes a new CA and certificates for a scheduler, workers and clients
/// into `dir` (`ca.pem`, `ca.key`, `scheduler.pem`, `scheduler.key`,
/// `worker.pem`, `worker.key`, `client.pem`, `client.key`; keys readable by
/// the owner only). Every certificate names `accel`, `localhost`,
/// 127.0.0.1 and `hosts`; the worker's and client's name their role.
pub fn make_certs(dir: &Path, hosts: &[String]) -> Result<Vec<PathBuf>, String> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let err = |e: rcgen::Error| format!("making certificates: {e}");
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    let mut write = |name: &str, text: &str, private: bool| -> Result<(), String> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        if private {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
        }
        written.push(path);
        Ok(())
    };
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "accel cluster CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    write("ca.pem", &ca_cert.pem(), false)?;
    write("ca.key", &ca_key.serialize_pem(), true)?;
    let issuer = Issuer::new(ca, ca_key);
    for (who, role) in [
        ("scheduler", None),
        ("worker", Some(WORKER_ROLE)),
        ("client", Some(CLIENT_ROLE)),
    ] {
        let mut names = vec![
            SERVER_NAME.to_string(),
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ];
        names.extend(hosts.iter().cloned());
        names.extend(role.map(str::to_string));
        let mut params = CertificateParams::new(names).map_err(err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("accel {who}"));
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().map_err(err)?;
        let cert = params.signed_by(&key, &issuer).map_err(err)?;
        write(&format!("{who}.pem"), &cert.pem(), false)?;
        write(&format!("{who}.key"), &key.serialize_pem(), true)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_certificates_load_and_name_their_roles() {
        let dir = std::env::temp_dir().join(format!("accel-certs-{}", std::process::id()));
        let written = make_certs(&dir, &["node1".into()]).unwrap();
        assert_eq!(written.len(), 8);
        for who in ["scheduler", "worker", "client"] {
            let files = TlsFiles {
                cert: Some(dir.join(format!("{who}.pem"))),
                key: Some(dir.join(format!("{who}.key"))),
                ca: Some(dir.join("ca.pem")),
                server_name: None,
            };
            let tls = Tls::load(&files).unwrap().unwrap();
            assert!(tls.acceptor().is_some() && tls.is_mutual());
            let pem = std::fs::read_to_string(dir.join(format!("{who}.pem"))).unwrap();
            let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
            let roles = cert_roles(&der);
            use crate::auth::Role;
            match who {
                "worker" => assert_eq!(roles, Some(vec![Role::Worker])),
                "client" => assert_eq!(roles, Some(vec![Role::Client])),
                _ => assert_eq!(roles, None),
            }
        }
        let only_key = TlsFiles {
            key: Some(dir.join("client.key")),
            ..TlsFiles::default()
        };
        assert!(Tls::load(&only_key).unwrap_err().contains("go together"));
        let missing = TlsFiles {
            ca: Some(dir.join("nope.pem")),
            ..TlsFiles::default()
        };
        assert!(Tls::load(&missing).unwrap_err().contains("nope.pem"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
