//! A minimal HTTP/1.1 server side: read one request from a buffered stream, write a response
//! with `Content-Length` or chunked encoding. Enough for a test workload, no more: no pipelining
//! guarantees beyond reading requests one after another, no trailers, no `Expect: 100-continue`.

use std::io::{self, BufRead, Read, Write};

/// Longest request head (request line + headers) accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target as sent (`/path?query`).
    pub target: String,
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// `true` for HTTP/1.1, `false` for HTTP/1.0.
    pub http11: bool,
    /// Header names lower-cased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a request could not be read.
#[derive(Debug)]
pub enum ParseError {
    /// The peer sent something that is not HTTP/1.x; answer 400 and close.
    Bad(&'static str),
    /// Head or body over the limits; answer 431/413 and close.
    TooLarge(&'static str),
    /// The connection failed or closed in the middle of a request: nothing to answer.
    Io,
}

impl From<io::Error> for ParseError {
    fn from(_: io::Error) -> Self {
        ParseError::Io
    }
}

impl Request {
    /// The first value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the connection stays open after the response (RFC 9112 section 9.3).
    pub fn keep_alive(&self) -> bool {
        let conn = self.header("connection").unwrap_or("").to_ascii_lowercase();
        let has = |t: &str| conn.split(',').any(|x| x.trim() == t);
        if self.http11 {
            !has("close")
        } else {
            has("keep-alive")
        }
    }
}

/// The parsed head of a request, before its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub target: String,
    pub http11: bool,
    pub headers: Vec<(String, String)>,
}

/// How the body of a request is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(usize),
    Chunked,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Body framing per RFC 9112 section 6.3: chunked wins over Content-Length; conflicting
    /// or malformed lengths are refused (request smuggling guard).
    pub fn framing(&self) -> Result<BodyFraming, ParseError> {
        if let Some(te) = self.header("transfer-encoding") {
            let last = te.rsplit(',').next().unwrap_or("").trim();
            return if last.eq_ignore_ascii_case("chunked") {
                Ok(BodyFraming::Chunked)
            } else {
                Err(ParseError::Bad("unsupported transfer-encoding"))
            };
        }
        let mut len: Option<usize> = None;
        for (n, v) in &self.headers {
            if n == "content-length" {
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ParseError::Bad("invalid content-length"));
                }
                let l: usize = v
                    .parse()
                    .map_err(|_| ParseError::TooLarge("content-length"))?;
                if len.is_some_and(|prev| prev != l) {
                    return Err(ParseError::Bad("conflicting content-length"));
                }
                len = Some(l);
            }
        }
        match len {
            None | Some(0) => Ok(BodyFraming::None),
            Some(l) if l > MAX_BODY => Err(ParseError::TooLarge("body")),
            Some(l) => Ok(BodyFraming::Length(l)),
        }
    }
}

/// Parses a request head (everything before the blank line, without it).
pub fn parse_head(text: &str) -> Result<Head, ParseError> {
    let mut lines = text.split("\r\n").flat_map(|l| l.split('\n'));
    let request_line = lines.next().ok_or(ParseError::Bad("empty request"))?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::Bad("malformed request line"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ParseError::Bad("malformed method"));
    }
    if target.is_empty() {
        return Err(ParseError::Bad("empty request target"));
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(ParseError::Bad("unsupported HTTP version")),
    };
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(ParseError::Bad("header without colon"))?;
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(ParseError::Bad("malformed header name"));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(Head {
        method: method.to_string(),
        target: target.to_string(),
        http11,
        headers,
    })
}

/// Splits a target into its path and decoded query parameters.
pub fn split_target(target: &str) -> (String, Vec<(String, String)>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let params = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    (percent_decode(path), params)
}

