//! History beyond the ledger's windows: a taxed payment is held for refunds for the genesis's
//! refund window and a refund after it is refused `refund_window_closed`; the ledger's
//! per-transaction structures stop growing once every window has turned over under steady
//! load; and the on-disk history index answers the status, history and refund data of
//! transactions older than every in-memory window, over a running node and offline, and of
//! blocks moved to the archive, and is rebuilt from the log when a segment is damaged.

mod common;

use common::*;
use rand::{RngExt, SeedableRng};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tally_engine::genesis::Role;
use tally_engine::ledger::{Ledger, SnapshotPoint};
use tally_engine::log::history::{HistoryIndex, REFERENCE};
use tally_engine::log::{Log, LogConfig};
use tally_engine::net::client::submit_and_wait;
use tally_engine::net::query::{Answer, Query, QueryResult};
use tally_engine::net::server::ServerConfig;
use tally_engine::net::{Client, NodeService, ServiceConfig};
use tally_engine::node::{replay_dir, NodeConfig};
use tally_engine::query::{answer_offline, catch_up};
use tally_engine::result::ResultCode;
use tally_engine::tx::{TxFlags, TxKind, TxRecord};

fn windowed(validity_ms: u64, refund_ms: u64) -> Fixture {
    let table: Vec<AccountRow> = vec![
        (CENTRAL_BANK, Role::CentralBank, 0, None),
        (TAX, Role::TaxAuthority, 0, None),
        (BANK_A, Role::Bank, 1_000_000, None),
        (BANK_B, Role::Bank, 1_000_000, None),
        (ALICE, Role::Consumer, 1_000_000_000, Some(BANK_A)),
        (SHOP, Role::Merchant, 1_000_000, Some(BANK_A)),
    ];
    Fixture::from_table(&table, |g| {
        g.settlement.validity_window_ms = validity_ms;
        g.settlement.refund_window_ms = refund_ms;
    })
}

fn taxed(f: &Fixture, id: u128, amount: u64, valid_until: u64) -> TxRecord {
    f.custom(ALICE, id, TxKind::TaxedPayment, ALICE, SHOP, amount, |t| {
        t.valid_until = valid_until
    })
}

fn refund(f: &Fixture, id: u128, of: u128, amount: u64, valid_until: u64) -> TxRecord {
    f.custom(SHOP, id, TxKind::Refund, SHOP, ALICE, amount, |t| {
        t.related_id = of;
        t.category = 0;
        t.valid_until = valid_until
    })
}

#[test]
fn a_refund_after_its_window_is_refused_with_its_code() {
    const REFUND_MS: u64 = 5_000;
    let f = windowed(1_000, REFUND_MS);
    let mut ledger = Ledger::from_genesis(&f.genesis);
    assert_eq!(ledger.refund_window_ms(), REFUND_MS);
    assert_eq!(
        ledger.execute_block(1, 1_000, &[taxed(&f, 1, 1_000, 1_500)]),
        [ResultCode::Ok]
    );
    // within the window (its last millisecond included) a refund settles
    let t = 1_000 + REFUND_MS;
    assert_eq!(
        ledger.execute_block(2, t, &[refund(&f, 2, 1, 100, t + 500)]),
        [ResultCode::Ok]
    );
    assert!(ledger.tax_payment(1).is_some());
    // one millisecond later the payment is forgotten and a refund has its own code
    let t = t + 1;
    assert_eq!(
        ledger.execute_block(3, t, &[refund(&f, 3, 1, 100, t + 500)]),
        [ResultCode::RefundWindowClosed]
    );
    assert!(ledger.tax_payment(1).is_none());
    // a checkpoint keeps what the ledger remembers of it
    let bytes = ledger.snapshot(
        &f.genesis.hash(),
        SnapshotPoint {
            height: 3,
            last_block_hash: [0; 32],
        },
    );
    let (mut restored, _) = Ledger::restore(&bytes, &f.genesis.hash()).unwrap();
    assert_eq!(restored.retained_counts(), ledger.retained_counts());
    let t = t + 10;
    let late = refund(&f, 4, 1, 100, t + 500);
    assert_eq!(
        restored.execute_block(4, t, &[late]),
        [ResultCode::RefundWindowClosed]
    );
    assert_eq!(
        ledger.execute_block(4, t, &[late]),
        [ResultCode::RefundWindowClosed]
    );
    // one more refund window on, the ledger forgets the id too: refused as unknown
    let t = 1_000 + 2 * REFUND_MS + 2;
    assert_eq!(
        ledger.execute_block(5, t, &[refund(&f, 5, 1, 100, t + 500)]),
        [ResultCode::RefundOfUnknownPayment]
    );
    assert_eq!(ledger.retained_counts()[5], 0);
}

