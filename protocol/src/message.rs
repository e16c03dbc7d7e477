//! Client protocol messages: the payloads of frames between a client and a node
//! (docs/PROTOCOL.md part 2). Fixed little-endian layouts, except queries and their answers,
//! which are JSON (they are not on the hot path, and JSON makes a new query one enum
//! variant).
//!
//! Every decoder refuses bad input with a specific [`MessageError`]; every accepted payload
//! re-encodes to the same bytes (JSON payloads excepted: they are compared by value).

use crate::events::{EventBatch, Subscription};
use crate::frame::{self, Frame, MessageType, FRAME_PAYLOAD_BYTES_MAX};
use crate::query::{Query, QueryResult};
use crate::result::ResultCode;
use crate::submit::Ack;
use crate::tx::{TxRecord, TX_BYTES};
use std::fmt;

/// Version of the client protocol this code speaks (2: account events carry their balances
/// and basis, event batches their block stamp).
pub const PROTOCOL_VERSION: u16 = 2;
/// Most records in one SubmitBatch.
pub const SUBMIT_BATCH_TX_MAX: usize = 8_192;
/// Bytes before the records in a SubmitBatch: request id u64, count u32, reserved u32.
pub const SUBMIT_HEADER_BYTES: usize = 16;
/// Bytes of one entry in a Results frame: id u128, height u64, code u8, reserved 7 bytes.
pub const RESULT_ENTRY_BYTES: usize = 32;
/// Bytes before the entries in a Results frame: count u32, reserved u32.
pub const RESULTS_HEADER_BYTES: usize = 8;
/// Most entries in one Results frame.
pub const RESULTS_PER_FRAME_MAX: usize = 16_384;
/// Most bytes of text in an Error frame or a Stopped receipt.
pub const ERROR_TEXT_BYTES_MAX: usize = 4_096;
/// Bytes of a Hello payload.
pub const HELLO_BYTES: usize = 12;
/// Bytes of a Welcome payload.
pub const WELCOME_BYTES: usize = 64;
/// Bytes of a SubmitReceipt payload before the optional reason text.
pub const RECEIPT_BYTES: usize = 24;

const _: () =
    assert!(SUBMIT_HEADER_BYTES + SUBMIT_BATCH_TX_MAX * TX_BYTES <= FRAME_PAYLOAD_BYTES_MAX);
const _: () = assert!(
    RESULTS_HEADER_BYTES + RESULTS_PER_FRAME_MAX * RESULT_ENTRY_BYTES <= FRAME_PAYLOAD_BYTES_MAX
);

/// Who opens a connection. Only clients exist so far; validators (peers) come with consensus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    Client = 1,
    /// Reserved: validator-to-validator connections (not accepted yet).
    Validator = 2,
}

/// The first frame a client sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    pub version: u16,
    pub role: Role,
    /// The network the client means; 0 accepts any (the Welcome names it).
    pub network_id: u64,
}

/// The node's answer to Hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Welcome {
    pub version: u16,
    pub network_id: u64,
    pub genesis_hash: [u8; 32],
    /// Height of the node's last durable block when the client connected.
    pub height: u64,
    /// Most records this node takes in one SubmitBatch.
    pub submit_batch_tx_max: u32,
    /// Most transactions one connection may have submitted and not yet answered; past it the
    /// node stops reading the connection until results drain.
    pub inflight_tx_max: u32,
}

/// Why the rest of a batch was not taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Everything was taken.
    None,
    /// The mempool is full: retry the refused records later.
    Busy,
    /// The node no longer takes transactions (shutting down, or stopped by an error).
    Stopped(String),
    /// The connection's identity is over one of its quotas (named, with the node's text):
    /// retry the refused records later, more slowly.
    OverQuota { quota: Quota, text: String },
}

