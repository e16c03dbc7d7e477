//! Frame, client-message, validator-handshake and validator-message decoding on arbitrary
//! bytes: must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tally_engine::net::decode_all(data);
    tally_engine::net::peers::decode_all_peer(data);
    if let Some((&kind, payload)) = data.split_first() {
        let _ = tally_engine::validator::wire::decode(kind, payload);
        let _ = tally_engine::validator::state_file::decode(payload);
    }
});