#[test]
fn the_ledgers_structures_stop_growing_once_every_window_has_turned_over() {
    let seed = test_seed("the_ledgers_structures_stop_growing_once_every_window");
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    const HOUR: u64 = 3_600_000;
    const VALIDITY_MS: u64 = 6 * HOUR;
    const REFUND_MS: u64 = 2 * 24 * HOUR;
    const BLOCK_MS: u64 = HOUR / 2;
    const DAYS: u64 = 24;
    let f = windowed(VALIDITY_MS, REFUND_MS);
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let mut id = 0u128;
    let mut next_id = || {
        id += 1;
        id
    };
    let mut taxed_ids: Vec<(u128, u64)> = Vec::new();
    let mut pending_ids: Vec<u128> = Vec::new();
    let mut sizes = Vec::new();
    let blocks = DAYS * 24 * HOUR / BLOCK_MS;
    for height in 1..=blocks {
        let time = height * BLOCK_MS;
        let until = || time + VALIDITY_MS / 2;
        let mut records = Vec::new();
        for _ in 0..10 {
            let id = next_id();
            records.push(taxed(&f, id, rng.random_range(100..10_000), until()));
            taxed_ids.push((id, time));
        }
        // refunds of payments inside and outside their window
        for _ in 0..3 {
            let (of, _) = taxed_ids[rng.random_range(0..taxed_ids.len())];
            records.push(refund(&f, next_id(), of, 1, until()));
        }
        // reservations: some posted or voided a block later, the rest time out
        for &of in &pending_ids {
            let flag = if rng.random_bool(0.5) {
                TxFlags::POST_PENDING
            } else {
                TxFlags::VOID_PENDING
            };
            if rng.random_bool(0.7) {
                let amount = if flag == TxFlags::POST_PENDING { 5 } else { 0 };
                records.push(f.custom(
                    ALICE,
                    next_id(),
                    TxKind::Transfer,
                    ALICE,
                    SHOP,
                    amount,
                    |t| {
                        t.flags = TxFlags(flag);
                        t.related_id = of;
                        t.valid_until = until();
                    },
                ));
            }
        }
        pending_ids.clear();
        for _ in 0..4 {
            let id = next_id();
            records.push(f.custom(ALICE, id, TxKind::Transfer, ALICE, SHOP, 5, |t| {
                t.flags = TxFlags(TxFlags::PENDING);
                t.reserved_a = 3_600;
                t.valid_until = until();
            }));
            pending_ids.push(id);
        }
        // a bank payment beyond the payer's liquidity queues until its day ends
        records.push(f.custom(
            BANK_A,
            next_id(),
            TxKind::Transfer,
            BANK_A,
            BANK_B,
            5_000_000,
            |t| t.valid_until = until(),
        ));
        ledger.execute_block(height, time, &records);
        sizes.push(ledger.retained_counts());
    }
    let names = [
        "valid ids",
        "closed outcomes",
        "taxed payments",
        "reservations",
        "queued payments",
        "closed refund ids",
        "tax-total rows",
    ];
    let per_day = (24 * HOUR / BLOCK_MS) as usize;
    // every window (the longest: twice the refund window for closed refund ids, and the tax
    // totals' days) has turned over by day 6; compare days 6-12 with the last 6 days
    let early = &sizes[6 * per_day..12 * per_day];
    let late = &sizes[sizes.len() - 6 * per_day..];
    for (field, name) in names.iter().enumerate() {
        let early_max = early.iter().map(|s| s[field]).max().unwrap();
        let late_max = late.iter().map(|s| s[field]).max().unwrap();
        let all_max = sizes.iter().map(|s| s[field]).max().unwrap();
        println!("{name}: days 6-12 max {early_max}, last 6 days max {late_max}, all {all_max}");
        assert!(
            late_max as f64 <= early_max as f64 * 1.05 + 2.0,
            "{name} still grows: {early_max} then {late_max}"
        );
        assert!(all_max > 0, "{name} was never exercised");
    }
    // a checkpoint of the turned-over ledger restores the same counts and root
    let bytes = ledger.snapshot(
        &f.genesis.hash(),
        SnapshotPoint {
            height: blocks,
            last_block_hash: [0; 32],
        },
    );
    let (restored, _) = Ledger::restore(&bytes, &f.genesis.hash()).unwrap();
    assert_eq!(restored.retained_counts(), ledger.retained_counts());
    assert_eq!(restored.state_root(), ledger.state_root());
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn ask(client: &Client, query: Query) -> Answer {
    client.query(&query).expect("query answered")
}

fn status_of(client: &Client) -> Answer {
    ask(client, Query::TxStatus { id: 1 })
}

fn alice_history(client: &Client) -> Answer {
    ask(
        client,
        Query::AccountHistory {
            account: ALICE,
            from: None,
            limit: Some(10),
        },
    )
}

fn offline(f: &Fixture, data_dir: &std::path::Path, query: Query) -> Answer {
    let recovered = replay_dir(&f.genesis, &NodeConfig::new(data_dir.to_path_buf())).unwrap();
    match answer_offline(
        &recovered.ledger,
        data_dir,
        None,
        LogConfig::default(),
        &query,
    )
    .unwrap()
    {
        QueryResult::Ok(answer) => answer,
        QueryResult::Error(why) => panic!("{why}"),
    }
}

/// What a status and an account's history say of the old taxed payment: settled, with its
/// refund data worked out from the log, and in the history at its block.
fn check_old_payment(status: Answer, history: Answer, height: u64, refunded: u64) {
    let Answer::TxStatus(status) = status else {
        panic!("{status:?}")
    };
    assert_eq!(status.status, "settled");
    assert_eq!(status.height, Some(height));
    let taxed = status.taxed.expect("refund data of the old payment");
    assert_eq!((taxed.amount, taxed.rate_bp), (10_000, 900));
    assert_eq!(taxed.tax, 900);
    assert_eq!(taxed.refunded_amount, refunded);
    assert_eq!(taxed.refunded_tax, refunded * 9 / 100);
    let Answer::AccountHistory { transactions, .. } = history else {
        panic!("{history:?}")
    };
    let first = &transactions[0];
    assert_eq!((first.id, first.height), (1, height));
    assert_eq!(first.result, "ok");
}

#[test]
fn old_transactions_are_found_through_the_history_index_on_a_running_node_and_offline() {
    // the shortest windows a genesis allows: one second each
    let f = windowed(1_000, 1_000);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("node");
    let start = || {
        let mut node = NodeConfig::new(data_dir.clone());
        node.checkpoint_interval_blocks = 3;
        let config = ServiceConfig {
            server: ServerConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                ..ServerConfig::default()
            },
            metrics_listen: None,
            metrics_tls: false,
        };
        NodeService::start(&f.genesis, node, config).expect("service starts")
    };
    let service = start();
    let client = Client::connect(service.client_addr()).unwrap();
    let one = |record: TxRecord| {
        let (acks, refused) = submit_and_wait(&client, &[record], Duration::from_secs(60)).unwrap();
        assert_eq!(refused, None);
        acks[0]
    };
    let paid = one(taxed(&f, 1, 10_000, now_ms() + 500));
    assert_eq!(paid.code, ResultCode::Ok);
    let height = paid.height.unwrap();
    let refunded = one(refund(&f, 2, 1, 1_000, now_ms() + 500));
    assert_eq!(refunded.code, ResultCode::Ok);
    // let both windows pass (twice the refund window: the ledger forgets the closed id too),
    // then make blocks so that the ledger forgets
    std::thread::sleep(Duration::from_millis(2_500));
    for id in 3..6 {
        let code = one(
            f.custom(BANK_A, id, TxKind::Transfer, BANK_A, BANK_B, 1, |t| {
                t.valid_until = now_ms() + 500
            }),
        );
        assert_eq!(code.code, ResultCode::Ok);
    }
    let late = one(refund(&f, 6, 1, 1_000, now_ms() + 500));
    assert_eq!(late.code, ResultCode::RefundOfUnknownPayment);
    check_old_payment(status_of(&client), alice_history(&client), height, 1_000);
    let Answer::TxHistory { blocks, .. } = ask(&client, Query::TxHistory { id: 1 }) else {
        panic!()
    };
    assert_eq!(blocks.len(), 1);
    drop(client);
    let outcome = service.shutdown();
    assert_eq!(outcome.fatal, None);
    assert!(
        outcome.ledger.tax_payment(1).is_none(),
        "the ledger forgot it"
    );
    // offline, through the index the node wrote (and caught up from the log)
    check_old_payment(
        offline(&f, &data_dir, Query::TxStatus { id: 1 }),
        offline(
            &f,
            &data_dir,
            Query::AccountHistory {
                account: ALICE,
                from: None,
                limit: Some(10),
            },
        ),
        height,
        1_000,
    );
    // a damaged segment is removed, named, and its heights indexed again from the log
    let index_dir = HistoryIndex::dir_in(&data_dir);
    let segment = std::fs::read_dir(&index_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "idx"))
        .expect("the node wrote a segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&segment, &bytes).unwrap();
    let (mut index, report) = HistoryIndex::open(&index_dir).unwrap();
    assert_eq!(report.removed.len(), 1, "{:?}", report.removed);
    assert!(
        report.removed[0].contains("body hash mismatch"),
        "{:?}",
        report.removed
    );
    assert_eq!(index.indexed_height(), 0);
    let log = Log::open(&data_dir.join("log"), LogConfig::default()).unwrap();
    catch_up(&mut index, &log, None, log.next_sequence()).unwrap();
    assert_eq!(index.indexed_height(), log.next_sequence());
    let found = index.transaction(1);
    assert_eq!(found.len(), 3, "its block, its refund and the late refund");
    assert_eq!((found[0].height, found[0].flags), (height, 0));
    assert!(found[1..].iter().all(|e| e.flags == REFERENCE));
    drop(log);
    drop(index);
    // the node starts over the damaged-then-rebuilt index and still answers
    let service = start();
    let client = Client::connect(service.client_addr()).unwrap();
    check_old_payment(status_of(&client), alice_history(&client), height, 1_000);
    drop(client);
    service.shutdown();
}

