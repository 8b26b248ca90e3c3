//! The request target as nginx sees it: `$uri` and `$args`.
//!
//! This is a port of two functions of nginx 1.22 (`src/http/ngx_http_parse.c`):
//! the character checks of `ngx_http_parse_request_line` and the state machine of
//! `ngx_http_parse_complex_uri` (with `merge_slashes on`, the default). Where the port looks
//! odd, it is because nginx is odd there, and the token hashes whatever nginx computes:
//!
//! - `%XX` escapes are decoded and the decoded byte is then treated like a literal one, so
//!   `%2F` merges with neighbouring slashes and `%2E%2E` climbs a directory; only a decoded
//!   `%`, `#` or `?` is kept as a plain character.
//! - a literal `#` ends the path (and the query at that point);
//! - a bad escape, a decoded NUL, or `..` above the root is a 400;
//! - any control character or space in the target is a 400 (nginx >= 1.21.1).
//!
//! Query values are never decoded.

use std::borrow::Cow;
use std::fmt;

/// A request target split and normalised as nginx does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    uri: Cow<'a, [u8]>,
    args: &'a [u8],
    changes: Normalisation,
}

/// What normalisation changed between the raw path and `$uri`, for explanations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Normalisation {
    /// `%XX` escapes were decoded.
    pub percent_decoded: bool,
    /// Repeated slashes were merged into one.
    pub slashes_merged: bool,
    /// `.` or `..` segments were resolved.
    pub dot_segments_resolved: bool,
    /// A `#` cut the path short.
    pub fragment_dropped: bool,
}

impl Normalisation {
    /// True when `$uri` is not simply the raw path before `?`.
    pub fn any(&self) -> bool {
        self.percent_decoded
            || self.slashes_merged
            || self.dot_segments_resolved
            || self.fragment_dropped
    }

    /// The changes, in words.
    pub fn describe(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.percent_decoded {
            v.push("percent-escapes decoded");
        }
        if self.slashes_merged {
            v.push("repeated slashes merged");
        }
        if self.dot_segments_resolved {
            v.push("dot segments resolved");
        }
        if self.fragment_dropped {
            v.push("everything from '#' dropped");
        }
        v
    }
}

/// Why nginx answers 400 to a request target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetError {
    /// The target does not start with `/`.
    NotAbsolutePath,
    /// A space, control character or DEL at this byte offset.
    ForbiddenByte {
        /// Byte offset in the target.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// `%` not followed by two hex digits, at this byte offset.
    BadEscape {
        /// Byte offset of the `%`.
        offset: usize,
    },
    /// `%00`, which nginx refuses.
    EncodedNul,
    /// A `..` segment that climbs above the root.
    AboveRoot,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::NotAbsolutePath => f.write_str("the path does not start with '/'"),
            TargetError::ForbiddenByte { offset, byte } => write!(
                f,
                "byte 0x{byte:02x} at offset {offset} is a space or control character, \
                 which a request line may not contain"
            ),
            TargetError::BadEscape { offset } => write!(
                f,
                "the '%' at offset {offset} is not followed by two hexadecimal digits"
            ),
            TargetError::EncodedNul => f.write_str("the path contains %00"),
            TargetError::AboveRoot => f.write_str("a '..' segment climbs above the root"),
        }
    }
}

impl std::error::Error for TargetError {}

