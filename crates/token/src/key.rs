//! The secret key of a resource.
//!
//! Gcore's panel accepts keys of 6 to 32 characters; we hold every key to the same rule so a key
//! that works here can be pasted into Gcore and back. The rule is printable ASCII without
//! whitespace (`!` to `~`): nginx hashes the key as raw bytes after a single space, so a key with
//! its own spaces or non-ASCII characters invites copy-paste and encoding mistakes.

use std::fmt;

/// Fewest characters a key may have (Gcore panel rule).
pub const MIN_KEY_LEN: usize = 6;
/// Most characters a key may have (Gcore panel rule).
pub const MAX_KEY_LEN: usize = 32;

/// A validated secret key. `Debug` and `Display` never print the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(String);

/// Why a string is not a usable key. Messages name the rule, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// Fewer than [`MIN_KEY_LEN`] characters.
    TooShort {
        /// Characters given.
        len: usize,
    },
    /// More than [`MAX_KEY_LEN`] characters.
    TooLong {
        /// Characters given.
        len: usize,
    },
    /// A space, tab or other whitespace character.
    Whitespace {
        /// 1-based character position.
        position: usize,
    },
    /// A control character or a character outside printable ASCII.
    NotPrintableAscii {
        /// 1-based character position.
        position: usize,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const RULE: &str = "a key must be 6 to 32 printable ASCII characters without whitespace";
        match self {
            KeyError::TooShort { len } => write!(f, "{RULE}; this one has only {len}"),
            KeyError::TooLong { len } => write!(f, "{RULE}; this one has {len}"),
            KeyError::Whitespace { position } => {
                write!(f, "{RULE}; character {position} is whitespace")
            }
            KeyError::NotPrintableAscii { position } => write!(
                f,
                "{RULE}; character {position} is a control character or not ASCII"
            ),
        }
    }
}

impl std::error::Error for KeyError {}

impl Key {
    /// Validates `secret` against the key rule.
    pub fn new(secret: &str) -> Result<Key, KeyError> {
        let mut len = 0;
        for (i, c) in secret.chars().enumerate() {
            len += 1;
            if c.is_whitespace() {
                return Err(KeyError::Whitespace { position: i + 1 });
            }
            if !c.is_ascii_graphic() {
                return Err(KeyError::NotPrintableAscii { position: i + 1 });
            }
        }
        if len < MIN_KEY_LEN {
            return Err(KeyError::TooShort { len });
        }
        if len > MAX_KEY_LEN {
            return Err(KeyError::TooLong { len });
        }
        Ok(Key(secret.to_owned()))
    }

    /// The secret itself, for hashing and for storing. Named so that every use stands out.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The key with all but its first and last characters masked, for explanations.
    pub fn masked(&self) -> String {
        let s = self.0.as_bytes();
        let mut out = String::with_capacity(s.len());
        out.push(s[0] as char);
        out.extend(std::iter::repeat_n('*', s.len() - 2));
        out.push(s[s.len() - 1] as char);
        out
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted key>")
    }
}

impl std::str::FromStr for Key {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Key, KeyError> {
        Key::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_gcore_range() {
        assert!(Key::new("secret_key").is_ok());
        assert!(Key::new("abcdef").is_ok());
        assert!(Key::new(&"x".repeat(32)).is_ok());
        assert!(Key::new("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~").is_ok());
    }

    #[test]
    fn refuses_with_the_rule() {
        let table: &[(&str, KeyError)] = &[
            ("", KeyError::TooShort { len: 0 }),
            ("abcde", KeyError::TooShort { len: 5 }),
            (&"x".repeat(33), KeyError::TooLong { len: 33 }),
            ("abc def", KeyError::Whitespace { position: 4 }),
            ("abcdef\t", KeyError::Whitespace { position: 7 }),
            ("abcdé123", KeyError::NotPrintableAscii { position: 5 }),
            ("abc\u{7f}def", KeyError::NotPrintableAscii { position: 4 }),
        ];
        for (input, want) in table {
            assert_eq!(Key::new(input).unwrap_err(), *want, "{input:?}");
            assert!(want.to_string().contains("6 to 32 printable ASCII"));
        }
    }

    #[test]
    fn never_prints_the_secret() {
        let k = Key::new("hunter2hunter2").unwrap();
        assert!(!format!("{k:?}").contains("hunter"));
        assert!(!format!("{k}").contains("hunter"));
        assert_eq!(k.masked(), "h************2");
    }
}
