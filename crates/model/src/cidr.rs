//! CIDR blocks, parsed once for every list of them (trusted proxies, `ip_address_acl`).

use std::net::IpAddr;

/// A CIDR block (`10.0.0.0/8`, `2001:db8::/32`; an address alone is its own /32 or /128):
/// `--trust-proxy`, `ip_address_acl`. Low bits past the prefix are ignored, as nginx's
/// `allow` does.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing() {
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
        let c: Cidr = "::/0".parse().unwrap();
        assert!(c.contains("2001:db8::1".parse().unwrap()));
        let c: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(c.contains("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn mapped_and_host_bits() {
        let c: Cidr = "192.168.3.2/24".parse().unwrap();
        assert!(c.contains("192.168.3.200".parse().unwrap()));
        assert!(c.contains("::ffff:192.168.3.9".parse().unwrap()));
        assert!(!c.contains("192.168.4.1".parse().unwrap()));
        let c: Cidr = "2a03:d000:2980:7::8/128".parse().unwrap();
        assert!(c.contains("2a03:d000:2980:7::8".parse().unwrap()));
        assert!(!c.contains("2a03:d000:2980:7::9".parse().unwrap()));
    }
}
