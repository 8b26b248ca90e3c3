//! Signing: the token, and a link that nginx will decode back to the signed path.

use std::fmt;
use std::net::IpAddr;

use md5::{Digest, Md5};

use crate::addr::RemoteAddr;
use crate::base64url::{encode_digest, TOKEN_LEN};
use crate::key::Key;

/// A token: 22 base64url characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token([u8; TOKEN_LEN]);

impl Token {
    /// The token text.
    pub fn as_str(&self) -> &str {
        // encode_digest only writes base64url ASCII.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The token for a digest.
    pub fn from_digest(d: &[u8; 16]) -> Token {
        Token(encode_digest(d))
    }

    /// The token bytes.
    pub fn as_bytes(&self) -> &[u8; TOKEN_LEN] {
        &self.0
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({})", self.as_str())
    }
}

/// `MD5("{expires}{uri}{ip} {key}")`, without allocating. `expires` is the raw decimal
/// text: nginx hashes it as received, leading zeros included.
pub fn digest(expires: &[u8], uri: &[u8], ip: Option<&RemoteAddr>, key: &Key) -> [u8; 16] {
    let ip = ip.map(RemoteAddr::as_bytes).unwrap_or_default();
    let key = key.expose_secret().as_bytes();
    let parts: [&[u8]; 5] = [expires, uri, ip, b" ", key];
    // One call over a stack buffer is measurably cheaper than five `update`s for typical
    // links; long paths fall back to feeding the pieces.
    let mut buf = [0u8; 128];
    let total: usize = parts.iter().map(|p| p.len()).sum();
    if total <= buf.len() {
        let mut at = 0;
        for p in parts {
            buf[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        return Md5::digest(&buf[..total]).into();
    }
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Why a link cannot be signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignError {
    /// Expiry times must be positive: nginx refuses 0 and negative values.
    ExpiresNotPositive,
    /// The path does not start with `/`.
    NotAbsolutePath,
    /// The path holds a NUL byte, which nginx refuses even when escaped.
    ContainsNul,
    /// The path holds `//`, which nginx merges before checking, so the token would never match.
    EmptySegment {
        /// Byte offset of the second slash.
        offset: usize,
    },
    /// The path holds a `.` or `..` segment, which nginx resolves before checking.
    DotSegment {
        /// Byte offset of the segment.
        offset: usize,
    },
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignError::ExpiresNotPositive => f.write_str("expires must be a positive Unix time"),
            SignError::NotAbsolutePath => f.write_str("path must start with '/'"),
            SignError::ContainsNul => f.write_str("path must not contain a NUL byte"),
            SignError::EmptySegment { offset } => write!(
                f,
                "path has '//' at offset {offset}; nginx merges slashes before checking the \
                 token, so sign the merged path"
            ),
            SignError::DotSegment { offset } => write!(
                f,
                "path has a '.' or '..' segment at offset {offset}; nginx resolves those \
                 before checking the token, so sign the resolved path"
            ),
        }
    }
}

impl std::error::Error for SignError {}

/// Decimal text of a positive expiry time, on the stack.
pub(crate) struct ExpiresText {
    buf: [u8; 20],
    start: usize,
}

impl ExpiresText {
    pub(crate) fn new(expires: i64) -> Result<ExpiresText, SignError> {
        if expires <= 0 {
            return Err(SignError::ExpiresNotPositive);
        }
        let mut buf = [0u8; 20];
        let mut start = buf.len();
        let mut v = expires as u64;
        while v > 0 {
            start -= 1;
            buf[start] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        Ok(ExpiresText { buf, start })
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// Signs `uri` (nginx's decoded `$uri`) until `expires`, bound to `ip` when the resource binds
/// tokens to the client address (Gcore `secure_key.type` 0) and to no address when it does not
/// (type 2).
pub fn sign(key: &Key, expires: i64, uri: &[u8], ip: Option<IpAddr>) -> Result<Token, SignError> {
    sign_as(key, expires, uri, ip.map(RemoteAddr::new).as_ref())
}

/// [`sign`] with the client part of the hashed string given as text: the address
/// ([`RemoteAddr::new`]), its network ([`RemoteAddr::network`], Tollgate's subnet binding), or
/// `None`.
pub fn sign_as(
    key: &Key,
    expires: i64,
    uri: &[u8],
    client: Option<&RemoteAddr>,
) -> Result<Token, SignError> {
    let expires = ExpiresText::new(expires)?;
    let d = digest(expires.as_bytes(), uri, client, key);
    Ok(Token::from_digest(&d))
}

/// Checks that nginx's normalisation leaves `path` unchanged once it is percent-encoded by
/// [`write_link`], so that a token signed over `path` matches what nginx computes.
pub fn check_signable_path(path: &[u8]) -> Result<(), SignError> {
    if path.first() != Some(&b'/') {
        return Err(SignError::NotAbsolutePath);
    }
    if path.contains(&0) {
        return Err(SignError::ContainsNul);
    }
    let mut offset = 1;
    for segment in path[1..].split(|&b| b == b'/') {
        match segment {
            b"." | b".." => return Err(SignError::DotSegment { offset }),
            // An empty segment is fine only at the very end ("/dir/").
            b"" if offset < path.len() => return Err(SignError::EmptySegment { offset }),
            _ => {}
        }
        offset += segment.len() + 1;
    }
    Ok(())
}

/// Bytes left as they are in a printed path: RFC 3986 `pchar` without `%`, plus `/`.
/// Everything else is escaped; nginx decodes every escape, so escaping more is always safe.
fn keep_in_path(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
}

/// Appends `path` percent-encoded so that nginx decodes it back to the same bytes.
pub fn encode_path(out: &mut Vec<u8>, path: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in path {
        if keep_in_path(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
    }
}

/// Appends `{base}{encoded path}?md5={token}&expires={expires}` to `out`.
pub fn write_link(out: &mut Vec<u8>, base: &str, path: &[u8], token: &Token, expires: i64) {
    out.extend_from_slice(base.trim_end_matches('/').as_bytes());
    encode_path(out, path);
    out.extend_from_slice(b"?md5=");
    out.extend_from_slice(token.as_bytes());
    out.extend_from_slice(b"&expires=");
    if let Ok(e) = ExpiresText::new(expires) {
        out.extend_from_slice(e.as_bytes());
    }
}

/// Signs `path` and appends the link to `out`: what `tollgate sign` prints, one per line in
/// batch mode. Checks the path first so that the link works against nginx.
pub fn sign_link(
    out: &mut Vec<u8>,
    base: &str,
    key: &Key,
    expires: i64,
    path: &[u8],
    ip: Option<IpAddr>,
) -> Result<Token, SignError> {
    sign_link_as(
        out,
        base,
        key,
        expires,
        path,
        ip.map(RemoteAddr::new).as_ref(),
    )
}

/// [`sign_link`] with the client part given as text, as [`sign_as`].
pub fn sign_link_as(
    out: &mut Vec<u8>,
    base: &str,
    key: &Key,
    expires: i64,
    path: &[u8],
    client: Option<&RemoteAddr>,
) -> Result<Token, SignError> {
    check_signable_path(path)?;
    let token = sign_as(key, expires, path, client)?;
    write_link(out, base, path, &token, expires);
    Ok(token)
}

/// The one call a service needs to hand out links: `{base}{path}?md5=…&expires=…`, with the
/// path percent-encoded so the edge decodes it back to `path`, bound to `ip` for resources that
/// put the client address in the token (Gcore type 0) and to nothing for type 2.
///
/// ```
/// use tollgate_token::{signed_url, Key};
///
/// let key = Key::new("secret_key")?;
/// let url = signed_url("https://cdn.example.com", &key, "/images/1.jpg", 2147483647, None)?;
/// assert_eq!(url, "https://cdn.example.com/images/1.jpg?md5=vHEnxR8VaxpEDgyNzJuWwA&expires=2147483647");
///
/// // Bound to the viewer's address, with a path holding a space.
/// let ip = "203.0.113.7".parse()?;
/// let url = signed_url("https://cdn.example.com", &key, "/my film.mp4", 2147483647, Some(ip))?;
/// assert!(url.starts_with("https://cdn.example.com/my%20film.mp4?md5="));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn signed_url(
    base: &str,
    key: &Key,
    path: &str,
    expires: i64,
    ip: Option<IpAddr>,
) -> Result<String, SignError> {
    let mut out = Vec::with_capacity(base.len() + path.len() + 48);
    sign_link(&mut out, base, key, expires, path.as_bytes(), ip)?;
    // `write_link` writes `base` as given and the rest in ASCII, so this is never lossy.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// An expiry for a link that should live `lifetime` seconds from `now`, rounded up to a multiple
/// of `window` seconds (0: no rounding) so that every page view within a window gets the same
/// link, which browsers and caches can then keep.
///
/// ```
/// use tollgate_token::sign::expiry;
/// assert_eq!(expiry(1_000, 300, 0), 1_300);
/// assert_eq!(expiry(1_000, 300, 3600), 3_600);
/// assert_eq!(expiry(3_300, 300, 3600), 3_600);
/// ```
pub fn expiry(now: i64, lifetime: i64, window: i64) -> i64 {
    let e = now.saturating_add(lifetime);
    if window > 0 {
        e.div_euclid(window)
            .saturating_add(i64::from(e.rem_euclid(window) != 0))
            .saturating_mul(window)
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::new("secret_key").unwrap()
    }

    #[test]
    fn gcore_doc_openssl_examples() {
        let ip = Some("1.2.3.4".parse().unwrap());
        let t = sign(&key(), 2147483647, b"/images/1.jpg", ip).unwrap();
        assert_eq!(t.as_str(), "14nsJ0zrjGipdIbehZ1tRw");
        let t = sign(&key(), 2147483647, b"/images/1.jpg", None).unwrap();
        assert_eq!(t.as_str(), "vHEnxR8VaxpEDgyNzJuWwA");
    }

    #[test]
    fn refuses_paths_nginx_would_change() {
        assert_eq!(check_signable_path(b"a"), Err(SignError::NotAbsolutePath));
        assert_eq!(
            check_signable_path(b"/a//b"),
            Err(SignError::EmptySegment { offset: 3 })
        );
        assert_eq!(
            check_signable_path(b"/a/./b"),
            Err(SignError::DotSegment { offset: 3 })
        );
        assert_eq!(
            check_signable_path(b"/a/.."),
            Err(SignError::DotSegment { offset: 3 })
        );
        assert_eq!(check_signable_path(b"/a\0"), Err(SignError::ContainsNul));
        for ok in [
            &b"/"[..],
            b"/dir/",
            b"/a b/c%d?e#f",
            b"/.well-known/x",
            b"/a..b",
        ] {
            assert_eq!(check_signable_path(ok), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn link_encodes_what_nginx_decodes() {
        let mut out = Vec::new();
        let path = "/live/a b/caf\u{e9}?#%.m3u8".as_bytes();
        let t = sign_link(&mut out, "https://cdn.example.com/", &key(), 5, path, None).unwrap();
        let link = String::from_utf8(out).unwrap();
        assert_eq!(
            link,
            format!("https://cdn.example.com/live/a%20b/caf%C3%A9%3F%23%25.m3u8?md5={t}&expires=5")
        );
    }

    #[test]
    fn expires_must_be_positive() {
        assert_eq!(
            sign(&key(), 0, b"/", None),
            Err(SignError::ExpiresNotPositive)
        );
        assert_eq!(
            sign(&key(), -1, b"/", None),
            Err(SignError::ExpiresNotPositive)
        );
        assert!(sign(&key(), i64::MAX, b"/", None).is_ok());
    }
}
