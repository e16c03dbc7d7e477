//! Executor throughput: plain transfers, taxed payments and a gridlock-heavy interbank mix
//! executed block by block (`begin_block`, `execute` per record, `end_block` with queue
//! retries and the liquidity-saving mechanism), signatures excluded (the executor trusts
//! the signature stage). Quoted beside ed25519-zebra's batch verifier on the same machine in
//! the same run: execution must stay far below the cost of verifying the signatures.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::time::Instant;
use tally_engine::genesis::{AccountSpec, Genesis, Role, TaxRateSpec, ValidatorSpec};
use tally_engine::ledger::Ledger;
use tally_engine::result::ResultCode;
use tally_engine::tax::{Rounding, TaxBasis};
use tally_engine::tx::{TxFields, TxFlags, TxKind, TxRecord};

/// Records per block in the measurement.
pub const BLOCK_TX: usize = 4_096;
const LEDGER: u32 = 702;
const BANKS: u64 = 32;
const CONSUMERS: u64 = 20_000;
const MERCHANTS: u64 = 1_000;
const FIRST_BANK: u64 = 1_000;
const FIRST_CONSUMER: u64 = 100_000;
const FIRST_MERCHANT: u64 = 1_000_000;

/// Which records are executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutorWorkload {
    /// Consumer-to-consumer transfers.
    PlainTransfers,
    /// Consumer-to-merchant taxed payments over three categories.
    TaxedPayments,
    /// Interbank payments larger than the banks' liquidity (most queue), a fifth urgent, with
    /// a few pledges: the queues and the offsetting run at every block's end.
    GridlockHeavy,
}

impl ExecutorWorkload {
    pub const ALL: [ExecutorWorkload; 3] = [
        ExecutorWorkload::PlainTransfers,
        ExecutorWorkload::TaxedPayments,
        ExecutorWorkload::GridlockHeavy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ExecutorWorkload::PlainTransfers => "plain transfers",
            ExecutorWorkload::TaxedPayments => "taxed payments",
            ExecutorWorkload::GridlockHeavy => "gridlock-heavy interbank mix",
        }
    }
}

/// Figures of one workload.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExecutorFigures {
    pub workload: ExecutorWorkload,
    pub tx_count: usize,
    pub blocks: usize,
    /// Records executed per second (begin, execute, end of block; state root excluded).
    pub tx_per_s: f64,
    /// Records answered `ok` in their block.
    pub settled: u64,
    /// Records answered `queued`.
    pub queued: u64,
    /// Queued payments that settled at a block's end (retries and offsetting).
    pub settled_from_queue: u64,
    /// State-root computations per second (one per block in the node).
    pub state_roots_per_s: f64,
}

struct Setup {
    genesis: Genesis,
    owners: std::collections::HashMap<u64, [u8; 32]>,
}

fn setup() -> Setup {
    let mut owners = std::collections::HashMap::new();
    let mut accounts = Vec::new();
    let mut add = |id: u64, role: Role, balance: u64, bank: Option<u64>| {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&id.to_le_bytes());
        let key = ed25519_zebra::SigningKey::from(seed);
        let public: [u8; 32] = ed25519_zebra::VerificationKey::from(&key).into();
        owners.insert(id, public);
        accounts.push(AccountSpec {
            id,
            name: format!("account-{id}"),
            role,
            owner: hex_encode(&public),
            balance,
            bank,
            overdraft_max: 0,
            balance_max: None,
            tax_sub_account: None,
            bic: None,
        });
    };
    add(1, Role::CentralBank, 0, None);
    add(2, Role::TaxAuthority, 0, None);
    add(3, Role::Observer, 0, None);
    for i in 0..BANKS {
        add(FIRST_BANK + i, Role::Bank, 50_000, None);
    }
    for i in 0..CONSUMERS {
        add(
            FIRST_CONSUMER + i,
            Role::Consumer,
            1_000_000_000,
            Some(FIRST_BANK + i % BANKS),
        );
    }
    for i in 0..MERCHANTS {
        add(
            FIRST_MERCHANT + i,
            Role::Merchant,
            0,
            Some(FIRST_BANK + i % BANKS),
        );
    }
    // every basis: retail GST in the price, VAT on a net invoice, a withholding
    let genesis = bench_genesis(
        accounts,
        vec![
            TaxRateSpec::new(1, 900, TaxBasis::Inclusive, Rounding::HalfUp),
            TaxRateSpec::new(2, 2_000, TaxBasis::Exclusive, Rounding::HalfUp),
            TaxRateSpec::new(3, 1_000, TaxBasis::Gross, Rounding::Down),
        ],
    );
    genesis.validate().expect("the bench genesis is valid");
    Setup { genesis, owners }
}

