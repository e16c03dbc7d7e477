//! tally-loadgen: workloads, open-loop pacing, latency histograms and reports.
//!
//! Latency is measured from the intended send time of each transaction (open loop), so a
//! stalled node shows up in the figures instead of silently slowing the sender down
//! (no coordinated omission).
//!
//! The crate depends on tally-protocol alone: it drives nodes over the network through the
//! client library. The `engine` feature adds what runs nodes in this process (the in-process
//! and cluster targets, the session's in-process target, `demo`, `cluster`).
#![forbid(unsafe_code)]

#[cfg(feature = "engine")]
pub mod cluster;
#[cfg(feature = "engine")]
pub mod demo;
pub mod driver;
pub mod html;
pub mod pacing;
pub mod population;
pub mod recording;
pub mod relay;
pub mod report;
pub mod session;
pub mod sweep;
pub mod target;
pub mod workload;

pub use driver::{run, RunConfig, RunResult};
pub use pacing::Pacing;
pub use population::{Population, PopulationSpec};
pub use target::Target;
pub use workload::{presign, Distribution, TransferMix, WorkloadName};
