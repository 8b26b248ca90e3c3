//! Finding the external programs the peer tests run.
//!
//! A missing tool fails the test with a message saying how to install it; it never skips,
//! because a test that silently skips under CI proves nothing. `scripts/test` installs them.

use std::path::PathBuf;

/// The path of `name` on `PATH` (or in `/usr/sbin`), or a panic naming the Debian package.
pub fn require(name: &str, package: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push("/usr/sbin".into());
    dirs.push("/usr/local/sbin".into());
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`{name}` is required by this test and was not found; install Debian's `{package}` \
         (scripts/test does: apt-get install -y {package})"
    );
}

/// The Python of the tests' virtual environment (`tests/sdk/.venv`, made by
/// `scripts/install-test-deps` from `tests/sdk/requirements.txt`: Gcore's SDK, `mmdb-writer`);
/// a test that needs it fails without it, never skips.
pub fn test_python() -> PathBuf {
    let py = crate::repo_root().join("tests/sdk/.venv/bin/python");
    assert!(
        py.is_file(),
        "{} is missing: run scripts/install-test-deps (it installs Gcore's SDK and mmdb-writer \
         from tests/sdk/requirements.txt)",
        py.display()
    );
    py
}

/// Writes a MaxMind-format country database at `path` (with `mmdb-writer`): each network
/// (CIDR text) of `networks` in the country given (ISO 3166-1 alpha-2).
pub fn write_country_db(path: &std::path::Path, networks: &[(&str, &str)]) {
    let mut program = String::from(
        "import sys\nfrom mmdb_writer import MMDBWriter\nfrom netaddr import IPSet\n\
         w = MMDBWriter(ip_version=6, database_type='GeoLite2-Country', ipv4_compatible=True)\n",
    );
    for (net, country) in networks {
        program.push_str(&format!(
            "w.insert_network(IPSet(['{net}']), {{'country': {{'iso_code': '{country}'}}}})\n"
        ));
    }
    program.push_str("w.to_db_file(sys.argv[1])\n");
    let out = std::process::Command::new(test_python())
        .arg("-c")
        .arg(&program)
        .arg(path)
        .output()
        .expect("running the tests' Python");
    assert!(
        out.status.success(),
        "writing the country database failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a link-generator program of `lang` (`php`, `python`, `node`, or `sh` with OpenSSL) fed
/// on stdin; returns its trimmed output, or fails the test with its stderr and the program.
pub fn run_snippet(lang: &str, program: &str) -> String {
    use std::io::Write;
    let (bin, package, args): (&str, &str, &[&str]) = match lang {
        "php" => ("php", "php-cli", &[]),
        "python" => ("python3", "python3", &["-"]),
        "node" => ("node", "nodejs", &["-"]),
        _ => {
            require("openssl", "openssl");
            ("sh", "dash", &["-s"])
        }
    };
    let mut child = std::process::Command::new(require(bin, package))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting the interpreter");
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(program.as_bytes())
            .expect("writing the program");
    }
    let out = child.wait_with_output().expect("running the program");
    assert!(
        out.status.success(),
        "{lang}: {}\n{program}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
