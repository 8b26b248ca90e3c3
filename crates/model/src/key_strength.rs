//! How strong a secure-token key is against the offline search anyone holding one valid link
//! can run: the link gives `expires`, the path and the token, so every candidate key costs one
//! MD5. The estimate is the key's length times the bits of the character classes it uses (as
//! if each character were drawn at random from them: an upper bound for a chosen word), with
//! the time a search of every candidate takes at two rates: one CPU core (about 2.7 million
//! MD5s of a link a second, `openssl speed md5` on this project's 2-core machine) and a current
//! GPU (tens of billions a second).

use serde::Serialize;

/// Keys below this many bits get a warning: 2^64 candidates take a GPU at
/// [`GPU_MD5_PER_SEC`] about 20 years.
pub const WARN_BELOW_BITS: f64 = 64.0;

/// MD5s of a link a second, one CPU core.
pub const CORE_MD5_PER_SEC: f64 = 2.7e6;

/// MD5s a second, one current GPU.
pub const GPU_MD5_PER_SEC: f64 = 3.0e10;

/// A key's strength, as the API answers and the panel shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyStrength {
    /// Characters.
    pub length: usize,
    /// The character classes used: `lower`, `upper`, `digits`, `symbols`.
    pub classes: Vec<&'static str>,
    /// Symbols in those classes together.
    pub alphabet: u32,
    /// `length * log2(alphabet)`, rounded to a tenth.
    pub bits: f64,
    /// Seconds one core needs to try every candidate.
    pub core_seconds: f64,
    /// Seconds one GPU needs.
    pub gpu_seconds: f64,
    /// Below [`WARN_BELOW_BITS`]: why, in numbers; `None` for a strong key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// The strength of `key` (printable ASCII, as keys are validated).
pub fn key_strength(key: &str) -> KeyStrength {
    let has = |f: fn(&u8) -> bool| key.as_bytes().iter().any(f);
    let mut classes = Vec::new();
    let mut alphabet = 0u32;
    for (name, size, present) in [
        ("lower", 26, has(u8::is_ascii_lowercase)),
        ("upper", 26, has(u8::is_ascii_uppercase)),
        ("digits", 10, has(u8::is_ascii_digit)),
        ("symbols", 32, has(u8::is_ascii_punctuation)),
    ] {
        if present {
            classes.push(name);
            alphabet += size;
        }
    }
    let length = key.chars().count();
    let raw_bits = length as f64 * f64::from(alphabet.max(1)).log2();
    let bits = (raw_bits * 10.0).round() / 10.0;
    let candidates = 2f64.powf(raw_bits);
    let core_seconds = candidates / CORE_MD5_PER_SEC;
    let gpu_seconds = candidates / GPU_MD5_PER_SEC;
    let warning = (raw_bits < WARN_BELOW_BITS).then(|| {
        format!(
            "weak: {length} characters from {alphabet} symbols are {alphabet}^{length} ~ {} \
             candidates; anyone holding one valid link can try them offline: one CPU core (about \
             2.7 million MD5s a second) needs {}, a GPU (tens of billions a second) {}. Use 32 \
             random characters (tollgate keygen, or the panel's Generate, make them)",
            sci(candidates),
            duration(core_seconds),
            duration(gpu_seconds)
        )
    });
    KeyStrength {
        length,
        classes,
        alphabet,
        bits,
        core_seconds,
        gpu_seconds,
        warning,
    }
}

/// `5.7e10`.
fn sci(x: f64) -> String {
    format!("{x:.1e}")
}

/// A duration in the largest unit that keeps it above one: `2 seconds`, `6 hours`, `3e9 years`.
fn duration(secs: f64) -> String {
    const UNITS: [(&str, f64); 5] = [
        ("years", 365.25 * 86_400.0),
        ("days", 86_400.0),
        ("hours", 3_600.0),
        ("minutes", 60.0),
        ("seconds", 1.0),
    ];
    for (name, size) in UNITS {
        let n = secs / size;
        if n >= 1.0 || name == "seconds" {
            return if n >= 1e6 {
                format!("{n:.0e} {name}")
            } else if n < 1.0 {
                "under a second".to_owned()
            } else {
                format!("about {} {name}", n.round())
            };
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_example_in_numbers() {
        let s = key_strength("aB3xY9");
        assert_eq!((s.length, s.alphabet), (6, 62));
        assert_eq!(s.classes, ["lower", "upper", "digits"]);
        assert_eq!(s.bits, 35.7);
        let w = s.warning.unwrap();
        assert!(w.contains("62^6 ~ 5.7e10"), "{w}");
        assert!(w.contains("about 6 hours"), "{w}");
        assert!(w.contains("about 2 seconds"), "{w}");
        assert!(w.contains("32"), "{w}");
    }

    #[test]
    fn strong_and_weak_keys() {
        let strong = key_strength("Xq7#pL2v!Rt9mZ4w@Kd8sN3b%Hf6jC1y");
        assert_eq!(strong.length, 32);
        assert!(
            strong.bits > 200.0 && strong.warning.is_none(),
            "{strong:?}"
        );
        assert!(
            key_strength("secret_key").warning.is_some(),
            "10 characters of 58 symbols"
        );
        assert_eq!(key_strength("abcdefghij").alphabet, 26);
        let twelve = key_strength("a1B2c3D4e5F6");
        assert!(twelve.bits > 64.0 && twelve.warning.is_none(), "{twelve:?}");
    }
}
