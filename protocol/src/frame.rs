//! Frames: the unit of every byte stream between a node and its clients, and between
//! validators (`super::peers`). docs/PROTOCOL.md part 2 describes the layout.
//!
//! ```text
//! offset size field
//!      0    4 length: payload bytes after the 12-byte header (u32 LE)
//!      4    1 message type
//!      5    3 reserved, zero
//!      8    4 checksum: the first 4 bytes of BLAKE3(bytes 0..8 || payload)
//!     12    n payload
//! ```
//!
//! Decoding is incremental: [`decode`] looks at the front of a connection's read buffer and
//! returns a whole frame, "need more bytes", or a specific error. An oversized length is
//! refused as soon as the header has arrived, before any payload is buffered.

/// Bytes in a frame header.
pub const FRAME_HEADER_BYTES: usize = 12;
/// Most bytes in one frame, header included. A SubmitBatch of `SUBMIT_BATCH_TX_MAX` records
/// (about 1.5 MiB) fits with room to spare.
pub const FRAME_BYTES_MAX: usize = 2 * 1024 * 1024;
/// Most payload bytes in one frame.
pub const FRAME_PAYLOAD_BYTES_MAX: usize = FRAME_BYTES_MAX - FRAME_HEADER_BYTES;

/// Every message type. Numbers are part of the wire format: never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// Client to node: the first frame on a connection.
    Hello = 0x01,
    /// Node to client: the answer to Hello.
    Welcome = 0x02,
    /// Client to node: a batch of transaction records.
    SubmitBatch = 0x10,
    /// Node to client: how much of a batch the node took.
    SubmitReceipt = 0x11,
    /// Node to client: final results of transactions, matched by id.
    Results = 0x12,
    /// Client to node: a query.
    Query = 0x20,
    /// Node to client: the answer to a query.
    QueryReply = 0x21,
    /// Client to node: follow accounts' events from a block height on.
    Subscribe = 0x22,
    /// Node to client: one block's events of the accounts followed.
    Events = 0x23,
    /// Either way: an error naming what was wrong.
    Error = 0x30,
}

/// Types `0x40..=0x7F` are reserved for validator-to-validator traffic (consensus messages,
/// commit certificates, block sync). A client connection that sends one is refused.
pub const VALIDATOR_TYPES: std::ops::RangeInclusive<u8> = 0x40..=0x7F;

impl MessageType {
    /// Every client-protocol type.
    pub const ALL: [MessageType; 10] = [
        MessageType::Hello,
        MessageType::Welcome,
        MessageType::SubmitBatch,
        MessageType::SubmitReceipt,
        MessageType::Results,
        MessageType::Query,
        MessageType::QueryReply,
        MessageType::Subscribe,
        MessageType::Events,
        MessageType::Error,
    ];

    /// The type for a byte read from the wire.
    pub fn from_wire(value: u8) -> Option<MessageType> {
        MessageType::ALL.into_iter().find(|t| *t as u8 == value)
    }

    /// snake_case name for logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            MessageType::Hello => "hello",
            MessageType::Welcome => "welcome",
            MessageType::SubmitBatch => "submit_batch",
            MessageType::SubmitReceipt => "submit_receipt",
            MessageType::Results => "results",
            MessageType::Query => "query",
            MessageType::QueryReply => "query_reply",
            MessageType::Subscribe => "subscribe",
            MessageType::Events => "events",
            MessageType::Error => "error",
        }
    }
}

/// Why bytes are not a frame. Each shape of bad input has its own variant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {length} payload bytes is over the maximum of {FRAME_PAYLOAD_BYTES_MAX}")]
    Oversized { length: u64 },
    #[error("frame header reserved bytes must be zero, got {0:02x?}")]
    ReservedNotZero([u8; 3]),
    #[error("frame checksum mismatch: header says {expected:02x?}, the bytes give {actual:02x?} (damaged or not a Tally frame)")]
    BadChecksum { expected: [u8; 4], actual: [u8; 4] },
    #[error("message type {0:#04x} is reserved for validator connections")]
    ValidatorType(u8),
    #[error("unknown message type {0:#04x}")]
    UnknownType(u8),
    #[error("connection ended inside a frame: {have} of {need} bytes arrived")]
    Truncated { have: usize, need: usize },
}

/// A decoded frame, borrowing its payload from the read buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub kind: MessageType,
    pub payload: &'a [u8],
}

fn checksum(header_front: &[u8], payload: &[u8]) -> [u8; 4] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(header_front);
    hasher.update(payload);
    let hash = hasher.finalize();
    hash.as_bytes()[..4].try_into().expect("4 bytes")
}

/// Appends one frame of type `kind` with `payload` to `out`.
///
/// Panics if the payload is over [`FRAME_PAYLOAD_BYTES_MAX`]: callers size their messages
/// by the named limits, so a bigger one is a bug, never input.
pub fn encode(kind: MessageType, payload: &[u8], out: &mut Vec<u8>) {
    encode_parts(kind, &[payload], out);
}

/// Like [`encode`], with the payload given in pieces (header fields, then records), so that
/// large bodies are copied once.
pub fn encode_parts(kind: MessageType, parts: &[&[u8]], out: &mut Vec<u8>) {
    encode_raw(kind as u8, parts, out);
}

