//! The client address, as nginx's realip module takes it with `real_ip_header X-Forwarded-For`
//! and `real_ip_recursive on` (nginx 1.22 `ngx_http_get_forwarded_addr`).
//!
//! Only when the peer is a trusted proxy is `X-Forwarded-For` read, from its right end: each
//! address replaces the current one, and the walk goes on while the current one is trusted too.
//! An entry that does not parse ends the walk and keeps what was found so far. IPv4 parsing is
//! nginx's `ngx_inet_addr`: lenient (`01.2.3.4` and `1..2.3` parse) except that
//! `255.255.255.255`, its error value, never does. `host:port` and `[v6]:port` entries parse.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use tollgate_model::Cidr;

/// The trusted proxies (`--trust-proxy`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<Cidr>);

impl TrustedProxies {
    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client address for a request from `peer` carrying these `X-Forwarded-For` values
    /// (in header order).
    pub fn client_addr<'a>(
        &self,
        peer: IpAddr,
        xff: impl DoubleEndedIterator<Item = &'a [u8]>,
    ) -> IpAddr {
        let mut addr = peer;
        // Headers from the last one, as nginx does; stop at the first that does not move on.
        for value in xff.rev() {
            match walk(self, &mut addr, value) {
                Walk::Continue => {}
                Walk::Stop => break,
            }
        }
        addr
    }
}

enum Walk {
    Continue,
    Stop,
}

/// One header value, right to left. `Continue` when every entry was taken and the address
/// reached is still trusted, so an earlier header may go on.
fn walk(trusted: &TrustedProxies, addr: &mut IpAddr, value: &[u8]) -> Walk {
    let mut rest = value;
    loop {
        if !trusted.trusts(*addr) {
            return Walk::Stop;
        }
        let end = rest
            .iter()
            .rposition(|&b| b != b' ' && b != b',')
            .map_or(0, |i| i + 1);
        let trimmed = &rest[..end];
        let start = trimmed
            .iter()
            .rposition(|&b| b == b' ' || b == b',')
            .map_or(0, |i| i + 1);
        match parse_addr_port(&trimmed[start..]) {
            Some(ip) => *addr = ip,
            None => return Walk::Stop,
        }
        if start == 0 {
            return Walk::Continue;
        }
        rest = &trimmed[..start - 1];
    }
}

/// `ngx_inet_addr`.
fn inet_addr(text: &[u8]) -> Option<Ipv4Addr> {
    let (mut addr, mut octet, mut dots) = (0u32, 0u32, 0);
    for &c in text {
        match c {
            b'0'..=b'9' => {
                octet = octet * 10 + u32::from(c - b'0');
                if octet > 255 {
                    return None;
                }
            }
            b'.' => {
                addr = (addr << 8).wrapping_add(octet);
                octet = 0;
                dots += 1;
            }
            _ => return None,
        }
    }
    let addr = (addr << 8).wrapping_add(octet);
    // INADDR_NONE is nginx's error value, so it is never a valid result.
    (dots == 3 && addr != u32::MAX).then(|| Ipv4Addr::from(addr))
}

/// `ngx_parse_addr`: IPv4 the nginx way, else IPv6.
fn parse_addr(text: &[u8]) -> Option<IpAddr> {
    if let Some(v4) = inet_addr(text) {
        return Some(IpAddr::V4(v4));
    }
    std::str::from_utf8(text)
        .ok()?
        .parse::<Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

/// `ngx_parse_addr_port`: an address, or `addr:port`, or `[v6]:port`.
fn parse_addr_port(text: &[u8]) -> Option<IpAddr> {
    if let Some(ip) = parse_addr(text) {
        return Some(ip);
    }
    let (host, port) = if text.first() == Some(&b'[') {
        let close = text.iter().position(|&b| b == b']')?;
        if close + 1 >= text.len() || text[close + 1] != b':' {
            return None;
        }
        (&text[1..close], &text[close + 2..])
    } else {
        let colon = text.iter().position(|&b| b == b':')?;
        (&text[..colon], &text[colon + 1..])
    };
    // ngx_atoi: digits only, no sign.
    if port.is_empty() || port.len() > 9 || !port.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let port = port.iter().fold(0u32, |v, &d| v * 10 + u32::from(d - b'0'));
    if !(1..=65535).contains(&port) {
        return None;
    }
    parse_addr(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies(list.iter().map(|s| s.parse().unwrap()).collect())
    }

    fn client(t: &TrustedProxies, peer: &str, xff: &[&str]) -> String {
        t.client_addr(peer.parse().unwrap(), xff.iter().map(|s| s.as_bytes()))
            .to_string()
    }

    #[test]
    fn table() {
        let t = trusted(&["127.0.0.1", "10.0.0.0/8"]);
        assert_eq!(client(&t, "127.0.0.1", &["1.2.3.4"]), "1.2.3.4");
        assert_eq!(client(&t, "127.0.0.2", &["1.2.3.4"]), "127.0.0.2");
        assert_eq!(client(&t, "127.0.0.1", &["9.9.9.9, 1.2.3.4"]), "1.2.3.4");
        assert_eq!(client(&t, "127.0.0.1", &["9.9.9.9, 10.1.1.1"]), "9.9.9.9");
        assert_eq!(client(&t, "127.0.0.1", &["9.9.9.9", "10.1.1.1"]), "9.9.9.9");
        assert_eq!(client(&t, "127.0.0.1", &["10.2.2.2, 10.1.1.1"]), "10.2.2.2");
        assert_eq!(client(&t, "127.0.0.1", &["bogus, 10.1.1.1"]), "10.1.1.1");
        assert_eq!(client(&t, "127.0.0.1", &["255.255.255.255"]), "127.0.0.1");
        assert_eq!(client(&t, "127.0.0.1", &["01.2.3.4"]), "1.2.3.4");
        assert_eq!(client(&t, "127.0.0.1", &["1..2.3"]), "1.0.2.3");
        assert_eq!(client(&t, "127.0.0.1", &["2001:DB8::1"]), "2001:db8::1");
        assert_eq!(
            client(&t, "127.0.0.1", &["[2001:db8::1]:443"]),
            "2001:db8::1"
        );
        assert_eq!(client(&t, "127.0.0.1", &["1.2.3.4:80"]), "1.2.3.4");
        assert_eq!(client(&t, "127.0.0.1", &["1.2.3.4:0"]), "127.0.0.1");
        assert_eq!(client(&t, "127.0.0.1", &["1.2.3.4 ,, "]), "1.2.3.4");
        assert_eq!(client(&t, "::ffff:127.0.0.1", &["1.2.3.4"]), "1.2.3.4");
        assert_eq!(
            client(&TrustedProxies::default(), "127.0.0.1", &["1.2.3.4"]),
            "127.0.0.1"
        );
    }
}
