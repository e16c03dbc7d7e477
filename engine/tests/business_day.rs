//! The RTGS business day (docs/SETTLEMENT.md, "The business day"): payment windows and
//! their cut-offs per class, closed weekdays and holidays, warehoused payments settled at
//! their value date's opening in priority order (across a restart from a snapshot and from
//! a replay), and the end of day rejecting the unsettled queue. Every boundary is tried at
//! the block exactly on it, just before and just after.
//!
//! The calendar is T2's (in UTC; CET is UTC+1): the day opens at 19:00 CET of the day
//! before (18:00 UTC), customer payments stop at 17:00 CET (16:00 UTC), interbank payments
//! and liquidity at 18:00 CET (17:00 UTC), the end of day; closed on Saturdays, Sundays and
//! the listed holidays.

mod common;

use common::*;
use tally_engine::calendar::CalendarSpec;
use tally_engine::events::{block_events, block_stamp, BlockStamp, EventKind};
use tally_engine::genesis::{Role, DAY_MS};
use tally_engine::ledger::{Ledger, SettlementEvent, SnapshotPoint, TxStatus};
use tally_engine::result::ResultCode;
use tally_engine::tx::{TxFlags, TxKind, TxRecord};

const HOUR: i64 = 3_600_000;
/// Monday 2026-12-07 (days since 1970-01-01).
const MONDAY: u64 = 20_794;
const FRIDAY: u64 = MONDAY + 4;
const SATURDAY: u64 = MONDAY + 5;
const NEXT_MONDAY: u64 = MONDAY + 7;
/// Friday 2026-12-25, a holiday.
const CHRISTMAS: u64 = MONDAY + 18;

fn t2_calendar() -> CalendarSpec {
    CalendarSpec {
        opening_ms: -6 * HOUR,
        customer_cut_off_ms: Some(16 * HOUR),
        interbank_cut_off_ms: Some(17 * HOUR),
        liquidity_cut_off_ms: None,
        end_of_day_ms: 17 * HOUR,
        closed_weekdays: vec!["saturday".into(), "sunday".into()],
        holidays: vec!["2026-12-25".into(), "2027-01-01".into()],
        warehouse_days: 10,
        warehouse_capacity: tally_engine::calendar::WAREHOUSE_CAPACITY_MAX,
    }
}

/// Block time `offset` from midnight UTC of day `day`.
fn at(day: u64, offset: i64) -> u64 {
    (day as i64 * DAY_MS as i64 + offset) as u64
}

/// Two banks with `bank_balance` each, a consumer at bank A with 10 000 and a merchant.
fn fixture(bank_balance: u64) -> Fixture {
    Fixture::from_table(
        &[
            (CENTRAL_BANK, Role::CentralBank, 0, None),
            (TAX, Role::TaxAuthority, 0, None),
            (BANK_A, Role::Bank, bank_balance, None),
            (BANK_B, Role::Bank, bank_balance, None),
            (ALICE, Role::Consumer, 10_000, Some(BANK_A)),
            (SHOP, Role::Merchant, 0, Some(BANK_A)),
        ],
        |g| g.settlement.calendar = Some(t2_calendar()),
    )
}

/// A payment with flags and a value date.
#[allow(clippy::too_many_arguments)]
fn payment(
    f: &Fixture,
    id: u128,
    kind: TxKind,
    from: u64,
    to: u64,
    amount: u64,
    flags: u16,
    value_date: u64,
) -> TxRecord {
    f.custom(from, id, kind, from, to, amount, |t| {
        t.flags = TxFlags(flags);
        t.reserved_a = value_date as u32;
    })
}

fn warehoused(
    f: &Fixture,
    id: u128,
    from: u64,
    to: u64,
    amount: u64,
    urgent: bool,
    value_date: u64,
) -> TxRecord {
    let flags = TxFlags::WAREHOUSED | if urgent { TxFlags::URGENT } else { 0 };
    payment(f, id, TxKind::Transfer, from, to, amount, flags, value_date)
}

/// The code of `record` alone in a block at `time` on a fresh ledger.
fn code_at(f: &Fixture, time: u64, record: TxRecord) -> ResultCode {
    Ledger::from_genesis(&f.genesis).execute_block(1, time, &[record])[0]
}

