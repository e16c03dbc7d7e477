//! One non-blocking framed connection over a mio [`TcpStream`], shared by the client server
//! (`net::server`) and the validator links (`net::peers`): the read buffer and its sizing,
//! incremental frame input, the output queue with partial writes, connect completion and the
//! graceful close. What a connection means (messages, handshake, backpressure policy) stays
//! with its owner; the byte stream is handled here once, so that wrapping it (TLS) is one
//! change.
//!
//! Bounds: the read buffer holds at most one frame (its length is known once its 12-byte
//! header is in, and an oversized length is refused by the frame decoder before any payload
//! is read) plus [`READ_CHUNK_BYTES`]. The output has a soft bound, `out_bound`: past it
//! [`FramedConn::output_full`] tells the owner to stop producing optional output (stop
//! reading the peer, leave results or bulk frames queued elsewhere); what is already due is
//! still appended, so the output exceeds the bound by at most what the owner appends after
//! it saw the bound.
//!
//! TLS (`FramedConn::with_tls`): the connection drives a rustls connection from the mio loop
//! the way rustls' own mio examples do: socket bytes go in with `read_tls` and
//! `process_new_packets`, the plaintext comes out into the read buffer; output goes into the
//! TLS writer and out with `write_tls`. The owner sees frames only: no plaintext exists
//! before the handshake has finished and the peer's certificate was verified, so nothing is
//! decoded from a peer that has not authenticated. The connection stays registered for both
//! directions, edge-triggered, so the handshake needs no change of interest: every readable
//! event is read until it would block and every call to `write_out` flushes what the
//! handshake produced. rustls buffers at most its default limits (16 KiB of received
//! plaintext, which `read_some` moves out at once, and 64 KiB of records to send).

use super::frame::{self, FrameError, FRAME_BYTES_MAX};
use mio::net::TcpStream;
use mio::Interest;
use rustls::pki_types::CertificateDer;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

/// Bytes read from a socket at a time when no larger frame is expected.
pub(crate) const READ_CHUNK_BYTES: usize = 64 * 1024;

/// The readiness a connection is registered for: edge-triggered, both directions, for its
/// whole life (a connection is read until it would block and written until it would block).
pub(crate) const CONN_INTEREST: Interest = Interest::READABLE.add(Interest::WRITABLE);

/// What one [`FramedConn::read_some`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadOutcome {
    /// Bytes appended to the input.
    Bytes(usize),
    /// The peer closed its side: [`FramedConn::eof`] is set.
    Eof,
    /// No bytes waiting: the readiness is used up until the next readable event.
    Empty,
}

/// A non-blocking connection carrying frames: input read into a buffer and decoded by the
/// owner frame by frame, output appended whole and written as the socket takes it.
pub(crate) struct FramedConn {
    stream: TcpStream,
    addr: SocketAddr,
    /// Bytes read and not yet decoded: `read_buf[read_start..]`.
    read_buf: Vec<u8>,
    read_start: usize,
    /// Bytes to write: `out[out_start..]`.
    out: Vec<u8>,
    out_start: usize,
    /// Soft bound on the bytes waiting to be written (see the module documentation).
    out_bound: usize,
    /// Edge-triggered readability not yet used up.
    readable: bool,
    /// The peer closed its side.
    eof: bool,
    /// The write side was shut down.
    write_shut: bool,
    /// The TLS layer, when the connection has one.
    tls: Option<Box<rustls::Connection>>,
    /// Why the TLS layer failed (the connection is then over).
    tls_error: Option<rustls::Error>,
    /// The write side is to be shut down once the TLS layer has written its close_notify.
    shut_after_flush: bool,
}

/// The unread input of a connection, lent out of it while a frame decoded from it is handled
/// (the handler may need the connection, to append output). Give it back with
/// [`FramedConn::put_input`].
pub(crate) struct Input {
    buf: Vec<u8>,
    start: usize,
}

