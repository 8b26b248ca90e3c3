//! Signed, expiring links in the Gcore "Secure Token" / nginx `secure_link` scheme.
//!
//! A link is `/path?md5=TOKEN&expires=UNIX_TS` with
//! `TOKEN = base64url_nopad(MD5("{expires}{path}{client_ip} {key}"))`, the client address
//! included only for resources that bind tokens to it. This crate signs such links and decides
//! requests exactly as nginx 1.22 with `secure_link $arg_md5,$arg_expires;` and Gcore's status
//! mapping do: 400 when nginx cannot parse the target, 403 for a missing or wrong link, 410 for
//! a right one that has expired.
//!
//! What this crate does *not* do: no network, no files, no clock. The caller passes `now` (Unix
//! seconds) and the client address, so every decision is reproducible at any instant.
//!
//! ```
//! use tollgate_token::{sign, verify_request, Key, Refusal};
//!
//! let key = Key::new("secret_key")?;
//! let token = sign(&key, 2147483647, b"/images/1.jpg", None)?;
//! assert_eq!(token.as_str(), "vHEnxR8VaxpEDgyNzJuWwA");
//!
//! let target = format!("/images/1.jpg?md5={token}&expires=2147483647");
//! let ok = verify_request(target.as_bytes(), &[key.clone()], None, 1_700_000_000);
//! assert_eq!(ok.map(|v| v.key_index), Ok(0));
//!
//! let late = verify_request(target.as_bytes(), &[key], None, 2147483648);
//! assert_eq!(late.map_err(|r| r.status()), Err(410));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod addr;
pub mod base64url;
pub mod explain;
pub mod key;
pub mod query;
pub mod sign;
pub mod target;
pub mod url;
pub mod verify;

pub use addr::RemoteAddr;
pub use explain::{explain, explain_as, Explanation};
pub use key::{Key, KeyError};
pub use sign::{sign, sign_as, sign_link, sign_link_as, signed_url, SignError, Token};
pub use target::{Normalisation, Target, TargetError};
pub use verify::{
    verify, verify_as, verify_in_directory, verify_in_directory_as, verify_request, ExpiresError,
    Refusal, Verified,
};