/// The benches' genesis: network 7, one validator, these accounts and tax rates.
fn bench_genesis(accounts: Vec<AccountSpec>, tax_rates: Vec<TaxRateSpec>) -> Genesis {
    let validator = ed25519_zebra::SigningKey::from([9u8; 32]);
    Genesis {
        network_id: 7,
        ledger: LEDGER,
        validators: vec![ValidatorSpec {
            name: "v0".into(),
            public_key: hex_encode(&ed25519_zebra::VerificationKey::from(&validator).into()),
        }],
        tax_rates,
        accounts,
        account_ranges: Vec::new(),
        settlement: Default::default(),
        heights_per_epoch: tally_engine::genesis::HEIGHTS_PER_EPOCH_DEFAULT,
        revoked: Vec::new(),
        currency: Default::default(),
    }
}

fn hex_encode(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Records of a workload: unsigned, with the owner's public key (the executor checks the key,
/// the signature stage checks the signature).
fn records(setup: &Setup, workload: ExecutorWorkload, count: usize) -> Vec<TxRecord> {
    let mut rng = ChaCha20Rng::seed_from_u64(0x7a11_e8ec);
    (0..count)
        .map(|i| {
            let id = i as u128 + 1;
            // blocks run at times 1_000 + height: valid through the whole run
            let mut fields = TxFields::transfer(id, 0, 0, 0, LEDGER)
                .valid_until(tally_engine::genesis::VALIDITY_WINDOW_MS_DEFAULT);
            let mut signer = 0;
            match workload {
                ExecutorWorkload::PlainTransfers => {
                    fields.debit_account = FIRST_CONSUMER + rng.random_range(0..CONSUMERS);
                    fields.credit_account = FIRST_CONSUMER
                        + (fields.debit_account - FIRST_CONSUMER
                            + 1
                            + rng.random_range(0..CONSUMERS - 1))
                            % CONSUMERS;
                    fields.amount = rng.random_range(1..10_000);
                }
                ExecutorWorkload::TaxedPayments => {
                    fields.kind = TxKind::TaxedPayment;
                    fields.debit_account = FIRST_CONSUMER + rng.random_range(0..CONSUMERS);
                    fields.credit_account = FIRST_MERCHANT + rng.random_range(0..MERCHANTS);
                    fields.amount = rng.random_range(1..10_000);
                    fields.category = rng.random_range(1..=3);
                }
                ExecutorWorkload::GridlockHeavy => {
                    if rng.random_range(0..100) < 2 {
                        fields.kind = TxKind::Pledge;
                        fields.debit_account = 1;
                        fields.credit_account = FIRST_BANK + rng.random_range(0..BANKS);
                        fields.amount = 200_000;
                        signer = 1;
                    } else {
                        fields.debit_account = FIRST_BANK + rng.random_range(0..BANKS);
                        fields.credit_account = FIRST_BANK
                            + (fields.debit_account - FIRST_BANK
                                + 1
                                + rng.random_range(0..BANKS - 1))
                                % BANKS;
                        fields.amount = rng.random_range(10_000..120_000);
                        if rng.random_range(0..5) == 0 {
                            fields.flags = TxFlags(TxFlags::URGENT);
                        }
                    }
                }
            }
            if signer == 0 {
                signer = fields.debit_account;
            }
            let mut record = TxRecord::new(&fields);
            record.public_key = setup.owners[&signer];
            record
        })
        .collect()
}

/// The genesis and `count` records of `workload`, as [`measure`] executes them (for the
/// criterion bench).
pub fn workload_input(workload: ExecutorWorkload, count: usize) -> (Genesis, Vec<TxRecord>) {
    let setup = setup();
    let records = records(&setup, workload, count);
    (setup.genesis, records)
}

/// Executes `records` in blocks of [`BLOCK_TX`] on `ledger`, from block `first_height`
/// on; returns how many settled or queued.
pub fn execute_blocks(ledger: &mut Ledger, records: &[TxRecord], first_height: u64) -> u64 {
    let mut results: Vec<ResultCode> = Vec::with_capacity(BLOCK_TX);
    let mut accepted = 0;
    for (offset, block) in records.chunks(BLOCK_TX).enumerate() {
        let height = first_height + offset as u64;
        ledger.begin_block(height, 1_000 + height);
        results.clear();
        results.extend(block.iter().map(|record| ledger.execute(record)));
        ledger.end_block(&mut results);
        accepted += results.iter().filter(|code| code.is_ok()).count() as u64;
    }
    accepted
}

/// Executes `tx_count` records of each workload in blocks of [`BLOCK_TX`].
pub fn measure(tx_count: usize) -> Vec<ExecutorFigures> {
    let setup = setup();
    ExecutorWorkload::ALL
        .iter()
        .map(|&workload| {
            let records = records(&setup, workload, tx_count);
            let mut ledger = Ledger::from_genesis(&setup.genesis);
            let mut results: Vec<ResultCode> = Vec::with_capacity(BLOCK_TX);
            let (mut settled, mut queued, mut from_queue) = (0u64, 0u64, 0u64);
            let started = Instant::now();
            let mut blocks = 0;
            for (height, block) in records.chunks(BLOCK_TX).enumerate() {
                ledger.begin_block(height as u64 + 1, 1_000 + height as u64);
                results.clear();
                results.extend(block.iter().map(|record| ledger.execute(record)));
                from_queue += ledger.end_block(&mut results).len() as u64;
                settled += results.iter().filter(|c| **c == ResultCode::Ok).count() as u64;
                queued += results.iter().filter(|c| **c == ResultCode::Queued).count() as u64;
                blocks += 1;
            }
            let elapsed = started.elapsed().as_secs_f64();
            let roots = 5;
            let root_started = Instant::now();
            for _ in 0..roots {
                std::hint::black_box(ledger.state_root());
            }
            let root_elapsed = root_started.elapsed().as_secs_f64();
            ExecutorFigures {
                workload,
                tx_count: records.len(),
                blocks,
                tx_per_s: records.len() as f64 / elapsed,
                settled,
                queued,
                settled_from_queue: from_queue,
                state_roots_per_s: f64::from(roots) / root_elapsed,
            }
        })
        .collect()
}

/// Figures of plain transfers over a population of `accounts` bank customers.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ScaleFigures {
    pub accounts: u64,
    pub tx_count: usize,
    /// Records executed per second, each block's state root included (as the node seals).
    pub tx_per_s: f64,
    /// Mean time of one block's state root, in microseconds.
    pub state_root_us_per_block: f64,
    /// Mean accounts changed per block (what the state root rehashes).
    pub changed_accounts_per_block: f64,
}

