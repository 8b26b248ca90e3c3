//! `tollgate`: sign and verify secure-token links, make keys.
//!
//! Exit codes: 0 success (for `verify`: the link is valid), 1 the link is refused (400, 403 or
//! 410), 2 bad arguments or input.

mod control_cmd;
mod edge_cmd;
mod fd_limit;
mod listen;
mod token_cmd;

use std::io::{self, IsTerminal, Write};
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use tollgate::batch::{sign_lines, BatchSpec};
use tollgate::{keygen, target::request_target_owned};
use tollgate_token::{explain_as, sign_link_as, Key};

// mimalloc rather than glibc's allocator: an edge evicting small objects spent a fifth of its
// time in glibc's malloc and free (consolidating freed chunks); with mimalloc the misses cost
// 16% less CPU per request, hits and refusals 6-14% less (docs/architecture.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process. mimalloc asks for them (`madvise`), and
/// each first touch of a 2 MiB page then zeroes it whole, compacting memory first when none is
/// free: while the edge's cache filled, the misses' p99 was 7-13 ms with them and 2-4 ms
/// without, and an idle edge held 37 MiB instead of 12 (docs/architecture.md). The advice
/// Redis and most databases give for the same reason.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        // Fails only on kernels older than 3.15, which then keep their default.
        let _ = nix::sys::prctl::set_thp_disable(true);
    }
}

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Signed, expiring CDN links (Gcore secure token / nginx secure_link)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a signed link (or, with --batch, one per path read from stdin).
    Sign(SignArgs),
    /// Decide a link as the edge would, and explain the decision.
    Verify(VerifyArgs),
    /// Print a new random 32-character key.
    Keygen,
    /// Run the edge: a caching reverse proxy that enforces secure tokens.
    Edge(edge_cmd::EdgeArgs),
    /// Run the control plane: resource API, panel, config for edges.
    Control(control_cmd::ControlArgs),
    /// Run control plane, panel and an edge together (embedded SQLite under ./tollgate-data).
    Serve(control_cmd::ServeArgs),
    /// Create, list and revoke the control plane's tokens (an edge's --edge-token among them).
    Token(token_cmd::TokenArgs),
}

#[derive(Args)]
struct KeyArgs {
    /// Secret key (6 to 32 printable ASCII characters). Prefer TOLLGATE_KEY or --key-file:
    /// other users can read command lines.
    #[arg(
        long,
        env = "TOLLGATE_KEY",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    key: Vec<String>,
    /// Read the key (first line) from a file.
    #[arg(long, value_name = "FILE")]
    key_file: Option<std::path::PathBuf>,
}

impl KeyArgs {
    fn keys(&self) -> Result<Vec<Key>> {
        let mut raw = self.key.clone();
        if let Some(f) = &self.key_file {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("--key-file: cannot read {}", f.display()))?;
            raw.push(text.lines().next().unwrap_or("").to_owned());
        }
        if raw.is_empty() {
            bail!("--key: a key is required (or TOLLGATE_KEY, or --key-file)");
        }
        raw.iter()
            .enumerate()
            .map(|(i, k)| Key::new(k).map_err(|e| anyhow!("--key (key {}): {e}", i + 1)))
            .collect()
    }
}

#[derive(Args)]
struct SignArgs {
    #[command(flatten)]
    keys: KeyArgs,
    /// Path to sign, decoded (as nginx's $uri): "/a b.mp4", not "/a%20b.mp4".
    #[arg(long, required_unless_present = "batch", conflicts_with = "batch")]
    path: Option<String>,
    /// Bind the link to this client address (resources of secure_key type 0).
    #[arg(long)]
    ip: Option<IpAddr>,
    /// Bind the link to the --ip's network instead (secure_key.ip_prefix): V4,V6 prefix
    /// lengths, e.g. 24,64.
    #[arg(long, value_name = "V4,V6", requires = "ip", value_parser = parse_prefix)]
    ip_prefix: Option<(u8, u8)>,
    /// Expiry as a Unix time.
    #[arg(
        long,
        required_unless_present = "ttl",
        conflicts_with = "ttl",
        allow_negative_numbers = true
    )]
    expires: Option<i64>,
    /// Lifetime in seconds from now.
    #[arg(long, allow_negative_numbers = true)]
    ttl: Option<u64>,
    /// Scheme and host put before the path, e.g. https://cdn.example.com
    #[arg(long, default_value = "")]
    base: String,
    /// Print only the token.
    #[arg(long)]
    token_only: bool,
    /// Read one path per line from stdin and print one link per line.
    #[arg(long)]
    batch: bool,
}

#[derive(Args)]
struct VerifyArgs {
    /// Keys to try in order (repeat --key for rotation; the first is the signing key).
    #[command(flatten)]
    keys: KeyArgs,
    /// Client address, for resources that bind tokens to it (secure_key type 0).
    #[arg(long)]
    ip: Option<IpAddr>,
    /// The resource binds links to the client's network (secure_key.ip_prefix): V4,V6.
    #[arg(long, value_name = "V4,V6", requires = "ip", value_parser = parse_prefix)]
    ip_prefix: Option<(u8, u8)>,
    /// Time of the check as a Unix time (default: now).
    #[arg(long)]
    now: Option<i64>,
    /// Print one JSON object instead of an explanation.
    #[arg(long)]
    json: bool,
    /// The link: a full URL, or a path with its query.
    link: String,
}

