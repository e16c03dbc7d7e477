//! The GPU block (signatures and Merkle root over one upload of the records) against the CPU
//! paths: every verdict equals ed25519-zebra's single verifier, the root equals
//! `merkle::root`, for blocks of 0, 1, 2, 3, 63, 64, 65 and a few thousand records mixing
//! valid signatures, bad signatures, S >= L, non-canonical and undecodable R and A,
//! small-order points, registered and unregistered keys; sub-batch boundaries; another
//! record layout; the bytes uploaded (record + 36 per item, less than separate calls); bad
//! inputs; the CPU fallback on a GPU failure.
//!
//! Runs on any adapter (llvmpipe without a GPU). Without one the tests print a notice and
//! pass, or fail when TALLY_REQUIRE_GPU=1 (CI).

mod sigverify_support;

use ed25519_zebra::{SigningKey, VerificationKey};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sigverify_support::{non_canonical_encodings, seed, small_order_encodings};
use std::sync::{Mutex, MutexGuard, OnceLock};
use tally_kernels::gpu::block::{GpuBlock, RecordLayout};
use tally_kernels::gpu::GpuError;
use tally_kernels::merkle;
use tally_kernels::sigverify::gpu::{GPU_BATCH_ITEMS_MAX, ITEM_WORDS, KEY_ITEM_WORDS};
use tally_kernels::sigverify::{verify_single, SigItem};
use tally_kernels::testing::{test_context, InjectedFault};

/// The transaction record's layout: body 0..96, A, R, S.
const TX_LAYOUT: RecordLayout = RecordLayout {
    record_bytes: 192,
    public_key: 96,
    r: 128,
    s: 160,
};
const TAG: &[u8; 24] = b"TALLY-TEST-BLOCK\x07\0\0\0\0\0\0\0";
/// Signing keys; the first `REGISTERED` are registered on the shared block.
const KEYS: u8 = 8;
const REGISTERED: u8 = 4;
/// The group order L, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn signing_key(index: u8) -> SigningKey {
    SigningKey::from([index + 1; 32])
}

fn public_key(index: u8) -> [u8; 32] {
    VerificationKey::from(&signing_key(index)).into()
}

/// One GPU block for the whole binary (building one compiles the pipelines), with keys
/// 0..REGISTERED registered. `None` without an adapter (a panic with TALLY_REQUIRE_GPU=1).
fn shared_block() -> Option<&'static Mutex<GpuBlock>> {
    static BLOCK: OnceLock<Option<Mutex<GpuBlock>>> = OnceLock::new();
    BLOCK
        .get_or_init(|| {
            let context = test_context()?;
            let started = std::time::Instant::now();
            let mut block = GpuBlock::new(context).expect("the block kernels build and pass");
            eprintln!(
                "GpuBlock::new (pipelines and known answers) took {:.1} s on {}",
                started.elapsed().as_secs_f64(),
                block.context().info.name
            );
            let keys: Vec<[u8; 32]> = (0..REGISTERED).map(public_key).collect();
            assert_eq!(
                block.register_keys(&keys).expect("tables build"),
                keys.len()
            );
            Some(Mutex::new(block))
        })
        .as_ref()
}

fn lock(block: &Mutex<GpuBlock>) -> MutexGuard<'_, GpuBlock> {
    block
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The signed message of a record: the tag and its body (bytes 0..96).
fn message(record: &[u8]) -> Vec<u8> {
    let mut message = TAG.to_vec();
    message.extend_from_slice(&record[..96]);
    message
}