/// Like [`encode_parts`], with the type given as a raw byte: validator links
/// (`super::peers`) send types `0x40..=0x7F`, which are not [`MessageType`]s.
pub fn encode_raw(kind: u8, parts: &[&[u8]], out: &mut Vec<u8>) {
    let length: usize = parts.iter().map(|p| p.len()).sum();
    assert!(
        length <= FRAME_PAYLOAD_BYTES_MAX,
        "frame payload of {length} bytes is over FRAME_PAYLOAD_BYTES_MAX"
    );
    let mut front = [0u8; 8];
    front[..4].copy_from_slice(&(length as u32).to_le_bytes());
    front[4] = kind;
    let mut hasher = blake3::Hasher::new();
    hasher.update(&front);
    for part in parts {
        hasher.update(part);
    }
    let sum = hasher.finalize();
    out.reserve(FRAME_HEADER_BYTES + length);
    out.extend_from_slice(&front);
    out.extend_from_slice(&sum.as_bytes()[..4]);
    for part in parts {
        out.extend_from_slice(part);
    }
}

/// Bytes the frame at the front of `buf` occupies, once its header has arrived; checks the
/// length against the maximum. `Ok(None)` until 12 bytes are there.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    if buf.len() < FRAME_HEADER_BYTES {
        return Ok(None);
    }
    let length = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
    if length > FRAME_PAYLOAD_BYTES_MAX {
        return Err(FrameError::Oversized {
            length: length as u64,
        });
    }
    Ok(Some(FRAME_HEADER_BYTES + length))
}

/// Decodes the frame at the front of `buf`. Returns the frame and the bytes it used, or
/// `Ok(None)` when more bytes are needed. Errors are final for the connection: the stream
/// can no longer be trusted to be in step.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let Some((raw, total)) = decode_raw(buf)? else {
        return Ok(None);
    };
    let kind = match MessageType::from_wire(raw.kind) {
        Some(kind) => kind,
        None if VALIDATOR_TYPES.contains(&raw.kind) => {
            return Err(FrameError::ValidatorType(raw.kind))
        }
        None => return Err(FrameError::UnknownType(raw.kind)),
    };
    Ok(Some((
        Frame {
            kind,
            payload: raw.payload,
        },
        total,
    )))
}

/// A frame whose type byte is not interpreted: what [`decode_raw`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawFrame<'a> {
    pub kind: u8,
    pub payload: &'a [u8],
}

/// Like [`decode`] (length, reserved bytes and checksum checked), but leaves the type byte
/// to the caller: validator links (`super::peers`) accept types `0x40..=0x7F` and refuse
/// the rest themselves.
pub fn decode_raw(buf: &[u8]) -> Result<Option<(RawFrame<'_>, usize)>, FrameError> {
    let Some(total) = frame_len(buf)? else {
        return Ok(None);
    };
    let reserved: [u8; 3] = buf[5..8].try_into().expect("3 bytes");
    if reserved != [0; 3] {
        return Err(FrameError::ReservedNotZero(reserved));
    }
    if buf.len() < total {
        return Ok(None);
    }
    let payload = &buf[FRAME_HEADER_BYTES..total];
    let expected: [u8; 4] = buf[8..12].try_into().expect("4 bytes");
    let actual = checksum(&buf[..8], payload);
    if expected != actual {
        return Err(FrameError::BadChecksum { expected, actual });
    }
    Ok(Some((
        RawFrame {
            kind: buf[4],
            payload,
        },
        total,
    )))
}

/// Decodes exactly one frame that must fill `buf`: for a stream that has ended, the bytes
/// left are either nothing, one frame, or a truncated frame.
pub fn decode_complete(buf: &[u8]) -> Result<Frame<'_>, FrameError> {
    match decode(buf)? {
        Some((frame, used)) if used == buf.len() => Ok(frame),
        Some((_, used)) => Err(FrameError::Truncated {
            have: buf.len() - used,
            need: frame_len(&buf[used..])
                .ok()
                .flatten()
                .unwrap_or(FRAME_HEADER_BYTES),
        }),
        None => Err(truncated(buf)),
    }
}

/// The error for a stream that ended with `rest` unread (not a whole frame).
pub fn truncated(rest: &[u8]) -> FrameError {
    let need = frame_len(rest).ok().flatten().unwrap_or(FRAME_HEADER_BYTES);
    FrameError::Truncated {
        have: rest.len(),
        need,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_uses_its_length() {
        let mut buf = Vec::new();
        encode(MessageType::Query, b"hello", &mut buf);
        encode(MessageType::Error, b"", &mut buf);
        let (frame, used) = decode(&buf).unwrap().unwrap();
        assert_eq!(frame.kind, MessageType::Query);
        assert_eq!(frame.payload, b"hello");
        assert_eq!(used, FRAME_HEADER_BYTES + 5);
        let (frame, rest) = decode(&buf[used..]).unwrap().unwrap();
        assert_eq!(frame.kind, MessageType::Error);
        assert_eq!(rest, FRAME_HEADER_BYTES);
        for cut in 0..used {
            assert_eq!(decode(&buf[..cut]).unwrap(), None, "prefix of {cut} bytes");
        }
    }
}