/// `%XX` and `+` decoding; invalid escapes are kept as written.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Reads the head of the next request. `Ok(None)` on a clean end of stream before any byte
/// (the client closed an idle keep-alive connection). `on_first_byte` runs once the first byte
/// of a request is available, so the caller can count the request as in flight from then on.
pub fn read_request<R: BufRead>(
    r: &mut R,
    on_first_byte: impl FnOnce(),
) -> Result<Option<Request>, ParseError> {
    // Skip blank lines between requests (RFC 9112 section 2.2 allows them).
    loop {
        let buf = r.fill_buf()?;
        match buf.first() {
            None => return Ok(None),
            Some(b'\r' | b'\n') => r.consume(1),
            Some(_) => break,
        }
    }
    on_first_byte();
    let mut head = Vec::with_capacity(512);
    loop {
        let before = head.len();
        let n = r
            .by_ref()
            .take((MAX_HEAD + 1 - head.len()) as u64)
            .read_until(b'\n', &mut head)?;
        if n == 0 {
            return Err(ParseError::Io);
        }
        if head.len() > MAX_HEAD {
            return Err(ParseError::TooLarge("request head"));
        }
        let line = &head[before..];
        if line == b"\r\n" || line == b"\n" {
            break;
        }
    }
    let text = std::str::from_utf8(&head).map_err(|_| ParseError::Bad("head is not UTF-8"))?;
    let head = parse_head(text.trim_end())?;
    let body = match head.framing()? {
        BodyFraming::None => Vec::new(),
        BodyFraming::Length(n) => {
            let mut body = vec![0; n];
            r.read_exact(&mut body)?;
            body
        }
        BodyFraming::Chunked => read_chunked(r)?,
    };
    let (path, query) = split_target(&head.target);
    Ok(Some(Request {
        method: head.method,
        target: head.target,
        path,
        query,
        http11: head.http11,
        headers: head.headers,
        body,
    }))
}

/// Reads a chunked body (RFC 9112 section 7.1), ignoring extensions and trailers.
pub fn read_chunked<R: BufRead>(r: &mut R) -> Result<Vec<u8>, ParseError> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        r.by_ref().take(1024).read_line(&mut line)?;
        let size_text = line.trim_end().split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| ParseError::Bad("malformed chunk size"))?;
        if body.len() + size > MAX_BODY {
            return Err(ParseError::TooLarge("body"));
        }
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                let mut t = String::new();
                let n = r.by_ref().take(8192).read_line(&mut t)?;
                if n == 0 || t == "\r\n" || t == "\n" {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(ParseError::Bad("chunk not followed by CRLF"));
        }
    }
}

/// The reason phrase of common status codes.
pub fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Writes a complete response with a `Content-Length`. No body for HEAD, 1xx, 204 and 304.
pub fn write_response<W: Write>(
    w: &mut W,
    code: u16,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
    head_only: bool,
) -> io::Result<()> {
    write_response_with(w, code, content_type, &[], body, keep_alive, head_only)
}

/// [`write_response`] with more headers.
pub fn write_response_with<W: Write>(
    w: &mut W,
    code: u16,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    keep_alive: bool,
    head_only: bool,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(160 + body.len());
    write!(out, "HTTP/1.1 {code} {}\r\n", reason(code))?;
    for (k, v) in headers {
        write!(out, "{k}: {v}\r\n")?;
    }
    let bodiless = head_only || code == 204 || code == 304 || (100..200).contains(&code);
    if code != 204 && !(100..200).contains(&code) {
        write!(
            out,
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            body.len()
        )?;
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !bodiless {
        out.extend_from_slice(body);
    }
    w.write_all(&out)?;
    w.flush()
}

/// Writes the head of a chunked response; then [`write_chunk`] per chunk and [`end_chunks`].
pub fn write_chunked_head<W: Write>(
    w: &mut W,
    code: u16,
    content_type: &str,
    keep_alive: bool,
) -> io::Result<()> {
    let conn = if keep_alive {
        ""
    } else {
        "Connection: close\r\n"
    };
    write!(
        w,
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n{conn}\r\n",
        reason(code)
    )?;
    w.flush()
}

/// Writes one chunk and flushes it, so the client sees it at once.
pub fn write_chunk<W: Write>(w: &mut W, data: &[u8]) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    write!(w, "{:x}\r\n", data.len())?;
    w.write_all(data)?;
    w.write_all(b"\r\n")?;
    w.flush()
}

