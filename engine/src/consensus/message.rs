//! The signed wire format of consensus messages: fixed size, little-endian, no serde.
//!
//! Every message is [`MESSAGE_BYTES`] = 152 bytes:
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 1 | kind: 1 proposal, 2 prevote, 3 precommit |
//! | 1 | 1 | flags: bit 0 = a value is present (must be set on a proposal) |
//! | 2 | 2 | reserved, zero |
//! | 4 | 4 | round, u32 (at most [`ROUND_MAX`]) |
//! | 8 | 8 | height, u64 |
//! | 16 | 4 | valid round, u32; [`NIL_ROUND`] means -1 (always for votes); else below round |
//! | 20 | 4 | reserved, zero |
//! | 24 | 32 | value (block id); all zero when no value (a nil vote) |
//! | 56 | 32 | sender's Ed25519 public key |
//! | 88 | 64 | Ed25519 signature |
//!
//! The signature covers [`CONSENSUS_DOMAIN_TAG`] (16 bytes), the network id (u64 LE) and the
//! body (offsets 0..88): a signature cannot be replayed on another network, nor confused with
//! a transaction signature (whose domain tag differs). Verification follows ZIP-215 through
//! ed25519-zebra, the project's one signature rule.

use super::validators::ValidatorSet;
use super::BlockId;
use ed25519_zebra::{Signature, SigningKey, VerificationKey};

/// Size of every consensus message on the wire.
pub const MESSAGE_BYTES: usize = 152;
/// Size of the signed body (everything but the signature).
pub const MESSAGE_BODY_BYTES: usize = 88;
/// Domain tag that starts every signed consensus message.
pub const CONSENSUS_DOMAIN_TAG: [u8; 16] = *b"TALLY-BFT-V1\0\0\0\0";
/// Size of the bytes a signature covers: tag, network id, body.
pub const SIGNING_MESSAGE_BYTES: usize = 16 + 8 + MESSAGE_BODY_BYTES;
/// Wire encoding of "no valid round" (the paper's -1).
pub const NIL_ROUND: u32 = u32::MAX;
/// Highest round a message may carry (everything below [`NIL_ROUND`]).
pub const ROUND_MAX: u32 = u32::MAX - 1;

const _: () = assert!(MESSAGE_BODY_BYTES + 64 == MESSAGE_BYTES);
const _: () = assert!(SIGNING_MESSAGE_BYTES == 112);

const KIND_PROPOSAL: u8 = 1;
const KIND_PREVOTE: u8 = 2;
const KIND_PRECOMMIT: u8 = 3;
const FLAG_VALUE: u8 = 1;

/// The two vote types of the paper.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VoteKind {
    Prevote,
    Precommit,
}

/// What a message says, without sender and signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Body {
    /// ⟨PROPOSAL, height, round, value, validRound⟩; `valid_round: None` is the paper's -1.
    Proposal {
        height: u64,
        round: u32,
        value: BlockId,
        valid_round: Option<u32>,
    },
    /// ⟨PREVOTE | PRECOMMIT, height, round, id(v) or nil⟩.
    Vote {
        kind: VoteKind,
        height: u64,
        round: u32,
        value: Option<BlockId>,
    },
}

impl Body {
    /// Height the message is about.
    pub fn height(&self) -> u64 {
        match *self {
            Body::Proposal { height, .. } | Body::Vote { height, .. } => height,
        }
    }

    /// Round the message is about.
    pub fn round(&self) -> u32 {
        match *self {
            Body::Proposal { round, .. } | Body::Vote { round, .. } => round,
        }
    }

    /// Checks the invariants the decoder enforces, so that encoding never writes bytes the
    /// decoder would refuse. Errors as [`SignedMessage::decode`].
    pub fn check(&self) -> Result<(), DecodeError> {
        let round = self.round();
        if round > ROUND_MAX {
            return Err(DecodeError::RoundTooLarge { round });
        }
        if let Body::Proposal {
            valid_round: Some(valid_round),
            ..
        } = *self
        {
            if valid_round >= round {
                return Err(DecodeError::ValidRoundNotBelowRound { valid_round, round });
            }
        }
        Ok(())
    }

    fn encode_into(&self, sender: &[u8; 32], out: &mut [u8; MESSAGE_BODY_BYTES]) {
        let (kind, height, round, value, valid_round) = match *self {
            Body::Proposal {
                height,
                round,
                value,
                valid_round,
            } => (KIND_PROPOSAL, height, round, Some(value), valid_round),
            Body::Vote {
                kind,
                height,
                round,
                value,
            } => {
                let code = match kind {
                    VoteKind::Prevote => KIND_PREVOTE,
                    VoteKind::Precommit => KIND_PRECOMMIT,
                };
                (code, height, round, value, None)
            }
        };
        out.fill(0);
        out[0] = kind;
        out[1] = if value.is_some() { FLAG_VALUE } else { 0 };
        out[4..8].copy_from_slice(&round.to_le_bytes());
        out[8..16].copy_from_slice(&height.to_le_bytes());
        out[16..20].copy_from_slice(&valid_round.unwrap_or(NIL_ROUND).to_le_bytes());
        if let Some(value) = value {
            out[24..56].copy_from_slice(&value);
        }
        out[56..88].copy_from_slice(sender);
    }
}

