//! Identities: what a participant or a validator shows a node (docs/SECURITY.md).
//!
//! An identity file (TOML, mode 0600, refused when others can read it) holds the holder's
//! X.509 certificate, issued by the network's CA (`tally pki issue`), the certificate's
//! private key, and the network's CA certificate, which the holder trusts for the other
//! side. The certificate binds the holder's name and [`Access`] role to the Ed25519 keys it
//! may sign records with; a node reads those from the certificate it verified, never from
//! the file's `name` and `role` lines, which are there for people and tools.
//!
//! [`Identity::client_config`] and [`Identity::server_config`] build the rustls
//! configurations: TLS 1.3 only, the ring provider, the network's CA as the only root.

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the holder of a certificate may do (docs/SECURITY.md, "Roles").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// The central bank's operator console: central-bank operations; reads everything.
    CentralBank,
    /// A bank's gateway: submits records debiting its accounts and its customers'; reads
    /// those accounts only.
    Bank,
    /// The tax authority: sets tax rates, reads tax records and reports.
    TaxAuthority,
    /// An auditor: reads everything, moves nothing.
    Auditor,
    /// Monitoring: reads /metrics only.
    Monitoring,
    /// A validator (and a node alone): serves clients and joins validator links.
    Validator,
}

impl Access {
    /// Every role, in a fixed order (counters, tables).
    pub const ALL: [Access; 6] = [
        Access::CentralBank,
        Access::Bank,
        Access::TaxAuthority,
        Access::Auditor,
        Access::Monitoring,
        Access::Validator,
    ];

    /// The role's name in certificates, files and messages.
    pub fn name(self) -> &'static str {
        match self {
            Access::CentralBank => "central_bank",
            Access::Bank => "bank",
            Access::TaxAuthority => "tax_authority",
            Access::Auditor => "auditor",
            Access::Monitoring => "monitoring",
            Access::Validator => "validator",
        }
    }

    /// The role of a name written by [`Access::name`].
    pub fn from_name(name: &str) -> Option<Access> {
        Access::ALL.into_iter().find(|access| access.name() == name)
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors reading, writing or using an identity file.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read identity file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write identity file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("identity file {path} already exists: refusing to overwrite it (remove it first)")]
    Exists { path: PathBuf },
    #[error("identity file {path} is readable by others (mode {mode:o}): run `chmod 600` on it")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("identity file {path} is not a valid identity file: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("identity {name}: {reason}")]
    Invalid { name: String, reason: String },
}

/// An identity: certificate, private key and the network's CA certificate, all PEM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The holder's name (as in its certificate's common name; for people and tools).
    pub name: String,
    /// The holder's role (as in its certificate; for people and tools).
    pub role: Access,
    /// The network the certificate was issued for.
    pub network_id: u64,
    /// Hex serial number of the certificate: what a revocation names.
    pub serial: String,
    /// The holder's certificate (PEM).
    pub certificate: String,
    /// The certificate's private key (PKCS #8 PEM).
    pub private_key: String,
    /// The network's CA certificate (PEM): the only root the holder trusts.
    pub ca_certificate: String,
}