/// A block of `count` 192-byte records, record `i` of kind `i % 10` (see the match); the
/// kinds with a known verdict are checked against the reference as well.
fn block_records(rng: &mut ChaCha20Rng, count: usize) -> Vec<u8> {
    let weird_points: Vec<[u8; 32]> = small_order_encodings()
        .into_iter()
        .chain(non_canonical_encodings())
        .collect();
    let mut records = vec![0u8; count * 192];
    for (index, record) in records.chunks_exact_mut(192).enumerate() {
        rng.fill(&mut record[..96]);
        let key = rng.random_range(0..KEYS);
        // Kinds 0..=3 sign with a registered key half the time (key < REGISTERED).
        let sign = |record: &mut [u8], key: u8| {
            let signing = signing_key(key);
            record[96..128].copy_from_slice(&public_key(key));
            let signature = signing.sign(&message(record)).to_bytes();
            record[128..192].copy_from_slice(&signature);
        };
        sign(record, key);
        match index % 10 {
            // Valid, registered or not.
            0 | 1 => {}
            // Bad signature: the body changed after signing.
            2 => record[rng.random_range(0..96)] ^= 1 << rng.random_range(0..8),
            // S + L: the same equation with a non-canonical scalar (S >= L).
            3 => {
                let mut carry = 0u16;
                for (byte, l) in record[160..192].iter_mut().zip(L) {
                    let sum = u16::from(*byte) + u16::from(l) + carry;
                    *byte = sum as u8;
                    carry = sum >> 8;
                }
            }
            // S = 2^256 - 1.
            4 => record[160..192].fill(0xff),
            // R replaced by a small-order or non-canonical encoding (some decode).
            5 => {
                let r = weird_points[rng.random_range(0..weird_points.len())];
                record[128..160].copy_from_slice(&r);
            }
            // R undecodable (y = 2 is not on the curve).
            6 => {
                record[128..160].fill(0);
                record[128] = 2;
            }
            // A replaced by a small-order or non-canonical encoding.
            7 => {
                let a = weird_points[rng.random_range(0..weird_points.len())];
                record[96..128].copy_from_slice(&a);
            }
            // A undecodable.
            8 => {
                record[96..128].fill(0);
                record[96] = 2;
            }
            // Small-order A and R, S = 0: valid under the cofactored (ZIP-215) rule.
            _ => {
                let small = small_order_encodings();
                record[96..128].copy_from_slice(&small[rng.random_range(0..small.len())]);
                record[128..160].copy_from_slice(&small[rng.random_range(0..small.len())]);
                record[160..192].fill(0);
            }
        }
    }
    records
}

/// Messages of every record, then the items borrowing records and messages.
fn messages(records: &[u8], layout: &RecordLayout) -> Vec<Vec<u8>> {
    records
        .chunks_exact(layout.record_bytes)
        .map(message)
        .collect()
}

fn items<'a>(
    records: &'a [u8],
    layout: &RecordLayout,
    messages: &'a [Vec<u8>],
) -> Vec<SigItem<'a>> {
    records
        .chunks_exact(layout.record_bytes)
        .zip(messages)
        .map(|(record, message)| SigItem {
            public_key: record[layout.public_key..layout.public_key + 32]
                .try_into()
                .unwrap(),
            message,
            signature: {
                // R and S are adjacent in both layouts used here (R then S).
                assert_eq!(layout.s, layout.r + 32);
                record[layout.r..layout.r + 64].try_into().unwrap()
            },
        })
        .collect()
}

/// Runs the block on the GPU and checks verdicts, root and uploaded bytes; returns the
/// verdicts.
fn check_block(block: &mut GpuBlock, records: &[u8], layout: &RecordLayout) -> Vec<bool> {
    let messages = messages(records, layout);
    let items = items(records, layout, &messages);
    let mut verdicts = vec![false; items.len()];
    let run = block
        .verify_and_root(records, layout, &items, &mut verdicts)
        .expect("valid block input");
    assert!(run.fallback.is_none(), "GPU failed: {:?}", run.fallback);
    let expected: Vec<bool> = items.iter().map(verify_single).collect();
    for (index, (got, want)) in verdicts.iter().zip(&expected).enumerate() {
        assert_eq!(
            got,
            want,
            "item {index} of {} (kind {}): GPU verdict differs from the reference",
            items.len(),
            index % 10
        );
    }
    assert_eq!(
        run.root,
        merkle::root(records, layout.record_bytes),
        "root of {} records",
        items.len()
    );
    let count = items.len() as u64;
    assert!(run.shared_upload || count == 0);
    assert_eq!(run.upload.records, count * layout.record_bytes as u64);
    assert_eq!(run.upload.signatures, count * (KEY_ITEM_WORDS as u64 * 4));
    assert_eq!(
        run.upload.total(),
        count * (layout.record_bytes as u64 + 36)
    );
    verdicts
}

