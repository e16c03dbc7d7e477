//! tally-engine: transaction format, mempool, executor, settlement, log and node.
//!
//! Unsafe code is denied in the whole crate; the one module that maps files into memory
//! (`log`) allows it locally, with a `// SAFETY:` comment on each block.
#![deny(unsafe_code)]

pub mod block;
pub mod consensus;
pub mod events;
pub mod ledger;
pub mod log;
pub mod mempool;
pub mod metrics;
pub mod net;
pub mod node;
pub mod proof;
pub mod query;
pub mod revocation;
pub mod validator;

// The record, result codes, tax arithmetic, genesis and key files are the protocol's (tally-protocol), at
// their old paths.
pub use tally_protocol::{calendar, genesis, keys, result, tax, tx};
