//! The client address as nginx prints `$remote_addr`.
//!
//! IPv4 is a dotted quad. IPv6 follows `ngx_inet6_ntop` (nginx 1.22, `src/core/ngx_inet.c`),
//! which differs from Rust's `Display` in where it writes an embedded IPv4 address: nginx
//! writes the dotted form for `::ffff:a.b.c.d` and for `::a.b.c.d` (IPv4-compatible), and
//! even for `::x` when `x` is one group with a non-zero high byte and a low byte other than 1
//! (`::abcd` is `::0.0.171.205`); Rust only does for the first. An IPv4-mapped peer is never
//! turned into plain IPv4.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// Longest text form: `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255` is 45 bytes, and a
/// network's `/128` four more.
const MAX_LEN: usize = 50;

/// `$remote_addr` for an address, on the stack.
#[derive(Clone, Copy)]
pub struct RemoteAddr {
    buf: [u8; MAX_LEN],
    len: u8,
}

impl RemoteAddr {
    /// Formats `ip` as nginx does.
    pub fn new(ip: IpAddr) -> RemoteAddr {
        let mut s = RemoteAddr {
            buf: [0; MAX_LEN],
            len: 0,
        };
        match ip {
            IpAddr::V4(v4) => s.push_dotted(v4.octets()),
            IpAddr::V6(v6) => write_inet6(&mut s, &v6),
        }
        s
    }

    /// The network of `ip` in CIDR text, for links bound to the client's network rather than its
    /// address (Tollgate's `secure_key.ip_prefix`): the address with the bits past the prefix
    /// cleared, written as [`RemoteAddr::new`] writes an address, then `/` and the length
    /// (`203.0.113.0/24`, `2001:db8:1:2::/64`). `v4` and `v6` are the lengths for each family
    /// (clamped to 32 and 128).
    pub fn network(ip: IpAddr, v4: u8, v6: u8) -> RemoteAddr {
        let (net, len) = match ip {
            IpAddr::V4(a) => {
                let len = v4.min(32);
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                (IpAddr::V4((u32::from(a) & mask).into()), len)
            }
            IpAddr::V6(a) => {
                let len = v6.min(128);
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                (IpAddr::V6((u128::from(a) & mask).into()), len)
            }
        };
        let mut s = RemoteAddr::new(net);
        s.push(b'/');
        s.push_dec(len);
        s
    }

    /// The text as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits, hex letters, '.', ':' and '/' are ever written.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

// Hand-written digits instead of `write!`: this runs on every request of an IP-bound resource
// and the formatting machinery costs as much as the rest of the check. The longest text fits
// MAX_LEN, so the pushes cannot overflow.
impl RemoteAddr {
    fn push(&mut self, b: u8) {
        self.buf[self.len as usize] = b;
        self.len += 1;
    }

    fn push_dec(&mut self, v: u8) {
        if v >= 100 {
            self.push(b'0' + v / 100);
        }
        if v >= 10 {
            self.push(b'0' + (v / 10) % 10);
        }
        self.push(b'0' + v % 10);
    }

    /// `%xd`: lower-case hex without leading zeros.
    fn push_hex(&mut self, v: u16) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut started = false;
        for shift in [12, 8, 4, 0] {
            let d = ((v >> shift) & 15) as usize;
            if d != 0 || started || shift == 0 {
                self.push(HEX[d]);
                started = true;
            }
        }
    }

    fn push_dotted(&mut self, o: [u8; 4]) {
        for (i, &b) in o.iter().enumerate() {
            if i > 0 {
                self.push(b'.');
            }
            self.push_dec(b);
        }
    }
}

impl fmt::Display for RemoteAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RemoteAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemoteAddr({})", self.as_str())
    }
}

/// A line-by-line port of `ngx_inet6_ntop`.
fn write_inet6(out: &mut RemoteAddr, ip: &Ipv6Addr) {
    let p = ip.octets();
    // The longest run of zero groups (first one wins a tie), if longer than one group.
    let mut zero: Option<usize> = None;
    let mut last = 0usize;
    let mut max = 1usize;
    let mut n = 0usize;
    for i in (0..16).step_by(2) {
        if p[i] != 0 || p[i + 1] != 0 {
            if max < n {
                zero = Some(last);
                max = n;
            }
            n = 0;
            continue;
        }
        if n == 0 {
            last = i;
        }
        n += 1;
    }
    if max < n {
        zero = Some(last);
        max = n;
    }

    let mut groups_end = 16;
    if zero == Some(0) {
        if (max == 5 && p[10] == 0xff && p[11] == 0xff)
            || max == 6
            || (max == 7 && p[14] != 0 && p[15] != 1)
        {
            groups_end = 12;
        }
        out.push(b':');
    }

    let mut i = 0;
    while i < groups_end {
        if Some(i) == zero {
            out.push(b':');
            i += (max - 1) * 2 + 2;
            continue;
        }
        out.push_hex(u16::from(p[i]) << 8 | u16::from(p[i + 1]));
        if i < 14 {
            out.push(b':');
        }
        i += 2;
    }
    if groups_end == 12 {
        out.push_dotted([p[12], p[13], p[14], p[15]]);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn networks_as_cidr_text() {
        let n = |ip: &str, v4, v6| RemoteAddr::network(ip.parse().unwrap(), v4, v6).to_string();
        assert_eq!(n("203.0.113.77", 24, 64), "203.0.113.0/24");
        assert_eq!(n("203.0.113.77", 32, 64), "203.0.113.77/32");
        assert_eq!(n("203.0.113.77", 0, 64), "0.0.0.0/0");
        assert_eq!(n("10.1.2.3", 20, 64), "10.1.0.0/20");
        assert_eq!(n("2001:db8:1:2:a:b:c:d", 24, 64), "2001:db8:1:2::/64");
        assert_eq!(n("2001:db8:1:2:a:b:c:d", 24, 48), "2001:db8:1::/48");
        assert_eq!(
            n("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 24, 128),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"
        );
        assert_eq!(n("2001:db8::1", 24, 200), "2001:db8::1/128", "clamped");
    }

    use super::*;

    fn fmt(s: &str) -> String {
        RemoteAddr::new(s.parse().unwrap()).as_str().to_owned()
    }

    #[test]
    fn table() {
        let cases = [
            ("1.2.3.4", "1.2.3.4"),
            ("0.0.0.0", "0.0.0.0"),
            ("::", "::"),
            ("::1", "::1"),
            ("::2", "::2"),
            ("1::", "1::"),
            ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
            ("::1.2.3.4", "::1.2.3.4"),
            ("::ffff:0:1.2.3.4", "::ffff:0:102:304"),
            ("::0.0.1.2", "::0.0.1.2"),
            ("::abcd", "::0.0.171.205"),
            ("::101", "::101"),
            ("2001:DB8::1", "2001:db8::1"),
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
            ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
            ("fe80:0:0:0:0:0:0:0", "fe80::"),
            ("0:0:1:0:0:0:0:0", "0:0:1::"),
            ("1:0:0:2:0:0:3:4", "1::2:0:0:3:4"),
        ];
        for (input, want) in cases {
            assert_eq!(fmt(input), want, "{input}");
        }
    }
}
