//! Tax bases and rounding (docs/SETTLEMENT.md, "Tax"): the examples of tax authorities'
//! guidance reproduced to the minor unit, tax-exclusive invoices judged on net + tax, refunds
//! reversing tax by the payment's own rule, rate records that change or keep a basis, and a
//! property test over random prices, rates, bases and rounding rules.

mod common;

use common::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use tally_engine::genesis::{Role, TaxRateSpec, DAY_MS};
use tally_engine::ledger::Ledger;
use tally_engine::net::query::tx_status_info;
use tally_engine::result::ResultCode;
use tally_engine::tax::{Rounding, TaxBasis};
use tally_engine::tx::{TxFlags, TxKind, TxRecord};

const SUB: u64 = 201;

/// The central bank, the tax authority, a bank, two consumers with `consumer_balance` each, a
/// merchant with nothing and its tax sub-account; `rates` as the genesis rate table.
fn fixture(consumer_balance: u64, rates: Vec<TaxRateSpec>) -> Fixture {
    Fixture::from_table(
        &[
            (CENTRAL_BANK, Role::CentralBank, 0, None),
            (TAX, Role::TaxAuthority, 0, None),
            (BANK_A, Role::Bank, 0, None),
            (ALICE, Role::Consumer, consumer_balance, Some(BANK_A)),
            (BOB, Role::Consumer, consumer_balance, Some(BANK_A)),
            (SHOP, Role::Merchant, 0, Some(BANK_A)),
            (SUB, Role::TaxSubAccount, 0, None),
        ],
        |g| {
            g.accounts[5].tax_sub_account = Some(SUB);
            g.tax_rates = rates;
        },
    )
}

fn pay(f: &Fixture, id: u128, payer: u64, category: u32, amount: u64) -> TxRecord {
    f.custom(payer, id, TxKind::TaxedPayment, payer, SHOP, amount, |t| {
        t.category = category
    })
}

fn refund(f: &Fixture, id: u128, payment: u128, payer: u64, amount: u64) -> TxRecord {
    f.custom(SHOP, id, TxKind::Refund, SHOP, payer, amount, |t| {
        t.related_id = payment
    })
}

fn rate_record(
    f: &Fixture,
    id: u128,
    category: u32,
    rate_bp: u32,
    from: u64,
    flags: u16,
) -> TxRecord {
    f.custom(TAX, id, TxKind::SetTaxRate, TAX, 0, 0, |t| {
        t.category = category;
        t.reserved_a = rate_bp;
        t.amount = from;
        t.flags = TxFlags(flags);
    })
}

fn balances(ledger: &Ledger) -> [i64; 4] {
    [ALICE, SHOP, TAX, SUB].map(|account| ledger.balance(account).unwrap())
}

/// One example of docs/SETTLEMENT.md's table of tax authorities' examples.
struct Published {
    what: &'static str,
    rate_bp: u32,
    basis: TaxBasis,
    rounding: Rounding,
    /// What the record carries: the price (inclusive), the net (exclusive), the gross.
    amount: u64,
    tax: u64,
    /// What the payer is debited and the payee credited.
    debited: u64,
    credited: u64,
}

