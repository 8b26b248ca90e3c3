//! Query parameters as nginx's `$arg_NAME` finds them (`ngx_http_arg`).
//!
//! Names match ASCII case-insensitively, the first occurrence wins, only `&` separates
//! parameters (`;` does not), a name must be followed by `=`, and values are not decoded.

/// The raw value of the first parameter called `name` (case-insensitive), as `$arg_name`.
pub fn arg<'a>(args: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let n = name.len();
    let mut i = 0;
    while i + n < args.len() {
        if (i == 0 || args[i - 1] == b'&')
            && args[i + n] == b'='
            && args[i..i + n].eq_ignore_ascii_case(name)
        {
            let value = &args[i + n + 1..];
            let end = memchr::arch::all::memchr::One::new(b'&')
                .find(value)
                .unwrap_or(value.len());
            return Some(&value[..end]);
        }
        // Jump to the next parameter: a match can only start right after '&'.
        match memchr::arch::all::memchr::One::new(b'&').find(&args[i..]) {
            Some(amp) => i += amp + 1,
            None => return None,
        }
    }
    None
}

/// One parameter of a query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    /// Up to the first `=` (the whole parameter when it has none).
    pub name: &'a [u8],
    /// The whole `name=value` text, as sent.
    pub text: &'a [u8],
}

/// The parameters of `args` in order, split on `&` only (as [`arg`] does), empty ones left out.
pub fn params(args: &[u8]) -> impl Iterator<Item = Param<'_>> {
    args.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|text| Param {
            name: text.split(|&b| b == b'=').next().unwrap_or_default(),
            text,
        })
}

#[cfg(test)]
mod tests {
    use super::{arg, params};

    #[test]
    fn parameters_in_order() {
        let got: Vec<(&[u8], &[u8])> = params(b"a=1&&b&c=2=3;d&")
            .map(|p| (p.name, p.text))
            .collect();
        assert_eq!(
            got,
            [(&b"a"[..], &b"a=1"[..]), (b"b", b"b"), (b"c", b"c=2=3;d"),]
        );
        assert_eq!(params(b"").count(), 0);
    }

    #[test]
    fn table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("md5=abc", Some("abc")),
            ("MD5=abc", Some("abc")),
            ("x=1&md5=abc&md5=def", Some("abc")),
            ("xmd5=abc", None),
            ("x=1;md5=abc", None),
            ("md5", None),
            ("md5&md5=b", Some("b")),
            ("md5=", Some("")),
            ("&md5=a", Some("a")),
            ("md5=a%2Fb", Some("a%2Fb")),
            ("md5=a=b", Some("a=b")),
            ("", None),
            ("a=md5=x", None),
        ];
        for (args, want) in cases {
            assert_eq!(
                arg(args.as_bytes(), b"md5"),
                want.map(str::as_bytes),
                "{args:?}"
            );
        }
    }
}