impl Input {
    /// The bytes not yet decoded.
    pub(crate) fn unread(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Marks the first `bytes` of [`Input::unread`] as decoded.
    pub(crate) fn consume(&mut self, bytes: usize) {
        assert!(
            bytes <= self.buf.len() - self.start,
            "consumed past the input"
        );
        self.start += bytes;
    }

    /// The whole length of the frame at the front, when its header is in and announces more
    /// than `limit` bytes: a connection that takes only small frames (a handshake) refuses
    /// a longer one before buffering it.
    pub(crate) fn frame_over(&self, limit: usize) -> Option<usize> {
        match frame::frame_len(self.unread()) {
            Ok(Some(total)) if total > limit => Some(total),
            _ => None,
        }
    }
}

impl FramedConn {
    /// Wraps a connected (or connecting) non-blocking stream; `out_bound` is the soft bound
    /// of its output. A new connection counts as readable: bytes may have arrived before it
    /// was registered.
    pub(crate) fn new(stream: TcpStream, addr: SocketAddr, out_bound: usize) -> FramedConn {
        FramedConn {
            stream,
            addr,
            read_buf: Vec::new(),
            read_start: 0,
            out: Vec::new(),
            out_start: 0,
            out_bound,
            readable: true,
            eof: false,
            write_shut: false,
            tls: None,
            tls_error: None,
            shut_after_flush: false,
        }
    }

    /// Wraps a stream under TLS (`tls`: a server connection for an accepted stream, a
    /// client connection for a dialled one).
    pub(crate) fn with_tls(
        stream: TcpStream,
        addr: SocketAddr,
        out_bound: usize,
        tls: rustls::Connection,
    ) -> FramedConn {
        let mut conn = FramedConn::new(stream, addr, out_bound);
        conn.tls = Some(Box::new(tls));
        conn
    }

