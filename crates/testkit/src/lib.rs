//! Test helpers shared by the crates' integration tests: the real peers (Debian's nginx,
//! php, python3, openssl), a raw HTTP client that sends targets byte for byte, and a seeded
//! random generator so that any failure can be replayed.

pub mod api;
pub mod gen;
pub mod http;
pub mod nginx;
pub mod origin;
pub mod pg;
pub mod rng;
pub mod tools;
pub mod vectors;

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A temporary directory, removed with what it holds when this is dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new empty directory under the system's temporary directory; `tag` shows in its name.
    pub fn new(tag: &str) -> TempDir {
        // Tests run in parallel in one process: a counter keeps their directories apart.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("tollgate-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("creating a temp dir");
        TempDir(p)
    }

    /// `name` inside the directory, as a string (for command lines).
    pub fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free loopback TCP port. The port is released before use, so a rare collision is possible;
/// launchers retry on a failed start.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

/// The current Unix time.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `{path}?md5=...&expires={expires}` signed with the tests' key `secret_key`, bound to `ip`
/// when given. `path` is used as it is, so it must be in nginx's normal form.
pub fn link(path: &str, expires: i64, ip: Option<&str>) -> String {
    let key = tollgate_token::Key::new("secret_key").expect("valid test key");
    let ip = ip.map(|s| s.parse().expect("test address"));
    let t = tollgate_token::sign(&key, expires, path.as_bytes(), ip).expect("signable test link");
    format!("{path}?md5={t}&expires={expires}")
}
