//! PostgreSQL for the tests: a private cluster that the tests start themselves, and throwaway
//! databases in it.
//!
//! Nothing of the machine is used. The first test of a process that needs PostgreSQL runs
//! `initdb` into a directory under `target/tollgate-pg/`, with trust authentication, a free
//! loopback port and a socket directory of its own, and starts `postgres` there; every later
//! test of the process shares it. `scripts/test` goes one better and starts one cluster for the
//! whole run (the `with-test-pg` binary), handing it to every test binary through
//! `TOLLGATE_TEST_PG`.
//!
//! The server is watched by a small shell of its own session, whose standard input is a pipe
//! held only by the process that started it. When that process ends in any way (tests done, a
//! panic, Ctrl-C, `kill -9`), the pipe closes, the watcher stops the server and removes its
//! directory: no cluster is left running.
//!
//! `initdb` refuses to run as root, so as root the cluster runs as the `postgres` user that
//! Debian's package creates (which is how CI runs). `TOLLGATE_TEST_PG=postgres://user@host:port`
//! points the tests at an existing server instead. A test that needs PostgreSQL and cannot have
//! it fails, saying why: it never skips.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

/// The environment variable that names an existing server (`postgres://user@host:port`, no
/// database) for the tests to use instead of their own cluster.
pub const SERVER_ENV: &str = "TOLLGATE_TEST_PG";

/// The server the tests use: `TOLLGATE_TEST_PG` when set, otherwise this process's private
/// cluster, started on first use.
pub fn server_url() -> String {
    if let Some(url) = std::env::var(SERVER_ENV).ok().filter(|u| !u.is_empty()) {
        return url;
    }
    static OWN: OnceLock<Cluster> = OnceLock::new();
    OWN.get_or_init(|| Cluster::start().unwrap_or_else(|e| panic!("{e}")))
        .url
        .clone()
}

/// A running private cluster. It stops, and its directory goes, when this is dropped or when
/// the process that started it ends.
pub struct Cluster {
    /// `postgres://postgres@127.0.0.1:PORT`, without a database.
    pub url: String,
    /// The data directory (removed when the cluster stops).
    pub dir: PathBuf,
    watcher: Child,
    // Held, never written: its closing is the watcher's signal to stop the server.
    stop_pipe: Option<ChildStdin>,
}

/// How long a fresh cluster may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

