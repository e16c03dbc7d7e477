//! Commit certificates and equivocation evidence.
//!
//! A certificate is the proof that a block is final: precommits for one (height, round,
//! value) signed by a quorum (`2f + 1`) of the epoch's validators. Anyone holding the
//! validator set can check it without trusting the node that produced it.
//!
//! Certificate wire format (little-endian): epoch u64, height u64, round u32, count u32,
//! value [32], then `count` entries of (public key [32], signature [64]). Total
//! `56 + 96 * count` bytes, with `count` at most [`VALIDATORS_MAX`].

use super::message::{signing_bytes, Body, SignedMessage, VoteKind};
use super::validators::{short_hex, ValidatorSet, VALIDATORS_MAX};
use super::BlockId;
use ed25519_zebra::Signature;

/// Fixed header of an encoded certificate.
pub const CERTIFICATE_HEADER_BYTES: usize = 56;
/// Bytes per signature entry of an encoded certificate.
pub const CERTIFICATE_ENTRY_BYTES: usize = 96;
/// Largest encoded certificate.
pub const CERTIFICATE_BYTES_MAX: usize =
    CERTIFICATE_HEADER_BYTES + CERTIFICATE_ENTRY_BYTES * VALIDATORS_MAX;

/// One validator's precommit signature inside a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CommitSignature {
    pub validator: [u8; 32],
    pub signature: [u8; 64],
}

/// Proof that `value` was decided at `height`: a quorum of precommits from round `round`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Certificate {
    pub epoch: u64,
    pub height: u64,
    pub round: u32,
    pub value: BlockId,
    /// Sorted by validator key, one per validator.
    pub signatures: Vec<CommitSignature>,
}

/// Why a certificate does not prove a decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("certificate is for epoch {certificate}, the validator set is epoch {set}: verify with the set of the certificate's height")]
    EpochMismatch { certificate: u64, set: u64 },
    #[error("certificate has {count} signatures, more than the maximum {max}: malformed")]
    TooManySignatures { count: usize, max: usize },
    #[error("certificate signer {validator} is not a validator of the epoch: forged or wrong set")]
    UnknownValidator { validator: String },
    #[error("certificate lists validator {validator} twice: malformed or forged")]
    DuplicateValidator { validator: String },
    #[error("certificate signature of validator {validator} is invalid: forged, altered, or from another network")]
    BadSignature { validator: String },
    #[error(
        "certificate has {have} valid signatures for block {value}, a quorum is {need}: not final"
    )]
    NotEnoughSignatures {
        have: usize,
        need: usize,
        value: String,
    },
    #[error("certificate is {actual} bytes, expected {expected} for {count} signatures: cut or malformed")]
    Length {
        expected: usize,
        actual: usize,
        count: usize,
    },
}

impl Certificate {
    /// The precommit message that signature `entry` signs.
    pub fn precommit(&self, entry: &CommitSignature) -> SignedMessage {
        SignedMessage::from_parts(
            Body::Vote {
                kind: VoteKind::Precommit,
                height: self.height,
                round: self.round,
                value: Some(self.value),
            },
            entry.validator,
            entry.signature,
        )
    }

    /// Checks that a quorum of `set` signed precommits for (height, round, value) on `set`'s
    /// network. `set` must be the set of the certificate's height (same epoch).
    ///
    /// Errors: [`CertificateError::EpochMismatch`], [`CertificateError::TooManySignatures`],
    /// [`CertificateError::UnknownValidator`], [`CertificateError::DuplicateValidator`],
    /// [`CertificateError::BadSignature`], [`CertificateError::NotEnoughSignatures`].
    pub fn verify(&self, set: &ValidatorSet) -> Result<(), CertificateError> {
        if self.epoch != set.epoch() {
            return Err(CertificateError::EpochMismatch {
                certificate: self.epoch,
                set: set.epoch(),
            });
        }
        if self.signatures.len() > set.len() {
            return Err(CertificateError::TooManySignatures {
                count: self.signatures.len(),
                max: set.len(),
            });
        }
        let mut seen = vec![false; set.len()];
        let body = Body::Vote {
            kind: VoteKind::Precommit,
            height: self.height,
            round: self.round,
            value: Some(self.value),
        };
        for entry in &self.signatures {
            let index = set.index_of(&entry.validator).ok_or_else(|| {
                CertificateError::UnknownValidator {
                    validator: hex::encode(entry.validator),
                }
            })?;
            if std::mem::replace(&mut seen[index], true) {
                return Err(CertificateError::DuplicateValidator {
                    validator: hex::encode(entry.validator),
                });
            }
            let message = signing_bytes(&body, &entry.validator, set.network_id());
            set.verification_key(index)
                .verify(&Signature::from_bytes(&entry.signature), &message)
                .map_err(|_| CertificateError::BadSignature {
                    validator: hex::encode(entry.validator),
                })?;
        }
        if self.signatures.len() < set.quorum() {
            return Err(CertificateError::NotEnoughSignatures {
                have: self.signatures.len(),
                need: set.quorum(),
                value: short_hex(&self.value),
            });
        }
        Ok(())
    }

