//! What a run measured, in the forms load testers use: a text summary, JSON, an HdrHistogram
//! interval log (readable by HdrHistogram's own tools) and an HTML page with plots
//! ([`crate::html`]).

use crate::driver::RunResult;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tally_protocol::result::ResultCode;

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

    /// Counts by code name, for JSON.
    pub fn by_name(&self) -> BTreeMap<String, u64> {
        self.by_code
            .iter()
            .map(|(code, count)| (code.name().to_string(), *count))
            .collect()
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LatencyMs {
    /// Latencies recorded (warm-up excluded).
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub p99_99: f64,
    pub max: f64,
}

impl LatencyMs {
    pub fn of(histogram: &Histogram<u64>) -> LatencyMs {
        let ms = |us: u64| us as f64 / 1e3;
        LatencyMs {
            count: histogram.len(),
            mean: histogram.mean() / 1e3,
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p99_9: ms(histogram.value_at_quantile(0.999)),
            p99_99: ms(histogram.value_at_quantile(0.9999)),
            max: ms(histogram.max()),
        }
    }
}

/// One timeline interval, for JSON and plots.
#[derive(Clone, Debug, Serialize)]
pub struct IntervalReport {
    pub start_s: f64,
    /// The interval's length; the last one ends with the run's last acknowledgement.
    pub length_s: f64,
    pub acknowledged: u64,
    pub throughput_per_s: f64,
    pub latency_ms: LatencyMs,
    pub results: BTreeMap<String, u64>,
}

/// Everything a run measured, as written to JSON and drawn in HTML.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Format version of this JSON.
    pub report_version: u32,
    pub workload: String,
    pub target: String,
    pub pacing: String,
    /// Offered open-loop rate; `None` for closed loop.
    pub offered_rate_per_s: Option<f64>,
    pub warmup_s: f64,
    pub sent: u64,
    pub acknowledged: u64,
    pub busy_answers: u64,
    pub elapsed_s: f64,
    pub throughput_per_s: f64,
    pub latency_ms: LatencyMs,
    /// Latency (ms) at the percentiles of the HdrHistogram percentile plot.
    pub latency_distribution: Vec<(f64, f64)>,
    pub results: BTreeMap<String, u64>,
    pub timeline: Vec<IntervalReport>,
    pub stopped: Option<String>,
}