/// Why bytes are not a well-formed consensus message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("consensus message is {actual} bytes, expected {expected}: peer runs another protocol version or the frame is cut")]
    Length { expected: usize, actual: usize },
    #[error("unknown consensus message kind {0}: peer runs another protocol version")]
    UnknownKind(u8),
    #[error("unknown flags {0:#04x} in consensus message: peer runs another protocol version")]
    UnknownFlags(u8),
    #[error("reserved bytes of a consensus message are not zero: malformed or newer peer")]
    ReservedNotZero,
    #[error("proposal carries no value: malformed message, peer is faulty")]
    ProposalWithoutValue,
    #[error("nil vote carries non-zero value bytes: malformed message, peer is faulty")]
    NilValueNotZero,
    #[error("vote carries a valid round: malformed message, peer is faulty")]
    VoteWithValidRound,
    #[error("round {round} is above the maximum {max}", max = ROUND_MAX)]
    RoundTooLarge { round: u32 },
    #[error("proposal's valid round {valid_round} is not below its round {round}: peer is faulty")]
    ValidRoundNotBelowRound { valid_round: u32, round: u32 },
}

/// Why a well-formed message is not accepted as signed by a validator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("sender {sender} is not a validator of epoch {epoch} on network {network_id}: drop the message; if the sender should validate, check the validator set")]
    UnknownValidator {
        sender: String,
        epoch: u64,
        network_id: u64,
    },
    #[error("bad signature from validator {validator} (index {index}): the message was altered, forged, or signed for another network")]
    BadSignature { validator: String, index: usize },
}

/// A proposal or vote with its sender and signature, as it travels on the wire. Its signature
/// has not been checked: only [`SignedMessage::verify`] turns it into a [`VerifiedMessage`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SignedMessage {
    body: Body,
    sender: [u8; 32],
    signature: [u8; 64],
}

impl SignedMessage {
    /// Signs `body` for `network_id` with `key`. Deterministic (Ed25519 signing is).
    ///
    /// Panics if `body` breaks the wire invariants ([`Body::check`]): the state machine never
    /// builds such a body, so this is a caller bug.
    pub fn sign(body: Body, network_id: u64, key: &SigningKey) -> SignedMessage {
        if let Err(error) = body.check() {
            panic!("refusing to sign a malformed consensus message: {error}");
        }
        let sender: [u8; 32] = VerificationKey::from(key).into();
        let message = signing_bytes(&body, &sender, network_id);
        let signature = key.sign(&message).to_bytes();
        SignedMessage {
            body,
            sender,
            signature,
        }
    }

    /// Builds a message from parts (e.g. a certificate's precommit); nothing is checked.
    pub fn from_parts(body: Body, sender: [u8; 32], signature: [u8; 64]) -> SignedMessage {
        SignedMessage {
            body,
            sender,
            signature,
        }
    }

    /// What the message says.
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// Sender's public key as claimed (checked by `verify`).
    pub fn sender(&self) -> &[u8; 32] {
        &self.sender
    }

    /// Signature bytes.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// The wire bytes.
    pub fn encode(&self) -> [u8; MESSAGE_BYTES] {
        let mut out = [0u8; MESSAGE_BYTES];
        let mut body = [0u8; MESSAGE_BODY_BYTES];
        self.body.encode_into(&self.sender, &mut body);
        out[..MESSAGE_BODY_BYTES].copy_from_slice(&body);
        out[MESSAGE_BODY_BYTES..].copy_from_slice(&self.signature);
        out
    }

