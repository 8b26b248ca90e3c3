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
