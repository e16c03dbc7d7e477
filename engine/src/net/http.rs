//! A minimal HTTP/1.1 responder for `GET /metrics` (Prometheus text format 0.0.4), on its own
//! thread. One request per connection (`Connection: close`); scrapes are rare, so requests
//! are served one at a time, each with a short read timeout.
//!
//! Plain HTTP, or HTTPS (TLS 1.3) with a client certificate of the network's CA checked as on
//! the client port (CA, validity, revocation, network): only a `monitoring`, `central_bank`
//! or `auditor` certificate is answered; another role gets `403 Forbidden`, and a connection
//! without a valid certificate is refused in the handshake (docs/SECURITY.md, "Metrics").

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::tls::{NodeTls, TlsRefusal};
use tally_pki::Access;
use tally_protocol::http::{self, HttpError};

/// Most bytes of a request head; a scrape carries no body.
const LIMITS: http::Limits = http::Limits {
    head_bytes_max: 8 * 1024,
    body_bytes_max: 0,
};
/// How long a client may take to send its request or read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// The content type of the Prometheus text format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The running endpoint; dropping it stops the thread.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Listens on `listen` and serves `render()` at `/metrics`: over TLS to the roles that
    /// read metrics when `tls` is given, else plain HTTP.
    pub fn start(
        listen: SocketAddr,
        tls: Option<MetricsTls>,
        render: impl Fn() -> String + Send + 'static,
    ) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("tally-metrics".into())
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        match stream {
                            Ok(stream) => {
                                let served = match &tls {
                                    None => serve_plain(stream, &render),
                                    Some(tls) => serve_tls(stream, tls, &render),
                                };
                                if let Err(error) = served {
                                    tracing::debug!(%error, "metrics request failed");
                                }
                            }
                            Err(error) => {
                                tracing::warn!(%error, "accepting a metrics connection failed");
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                })?
        };
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Metrics { head_only: bool },
    NotFound,
    MethodNotAllowed,
}

/// What a request head asks for; `None`: a malformed head (answered 400).
#[cfg(test)]
fn parse_head(head: &[u8]) -> Option<Request> {
    http::parse_head(head)
        .ok()
        .map(|request| classify(&request))
}

fn classify(request: &http::Request) -> Request {
    let head_only = match request.method.as_str() {
        "GET" => false,
        "HEAD" => true,
        _ => return Request::MethodNotAllowed,
    };
    if request.path == "/metrics" {
        Request::Metrics { head_only }
    } else {
        Request::NotFound
    }
}

/// A metrics endpoint's TLS: the node's, and what to call on each refusal (a handshake
/// refused, with its reason; `None`: a role that does not read metrics), for the counters.
pub struct MetricsTls {
    pub tls: Arc<NodeTls>,
    pub on_refusal: Box<dyn Fn(Option<TlsRefusal>) + Send>,
}

/// The roles a metrics endpoint over TLS answers.
pub const METRICS_ROLES: [Access; 3] = [Access::Monitoring, Access::CentralBank, Access::Auditor];

fn serve_plain(mut stream: TcpStream, render: &dyn Fn() -> String) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    serve(&mut stream, render, None)
}

/// One request over TLS: the handshake checks the certificate (refused there without a valid
/// one of this network), then the holder's role decides between the metrics and 403.
fn serve_tls(stream: TcpStream, tls: &MetricsTls, render: &dyn Fn() -> String) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let peer = stream.peer_addr()?;
    let mut conn = tls.tls.accept_server();
    let mut stream = stream;
    while conn.is_handshaking() {
        if let Err(error) = conn.complete_io(&mut stream) {
            let reason = error
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .map_or(TlsRefusal::Protocol, TlsRefusal::of);
            tracing::warn!(%peer, reason = reason.name(), %error, "refusing a metrics connection in the TLS handshake");
            (tls.on_refusal)(Some(reason));
            return Ok(());
        }
    }
    let holder = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|der| tally_pki::read_certificate(der));
    let forbidden = match holder {
        Some(Ok(holder)) if METRICS_ROLES.contains(&holder.access) => None,
        Some(Ok(holder)) => {
            tracing::warn!(%peer, name = %holder.name, role = %holder.access, "forbidden metrics request: the role does not read metrics");
            (tls.on_refusal)(None);
            Some(format!(
                "{} ({}) may not read /metrics: monitoring, central_bank and auditor certificates do",
                holder.name, holder.access
            ))
        }
        _ => Some("no readable client certificate".to_string()),
    };
    let mut tls_stream = rustls::StreamOwned::new(conn, stream);
    serve(&mut tls_stream, render, forbidden)?;
    tls_stream.conn.send_close_notify();
    tls_stream.conn.complete_io(&mut tls_stream.sock)?;
    Ok(())
}

