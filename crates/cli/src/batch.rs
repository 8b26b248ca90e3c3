//! `tollgate sign --batch`: one path per input line, one link per output line.
//!
//! Built for millions of lines: one reused input buffer and one output buffer flushed in
//! large writes, so the cost per line is the MD5 and the encoding, not allocation or syscalls.

use std::io::{self, BufRead, Write};

use tollgate_token::{sign_link_as, Key, SignError};

/// What every link of a batch shares.
pub struct BatchSpec<'a> {
    /// Key that signs.
    pub key: &'a Key,
    /// Expiry time of every link.
    pub expires: i64,
    /// Client address the links are bound to, if any.
    /// What links are bound to: the client's address or network, or nothing.
    pub client: Option<tollgate_token::RemoteAddr>,
    /// Prefix of every link, e.g. `https://cdn.example.com`.
    pub base: &'a str,
    /// Print only the token instead of the link.
    pub token_only: bool,
}

/// Why one input line got no link.
#[derive(Debug, PartialEq, Eq)]
pub enum LineError {
    /// The line is empty.
    Empty,
    /// The path cannot be signed as it is.
    Sign(SignError),
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineError::Empty => f.write_str("empty line (a path is required)"),
            LineError::Sign(e) => write!(f, "{e}"),
        }
    }
}

/// What a batch did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Links written.
    pub signed: u64,
    /// Lines that got no link (each reported to the `bad_line` callback).
    pub bad: u64,
}

const FLUSH_AT: usize = 256 * 1024;

/// Signs every line of `input` into `output`, one link per good line; a line that cannot be
/// signed goes to `bad_line(line_number, why)` (1-based) and gets no output line, and the batch
/// goes on. Calls `progress(lines_read)` every 65,536 lines. A trailing `\r` is stripped from
/// each line. Only reading or writing failing stops a batch.
pub fn sign_lines(
    mut input: impl BufRead,
    mut output: impl Write,
    spec: &BatchSpec<'_>,
    mut progress: impl FnMut(u64),
    mut bad_line: impl FnMut(u64, &LineError),
) -> io::Result<BatchReport> {
    let mut line = Vec::with_capacity(256);
    let mut out = Vec::with_capacity(FLUSH_AT + 4096);
    let mut report = BatchReport::default();
    let mut n = 0u64;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let mut path = line.as_slice();
        if let Some(p) = path.strip_suffix(b"\n") {
            path = p;
        }
        if let Some(p) = path.strip_suffix(b"\r") {
            path = p;
        }
        n += 1;
        if n.is_multiple_of(65_536) {
            progress(n);
        }
        if path.is_empty() {
            report.bad += 1;
            bad_line(n, &LineError::Empty);
            continue;
        }
        let mark = out.len();
        match sign_link_as(
            &mut out,
            spec.base,
            spec.key,
            spec.expires,
            path,
            spec.client.as_ref(),
        ) {
            Ok(token) => {
                if spec.token_only {
                    out.truncate(mark);
                    out.extend_from_slice(token.as_bytes());
                }
            }
            Err(e) => {
                out.truncate(mark);
                report.bad += 1;
                bad_line(n, &LineError::Sign(e));
                continue;
            }
        }
        out.push(b'\n');
        report.signed += 1;
        if out.len() >= FLUSH_AT {
            output.write_all(&out)?;
            out.clear();
        }
    }
    output.write_all(&out)?;
    output.flush()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(key: &Key) -> BatchSpec<'_> {
        BatchSpec {
            key,
            expires: 2147483647,
            client: None,
            base: "http://cdn.site.com",
            token_only: false,
        }
    }

    #[test]
    fn one_link_per_line() {
        let key = Key::new("secret_key").unwrap();
        let mut out = Vec::new();
        let r = sign_lines(
            &b"/images/1.jpg\r\n/a b\n"[..],
            &mut out,
            &spec(&key),
            |_| {},
            |n, e| panic!("line {n}: {e}"),
        )
        .unwrap();
        assert_eq!(r, BatchReport { signed: 2, bad: 0 });
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "http://cdn.site.com/images/1.jpg?md5=vHEnxR8VaxpEDgyNzJuWwA&expires=2147483647"
        );
        assert!(lines[1].starts_with("http://cdn.site.com/a%20b?md5="));
    }

    #[test]
    fn bad_lines_are_named_and_the_good_ones_signed() {
        let key = Key::new("secret_key").unwrap();
        let mut out = Vec::new();
        let mut bad = Vec::new();
        let r = sign_lines(
            &b"/ok\n/a//b\n\n/also-ok\r\n\r\n/x/../y"[..],
            &mut out,
            &spec(&key),
            |_| {},
            |n, e| bad.push((n, e.to_string())),
        )
        .unwrap();
        assert_eq!(r, BatchReport { signed: 2, bad: 4 });
        let lines: Vec<_> = bad.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [2, 3, 5, 6]);
        assert_eq!(bad[1].1, "empty line (a path is required)");
        assert!(bad[0].1.contains("offset 3"), "{}", bad[0].1);
        let text = String::from_utf8(out).unwrap();
        let links: Vec<_> = text.lines().collect();
        assert_eq!(links.len(), 2);
        assert!(links[0].starts_with("http://cdn.site.com/ok?md5="));
        assert!(links[1].starts_with("http://cdn.site.com/also-ok?md5="));
    }

    #[test]
    fn token_only() {
        let key = Key::new("secret_key").unwrap();
        let mut out = Vec::new();
        let s = BatchSpec {
            token_only: true,
            ..spec(&key)
        };
        sign_lines(&b"/images/1.jpg"[..], &mut out, &s, |_| {}, |_, _| {}).unwrap();
        assert_eq!(out, b"vHEnxR8VaxpEDgyNzJuWwA\n");
    }
}
