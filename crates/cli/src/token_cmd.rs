//! `tollgate token create | list | revoke`: the control plane's tokens from the command line,
//! through its API (`/tollgate/tokens`), called with an API token. An edge's `--edge-token`
//! comes from `tollgate token create --role edge`.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use http::{Method, StatusCode};
use tollgate_edge::client_tls;
use tollgate_edge::ControlClient;

#[derive(Args)]
pub struct TokenArgs {
    /// The control plane's URL.
    #[arg(
        long,
        env = "TOLLGATE_CONTROL",
        default_value = "http://127.0.0.1:9090",
        global = true
    )]
    control: String,
    /// An API token of the control plane (the one `tollgate serve` printed on first start).
    #[arg(
        long,
        env = "TOLLGATE_API_TOKEN",
        hide_env_values = true,
        global = true
    )]
    api_token: Option<String>,
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it (it is shown once): `--role edge` for an edge's
    /// `--edge-token`, `--role api` for the API and the panel.
    Create {
        /// What the token may do: `edge` (fetch configuration, report counters) or `api`.
        #[arg(long, value_parser = ["edge", "api"])]
        role: String,
        /// A name to tell it by in listings and the audit log (1 to 64 characters).
        #[arg(long)]
        name: String,
    },
    /// List the tokens: id, role and name (never the tokens themselves).
    List,
    /// Revoke a token by its id; it stops working at once.
    Revoke {
        /// The token's id, as `list` shows it.
        id: u64,
    },
}

const TIMEOUT: Duration = Duration::from_secs(30);

pub fn run(args: TokenArgs) -> Result<()> {
    let token = args
        .api_token
        .ok_or_else(|| anyhow!("--api-token: an API token is required (or TOLLGATE_API_TOKEN)"))?;
    if !(args.control.starts_with("http://") || args.control.starts_with("https://")) {
        bail!(
            "--control: {:?} is not an http:// or https:// URL",
            args.control
        );
    }
    let tls = client_tls(&[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let client = ControlClient::new(&args.control, &token, tls);
        let call = |method: Method, path: String, body: Option<serde_json::Value>| {
            let client = client.clone();
            async move {
                let (status, body) = client
                    .call(
                        method,
                        &path,
                        body.map(|b| b.to_string().into_bytes()),
                        1 << 20,
                        TIMEOUT,
                    )
                    .await
                    .map_err(|e| anyhow!("--control: {e}"))?;
                let value: serde_json::Value =
                    serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                if !status.is_success() {
                    let why = value["message"]
                        .as_str()
                        .or(value["error"].as_str())
                        .map_or_else(
                            || String::from_utf8_lossy(&body).into_owned(),
                            str::to_owned,
                        );
                    let field = value["field"].as_str().filter(|f| !f.is_empty());
                    return Err(match (status, field) {
                        (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, _) => {
                            anyhow!("--api-token: the control plane answered {status}: {why}")
                        }
                        (_, Some(f)) => anyhow!("--{f}: {why}"),
                        _ => anyhow!("the control plane answered {status}: {why}"),
                    });
                }
                Ok(value)
            }
        };
        match args.command {
            TokenCommand::Create { role, name } => {
                let made = call(
                    Method::POST,
                    "/tollgate/tokens".into(),
                    Some(serde_json::json!({"role": role, "name": name})),
                )
                .await?;
                let secret = made["token"]
                    .as_str()
                    .ok_or_else(|| anyhow!("the control plane's answer has no token: {made}"))?;
                eprintln!(
                    "created {role} token {} ({name}); it is shown once, keep it",
                    made["id"]
                );
                println!("{secret}");
            }
            TokenCommand::List => {
                let list = call(Method::GET, "/tollgate/tokens".into(), None).await?;
                for t in list.as_array().map(Vec::as_slice).unwrap_or_default() {
                    println!(
                        "{}\t{}\t{}",
                        t["id"],
                        t["role"].as_str().unwrap_or(""),
                        t["name"].as_str().unwrap_or("")
                    );
                }
            }
            TokenCommand::Revoke { id } => {
                call(Method::DELETE, format!("/tollgate/tokens/{id}"), None).await?;
                eprintln!("token {id} revoked");
            }
        }
        Ok(())
    })
}
