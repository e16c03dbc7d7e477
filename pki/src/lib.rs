//! tally-pki: the network's public-key infrastructure, run by the operator with `tally pki`
//! alone (docs/SECURITY.md).
//!
//! - [`Ca`]: the network's certificate authority (an Ed25519 key, `ca.key`, mode 0600, and
//!   its self-signed certificate, `ca.pem`), held by the central bank or the operator.
//! - [`Ca::issue`]: a certificate for a validator or a participant, returned as an
//!   [`Identity`] (certificate, private key, the CA's certificate) ready to be saved.
//! - [`read_certificate`]: what a node reads from a certificate it has verified: the holder's
//!   name, [`Access`] role, network and the Ed25519 keys it may sign records with.
//!
//! A certificate carries the holder's name as its common name and the rest as URIs in its
//! subject alternative names, so that any X.509 tool shows them:
//! `urn:tally:network:ID`, `urn:tally:role:ROLE` and one `urn:tally:signer:HEX` per key.
//! Validators' certificates also name the hosts (IP addresses or DNS names) where the node is
//! reached, which clients and other validators check as usual.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber, PKCS_ED25519,
};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
pub use tally_protocol::identity::{Access, Identity, IdentityError};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The CA's certificate file in a CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA's private key file in a CA directory (mode 0600).
pub const CA_KEY_FILE: &str = "ca.key";
/// Most signing keys one certificate binds.
pub const SIGNERS_MAX: usize = 256;
/// Longest holder name.
pub const NAME_BYTES_MAX: usize = 64;
/// Default lifetime of a participant's or validator's certificate.
pub const DEFAULT_VALIDITY_DAYS: u32 = 365;
/// Default lifetime of the CA's certificate.
pub const DEFAULT_CA_VALIDITY_DAYS: u32 = 10 * 365;

const URN: &str = "urn:tally:";

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("{path} already exists: refusing to overwrite it (remove it first)")]
    Exists { path: PathBuf },
    #[error("CA key {path} is readable by others (mode {mode:o}): run `chmod 600` on it")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("CA directory {dir}: {reason}")]
    BadCa { dir: PathBuf, reason: String },
    #[error("invalid certificate request: {0}")]
    Request(String),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// When a certificate is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// From a minute ago (clocks differ a little) for `days` days.
    pub fn days_from_now(days: u32) -> Validity {
        let now = SystemTime::now();
        Validity {
            not_before: now - Duration::from_secs(60),
            not_after: now + Duration::from_secs(u64::from(days) * 86_400),
        }
    }
}

/// What to certify.
#[derive(Clone, Debug)]
pub struct Request {
    /// The holder's name: 1 to [`NAME_BYTES_MAX`] of `A-Z a-z 0-9 . _ -`.
    pub name: String,
    pub access: Access,
    /// The Ed25519 keys the holder may sign records with (a validator: its validator key).
    pub signers: Vec<[u8; 32]>,
    /// Where a validator is reached (IP addresses or DNS names); empty for participants.
    pub hosts: Vec<String>,
    pub validity: Validity,
}