fn serve(
    stream: &mut impl ReadWrite,
    render: &dyn Fn() -> String,
    forbidden: Option<String>,
) -> io::Result<()> {
    let request = match http::read_request(stream, &LIMITS) {
        Ok(Some(request)) => classify(&request),
        Ok(None) => return Ok(()), // closed before a whole request (the stop wake-up does this)
        Err(HttpError::Io(error)) => return Err(error),
        Err(error) => {
            let text = format!("{error}\n");
            return http::write_response(
                stream,
                error.status(),
                "text/plain; charset=utf-8",
                text.as_bytes(),
                false,
            );
        }
    };
    let (status, content_type, body, head_only) = match request {
        Request::Metrics { .. } if forbidden.is_some() => (
            "403 Forbidden",
            "text/plain; charset=utf-8",
            format!("{}\n", forbidden.unwrap_or_default()),
            false,
        ),
        Request::Metrics { head_only } => ("200 OK", METRICS_CONTENT_TYPE, render(), head_only),
        Request::NotFound => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: metrics are at /metrics\n".to_string(),
            false,
        ),
        Request::MethodNotAllowed => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET and HEAD are served\n".to_string(),
            false,
        ),
    };
    http::write_response(stream, status, content_type, body.as_bytes(), head_only)
}

/// Fetches `http://addr/metrics` (for `tally status --metrics` and tests): the body, or an
/// error naming the status line.
pub fn fetch_metrics(addr: SocketAddr) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(METRICS_REQUEST)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    metrics_body(response)
}

/// Fetches `https://addr/metrics` with a client identity's TLS configuration (the node's
/// certificate must name `addr`'s IP address): the body, or an error naming the status line
/// or the TLS failure.
pub fn fetch_metrics_tls(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let mut conn = rustls::ClientConnection::new(tls, name).map_err(io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut stream)?;
    }
    let mut tls_stream = rustls::StreamOwned::new(conn, stream);
    tls_stream.write_all(METRICS_REQUEST)?;
    tls_stream.flush()?;
    let mut response = Vec::new();
    match tls_stream.read_to_end(&mut response) {
        Ok(_) => {}
        // a server that closed without close_notify after a whole response
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(error) => return Err(error),
    }
    metrics_body(response)
}

const METRICS_REQUEST: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: tally\r\nConnection: close\r\n\r\n";

/// What a byte stream both reads and writes (a socket, or TLS over one).
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn metrics_body(response: Vec<u8>) -> io::Result<String> {
    let text = String::from_utf8(response)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "response is not UTF-8"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "response has no head"))?;
    let status = head.lines().next().unwrap_or("");
    if !status.starts_with("HTTP/1.1 200") {
        return Err(io::Error::other(format!(
            "metrics endpoint answered {status:?}"
        )));
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_are_classified() {
        assert_eq!(
            parse_head(b"GET /metrics HTTP/1.1\r\nHost: x"),
            Some(Request::Metrics { head_only: false })
        );
        assert_eq!(
            parse_head(b"HEAD /metrics?x=1 HTTP/1.0"),
            Some(Request::Metrics { head_only: true })
        );
        assert_eq!(parse_head(b"GET / HTTP/1.1"), Some(Request::NotFound));
        assert_eq!(
            parse_head(b"POST /metrics HTTP/1.1"),
            Some(Request::MethodNotAllowed)
        );
        assert_eq!(parse_head(b"GET /metrics"), None);
        assert_eq!(parse_head(b"GET /metrics SPDY/3"), None);
        assert_eq!(parse_head(&[0xff, 0xfe]), None);
    }
}
