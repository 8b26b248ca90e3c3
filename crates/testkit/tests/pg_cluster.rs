//! The tests' private PostgreSQL cluster: it serves, it is shared, and it leaves nothing behind,
//! however the process that started it ends.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};
use tollgate_testkit::pg::{Cluster, SERVER_ENV};

fn accepts_url(url: &str) -> Result<(), postgres::Error> {
    Client::connect(url, NoTls).map(drop)
}

fn accepts(url: &str) -> bool {
    Client::connect(&format!("{url}/postgres"), NoTls)
        .and_then(|mut c| c.simple_query("SELECT 1"))
        .is_ok()
}

fn until_gone(url: &str, dir: &std::path::Path) -> Duration {
    let t = Instant::now();
    while accepts(url) || dir.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the cluster at {url} ({}) is still there",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    t.elapsed()
}

#[test]
fn a_started_cluster_serves_and_stops_with_its_directory_removed() {
    let mut c = Cluster::start().expect("private cluster");
    assert!(accepts(&c.url), "{} accepts connections", c.url);
    assert!(
        c.url.starts_with("postgres://postgres:") && c.url.contains("@127.0.0.1:"),
        "{}",
        c.url
    );
    // Over TCP the superuser needs the cluster's password: another local user cannot get in.
    let port = c.url.rsplit(':').next().unwrap();
    for wrong in [
        format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        format!("postgres://postgres:guess@127.0.0.1:{port}/postgres"),
    ] {
        assert!(accepts_url(&wrong).is_err(), "{wrong} was let in");
    }
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&c.dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o700,
        "the cluster's directory (socket, log, password) is private"
    );
    assert!(c.dir.join("data/PG_VERSION").is_file());
    c.stop();
    assert!(!accepts(&c.url) && !c.dir.exists());
}

#[test]
fn a_cluster_whose_process_is_killed_is_stopped_and_removed() {
    let mut run = Command::new(env!("CARGO_BIN_EXE_with-test-pg"))
        .args(["sh", "-c", "echo \"$$ $TOLLGATE_TEST_PG\"; exec sleep 120"])
        .env_remove(SERVER_ENV)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("with-test-pg");
    let mut line = String::new();
    BufReader::new(run.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the command's first line");
    let mut said = String::new();
    BufReader::new(run.stderr.take().expect("stderr"))
        .read_line(&mut said)
        .expect("with-test-pg's line");
    let (sleeper, url) = line.trim().split_once(' ').expect("pid and url");
    let dir = said
        .trim()
        .rsplit_once(" (")
        .and_then(|(_, d)| d.strip_suffix(')'))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("a directory in {said:?}"));
    assert!(accepts(url), "the command is given a running server: {url}");
    assert!(dir.is_dir(), "{}", dir.display());

    run.kill().expect("kill -9");
    let _ = run.wait();
    // The command is still running: the cluster must go with its owner, not with the command.
    let took = until_gone(url, &dir);
    let _ = Command::new("kill").arg(sleeper).status();
    eprintln!("cluster gone {took:?} after kill -9 of its process");
}

#[test]
fn with_test_pg_passes_on_the_commands_status() {
    let status = Command::new(env!("CARGO_BIN_EXE_with-test-pg"))
        .args(["sh", "-c", "exit 3"])
        .env(SERVER_ENV, "postgres://nobody@127.0.0.1:1")
        .status()
        .expect("with-test-pg");
    assert_eq!(status.code(), Some(3));
}
