//! The client's country for `country_acl`, from a MaxMind-format database (GeoLite2 or
//! GeoIP2 Country or City, DB-IP's, or one written with `mmdb-writer`) given to the edge with
//! `--geoip-db`, read by the `maxminddb` crate: `country.iso_code` of the address's record.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::{PathElement, Reader};

/// An opened database.
pub struct Countries {
    reader: Reader<Vec<u8>>,
}

impl std::fmt::Debug for Countries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Countries")
            .field("type", &self.reader.metadata().database_type)
            .finish()
    }
}

impl Countries {
    /// Opens the database at `path`, read whole into memory; an error names what is wrong.
    pub fn open(path: &Path) -> Result<Countries, String> {
        let reader = Reader::open_readfile(path)
            .map_err(|e| format!("the GeoIP database {}: {e}", path.display()))?;
        Ok(Countries { reader })
    }

    /// The ISO 3166-1 alpha-2 code of `ip`'s country (an IPv4-mapped IPv6 address as its IPv4
    /// one), `None` when the database has no record of it or the record no such code.
    pub fn country(&self, ip: IpAddr) -> Option<[u8; 2]> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let found = self.reader.lookup(ip).ok()?;
        let code: &str = found
            .decode_path(&[PathElement::Key("country"), PathElement::Key("iso_code")])
            .ok()??;
        match code.as_bytes() {
            &[a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
            }
            _ => None,
        }
    }
}
