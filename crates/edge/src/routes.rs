//! The routing table: hostname -> resource, built from validated resources and swapped whole on
//! reload, so a request sees one consistent snapshot from start to end. Its maps are persistent
//! (`imbl`): a delta from the control plane makes the next table from the current one in
//! O(changes log resources), sharing the rest, so that a change reaches viewers as fast at
//! 100,000 resources as at one (rebuilding the table took 76 ms at 100,000).

use std::sync::Arc;

use tollgate_model::ValidResource;

use crate::metrics::ResourceMetrics;

/// A resource as the edge serves it.
pub struct Site {
    /// The validated resource (shared with the configuration the edge holds).
    pub res: Arc<ValidResource>,
    /// Its counters; kept across reloads for the same id.
    pub metrics: Arc<ResourceMetrics>,
    /// Which of its origin sources failed lately, and whose turn it is.
    pub health: crate::upstreams::Health,
}

/// Hostname (lower case) -> site, for the active resources.
#[derive(Default, Clone)]
pub struct Routes {
    by_host: imbl::HashMap<String, Arc<Site>>,
    /// Every site, by id.
    sites: imbl::OrdMap<u64, Arc<Site>>,
}

impl Routes {
    /// Builds the table of the active ones among `resources`; counters of resources already
    /// in `previous` carry over.
    pub fn new<I>(resources: I, previous: Option<&Routes>) -> Routes
    where
        I: IntoIterator,
        I::Item: Into<Arc<ValidResource>>,
    {
        let mut next = Routes::default();
        for res in resources {
            next.insert(res.into(), previous);
        }
        next
    }

    /// The table after `changed` resources were replaced (or added) and `removed` ids deleted;
    /// equal to building it anew from the resulting set, at the cost of the changes only.
    pub fn patched(&self, changed: &[Arc<ValidResource>], removed: &[u64]) -> Routes {
        let mut next = self.clone();
        for id in removed.iter().chain(changed.iter().map(|r| &r.id)) {
            if let Some(site) = next.sites.remove(id) {
                for h in site.res.hostnames() {
                    if next.by_host.get(h).is_some_and(|s| s.res.id == *id) {
                        next.by_host.remove(h);
                    }
                }
            }
        }
        for res in changed {
            next.insert(Arc::clone(res), Some(self));
        }
        next
    }

    fn insert(&mut self, res: Arc<ValidResource>, previous: Option<&Routes>) {
        if !res.is_active() {
            return;
        }
        let metrics = previous
            .and_then(|p| p.sites.get(&res.id))
            .map(|s| Arc::clone(&s.metrics))
            .unwrap_or_default();
        let health = crate::upstreams::Health::new(&res.origins);
        let site = Arc::new(Site {
            res,
            metrics,
            health,
        });
        for h in site.res.hostnames() {
            self.by_host.insert(h.clone(), Arc::clone(&site));
        }
        self.sites.insert(site.res.id, site);
    }

    /// The site serving `host` (already lower-cased, without port).
    pub fn get(&self, host: &str) -> Option<&Arc<Site>> {
        self.by_host.get(host)
    }

    /// Every site, by id.
    pub fn sites(&self) -> impl Iterator<Item = &Arc<Site>> + '_ {
        self.sites.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(id: u64, cname: &str, active: bool) -> Arc<ValidResource> {
        let mut r: tollgate_model::Resource = serde_json::from_str(&format!(
            r#"{{"id": {id}, "cname": "{cname}", "origin": "127.0.0.1:9", "active": {active}}}"#
        ))
        .unwrap();
        r.id = id;
        Arc::new(r.validate().unwrap())
    }

    fn table(r: &Routes) -> Vec<(String, u64)> {
        let mut v: Vec<_> = r
            .by_host
            .iter()
            .map(|(h, s)| (h.clone(), s.res.id))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn patching_equals_building_anew_and_keeps_counters() {
        let base = Routes::new(
            vec![
                res(1, "a.example.com", true),
                res(2, "b.example.com", true),
                res(3, "c.example.com", true),
            ],
            None,
        );
        base.get("a.example.com")
            .unwrap()
            .metrics
            .record(crate::metrics::Outcome::Hit, 1);
        // 1 takes b's hostname, 2 goes, 3 is deactivated, 4 is new.
        let changed = [
            res(1, "b.example.com", true),
            res(3, "c.example.com", false),
            res(4, "d.example.com", true),
        ];
        let patched = base.patched(&changed, &[2]);
        let anew = Routes::new(
            vec![
                res(1, "b.example.com", true),
                res(3, "c.example.com", false),
                res(4, "d.example.com", true),
            ],
            None,
        );
        assert_eq!(table(&patched), table(&anew));
        assert_eq!(
            patched.sites().map(|s| s.res.id).collect::<Vec<_>>(),
            [1, 4]
        );
        assert!(patched.get("b.example.com").unwrap().metrics.is_used());
        // The table patched from is untouched.
        assert_eq!(table(&base).len(), 3);
        assert_eq!(base.get("b.example.com").unwrap().res.id, 2);
    }
}
