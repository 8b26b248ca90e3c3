//! Verifying a request as nginx's `secure_link` does, with the Gcore status mapping:
//! 400 for a target nginx cannot parse, 403 for a missing or wrong link, 410 for a right link
//! whose time has passed.

use std::fmt;
use std::net::IpAddr;

use subtle::ConstantTimeEq;

use crate::addr::RemoteAddr;
use crate::base64url::{decode_token, TokenFormatError};
use crate::key::Key;
use crate::query::arg;
use crate::sign::digest;
use crate::target::{directory, Target, TargetError};

/// The raw `md5` and `expires` values of a query, as `$arg_md5` and `$arg_expires`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkParams<'a> {
    /// `$arg_md5`, not decoded; `None` when absent.
    pub md5: Option<&'a [u8]>,
    /// `$arg_expires`, not decoded; `None` when absent.
    pub expires: Option<&'a [u8]>,
}

impl<'a> LinkParams<'a> {
    /// Finds the parameters in a raw query string.
    pub fn from_args(args: &'a [u8]) -> LinkParams<'a> {
        LinkParams {
            md5: arg(args, b"md5"),
            expires: arg(args, b"expires"),
        }
    }
}

/// Why an `expires` value is refused (always a 403, never a 410).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExpiresError {
    /// A byte other than an ASCII digit.
    NotDigits,
    /// Zero, which nginx takes as "no expiry given" and refuses.
    Zero,
    /// Larger than a signed 64-bit integer.
    TooLarge,
}

/// Parses `expires` as nginx's `ngx_atotm` and `secure_link` do.
pub fn parse_expires(raw: &[u8]) -> Result<i64, ExpiresError> {
    if raw.is_empty() {
        return Err(ExpiresError::NotDigits);
    }
    let mut v: i64 = 0;
    for &b in raw {
        if !b.is_ascii_digit() {
            return Err(ExpiresError::NotDigits);
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or(ExpiresError::TooLarge)?;
    }
    if v == 0 {
        return Err(ExpiresError::Zero);
    }
    Ok(v)
}

/// Why a request is refused. [`Refusal::status`] gives the HTTP status nginx/Gcore answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// nginx cannot parse the request target: 400.
    BadRequest(TargetError),
    /// No `md5` parameter, or an empty one: 403.
    MissingToken,
    /// No `expires` parameter, or an empty one: 403.
    MissingExpires,
    /// `expires` is not a positive 64-bit decimal: 403.
    BadExpires(ExpiresError),
    /// `md5` does not decode to 16 bytes: 403.
    BadToken(TokenFormatError),
    /// The token matches none of the keys: 403.
    Mismatch,
    /// The token is right but `expires` is before `now`: 410.
    Expired {
        /// The link's expiry time.
        expires: i64,
        /// The time of the check.
        now: i64,
    },
}

impl Refusal {
    /// The HTTP status: 400, 403 or 410.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadRequest(_) => 400,
            Refusal::Expired { .. } => 410,
            _ => 403,
        }
    }

    /// A stable machine-readable code, for logs, metrics and `--json`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::BadRequest(_) => "bad_request",
            Refusal::MissingToken => "missing_token",
            Refusal::MissingExpires => "missing_expires",
            Refusal::BadExpires(_) => "bad_expires",
            Refusal::BadToken(_) => "bad_token",
            Refusal::Mismatch => "token_mismatch",
            Refusal::Expired { .. } => "expired",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::BadRequest(e) => write!(f, "bad request: {e}"),
            Refusal::MissingToken => f.write_str("the md5 query parameter is missing or empty"),
            Refusal::MissingExpires => {
                f.write_str("the expires query parameter is missing or empty")
            }
            Refusal::BadExpires(ExpiresError::NotDigits) => {
                f.write_str("expires must be ASCII digits only")
            }
            Refusal::BadExpires(ExpiresError::Zero) => f.write_str("expires must not be 0"),
            Refusal::BadExpires(ExpiresError::TooLarge) => {
                f.write_str("expires does not fit in a signed 64-bit integer")
            }
            Refusal::BadToken(e) => write!(f, "malformed token: {e}"),
            Refusal::Mismatch => f.write_str(
                "the token does not match this path, expiry, key and (if bound) client address",
            ),
            Refusal::Expired { expires, now } => write!(
                f,
                "the link expired {} s ago (expires {expires}, now {now})",
                now.saturating_sub(*expires)
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// A request whose link is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// Index in the key list of the key that matched (0 is the signing key).
    pub key_index: usize,
    /// The link's expiry time.
    pub expires: i64,
    /// The link's token, decoded (what a revocation by token is kept as).
    pub token: [u8; 16],
}