/// The per-identity quotas of a node (docs/OPERATIONS.md, "Per-identity quotas"); each is
/// named after the node configuration's field that sets it. Numbers are part of the wire
/// format (a SubmitReceipt's refusal 3 carries one in byte 17).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Quota {
    /// Records one identity has submitted and not yet been answered, over all its
    /// connections.
    InflightRecords = 1,
    /// Records per second one identity may submit (a token bucket).
    SubmitRate = 2,
    /// Queries per second one identity may ask (a token bucket).
    QueryRate = 3,
    /// Bytes of output waiting for one identity to read, over all its connections.
    UnreadOutput = 4,
    /// Connections open at once with one certificate.
    Connections = 5,
    /// Records per second of an identity whose signatures failed recently (a token bucket
    /// much smaller than the submit rate; docs/SECURITY.md).
    SuspectSubmitRate = 6,
}

impl Quota {
    pub const ALL: [Quota; 6] = [
        Quota::InflightRecords,
        Quota::SubmitRate,
        Quota::QueryRate,
        Quota::UnreadOutput,
        Quota::Connections,
        Quota::SuspectSubmitRate,
    ];

    pub fn from_wire(value: u8) -> Option<Quota> {
        Quota::ALL.into_iter().find(|q| *q as u8 == value)
    }

    /// The node configuration field (`[limits]`) that sets it.
    pub fn name(self) -> &'static str {
        match self {
            Quota::InflightRecords => "identity_inflight_tx_max",
            Quota::SubmitRate => "identity_submit_tx_per_s",
            Quota::QueryRate => "identity_queries_per_s",
            Quota::UnreadOutput => "identity_output_bytes_max",
            Quota::Connections => "identity_connections_max",
            Quota::SuspectSubmitRate => "suspect_submit_tx_per_s",
        }
    }

    /// Position in [`Quota::ALL`] (for counters).
    pub fn index(self) -> usize {
        self as usize - 1
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How much of a batch the node took: records `0..accepted` were taken (each will get a
/// result), records `accepted..accepted + refused` were not (see `refusal`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmitReceipt {
    pub request_id: u64,
    pub accepted: u32,
    pub refused: u32,
    pub refusal: Refusal,
}

/// Error codes of Error frames. Numbers are part of the wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    /// The bytes were not a valid frame; the node closes the connection.
    BadFrame = 1,
    /// A frame's payload was not a valid message; the node closes the connection.
    BadMessage = 2,
    /// A valid message that is not allowed here (before Hello, a second Hello, a node-to-client
    /// type sent by a client); the node closes the connection.
    UnexpectedMessage = 3,
    /// The client speaks another protocol version.
    VersionMismatch = 4,
    /// The client asked for another network.
    WrongNetwork = 5,
    /// A query could not be queued (the node is loaded); retry later. The connection stays.
    Busy = 6,
    /// The node is stopping.
    Stopped = 7,
    /// The request is outside what the connection's certificate allows (its role, the
    /// accounts it covers). The connection stays.
    Forbidden = 8,
    /// The connection's identity is over one of its quotas; the text begins with the quota's
    /// name (a [`Quota::name`]). The connection stays, except for `identity_connections_max`
    /// (the new connection is closed).
    OverQuota = 9,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::BadFrame,
        ErrorCode::BadMessage,
        ErrorCode::UnexpectedMessage,
        ErrorCode::VersionMismatch,
        ErrorCode::WrongNetwork,
        ErrorCode::Busy,
        ErrorCode::Stopped,
        ErrorCode::Forbidden,
        ErrorCode::OverQuota,
    ];

    pub fn from_wire(value: u16) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| *c as u16 == value)
    }

    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::BadMessage => "bad_message",
            ErrorCode::UnexpectedMessage => "unexpected_message",
            ErrorCode::VersionMismatch => "version_mismatch",
            ErrorCode::WrongNetwork => "wrong_network",
            ErrorCode::Busy => "busy",
            ErrorCode::Stopped => "stopped",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::OverQuota => "over_quota",
        }
    }
}

/// An Error frame: `request_id` 0 is about the connection, else about that request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorMessage {
    pub request_id: u64,
    pub code: ErrorCode,
    pub text: String,
}

