//! A minimal, bounded HTTP/1.1 request reader and response writer: one request per
//! connection (`Connection: close`), a head of at most `head_bytes_max`, a body only with a
//! `Content-Length` of at most `body_bytes_max` (no chunked bodies). The node's `/metrics`
//! endpoint (`tally_engine::net::http`) and the ISO 20022 gateway (`tally-gateway`) serve
//! with it; each refusal has its own status and reason.

use std::io::{self, Read, Write};

/// How much of a request is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of the request line and headers.
    pub head_bytes_max: usize,
    /// Most bytes of a body (0: no request may carry one).
    pub body_bytes_max: usize,
}

/// One request, read whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path, without its query.
    pub path: String,
    /// The query string after `?`, if any.
    pub query: Option<String>,
    /// Header names in lower case, with their values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The value of the query parameter `name` (no percent-decoding: the values served are
    /// BICs and numbers).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
    }

    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Why a request was not read: each maps to its own status ([`HttpError::status`]).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("connection failed while reading the request: {0}")]
    Io(#[from] io::Error),
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("request head over {max} bytes")]
    HeadTooLarge { max: usize },
    #[error("request body of {length} bytes is over the maximum of {max} bytes")]
    BodyTooLarge { length: usize, max: usize },
    #[error("a request body needs a Content-Length (chunked bodies are not read)")]
    LengthRequired,
    #[error("the connection closed {read} bytes into a body of {length}")]
    BodyCut { read: usize, length: usize },
}

impl HttpError {
    /// The status line's code and text an answer to this error carries.
    pub fn status(&self) -> &'static str {
        match self {
            HttpError::Io(_) | HttpError::Malformed(_) | HttpError::BodyCut { .. } => {
                "400 Bad Request"
            }
            HttpError::HeadTooLarge { .. } => "431 Request Header Fields Too Large",
            HttpError::BodyTooLarge { .. } => "413 Content Too Large",
            HttpError::LengthRequired => "411 Length Required",
        }
    }
}

/// The method, target and version of a request line, checked.
pub fn parse_request_line(line: &str) -> Result<(&str, &str), HttpError> {
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::Malformed(
            "request line is not METHOD TARGET VERSION",
        ));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::Malformed("only HTTP/1.x is served"));
    }
    if method.is_empty() || target.is_empty() {
        return Err(HttpError::Malformed("empty method or target"));
    }
    Ok((method, target))
}

/// Parses a request head (up to, not including, the blank line).
pub fn parse_head(head: &[u8]) -> Result<Request, HttpError> {
    let text =
        std::str::from_utf8(head).map_err(|_| HttpError::Malformed("request head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let line = lines
        .next()
        .filter(|line| !line.is_empty())
        .ok_or(HttpError::Malformed("empty request"))?;
    let (method, target) = parse_request_line(line)?;
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query.to_string())),
        None => (target, None),
    };
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or(HttpError::Malformed("a header line without a colon"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        query,
        headers,
        body: Vec::new(),
    })
}

/// Reads one request from `stream` within `limits`. `Ok(None)`: the connection closed
/// before a whole head (a probe, or a listener's stop wake-up).
pub fn read_request(stream: &mut impl Read, limits: &Limits) -> Result<Option<Request>, HttpError> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if buffer.len() > limits.head_bytes_max {
            return Err(HttpError::HeadTooLarge {
                max: limits.head_bytes_max,
            });
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    if end > limits.head_bytes_max {
        return Err(HttpError::HeadTooLarge {
            max: limits.head_bytes_max,
        });
    }
    let mut request = parse_head(&buffer[..end])?;
    if request
        .header("transfer-encoding")
        .is_some_and(|value| !value.eq_ignore_ascii_case("identity"))
    {
        return Err(HttpError::LengthRequired);
    }
    let length = match request.header("content-length") {
        None => 0,
        Some(value) => value
            .parse::<usize>()
            .map_err(|_| HttpError::Malformed("Content-Length is not a number"))?,
    };
    if length > limits.body_bytes_max {
        return Err(HttpError::BodyTooLarge {
            length,
            max: limits.body_bytes_max,
        });
    }
    let mut body = buffer[end + 4..].to_vec();
    body.truncate(length);
    while body.len() < length {
        let want = (length - body.len()).min(chunk.len());
        let n = stream.read(&mut chunk[..want])?;
        if n == 0 {
            return Err(HttpError::BodyCut {
                read: body.len(),
                length,
            });
        }
        body.extend_from_slice(&chunk[..n]);
    }
    request.body = body;
    Ok(Some(request))
}

/// Writes a whole response (`Connection: close`); `head_only` leaves the body out (HEAD).
pub fn write_response(
    stream: &mut impl Write,
    status: &str,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> io::Result<()> {
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        response.extend_from_slice(body);
    }
    stream.write_all(&response)?;
    stream.flush()
}

/// Splits a whole response into its status code and body (for clients and tests).
pub fn parse_response(response: &[u8]) -> io::Result<(u16, Vec<u8>)> {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "response has no head"))?;
    let head = std::str::from_utf8(&response[..end])
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "response head is not UTF-8"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "response has no status"))?;
    Ok((status, response[end + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        head_bytes_max: 256,
        body_bytes_max: 16,
    };

    fn read(bytes: &[u8]) -> Result<Option<Request>, HttpError> {
        read_request(&mut &bytes[..], &LIMITS)
    }

    #[test]
    fn a_request_with_a_body_and_a_query_is_read() {
        let request = read(
            b"POST /x?account=BANKDEFF&n=2 HTTP/1.1\r\nContent-Length: 5\r\nHost: a\r\n\r\nhello",
        )
        .unwrap()
        .unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/x");
        assert_eq!(request.query_param("account"), Some("BANKDEFF"));
        assert_eq!(request.query_param("n"), Some("2"));
        assert_eq!(request.query_param("m"), None);
        assert_eq!(request.header("host"), Some("a"));
        assert_eq!(request.body, b"hello");
    }

    #[test]
    fn each_bad_request_has_its_own_error_and_status() {
        assert!(read(b"").unwrap().is_none());
        let cases: [(&[u8], &str); 6] = [
            (b"GET /\r\n\r\n", "400 Bad Request"),
            (b"GET / SPDY/3\r\n\r\n", "400 Bad Request"),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 17\r\n\r\n",
                "413 Content Too Large",
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                "411 Length Required",
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc",
                "400 Bad Request",
            ),
            (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", "400 Bad Request"),
        ];
        for (bytes, status) in cases {
            let error = read(bytes).unwrap_err();
            assert_eq!(error.status(), status, "{error}");
        }
        let long = [b"GET /".as_slice(), &[b'a'; 300], b" HTTP/1.1\r\n\r\n"].concat();
        assert!(matches!(
            read(&long).unwrap_err(),
            HttpError::HeadTooLarge { max: 256 }
        ));
    }

    #[test]
    fn a_response_is_written_and_read_back() {
        let mut out = Vec::new();
        write_response(&mut out, "200 OK", "text/plain", b"body", false).unwrap();
        assert_eq!(parse_response(&out).unwrap(), (200, b"body".to_vec()));
        let mut head = Vec::new();
        write_response(&mut head, "404 Not Found", "text/plain", b"body", true).unwrap();
        assert_eq!(parse_response(&head).unwrap(), (404, Vec::new()));
    }
}