#[test]
fn each_class_settles_from_the_opening_to_its_cut_off_and_not_outside() {
    let f = fixture(1_000_000);
    let customer = || f.tx(1, TxKind::Transfer, ALICE, SHOP, 10);
    let taxed = || f.tx(2, TxKind::TaxedPayment, ALICE, SHOP, 100);
    let interbank = || f.tx(3, TxKind::Transfer, BANK_A, BANK_B, 10);
    let pledge = || f.tx(4, TxKind::Pledge, CENTRAL_BANK, BANK_A, 10);
    let opening = at(MONDAY, -6 * HOUR);
    let customer_cut_off = at(MONDAY, 16 * HOUR);
    let end_of_day = at(MONDAY, 17 * HOUR);
    use ResultCode::*;
    for make in [
        &customer as &dyn Fn() -> TxRecord,
        &taxed,
        &interbank,
        &pledge,
    ] {
        // the opening: just before, exactly at, just after
        assert_eq!(code_at(&f, opening - 1, make()), BusinessDayClosed);
        assert_eq!(code_at(&f, opening, make()), Ok);
        assert_eq!(code_at(&f, opening + 1, make()), Ok);
        // the end of day (also the interbank and liquidity cut-off): every class stops
        assert_eq!(code_at(&f, end_of_day, make()), BusinessDayClosed);
        assert_eq!(code_at(&f, end_of_day + 1, make()), BusinessDayClosed);
    }
    // the customer cut-off stops customer payments, not interbank ones nor liquidity
    for make in [&customer as &dyn Fn() -> TxRecord, &taxed] {
        assert_eq!(code_at(&f, customer_cut_off - 1, make()), Ok);
        assert_eq!(code_at(&f, customer_cut_off, make()), AfterCutOff);
        assert_eq!(code_at(&f, customer_cut_off + 1, make()), AfterCutOff);
        assert_eq!(code_at(&f, end_of_day - 1, make()), AfterCutOff);
    }
    for make in [&interbank as &dyn Fn() -> TxRecord, &pledge] {
        assert_eq!(code_at(&f, customer_cut_off, make()), Ok);
        assert_eq!(code_at(&f, end_of_day - 1, make()), Ok);
    }
}

#[test]
fn a_late_reservation_and_post_answer_to_their_cut_off_and_a_void_to_none() {
    let f = fixture(1_000_000);
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let reserve = |id, amount| {
        f.custom(ALICE, id, TxKind::Transfer, ALICE, SHOP, amount, |t| {
            t.flags = TxFlags(TxFlags::PENDING)
        })
    };
    let second = |id, flag, related| {
        f.custom(ALICE, id, TxKind::Transfer, ALICE, SHOP, 50, |t| {
            t.flags = TxFlags(flag);
            t.related_id = related;
        })
    };
    let codes = ledger.execute_block(1, at(MONDAY, 10 * HOUR), &[reserve(1, 50), reserve(2, 50)]);
    assert_eq!(codes, vec![ResultCode::Ok, ResultCode::Ok]);
    let late = at(MONDAY, 16 * HOUR);
    let codes = ledger.execute_block(
        2,
        late,
        &[
            reserve(3, 50),
            second(4, TxFlags::POST_PENDING, 1),
            second(5, TxFlags::VOID_PENDING, 2),
        ],
    );
    assert_eq!(
        codes,
        vec![
            ResultCode::AfterCutOff,
            ResultCode::AfterCutOff,
            ResultCode::Ok
        ]
    );
}

#[test]
fn queue_management_suspension_tax_rates_and_administration_ignore_the_schedule() {
    let f = fixture(100);
    let mut ledger = Ledger::from_genesis(&f.genesis);
    // queued on Monday, before the end of day
    let codes = ledger.execute_block(
        1,
        at(MONDAY, 10 * HOUR),
        &[
            f.tx(1, TxKind::Transfer, BANK_A, BANK_B, 500),
            f.tx(2, TxKind::Transfer, BANK_A, BANK_B, 500),
        ],
    );
    assert_eq!(codes, vec![ResultCode::Queued, ResultCode::Queued]);
    // Saturday: closed for payments, open for everything else
    let saturday = at(SATURDAY, 10 * HOUR);
    let queue_op =
        |id, kind, target| f.custom(BANK_A, id, kind, BANK_A, 0, 0, |t| t.related_id = target);
    // after the customer cut-off
    let codes = ledger.execute_block(
        2,
        at(MONDAY, 16 * HOUR + 30 * 60_000),
        &[
            queue_op(3, TxKind::QueueHold, 1),
            f.custom(BANK_A, 4, TxKind::QueueReprioritise, BANK_A, 0, 0, |t| {
                t.related_id = 2;
                t.flags = TxFlags(TxFlags::URGENT);
            }),
        ],
    );
    assert_eq!(codes, vec![ResultCode::Ok, ResultCode::Ok]);
    let codes = ledger.execute_block(
        3,
        saturday,
        &[
            f.tx(5, TxKind::Transfer, BANK_A, BANK_B, 1),
            f.custom(
                CENTRAL_BANK,
                6,
                TxKind::Suspend,
                CENTRAL_BANK,
                BANK_B,
                0,
                |_| {},
            ),
            f.custom(
                CENTRAL_BANK,
                7,
                TxKind::Reinstate,
                CENTRAL_BANK,
                BANK_B,
                0,
                |_| {},
            ),
            f.custom(TAX, 8, TxKind::SetTaxRate, TAX, 0, saturday + 1_000, |t| {
                t.category = 1;
                t.reserved_a = 500;
            }),
            warehoused(&f, 9, BANK_A, BANK_B, 5, false, NEXT_MONDAY),
            queue_op(10, TxKind::QueueCancel, 9),
        ],
    );
    assert_eq!(
        codes,
        vec![
            ResultCode::BusinessDayClosed,
            ResultCode::Ok,
            ResultCode::Ok,
            ResultCode::Ok,
            ResultCode::Warehoused,
            ResultCode::Ok
        ]
    );
    assert_eq!(ledger.status(9), TxStatus::Cancelled { height: 3 });
}

