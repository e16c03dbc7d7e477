//! BFT consensus: Tendermint ("The latest gossip on BFT consensus", Buchman, Kwon, Milosevic,
//! 2018, arXiv:1807.04938, Algorithm 1) as a sans-IO state machine.
//!
//! The machine ([`Tendermint`]) owns no clock, thread, socket or random source: the node feeds
//! it [`Event`]s (start of a height, a verified message, a timeout that fired) and executes the
//! [`Action`]s it returns, in order (decide, persist, broadcast, schedule a timeout). Because it
//! is deterministic, the simulator (`sim`) can run a whole cluster in one thread from a seed
//! and replay any run exactly.
//!
//! Code map:
//! - [`validators`]: the validator set of one epoch (thresholds, proposer rotation) and the
//!   authority vote that changes it at the next epoch boundary.
//! - [`message`]: the fixed-size signed wire format of proposals and votes.
//! - [`certificate`]: commit certificates (2f + 1 signed precommits) and equivocation evidence.
//! - [`votes`]: per-round bookkeeping of received messages and the paper's thresholds.
//! - [`machine`]: Algorithm 1 itself, with the paper's line numbers next to each rule.
//! - `sim` (feature `simulator`, enabled by the engine's tests): the deterministic cluster
//!   simulator used by the tests and the soak script.
//!
//! docs/PROTOCOL.md describes the protocol for operators and implementers of other nodes.
#![forbid(unsafe_code)]

pub mod certificate;
pub mod machine;
pub mod message;
/// The deterministic cluster simulator: for tests, never in a node's build (the `simulator`
/// feature, which the engine's tests enable).
#[cfg(feature = "simulator")]
pub mod sim;
pub mod validators;
pub mod votes;
pub mod wire;

pub use certificate::{Certificate, CertificateError, CommitSignature, Evidence, EvidenceError};
pub use machine::{
    Action, Application, Config, ConsensusError, Decision, Event, PersistentState, Step,
    Tendermint, Timeout, TimeoutConfig, TimeoutKind,
};
pub use message::{
    Body, DecodeError, SignedMessage, VerifiedMessage, VerifyError, VoteKind, MESSAGE_BYTES,
};
pub use validators::{
    ScheduleDecodeError, ScheduleError, ValidatorChange, ValidatorSchedule, ValidatorSet,
    ValidatorSetError,
};

/// A proposed value: the 32-byte hash of a block. Consensus never looks inside a block; the
/// node validates the block behind an id through [`Application::is_valid`].
pub type BlockId = [u8; 32];
