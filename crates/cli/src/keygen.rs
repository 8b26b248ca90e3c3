//! Random keys for `tollgate keygen`.

/// URL- and shell-safe alphabet of exactly 64 characters, so that 6 random bits pick one
/// character without bias. Every character is allowed by the Gcore key rule.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Length of generated keys: the longest Gcore accepts, 192 bits of entropy.
pub const KEY_LEN: usize = 32;

/// A new random key from the operating system's secure generator.
pub fn generate() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; KEY_LEN];
    getrandom::fill(&mut bytes)?;
    // A key that starts with `-` reads as an option on command lines (`--key -x...`): draw the
    // first character again until it is a letter or a digit (no bias among those).
    while ALPHABET[(bytes[0] & 63) as usize] == b'-' || ALPHABET[(bytes[0] & 63) as usize] == b'_' {
        let mut one = [0u8; 1];
        getrandom::fill(&mut one)?;
        bytes[0] = one[0];
    }
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[(b & 63) as usize] as char)
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_valid_and_differ() {
        let a = super::generate().unwrap();
        let b = super::generate().unwrap();
        assert_eq!(a.len(), 32);
        assert!(tollgate_token::Key::new(&a).is_ok());
        assert_ne!(a, b);
    }

    #[test]
    fn keys_never_start_like_an_option() {
        for _ in 0..2000 {
            let k = super::generate().unwrap();
            assert!(k.as_bytes()[0].is_ascii_alphanumeric(), "{k}");
        }
    }
}