#[test]
fn closed_weekdays_and_holidays_refuse_payments_all_day() {
    let f = fixture(1_000_000);
    let pay = || f.tx(1, TxKind::Transfer, BANK_A, BANK_B, 10);
    // Friday's day runs until 17:00 UTC; Saturday and Sunday have no day; Monday's opens
    // on Sunday at 18:00 UTC
    assert_eq!(
        code_at(&f, at(FRIDAY, 17 * HOUR) - 1, pay()),
        ResultCode::Ok
    );
    for time in [
        at(FRIDAY, 17 * HOUR),
        at(FRIDAY, 18 * HOUR),
        at(SATURDAY, 10 * HOUR),
        at(SATURDAY + 1, 10 * HOUR),
        at(NEXT_MONDAY, -6 * HOUR) - 1,
    ] {
        assert_eq!(
            code_at(&f, time, pay()),
            ResultCode::BusinessDayClosed,
            "{time}"
        );
    }
    assert_eq!(
        code_at(&f, at(NEXT_MONDAY, -6 * HOUR), pay()),
        ResultCode::Ok
    );
    // Christmas (a Friday) is a holiday: its window, from Thursday 18:00 UTC, never opens
    assert_eq!(
        code_at(&f, at(CHRISTMAS - 1, 10 * HOUR), pay()),
        ResultCode::Ok
    );
    assert_eq!(
        code_at(&f, at(CHRISTMAS - 1, 18 * HOUR), pay()),
        ResultCode::BusinessDayClosed
    );
    assert_eq!(
        code_at(&f, at(CHRISTMAS, 10 * HOUR), pay()),
        ResultCode::BusinessDayClosed
    );
    // the business day numbering follows the calendar: Monday's day is its date
    let ledger = Ledger::from_genesis(&f.genesis);
    assert_eq!(ledger.business_day(at(MONDAY, -6 * HOUR)), MONDAY);
    assert_eq!(ledger.business_day(at(MONDAY, 17 * HOUR) - 1), MONDAY);
    assert_eq!(ledger.business_day(at(MONDAY, 17 * HOUR)), MONDAY + 1);
    assert_eq!(
        ledger.end_of_day_ms(at(MONDAY, 3 * HOUR)),
        at(MONDAY, 17 * HOUR)
    );
}

#[test]
fn a_warehoused_payment_is_checked_for_its_value_date() {
    let f = fixture(1_000_000);
    let friday_noon = at(FRIDAY, 12 * HOUR);
    let ahead = |id, value_date| warehoused(&f, id, BANK_A, BANK_B, 10, false, value_date);
    use ResultCode::*;
    assert_eq!(code_at(&f, friday_noon, ahead(1, NEXT_MONDAY)), Warehoused);
    // today's value date, open now: it settles as any payment
    assert_eq!(code_at(&f, friday_noon, ahead(2, FRIDAY)), Ok);
    // today's after its end of day, or yesterday's
    assert_eq!(
        code_at(&f, at(FRIDAY, 17 * HOUR), ahead(3, FRIDAY)),
        ValueDatePassed
    );
    assert_eq!(
        code_at(&f, friday_noon, ahead(4, FRIDAY - 1)),
        ValueDatePassed
    );
    assert_eq!(
        code_at(&f, friday_noon, ahead(5, SATURDAY)),
        ValueDateClosed
    );
    assert_eq!(
        code_at(&f, friday_noon, ahead(6, CHRISTMAS)),
        ValueDateClosed
    );
    // the horizon: ten business-day numbers ahead of today's
    assert_eq!(code_at(&f, friday_noon, ahead(7, FRIDAY + 10)), Warehoused);
    assert_eq!(
        code_at(&f, friday_noon, ahead(8, FRIDAY + 11)),
        ValueDateTooFar
    );
    // warehoused on a closed day, and after the day's cut-off: warehousing has no window
    assert_eq!(
        code_at(&f, at(SATURDAY, 10 * HOUR), ahead(9, NEXT_MONDAY)),
        Warehoused
    );
    let taxed = payment(
        &f,
        10,
        TxKind::TaxedPayment,
        ALICE,
        SHOP,
        100,
        TxFlags::WAREHOUSED,
        NEXT_MONDAY,
    );
    assert_eq!(code_at(&f, at(FRIDAY, 16 * HOUR + 1), taxed), Warehoused);
    // the parties are checked on arrival
    let not_owner = f.custom(BANK_B, 11, TxKind::Transfer, BANK_A, BANK_B, 10, |t| {
        t.flags = TxFlags(TxFlags::WAREHOUSED);
        t.reserved_a = NEXT_MONDAY as u32;
    });
    assert_eq!(code_at(&f, friday_noon, not_owner), NotOwner);
    // a network without a calendar does not warehouse
    let plain = Fixture::new();
    let record = warehoused(&plain, 12, BANK_A, BANK_B, 10, false, NEXT_MONDAY);
    assert_eq!(code_at(&plain, friday_noon, record), NoBusinessCalendar);
}

