//! A test origin on loopback, written on std only so that it shares nothing with the code under
//! test. It counts requests per target and answers by path:
//!
//! - `/size/N...`: N bytes of a repeating pattern;
//! - `/big/...`: 1 GiB generated on the fly, honouring one `Range` (206);
//! - `/file/N/...`: N bytes, honouring one `Range`, with `ETag` and `Last-Modified` of the
//!   origin's current version of its files ([`TestOrigin::change_files`] makes a new one, other
//!   bytes: [`file_byte`]);
//! - `/lie/N/...`: says `Content-Length: N`, sends half of it and closes;
//! - `/size/N...` ignores `Range` (a 200 to every request);
//! - `/slow/...`: answers after 3 s;
//! - `/pause/...`: 200 000 bytes of the pattern, with a pause of 1.5 s half-way through;
//! - `/nostore/...`: `Cache-Control: no-store`;
//! - `/short/...`: `Cache-Control: max-age=1`;
//! - `/say/...?status=503&h=Name:Value&h=...&delay_ms=N`: that status (default 200) and those
//!   headers (`%XX` decoded), after N ms, body `origin <path>`: an origin that misbehaves as a
//!   test asks (an `ETag` among the headers is honoured: its `If-None-Match` gets a 304 with
//!   the other headers; `echo=Name` puts the request's `Name` header in the body; `pad=N`
//!   makes the body at least N bytes of playlist-like lines);
//! - `/drip/...?total=N&chunk=C&every_ms=M`: `Content-Length: N`, sent `C` bytes at a time every
//!   `M` ms (an origin too slow to finish, or one that stalls after its first chunk);
//! - `/hls/N/...`: an HLS media playlist of at least N bytes (4 s segments `seg<i>.ts`), for
//!   the rewrite's memory tests;
//! - anything else: `origin <path>` as text.
//!
//! Every answer carries `X-Origin-Host` with the Host header received; `max_age=N` in the query
//! adds `Cache-Control: max-age=N`. `/file/` and the text answers carry an `ETag`, and an
//! `If-None-Match` naming it gets a 304 ([`TestOrigin::not_modified`] counts them;
//! [`TestOrigin::body_bytes`] counts the body bytes of `/file/` sent).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Size of `/pause/` bodies.
pub const PAUSED_LEN: u64 = 200_000;

/// Size of `/big/` objects.
pub const BIG: u64 = 1 << 30;

/// A running test origin.
pub struct TestOrigin {
    /// Its port on 127.0.0.1.
    pub port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    stop: Arc<AtomicBool>,
    fail_with: Arc<AtomicU16>,
    open: Arc<std::sync::atomic::AtomicUsize>,
    files: Arc<AtomicU16>,
    counters: Arc<Counters>,
}

/// What the origin counted across its connections.
#[derive(Default)]
struct Counters {
    not_modified: std::sync::atomic::AtomicUsize,
    body_bytes: std::sync::atomic::AtomicU64,
    /// The headers of the last request for each target (names lower-cased, in order), after
    /// a `:method` pseudo-header.
    seen: Mutex<HashMap<String, Vec<(String, String)>>>,
    /// The body of the last request with one, for each target.
    bodies: Mutex<HashMap<String, Vec<u8>>>,
}

/// The byte at `offset` of every generated body.
pub fn pattern(offset: u64) -> u8 {
    (offset % 251) as u8
}

/// The byte at `offset` of a `/file/` body in version `version` of the origin's files (0 at
/// start: the same bytes as [`pattern`]).
pub fn file_byte(version: u16, offset: u64) -> u8 {
    pattern(offset.wrapping_add(u64::from(version) * 7))
}

impl TestOrigin {
    /// Starts on a free port.
    pub fn start() -> TestOrigin {
        Self::start_on(0)
    }

