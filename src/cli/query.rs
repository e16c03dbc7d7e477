//! `tally query`: queries over a stopped node's data directory, answered offline by replaying
//! its log (from the newest intact checkpoint) over the genesis. Each subcommand is one or two
//! protocol queries (`tally_protocol::query::Query`), answered by the engine's one answer
//! function (the network server's) plus the log queries only this path can answer; the
//! answers are printed as JSON in the protocol's shape (docs/PROTOCOL.md, "Queries").

use std::path::PathBuf;
use std::process::ExitCode;
use tally_engine::genesis::Genesis;
use tally_engine::log::LogConfig;
use tally_engine::net::query::{Answer, Query, QueryResult};
use tally_engine::node::{replay_dir, NodeConfig};
use tally_engine::query::answer_offline;

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
    /// An account's balance, limits, reservations and suspension (the `account` query).
    Balance {
        /// Account id.
        account: u64,
    },
    /// A transaction's status (settled, queued, pending, cancelled, expired...) and every
    /// block that carried it with its result code (rejected: why): the `tx_status` and
    /// `tx_history` queries.
    Status {
        /// Transaction id (decimal u128).
        id: u128,
    },
    /// Every transaction of the live log that names the account, with its result code (the
    /// `account_history` query).
    History {
        /// Account id.
        account: u64,
    },
    /// The RTGS queues in settlement order, of one bank or all (the `queue` query).
    Queue {
        /// Only this payer bank's queue.
        #[arg(long)]
        bank: Option<u64>,
    },
    /// Tax per merchant, category and basis over a period of business days (the
    /// `tax_report` query).
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
    /// Any protocol query, as the JSON a client sends (`'{"balance":{"account":5}}'`).
    Ask {
        /// The query (docs/PROTOCOL.md, "Queries").
        query: String,
    },
}

/// What `tally query` prints.
#[derive(serde::Serialize)]
struct Printed {
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
        QueryCommand::History { account } => vec![Query::AccountHistory { account: *account }],
        QueryCommand::Queue { bank } => vec![Query::Queue { payer: *bank }],
        QueryCommand::TaxReport {
            merchant,
            from_day,
            to_day,
        } => vec![Query::TaxReport {
            payee: *merchant,
            from_day: *from_day,
            to_day: *to_day,
        }],
        QueryCommand::Ask { query } => {
            vec![serde_json::from_str(query)
                .map_err(|error| anyhow::anyhow!("not a query: {error}"))?]
        }
    })
}

pub fn run(args: &QueryArgs) -> anyhow::Result<ExitCode> {
    let queries = queries(&args.what)?;
    let genesis = Genesis::load(&args.genesis)?;
    let recovered = replay_dir(&genesis, &NodeConfig::new(args.data_dir.clone()))?;
    let mut answers = Vec::with_capacity(queries.len());
    for query in &queries {
        match answer_offline(
            &recovered.ledger,
            &args.data_dir,
            LogConfig::default(),
            query,
        )? {
            QueryResult::Ok(answer) => answers.push(answer),
            QueryResult::Error(why) => anyhow::bail!("{why}"),
        }
    }
    // Serialised directly (not through `serde_json::Value`, which has no room for u128 ids).
    let printed = Printed {
        ledger_height: recovered.height,
        answers,
    };
    println!("{}", serde_json::to_string_pretty(&printed)?);
    Ok(ExitCode::SUCCESS)
}
