//! Property tests over random seeded workloads of every transaction kind, block by block:
//! debits equal credits, money changes only by pledge and redeem, no balance goes below its
//! limit, every queued payment ends settled, cancelled or expired, and replay (from genesis
//! or from a snapshot) gives the same codes and state roots.

mod common;

use common::*;
use proptest::prelude::*;
use tally_engine::genesis::{Role, TaxRateSpec, DAY_MS};
use tally_engine::ledger::{Ledger, SnapshotPoint, TxStatus};
use tally_engine::result::ResultCode;
use tally_engine::tax::{Rounding, TaxBasis};
use tally_engine::tx::{TxFlags, TxKind, TxRecord};

const BANKS: [u64; 5] = [10, 11, 12, 13, 14];
const CONSUMERS: [u64; 3] = [100, 101, 102];
const MERCHANT: u64 = 200;
const SUB: u64 = 201;

fn fixture() -> Fixture {
    let mut table: Vec<AccountRow> = vec![
        (CENTRAL_BANK, Role::CentralBank, 0, None),
        (TAX, Role::TaxAuthority, 0, None),
        (OBSERVER, Role::Observer, 0, None),
    ];
    table.extend(BANKS.iter().map(|&b| (b, Role::Bank, 300, None)));
    table.extend(
        CONSUMERS
            .iter()
            .map(|&c| (c, Role::Consumer, 2_000, Some(BANKS[0]))),
    );
    table.push((MERCHANT, Role::Merchant, 0, Some(BANKS[1])));
    table.push((SUB, Role::TaxSubAccount, 0, None));
    Fixture::from_table(&table, |g| {
        g.accounts[3].overdraft_max = 200; // the first bank has intraday credit
        g.accounts[9].balance_max = Some(5_000); // the third consumer has a holding limit
        g.accounts[11].tax_sub_account = Some(SUB);
        g.tax_rates.push(TaxRateSpec {
            to_sub_account: true,
            ..TaxRateSpec::new(3, 1_750, TaxBasis::Inclusive, Rounding::HalfEven)
        });
    })
}

/// One random operation: (what, a, b, amount, flags/extra, related pick).
type Op = (u8, usize, usize, u64, u8, usize);

fn op_strategy() -> impl Strategy<Value = Op> {
    (
        0u8..16,
        0usize..16,
        0usize..16,
        1u64..900,
        0u8..8,
        0usize..64,
    )
}

/// Builds one record for `op`, with id `id`, given the ids issued so far (for related ids).
/// What earlier records created, for the records that act on them.
#[derive(Default)]
struct Pools {
    /// (id, payer) of payments answered `queued`.
    queued: Vec<(u128, u64)>,
    /// (id, debit, credit, amount) of reservations answered `ok`.
    pending: Vec<(u128, u64, u64, u64)>,
    /// (id, payer) of taxed payments answered `ok`.
    taxed: Vec<(u128, u64)>,
}

impl Pools {
    fn learn(&mut self, record: &TxRecord, code: ResultCode) {
        if code == ResultCode::Queued {
            self.queued.push((record.id(), record.debit_account()));
        }
        if code == ResultCode::Ok && record.kind() == Some(TxKind::TaxedPayment) {
            self.taxed.push((record.id(), record.debit_account()));
        }
        if code == ResultCode::Ok && record.flags().has(TxFlags::PENDING) {
            self.pending.push((
                record.id(),
                record.debit_account(),
                record.credit_account(),
                record.amount(),
            ));
        }
    }
}