impl<'a> Target<'a> {
    /// Parses an origin-form request target (`/path?query`), as received on the request line.
    pub fn parse(target: &'a [u8]) -> Result<Target<'a>, TargetError> {
        if target.first() != Some(&b'/') {
            return Err(TargetError::NotAbsolutePath);
        }
        // nginx >= 1.21.1 refuses spaces and control characters anywhere in the request line,
        // and its own test for a URI that needs the full parser is an escape in the path, a '#'
        // anywhere, or a '.' or '/' right after a '/'. Simple URIs (the common case) are
        // borrowed as they are. The path is scanned with a byte-class table; the query, which
        // has no syntax of its own here, eight bytes at a time.
        let mut query_at = None;
        let mut complex = false;
        for (i, &b) in target.iter().enumerate() {
            let class = BYTE_CLASS[b as usize];
            if class == 0 {
                continue;
            }
            if class & FORBIDDEN != 0 {
                return Err(TargetError::ForbiddenByte { offset: i, byte: b });
            }
            if class & QUESTION != 0 {
                query_at = Some(i);
                break;
            }
            if class & (PERCENT | HASH) != 0 || matches!(target.get(i + 1), Some(b'.' | b'/')) {
                complex = true;
            }
        }
        if let Some(q) = query_at {
            match find_in_query(&target[q + 1..]) {
                Some((i, b'#')) => {
                    // Keep checking for forbidden bytes past the '#'.
                    if let Some(j) = target[q + 1 + i..].iter().position(|&b| is_forbidden(b)) {
                        let offset = q + 1 + i + j;
                        return Err(TargetError::ForbiddenByte {
                            offset,
                            byte: target[offset],
                        });
                    }
                    complex = true;
                }
                Some((i, byte)) => {
                    return Err(TargetError::ForbiddenByte {
                        offset: q + 1 + i,
                        byte,
                    })
                }
                None => {}
            }
        }
        if !complex {
            let (uri, args) = match query_at {
                Some(q) => (&target[..q], &target[q + 1..]),
                None => (target, &target[target.len()..]),
            };
            return Ok(Target {
                uri: Cow::Borrowed(uri),
                args,
                changes: Normalisation::default(),
            });
        }
        parse_complex(target)
    }

    /// nginx's `$uri`: the decoded, normalised path. This is what the token signs.
    pub fn uri(&self) -> &[u8] {
        &self.uri
    }

    /// nginx's `$args`: the raw query string, without `?`.
    pub fn args(&self) -> &'a [u8] {
        self.args
    }

    /// What normalisation changed.
    pub fn changes(&self) -> Normalisation {
        self.changes
    }
}

/// nginx's `$uri` for a request for `path`: what [`Target::parse`] makes of it, for code that
/// must know what the edge will check without a request in hand (the playlist rewrite signs
/// the directory that a player's request for a link will be checked against). A `?` or `#`
/// ends the path, as on a request line.
pub fn normalise_path(path: &[u8]) -> Result<Cow<'_, [u8]>, TargetError> {
    Target::parse(path).map(|t| t.uri)
}

/// The directory of a `$uri`: up to and including its last `/` (`/v/360p/` for
/// `/v/360p/seg1.ts`), which a directory token signs. Empty when there is no `/`.
pub fn directory(uri: &[u8]) -> &[u8] {
    &uri[..uri.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1)]
}

const FORBIDDEN: u8 = 1;
const PERCENT: u8 = 2;
const HASH: u8 = 4;
const SLASH: u8 = 8;
const QUESTION: u8 = 16;

fn is_forbidden(b: u8) -> bool {
    b <= 0x20 || b == 0x7f
}

/// The first byte of a query that is forbidden or a '#', with its offset.
///
/// Eight bytes at a time: a word holds such a byte when one of its bytes below 0x80 is below
/// 0x21, or one byte equals 0x7f or '#' (the classic "has zero byte" test on `x ^ pattern`).
/// Only then are its bytes looked at one by one.
fn find_in_query(q: &[u8]) -> Option<(usize, u8)> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let special = |b: u8| is_forbidden(b) || b == b'#';
    let mut chunks = q.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let hit = (x.wrapping_sub(ONES * 0x21) & !x & HIGHS)
            | has_zero(x ^ (ONES * 0x7f))
            | has_zero(x ^ (ONES * u64::from(b'#')));
        if hit != 0 {
            if let Some(i) = chunk.iter().position(|&b| special(b)) {
                return Some((base + i, chunk[i]));
            }
        }
        base += 8;
    }
    let rest = chunks.remainder();
    rest.iter()
        .position(|&b| special(b))
        .map(|i| (base + i, rest[i]))
}

