//! Metric primitives: counters, gauges and bucketed histograms in atomics, and the writer of
//! the Prometheus text format 0.0.4. What a node measures and its `/metrics` page are
//! `node::metrics` (docs/OPERATIONS.md).
//!
//! Stages record per batch, not per transaction: a stage that times many transactions at
//! once counts them into a [`LocalHistogram`] and adds it to the shared one in one step.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// A monotonically increasing count.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Default, Debug)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }
    pub fn add(&self, delta: i64) {
        self.0.fetch_add(delta, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the latency buckets, in seconds (50 us to 10 s).
pub const LATENCY_BOUNDS_S: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds of the batch-size buckets (1 to 65536).
pub const SIZE_BOUNDS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
    16384.0, 65536.0,
];

/// A histogram with fixed buckets. Values are recorded in integer units (nanoseconds for
/// latencies, items for sizes) and written out scaled (seconds, items).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Bound of each bucket in recorded units.
    bounds_units: Vec<u64>,
    /// Per-bucket counts (not cumulative); the last is `+Inf`.
    counts: Vec<AtomicU64>,
    sum_units: AtomicU64,
    /// Recorded unit in the written unit (1e-9 for nanoseconds to seconds).
    unit: f64,
}

impl Histogram {
    fn with_bounds(bounds: &'static [f64], unit: f64) -> Histogram {
        Histogram {
            bounds,
            bounds_units: bounds.iter().map(|b| (b / unit).round() as u64).collect(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_units: AtomicU64::new(0),
            unit,
        }
    }

    /// A latency histogram (record with [`Histogram::observe_duration`]).
    pub fn latency() -> Histogram {
        Histogram::with_bounds(LATENCY_BOUNDS_S, 1e-9)
    }

    /// A size histogram (record with [`Histogram::observe`]).
    pub fn sizes() -> Histogram {
        Histogram::with_bounds(SIZE_BOUNDS, 1.0)
    }

    fn bucket(&self, units: u64) -> usize {
        self.bounds_units.partition_point(|&bound| bound < units)
    }

    /// Records one value in recorded units.
    pub fn observe(&self, units: u64) {
        self.counts[self.bucket(units)].fetch_add(1, Ordering::Relaxed);
        self.sum_units.fetch_add(units, Ordering::Relaxed);
    }

    pub fn observe_duration(&self, duration: Duration) {
        self.observe(duration.as_nanos().min(u128::from(u64::MAX)) as u64);
    }

    /// A local accumulator with this histogram's buckets.
    pub fn local(&self) -> LocalHistogram<'_> {
        LocalHistogram {
            target: self,
            counts: vec![0; self.counts.len()],
            sum_units: 0,
        }
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Sum of observations in written units.
    pub fn sum(&self) -> f64 {
        self.sum_units.load(Ordering::Relaxed) as f64 * self.unit
    }

    /// Each bucket's count now (not cumulative, the last one `+Inf`), to subtract from a
    /// later reading: what was observed in between.
    pub fn bucket_counts(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// The upper bound, in written units, of the bucket that holds quantile `q` (0 to 1) of
    /// the observations `counts` holds (per bucket, as [`Histogram::bucket_counts`] gives
    /// them, or a difference of two readings): "at most". `None` when `counts` is empty;
    /// infinity when the quantile lies beyond the last bound.
    pub fn quantile_bound(&self, counts: &[u64], q: f64) -> Option<f64> {
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(self.bounds.get(bucket).copied().unwrap_or(f64::INFINITY));
            }
        }
        Some(f64::INFINITY)
    }
}

/// Observations gathered on one thread, added to their histogram by [`LocalHistogram::flush`]
/// (or on drop).
pub struct LocalHistogram<'a> {
    target: &'a Histogram,
    counts: Vec<u64>,
    sum_units: u64,
}

impl LocalHistogram<'_> {
    pub fn observe(&mut self, units: u64) {
        self.counts[self.target.bucket(units)] += 1;
        self.sum_units = self.sum_units.saturating_add(units);
    }

    pub fn observe_duration(&mut self, duration: Duration) {
        self.observe(duration.as_nanos().min(u128::from(u64::MAX)) as u64);
    }

    /// Records `duration` `n` times (one per transaction of a batch that waited as one).
    pub fn observe_duration_n(&mut self, duration: Duration, n: u64) {
        let units = duration.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.counts[self.target.bucket(units)] += n;
        self.sum_units = self.sum_units.saturating_add(units.saturating_mul(n));
    }

    pub fn flush(&mut self) {
        for (shared, local) in self.target.counts.iter().zip(&mut self.counts) {
            if *local > 0 {
                shared.fetch_add(*local, Ordering::Relaxed);
                *local = 0;
            }
        }
        if self.sum_units > 0 {
            self.target
                .sum_units
                .fetch_add(self.sum_units, Ordering::Relaxed);
            self.sum_units = 0;
        }
    }
}

