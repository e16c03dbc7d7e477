//! Settlement scenarios: RTGS queues and priorities, gridlock resolved by the liquidity-saving
//! mechanism, end-of-day expiry, suspension, real-time tax and refunds, effective-dated
//! rates, two-phase and linked transfers, limits, and every unauthorised operation with its
//! own result code.

mod common;

use common::*;
use tally_engine::events::{block_events, EventKind};
use tally_engine::genesis::{Role, TaxRateSpec, DAY_MS};
use tally_engine::ledger::{Ledger, SettlementEvent, SnapshotPoint, TxStatus};
use tally_engine::result::ResultCode;
use tally_engine::tax::{Rounding, TaxBasis};
use tally_engine::tx::{TxFlags, TxKind, TxRecord};

/// A bank network: `count` banks from `BANK_A` opening at `opening`.
fn network(count: u64, opening: u64) -> (Fixture, Ledger) {
    let f = Fixture::banks(count, opening);
    let ledger = Ledger::from_genesis(&f.genesis);
    (f, ledger)
}

fn pay(f: &Fixture, id: u128, from: u64, to: u64, amount: u64, urgent: bool) -> TxRecord {
    f.custom(from, id, TxKind::Transfer, from, to, amount, |t| {
        if urgent {
            t.flags = TxFlags(TxFlags::URGENT);
        }
    })
}

fn queue_op(
    f: &Fixture,
    signer: u64,
    id: u128,
    kind: TxKind,
    payer: u64,
    target: u128,
) -> TxRecord {
    f.custom(signer, id, kind, payer, 0, 0, |t| t.related_id = target)
}

fn pledge(f: &Fixture, id: u128, bank: u64, amount: u64) -> TxRecord {
    f.tx(id, TxKind::Pledge, CENTRAL_BANK, bank, amount)
}

