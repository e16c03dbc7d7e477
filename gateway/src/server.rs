//! The gateway's HTTP/1.1 listener (`tally_protocol::http`): `POST /` with an ISO 20022
//! document answers its pacs.002; `GET /camt.054?from=N`, `GET /camt.052?account=A` and
//! `GET /camt.053?account=A` answer the notifications, the intraday report and the statement
//! (which closes the statement period; on a network with a business-day calendar the
//! statements are made at each day's end and `GET /camt.053?from=N` or `?date=D` fetches
//! them). TLS 1.3, asking the hub for a certificate of the CA
//! of the listener's identity, when configured; plain HTTP only when the caller chose it. Every request is bounded: its
//! head and body sizes, each read and write in time, and the connections served at once.

use crate::service::{Gateway, GatewayError};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tally_protocol::http::{self, HttpError, Limits};

/// The bounds of the listener.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    pub http: Limits,
    /// Longest wait for each read or write of a connection.
    pub io_timeout: Duration,
    /// Longest time to read a whole request (a client that trickles it is answered 408).
    pub request_timeout: Duration,
    /// Most connections served at once; one more is answered 503 and closed.
    pub connections_max: usize,
}

impl Default for ServerLimits {
    fn default() -> ServerLimits {
        ServerLimits {
            http: Limits {
                head_bytes_max: 8 * 1024,
                body_bytes_max: 1024 * 1024,
            },
            io_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            connections_max: 64,
        }
    }
}

const XML: &str = "application/xml; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// The running listener; dropping it stops accepting.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on `listen` for `gateway`: over TLS with `tls`, else plain HTTP.
    pub fn start(
        gateway: Arc<Gateway>,
        listen: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
        limits: ServerLimits,
    ) -> io::Result<Server> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(AtomicUsize::new(0));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("tally-gateway-http".into())
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let Ok(stream) = stream else {
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        };
                        let _ = stream.set_read_timeout(Some(limits.io_timeout));
                        let _ = stream.set_write_timeout(Some(limits.io_timeout));
                        if open.fetch_add(1, Ordering::SeqCst) >= limits.connections_max {
                            open.fetch_sub(1, Ordering::SeqCst);
                            let mut stream = stream;
                            let text = format!(
                                "the gateway serves at most {} connections at once: retry\n",
                                limits.connections_max
                            );
                            let _ = http::write_response(
                                &mut stream,
                                "503 Service Unavailable",
                                TEXT,
                                text.as_bytes(),
                                false,
                            );
                            continue;
                        }
                        let gateway = Arc::clone(&gateway);
                        let tls = tls.clone();
                        let open = Arc::clone(&open);
                        let spawned = std::thread::Builder::new()
                            .name("tally-gateway-conn".into())
                            .spawn(move || {
                                let served = match tls {
                                    None => serve(&mut { stream }, &gateway, &limits),
                                    Some(tls) => serve_tls(stream, tls, &gateway, &limits),
                                };
                                if let Err(error) = served {
                                    tracing::debug!(%error, "a gateway connection failed");
                                }
                                open.fetch_sub(1, Ordering::SeqCst);
                            });
                        if spawned.is_err() {
                            tracing::warn!("cannot start a thread for a gateway connection");
                        }
                    }
                })?
        };
        Ok(Server {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_tls(
    mut stream: TcpStream,
    tls: Arc<rustls::ServerConfig>,
    gateway: &Gateway,
    limits: &ServerLimits,
) -> io::Result<()> {
    let mut conn = rustls::ServerConnection::new(tls).map_err(io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut stream)?;
    }
    let mut tls_stream = rustls::StreamOwned::new(conn, stream);
    serve(&mut tls_stream, gateway, limits)?;
    tls_stream.conn.send_close_notify();
    tls_stream.conn.complete_io(&mut tls_stream.sock)?;
    Ok(())
}

/// What a byte stream both reads and writes (a socket, or TLS over one).
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A stream whose reads fail once `until` has passed: the bound on a whole request.
struct Deadline<'a, S> {
    inner: &'a mut S,
    until: Instant,
}

impl<S: Read> Read for Deadline<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if Instant::now() >= self.until {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the request was not read in time",
            ));
        }
        self.inner.read(buf)
    }
}