/// docs/SETTLEMENT.md, "Examples from tax authorities' guidance": every row, in order.
const PUBLISHED: [Published; 9] = [
    Published {
        what: "IRAS: a GST-inclusive price of $7.00 at 7% holds 7/107 x 7.00 = 0.457 of GST",
        rate_bp: 700,
        basis: TaxBasis::Inclusive,
        rounding: Rounding::HalfUp,
        amount: 700,
        tax: 46,
        debited: 700,
        credited: 654,
    },
    Published {
        what: "IRAS: a GST-inclusive price of $6.90 at 7% holds 7/107 x 6.90 = 0.451 of GST",
        rate_bp: 700,
        basis: TaxBasis::Inclusive,
        rounding: Rounding::HalfUp,
        amount: 690,
        tax: 45,
        debited: 690,
        credited: 645,
    },
    Published {
        what: "IRAS tax fraction 9/109: a GST-inclusive price of $109.00 at 9% holds $9.00",
        rate_bp: 900,
        basis: TaxBasis::Inclusive,
        rounding: Rounding::HalfUp,
        amount: 10_900,
        tax: 900,
        debited: 10_900,
        credited: 10_000,
    },
    Published {
        what: "IRAS tax fraction 9/109: $19.99 at 9% holds 9/109 x 19.99 = 1.6505 of GST",
        rate_bp: 900,
        basis: TaxBasis::Inclusive,
        rounding: Rounding::HalfUp,
        amount: 1_999,
        tax: 165,
        debited: 1_999,
        credited: 1_834,
    },
    Published {
        what: "HMRC: an invoice of net GBP 12.34 at 20%, VAT 2.468 rounded to the nearer penny",
        rate_bp: 2_000,
        basis: TaxBasis::Exclusive,
        rounding: Rounding::HalfUp,
        amount: 1_234,
        tax: 247,
        debited: 1_481,
        credited: 1_234,
    },
    Published {
        what: "HMRC: the same invoice, VAT payable rounded down to the whole penny",
        rate_bp: 2_000,
        basis: TaxBasis::Exclusive,
        rounding: Rounding::Down,
        amount: 1_234,
        tax: 246,
        debited: 1_480,
        credited: 1_234,
    },
    Published {
        what: "HMRC: an invoice of net GBP 100.00 at 20% carries VAT of GBP 20.00",
        rate_bp: 2_000,
        basis: TaxBasis::Exclusive,
        rounding: Rounding::HalfUp,
        amount: 10_000,
        tax: 2_000,
        debited: 12_000,
        credited: 10_000,
    },
    Published {
        what: "IRAS: 10% withholding on a royalty of S$10,000.00 paid to a non-resident",
        rate_bp: 1_000,
        basis: TaxBasis::Gross,
        rounding: Rounding::Down,
        amount: 1_000_000,
        tax: 100_000,
        debited: 1_000_000,
        credited: 900_000,
    },
    Published {
        what: "10% withholding on S$1,234.65: 123.465, rounded half to even",
        rate_bp: 1_000,
        basis: TaxBasis::Gross,
        rounding: Rounding::HalfEven,
        amount: 123_465,
        tax: 12_346,
        debited: 123_465,
        credited: 111_119,
    },
];

#[test]
fn published_examples_are_reproduced_to_the_minor_unit() {
    for (index, example) in PUBLISHED.iter().enumerate() {
        let category = index as u32 + 1;
        let f = fixture(
            10_000_000,
            vec![TaxRateSpec::new(
                category,
                example.rate_bp,
                example.basis,
                example.rounding,
            )],
        );
        let mut ledger = Ledger::from_genesis(&f.genesis);
        let before = balances(&ledger);
        let codes = ledger.execute_block(1, 1_000, &[pay(&f, 1, ALICE, category, example.amount)]);
        assert_eq!(codes, vec![ResultCode::Ok], "{}", example.what);
        let after = balances(&ledger);
        assert_eq!(
            before[0] - after[0],
            example.debited as i64,
            "payer: {}",
            example.what
        );
        assert_eq!(
            after[1] - before[1],
            example.credited as i64,
            "payee: {}",
            example.what
        );
        assert_eq!(
            after[2] - before[2],
            example.tax as i64,
            "tax: {}",
            example.what
        );
        assert_eq!(
            example.debited,
            example.credited + example.tax,
            "{}",
            example.what
        );
        let info = tx_status_info(&ledger, 1).taxed.expect("a taxed payment");
        assert_eq!(
            (info.tax, info.debited, info.net, info.basis.as_str()),
            (
                example.tax,
                example.debited,
                example.credited,
                example.basis.name()
            ),
            "{}",
            example.what
        );
        // a full refund gives everything back, the tax included
        let codes = ledger.execute_block(2, 2_000, &[refund(&f, 2, 1, ALICE, example.amount)]);
        assert_eq!(codes, vec![ResultCode::Ok], "refund: {}", example.what);
        assert_eq!(balances(&ledger), before, "refund: {}", example.what);
    }
}