/// Verifies the link in a parsed target.
///
/// `keys` are tried in order (the current key first, then keys being rotated out); `ip` is
/// the client address when the resource binds tokens to it (Gcore type 0), `None` when it does
/// not (type 2); `now` is the current Unix time in whole seconds.
pub fn verify(
    target: &Target<'_>,
    keys: &[Key],
    ip: Option<IpAddr>,
    now: i64,
) -> Result<Verified, Refusal> {
    verify_as(target, keys, ip.map(RemoteAddr::new).as_ref(), now)
}

/// [`verify`] with the client part of the hashed string given as text: the address
/// ([`RemoteAddr::new`]), its network ([`RemoteAddr::network`]), or `None` for links bound to
/// no client.
pub fn verify_as(
    target: &Target<'_>,
    keys: &[Key],
    client: Option<&RemoteAddr>,
    now: i64,
) -> Result<Verified, Refusal> {
    verify_signed_path(target, target.uri(), keys, client, now)
}

/// Like [`verify`], and also accepts a token signed over the directory of the path: `$uri` up
/// to and including its last `/` (`/videos/video-1/` for `/videos/video-1/seg1.ts`), as Gcore
/// does for resources with query string forwarding, so that one token serves a playlist and the
/// files next to it. Such a token covers the files directly in that directory, not those in
/// sub-directories. A token for the exact path is accepted too.
pub fn verify_in_directory(
    target: &Target<'_>,
    keys: &[Key],
    ip: Option<IpAddr>,
    now: i64,
) -> Result<Verified, Refusal> {
    verify_in_directory_as(target, keys, ip.map(RemoteAddr::new).as_ref(), now)
}

/// [`verify_in_directory`] with the client part given as text, as [`verify_as`].
pub fn verify_in_directory_as(
    target: &Target<'_>,
    keys: &[Key],
    ip: Option<&RemoteAddr>,
    now: i64,
) -> Result<Verified, Refusal> {
    // The directory is tried first: behind a forwarding playlist, nearly every request is a
    // segment carrying its directory's token, so this order costs one MD5 where the other
    // would cost two.
    let uri = target.uri();
    let dir = directory(uri);
    // A path that is a directory already (or, never from `Target::parse`, has no `/`) has one
    // token: its own.
    if dir.is_empty() || dir.len() == uri.len() {
        return verify_as(target, keys, ip, now);
    }
    match verify_signed_path(target, dir, keys, ip, now) {
        Err(Refusal::Mismatch) => verify_as(target, keys, ip, now),
        other => other,
    }
}

/// Verifies the link parameters of `target` against a token signed over `signed_path`.
fn verify_signed_path(
    target: &Target<'_>,
    signed_path: &[u8],
    keys: &[Key],
    ip: Option<&RemoteAddr>,
    now: i64,
) -> Result<Verified, Refusal> {
    let params = LinkParams::from_args(target.args());
    let md5 = params
        .md5
        .filter(|v| !v.is_empty())
        .ok_or(Refusal::MissingToken)?;
    let expires_raw = params
        .expires
        .filter(|v| !v.is_empty())
        .ok_or(Refusal::MissingExpires)?;
    let expires = parse_expires(expires_raw).map_err(Refusal::BadExpires)?;
    let given = decode_token(md5).map_err(Refusal::BadToken)?;
    let key_index = keys
        .iter()
        .position(|key| {
            let want = digest(expires_raw, signed_path, ip, key);
            bool::from(want.ct_eq(&given))
        })
        .ok_or(Refusal::Mismatch)?;
    // nginx: `expires < ngx_time()` is expired, so a link is still valid in its last second.
    if expires < now {
        return Err(Refusal::Expired { expires, now });
    }
    Ok(Verified {
        key_index,
        expires,
        token: given,
    })
}

