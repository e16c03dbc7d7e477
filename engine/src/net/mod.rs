//! The network front of a node: frames, the client protocol, the mio server, the blocking
//! client library, the `/metrics` HTTP endpoint and the `tally node` service
//! (docs/PROTOCOL.md part 2, docs/OPERATIONS.md).
//!
//! Validator-to-validator traffic (consensus messages, block sync) uses the same frames on
//! separate, authenticated links (`peers`); its message types (`0x40..=0x7F`) are refused on
//! client connections.

pub mod client;
pub mod config;
pub mod frame;
pub mod http;
pub mod message;
pub mod peers;
pub mod query;
pub mod server;
pub mod service;

pub use client::{Client, ClientError, ClientOptions};
pub use peers::{PeerConfig, PeerEvent, PeerLinks, PeerSendError, PeerSpec, PeerStats};
pub use server::{Server, ServerConfig};
pub use service::{NodeService, ServiceConfig};

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
