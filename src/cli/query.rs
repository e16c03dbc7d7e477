//! `tally query`: the ledger's queries, asked of a running node (`--node`, repeatable for
//! failover, over the client protocol with the identity's read privacy) or answered offline
//! over a stopped node's data directory (`--data-dir`, replayed from the newest intact
//! checkpoint over the genesis; it refuses a directory that holds no log). Each subcommand is
//! one or two protocol queries (`tally_protocol::query::Query`), answered by the engine's
//! one set of answer functions on both paths, and printed as JSON in one shape:
//! `{"ledger_height": H, "answers": [...]}` (docs/PROTOCOL.md, "Queries").

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tally_engine::genesis::Genesis;
use tally_engine::log::LogConfig;
use tally_engine::net::query::{Answer, HistoryCursor, Query, QueryResult};
use tally_engine::net::ClientOptions;
use tally_engine::node::{replay_dir, NodeConfig};
use tally_engine::query::{answer_offline, check_data_dir};

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["nodes", "data_dir"])))]
pub struct QueryArgs {
    /// A running node's client address (host:port); repeat for failover.
    #[arg(long = "node")]
    nodes: Vec<String>,
    #[command(flatten)]
    access: super::Access,
    /// A stopped node's data directory (its `data_dir`; the node must not be running).
    #[arg(long, conflicts_with_all = ["nodes", "identity", "insecure_plaintext"])]
    data_dir: Option<PathBuf>,
    /// With --data-dir: the node's archive directory (its `archive_dir`), where the blocks
    /// before the live log are; history older than the live log is read from there.
    #[arg(long, requires = "data_dir")]
    archive_dir: Option<PathBuf>,
    /// The network's genesis file: needed with --data-dir; with --node, the node is checked
    /// to run it.
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// Seconds to wait for a connection and each answer (--node).
    #[arg(long, default_value_t = 10)]
    timeout_s: u64,
    #[command(subcommand)]
    what: QueryCommand,
}

