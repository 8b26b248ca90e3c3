//! The Tollgate edge: a caching reverse proxy that enforces secure tokens per CDN resource.
//!
//! The request path is a list of phases in `proxy`, each naming the module that does its work:
//! route by Host -> the path as nginx's `$uri` (400) -> token gate with `tollgate-token`
//! (403 / 410; nothing below runs for a refused request) -> cache key (`key`: resource, `$uri`
//! and the query without `md5`/`expires`) -> lookup (`cache`) -> on a miss one origin fetch per
//! key (`flights`, `fetch`) -> respond (`respond`: Range, conditional, HEAD; `manifests`:
//! playlist rewrite) -> counters and log (`metrics`, `access_log`).
//!
//! What the CLI uses is re-exported here; the modules are the crate's own.

mod access_log;
mod body;
mod cache;
mod client_io;
pub mod compress;
mod conn_limit;
mod control_client;
mod disk;
mod fetch;
mod flights;
mod follow;
mod geoip;
// Public for the fuzz target only (`fuzz/fuzz_targets/freshness.rs`).
#[doc(hidden)]
pub mod freshness;
mod held;
mod key;
mod manifests;
mod metrics;
mod origin;
mod prefetch;
mod proxy;
mod realip;
mod resources_file;
mod respond;
mod routes;
mod server;
mod slices;
mod throttle;
mod tls;
mod upstreams;

pub use client_io::{ClientIo, Guard, Serving, Sweeper};
pub use conn_limit::PerAddress;
pub use control_client::ControlClient;
pub use follow::{follow, resume, Follow, HeldConfig};
pub use origin::{client_tls, Timeouts};
pub use realip::{Cidr, TrustedProxies};
pub use resources_file::{load_resources, reload_on_hangup, ResourcesFileError};
pub use routes::Routes;
pub use server::{bind, drain, serve, serve_admin, serve_all, Limits, Listener};
pub use tls::{server_config, HostCert};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::access_log::AccessLog;
use crate::cache::{Cache, LargeKeys};
use crate::flights::Flights;
use crate::key::KeyRule;
use crate::metrics::EdgeMetrics;
use crate::origin::OriginClient;
use crate::slices::Tiers;

/// Settings of an edge, after parsing and validation.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted: TrustedProxies,
    /// Capacity of the memory tier in bytes.
    pub cache_bytes: u64,
    /// Largest object stored at all (memory and disk); larger ones are streamed through.
    pub max_object_bytes: u64,
    /// The disk tier's directory and capacity in bytes; `None` for a memory tier alone.
    pub disk: Option<(PathBuf, u64)>,
    /// Connect, read and whole-fetch timeouts for origin requests.
    pub origin_timeouts: Timeouts,
    /// Limits on viewers' connections.
    pub limits: Limits,
    /// Access log: `None` for off, `Some("-")` for stderr, else a file.
    pub access_log: Option<PathBuf>,
    /// Trust anchors for HTTPS origins, besides the system's.
    pub origin_ca: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// The MaxMind-format database of `country_acl` (`--geoip-db`).
    pub geoip: Option<PathBuf>,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            trusted: TrustedProxies::default(),
            cache_bytes: 256 << 20,
            max_object_bytes: 10 << 30,
            disk: None,
            origin_timeouts: Timeouts {
                connect: Duration::from_secs(5),
                read: Duration::from_secs(30),
                total: Duration::from_secs(60),
            },
            limits: Limits::default(),
            access_log: None,
            origin_ca: Vec::new(),
            geoip: None,
        }
    }
}

/// The shared state of a running edge.
pub struct Edge {
    /// The current routing table; swapped whole on reload.
    routes: ArcSwap<Routes>,
    /// The memory tier, and the disk tier when there is one.
    tiers: Tiers,
    /// Keys known to be too large to store, so later requests stream straight away.
    large: LargeKeys,
    /// In-flight origin fetches.
    flights: Arc<Flights>,
    /// Prefetches running, and those that failed.
    prefetcher: prefetch::Prefetcher,
    origin: OriginClient,
    /// Who may set the client address.
    trusted: TrustedProxies,
    metrics: EdgeMetrics,
    /// How long a viewer may take nothing of a streamed response before the origin's side of
    /// it is dropped (the listeners' send timeout).
    send_timeout: Duration,
    log: AccessLog,
    /// Version of the control plane's snapshot being served (0 with a resources file).
    config_version: std::sync::atomic::AtomicU64,
    /// The newest config version refused as invalid (0: none since the last one applied).
    config_refused: std::sync::atomic::AtomicU64,
    /// Why the edge is not fit to serve, for `/healthz` (503 while there is one).
    problem: std::sync::Mutex<Option<String>>,
    /// Countries by address, for `country_acl`.
    geoip: Option<geoip::Countries>,
}