/// Ends a chunked body.
pub fn end_chunks<W: Write>(w: &mut W) -> io::Result<()> {
    w.write_all(b"0\r\n\r\n")?;
    w.flush()
}

/// Escapes a string as a JSON string literal (with the quotes).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn read(raw: &str) -> Result<Option<Request>, ParseError> {
        let mut r = BufReader::new(raw.as_bytes());
        read_request(&mut r, || {})
    }

    #[test]
    fn parses_a_simple_get() {
        let req = read("GET /a/b?sleep=10&x=%20y+z HTTP/1.1\r\nHost: h\r\nX-Foo:  bar \r\n\r\n")
            .ok()
            .flatten()
            .expect("a request");
        assert_eq!(req.method, "GET");
        assert_eq!(req.target, "/a/b?sleep=10&x=%20y+z");
        assert_eq!(req.path, "/a/b");
        assert_eq!(req.param("sleep"), Some("10"));
        assert_eq!(req.param("x"), Some(" y z"));
        assert_eq!(req.header("HOST"), Some("h"));
        assert_eq!(req.header("x-foo"), Some("bar"));
        assert!(req.http11);
        assert!(req.keep_alive());
        assert!(req.body.is_empty());
    }

    #[test]
    fn keep_alive_rules() {
        let r = |raw: &str| read(raw).ok().flatten().expect("a request");
        assert!(!r("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive());
        assert!(!r("GET / HTTP/1.0\r\n\r\n").keep_alive());
        assert!(r("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
        assert!(!r("GET / HTTP/1.1\r\nConnection: te, close\r\n\r\n").keep_alive());
    }

    #[test]
    fn reads_bodies_and_consecutive_requests() {
        let raw = "POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloPOST /y HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n\r\nGET /z HTTP/1.1\r\n\r\n";
        let mut r = BufReader::new(raw.as_bytes());
        let a = read_request(&mut r, || {}).ok().flatten().expect("first");
        assert_eq!(a.body, b"hello");
        let b = read_request(&mut r, || {}).ok().flatten().expect("second");
        assert_eq!(b.path, "/y");
        assert_eq!(b.body, b"abcde");
        let c = read_request(&mut r, || {}).ok().flatten().expect("third");
        assert_eq!(c.path, "/z");
        assert!(matches!(read_request(&mut r, || {}), Ok(None)));
    }

    #[test]
    fn refuses_malformed_requests() {
        for bad in [
            "GET /\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
            "get / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1 extra\r\n\r\n",
            "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            assert!(
                matches!(read(bad), Err(ParseError::Bad(_))),
                "should refuse {bad:?}"
            );
        }
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(read(&huge), Err(ParseError::TooLarge(_))));
        assert!(matches!(
            read("GET / HTTP/1.1\r\nHost: x\r\n"),
            Err(ParseError::Io)
        ));
    }

    #[test]
    fn empty_stream_is_a_clean_close() {
        assert!(matches!(read(""), Ok(None)));
        assert!(matches!(read("\r\n"), Ok(None)));
    }

    #[test]
    fn counts_the_request_from_its_first_byte() {
        let mut seen = false;
        let mut r = BufReader::new(&b"GET / HTTP/1.1\r\n\r\n"[..]);
        let _ = read_request(&mut r, || seen = true);
        assert!(seen);
        let mut seen = false;
        let mut r = BufReader::new(&b""[..]);
        let _ = read_request(&mut r, || seen = true);
        assert!(!seen);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%e2%9c%93"), "\u{2713}");
    }

    #[test]
    fn responses() {
        let mut out = Vec::new();
        write_response(&mut out, 200, "text/plain", b"hi", true, false).ok();
        assert_eq!(
            String::from_utf8_lossy(&out),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
        );
        let mut out = Vec::new();
        write_chunked_head(&mut out, 200, "text/plain", false).ok();
        write_chunk(&mut out, b"abc").ok();
        end_chunks(&mut out).ok();
        assert_eq!(
            String::from_utf8_lossy(&out),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        );
    }

    #[test]
    fn json_escaping() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), r#""a\"b\\c\nd\u0001""#);
    }
}