impl Request {
    /// Checks the request; the error names the field.
    pub fn check(&self) -> Result<(), PkiError> {
        let bad = |reason: String| Err(PkiError::Request(reason));
        if self.name.is_empty() || self.name.len() > NAME_BYTES_MAX {
            return bad(format!(
                "name must be 1 to {NAME_BYTES_MAX} bytes, got {}",
                self.name.len()
            ));
        }
        if let Some(c) = self
            .name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return bad(format!(
                "name {:?} has {c:?}: use A-Z a-z 0-9 . _ - only",
                self.name
            ));
        }
        if self.signers.len() > SIGNERS_MAX {
            return bad(format!(
                "{} signing keys: at most {SIGNERS_MAX} per certificate",
                self.signers.len()
            ));
        }
        for (i, key) in self.signers.iter().enumerate() {
            if ed25519_zebra::VerificationKey::try_from(*key).is_err() {
                return bad(format!(
                    "signer {i} ({}) is not an Ed25519 public key",
                    hex::encode(key)
                ));
            }
            if self.signers[..i].contains(key) {
                return bad(format!("signer {} is listed twice", hex::encode(key)));
            }
        }
        match self.access {
            Access::Auditor | Access::Monitoring if !self.signers.is_empty() => {
                return bad(format!(
                    "role {} moves nothing: its certificate binds no signing key",
                    self.access
                ));
            }
            Access::CentralBank | Access::Bank | Access::TaxAuthority
                if self.signers.is_empty() =>
            {
                return bad(format!(
                    "a {} certificate binds at least one signing key (--signer)",
                    self.access
                ));
            }
            Access::Validator if self.signers.len() != 1 => {
                return bad(format!(
                    "a validator certificate binds exactly its validator key, got {} keys",
                    self.signers.len()
                ));
            }
            Access::Validator if self.hosts.is_empty() => {
                return bad("a validator certificate names at least one host (--host)".into());
            }
            access if access != Access::Validator && !self.hosts.is_empty() => {
                return bad(format!(
                    "only validators name hosts; a {access} connects as a client"
                ));
            }
            _ => {}
        }
        for host in &self.hosts {
            if host.parse::<std::net::IpAddr>().is_err()
                && (host.is_empty()
                    || !host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')))
            {
                return bad(format!("host {host:?} is not an IP address or a DNS name"));
            }
        }
        if self.validity.not_after <= self.validity.not_before {
            return bad("the certificate would end before it begins".into());
        }
        Ok(())
    }
}

/// The network's certificate authority.
pub struct Ca {
    network_id: u64,
    key: KeyPair,
    /// The issuer as rcgen signs with it (its name, key identifier and key usages).
    issuer: rcgen::Certificate,
    /// The CA certificate as written in `ca.pem` and handed to every holder.
    pem: String,
}

fn ca_params(network_id: u64, validity: Validity) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, format!("Tally network {network_id} CA"));
    name.push(
        DnType::OrganizationName,
        format!("Tally network {network_id}"),
    );
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.subject_alt_names = vec![uri(format!("network:{network_id}"))];
    params.not_before = validity.not_before.into();
    params.not_after = validity.not_after.into();
    params.serial_number = Some(random_serial());
    params
}

fn uri(rest: String) -> SanType {
    SanType::URI(
        format!("{URN}{rest}")
            .try_into()
            .expect("an ASCII URI is an IA5 string"),
    )
}

/// 16 random bytes, the first in 0x01..=0x7f: a positive serial without leading zeros.
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f).max(1);
    SerialNumber::from_slice(&bytes)
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> PkiError + '_ {
    move |error| PkiError::Io {
        path: path.to_path_buf(),
        reason: error.to_string(),
    }
}

fn create_new(path: &Path, mode: u32, text: &str) -> Result<(), PkiError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::AlreadyExists => PkiError::Exists {
                path: path.to_path_buf(),
            },
            _ => io_error(path)(error),
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_error(path))
}

