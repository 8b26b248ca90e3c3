//! `tollgate sign --batch`: one path per input line, one link per output line.
//!
//! Built for millions of lines: one reused input buffer and one output buffer flushed in
//! large writes, so the cost per line is the MD5 and the encoding, not allocation or syscalls.

use std::io::{self, BufRead, Write};
use std::net::IpAddr;

use tollgate_token::{sign_link, Key, SignError};

/// What every link of a batch shares.
pub struct BatchSpec<'a> {
    /// Key that signs.
    pub key: &'a Key,
    /// Expiry time of every link.
    pub expires: i64,
    /// Client address the links are bound to, if any.
    pub ip: Option<IpAddr>,
    /// Prefix of every link, e.g. `https://cdn.example.com`.
    pub base: &'a str,
    /// Print only the token instead of the link.
    pub token_only: bool,
}

/// Why a batch stopped.
#[derive(Debug)]
pub enum BatchError {
    /// Reading or writing failed.
    Io(io::Error),
    /// A line could not be signed; `line` is 1-based. Nothing from this line on was written.
    Line {
        /// 1-based line number.
        line: u64,
        /// Why.
        error: SignError,
    },
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::Io(e) => write!(f, "{e}"),
            BatchError::Line { line, error } => write!(f, "line {line}: {error}"),
        }
    }
}

impl std::error::Error for BatchError {}

impl From<io::Error> for BatchError {
    fn from(e: io::Error) -> Self {
        BatchError::Io(e)
    }
}

const FLUSH_AT: usize = 256 * 1024;

/// Signs every line of `input` into `output`; calls `progress(lines_done)` every 65,536 lines.
/// Returns the number of links written. A trailing `\r` is stripped from each line.
pub fn sign_lines(
    mut input: impl BufRead,
    mut output: impl Write,
    spec: &BatchSpec<'_>,
    mut progress: impl FnMut(u64),
) -> Result<u64, BatchError> {
    let mut line = Vec::with_capacity(256);
    let mut out = Vec::with_capacity(FLUSH_AT + 4096);
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
        let mark = out.len();
        let token = sign_link(&mut out, spec.base, spec.key, spec.expires, path, spec.ip).map_err(
            |error| {
                // Whatever came before this line is complete; flush it so no work is lost.
                let _ = output.write_all(&out[..mark]);
                BatchError::Line { line: n, error }
            },
        )?;
        if spec.token_only {
            out.truncate(mark);
            out.extend_from_slice(token.as_bytes());
        }
        out.push(b'\n');
        if out.len() >= FLUSH_AT {
            output.write_all(&out)?;
            out.clear();
        }
        if n % 65_536 == 0 {
            progress(n);
        }
    }
    output.write_all(&out)?;
    output.flush()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(key: &Key) -> BatchSpec<'_> {
        BatchSpec {
            key,
            expires: 2147483647,
            ip: None,
            base: "http://cdn.site.com",
            token_only: false,
        }
    }

    #[test]
    fn one_link_per_line() {
        let key = Key::new("secret_key").unwrap();
        let mut out = Vec::new();
        let n = sign_lines(
            &b"/images/1.jpg\r\n/a b\n"[..],
            &mut out,
            &spec(&key),
            |_| {},
        )
        .unwrap();
        assert_eq!(n, 2);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "http://cdn.site.com/images/1.jpg?md5=vHEnxR8VaxpEDgyNzJuWwA&expires=2147483647"
        );
        assert!(lines[1].starts_with("http://cdn.site.com/a%20b?md5="));
    }

    #[test]
    fn bad_line_is_named_and_earlier_lines_kept() {
        let key = Key::new("secret_key").unwrap();
        let mut out = Vec::new();
        let err = sign_lines(&b"/ok\n/a//b\n/never\n"[..], &mut out, &spec(&key), |_| {});
        match err {
            Err(BatchError::Line {
                line: 2,
                error: SignError::EmptySegment { offset: 3 },
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 1);
    }

    #[test]
    fn token_only() {
        let key = Key::new("secret_key").unwrap();
        let mut out = Vec::new();
        let s = BatchSpec {
            token_only: true,
            ..spec(&key)
        };
        sign_lines(&b"/images/1.jpg"[..], &mut out, &s, |_| {}).unwrap();
        assert_eq!(out, b"vHEnxR8VaxpEDgyNzJuWwA\n");
    }
}