fn build(f: &Fixture, id: u128, op: Op, issued: &[u128], pools: &Pools) -> TxRecord {
    let queued = &pools.queued;
    let (what, a, b, amount, extra, pick) = op;
    let all: Vec<u64> = [CENTRAL_BANK, TAX, OBSERVER, MERCHANT, SUB]
        .into_iter()
        .chain(BANKS)
        .chain(CONSUMERS)
        .collect();
    let bank = |i: usize| BANKS[i % BANKS.len()];
    let anyone = |i: usize| all[i % all.len()];
    let related = if issued.is_empty() {
        1
    } else {
        issued[pick % issued.len()]
    };
    let linked = extra == 7 && what < 8;
    let urgent = extra & 2 == 2;
    let mut record = match what {
        // a ring of large interbank payments: gridlock that only offsetting resolves
        3 => {
            let (from, to) = (BANKS[a % 3], BANKS[(a + 1) % 3]);
            f.custom(from, id, TxKind::Transfer, from, to, 3_000, |_| {})
        }
        // interbank payments, the heart of the mix
        0..=2 => {
            let (from, to) = (bank(a), bank(if a == b { b + 1 } else { b }));
            f.custom(from, id, TxKind::Transfer, from, to, amount, |t| {
                if urgent {
                    t.flags = TxFlags(TxFlags::URGENT);
                }
            })
        }
        4 => {
            let (from, to) = (anyone(a), anyone(if a == b { b + 1 } else { b }));
            f.custom(from, id, TxKind::Transfer, from, to, amount, |_| {})
        }
        5 => {
            let payer = CONSUMERS[a % CONSUMERS.len()];
            f.custom(
                payer,
                id,
                TxKind::TaxedPayment,
                payer,
                MERCHANT,
                amount,
                |t| {
                    t.category = 1 + (extra as u32 % 3);
                },
            )
        }
        6 => {
            // refund part of a recent taxed payment (sometimes to the wrong account)
            let (related, payer) = match pools.taxed.len() {
                0 => (related, CONSUMERS[a % 3]),
                n => pools.taxed[n - 1 - pick % n.min(8)],
            };
            let payer = if b % 6 == 0 { CONSUMERS[a % 3] } else { payer };
            f.custom(
                MERCHANT,
                id,
                TxKind::Refund,
                MERCHANT,
                payer,
                amount / 3 + 1,
                |t| {
                    t.related_id = related;
                },
            )
        }
        7 => {
            let (from, to) = (CONSUMERS[a % 3], CONSUMERS[(a + 1 + b % 2) % 3]);
            f.custom(from, id, TxKind::Transfer, from, to, amount, |t| {
                t.flags = TxFlags(TxFlags::PENDING);
                t.reserved_a = u32::from(extra) * 20;
            })
        }
        8 => {
            // post or void a recent reservation (sometimes one already closed, or with a
            // wrong amount)
            let flag = if extra & 4 == 4 {
                TxFlags::POST_PENDING
            } else {
                TxFlags::VOID_PENDING
            };
            let (related, from, to, reserved) = match pools.pending.len() {
                0 => (related, CONSUMERS[a % 3], CONSUMERS[(a + 1) % 3], amount),
                n => pools.pending[n - 1 - pick % n.min(8)],
            };
            let amount = match (flag, b % 5) {
                (_, 0) => amount,
                (TxFlags::POST_PENDING, _) => reserved.min(amount),
                _ => reserved,
            };
            f.custom(from, id, TxKind::Transfer, from, to, amount, |t| {
                t.flags = TxFlags(flag);
                t.related_id = related;
            })
        }
        9 => f.tx(id, TxKind::Pledge, CENTRAL_BANK, bank(a), amount / 2 + 1),
        10 => f.tx(id, TxKind::Redeem, bank(a), CENTRAL_BANK, amount),
        11 => {
            // mostly a recent queued payment by its own payer; sometimes someone else's
            let (related, payer) = if queued.is_empty() {
                (related, bank(a))
            } else {
                let (id, payer) = queued[queued.len() - 1 - pick % queued.len().min(16)];
                (id, if a % 4 == 0 { bank(a) } else { payer })
            };
            let kind = [
                TxKind::QueueHold,
                TxKind::QueueRelease,
                TxKind::QueueCancel,
                TxKind::QueueReprioritise,
            ][b % 4];
            f.custom(payer, id, kind, payer, 0, 0, |t| {
                t.related_id = related;
                if urgent && kind == TxKind::QueueReprioritise {
                    t.flags = TxFlags(TxFlags::URGENT);
                }
            })
        }
        12 => {
            let kind = if extra == 0 {
                TxKind::Suspend
            } else {
                TxKind::Reinstate
            };
            f.custom(CENTRAL_BANK, id, kind, CENTRAL_BANK, bank(a), 0, |_| {})
        }
        13 => f.custom(TAX, id, TxKind::SetTaxRate, TAX, 0, 0, |t| {
            t.category = 1 + (a as u32 % 3);
            t.reserved_a = (amount as u32 * 11) % 3_000;
            // 0: in the past (rejected); else 10 to 70 days on
            t.amount = u64::from(extra) * 10 * DAY_MS;
            // a basis and a rounding rule, or neither (kept from the rate in force)
            let basis = [None, Some(TaxBasis::Inclusive), Some(TaxBasis::Exclusive)];
            let rounding = [None, Some(Rounding::HalfUp), Some(Rounding::Down)];
            let (basis, rounding) = (basis[b % 3], rounding[(b / 3) % 3]);
            t.flags = TxFlags(
                basis.map_or(0, TxFlags::of_basis) | rounding.map_or(0, TxFlags::of_rounding),
            );
        }),
        14 => f.signed_by(TAX, &f.fields(id, TxKind::Transfer, SUB, TAX, amount)),
        _ => f.custom(
            anyone(b),
            id,
            TxKind::Transfer,
            anyone(a),
            anyone(a + 1),
            amount,
            |_| {},
        ),
    };
    if linked {
        let mut bytes = *record.as_bytes();
        let flags = u16::from_le_bytes([bytes[46], bytes[47]]) | TxFlags::LINKED;
        bytes[46..48].copy_from_slice(&flags.to_le_bytes());
        let fields = bytemuck::pod_read_unaligned::<TxRecord>(&bytes).fields();
        let signer = match fields.kind {
            TxKind::Pledge | TxKind::Redeem => CENTRAL_BANK,
            _ if fields.debit_account == SUB => TAX,
            _ => fields.debit_account,
        };
        record = f.signed_by(signer, &fields);
    }
    record
}

