//! The named workloads do what they claim: ubin squeezes liquidity so that interbank
//! payments queue (and payers act on queued payments); vat pays merchants tax-inclusive retail
//! prices and tax-exclusive business invoices and refunds some of those payments; every
//! workload keeps its accounts solvent however long it runs.

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
    assert!(kinds[&TxKind::TaxedPayment] > 15_000);
    // Refunds name payments at least REFUND_LAG_TX earlier (settled by then).
    assert!(kinds[&TxKind::Refund] > 1_000);
    // Money goes back round: wages, supplier payments, public spending (plain transfers).
    assert!(kinds[&TxKind::Transfer] > 1_500);
}

/// The transfer workload is TigerBeetle's benchmark shape: plain transfers between
/// distinct accounts of the population, amounts 1 to 1000; zipfian choice puts most of them
/// on a few hot accounts, uniform spreads them.
#[test]
fn transfer_is_plain_transfers_uniform_or_zipfian() {
    use tally_loadgen::workload::{transfer_population, TRANSFER_AMOUNT_MAX};
    use tally_loadgen::Distribution;
    let seed = 17;
    println!("seed {seed}");
    let population = Population::generate(&transfer_population(
        seed,
        2,
        1_000,
        tally_loadgen::population::Custody::Own,
    ));
    assert_eq!(population.consumers.len(), 1_000);
    let hot_share = |distribution| {
        let mut mix = WorkloadName::Transfer.mix(seed, 0);
        mix.plain.as_mut().unwrap().distribution = distribution;
        let records = presign(&population, &mix, 0, 20_000);
        let hot: std::collections::BTreeSet<u64> =
            population.consumers[..10].iter().copied().collect();
        for record in &records {
            assert_eq!(record.kind(), Some(TxKind::Transfer));
            assert_ne!(record.debit_account(), record.credit_account());
            assert!(population.consumers.contains(&record.debit_account()));
            assert!(population.consumers.contains(&record.credit_account()));
            assert!((1..=TRANSFER_AMOUNT_MAX).contains(&record.amount()));
        }
        records
            .iter()
            .filter(|r| hot.contains(&r.debit_account()))
            .count() as f64
            / records.len() as f64
    };
    let uniform = hot_share(Distribution::Uniform);
    let zipfian = hot_share(Distribution::Zipfian);
    println!("share of debits on the 10 hottest of 1000 accounts: uniform {uniform:.3}, zipfian {zipfian:.3}");
    assert!(uniform < 0.02, "uniform {uniform}");
    // Zipf with exponent 1 over 1000 accounts: H(10) / H(1000) = 2.93 / 7.49 = 0.39.
    assert!((0.35..0.43).contains(&zipfian), "zipfian {zipfian}");
    assert_eq!(
        "pareto".parse::<Distribution>().unwrap_err(),
        "unknown account distribution \"pareto\": expected uniform or zipfian"
    );
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

/// Every workload keeps its promise over a long stream: executed in order by the ledger
/// itself (no node, no signatures: the signer's key stands in the record), at least the
/// promised share of transactions settle `ok` in every stretch of the run, so accounts
/// never run dry however long it lasts. A tenth of a 10-minute run at full speed, at small
/// scale.
#[cfg(feature = "engine")]
#[test]
fn every_workload_stays_solvent_over_a_long_stream() {
    use tally_engine::ledger::Ledger;
    use tally_loadgen::workload::Generator;
    use tally_protocol::keys::public_key_of;
    use tally_protocol::result::ResultCode;
    use tally_protocol::tx::TxRecord;
    let seed = 23;
    println!("seed {seed}");
    let mut cases: Vec<(WorkloadName, tally_loadgen::population::PopulationSpec)> = Vec::new();
    for workload in WorkloadName::ALL {
        match workload {
            WorkloadName::Transfer => {
                // each account with its own key, and held by banks that sign for them
                for custody in [
                    tally_loadgen::population::Custody::Own,
                    tally_loadgen::population::Custody::Bank,
                ] {
                    cases.push((
                        workload,
                        tally_loadgen::workload::transfer_population(seed, 4, 1_000, custody),
                    ));
                }
            }
            other => cases.push((other, other.population(seed, 8))),
        }
    }
    for (workload, spec) in cases {
        println!("{} ({:?} custody)", workload.name(), spec.custody);
        let population = Population::generate(&spec);
        let mut mix = workload.mix(seed, 0);
        if let Some(plain) = mix.plain.as_mut() {
            plain.distribution = tally_loadgen::Distribution::Zipfian;
        }
        let mut generator = Generator::new(&population, &mix, 0);
        let mut ledger = Ledger::from_genesis(&population.genesis);
        let promise = workload.ok_share_min(0);
        let (stretches, stretch, block) = (10, 20_000, 1_000);
        let mut overall = std::collections::BTreeMap::new();
        for stretch_index in 0..stretches {
            let mut ok = 0;
            for height in 0..stretch / block {
                let height = (stretch_index * stretch / block + height + 1) as u64;
                let block_time_ms = height * 100;
                // valid a second past the block that executes them (the signer's valid_until)
                let records: Vec<TxRecord> = generator
                    .plans(block)
                    .iter()
                    .map(|plan| {
                        let mut record =
                            TxRecord::new(&plan.fields.valid_until(block_time_ms + 1_000));
                        record.public_key = public_key_of(population.signing_key(plan.signer));
                        record
                    })
                    .collect();
                for code in ledger.execute_block(height, block_time_ms, &records) {
                    ok += u64::from(code == ResultCode::Ok);
                    *overall.entry(code.name()).or_insert(0u64) += 1;
                }
            }
            let share = ok as f64 / stretch as f64;
            println!(
                "{} stretch {stretch_index}: {:.2}% ok",
                workload.name(),
                share * 100.0
            );
            assert!(
                share >= promise,
                "{}: stretch {stretch_index} has {:.2}% ok, below the promised {:.1}%: {overall:?}",
                workload.name(),
                share * 100.0,
                promise * 100.0
            );
        }
        println!("{} (seed {seed}): {overall:?}", workload.name());
    }
}
