//! The GPU in the node: with `backend = "gpu"` a node that builds its own blocks verifies a
//! batch's signatures and computes its transaction root from one upload (`GpuBlock`), and
//! gives the same answers as the CPU node for the same submissions. Runs on whatever adapter
//! exists (llvmpipe in CI, where `TALLY_REQUIRE_GPU=1` makes a missing adapter a failure).

mod common;

use common::*;
use crossbeam::channel::unbounded;
use std::collections::BTreeMap;
use std::time::Duration;
use tally_engine::node::{Backend, Node, NodeConfig, NodeOutcome};
use tally_engine::result::ResultCode;
use tally_engine::tx::{TxKind, TxRecord};
use tally_kernels::gpu::{gpu_required, GpuContext, REQUIRE_GPU_ENV};

fn gpu_present() -> bool {
    match GpuContext::shared() {
        Ok(_) => true,
        Err(error) if gpu_required() => {
            panic!("{REQUIRE_GPU_ENV}=1 but no GPU context could be created: {error}")
        }
        Err(error) => {
            eprintln!("notice: GPU test skipped, no GPU context: {error}");
            false
        }
    }
}

/// Submits each batch in turn, waiting for its answers; returns every answer by id and what
/// the node ends with.
fn run(
    f: &Fixture,
    backend: Backend,
    dir: &std::path::Path,
    batches: &[Vec<TxRecord>],
) -> (BTreeMap<u128, ResultCode>, NodeOutcome, u64) {
    let mut config = NodeConfig::new(dir.to_path_buf());
    config.backend = backend;
    let node = Node::start(&f.genesis, config).unwrap();
    let handle = node.handle();
    let (reply, acks) = unbounded();
    let mut codes = BTreeMap::new();
    for batch in batches {
        handle.submit(batch, &reply).unwrap();
        for _ in 0..batch.len() {
            let ack = acks
                .recv_timeout(Duration::from_secs(120))
                .expect("every transaction is answered");
            codes.insert(ack.id, ack.code);
        }
    }
    let gpu_roots = handle.metrics().gpu_block_roots.get();
    let fallbacks = handle.metrics().gpu_fallbacks.get();
    assert_eq!(fallbacks, 0, "no GPU failure on a working adapter");
    (codes, node.shutdown(), gpu_roots)
}

#[test]
fn a_gpu_node_verifies_and_hashes_its_blocks_as_the_cpu_node_does() {
    if !gpu_present() {
        return;
    }
    let f = Fixture::new();
    let good: Vec<TxRecord> = (1..=24)
        .map(|id| f.tx(id, TxKind::Transfer, ALICE, BOB, id as u64))
        .collect();
    let mut mixed: Vec<TxRecord> = (25..=36)
        .map(|id| f.tx(id, TxKind::TaxedPayment, ALICE, SHOP, 100 + id as u64))
        .collect();
    mixed[3].signature[7] ^= 0x10;
    mixed[8].signature[40] ^= 0x01;
    let overdrawn = vec![
        f.tx(37, TxKind::Transfer, BOB, ALICE, 1_000_000),
        f.tx(38, TxKind::Pledge, CENTRAL_BANK, BANK_A, 5_000),
    ];
    let batches = vec![good, mixed, overdrawn];

    let gpu_dir = tempfile::tempdir().unwrap();
    let (gpu_codes, gpu_outcome, gpu_roots) = run(&f, Backend::Gpu, gpu_dir.path(), &batches);
    let cpu_dir = tempfile::tempdir().unwrap();
    let (cpu_codes, cpu_outcome, cpu_roots) = run(&f, Backend::Cpu, cpu_dir.path(), &batches);

    assert!(gpu_outcome.fatal.is_none(), "{:?}", gpu_outcome.fatal);
    assert!(
        gpu_roots >= 1,
        "the all-valid batch's block took its root from the GPU"
    );
    assert_eq!(cpu_roots, 0, "the CPU node hashes on the CPU");
    assert_eq!(
        gpu_codes, cpu_codes,
        "the same answer for every transaction"
    );
    assert_eq!(gpu_codes[&28], ResultCode::BadSignature);
    assert_eq!(gpu_codes[&33], ResultCode::BadSignature);
    assert_eq!(gpu_codes[&1], ResultCode::Ok);
    for account in [CENTRAL_BANK, TAX, BANK_A, BANK_B, ALICE, BOB, SHOP] {
        assert_eq!(
            gpu_outcome.ledger.balance(account),
            cpu_outcome.ledger.balance(account),
            "account {account}"
        );
    }

    // Every block the GPU node wrote is read back with its transaction root checked on the
    // CPU (a root that differed would be refused as a damaged entry).
    let mut config = NodeConfig::new(gpu_dir.path().to_path_buf());
    config.backend = Backend::Cpu;
    let reopened = Node::start(&f.genesis, config).unwrap().shutdown();
    assert_eq!(reopened.height, gpu_outcome.height);
    assert_eq!(reopened.state_root, gpu_outcome.state_root);
}