#[test]
fn a_tax_exclusive_invoice_debits_net_plus_tax_and_is_refused_on_that_sum() {
    // net 12.34 at 20%, half up: the payer needs 14.81
    let rates = vec![TaxRateSpec::new(
        1,
        2_000,
        TaxBasis::Exclusive,
        Rounding::HalfUp,
    )];
    let f = fixture(1_480, rates);
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let root = ledger.state_root();
    let codes = ledger.execute_block(1, 1_000, &[pay(&f, 1, ALICE, 1, 1_234)]);
    assert_eq!(
        codes,
        vec![ResultCode::InsufficientFunds],
        "the net alone would fit, net + tax does not"
    );
    assert_eq!(
        ledger.state_root(),
        root,
        "a refused payment changes nothing"
    );
    let codes = ledger.execute_block(
        2,
        2_000,
        &[
            f.tx(2, TxKind::Transfer, BOB, ALICE, 1),
            pay(&f, 3, ALICE, 1, 1_234),
        ],
    );
    assert_eq!(codes, vec![ResultCode::Ok; 2]);
    assert_eq!(balances(&ledger), [0, 1_234, 247, 0]);
    let info = tx_status_info(&ledger, 3).taxed.unwrap();
    assert_eq!(
        (info.amount, info.debited, info.net, info.tax),
        (1_234, 1_481, 1_234, 247)
    );
    assert_eq!(
        (info.basis.as_str(), info.rounding.as_str()),
        ("exclusive", "half_up")
    );
}

#[test]
fn refunds_in_parts_reverse_the_tax_by_the_payment_basis_and_rounding() {
    let f = fixture(
        100_000,
        vec![
            TaxRateSpec::new(1, 900, TaxBasis::Inclusive, Rounding::HalfUp),
            TaxRateSpec::new(2, 2_000, TaxBasis::Exclusive, Rounding::HalfUp),
        ],
    );
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let start = balances(&ledger);
    ledger.execute_block(
        1,
        1_000,
        &[pay(&f, 1, ALICE, 1, 1_999), pay(&f, 2, ALICE, 2, 1_234)],
    );
    // 1.65 of GST in 19.99; 2.47 of VAT on 12.34
    assert_eq!(ledger.tax_payment(1).unwrap().tax, 165);
    assert_eq!(ledger.tax_payment(2).unwrap().tax, 247);
    // the tax authority raises both rates: refunds keep each payment's own rate
    ledger.execute_block(
        2,
        2_000,
        &[
            rate_record(&f, 3, 1, 2_500, 3_000, 0),
            rate_record(&f, 4, 2, 2_500, 3_000, 0),
        ],
    );
    let step = |ledger: &mut Ledger, height: u64, tx: TxRecord| {
        let before = balances(ledger);
        let codes = ledger.execute_block(height, height * 1_000 + 3_000, &[tx]);
        assert_eq!(codes, vec![ResultCode::Ok]);
        let after = balances(ledger);
        [0, 1, 2].map(|i| after[i] - before[i])
    };
    // 10.00 of the 19.99 price: round(10.00 x 9/109 = 0.8257) = 0.83 of GST comes back
    assert_eq!(
        step(&mut ledger, 3, refund(&f, 5, 1, ALICE, 1_000)),
        [1_000, -917, -83]
    );
    // the rest, 9.99: the GST reversed adds up to exactly 1.65
    assert_eq!(
        step(&mut ledger, 4, refund(&f, 6, 1, ALICE, 999)),
        [999, -917, -82]
    );
    // net 6.00 of the invoice: 1.20 of VAT comes back with it
    assert_eq!(
        step(&mut ledger, 5, refund(&f, 7, 2, ALICE, 600)),
        [720, -600, -120]
    );
    // net 6.34 more: round(12.34 x 20% = 2.468) = 2.47 in all, 1.27 now
    assert_eq!(
        step(&mut ledger, 6, refund(&f, 8, 2, ALICE, 634)),
        [761, -634, -127]
    );
    assert_eq!(balances(&ledger), start);
    for id in [1, 2] {
        let payment = ledger.tax_payment(id).unwrap();
        assert_eq!(
            (payment.refunded_amount, payment.refunded_tax),
            (payment.amount, payment.tax)
        );
    }
    let codes = ledger.execute_block(9, 20_000, &[refund(&f, 9, 2, ALICE, 1)]);
    assert_eq!(codes, vec![ResultCode::RefundExceedsPayment]);
}

