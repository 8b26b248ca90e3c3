//! The seed's own PHP, Python and OpenSSL generators are real clients: their links must verify
//! and `tollgate sign` must print the same link for the same inputs.

use std::process::Command;

use tollgate_testkit::{repo_root, tools};

use crate::{out, tollgate};

fn run_script(interpreter: &str, package: &str, script: &str) -> String {
    let exe = tools::require(interpreter, package);
    let o = Command::new(exe)
        .arg(repo_root().join("testdata/seed-scripts").join(script))
        .output()
        .expect("running the seed script");
    assert!(
        o.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// Checks a seed link: it verifies, and `tollgate sign` reproduces it byte for byte.
fn check_link(url: &str, path: &str, ip: Option<&str>) {
    let expires = url.rsplit("expires=").next().expect("expires in link");
    let mut verify = vec!["verify", "--key", "secret_key", "--json", url];
    let mut sign = vec![
        "sign",
        "--key",
        "secret_key",
        "--path",
        path,
        "--expires",
        expires,
        "--base",
        "http://cdn.site.com",
    ];
    if let Some(ip) = ip {
        verify.extend(["--ip", ip]);
        sign.extend(["--ip", ip]);
    }
    let v = tollgate(&verify, None);
    assert!(v.status.success(), "{url}: {}", out(&v));
    assert!(out(&v).contains("\"status\":200"), "{}", out(&v));
    assert_eq!(out(&tollgate(&sign, None)), url);
    // Bound links fail from another address; unbound ones do not depend on it.
    if ip.is_some() {
        let other = tollgate(
            &["verify", "--key", "secret_key", "--ip", "1.2.3.5", url],
            None,
        );
        assert_eq!(other.status.code(), Some(1));
    }
}

#[test]
fn php_scripts() {
    let live = "/live/133529_2/chunklist.m3u8";
    check_link(
        &run_script("php", "php-cli", "gcore-ip.php"),
        live,
        Some("1.2.3.4"),
    );
    check_link(&run_script("php", "php-cli", "gcore-noip.php"), live, None);
}

#[test]
fn python_scripts() {
    check_link(
        &run_script("python3", "python3", "gcore-ip.py"),
        "/images/1.jpg",
        Some("1.2.3.4"),
    );
    check_link(
        &run_script("python3", "python3", "gcore-noip.py"),
        "/images/1.jpg",
        None,
    );
}

#[test]
fn openssl_pipelines() {
    tools::require("openssl", "openssl");
    for (script, ip) in [
        ("gcore-openssl-ip.sh", Some("1.2.3.4")),
        ("gcore-openssl-noip.sh", None),
    ] {
        let token = run_script("bash", "bash", script);
        let mut sign = vec![
            "sign",
            "--key",
            "secret_key",
            "--path",
            "/images/1.jpg",
            "--expires",
            "2147483647",
            "--token-only",
        ];
        if let Some(ip) = ip {
            sign.extend(["--ip", ip]);
        }
        assert_eq!(out(&tollgate(&sign, None)), token, "{script}");
        let link = format!("/images/1.jpg?md5={token}&expires=2147483647");
        let mut verify = vec![
            "verify",
            "--key",
            "secret_key",
            "--now",
            "2147483647",
            &link,
        ];
        if let Some(ip) = ip {
            verify.extend(["--ip", ip]);
        }
        assert!(tollgate(&verify, None).status.success(), "{script}");
    }
}
