//! Absolute URLs, as users paste them and manifests link them: the scheme and the authority
//! split off the part a request target is made of.

/// An `http://` or `https://` URL (the scheme in any case, as URLs allow) split into its
/// authority (`host[:port]`, with any user information) and the rest: path, query and
/// fragment, empty when the URL has none. `None` for anything else, including a
/// scheme-relative `//host/...`, which on a request line is a path.
pub fn split_http_url(url: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = strip_prefix_ignore_case(url, b"http://")
        .or_else(|| strip_prefix_ignore_case(url, b"https://"))?;
    Some(split_authority(rest))
}

/// What follows `scheme://` (or the `//` of a scheme-relative link) split where the authority
/// ends: at the first `/`, `?` or `#` (RFC 3986, section 3.2).
pub fn split_authority(rest: &[u8]) -> (&[u8], &[u8]) {
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    rest.split_at(end)
}

/// The host of an authority or a Host header's value (`host[:port]`, `[v6]:port`): before the
/// port, the brackets of an IPv6 literal kept (as hostnames are written in a resource).
pub fn host_of_authority(authority: &[u8]) -> &[u8] {
    let end = if authority.starts_with(b"[") {
        authority
            .iter()
            .position(|&b| b == b']')
            .map_or(authority.len(), |i| i + 1)
    } else {
        authority
            .iter()
            .position(|&b| b == b':')
            .unwrap_or(authority.len())
    };
    &authority[..end]
}

fn strip_prefix_ignore_case<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let (head, rest) = s.split_at_checked(prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_authorities() {
        for (a, h) in [
            ("cdn.example.com:8080", "cdn.example.com"),
            ("cdn.example.com", "cdn.example.com"),
            ("[::1]:80", "[::1]"),
            ("[::1", "[::1"),
            ("", ""),
        ] {
            assert_eq!(host_of_authority(a.as_bytes()), h.as_bytes(), "{a}");
        }
    }

    #[test]
    fn table() {
        let split = |u: &str| {
            split_http_url(u.as_bytes()).map(|(a, r)| {
                (
                    String::from_utf8_lossy(a).into_owned(),
                    String::from_utf8_lossy(r).into_owned(),
                )
            })
        };
        let some = |a: &str, r: &str| Some((a.to_owned(), r.to_owned()));
        assert_eq!(
            split("https://cdn.example.com/a?x"),
            some("cdn.example.com", "/a?x")
        );
        assert_eq!(split("HTTP://h:8080/a"), some("h:8080", "/a"));
        assert_eq!(split("hTTpS://h?md5=x"), some("h", "?md5=x"));
        assert_eq!(split("http://h#f"), some("h", "#f"));
        assert_eq!(split("http://h"), some("h", ""));
        assert_eq!(split("http://"), some("", ""));
        assert_eq!(split("http://u@h/a"), some("u@h", "/a"));
        for not in [
            "//h/a",
            "/a",
            "a",
            "ftp://h/a",
            "http:/h",
            "https:",
            "",
            "htt",
        ] {
            assert_eq!(split(not), None, "{not}");
        }
        assert_eq!(split_authority(b"h/a"), (&b"h"[..], &b"/a"[..]));
    }
}
