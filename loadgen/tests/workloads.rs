//! The named workloads do what they claim: ubin squeezes liquidity so that interbank
//! payments queue (and payers act on queued payments); vat pays merchants tax-inclusive retail
//! prices and tax-exclusive business invoices and refunds some of those payments.

use tally_loadgen::{presign, Population, WorkloadName};
use tally_protocol::tx::TxKind;

fn kinds(workload: WorkloadName, count: usize) -> std::collections::BTreeMap<TxKind, usize> {
    let population = Population::generate(&workload.population(11, 5));
    let records = presign(&population, &workload.mix(11, 0), 0, count);
    let mut kinds = std::collections::BTreeMap::new();
    for record in &records {
        *kinds.entry(record.kind().unwrap()).or_insert(0) += 1;
    }
    kinds
}

#[test]
fn ubin_is_interbank_with_queue_operations_and_central_bank_liquidity() {
    let kinds = kinds(WorkloadName::Ubin, 20_000);
    println!("ubin kinds (seed 11): {kinds:?}");
    assert!(kinds[&TxKind::Transfer] > 17_000);
    assert!(kinds[&TxKind::Pledge] + kinds[&TxKind::Redeem] > 400);
    let queue_ops: usize = [
        TxKind::QueueHold,
        TxKind::QueueRelease,
        TxKind::QueueCancel,
        TxKind::QueueReprioritise,
    ]
    .iter()
    .map(|kind| kinds.get(kind).copied().unwrap_or(0))
    .sum();
    assert!(queue_ops > 400, "{queue_ops} queue operations");
    assert!(!kinds.contains_key(&TxKind::TaxedPayment));
}

#[test]
fn vat_is_taxed_retail_with_refunds() {
    let kinds = kinds(WorkloadName::Vat, 20_000);
    println!("vat kinds (seed 11): {kinds:?}");
    assert!(kinds[&TxKind::TaxedPayment] > 17_000);
    assert!(kinds[&TxKind::Refund] > 1_500);
}

#[test]
fn vat_prices_retail_tax_inclusive_and_invoices_businesses_tax_exclusive() {
    use tally_loadgen::population::{INVOICE_CATEGORY, RETAIL_CATEGORY, ZERO_RATED_CATEGORY};
    use tally_protocol::tax::TaxBasis;
    let population = Population::generate(&WorkloadName::Vat.population(11, 5));
    let basis = |category: u32| {
        let rates = &population.genesis.tax_rates;
        rates
            .iter()
            .find(|rate| rate.category == category)
            .and_then(|rate| rate.basis)
    };
    assert_eq!(basis(RETAIL_CATEGORY), Some(TaxBasis::Inclusive));
    assert_eq!(basis(ZERO_RATED_CATEGORY), Some(TaxBasis::Inclusive));
    assert_eq!(basis(INVOICE_CATEGORY), Some(TaxBasis::Exclusive));
    let records = presign(&population, &WorkloadName::Vat.mix(11, 0), 0, 20_000);
    let (mut retail, mut invoices) = (0, 0);
    for record in records
        .iter()
        .filter(|r| r.kind() == Some(TxKind::TaxedPayment))
    {
        let payer_is_merchant = population.merchants.contains(&record.debit_account());
        assert!(population.merchants.contains(&record.credit_account()));
        match record.category() {
            INVOICE_CATEGORY => {
                assert!(payer_is_merchant, "an invoice is paid by a business");
                invoices += 1;
            }
            RETAIL_CATEGORY | ZERO_RATED_CATEGORY => {
                assert!(population.consumers.contains(&record.debit_account()));
                retail += 1;
            }
            other => panic!("category {other} is not in the genesis"),
        }
    }
    println!("vat (seed 11): {retail} retail payments, {invoices} invoices");
    assert!(
        retail > 12_000 && invoices > 2_500,
        "{retail} retail, {invoices} invoices"
    );
}

/// Runs a node in this process: needs the `engine` feature.
#[cfg(feature = "engine")]
#[test]
fn ubin_drives_payments_into_queues_instead_of_rejecting_them() {
    use std::time::Duration;
    use tally_loadgen::session::{run_loadgen, LoadgenOptions};
    use tally_loadgen::Pacing;
    use tally_protocol::result::ResultCode;
    let outcome = run_loadgen(&LoadgenOptions {
        workload: WorkloadName::Ubin,
        seed: 11,
        banks: 5,
        pacing: Pacing::Closed {
            in_flight_tx_max: 2_048,
        },
        closed_loop_tx_count: 6_000,
        duration: Duration::from_secs(120),
        ..LoadgenOptions::default()
    })
    .unwrap();
    let counts = &outcome.result.counts;
    println!("ubin results (seed 11): {counts:?}");
    assert_eq!(outcome.result.acknowledged, 6_000);
    assert!(
        counts.get(ResultCode::Queued) > 100,
        "the squeeze queues payments"
    );
    // Only redeems (the central bank burning more than a bank holds) may be refused for
    // liquidity: interbank payments queue instead.
    assert!(
        counts.get(ResultCode::InsufficientFunds) < 200,
        "interbank payments queue, they are not rejected for liquidity"
    );
    // Which payments settle at once and which wait depends on where blocks end (timing), but
    // every interbank payment and every pledge is accepted: settled or queued.
    let kinds = kinds(WorkloadName::Ubin, 6_000);
    let always_accepted = kinds[&TxKind::Transfer] + kinds[&TxKind::Pledge];
    let accepted = counts.get(ResultCode::Ok) + counts.get(ResultCode::Queued);
    assert!(
        accepted >= always_accepted as u64,
        "{accepted} accepted, {always_accepted} transfers and pledges"
    );
}
