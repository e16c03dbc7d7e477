//! Frames and client protocol messages: round trips, one specific error per malformed shape,
//! and a seeded fuzz of the decoders with hostile bytes.

mod common;

use common::{Fixture, ALICE, BOB};
use proptest::prelude::*;
use tally_engine::mempool::Ack;
use tally_engine::net::frame::{
    self, FrameError, MessageType, FRAME_BYTES_MAX, FRAME_HEADER_BYTES, FRAME_PAYLOAD_BYTES_MAX,
};
use tally_engine::net::message::{
    encode_results, encode_submit_batch, ErrorCode, ErrorMessage, Hello, Message, MessageError,
    Quota, Refusal, Role, SubmitReceipt, Welcome, PROTOCOL_VERSION, RESULTS_PER_FRAME_MAX,
    SUBMIT_BATCH_TX_MAX,
};
use tally_engine::net::query::{Answer, Query, QueryResult};
use tally_engine::result::ResultCode;
use tally_engine::tx::{TxKind, TX_BYTES};

fn one_frame(kind: MessageType, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(kind, payload, &mut out);
    out
}

fn decode_message(bytes: &[u8]) -> Result<Message<'_>, MessageError> {
    let frame = frame::decode_complete(bytes).expect("a whole frame");
    Message::decode(frame)
}

fn round_trip(message: Message<'_>) {
    let mut bytes = Vec::new();
    message.encode(&mut bytes);
    let decoded = decode_message(&bytes).expect("decodes");
    assert_eq!(decoded, message);
    let mut again = Vec::new();
    decoded.encode(&mut again);
    assert_eq!(
        again,
        bytes,
        "{:?} re-encodes to the same bytes",
        message.kind()
    );
}

#[test]
fn every_message_round_trips() {
    let fixture = Fixture::new();
    let records: Vec<_> = (1..=3)
        .map(|i| fixture.tx(i, TxKind::Transfer, ALICE, BOB, 5))
        .collect();
    round_trip(Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        role: Role::Client,
        network_id: 42,
    }));
    round_trip(Message::Welcome(Welcome {
        version: PROTOCOL_VERSION,
        network_id: 42,
        genesis_hash: [7; 32],
        height: 99,
        submit_batch_tx_max: 8192,
        inflight_tx_max: 65536,
    }));
    round_trip(Message::SubmitBatch {
        request_id: 5,
        records: &records,
    });
    for refusal in [
        Refusal::None,
        Refusal::Busy,
        Refusal::Stopped("shutting down".into()),
        Refusal::OverQuota {
            quota: Quota::SuspectSubmitRate,
            text: "suspect_submit_tx_per_s: at most 1000 a second".into(),
        },
    ] {
        let refused = u32::from(refusal != Refusal::None) * 2;
        round_trip(Message::SubmitReceipt(SubmitReceipt {
            request_id: 6,
            accepted: 1,
            refused,
            refusal,
        }));
    }
    round_trip(Message::Results(vec![
        Ack {
            id: u128::MAX,
            code: ResultCode::Ok,
            height: Some(3),
        },
        Ack {
            id: 1,
            code: ResultCode::BadSignature,
            height: None,
        },
    ]));
    // No results, no frame.
    let mut nothing = Vec::new();
    Message::Results(Vec::new()).encode(&mut nothing);
    assert!(nothing.is_empty());
    for query in [
        Query::Status,
        Query::Balance { account: 7 },
        Query::Transaction { id: u128::MAX },
    ] {
        round_trip(Message::Query {
            request_id: 9,
            query,
        });
    }
    round_trip(Message::QueryReply {
        request_id: 9,
        result: QueryResult::Ok(Answer::Transaction {
            id: u128::MAX - 1,
            settled: true,
        }),
    });
    round_trip(Message::QueryReply {
        request_id: 10,
        result: QueryResult::Error("no".into()),
    });
    for code in ErrorCode::ALL {
        round_trip(Message::Error(ErrorMessage {
            request_id: 3,
            code,
            text: format!("error {}", code.name()),
        }));
    }
}