#[test]
fn the_index_pages_an_accounts_history_and_merges_its_segments() {
    let seed = test_seed("the_index_pages_an_accounts_history");
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let f = windowed(1_000, 1_000);
    let dir = tempfile::tempdir().unwrap();
    let (mut index, _) = HistoryIndex::open(dir.path()).unwrap();
    let mut expected = Vec::new();
    let mut id = 0u128;
    for height in 1..=300u64 {
        let count = rng.random_range(0..5);
        let records: Vec<TxRecord> = (0..count)
            .map(|i| {
                id += 1;
                let (debit, credit) = if rng.random_bool(0.5) {
                    (ALICE, SHOP)
                } else {
                    (BANK_A, BANK_B)
                };
                if debit == ALICE {
                    expected.push((height, i as u32));
                }
                f.custom(debit, id, TxKind::Transfer, debit, credit, 1, |_| {})
            })
            .collect();
        index.add_block(height, &records).unwrap();
        if height % 20 == 0 {
            index.flush().unwrap();
        }
    }
    // twenty flushes leave a few merged segments, never one per flush
    assert!(
        index.segment_count() < 8,
        "{} segments",
        index.segment_count()
    );
    let (mut paged, mut from, mut pages) = (Vec::new(), (1u64, 0u32), 0);
    loop {
        let (page, more) = index.account(ALICE, from.0, from.1, 7);
        paged.extend(page.iter().map(|e| (e.height, e.index)));
        pages += 1;
        let Some(last) = page.last() else { break };
        from = (last.height, last.index + 1);
        if !more {
            break;
        }
    }
    assert_eq!(paged, expected);
    assert!(pages >= expected.len() / 7);
    // reopened, the same answers from the files alone
    index.flush().unwrap();
    drop(index);
    let (index, report) = HistoryIndex::open(dir.path()).unwrap();
    assert!(report.removed.is_empty());
    assert_eq!(index.indexed_height(), 300);
    let (all, more) = index.account(ALICE, 1, 0, usize::MAX);
    assert!(!more);
    assert_eq!(
        all.iter().map(|e| (e.height, e.index)).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(index.transaction(id).len(), 1);
    assert_eq!(index.transaction(id + 1).len(), 0);
}

#[test]
fn history_older_than_the_live_log_is_read_from_the_archive() {
    let f = windowed(60_000, 60_000);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("node");
    let archive = dir.path().join("archive");
    let mut config = NodeConfig::new(data_dir.clone());
    // segments of a few blocks, a checkpoint every two: the first blocks are archived
    config.log.segment_bytes = 8_192;
    config.log.entry_bytes_max = 8_128;
    config.block_tx_max = 16;
    config.sigverify_batch_tx_max = 16;
    config.checkpoint_interval_blocks = 2;
    config.archive_dir = Some(archive.clone());
    let node = tally_engine::node::Node::start(&f.genesis, config.clone()).unwrap();
    let handle = node.handle();
    let (reply, acks) = crossbeam::channel::unbounded();
    let send = |record: TxRecord| {
        handle.submit(&[record], &reply).unwrap();
        acks.recv_timeout(Duration::from_secs(60)).unwrap()
    };
    let paid = send(taxed(&f, 1, 10_000, now_ms() + 30_000));
    assert_eq!(paid.code, ResultCode::Ok);
    let height = paid.height.unwrap();
    for id in 2..40 {
        let ack = send(
            f.custom(BANK_A, id, TxKind::Transfer, BANK_A, BANK_B, 1, |t| {
                t.valid_until = now_ms() + 30_000
            }),
        );
        assert_eq!(ack.code, ResultCode::Ok);
    }
    assert_eq!(node.shutdown().fatal, None);
    let log = Log::open(&data_dir.join("log"), config.log).unwrap();
    assert!(
        log.first_sequence() >= height,
        "block {height} was archived (the live log starts at {})",
        log.first_sequence() + 1
    );
    drop(log);
    let recovered = replay_dir(&f.genesis, &config).unwrap();
    let ask = |archive_dir: Option<&std::path::Path>, query: Query| {
        answer_offline(
            &recovered.ledger,
            &data_dir,
            archive_dir,
            config.log,
            &query,
        )
    };
    // without the archive the blocks cannot be read: the error names what to give
    let error = ask(None, Query::TxHistory { id: 1 }).unwrap_err();
    assert!(error.to_string().contains("archive"), "{error}");
    // with it, the index (written by the node) finds them there
    let Ok(QueryResult::Ok(Answer::TxHistory { blocks, .. })) =
        ask(Some(&archive), Query::TxHistory { id: 1 })
    else {
        panic!()
    };
    assert_eq!(blocks.len(), 1);
    assert_eq!(
        (blocks[0].height, blocks[0].result.as_str()),
        (height, "ok")
    );
    let Ok(QueryResult::Ok(Answer::AccountHistory { transactions, .. })) = ask(
        Some(&archive),
        Query::AccountHistory {
            account: ALICE,
            from: None,
            limit: None,
        },
    ) else {
        panic!()
    };
    assert_eq!(transactions.len(), 1);
    assert_eq!((transactions[0].id, transactions[0].height), (1, height));
}

/// A queued payment released from its queue, once the ledger has forgotten it, is still
/// `settled_from_queue` at the block that released it: the node's event journal says so,
/// on the running node and offline.
#[test]
fn a_forgotten_queued_payment_is_answered_from_the_event_journal() {
    let f = windowed(1_000, 1_000);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("node");
    let mut node = NodeConfig::new(data_dir.clone());
    node.checkpoint_interval_blocks = 3;
    let service = NodeService::start(
        &f.genesis,
        node,
        ServiceConfig {
            server: ServerConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                ..ServerConfig::default()
            },
            metrics_listen: None,
            metrics_tls: false,
        },
    )
    .expect("service starts");
    let client = Client::connect(service.client_addr()).unwrap();
    let one = |record: TxRecord| {
        let (acks, refused) = submit_and_wait(&client, &[record], Duration::from_secs(60)).unwrap();
        assert_eq!(refused, None);
        acks[0]
    };
    let soon = || now_ms() + 500;
    // more than BANK_B holds: queued until the central bank pledges it liquidity
    let queued = one(f.custom(
        BANK_B,
        1,
        TxKind::Transfer,
        BANK_B,
        BANK_A,
        1_500_000,
        |t| t.valid_until = soon(),
    ));
    assert_eq!(queued.code, ResultCode::Queued);
    let pledge = one(f.custom(
        CENTRAL_BANK,
        2,
        TxKind::Pledge,
        CENTRAL_BANK,
        BANK_B,
        600_000,
        |t| t.valid_until = soon(),
    ));
    assert_eq!(pledge.code, ResultCode::Ok);
    let released_at = pledge.height.unwrap();
    let status = |answer: Answer| match answer {
        Answer::TxStatus(status) => (status.status, status.height),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        status(ask(&client, Query::TxStatus { id: 1 })),
        ("settled_from_queue".to_string(), Some(released_at)),
        "the ledger still holds it"
    );
    // let the windows pass, and make blocks so that the ledger forgets
    std::thread::sleep(Duration::from_millis(2_500));
    for id in 3..6 {
        let ack = one(
            f.custom(BANK_A, id, TxKind::Transfer, BANK_A, BANK_B, 1, |t| {
                t.valid_until = soon()
            }),
        );
        assert_eq!(ack.code, ResultCode::Ok);
    }
    assert_eq!(
        status(ask(&client, Query::TxStatus { id: 1 })),
        ("settled_from_queue".to_string(), Some(released_at)),
        "the history and the event journal say what the ledger forgot"
    );
    drop(client);
    let outcome = service.shutdown();
    assert_eq!(outcome.fatal, None);
    assert_eq!(
        outcome.ledger.status(1),
        tally_engine::ledger::TxStatus::Unknown,
        "the ledger forgot it"
    );
    assert_eq!(
        status(offline(&f, &data_dir, Query::TxStatus { id: 1 })),
        ("settled_from_queue".to_string(), Some(released_at)),
        "offline, from the journal the node left"
    );
}

