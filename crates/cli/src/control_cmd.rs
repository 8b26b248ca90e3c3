//! `tollgate control` (the control plane and panel) and `tollgate serve` (control plane,
//! panel and an edge in one process, with embedded defaults).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use tollgate::units::{parse_size, parse_timeout};
use tollgate_control::Control;
use tollgate_edge::Follow;
use tollgate_store::{PgStore, SqliteStore, Store};

use crate::edge_cmd::{self, EdgeOptions, Source};
use crate::listen;

/// Where the control plane keeps its state.
#[derive(Args)]
pub struct StoreArgs {
    /// Data directory (the SQLite database; the embedded edge's saved snapshot).
    #[arg(long, value_name = "DIR", default_value = "./tollgate-data")]
    data: PathBuf,
    /// Use this PostgreSQL database instead of SQLite (postgres://user@host/db), for several
    /// control nodes sharing one database.
    #[arg(
        long,
        env = "TOLLGATE_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database: Option<String>,
    /// An address edges fetch from, listed by /cdn/public-ip-list even if no edge polls from
    /// it (repeatable; edges that poll are listed anyway).
    #[arg(long, value_name = "IP")]
    edge_address: Vec<std::net::IpAddr>,
    /// The first API token, instead of a generated one (16+ printable characters).
    #[arg(
        long,
        env = "TOLLGATE_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    api_token: Option<String>,
    /// The edges have a GeoIP database (`tollgate edge --geoip-db`): resources may enforce
    /// `country_acl` (refused without it). `tollgate serve` sets it with its `--geoip-db`.
    #[arg(long)]
    edges_geoip: bool,
}

/// Limits on request bodies, for `control` and `serve`.
#[derive(Args)]
pub struct BodyArgs {
    /// Time a client has to send a whole request body, from the end of its headers (408 and
    /// the connection closed after).
    #[arg(long, default_value = "30s", value_parser = parse_timeout)]
    body_timeout: Duration,
    /// Largest request body (413 above).
    #[arg(long, default_value = "1M", value_parser = parse_size)]
    max_body_size: u64,
}

/// Limits on the control plane's clients; `serve` takes them from the edge's flags of the
/// same names.
#[derive(Args)]
pub struct ClientArgs {
    /// Time a client has to send its request headers (from connecting, or from the end of its
    /// previous response).
    #[arg(long, default_value = "10s", value_parser = parse_timeout)]
    header_timeout: Duration,
    /// Time a client may leave a response unread before it is cut off.
    #[arg(long, default_value = "60s", value_parser = parse_timeout)]
    send_timeout: Duration,
    /// Open client connections at most; further clients wait to be accepted.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// Open connections from one client address at most (0: no cap); more are closed at once.
    #[arg(long, default_value_t = 256)]
    max_connections_per_ip: usize,
}

#[derive(Args)]
pub struct ControlArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address for the API and the panel.
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    #[command(flatten)]
    clients: ClientArgs,
    #[command(flatten)]
    body: BodyArgs,
}

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address for the API and the panel.
    #[arg(long, default_value = "127.0.0.1:9090")]
    control_listen: SocketAddr,
    /// Address the edge serves the resources' hostnames on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    edge_listen: SocketAddr,
    #[command(flatten)]
    edge: EdgeOptions,
    #[command(flatten)]
    body: BodyArgs,
}

impl ControlArgs {
    fn limits(&self) -> listen::Limits {
        listen::Limits {
            max_connections: self.clients.max_connections,
            max_connections_per_ip: self.clients.max_connections_per_ip,
            header_timeout: self.clients.header_timeout,
            send_timeout: self.clients.send_timeout,
            body_timeout: self.body.body_timeout,
            max_body_bytes: self.body.max_body_size,
            ..listen::Limits::default()
        }
    }
}

impl ServeArgs {
    fn limits(&self) -> listen::Limits {
        listen::Limits {
            max_connections: self.edge.max_connections,
            max_connections_per_ip: self.edge.max_connections_per_ip,
            header_timeout: self.edge.header_timeout,
            send_timeout: self.edge.send_timeout,
            body_timeout: self.body.body_timeout,
            max_body_bytes: self.body.max_body_size,
            ..listen::Limits::default()
        }
    }
}