/// The crypto provider of every TLS configuration of the project: ring, which builds with
/// the C compiler alone. rustls marks it deprecated because it has no post-quantum key
/// exchange (docs/SECURITY.md, "What TLS does not stop").
#[allow(deprecated)]
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Identity {
    /// Reads an identity file; refuses one that others can read.
    pub fn load(path: &Path) -> Result<Identity, IdentityError> {
        let read_error = |source| IdentityError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mode = std::fs::metadata(path)
            .map_err(read_error)?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::Permissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        let malformed = |reason: String| IdentityError::Malformed {
            path: path.to_path_buf(),
            reason,
        };
        let identity: Identity = toml::from_str(&text).map_err(|e| malformed(e.to_string()))?;
        identity
            .certificate_chain()
            .and_then(|_| identity.key())
            .and_then(|_| identity.ca())
            .map_err(|error| match error {
                IdentityError::Invalid { reason, .. } => malformed(reason),
                other => other,
            })?;
        Ok(identity)
    }

    /// Writes the identity to a new file with mode 0600. Refuses to overwrite.
    pub fn save(&self, path: &Path) -> Result<(), IdentityError> {
        let text = format!(
            "# A Tally identity (`tally pki issue`): keep it private. docs/SECURITY.md\n{}",
            toml::to_string(self).expect("an identity always serialises")
        );
        let mut handle = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::AlreadyExists => IdentityError::Exists {
                    path: path.to_path_buf(),
                },
                _ => IdentityError::Write {
                    path: path.to_path_buf(),
                    source,
                },
            })?;
        handle
            .write_all(text.as_bytes())
            .and_then(|()| handle.sync_all())
            .map_err(|source| IdentityError::Write {
                path: path.to_path_buf(),
                source,
            })
    }

    fn invalid(&self, reason: String) -> IdentityError {
        IdentityError::Invalid {
            name: self.name.clone(),
            reason,
        }
    }

    /// The certificate chain (the holder's certificate first), DER.
    pub fn certificate_chain(&self) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.certificate.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| self.invalid(format!("certificate: {e}")))?;
        if chain.is_empty() {
            return Err(self.invalid("certificate: no PEM certificate in it".into()));
        }
        Ok(chain)
    }

    /// The private key, DER.
    pub fn key(&self) -> Result<PrivateKeyDer<'static>, IdentityError> {
        PrivateKeyDer::from_pem_slice(self.private_key.as_bytes())
            .map_err(|e| self.invalid(format!("private_key: {e}")))
    }

    /// The network's CA certificate, DER.
    pub fn ca(&self) -> Result<CertificateDer<'static>, IdentityError> {
        CertificateDer::from_pem_slice(self.ca_certificate.as_bytes())
            .map_err(|e| self.invalid(format!("ca_certificate: {e}")))
    }

    /// The roots this identity trusts: the network's CA alone.
    pub fn roots(&self) -> Result<Arc<RootCertStore>, IdentityError> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca()?)
            .map_err(|e| self.invalid(format!("ca_certificate: {e}")))?;
        Ok(Arc::new(roots))
    }

    /// A TLS 1.3 client configuration presenting this identity and trusting the network's
    /// CA for the node's certificate (checked against the address dialled).
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, IdentityError> {
        let verifier =
            WebPkiServerVerifier::builder_with_provider(self.roots()?, crypto_provider())
                .build()
                .map_err(|e| self.invalid(format!("server verifier: {e}")))?;
        let config = ClientConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| self.invalid(format!("TLS configuration: {e}")))?
            .with_webpki_verifier(verifier)
            .with_client_auth_cert(self.certificate_chain()?, self.key()?)
            .map_err(|e| self.invalid(format!("certificate and key: {e}")))?;
        Ok(Arc::new(config))
    }

    /// A TLS 1.3 server configuration presenting this identity and checking clients'
    /// certificates with `verifier` (a node's: the network's CA, validity, revocation).
    pub fn server_config(
        &self,
        verifier: Arc<dyn ClientCertVerifier>,
    ) -> Result<Arc<ServerConfig>, IdentityError> {
        let config = ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| self.invalid(format!("TLS configuration: {e}")))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.certificate_chain()?, self.key()?)
            .map_err(|e| self.invalid(format!("certificate and key: {e}")))?;
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Identity {
        Identity {
            name: "bank-1".into(),
            role: Access::Bank,
            network_id: 7,
            serial: "01".into(),
            certificate: "not pem".into(),
            private_key: "not pem".into(),
            ca_certificate: "not pem".into(),
        }
    }

    #[test]
    fn role_names_round_trip() {
        for access in Access::ALL {
            assert_eq!(Access::from_name(access.name()), Some(access));
        }
        assert_eq!(Access::from_name("banker"), None);
    }

    #[test]
    fn files_others_can_read_or_without_pem_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bank.identity");
        sample().save(&path).unwrap();
        assert!(matches!(
            sample().save(&path),
            Err(IdentityError::Exists { .. })
        ));
        let error = Identity::load(&path).unwrap_err().to_string();
        assert!(error.contains("certificate: no PEM certificate"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Identity::load(&path),
            Err(IdentityError::Permissions { mode: 0o644, .. })
        ));
        let missing = dir.path().join("missing");
        assert!(matches!(
            Identity::load(&missing),
            Err(IdentityError::Read { .. })
        ));
    }
}
