//! Frame and client-message decoding on arbitrary bytes: must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tally_engine::net::decode_all(data);
});