fn check_invariants(
    ledger: &Ledger,
    circulation_at_genesis: i128,
    issued: i128,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(ledger.sum_of_balances(), ledger.genesis_total());
    prop_assert_eq!(
        ledger.money_in_circulation(),
        circulation_at_genesis + issued
    );
    for account in ledger.accounts() {
        if account.role == Role::CentralBank {
            continue;
        }
        let floor = -i128::from(account.overdraft_max);
        prop_assert!(
            i128::from(account.balance) - i128::from(account.debits_pending) >= floor,
            "account {} is below its limit: {:?}",
            account.id,
            account
        );
        if let Some(max) = account.balance_max {
            prop_assert!(
                account.balance <= max,
                "account {} above its maximum",
                account.id
            );
        }
        prop_assert!(account.debits_pending >= 0 && account.credits_pending >= 0);
    }
    Ok(())
}

proptest! {
    #![proptest_config(proptest_config("settlement_invariants_hold_over_random_workloads", 48))]
    #[test]
    fn settlement_invariants_hold_over_random_workloads(
        blocks in proptest::collection::vec(
            (proptest::collection::vec(op_strategy(), 1..40), 0u64..3, 0u64..50_000),
            1..12,
        )
    ) {
        let f = fixture();
        let mut ledger = Ledger::from_genesis(&f.genesis);
        let circulation = ledger.money_in_circulation();
        let mut issued: i128 = 0;
        let mut next_id: u128 = 1;
        let mut ids: Vec<u128> = Vec::new();
        let mut time = 1_000u64;
        let mut chain: Vec<(u64, u64, Vec<TxRecord>, Vec<ResultCode>)> = Vec::new();
        let mut queued_ids: Vec<(u128, u64)> = Vec::new();
        let mut pools = Pools::default();
        let mut snapshot_at: Option<(usize, Vec<u8>)> = None;
        for (height, (ops, days, ms)) in blocks.iter().enumerate() {
            let height = height as u64 + 1;
            time += days * DAY_MS / 2 + ms;
            let records: Vec<TxRecord> = ops.iter().map(|&op| {
                let record = build(&f, next_id, op, &ids, &pools);
                ids.push(next_id);
                next_id += 1;
                record
            }).collect();
            let codes = ledger.execute_block(height, time, &records);
            for (record, code) in records.iter().zip(&codes) {
                match (record.kind().unwrap(), code) {
                    (TxKind::Pledge, ResultCode::Ok) => issued += i128::from(record.amount()),
                    (TxKind::Redeem, ResultCode::Ok) => issued -= i128::from(record.amount()),
                    (_, ResultCode::Queued) => queued_ids.push((record.id(), record.debit_account())),
                    _ => {}
                }
                pools.learn(record, *code);
                if !code.is_ok() {
                    prop_assert!(!ledger.is_accepted(record.id()) || *code == ResultCode::DuplicateId,
                        "a rejected record used up its id");
                }
            }
            check_invariants(&ledger, circulation, issued)?;
            // the kept accounts' tree, updated for what this block changed (chains undone,
            // offsetting, reservations), gives the root of a full rehash
            prop_assert_eq!(ledger.state_root(), ledger.state_root_from_scratch());
            chain.push((height, time, records, codes));
            if height == 3 {
                let point = SnapshotPoint { height, last_block_hash: [0; 32] };
                snapshot_at = Some((chain.len(), ledger.snapshot(&f.genesis.hash(), point)));
            }
        }
        // a day later, with one more block, every queued payment has ended
        let height = chain.len() as u64 + 1;
        time += DAY_MS + 1;
        let last = [f.tx(next_id, TxKind::Pledge, CENTRAL_BANK, BANKS[0], 1)];
        let codes = ledger.execute_block(height, time, &last);
        if codes[0] == ResultCode::Ok { issued += 1; }
        chain.push((height, time, last.to_vec(), codes));
        check_invariants(&ledger, circulation, issued)?;
        prop_assert_eq!(ledger.queue_len(), 0);
        for (id, _) in &queued_ids {
            let status = ledger.status(*id);
            prop_assert!(
                matches!(status, TxStatus::SettledFromQueue { .. } | TxStatus::Cancelled { .. } | TxStatus::Expired { .. }),
                "queued payment {} ended as {:?}", id, status
            );
        }
        // replay from genesis: the same codes and the same root after every block
        let mut again = Ledger::from_genesis(&f.genesis);
        let mut roots = Vec::new();
        for (height, time, records, codes) in &chain {
            let replayed = again.execute_block(*height, *time, records);
            prop_assert_eq!(&replayed, codes);
            roots.push(again.state_root());
        }
        prop_assert_eq!(again.state_root(), ledger.state_root());
        // replay from the snapshot: the same root at the end
        if let Some((done, bytes)) = snapshot_at {
            let (mut restored, _) = Ledger::restore(&bytes, &f.genesis.hash()).unwrap();
            prop_assert_eq!(restored.state_root(), roots[done - 1]);
            for (height, time, records, codes) in &chain[done..] {
                let replayed = restored.execute_block(*height, *time, records);
                prop_assert_eq!(&replayed, codes);
            }
            prop_assert_eq!(restored.state_root(), ledger.state_root());
        }
    }
}