#[test]
fn events_name_each_refunds_own_reversed_tax_when_two_share_a_block() {
    use tally_engine::events::{block_events, EventKind};
    let f = fixture(
        100_000,
        vec![TaxRateSpec::new(
            1,
            900,
            TaxBasis::Inclusive,
            Rounding::HalfUp,
        )],
    );
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let records = [pay(&f, 1, ALICE, 1, 1_999)];
    let codes = ledger.execute_block(1, 1_000, &records);
    let events = block_events(&ledger, &records, &codes);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Settled);
    assert_eq!(
        (events[0].tax, events[0].tax_account),
        (Some(165), Some(TAX))
    );
    // both parts of the refund in one block: 0.83 and then 0.82 of GST, as in two blocks
    let records = [refund(&f, 5, 1, ALICE, 1_000), refund(&f, 6, 1, ALICE, 999)];
    let codes = ledger.execute_block(2, 2_000, &records);
    assert_eq!(codes, vec![ResultCode::Ok; 2]);
    let events = block_events(&ledger, &records, &codes);
    let reversed: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.kind,
                e.id,
                e.related_id,
                e.payer,
                e.payee,
                e.amount,
                e.tax,
                e.tax_account,
            )
        })
        .collect();
    assert_eq!(
        reversed,
        vec![
            (
                EventKind::Refunded,
                5,
                Some(1),
                SHOP,
                ALICE,
                1_000,
                Some(83),
                Some(TAX)
            ),
            (
                EventKind::Refunded,
                6,
                Some(1),
                SHOP,
                ALICE,
                999,
                Some(82),
                Some(TAX)
            ),
        ]
    );
}

