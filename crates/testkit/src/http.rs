//! A raw HTTP/1.1 client: the request target goes on the wire exactly as given, which no
//! ordinary client allows (they normalise or refuse odd paths).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends `GET {target} HTTP/1.1` with optional `X-Forwarded-For`, reads to EOF and returns the
/// status code, or an error saying what went wrong.
pub fn get_status(port: u16, target: &[u8], xff: Option<&str>) -> Result<u16, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut req = Vec::with_capacity(target.len() + 128);
    req.extend_from_slice(b"GET ");
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: cdn.example.com\r\nConnection: close\r\n");
    if let Some(x) = xff {
        req.extend_from_slice(format!("X-Forwarded-For: {x}\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    s.write_all(&req).map_err(|e| format!("write: {e}"))?;
    let mut resp = Vec::new();
    // A peer that closes while we still send is fine as long as a status line arrived.
    let _ = s.read_to_end(&mut resp);
    parse_status(&resp)
}

/// The status code of a raw HTTP response.
pub fn parse_status(resp: &[u8]) -> Result<u16, String> {
    let line = resp.split(|&b| b == b'\n').next().unwrap_or_default();
    let code = line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| line.strip_prefix(b"HTTP/1.0 "))
        .and_then(|r| r.get(..3))
        .and_then(|c| std::str::from_utf8(c).ok())
        .and_then(|c| c.parse().ok());
    code.ok_or_else(|| format!("no status line in {:?}", String::from_utf8_lossy(resp)))
}

/// A parsed response from [`request`].
#[derive(Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request from `source` (an address in 127.0.0.0/8) with extra header lines and
/// returns the whole response (read to EOF; `Connection: close` is sent).
pub fn request(
    source: std::net::Ipv4Addr,
    port: u16,
    method: &str,
    target: &[u8],
    headers: &[(&str, &str)],
) -> Result<RawResponse, String> {
    request_with_body(source, port, method, target, headers, &[])
}

/// [`request`] with `body` sent after the headers (the caller says its length in them).
pub fn request_with_body(
    source: std::net::Ipv4Addr,
    port: u16,
    method: &str,
    target: &[u8],
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<RawResponse, String> {
    let mut s = if source == std::net::Ipv4Addr::LOCALHOST {
        TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(5),
        )
        .map_err(|e| format!("connect: {e}"))?
    } else {
        connect_from(source, port)?
    };
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut req = Vec::new();
    req.extend_from_slice(method.as_bytes());
    req.push(b' ');
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    s.write_all(&req).map_err(|e| format!("write: {e}"))?;
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    parse_response(&resp, method == "HEAD")
}

/// Connects to 127.0.0.1:`port` from `source`, so a test can be a different client address.
fn connect_from(source: std::net::Ipv4Addr, port: u16) -> Result<TcpStream, String> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| e.to_string())?;
    sock.bind(&std::net::SocketAddr::from((source, 0)).into())
        .map_err(|e| format!("bind {source}: {e}"))?;
    sock.connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)).into(),
        Duration::from_secs(5),
    )
    .map_err(|e| format!("connect from {source}: {e}"))?;
    Ok(sock.into())
}

/// Parses a raw HTTP/1.1 response read to EOF.
pub fn parse_response(resp: &[u8], head: bool) -> Result<RawResponse, String> {
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            format!(
                "no header end in {:?}",
                String::from_utf8_lossy(&resp[..resp.len().min(200)])
            )
        })?;
    let head_text = String::from_utf8_lossy(&resp[..end]).into_owned();
    let mut lines = head_text.split("\r\n");
    let status = parse_status(lines.next().unwrap_or("").as_bytes())?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = resp[end + 4..].to_vec();
    if head {
        body.clear();
    } else if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < nl + 2 + size {
            break;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + size]);
        b = &b[(nl + 4 + size).min(b.len())..];
    }
    out
}
