//! `tally relay`: delaying TCP relays in front of validators, so a cluster on one machine
//! behaves as validators far apart (`tally_loadgen::relay`).

use anyhow::Context;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use tally_loadgen::relay::{LinkDelay, Relay};

#[derive(clap::Args, Debug)]
pub struct RelayArgs {
    /// A relay: LISTEN=TARGET, e.g. 127.0.0.1:7601=127.0.0.1:7501 (repeat for several, or
    /// separate with commas). Point a validator's peer entry at LISTEN instead of TARGET.
    #[arg(long = "link", value_delimiter = ',', required = true, value_parser = parse_link)]
    links: Vec<(SocketAddr, SocketAddr)>,
    /// One-way delay added to each direction, in milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Jitter, in milliseconds: each chunk's delay is drawn from delay +- jitter (never
    /// reordering a stream). At most the delay.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Seed of the jitter's draws (default: random, printed).
    #[arg(long)]
    seed: Option<u64>,
}

fn parse_link(text: &str) -> Result<(SocketAddr, SocketAddr), String> {
    let (listen, target) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not LISTEN=TARGET"))?;
    let address = |part: &str, what: &str| {
        part.trim()
            .parse::<SocketAddr>()
            .map_err(|e| format!("{what} address {part:?} in {text:?}: {e}"))
    };
    Ok((address(listen, "listen")?, address(target, "target")?))
}

pub fn run(args: &RelayArgs) -> anyhow::Result<ExitCode> {
    let seed = args.seed.unwrap_or_else(rand::random);
    let delay = LinkDelay {
        one_way: Duration::from_millis(args.delay_ms),
        jitter: Duration::from_millis(args.jitter_ms),
        seed,
    };
    let signals = super::StopSignals::install()?;
    let mut relays = Vec::new();
    for (index, (listen, target)) in args.links.iter().enumerate() {
        let relay = Relay::start(
            *listen,
            *target,
            LinkDelay {
                seed: seed.wrapping_add(index as u64),
                ..delay
            },
        )
        .with_context(|| format!("relay {listen} -> {target}"))?;
        println!(
            "relay {} -> {target}: {} ms one way, jitter {} ms",
            relay.addr(),
            args.delay_ms,
            args.jitter_ms
        );
        relays.push(relay);
    }
    println!("jitter seed {seed}; SIGINT or SIGTERM stops");
    let signal = signals.received.recv().ok();
    for relay in &relays {
        let c = relay.counters();
        println!(
            "relay {}: {} connections, {} bytes, {} target failures",
            relay.addr(),
            c.connections.load(std::sync::atomic::Ordering::Relaxed),
            c.bytes_forwarded.load(std::sync::atomic::Ordering::Relaxed),
            c.target_failures.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    drop(relays);
    tracing::info!(?signal, "relay stopped");
    Ok(ExitCode::SUCCESS)
}
