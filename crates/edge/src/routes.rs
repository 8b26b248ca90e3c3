//! The routing table: hostname -> resource, built from validated resources and swapped whole on
//! reload, so a request sees one consistent snapshot from start to end.

use std::collections::HashMap;
use std::sync::Arc;

use tollgate_model::ValidResource;

use crate::metrics::ResourceMetrics;

/// A resource as the edge serves it.
pub struct Site {
    /// The validated resource.
    pub res: ValidResource,
    /// Its counters; kept across reloads for the same id.
    pub metrics: Arc<ResourceMetrics>,
}

/// Hostname (lower case) -> site.
#[derive(Default)]
pub struct Routes {
    by_host: HashMap<String, Arc<Site>>,
    /// Every site, by id.
    pub sites: Vec<Arc<Site>>,
}

impl Routes {
    /// Builds the table; counters of resources already in `previous` carry over.
    pub fn new(resources: Vec<ValidResource>, previous: Option<&Routes>) -> Routes {
        let mut by_host = HashMap::with_capacity(resources.len());
        let mut sites = Vec::with_capacity(resources.len());
        // By id, so that carrying the counters over costs one lookup per resource (a search of
        // the previous list made a reload quadratic in the number of resources).
        let counters: HashMap<u64, &Arc<ResourceMetrics>> = previous
            .map(|p| p.sites.iter().map(|s| (s.res.id, &s.metrics)).collect())
            .unwrap_or_default();
        for res in resources {
            if !res.resource.active {
                continue;
            }
            let metrics = counters
                .get(&res.id)
                .map(|m| Arc::clone(m))
                .unwrap_or_default();
            let site = Arc::new(Site { res, metrics });
            for h in site.res.hostnames() {
                by_host.insert(h.clone(), Arc::clone(&site));
            }
            sites.push(site);
        }
        Routes { by_host, sites }
    }

    /// The site serving `host` (already lower-cased, without port).
    pub fn get(&self, host: &str) -> Option<&Arc<Site>> {
        self.by_host.get(host)
    }
}
