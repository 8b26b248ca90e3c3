//! Turning what a user pastes (a full URL or a path with a query) into a request target.

/// The origin-form request target of `input`: a full `http(s)://host/...` URL loses its scheme
/// and authority; an empty path becomes `/`, as nginx does for `http://host?x`.
pub fn request_target(input: &str) -> &str {
    let lower = input.get(..8).unwrap_or(input).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &input[8..]
    } else if lower.starts_with("http://") {
        &input[7..]
    } else {
        return input;
    };
    match rest.find(['/', '?', '#']) {
        Some(i) => &rest[i..],
        None => "",
    }
}

/// Like [`request_target`], but always starting with `/` when the input was a URL.
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
}
