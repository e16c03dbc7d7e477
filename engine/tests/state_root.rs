//! The incremental state root: the accounts' tree kept between blocks and updated for the
//! accounts a block changed gives, after every block, the root of a full rehash.

mod common;

use common::*;
use rand::{RngExt, SeedableRng};
use tally_engine::ledger::{Ledger, SnapshotPoint};
use tally_engine::tx::{TxFlags, TxKind, TxRecord};

#[test]
fn the_kept_tree_gives_the_root_of_a_full_rehash_over_random_changes() {
    let seed = test_seed("the_kept_tree_gives_the_root_of_a_full_rehash");
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    // 1 003 leaves: an odd count, so that odd nodes are promoted at several levels
    const BANKS: u64 = 1_000;
    let f = Fixture::banks(BANKS, 1_000);
    let mut ledger = Ledger::from_genesis(&f.genesis);
    assert_eq!(ledger.state_root(), ledger.state_root_from_scratch());
    let mut id = 0u128;
    for height in 1..=120u64 {
        let count = rng.random_range(0..40u64);
        let records: Vec<TxRecord> = (0..count)
            .map(|_| {
                id += 1;
                let payer = BANK_A + rng.random_range(0..BANKS);
                let payee = BANK_A + (payer - BANK_A + 1 + rng.random_range(0..BANKS - 1)) % BANKS;
                let amount = rng.random_range(1..1_500u64); // some lack liquidity and queue
                let roll = rng.random_range(0..10u32);
                f.custom(payer, id, TxKind::Transfer, payer, payee, amount, |t| {
                    if roll == 0 {
                        t.flags = TxFlags(TxFlags::PENDING);
                    } else if roll == 1 {
                        t.flags = TxFlags(TxFlags::LINKED); // chains that fail are undone
                    }
                })
            })
            .collect();
        let codes = ledger.execute_block(height, height * 1_000, &records);
        assert_eq!(codes.len() as u64, count);
        assert_eq!(
            ledger.state_root(),
            ledger.state_root_from_scratch(),
            "block {height}, seed {seed}"
        );
    }
    // a restored ledger builds its tree from every leaf and goes on with the same roots
    let bytes = ledger.snapshot(
        &f.genesis.hash(),
        SnapshotPoint {
            height: 120,
            last_block_hash: [0; 32],
        },
    );
    let (restored, _) = Ledger::restore(&bytes, &f.genesis.hash()).unwrap();
    assert_eq!(restored.state_root(), ledger.state_root());
}
