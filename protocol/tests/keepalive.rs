//! Keepalive: a node that stops answering without closing the connection (no reset, as
//! behind a cut link) is noticed within the bounds the caller gives; an idle connection
//! and a node that answers are left alone.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};
use tally_protocol::client::{Client, ClientOptions};
use tally_protocol::message::{Message, Welcome, PROTOCOL_VERSION};

/// A fake node: welcomes one client, then reads and never answers (nor closes).
fn silent_node() -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let thread = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut welcome = Vec::new();
        Message::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            network_id: 7,
            genesis_hash: [1; 32],
            height: 0,
            submit_batch_tx_max: 1024,
            inflight_tx_max: 4096,
        })
        .encode(&mut welcome);
        stream.write_all(&welcome).unwrap();
        // Swallow whatever comes until the client goes.
        let mut sink = [0u8; 4096];
        while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    });
    (address, thread)
}

#[test]
fn a_silent_node_is_given_up_within_the_bounds_and_an_idle_one_is_not() {
    let (address, node) = silent_node();
    let options = ClientOptions {
        request_timeout: Duration::from_secs(30),
        ..ClientOptions::default()
    };
    let client = std::sync::Arc::new(Client::connect_with(address.as_str(), &options).unwrap());
    let (silence, probe) = (Duration::from_millis(300), Duration::from_millis(300));
    // Idle: nothing awaits an answer, so silence is no sign of trouble.
    std::thread::sleep(silence * 2);
    assert_eq!(client.keep_alive(silence, probe), None);
    assert!(client.connection_error().is_none());
    // A request waits (its own timeout is 30 s); the watchdog gives the node up within
    // silence + probe instead.
    let asking = {
        let client = std::sync::Arc::clone(&client);
        std::thread::spawn(move || client.status())
    };
    let started = Instant::now();
    let reason = loop {
        if let Some(reason) = client.keep_alive(silence, probe) {
            break reason;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never given up");
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = started.elapsed();
    println!("given up after {took:?}: {reason}");
    assert!(
        took < silence + probe + Duration::from_millis(500),
        "{took:?}"
    );
    assert!(
        reason.contains("did not answer a keepalive status query"),
        "{reason}"
    );
    assert!(client.silent_for() >= silence);
    // The waiting request fails at once with the reason, not after its own 30 s.
    assert!(asking.join().unwrap().is_err());
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(client);
    node.join().unwrap();
}
