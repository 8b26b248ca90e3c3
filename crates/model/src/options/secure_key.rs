//! `options.secure_key`: Gcore's "Secure token", the key links are signed with.

use std::fmt;

use serde::{Deserialize, Serialize};
use tollgate_token::Key;

use crate::validate::FieldErrors;

/// `options.secure_key`: `{"enabled": bool, "key": string, "type": 0|2}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecureKey {
    /// Whether links must be signed.
    pub enabled: bool,
    /// The secret key (6 to 32 printable ASCII characters, no whitespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// 0: the token includes the client IP (default); 2: it does not.
    #[serde(rename = "type", default)]
    pub kind: SecureKeyType,
    /// Tollgate's extension for key rotation: a former key that still verifies links (it never
    /// signs), kept while links signed with it age out. Absent in Gcore's API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_key: Option<String>,
    /// Tollgate's extension for a safe rollout: `"report"` checks and counts every link as
    /// `"enforce"` (the default) would, but serves the request whatever the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SecureKeyMode>,
    /// Tollgate's extension for operators: a request carrying `X-Tollgate-Debug` with this
    /// secret gets the token's reason and detail in response headers (16 to 128 printable
    /// ASCII characters). Without it, answers are as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_secret: Option<String>,
    /// Tollgate's extension for viewers whose address changes within their provider's range:
    /// type 0 links bound to the client's network (`1.2.3.0/24` in the hashed string) rather
    /// than its address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_prefix: Option<IpPrefix>,
}

/// `secure_key.ip_prefix`: the network lengths a link is bound to, per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpPrefix {
    /// IPv4 prefix length, 1 to 32.
    pub v4: u8,
    /// IPv6 prefix length, 1 to 128.
    pub v6: u8,
}

/// `secure_key.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecureKeyMode {
    /// Refuse what the token refuses (nginx's `secure_link`, Gcore's).
    #[default]
    Enforce,
    /// Count what would be refused, and serve it.
    Report,
}

/// The keys are secrets that sign every link of the resource, and a resource is formatted with
/// `{:?}` in logs and test failures: they print as `<redacted>`. (The JSON keeps them: the API
/// returns a resource to its owner.)
impl fmt::Debug for SecureKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured, so that a field added later must be added here too.
        let SecureKey {
            enabled,
            key,
            kind,
            previous_key,
            mode,
            debug_secret,
            ip_prefix,
        } = self;
        let redacted = |k: &Option<String>| k.as_ref().map(|_| Redacted);
        f.debug_struct("SecureKey")
            .field("enabled", enabled)
            .field("key", &redacted(key))
            .field("kind", kind)
            .field("previous_key", &redacted(previous_key))
            .field("mode", mode)
            .field("debug_secret", &redacted(debug_secret))
            .field("ip_prefix", ip_prefix)
            .finish()
    }
}

/// Stands for a secret in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `secure_key.type`, a number in Gcore's API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum SecureKeyType {
    /// Type 0: the token includes the client IP.
    #[default]
    WithClientIp,
    /// Type 2: the token does not include the client IP.
    WithoutClientIp,
}

impl TryFrom<u8> for SecureKeyType {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        match v {
            0 => Ok(SecureKeyType::WithClientIp),
            2 => Ok(SecureKeyType::WithoutClientIp),
            other => Err(format!(
                "secure_key.type must be 0 (token includes the client IP) or 2 (it does not), \
                 not {other}"
            )),
        }
    }
}

impl From<SecureKeyType> for u8 {
    fn from(t: SecureKeyType) -> u8 {
        match t {
            SecureKeyType::WithClientIp => 0,
            SecureKeyType::WithoutClientIp => 2,
        }
    }
}

/// The enforced secure-token settings of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSecureKey {
    /// Keys to try in order: the first signs, a second (the previous key) only verifies.
    pub keys: Vec<Key>,
    /// Whether tokens include the client address (type 0).
    pub bind_client_ip: bool,
    /// `mode: "report"`: what the token would refuse is counted and served.
    pub report: bool,
    /// The operators' secret of `X-Tollgate-Debug`, when set.
    pub debug_secret: Option<String>,
    /// Links bound to the client's network of these lengths (v4, v6) rather than its address.
    pub ip_prefix: Option<(u8, u8)>,
}