impl Report {
    pub fn new(workload: &str, result: &RunResult) -> Report {
        Report {
            report_version: 1,
            workload: workload.to_string(),
            target: result.target.clone(),
            pacing: result.pacing.to_string(),
            offered_rate_per_s: result.pacing.rate_per_s(),
            warmup_s: result.warmup.as_secs_f64(),
            sent: result.sent,
            acknowledged: result.acknowledged,
            busy_answers: result.busy_answers,
            elapsed_s: result.elapsed.as_secs_f64(),
            throughput_per_s: result.throughput_per_s(),
            latency_ms: LatencyMs::of(&result.latency_us),
            latency_distribution: distribution(&result.latency_us),
            results: result.counts.by_name(),
            timeline: result
                .timeline
                .iter()
                .map(|interval| {
                    let end_s = (interval.start_s + interval.length_s)
                        .min(result.elapsed.as_secs_f64())
                        .max(interval.start_s + 1e-3);
                    let length_s = end_s - interval.start_s;
                    IntervalReport {
                        start_s: interval.start_s,
                        length_s,
                        acknowledged: interval.acknowledged,
                        throughput_per_s: interval.acknowledged as f64 / length_s,
                        latency_ms: LatencyMs::of(&interval.latency_us),
                        results: interval.counts.by_name(),
                    }
                })
                .collect(),
            stopped: result.stopped.clone(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }
}

/// Percentiles from 0 to 99.999, spaced evenly in "number of nines" (the x axis of
/// HdrHistogram's percentile plots): (percentile, latency ms).
fn distribution(histogram: &Histogram<u64>) -> Vec<(f64, f64)> {
    if histogram.is_empty() {
        return Vec::new();
    }
    (0..=50)
        .map(|step| {
            let nines = f64::from(step) / 10.0; // 0 .. 5 nines
            let quantile = 1.0 - 10f64.powf(-nines);
            let quantile = quantile.clamp(0.0, 0.99999);
            (
                quantile * 100.0,
                histogram.value_at_quantile(quantile) as f64 / 1e3,
            )
        })
        .collect()
}

/// A plain-text summary: throughput, latency percentiles, counts by result code.
pub fn summary(result: &RunResult) -> String {
    let mut out = String::new();
    let latency = LatencyMs::of(&result.latency_us);
    let _ = writeln!(out, "target: {}; pacing: {}", result.target, result.pacing);
    let _ = writeln!(
        out,
        "throughput: {:.0} tx/s ({} acknowledged of {} sent in {:.2} s; {} busy answers)",
        result.throughput_per_s(),
        result.acknowledged,
        result.sent,
        result.elapsed.as_secs_f64(),
        result.busy_answers
    );
    let warmup = if result.warmup.is_zero() {
        String::new()
    } else {
        format!(", after {:.1} s warm-up", result.warmup.as_secs_f64())
    };
    let _ = writeln!(
        out,
        "latency (intended send to ack{warmup}): p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        latency.p50, latency.p99, latency.p99_9, latency.max
    );
    let _ = writeln!(out, "results:");
    for (code, count) in &result.counts.by_code {
        let _ = writeln!(out, "  {:<32} {count:>10}", code.name());
    }
    if let Some(reason) = &result.stopped {
        let _ = writeln!(out, "target stopped: {reason}");
    }
    out
}

/// Why a report file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode the HdrHistogram log: {0}")]
    Histogram(String),
}

/// The HdrHistogram interval log of a run: one compressed histogram per timeline interval,
/// latencies in microseconds (HdrHistogram's tools read it with a max value divisor of
/// 1000 for milliseconds).
pub fn hdr_interval_log(result: &RunResult) -> Result<Vec<u8>, ReportError> {
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let mut writer = IntervalLogWriterBuilder::new()
        .add_comment(
            "tally-loadgen latency log: microseconds from intended send to acknowledgement",
        )
        .with_start_time(result.started_at)
        .with_base_time(result.started_at)
        .begin_log_with(&mut out, &mut serializer)
        .map_err(|e| ReportError::Histogram(e.to_string()))?;
    let tag = Tag::new("latency_us");
    for interval in &result.timeline {
        writer
            .write_histogram(
                &interval.latency_us,
                Duration::from_secs_f64(interval.start_s),
                Duration::from_secs_f64(interval.length_s),
                tag,
            )
            .map_err(|e| ReportError::Histogram(format!("{e:?}")))?;
    }
    drop(writer);
    Ok(out)
}

/// The files written for one run.
#[derive(Clone, Debug)]
pub struct WrittenReport {
    pub summary: PathBuf,
    pub json: PathBuf,
    pub hdr_log: PathBuf,
    pub html: PathBuf,
}

/// Writes `summary.txt`, `report.json`, `latency.hlog` and `report.html` into `dir`.
pub fn write_all(
    dir: &Path,
    workload: &str,
    result: &RunResult,
) -> Result<WrittenReport, ReportError> {
    let write = |name: &str, bytes: &[u8]| -> Result<PathBuf, ReportError> {
        let path = dir.join(name);
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&path, bytes))
            .map_err(|source| ReportError::Write {
                path: path.clone(),
                source,
            })?;
        Ok(path)
    };
    let report = Report::new(workload, result);
    Ok(WrittenReport {
        summary: write("summary.txt", summary(result).as_bytes())?,
        json: write("report.json", report.to_json().as_bytes())?,
        hdr_log: write("latency.hlog", &hdr_interval_log(result)?)?,
        html: write("report.html", crate::html::render(&report).as_bytes())?,
    })
}
