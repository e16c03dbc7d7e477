//! tally-protocol: what a client of a Tally network needs, without the engine or the GPU: the
//! 192-byte transaction record and its signing message, result codes, the tax arithmetic,
//! the genesis and key files, identities (TLS certificates), the network frames and client
//! messages, the query and answer types, and the blocking client library (docs/PROTOCOL.md
//! part 2). A participant's gateway, the load generator and any SDK depend on this crate
//! alone; the engine re-exports it.
#![forbid(unsafe_code)]

pub mod amount;
pub mod calendar;
pub mod client;
pub mod events;
pub mod frame;
pub mod genesis;
pub mod http;
pub mod identity;
pub mod journal;
pub mod keys;
pub mod message;
pub mod operator;
pub mod proof;
pub mod query;
pub mod result;
pub mod submit;
pub mod tax;
pub mod tx;

pub use client::{Client, ClientError, ClientOptions};
pub use result::ResultCode;
pub use submit::{Ack, SubmitError};
pub use tx::TxRecord;
