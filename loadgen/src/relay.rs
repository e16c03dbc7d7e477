//! A delaying TCP relay: what validators far apart look like on one machine.
//!
//! These machines have no netem, so the delay of a wide-area link is made here: a relay
//! listens on a loopback address and forwards every connection it accepts to one target,
//! holding each chunk of bytes, in each direction, for a one-way delay plus a jitter drawn
//! uniformly from `[-jitter, +jitter]`. A chunk is never released before the one read before
//! it on the same direction (a byte stream keeps its order, as TCP does behind a jittery
//! path), so jitter stretches gaps but never reorders. The relay carries bytes, not frames:
//! TLS and the validator handshake pass through it unchanged, and a validator that dials
//! the relay is authenticated by the validator behind it as if it had dialled it directly.
//!
//! One thread accepts; each connection has a reader and a writer thread per direction,
//! joined by an unbounded channel of timestamped chunks (the relay models delay, not a
//! bandwidth limit). Closing either side closes the other once the bytes already read have
//! been delivered.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes read from a socket at a time.
const CHUNK_BYTES: usize = 64 * 1024;

/// How a relay delays what it forwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkDelay {
    /// Added to every chunk, in each direction.
    pub one_way: Duration,
    /// At most this much more or less, drawn per chunk (never below zero in all).
    pub jitter: Duration,
    /// Seed of the jitter's draws (printed by whoever starts the relay).
    pub seed: u64,
}

impl LinkDelay {
    /// No delay at all: a plain forwarder.
    pub const NONE: LinkDelay = LinkDelay {
        one_way: Duration::ZERO,
        jitter: Duration::ZERO,
        seed: 0,
    };

    /// A fixed delay without jitter.
    pub fn fixed(one_way: Duration) -> LinkDelay {
        LinkDelay {
            one_way,
            ..LinkDelay::NONE
        }
    }
}

/// Why a relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("relay cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("relay jitter {jitter:?} exceeds its one-way delay {one_way:?}: a chunk cannot leave before it arrived")]
    JitterAboveDelay { one_way: Duration, jitter: Duration },
}

/// What a relay has carried so far.
#[derive(Debug, Default)]
pub struct RelayCounters {
    pub connections: AtomicU64,
    /// Connections whose target refused or could not be reached.
    pub target_failures: AtomicU64,
    pub bytes_forwarded: AtomicU64,
}

/// A running relay; stops accepting and closes its connections when dropped.
pub struct Relay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    counters: Arc<RelayCounters>,
    accept: Option<JoinHandle<()>>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    /// Listens on `listen` (port 0: any free port, see [`Relay::addr`]) and forwards every
    /// connection to `target` with `delay` in each direction.
    pub fn start(
        listen: SocketAddr,
        target: SocketAddr,
        delay: LinkDelay,
    ) -> Result<Relay, RelayError> {
        if delay.jitter > delay.one_way {
            return Err(RelayError::JitterAboveDelay {
                one_way: delay.one_way,
                jitter: delay.jitter,
            });
        }
        let listener = TcpListener::bind(listen).map_err(|source| RelayError::Listen {
            addr: listen,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| RelayError::Listen {
            addr: listen,
            source,
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(RelayCounters::default());
        let open = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (stop, counters, open) = (stop.clone(), counters.clone(), open.clone());
            std::thread::Builder::new()
                .name("relay-accept".into())
                .spawn(move || accept_loop(listener, target, delay, stop, counters, open))
                .expect("the operating system starts a thread")
        };
        Ok(Relay {
            addr,
            stop,
            counters,
            accept: Some(accept),
            open,
        })
    }

    /// Where the relay listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn counters(&self) -> &RelayCounters {
        &self.counters
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the accept loop with a connection of its own.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for stream in self.open.lock().expect("relay connections lock").drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    delay: LinkDelay,
    stop: Arc<AtomicBool>,
    counters: Arc<RelayCounters>,
    open: Arc<Mutex<Vec<TcpStream>>>,
) {
    let mut seed = delay.seed;
    for incoming in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let Ok(client) = incoming else { continue };
        counters.connections.fetch_add(1, Ordering::Relaxed);
        let server = match TcpStream::connect_timeout(&target, Duration::from_secs(5)) {
            Ok(server) => server,
            Err(error) => {
                counters.target_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%target, %error, "relay: the target did not accept");
                continue;
            }
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        {
            let mut open = open.lock().expect("relay connections lock");
            open.retain(|s| s.peer_addr().is_ok());
            for s in [&client, &server] {
                if let Ok(clone) = s.try_clone() {
                    open.push(clone);
                }
            }
        }
        for (from, to) in [(&client, &server), (&server, &client)] {
            let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                continue;
            };
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            pump(from, to, delay, seed, counters.clone());
        }
    }
}