/// `--ip-prefix`: `V4,V6` lengths (1 to 32, 1 to 128).
fn parse_prefix(s: &str) -> Result<(u8, u8), String> {
    let bad = || format!("{s:?}: give V4,V6 prefix lengths, e.g. 24,64 (1 to 32, 1 to 128)");
    let (a, b) = s.split_once(',').ok_or_else(bad)?;
    let v4: u8 = a.trim().parse().map_err(|_| bad())?;
    let v6: u8 = b.trim().parse().map_err(|_| bad())?;
    if !(1..=32).contains(&v4) || !(1..=128).contains(&v6) {
        return Err(bad());
    }
    Ok((v4, v6))
}

/// What a link is bound to: the address, its network with `--ip-prefix`, or nothing.
fn client(ip: Option<IpAddr>, prefix: Option<(u8, u8)>) -> Option<tollgate_token::RemoteAddr> {
    let ip = ip?;
    Some(match prefix {
        Some((v4, v6)) => tollgate_token::RemoteAddr::network(ip, v4, v6),
        None => tollgate_token::RemoteAddr::new(ip),
    })
}

fn now() -> Result<i64> {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    i64::try_from(secs).context("system clock out of range")
}

fn expires(args: &SignArgs) -> Result<i64> {
    match (args.expires, args.ttl) {
        (Some(e), _) if e <= 0 => bail!("--expires: must be a positive Unix time, got {e}"),
        (Some(e), _) => Ok(e),
        (None, Some(ttl)) => i64::try_from(ttl)
            .ok()
            .and_then(|t| now().ok()?.checked_add(t))
            .ok_or_else(|| anyhow!("--ttl: {ttl} seconds from now does not fit in a Unix time")),
        (None, None) => bail!("--expires or --ttl is required"),
    }
}

fn sign(args: SignArgs) -> Result<ExitCode> {
    let keys = args.keys.keys()?;
    if keys.len() > 1 {
        bail!("--key: sign takes one key");
    }
    let expires = expires(&args)?;
    let stdout = io::stdout();
    if args.batch {
        let spec = BatchSpec {
            key: &keys[0],
            expires,
            client: client(args.ip, args.ip_prefix),
            base: &args.base,
            token_only: args.token_only,
        };
        let show = io::stderr().is_terminal();
        let report = sign_lines(
            io::stdin().lock(),
            stdout.lock(),
            &spec,
            |n| {
                if show {
                    eprint!("\rread {n} lines");
                }
            },
            |line, why| {
                if show {
                    eprint!("\r");
                }
                eprintln!("tollgate: --batch: line {line}: {why}");
            },
        )
        .context("--batch")?;
        if show {
            eprintln!("\rsigned {} links", report.signed);
        }
        if report.bad > 0 {
            eprintln!(
                "tollgate: --batch: {} line(s) not signed, {} link(s) written",
                report.bad, report.signed
            );
            return Ok(ExitCode::from(2));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let path = args.path.unwrap_or_default();
    let mut out = Vec::new();
    let token = sign_link_as(
        &mut out,
        &args.base,
        &keys[0],
        expires,
        path.as_bytes(),
        client(args.ip, args.ip_prefix).as_ref(),
    )
    .map_err(|e| anyhow!("--path: {e}"))?;
    if args.token_only {
        out.clear();
        out.extend_from_slice(token.as_bytes());
    }
    out.push(b'\n');
    stdout.lock().write_all(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn verify(args: VerifyArgs) -> Result<ExitCode> {
    let keys = args.keys.keys()?;
    let now = match args.now {
        Some(n) => n,
        None => now()?,
    };
    let target = request_target_owned(&args.link);
    let ex = explain_as(
        target.as_bytes(),
        &keys,
        client(args.ip, args.ip_prefix),
        now,
    );
    // Keys count from 1 in the text and in --json alike: the order of the --key flags.
    let v = ex.verdict();
    let status = v.status;
    let mut out = io::stdout().lock();
    if args.json {
        let obj = serde_json::json!({
            "status": v.status,
            "reason": v.reason,
            "detail": v.detail,
            "key": v.key,
        });
        writeln!(out, "{obj}")?;
    } else {
        write!(out, "{ex}")?;
    }
    Ok(if status == 200 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run() -> Result<ExitCode> {
    match Cli::parse().command {
        Command::Sign(a) => sign(a),
        Command::Verify(a) => verify(a),
        Command::Edge(a) => edge_cmd::run(a).map(|()| ExitCode::SUCCESS),
        Command::Control(a) => control_cmd::run_control(a).map(|()| ExitCode::SUCCESS),
        Command::Serve(a) => control_cmd::run_serve(a).map(|()| ExitCode::SUCCESS),
        Command::Token(a) => token_cmd::run(a).map(|()| ExitCode::SUCCESS),
        Command::Keygen => {
            let key =
                keygen::generate().context("the operating system's random generator failed")?;
            println!("{key}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tollgate: {e:#}");
            ExitCode::from(2)
        }
    }
}
