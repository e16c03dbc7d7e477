//! The network front of a node: the mio server, query answering, the `/metrics` HTTP
//! endpoint and the `tally node` service (docs/PROTOCOL.md part 2, docs/OPERATIONS.md). The
//! frames, the client protocol and the blocking client library are tally-protocol's,
//! re-exported here.
//!
//! Validator-to-validator traffic (consensus messages, block sync) uses the same frames on
//! separate, authenticated links (`peers`); its message types (`0x40..=0x7F`) are refused on
//! client connections.

pub mod access;
pub mod audit;
pub mod config;
mod conn;
mod event_loop;
pub mod http;
pub mod peers;
pub mod query;
pub mod server;
pub mod service;
pub mod tls;

// Frames, client messages and the client library are the protocol's (tally-protocol), at
// their old paths; `query` adds the engine's answering to the protocol's query types.
pub use client::{Client, ClientError, ClientOptions};
pub use peers::{PeerConfig, PeerEvent, PeerLinks, PeerSendError, PeerSpec, PeerStats};
pub use server::{Server, ServerConfig};
pub use service::{NodeService, ServiceConfig};
pub use tally_protocol::{client, frame, message};

/// Decodes every frame and message at the front of `bytes` the way the server does, until
/// the bytes run out or one is refused; returns how many frames decoded. The fuzz target
/// (`fuzz/fuzz_targets/net_decode.rs`) and the seeded decoder test feed it hostile bytes: it
/// must never panic, whatever the input.
pub fn decode_all(mut bytes: &[u8]) -> usize {
    let mut frames = 0;
    while let Ok(Some((frame, used))) = frame::decode(bytes) {
        frames += 1;
        if let Ok(message) = message::Message::decode(frame) {
            // What the node does with a decoded message must not panic either.
            let mut again = Vec::new();
            if !matches!(message, message::Message::Results(ref acks) if acks.is_empty()) {
                message.encode(&mut again);
            }
        }
        bytes = &bytes[used..];
    }
    frames
}