/// Friday's warehoused payments for next Monday: bank A (100 of liquidity) sends 60 three
/// times, the last one urgent; a taxed payment; one cancelled by its payer.
fn friday_block(f: &Fixture) -> Vec<TxRecord> {
    vec![
        warehoused(f, 1, BANK_A, BANK_B, 60, false, NEXT_MONDAY),
        warehoused(f, 2, BANK_A, BANK_B, 60, false, NEXT_MONDAY),
        warehoused(f, 3, BANK_A, BANK_B, 60, true, NEXT_MONDAY),
        payment(
            f,
            4,
            TxKind::TaxedPayment,
            ALICE,
            SHOP,
            1_000,
            TxFlags::WAREHOUSED,
            NEXT_MONDAY,
        ),
        warehoused(f, 5, BANK_A, BANK_B, 1, false, NEXT_MONDAY),
    ]
}

fn cancel_block(f: &Fixture) -> Vec<TxRecord> {
    let cancel = |signer, id, target| {
        f.custom(signer, id, TxKind::QueueCancel, signer, 0, 0, |t| {
            t.related_id = target
        })
    };
    // bank B cannot cancel bank A's payment; bank A can
    vec![cancel(BANK_B, 6, 5), cancel(BANK_A, 7, 5)]
}

/// The opening's outcome: (event, id) in order.
fn opening_outcome(events: &[SettlementEvent]) -> Vec<(&'static str, u128)> {
    events
        .iter()
        .filter_map(|event| match event {
            SettlementEvent::SettledFromWarehouse { id, .. } => Some(("settled", *id)),
            SettlementEvent::QueuedFromWarehouse { id, .. } => Some(("queued", *id)),
            SettlementEvent::WarehouseRejected { id, .. } => Some(("rejected", *id)),
            _ => None,
        })
        .collect()
}