/// What each byte means to the first pass of [`Target::parse`]; 0 for ordinary bytes.
static BYTE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b <= 0x20 {
        t[b] = FORBIDDEN;
        b += 1;
    }
    t[0x7f] = FORBIDDEN;
    t[b'%' as usize] = PERCENT;
    t[b'#' as usize] = HASH;
    t[b'/' as usize] = SLASH;
    t[b'?' as usize] = QUESTION;
    t
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Usual,
    Slash,
    Dot,
    DotDot,
    Quoted,
    QuotedSecond,
}

/// Drops the last path segment after a `..`, as nginx's `u -= 4` loop does: `out` ends in
/// `/..`; cut back to just after the slash before the previous segment.
fn climb(out: &mut Vec<u8>) -> Result<(), TargetError> {
    let mut u = out.len() as isize - 4;
    loop {
        if u < 0 {
            return Err(TargetError::AboveRoot);
        }
        if out[u as usize] == b'/' {
            out.truncate(u as usize + 1);
            return Ok(());
        }
        u -= 1;
    }
}

/// `ngx_http_parse_complex_uri` with `merge_slashes on`. `target` starts with `/`.
fn parse_complex(target: &[u8]) -> Result<Target<'_>, TargetError> {
    let end = target.len();
    // nginx reads one byte past the URI (the space before "HTTP/1.1"); it is never processed.
    let at = |i: usize| target.get(i).copied().unwrap_or(b' ');
    let mut out = Vec::with_capacity(end);
    let mut changes = Normalisation::default();
    let mut state = State::Usual;
    let mut quoted_state = State::Usual;
    let mut quote_offset = 0;
    let mut decoded = 0u8;
    let mut p = 0usize;
    let mut ch = at(p);
    p += 1;
    // Some(start) when a '?' begins the query at `start`.
    let mut args_start = None;

    'scan: while p <= end {
        match state {
            State::Usual => {
                match ch {
                    b'/' => {
                        state = State::Slash;
                        out.push(ch);
                    }
                    b'%' => {
                        quoted_state = state;
                        quote_offset = p - 1;
                        state = State::Quoted;
                    }
                    b'?' => {
                        args_start = Some(p);
                        break 'scan;
                    }
                    b'#' => {
                        changes.fragment_dropped = true;
                        return Ok(done(out, &target[end..], changes));
                    }
                    _ => out.push(ch),
                }
                ch = at(p);
                p += 1;
            }
            State::Slash => {
                match ch {
                    b'/' => changes.slashes_merged = true,
                    b'.' => {
                        state = State::Dot;
                        out.push(ch);
                    }
                    b'%' => {
                        quoted_state = state;
                        quote_offset = p - 1;
                        state = State::Quoted;
                    }
                    b'?' => {
                        args_start = Some(p);
                        break 'scan;
                    }
                    b'#' => {
                        changes.fragment_dropped = true;
                        return Ok(done(out, &target[end..], changes));
                    }
                    _ => {
                        state = State::Usual;
                        out.push(ch);
                    }
                }
                ch = at(p);
                p += 1;
            }
            State::Dot => {
                match ch {
                    b'/' => {
                        state = State::Slash;
                        out.pop();
                        changes.dot_segments_resolved = true;
                    }
                    b'.' => {
                        state = State::DotDot;
                        out.push(ch);
                    }
                    b'%' => {
                        quoted_state = state;
                        quote_offset = p - 1;
                        state = State::Quoted;
                    }
                    b'?' => {
                        out.pop();
                        changes.dot_segments_resolved = true;
                        args_start = Some(p);
                        break 'scan;
                    }
                    b'#' => {
                        out.pop();
                        changes.dot_segments_resolved = true;
                        changes.fragment_dropped = true;
                        return Ok(done(out, &target[end..], changes));
                    }
                    _ => {
                        state = State::Usual;
                        out.push(ch);
                    }
                }
                ch = at(p);
                p += 1;
            }
            State::DotDot => {
                match ch {
                    b'/' | b'?' | b'#' => {
                        climb(&mut out)?;
                        changes.dot_segments_resolved = true;
                        if ch == b'?' {
                            args_start = Some(p);
                            break 'scan;
                        }
                        if ch == b'#' {
                            changes.fragment_dropped = true;
                            return Ok(done(out, &target[end..], changes));
                        }
                        state = State::Slash;
                    }
                    b'%' => {
                        quoted_state = state;
                        quote_offset = p - 1;
                        state = State::Quoted;
                    }
                    _ => {
                        state = State::Usual;
                        out.push(ch);
                    }
                }
                ch = at(p);
                p += 1;
            }
            State::Quoted => {
                let Some(v) = hex(ch) else {
                    return Err(TargetError::BadEscape {
                        offset: quote_offset,
                    });
                };
                decoded = v;
                state = State::QuotedSecond;
                ch = at(p);
                p += 1;
            }
            State::QuotedSecond => {
                let Some(v) = hex(ch) else {
                    return Err(TargetError::BadEscape {
                        offset: quote_offset,
                    });
                };
                changes.percent_decoded = true;
                ch = (decoded << 4) | v;
                match ch {
                    // A decoded '%', '#' or '?' is an ordinary character, not syntax.
                    b'%' | b'#' | b'?' => {
                        state = State::Usual;
                        out.push(ch);
                        ch = at(p);
                        p += 1;
                    }
                    0 => return Err(TargetError::EncodedNul),
                    // Anything else (including '/' and '.') is processed again in the state
                    // the escape interrupted, without reading a new byte.
                    _ => state = quoted_state,
                }
            }
        }
    }

    if let Some(start) = args_start {
        // The query runs to the end of the target or to a literal '#'.
        let rest = &target[start..];
        let args = match rest.iter().position(|&b| b == b'#') {
            Some(h) => &rest[..h],
            None => rest,
        };
        return Ok(done(out, args, changes));
    }

    match state {
        State::Quoted | State::QuotedSecond => {
            return Err(TargetError::BadEscape {
                offset: quote_offset,
            })
        }
        State::Dot => {
            out.pop();
            changes.dot_segments_resolved = true;
        }
        State::DotDot => {
            // `out` ends in "/..": nginx's `u -= 4` treats the trailing "/.." like "/../".
            climb(&mut out)?;
            changes.dot_segments_resolved = true;
        }
        _ => {}
    }
    Ok(done(out, &target[end..], changes))
}

