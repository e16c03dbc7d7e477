//! The handshake of a validator link: hello (a fresh nonce) and auth (the validator key's
//! signature over the other side's nonce), before any other frame.

use super::*;

/// Why a handshake payload does not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("peer hello of {0} bytes, expected {PEER_HELLO_BYTES}")]
    HelloLength(usize),
    #[error("peer hello reserved bytes must be zero, got {0:02x?}")]
    HelloReserved([u8; 6]),
    #[error("peer auth of {0} bytes, expected {PEER_AUTH_BYTES}")]
    AuthLength(usize),
}

/// The first frame each side sends (type `0x40`).
///
/// ```text
/// offset size field
///      0    2 version (u16 LE)
///      2    6 reserved, zero
///      8    8 network id (u64 LE)
///     16   32 genesis hash
///     48   32 sender's validator public key
///     80   32 nonce: fresh random bytes for this connection
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerHello {
    pub version: u16,
    pub network_id: u64,
    pub genesis_hash: [u8; 32],
    pub public_key: [u8; 32],
    pub nonce: [u8; 32],
}

impl PeerHello {
    /// The payload bytes.
    pub fn to_bytes(&self) -> [u8; PEER_HELLO_BYTES] {
        let mut out = [0u8; PEER_HELLO_BYTES];
        out[..2].copy_from_slice(&self.version.to_le_bytes());
        out[8..16].copy_from_slice(&self.network_id.to_le_bytes());
        out[16..48].copy_from_slice(&self.genesis_hash);
        out[48..80].copy_from_slice(&self.public_key);
        out[80..112].copy_from_slice(&self.nonce);
        out
    }

    /// Appends the whole frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        frame::encode_raw(PEER_HELLO, &[&self.to_bytes()], out);
    }

    /// Decodes a payload. The version is returned as sent (the link checks it).
    pub fn decode(payload: &[u8]) -> Result<PeerHello, HandshakeError> {
        if payload.len() != PEER_HELLO_BYTES {
            return Err(HandshakeError::HelloLength(payload.len()));
        }
        let reserved: [u8; 6] = payload[2..8].try_into().expect("6 bytes");
        if reserved != [0; 6] {
            return Err(HandshakeError::HelloReserved(reserved));
        }
        Ok(PeerHello {
            version: u16::from_le_bytes(payload[..2].try_into().expect("2 bytes")),
            network_id: u64::from_le_bytes(payload[8..16].try_into().expect("8 bytes")),
            genesis_hash: payload[16..48].try_into().expect("32 bytes"),
            public_key: payload[48..80].try_into().expect("32 bytes"),
            nonce: payload[80..112].try_into().expect("32 bytes"),
        })
    }
}

/// The second frame each side sends (type `0x41`): a 64-byte Ed25519 signature over
/// [`auth_signing_bytes`] with the sender as signer and the other side's nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAuth {
    pub signature: [u8; 64],
}

impl PeerAuth {
    /// Signs for the link from `key` (the signer) to `receiver`, answering its `nonce`.
    pub fn sign(
        key: &SigningKey,
        network_id: u64,
        genesis_hash: &[u8; 32],
        receiver: &[u8; 32],
        receiver_nonce: &[u8; 32],
    ) -> PeerAuth {
        let signer: [u8; 32] = VerificationKey::from(key).into();
        let message =
            auth_signing_bytes(network_id, genesis_hash, &signer, receiver, receiver_nonce);
        PeerAuth {
            signature: key.sign(&message).to_bytes(),
        }
    }

    /// Checks the signature of `signer` (ZIP-215, the project's one rule).
    pub fn verify(
        &self,
        signer: &VerificationKey,
        network_id: u64,
        genesis_hash: &[u8; 32],
        receiver: &[u8; 32],
        receiver_nonce: &[u8; 32],
    ) -> bool {
        let signer_bytes: [u8; 32] = (*signer).into();
        let message = auth_signing_bytes(
            network_id,
            genesis_hash,
            &signer_bytes,
            receiver,
            receiver_nonce,
        );
        signer
            .verify(&Signature::from_bytes(&self.signature), &message)
            .is_ok()
    }

    /// Appends the whole frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        frame::encode_raw(PEER_AUTH, &[&self.signature], out);
    }

    /// Decodes a payload.
    pub fn decode(payload: &[u8]) -> Result<PeerAuth, HandshakeError> {
        let signature: [u8; 64] = payload
            .try_into()
            .map_err(|_| HandshakeError::AuthLength(payload.len()))?;
        Ok(PeerAuth { signature })
    }
}

/// The bytes a [`PeerAuth`] signature covers: domain tag, network id (u64 LE), genesis
/// hash, signer's key, receiver's key, receiver's nonce.
pub fn auth_signing_bytes(
    network_id: u64,
    genesis_hash: &[u8; 32],
    signer: &[u8; 32],
    receiver: &[u8; 32],
    receiver_nonce: &[u8; 32],
) -> [u8; PEER_AUTH_SIGNING_BYTES] {
    let mut out = [0u8; PEER_AUTH_SIGNING_BYTES];
    out[..16].copy_from_slice(&PEER_AUTH_DOMAIN_TAG);
    out[16..24].copy_from_slice(&network_id.to_le_bytes());
    out[24..56].copy_from_slice(genesis_hash);
    out[56..88].copy_from_slice(signer);
    out[88..120].copy_from_slice(receiver);
    out[120..152].copy_from_slice(receiver_nonce);
    out
}