#[test]
fn a_full_batch_fits_in_a_frame_and_results_split_by_the_limit() {
    let fixture = Fixture::new();
    let record = fixture.tx(1, TxKind::Transfer, ALICE, BOB, 5);
    let records = vec![record; SUBMIT_BATCH_TX_MAX];
    let mut bytes = Vec::new();
    encode_submit_batch(1, &records, &mut bytes);
    assert!(bytes.len() <= FRAME_BYTES_MAX);
    match decode_message(&bytes).unwrap() {
        Message::SubmitBatch { records: got, .. } => assert_eq!(got.len(), SUBMIT_BATCH_TX_MAX),
        other => panic!("{other:?}"),
    }
    let acks: Vec<Ack> = (1..=RESULTS_PER_FRAME_MAX as u128 + 1)
        .map(|id| Ack {
            id,
            code: ResultCode::Ok,
            height: Some(1),
        })
        .collect();
    let mut bytes = Vec::new();
    encode_results(&acks, &mut bytes);
    let (first, used) = frame::decode(&bytes).unwrap().unwrap();
    let Message::Results(first) = Message::decode(first).unwrap() else {
        panic!("results")
    };
    let Message::Results(second) = decode_message(&bytes[used..]).unwrap() else {
        panic!("results")
    };
    assert_eq!(first.len(), RESULTS_PER_FRAME_MAX);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id, RESULTS_PER_FRAME_MAX as u128 + 1);
}

#[test]
fn each_bad_frame_has_its_own_error() {
    let good = one_frame(MessageType::Query, b"12345678\"status\"");
    assert!(frame::decode(&good).unwrap().is_some());

    // Oversized: refused from the header alone, before the payload arrives.
    let mut oversized = good[..FRAME_HEADER_BYTES].to_vec();
    oversized[..4].copy_from_slice(&(FRAME_PAYLOAD_BYTES_MAX as u32 + 1).to_le_bytes());
    assert_eq!(
        frame::decode(&oversized),
        Err(FrameError::Oversized {
            length: FRAME_PAYLOAD_BYTES_MAX as u64 + 1
        })
    );
    let mut huge = oversized.clone();
    huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        frame::decode(&huge),
        Err(FrameError::Oversized { .. })
    ));

    let mut reserved = good.clone();
    reserved[6] = 1;
    assert_eq!(
        frame::decode(&reserved),
        Err(FrameError::ReservedNotZero([0, 1, 0]))
    );

    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert!(matches!(
        frame::decode(&flipped),
        Err(FrameError::BadChecksum { .. })
    ));
    let mut bad_sum = good.clone();
    bad_sum[8] ^= 0x80;
    assert!(matches!(
        frame::decode(&bad_sum),
        Err(FrameError::BadChecksum { .. })
    ));
    // A changed type breaks the checksum too: the checksum covers the header.
    let mut retyped = good.clone();
    retyped[4] = MessageType::Hello as u8;
    assert!(matches!(
        frame::decode(&retyped),
        Err(FrameError::BadChecksum { .. })
    ));

    // Unknown and validator-only types (with a correct checksum).
    for (type_byte, expected) in [
        (0x00, FrameError::UnknownType(0x00)),
        (0x03, FrameError::UnknownType(0x03)),
        (0xFF, FrameError::UnknownType(0xFF)),
        (0x40, FrameError::ValidatorType(0x40)),
        (0x7F, FrameError::ValidatorType(0x7F)),
    ] {
        let bytes = raw_frame(type_byte, b"payload");
        assert_eq!(frame::decode(&bytes), Err(expected));
    }

    // Truncated: a stream that ends inside a frame.
    for cut in [
        1,
        FRAME_HEADER_BYTES - 1,
        FRAME_HEADER_BYTES,
        good.len() - 1,
    ] {
        assert_eq!(frame::decode(&good[..cut]), Ok(None), "needs more bytes");
        let error = frame::decode_complete(&good[..cut]).unwrap_err();
        assert!(
            matches!(error, FrameError::Truncated { have, .. } if have == cut),
            "{error:?}"
        );
    }
    let mut two = good.clone();
    two.extend_from_slice(&good[..5]);
    assert!(matches!(
        frame::decode_complete(&two),
        Err(FrameError::Truncated { have: 5, .. })
    ));
}

