//! When each transaction is meant to be sent.
//!
//! Open loop: every transaction has an intended send time fixed before the run starts, at a
//! constant rate or as a Poisson process (exponential gaps, seeded), and latency is measured
//! from that time: a node that stalls makes the sender fall behind, and the time it fell
//! behind counts in every latency it delayed (no coordinated omission). Closed loop: send as
//! fast as the node acknowledges, with a bound on transactions in flight.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::fmt;

/// How the sender paces itself.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pacing {
    /// As fast as the target takes them, at most `in_flight_tx_max` unacknowledged.
    Closed { in_flight_tx_max: usize },
    /// Open loop at a constant rate.
    Fixed { rate_per_s: f64 },
    /// Open loop, Poisson arrivals at a mean rate; the same seed gives the same schedule.
    Poisson { rate_per_s: f64, seed: u64 },
}

impl Pacing {
    /// The mean open-loop rate, `None` for closed loop.
    pub fn rate_per_s(&self) -> Option<f64> {
        match *self {
            Pacing::Closed { .. } => None,
            Pacing::Fixed { rate_per_s } | Pacing::Poisson { rate_per_s, .. } => Some(rate_per_s),
        }
    }

    /// Intended send times in nanoseconds from the start, one per transaction, non-decreasing;
    /// `None` for closed loop.
    pub fn schedule_ns(&self, count: usize) -> Option<Vec<u64>> {
        self.times().map(|times| times.take(count).collect())
    }

    /// The same send times as [`Pacing::schedule_ns`], computed one at a time (a long run
    /// never holds its whole schedule); `None` for closed loop.
    pub fn times(&self) -> Option<SendTimes> {
        match *self {
            Pacing::Closed { .. } => None,
            Pacing::Fixed { rate_per_s } => Some(SendTimes {
                rate_per_s,
                poisson: None,
                index: 0,
                at_s: 0.0,
            }),
            Pacing::Poisson { rate_per_s, seed } => Some(SendTimes {
                rate_per_s,
                poisson: Some(ChaCha20Rng::seed_from_u64(seed)),
                index: 0,
                at_s: 0.0,
            }),
        }
    }
}

/// Open-loop send times in nanoseconds from the start, one per transaction.
pub struct SendTimes {
    rate_per_s: f64,
    poisson: Option<ChaCha20Rng>,
    index: u64,
    at_s: f64,
}

impl Iterator for SendTimes {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let at = match &mut self.poisson {
            None => (self.index as f64 / self.rate_per_s * 1e9) as u64,
            Some(rng) => {
                let at = (self.at_s * 1e9) as u64;
                // Inverse transform of an exponential gap with mean 1 / rate.
                let uniform: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
                self.at_s += -uniform.ln() / self.rate_per_s;
                at
            }
        };
        self.index += 1;
        Some(at)
    }
}

impl fmt::Display for Pacing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pacing::Closed { in_flight_tx_max } => {
                write!(f, "closed loop, at most {in_flight_tx_max} in flight")
            }
            Pacing::Fixed { rate_per_s } => write!(f, "open loop, {rate_per_s:.0} tx/s constant"),
            Pacing::Poisson { rate_per_s, seed } => {
                write!(
                    f,
                    "open loop, Poisson at {rate_per_s:.0} tx/s mean (seed {seed})"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_schedule_is_evenly_spaced() {
        let schedule = Pacing::Fixed { rate_per_s: 1000.0 }.schedule_ns(5).unwrap();
        assert_eq!(
            schedule,
            vec![0, 1_000_000, 2_000_000, 3_000_000, 4_000_000]
        );
    }

    #[test]
    fn poisson_schedule_has_the_mean_rate_and_exponential_gaps() {
        let seed = 0x5eed;
        println!("seed {seed}");
        let count = 200_000;
        let schedule = Pacing::Poisson {
            rate_per_s: 10_000.0,
            seed,
        }
        .schedule_ns(count)
        .unwrap();
        assert!(schedule.windows(2).all(|w| w[0] <= w[1]));
        let span_s = *schedule.last().unwrap() as f64 / 1e9;
        let rate = (count - 1) as f64 / span_s;
        assert!((rate - 10_000.0).abs() < 200.0, "mean rate {rate}");
        // Exponential gaps: the coefficient of variation is 1 (a fixed rate has 0).
        let gaps: Vec<f64> = schedule.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let variance = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        let cv = variance.sqrt() / mean;
        assert!((cv - 1.0).abs() < 0.05, "coefficient of variation {cv}");
        // The same seed gives the same schedule; another seed another one.
        let again = Pacing::Poisson {
            rate_per_s: 10_000.0,
            seed,
        }
        .schedule_ns(count)
        .unwrap();
        assert_eq!(schedule, again);
        let other = Pacing::Poisson {
            rate_per_s: 10_000.0,
            seed: seed + 1,
        }
        .schedule_ns(count)
        .unwrap();
        assert_ne!(schedule, other);
    }

    #[test]
    fn closed_loop_has_no_schedule() {
        assert!(Pacing::Closed {
            in_flight_tx_max: 10
        }
        .schedule_ns(10)
        .is_none());
    }
}
