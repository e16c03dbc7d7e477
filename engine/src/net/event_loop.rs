//! The mio poll loop of the network threads (the client server's ingress thread and the
//! validator link thread): one listener, one waker, and connections ([`FramedConn`]) under
//! tokens of their own. Each turn waits for readiness, marks the connections that became
//! readable and says whether the listener has connections waiting; the owner then accepts,
//! services its connections and decides its own timeout.

use super::conn::{FramedConn, CONN_INTEREST};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONNECTION: usize = 2;

/// A poll, its event buffer and the token of the next connection.
pub(crate) struct EventLoop {
    poll: Poll,
    events: Events,
    next_token: usize,
}

impl EventLoop {
    /// Registers `listener` and makes the waker that interrupts [`EventLoop::wait`] from
    /// other threads; `events_max` is how many readiness events one turn takes.
    pub(crate) fn new(
        listener: &mut TcpListener,
        events_max: usize,
    ) -> io::Result<(EventLoop, Waker)> {
        let poll = Poll::new()?;
        poll.registry()
            .register(listener, LISTENER, Interest::READABLE)?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let event_loop = EventLoop {
            poll,
            events: Events::with_capacity(events_max),
            next_token: FIRST_CONNECTION,
        };
        Ok((event_loop, waker))
    }

    /// Waits for readiness, a wake-up or the timeout (`None`: no timeout); marks the
    /// connections of `conns` that became readable or were closed by their peer. Returns
    /// whether the listener has connections to accept. An error is final for the loop.
    pub(crate) fn wait<C: AsMut<FramedConn>>(
        &mut self,
        timeout: Option<Duration>,
        conns: &mut HashMap<Token, C>,
    ) -> io::Result<bool> {
        loop {
            match self.poll.poll(&mut self.events, timeout) {
                Ok(()) => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        let mut listener = false;
        for event in self.events.iter() {
            match event.token() {
                LISTENER => listener = true,
                WAKER => {}
                token => {
                    if let Some(conn) = conns.get_mut(&token) {
                        if event.is_readable() || event.is_read_closed() {
                            conn.as_mut().set_readable();
                        }
                    }
                }
            }
        }
        Ok(listener)
    }

    /// Registers a connection under a new token, for both directions, edge-triggered.
    pub(crate) fn register(&mut self, conn: &mut FramedConn) -> io::Result<Token> {
        let token = Token(self.next_token);
        self.next_token += 1;
        self.poll
            .registry()
            .register(conn.stream_mut(), token, CONN_INTEREST)?;
        Ok(token)
    }

    /// Stops watching a connection (before it is dropped).
    pub(crate) fn deregister(&self, conn: &mut FramedConn) {
        let _ = self.poll.registry().deregister(conn.stream_mut());
    }

    /// Stops watching the listener (no more connections are accepted).
    pub(crate) fn deregister_listener(&self, listener: &mut TcpListener) {
        let _ = self.poll.registry().deregister(listener);
    }
}

/// Accepts one waiting connection: `Ok(None)` when none is left. An error (out of file
/// descriptors and the like) leaves the listener as it is, to be tried again later.
pub(crate) fn accept(listener: &TcpListener) -> io::Result<Option<(TcpStream, SocketAddr)>> {
    loop {
        match listener.accept() {
            Ok(accepted) => return Ok(Some(accepted)),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

/// Stops a loop thread from outside: raises its `stop` flag, wakes it and joins it (once;
/// a panic of the thread is logged as `what` panicking).
pub(crate) fn stop_thread(
    stop: &AtomicBool,
    waker: &Waker,
    thread: &mut Option<JoinHandle<()>>,
    what: &str,
) {
    stop.store(true, Ordering::SeqCst);
    let _ = waker.wake();
    if let Some(thread) = thread.take() {
        if thread.join().is_err() {
            tracing::error!("the {what} thread panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::conn::ReadOutcome;
    use std::io::Write;
    use std::time::Instant;

    struct Held(FramedConn);

    impl AsMut<FramedConn> for Held {
        fn as_mut(&mut self) -> &mut FramedConn {
            &mut self.0
        }
    }

    #[test]
    fn a_turn_accepts_marks_readable_connections_and_wakes() {
        let mut listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let (mut event_loop, waker) = EventLoop::new(&mut listener, 16).unwrap();
        let mut conns: HashMap<Token, Held> = HashMap::new();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !event_loop
            .wait(Some(Duration::from_millis(100)), &mut conns)
            .unwrap()
        {
            assert!(Instant::now() < deadline, "the listener never became ready");
        }
        let (stream, peer) = accept(&listener).unwrap().expect("a connection waits");
        assert_eq!(accept(&listener).unwrap().map(|(_, a)| a), None);
        let mut conn = FramedConn::new(stream, peer, 1024);
        let token = event_loop.register(&mut conn).unwrap();
        conns.insert(token, Held(conn));
        let conn = &mut conns.get_mut(&token).unwrap().0;
        assert_eq!(conn.read_some().unwrap(), ReadOutcome::Empty);
        assert!(!conn.readable());
        client.write_all(b"hello").unwrap();
        while !conns[&token].0.readable() {
            assert!(Instant::now() < deadline, "never marked readable");
            event_loop
                .wait(Some(Duration::from_millis(100)), &mut conns)
                .unwrap();
        }
        let conn = &mut conns.get_mut(&token).unwrap().0;
        assert_eq!(conn.read_some().unwrap(), ReadOutcome::Bytes(5));
        // A wake-up from elsewhere ends a wait without a timeout.
        let waker = std::sync::Arc::new(waker);
        let other = std::sync::Arc::clone(&waker);
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            other.wake().unwrap();
        });
        assert!(!event_loop.wait(None, &mut conns).unwrap());
        thread.join().unwrap();
        event_loop.deregister(&mut conns.get_mut(&token).unwrap().0);
        event_loop.deregister_listener(&mut listener);
    }
}