#[test]
fn block_verdicts_and_root_match_the_cpu_for_edge_sizes() {
    let Some(shared) = shared_block() else {
        return;
    };
    let mut block = lock(shared);
    let mut rng = ChaCha20Rng::seed_from_u64(seed());
    for count in [0usize, 1, 2, 3, 63, 64, 65] {
        let records = block_records(&mut rng, count);
        let verdicts = check_block(&mut block, &records, &TX_LAYOUT);
        // Kinds with a verdict known in advance.
        for (index, verdict) in verdicts.iter().enumerate() {
            match index % 10 {
                0 | 1 | 9 => assert!(*verdict, "item {index} of {count} should be valid"),
                2 | 3 | 4 | 6 | 8 => {
                    assert!(!*verdict, "item {index} of {count} should be invalid")
                }
                _ => {}
            }
        }
    }
}

#[test]
fn large_block_matches_the_cpu() {
    let Some(shared) = shared_block() else {
        return;
    };
    let mut block = lock(shared);
    let mut rng = ChaCha20Rng::seed_from_u64(seed());
    let count = 2000;
    let records = block_records(&mut rng, count);
    let started = std::time::Instant::now();
    let verdicts = check_block(&mut block, &records, &TX_LAYOUT);
    eprintln!(
        "{count} records, shared upload: {:.1} s on {}",
        started.elapsed().as_secs_f64(),
        block.context().info.name
    );
    assert!(verdicts.iter().any(|v| *v) && verdicts.iter().any(|v| !*v));
}

/// The separate calls (records for the tree, packed items for the signatures) give the same
/// answers and upload 132 bytes per item more than the records' 36.
#[test]
fn separate_calls_agree_and_upload_more() {
    let Some(shared) = shared_block() else {
        return;
    };
    let mut block = lock(shared);
    let mut rng = ChaCha20Rng::seed_from_u64(seed());
    let count = 65u64;
    let records = block_records(&mut rng, count as usize);
    let shared_verdicts = check_block(&mut block, &records, &TX_LAYOUT);
    // check_block asserted the shared upload: record + 36 bytes per item.
    let shared_bytes = count * (192 + 36);
    let messages = messages(&records, &TX_LAYOUT);
    let items = items(&records, &TX_LAYOUT, &messages);
    let mut verdicts = vec![false; items.len()];
    let run = block
        .verify_and_root_separately(&records, &TX_LAYOUT, &items, &mut verdicts)
        .unwrap();
    assert!(run.fallback.is_none(), "{:?}", run.fallback);
    assert!(!run.shared_upload);
    assert_eq!(verdicts, shared_verdicts);
    assert_eq!(run.root, merkle::root(&records, 192));
    assert_eq!(run.upload.records, count * 192);
    assert_eq!(run.upload.signatures, count * ITEM_WORDS as u64 * 4);
    assert!(shared_bytes < run.upload.total());
    eprintln!(
        "uploaded per 192-byte record: shared {} B, separate {} B",
        shared_bytes / count,
        run.upload.total() / count
    );
}

/// Small sub-batches: items of later sub-batches read records further into the buffer.
#[test]
fn sub_batches_read_the_right_records() {
    let Some(shared) = shared_block() else {
        return;
    };
    let mut block = lock(shared);
    let mut rng = ChaCha20Rng::seed_from_u64(seed());
    block.ed25519().set_sub_batch_items(7);
    let records = block_records(&mut rng, 45);
    check_block(&mut block, &records, &TX_LAYOUT);
    block.ed25519().set_sub_batch_items(GPU_BATCH_ITEMS_MAX);
}

/// Another layout: 100-word records with S, then A, then R; the other words are hashed too.
#[test]
fn another_record_layout_gives_the_same_answers() {
    let Some(shared) = shared_block() else {
        return;
    };
    let mut block = lock(shared);
    let mut rng = ChaCha20Rng::seed_from_u64(seed());
    let layout = RecordLayout {
        record_bytes: 400,
        public_key: 200,
        r: 300,
        s: 332,
    };
    let tx = block_records(&mut rng, 21);
    let mut records = vec![0u8; 21 * 400];
    for (record, tx) in records.chunks_exact_mut(400).zip(tx.chunks_exact(192)) {
        rng.fill(&mut record[..]);
        // The message is built from bytes 0..96, as for the 192-byte records.
        record[..96].copy_from_slice(&tx[..96]);
        record[200..232].copy_from_slice(&tx[96..128]);
        record[300..364].copy_from_slice(&tx[128..192]);
    }
    let verdicts = check_block(&mut block, &records, &layout);
    let expected = check_block(&mut block, &tx, &TX_LAYOUT);
    assert_eq!(verdicts, expected, "the same signatures in both layouts");
}

