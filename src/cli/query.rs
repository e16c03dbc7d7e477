//! `tally query`: ledger queries over a stopped node's data directory, answered offline by
//! replaying its log (from the newest intact checkpoint) over the genesis. Prints JSON.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use tally_engine::genesis::Genesis;
use tally_engine::ledger::{Ledger, QueuedPayment, TxStatus};
use tally_engine::log::LogConfig;
use tally_engine::node::{replay_dir, NodeConfig};
use tally_engine::query::{account_history, transaction_history, LoggedTx};

#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    /// The node's data directory (the node must not be running).
    #[arg(long)]
    data_dir: PathBuf,
    /// The network's genesis file.
    #[arg(long)]
    genesis: PathBuf,
    #[command(subcommand)]
    what: QueryCommand,
}

#[derive(clap::Subcommand, Debug)]
enum QueryCommand {
    /// An account's balance, limits, reservations and suspension.
    Balance {
        /// Account id.
        account: u64,
    },
    /// A transaction's status (settled, queued, pending, cancelled, expired...) and every
    /// block that carried it with its result code (rejected: why).
    Status {
        /// Transaction id (decimal u128).
        id: u128,
    },
    /// Every transaction of the live log that names the account, with its result code.
    History {
        /// Account id.
        account: u64,
    },
    /// The RTGS queues in settlement order (of one bank, or all).
    Queue {
        /// Only this payer bank's queue.
        #[arg(long)]
        bank: Option<u64>,
    },
    /// Tax per merchant and category over a period of business days.
    TaxReport {
        /// Only this payee.
        #[arg(long)]
        merchant: Option<u64>,
        /// First business day (days since the first cut-off; default: the first).
        #[arg(long, default_value_t = 0)]
        from_day: u64,
        /// Last business day, included (default: the last).
        #[arg(long, default_value_t = u64::MAX)]
        to_day: u64,
    },
}

fn queued_json(queued: &QueuedPayment) -> Value {
    json!({
        "id": queued.id.to_string(),
        "payer": queued.payer,
        "payee": queued.payee,
        "amount": queued.amount,
        "priority": if queued.urgent { "urgent" } else { "normal" },
        "held": queued.held,
        "arrival": queued.seq,
        "queued_height": queued.queued_height,
        "expires_at_ms": queued.expires_at_ms,
    })
}

fn status_json(status: &TxStatus) -> Value {
    let mut value = json!({ "status": status.name() });
    let fields = match *status {
        TxStatus::SettledFromQueue { height, via_lsm } => {
            json!({ "height": height, "by": if via_lsm { "liquidity_saving" } else { "queue_retry" } })
        }
        TxStatus::Queued { payment, position } => {
            json!({ "position": position, "payment": queued_json(&payment) })
        }
        TxStatus::Cancelled { height }
        | TxStatus::Expired { height }
        | TxStatus::PendingExpired { height } => json!({ "height": height }),
        TxStatus::Pending(pending) => json!({
            "debit_account": pending.debit_account,
            "credit_account": pending.credit_account,
            "amount": pending.amount,
            "expires_at_ms": pending.expires_at_ms,
            "created_height": pending.created_height,
        }),
        TxStatus::Posted { by, amount } => json!({ "by": by.to_string(), "amount": amount }),
        TxStatus::Voided { by } => json!({ "by": by.to_string() }),
        TxStatus::Unknown | TxStatus::Settled => json!({}),
    };
    if let (Some(out), Value::Object(extra)) = (value.as_object_mut(), fields) {
        out.extend(extra);
    }
    value
}

fn logged_json(logged: &LoggedTx) -> Value {
    let record = &logged.record;
    json!({
        "height": logged.height,
        "timestamp_ms": logged.timestamp_ms,
        "index": logged.index,
        "id": record.id().to_string(),
        "kind": record.kind().map_or("unknown", |kind| kind.name()),
        "debit_account": record.debit_account(),
        "credit_account": record.credit_account(),
        "amount": record.amount(),
        "result": logged.result.name(),
    })
}

fn answer(args: &QueryArgs, ledger: &Ledger) -> anyhow::Result<Value> {
    let log_config = LogConfig::default();
    Ok(match &args.what {
        QueryCommand::Balance { account } => {
            let Some(found) = ledger.account(*account) else {
                anyhow::bail!("account {account} is not in this ledger");
            };
            json!({
                "account": found.id,
                "role": found.role.name(),
                "balance": found.balance,
                "available": found.available().to_string(),
                "debits_pending": found.debits_pending,
                "credits_pending": found.credits_pending,
                "overdraft_max": found.overdraft_max,
                "balance_max": found.balance_max,
                "suspended": found.suspended,
                "queued_out": ledger.queued_payments(Some(found.id)).len(),
            })
        }
        QueryCommand::Status { id } => {
            let scan = transaction_history(&args.data_dir, log_config, *id)?;
            let mut value = status_json(&ledger.status(*id));
            value["id"] = json!(id.to_string());
            value["blocks"] = scan.found.iter().map(logged_json).collect();
            if scan.first_height > 1 {
                value["note"] = json!(format!(
                    "blocks before {} are archived and not searched",
                    scan.first_height
                ));
            }
            value
        }
        QueryCommand::History { account } => {
            if ledger.account(*account).is_none() {
                anyhow::bail!("account {account} is not in this ledger");
            }
            let scan = account_history(&args.data_dir, log_config, *account)?;
            let entries: Vec<Value> = scan
                .found
                .iter()
                .map(|logged| {
                    let mut value = logged_json(logged);
                    if logged.result.is_ok() {
                        value["status"] = status_json(&ledger.status(logged.record.id()));
                    }
                    value
                })
                .collect();
            json!({
                "account": account,
                "first_height": scan.first_height,
                "last_height": scan.last_height,
                "transactions": entries,
            })
        }
        QueryCommand::Queue { bank } => {
            let queued: Vec<Value> = ledger
                .queued_payments(*bank)
                .iter()
                .map(queued_json)
                .collect();
            json!({ "count": queued.len(), "queue": queued })
        }
        QueryCommand::TaxReport {
            merchant,
            from_day,
            to_day,
        } => {
            let rows = ledger.tax_report(*merchant, *from_day, *to_day);
            let mut net_total: i128 = 0;
            let rows: Vec<Value> = rows
                .iter()
                .map(|row| {
                    net_total += row.totals.net_tax();
                    json!({
                        "payee": row.payee,
                        "category": row.category,
                        "payments": row.totals.payments,
                        "gross": row.totals.gross.to_string(),
                        "tax": row.totals.tax.to_string(),
                        "refunds": row.totals.refunds,
                        "refunded_gross": row.totals.refunded_gross.to_string(),
                        "refunded_tax": row.totals.refunded_tax.to_string(),
                        "net_tax": row.totals.net_tax().to_string(),
                    })
                })
                .collect();
            json!({
                "from_day": from_day,
                "to_day": to_day,
                "rows": rows,
                "net_tax": net_total.to_string(),
            })
        }
    })
}

pub fn run(args: &QueryArgs) -> anyhow::Result<ExitCode> {
    let genesis = Genesis::load(&args.genesis)?;
    let recovered = replay_dir(&genesis, &NodeConfig::new(args.data_dir.clone()))?;
    let mut value = answer(args, &recovered.ledger)?;
    value["ledger_height"] = json!(recovered.height);
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(ExitCode::SUCCESS)
}
