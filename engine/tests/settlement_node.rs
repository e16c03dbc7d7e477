//! Settlement through a running node: a queued payment is acknowledged `queued`, settles at
//! the end of a later block, and a restart (replaying the log with block times) reaches the
//! same state; the log queries find every block that carried a transaction or touched an
//! account.

mod common;

use common::*;
use crossbeam::channel::unbounded;
use std::time::Duration;
use tally_engine::ledger::TxStatus;
use tally_engine::log::LogConfig;
use tally_engine::net::query::{answer_from_ledger, Answer, Query, QueryResult};
use tally_engine::node::{replay_dir, Node, NodeConfig};
use tally_engine::query::{account_history, scan_log, transaction_history};
use tally_engine::result::ResultCode;
use tally_engine::tx::TxKind;

#[test]
fn a_queued_payment_settles_in_a_later_block_and_replays_the_same() {
    let f = Fixture::banks(2, 100);
    let (a, b) = (BANK_A, BANK_A + 1);
    let dir = tempfile::tempdir().unwrap();
    // TALLY_KEEP_DIR keeps the data directory and genesis for trying `tally query` by hand
    let keep = std::env::var_os("TALLY_KEEP_DIR").map(std::path::PathBuf::from);
    let data_dir = keep.clone().unwrap_or_else(|| dir.path().to_path_buf());
    if let Some(keep) = &keep {
        std::fs::create_dir_all(keep).unwrap();
        std::fs::write(keep.join("genesis.toml"), f.genesis.to_toml()).unwrap();
    }
    let mut config = NodeConfig::new(data_dir.join("node"));
    config.checkpoint_interval_blocks = 2;
    let node = Node::start(&f.genesis, config.clone()).unwrap();
    let handle = node.handle();
    let (reply, acks) = unbounded();
    let send = |record| {
        handle.submit(&[record], &reply).unwrap();
        acks.recv_timeout(Duration::from_secs(30)).unwrap()
    };
    let queued = send(f.tx(1, TxKind::Transfer, a, b, 150));
    assert_eq!(queued.code, ResultCode::Queued);
    let rejected = send(f.tx(2, TxKind::Transfer, OBSERVER, b, 1));
    assert_eq!(rejected.code, ResultCode::ObserverReadOnly);
    let pledge = send(f.tx(3, TxKind::Pledge, CENTRAL_BANK, a, 50));
    assert_eq!(pledge.code, ResultCode::Ok);
    let after = send(f.tx(4, TxKind::Transfer, b, a, 1));
    assert_eq!(after.code, ResultCode::Ok);
    let outcome = node.shutdown();
    assert_eq!(outcome.fatal, None);
    assert_eq!(
        outcome.ledger.status(1),
        TxStatus::SettledFromQueue {
            height: pledge.height.unwrap(),
            via_lsm: false
        }
    );
    assert_eq!(outcome.ledger.balance(a), Some(1));
    assert_eq!(outcome.ledger.balance(b), Some(249));
    // a restart replays the log (from a checkpoint) to the same state
    let replayed = replay_dir(&f.genesis, &config).unwrap();
    assert_eq!(replayed.ledger.state_root(), outcome.state_root);
    assert_eq!(replayed.ledger.status(1), outcome.ledger.status(1));
    // the log shows each block's own code
    let carried = transaction_history(&config.data_dir, LogConfig::default(), 1).unwrap();
    assert_eq!(carried.found.len(), 1);
    assert_eq!(carried.found[0].result, ResultCode::Queued);
    assert_eq!(Some(carried.found[0].height), queued.height);
    let touched = account_history(&config.data_dir, LogConfig::default(), b).unwrap();
    let ids: Vec<u128> = touched.found.iter().map(|t| t.record.id()).collect();
    assert_eq!(ids, vec![1, 2, 4]);
    assert_eq!(touched.found[1].result, ResultCode::ObserverReadOnly);
    // page by page, one transaction and one block read at a time, the same transactions
    let log =
        tally_engine::log::Log::open(&config.data_dir.join("log"), LogConfig::default()).unwrap();
    let names_b = |record: &tally_engine::tx::TxRecord| {
        record.debit_account() == b || record.credit_account() == b
    };
    let (mut from, mut paged, mut pages) = (None, Vec::new(), 0);
    loop {
        let page = scan_log(&log, from, 1, 1, names_b).unwrap();
        assert!(page.found.len() <= 1);
        paged.extend(page.found.iter().map(|t| t.record.id()));
        pages += 1;
        match page.next {
            Some(next) => from = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, ids);
    assert!(pages >= ids.len(), "{pages} pages");
    drop(log);
    // the client API answers the settlement queries from the ledger
    let ask = |query: Query| {
        let text = serde_json::to_string(&query).unwrap();
        let query: Query = serde_json::from_str(&text).unwrap();
        let answer = answer_from_ledger(&outcome.ledger, &query);
        let text = serde_json::to_string(&answer).unwrap();
        serde_json::from_str::<QueryResult>(&text).unwrap()
    };
    let QueryResult::Ok(Answer::TxStatus(status)) = ask(Query::TxStatus { id: 1 }) else {
        panic!("a tx_status answer");
    };
    assert_eq!(
        (status.id, status.status.as_str(), status.height),
        (1, "settled_from_queue", pledge.height)
    );
    assert_eq!(status.queue_position, None);
    assert!(status.settled_by.is_some());
    assert_eq!(
        ask(Query::Queue { payer: Some(a) }),
        QueryResult::Ok(Answer::Queue {
            payer: Some(a),
            total: 0,
            payments: vec![],
        })
    );
    assert_eq!(
        ask(Query::TaxReport {
            payee: Some(b),
            from_day: 0,
            to_day: u64::MAX
        }),
        QueryResult::Ok(Answer::TaxReport {
            payee: Some(b),
            from_day: 0,
            to_day: u64::MAX,
            rows: vec![],
            net_tax: 0,
        })
    );
    // Every payee's report is the ledger's too; what reads the log is not.
    assert!(matches!(
        ask(Query::TaxReport {
            payee: None,
            from_day: 0,
            to_day: u64::MAX
        }),
        QueryResult::Ok(Answer::TaxReport { payee: None, .. })
    ));
    assert!(matches!(
        ask(Query::TxHistory { id: 1 }),
        QueryResult::Error(_)
    ));
}
