//! Checkpoints: restart from the newest intact checkpoint plus the log after it, the same
//! state as a full replay; damaged checkpoints are skipped; the archived log prefix is not
//! needed; the cadence of log bytes; a write that runs out of space leaves nothing behind,
//! does not hold up the pipeline while it is written, and stops the node.

mod common;

use common::*;
use crossbeam::channel::unbounded;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tally_engine::ledger::{Ledger, SnapshotError, SnapshotPoint};
use tally_engine::log::checkpoint::write_checkpoint;
use tally_engine::log::{FileOps, LogConfig, OsFileOps};
use tally_engine::node::{checkpoints_dir, replay_dir, Node, NodeConfig, SubmitError};
use tally_engine::result::ResultCode;
use tally_engine::tx::TxKind;

fn config(dir: &Path, archive: bool) -> NodeConfig {
    let mut config = NodeConfig::new(dir.to_path_buf());
    config.checkpoint_interval_blocks = 4;
    config.checkpoint_interval_ms = 0;
    config.checkpoint_log_bytes = 0;
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
    run_blocks_with(f, config, first_id, blocks, false)
}

/// As [`run_blocks`] on an empty data directory; with `settle_checkpoints`, after each block
/// whose height is a multiple of the checkpoint interval, waits until that height's
/// checkpoint is written and the writer free (`tally_checkpoints_written_total`) before the
/// next block, so that no checkpoint is skipped for a writer still busy with the one before
/// (which of them are written then does not depend on how fast the writer thread is
/// scheduled).
fn run_blocks_with(
    f: &Fixture,
    config: &NodeConfig,
    first_id: u128,
    blocks: u128,
    settle_checkpoints: bool,
) -> ([u8; 32], u64) {
    let node = Node::start(&f.genesis, config.clone()).unwrap();
    let handle = node.handle();
    let (reply, acks) = unbounded();
    for id in first_id..first_id + blocks {
        handle
            .submit(&[f.tx(id, TxKind::TaxedPayment, ALICE, SHOP, 3)], &reply)
            .unwrap();
        let ack = acks.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(ack.code, ResultCode::Ok);
        let height = (id - first_id + 1) as u64;
        if settle_checkpoints && height.is_multiple_of(config.checkpoint_interval_blocks) {
            // written, and the writer free for the next one
            let expected = height / config.checkpoint_interval_blocks;
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while handle.metrics().checkpoints_written.get() < expected {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no checkpoint at height {height} within 30 s"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(handle.metrics().checkpoint_height.get(), height as i64);
        }
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

fn height_of(file: &Path) -> u64 {
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    name.trim_start_matches("checkpoint-")
        .trim_end_matches(".ckpt")
        .parse()
        .unwrap()
}

/// Every file in the checkpoints directory, whatever its name.
fn all_files(config: &NodeConfig) -> Vec<String> {
    match std::fs::read_dir(checkpoints_dir(config)) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect(),
        Err(_) => Vec::new(),
    }
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
    let (root, height) = run_blocks_with(&f, &config, 1, 10, true);
    assert_eq!(height, 10);
    let files = checkpoint_files(&config);
    // Every 4 blocks (the writer idle at each, see `run_blocks_with`): 4 and 8 are kept.
    let heights: Vec<u64> = files.iter().map(|file| height_of(file)).collect();
    assert_eq!(heights, [4, 8], "the two newest checkpoints are kept");
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
    assert_eq!(older.height(), heights[0]);
    let newest = heights[1];
    let log_block_newest = tally_engine::log::Log::open(&config.data_dir.join("log"), config.log)
        .unwrap()
        .entries(newest - 1)
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
            height: newest,
            last_block_hash: log_block_newest,
        },
    );
    tally_engine::log::checkpoint::write_checkpoint(
        &checkpoints_dir(&config),
        newest,
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
    // Several segments' worth of blocks: a checkpoint due while the writer is still busy
    // waits for the writer (a loaded machine writes fewer), and the archive needs two
    // checkpoints with a segment between them.
    let (root, height) = run_blocks(&f, &config, 1, 600);
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

#[test]
fn checkpoints_follow_the_log_bytes_cadence() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), false);
    config.checkpoint_interval_blocks = 0;
    // The smallest cadence the node takes: one block's largest entry.
    let entry_max = tally_engine::log::entry_bytes(tally_engine::block::entry_bytes(64)) as u64;
    config.checkpoint_log_bytes = entry_max;
    let (root, height) = run_blocks(&f, &config, 1, 120);
    let files = checkpoint_files(&config);
    assert!(!files.is_empty(), "no checkpoint after 120 blocks");
    // A one-transaction block is a small entry: many blocks go by between two checkpoints.
    let newest = height_of(files.last().unwrap());
    if files.len() == 2 {
        let older = height_of(&files[0]);
        assert!(newest - older > 2, "{older} then {newest}");
    }
    let recovered = replay_dir(&f.genesis, &config).unwrap();
    assert_eq!(
        (recovered.ledger.state_root(), recovered.height),
        (root, height)
    );
}