impl Ca {
    /// A new CA for network `network_id`.
    pub fn create(network_id: u64, validity: Validity) -> Result<Ca, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ED25519)?;
        let issuer = ca_params(network_id, validity).self_signed(&key)?;
        let pem = issuer.pem();
        Ok(Ca {
            network_id,
            key,
            issuer,
            pem,
        })
    }

    /// Writes `ca.pem` and `ca.key` (mode 0600) into `dir`, creating it; refuses to
    /// overwrite either.
    pub fn save(&self, dir: &Path) -> Result<(), PkiError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let key_path = dir.join(CA_KEY_FILE);
        let cert_path = dir.join(CA_CERT_FILE);
        if cert_path.exists() {
            return Err(PkiError::Exists { path: cert_path });
        }
        create_new(&key_path, 0o600, &self.key.serialize_pem())?;
        create_new(&cert_path, 0o644, &self.pem)
    }

    /// Reads a CA written by [`Ca::save`]; refuses a key that others can read.
    pub fn load(dir: &Path) -> Result<Ca, PkiError> {
        let key_path = dir.join(CA_KEY_FILE);
        let cert_path = dir.join(CA_CERT_FILE);
        let mode = std::fs::metadata(&key_path)
            .map_err(io_error(&key_path))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(PkiError::Permissions {
                path: key_path,
                mode,
            });
        }
        let bad = |reason: String| PkiError::BadCa {
            dir: dir.to_path_buf(),
            reason,
        };
        let key_text = std::fs::read_to_string(&key_path).map_err(io_error(&key_path))?;
        let key = KeyPair::from_pem(&key_text).map_err(|e| bad(format!("{CA_KEY_FILE}: {e}")))?;
        let pem = std::fs::read_to_string(&cert_path).map_err(io_error(&cert_path))?;
        let der = <rustls::pki_types::CertificateDer<'_> as rustls::pki_types::pem::PemObject>::from_pem_slice(pem.as_bytes())
            .map_err(|e| bad(format!("{CA_CERT_FILE}: {e}")))?;
        let (_, cert) = X509Certificate::from_der(&der)
            .map_err(|e| bad(format!("{CA_CERT_FILE}: not an X.509 certificate: {e}")))?;
        if cert.public_key().raw != key.public_key_der().as_slice() {
            return Err(bad(format!(
                "{CA_KEY_FILE} is not the key of {CA_CERT_FILE}"
            )));
        }
        let network_id = uris(&cert)
            .find_map(|u| u.strip_prefix("network:").map(str::to_string))
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| bad(format!("{CA_CERT_FILE} names no Tally network")))?;
        let validity = Validity {
            not_before: system_time(cert.validity().not_before.timestamp()),
            not_after: system_time(cert.validity().not_after.timestamp()),
        };
        // The issuer rcgen signs with: the same name, key and key usages as ca.pem.
        let issuer = ca_params(network_id, validity).self_signed(&key)?;
        Ok(Ca {
            network_id,
            key,
            issuer,
            pem,
        })
    }

    pub fn network_id(&self) -> u64 {
        self.network_id
    }

    /// The CA's certificate (PEM).
    pub fn certificate_pem(&self) -> &str {
        &self.pem
    }

    /// Issues a certificate for `request` with a new Ed25519 TLS key.
    pub fn issue(&self, request: &Request) -> Result<Identity, PkiError> {
        request.check()?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, request.name.clone());
        name.push(
            DnType::OrganizationName,
            format!("Tally network {}", self.network_id),
        );
        params.distinguished_name = name;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if request.access == Access::Validator {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        params.use_authority_key_identifier_extension = true;
        params.not_before = request.validity.not_before.into();
        params.not_after = request.validity.not_after.into();
        let serial = random_serial();
        params.serial_number = Some(serial.clone());
        let mut names = Vec::new();
        for host in &request.hosts {
            names.push(match host.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(host.clone().try_into()?),
            });
        }
        names.push(uri(format!("network:{}", self.network_id)));
        names.push(uri(format!("role:{}", request.access.name())));
        for key in &request.signers {
            names.push(uri(format!("signer:{}", hex::encode(key))));
        }
        params.subject_alt_names = names;
        let key = KeyPair::generate_for(&PKCS_ED25519)?;
        let cert = params.signed_by(&key, &self.issuer, &self.key)?;
        Ok(Identity {
            name: request.name.clone(),
            role: request.access,
            network_id: self.network_id,
            serial: hex::encode(serial.as_ref()),
            certificate: cert.pem(),
            private_key: key.serialize_pem(),
            ca_certificate: self.pem.clone(),
        })
    }
}

