//! TLS of a node's ports (docs/SECURITY.md): the node's identity, the check of every peer's
//! certificate (the network's CA, validity, revocation) and the reasons a connection is
//! refused.
//!
//! A node presents its own certificate (role `validator`) and asks every client and every
//! other validator for one. [`NetworkVerifier`] accepts a certificate only when it chains to
//! the network's CA, is within its validity, is not revoked, and names this network and a
//! role; rustls then completes the handshake, and the connection's owner reads the holder
//! with [`tally_pki::read_certificate`].

pub use crate::revocation::Revocations;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::sync::Arc;
use tally_pki::{read_certificate, serial_of, Access, Holder, Identity};
use tally_protocol::identity::crypto_provider;

/// Why a TLS connection was refused before any frame: one counter each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsRefusal {
    /// The peer presented no certificate.
    NoCertificate,
    /// The certificate does not chain to this network's CA (self-signed, another network's).
    UnknownCa,
    Expired,
    NotYetValid,
    /// The certificate's serial number is on the revocation list.
    Revoked,
    /// The certificate chains to the CA but is not one of this network's participants (no
    /// role, another network id, wrong key usage, bad signature).
    BadCertificate,
    /// The peer refused this node's certificate (an alert from it).
    PeerRefused,
    /// Not TLS, or TLS this node does not speak (version, cipher suites).
    Protocol,
    /// The handshake did not finish within the handshake timeout.
    Timeout,
}

impl TlsRefusal {
    pub const ALL: [TlsRefusal; 9] = [
        TlsRefusal::NoCertificate,
        TlsRefusal::UnknownCa,
        TlsRefusal::Expired,
        TlsRefusal::NotYetValid,
        TlsRefusal::Revoked,
        TlsRefusal::BadCertificate,
        TlsRefusal::PeerRefused,
        TlsRefusal::Protocol,
        TlsRefusal::Timeout,
    ];

    /// The reason's name in logs and in the `reason` label of the counters.
    pub fn name(self) -> &'static str {
        match self {
            TlsRefusal::NoCertificate => "no_certificate",
            TlsRefusal::UnknownCa => "unknown_ca",
            TlsRefusal::Expired => "expired",
            TlsRefusal::NotYetValid => "not_yet_valid",
            TlsRefusal::Revoked => "revoked",
            TlsRefusal::BadCertificate => "bad_certificate",
            TlsRefusal::PeerRefused => "peer_refused",
            TlsRefusal::Protocol => "protocol",
            TlsRefusal::Timeout => "handshake_timeout",
        }
    }

    /// The reason's place in [`TlsRefusal::ALL`] (counter arrays).
    pub fn index(self) -> usize {
        TlsRefusal::ALL
            .iter()
            .position(|r| *r == self)
            .expect("listed in ALL")
    }

    /// The reason of a TLS failure.
    pub fn of(error: &rustls::Error) -> TlsRefusal {
        use rustls::Error;
        match error {
            Error::NoCertificatesPresented => TlsRefusal::NoCertificate,
            Error::InvalidCertificate(error) => match error {
                CertificateError::UnknownIssuer => TlsRefusal::UnknownCa,
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    TlsRefusal::Expired
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    TlsRefusal::NotYetValid
                }
                CertificateError::Revoked => TlsRefusal::Revoked,
                _ => TlsRefusal::BadCertificate,
            },
            Error::AlertReceived(_) => TlsRefusal::PeerRefused,
            _ => TlsRefusal::Protocol,
        }
    }
}

/// The node's check of a peer's certificate (clients and validators alike).
#[derive(Debug)]
pub struct NetworkVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    network_id: u64,
    revocations: Arc<Revocations>,
}

impl ClientCertVerifier for NetworkVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let bad = |reason: String| {
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                Arc::new(std::io::Error::other(reason)),
            )))
        };
        let serial = serial_of(end_entity).map_err(|e| bad(e.to_string()))?;
        if self.revocations.is_revoked(&serial) {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
        }
        let holder = read_certificate(end_entity).map_err(|e| bad(e.to_string()))?;
        if holder.network_id != self.network_id {
            return Err(bad(format!(
                "the certificate is for network {}, this is network {}",
                holder.network_id, self.network_id
            )));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Why a node's TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("{0}")]
    Identity(#[from] tally_pki::IdentityError),
    #[error("the node's identity: {0}")]
    Certificate(String),
}

/// A node's TLS: its identity, the configurations of its ports, the revocation list.
pub struct NodeTls {
    holder: Holder,
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    revocations: Arc<Revocations>,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTls")
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

impl NodeTls {
    /// The TLS of a node holding `identity` (a validator certificate), refusing the
    /// certificates in `revocations`.
    pub fn new(
        identity: &Identity,
        revocations: Arc<Revocations>,
    ) -> Result<NodeTls, TlsSetupError> {
        let chain = identity.certificate_chain()?;
        let holder =
            read_certificate(&chain[0]).map_err(|e| TlsSetupError::Certificate(e.to_string()))?;
        if holder.access != Access::Validator {
            return Err(TlsSetupError::Certificate(format!(
                "{} is a {} certificate; a node serves with a validator certificate",
                holder.name, holder.access
            )));
        }
        let inner =
            WebPkiClientVerifier::builder_with_provider(identity.roots()?, crypto_provider())
                .build()
                .map_err(|e| TlsSetupError::Certificate(format!("client verifier: {e}")))?;
        let verifier = Arc::new(NetworkVerifier {
            inner,
            network_id: holder.network_id,
            revocations: Arc::clone(&revocations),
        });
        Ok(NodeTls {
            server: identity.server_config(verifier)?,
            client: identity.client_config()?,
            holder,
            revocations,
        })
    }

    /// The node's own certificate's holder.
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// A server-side TLS connection for an accepted stream.
    pub(crate) fn accept(&self) -> rustls::Connection {
        rustls::ServerConnection::new(Arc::clone(&self.server))
            .expect("a server configuration of TLS 1.3 makes connections")
            .into()
    }

    /// A server-side TLS connection of the blocking kind (the metrics endpoint).
    pub(crate) fn accept_server(&self) -> rustls::ServerConnection {
        rustls::ServerConnection::new(Arc::clone(&self.server))
            .expect("a server configuration of TLS 1.3 makes connections")
    }

    /// A client-side TLS connection to a validator at `addr` (its certificate names it).
    pub(crate) fn dial(&self, addr: std::net::SocketAddr) -> rustls::Connection {
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        rustls::ClientConnection::new(Arc::clone(&self.client), name)
            .expect("a client configuration of TLS 1.3 makes connections")
            .into()
    }

    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.revocations
    }
}
