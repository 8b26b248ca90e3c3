//! `tollgate edge`: wiring of the edge crate to the command line and to signals.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use tollgate::units::{parse_size, parse_timeout};
use tollgate_edge::{
    load_resources, reload_on_hangup, server_config, Cidr, Edge, EdgeConfig, Follow, HostCert,
    Limits, Listener, ResourcesFileError, Routes, Timeouts, TrustedProxies,
};

#[derive(Args)]
pub struct EdgeArgs {
    /// JSON array of resources in Gcore's shape; re-read on SIGHUP.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "control",
        conflicts_with = "control"
    )]
    resources: Option<PathBuf>,
    /// Follow this control plane (e.g. http://10.0.0.5:9090) instead of a resources file.
    #[arg(long, value_name = "URL", requires = "edge_token")]
    control: Option<String>,
    /// Edge token for the control plane (make one with `tollgate token create --role edge`).
    #[arg(long, env = "TOLLGATE_EDGE_TOKEN", hide_env_values = true)]
    edge_token: Option<String>,
    /// Where the last good snapshot from the control plane is kept, to start without it.
    #[arg(long, value_name = "DIR", default_value = "./tollgate-edge-state")]
    state_dir: PathBuf,
    /// This edge's name in the control plane's reports (default: the listen address).
    #[arg(long)]
    name: Option<String>,
    /// Address to serve clients on (repeatable: `--listen 0.0.0.0:8080 --listen [::]:8080`
    /// for both families; an IPv6 address takes IPv6 clients only).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: Vec<SocketAddr>,
    #[command(flatten)]
    opts: EdgeOptions,
}

/// Edge settings shared by `tollgate edge` and `tollgate serve`.
#[derive(Args)]
pub struct EdgeOptions {
    /// Trust X-Forwarded-For from these addresses or CIDR blocks (nginx realip, recursive).
    #[arg(long, value_name = "CIDR", value_parser = |s: &str| s.parse::<Cidr>())]
    trust_proxy: Vec<Cidr>,
    /// Address for /metrics and /healthz.
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// Capacity of the memory tier (e.g. 256M, 2G): hot objects and slices.
    #[arg(long, default_value = "256M", value_parser = parse_size)]
    cache_size: u64,
    /// Directory of the disk tier, kept across restarts (`tollgate serve`: DATA/cache).
    /// Without it, the cache is in memory only.
    #[arg(long, value_name = "DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Capacity of the disk tier [default: 10G; `tollgate serve`: 1G].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) disk_cache_size: Option<u64>,
    /// Largest object stored at all (memory and disk); larger ones are streamed from the
    /// origin every time.
    #[arg(long, default_value = "10G", value_parser = parse_size)]
    max_object_size: u64,
    /// Time to connect to an origin.
    #[arg(long, default_value = "5s", value_parser = parse_timeout)]
    origin_connect_timeout: Duration,
    /// Time to wait for an origin's response headers, and between two body reads.
    #[arg(long, default_value = "30s", value_parser = parse_timeout)]
    origin_read_timeout: Duration,
    /// Time a whole fetch into the cache may take (viewers waiting on it are held no longer).
    #[arg(long, default_value = "60s", value_parser = parse_timeout)]
    origin_total_timeout: Duration,
    /// Time a client has to send its request headers (from connecting, or from the end of its
    /// previous response).
    #[arg(long, default_value = "10s", value_parser = parse_timeout)]
    pub(crate) header_timeout: Duration,
    /// Time a client may leave a response unread before it is cut off.
    #[arg(long, default_value = "60s", value_parser = parse_timeout)]
    pub(crate) send_timeout: Duration,
    /// Worker threads serving clients (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Open client connections at most, over every listener.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) max_connections: usize,
    /// Open connections from one client address at most (0: no cap); more are closed at once.
    /// Peers inside --trust-proxy are not capped.
    #[arg(long, default_value_t = 256)]
    pub(crate) max_connections_per_ip: usize,
    /// Address to serve TLS clients on (HTTP/2 and HTTP/1.1 by ALPN; repeatable); needs
    /// --tls-cert.
    #[arg(long, value_name = "ADDR", requires = "tls_cert")]
    tls_listen: Vec<SocketAddr>,
    /// Certificate for one hostname, chosen by SNI: HOST=CERT.pem,KEY.pem (repeatable).
    #[arg(long, value_name = "HOST=CERT,KEY", value_parser = HostCert::from_arg, requires = "tls_listen")]
    tls_cert: Vec<HostCert>,
    /// PEM file of CA certificates trusted for HTTPS origins, besides the system's (repeatable).
    #[arg(long, value_name = "FILE")]
    origin_ca: Vec<PathBuf>,
    /// Access log: "-" for stderr, or a file path. Off when not given.
    #[arg(long, value_name = "PATH")]
    access_log: Option<PathBuf>,
    /// MaxMind-format database (GeoLite2/GeoIP2 Country or City) giving the clients' countries
    /// to `country_acl`; without it, resources that enforce `country_acl` are refused (503).
    #[arg(long, value_name = "FILE")]
    pub(crate) geoip_db: Option<PathBuf>,
}

