//! A node as one validator of a network: the names a validator's operator and tools use.
//! The consensus stage itself is a stage of the node (`node::consensus`); the messages on
//! validator links are `consensus::wire`. `cluster` starts validators on loopback in one
//! process, for the demo, the benchmarks and tests.

pub mod cluster;
/// The cluster simulator over the production consensus stage (tests only).
#[cfg(feature = "simulator")]
pub use crate::node::consensus::sim;

pub use crate::consensus::wire;
/// The consensus state file and evidence file (kept with the node's other files in `log`).
pub use crate::log::consensus_state as state_file;
pub use crate::node::consensus::{
    ValidatorConfig, PEER_EVENTS_MAX, SYNC_BLOCKS_PER_REQUEST, VALIDATOR_BLOCK_TX_MAX,
};