#[test]
fn a_rate_record_changes_the_basis_and_rounding_or_keeps_them() {
    let rates = vec![TaxRateSpec::new(
        1,
        900,
        TaxBasis::Inclusive,
        Rounding::HalfUp,
    )];
    let f = fixture(1_000_000, rates);
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let exclusive_down = TxFlags::TAX_BASIS_EXCLUSIVE | TxFlags::TAX_ROUND_DOWN;
    let codes = ledger.execute_block(
        1,
        1_000,
        &[
            // from 10 s on: 20% added to the net, rounded down
            rate_record(&f, 1, 1, 2_000, 10_000, exclusive_down),
            // from 20 s on: 10%, keeping the basis and rounding in force then
            rate_record(&f, 2, 1, 1_000, 20_000, 0),
            // a new category must name both
            rate_record(&f, 3, 7, 500, 5_000, 0),
            rate_record(&f, 4, 7, 500, 5_000, TxFlags::TAX_BASIS_GROSS),
            rate_record(&f, 5, 7, 500, 5_000, TxFlags::TAX_ROUND_HALF_EVEN),
            rate_record(
                &f,
                6,
                7,
                500,
                5_000,
                TxFlags::TAX_BASIS_GROSS | TxFlags::TAX_ROUND_HALF_EVEN,
            ),
            // a record naming two bases is malformed
            rate_record(
                &f,
                7,
                1,
                500,
                5_000,
                TxFlags::TAX_BASIS_GROSS | TxFlags::TAX_BASIS_INCLUSIVE,
            ),
            rate_record(
                &f,
                8,
                1,
                500,
                5_000,
                TxFlags::TAX_ROUND_DOWN | TxFlags::TAX_ROUND_HALF_UP,
            ),
        ],
    );
    assert_eq!(
        codes,
        vec![
            ResultCode::Ok,
            ResultCode::Ok,
            ResultCode::TaxBasisNotNamed,
            ResultCode::TaxRoundingNotNamed,
            ResultCode::TaxBasisNotNamed,
            ResultCode::Ok,
            ResultCode::MalformedTaxBasisConflict,
            ResultCode::MalformedTaxRoundingConflict,
        ]
    );
    let rate = |time| {
        let rate = ledger.tax_rate(1, time).unwrap();
        (rate.rate_bp, rate.basis, rate.rounding)
    };
    assert_eq!(rate(9_999), (900, TaxBasis::Inclusive, Rounding::HalfUp));
    assert_eq!(rate(10_000), (2_000, TaxBasis::Exclusive, Rounding::Down));
    assert_eq!(rate(20_000), (1_000, TaxBasis::Exclusive, Rounding::Down));
    // 12.34 under each rate: 1.02 inside the price, then 2.468 and 1.234 added, rounded down
    for (height, time, id, debited, tax) in [
        (2, 5_000, 11, 1_234, 102),
        (3, 10_000, 12, 1_234 + 246, 246),
        (4, 20_000, 13, 1_234 + 123, 123),
    ] {
        let before = balances(&ledger);
        let codes = ledger.execute_block(height, time, &[pay(&f, id, ALICE, 1, 1_234)]);
        assert_eq!(codes, vec![ResultCode::Ok]);
        let after = balances(&ledger);
        assert_eq!((before[0] - after[0], after[2] - before[2]), (debited, tax));
    }
    // the report has a row per basis of the category, each reconciling with its payments
    let rows = ledger.tax_report(Some(SHOP), 0, 0);
    let summary: Vec<(u32, TaxBasis, u64, u128, u128)> = rows
        .iter()
        .map(|row| {
            let t = row.totals;
            (row.category, row.basis, t.payments, t.gross, t.tax)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, TaxBasis::Inclusive, 1, 1_234, 102),
            (1, TaxBasis::Exclusive, 2, 1_480 + 1_357, 246 + 123),
        ]
    );
    let reported: i128 = rows.iter().map(|row| row.totals.net_tax()).sum();
    assert_eq!(reported, i128::from(ledger.balance(TAX).unwrap()));
}

/// Whether `tax` is the exact rational `numerator / denominator` rounded by `rule`, stated
/// from the rule's definition (not from the engine's division).
fn is_rounded(tax: u64, numerator: u128, denominator: u128, rule: Rounding) -> bool {
    let (t, n, d) = (u128::from(tax), numerator, denominator);
    match rule {
        // t <= n/d < t + 1
        Rounding::Down => t * d <= n && n < (t + 1) * d,
        // t <= n/d + 1/2 < t + 1
        Rounding::HalfUp => 2 * t * d <= 2 * n + d && 2 * n + d < 2 * (t + 1) * d,
        // |t - n/d| <= 1/2, and t even when it is exactly 1/2
        Rounding::HalfEven => {
            let distance = (2 * t * d).abs_diff(2 * n);
            distance < d || (distance == d && t % 2 == 0)
        }
    }
}

/// The exact tax of `amount` as a fraction: (numerator, denominator).
fn exact_tax(amount: u64, rate_bp: u32, basis: TaxBasis) -> (u128, u128) {
    let numerator = u128::from(amount) * u128::from(rate_bp);
    match basis {
        TaxBasis::Inclusive => (numerator, 10_000 + u128::from(rate_bp)),
        TaxBasis::Exclusive | TaxBasis::Gross => (numerator, 10_000),
    }
}

