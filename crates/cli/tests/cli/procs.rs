//! Running `tollgate control`, `serve` and `edge` as processes: their output lines arrive on a
//! channel so a test can wait for "listening on" and read the ports; the process is killed
//! when the handle is dropped.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use tollgate_testkit::api::Api;

/// A running `tollgate` process.
pub struct Proc {
    pub child: Child,
    lines: Receiver<String>,
    /// Every line seen so far.
    pub seen: Vec<String>,
}

fn pump(r: impl Read + Send + 'static, tx: std::sync::mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
}

impl Proc {
    /// Starts `tollgate args...` with stdout and stderr merged into one line channel.
    pub fn spawn(args: &[&str]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(args)
            .env_remove("TOLLGATE_API_TOKEN")
            .env_remove("TOLLGATE_EDGE_TOKEN")
            .env_remove("TOLLGATE_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running tollgate");
        let (tx, rx) = channel();
        pump(child.stdout.take().expect("stdout"), tx.clone());
        pump(child.stderr.take().expect("stderr"), tx);
        Proc {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits (10 s at most) for a line containing `marker`; returns the text after it.
    pub fn wait_for(&mut self, marker: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Some((_, rest)) = line.split_once(marker) {
                        return rest.to_owned();
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no line with {marker:?}; output so far:\n{}",
            self.seen.join("\n")
        );
    }

    /// The port in the line with `marker` (`...marker 127.0.0.1:PORT...`).
    pub fn port_after(&mut self, marker: &str) -> u16 {
        let rest = self.wait_for(marker);
        let addr = rest
            .trim_start_matches("http://")
            .split(['/', ' '])
            .next()
            .unwrap_or_default()
            .to_owned();
        addr.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {rest:?}"))
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    /// SIGTERM, then waits (10 s at most, then SIGKILL) for the process to end.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub use tollgate_testkit::TempDir;

/// The API token the tests start control planes with.
pub const TOKEN: &str = "tg_test_token_0123456789abcdef";

/// `tollgate control` on a free port (or the `--listen` in `extra`, for a control plane that
/// edges must find again after a restart) with its data in `data` (or on PostgreSQL with
/// `--database`); returns it and its API.
pub fn control(extra: &[&str]) -> (Proc, Api) {
    let mut args = vec!["control", "--api-token", TOKEN];
    if !extra.contains(&"--listen") {
        args.extend(["--listen", "127.0.0.1:0"]);
    }
    args.extend_from_slice(extra);
    let mut p = Proc::spawn(&args);
    let port = p.port_after("Panel and API: ");
    (
        p,
        Api {
            port,
            token: TOKEN.into(),
        },
    )
}

/// `tollgate serve` with its data under `data`: the process, the API, and the edge's port.
pub fn serve(data: &TempDir) -> (Proc, Api, u16) {
    let mut p = Proc::spawn(&[
        "serve",
        "--data",
        &data.path("d"),
        "--control-listen",
        "127.0.0.1:0",
        "--edge-listen",
        "127.0.0.1:0",
        "--api-token",
        TOKEN,
    ]);
    let port = p.port_after("Panel and API: ");
    let edge = p.port_after("listening on ");
    let api = Api {
        port,
        token: TOKEN.into(),
    };
    (p, api, edge)
}

/// `tollgate edge` following the control plane at `control_port`.
pub fn edge(control_port: u16, edge_token: &str, state_dir: &str) -> (Proc, u16) {
    let url = format!("http://127.0.0.1:{control_port}");
    let mut p = Proc::spawn(&[
        "edge",
        "--control",
        &url,
        "--edge-token",
        edge_token,
        "--state-dir",
        state_dir,
        "--listen",
        "127.0.0.1:0",
    ]);
    let port = p.port_after("listening on ");
    (p, port)
}

/// Calls `f` every 2 ms until it returns true; returns the time it took, or panics after
/// `limit`.
pub fn until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if f() {
            return start.elapsed();
        }
        if start.elapsed() > limit {
            panic!("{what}: not within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