/// One direction: a reader timestamps chunks, a writer releases them when due.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    delay: LinkDelay,
    seed: u64,
    counters: Arc<RelayCounters>,
) {
    let (sender, receiver) = crossbeam::channel::unbounded::<(Instant, Vec<u8>)>();
    std::thread::Builder::new()
        .name("relay-read".into())
        .spawn(move || {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut last_due = Instant::now();
            let mut buf = vec![0u8; CHUNK_BYTES];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let mut hold = delay.one_way;
                if !delay.jitter.is_zero() {
                    let jitter = delay.jitter.as_nanos() as i64;
                    let offset = rng.random_range(-jitter..=jitter);
                    hold = Duration::from_nanos((hold.as_nanos() as i64 + offset).max(0) as u64);
                }
                let due = (Instant::now() + hold).max(last_due);
                last_due = due;
                if sender.send((due, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        })
        .expect("the operating system starts a thread");
    std::thread::Builder::new()
        .name("relay-write".into())
        .spawn(move || {
            for (due, bytes) in receiver {
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                if to.write_all(&bytes).is_err() {
                    break;
                }
                counters
                    .bytes_forwarded
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            // The other side closed (or this one failed): pass the end on.
            let _ = to.shutdown(Shutdown::Write);
        })
        .expect("the operating system starts a thread");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let mut reader = stream.try_clone().unwrap();
                    let _ = std::io::copy(&mut reader, &mut stream);
                });
            }
        });
        addr
    }

    /// Every byte comes back in order through a jittery relay (jitter never reorders), and
    /// not before two one-way delays.
    #[test]
    fn a_jittery_relay_keeps_the_stream_in_order_and_delays_both_ways() {
        let seed = rand::random::<u64>();
        println!("seed {seed}");
        let delay = LinkDelay {
            one_way: Duration::from_millis(20),
            jitter: Duration::from_millis(15),
            seed,
        };
        let relay = Relay::start("127.0.0.1:0".parse().unwrap(), echo_server(), delay).unwrap();
        let mut client = TcpStream::connect(relay.addr()).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sent: Vec<u8> = (0..200_000).map(|_| rng.random()).collect();
        let writer = {
            let mut client = client.try_clone().unwrap();
            let sent = sent.clone();
            std::thread::spawn(move || {
                for chunk in sent.chunks(1_000) {
                    client.write_all(chunk).unwrap();
                }
            })
        };
        let start = Instant::now();
        let mut first = [0u8; 1];
        client.read_exact(&mut first).unwrap();
        let first_back = start.elapsed();
        let mut received = vec![first[0]];
        let mut rest = vec![0u8; sent.len() - 1];
        client.read_exact(&mut rest).unwrap();
        received.extend_from_slice(&rest);
        writer.join().unwrap();
        assert!(received == sent, "the bytes came back altered or reordered");
        // Each direction holds a chunk at least one_way - jitter.
        assert!(
            first_back >= 2 * (delay.one_way - delay.jitter),
            "{first_back:?}"
        );
        // The writer counts a chunk once its write returned, which may be just after the
        // reader here had it.
        let forwarded = || relay.counters().bytes_forwarded.load(Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(10);
        while forwarded() < 2 * sent.len() as u64 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(forwarded(), 2 * sent.len() as u64);
        assert_eq!(relay.counters().connections.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_relay_refuses_jitter_larger_than_its_delay() {
        let error = Relay::start(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:9".parse().unwrap(),
            LinkDelay {
                one_way: Duration::from_millis(5),
                jitter: Duration::from_millis(6),
                seed: 0,
            },
        )
        .err()
        .unwrap();
        assert!(
            matches!(error, RelayError::JitterAboveDelay { .. }),
            "{error}"
        );
    }

    /// A target that is gone: the relay counts it, closes the client's connection, and goes
    /// on accepting.
    #[test]
    fn a_missing_target_closes_the_client_and_is_counted() {
        let gone = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let relay = Relay::start("127.0.0.1:0".parse().unwrap(), gone, LinkDelay::NONE).unwrap();
        for _ in 0..2 {
            let mut client = TcpStream::connect(relay.addr()).unwrap();
            let mut buf = [0u8; 1];
            assert_eq!(client.read(&mut buf).unwrap_or(0), 0);
        }
        assert_eq!(relay.counters().target_failures.load(Ordering::Relaxed), 2);
    }
}