/// A genesis of `accounts` consumers held by [`BANKS`] banks (one account range per bank,
/// signed for by the bank's key) and `count` transfers between uniformly chosen consumers.
fn scale_input(accounts: u64, count: usize) -> (Genesis, Vec<TxRecord>) {
    let mut setup = setup();
    setup
        .genesis
        .accounts
        .retain(|a| !matches!(a.role, Role::Consumer | Role::Merchant));
    let per_bank = accounts.div_ceil(BANKS);
    let first = 10_000_000u64;
    for bank in 0..BANKS {
        let start = bank * per_bank;
        let count = per_bank.min(accounts.saturating_sub(start));
        if count == 0 {
            continue;
        }
        let owner = setup.owners[&(FIRST_BANK + bank)];
        setup
            .genesis
            .account_ranges
            .push(tally_engine::genesis::AccountRangeSpec {
                first_id: first + start,
                count,
                role: Role::Consumer,
                bank: FIRST_BANK + bank,
                owner: hex_encode(&owner),
                balance: 1_000_000_000,
                balance_max: None,
            });
    }
    setup
        .genesis
        .validate()
        .expect("the scale genesis is valid");
    let mut rng = ChaCha20Rng::seed_from_u64(0x5ca1e);
    let records = (0..count)
        .map(|i| {
            let debit = rng.random_range(0..accounts);
            let credit = (debit + 1 + rng.random_range(0..accounts - 1)) % accounts;
            let mut fields = TxFields::transfer(
                i as u128 + 1,
                first + debit,
                first + credit,
                rng.random_range(1..10_000),
                LEDGER,
            )
            .valid_until(tally_engine::genesis::VALIDITY_WINDOW_MS_DEFAULT);
            fields.kind = TxKind::Transfer;
            let mut record = TxRecord::new(&fields);
            record.public_key = setup.owners[&(FIRST_BANK + debit / per_bank)];
            record
        })
        .collect();
    (setup.genesis, records)
}

