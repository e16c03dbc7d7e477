//! Checkpoints: restart from the newest intact checkpoint plus the log after it, the same
//! state as a full replay; damaged checkpoints are skipped; the archived log prefix is not
//! needed.

mod common;

use common::*;
use crossbeam::channel::unbounded;
use std::path::Path;
use std::time::Duration;
use tally_engine::ledger::{Ledger, SnapshotError, SnapshotPoint};
use tally_engine::log::LogConfig;
use tally_engine::node::{checkpoints_dir, replay_dir, Node, NodeConfig};
use tally_engine::result::ResultCode;
use tally_engine::tx::TxKind;

fn config(dir: &Path, archive: bool) -> NodeConfig {
    let mut config = NodeConfig::new(dir.to_path_buf());
    config.checkpoint_interval_blocks = 4;
    config.log = LogConfig {
        segment_bytes: 64 * 1024,
        entry_bytes_max: 32 * 1024,
    };
    config.block_tx_max = 64;
    config.sigverify_batch_tx_max = 64;
    if archive {
        config.archive_dir = Some(dir.join("archive"));
    }
    config
}

/// Runs `blocks` one-transaction blocks (each waits for its ack); ids start at `first_id`.
fn run_blocks(f: &Fixture, config: &NodeConfig, first_id: u128, blocks: u128) -> ([u8; 32], u64) {
    let node = Node::start(&f.genesis, config.clone()).unwrap();
    let handle = node.handle();
    let (reply, acks) = unbounded();
    for id in first_id..first_id + blocks {
        handle
            .submit(&[f.tx(id, TxKind::TaxedPayment, ALICE, SHOP, 3)], &reply)
            .unwrap();
        let ack = acks.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(ack.code, ResultCode::Ok);
    }
    let outcome = node.shutdown();
    assert_eq!(outcome.fatal, None);
    (outcome.state_root, outcome.height)
}

fn checkpoint_files(config: &NodeConfig) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(checkpoints_dir(config))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ckpt"))
        .collect();
    files.sort();
    files
}

#[test]
fn a_snapshot_restores_the_same_state_and_refuses_damage() {
    let f = Fixture::new();
    let mut ledger = Ledger::from_genesis(&f.genesis);
    for id in 1..=20u128 {
        ledger.execute(&f.tx(id, TxKind::TaxedPayment, ALICE, SHOP, 11));
    }
    let point = SnapshotPoint {
        height: 7,
        last_block_hash: [9; 32],
    };
    let bytes = ledger.snapshot(&f.genesis.hash(), point);
    let (restored, restored_point) = Ledger::restore(&bytes, &f.genesis.hash()).unwrap();
    assert_eq!(restored_point, point);
    assert_eq!(restored.state_root(), ledger.state_root());
    assert!(restored.is_settled(20));
    assert_eq!(
        Ledger::restore(&bytes, &[0; 32]).err(),
        Some(SnapshotError::OtherGenesis)
    );
    assert!(matches!(
        Ledger::restore(&bytes[..bytes.len() - 5], &f.genesis.hash()),
        Err(SnapshotError::Truncated(_))
    ));
    let mut extra = bytes.clone();
    extra.push(0);
    assert_eq!(
        Ledger::restore(&extra, &f.genesis.hash()).err(),
        Some(SnapshotError::TrailingBytes(1))
    );
    let mut bad_magic = bytes;
    bad_magic[0] ^= 1;
    assert_eq!(
        Ledger::restore(&bad_magic, &f.genesis.hash()).err(),
        Some(SnapshotError::BadMagic)
    );
}

#[test]
fn restart_from_a_checkpoint_equals_a_full_replay_and_skips_a_damaged_one() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), false);
    let (root, height) = run_blocks(&f, &config, 1, 10);
    assert_eq!(height, 10);
    let files = checkpoint_files(&config);
    assert_eq!(
        files.len(),
        2,
        "the two newest checkpoints are kept: {files:?}"
    );
    assert!(files[1].to_string_lossy().contains("00000000000000000008"));
    let recovered = replay_dir(&f.genesis, &config).unwrap();
    assert_eq!(
        (recovered.ledger.state_root(), recovered.height),
        (root, height)
    );

    // Damage the newest checkpoint: recovery falls back to the older one, same state.
    let mut bytes = std::fs::read(&files[1]).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&files[1], bytes).unwrap();
    let recovered = replay_dir(&f.genesis, &config).unwrap();
    assert_eq!(
        (recovered.ledger.state_root(), recovered.height),
        (root, height)
    );

    // A checkpoint whose state is of another height than it names (crafted from the older
    // checkpoint's state) is skipped too, not trusted.
    let file = std::fs::read(&files[0]).unwrap();
    let snapshot = &file[..file.len() - 32]; // the file ends with its BLAKE3 checksum
    let (older, _) = Ledger::restore(snapshot, &f.genesis.hash()).unwrap();
    assert_eq!(older.height(), 4);
    let log_block_8 = tally_engine::log::Log::open(&config.data_dir.join("log"), config.log)
        .unwrap()
        .entries(7)
        .unwrap()
        .next()
        .unwrap()
        .map(|(_, entry)| {
            tally_engine::block::decode_entry(entry)
                .unwrap()
                .header
                .hash()
        })
        .unwrap();
    let crafted = older.snapshot(
        &f.genesis.hash(),
        SnapshotPoint {
            height: 8,
            last_block_hash: log_block_8,
        },
    );
    tally_engine::log::checkpoint::write_checkpoint(
        &checkpoints_dir(&config),
        8,
        &crafted,
        &tally_engine::log::OsFileOps,
    )
    .unwrap();
    let recovered = replay_dir(&f.genesis, &config).unwrap();
    assert_eq!(
        (recovered.ledger.state_root(), recovered.height),
        (root, height)
    );

    // Without any checkpoint, the full log gives the same state too.
    std::fs::remove_dir_all(checkpoints_dir(&config)).unwrap();
    let recovered = replay_dir(&f.genesis, &config).unwrap();
    assert_eq!(
        (recovered.ledger.state_root(), recovered.height),
        (root, height)
    );
}

#[test]
fn with_archiving_the_live_log_stays_short_and_restart_needs_no_archive() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), true);
    let (root, height) = run_blocks(&f, &config, 1, 200);
    let archived: Vec<_> = std::fs::read_dir(dir.path().join("archive"))
        .unwrap()
        .collect();
    assert!(
        !archived.is_empty(),
        "segments before the older checkpoint were archived"
    );
    let recovered = replay_dir(&f.genesis, &config).unwrap();
    assert_eq!(
        (recovered.ledger.state_root(), recovered.height),
        (root, height)
    );
    // And the node goes on from there, the id index intact.
    let node = Node::start(&f.genesis, config.clone()).unwrap();
    let (reply, acks) = unbounded();
    node.handle()
        .submit(&[f.tx(1, TxKind::TaxedPayment, ALICE, SHOP, 3)], &reply)
        .unwrap();
    assert_eq!(
        acks.recv_timeout(Duration::from_secs(30)).unwrap().code,
        ResultCode::DuplicateId
    );
    node.shutdown();
}
