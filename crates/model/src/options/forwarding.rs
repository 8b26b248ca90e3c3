//! `options.query_string_forwarding`: the playlist's token carried into the links inside it.

use serde::{Deserialize, Serialize};

use crate::validate::FieldErrors;

/// `options.query_string_forwarding`, Gcore's shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryStringForwarding {
    /// Whether the option applies.
    pub enabled: bool,
    /// Types of the files whose links get the parameters (e.g. `m3u8`, `mpd`).
    #[serde(default)]
    pub forward_from_file_types: Vec<String>,
    /// Types of the linked files that receive them (e.g. `ts`, `m4s`).
    #[serde(default)]
    pub forward_to_file_types: Vec<String>,
    /// Only these parameters are forwarded.
    #[serde(default)]
    pub forward_only_keys: Vec<String>,
    /// Every parameter but these is forwarded.
    #[serde(default)]
    pub forward_except_keys: Vec<String>,
    /// Tollgate's extension, absent in Gcore's API: instead of copying the playlist's token, the
    /// edge signs each forwarded link for its own directory (same expiry, same client binding),
    /// so renditions in sub-directories (`360p/`, `720p/`) work from one signed master URL.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sign_each_directory: bool,
}

/// Which query parameters of a playlist request are copied into the links inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardKeys {
    /// All of them.
    All,
    /// Only these.
    Only(Vec<String>),
    /// All but these.
    Except(Vec<String>),
    /// The first list but those of the second (Gcore's documented example gives both).
    OnlyExcept(Vec<String>, Vec<String>),
}

impl ForwardKeys {
    /// Whether parameter `name` is forwarded.
    pub fn forwards(&self, name: &[u8]) -> bool {
        match self {
            ForwardKeys::All => true,
            ForwardKeys::Only(keys) => keys.iter().any(|k| k.as_bytes() == name),
            ForwardKeys::Except(keys) => !keys.iter().any(|k| k.as_bytes() == name),
            ForwardKeys::OnlyExcept(only, except) => {
                only.iter().any(|k| k.as_bytes() == name)
                    && !except.iter().any(|k| k.as_bytes() == name)
            }
        }
    }
}

/// `query_string_forwarding`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarding {
    /// Extensions (lower case) of the playlists whose links are rewritten.
    pub from_types: Vec<String>,
    /// Extensions (lower case) of the linked files that get the parameters.
    pub to_types: Vec<String>,
    /// Which parameters go.
    pub keys: ForwardKeys,
    /// Sign each link for its own directory instead of copying the playlist's token.
    pub sign_each_directory: bool,
}

const FIELD: &str = "options.query_string_forwarding";

/// The forwarding in force, `Some` when on. `secure_key_on`: whether the resource's secure
/// token is on, which signing each directory needs.
pub(crate) fn validate(
    q: Option<&QueryStringForwarding>,
    secure_key_on: bool,
    errors: &mut FieldErrors,
) -> Option<Forwarding> {
    let q = q.filter(|q| q.enabled)?;
    let from_types = file_types(
        &q.forward_from_file_types,
        "forward_from_file_types",
        errors,
    );
    let to_types = file_types(&q.forward_to_file_types, "forward_to_file_types", errors);
    for (name, list) in [
        ("forward_only_keys", &q.forward_only_keys),
        ("forward_except_keys", &q.forward_except_keys),
    ] {
        for (i, k) in list.iter().enumerate() {
            if k.is_empty()
                || k.bytes()
                    .any(|b| !(b.is_ascii_alphanumeric() || b"-_.~".contains(&b)))
            {
                errors.push(
                    format!("{FIELD}.{name}[{i}]"),
                    format!("{k:?} is not a query parameter name"),
                );
            }
        }
    }
    let keys = match (
        q.forward_only_keys.is_empty(),
        q.forward_except_keys.is_empty(),
    ) {
        (true, true) => ForwardKeys::All,
        (false, true) => ForwardKeys::Only(q.forward_only_keys.clone()),
        (true, false) => ForwardKeys::Except(q.forward_except_keys.clone()),
        (false, false) => {
            ForwardKeys::OnlyExcept(q.forward_only_keys.clone(), q.forward_except_keys.clone())
        }
    };
    if q.sign_each_directory && !secure_key_on {
        errors.push(
            format!("{FIELD}.sign_each_directory"),
            "needs the secure token on (it signs links with the resource's key)",
        );
    }
    Some(Forwarding {
        from_types,
        to_types,
        keys,
        sign_each_directory: q.sign_each_directory,
    })
}

/// A list of file types, lower-cased: at least one, each letters and digits.
fn file_types(list: &[String], name: &str, errors: &mut FieldErrors) -> Vec<String> {
    if list.is_empty() {
        errors.push(
            format!("{FIELD}.{name}"),
            "list at least one file type, e.g. \"m3u8\"",
        );
    }
    for (i, t) in list.iter().enumerate() {
        let ok = !t.is_empty() && t.len() <= 16 && t.bytes().all(|b| b.is_ascii_alphanumeric());
        if !ok {
            errors.push(
                format!("{FIELD}.{name}[{i}]"),
                format!("{t:?} is not a file extension (letters and digits, no dot)"),
            );
        }
    }
    list.iter().map(|t| t.to_ascii_lowercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::ForwardKeys;

    #[test]
    fn only_and_except_together_forward_the_first_list_but_the_second() {
        let k = ForwardKeys::OnlyExcept(
            vec!["md5".into(), "expires".into(), "debug".into()],
            vec!["debug".into()],
        );
        assert!(k.forwards(b"md5") && k.forwards(b"expires"));
        assert!(!k.forwards(b"debug") && !k.forwards(b"other"));
    }
}
