//! Query latency under load (issue 18): one node alone over TLS in this process. Its
//! maximum is measured first (closed loop through the client port); then an auditor's
//! connection asks a round of queries (an account, a transaction's status, a page of an
//! account's history) over and over, first with the node idle and then while the load
//! generator sends open loop at half that maximum. Each query kind's p50 and p99 under load
//! are reported beside the same on the idle node of the same run.

use crate::access::{AccessBenchError, Network};
use std::time::{Duration, Instant};
use tally_engine::net::query::Query;
use tally_engine::net::Client;
use tally_loadgen::driver::{run, RunConfig};
use tally_loadgen::target::RemoteTarget;
use tally_loadgen::workload::{presign, TransferMix};
use tally_loadgen::Pacing;

/// What to run.
#[derive(Clone, Debug)]
pub struct QueryOptions {
    /// Length of the closed-loop run and of the loaded run.
    pub duration: Duration,
    /// Records signed for the closed-loop run.
    pub tx_count: usize,
    /// Rounds of queries asked of the idle node.
    pub idle_rounds: usize,
    /// Pause between two rounds (the auditor's pace, under its query quota).
    pub pause: Duration,
}

impl QueryOptions {
    pub fn new(quick: bool) -> QueryOptions {
        QueryOptions {
            duration: Duration::from_secs(if quick { 4 } else { 10 }),
            tx_count: if quick { 400_000 } else { 1_000_000 },
            idle_rounds: if quick { 100 } else { 300 },
            pause: Duration::from_millis(10),
        }
    }
}

/// The query kinds measured, in the order of a round.
pub const KINDS: [&str; 3] = ["account", "tx_status", "account_history (100)"];

/// Latency percentiles of one query kind, in milliseconds.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub count: usize,
}

fn percentiles(samples: &mut [Duration]) -> Percentiles {
    samples.sort_unstable();
    let at = |q: f64| {
        let index = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[index].as_secs_f64() * 1e3
    };
    if samples.is_empty() {
        return Percentiles {
            p50_ms: f64::NAN,
            p99_ms: f64::NAN,
            count: 0,
        };
    }
    Percentiles {
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        count: samples.len(),
    }
}

/// Figures of the query measurement.
#[derive(Clone, Debug, serde::Serialize)]
pub struct QueryFigures {
    /// Closed-loop maximum and the open-loop rate offered while querying (half of it).
    pub max_tx_per_s: f64,
    pub offered_tx_per_s: f64,
    /// Acknowledged per second while querying.
    pub loaded_tx_per_s: f64,
    /// Per kind of `KINDS`: idle, and under load.
    pub idle: Vec<Percentiles>,
    pub loaded: Vec<Percentiles>,
}

/// Asks rounds of queries until `stop` says so (or `rounds` are done); returns each kind's
/// latencies.
fn ask_rounds(
    client: &Client,
    queries: &[Query],
    rounds: Option<usize>,
    pause: Duration,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<Vec<Vec<Duration>>, AccessBenchError> {
    let mut samples = vec![Vec::new(); queries.len()];
    let mut done = 0;
    while rounds.is_none_or(|rounds| done < rounds)
        && !stop.load(std::sync::atomic::Ordering::Relaxed)
    {
        for (query, samples) in queries.iter().zip(samples.iter_mut()) {
            let started = Instant::now();
            client
                .query(query)
                .map_err(|e| AccessBenchError::Stopped(format!("query {query:?}: {e}")))?;
            samples.push(started.elapsed());
        }
        done += 1;
        std::thread::sleep(pause);
    }
    Ok(samples)
}

/// Runs the measurement.
pub fn measure(options: &QueryOptions) -> Result<QueryFigures, AccessBenchError> {
    let network = Network::new()?;
    let records = presign(
        &network.population,
        &TransferMix {
            invalid_pct: 0,
            ..TransferMix::default()
        },
        0,
        options.tx_count * 2,
    );
    let (closed_records, open_records) = records.split_at(options.tx_count);
    let dir = tempfile::Builder::new()
        .prefix("tally-bench-queries-")
        .tempdir()
        .map_err(AccessBenchError::TempDir)?;
    let service = network.start(dir.path(), true)?;
    let address = vec![service.client_addr().to_string()];
    let target = RemoteTarget::connect(&address, 2, &network.client(Some(&network.honest))?)
        .map_err(|e| AccessBenchError::Connect(e.to_string()))?;
    let closed = run(
        &target,
        closed_records,
        &RunConfig {
            pacing: Pacing::Closed {
                in_flight_tx_max: 16_384,
            },
            duration: options.duration,
            drain_timeout: Duration::from_secs(30),
            ..RunConfig::default()
        },
    );
    if let Some(reason) = closed.stopped {
        return Err(AccessBenchError::Stopped(reason));
    }
    let max_tx_per_s = closed.throughput_per_s();
    let auditor = Client::connect_with(
        address[0].as_str(),
        &network.client(Some(&network.auditor))?,
    )
    .map_err(|e| AccessBenchError::Connect(e.to_string()))?;
    let bank = network.population.banks[0];
    let queries = [
        Query::Account { account: bank },
        Query::TxStatus {
            id: closed_records[0].id(),
        },
        Query::AccountHistory {
            account: bank,
            from: None,
            limit: Some(100),
        },
    ];
    let never = std::sync::atomic::AtomicBool::new(false);
    let mut idle = ask_rounds(
        &auditor,
        &queries,
        Some(options.idle_rounds),
        options.pause,
        &never,
    )?;
    let offered_tx_per_s = max_tx_per_s / 2.0;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (loaded_run, loaded) = std::thread::scope(|scope| {
        let asking = scope.spawn(|| {
            // the load settles for a second first
            std::thread::sleep(Duration::from_secs(1));
            ask_rounds(&auditor, &queries, None, options.pause, &stop)
        });
        let result = run(
            &target,
            open_records,
            &RunConfig {
                pacing: Pacing::Fixed {
                    rate_per_s: offered_tx_per_s,
                },
                duration: options.duration,
                drain_timeout: Duration::from_secs(30),
                ..RunConfig::default()
            },
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (result, asking.join().expect("the auditor's thread"))
    });
    let mut loaded = loaded?;
    drop(target);
    drop(auditor);
    let outcome = service.shutdown();
    if let Some(reason) = loaded_run.stopped.clone().or(outcome.fatal) {
        return Err(AccessBenchError::Stopped(reason));
    }
    Ok(QueryFigures {
        max_tx_per_s,
        offered_tx_per_s,
        loaded_tx_per_s: loaded_run.throughput_per_s(),
        idle: idle.iter_mut().map(|s| percentiles(s)).collect(),
        loaded: loaded.iter_mut().map(|s| percentiles(s)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let p = percentiles(&mut samples);
        assert_eq!((p.p50_ms, p.p99_ms, p.count), (50.0, 99.0, 100));
        let p = percentiles(&mut [Duration::from_millis(7)]);
        assert_eq!((p.p50_ms, p.p99_ms), (7.0, 7.0));
        assert!(percentiles(&mut []).p50_ms.is_nan());
    }
}
