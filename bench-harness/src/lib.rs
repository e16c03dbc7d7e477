//! tally-bench: measurements of each stage beside the ceiling measured in the same run.
//!
//! Every figure is quoted as a ratio to a ceiling taken on the same machine in the same run
//! (ed25519-zebra's batch verifier, the blake3 crate over the same leaves, raw write +
//! fdatasync on the same disk), because the machines are shared and noisy.
#![forbid(unsafe_code)]

pub mod access;
pub mod distance;
pub mod executor;
pub mod latency;
pub mod merkle;
pub mod pipeline;
pub mod proof;
pub mod queries;
pub mod runner;
pub mod sigverify;
pub mod storage;
