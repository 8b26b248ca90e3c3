//! base64url as the token uses it: encoding without padding, and nginx's lenient decoding
//! (`ngx_decode_base64url`).

/// Characters in a token: 16 bytes in unpadded base64url.
pub const TOKEN_LEN: usize = 22;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Encodes a 16-byte digest as 22 base64url characters without padding.
pub fn encode_digest(digest: &[u8; 16]) -> [u8; TOKEN_LEN] {
    let mut out = [0u8; TOKEN_LEN];
    let mut o = 0;
    for chunk in digest.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for k in 0..chars {
            out[o] = ALPHABET[((n >> (18 - 6 * k)) & 63) as usize];
            o += 1;
        }
    }
    out
}

/// base64url value of each byte, or `INVALID`; a table because this runs on every request.
const INVALID: u8 = 0xff;
static VALUE: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Why a token value does not decode to 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenFormatError {
    /// The raw value is longer than 24 bytes, nginx's limit before decoding.
    TooLong {
        /// Bytes given.
        len: usize,
    },
    /// A character outside `A-Z a-z 0-9 - _` before the first `=`.
    InvalidChar {
        /// Byte offset.
        offset: usize,
    },
    /// A comma anywhere in the value. nginx evaluates `$arg_md5,$arg_expires` and splits at the
    /// first comma, so a comma in the token leaves it no valid expiry.
    Comma {
        /// Byte offset.
        offset: usize,
    },
    /// The part before the first `=` does not hold exactly 22 characters.
    WrongLength {
        /// Characters before the first `=`.
        len: usize,
    },
}

impl std::fmt::Display for TokenFormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenFormatError::TooLong { len } => {
                write!(
                    f,
                    "the md5 value is {len} bytes long; at most 24 are accepted"
                )
            }
            TokenFormatError::InvalidChar { offset } => write!(
                f,
                "the md5 value has a character outside A-Z a-z 0-9 - _ at offset {offset} \
                 ('+' and '/' must be written '-' and '_'; values are not percent-decoded)"
            ),
            TokenFormatError::Comma { offset } => write!(
                f,
                "the md5 value has a ',' at offset {offset}, which nginx reads as the start of \
                 the expiry"
            ),
            TokenFormatError::WrongLength { len } => write!(
                f,
                "the md5 value has {len} base64url characters before any '='; a token has 22"
            ),
        }
    }
}

impl std::error::Error for TokenFormatError {}

/// Decodes a token value the way nginx's secure_link does.
///
/// nginx refuses values over 24 bytes, reads base64url characters up to the first `=` and
/// ignores whatever follows it, and does not check the unused low bits of the last character.
pub fn decode_token(raw: &[u8]) -> Result<[u8; 16], TokenFormatError> {
    if raw.len() > 24 {
        return Err(TokenFormatError::TooLong { len: raw.len() });
    }
    // One pass: note the first '=' (decoding stops there) and refuse a comma anywhere. A
    // plain loop beats library searches on values this short (at most 24 bytes).
    let mut len = raw.len();
    let mut vals = [0u8; 24];
    for (i, &c) in raw.iter().enumerate() {
        if c == b',' {
            return Err(TokenFormatError::Comma { offset: i });
        }
        if i >= len {
            continue;
        }
        if c == b'=' {
            len = i;
            continue;
        }
        let v = VALUE[c as usize];
        if v == INVALID {
            return Err(TokenFormatError::InvalidChar { offset: i });
        }
        vals[i] = v;
    }
    if len != TOKEN_LEN {
        return Err(TokenFormatError::WrongLength { len });
    }
    let mut out = [0u8; 16];
    for (k, quad) in vals[..20].chunks(4).enumerate() {
        out[3 * k] = (quad[0] << 2) | (quad[1] >> 4);
        out[3 * k + 1] = (quad[1] << 4) | (quad[2] >> 2);
        out[3 * k + 2] = (quad[2] << 6) | quad[3];
    }
    out[15] = (vals[20] << 2) | (vals[21] >> 4);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let d: [u8; 16] = core::array::from_fn(|i| (i * 37 + 11) as u8);
        let t = encode_digest(&d);
        assert_eq!(decode_token(&t), Ok(d));
    }

    #[test]
    fn nginx_leniency() {
        let t = encode_digest(&[0xff; 16]);
        let mut v = t.to_vec();
        assert_eq!(&v, b"_____________________w");
        // Low 4 bits of the last character are not checked: 'w' (48) and '_' (63) share top bits.
        v[21] = b'_';
        assert_eq!(decode_token(&v), Ok([0xff; 16]));
        v.extend_from_slice(b"=x");
        assert_eq!(decode_token(&v), Ok([0xff; 16]));
        v.push(b'y');
        assert_eq!(decode_token(&v), Err(TokenFormatError::TooLong { len: 25 }));
    }

    #[test]
    fn refusals() {
        assert_eq!(
            decode_token(b"AAAAAAAAAAAAAAAAAAAAA+"),
            Err(TokenFormatError::InvalidChar { offset: 21 })
        );
        assert_eq!(
            decode_token(b"AAAAAAAAAAAAAAAAAAAAA"),
            Err(TokenFormatError::WrongLength { len: 21 })
        );
        assert_eq!(
            decode_token(b"AAAAAAAAAAAAAAAAAAAAAAA"),
            Err(TokenFormatError::WrongLength { len: 23 })
        );
        assert_eq!(
            decode_token(b""),
            Err(TokenFormatError::WrongLength { len: 0 })
        );
        // After '=' nginx ignores everything, but a comma still breaks the expiry split.
        assert_eq!(
            decode_token(b"AAAAAAAAAAAAAAAAAAAAAA=,"),
            Err(TokenFormatError::Comma { offset: 23 })
        );
    }
}