/// Plain transfers over populations of each size in `accounts` (bank customers opened as
/// account ranges), blocks of [`BLOCK_TX`] with the state root after each block as the node
/// seals: what a large population costs per transaction. Each size runs `rounds` times in
/// turn, on a ledger built once per size; the figures are the best round of each.
pub fn measure_scale(accounts: &[u64], tx_count: usize, rounds: usize) -> Vec<ScaleFigures> {
    let mut ledgers: Vec<(Ledger, Vec<TxRecord>)> = accounts
        .iter()
        .map(|&n| {
            let (genesis, records) = scale_input(n, tx_count * rounds);
            let ledger = Ledger::from_genesis(&genesis);
            std::hint::black_box(ledger.state_root()); // the tree built once, as at start
            (ledger, records)
        })
        .collect();
    let mut best: Vec<Option<ScaleFigures>> = vec![None; accounts.len()];
    let mut height = 1u64;
    for round in 0..rounds {
        for (index, (ledger, records)) in ledgers.iter_mut().enumerate() {
            let records = &records[round * tx_count..(round + 1) * tx_count];
            let mut results: Vec<ResultCode> = Vec::with_capacity(BLOCK_TX);
            let (mut root_time, mut changed, mut blocks) = (0.0, 0usize, 0usize);
            let started = Instant::now();
            for block in records.chunks(BLOCK_TX) {
                ledger.begin_block(height, 1_000 + height);
                results.clear();
                results.extend(block.iter().map(|record| ledger.execute(record)));
                ledger.end_block(&mut results);
                let mut touched: Vec<u64> = block
                    .iter()
                    .flat_map(|r| [r.debit_account(), r.credit_account()])
                    .collect();
                touched.sort_unstable();
                touched.dedup();
                changed += touched.len();
                let root_started = Instant::now();
                std::hint::black_box(ledger.state_root());
                root_time += root_started.elapsed().as_secs_f64();
                blocks += 1;
                height += 1;
            }
            let figures = ScaleFigures {
                accounts: accounts[index],
                tx_count,
                tx_per_s: tx_count as f64 / started.elapsed().as_secs_f64(),
                state_root_us_per_block: root_time * 1e6 / blocks as f64,
                changed_accounts_per_block: changed as f64 / blocks as f64,
            };
            if best[index]
                .as_ref()
                .is_none_or(|b| b.tx_per_s < figures.tx_per_s)
            {
                best[index] = Some(figures);
            }
        }
    }
    best.into_iter()
        .map(|b| b.expect("one round at least"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_transfers_settle_over_a_population_of_account_ranges() {
        let figures = measure_scale(&[1_000, 100_000], BLOCK_TX, 2);
        assert_eq!(figures.len(), 2);
        for f in &figures {
            assert!(f.tx_per_s > 0.0 && f.state_root_us_per_block > 0.0);
            // two accounts a transfer: most of a thousand, thousands of a hundred thousand
            assert!(f.changed_accounts_per_block > 900.0, "{f:?}");
        }
        let (genesis, records) = scale_input(1_000, 2 * BLOCK_TX);
        assert_eq!(genesis.account_count(), 3 + BANKS + 1_000);
        let mut ledger = Ledger::from_genesis(&genesis);
        let settled = execute_blocks(&mut ledger, &records, 1);
        assert_eq!(settled, records.len() as u64, "every transfer settles");
        assert_eq!(ledger.state_root(), ledger.state_root_from_scratch());
    }

    #[test]
    fn every_workload_executes_and_the_gridlock_mix_queues_and_offsets() {
        let figures = measure(3 * BLOCK_TX);
        let plain = &figures[0];
        assert_eq!(
            plain.settled, plain.tx_count as u64,
            "funded transfers all settle"
        );
        assert_eq!(figures[1].settled, figures[1].tx_count as u64);
        let gridlock = &figures[2];
        assert!(
            gridlock.queued > gridlock.tx_count as u64 / 2,
            "{gridlock:?}"
        );
        assert!(gridlock.settled_from_queue > 0, "{gridlock:?}");
        assert!(figures.iter().all(|f| f.tx_per_s > 0.0 && f.blocks == 3));
    }
}

/// The state root's cost after one block, against how much the block changed and how much
/// state it left untouched.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StateRootFigures {
    /// Accounts in the ledger.
    pub accounts: usize,
    /// Queued payments and open reservations the ledger holds, untouched by the block.
    pub queued: usize,
    pub reserved: usize,
    /// Accounts the block changed, and reservations it opened (table entries changed).
    pub changed_accounts: usize,
    pub changed_entries: usize,
    /// Median time of `Ledger::state_root` after such a block (kept tree and set digests).
    pub root_us: f64,
    /// Time of `Ledger::state_root_from_scratch` over the same state (every leaf and entry).
    pub from_scratch_us: f64,
}

const ROOT_CONSUMER: u64 = 10_000_000;
const ROOT_BANKS: u64 = 2;

/// A ledger of `accounts` consumers, two banks without liquidity and `backlog` queued
/// interbank payments and `backlog` open reservations (one owner key for all consumers: the
/// executor checks keys, not signatures).
fn root_ledger(accounts: u64, backlog: usize) -> (Ledger, [u8; 32]) {
    let key = ed25519_zebra::SigningKey::from([7u8; 32]);
    let public: [u8; 32] = ed25519_zebra::VerificationKey::from(&key).into();
    let owner = hex_encode(&public);
    let spec = |id: u64, role: Role, balance: u64, bank: Option<u64>| AccountSpec {
        id,
        name: format!("account-{id}"),
        role,
        owner: owner.clone(),
        balance,
        bank,
        overdraft_max: 0,
        balance_max: None,
        tax_sub_account: None,
        bic: None,
    };
    let mut specs = vec![
        spec(1, Role::CentralBank, 0, None),
        spec(2, Role::TaxAuthority, 0, None),
    ];
    specs.extend((0..ROOT_BANKS).map(|i| spec(FIRST_BANK + i, Role::Bank, 0, None)));
    specs.extend((0..accounts).map(|i| {
        spec(
            ROOT_CONSUMER + i,
            Role::Consumer,
            1_000_000_000,
            Some(FIRST_BANK + i % ROOT_BANKS),
        )
    }));
    let genesis = bench_genesis(specs, Vec::new());
    genesis.validate().expect("the bench genesis is valid");
    let mut ledger = Ledger::from_genesis(&genesis);
    // The backlog: payments from the first bank to the second, which has nothing to pay
    // back (no gridlock to offset: they stay queued), and reservations between consumers.
    let mut id = 0u128;
    let mut rng = ChaCha20Rng::seed_from_u64(0x5eed_2007);
    let mut backlog_records = Vec::with_capacity(2 * backlog);
    for _ in 0..backlog {
        id += 1;
        let mut queued = TxFields::transfer(id, FIRST_BANK, FIRST_BANK + 1, 1_000, LEDGER)
            .valid_until(tally_engine::genesis::VALIDITY_WINDOW_MS_DEFAULT);
        queued.kind = TxKind::Transfer;
        let mut record = TxRecord::new(&queued);
        record.public_key = public;
        backlog_records.push(record);
        id += 1;
        let debit = ROOT_CONSUMER + rng.random_range(0..accounts);
        let credit = ROOT_CONSUMER + (debit - ROOT_CONSUMER + 1) % accounts;
        let mut reserve = TxFields::transfer(id, debit, credit, 10, LEDGER)
            .valid_until(tally_engine::genesis::VALIDITY_WINDOW_MS_DEFAULT);
        reserve.flags = TxFlags(TxFlags::PENDING);
        let mut record = TxRecord::new(&reserve);
        record.public_key = public;
        backlog_records.push(record);
    }
    let mut height = 0;
    for block in backlog_records.chunks(BLOCK_TX) {
        height += 1;
        ledger.execute_block(height, 1_000 + height, block);
    }
    (ledger, public)
}

/// For each count in `changed`: blocks that change that many accounts (transfers between
/// random consumers, half of them opening a reservation), and the time of the state root
/// after each, over a ledger of `accounts` accounts holding `backlog` queued payments and
/// `backlog` reservations that the blocks leave alone.
pub fn measure_state_root(
    accounts: u64,
    backlog: usize,
    changed: &[usize],
) -> Vec<StateRootFigures> {
    let (mut ledger, public) = root_ledger(accounts, backlog);
    let retained = ledger.retained_counts();
    let (reserved, queued) = (retained[3], retained[4]);
    std::hint::black_box(ledger.state_root()); // builds the accounts' tree
    let started = Instant::now();
    std::hint::black_box(ledger.state_root_from_scratch());
    let from_scratch_us = started.elapsed().as_secs_f64() * 1e6;
    let mut rng = ChaCha20Rng::seed_from_u64(0x2007_0017);
    let mut id = 1u128 << 64;
    let mut height = 1_000_000u64;
    changed
        .iter()
        .map(|&count| {
            let mut times = Vec::new();
            let mut entries = 0;
            for _ in 0..7 {
                height += 1;
                // count / 2 transfers between distinct consumers: count accounts changed
                let records: Vec<TxRecord> = (0..count.max(2) / 2)
                    .map(|i| {
                        id += 1;
                        let debit = ROOT_CONSUMER + rng.random_range(0..accounts);
                        let credit = ROOT_CONSUMER + (debit - ROOT_CONSUMER + 1) % accounts;
                        let mut fields = TxFields::transfer(id, debit, credit, 1, LEDGER)
                            .valid_until(tally_engine::genesis::VALIDITY_WINDOW_MS_DEFAULT);
                        if i % 2 == 0 {
                            fields.flags = TxFlags(TxFlags::PENDING);
                        }
                        let mut record = TxRecord::new(&fields);
                        record.public_key = public;
                        record
                    })
                    .collect();
                entries = records.len().div_ceil(2);
                ledger.execute_block(height, 1_000 + height, &records);
                let started = Instant::now();
                std::hint::black_box(ledger.state_root());
                times.push(started.elapsed().as_secs_f64() * 1e6);
            }
            times.sort_by(f64::total_cmp);
            StateRootFigures {
                accounts: accounts as usize + 2 + ROOT_BANKS as usize,
                queued,
                reserved,
                changed_accounts: count.max(2),
                changed_entries: entries,
                root_us: times[times.len() / 2],
                from_scratch_us,
            }
        })
        .collect()
}

/// What a checkpoint costs the execution thread (the copy of the live state it takes) and
/// what it leaves to the writer thread (the encoding), over the ledger of
/// [`measure_state_root`]: (copy us, encode us, snapshot bytes).
pub fn measure_checkpoint_copy(accounts: u64, backlog: usize) -> (f64, f64, usize) {
    let (ledger, _) = root_ledger(accounts, backlog);
    let started = Instant::now();
    let copy = std::hint::black_box(ledger.copy_for_snapshot());
    let copy_us = started.elapsed().as_secs_f64() * 1e6;
    let started = Instant::now();
    let point = tally_engine::ledger::SnapshotPoint {
        height: 1,
        last_block_hash: [0; 32],
    };
    let bytes = std::hint::black_box(copy.snapshot(&[0; 32], point));
    let encode_us = started.elapsed().as_secs_f64() * 1e6;
    (copy_us, encode_us, bytes.len())
}

/// What a checkpoint costs the execution thread at a large population: the copy
/// ([`Ledger::copy_for_snapshot`]), a deep copy of the accounts for comparison, and the
/// blocks executed while the copy is held (they copy the chunks of accounts they change).
#[derive(Clone, Debug)]
pub struct CheckpointPause {
    pub accounts: u64,
    /// `Ledger::copy_for_snapshot` (copy-on-write accounts: one pointer per chunk).
    pub copy_us: f64,
    /// A deep copy of the accounts into a plain vector: what the copy cost when the accounts
    /// were one `Vec` cloned whole.
    pub deep_copy_us: f64,
    /// Median time of a block of [`BLOCK_TX`] transfers with its state root, no copy held.
    pub block_us: f64,
    /// The first and the second block executed while the copy is held.
    pub block_after_copy_us: [f64; 2],
}

/// [`CheckpointPause`] over the population of [`measure_scale`]: `accounts` consumers held
/// by banks, blocks of plain transfers between random consumers.
pub fn measure_checkpoint_pause(accounts: u64) -> CheckpointPause {
    let blocks = 9;
    let (genesis, records) = scale_input(accounts, blocks * BLOCK_TX);
    let mut ledger = Ledger::from_genesis(&genesis);
    std::hint::black_box(ledger.state_root());
    let mut chunks = records.chunks(BLOCK_TX);
    let mut height = 0u64;
    let mut run_block = |ledger: &mut Ledger| {
        height += 1;
        let block = chunks.next().expect("enough blocks");
        let started = Instant::now();
        ledger.execute_block(height, 1_000 + height, block);
        std::hint::black_box(ledger.state_root());
        started.elapsed().as_secs_f64() * 1e6
    };
    let mut plain: Vec<f64> = (0..6).map(|_| run_block(&mut ledger)).collect();
    plain.sort_by(f64::total_cmp);
    let started = Instant::now();
    let copy = std::hint::black_box(ledger.copy_for_snapshot());
    let copy_us = started.elapsed().as_secs_f64() * 1e6;
    let block_after_copy_us = [run_block(&mut ledger), run_block(&mut ledger)];
    drop(copy);
    let started = Instant::now();
    let deep: Vec<tally_engine::ledger::Account> =
        std::hint::black_box(ledger.accounts().iter().cloned().collect());
    let deep_copy_us = started.elapsed().as_secs_f64() * 1e6;
    drop(deep);
    run_block(&mut ledger);
    CheckpointPause {
        accounts: ledger.accounts().len() as u64,
        copy_us,
        deep_copy_us,
        block_us: plain[plain.len() / 2],
        block_after_copy_us,
    }
}

#[cfg(test)]
mod state_root_tests {
    use super::*;

    #[test]
    fn the_state_root_figures_cover_the_backlog_and_the_changes() {
        let figures = measure_state_root(1_000, 100, &[2, 64]);
        assert_eq!(figures.len(), 2);
        for figure in &figures {
            assert_eq!((figure.queued, figure.reserved), (100, 100), "{figure:?}");
            assert!(figure.root_us > 0.0 && figure.from_scratch_us > 0.0);
        }
        assert_eq!(
            (figures[1].changed_accounts, figures[1].changed_entries),
            (64, 16)
        );
    }

    #[test]
    fn the_checkpoint_pause_figures_time_the_copy_and_the_blocks_around_it() {
        let pause = measure_checkpoint_pause(50_000);
        assert!(pause.accounts > 50_000, "{pause:?}");
        assert!(pause.copy_us > 0.0 && pause.deep_copy_us > 0.0 && pause.block_us > 0.0);
        assert!(pause.block_after_copy_us.iter().all(|&t| t > 0.0));
    }
}