fn done<'a>(uri: Vec<u8>, args: &'a [u8], changes: Normalisation) -> Target<'a> {
    Target {
        uri: Cow::Owned(uri),
        args,
        changes,
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<(String, String), TargetError> {
        Target::parse(s.as_bytes()).map(|t| {
            (
                String::from_utf8_lossy(t.uri()).into_owned(),
                String::from_utf8_lossy(t.args()).into_owned(),
            )
        })
    }

    #[test]
    fn table() {
        let ok: &[(&str, &str, &str)] = &[
            ("/", "/", ""),
            ("/a/b.jpg", "/a/b.jpg", ""),
            ("/a?x=1", "/a", "x=1"),
            ("/a?", "/a", ""),
            ("/a?b?c", "/a", "b?c"),
            ("//a///b", "/a/b", ""),
            ("/a/./b", "/a/b", ""),
            ("/a/.", "/a/", ""),
            ("/a/..", "/", ""),
            ("/a/b/../c", "/a/c", ""),
            ("/a/b/..?x", "/a/", "x"),
            ("/a/.?x", "/a/", "x"),
            ("/a%20b", "/a b", ""),
            ("/a%2fb", "/a/b", ""),
            ("/a%2F%2Fb", "/a/b", ""),
            ("/a/%2e%2e/b", "/b", ""),
            ("/a%3Fb?c", "/a?b", "c"),
            ("/a%23b", "/a#b", ""),
            ("/a%25b", "/a%b", ""),
            ("/a%2541", "/a%41", ""),
            ("/a#frag?x", "/a", ""),
            ("/a?x#frag", "/a", "x"),
            ("/a/.#x", "/a/", ""),
            ("/a/..#x", "/", ""),
            ("/.hidden", "/.hidden", ""),
            ("/..hidden", "/..hidden", ""),
            ("/a/...", "/a/...", ""),
            ("/a+b", "/a+b", ""),
            ("/caf\u{e9}", "/caf\u{e9}", ""),
            ("/a?md5=%2F", "/a", "md5=%2F"),
        ];
        for (input, uri, args) in ok {
            assert_eq!(
                parse(input),
                Ok((uri.to_string(), args.to_string())),
                "{input:?}"
            );
        }
        let bad: &[(&str, TargetError)] = &[
            ("", TargetError::NotAbsolutePath),
            ("a/b", TargetError::NotAbsolutePath),
            ("/..", TargetError::AboveRoot),
            ("/../a", TargetError::AboveRoot),
            ("/a/../..", TargetError::AboveRoot),
            ("/%2e%2e", TargetError::AboveRoot),
            ("/a%", TargetError::BadEscape { offset: 2 }),
            ("/a%4", TargetError::BadEscape { offset: 2 }),
            ("/a%zz", TargetError::BadEscape { offset: 2 }),
            ("/a%00", TargetError::EncodedNul),
            (
                "/a b",
                TargetError::ForbiddenByte {
                    offset: 2,
                    byte: b' ',
                },
            ),
            (
                "/a?x=\t",
                TargetError::ForbiddenByte {
                    offset: 5,
                    byte: b'\t',
                },
            ),
            (
                "/a\u{7f}",
                TargetError::ForbiddenByte {
                    offset: 2,
                    byte: 0x7f,
                },
            ),
        ];
        for (input, want) in bad {
            assert_eq!(parse(input), Err(*want), "{input:?}");
        }
    }

    #[test]
    fn forbidden_bytes_found_at_any_offset() {
        for len in 2..40 {
            for at in 1..len {
                for bad in [0u8, b'\t', b' ', 0x1f, 0x7f] {
                    let mut t = vec![b'a'; len];
                    t[0] = b'/';
                    t[at] = bad;
                    assert_eq!(
                        Target::parse(&t),
                        Err(TargetError::ForbiddenByte {
                            offset: at,
                            byte: bad
                        })
                    );
                }
            }
        }
        let mut all: Vec<u8> = vec![b'/'];
        all.extend(
            (0x80u8..=0xff)
                .chain(0x21..0x7f)
                .filter(|&b| b != b'%' && b != b'#'),
        );
        assert!(Target::parse(&all).is_ok());
    }

    #[test]
    fn bad_escape_in_query_is_fine() {
        // Only the path is decoded.
        assert_eq!(parse("/a?x=%zz"), Ok(("/a".into(), "x=%zz".into())));
    }

    #[test]
    fn reports_changes() {
        let t = Target::parse(b"//a/./b%20c#x").unwrap();
        let c = t.changes();
        assert!(c.percent_decoded && c.slashes_merged && c.dot_segments_resolved);
        assert!(c.fragment_dropped);
        assert!(!Target::parse(b"/a/b?x").unwrap().changes().any());
    }

    #[test]
    fn normalise_path_is_the_uri_of_parse() {
        for path in [
            "/a//b/c.ts",
            "/a/%2F/b/",
            "/a/b/../c",
            "/a;b/./c",
            "/x?y",
            "/a#b",
        ] {
            let t = Target::parse(path.as_bytes()).unwrap();
            assert_eq!(
                normalise_path(path.as_bytes()).as_deref(),
                Ok(t.uri()),
                "{path}"
            );
        }
        assert_eq!(normalise_path(b"/a/../.."), Err(TargetError::AboveRoot));
        assert!(matches!(normalise_path(b"/a/b.ts"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn directories() {
        assert_eq!(directory(b"/v/360p/seg1.ts"), b"/v/360p/");
        assert_eq!(directory(b"/v/"), b"/v/");
        assert_eq!(directory(b"/"), b"/");
        assert_eq!(directory(b"x"), b"");
    }

    #[test]
    fn simple_targets_are_borrowed() {
        let t = Target::parse(b"/a/b.jpg?md5=x").unwrap();
        assert!(matches!(t.uri, Cow::Borrowed(_)));
    }
}