fn rule_strategy() -> impl Strategy<Value = (u32, TaxBasis, Rounding, bool)> {
    (
        prop_oneof![Just(0u32), Just(10_000u32), 0u32..=10_000],
        prop::sample::select(TaxBasis::ALL.to_vec()),
        prop::sample::select(Rounding::ALL.to_vec()),
        any::<bool>(),
    )
}

/// One payment: (payer is Alice, category 1 or 2, amount, refund parts as weights, how many
/// of the parts are refunded, day of the payment, days after it the refunds come).
type PaymentPlan = (bool, bool, u64, Vec<u64>, usize, u64, u64);

fn payment_strategy() -> impl Strategy<Value = PaymentPlan> {
    (
        any::<bool>(),
        any::<bool>(),
        prop_oneof![1u64..=200, 1u64..=1_000_000, 1u64..=1_000_000_000_000],
        prop::collection::vec(1u64..=100, 1..5),
        0usize..=4,
        0u64..4,
        0u64..3,
    )
}

/// Splits `amount` into parts in proportion to `weights` (the last takes the remainder);
/// parts that come out 0 are dropped.
fn split(amount: u64, weights: &[u64]) -> Vec<u64> {
    let total: u64 = weights.iter().sum();
    let mut parts: Vec<u64> = weights[..weights.len() - 1]
        .iter()
        .map(|w| (u128::from(amount) * u128::from(*w) / u128::from(total)) as u64)
        .collect();
    parts.push(amount - parts.iter().sum::<u64>());
    parts.retain(|part| *part > 0);
    parts
}

