//! Debian's nginx, started on free loopback ports in a private directory and stopped on drop:
//! as the Gcore edge (`testdata/nginx/gcore-edge.conf.in`), or with any other configuration.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, repo_root, tools, TempDir};

/// A running nginx.
pub struct Nginx {
    child: Child,
    /// Its private directory (prefix, logs, cache, generated files).
    pub dir: PathBuf,
    /// Removes the directory once nginx has stopped (fields drop after `Drop::drop`).
    _tmp: TempDir,
}

impl Nginx {
    /// Starts nginx with the configuration `make_conf(dir)` returns, and waits until every port
    /// in `ports` accepts connections. Retries with a fresh directory when it fails to start.
    pub fn start(ports: &[u16], make_conf: impl Fn(&Path) -> String) -> Nginx {
        let nginx = tools::require("nginx", "nginx");
        let mut last_err = String::new();
        for attempt in 0..3 {
            let tmp = TempDir::new(&format!("nginx-{attempt}"));
            let dir = tmp.0.clone();
            let conf_path = dir.join("nginx.conf");
            std::fs::write(&conf_path, make_conf(&dir)).expect("writing nginx.conf");
            let child = Command::new(&nginx)
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(&conf_path)
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-g")
                .arg("daemon off;")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawning nginx");
            let mut n = Nginx {
                child,
                dir,
                _tmp: tmp,
            };
            if n.wait_ready(ports) {
                return n;
            }
            last_err = std::fs::read_to_string(n.dir.join("error.log")).unwrap_or_default();
        }
        panic!("nginx did not start: {last_err}");
    }

    fn wait_ready(&mut self, ports: &[u16]) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if ports
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// nginx's version line, for test output.
    pub fn version() -> String {
        let nginx = tools::require("nginx", "nginx");
        let out = Command::new(nginx).arg("-v").output().expect("nginx -v");
        String::from_utf8_lossy(&out.stderr).trim().to_owned()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master stops its workers too; SIGKILL would orphan them on our ports.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's nginx as the Gcore edge, with a stand-in origin.
pub struct GcoreEdge {
    _nginx: Nginx,
    /// Port of the server whose tokens leave out the client address (secure_key type 2).
    pub port_type2: u16,
    /// Port of the server whose tokens include the client address (type 0).
    pub port_type0: u16,
    /// Port of the stand-in origin.
    pub port_origin: u16,
}

impl GcoreEdge {
    /// Starts nginx with `key` as the secure-link key.
    pub fn start(key: &str) -> GcoreEdge {
        let (p2, p0, po) = (free_port(), free_port(), free_port());
        let template =
            std::fs::read_to_string(repo_root().join("testdata/nginx/gcore-edge.conf.in"))
                .expect("reading testdata/nginx/gcore-edge.conf.in");
        let nginx = Nginx::start(&[p2, p0, po], |dir| {
            template
                .replace("@PORT2@", &p2.to_string())
                .replace("@PORT0@", &p0.to_string())
                .replace("@OPORT@", &po.to_string())
                .replace("@ORIGIN@", &format!("127.0.0.1:{po}"))
                .replace("@PREFIX@", &dir.display().to_string())
                .replace("@KEY@", key)
        });
        GcoreEdge {
            _nginx: nginx,
            port_type2: p2,
            port_type0: p0,
            port_origin: po,
        }
    }

    /// nginx's version line, for test output.
    pub fn version() -> String {
        Nginx::version()
    }
}