/// Out of space for checkpoints once armed: a checkpoint's write stops after half its bytes
/// with ENOSPC. With `hold`, the write first waits (the test goes on meanwhile) until it is
/// released.
#[derive(Debug, Default)]
struct NoSpace {
    armed: AtomicBool,
    hold: Mutex<
        Option<(
            crossbeam::channel::Sender<()>,
            crossbeam::channel::Receiver<()>,
        )>,
    >,
}

impl FileOps for NoSpace {
    fn write_new_file(
        &self,
        path: &Path,
        file: &std::fs::File,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        if !self.armed.load(Ordering::Acquire) {
            return OsFileOps.write_new_file(path, file, bytes);
        }
        if let Some((reached, release)) = self.hold.lock().unwrap().take() {
            reached.send(()).unwrap();
            release.recv().unwrap();
        }
        OsFileOps.write_new_file(path, file, &bytes[..bytes.len() / 2])?;
        Err(std::io::Error::from_raw_os_error(28)) // ENOSPC
    }
}

#[test]
fn a_checkpoint_write_out_of_space_leaves_nothing_behind() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::from_genesis(&f.genesis);
    let snapshot = |height| {
        ledger.snapshot(
            &f.genesis.hash(),
            SnapshotPoint {
                height,
                last_block_hash: [0; 32],
            },
        )
    };
    let faults = NoSpace::default();
    write_checkpoint(dir.path(), 4, &snapshot(4), &faults).unwrap();
    faults.armed.store(true, Ordering::Release);
    let error = write_checkpoint(dir.path(), 8, &snapshot(8), &faults).unwrap_err();
    assert!(error.to_string().contains("No space left"), "{error}");
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["checkpoint-00000000000000000004.ckpt"]);
    let (stored, damaged) = tally_engine::log::checkpoint::load_checkpoints(dir.path()).unwrap();
    assert_eq!((stored.len(), damaged.len()), (1, 0));
    // What a crash in the middle of a write leaves (a temporary file) goes at the next start.
    std::fs::write(
        dir.path().join("checkpoint-00000000000000000012.tmp"),
        b"cut",
    )
    .unwrap();
    assert_eq!(
        tally_engine::log::checkpoint::remove_temporaries(dir.path()).unwrap(),
        1
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_checkpoint_out_of_space_stops_the_node_without_holding_up_blocks_before_it() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(NoSpace::default());
    let (reached_tx, reached) = crossbeam::channel::bounded(1);
    let (release, release_rx) = crossbeam::channel::bounded(1);
    *faults.hold.lock().unwrap() = Some((reached_tx, release_rx));
    faults.armed.store(true, Ordering::Release);
    let mut config = config(dir.path(), false);
    config.checkpoint_interval_blocks = 1;
    config.file_ops = faults.clone();
    // A crash left a temporary file: the node removes it when it starts.
    std::fs::create_dir_all(checkpoints_dir(&config)).unwrap();
    std::fs::write(
        checkpoints_dir(&config).join("checkpoint-00000000000000000003.tmp"),
        b"cut",
    )
    .unwrap();
    let node = Node::start(&f.genesis, config.clone()).unwrap();
    assert!(all_files(&config).is_empty(), "{:?}", all_files(&config));
    let handle = node.handle();
    let (reply, acks) = unbounded();
    let pay = |id: u128| f.tx(id, TxKind::TaxedPayment, ALICE, SHOP, 3);
    handle.submit(&[pay(1)], &reply).unwrap();
    assert_eq!(
        acks.recv_timeout(Duration::from_secs(30)).unwrap().height,
        Some(1)
    );
    // The checkpoint of block 1 is being written (and held there): blocks go on meanwhile,
    // each acknowledged when durable; the checkpoints due after them wait.
    reached.recv_timeout(Duration::from_secs(30)).unwrap();
    for id in 2..=5 {
        handle.submit(&[pay(id)], &reply).unwrap();
        let ack = acks.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!((ack.id, ack.code), (id, ResultCode::Ok));
        assert_eq!(ack.height, Some(id as u64));
    }
    // Now the write runs out of space: the node stops.
    release.send(()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while handle.fatal_error().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let reason = handle
        .fatal_error()
        .expect("the failed checkpoint stopped the node");
    assert!(
        reason.contains("checkpoint of block 1") && reason.contains("No space left"),
        "{reason}"
    );
    assert!(matches!(
        handle.submit(&[pay(6)], &reply),
        Err(SubmitError::Stopped { .. })
    ));
    let outcome = node.shutdown();
    assert!(outcome.fatal.is_some());
    assert!(
        acks.try_recv().is_err(),
        "nothing acknowledged after the failure"
    );
    // Nothing of the failed write is left: no checkpoint, no temporary file.
    assert!(all_files(&config).is_empty(), "{:?}", all_files(&config));
    // With space again, the node restarts from its log, every acknowledged block there.
    faults.armed.store(false, Ordering::Release);
    let recovered = replay_dir(&f.genesis, &config).unwrap();
    assert_eq!(recovered.height, 5);
    assert!(recovered.ledger.is_settled(5));
}

#[test]
fn a_copy_for_a_checkpoint_encodes_the_same_snapshot_and_later_blocks_leave_it_alone() {
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use tally_engine::genesis::{AccountRangeSpec, Role};
    const FIRST: u64 = 5_000_000;
    const COUNT: u64 = 2_000; // many copy-on-write chunks of accounts
    let mut f = Fixture::banks(2, 1_000_000);
    let owner = f.genesis.accounts[3].owner.clone(); // BANK_A's key
    f.genesis.account_ranges = vec![AccountRangeSpec {
        first_id: FIRST,
        count: COUNT,
        role: Role::Consumer,
        bank: BANK_A,
        owner,
        balance: 1_000,
        balance_max: None,
    }];
    f.genesis.validate().unwrap();
    let seed = test_seed("a_copy_for_a_checkpoint_encodes_the_same_snapshot");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut next_id = 0u128;
    let mut block = |rng: &mut ChaCha8Rng| -> Vec<tally_engine::tx::TxRecord> {
        (0..200)
            .map(|_| {
                next_id += 1;
                let debit = FIRST + rng.random_range(0..COUNT);
                let credit = FIRST + rng.random_range(0..COUNT);
                f.signed_by(
                    BANK_A,
                    &f.fields(next_id, TxKind::Transfer, debit, credit, 3),
                )
            })
            .collect()
    };
    let blocks: Vec<_> = (0..8).map(|_| block(&mut rng)).collect();
    // `live` takes a copy after block 4 and goes on; `twin` executes the same blocks and is
    // never copied
    let mut live = Ledger::from_genesis(&f.genesis);
    let mut twin = Ledger::from_genesis(&f.genesis);
    let point = |height| SnapshotPoint {
        height,
        last_block_hash: [height as u8; 32],
    };
    let genesis = f.genesis.hash();
    let mut copy = None;
    let mut at_copy = Vec::new();
    for (height, records) in (1..).zip(&blocks) {
        let ours = live.execute_block(height, 1_000 * height, records);
        assert_eq!(ours, twin.execute_block(height, 1_000 * height, records));
        assert!(ours.iter().filter(|c| c.is_ok()).count() > 150);
        if height == 4 {
            at_copy = live.snapshot(&genesis, point(4));
            let taken = live.copy_for_snapshot();
            assert_eq!(taken.snapshot(&genesis, point(4)), at_copy, "seed {seed}");
            copy = Some(taken);
        }
    }
    let copy = copy.unwrap();
    // four blocks of writes later, the copy still encodes the state after block 4
    assert_eq!(copy.snapshot(&genesis, point(4)), at_copy, "seed {seed}");
    // and the live ledger, which copied the chunks it changed, is the never-copied twin
    let (live_bytes, twin_bytes) = (
        live.snapshot(&genesis, point(8)),
        twin.snapshot(&genesis, point(8)),
    );
    assert_ne!(live_bytes, at_copy);
    assert_eq!(live_bytes, twin_bytes, "seed {seed}");
    assert_eq!(live.state_root(), twin.state_root());
    assert_eq!(live.state_root(), live.state_root_from_scratch());
    let (restored, _) = Ledger::restore(&at_copy, &genesis).unwrap();
    assert_eq!(restored.accounts(), copy.accounts());
}

#[test]
fn a_start_reports_the_checkpoint_it_loaded_and_the_blocks_it_replayed() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), false);
    let (_, height) = run_blocks_with(&f, &config, 1, 10, true);
    assert_eq!(height, 10);

    let node = Node::start(&f.genesis, config.clone()).unwrap();
    let cost = node.start_cost();
    assert_eq!(node.replayed_height(), 10);
    drop(node.shutdown());
    // From the checkpoint at 8: blocks 9 and 10 executed again, one record each.
    assert_eq!(cost.recovery.checkpoint_height, Some(8));
    assert_eq!(
        (
            cost.recovery.replayed_blocks,
            cost.recovery.replayed_records
        ),
        (2, 2)
    );
    assert_eq!(
        cost.live_log_entries, 10,
        "no archive: the whole log is live"
    );
    let parts = cost.log_open
        + cost.journals_open
        + cost.recovery.checkpoint_load
        + cost.recovery.replay
        + cost.verifier_keys
        + cost.history_open;
    assert!(parts <= cost.total, "{cost:?}");

    // Without checkpoints, every block from the genesis.
    std::fs::remove_dir_all(checkpoints_dir(&config)).unwrap();
    let node = Node::start(&f.genesis, config).unwrap();
    let cost = node.start_cost();
    drop(node.shutdown());
    assert_eq!(cost.recovery.checkpoint_height, None);
    assert_eq!(
        (
            cost.recovery.replayed_blocks,
            cost.recovery.replayed_records
        ),
        (10, 10)
    );
}