#[test]
fn bad_inputs_are_refused_with_their_reason() {
    let Some(shared) = shared_block() else {
        return;
    };
    let mut block = lock(shared);
    let mut rng = ChaCha20Rng::seed_from_u64(seed());
    let records = block_records(&mut rng, 4);
    let messages = messages(&records, &TX_LAYOUT);
    let good = items(&records, &TX_LAYOUT, &messages);
    let mut verdicts = vec![false; 4];
    let mut refuse =
        |records: &[u8], layout: &RecordLayout, items: &[SigItem<'_>], needle: &str| {
            let mut verdicts = vec![false; items.len()];
            match block.verify_and_root(records, layout, items, &mut verdicts) {
                Err(GpuError::InvalidInput(message)) => {
                    assert!(message.contains(needle), "{message:?} lacks {needle:?}")
                }
                other => panic!("expected InvalidInput ({needle}), got {other:?}"),
            }
        };
    for (layout, needle) in [
        (
            RecordLayout {
                s: 162,
                ..TX_LAYOUT
            },
            "the s offset 162",
        ),
        (
            RecordLayout {
                r: 176,
                ..TX_LAYOUT
            },
            "the r offset 176",
        ),
        (
            RecordLayout {
                record_bytes: 190,
                ..TX_LAYOUT
            },
            "record_bytes 190",
        ),
        (
            RecordLayout {
                record_bytes: 0,
                ..TX_LAYOUT
            },
            "record_bytes 0",
        ),
        (
            RecordLayout {
                record_bytes: 2048,
                ..TX_LAYOUT
            },
            "at most 1024",
        ),
    ] {
        refuse(&records, &layout, &good, needle);
    }
    refuse(
        &records[..700],
        &TX_LAYOUT,
        &good,
        "not whole 192-byte records",
    );
    refuse(
        &records,
        &TX_LAYOUT,
        &good[..3],
        "4 records but 3 signature items",
    );
    // An item whose signature is not its record's.
    let mut swapped = good.clone();
    swapped.swap(1, 2);
    refuse(&records, &TX_LAYOUT, &swapped, "signature item 1");
    // The block still works after the refusals.
    let run = block
        .verify_and_root(&records, &TX_LAYOUT, &good, &mut verdicts)
        .unwrap();
    assert_eq!(run.root, merkle::root(&records, 192));
}

/// A mapping failure mid-block: the call verifies and hashes on the CPU, says why, and the
/// next call uses the GPU again.
#[test]
fn gpu_failure_falls_back_to_the_cpu() {
    let Some(shared) = shared_block() else {
        return;
    };
    let mut block = lock(shared);
    let mut rng = ChaCha20Rng::seed_from_u64(seed());
    let records = block_records(&mut rng, 30);
    let messages = messages(&records, &TX_LAYOUT);
    let items = items(&records, &TX_LAYOUT, &messages);
    let expected: Vec<bool> = items.iter().map(verify_single).collect();
    block.ed25519().set_sub_batch_items(8);
    block
        .ed25519()
        .inject_fault(Some(InjectedFault::MapFailure { sub_batch: 2 }));
    let mut verdicts = vec![false; items.len()];
    let run = block
        .verify_and_root(&records, &TX_LAYOUT, &items, &mut verdicts)
        .unwrap();
    block.ed25519().set_sub_batch_items(GPU_BATCH_ITEMS_MAX);
    let error = run.fallback.expect("the injected fault is reported");
    assert!(
        error
            .to_string()
            .contains("injected mapping failure on sub-batch 2"),
        "{error}"
    );
    assert!(!run.shared_upload);
    assert_eq!(verdicts, expected);
    assert_eq!(run.root, merkle::root(&records, 192));
    check_block(&mut block, &records, &TX_LAYOUT);
}