/// A frame with any type byte and a correct checksum (what a peer with other code sends).
fn raw_frame(type_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = one_frame(MessageType::Query, payload);
    bytes[4] = type_byte;
    let mut hasher = blake3::Hasher::new();
    hasher.update(&bytes[..8]);
    hasher.update(payload);
    bytes[8..12].copy_from_slice(&hasher.finalize().as_bytes()[..4]);
    bytes
}

fn message_error(kind: MessageType, payload: &[u8]) -> MessageError {
    let bytes = one_frame(kind, payload);
    decode_message(&bytes).expect_err("refused")
}

#[test]
fn each_bad_message_has_its_own_error() {
    use MessageError as E;
    let fixture = Fixture::new();
    let record = fixture.tx(1, TxKind::Transfer, ALICE, BOB, 5);

    assert!(matches!(
        message_error(MessageType::Hello, &[0; 11]),
        E::WrongLength {
            expected: 12,
            found: 11,
            ..
        }
    ));
    let mut hello = [0u8; 12];
    hello[2] = 9;
    assert_eq!(message_error(MessageType::Hello, &hello), E::UnknownRole(9));
    hello[2] = 1;
    hello[3] = 1;
    assert!(matches!(
        message_error(MessageType::Hello, &hello),
        E::ReservedNotZero { .. }
    ));
    assert!(matches!(
        message_error(MessageType::Welcome, &[0; 63]),
        E::WrongLength { .. }
    ));

    let mut header = [0u8; 16];
    assert!(matches!(
        message_error(MessageType::SubmitBatch, &header[..15]),
        E::TooShort { min: 16, .. }
    ));
    assert_eq!(
        message_error(MessageType::SubmitBatch, &header),
        E::EmptyBatch
    );
    header[8..12].copy_from_slice(&(SUBMIT_BATCH_TX_MAX as u32 + 1).to_le_bytes());
    assert_eq!(
        message_error(MessageType::SubmitBatch, &header),
        E::BatchTooLarge {
            count: SUBMIT_BATCH_TX_MAX + 1
        }
    );
    header[8..12].copy_from_slice(&2u32.to_le_bytes());
    let mut one_record = header.to_vec();
    one_record.extend_from_slice(record.as_bytes());
    assert_eq!(
        message_error(MessageType::SubmitBatch, &one_record),
        E::BatchCountMismatch {
            count: 2,
            bytes: TX_BYTES
        }
    );
    one_record.push(0);
    assert!(matches!(
        message_error(MessageType::SubmitBatch, &one_record),
        E::BatchCountMismatch { .. }
    ));
    header[12] = 1;
    assert!(matches!(
        message_error(MessageType::SubmitBatch, &header),
        E::ReservedNotZero { .. }
    ));

    // A receipt refused over quota names a known quota; the quota byte is reserved otherwise.
    let mut receipt = vec![0u8; 24];
    receipt[12..16].copy_from_slice(&1u32.to_le_bytes());
    receipt[16] = 3;
    receipt[17] = 99;
    receipt.extend_from_slice(b"identity_submit_tx_per_s: slow down");
    assert_eq!(
        message_error(MessageType::SubmitReceipt, &receipt),
        E::UnknownQuota(99)
    );
    receipt.truncate(24);
    receipt[16] = 1;
    receipt[17] = Quota::SubmitRate as u8;
    assert!(matches!(
        message_error(MessageType::SubmitReceipt, &receipt),
        E::ReservedNotZero { .. }
    ));

    let mut results = vec![0u8; 8 + 32];
    results[..4].copy_from_slice(&1u32.to_le_bytes());
    results[8 + 24] = 200;
    assert_eq!(
        message_error(MessageType::Results, &results),
        E::UnknownResultCode(200)
    );
    results[8 + 24] = 0;
    results[8 + 30] = 1;
    assert!(matches!(
        message_error(MessageType::Results, &results),
        E::ReservedNotZero { .. }
    ));
    results[..4].copy_from_slice(&2u32.to_le_bytes());
    assert!(matches!(
        message_error(MessageType::Results, &results),
        E::ResultsCountMismatch { .. }
    ));
    results[..4].copy_from_slice(&(RESULTS_PER_FRAME_MAX as u32 + 1).to_le_bytes());
    assert!(matches!(
        message_error(MessageType::Results, &results),
        E::TooManyResults { .. }
    ));

    let mut receipt = [0u8; 24];
    receipt[16] = 4;
    receipt[12] = 1;
    assert_eq!(
        message_error(MessageType::SubmitReceipt, &receipt),
        E::UnknownRefusal(4)
    );
    receipt[16] = 0;
    assert!(matches!(
        message_error(MessageType::SubmitReceipt, &receipt),
        E::RefusalMismatch { .. }
    ));
    receipt[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        message_error(MessageType::SubmitReceipt, &receipt),
        E::ReceiptTooLarge { .. }
    ));
    let mut stopped = [0u8; 24].to_vec();
    stopped[12] = 1;
    stopped[16] = 2;
    stopped.extend_from_slice(&[0xff, 0xfe]);
    assert!(matches!(
        message_error(MessageType::SubmitReceipt, &stopped),
        E::BadUtf8 { .. }
    ));

    let mut query = 1u64.to_le_bytes().to_vec();
    query.extend_from_slice(br#"{"balance":{"acount":5}}"#);
    match message_error(MessageType::Query, &query) {
        E::BadJson { reason, .. } => assert!(reason.contains("acount"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let mut unknown = 1u64.to_le_bytes().to_vec();
    unknown.extend_from_slice(br#""teleport""#);
    match message_error(MessageType::Query, &unknown) {
        E::BadJson { reason, .. } => assert!(reason.contains("teleport"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        message_error(MessageType::Query, &[1, 2, 3]),
        E::TooShort { .. }
    ));

    let mut error = [0u8; 16];
    error[8] = 99;
    assert_eq!(
        message_error(MessageType::Error, &error),
        E::UnknownErrorCode(99)
    );
    error[8] = 1;
    let mut long = error.to_vec();
    long.extend(std::iter::repeat_n(b'x', 5000));
    assert!(matches!(
        message_error(MessageType::Error, &long),
        E::TextTooLong { .. }
    ));
}

proptest! {
    #![proptest_config(common::proptest_config("net_frames::hostile_bytes_never_panic", 2_000))]

    /// Arbitrary bytes, and valid frames with bytes flipped or cut, never panic a decoder and
    /// never make it read past what it was given.
    #[test]
    fn hostile_bytes_never_panic(
        noise in proptest::collection::vec(any::<u8>(), 0..600),
        kind_index in 0usize..MessageType::ALL.len(),
        flip_at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
        cut in any::<prop::sample::Index>(),
        type_byte in any::<u8>(),
    ) {
        // Pure noise.
        decode_stream(&noise);
        // Noise as the payload of a valid frame of each type: the message decoders see it.
        let kind = MessageType::ALL[kind_index];
        let framed = one_frame(kind, &noise);
        let (frame, used) = frame::decode(&framed).unwrap().unwrap();
        prop_assert_eq!(used, framed.len());
        let _ = Message::decode(frame);
        // Any type byte with a valid checksum.
        let _ = frame::decode(&raw_frame(type_byte, &noise));
        // A valid frame with one byte changed is refused (the checksum covers it all) or,
        // when the change is in the length, waits for more bytes or is refused.
        let mut damaged = framed.clone();
        let at = flip_at.index(damaged.len());
        damaged[at] ^= flip;
        match frame::decode(&damaged) {
            Ok(Some((_, used))) => prop_assert!(false, "a damaged frame decoded ({used} bytes, byte {at})"),
            Ok(None) => prop_assert!(at < 4, "only a changed length can wait for more"),
            Err(_) => {}
        }
        // Cut anywhere: needs more bytes, never decodes.
        let cut = cut.index(framed.len());
        prop_assert_eq!(frame::decode(&framed[..cut]), Ok(None));
        decode_stream(&framed[..cut]);
    }
}

/// Decodes frames and messages from a stream until it ends or is refused (the function the
/// fuzz target runs).
fn decode_stream(bytes: &[u8]) {
    tally_engine::net::decode_all(bytes);
}
