//! A minimal HTTP/1.1 responder for `GET /metrics` (Prometheus text format 0.0.4), on its own
//! thread. One request per connection (`Connection: close`); scrapes are rare, so requests
//! are served one at a time, each with a short read timeout.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Most bytes of a request head.
const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024;
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
    /// Listens on `listen` and serves `render()` at `/metrics`.
    pub fn start(
        listen: SocketAddr,
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
                                if let Err(error) = serve(stream, &render) {
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
    Bad(&'static str),
}

fn parse_head(head: &[u8]) -> Request {
    let Ok(text) = std::str::from_utf8(head) else {
        return Request::Bad("request head is not UTF-8");
    };
    let Some(line) = text.lines().next() else {
        return Request::Bad("empty request");
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Request::Bad("request line is not METHOD TARGET VERSION");
    };
    if !version.starts_with("HTTP/1.") {
        return Request::Bad("only HTTP/1.x is served");
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Request::MethodNotAllowed,
    };
    let path = target.split('?').next().unwrap_or(target);
    if path == "/metrics" {
        Request::Metrics { head_only }
    } else {
        Request::NotFound
    }
}

fn serve(mut stream: TcpStream, render: &dyn Fn() -> String) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let request = loop {
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break parse_head(&head[..end]);
        }
        if head.len() > REQUEST_HEAD_BYTES_MAX {
            break Request::Bad("request head too large");
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(()); // closed before a whole request (the stop wake-up does this)
        }
        head.extend_from_slice(&chunk[..n]);
    };
    let (status, content_type, body, head_only) = match request {
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
        Request::Bad(reason) => (
            "400 Bad Request",
            "text/plain; charset=utf-8",
            format!("{reason}\n"),
            false,
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        response.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&response)?;
    stream.flush()
}

/// Fetches `http://addr/metrics` (for `tally status --metrics` and tests): the body, or an
/// error naming the status line.
pub fn fetch_metrics(addr: SocketAddr) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: tally\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
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
            Request::Metrics { head_only: false }
        );
        assert_eq!(
            parse_head(b"HEAD /metrics?x=1 HTTP/1.0"),
            Request::Metrics { head_only: true }
        );
        assert_eq!(parse_head(b"GET / HTTP/1.1"), Request::NotFound);
        assert_eq!(
            parse_head(b"POST /metrics HTTP/1.1"),
            Request::MethodNotAllowed
        );
        assert!(matches!(parse_head(b"GET /metrics"), Request::Bad(_)));
        assert!(matches!(
            parse_head(b"GET /metrics SPDY/3"),
            Request::Bad(_)
        ));
        assert!(matches!(parse_head(&[0xff, 0xfe]), Request::Bad(_)));
    }
}