#[test]
fn warehoused_payments_settle_at_their_openings_urgent_first_then_in_acceptance_order() {
    let f = fixture(100);
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let friday = friday_block(&f);
    let codes = ledger.execute_block(1, at(FRIDAY, 12 * HOUR), &friday);
    assert_eq!(codes, vec![ResultCode::Warehoused; 5]);
    let events = block_events(&ledger, &friday, &codes);
    assert!(events.iter().all(|e| e.kind == EventKind::Warehoused));
    assert_eq!(ledger.warehouse_len(), 5);
    assert_eq!(
        ledger.status(3),
        TxStatus::Warehoused {
            value_date: NEXT_MONDAY,
            urgent: true
        }
    );
    assert_eq!(
        ledger.balance(BANK_A),
        Some(100),
        "warehousing moves nothing"
    );
    let cancels = cancel_block(&f);
    let codes = ledger.execute_block(2, at(FRIDAY, 13 * HOUR), &cancels);
    assert_eq!(codes, vec![ResultCode::NotOwner, ResultCode::Ok]);
    assert_eq!(ledger.status(5), TxStatus::Cancelled { height: 2 });
    // the cancel is an event of the payment cancelled, naming its parties and amount
    let events = block_events(&ledger, &cancels, &codes);
    assert_eq!(
        events
            .iter()
            .map(|e| (e.kind, e.id, e.payer, e.payee, e.amount))
            .collect::<Vec<_>>(),
        vec![(EventKind::Cancelled, 5, BANK_A, BANK_B, 1)]
    );
    assert_eq!(
        (events[0].payer_balance, events[0].payee_balance),
        (100, 100)
    );
    assert_eq!(
        block_stamp(&ledger),
        BlockStamp {
            time_ms: at(FRIDAY, 13 * HOUR),
            day_ended: None
        }
    );
    // Sunday 17:59:59.999 UTC: Monday's day has not opened; Friday's has ended
    let before = at(NEXT_MONDAY, -6 * HOUR) - 1;
    ledger.execute_block(3, before, &[]);
    assert_eq!(ledger.warehouse_len(), 4);
    assert_eq!(
        block_stamp(&ledger),
        BlockStamp {
            time_ms: before,
            day_ended: Some(FRIDAY)
        }
    );
    // Sunday 18:00 UTC exactly: the urgent one first, then in acceptance order; the two
    // that bank A cannot cover wait in its queue
    ledger.execute_block(4, at(NEXT_MONDAY, -6 * HOUR), &[]);
    assert_eq!(
        opening_outcome(ledger.last_block_events()),
        vec![("settled", 3), ("queued", 1), ("queued", 2), ("settled", 4)]
    );
    assert_eq!(ledger.warehouse_len(), 0);
    assert_eq!(ledger.status(3), TxStatus::SettledAtOpening { height: 4 });
    assert_eq!(ledger.status(4), TxStatus::SettledAtOpening { height: 4 });
    assert!(ledger.is_settled(3) && !ledger.is_settled(1));
    assert!(matches!(
        ledger.status(1),
        TxStatus::Queued { position: 1, .. }
    ));
    assert_eq!(ledger.balance(BANK_A), Some(40));
    assert_eq!(
        ledger.balance(SHOP),
        Some(910),
        "the taxed payment paid its tax"
    );
    let events = block_events(&ledger, &[], &[]);
    assert_eq!(
        events.iter().map(|e| (e.kind, e.id)).collect::<Vec<_>>(),
        vec![
            (EventKind::Settled, 3),
            (EventKind::Queued, 1),
            (EventKind::Queued, 2),
            (EventKind::Settled, 4)
        ]
    );
    assert_eq!(events[3].tax, Some(90));
    // each event carries its accounts' balances at the end of the block
    for event in &events {
        assert_eq!(Some(event.payer_balance), ledger.balance(event.payer));
        assert_eq!(Some(event.payee_balance), ledger.balance(event.payee));
    }
    assert_eq!(
        events[3].tax_account_balance,
        ledger.balance(events[3].tax_account.unwrap())
    );
    assert!(!events[3].exclusive, "T2's category is taxed inclusive");
    // a copy of a warehoused record is a duplicate at every stage
    let copy = warehoused(&f, 1, BANK_A, BANK_B, 60, false, NEXT_MONDAY);
    assert_eq!(
        ledger.execute_block(5, at(NEXT_MONDAY, -5 * HOUR), &[copy]),
        vec![ResultCode::DuplicateId]
    );
    assert_eq!(ledger.sum_of_balances(), ledger.genesis_total());
}

#[test]
fn a_warehoused_payment_refused_at_its_opening_keeps_its_code() {
    let f = fixture(100);
    let mut ledger = Ledger::from_genesis(&f.genesis);
    // a taxed payment whose payer has spent its money by the opening
    let records = [
        payment(
            &f,
            1,
            TxKind::TaxedPayment,
            ALICE,
            SHOP,
            9_000,
            TxFlags::WAREHOUSED,
            NEXT_MONDAY,
        ),
        f.tx(2, TxKind::Transfer, ALICE, SHOP, 5_000),
    ];
    let codes = ledger.execute_block(1, at(FRIDAY, 12 * HOUR), &records);
    assert_eq!(codes, vec![ResultCode::Warehoused, ResultCode::Ok]);
    ledger.execute_block(2, at(NEXT_MONDAY, -6 * HOUR) + 1, &[]);
    assert_eq!(
        ledger.status(1),
        TxStatus::RejectedAtOpening {
            height: 2,
            code: ResultCode::InsufficientFunds
        }
    );
    let events = block_events(&ledger, &[], &[]);
    assert_eq!(events[0].kind, EventKind::Rejected);
    // a value date whose whole day passed without a block: refused value_date_passed
    let mut ledger = Ledger::from_genesis(&f.genesis);
    ledger.execute_block(
        1,
        at(FRIDAY, 12 * HOUR),
        &[warehoused(&f, 3, BANK_A, BANK_B, 1, false, NEXT_MONDAY)],
    );
    ledger.execute_block(2, at(NEXT_MONDAY, 17 * HOUR), &[]);
    assert_eq!(
        ledger.status(3),
        TxStatus::RejectedAtOpening {
            height: 2,
            code: ResultCode::ValueDatePassed
        }
    );
}

