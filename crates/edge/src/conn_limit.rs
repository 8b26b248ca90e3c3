//! Open connections per client address, as nginx's `limit_conn`: one address holding every
//! connection slot would make everyone else wait. Counted at accept, released when the
//! connection's task ends; the map holds only addresses with a connection open, so it is
//! never larger than the connection cap.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Shards of the map: accepts on different addresses rarely wait on one lock.
const SHARDS: usize = 16;

/// Counts of open connections by peer address, with a cap per address.
#[derive(Debug)]
pub struct PerAddress {
    cap: u32,
    hasher: std::collections::hash_map::RandomState,
    shards: Vec<Mutex<HashMap<IpAddr, u32>>>,
}

/// One open connection counted against its address; dropping it gives the slot back.
#[derive(Debug)]
pub struct AddressSlot {
    map: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    /// At most `cap` connections per address; 0 for no cap.
    pub fn new(cap: usize) -> Arc<PerAddress> {
        Arc::new(PerAddress {
            cap: u32::try_from(cap).unwrap_or(u32::MAX),
            hasher: Default::default(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        })
    }

    /// Whether there is a cap at all.
    pub fn is_capped(&self) -> bool {
        self.cap != 0
    }

    fn shard(&self, ip: &IpAddr) -> &Mutex<HashMap<IpAddr, u32>> {
        &self.shards[(self.hasher.hash_one(ip) as usize) % SHARDS]
    }

    /// A slot for one more connection from `ip`, or `None` when it has `cap` open already.
    /// IPv4-mapped IPv6 addresses count as the IPv4 address they carry.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let ip = ip.to_canonical();
        let mut m = self.shard(&ip).lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        if self.cap != 0 && *n >= self.cap {
            if *n == 0 {
                m.remove(&ip);
            }
            return None;
        }
        *n = n.saturating_add(1);
        Some(AddressSlot {
            map: Arc::clone(self),
            ip,
        })
    }

    /// Open connections counted for `ip`.
    pub fn count(&self, ip: IpAddr) -> u32 {
        let ip = ip.to_canonical();
        let m = self.shard(&ip).lock().unwrap_or_else(|p| p.into_inner());
        m.get(&ip).copied().unwrap_or(0)
    }

    /// Addresses with a connection open.
    pub fn addresses(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut m = self
            .map
            .shard(&self.ip)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_per_address_and_closed_connections_leave_the_map() {
        let map = PerAddress::new(2);
        let a = IpAddr::from([127, 0, 0, 1]);
        let b = IpAddr::from([127, 0, 0, 2]);
        let mapped = IpAddr::V6(std::net::Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped());
        let one = map.try_acquire(a);
        let two = map.try_acquire(mapped);
        assert!(one.is_some() && two.is_some());
        assert!(map.try_acquire(a).is_none(), "a third from one address");
        assert!(
            map.try_acquire(b).is_some(),
            "another address is not capped"
        );
        assert_eq!(map.count(a), 2);
        drop(one);
        assert!(map.try_acquire(a).is_some());
        drop(two);
        assert_eq!(map.addresses(), 0, "only open connections are remembered");
    }

    #[test]
    fn a_cap_of_zero_is_no_cap() {
        let map = PerAddress::new(0);
        let a = IpAddr::from([10, 0, 0, 1]);
        let slots: Vec<_> = (0..1000).filter_map(|_| map.try_acquire(a)).collect();
        assert_eq!(slots.len(), 1000);
        drop(slots);
        assert_eq!(map.addresses(), 0);
    }
}