fn load(path: &Path) -> Result<Vec<tollgate_model::ValidResource>> {
    load_resources(path).map_err(|e| match e {
        ResourcesFileError::Unreadable(..) => anyhow!("--resources: {e}"),
        ResourcesFileError::Invalid(..) => anyhow!("--resources {e}"),
    })
}

fn load_cas(paths: &[PathBuf]) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut out = Vec::new();
    for p in paths {
        let certs: Vec<_> = CertificateDer::pem_file_iter(p)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| anyhow!("--origin-ca {}: {e}", p.display()))?;
        if certs.is_empty() {
            bail!("--origin-ca {}: no certificate in the file", p.display());
        }
        out.extend(certs);
    }
    Ok(out)
}

/// Where an edge's resources come from.
pub enum Source {
    /// A file, re-read on SIGHUP.
    File(PathBuf),
    /// A control plane.
    Control(Follow),
}

fn config(args: &EdgeOptions) -> Result<EdgeConfig> {
    if args.disk_cache_size.is_some() && args.cache_dir.is_none() {
        bail!("--disk-cache-size: needs --cache-dir, the directory of the disk tier");
    }
    Ok(EdgeConfig {
        trusted: TrustedProxies(args.trust_proxy.clone()),
        cache_bytes: args.cache_size,
        max_object_bytes: args.max_object_size,
        disk: args
            .cache_dir
            .clone()
            .map(|d| (d, args.disk_cache_size.unwrap_or(10 << 30))),
        origin_timeouts: Timeouts {
            connect: args.origin_connect_timeout,
            read: args.origin_read_timeout,
            total: args.origin_total_timeout,
        },
        limits: Limits {
            max_connections: args.max_connections,
            max_connections_per_ip: args.max_connections_per_ip,
            header_read_timeout: args.header_timeout,
            send_timeout: args.send_timeout,
            ..Limits::default()
        },
        access_log: args.access_log.clone(),
        origin_ca: load_cas(&args.origin_ca)?,
        geoip: args.geoip_db.clone(),
    })
}

/// A runtime for the acceptor, signals, reloads and the admin listener; clients are served
/// by the workers `tollgate_edge::serve_all` starts.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

pub fn run(args: EdgeArgs) -> Result<()> {
    let source = match (&args.resources, &args.control) {
        (Some(path), _) => Source::File(path.clone()),
        (None, Some(url)) => Source::Control(Follow {
            control: check_url(url)?,
            token: args.edge_token.clone().unwrap_or_default(),
            state_dir: args.state_dir.clone(),
            name: args.name.clone().unwrap_or_else(|| {
                args.listen
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            }),
        }),
        (None, None) => bail!("--resources or --control is required"),
    };
    crate::fd_limit::raise("edge", args.opts.max_connections as u64);
    runtime()?.block_on(async {
        let stop = stop_on_signals()?;
        run_edge(&args.opts, &args.listen, source, stop).await
    })
}