/// One decoded message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message<'a> {
    Hello(Hello),
    Welcome(Welcome),
    /// Records borrowed from the frame (a record has alignment 1: no copy).
    SubmitBatch {
        request_id: u64,
        records: &'a [TxRecord],
    },
    SubmitReceipt(SubmitReceipt),
    Results(Vec<Ack>),
    Query {
        request_id: u64,
        query: Query,
    },
    QueryReply {
        request_id: u64,
        result: QueryResult,
    },
    /// Follow accounts' events (crate::events). A second subscription on a connection
    /// replaces the first.
    Subscribe {
        request_id: u64,
        subscription: Subscription,
    },
    /// One block's events of a subscription, in height order.
    Events {
        request_id: u64,
        batch: EventBatch,
    },
    Error(ErrorMessage),
}

/// Why a frame's payload is not a valid message. Each shape has its own variant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("{kind} payload must be {expected} bytes, got {found}")]
    WrongLength {
        kind: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("{kind} payload is {found} bytes, shorter than its {min}-byte header")]
    TooShort {
        kind: &'static str,
        min: usize,
        found: usize,
    },
    #[error("{kind}: reserved bytes must be zero")]
    ReservedNotZero { kind: &'static str },
    #[error("submit_batch with no records")]
    EmptyBatch,
    #[error("submit_batch of {count} records is over the maximum of {SUBMIT_BATCH_TX_MAX}")]
    BatchTooLarge { count: usize },
    #[error("submit_batch says {count} records but carries {bytes} record bytes (records are {TX_BYTES} bytes each)")]
    BatchCountMismatch { count: usize, bytes: usize },
    #[error("results frame of {count} entries is over the maximum of {RESULTS_PER_FRAME_MAX}")]
    TooManyResults { count: usize },
    #[error("results frame says {count} entries but carries {bytes} entry bytes")]
    ResultsCountMismatch { count: usize, bytes: usize },
    #[error("unknown result code {0}")]
    UnknownResultCode(u8),
    #[error("unknown role {0}: expected 1 (client)")]
    UnknownRole(u8),
    #[error("unknown refusal {0}: expected 0 (none), 1 (busy), 2 (stopped) or 3 (over quota)")]
    UnknownRefusal(u8),
    #[error("unknown quota {0}")]
    UnknownQuota(u8),
    #[error("unknown error code {0}")]
    UnknownErrorCode(u16),
    #[error("{kind}: text is not UTF-8")]
    BadUtf8 { kind: &'static str },
    #[error("{kind}: text of {found} bytes is over the maximum of {ERROR_TEXT_BYTES_MAX}")]
    TextTooLong { kind: &'static str, found: usize },
    #[error("{kind}: receipt counts {accepted} accepted + {refused} refused are over the batch maximum {SUBMIT_BATCH_TX_MAX}")]
    ReceiptTooLarge {
        kind: &'static str,
        accepted: u32,
        refused: u32,
    },
    #[error("{kind}: a refusal needs refused records and refused records need a refusal")]
    RefusalMismatch { kind: &'static str },
    #[error("{kind}: bad JSON: {reason}")]
    BadJson { kind: &'static str, reason: String },
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn u128_at(b: &[u8], at: usize) -> u128 {
    u128::from_le_bytes(b[at..at + 16].try_into().expect("16 bytes"))
}

fn exact(kind: &'static str, payload: &[u8], expected: usize) -> Result<(), MessageError> {
    if payload.len() != expected {
        return Err(MessageError::WrongLength {
            kind,
            expected,
            found: payload.len(),
        });
    }
    Ok(())
}

fn at_least(kind: &'static str, payload: &[u8], min: usize) -> Result<(), MessageError> {
    if payload.len() < min {
        return Err(MessageError::TooShort {
            kind,
            min,
            found: payload.len(),
        });
    }
    Ok(())
}

fn zero(kind: &'static str, bytes: &[u8]) -> Result<(), MessageError> {
    if bytes.iter().any(|&b| b != 0) {
        return Err(MessageError::ReservedNotZero { kind });
    }
    Ok(())
}

fn text(kind: &'static str, bytes: &[u8]) -> Result<String, MessageError> {
    if bytes.len() > ERROR_TEXT_BYTES_MAX {
        return Err(MessageError::TextTooLong {
            kind,
            found: bytes.len(),
        });
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| MessageError::BadUtf8 { kind })
}

/// Cuts `text` to at most [`ERROR_TEXT_BYTES_MAX`] bytes on a character boundary.
pub fn clip_text(text: &str) -> &str {
    if text.len() <= ERROR_TEXT_BYTES_MAX {
        return text;
    }
    let mut end = ERROR_TEXT_BYTES_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn json<T: serde::de::DeserializeOwned>(
    kind: &'static str,
    bytes: &[u8],
) -> Result<T, MessageError> {
    serde_json::from_slice(bytes).map_err(|error| MessageError::BadJson {
        kind,
        reason: error.to_string(),
    })
}

impl<'a> Message<'a> {
    /// The frame type this message travels in.
    pub fn kind(&self) -> MessageType {
        match self {
            Message::Hello(_) => MessageType::Hello,
            Message::Welcome(_) => MessageType::Welcome,
            Message::SubmitBatch { .. } => MessageType::SubmitBatch,
            Message::SubmitReceipt(_) => MessageType::SubmitReceipt,
            Message::Results(_) => MessageType::Results,
            Message::Query { .. } => MessageType::Query,
            Message::QueryReply { .. } => MessageType::QueryReply,
            Message::Subscribe { .. } => MessageType::Subscribe,
            Message::Events { .. } => MessageType::Events,
            Message::Error(_) => MessageType::Error,
        }
    }

    /// Decodes a frame's payload.
    pub fn decode(frame: Frame<'a>) -> Result<Message<'a>, MessageError> {
        let p = frame.payload;
        let kind = frame.kind.name();
        Ok(match frame.kind {
            MessageType::Hello => {
                exact(kind, p, HELLO_BYTES)?;
                let role = match p[2] {
                    1 => Role::Client,
                    2 => Role::Validator,
                    other => return Err(MessageError::UnknownRole(other)),
                };
                zero(kind, &p[3..4])?;
                Message::Hello(Hello {
                    version: u16_at(p, 0),
                    role,
                    network_id: u64_at(p, 4),
                })
            }
            MessageType::Welcome => {
                exact(kind, p, WELCOME_BYTES)?;
                zero(kind, &p[2..8])?;
                Message::Welcome(Welcome {
                    version: u16_at(p, 0),
                    network_id: u64_at(p, 8),
                    genesis_hash: p[16..48].try_into().expect("32 bytes"),
                    height: u64_at(p, 48),
                    submit_batch_tx_max: u32_at(p, 56),
                    inflight_tx_max: u32_at(p, 60),
                })
            }
            MessageType::SubmitBatch => {
                at_least(kind, p, SUBMIT_HEADER_BYTES)?;
                let count = u32_at(p, 8) as usize;
                zero(kind, &p[12..16])?;
                let bytes = &p[SUBMIT_HEADER_BYTES..];
                if count == 0 {
                    return Err(MessageError::EmptyBatch);
                }
                if count > SUBMIT_BATCH_TX_MAX {
                    return Err(MessageError::BatchTooLarge { count });
                }
                if bytes.len() != count * TX_BYTES {
                    return Err(MessageError::BatchCountMismatch {
                        count,
                        bytes: bytes.len(),
                    });
                }
                Message::SubmitBatch {
                    request_id: u64_at(p, 0),
                    records: bytemuck::cast_slice(bytes),
                }
            }
            MessageType::SubmitReceipt => {
                at_least(kind, p, RECEIPT_BYTES)?;
                let accepted = u32_at(p, 8);
                let refused = u32_at(p, 12);
                zero(kind, &p[18..24])?;
                if p[16] != 3 && p[17] != 0 {
                    return Err(MessageError::ReservedNotZero { kind });
                }
                if accepted as u64 + refused as u64 > SUBMIT_BATCH_TX_MAX as u64 {
                    return Err(MessageError::ReceiptTooLarge {
                        kind,
                        accepted,
                        refused,
                    });
                }
                let reason = &p[RECEIPT_BYTES..];
                let refusal = match p[16] {
                    0 | 1 if !reason.is_empty() => {
                        return Err(MessageError::WrongLength {
                            kind,
                            expected: RECEIPT_BYTES,
                            found: p.len(),
                        })
                    }
                    0 => Refusal::None,
                    1 => Refusal::Busy,
                    2 => Refusal::Stopped(text(kind, reason)?),
                    3 => Refusal::OverQuota {
                        quota: Quota::from_wire(p[17]).ok_or(MessageError::UnknownQuota(p[17]))?,
                        text: text(kind, reason)?,
                    },
                    other => return Err(MessageError::UnknownRefusal(other)),
                };
                if (refusal == Refusal::None) != (refused == 0) {
                    return Err(MessageError::RefusalMismatch { kind });
                }
                Message::SubmitReceipt(SubmitReceipt {
                    request_id: u64_at(p, 0),
                    accepted,
                    refused,
                    refusal,
                })
            }
            MessageType::Results => {
                at_least(kind, p, RESULTS_HEADER_BYTES)?;
                let count = u32_at(p, 0) as usize;
                zero(kind, &p[4..8])?;
                if count > RESULTS_PER_FRAME_MAX {
                    return Err(MessageError::TooManyResults { count });
                }
                let bytes = &p[RESULTS_HEADER_BYTES..];
                if bytes.len() != count * RESULT_ENTRY_BYTES {
                    return Err(MessageError::ResultsCountMismatch {
                        count,
                        bytes: bytes.len(),
                    });
                }
                let mut acks = Vec::with_capacity(count);
                for entry in bytes.chunks_exact(RESULT_ENTRY_BYTES) {
                    let code = ResultCode::from_wire(entry[24])
                        .ok_or(MessageError::UnknownResultCode(entry[24]))?;
                    zero(kind, &entry[25..32])?;
                    let height = u64_at(entry, 16);
                    acks.push(Ack {
                        id: u128_at(entry, 0),
                        code,
                        height: (height != 0).then_some(height),
                    });
                }
                Message::Results(acks)
            }
            MessageType::Query => {
                at_least(kind, p, 8)?;
                Message::Query {
                    request_id: u64_at(p, 0),
                    query: json(kind, &p[8..])?,
                }
            }
            MessageType::QueryReply => {
                at_least(kind, p, 8)?;
                Message::QueryReply {
                    request_id: u64_at(p, 0),
                    result: json(kind, &p[8..])?,
                }
            }
            MessageType::Subscribe => {
                at_least(kind, p, 8)?;
                Message::Subscribe {
                    request_id: u64_at(p, 0),
                    subscription: json(kind, &p[8..])?,
                }
            }
            MessageType::Events => {
                at_least(kind, p, 8)?;
                Message::Events {
                    request_id: u64_at(p, 0),
                    batch: json(kind, &p[8..])?,
                }
            }
            MessageType::Error => {
                at_least(kind, p, 16)?;
                let code_value = u16_at(p, 8);
                let code = ErrorCode::from_wire(code_value)
                    .ok_or(MessageError::UnknownErrorCode(code_value))?;
                zero(kind, &p[10..16])?;
                Message::Error(ErrorMessage {
                    request_id: u64_at(p, 0),
                    code,
                    text: text(kind, &p[16..])?,
                })
            }
        })
    }

    /// Appends this message as one frame to `out`.
    ///
    /// Panics on a message over the named limits (a batch over [`SUBMIT_BATCH_TX_MAX`],
    /// results over [`RESULTS_PER_FRAME_MAX`]): senders split by those limits.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let kind = self.kind();
        match self {
            Message::Hello(hello) => {
                let mut p = [0u8; HELLO_BYTES];
                p[..2].copy_from_slice(&hello.version.to_le_bytes());
                p[2] = hello.role as u8;
                p[4..12].copy_from_slice(&hello.network_id.to_le_bytes());
                frame::encode(kind, &p, out);
            }
            Message::Welcome(w) => {
                let mut p = [0u8; WELCOME_BYTES];
                p[..2].copy_from_slice(&w.version.to_le_bytes());
                p[8..16].copy_from_slice(&w.network_id.to_le_bytes());
                p[16..48].copy_from_slice(&w.genesis_hash);
                p[48..56].copy_from_slice(&w.height.to_le_bytes());
                p[56..60].copy_from_slice(&w.submit_batch_tx_max.to_le_bytes());
                p[60..64].copy_from_slice(&w.inflight_tx_max.to_le_bytes());
                frame::encode(kind, &p, out);
            }
            Message::SubmitBatch {
                request_id,
                records,
            } => encode_submit_batch(*request_id, records, out),
            Message::SubmitReceipt(receipt) => {
                let mut p = [0u8; RECEIPT_BYTES];
                p[..8].copy_from_slice(&receipt.request_id.to_le_bytes());
                p[8..12].copy_from_slice(&receipt.accepted.to_le_bytes());
                p[12..16].copy_from_slice(&receipt.refused.to_le_bytes());
                let reason: &[u8] = match &receipt.refusal {
                    Refusal::None => &[],
                    Refusal::Busy => {
                        p[16] = 1;
                        &[]
                    }
                    Refusal::Stopped(reason) => {
                        p[16] = 2;
                        clip_text(reason).as_bytes()
                    }
                    Refusal::OverQuota { quota, text } => {
                        p[16] = 3;
                        p[17] = *quota as u8;
                        clip_text(text).as_bytes()
                    }
                };
                frame::encode_parts(kind, &[&p, reason], out);
            }
            Message::Results(acks) => encode_results(acks, out),
            Message::Query { request_id, query } => {
                let body = serde_json::to_vec(query).expect("a query serialises");
                frame::encode_parts(kind, &[&request_id.to_le_bytes(), &body], out);
            }
            Message::QueryReply { request_id, result } => {
                let body = serde_json::to_vec(result).expect("an answer serialises");
                frame::encode_parts(kind, &[&request_id.to_le_bytes(), &body], out);
            }
            Message::Subscribe {
                request_id,
                subscription,
            } => {
                let body = serde_json::to_vec(subscription).expect("a subscription serialises");
                frame::encode_parts(kind, &[&request_id.to_le_bytes(), &body], out);
            }
            Message::Events { request_id, batch } => {
                let body = serde_json::to_vec(batch).expect("events serialise");
                frame::encode_parts(kind, &[&request_id.to_le_bytes(), &body], out);
            }
            Message::Error(error) => {
                let mut p = [0u8; 16];
                p[..8].copy_from_slice(&error.request_id.to_le_bytes());
                p[8..10].copy_from_slice(&(error.code as u16).to_le_bytes());
                frame::encode_parts(kind, &[&p, clip_text(&error.text).as_bytes()], out);
            }
        }
    }
}

/// Appends a SubmitBatch frame (records copied once, straight from the slice).
pub fn encode_submit_batch(request_id: u64, records: &[TxRecord], out: &mut Vec<u8>) {
    assert!(
        !records.is_empty() && records.len() <= SUBMIT_BATCH_TX_MAX,
        "a submit batch holds 1 to SUBMIT_BATCH_TX_MAX records"
    );
    let mut header = [0u8; SUBMIT_HEADER_BYTES];
    header[..8].copy_from_slice(&request_id.to_le_bytes());
    header[8..12].copy_from_slice(&(records.len() as u32).to_le_bytes());
    frame::encode_parts(
        MessageType::SubmitBatch,
        &[&header, bytemuck::cast_slice(records)],
        out,
    );
}

/// Appends Results frames for `acks` (several frames when there are more than
/// [`RESULTS_PER_FRAME_MAX`]).
pub fn encode_results(acks: &[Ack], out: &mut Vec<u8>) {
    for chunk in acks.chunks(RESULTS_PER_FRAME_MAX) {
        let mut body = Vec::with_capacity(RESULTS_HEADER_BYTES + chunk.len() * RESULT_ENTRY_BYTES);
        body.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        body.extend_from_slice(&[0; 4]);
        for ack in chunk {
            body.extend_from_slice(&ack.id.to_le_bytes());
            body.extend_from_slice(&ack.height.unwrap_or(0).to_le_bytes());
            body.push(ack.code as u8);
            body.extend_from_slice(&[0; 7]);
        }
        frame::encode(MessageType::Results, &body, out);
    }
}
