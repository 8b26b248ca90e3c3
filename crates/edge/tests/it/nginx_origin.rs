//! Debian's nginx as the origin, serving a 1 GiB file from disk: through the edge, every
//! viewer's copy hashes as the file does (sha256sum of curl's download, both real tools), and
//! twenty concurrent viewers cost the origin the file once (nginx's own access log counts the
//! bytes it sent); the same with the `slice` option, where nginx answers each slice's Range.

use std::io::Write;
use std::process::Command;

use tollgate_edge::EdgeConfig;
use tollgate_testkit::nginx::Nginx;
use tollgate_testkit::origin::pattern;
use tollgate_testkit::tools::require;
use tollgate_testkit::{free_port, link, now, TempDir};

use crate::{resources, RunningEdge};

const HOST: &str = "cdn.example.com";
const LEN: u64 = 1 << 30;

/// nginx serving `DIR/www` on a free port, logging each request's path, status and body bytes.
fn nginx_origin() -> (Nginx, u16) {
    let port = free_port();
    let nginx = Nginx::start(&[port], |dir| {
        let www = dir.join("www");
        std::fs::create_dir_all(&www).unwrap();
        write_film(&www.join("film.bin"));
        let user = if is_root() { "user root;" } else { "" };
        format!(
            "{user} worker_processes 1; pid {d}/nginx.pid; events {{ worker_connections 256; }}
             http {{
               log_format bytes '$request_uri $status $body_bytes_sent';
               access_log {d}/access.log bytes;
               sendfile on; tcp_nopush off;
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
               fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
               server {{ listen 127.0.0.1:{port}; root {d}/www; }}
             }}",
            d = dir.display()
        )
    });
    (nginx, port)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// 1 GiB of the test pattern (period 251, so no slice repeats another's bytes).
fn write_film(path: &std::path::Path) {
    if path.exists() {
        return;
    }
    let block: Vec<u8> = (0..251 * 4096).map(pattern).collect();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut left = LEN;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
}

fn sha256(path: &std::path::Path) -> String {
    let out = Command::new(require("sha256sum", "coreutils"))
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Downloads `target` from the edge with curl into sha256sum: the hash and the status.
fn viewer(port: u16, target: &str) -> (String, String) {
    let curl = require("curl", "curl");
    let script = format!(
        "{} -sS -o /dev/stdout -w '%{{stderr}}%{{http_code}}' -H 'Host: {HOST}' 'http://127.0.0.1:{port}{target}' | sha256sum",
        curl.display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    let hash = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned();
    (hash, String::from_utf8_lossy(&out.stderr).trim().to_owned())
}

/// Body bytes nginx sent, by its access log.
fn sent_bytes(nginx: &Nginx) -> u64 {
    std::fs::read_to_string(nginx.dir.join("access.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn viewers_cost_the_origin_the_file_once(viewers: usize, slice: bool) {
    let (nginx, port) = nginx_origin();
    let want = sha256(&nginx.dir.join("www/film.bin"));
    let dir = TempDir::new("nginx-origin");
    let mut res: serde_json::Value =
        serde_json::from_str(&resources(port, &[(HOST, Some(2))])).unwrap();
    if slice {
        res[0]["options"]["slice"] = serde_json::json!({"enabled": true});
    }
    let e = RunningEdge::start(
        &res.to_string(),
        EdgeConfig {
            disk: Some((dir.0.clone(), 2 << 30)),
            ..EdgeConfig::default()
        },
    );
    let target = link("/film.bin", now() + 600, None);
    let results: Vec<(String, String)> = std::thread::scope(|s| {
        let all: Vec<_> = (0..viewers)
            .map(|_| s.spawn(|| viewer(e.port, &target)))
            .collect();
        all.into_iter().map(|v| v.join().unwrap()).collect()
    });
    for (i, (hash, status)) in results.iter().enumerate() {
        assert_eq!(status, "200", "viewer {i}");
        assert_eq!(hash, &want, "viewer {i}: the bytes differ from the file");
    }
    assert_eq!(
        sent_bytes(&nginx),
        LEN,
        "{viewers} viewers cost the origin the file exactly once"
    );
    // A range across a slice boundary, and the last byte, from the stored slices.
    let r = e.get(HOST, &target, &[("Range", "bytes=4194300-4194310")]);
    assert_eq!((r.status, r.header("cache")), (206, Some("HIT")));
    assert!(r
        .body
        .iter()
        .zip(4_194_300u64..)
        .all(|(b, o)| *b == pattern(o)));
    let r = e.get(HOST, &target, &[("Range", "bytes=-1")]);
    assert_eq!(r.body, [pattern(LEN - 1)]);
    assert_eq!(sent_bytes(&nginx), LEN);
}

#[test]
fn a_1_gib_file_from_nginx_reaches_twenty_viewers_intact_for_one_origin_fetch() {
    viewers_cost_the_origin_the_file_once(20, false);
}

#[test]
fn with_the_slice_option_nginx_answers_each_slice_once() {
    // Five: the sharing is the same code; twenty would double the test's minute.
    viewers_cost_the_origin_the_file_once(5, true);
}