fn settled_ids(events: &[SettlementEvent]) -> Vec<u128> {
    events
        .iter()
        .filter_map(|event| match event {
            SettlementEvent::SettledFromQueue { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

fn assert_conserved(ledger: &Ledger) {
    assert_eq!(ledger.sum_of_balances(), ledger.genesis_total());
}

#[test]
fn a_payment_short_of_liquidity_is_queued_and_settles_when_liquidity_arrives() {
    let (f, mut ledger) = network(2, 100);
    let (a, b) = (BANK_A, BANK_A + 1);
    let records = [pay(&f, 1, a, b, 150, false)];
    let codes = ledger.execute_block(1, 1_000, &records);
    assert_eq!(codes, vec![ResultCode::Queued]);
    assert!(ResultCode::Queued.is_ok());
    // a follower of either bank hears that it queued, and later that it was released
    let events = block_events(&ledger, &records, &codes);
    assert_eq!(
        events
            .iter()
            .map(|e| (e.kind, e.id, e.payer, e.payee, e.amount))
            .collect::<Vec<_>>(),
        vec![(EventKind::Queued, 1, a, b, 150)]
    );
    assert_eq!(
        ledger.balance(a),
        Some(100),
        "a queued payment moves nothing"
    );
    assert!(matches!(
        ledger.status(1),
        TxStatus::Queued { position: 1, .. }
    ));
    assert!(!ledger.is_settled(1));
    // the same id again is a duplicate while it waits
    assert_eq!(
        ledger.execute_block(2, 1_100, &[pay(&f, 1, a, b, 150, false)]),
        vec![ResultCode::DuplicateId]
    );
    // liquidity arrives: the payment settles at the end of that block
    let records = [pledge(&f, 2, a, 60)];
    let codes = ledger.execute_block(3, 1_200, &records);
    assert_eq!(codes, vec![ResultCode::Ok]);
    assert_eq!(settled_ids(ledger.last_block_events()), vec![1]);
    let events = block_events(&ledger, &records, &codes);
    assert_eq!(
        events
            .iter()
            .map(|e| (e.kind, e.id, e.payer, e.payee, e.amount))
            .collect::<Vec<_>>(),
        vec![
            (EventKind::Settled, 2, CENTRAL_BANK, a, 60),
            (EventKind::Released, 1, a, b, 150)
        ]
    );
    assert_eq!(
        ledger.status(1),
        TxStatus::SettledFromQueue {
            height: 3,
            via_lsm: false
        }
    );
    assert!(ledger.is_settled(1));
    assert_eq!(ledger.balance(a), Some(10));
    assert_eq!(ledger.balance(b), Some(250));
    assert_conserved(&ledger);
}

#[test]
fn priority_then_arrival_order_and_no_overtaking() {
    let (f, mut ledger) = network(2, 0);
    let (a, b) = (BANK_A, BANK_A + 1);
    let codes = ledger.execute_block(
        1,
        1_000,
        &[
            pay(&f, 1, a, b, 30, false),
            pay(&f, 2, a, b, 30, false),
            pay(&f, 3, a, b, 50, true),
            pay(&f, 4, a, b, 10, true),
        ],
    );
    assert_eq!(codes, vec![ResultCode::Queued; 4]);
    let order: Vec<u128> = ledger
        .queued_payments(Some(a))
        .iter()
        .map(|q| q.id)
        .collect();
    assert_eq!(order, vec![3, 4, 1, 2], "urgent first, then arrival");
    // 70 arrives: both urgent ones (60) settle; normal 1 (30) does not fit, and normal 2
    // does not overtake it
    ledger.execute_block(2, 2_000, &[pledge(&f, 10, a, 70)]);
    assert_eq!(settled_ids(ledger.last_block_events()), vec![3, 4]);
    assert_eq!(ledger.balance(a), Some(10));
    // a new normal payment that a could cover still waits behind the queued normal ones
    let codes = ledger.execute_block(3, 3_000, &[pay(&f, 5, a, b, 5, false)]);
    assert_eq!(codes, vec![ResultCode::Queued]);
    // a new urgent payment overtakes queued normal ones when it can be covered
    let codes = ledger.execute_block(4, 4_000, &[pay(&f, 6, a, b, 10, true)]);
    assert_eq!(codes, vec![ResultCode::Ok]);
    assert_eq!(ledger.balance(a), Some(0));
    ledger.execute_block(5, 5_000, &[pledge(&f, 11, a, 65)]);
    assert_eq!(settled_ids(ledger.last_block_events()), vec![1, 2, 5]);
    assert_eq!(ledger.queue_len(), 0);
    assert_eq!(ledger.balance(b), Some(135));
    assert_conserved(&ledger);
}

#[test]
fn the_payer_holds_releases_cancels_and_reprioritises_its_queued_payments() {
    let (f, mut ledger) = network(3, 0);
    let (a, b, c) = (BANK_A, BANK_A + 1, BANK_A + 2);
    ledger.execute_block(
        1,
        1_000,
        &[
            pay(&f, 1, a, b, 40, false),
            pay(&f, 2, a, b, 20, false),
            pay(&f, 3, a, c, 10, false),
        ],
    );
    let codes = ledger.execute_block(
        2,
        2_000,
        &[
            queue_op(&f, a, 20, TxKind::QueueHold, a, 1),
            queue_op(&f, a, 21, TxKind::QueueHold, a, 1),
            queue_op(&f, a, 22, TxKind::QueueRelease, a, 2),
            queue_op(&f, b, 23, TxKind::QueueCancel, b, 2),
            queue_op(&f, b, 24, TxKind::QueueCancel, a, 2),
            queue_op(&f, a, 25, TxKind::QueueCancel, a, 999),
            f.custom(a, 26, TxKind::QueueReprioritise, a, 0, 0, |t| {
                t.related_id = 3;
                t.flags = TxFlags(TxFlags::URGENT);
            }),
            queue_op(&f, a, 27, TxKind::QueueReprioritise, a, 2),
            pledge(&f, 28, a, 30),
        ],
    );
    assert_eq!(
        codes,
        vec![
            ResultCode::Ok,
            ResultCode::QueuedPaymentAlreadyHeld,
            ResultCode::QueuedPaymentNotHeld,
            ResultCode::NotOwner, // b cancels a's payment
            ResultCode::NotOwner, // b signs for a's queue
            ResultCode::QueuedPaymentNotFound,
            ResultCode::Ok,
            ResultCode::QueuedPaymentPriorityUnchanged,
            ResultCode::Ok,
        ]
    );
    // 1 is held (skipped, blocks nothing); 3 became urgent and settles first, then 2
    assert_eq!(settled_ids(ledger.last_block_events()), vec![3, 2]);
    assert!(matches!(ledger.status(1), TxStatus::Queued { payment, .. } if payment.held));
    let codes = ledger.execute_block(
        3,
        3_000,
        &[
            queue_op(&f, a, 30, TxKind::QueueRelease, a, 1),
            queue_op(&f, a, 31, TxKind::QueueCancel, a, 1),
        ],
    );
    assert_eq!(codes, vec![ResultCode::Ok, ResultCode::Ok]);
    assert_eq!(ledger.status(1), TxStatus::Cancelled { height: 3 });
    assert_eq!(ledger.queue_len(), 0);
    assert_eq!(ledger.balance(a), Some(0));
    assert_conserved(&ledger);
}

#[test]
fn a_three_bank_gridlock_is_resolved_only_by_the_liquidity_saving_mechanism() {
    let f = Fixture::from_table(
        &[
            (CENTRAL_BANK, Role::CentralBank, 0, None),
            (TAX, Role::TaxAuthority, 0, None),
            (BANK_A, Role::Bank, 10, None),
            (BANK_A + 1, Role::Bank, 20, None),
            (BANK_A + 2, Role::Bank, 30, None),
        ],
        |_| {},
    );
    let (a, b, c) = (BANK_A, BANK_A + 1, BANK_A + 2);
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let payments = [
        pay(&f, 1, a, b, 100, false),
        pay(&f, 2, b, c, 120, false),
        pay(&f, 3, c, a, 110, false),
    ];
    // no payment can settle alone: each is larger than its payer's whole balance
    for payment in &payments {
        assert!(
            i128::from(payment.amount())
                > ledger.account(payment.debit_account()).unwrap().available()
        );
    }
    let codes = ledger.execute_block(1, 1_000, &payments);
    assert_eq!(codes, vec![ResultCode::Queued; 3]);
    let events = ledger.last_block_events().to_vec();
    assert_eq!(settled_ids(&events), vec![1, 2, 3]);
    assert!(events.iter().all(|event| matches!(
        event,
        SettlementEvent::SettledFromQueue { via_lsm: true, .. }
    )));
    // net positions: a 10 - 100 + 110, b 20 + 100 - 120, c 30 + 120 - 110
    assert_eq!(ledger.balance(a), Some(20));
    assert_eq!(ledger.balance(b), Some(0));
    assert_eq!(ledger.balance(c), Some(40));
    for id in 1..=3 {
        assert_eq!(
            ledger.status(id),
            TxStatus::SettledFromQueue {
                height: 1,
                via_lsm: true
            }
        );
    }
    assert_conserved(&ledger);
}

#[test]
fn a_ten_bank_gridlock_offsets_the_ring_and_drops_what_cannot_be_covered() {
    let (f, mut ledger) = network(10, 100);
    let bank = |i: u64| BANK_A + i % 10;
    // a ring of 1000 each: nobody can pay first
    let mut records: Vec<TxRecord> = (0..10)
        .map(|i| pay(&f, u128::from(i) + 1, bank(i), bank(i + 1), 1_000, false))
        .collect();
    // bank 0 also sends a late, large payment it cannot cover even after offsetting; bank 3
    // a small one it could pay, but which may not overtake its queued ring payment
    records.push(pay(&f, 11, bank(0), bank(5), 5_000, false));
    records.push(pay(&f, 12, bank(3), bank(7), 60, false));
    let codes = ledger.execute_block(1, 1_000, &records);
    assert_eq!(codes, vec![ResultCode::Queued; 12]);
    let events = ledger.last_block_events().to_vec();
    let mut settled = settled_ids(&events);
    settled.sort_unstable();
    assert_eq!(settled, (1..=10).chain([12]).collect::<Vec<u128>>());
    assert!(events.iter().all(|event| matches!(
        event,
        SettlementEvent::SettledFromQueue { via_lsm: true, .. }
    )));
    assert!(matches!(ledger.status(11), TxStatus::Queued { .. }));
    assert_eq!(ledger.balance(bank(3)), Some(40));
    assert_eq!(ledger.balance(bank(7)), Some(160));
    assert_eq!(ledger.balance(bank(0)), Some(100));
    assert_conserved(&ledger);
    // at the end of the day the uncovered payment expires
    ledger.execute_block(2, DAY_MS, &[pledge(&f, 100, bank(1), 1)]);
    assert_eq!(ledger.status(11), TxStatus::Expired { height: 2 });
    let expired = block_events(&ledger, &[pledge(&f, 100, bank(1), 1)], &[ResultCode::Ok]);
    assert_eq!(
        (
            expired[1].kind,
            expired[1].id,
            expired[1].payer,
            expired[1].amount
        ),
        (EventKind::Expired, 11, bank(0), 5_000)
    );
    assert_eq!(
        ledger.last_block_events(),
        &[SettlementEvent::QueueExpired {
            id: 11,
            payer: bank(0),
            payee: bank(5),
            amount: 5_000
        }]
    );
}

#[test]
fn queued_payments_expire_at_the_cut_off_and_keep_their_id() {
    let cutoff = 17 * 3_600_000; // 17:00 UTC
    let f = Fixture::from_table(
        &[
            (CENTRAL_BANK, Role::CentralBank, 0, None),
            (TAX, Role::TaxAuthority, 0, None),
            (BANK_A, Role::Bank, 0, None),
            (BANK_B, Role::Bank, 0, None),
        ],
        |g| g.settlement.day_cutoff_ms = cutoff,
    );
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let day = 20_000 * DAY_MS;
    ledger.execute_block(
        1,
        day + cutoff - 10,
        &[pay(&f, 1, BANK_A, BANK_B, 5, false)],
    );
    ledger.execute_block(
        2,
        day + cutoff + 10,
        &[pay(&f, 2, BANK_A, BANK_B, 5, false)],
    );
    assert_eq!(ledger.status(1), TxStatus::Expired { height: 2 });
    let TxStatus::Queued { payment, .. } = ledger.status(2) else {
        panic!("payment 2 waits");
    };
    assert_eq!(payment.expires_at_ms, day + DAY_MS + cutoff);
    assert_eq!(
        ledger.execute_block(
            3,
            day + cutoff + 20,
            &[pay(&f, 1, BANK_A, BANK_B, 5, false)]
        ),
        vec![ResultCode::DuplicateId]
    );
}

#[test]
fn a_suspended_participant_neither_pays_nor_is_paid_until_reinstated() {
    let f = Fixture::new();
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let suspend =
        |id, kind, target| f.custom(CENTRAL_BANK, id, kind, CENTRAL_BANK, target, 0, |_| {});
    let codes = ledger.execute_block(
        1,
        1_000,
        &[
            suspend(1, TxKind::Suspend, BANK_A),
            suspend(2, TxKind::Suspend, BANK_A),
            f.tx(3, TxKind::Transfer, BANK_A, BANK_B, 10),
            f.tx(4, TxKind::Transfer, BANK_B, BANK_A, 10),
            f.custom(BANK_B, 5, TxKind::Suspend, CENTRAL_BANK, BANK_A, 0, |_| {}),
            suspend(6, TxKind::Reinstate, BANK_A),
            suspend(7, TxKind::Reinstate, BANK_A),
            f.tx(8, TxKind::Transfer, BANK_A, BANK_B, 10),
        ],
    );
    assert_eq!(
        codes,
        vec![
            ResultCode::Ok,
            ResultCode::AlreadySuspended,
            ResultCode::DebitAccountSuspended,
            ResultCode::CreditAccountSuspended,
            ResultCode::NotCentralBank,
            ResultCode::Ok,
            ResultCode::NotSuspended,
            ResultCode::Ok,
        ]
    );
    assert_eq!(ledger.balance(BANK_A), Some(1_000_000 - 10));
}

#[test]
fn every_unauthorised_operation_is_rejected_with_its_own_code() {
    let f = Fixture::new();
    let mut ledger = Ledger::from_genesis(&f.genesis);
    ledger.execute_block(
        1,
        1_000,
        &[f.custom(
            CENTRAL_BANK,
            1,
            TxKind::Suspend,
            CENTRAL_BANK,
            BANK_B,
            0,
            |_| {},
        )],
    );
    let root = ledger.state_root();
    let attempts = [
        // a bank minting reserves for itself
        f.signed_by(
            BANK_A,
            &f.fields(10, TxKind::Pledge, CENTRAL_BANK, BANK_A, 5),
        ),
        // a merchant changing a tax rate
        f.custom(SHOP, 11, TxKind::SetTaxRate, SHOP, 0, 0, |t| {
            t.category = 1;
            t.reserved_a = 0;
            t.amount = 5_000;
        }),
        // an observer moving money
        f.tx(12, TxKind::Transfer, OBSERVER, ALICE, 1),
        // a suspended bank paying
        f.tx(13, TxKind::Transfer, BANK_B, BANK_A, 1),
        // someone else's key on a payment
        f.signed_by(BOB, &f.fields(14, TxKind::Transfer, ALICE, BOB, 1)),
    ];
    let codes = ledger.execute_block(2, 2_000, &attempts);
    assert_eq!(
        codes,
        vec![
            ResultCode::NotCentralBank,
            ResultCode::NotTaxAuthority,
            ResultCode::ObserverReadOnly,
            ResultCode::DebitAccountSuspended,
            ResultCode::NotOwner,
        ]
    );
    let mut distinct = codes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), codes.len(), "each has its own code");
    assert_eq!(ledger.state_root(), root, "nothing changed");
}

#[test]
fn a_taxed_payment_and_its_refunds_have_exact_amounts() {
    let f = Fixture::new();
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let refund = |id, amount, related, from, to| {
        f.custom(from, id, TxKind::Refund, from, to, amount, |t| {
            t.related_id = related
        })
    };
    let codes = ledger.execute_block(
        1,
        1_000,
        &[f.tx(1, TxKind::TaxedPayment, ALICE, SHOP, 1_999)],
    );
    assert_eq!(codes, vec![ResultCode::Ok]);
    // 9% of 19.99 = 1.7991: tax 1.79, the merchant gets 18.20
    assert_eq!(ledger.balance(SHOP), Some(1_820));
    assert_eq!(ledger.balance(TAX), Some(179));
    let codes = ledger.execute_block(
        2,
        DAY_MS + 5,
        &[
            // about half: the levy on 10.00, floor(90.00) = 90, comes back; 910 from the merchant
            refund(2, 1_000, 1, SHOP, ALICE),
            refund(3, 1_000, 1, SHOP, ALICE),
            refund(4, 10, 1, SHOP, BOB),
            refund(5, 10, 77, SHOP, ALICE),
            refund(6, 10, 1, BOB, ALICE),
            // the rest: the tax reversed adds up to exactly 179
            refund(7, 999, 1, SHOP, ALICE),
        ],
    );
    assert_eq!(
        codes,
        vec![
            ResultCode::Ok,
            ResultCode::RefundExceedsPayment,
            ResultCode::RefundAccountsMismatch,
            ResultCode::RefundOfUnknownPayment,
            ResultCode::RefundAccountsMismatch,
            ResultCode::Ok,
        ]
    );
    assert_eq!(ledger.balance(ALICE), Some(10_000));
    assert_eq!(ledger.balance(SHOP), Some(0));
    assert_eq!(ledger.balance(TAX), Some(0));
    let payment = ledger.tax_payment(1).unwrap();
    assert_eq!(
        (payment.refunded_amount, payment.refunded_tax),
        (1_999, 179)
    );
    // the report: collected on day 0, refunded on day 1
    let day0 = ledger.tax_report(Some(SHOP), 0, 0);
    assert_eq!(day0.len(), 1);
    assert_eq!((day0[0].totals.payments, day0[0].totals.tax), (1, 179));
    assert_eq!(day0[0].totals.net_tax(), 179);
    let day1 = ledger.tax_report(Some(SHOP), 1, 1);
    assert_eq!(
        (day1[0].totals.refunds, day1[0].totals.refunded_tax),
        (2, 179)
    );
    let both = ledger.tax_report(None, 0, u64::MAX);
    assert_eq!(both[0].totals.net_tax(), 0);
    assert_eq!(both[0].totals.gross, 1_999);
    assert_eq!(both[0].totals.refunded_gross, 1_999);
    assert_conserved(&ledger);
}

#[test]
fn tax_rates_are_effective_dated_and_set_only_by_the_tax_authority() {
    let f = Fixture::new();
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let rate = |id, signer, debit, bp, from| {
        f.custom(signer, id, TxKind::SetTaxRate, debit, 0, 0, |t| {
            t.category = 1;
            t.reserved_a = bp;
            t.amount = from;
        })
    };
    let codes = ledger.execute_block(
        1,
        1_000,
        &[
            rate(1, TAX, TAX, 2_000, 5_000),
            rate(2, TAX, TAX, 2_000, 999),
            rate(3, SHOP, TAX, 2_000, 5_000),
            rate(4, TAX, SHOP, 2_000, 5_000),
            f.tx(5, TxKind::TaxedPayment, ALICE, SHOP, 1_000),
        ],
    );
    assert_eq!(
        codes,
        vec![
            ResultCode::Ok,
            ResultCode::TaxRateInThePast,
            ResultCode::NotTaxAuthority,
            ResultCode::NotTaxAuthority,
            ResultCode::Ok,
        ]
    );
    assert_eq!(
        ledger.balance(TAX),
        Some(90),
        "9% before the new rate takes effect"
    );
    ledger.execute_block(
        2,
        5_000,
        &[f.tx(6, TxKind::TaxedPayment, ALICE, SHOP, 1_000)],
    );
    assert_eq!(ledger.balance(TAX), Some(90 + 200), "20% from 5000 ms on");
    assert_eq!(ledger.tax_rate(1, 4_999).unwrap().rate_bp, 900);
    assert_eq!(ledger.tax_rate(1, 5_000).unwrap().rate_bp, 2_000);
}

#[test]
fn tax_goes_to_the_restricted_sub_account_where_the_regime_says_so() {
    const SUB: u64 = 201;
    let f = Fixture::from_table(
        &[
            (CENTRAL_BANK, Role::CentralBank, 0, None),
            (TAX, Role::TaxAuthority, 0, None),
            (BANK_A, Role::Bank, 0, None),
            (ALICE, Role::Consumer, 10_000, Some(BANK_A)),
            (SHOP, Role::Merchant, 0, Some(BANK_A)),
            (SUB, Role::TaxSubAccount, 0, None),
        ],
        |g| {
            g.accounts[4].tax_sub_account = Some(SUB);
            g.tax_rates.push(TaxRateSpec {
                to_sub_account: true,
                ..TaxRateSpec::new(3, 2_000, TaxBasis::Gross, Rounding::Down)
            });
        },
    );
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let codes = ledger.execute_block(
        1,
        1_000,
        &[
            f.custom(ALICE, 1, TxKind::TaxedPayment, ALICE, SHOP, 1_000, |t| {
                t.category = 3
            }),
            f.tx(2, TxKind::TaxedPayment, ALICE, SHOP, 1_000),
            // the merchant cannot touch its tax sub-account
            f.tx(3, TxKind::Transfer, SUB, SHOP, 10),
            // nor can anyone pay into it
            f.tx(4, TxKind::Transfer, ALICE, SUB, 10),
            // the tax authority sweeps it, only to itself
            f.signed_by(TAX, &f.fields(5, TxKind::Transfer, SUB, ALICE, 10)),
            f.signed_by(TAX, &f.fields(6, TxKind::Transfer, SUB, TAX, 150)),
        ],
    );
    assert_eq!(
        codes,
        vec![
            ResultCode::Ok,
            ResultCode::Ok,
            ResultCode::NotOwner,
            ResultCode::NotPermitted,
            ResultCode::NotPermitted,
            ResultCode::Ok,
        ]
    );
    assert_eq!(ledger.balance(SHOP), Some(800 + 910));
    assert_eq!(ledger.balance(SUB), Some(200 - 150));
    assert_eq!(ledger.balance(TAX), Some(90 + 150));
}

#[test]
fn two_phase_transfers_reserve_then_post_or_void_with_a_timeout() {
    let f = Fixture::new();
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let pending = |id, amount, timeout_s| {
        f.custom(ALICE, id, TxKind::Transfer, ALICE, BOB, amount, |t| {
            t.flags = TxFlags(TxFlags::PENDING);
            t.reserved_a = timeout_s;
        })
    };
    let finish = |id, flag, related, debit, credit, amount| {
        f.custom(debit, id, TxKind::Transfer, debit, credit, amount, |t| {
            t.flags = TxFlags(flag);
            t.related_id = related;
        })
    };
    let codes = ledger.execute_block(
        1,
        1_000,
        &[
            pending(1, 6_000, 0),
            // the reservation counts: 6000 + 5000 > 10000
            f.tx(2, TxKind::Transfer, ALICE, BOB, 5_000),
            pending(3, 1_000, 10),
            finish(4, TxFlags::POST_PENDING, 1, ALICE, BOB, 7_000),
            finish(5, TxFlags::POST_PENDING, 1, ALICE, SHOP, 100),
            finish(6, TxFlags::POST_PENDING, 99, ALICE, BOB, 100),
            finish(7, TxFlags::POST_PENDING, 1, ALICE, BOB, 4_000),
            finish(8, TxFlags::POST_PENDING, 1, ALICE, BOB, 4_000),
            finish(9, TxFlags::VOID_PENDING, 1, ALICE, BOB, 6_000),
        ],
    );
    assert_eq!(
        codes,
        vec![
            ResultCode::Ok,
            ResultCode::InsufficientFunds,
            ResultCode::Ok,
            ResultCode::PendingAmountExceeded,
            ResultCode::PendingAccountsMismatch,
            ResultCode::PendingTransferNotFound,
            ResultCode::Ok,
            ResultCode::PendingTransferAlreadyPosted,
            ResultCode::PendingTransferAlreadyPosted,
        ]
    );
    // posted 4000 of 6000: the rest is released
    assert_eq!(ledger.balance(ALICE), Some(6_000));
    assert_eq!(ledger.balance(BOB), Some(4_500));
    assert_eq!(
        ledger.status(1),
        TxStatus::Posted {
            by: 7,
            amount: 4_000
        }
    );
    let alice = ledger.account(ALICE).unwrap();
    assert_eq!(alice.debits_pending, 1_000, "reservation 3 is still open");
    assert!(matches!(ledger.status(3), TxStatus::Pending(p) if p.expires_at_ms == 11_000));
    // 3 times out at 11 000 ms
    let codes = ledger.execute_block(
        2,
        11_000,
        &[
            finish(10, TxFlags::POST_PENDING, 3, ALICE, BOB, 1_000),
            pending(11, 500, 0),
            finish(12, TxFlags::VOID_PENDING, 11, ALICE, BOB, 400),
            finish(13, TxFlags::VOID_PENDING, 11, ALICE, BOB, 500),
            finish(14, TxFlags::POST_PENDING, 11, ALICE, BOB, 500),
        ],
    );
    assert_eq!(
        codes,
        vec![
            ResultCode::PendingTransferExpired,
            ResultCode::Ok,
            ResultCode::PendingAmountMismatch,
            ResultCode::Ok,
            ResultCode::PendingTransferAlreadyVoided,
        ]
    );
    assert_eq!(ledger.status(3), TxStatus::PendingExpired { height: 2 });
    assert_eq!(ledger.status(11), TxStatus::Voided { by: 13 });
    assert_eq!(ledger.account(ALICE).unwrap().debits_pending, 0);
    assert_eq!(ledger.balance(ALICE), Some(6_000));
    assert_conserved(&ledger);
}

#[test]
fn linked_transfers_settle_all_or_nothing() {
    let f = Fixture::new();
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let linked = |id, debit, credit, amount| {
        f.custom(debit, id, TxKind::Transfer, debit, credit, amount, |t| {
            t.flags = TxFlags(TxFlags::LINKED);
        })
    };
    let root = ledger.state_root();
    // the third fails: the whole chain fails, and the record after it is not in the chain
    let codes = ledger.execute_block(
        1,
        1_000,
        &[
            linked(1, ALICE, BOB, 100),
            linked(2, BOB, SHOP, 50),
            f.tx(3, TxKind::Transfer, BOB, ALICE, 100_000),
            f.tx(4, TxKind::Transfer, SHOP, ALICE, 1),
        ],
    );
    assert_eq!(
        codes,
        vec![
            ResultCode::LinkedEventFailed,
            ResultCode::LinkedEventFailed,
            ResultCode::InsufficientFunds,
            ResultCode::InsufficientFunds,
        ]
    );
    assert_eq!(ledger.state_root(), root, "nothing of the chain settled");
    assert!(!ledger.is_accepted(1), "a failed chain uses up no id");
    // a failure in the middle: the rest of the chain fails without running
    let codes = ledger.execute_block(
        2,
        2_000,
        &[
            linked(1, ALICE, BOB, 100),
            linked(2, BOB, ALICE, 100_000),
            f.tx(3, TxKind::TaxedPayment, ALICE, SHOP, 100),
        ],
    );
    assert_eq!(
        codes,
        vec![
            ResultCode::LinkedEventFailed,
            ResultCode::InsufficientFunds,
            ResultCode::LinkedEventFailed,
        ]
    );
    assert_eq!(ledger.state_root(), root);
    // a chain that holds settles together, tax included
    let codes = ledger.execute_block(
        3,
        3_000,
        &[
            linked(1, ALICE, BOB, 100),
            f.custom(BOB, 2, TxKind::TaxedPayment, BOB, SHOP, 600, |t| {
                t.flags = TxFlags(TxFlags::LINKED);
            }),
            f.tx(3, TxKind::Transfer, SHOP, ALICE, 46),
        ],
    );
    assert_eq!(codes, vec![ResultCode::Ok; 3]);
    assert_eq!(ledger.balance(SHOP), Some(600 - 54 - 46));
    // a chain still open when the block ends: undone, every record answered chain-open
    let before = ledger.state_root();
    let codes = ledger.execute_block(
        4,
        4_000,
        &[linked(10, ALICE, BOB, 1), linked(11, BOB, ALICE, 1)],
    );
    assert_eq!(codes, vec![ResultCode::LinkedEventChainOpen; 2]);
    assert_eq!(ledger.state_root(), before);
    assert!(!ledger.is_accepted(10));
    assert_conserved(&ledger);
}

#[test]
fn balance_limits_and_overdrafts_are_enforced() {
    let f = Fixture::from_table(
        &[
            (CENTRAL_BANK, Role::CentralBank, 0, None),
            (TAX, Role::TaxAuthority, 0, None),
            (BANK_A, Role::Bank, 100, None),
            (BANK_B, Role::Bank, 0, None),
            (ALICE, Role::Consumer, 1_000, Some(BANK_A)),
            (BOB, Role::Consumer, 0, Some(BANK_A)),
        ],
        |g| {
            g.accounts[2].overdraft_max = 500; // bank A: intraday credit
            g.accounts[5].balance_max = Some(300); // bob: a holding limit
        },
    );
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let codes = ledger.execute_block(
        1,
        1_000,
        &[
            f.tx(1, TxKind::Transfer, ALICE, BOB, 301),
            f.tx(2, TxKind::Transfer, ALICE, BOB, 300),
            f.tx(3, TxKind::Transfer, ALICE, BOB, 1),
            f.tx(4, TxKind::Transfer, BANK_A, BANK_B, 550),
            f.tx(5, TxKind::Transfer, BANK_A, BANK_B, 51),
            f.tx(6, TxKind::Redeem, BANK_A, CENTRAL_BANK, 1),
        ],
    );
    assert_eq!(
        codes,
        vec![
            ResultCode::BalanceLimitExceeded,
            ResultCode::Ok,
            ResultCode::BalanceLimitExceeded,
            ResultCode::Ok,
            ResultCode::Queued, // beyond the overdraft: queued, not settled
            ResultCode::InsufficientFunds, // redeem burns only reserves held
        ]
    );
    assert_eq!(ledger.balance(BANK_A), Some(-450));
    assert_eq!(ledger.account(BANK_A).unwrap().available(), 50);
}

#[test]
fn a_snapshot_carries_every_part_of_the_settlement_state() {
    let f = Fixture::new();
    let mut ledger = Ledger::from_genesis(&f.genesis);
    ledger.execute_block(
        1,
        1_000,
        &[
            f.tx(1, TxKind::TaxedPayment, ALICE, SHOP, 1_000),
            f.custom(SHOP, 2, TxKind::Refund, SHOP, ALICE, 100, |t| {
                t.related_id = 1
            }),
            f.tx(3, TxKind::Transfer, BANK_A, BANK_B, 2_000_000),
            f.custom(ALICE, 4, TxKind::Transfer, ALICE, BOB, 10, |t| {
                t.flags = TxFlags(TxFlags::PENDING);
                t.reserved_a = 60;
            }),
            f.custom(
                CENTRAL_BANK,
                5,
                TxKind::Suspend,
                CENTRAL_BANK,
                BOB,
                0,
                |_| {},
            ),
            f.custom(TAX, 6, TxKind::SetTaxRate, TAX, 0, 0, |t| {
                t.category = 9;
                t.reserved_a = 1_500;
                t.amount = 90_000;
                t.flags = TxFlags(TxFlags::TAX_BASIS_EXCLUSIVE | TxFlags::TAX_ROUND_HALF_EVEN);
            }),
            f.tx(7, TxKind::Transfer, BANK_B, BANK_A, 100_000),
            f.custom(BANK_A, 8, TxKind::QueueHold, BANK_A, 0, 0, |t| {
                t.related_id = 3
            }),
        ],
    );
    let point = SnapshotPoint {
        height: 1,
        last_block_hash: [7; 32],
    };
    let bytes = ledger.snapshot(&f.genesis.hash(), point);
    let (mut restored, restored_point) = Ledger::restore(&bytes, &f.genesis.hash()).unwrap();
    assert_eq!(restored_point, point);
    assert_eq!(restored.state_root(), ledger.state_root());
    assert_eq!(restored.snapshot(&f.genesis.hash(), point), bytes);
    assert!(matches!(restored.status(3), TxStatus::Queued { .. }));
    assert!(matches!(restored.status(4), TxStatus::Pending(_)));
    assert!(restored.account(BOB).unwrap().suspended);
    let rate = restored.tax_rate(9, 90_000).unwrap();
    assert_eq!(
        (rate.rate_bp, rate.basis, rate.rounding),
        (1_500, TaxBasis::Exclusive, Rounding::HalfEven)
    );
    // the same next block gives the same state on both
    let next = [
        f.custom(BANK_A, 9, TxKind::QueueRelease, BANK_A, 0, 0, |t| {
            t.related_id = 3
        }),
        f.tx(10, TxKind::Pledge, CENTRAL_BANK, BANK_A, 1_500_000),
        f.custom(SHOP, 11, TxKind::Refund, SHOP, ALICE, 900, |t| {
            t.related_id = 1
        }),
    ];
    let a = ledger.execute_block(2, 61_000, &next);
    let b = restored.execute_block(2, 61_000, &next);
    assert_eq!(a, b);
    assert_eq!(a, vec![ResultCode::Ok; 3]);
    assert_eq!(restored.state_root(), ledger.state_root());
    assert_eq!(
        ledger.status(3),
        TxStatus::SettledFromQueue {
            height: 2,
            via_lsm: false
        }
    );
    assert_eq!(ledger.status(4), TxStatus::PendingExpired { height: 2 });
    for damaged in [bytes.len() - 1, 10] {
        assert!(Ledger::restore(&bytes[..damaged], &f.genesis.hash()).is_err());
    }
}
