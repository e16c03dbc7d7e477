//! The submission contract shared by a node in the same process and the client library: a
//! submit returns how many records were taken (each taken record is answered exactly once
//! with an [`Ack`]), `Busy { accepted }` when only the first `accepted` were taken (the
//! node is full), `OverQuota` when only the first `accepted` were taken because the
//! client's identity is over a quota, and `Stopped` when nothing more is taken.

use crate::message::Quota;
use crate::result::ResultCode;

/// What a client hears about one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    pub id: u128,
    pub code: ResultCode,
    /// Height of the durable block that holds the transaction; `None` when it was rejected
    /// before a block (malformed, bad signature).
    pub height: Option<u64>,
}

/// Why a submission was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("node is busy: the mempool is full; {accepted} of the batch were accepted, retry the rest later")]
    Busy { accepted: usize },
    #[error("node has stopped: {reason}")]
    Stopped { reason: String },
    /// The connection's identity is over a quota of the node ([`Quota`], named in `text`):
    /// the first `accepted` were taken, retry the rest later, more slowly.
    #[error(
        "over quota {quota}: {text}; {accepted} of the batch were accepted, retry the rest later"
    )]
    OverQuota {
        accepted: usize,
        quota: Quota,
        text: String,
    },
}