fn serve(stream: &mut impl ReadWrite, gateway: &Gateway, limits: &ServerLimits) -> io::Result<()> {
    let mut timed = Deadline {
        inner: stream,
        until: Instant::now() + limits.request_timeout,
    };
    let read = http::read_request(&mut timed, &limits.http);
    let stream = timed.inner;
    let request = match read {
        Ok(Some(request)) => request,
        Ok(None) => return Ok(()),
        Err(HttpError::Io(error))
            if matches!(
                error.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            let text = format!(
                "the request was not read within {:?} (whole) or {:?} (each read)\n",
                limits.request_timeout, limits.io_timeout
            );
            return http::write_response(
                stream,
                "408 Request Timeout",
                TEXT,
                text.as_bytes(),
                false,
            );
        }
        Err(HttpError::Io(error)) => return Err(error),
        Err(error) => {
            let text = format!("{error}\n");
            return http::write_response(stream, error.status(), TEXT, text.as_bytes(), false);
        }
    };
    let (status, content_type, body) = answer(gateway, &request);
    http::write_response(stream, status, content_type, body.as_bytes(), false)
}

/// The answer to one request: status, content type and body.
pub fn answer(gateway: &Gateway, request: &http::Request) -> (&'static str, &'static str, String) {
    let method = request.method.as_str();
    match (method, request.path.as_str()) {
        ("POST", "/" | "/iso20022") => ("200 OK", XML, gateway.handle(&request.body).to_xml()),
        ("GET", "/camt.054") => match request.query_param("from").map(str::parse::<u64>) {
            None => ("200 OK", XML, gateway.notifications(0).to_xml()),
            Some(Ok(from)) => ("200 OK", XML, gateway.notifications(from).to_xml()),
            Some(Err(_)) => (
                "400 Bad Request",
                TEXT,
                "from= is the first notification's sequence number, a whole number\n".into(),
            ),
        },
        ("GET", path @ ("/camt.052" | "/camt.053")) => {
            let accounts = match request.query_param("account") {
                None => Ok(gateway.accounts()),
                Some(name) => gateway.followed(name).map(|account| vec![account]),
            };
            let daily = path == "/camt.053"
                && (gateway.daily_statements()
                    || request.query_param("from").is_some()
                    || request.query_param("date").is_some());
            let answered = accounts.and_then(|accounts| {
                if daily {
                    let from = match request.query_param("from").map(str::parse::<u64>) {
                        None => 0,
                        Some(Ok(from)) => from,
                        Some(Err(_)) => {
                            return Err(GatewayError::BadRequest(
                                "from= is the first statement number (ElctrncSeqNb) wanted, a whole number"
                                    .into(),
                            ))
                        }
                    };
                    gateway.day_statements(&accounts, from, request.query_param("date"))
                } else {
                    gateway.report(&accounts, path == "/camt.053")
                }
            });
            match answered {
                Ok(document) => ("200 OK", XML, document.to_xml()),
                Err(error @ GatewayError::NotFollowed(_)) => {
                    ("404 Not Found", TEXT, format!("{error}\n"))
                }
                Err(error @ GatewayError::BadRequest(_)) => {
                    ("400 Bad Request", TEXT, format!("{error}\n"))
                }
                Err(error) => ("503 Service Unavailable", TEXT, format!("{error}\n")),
            }
        }
        (_, "/" | "/iso20022") => (
            "405 Method Not Allowed",
            TEXT,
            "POST an ISO 20022 document to /\n".into(),
        ),
        (_, "/camt.052" | "/camt.053" | "/camt.054") => (
            "405 Method Not Allowed",
            TEXT,
            "reports are read with GET\n".into(),
        ),
        _ => (
            "404 Not Found",
            TEXT,
            "not found: POST / with a document; GET /camt.052, /camt.053 or /camt.054\n".into(),
        ),
    }
}

/// Sends one request to a gateway at `addr` over plain HTTP and returns the status and body
/// (for `tally gateway` load runs and tests).
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    body: &[u8],
) -> io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut bytes = format!(
        "{method} {target} HTTP/1.1\r\nHost: tally-gateway\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    http::parse_response(&response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_read_past_its_deadline_times_out() {
        let mut bytes: &[u8] = b"GET / HTTP/1.1\r\n\r\n";
        let mut late = Deadline {
            inner: &mut bytes,
            until: Instant::now() - Duration::from_millis(1),
        };
        let limits = ServerLimits::default().http;
        match http::read_request(&mut late, &limits) {
            Err(HttpError::Io(error)) => assert_eq!(error.kind(), io::ErrorKind::TimedOut),
            other => panic!("not a timeout: {other:?}"),
        }
        let mut bytes: &[u8] = b"GET / HTTP/1.1\r\n\r\n";
        let mut in_time = Deadline {
            inner: &mut bytes,
            until: Instant::now() + Duration::from_secs(60),
        };
        let request = http::read_request(&mut in_time, &limits).unwrap().unwrap();
        assert_eq!(request.path, "/");
    }
}