proptest! {
    #![proptest_config(proptest_config("tax_holds_for_random_prices_rates_bases_and_rounding", 96))]
    /// Over random prices, rates from 0 to 100%, bases, rounding rules and sub-account
    /// regimes: money is conserved; every payment's tax is the exact rational value rounded by
    /// its rule and moves exactly as its basis says; refunds in random parts reverse, so far,
    /// the tax of what was refunded so far, and all of them exactly the tax collected; and
    /// for every period of business days the tax report equals the tax accounts' movement.
    #[test]
    fn tax_holds_for_random_prices_rates_bases_and_rounding(
        rules in [rule_strategy(), rule_strategy()],
        plans in prop::collection::vec(payment_strategy(), 1..8),
    ) {
        let rates: Vec<TaxRateSpec> = rules
            .iter()
            .enumerate()
            .map(|(i, &(rate_bp, basis, rounding, to_sub_account))| TaxRateSpec {
                to_sub_account,
                ..TaxRateSpec::new(i as u32 + 1, rate_bp, basis, rounding)
            })
            .collect();
        let f = fixture(10_000_000_000_000_000, rates);
        let mut ledger = Ledger::from_genesis(&f.genesis);
        let total = ledger.sum_of_balances();
        // what each block does, by business day and then order: (day, payment plan index,
        // refund part index or None for the payment itself)
        let mut steps: Vec<(u64, usize, Option<usize>)> = Vec::new();
        let mut parts_of: Vec<Vec<u64>> = Vec::new();
        for (index, plan) in plans.iter().enumerate() {
            let (_, _, amount, weights, refunded, day, later) = plan;
            steps.push((*day, index, None));
            let parts = split(*amount, weights);
            for part in 0..(*refunded).min(parts.len()) {
                steps.push((day + later + part as u64 % 2, index, Some(part)));
            }
            parts_of.push(parts);
        }
        // a refund comes after its payment: same day, later order
        steps.sort_by_key(|&(day, index, part)| (day, index, part.map_or(0, |p| p + 1)));
        let tax_accounts = |ledger: &Ledger| {
            i128::from(ledger.balance(TAX).unwrap()) + i128::from(ledger.balance(SUB).unwrap())
        };
        let last_day = steps.iter().map(|step| step.0).max().unwrap();
        // tax accounts' balance at the end of each business day
        let mut at_day_end: BTreeMap<u64, i128> = BTreeMap::new();
        let mut refunded: Vec<(u64, u64)> = vec![(0, 0); plans.len()];
        for (height, &(day, index, part)) in steps.iter().enumerate() {
            let (alice, second, amount, ..) = plans[index];
            let payer = if alice { ALICE } else { BOB };
            let category = if second { 2 } else { 1 };
            let (rate_bp, basis, rounding, to_sub) = rules[category as usize - 1];
            let tax_account = if to_sub { SUB } else { TAX };
            let payment_id = index as u128 + 1;
            let id = 1_000 + height as u128;
            let record = match part {
                None => pay(&f, payment_id, payer, category, amount),
                Some(part) => refund(&f, id, payment_id, payer, parts_of[index][part]),
            };
            let before = [payer, SHOP, tax_account].map(|a| ledger.balance(a).unwrap());
            let time = day * DAY_MS + 1_000 + height as u64;
            let codes = ledger.execute_block(height as u64 + 1, time, &[record]);
            prop_assert_eq!(codes, vec![ResultCode::Ok], "step {:?}", (day, index, part));
            prop_assert_eq!(ledger.sum_of_balances(), total, "money is conserved");
            let after = [payer, SHOP, tax_account].map(|a| ledger.balance(a).unwrap());
            let moved = [0, 1, 2].map(|i| after[i] - before[i]);
            let payment = *ledger.tax_payment(payment_id).unwrap();
            match part {
                None => {
                    let (n, d) = exact_tax(amount, rate_bp, basis);
                    prop_assert!(
                        is_rounded(payment.tax, n, d, rounding),
                        "tax {} is not {}/{} rounded {}", payment.tax, n, d, rounding
                    );
                    let tax = payment.tax as i64;
                    let amount = amount as i64;
                    let expected = match basis {
                        TaxBasis::Exclusive => [-(amount + tax), amount, tax],
                        TaxBasis::Inclusive | TaxBasis::Gross => [-amount, amount - tax, tax],
                    };
                    prop_assert_eq!(moved, expected, "{} {}", basis, rounding);
                }
                Some(part) => {
                    let (so_far, reversed_before) = refunded[index];
                    let so_far = so_far + parts_of[index][part];
                    let reversed = payment.refunded_tax;
                    if so_far == amount {
                        prop_assert_eq!(reversed, payment.tax, "a full refund reverses it all");
                    } else {
                        let (n, d) = exact_tax(so_far, rate_bp, basis);
                        prop_assert!(is_rounded(reversed, n, d, rounding));
                    }
                    let back = (reversed - reversed_before) as i64;
                    let part = parts_of[index][part] as i64;
                    let expected = match basis {
                        TaxBasis::Exclusive => [part + back, -part, -back],
                        TaxBasis::Inclusive | TaxBasis::Gross => [part, -(part - back), -back],
                    };
                    prop_assert_eq!(moved, expected, "{} {}", basis, rounding);
                    refunded[index] = (so_far, reversed);
                }
            }
            at_day_end.insert(day, tax_accounts(&ledger));
        }
        // refunded in full: every part of the payment came back with all its tax
        for (index, plan) in plans.iter().enumerate() {
            let payment = ledger.tax_payment(index as u128 + 1).unwrap();
            if plan.4 >= parts_of[index].len() {
                prop_assert_eq!(
                    (payment.refunded_amount, payment.refunded_tax),
                    (payment.amount, payment.tax)
                );
            }
        }
        // the report of any period equals the tax accounts' movement over it
        let end_of = |day: u64| {
            at_day_end.range(..=day).next_back().map_or(0, |(_, balance)| *balance)
        };
        for from in 0..=last_day {
            for to in from..=last_day {
                let reported: i128 = ledger
                    .tax_report(None, from, to)
                    .iter()
                    .map(|row| row.totals.net_tax())
                    .sum();
                let start = if from == 0 { 0 } else { end_of(from - 1) };
                prop_assert_eq!(reported, end_of(to) - start, "days {}..={}", from, to);
            }
        }
    }
}
