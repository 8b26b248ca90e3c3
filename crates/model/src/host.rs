//! What a hostname, an origin and a Host header may be.

/// A DNS name: dot-separated labels of letters, digits and inner hyphens (RFC 1123).
pub(crate) fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `host[:port]` as a Host header carries it: a hostname, an IPv4 address or a bracketed IPv6
/// address, and a port of 1 to 65535.
pub(crate) fn valid_host_port(v: &str) -> bool {
    let (host, port) = match v.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, tail)) if ip.parse::<std::net::Ipv6Addr>().is_ok() => {
                match tail.strip_prefix(':') {
                    Some(p) => ("", Some(p)),
                    None if tail.is_empty() => ("", None),
                    None => return false,
                }
            }
            _ => return false,
        },
        None => match v.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (v, None),
        },
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok_and(|n| n > 0)
    });
    port_ok
        && (v.starts_with('[')
            || host.parse::<std::net::Ipv4Addr>().is_ok()
            || valid_hostname(host))
}

/// Splits `host[:port]`; IPv6 literals go in brackets.
pub(crate) fn split_origin(origin: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = origin.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        return Some((host.to_owned(), port));
    }
    let (host, port) = match origin.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse::<u16>().ok()?)),
        None => (origin, None),
    };
    (valid_hostname(host) || host.parse::<std::net::Ipv4Addr>().is_ok())
        .then(|| (host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_header_takes_what_a_host_header_carries() {
        for ok in [
            "origin.example.com",
            "origin.example.com:8080",
            "10.0.0.1:80",
            "[2001:db8::1]",
            "[::1]:8443",
        ] {
            assert!(super::valid_host_port(ok), "{ok}");
        }
        for bad in [
            "", "a b", "x/y", "h:", "h:65536", "h:0", "h:+1", "::1", "[::1", "[zz]:80", "[::1]x",
            "a..b",
        ] {
            assert!(!super::valid_host_port(bad), "{bad}");
        }
    }
}