/// Checks a control-plane URL.
pub fn check_url(url: &str) -> Result<String> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.parse::<http::Uri>().is_ok_and(|u| u.host().is_some());
    if !ok {
        bail!("--control: {url:?} is not an http:// or https:// URL");
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// A flag raised on SIGTERM or Ctrl-C.
pub fn stop_on_signals() -> Result<tokio::sync::watch::Receiver<bool>> {
    use tokio::signal::unix::{signal, SignalKind};
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        eprintln!("tollgate: shutting down, finishing requests in flight");
        let _ = stop_tx.send(true);
    });
    Ok(stop_rx)
}

/// Resolves once `rx` says stop.
pub async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// A source once the edge holds what it gave.
enum Followed {
    File(PathBuf),
    Control(Follow, tollgate_edge::HeldConfig),
}

/// Runs an edge on the `listen` addresses until `stop_rx` says stop.
pub async fn run_edge(
    args: &EdgeOptions,
    listen: &[SocketAddr],
    source: Source,
    stop_rx: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let config = config(args)?;
    let resources = match &source {
        Source::File(path) => load(path)?,
        Source::Control(_) => Vec::new(),
    };
    if config.geoip.is_none() {
        if let Some(r) = resources.iter().find(|r| r.access.needs_country()) {
            bail!(
                "--resources: resource {} ({}) enforces country_acl, which needs --geoip-db (a \
                 MaxMind-format database of countries)",
                r.id,
                r.resource.cname
            );
        }
    }
    let file_count = resources.len();
    let edge = Arc::new(
        Edge::new(&config, Routes::new(resources, None))
            .context("--access-log, --cache-dir or --geoip-db")?,
    );
    // Before the listeners: a restarted edge serves its saved configuration from the first
    // request.
    let (count, source) = match source {
        Source::File(path) => (file_count, Followed::File(path)),
        Source::Control(f) => {
            let held = tollgate_edge::resume(&edge, &f);
            (held.len(), Followed::Control(f, held))
        }
    };
    let mut listeners = Vec::new();
    for addr in listen {
        let tcp =
            tollgate_edge::bind(*addr).with_context(|| format!("--listen: cannot bind {addr}"))?;
        eprintln!(
            "tollgate edge: listening on {} ({count} resources)",
            tcp.local_addr()?
        );
        listeners.push(Listener { tcp, tls: None });
    }
    if let Some(addr) = args.admin {
        let admin = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("--admin: cannot bind {addr}"))?;
        eprintln!("tollgate edge: admin on {}", admin.local_addr()?);
        tokio::spawn(tollgate_edge::serve_admin(
            Arc::clone(&edge),
            admin,
            stopped(stop_rx.clone()),
        ));
    }
    match source {
        Followed::File(path) => {
            reload_on_hangup(Arc::clone(&edge), path).context("installing the SIGHUP handler")?
        }
        Followed::Control(f, held) => {
            eprintln!("tollgate edge: following {}", f.control);
            tokio::spawn(tollgate_edge::follow(
                Arc::clone(&edge),
                f,
                held,
                stopped(stop_rx.clone()),
            ));
        }
    }
    if !args.tls_listen.is_empty() {
        let cfg = server_config(&args.tls_cert).map_err(|e| anyhow!("--tls-cert: {e}"))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
        for addr in &args.tls_listen {
            let tcp = tollgate_edge::bind(*addr)
                .with_context(|| format!("--tls-listen: cannot bind {addr}"))?;
            eprintln!("tollgate edge: TLS on {}", tcp.local_addr()?);
            listeners.push(Listener {
                tcp,
                tls: Some(acceptor.clone()),
            });
        }
    }
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    tollgate_edge::serve_all(edge, listeners, config.limits, workers, stopped(stop_rx)).await;
    eprintln!("tollgate edge: stopped");
    Ok(())
}