fn system_time(unix_seconds: i64) -> SystemTime {
    if unix_seconds >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix_seconds as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(unix_seconds.unsigned_abs())
    }
}

/// The subject alternative names of `cert` (none when it has no such extension).
fn alt_names<'a>(cert: &'a X509Certificate<'_>) -> &'a [GeneralName<'a>] {
    cert.subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| ext.value.general_names.as_slice())
        .unwrap_or(&[])
}

fn uris<'a>(cert: &'a X509Certificate<'_>) -> impl Iterator<Item = &'a str> + 'a {
    alt_names(cert).iter().filter_map(|name| match name {
        GeneralName::URI(text) => text.strip_prefix(URN),
        _ => None,
    })
}

fn hosts(cert: &X509Certificate<'_>) -> Vec<String> {
    alt_names(cert)
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_string()),
            GeneralName::IPAddress(ip) => match ip.len() {
                4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).ok()?).to_string()),
                16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).ok()?).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// What a certificate says about its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub name: String,
    pub access: Access,
    pub network_id: u64,
    /// Hex serial number (what a revocation names).
    pub serial: String,
    /// The keys the holder may sign records with.
    pub signers: Vec<[u8; 32]>,
    /// The addresses and names a validator's certificate is valid for (a server's name).
    pub hosts: Vec<String>,
    pub not_after: SystemTime,
}

/// The hex serial number of a certificate (DER), as [`Holder::serial`] writes it.
pub fn serial_of(der: &[u8]) -> Result<String, PkiError> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| PkiError::Certificate(format!("not an X.509 certificate: {e}")))?;
    Ok(serial_hex(&cert))
}

fn serial_hex(cert: &X509Certificate<'_>) -> String {
    let raw = cert.raw_serial();
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    hex::encode(&raw[start..])
}