/// Parses a raw origin-form request target and verifies it: the whole decision of the edge.
pub fn verify_request(
    target: &[u8],
    keys: &[Key],
    ip: Option<IpAddr>,
    now: i64,
) -> Result<Verified, Refusal> {
    let target = Target::parse(target).map_err(Refusal::BadRequest)?;
    verify(&target, keys, ip, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::sign;

    fn keys() -> Vec<Key> {
        vec![
            Key::new("secret_key").unwrap(),
            Key::new("old_secret").unwrap(),
        ]
    }

    fn link(path: &str, key: &Key, expires: i64, ip: Option<IpAddr>) -> String {
        let t = sign(key, expires, path.as_bytes(), ip).unwrap();
        format!("{path}?md5={t}&expires={expires}")
    }

    #[test]
    fn directory_tokens() {
        let ks = keys();
        let now = 1_700_000_000;
        let dir = link("/videos/video-1/", &ks[0], now + 10, None);
        let (_, query) = dir.split_once('?').unwrap();
        let at = |path: &str| {
            let t = format!("{path}?{query}");
            let target = Target::parse(t.as_bytes()).unwrap();
            (
                verify_in_directory(&target, &ks, None, now),
                verify(&target, &ks, None, now),
            )
        };
        assert!(at("/videos/video-1/seg1.ts").0.is_ok());
        assert!(at("/videos/video-1/index.m3u8").0.is_ok());
        assert_eq!(
            at("/videos/video-1/seg1.ts").1,
            Err(Refusal::Mismatch),
            "plain verify: exact only"
        );
        assert_eq!(
            at("/videos/video-1/360p/seg1.ts").0,
            Err(Refusal::Mismatch),
            "not sub-directories"
        );
        assert_eq!(at("/videos/video-2/seg1.ts").0, Err(Refusal::Mismatch));
        assert_eq!(at("/videos/video-1").0, Err(Refusal::Mismatch));
        // An exact-file token still works, and expiry still applies to directory tokens.
        let file = link("/videos/video-1/seg1.ts", &ks[1], now + 10, None);
        let t = Target::parse(file.as_bytes()).unwrap();
        assert_eq!(
            verify_in_directory(&t, &ks, None, now).map(|v| v.key_index),
            Ok(1)
        );
        let (_, q2) = dir.split_once('?').unwrap();
        let t = format!("/videos/video-1/seg1.ts?{q2}");
        let late = verify_in_directory(&Target::parse(t.as_bytes()).unwrap(), &ks, None, now + 11);
        assert!(matches!(late, Err(Refusal::Expired { .. })));
    }

    #[test]
    fn decisions() {
        let ks = keys();
        let now = 1_700_000_000;
        let ip: IpAddr = "1.2.3.4".parse().unwrap();
        let good = link("/a.jpg", &ks[0], now + 10, None);
        let v = |t: &str, ip: Option<IpAddr>, now: i64| verify_request(t.as_bytes(), &ks, ip, now);

        assert_eq!(
            v(&good, None, now),
            Ok(Verified {
                key_index: 0,
                expires: now + 10,
                token: v(&good, None, now).unwrap().token,
            })
        );
        // The expiry second itself is still valid; one second later it is not.
        assert!(v(&good, None, now + 10).is_ok());
        assert_eq!(
            v(&good, None, now + 11),
            Err(Refusal::Expired {
                expires: now + 10,
                now: now + 11
            })
        );
        // Rotation: the old key still verifies and says so.
        let old = link("/a.jpg", &ks[1], now + 10, None);
        assert_eq!(v(&old, None, now).map(|x| x.key_index), Ok(1));
        // Bound to an address.
        let bound = link("/a.jpg", &ks[0], now + 10, Some(ip));
        assert!(v(&bound, Some(ip), now).is_ok());
        assert_eq!(
            v(&bound, Some("1.2.3.5".parse().unwrap()), now),
            Err(Refusal::Mismatch)
        );
        assert_eq!(v(&bound, None, now), Err(Refusal::Mismatch));
        // A wrong hash on an expired link is 403, not 410.
        let mut wrong = link("/a.jpg", &ks[0], now - 5, None);
        wrong = wrong.replace("/a.jpg", "/b.jpg");
        assert_eq!(v(&wrong, None, now), Err(Refusal::Mismatch));
        assert_eq!(v("/a.jpg", None, now), Err(Refusal::MissingToken));
        assert_eq!(
            v("/a.jpg?md5=AAAAAAAAAAAAAAAAAAAAAA", None, now),
            Err(Refusal::MissingExpires)
        );
        assert_eq!(
            v("/a.jpg?md5=AAAAAAAAAAAAAAAAAAAAAA&expires=0", None, now),
            Err(Refusal::BadExpires(ExpiresError::Zero))
        );
        assert_eq!(v("/%zz?md5=x", None, now).map_err(|r| r.status()), Err(400));
    }

    #[test]
    fn statuses() {
        assert_eq!(Refusal::Mismatch.status(), 403);
        assert_eq!(Refusal::Expired { expires: 1, now: 2 }.status(), 410);
        assert_eq!(Refusal::BadRequest(TargetError::AboveRoot).status(), 400);
    }

    #[test]
    fn expires_parsing() {
        assert_eq!(parse_expires(b"0001"), Ok(1));
        assert_eq!(parse_expires(b"9223372036854775807"), Ok(i64::MAX));
        assert_eq!(
            parse_expires(b"9223372036854775808"),
            Err(ExpiresError::TooLarge)
        );
        assert_eq!(parse_expires(b"000"), Err(ExpiresError::Zero));
        assert_eq!(parse_expires(b"-1"), Err(ExpiresError::NotDigits));
        assert_eq!(parse_expires(b"1 "), Err(ExpiresError::NotDigits));
        assert_eq!(parse_expires(b"+1"), Err(ExpiresError::NotDigits));
    }

    #[test]
    fn leading_zeros_are_hashed_raw() {
        let ks = keys();
        let t = sign(&ks[0], 100, b"/a", None).unwrap();
        // The token for "100" does not verify as "0100": the hash covers the text.
        let padded = format!("/a?md5={t}&expires=0100");
        assert_eq!(
            verify_request(padded.as_bytes(), &ks, None, 1),
            Err(Refusal::Mismatch)
        );
    }
}