impl Cluster {
    /// Runs `initdb` and starts the server; the error says what to install or what failed.
    pub fn start() -> Result<Cluster, String> {
        let bin = pg_bin_dir()?;
        let run_as = unprivileged_user()?;
        // A port that was free a moment ago; a rare collision shows as a failed start, retried
        // with a new cluster (the watcher of a failed one removes its directory). The first
        // error is the one reported.
        let mut first_error = None;
        for _ in 0..3 {
            match Self::start_once(&bin, run_as.as_ref()) {
                Ok(c) => return Ok(c),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_default())
    }

    fn start_once(bin: &Path, run_as: Option<&User>) -> Result<Cluster, String> {
        let dir = cluster_dir(run_as)?;
        let data = dir.join("data");
        let sock = dir.join("sock");
        std::fs::create_dir_all(&sock).map_err(|e| format!("creating {}: {e}", sock.display()))?;
        // Other local users cannot reach the socket, the log or the password file, and over
        // TCP they would need the password: a trust-auth superuser on a loopback port would
        // let any of them run programs as the cluster's user (COPY ... TO PROGRAM).
        let password = random_hex()?;
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, &password).map_err(|e| format!("{}: {e}", pwfile.display()))?;
        for p in [&dir, &sock, &pwfile] {
            let mode = if p == &pwfile { 0o600 } else { 0o700 };
            std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .map_err(|e| format!("chmod {}: {e}", p.display()))?;
            if let Some(user) = run_as {
                std::os::unix::fs::chown(p, Some(user.uid), Some(user.gid))
                    .map_err(|e| format!("chown {} to {}: {e}", p.display(), user.name))?;
            }
        }

        let mut initdb = as_user(run_as, &bin.join("initdb"));
        initdb
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .args([
                "--username=postgres",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .arg("--pgdata")
            .arg(&data);
        let out = initdb
            .output()
            .map_err(|e| format!("running {}/initdb: {e}", bin.display()))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!(
                "initdb failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }

        let port = crate::free_port();
        Self::run(bin, run_as, &dir, &data, &sock, port, &password)
    }

    fn run(
        bin: &Path,
        run_as: Option<&User>,
        dir: &Path,
        data: &Path,
        sock: &Path,
        port: u16,
        password: &str,
    ) -> Result<Cluster, String> {
        // The watcher: starts the server, waits for its standard input to close (or for the
        // server to exit), then stops the server and removes the directory. It lives in its own
        // session, so a Ctrl-C meant for the tests does not kill it before it has cleaned up.
        let mut postgres = as_user(run_as, &bin.join("postgres"));
        postgres
            .arg("-D")
            .arg(data)
            .arg("-k")
            .arg(sock)
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=300"]);
        let mut argv = vec![postgres.get_program().to_owned()];
        argv.extend(postgres.get_args().map(|a| a.to_owned()));
        // (A background job's standard input is /dev/null unless redirected: the pipe goes
        // through fd 3.)
        let script = r#"
            exec 3<&0
            "$@" >"$LOG" 2>&1 &
            pid=$!
            ( cat <&3 >/dev/null; kill -INT "$pid" 2>/dev/null ) &
            wait "$pid"
            # A server that stopped by itself leaves the reader waiting: the pipe's closing still
            # ends it, and the directory goes either way.
            rm -rf "$DIR"
            echo stopped
        "#;
        let mut watcher = Command::new("setsid")
            .args(["sh", "-c", script, "tollgate-test-pg"])
            .args(argv)
            .env("LOG", dir.join("server.log"))
            .env("DIR", dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the PostgreSQL watcher (setsid, sh): {e}"))?;
        let stop_pipe = watcher.stdin.take();
        let url = format!("postgres://postgres:{password}@127.0.0.1:{port}");
        let mut cluster = Cluster {
            url,
            dir: dir.to_owned(),
            watcher,
            stop_pipe,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match Client::connect(&format!("{}/postgres", cluster.url), NoTls) {
                // Ours, not another server that took the port first.
                Ok(mut c) => {
                    let theirs: Option<String> = c
                        .query_one("SHOW data_directory", &[])
                        .ok()
                        .map(|r| r.get(0));
                    let ours = data.canonicalize().unwrap_or_else(|_| data.to_owned());
                    if theirs.as_deref().map(Path::new) == Some(ours.as_path()) {
                        return Ok(cluster);
                    }
                    cluster.stop();
                    return Err(format!(
                        "port {port} answers for another PostgreSQL ({theirs:?}, not {})",
                        ours.display()
                    ));
                }
                Err(e) => {
                    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                    if let Ok(Some(status)) = cluster.watcher.try_wait() {
                        return Err(format!("postgres exited ({status}): {}", log.trim()));
                    }
                    if Instant::now() > deadline {
                        cluster.stop();
                        return Err(format!(
                            "postgres on port {port} did not accept connections within \
                             {START_TIMEOUT:?}: {e}\n{}",
                            log.trim()
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    /// Stops the server and waits until its directory is gone. Dropping does the same.
    pub fn stop(&mut self) {
        self.stop_pipe.take();
        if let Some(out) = self.watcher.stdout.as_mut() {
            let _ = BufReader::new(out).read_line(&mut String::new());
        }
        let _ = self.watcher.wait();
        // The directory still belongs to us (or to the user we ran as); the watcher removed it.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The directory holding `initdb` and `postgres`: `TOLLGATE_PG_BIN`, the `PATH`, or the newest
/// of Debian's `/usr/lib/postgresql/<major>/bin`.
fn pg_bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("TOLLGATE_PG_BIN") {
        return Ok(dir.into());
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(d) = on_path.into_iter().find(|d| d.join("initdb").is_file()) {
        return Ok(d);
    }
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .max();
    newest.map(|(_, bin)| bin).ok_or_else(|| {
        "PostgreSQL's initdb was not found (PATH, /usr/lib/postgresql/*/bin, TOLLGATE_PG_BIN): \
         install Debian's `postgresql` package (scripts/install-test-deps does), or point \
         TOLLGATE_TEST_PG=postgres://user@host:port at a server"
            .to_owned()
    })
}

struct User {
    name: String,
    uid: u32,
    gid: u32,
}

/// `None` when we are not root; as root, the `postgres` user (initdb refuses root).
fn unprivileged_user() -> Result<Option<User>, String> {
    let id = |flag: &str, who: Option<&str>| -> Option<u32> {
        let out = Command::new("id").arg(flag).args(who).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    if id("-u", None) != Some(0) {
        return Ok(None);
    }
    let name = "postgres";
    match (id("-u", Some(name)), id("-g", Some(name))) {
        (Some(uid), Some(gid)) => Ok(Some(User {
            name: name.into(),
            uid,
            gid,
        })),
        _ => Err(
            "running as root, and initdb refuses root: the `postgres` user (created by Debian's \
             `postgresql` package) is needed to run the tests' cluster"
                .into(),
        ),
    }
}

fn as_user(user: Option<&User>, program: &Path) -> Command {
    match user {
        None => Command::new(program),
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={}", u.uid))
                .arg(format!("--regid={}", u.gid))
                .arg("--clear-groups")
                .arg(program);
            c
        }
    }
}

/// A new directory for one cluster: under `target/tollgate-pg/`, or, when the user the
/// cluster runs as cannot reach that, under the system's temporary directory.
fn cluster_dir(run_as: Option<&User>) -> Result<PathBuf, String> {
    let unique = unique_suffix();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("target"));
    let target = target.canonicalize().unwrap_or(target);
    let mut bases = vec![target.join("tollgate-pg")];
    bases.push(std::env::temp_dir().join("tollgate-pg"));
    for base in bases {
        let dir = base.join(&unique);
        if std::fs::create_dir_all(&dir).is_err() {
            continue;
        }
        if let Some(u) = run_as {
            // Every directory above must let the server's user through.
            let reachable = as_user(Some(u), Path::new("test"))
                .arg("-x")
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            if !reachable {
                let _ = std::fs::remove_dir(&dir);
                continue;
            }
        }
        return Ok(dir);
    }
    Err("no directory for the test cluster (target/tollgate-pg or the temporary directory)".into())
}

/// `{pid}_{random}`: unique on this machine for a database or a directory name.
fn unique_suffix() -> String {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64);
    format!(
        "{}_{}",
        std::process::id(),
        crate::rng::Rng::new(seed).next_u64() % 1_000_000_000
    )
}

/// 32 hex digits from the system's random source.
fn random_hex() -> Result<String, String> {
    use std::io::Read as _;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A database created for one test and dropped when this goes out of scope.
pub struct TempDb {
    name: String,
    /// Connection URL of the new database.
    pub url: String,
}

fn admin() -> Client {
    let url = format!("{}/postgres", server_url());
    Client::connect(&url, NoTls)
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} (the tests' server): {e}"))
}

impl TempDb {
    /// Creates an empty database with a unique name.
    pub fn create(tag: &str) -> TempDb {
        let name = format!("tollgate_test_{tag}_{}", unique_suffix());
        admin()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("CREATE DATABASE");
        TempDb {
            url: format!("{}/{name}", server_url()),
            name,
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = admin().batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}