/// Reads the holder of a certificate (DER). It does not verify the certificate: a node calls
/// it on the certificate its TLS layer has verified.
pub fn read_certificate(der: &[u8]) -> Result<Holder, PkiError> {
    let bad = |reason: String| PkiError::Certificate(reason);
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| bad(format!("not an X.509 certificate: {e}")))?;
    let name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or_else(|| bad("no common name".into()))?
        .to_string();
    let mut network_id = None;
    let mut access = None;
    let mut signers = Vec::new();
    for text in uris(&cert) {
        if let Some(id) = text.strip_prefix("network:") {
            network_id = Some(
                id.parse::<u64>()
                    .map_err(|_| bad(format!("network {id:?} is not a number")))?,
            );
        } else if let Some(role) = text.strip_prefix("role:") {
            access =
                Some(Access::from_name(role).ok_or_else(|| bad(format!("unknown role {role:?}")))?);
        } else if let Some(key) = text.strip_prefix("signer:") {
            let bytes = tally_protocol::keys::decode_hex32(key)
                .map_err(|reason| bad(format!("signer {key:?}: {reason}")))?;
            signers.push(bytes);
        }
    }
    Ok(Holder {
        name,
        access: access.ok_or_else(|| bad("names no Tally role".into()))?,
        network_id: network_id.ok_or_else(|| bad("names no Tally network".into()))?,
        serial: serial_hex(&cert),
        signers,
        hosts: hosts(&cert),
        not_after: system_time(cert.validity().not_after.timestamp()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(access: Access) -> Request {
        Request {
            name: "bank-1".into(),
            access,
            signers: vec![tally_protocol::keys::public_key_of(
                &tally_protocol::keys::generate_key(),
            )],
            hosts: Vec::new(),
            validity: Validity::days_from_now(1),
        }
    }

    #[test]
    fn a_certificate_carries_name_role_network_and_signers() {
        let ca = Ca::create(42, Validity::days_from_now(10)).unwrap();
        let request = request(Access::Bank);
        let identity = ca.issue(&request).unwrap();
        let chain = identity.certificate_chain().unwrap();
        let holder = read_certificate(&chain[0]).unwrap();
        assert_eq!(holder.name, "bank-1");
        assert_eq!(holder.access, Access::Bank);
        assert_eq!(holder.network_id, 42);
        assert_eq!(holder.signers, request.signers);
        assert_eq!(holder.serial, identity.serial);
        assert_eq!(serial_of(&chain[0]).unwrap(), identity.serial);
        assert_eq!(identity.ca().unwrap().as_ref(), {
            use rustls::pki_types::pem::PemObject;
            let der =
                rustls::pki_types::CertificateDer::from_pem_slice(ca.certificate_pem().as_bytes())
                    .unwrap();
            der.as_ref().to_vec()
        });
        identity.client_config().unwrap();
    }

    #[test]
    fn a_saved_ca_loads_and_issues_under_the_same_root() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::create(7, Validity::days_from_now(10)).unwrap();
        ca.save(dir.path()).unwrap();
        assert!(matches!(ca.save(dir.path()), Err(PkiError::Exists { .. })));
        let loaded = Ca::load(dir.path()).unwrap();
        assert_eq!(loaded.network_id(), 7);
        assert_eq!(loaded.certificate_pem(), ca.certificate_pem());
        let identity = loaded.issue(&request(Access::Bank)).unwrap();
        // The certificate chains to the saved root: a server trusting it accepts it.
        let roots = identity.roots().unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots,
            tally_protocol::identity::crypto_provider(),
        )
        .build()
        .unwrap();
        let chain = identity.certificate_chain().unwrap();
        verifier
            .verify_client_cert(&chain[0], &[], rustls::pki_types::UnixTime::now())
            .unwrap();
        std::fs::set_permissions(
            dir.path().join(CA_KEY_FILE),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        assert!(matches!(
            Ca::load(dir.path()),
            Err(PkiError::Permissions { mode: 0o640, .. })
        ));
    }

    #[test]
    fn bad_requests_are_refused_with_the_field() {
        let ca = Ca::create(1, Validity::days_from_now(10)).unwrap();
        let cases: Vec<(Request, &str)> = vec![
            (
                Request {
                    name: String::new(),
                    ..request(Access::Bank)
                },
                "name must be 1 to 64 bytes",
            ),
            (
                Request {
                    name: "bank one".into(),
                    ..request(Access::Bank)
                },
                "has ' '",
            ),
            (request(Access::Auditor), "role auditor moves nothing"),
            (
                Request {
                    signers: Vec::new(),
                    ..request(Access::Bank)
                },
                "binds at least one signing key",
            ),
            (request(Access::Validator), "names at least one host"),
            (
                Request {
                    hosts: vec!["127.0.0.1".into()],
                    ..request(Access::Bank)
                },
                "only validators name hosts",
            ),
            (
                Request {
                    // y = 2 has no x on the curve.
                    signers: vec![{
                        let mut key = [0u8; 32];
                        key[0] = 2;
                        key
                    }],
                    ..request(Access::Bank)
                },
                "is not an Ed25519 public key",
            ),
            (
                Request {
                    validity: Validity {
                        not_before: SystemTime::now(),
                        not_after: SystemTime::now() - Duration::from_secs(1),
                    },
                    ..request(Access::Bank)
                },
                "would end before it begins",
            ),
            (
                Request {
                    hosts: vec!["a host".into()],
                    ..request(Access::Validator)
                },
                "is not an IP address or a DNS name",
            ),
        ];
        for (request, expected) in cases {
            let error = ca
                .issue(&request)
                .err()
                .unwrap_or_else(|| panic!("{expected}: not refused"))
                .to_string();
            assert!(error.contains(expected), "{error} lacks {expected}");
        }
        let mut twice = request(Access::Bank);
        twice.signers.push(twice.signers[0]);
        assert!(ca
            .issue(&twice)
            .err()
            .unwrap()
            .to_string()
            .contains("listed twice"));
    }
}
