//! The Tollgate edge: a caching reverse proxy that enforces secure tokens per CDN resource.
//!
//! Request path (see `proxy`): route by Host -> normalise the path as nginx's `$uri` (400) ->
//! token gate with `tollgate-token` (403 / 410; nothing below runs for a refused request) ->
//! cache lookup keyed by resource, `$uri` and the query without `md5`/`expires` -> one origin
//! fetch per key however many wait -> respond (Range, conditional, HEAD) -> metrics and log.

pub mod access_log;
pub mod body;
pub mod cache;
pub mod client_io;
pub mod conn_limit;
pub mod control_client;
pub mod follow;
pub mod forwarding;
pub mod freshness;
pub mod held;
pub mod metrics;
pub mod origin;
pub mod proxy;
pub mod realip;
pub mod respond;
pub mod routes;
pub mod server;
pub mod tls;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::access_log::AccessLog;
use crate::cache::{Cache, Flights, LargeKeys};
use crate::metrics::EdgeMetrics;
use crate::origin::{OriginClient, Timeouts};
use crate::realip::TrustedProxies;
use crate::routes::Routes;

/// Settings of an edge, after parsing and validation.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Trusted proxies whose `X-Forwarded-For` is believed.
    pub trusted: TrustedProxies,
    /// Cache capacity in bytes.
    pub cache_bytes: u64,
    /// Largest object kept in the cache; larger ones are streamed.
    pub max_object_bytes: u64,
    /// Origin timeouts.
    pub origin_timeouts: Timeouts,
    /// Limits on client connections.
    pub limits: server::Limits,
    /// Access log: `None` for off, `Some("-")` for stderr, else a file.
    pub access_log: Option<PathBuf>,
    /// Trust anchors for HTTPS origins, besides the system's.
    pub origin_ca: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            trusted: TrustedProxies::default(),
            cache_bytes: 256 << 20,
            max_object_bytes: 16 << 20,
            origin_timeouts: Timeouts {
                connect: Duration::from_secs(5),
                read: Duration::from_secs(30),
                total: Duration::from_secs(60),
            },
            limits: server::Limits::default(),
            access_log: None,
            origin_ca: Vec::new(),
        }
    }
}

/// The shared state of a running edge.
pub struct Edge {
    /// The current routing table; swapped whole on reload.
    pub routes: ArcSwap<Routes>,
    /// Stored objects.
    pub cache: Cache,
    /// Keys known to be too large to store, so later requests stream straight away.
    pub large: LargeKeys,
    /// In-flight origin fetches.
    pub flights: Arc<Flights>,
    /// The origin client.
    pub origin: OriginClient,
    /// Who may set the client address.
    pub trusted: TrustedProxies,
    /// Edge-wide counters.
    pub metrics: EdgeMetrics,
    /// How long a viewer may take nothing of a streamed response before the origin's side of
    /// it is dropped (the listeners' send timeout).
    pub send_timeout: Duration,
    /// Access log.
    pub log: AccessLog,
    /// Version of the control plane's snapshot being served (0 with a resources file).
    pub config_version: std::sync::atomic::AtomicU64,
    /// The newest config version refused as invalid (0: none since the last one applied).
    pub config_refused: std::sync::atomic::AtomicU64,
    /// Why the edge is not fit to serve, for `/healthz` (503 while there is one).
    problem: std::sync::Mutex<Option<String>>,
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
        Ok(Edge {
            routes: ArcSwap::from_pointee(routes),
            cache: Cache::new(config.cache_bytes, config.max_object_bytes),
            large: LargeKeys::default(),
            flights: Arc::default(),
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

    /// Patches the routing table: `changed` resources replaced or added, `removed` ids gone.
    pub fn patch_routes(&self, changed: &[Arc<tollgate_model::ValidResource>], removed: &[u64]) {
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
        metrics::render(
            &sites,
            &self.metrics,
            &[
                (
                    "tollgate_cache_objects",
                    "Objects in the cache.",
                    self.cache.entry_count(),
                ),
                (
                    "tollgate_cache_bytes",
                    "Weight of the cache's objects in bytes (bodies, headers and a per-object share).",
                    self.cache.weighted_size(),
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
        )
    }
}