fn open_store(data: &Path, database: Option<&str>) -> Result<Arc<dyn Store>> {
    Ok(match database {
        Some(url) => Arc::new(PgStore::open(url).map_err(|e| anyhow!("--database: {e}"))?),
        None => {
            // The database holds resource keys: the directory is this user's only.
            std::os::unix::fs::DirBuilderExt::mode(
                std::fs::DirBuilder::new().recursive(true),
                0o700,
            )
            .create(data)
            .with_context(|| format!("--data: cannot create {}", data.display()))?;
            // An existing directory keeps the mode it had (0755 is common under /var/lib):
            // take it back to this user's only.
            std::fs::set_permissions(data, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .with_context(|| {
                    format!("--data: cannot make {} private (0700)", data.display())
                })?;
            let path = data.join("tollgate.db");
            Arc::new(
                SqliteStore::open(&path).map_err(|e| anyhow!("--data {}: {e}", path.display()))?,
            )
        }
    })
}

/// Opens the store, makes the first token if needed, binds and starts the API and panel.
async fn start_control(
    args: &StoreArgs,
    listen: SocketAddr,
    limits: listen::Limits,
    edge_tokens: &[String],
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(Arc<Control>, SocketAddr, tokio::task::JoinHandle<()>)> {
    // Opening a store blocks (and the PostgreSQL client runs its own runtime), so it happens
    // on a blocking thread.
    let (data, database, given) = (
        args.data.clone(),
        args.database.clone(),
        args.api_token.clone(),
    );
    let edge_tokens = edge_tokens.to_vec();
    let (control, first) = tokio::task::spawn_blocking(move || -> Result<_> {
        let store = open_store(&data, database.as_deref())?;
        // A resource an older version stored that this one refuses makes edges refuse every
        // snapshot (they keep their last good one): name it, so that it can be fixed.
        for r in store.list().map_err(|e| anyhow!("store: {e}"))? {
            let id = r.id;
            if let Err(errs) = r.validate() {
                let list: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
                eprintln!(
                    "tollgate control: error: stored resource {id} does not validate, and edges \
                     will refuse configurations until it is fixed (PUT or PATCH it): {}",
                    list.join("; ")
                );
            }
        }
        let control = Control::new(store, &edge_tokens).map_err(|e| anyhow!("store: {e}"))?;
        let first = control
            .bootstrap(given.as_deref())
            .map_err(|e| anyhow!("--api-token: {}", e.message))?;
        Ok((control, first))
    })
    .await
    .context("opening the store")??;
    control.add_edge_addresses(&args.edge_address);
    control.set_edges_geoip(args.edges_geoip);
    let listener = tollgate_edge::bind(listen)
        .with_context(|| format!("cannot bind the control listener {listen}"))?;
    let addr = listener.local_addr()?;
    match (first, args.api_token.is_some()) {
        (Some(t), false) => println!(
            "First API token (shown once; keep it): {t}\n\
             Use it as \"Authorization: APIKey {t}\", or to log in to the panel."
        ),
        (Some(_), true) => println!("First API token: the one given with --api-token."),
        (None, _) => {}
    }
    println!("Panel and API: http://{addr}/");
    tokio::spawn(Arc::clone(&control).watch_store());
    let app = control.router();
    let c = Arc::clone(&control);
    let server = tokio::spawn(async move {
        let shutdown = async move {
            edge_cmd::stopped(stop).await;
            c.stop();
        };
        listen::serve(app, listener, limits, shutdown).await;
    });
    Ok((control, addr, server))
}

pub fn run_control(args: ControlArgs) -> Result<()> {
    crate::fd_limit::raise("control", args.limits().max_connections as u64);
    edge_cmd::runtime()?.block_on(async {
        let stop = edge_cmd::stop_on_signals()?;
        let (_, _, server) =
            start_control(&args.store, args.listen, args.limits(), &[], stop).await?;
        let _ = server.await;
        Ok(())
    })
}

pub fn run_serve(mut args: ServeArgs) -> Result<()> {
    // A disk tier under the data directory unless told otherwise: 1 GiB, modest enough for a
    // laptop, and a restart keeps the cache.
    args.store.edges_geoip |= args.edge.geoip_db.is_some();
    if args.edge.cache_dir.is_none() {
        args.edge.cache_dir = Some(args.store.data.join("cache"));
        args.edge.disk_cache_size.get_or_insert(1 << 30);
    }
    crate::fd_limit::raise(
        "serve",
        (args.limits().max_connections as u64).saturating_add(args.edge.max_connections as u64),
    );
    edge_cmd::runtime()?.block_on(async {
        let stop = edge_cmd::stop_on_signals()?;
        // The embedded edge's token lives in this process only.
        let edge_token = tollgate_control::auth::new_token()
            .map_err(|e| anyhow!("the operating system's random generator failed: {e}"))?;
        let (_, addr, server) = start_control(
            &args.store,
            args.control_listen,
            args.limits(),
            std::slice::from_ref(&edge_token),
            stop.clone(),
        )
        .await?;
        if args.edge_listen.port() != 0 {
            println!("Edge: http://{} (routes by Host header)", args.edge_listen);
        }
        let follow = Follow {
            control: format!("http://{}", loopback(addr)),
            token: edge_token,
            state_dir: edge_state_dir(&args.store.data),
            name: "embedded".into(),
        };
        edge_cmd::run_edge(
            &args.edge,
            &[args.edge_listen],
            Source::Control(follow),
            stop,
        )
        .await?;
        let _ = server.await;
        Ok(())
    })
}

/// The control listener as the embedded edge reaches it (an unspecified address is not one
/// to connect to).
fn loopback(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        a => a,
    }
}

fn edge_state_dir(data: &Path) -> PathBuf {
    data.join("edge")
}