impl ValidSecureKey {
    /// The client part of the hashed string for a viewer at `client`: its address (type 0),
    /// its network (type 0 with `ip_prefix`), or nothing (type 2).
    pub fn binding(&self, client: std::net::IpAddr) -> Option<tollgate_token::RemoteAddr> {
        if !self.bind_client_ip {
            return None;
        }
        Some(match self.ip_prefix {
            Some((v4, v6)) => tollgate_token::RemoteAddr::network(client, v4, v6),
            None => tollgate_token::RemoteAddr::new(client),
        })
    }

    /// Whether `given` (an `X-Tollgate-Debug` value) is the resource's debug secret, compared
    /// in constant time.
    pub fn debug_allowed(&self, given: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.debug_secret
            .as_deref()
            .is_some_and(|s| bool::from(s.as_bytes().ct_eq(given)))
    }
}

impl ValidSecureKey {
    /// The key that signs (the first of [`ValidSecureKey::keys`]). Always `Some` from
    /// [`crate::Resource::validate`]; `None` only for one built by hand without a key, where
    /// indexing `keys[0]` would panic.
    pub fn signing_key(&self) -> Option<&Key> {
        self.keys.first()
    }
}

/// The keys in force, `Some` when links must be signed.
/// `debug_secret`: 16 to 128 printable ASCII characters, no whitespace.
fn check_debug_secret(s: Option<&str>, errors: &mut FieldErrors) {
    let Some(s) = s else { return };
    if !(16..=128).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_graphic()) {
        errors.push(
            "options.secure_key.debug_secret",
            "16 to 128 printable ASCII characters, no spaces (tollgate keygen makes one)",
        );
    }
}

pub(crate) fn validate(sk: Option<&SecureKey>, errors: &mut FieldErrors) -> Option<ValidSecureKey> {
    let sk = sk?;
    check_debug_secret(sk.debug_secret.as_deref(), errors);
    if let Some(p) = sk.ip_prefix {
        if !(1..=32).contains(&p.v4) {
            errors.push(
                "options.secure_key.ip_prefix.v4",
                "a prefix length of 1 to 32",
            );
        }
        if !(1..=128).contains(&p.v6) {
            errors.push(
                "options.secure_key.ip_prefix.v6",
                "a prefix length of 1 to 128",
            );
        }
        if sk.kind != SecureKeyType::WithClientIp {
            errors.push(
                "options.secure_key.ip_prefix",
                "binds links to the client's network: it needs type 0 (links bound to the client)",
            );
        }
    }
    if !sk.enabled {
        // Off, but stored and served back: what is stored is valid all the same, so that
        // turning it on later cannot enable a key the API never checked.
        for (field, key) in [
            ("options.secure_key.key", &sk.key),
            ("options.secure_key.previous_key", &sk.previous_key),
        ] {
            if let Some(Err(e)) = key.as_deref().map(Key::new) {
                errors.push(field, e.to_string());
            }
        }
        return None;
    }
    let Some(k) = sk.key.as_deref() else {
        errors.push(
            "options.secure_key.key",
            "a key is required when secure_key is enabled",
        );
        return None;
    };
    let mut keys = Vec::with_capacity(2);
    match Key::new(k) {
        Ok(key) => keys.push(key),
        Err(e) => errors.push("options.secure_key.key", e.to_string()),
    }
    match sk.previous_key.as_deref().map(Key::new) {
        None => {}
        Some(Ok(_)) if sk.previous_key.as_deref() == Some(k) => {
            errors.push("options.secure_key.previous_key", "must differ from key")
        }
        Some(Ok(old)) => keys.push(old),
        Some(Err(e)) => errors.push("options.secure_key.previous_key", e.to_string()),
    }
    Some(ValidSecureKey {
        keys,
        bind_client_ip: sk.kind == SecureKeyType::WithClientIp,
        report: sk.mode == Some(SecureKeyMode::Report),
        debug_secret: sk.debug_secret.clone(),
        ip_prefix: sk.ip_prefix.map(|p| (p.v4, p.v6)),
    })
}
