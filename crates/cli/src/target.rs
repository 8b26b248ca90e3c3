//! Turning what a user pastes (a full URL or a path with a query) into a request target.

use tollgate_token::url::split_http_url;

/// The origin-form request target of `input`: a full `http(s)://host/...` URL loses its scheme
/// and authority (leaving `?x` of `http://host?x`, nothing of `http://host`); anything else is
/// left as it is.
pub fn request_target(input: &str) -> &str {
    match split_http_url(input.as_bytes()) {
        // The rest is a suffix of the input starting at an ASCII byte (or empty), so the cut
        // is on a character boundary.
        Some((_, rest)) => input
            .get(input.len().saturating_sub(rest.len())..)
            .unwrap_or(""),
        None => input,
    }
}

/// Like [`request_target`], but always starting with `/` when the input was a URL: an empty
/// path becomes `/`, as nginx does for `http://host?x`.
pub fn request_target_owned(input: &str) -> String {
    let t = request_target(input);
    let is_url = t.len() != input.len() || t.is_empty();
    if is_url && !t.starts_with('/') {
        format!("/{t}")
    } else {
        t.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::request_target_owned as t;

    #[test]
    fn table() {
        assert_eq!(t("https://cdn.example.com/a?md5=x"), "/a?md5=x");
        assert_eq!(t("HTTP://cdn.example.com:8080/a"), "/a");
        assert_eq!(t("http://cdn.example.com?md5=x"), "/?md5=x");
        assert_eq!(t("http://cdn.example.com"), "/");
        assert_eq!(t("/a?b"), "/a?b");
        assert_eq!(t("a?b"), "a?b");
    }

    #[test]
    fn the_cut_is_where_the_authority_ends() {
        use super::request_target as r;
        assert_eq!(r("hTTps://h\u{e9}st/caf\u{e9}?x"), "/caf\u{e9}?x");
        assert_eq!(r("http://h#frag"), "#frag");
        assert_eq!(r("http://"), "");
        // A scheme-relative `//` is a path on a request line: left as it is.
        assert_eq!(r("//h/a"), "//h/a");
    }
}
