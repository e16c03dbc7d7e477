//! Summaries of a run: counts by result code and latency percentiles.

use crate::driver::RunResult;
use std::collections::BTreeMap;
use std::fmt::Write;
use tally_engine::result::ResultCode;

/// Acknowledgements counted by result code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub by_code: BTreeMap<ResultCode, u64>,
}

impl Counts {
    pub fn add(&mut self, code: ResultCode) {
        *self.by_code.entry(code).or_insert(0) += 1;
    }

    pub fn total(&self) -> u64 {
        self.by_code.values().sum()
    }

    pub fn get(&self, code: ResultCode) -> u64 {
        self.by_code.get(&code).copied().unwrap_or(0)
    }
}

/// A plain-text summary: throughput, latency percentiles, counts by result code.
pub fn summary(result: &RunResult) -> String {
    let mut out = String::new();
    let latency = &result.latency_us;
    let ms = |us: u64| us as f64 / 1_000.0;
    let _ = writeln!(
        out,
        "throughput: {:.0} tx/s ({} acknowledged of {} sent in {:.2} s; {} busy answers)",
        result.throughput_per_s(),
        result.acknowledged,
        result.sent,
        result.elapsed.as_secs_f64(),
        result.busy_answers
    );
    let _ = writeln!(
        out,
        "latency (intended send to durable ack): p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        ms(latency.value_at_quantile(0.50)),
        ms(latency.value_at_quantile(0.99)),
        ms(latency.value_at_quantile(0.999)),
        ms(latency.max())
    );
    let _ = writeln!(out, "results:");
    for (code, count) in &result.counts.by_code {
        let _ = writeln!(out, "  {:<32} {count:>10}", code.name());
    }
    if let Some(reason) = &result.stopped {
        let _ = writeln!(out, "node stopped: {reason}");
    }
    out
}