    /// Starts on `port` (0 for any), e.g. to come back on the same port after `stop`.
    pub fn start_on(port: u16) -> TestOrigin {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("binding the test origin");
        let port = listener.local_addr().expect("local addr").port();
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let fail_with = Arc::new(AtomicU16::new(0));
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let files = Arc::new(AtomicU16::new(0));
        let counters = Arc::new(Counters::default());
        let (h, s, f) = (Arc::clone(&hits), Arc::clone(&stop), Arc::clone(&fail_with));
        let (o, v, c) = (Arc::clone(&open), Arc::clone(&files), Arc::clone(&counters));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                // Headers and body go out in separate writes; without this, Nagle's algorithm
                // and delayed ACKs add 40 ms to every response.
                let _ = stream.set_nodelay(true);
                let (h, s, f, o, v, c) = (
                    Arc::clone(&h),
                    Arc::clone(&s),
                    Arc::clone(&f),
                    Arc::clone(&o),
                    Arc::clone(&v),
                    Arc::clone(&c),
                );
                o.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let _ = serve(stream, &h, &s, &f, &v, &c);
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        TestOrigin {
            port,
            hits,
            stop,
            fail_with,
            open,
            files,
            counters,
        }
    }

    /// 304s answered so far.
    pub fn not_modified(&self) -> usize {
        self.counters.not_modified.load(Ordering::SeqCst)
    }

    /// Body bytes of `/file/` answers sent so far.
    pub fn body_bytes(&self) -> u64 {
        self.counters.body_bytes.load(Ordering::SeqCst)
    }

    /// The body of the last request with a body received for `target`.
    pub fn last_body(&self, target: &str) -> Option<Vec<u8>> {
        self.counters.bodies.lock().ok()?.get(target).cloned()
    }

