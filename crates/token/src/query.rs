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

#[cfg(test)]
mod tests {
    use super::arg;

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