impl Drop for LocalHistogram<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Writes Prometheus text-format families.
pub struct TextEncoder {
    out: String,
}

impl Default for TextEncoder {
    fn default() -> TextEncoder {
        TextEncoder::new()
    }
}

impl TextEncoder {
    pub fn new() -> TextEncoder {
        TextEncoder {
            out: String::with_capacity(16 * 1024),
        }
    }

    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, help, "counter");
        let _ = writeln!(self.out, "{name} {value}");
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: i64) {
        self.header(name, help, "gauge");
        let _ = writeln!(self.out, "{name} {value}");
    }

    /// A counter family with one label.
    pub fn counter_family(&mut self, name: &str, help: &str, label: &str, values: &[(&str, u64)]) {
        self.header(name, help, "counter");
        for (value_label, value) in values {
            let _ = writeln!(
                self.out,
                "{name}{{{label}=\"{}\"}} {value}",
                escape_label(value_label)
            );
        }
    }

    /// A gauge family with one label.
    pub fn gauge_family(&mut self, name: &str, help: &str, label: &str, values: &[(&str, i64)]) {
        self.header(name, help, "gauge");
        for (value_label, value) in values {
            let _ = writeln!(
                self.out,
                "{name}{{{label}=\"{}\"}} {value}",
                escape_label(value_label)
            );
        }
    }

    /// A histogram family with one label.
    pub fn histogram_family(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        histograms: &[(&str, &Histogram)],
    ) {
        self.header(name, help, "histogram");
        for (value_label, histogram) in histograms {
            let value_label = escape_label(value_label);
            let mut cumulative = 0u64;
            for (i, count) in histogram.counts.iter().enumerate() {
                cumulative += count.load(Ordering::Relaxed);
                let le = match histogram.bounds.get(i) {
                    Some(bound) => format_float(*bound),
                    None => "+Inf".to_string(),
                };
                let _ = writeln!(
                    self.out,
                    "{name}_bucket{{{label}=\"{value_label}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                self.out,
                "{name}_sum{{{label}=\"{value_label}\"}} {}",
                format_float(histogram.sum())
            );
            let _ = writeln!(
                self.out,
                "{name}_count{{{label}=\"{value_label}\"}} {cumulative}"
            );
        }
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn format_float(value: f64) -> String {
    let text = format!("{value}");
    if text.contains('.') || text.contains('e') || text.contains("inf") || text.contains("NaN") {
        text
    } else {
        format!("{text}.0")
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_values_up_to_their_bound() {
        let h = Histogram::sizes();
        h.observe(1);
        h.observe(2);
        h.observe(3);
        h.observe(100_000);
        let counts: Vec<u64> = h.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(counts[0], 1); // le 1
        assert_eq!(counts[1], 1); // le 2
        assert_eq!(counts[2], 1); // le 4
        assert_eq!(*counts.last().unwrap(), 1); // +Inf
        assert_eq!(h.count(), 4);
        assert_eq!(h.sum(), 100_006.0);
        let l = Histogram::latency();
        {
            let mut local = l.local();
            local.observe_duration(Duration::from_micros(50));
            local.observe_duration(Duration::from_micros(51));
            assert_eq!(l.count(), 0, "nothing shared before the flush");
        }
        let counts: Vec<u64> = l.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(&counts[..2], &[1, 1]);
    }

    #[test]
    fn quantile_bounds_come_from_the_counts_between_two_readings() {
        let l = Histogram::latency();
        l.observe_duration(Duration::from_secs(3)); // before the first reading
        let before = l.bucket_counts();
        {
            let mut local = l.local();
            local.observe_duration_n(Duration::from_micros(40), 98);
            local.observe_duration(Duration::from_millis(7));
            local.observe_duration(Duration::from_secs(20));
        }
        let after = l.bucket_counts();
        let between: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        assert_eq!(between.iter().sum::<u64>(), 100);
        assert_eq!(l.quantile_bound(&between, 0.5), Some(0.000_05));
        assert_eq!(l.quantile_bound(&between, 0.98), Some(0.000_05));
        assert_eq!(l.quantile_bound(&between, 0.99), Some(0.01));
        assert_eq!(l.quantile_bound(&between, 1.0), Some(f64::INFINITY));
        assert_eq!(l.quantile_bound(&vec![0; between.len()], 0.5), None);
        assert!((l.sum() - (3.0 + 98.0 * 0.000_04 + 0.007 + 20.0)).abs() < 1e-9);
    }
}
