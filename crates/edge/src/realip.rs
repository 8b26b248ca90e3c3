//! The client address, as nginx's realip module takes it with `real_ip_header X-Forwarded-For`
//! and `real_ip_recursive on` (nginx 1.22 `ngx_http_get_forwarded_addr`).
//!
//! Only when the peer is a trusted proxy is `X-Forwarded-For` read, from its right end: each
//! address replaces the current one, and the walk goes on while the current one is trusted too.
//! An entry that does not parse ends the walk and keeps what was found so far. IPv4 parsing is
//! nginx's `ngx_inet_addr`: lenient (`01.2.3.4` and `1..2.3` parse) except that
//! `255.255.255.255`, its error value, never does. `host:port` and `[v6]:port` entries parse.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A CIDR block of trusted proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{s:?} is not an address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0 to {max}"))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl Cidr {
    /// Whether `ip` is inside the block. An IPv4-mapped IPv6 address matches IPv4 blocks, as in
    /// nginx's `ngx_cidr_match`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

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

    #[test]
    fn cidr_parsing() {
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
        let c: Cidr = "::/0".parse().unwrap();
        assert!(c.contains("2001:db8::1".parse().unwrap()));
        let c: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(c.contains("1.2.3.4".parse().unwrap()));
    }
}
