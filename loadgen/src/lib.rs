//! tally-loadgen: workloads, open-loop pacing, latency histograms and reports.
//!
//! Latency is measured from the intended send time of each transaction (open loop), so a
//! stalled node shows up in the figures instead of silently slowing the sender down
//! (no coordinated omission).
#![forbid(unsafe_code)]

pub mod demo;
pub mod driver;
pub mod population;
pub mod report;
pub mod workload;

pub use driver::{run, RunConfig, RunResult};
pub use population::{Population, PopulationSpec};
pub use workload::{presign, TransferMix};