impl Edge {
    /// An edge serving `routes`.
    pub fn new(config: &EdgeConfig, routes: Routes) -> std::io::Result<Edge> {
        let log = match &config.access_log {
            None => AccessLog::off(),
            Some(p) if p.as_os_str() == "-" => AccessLog::to_writer(Box::new(std::io::stderr())),
            Some(p) => AccessLog::to_writer(Box::new(std::io::BufWriter::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ))),
        };
        metrics::count_panics();
        let memory = Cache::new(config.cache_bytes, config.max_object_bytes);
        let disk = match &config.disk {
            None => None,
            Some((dir, size)) => Some(Arc::new(
                disk::Disk::open(dir, *size, memory.purge_log()).map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("the cache directory {}: {e}", dir.display()),
                    )
                })?,
            )),
        };
        let geoip = match &config.geoip {
            Some(p) => Some(geoip::Countries::open(p).map_err(std::io::Error::other)?),
            None => None,
        };
        Ok(Edge {
            geoip,
            routes: ArcSwap::from_pointee(routes),
            tiers: Tiers { memory, disk },
            large: LargeKeys::default(),
            flights: Arc::default(),
            prefetcher: prefetch::Prefetcher::default(),
            origin: OriginClient::new(config.origin_timeouts, &config.origin_ca),
            trusted: config.trusted.clone(),
            metrics: EdgeMetrics::default(),
            send_timeout: config.limits.send_timeout,
            log,
            config_version: std::sync::atomic::AtomicU64::new(0),
            problem: std::sync::Mutex::new(None),
            config_refused: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Marks the edge unfit to serve: `/healthz` answers 503 with `why` until
    /// [`Edge::clear_problem`].
    pub fn set_problem(&self, why: String) {
        *self.problem.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }

    /// The edge is fit to serve again (its control plane answered).
    pub fn clear_problem(&self) {
        let mut p = self.problem.lock().unwrap_or_else(|p| p.into_inner());
        if p.is_some() {
            *p = None;
        }
    }

    /// Why the edge is unfit to serve, if it is.
    pub fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Says on stderr which of `resources` enforce `country_acl` while this edge has no GeoIP
    /// database: their requests are refused (503) until it has one, never let through.
    pub fn warn_without_geoip<'a>(
        &self,
        resources: impl IntoIterator<Item = &'a tollgate_model::ValidResource>,
    ) {
        if self.geoip.is_some() {
            return;
        }
        for r in resources {
            if r.access.needs_country() {
                eprintln!(
                    "tollgate edge: resource {} ({}) enforces country_acl but this edge has no \
                     GeoIP database (--geoip-db): its requests are refused with 503",
                    r.id, r.resource.cname
                );
            }
        }
    }

    /// Whether the edge can tell countries (`--geoip-db`).
    pub fn has_geoip(&self) -> bool {
        self.geoip.is_some()
    }

    /// Replaces the routing table; requests in flight finish with the one they started with.
    pub fn replace_routes<I>(&self, resources: I)
    where
        I: IntoIterator,
        I::Item: Into<Arc<tollgate_model::ValidResource>>,
    {
        let old = self.routes.load_full();
        self.routes
            .store(Arc::new(Routes::new(resources, Some(&old))));
    }

    /// Drops what a purge names, keyed as `held` (every resource, inactive ones included) keys
    /// the purged resource's requests.
    pub(crate) fn purge(&self, held: &HeldConfig, p: &tollgate_model::Purge) {
        let rule = held
            .resource(p.resource)
            .map_or(KeyRule::of_unknown(p.resource), |r| KeyRule::of(r));
        self.tiers.memory.remove_purged(rule.clone(), &p.what);
        if let Some(disk) = &self.tiers.disk {
            disk.purge(rule, &p.what);
        }
    }

    /// Drops what both tiers hold for the URLs of `keys` (keyed by `rule`): an unsafe
    /// request's invalidation.
    pub(crate) fn invalidate(&self, rule: KeyRule, keys: &[key::CacheKey]) {
        let mut dropped = Vec::new();
        for k in keys {
            dropped.extend(self.tiers.memory.invalidate(k));
        }
        if let Some(disk) = &self.tiers.disk {
            disk.invalidate(rule, &dropped);
        }
    }

    /// Bytes the memory tier holds, as weighed against its capacity.
    pub fn cache_bytes(&self) -> u64 {
        self.tiers.memory.weighted_size()
    }

    /// Whether the disk tier's index is rebuilt (true without a disk tier).
    pub fn disk_ready(&self) -> bool {
        self.tiers.disk.as_ref().is_none_or(|d| d.is_ready())
    }

    /// Patches the routing table: `changed` resources replaced or added, `removed` ids gone.
    pub(crate) fn patch_routes(
        &self,
        changed: &[Arc<tollgate_model::ValidResource>],
        removed: &[u64],
    ) {
        let old = self.routes.load_full();
        self.routes.store(Arc::new(old.patched(changed, removed)));
    }

    /// The `/metrics` page (Prometheus text format).
    pub fn render_metrics(&self) -> String {
        let routes = self.routes.load();
        let sites: Vec<_> = routes
            .sites()
            .map(|site| (site.res.id, &*site.metrics))
            .collect();
        let mut out = metrics::render(
            &sites,
            &self.metrics,
            &[
                (
                    "tollgate_cache_objects",
                    "Objects and slices in the memory tier.",
                    self.tiers.memory.entry_count(),
                ),
                (
                    "tollgate_cache_bytes",
                    "Weight of the memory tier's objects and slices in bytes (bodies, headers and a per-entry share).",
                    self.tiers.memory.weighted_size(),
                ),
                (
                    "tollgate_config_refused_version",
                    "The newest configuration version refused as invalid (0: none since the last one applied).",
                    self.config_refused
                        .load(std::sync::atomic::Ordering::Relaxed),
                ),
                (
                    "tollgate_config_version",
                    "Version of the configuration this edge enforces.",
                    self.config_version
                        .load(std::sync::atomic::Ordering::Relaxed),
                ),
            ],
        );
        {
            use std::fmt::Write as _;
            let _ = writeln!(
                out,
                "# HELP tollgate_cache_memory_misses_total Lookups the memory tier could not answer (hits are counted per resource).\n# TYPE tollgate_cache_memory_misses_total counter\ntollgate_cache_memory_misses_total {}",
                self.metrics
                    .memory_misses
                    .load(std::sync::atomic::Ordering::Relaxed)
            );
        }
        if let Some(disk) = &self.tiers.disk {
            disk.render(&mut out);
        }
        self.prefetcher.render(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purge_is_keyed_by_its_resource_even_while_the_resource_is_inactive() {
        // Stored while active, with ignoreQueryString: `/a?x=1` is kept as `/a`.
        let json = |active: bool| {
            format!(
                r#"{{"id": 7, "cname": "cdn.example.com", "origin": "127.0.0.1:9", "active": {active},
                    "options": {{"ignoreQueryString": {{"enabled": true, "value": true}}}}}}"#
            )
        };
        let resource: tollgate_model::Resource = serde_json::from_str(&json(false)).unwrap();
        let held = HeldConfig::whole(tollgate_model::Snapshot {
            version: 2,
            resources: vec![resource],
            ..tollgate_model::Snapshot::default()
        })
        .unwrap();
        let edge = Edge::new(&EdgeConfig::default(), Routes::default()).unwrap();
        let active: tollgate_model::Resource = serde_json::from_str(&json(true)).unwrap();
        let target = tollgate_token::Target::parse(b"/a?x=1").unwrap();
        let key = KeyRule::of(&active.validate().unwrap()).key(&target).key;
        let now = std::time::Instant::now();
        let obj = cache::Object::fresh_for_a_minute(bytes::Bytes::from_static(b"x"));
        edge.tiers.memory.insert(key.clone(), obj);
        edge.purge(
            &held,
            &tollgate_model::Purge {
                version: 2,
                resource: 7,
                what: tollgate_model::PurgeRequest {
                    urls: Some(vec!["/a?x=1".into()]),
                    paths: None,
                },
            },
        );
        assert!(
            edge.tiers.memory.get(&key, now).is_none(),
            "the purge left {key:?}"
        );
    }
}