#[derive(clap::Subcommand, Debug)]
enum QueryCommand {
    /// An account's balance, limits, reservations and suspension (the `account` query).
    Balance {
        /// Account id.
        account: u64,
    },
    /// A transaction's status (settled, queued and where, pending, cancelled, expired...)
    /// and every block that carried it with its result code (a refusal's reason): the
    /// `tx_status` and `tx_history` queries, found through the history index for any block
    /// since the genesis (a transaction older than the ledger's windows too).
    Status {
        /// Transaction id (decimal u128).
        id: u128,
    },
    /// One page of the transactions that name the account, oldest first, with their result
    /// codes and statuses (the `account_history` query); the answer's `next` is where the
    /// next page starts (--from-height, --from-index).
    History {
        /// Account id.
        account: u64,
        /// The block the page starts at (default: the first block the history index covers).
        #[arg(long)]
        from_height: Option<u64>,
        /// The transaction of that block the page starts at.
        #[arg(long, default_value_t = 0)]
        from_index: u64,
        /// Most transactions in the page (default 100, at most 1000).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// The RTGS queues in settlement order, of one bank or all (the `queue` query).
    Queue {
        /// Only this payer bank's queue.
        #[arg(long)]
        bank: Option<u64>,
    },
    /// Open two-phase reservations, of one account or all, one page in id order (the
    /// `pending_transfers` query); the answer's `next` is where the next page starts
    /// (--after).
    Pending {
        /// Only those debiting or crediting this account.
        #[arg(long)]
        account: Option<u64>,
        /// Only reservations with ids after this one (the previous page's `next`).
        #[arg(long)]
        after: Option<u128>,
        /// Most reservations in the page (default and at most 1000).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Tax per merchant, category and basis over a period of business days (the
    /// `tax_report` query).
    TaxReport {
        /// Only this payee.
        #[arg(long)]
        merchant: Option<u64>,
        /// First business day (days since the first cut-off, or with a calendar the date as
        /// days since 1970-01-01; default: the first).
        #[arg(long, default_value_t = 0)]
        from_day: u64,
        /// Last business day, included (default: open, to the last).
        #[arg(long)]
        to_day: Option<u64>,
    },
    /// The ledger's totals: money in circulation, queued and reserved value, tax collected
    /// (the `totals` query; the central bank and auditors).
    Totals,
    /// The validator set in force, the next epoch's keys and the pending votes.
    Validators,
    /// The business day: its number and date, its phase (closed, before opening, open,
    /// after a cut-off), the next boundary of the schedule and what waits in the queues and
    /// the warehouse (the `business_day` query).
    BusinessDay,
    /// Any protocol query, as the JSON a client sends (`'{"balance":{"account":5}}'`).
    Ask {
        /// The query (docs/PROTOCOL.md, "Queries").
        query: String,
    },
}

/// What `tally query` prints, on both paths.
#[derive(serde::Serialize)]
struct Printed {
    /// The height the answers are of: the node's last durable block when asked, or the
    /// last block replayed from the data directory.
    ledger_height: u64,
    answers: Vec<Answer>,
}

/// The protocol queries a subcommand asks.
fn queries(what: &QueryCommand) -> anyhow::Result<Vec<Query>> {
    Ok(match what {
        QueryCommand::Balance { account } => vec![Query::Account { account: *account }],
        QueryCommand::Status { id } => {
            vec![Query::TxStatus { id: *id }, Query::TxHistory { id: *id }]
        }
        QueryCommand::History {
            account,
            from_height,
            from_index,
            limit,
        } => vec![Query::AccountHistory {
            account: *account,
            from: from_height.map(|height| HistoryCursor {
                height,
                index: *from_index,
            }),
            limit: *limit,
        }],
        QueryCommand::Queue { bank } => vec![Query::Queue { payer: *bank }],
        QueryCommand::Pending {
            account,
            after,
            limit,
        } => vec![Query::PendingTransfers {
            account: *account,
            after: *after,
            limit: *limit,
        }],
        QueryCommand::TaxReport {
            merchant,
            from_day,
            to_day,
        } => vec![Query::TaxReport {
            payee: *merchant,
            from_day: *from_day,
            to_day: to_day.unwrap_or(u64::MAX),
        }],
        QueryCommand::Totals => vec![Query::Totals],
        QueryCommand::Validators => vec![Query::Validators],
        QueryCommand::BusinessDay => vec![Query::BusinessDay],
        QueryCommand::Ask { query } => {
            vec![serde_json::from_str(query)
                .map_err(|error| anyhow::anyhow!("not a query: {error}"))?]
        }
    })
}

pub fn run(args: &QueryArgs) -> anyhow::Result<ExitCode> {
    let queries = queries(&args.what)?;
    let printed = match &args.data_dir {
        Some(data_dir) => offline(args, data_dir, &queries)?,
        None => online(args, &queries)?,
    };
    // Serialised directly (not through `serde_json::Value`, which has no room for u128 ids).
    println!("{}", serde_json::to_string_pretty(&printed)?);
    Ok(ExitCode::SUCCESS)
}

fn offline(
    args: &QueryArgs,
    data_dir: &std::path::Path,
    queries: &[Query],
) -> anyhow::Result<Printed> {
    let Some(genesis) = &args.genesis else {
        anyhow::bail!(
            "--data-dir needs --genesis: the network's genesis file, replayed under the log"
        );
    };
    let genesis = Genesis::load(genesis)?;
    // Before anything opens it: opening creates what is missing.
    check_data_dir(data_dir)?;
    let recovered = replay_dir(&genesis, &NodeConfig::new(data_dir.to_path_buf()))?;
    let mut answers = Vec::with_capacity(queries.len());
    for query in queries {
        match answer_offline(
            &recovered.ledger,
            data_dir,
            args.archive_dir.as_deref(),
            LogConfig::default(),
            query,
        )? {
            QueryResult::Ok(answer) => answers.push(answer),
            QueryResult::Error(why) => anyhow::bail!("{why}"),
        }
    }
    Ok(Printed {
        ledger_height: recovered.height,
        answers,
    })
}

fn online(args: &QueryArgs, queries: &[Query]) -> anyhow::Result<Printed> {
    let timeout = Duration::from_secs(args.timeout_s.max(1));
    let options = ClientOptions {
        connect_timeout: timeout,
        request_timeout: timeout,
        tls: args.access.tls()?,
        ..ClientOptions::default()
    };
    let genesis_hash = match &args.genesis {
        Some(path) => Some(Genesis::load(path)?.hash()),
        None => None,
    };
    let connected =
        tally_protocol::operator::connect_any(&args.nodes, &options, genesis_hash.as_ref())?;
    let client = &connected.client;
    let ledger_height = client.status()?.height;
    let mut answers = Vec::with_capacity(queries.len());
    for query in queries {
        match client.query(query) {
            Ok(answer) => answers.push(answer),
            Err(error) => anyhow::bail!("node {}: {error}", connected.node),
        }
    }
    Ok(Printed {
        ledger_height,
        answers,
    })
}