    /// Parses wire bytes. Assumes nothing about `bytes`; never panics.
    ///
    /// Errors: [`DecodeError::Length`] unless exactly [`MESSAGE_BYTES`];
    /// [`DecodeError::UnknownKind`], [`DecodeError::UnknownFlags`],
    /// [`DecodeError::ReservedNotZero`], [`DecodeError::ProposalWithoutValue`],
    /// [`DecodeError::NilValueNotZero`], [`DecodeError::VoteWithValidRound`],
    /// [`DecodeError::RoundTooLarge`], [`DecodeError::ValidRoundNotBelowRound`]. Every byte
    /// string has at most one decoding and re-encodes to itself.
    pub fn decode(bytes: &[u8]) -> Result<SignedMessage, DecodeError> {
        let bytes: &[u8; MESSAGE_BYTES] = bytes.try_into().map_err(|_| DecodeError::Length {
            expected: MESSAGE_BYTES,
            actual: bytes.len(),
        })?;
        let kind = bytes[0];
        let flags = bytes[1];
        if flags & !FLAG_VALUE != 0 {
            return Err(DecodeError::UnknownFlags(flags));
        }
        if bytes[2..4] != [0, 0] || bytes[20..24] != [0, 0, 0, 0] {
            return Err(DecodeError::ReservedNotZero);
        }
        let round = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
        let height = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
        let valid_round_raw = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
        let value_bytes: [u8; 32] = bytes[24..56].try_into().expect("32 bytes");
        let sender: [u8; 32] = bytes[56..88].try_into().expect("32 bytes");
        let signature: [u8; 64] = bytes[88..152].try_into().expect("64 bytes");
        let value = if flags & FLAG_VALUE != 0 {
            Some(value_bytes)
        } else if value_bytes != [0u8; 32] {
            return Err(DecodeError::NilValueNotZero);
        } else {
            None
        };
        let valid_round = (valid_round_raw != NIL_ROUND).then_some(valid_round_raw);
        let body = match kind {
            KIND_PROPOSAL => Body::Proposal {
                height,
                round,
                value: value.ok_or(DecodeError::ProposalWithoutValue)?,
                valid_round,
            },
            KIND_PREVOTE | KIND_PRECOMMIT => {
                if valid_round.is_some() {
                    return Err(DecodeError::VoteWithValidRound);
                }
                let kind = if kind == KIND_PREVOTE {
                    VoteKind::Prevote
                } else {
                    VoteKind::Precommit
                };
                Body::Vote {
                    kind,
                    height,
                    round,
                    value,
                }
            }
            other => return Err(DecodeError::UnknownKind(other)),
        };
        body.check()?;
        Ok(SignedMessage {
            body,
            sender,
            signature,
        })
    }

    /// Checks that the sender is in `set` and that the signature is valid for `set`'s
    /// network. Returns the message tagged with the sender's index and the set's epoch.
    ///
    /// Errors: [`VerifyError::UnknownValidator`], [`VerifyError::BadSignature`] (also what a
    /// message signed for another network gives).
    pub fn verify(&self, set: &ValidatorSet) -> Result<VerifiedMessage, VerifyError> {
        let index = set
            .index_of(&self.sender)
            .ok_or_else(|| VerifyError::UnknownValidator {
                sender: hex::encode(self.sender),
                epoch: set.epoch(),
                network_id: set.network_id(),
            })?;
        let message = signing_bytes(&self.body, &self.sender, set.network_id());
        set.verification_key(index)
            .verify(&Signature::from_bytes(&self.signature), &message)
            .map_err(|_| VerifyError::BadSignature {
                validator: hex::encode(self.sender),
                index,
            })?;
        Ok(VerifiedMessage {
            message: *self,
            validator_index: index as u16,
            epoch: set.epoch(),
        })
    }
}

/// The bytes a consensus signature covers: domain tag, network id, body with sender.
pub fn signing_bytes(
    body: &Body,
    sender: &[u8; 32],
    network_id: u64,
) -> [u8; SIGNING_MESSAGE_BYTES] {
    let mut out = [0u8; SIGNING_MESSAGE_BYTES];
    out[..16].copy_from_slice(&CONSENSUS_DOMAIN_TAG);
    out[16..24].copy_from_slice(&network_id.to_le_bytes());
    let mut encoded = [0u8; MESSAGE_BODY_BYTES];
    body.encode_into(sender, &mut encoded);
    out[24..].copy_from_slice(&encoded);
    out
}

/// A message whose signature was checked against a validator set. Only
/// [`SignedMessage::verify`] (and the state machine for its own messages) make one, so the
/// state machine can trust sender and signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifiedMessage {
    message: SignedMessage,
    validator_index: u16,
    epoch: u64,
}

impl VerifiedMessage {
    /// For messages the state machine has signed itself or verified before (persisted).
    pub(crate) fn trusted(message: SignedMessage, validator_index: usize, epoch: u64) -> Self {
        VerifiedMessage {
            message,
            validator_index: validator_index as u16,
            epoch,
        }
    }

    /// The signed message.
    pub fn message(&self) -> &SignedMessage {
        &self.message
    }

    /// What it says.
    pub fn body(&self) -> &Body {
        &self.message.body
    }

    /// Sender's index in the set it was verified against.
    pub fn validator_index(&self) -> usize {
        usize::from(self.validator_index)
    }

    /// Epoch of the set it was verified against.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}