    /// Wire bytes (see the module comment).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CERTIFICATE_HEADER_BYTES + self.signatures.len() * 96);
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&self.height.to_le_bytes());
        out.extend_from_slice(&self.round.to_le_bytes());
        out.extend_from_slice(&(self.signatures.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.value);
        for entry in &self.signatures {
            out.extend_from_slice(&entry.validator);
            out.extend_from_slice(&entry.signature);
        }
        out
    }

    /// Parses wire bytes; never panics. Signatures are not checked: call `verify`.
    ///
    /// Errors: [`CertificateError::Length`] when `bytes` is shorter than the header or not
    /// exactly the size its count says; [`CertificateError::TooManySignatures`] when the count
    /// is above [`VALIDATORS_MAX`].
    pub fn decode(bytes: &[u8]) -> Result<Certificate, CertificateError> {
        if bytes.len() < CERTIFICATE_HEADER_BYTES {
            return Err(CertificateError::Length {
                expected: CERTIFICATE_HEADER_BYTES,
                actual: bytes.len(),
                count: 0,
            });
        }
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8"));
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4"));
        let count = u32_at(20) as usize;
        if count > VALIDATORS_MAX {
            return Err(CertificateError::TooManySignatures {
                count,
                max: VALIDATORS_MAX,
            });
        }
        let expected = CERTIFICATE_HEADER_BYTES + count * CERTIFICATE_ENTRY_BYTES;
        if bytes.len() != expected {
            return Err(CertificateError::Length {
                expected,
                actual: bytes.len(),
                count,
            });
        }
        let signatures = bytes[CERTIFICATE_HEADER_BYTES..]
            .chunks_exact(CERTIFICATE_ENTRY_BYTES)
            .map(|chunk| CommitSignature {
                validator: chunk[..32].try_into().expect("32"),
                signature: chunk[32..].try_into().expect("64"),
            })
            .collect();
        Ok(Certificate {
            epoch: u64_at(0),
            height: u64_at(8),
            round: u32_at(16),
            value: bytes[24..56].try_into().expect("32"),
            signatures,
        })
    }
}

/// Two messages signed by one validator for the same height, round and type that say
/// different things: proof that the validator is Byzantine. Honest validators never sign
/// such a pair (they persist what they signed before sending it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub first: SignedMessage,
    pub second: SignedMessage,
}

/// Why a pair of messages does not prove equivocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    #[error("the two messages have different senders")]
    DifferentSenders,
    #[error("the two messages are not for the same height, round and type")]
    DifferentSlot,
    #[error("the two messages say the same thing: no equivocation")]
    SameContent,
    #[error("a message of the evidence does not verify: {0}")]
    Signature(#[from] super::message::VerifyError),
}

impl Evidence {
    /// Validator that equivocated.
    pub fn validator(&self) -> &[u8; 32] {
        self.first.sender()
    }

    /// Checks the evidence against `set` (the set of the messages' height): same sender,
    /// same slot, different content, both signatures valid.
    ///
    /// Errors: [`EvidenceError`] variants.
    pub fn verify(&self, set: &ValidatorSet) -> Result<(), EvidenceError> {
        if self.first.sender() != self.second.sender() {
            return Err(EvidenceError::DifferentSenders);
        }
        let same_slot = match (self.first.body(), self.second.body()) {
            (Body::Proposal { .. }, Body::Proposal { .. }) => true,
            (Body::Vote { kind: a, .. }, Body::Vote { kind: b, .. }) => a == b,
            _ => false,
        } && self.first.body().height() == self.second.body().height()
            && self.first.body().round() == self.second.body().round();
        if !same_slot {
            return Err(EvidenceError::DifferentSlot);
        }
        if self.first.body() == self.second.body() {
            return Err(EvidenceError::SameContent);
        }
        self.first.verify(set)?;
        self.second.verify(set)?;
        Ok(())
    }
}