    /// Whether the TLS handshake is still under way (false without TLS).
    pub(crate) fn handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.is_handshaking())
    }

    /// The peer's certificate, once the TLS handshake has verified it.
    pub(crate) fn peer_certificate(&self) -> Option<&CertificateDer<'static>> {
        let tls = self.tls.as_ref()?;
        if tls.is_handshaking() {
            return None;
        }
        tls.peer_certificates()?.first()
    }

    /// Why the TLS layer failed, after `read_some` returned its error.
    pub(crate) fn tls_error(&self) -> Option<&rustls::Error> {
        self.tls_error.as_ref()
    }

    /// The peer's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The socket (for its options).
    pub(crate) fn stream(&self) -> &TcpStream {
        &self.stream
    }

    pub(crate) fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Whether readability is left from the last readable event.
    pub(crate) fn readable(&self) -> bool {
        self.readable
    }

    /// Records a readable (or read-closed) event.
    pub(crate) fn set_readable(&mut self) {
        self.readable = true;
    }

    /// Whether the peer closed its side (everything it sent has been read).
    pub(crate) fn eof(&self) -> bool {
        self.eof
    }

    /// For a dialled connection: `Ok(true)` once the TCP connection is established,
    /// `Ok(false)` while it is still being set up, the error when it failed.
    pub(crate) fn connect_finished(&self) -> io::Result<bool> {
        if let Some(error) = self.stream.take_error().ok().flatten() {
            return Err(error);
        }
        match self.stream.peer_addr() {
            Ok(_) => Ok(true),
            Err(error)
                if error.kind() == io::ErrorKind::NotConnected
                    || error.kind() == io::ErrorKind::WouldBlock =>
            {
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }

    /// Reads once into the input, with room for the frame being read (its length is known
    /// once its header is in) and at least [`READ_CHUNK_BYTES`]: never more than one frame
    /// plus a chunk is buffered.
    pub(crate) fn read_some(&mut self) -> io::Result<ReadOutcome> {
        if self.read_start > 0 {
            self.read_buf.drain(..self.read_start);
            self.read_start = 0;
        }
        let want = match frame::frame_len(&self.read_buf) {
            Ok(Some(total)) => total
                .saturating_sub(self.read_buf.len())
                .max(READ_CHUNK_BYTES),
            _ => READ_CHUNK_BYTES,
        };
        if self.tls.is_some() {
            return self.read_tls(want);
        }
        let filled = self.read_buf.len();
        self.read_buf.resize(filled + want, 0);
        loop {
            match self.stream.read(&mut self.read_buf[filled..]) {
                Ok(0) => {
                    self.read_buf.truncate(filled);
                    self.eof = true;
                    return Ok(ReadOutcome::Eof);
                }
                Ok(n) => {
                    self.read_buf.truncate(filled + n);
                    return Ok(ReadOutcome::Bytes(n));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.read_buf.truncate(filled);
                    self.readable = false;
                    return Ok(ReadOutcome::Empty);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    self.read_buf.truncate(filled);
                    return Err(error);
                }
            }
        }
    }

    /// `read_some` under TLS: one read of socket bytes into the TLS layer, then every byte of
    /// plaintext it yields into the input. `Bytes` counts socket bytes (a handshake record
    /// yields none).
    fn read_tls(&mut self, want: usize) -> io::Result<ReadOutcome> {
        let tls = self.tls.as_mut().expect("a TLS connection");
        let n = loop {
            match tls.read_tls(&mut self.stream) {
                Ok(n) => break n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return Ok(ReadOutcome::Empty);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        };
        if let Err(error) = tls.process_new_packets() {
            // Send the alert rustls queued for the peer, as far as the socket takes it.
            while tls.wants_write() {
                if tls.write_tls(&mut self.stream).is_err() {
                    break;
                }
            }
            self.tls_error = Some(error.clone());
            return Err(io::Error::new(io::ErrorKind::InvalidData, error));
        }
        let mut reader = tls.reader();
        loop {
            let filled = self.read_buf.len();
            self.read_buf.resize(filled + want.max(READ_CHUNK_BYTES), 0);
            match reader.read(&mut self.read_buf[filled..]) {
                Ok(0) => {
                    // close_notify: the peer's end.
                    self.read_buf.truncate(filled);
                    self.eof = true;
                    break;
                }
                Ok(got) => self.read_buf.truncate(filled + got),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.read_buf.truncate(filled);
                    break;
                }
                Err(error) => {
                    // The socket ended without close_notify: the end all the same (a frame
                    // cut short shows as truncated input).
                    self.read_buf.truncate(filled);
                    if error.kind() != io::ErrorKind::UnexpectedEof {
                        return Err(error);
                    }
                    self.eof = true;
                    break;
                }
            }
        }
        if n == 0 {
            self.eof = true;
        }
        if self.eof {
            return Ok(ReadOutcome::Eof);
        }
        Ok(ReadOutcome::Bytes(n))
    }

    /// Lends the unread input out (the connection's input is empty meanwhile).
    pub(crate) fn take_input(&mut self) -> Input {
        Input {
            buf: std::mem::take(&mut self.read_buf),
            start: std::mem::take(&mut self.read_start),
        }
    }

    /// Takes back the input lent by [`FramedConn::take_input`], with what was decoded from
    /// it consumed.
    pub(crate) fn put_input(&mut self, input: Input) {
        debug_assert!(self.read_buf.is_empty(), "input put back twice");
        self.read_buf = input.buf;
        self.read_start = input.start;
        if self.read_start == self.read_buf.len() {
            self.read_buf.clear();
            self.read_start = 0;
        }
    }

    /// After the end of the input: the error for bytes left that are not a whole frame
    /// (the stream ended inside a frame), if any.
    pub(crate) fn truncated_input(&self) -> Option<FrameError> {
        let rest = &self.read_buf[self.read_start..];
        (!rest.is_empty()).then(|| frame::truncated(rest))
    }

    /// The output, to append whole frames to. Only appends: what is already there is being
    /// written.
    pub(crate) fn output(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Appends encoded frames to the output.
    pub(crate) fn queue(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Moves every byte of `bytes` (whole encoded frames) to the output, leaving it empty;
    /// when nothing is waiting to be written the two buffers are swapped, not copied.
    pub(crate) fn queue_all(&mut self, bytes: &mut Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        if self.out_start == self.out.len() {
            self.out.clear();
            self.out_start = 0;
            std::mem::swap(&mut self.out, bytes);
        } else {
            self.out.extend_from_slice(bytes);
            bytes.clear();
        }
    }

    /// Bytes this connection holds in its buffers: unread input and output not yet written.
    pub(crate) fn buffered(&self) -> usize {
        self.read_buf.len() - self.read_start + self.pending_out()
    }

    /// Bytes waiting to be written.
    pub(crate) fn pending_out(&self) -> usize {
        self.out.len() - self.out_start
    }

    /// Whether the output has reached its soft bound: produce no optional output.
    pub(crate) fn output_full(&self) -> bool {
        self.pending_out() >= self.out_bound
    }

    /// Writes as much output as the socket takes. Returns the bytes written, and the error
    /// that stopped the writing (final for the connection), if any; bytes written before
    /// the error are counted too.
    pub(crate) fn write_out(&mut self) -> (usize, io::Result<()>) {
        if self.tls.is_some() {
            let (written, result) = self.write_tls();
            self.compact_output();
            return (written, result);
        }
        let mut written = 0;
        let mut result = Ok(());
        while self.out_start < self.out.len() {
            match self.stream.write(&self.out[self.out_start..]) {
                Ok(0) => {
                    result = Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the socket took no bytes",
                    ));
                    break;
                }
                Ok(n) => {
                    self.out_start += n;
                    written += n;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    result = Err(error);
                    break;
                }
            }
        }
        self.compact_output();
        (written, result)
    }

    /// `write_out` under TLS: records waiting in the TLS layer first, then output moved into
    /// it (counted as written once it has taken it), until the socket would block.
    fn write_tls(&mut self) -> (usize, io::Result<()>) {
        let tls = self.tls.as_mut().expect("a TLS connection");
        let mut written = 0;
        loop {
            while tls.wants_write() {
                match tls.write_tls(&mut self.stream) {
                    Ok(0) => {
                        let error =
                            io::Error::new(io::ErrorKind::WriteZero, "the socket took no bytes");
                        return (written, Err(error));
                    }
                    Ok(_) => {}
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        return (written, Ok(()));
                    }
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) => return (written, Err(error)),
                }
            }
            if self.out_start == self.out.len() {
                break;
            }
            match tls.writer().write(&self.out[self.out_start..]) {
                // The TLS layer's buffer is full (during the handshake, until it is over).
                Ok(0) => break,
                Ok(n) => {
                    self.out_start += n;
                    written += n;
                }
                Err(error) => return (written, Err(error)),
            }
        }
        if self.shut_after_flush && !tls.wants_write() {
            self.shut_after_flush = false;
            let _ = self.stream.shutdown(std::net::Shutdown::Write);
        }
        (written, Ok(()))
    }

    fn compact_output(&mut self) {
        if self.out_start == self.out.len() {
            self.out.clear();
            self.out_start = 0;
            if self.out.capacity() > 4 * FRAME_BYTES_MAX {
                self.out.shrink_to(FRAME_BYTES_MAX);
            }
        } else if self.out_start > self.out.len() / 2 {
            self.out.drain(..self.out_start);
            self.out_start = 0;
        }
    }

    /// Shuts the write side down (FIN after the output written so far), once.
    /// Under TLS a close_notify goes first, and the socket's write side is shut once it is
    /// written (here, or by a later `write_out`).
    pub(crate) fn shutdown_write(&mut self) {
        if self.write_shut {
            return;
        }
        self.write_shut = true;
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
            self.shut_after_flush = true;
            let _ = self.write_tls();
        } else {
            let _ = self.stream.shutdown(std::net::Shutdown::Write);
        }
    }

    /// Reads and drops input (a closing connection waits for the peer to close, so that
    /// closing does not reset the connection before the peer has read the last frame).
    /// Returns whether the peer closed (or the socket failed).
    pub(crate) fn discard_input(&mut self) -> bool {
        let mut sink = [0u8; 8 * 1024];
        loop {
            match self.stream.read(&mut sink) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return false,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::frame::{FRAME_HEADER_BYTES, FRAME_PAYLOAD_BYTES_MAX};
    use std::time::{Duration, Instant};

    /// A connected pair: the framed side (non-blocking) and a blocking std socket.
    fn pair(out_bound: usize) -> (FramedConn, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let other = std::net::TcpStream::connect(addr).unwrap();
        let (ours, peer) = listener.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        let conn = FramedConn::new(TcpStream::from_std(ours), peer, out_bound);
        (conn, other)
    }

    /// Reads until something other than `Empty` comes (the bytes are on their way).
    fn read_until_data(conn: &mut FramedConn) -> ReadOutcome {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match conn.read_some().unwrap() {
                ReadOutcome::Empty => {
                    assert!(Instant::now() < deadline, "no bytes arrived");
                    std::thread::sleep(Duration::from_millis(1));
                }
                outcome => return outcome,
            }
        }
    }

    fn a_frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        frame::encode_raw(kind, &[payload], &mut out);
        out
    }

    #[test]
    fn a_frame_split_across_reads_decodes_once_whole() {
        let (mut conn, mut other) = pair(FRAME_BYTES_MAX);
        let bytes = a_frame(0x42, b"split across two reads");
        // The header and part of the payload first.
        other.write_all(&bytes[..FRAME_HEADER_BYTES + 3]).unwrap();
        assert_eq!(
            read_until_data(&mut conn),
            ReadOutcome::Bytes(FRAME_HEADER_BYTES + 3)
        );
        let input = conn.take_input();
        assert_eq!(frame::decode_raw(input.unread()), Ok(None));
        conn.put_input(input);
        other.write_all(&bytes[FRAME_HEADER_BYTES + 3..]).unwrap();
        let mut got = FRAME_HEADER_BYTES + 3;
        while got < bytes.len() {
            let ReadOutcome::Bytes(n) = read_until_data(&mut conn) else {
                panic!("the peer did not close");
            };
            got += n;
        }
        let mut input = conn.take_input();
        let (raw, used) = frame::decode_raw(input.unread()).unwrap().unwrap();
        assert_eq!(
            (raw.kind, raw.payload, used),
            (0x42, &b"split across two reads"[..], bytes.len())
        );
        input.consume(used);
        conn.put_input(input);
        // All consumed: the buffer is emptied, and the end reads as such.
        assert!(conn.take_input().unread().is_empty());
        drop(other);
        assert_eq!(read_until_data(&mut conn), ReadOutcome::Eof);
        assert!(conn.eof());
        assert_eq!(conn.truncated_input(), None);
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_header_without_buffering_it() {
        let (mut conn, mut other) = pair(FRAME_BYTES_MAX);
        let length = (FRAME_PAYLOAD_BYTES_MAX + 1) as u32;
        let mut header = [0u8; FRAME_HEADER_BYTES];
        header[..4].copy_from_slice(&length.to_le_bytes());
        header[4] = 0x42;
        other.write_all(&header).unwrap();
        assert_eq!(
            read_until_data(&mut conn),
            ReadOutcome::Bytes(FRAME_HEADER_BYTES)
        );
        let input = conn.take_input();
        assert_eq!(
            frame::decode_raw(input.unread()).map(|f| f.is_some()),
            Err(FrameError::Oversized {
                length: u64::from(length)
            })
        );
        assert_eq!(
            frame::decode_raw(input.unread()).unwrap_err().to_string(),
            FrameError::Oversized {
                length: u64::from(length)
            }
            .to_string()
        );
        // Nothing past the header was buffered for it.
        assert!(input.buf.capacity() <= READ_CHUNK_BYTES + FRAME_HEADER_BYTES);
        // Over the protocol's maximum it is the decoder's refusal, not a connection limit's.
        assert_eq!(input.frame_over(200), None);
        conn.put_input(input);
    }

    #[test]
    fn a_connection_limit_below_the_maximum_names_the_announced_length() {
        let (mut conn, mut other) = pair(FRAME_BYTES_MAX);
        let bytes = a_frame(0x42, &[0; 500]);
        other.write_all(&bytes[..FRAME_HEADER_BYTES]).unwrap();
        assert_eq!(
            read_until_data(&mut conn),
            ReadOutcome::Bytes(FRAME_HEADER_BYTES)
        );
        let input = conn.take_input();
        assert_eq!(input.frame_over(200), Some(bytes.len()));
        assert_eq!(input.frame_over(bytes.len()), None);
        conn.put_input(input);
    }

    #[test]
    fn the_stream_ending_inside_a_frame_is_truncated() {
        let (mut conn, mut other) = pair(FRAME_BYTES_MAX);
        let bytes = a_frame(0x42, &[7; 100]);
        other.write_all(&bytes[..50]).unwrap();
        drop(other);
        let mut got = 0;
        while read_until_data(&mut conn) != ReadOutcome::Eof {
            got += 1;
        }
        assert!(got >= 1);
        assert_eq!(
            conn.truncated_input(),
            Some(FrameError::Truncated {
                have: 50,
                need: bytes.len()
            })
        );
    }

    #[test]
    fn partial_writes_keep_the_rest_and_the_output_bound_tracks_it() {
        let bound = 1024 * 1024;
        let (mut conn, mut other) = pair(bound);
        assert!(!conn.output_full());
        // Far more than the socket buffers take while the peer reads nothing.
        let total = 32 * 1024 * 1024;
        let mut expected = Vec::with_capacity(total);
        let mut n: u32 = 0;
        while expected.len() < total {
            expected.extend_from_slice(&n.to_le_bytes());
            n += 1;
        }
        conn.queue(&expected);
        assert!(conn.output_full());
        let (written, result) = conn.write_out();
        result.unwrap();
        assert!(written > 0 && written < total, "wrote {written} of {total}");
        assert_eq!(conn.pending_out(), total - written);
        // The reader drains; the writer goes on from where it stopped, in order.
        let reader = std::thread::spawn(move || {
            let mut got = Vec::with_capacity(total);
            let mut buf = vec![0u8; 256 * 1024];
            while got.len() < total {
                let n = other.read(&mut buf).unwrap();
                assert!(n > 0, "closed early");
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        let mut sent = written;
        let deadline = Instant::now() + Duration::from_secs(30);
        while conn.pending_out() > 0 {
            let (n, result) = conn.write_out();
            result.unwrap();
            sent += n;
            if conn.pending_out() >= bound {
                assert!(conn.output_full());
            } else {
                assert!(!conn.output_full());
            }
            assert!(Instant::now() < deadline, "the writes stalled");
            if n == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        assert_eq!(sent, total);
        assert!(!conn.output_full());
        assert!(reader.join().unwrap() == expected);
    }

    #[test]
    fn queue_all_moves_whole_buffers_behind_unwritten_output() {
        let (mut conn, _other) = pair(16);
        let mut queued = vec![1, 2, 3];
        conn.queue_all(&mut queued);
        assert!(queued.is_empty());
        assert_eq!(conn.pending_out(), 3);
        let mut more = vec![4, 5];
        conn.queue_all(&mut more);
        assert!(more.is_empty());
        conn.output().extend_from_slice(&[6]);
        assert_eq!(conn.out[conn.out_start..], [1, 2, 3, 4, 5, 6]);
        assert!(!conn.output_full());
        conn.queue(&[0; 10]);
        assert!(conn.output_full());
    }

    #[test]
    fn a_closing_connection_shuts_its_write_side_and_sees_the_peer_close() {
        let (mut conn, mut other) = pair(FRAME_BYTES_MAX);
        conn.queue(b"last words");
        let (written, result) = conn.write_out();
        result.unwrap();
        assert_eq!(written, 10);
        conn.shutdown_write();
        conn.shutdown_write();
        let mut got = Vec::new();
        other.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"last words");
        other.write_all(b"ignored").unwrap();
        drop(other);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !conn.discard_input() {
            assert!(Instant::now() < deadline, "the close was not seen");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_dialled_connection_reports_when_it_is_connected() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = TcpStream::connect(addr).unwrap();
        let conn = FramedConn::new(stream, addr, FRAME_BYTES_MAX);
        let _accepted = listener.accept().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !conn.connect_finished().unwrap() {
            assert!(Instant::now() < deadline, "never connected");
            std::thread::sleep(Duration::from_millis(1));
        }
        // Nobody listens on a port just released: the attempt fails.
        let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let gone_addr = gone.local_addr().unwrap();
        drop(gone);
        let Ok(stream) = TcpStream::connect(gone_addr) else {
            return; // refused at once: nothing left to watch
        };
        let conn = FramedConn::new(stream, gone_addr, 1);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match conn.connect_finished() {
                Ok(false) => {
                    assert!(Instant::now() < deadline, "the failed attempt never ended");
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(true) => panic!("connected to a closed port"),
                Err(_) => break,
            }
        }
    }
}