#[test]
fn warehoused_payments_settle_alike_after_a_restart_from_a_snapshot_and_from_a_replay() {
    let f = fixture(100);
    let genesis_hash = f.genesis.hash();
    let blocks: Vec<(u64, Vec<TxRecord>)> = vec![
        (at(FRIDAY, 12 * HOUR), friday_block(&f)),
        (at(FRIDAY, 13 * HOUR), cancel_block(&f)),
    ];
    let opening = at(NEXT_MONDAY, -6 * HOUR);
    let mut running = Ledger::from_genesis(&f.genesis);
    for (height, (time, records)) in blocks.iter().enumerate() {
        running.execute_block(height as u64 + 1, *time, records);
    }
    // the checkpoint: a snapshot taken with the payments warehoused
    let point = SnapshotPoint {
        height: 2,
        last_block_hash: [7; 32],
    };
    let bytes = running.snapshot(&genesis_hash, point);
    let (mut restored, read_point) = Ledger::restore(&bytes, &genesis_hash).unwrap();
    assert_eq!(read_point, point);
    assert_eq!(restored.state_root(), running.state_root());
    assert_eq!(restored.state_root_from_scratch(), running.state_root());
    assert_eq!(restored.warehouse_len(), 4);
    assert_eq!(
        restored.warehoused_payments(None),
        running.warehoused_payments(None)
    );
    // the log: the same blocks replayed from the genesis
    let mut replayed = Ledger::from_genesis(&f.genesis);
    for (height, (time, records)) in blocks.iter().enumerate() {
        replayed.execute_block(height as u64 + 1, *time, records);
    }
    let mut outcomes = Vec::new();
    for ledger in [&mut running, &mut restored, &mut replayed] {
        ledger.execute_block(3, opening, &[]);
        outcomes.push((
            opening_outcome(ledger.last_block_events()),
            ledger.state_root(),
            ledger.status(1),
        ));
    }
    assert_eq!(
        outcomes[0].0,
        vec![("settled", 3), ("queued", 1), ("queued", 2), ("settled", 4)]
    );
    assert_eq!(outcomes[0], outcomes[1]);
    assert_eq!(outcomes[0], outcomes[2]);
    assert_eq!(running.state_root_from_scratch(), running.state_root());
    // the warehouse is in the state root: a ledger without the warehoused payments differs
    let mut without = Ledger::from_genesis(&f.genesis);
    without.execute_block(1, at(FRIDAY, 12 * HOUR), &[]);
    without.execute_block(2, at(FRIDAY, 13 * HOUR), &[]);
    let (mut with, _) = Ledger::restore(&bytes, &genesis_hash).unwrap();
    with.execute_block(3, at(FRIDAY, 14 * HOUR), &[]);
    without.execute_block(3, at(FRIDAY, 14 * HOUR), &[]);
    assert_ne!(with.state_root(), without.state_root());
}

#[test]
fn the_end_of_day_rejects_the_unsettled_queue() {
    let f = fixture(100);
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let records = [
        f.tx(1, TxKind::Transfer, BANK_A, BANK_B, 500),
        f.tx(2, TxKind::Transfer, BANK_B, BANK_A, 50),
    ];
    let codes = ledger.execute_block(1, at(MONDAY, 10 * HOUR), &records);
    assert_eq!(codes, vec![ResultCode::Queued, ResultCode::Ok]);
    let end_of_day = at(MONDAY, 17 * HOUR);
    // just before the end of day it still waits
    ledger.execute_block(2, end_of_day - 1, &[]);
    assert!(matches!(ledger.status(1), TxStatus::Queued { .. }));
    // the first block at the end of day rejects it, with an event
    ledger.execute_block(3, end_of_day, &[]);
    assert_eq!(ledger.status(1), TxStatus::EndOfDayUnsettled { height: 3 });
    assert_eq!(ledger.queue_len(), 0);
    assert_eq!(
        ledger.last_block_events(),
        &[SettlementEvent::EndOfDayUnsettled {
            id: 1,
            payer: BANK_A,
            payee: BANK_B,
            amount: 500
        }]
    );
    let events = block_events(&ledger, &[], &[]);
    assert_eq!((events[0].kind, events[0].id), (EventKind::Expired, 1));
    assert_eq!(ledger.balance(BANK_A), Some(150), "nothing of it moved");
    assert_eq!(events[0].payer_balance, 150);
    // the block is stamped with the day it ended
    assert_eq!(
        block_stamp(&ledger),
        BlockStamp {
            time_ms: end_of_day,
            day_ended: Some(MONDAY)
        }
    );
    // its id stays used
    assert_eq!(
        ledger.execute_block(
            4,
            at(MONDAY + 1, 10 * HOUR),
            &[f.tx(1, TxKind::Transfer, BANK_A, BANK_B, 5)]
        ),
        vec![ResultCode::DuplicateId]
    );
    // a payment queued just after the end of day is refused: the day has closed
    assert_eq!(
        code_at(
            &f,
            end_of_day + 1,
            f.tx(9, TxKind::Transfer, BANK_A, BANK_B, 500)
        ),
        ResultCode::BusinessDayClosed
    );
}