/// The generator above is only as good as what it reaches: over a long seeded run the
/// workload must queue, settle from the queue by retry and by offsetting, expire, cancel,
/// post and void, refund, fail linked chains, and keep every invariant.
#[test]
fn the_random_workload_reaches_every_outcome() {
    use rand::{RngExt, SeedableRng};
    use std::collections::BTreeSet;
    use tally_engine::ledger::SettlementEvent;
    let seed = test_seed("the_random_workload_reaches_every_outcome");
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let f = fixture();
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let circulation = ledger.money_in_circulation();
    let (mut issued, mut next_id, mut time) = (0i128, 1u128, 1_000u64);
    let mut ids = Vec::new();
    let mut pools = Pools::default();
    let mut codes_seen = BTreeSet::new();
    let (mut by_retry, mut by_offset, mut expired) = (0, 0, 0);
    let (mut posted, mut voided) = (0, 0);
    for height in 1..=400u64 {
        time += rng.random_range(0..DAY_MS / 4);
        let count = rng.random_range(1..60);
        let records: Vec<TxRecord> = (0..count)
            .map(|_| {
                let op: Op = (
                    rng.random_range(0..16),
                    rng.random_range(0..16),
                    rng.random_range(0..16),
                    rng.random_range(1..900),
                    rng.random_range(0..8),
                    rng.random_range(0..64),
                );
                let record = build(&f, next_id, op, &ids, &pools);
                ids.push(next_id);
                next_id += 1;
                record
            })
            .collect();
        let codes = ledger.execute_block(height, time, &records);
        for (record, code) in records.iter().zip(&codes) {
            match (record.kind().unwrap(), code) {
                (TxKind::Pledge, ResultCode::Ok) => issued += i128::from(record.amount()),
                (TxKind::Redeem, ResultCode::Ok) => issued -= i128::from(record.amount()),
                _ => {}
            }
            pools.learn(record, *code);
            codes_seen.insert((record.kind().unwrap(), *code));
            if *code == ResultCode::Ok && record.flags().has(TxFlags::POST_PENDING) {
                posted += 1;
            }
            if *code == ResultCode::Ok && record.flags().has(TxFlags::VOID_PENDING) {
                voided += 1;
            }
        }
        for event in ledger.last_block_events() {
            match event {
                SettlementEvent::SettledFromQueue { via_lsm: true, .. } => by_offset += 1,
                SettlementEvent::SettledFromQueue { via_lsm: false, .. } => by_retry += 1,
                SettlementEvent::QueueExpired { .. } => expired += 1,
                SettlementEvent::PendingExpired { .. } => {}
                // the business day's events: this genesis has no calendar
                other => panic!("{other:?} without a calendar"),
            }
        }
        check_invariants(&ledger, circulation, issued).unwrap();
    }
    assert!(
        by_retry > 0 && by_offset > 0 && expired > 0,
        "retry {by_retry}, offset {by_offset}, expired {expired}; {codes_seen:?}"
    );
    for wanted in [
        (TxKind::Transfer, ResultCode::Queued),
        (TxKind::Transfer, ResultCode::Ok),
        (TxKind::Transfer, ResultCode::LinkedEventFailed),
        (TxKind::TaxedPayment, ResultCode::Ok),
        (TxKind::Refund, ResultCode::Ok),
        (TxKind::QueueCancel, ResultCode::Ok),
        (TxKind::QueueHold, ResultCode::Ok),
        (TxKind::Suspend, ResultCode::Ok),
        (TxKind::SetTaxRate, ResultCode::Ok),
    ] {
        assert!(codes_seen.contains(&wanted), "never reached {wanted:?}");
    }
    assert!(posted > 0 && voided > 0, "posted {posted}, voided {voided}");
}