/// (payments, tax, refunded tax) of the shop's rows in a tax report.
fn shop_tax(answer: Answer) -> (u64, u128, u128) {
    let Answer::TaxReport { rows, .. } = answer else {
        panic!("{answer:?}")
    };
    rows.iter()
        .filter(|row| row.payee == SHOP)
        .fold((0, 0, 0), |(p, t, r), row| {
            (p + row.payments, t + row.tax, r + row.refunded_tax)
        })
}

#[test]
fn tax_reports_of_days_past_the_refund_window_come_from_the_tax_day_journal_across_restarts() {
    use tally_engine::genesis::DAY_MS;
    use tally_engine::log::tax_journal::TaxDayJournal;
    // the business day ends five seconds from now (the genesis's cut-off), and the refund
    // window is one second: the day's rows leave the ledger a second after the day ends
    let boundary = now_ms() + 5_000;
    let table: Vec<AccountRow> = vec![
        (CENTRAL_BANK, Role::CentralBank, 0, None),
        (TAX, Role::TaxAuthority, 0, None),
        (BANK_A, Role::Bank, 1_000_000, None),
        (BANK_B, Role::Bank, 1_000_000, None),
        (ALICE, Role::Consumer, 1_000_000_000, Some(BANK_A)),
        (SHOP, Role::Merchant, 1_000_000, Some(BANK_A)),
    ];
    let f = Fixture::from_table(&table, |g| {
        g.settlement.validity_window_ms = 1_000;
        g.settlement.refund_window_ms = 1_000;
        g.settlement.day_cutoff_ms = boundary % DAY_MS;
    });
    let day = (boundary - 1 - boundary % DAY_MS) / DAY_MS; // the day that ends at `boundary`
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("node");
    let start = || {
        let mut node = NodeConfig::new(data_dir.clone());
        node.checkpoint_interval_blocks = 2;
        let config = ServiceConfig {
            server: ServerConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                ..ServerConfig::default()
            },
            metrics_listen: None,
            metrics_tls: false,
        };
        NodeService::start(&f.genesis, node, config).expect("service starts")
    };
    let report = |client: &Client| {
        shop_tax(ask(
            client,
            Query::TaxReport {
                payee: None,
                from_day: day,
                to_day: day,
            },
        ))
    };
    let service = start();
    let client = Client::connect(service.client_addr()).unwrap();
    let one = |client: &Client, record: TxRecord| {
        let (acks, refused) = submit_and_wait(client, &[record], Duration::from_secs(60)).unwrap();
        assert_eq!(refused, None);
        assert_eq!(acks[0].code, ResultCode::Ok);
    };
    for id in 1..=3 {
        one(&client, taxed(&f, id, 10_000, now_ms() + 500));
    }
    one(&client, refund(&f, 4, 1, 1_000, now_ms() + 500));
    assert!(
        now_ms() < boundary,
        "the payments were meant for the day that ends at {boundary}"
    );
    let expected = (3, 2_700, 90);
    assert_eq!(report(&client), expected, "from the ledger");
    // past the day's end and the refund window: blocks make the ledger forget the day
    std::thread::sleep(Duration::from_millis(
        (boundary + 1_300).saturating_sub(now_ms()),
    ));
    for id in 5..9 {
        one(
            &client,
            f.custom(BANK_A, id, TxKind::Transfer, BANK_A, BANK_B, 1, |t| {
                t.valid_until = now_ms() + 500
            }),
        );
    }
    let Answer::Totals(totals) = ask(&client, Query::Totals) else {
        panic!()
    };
    assert_eq!(totals.net_tax, 0, "the ledger holds no tax row any more");
    assert_eq!(report(&client), expected, "from the journal");
    // every day from the first: the same rows
    let all = shop_tax(ask(
        &client,
        Query::TaxReport {
            payee: Some(SHOP),
            from_day: 0,
            to_day: u64::MAX,
        },
    ));
    assert_eq!(all, expected);
    drop(client);
    assert_eq!(service.shutdown().fatal, None);
    // across a restart (from a checkpoint that no longer holds the day)
    let service = start();
    let client = Client::connect(service.client_addr()).unwrap();
    assert_eq!(report(&client), expected, "after a restart");
    drop(client);
    service.shutdown();
    // offline, over the stopped node's data directory
    let offline_report = |data_dir: &std::path::Path| {
        shop_tax(offline(
            &f,
            data_dir,
            Query::TaxReport {
                payee: None,
                from_day: day,
                to_day: day,
            },
        ))
    };
    assert_eq!(offline_report(&data_dir), expected, "offline");
    // the journal lost: a checkpoint past the window cannot make the day again, and the
    // query says so
    let journal_dir = TaxDayJournal::dir_in(&data_dir);
    std::fs::remove_dir_all(&journal_dir).unwrap();
    let service = start();
    let client = Client::connect(service.client_addr()).unwrap();
    let refused = client.query(&Query::TaxReport {
        payee: None,
        from_day: day,
        to_day: day,
    });
    let text = format!("{refused:?}");
    assert!(
        text.contains(&format!(
            "tax rows of business day {day} are not kept by this node"
        )),
        "{text}"
    );
    drop(client);
    service.shutdown();
    // the journal lost and the checkpoints too: the replay of the whole log makes it again
    std::fs::remove_dir_all(&journal_dir).unwrap();
    std::fs::remove_dir_all(tally_engine::node::checkpoints_dir(&NodeConfig::new(
        data_dir.clone(),
    )))
    .unwrap();
    let service = start();
    let client = Client::connect(service.client_addr()).unwrap();
    assert_eq!(report(&client), expected, "made again from the log");
    drop(client);
    service.shutdown();
}