#[test]
fn a_genesis_without_a_calendar_keeps_the_day_cut_off_and_the_expired_status() {
    let f = Fixture::banks(2, 100);
    let mut ledger = Ledger::from_genesis(&f.genesis);
    assert!(ledger.calendar().is_none());
    let codes = ledger.execute_block(
        1,
        at(SATURDAY, 10 * HOUR),
        &[f.tx(1, TxKind::Transfer, BANK_A, BANK_A + 1, 500)],
    );
    assert_eq!(codes, vec![ResultCode::Queued]);
    ledger.execute_block(2, at(SATURDAY + 1, 0), &[]);
    assert_eq!(ledger.status(1), TxStatus::Expired { height: 2 });
}

/// A node stopped between the acceptance of warehoused payments and their value date's
/// opening, and restarted (from its checkpoint and its log) after it, applies them at its
/// first block in priority order;
/// a replay of its log alone reaches the same state. The node runs on the wall clock, so the
/// calendar is made for now: the next day opens a few seconds after the test starts.
#[test]
fn a_node_stopped_before_the_opening_settles_its_warehoused_payments_at_its_next_block() {
    use crossbeam::channel::unbounded;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    use tally_engine::node::{checkpoints_dir, replay_dir, Node, NodeConfig};
    let wall_ms = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let soon = wall_ms() + 8_000;
    let value_date = soon / DAY_MS + 1;
    // the evening before the value date, as late as needs be (the end of day before it,
    // 1 ms earlier, must be after midnight)
    let opening_ms = (soon as i64 - (value_date * DAY_MS) as i64).max(2 - DAY_MS as i64);
    let open_at = (value_date * DAY_MS) as i64 + opening_ms;
    let open_at = open_at as u64;
    let mut f = fixture(100);
    f.genesis.settlement.calendar = Some(CalendarSpec {
        opening_ms,
        customer_cut_off_ms: None,
        interbank_cut_off_ms: None,
        liquidity_cut_off_ms: None,
        // the day before ends 1 ms before this one opens
        end_of_day_ms: opening_ms + DAY_MS as i64 - 1,
        closed_weekdays: Vec::new(),
        holidays: Vec::new(),
        warehouse_days: 1,
        warehouse_capacity: tally_engine::calendar::WAREHOUSE_CAPACITY_MAX,
    });
    f.genesis.validate().expect("a calendar of today");
    let dir = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::new(dir.path().to_path_buf());
    config.checkpoint_interval_blocks = 1;
    config.checkpoint_interval_ms = 0;
    config.checkpoint_log_bytes = 0;
    let submit = |config: &NodeConfig, records: &[TxRecord]| -> Vec<ResultCode> {
        let node = Node::start(&f.genesis, config.clone()).unwrap();
        let (reply, acks) = unbounded();
        node.handle().submit(records, &reply).unwrap();
        let codes = records
            .iter()
            .map(|_| acks.recv_timeout(Duration::from_secs(60)).unwrap().code)
            .collect();
        let outcome = node.shutdown();
        assert_eq!(outcome.fatal, None);
        codes
    };
    let warehouse = [
        warehoused(&f, 1, BANK_A, BANK_B, 60, false, value_date),
        warehoused(&f, 2, BANK_A, BANK_B, 60, false, value_date),
        warehoused(&f, 3, BANK_A, BANK_B, 60, true, value_date),
    ];
    let codes = submit(&config, &warehouse);
    assert_eq!(
        codes,
        vec![ResultCode::Warehoused; 3],
        "accepted before the opening"
    );
    assert!(std::fs::read_dir(checkpoints_dir(&config))
        .unwrap()
        .next()
        .is_some());
    while wall_ms() <= open_at {
        std::thread::sleep(Duration::from_millis(50));
    }
    // restarted from its checkpoint: the first block after the opening applies them
    let codes = submit(&config, &[f.tx(4, TxKind::Pledge, CENTRAL_BANK, BANK_A, 1)]);
    assert_eq!(codes, vec![ResultCode::Ok]);
    let recovered = replay_dir(&f.genesis, &config).unwrap();
    let ledger = &recovered.ledger;
    assert!(matches!(
        ledger.status(3),
        TxStatus::SettledAtOpening { .. }
    ));
    assert!(matches!(
        ledger.status(1),
        TxStatus::Queued { position: 1, .. }
    ));
    assert!(matches!(
        ledger.status(2),
        TxStatus::Queued { position: 2, .. }
    ));
    assert_eq!(ledger.balance(BANK_A), Some(41));
    // the log alone gives the same state
    let root = ledger.state_root();
    std::fs::remove_dir_all(checkpoints_dir(&config)).unwrap();
    let replayed = replay_dir(&f.genesis, &config).unwrap();
    assert_eq!(replayed.ledger.state_root(), root);
}