    /// The headers of the last request received for `target` (path and query), names in
    /// lower case, in the order received, after a `:method` pseudo-header; empty if none came.
    pub fn last_headers(&self, target: &str) -> Vec<(String, String)> {
        self.counters
            .seen
            .lock()
            .map(|m| m.get(target).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Changes every `/file/` body (new bytes, `ETag` and `Last-Modified`); the new version.
    pub fn change_files(&self) -> u16 {
        self.files.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Connections open now (accepted and not yet closed by either side).
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// From now on, answers every request with `status` (an empty body, after a `/say/`
    /// request's `delay_ms`), or, with `None`, as usual again: an origin that starts failing
    /// while the edge holds its objects.
    pub fn answer_all_with(&self, status: Option<u16>) {
        self.fail_with.store(status.unwrap_or(0), Ordering::SeqCst);
    }

    /// Requests received for `target` (path and query).
    pub fn hits(&self, target: &str) -> usize {
        self.hits
            .lock()
            .map(|m| m.get(target).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// All targets received.
    pub fn targets(&self) -> Vec<String> {
        self.hits
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Stops accepting; open connections are closed after their current request.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(
    stream: TcpStream,
    hits: &Mutex<HashMap<String, usize>>,
    stop: &AtomicBool,
    fail_with: &AtomicU16,
    files: &AtomicU16,
    counters: &Counters,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("/").to_owned();
        let mut host = String::new();
        let mut range = None;
        let mut if_none_match = None;
        let mut received: Vec<(String, String)> = vec![(":method".into(), method.clone())];
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                received.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                match k.to_ascii_lowercase().as_str() {
                    "host" => host = v.trim().to_owned(),
                    "range" => range = Some(v.trim().to_owned()),
                    "if-none-match" => if_none_match = Some(v.trim().to_owned()),
                    _ => {}
                }
            }
        }
        if let Ok(mut m) = counters.seen.lock() {
            m.insert(target.clone(), received.clone());
        }
        // A request body: read (by Content-Length, or chunked) and kept, so that the next
        // request on the connection starts where it should.
        let header = |name: &str| {
            received
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let mut body = Vec::new();
        if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
            body.resize(n, 0);
            std::io::Read::read_exact(&mut reader, &mut body)?;
        } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size)?;
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                    .unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                std::io::Read::read_exact(&mut reader, &mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        }
        if !body.is_empty() {
            if let Ok(mut m) = counters.bodies.lock() {
                m.insert(target.clone(), body);
            }
        }
        if let Ok(mut m) = hits.lock() {
            *m.entry(target.clone()).or_insert(0) += 1;
        }
        let path = target.split('?').next().unwrap_or("/").to_owned();
        let head = method == "HEAD";
        let failing = fail_with.load(Ordering::SeqCst);
        if failing != 0 {
            // A failing origin keeps a `/say/` request's delay: slow to fail, as real ones are.
            let delay = target
                .split_once("delay_ms=")
                .and_then(|(_, v)| v.split('&').next()?.parse().ok());
            if let Some(ms) = delay {
                std::thread::sleep(Duration::from_millis(ms));
            }
            write!(
                out,
                "HTTP/1.1 {failing} Failing\r\nContent-Length: 0\r\n\r\n"
            )?;
            continue;
        }
        let mut extra = format!("X-Origin-Host: {host}\r\n");
        if let Some((_, q)) = target.split_once('?') {
            if let Some(age) = q.split('&').find_map(|p| p.strip_prefix("max_age=")) {
                extra.push_str(&format!("Cache-Control: max-age={age}\r\n"));
            }
        }
        // A 304 when the client's validator names the ETag this answer would carry.
        let unchanged = |etag: &str, out: &mut TcpStream, extra: &str| -> std::io::Result<bool> {
            if if_none_match.as_deref() != Some(etag) {
                return Ok(false);
            }
            counters.not_modified.fetch_add(1, Ordering::SeqCst);
            write!(
                out,
                "HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\n{extra}\r\n"
            )?;
            Ok(true)
        };
        if path.starts_with("/slow/") {
            std::thread::sleep(Duration::from_secs(3));
        }
        if path.starts_with("/nostore/") {
            extra.push_str("Cache-Control: no-store\r\n");
        }
        if path.starts_with("/short/") {
            extra.push_str("Cache-Control: max-age=1\r\n");
        }
        if path.starts_with("/pause/") {
            let body: Vec<u8> = (0..PAUSED_LEN).map(pattern).collect();
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {PAUSED_LEN}\r\n{extra}\r\n"
            )?;
            if !head {
                let half = body.len() / 2;
                out.write_all(&body[..half])?;
                out.flush()?;
                std::thread::sleep(Duration::from_millis(1500));
                out.write_all(&body[half..])?;
            }
            continue;
        }
        let sized = |prefix: &str| -> Option<u64> {
            path.strip_prefix(prefix)?.split('/').next()?.parse().ok()
        };
        if let Some(n) = sized("/lie/") {
            write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n{extra}\r\n")?;
            if !head {
                let half: Vec<u8> = (0..n / 2).map(pattern).collect();
                out.write_all(&half)?;
            }
            return Ok(());
        }
        let file = if path.starts_with("/big/") {
            Some((BIG, 0))
        } else {
            sized("/file/").map(|n| (n, files.load(Ordering::SeqCst)))
        };
        if let Some((total, version)) = file {
            if unchanged(&format!("\"f{total}-v{version}\""), &mut out, &extra)? {
                continue;
            }
            let (status, start, end) = match range.as_deref().and_then(parse_range) {
                Some((a, _)) if a >= total => {
                    write!(
                        out,
                        "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\nContent-Length: 0\r\n{extra}\r\n"
                    )?;
                    continue;
                }
                Some((a, b)) => ("206 Partial Content", a, b.min(total - 1)),
                None if total == 0 => ("200 OK", 1, 0),
                None => ("200 OK", 0, total - 1),
            };
            let len = (end + 1).saturating_sub(start);
            if status.starts_with("206") {
                extra.push_str(&format!("Content-Range: bytes {start}-{end}/{total}\r\n"));
            }
            write!(
                out,
                "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nAccept-Ranges: bytes\r\nETag: \"f{total}-v{version}\"\r\nLast-Modified: Mon, 01 Jan 2024 00:00:{:02} GMT\r\n{extra}\r\n",
                version % 60
            )?;
            if !head {
                let mut buf = vec![0u8; 64 * 1024];
                let mut off = start;
                while off <= end {
                    let n = ((end - off + 1) as usize).min(buf.len());
                    for (i, b) in buf[..n].iter_mut().enumerate() {
                        *b = file_byte(version, off + i as u64);
                    }
                    out.write_all(&buf[..n])?;
                    counters.body_bytes.fetch_add(n as u64, Ordering::SeqCst);
                    off += n as u64;
                }
            }
            continue;
        }
        let query = target.split_once('?').map_or("", |(_, q)| q);
        let param = |name: &str| -> Vec<String> {
            query
                .split('&')
                .filter_map(|p| p.split_once('='))
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| percent_decode(v))
                .collect()
        };
        if path.starts_with("/drip/") {
            let num = |name: &str, default: u64| {
                param(name)
                    .first()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(default)
            };
            let (total, chunk, every) = (
                num("total", 10_000),
                num("chunk", 1000).max(1),
                num("every_ms", 1000),
            );
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n{extra}\r\n"
            )?;
            let mut sent = 0;
            while sent < total && !head {
                let n = chunk.min(total - sent);
                let bytes: Vec<u8> = (sent..sent + n).map(pattern).collect();
                out.write_all(&bytes)?;
                out.flush()?;
                sent += n;
                if sent < total {
                    std::thread::sleep(Duration::from_millis(every));
                }
                if stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
            }
            continue;
        }
        if path.starts_with("/say/") {
            let status = param("status").pop().unwrap_or_else(|| "200".into());
            if let Some(ms) = param("delay_ms").first().and_then(|v| v.parse().ok()) {
                std::thread::sleep(Duration::from_millis(ms));
            }
            let said = param("h");
            for h in &said {
                extra.push_str(h);
                extra.push_str("\r\n");
            }
            // An `ETag` among them is a validator: its `If-None-Match` gets a 304.
            let etag = said.iter().find_map(|h| {
                let (k, v) = h.split_once(':')?;
                k.eq_ignore_ascii_case("etag").then(|| v.trim().to_owned())
            });
            if let Some(etag) = etag {
                let others: String = said
                    .iter()
                    .filter(|h| !h.to_ascii_lowercase().starts_with("etag:"))
                    .map(|h| format!("{h}\r\n"))
                    .collect();
                if unchanged(&etag, &mut out, &others)? {
                    continue;
                }
            }
            // `echo=Name`: the body names the value of that request header (a response that
            // varies on it).
            let mut body = format!("origin {path}\n");
            // `pad=N`: playlist-like lines up to N bytes (a compressible body).
            if let Some(n) = param("pad").first().and_then(|v| v.parse::<usize>().ok()) {
                let mut i = 0u64;
                while body.len() < n {
                    body.push_str(&format!("#EXTINF:4.000,\nseg{i}.ts\n"));
                    i += 1;
                }
            }
            for name in param("echo") {
                let name = name.to_ascii_lowercase();
                let value = received
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.as_str());
                body.push_str(&format!("{name}: {}\n", value.unwrap_or("(none)")));
            }
            write!(
                out,
                "HTTP/1.1 {status} Said\r\nContent-Length: {}\r\n{extra}\r\n",
                body.len()
            )?;
            if !head {
                out.write_all(body.as_bytes())?;
            }
            continue;
        }
        let body: Vec<u8> = match path.strip_prefix("/size/") {
            None if path.starts_with("/hls/") => {
                let n: usize = path[5..]
                    .split('/')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let mut b = b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n".to_vec();
                let mut i = 0u64;
                while b.len() < n {
                    b.extend_from_slice(format!("#EXTINF:4,\nseg{i}.ts\n").as_bytes());
                    i += 1;
                }
                b.extend_from_slice(b"#EXT-X-ENDLIST\n");
                b
            }
            Some(rest) => {
                let n: u64 = rest
                    .split('/')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                (0..n).map(pattern).collect()
            }
            None => format!("origin {path}\n").into_bytes(),
        };
        if unchanged(&format!("\"e{}\"", body.len()), &mut out, &extra)? {
            continue;
        }
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nETag: \"e{}\"\r\nLast-Modified: Mon, 01 Jan 2024 00:00:00 GMT\r\n{extra}\r\n",
            body.len(),
            body.len()
        )?;
        if !head {
            out.write_all(&body)?;
        }
    }
}

/// `%XX` decoded (and `+` as a space), for `/say/` parameters.
fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() && v.is_char_boundary(i + 3) => {
                match u8::from_str_radix(&v[i + 1..i + 3], 16) {
                    Ok(x) => {
                        out.push(x);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_range(v: &str) -> Option<(u64, u64)> {
    let spec = v.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let a: u64 = a.parse().ok()?;
    let b: u64 = if b.is_empty() {
        u64::MAX
    } else {
        b.parse().ok()?
    };
    Some((a, b))
}