#[test]
fn a_cancelled_queued_payment_is_an_event_and_a_cancel_that_fails_is_none() {
    let f = fixture(100);
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let queued = [f.tx(1, TxKind::Transfer, BANK_A, BANK_B, 500)];
    let codes = ledger.execute_block(1, at(MONDAY, 10 * HOUR), &queued);
    assert_eq!(codes, vec![ResultCode::Queued]);
    let cancel = |id, target| {
        f.custom(BANK_A, id, TxKind::QueueCancel, BANK_A, 0, 0, |t| {
            t.related_id = target
        })
    };
    let records = [cancel(2, 1), cancel(3, 1)];
    let codes = ledger.execute_block(2, at(MONDAY, 11 * HOUR), &records);
    assert_eq!(
        codes,
        vec![ResultCode::Ok, ResultCode::QueuedPaymentNotFound]
    );
    let events = block_events(&ledger, &records, &codes);
    assert_eq!(
        events
            .iter()
            .map(|e| (e.kind, e.id, e.payer, e.payee, e.amount))
            .collect::<Vec<_>>(),
        vec![(EventKind::Cancelled, 1, BANK_A, BANK_B, 500)],
        "one event, of the payment cancelled"
    );
    assert_eq!(events[0].payer_balance, 100, "nothing moved");
    // the next block remembers no cancel
    let codes = ledger.execute_block(3, at(MONDAY, 12 * HOUR), &[cancel(4, 1)]);
    assert_eq!(codes, vec![ResultCode::QueuedPaymentNotFound]);
    assert!(block_events(&ledger, &[cancel(4, 1)], &codes).is_empty());
}

#[test]
fn the_warehouse_refuses_past_the_capacity_its_calendar_sets() {
    let mut calendar = t2_calendar();
    calendar.warehouse_capacity = 2;
    let f = Fixture::from_table(
        &[
            (CENTRAL_BANK, Role::CentralBank, 0, None),
            (TAX, Role::TaxAuthority, 0, None),
            (BANK_A, Role::Bank, 1_000, None),
            (BANK_B, Role::Bank, 1_000, None),
        ],
        |g| g.settlement.calendar = Some(calendar.clone()),
    );
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let ahead = |id| warehoused(&f, id, BANK_A, BANK_B, 10, false, NEXT_MONDAY);
    let friday_noon = at(FRIDAY, 12 * HOUR);
    let codes = ledger.execute_block(1, friday_noon, &[ahead(1), ahead(2), ahead(3)]);
    assert_eq!(
        codes,
        vec![
            ResultCode::Warehoused,
            ResultCode::Warehoused,
            ResultCode::WarehouseFull
        ]
    );
    assert_eq!(ResultCode::WarehouseFull.name(), "warehouse_full");
    assert_eq!(ledger.warehouse_len(), 2);
    // a place freed by a cancel is taken again
    let cancel = f.custom(BANK_A, 4, TxKind::QueueCancel, BANK_A, 0, 0, |t| {
        t.related_id = 1
    });
    let codes = ledger.execute_block(2, friday_noon + 1, &[cancel, ahead(5), ahead(6)]);
    assert_eq!(
        codes,
        vec![
            ResultCode::Ok,
            ResultCode::Warehoused,
            ResultCode::WarehouseFull
        ]
    );
    // the capacity is checked when the genesis is read, naming its field
    let mut genesis = f.genesis.clone();
    for bad in [0, tally_engine::calendar::WAREHOUSE_CAPACITY_MAX + 1] {
        genesis
            .settlement
            .calendar
            .as_mut()
            .unwrap()
            .warehouse_capacity = bad;
        let error = genesis.validate().unwrap_err().to_string();
        assert!(
            error.contains("settlement.calendar.warehouse_capacity")
                && error.contains(&format!("{bad} payments is not within 1 and 1048576")),
            "{error}"
        );
    }
    // left out of the table, it is the most (and a genesis's TOML leaves the default out)
    let text = r#"
opening_ms = 0
end_of_day_ms = 3600000
"#;
    let read: CalendarSpec = toml::from_str(text).unwrap();
    assert_eq!(
        read.warehouse_capacity,
        tally_engine::calendar::WAREHOUSE_CAPACITY_MAX
    );
    assert!(!toml::to_string(&read)
        .unwrap()
        .contains("warehouse_capacity"));
}
