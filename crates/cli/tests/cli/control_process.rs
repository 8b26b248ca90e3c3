//! The control plane as processes: `tollgate serve` end to end, changes enforced by running
//! edges within a second (measured), purges, key rotation, a crash right after a 200, two
//! edges on one control plane, an edge restarting while the control plane is down, and two
//! control nodes on one PostgreSQL database.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::{json, Value};
use tollgate_testkit::api::Api;
use tollgate_testkit::http::request;
use tollgate_testkit::origin::TestOrigin;

use crate::procs::{control, edge, until, TempDir, TOKEN};

const HOST: &str = "cdn.example.com";

fn get(port: u16, from: Ipv4Addr, host: &str, target: &str) -> u16 {
    request(from, port, "GET", target.as_bytes(), &[("Host", host)])
        .map(|r| r.status)
        .unwrap_or(0)
}

fn resource(origin: u16, kind: u8) -> Value {
    json!({"cname": HOST, "origin": format!("127.0.0.1:{origin}"), "originProtocol": "HTTP",
           "options": {"secure_key": {"enabled": true, "key": "secret_key", "type": kind}}})
}

fn create(api: &Api, body: &Value) -> u64 {
    let (status, r) = api.call("POST", "/cdn/resources", Some(body));
    assert_eq!(status, 201, "{r}");
    r["id"].as_u64().unwrap()
}

fn sign(api: &Api, id: u64, path: &str, ip: Option<&str>) -> String {
    let mut req = json!({"path": path, "lifetime": 300});
    if let Some(ip) = ip {
        req["ip"] = json!(ip);
    }
    let (status, r) = api.call("POST", &format!("/cdn/resources/{id}/sign"), Some(&req));
    assert_eq!(status, 200, "{r}");
    let url = r["url"].as_str().unwrap();
    url.strip_prefix(&format!("http://{HOST}"))
        .unwrap()
        .to_owned()
}

/// An edge token made as an operator makes one: `tollgate token create --role edge`.
fn edge_token(api: &Api, name: &str) -> String {
    let control = format!("http://127.0.0.1:{}", api.port);
    let o = crate::tollgate(
        &[
            "token",
            "create",
            "--control",
            &control,
            "--api-token",
            &api.token,
            "--role",
            "edge",
            "--name",
            name,
        ],
        None,
    );
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{said}");
    assert!(said.contains("created edge token"), "{said}");
    let token = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    // Listed by name and role, never with the token itself.
    let list = crate::tollgate(
        &[
            "token",
            "list",
            "--control",
            &control,
            "--api-token",
            &api.token,
        ],
        None,
    );
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.ends_with(&format!("\tedge\t{name}"))),
        "{listed}"
    );
    assert!(!listed.contains(&token), "{listed}");
    token
}

#[test]
fn token_commands_name_what_is_wrong() {
    let data = TempDir::new("token-cmd");
    let (_ctl, api) = control(&["--data", &data.path("d")]);
    let control = format!("http://127.0.0.1:{}", api.port);
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "token",
                "create",
                "--role",
                "edge",
                "--name",
                "e",
                "--api-token",
                "tg_wrong_token_000000",
            ],
            "--api-token",
        ),
        (
            &[
                "token",
                "create",
                "--role",
                "edge",
                "--name",
                " ",
                "--api-token",
                TOKEN,
            ],
            "--name",
        ),
        (
            &["token", "create", "--role", "edge", "--name", "e"],
            "--api-token",
        ),
        (&["token", "revoke", "999", "--api-token", TOKEN], "404"),
    ];
    for (args, said) in cases {
        let mut args = args.to_vec();
        args.extend(["--control", &control]);
        let o = crate::tollgate(&args, None);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(said), "{args:?}: {err}");
    }
    let down = crate::tollgate(
        &[
            "token",
            "list",
            "--api-token",
            TOKEN,
            "--control",
            "http://127.0.0.1:1",
        ],
        None,
    );
    let err = String::from_utf8_lossy(&down.stderr);
    assert!(
        err.contains("--control: http://127.0.0.1:1/tollgate/tokens"),
        "{err}"
    );
}

#[test]
fn serve_runs_control_panel_and_edge_together() {
    let origin = TestOrigin::start();
    let data = TempDir::new("serve");
    let (p, api, edge) = crate::procs::serve(&data);

    // Health and the panel need no token; the API does, in either form.
    assert_eq!(api.call_with("GET", "/healthz", None, &[]).0, 200);
    let (s, page) = api.raw("GET", "/", None, &[]).unwrap();
    assert!(s == 200 && page.contains("/panel/app.js"), "{s} {page}");
    assert_eq!(api.call_with("GET", "/cdn/resources", None, &[]).0, 401);
    assert_eq!(
        api.call_with(
            "GET",
            "/cdn/resources",
            None,
            &[("Authorization", "APIKey wrong_token_000000")]
        )
        .0,
        401
    );
    assert_eq!(
        api.call_with(
            "GET",
            "/cdn/resources",
            None,
            &[("Authorization", &format!("Bearer {TOKEN}"))]
        )
        .0,
        200
    );

    // A new resource is enforced by the running edge within a second.
    let id = create(&api, &resource(origin.port, 0));
    let link = sign(&api, id, "/size/100", Some("127.0.0.1"));
    let took = until(Duration::from_secs(1), "new resource served", || {
        get(edge, Ipv4Addr::LOCALHOST, HOST, &link) == 200
    });
    eprintln!("serve: resource created -> served by the edge in {took:?}");
    assert_eq!(
        get(edge, Ipv4Addr::new(127, 0, 0, 2), HOST, &link),
        403,
        "IP-bound token from another client"
    );
    assert_eq!(get(edge, Ipv4Addr::LOCALHOST, HOST, "/size/100"), 403);
    assert!(
        data.0.join("d/edge/snapshot.json").exists(),
        "the edge saves its snapshot"
    );

    // Purge by URL: the next request goes to the origin again.
    assert_eq!(origin.hits("/size/100"), 1);
    let (s, r) = api.call(
        "POST",
        &format!("/cdn/resources/{id}/purge"),
        Some(&json!({"urls": ["/size/100"]})),
    );
    assert_eq!(s, 201, "{r}");
    until(Duration::from_secs(1), "purge by URL applied", || {
        get(edge, Ipv4Addr::LOCALHOST, HOST, &link) == 200 && origin.hits("/size/100") == 2
    });
    // Purge by pattern, and everything.
    for body in [json!({"paths": ["/size/*"]}), json!({"paths": []})] {
        let before = origin.hits("/size/100");
        assert_eq!(
            api.call("POST", &format!("/cdn/resources/{id}/purge"), Some(&body))
                .0,
            201
        );
        until(Duration::from_secs(1), "purge applied", || {
            get(edge, Ipv4Addr::LOCALHOST, HOST, &link) == 200
                && origin.hits("/size/100") == before + 1
        });
    }

    // Key rotation: the old key keeps verifying while it is the previous key, then stops.
    let patch = json!({"options": {"secure_key": {"enabled": true, "key": "fresh_key_2", "type": 0, "previous_key": "secret_key"}}});
    let (s, r) = api.call("PATCH", &format!("/cdn/resources/{id}"), Some(&patch));
    assert_eq!(s, 200, "{r}");
    let new_link = sign(&api, id, "/size/100", Some("127.0.0.1"));
    assert_ne!(new_link, link);
    until(Duration::from_secs(1), "new key enforced", || {
        get(edge, Ipv4Addr::LOCALHOST, HOST, &new_link) == 200
    });
    assert_eq!(
        get(edge, Ipv4Addr::LOCALHOST, HOST, &link),
        200,
        "the previous key still verifies"
    );
    let drop_old =
        json!({"options": {"secure_key": {"enabled": true, "key": "fresh_key_2", "type": 0}}});
    assert_eq!(
        api.call("PATCH", &format!("/cdn/resources/{id}"), Some(&drop_old))
            .0,
        200
    );
    until(Duration::from_secs(1), "old key dropped", || {
        get(edge, Ipv4Addr::LOCALHOST, HOST, &link) == 403
    });

    // Deleting the resource takes its hostname off the edge.
    assert_eq!(
        api.call("DELETE", &format!("/cdn/resources/{id}"), None).0,
        204
    );
    until(Duration::from_secs(1), "deleted resource gone", || {
        get(edge, Ipv4Addr::LOCALHOST, HOST, &new_link) == 404
    });

    let (_, audit) = api.call("GET", "/tollgate/audit", None);
    let text = audit.to_string();
    assert!(
        text.contains("resource.delete") && text.contains("options.secure_key.key"),
        "{text}"
    );
    assert!(
        !text.contains("secret_key") && !text.contains("fresh_key_2"),
        "keys in the audit log: {text}"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &str| {
        std::fs::metadata(data.0.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(
        mode("d/edge/snapshot.json"),
        0o600,
        "the snapshot holds keys"
    );
    assert_eq!(mode("d"), 0o700, "the data directory holds keys");
    let logs = p.seen.join("\n");
    assert!(
        !logs.contains("secret_key") && !logs.contains("fresh_key_2"),
        "keys in the log: {logs}"
    );
}

#[test]
fn a_change_survives_kill_9_right_after_the_200() {
    let data = TempDir::new("crash");
    let dir = data.path("d");
    let mut ids = Vec::new();
    for round in 0..5 {
        let (mut c, api) = control(&["--data", &dir]);
        let body = json!({"cname": format!("r{round}.example.com"), "origin": "127.0.0.1:9"});
        let (status, r) = api.call("POST", "/cdn/resources", Some(&body));
        assert_eq!(status, 201, "{r}");
        c.kill9();
        ids.push(r["id"].as_u64().unwrap());
    }
    let (_c, api) = control(&["--data", &dir]);
    let (_, list) = api.call("GET", "/cdn/resources", None);
    let got: Vec<u64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(got, ids);
}

#[test]
fn two_edges_follow_one_control_plane_and_restart_without_it() {
    let origin = TestOrigin::start();
    let data = TempDir::new("two-edges");
    let (mut ctl, api) = control(&["--data", &data.path("d")]);
    let token = edge_token(&api, "edges");
    let (_e1, p1) = edge(api.port, &token, &data.path("e1"));
    let (_e2, p2) = edge(api.port, &token, &data.path("e2"));

    let id = create(&api, &resource(origin.port, 2));
    let link = sign(&api, id, "/size/10", None);
    for port in [p1, p2] {
        let took = until(Duration::from_secs(1), "both edges serve", || {
            get(port, Ipv4Addr::LOCALHOST, HOST, &link) == 200
        });
        eprintln!("edge on {port}: resource created -> served in {took:?}");
    }
    // A purge reaches both edges: their next request goes to the origin.
    assert_eq!(origin.hits("/size/10"), 2, "one fetch per edge");
    let (s, r) = api.call(
        "POST",
        &format!("/cdn/resources/{id}/purge"),
        Some(&json!({"urls": ["/size/10"]})),
    );
    assert_eq!(s, 201, "{r}");
    for (n, port) in [(3, p1), (4, p2)] {
        until(Duration::from_secs(1), "purge on every edge", || {
            get(port, Ipv4Addr::LOCALHOST, HOST, &link) == 200 && origin.hits("/size/10") == n
        });
    }

    // Turning the token off is enforced by both.
    let off = json!({"options": {"secure_key": {"enabled": false}}});
    assert_eq!(
        api.call("PATCH", &format!("/cdn/resources/{id}"), Some(&off))
            .0,
        200
    );
    for port in [p1, p2] {
        until(Duration::from_secs(1), "token off", || {
            get(port, Ipv4Addr::LOCALHOST, HOST, "/size/10") == 200
        });
    }
    let on = json!({"options": {"secure_key": {"enabled": true, "key": "secret_key", "type": 2}}});
    assert_eq!(
        api.call("PATCH", &format!("/cdn/resources/{id}"), Some(&on))
            .0,
        200
    );
    for port in [p1, p2] {
        until(Duration::from_secs(1), "token on", || {
            get(port, Ipv4Addr::LOCALHOST, HOST, "/size/10") == 403
        });
    }

    // The control plane goes away; a restarted edge serves its saved snapshot.
    ctl.kill9();
    drop(_e1);
    let (e1, p1) = edge(api.port, &token, &data.path("e1"));
    assert!(
        e1.seen
            .iter()
            .any(|l| l.contains("serving the saved config version")),
        "{:?}",
        e1.seen
    );
    assert_eq!(get(p1, Ipv4Addr::LOCALHOST, HOST, &link), 200);
    assert_eq!(get(p1, Ipv4Addr::LOCALHOST, HOST, "/size/10"), 403);

    // An API token is not an edge token, and an edge token is not an API token.
    let (_ctl, api) = control(&["--data", &data.path("d")]);
    let (s, _) = api.call("GET", "/edge/v1/config", None);
    assert_eq!(s, 403);
    let edge_api = Api {
        port: api.port,
        token: token.clone(),
    };
    assert_eq!(edge_api.call("GET", "/cdn/resources", None).0, 403);
}

#[test]
fn control_nodes_on_one_postgres_database_share_changes() {
    let db = tollgate_testkit::pg::TempDb::create("nodes");
    let origin = TestOrigin::start();
    let data = TempDir::new("pg-nodes");
    let (_a, api_a) = control(&["--database", &db.url]);
    let (_b, api_b) = control(&["--database", &db.url]);
    let token = edge_token(&api_a, "edge-on-b");
    let (_e, port) = edge(api_b.port, &token, &data.path("e"));

    // Made on node A, enforced by an edge that follows node B.
    let id = create(&api_a, &resource(origin.port, 2));
    let link = sign(&api_b, id, "/size/10", None);
    let took = until(
        Duration::from_secs(1),
        "edge of node B serves a change made on node A",
        || get(port, Ipv4Addr::LOCALHOST, HOST, &link) == 200,
    );
    eprintln!("postgres, two nodes: change on A -> served by B's edge in {took:?}");
    // Node B refuses the same hostname: the database holds one truth.
    let (s, r) = api_b.call("POST", "/cdn/resources", Some(&resource(origin.port, 2)));
    assert_eq!((s, r["field"].as_str()), (400, Some("cname")), "{r}");
}

/// Whether the user `nobody` can read `path` (run as root; `None` when we are not root and so
/// cannot be another user).
fn nobody_reads(path: &std::path::Path) -> Option<bool> {
    let root = std::process::Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&root.stdout).trim() != "0" {
        return None;
    }
    let status = std::process::Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "cat"])
        .arg(path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("setpriv (util-linux)");
    Some(status.success())
}

#[test]
fn keys_at_rest_are_unreadable_by_other_users_even_in_an_existing_0755_directory() {
    use std::os::unix::fs::PermissionsExt as _;
    let data = TempDir::new("modes");
    let dir = data.0.join("d");
    let chmod = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    // A first start, then what an older version or an operator left: 0755 and 0644.
    {
        let (mut p, api, _) = crate::procs::serve(&data);
        create(&api, &resource(1, 2));
        until(Duration::from_secs(5), "a first snapshot", || {
            dir.join("edge/snapshot.json").is_file()
        });
        p.kill9();
    }
    chmod(&data.0, 0o755);
    chmod(&dir, 0o755);
    for f in std::fs::read_dir(&dir).unwrap().flatten() {
        if f.path().is_file() {
            chmod(&f.path(), 0o644);
        }
    }
    chmod(&dir.join("edge"), 0o755);
    let (_p, api, _edge) = crate::procs::serve(&data);
    // A key goes through the write-ahead log.
    let mut r = resource(1, 2);
    r["cname"] = json!("second.example.com");
    r["options"]["secure_key"]["key"] = json!("another_key");
    create(&api, &r);
    let snapshot = dir.join("edge/snapshot.json");
    until(
        Duration::from_secs(5),
        "the edge saved its snapshot",
        || std::fs::read_to_string(&snapshot).is_ok_and(|s| s.contains("another_key")),
    );

    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let mut files = vec![snapshot.clone()];
    for name in ["tollgate.db", "tollgate.db-wal", "tollgate.db-shm"] {
        files.push(dir.join(name));
    }
    for f in &files {
        assert!(f.is_file(), "{} exists", f.display());
        assert_eq!(mode(f) & 0o077, 0, "{} is {:o}", f.display(), mode(f));
    }
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("edge")), 0o700);
    // Another user, with the directories opened up again (as a careless chmod would): the
    // files themselves still keep them out.
    chmod(&dir, 0o755);
    chmod(&dir.join("edge"), 0o755);
    let open = data.0.join("readable.txt");
    std::fs::write(&open, "x").unwrap();
    chmod(&open, 0o644);
    match nobody_reads(&open) {
        Some(true) => {
            for f in &files {
                assert_eq!(nobody_reads(f), Some(false), "nobody read {}", f.display());
            }
        }
        Some(false) => panic!("nobody cannot read even a 0644 file: the check proves nothing"),
        None => {
            assert!(
                std::env::var("CI").is_err(),
                "CI runs as root so that this test can be another user"
            );
            eprintln!("not root: file modes checked, reading as another user not tried");
        }
    }
}

/// The `Cache` header of a GET through the edge.
fn cache_label(port: u16, target: &str) -> (u16, Option<String>) {
    let r = request(
        Ipv4Addr::LOCALHOST,
        port,
        "GET",
        target.as_bytes(),
        &[("Host", HOST)],
    )
    .unwrap();
    (r.status, r.header("cache").map(str::to_owned))
}

#[test]
fn a_refused_config_version_keeps_serving_the_last_good_one_and_still_purges() {
    let origin = TestOrigin::start();
    let data = TempDir::new("refused");
    let db = data.0.join("d/tollgate.db");
    let port = tollgate_testkit::free_port();
    let listen = format!("127.0.0.1:{port}");
    let start_control = || control(&["--listen", &listen, "--data", &data.path("d")]).0;
    let mut ctl = start_control();
    let api = Api {
        port,
        token: TOKEN.into(),
    };
    let token = edge_token(&api, "refusing-edge");
    let (_edge, edge_port) = edge(port, &token, &data.path("e"));
    let a = create(&api, &resource(origin.port, 2));
    let mut other = resource(origin.port, 2);
    other["cname"] = json!("other.example.com");
    let b = create(&api, &other);
    let link = sign(&api, a, "/size/10", None);
    until(Duration::from_secs(5), "the edge serves A", || {
        cache_label(edge_port, &link).0 == 200
    });
    assert_eq!(cache_label(edge_port, &link), (200, Some("HIT".into())));
    ctl.kill9();

    // What an older version could have stored: B with a key this version refuses (the secure
    // token off), and a purge of everything of A at the next version.
    let script = format!(
        "import sqlite3; c = sqlite3.connect({db:?}); \
         v = c.execute('SELECT version FROM config_version').fetchone()[0] + 1; \
         c.execute(\"UPDATE resources SET body = json_set(body, '$.options.secure_key', json('{{\\\"enabled\\\": false, \\\"key\\\": \\\"5char\\\"}}')) WHERE id = {b}\"); \
         c.execute(\"INSERT INTO purges (version, resource_id, body, created_at) VALUES (?, {a}, '{{\\\"paths\\\": []}}', strftime('%s','now'))\", (v,)); \
         c.execute('UPDATE config_version SET version = ?', (v,)); c.commit()",
        db = db.display().to_string()
    );
    let edited = std::process::Command::new(tollgate_testkit::tools::require("python3", "python3"))
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        edited.status.success(),
        "{}",
        String::from_utf8_lossy(&edited.stderr)
    );
    let ctl = start_control();
    // The control plane names the row to fix.
    let said = ctl.seen.join("\n");
    assert!(
        said.contains(&format!("stored resource {b} does not validate"))
            && said.contains("options.secure_key.key"),
        "{said}"
    );

    // The version is refused (B does not validate), A is still served, and its purge applied.
    until(
        Duration::from_secs(5),
        "the purge of the refused version reaches the edge",
        || cache_label(edge_port, &link) == (200, Some("MISS".into())),
    );
    assert_eq!(cache_label(edge_port, &link), (200, Some("HIT".into())));
}

/// Waits for the edge's line saying `version` was applied, and returns it.
fn applied(edge: &mut crate::procs::Proc, version: u64) -> String {
    edge.wait_for(&format!("config version {version} applied"))
}

/// `tollgate control` on `port` (so that edges find it again after a restart).
fn control_on(port: u16, data: &str) -> (crate::procs::Proc, Api) {
    control(&["--listen", &format!("127.0.0.1:{port}"), "--data", data])
}

#[test]
fn edges_are_sent_deltas_across_restarts_and_everything_after_a_database_restore() {
    let origin = TestOrigin::start();
    let data = TempDir::new("deltas");
    let cport = tollgate_testkit::free_port();
    let (ctl, api) = control_on(cport, &data.path("d"));
    let token = edge_token(&api, "edges");
    let (mut e, port) = edge(api.port, &token, &data.path("e"));
    let plain = |host: &str| json!({"cname": host, "origin": format!("127.0.0.1:{}", origin.port)});
    let served = |port: u16, host: &str| get(port, Ipv4Addr::LOCALHOST, host, "/size/1");
    let a = create(&api, &plain("a.example.com"));
    let b = create(&api, &plain("b.example.com"));
    // The first answer is whole, later ones are deltas.
    assert!(applied(&mut e, 1).contains("whole"), "{:?}", e.seen);
    let line = applied(&mut e, 2);
    assert!(
        line.contains("(2 resources; delta: 1 changed, 0 deleted"),
        "{line}"
    );
    until(Duration::from_secs(1), "b served", || {
        served(port, "b.example.com") == 200
    });
    let (s, _) = api.call("DELETE", &format!("/cdn/resources/{b}"), None);
    assert_eq!(s, 204);
    let line = applied(&mut e, 3);
    assert!(
        line.contains("(1 resources; delta: 0 changed, 1 deleted"),
        "{line}"
    );
    until(Duration::from_secs(1), "deleted b is gone", || {
        served(port, "b.example.com") == 404
    });

    // A backup at version 3, taken with the control plane stopped (the database and its
    // write-ahead log, as killed).
    let files = |dir: &str| -> Vec<std::path::PathBuf> {
        ["tollgate.db", "tollgate.db-wal"]
            .iter()
            .map(|f| std::path::Path::new(dir).join(f))
            .collect()
    };
    let (db, backup) = (files(&data.path("d")), files(&data.path("backup")));
    drop(ctl);
    std::fs::create_dir_all(data.path("backup")).unwrap();
    for (from, to) in db.iter().zip(&backup) {
        std::fs::copy(from, to).unwrap();
    }
    // The control plane starts again (a new epoch): the edge, which held version 3 of the
    // epoch before, is patched, not sent everything.
    let (ctl, _) = control_on(cport, &data.path("d"));
    create(&api, &plain("c.example.com"));
    let line = applied(&mut e, 4);
    assert!(line.contains("(2 resources; delta: 1 changed"), "{line}");
    // An edge restarted from its saved snapshot is patched from the version it saved (3 or
    // 4: snapshots are saved in the background, and the edge is killed).
    drop(e);
    let (mut e, port) = edge(api.port, &token, &data.path("e"));
    let on = json!({"options": {"secure_key": {"enabled": true, "key": "secret_key", "type": 2}}});
    assert_eq!(
        api.call("PATCH", &format!("/cdn/resources/{a}"), Some(&on))
            .0,
        200
    );
    let line = applied(&mut e, 5);
    assert!(line.contains("(2 resources; delta: "), "{line}");
    until(Duration::from_secs(1), "token on", || {
        served(port, "a.example.com") == 403
    });

    // Saves are in the background, at most once a second: wait for version 5 on disk, or the
    // edge would restart from an older version, which the restored backup still contains (and
    // which is then rightly patched).
    let saved = std::path::PathBuf::from(data.path("e")).join("snapshot.json");
    until(Duration::from_secs(3), "version 5 saved", || {
        std::fs::read(&saved)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|v| v["version"] == 5)
    });
    // The edge stops at version 5. The backup is restored and the control plane started on
    // it, where versions 4 and 5 never happened; three changes bring it to version 6 with
    // other contents. Patching the edge's version 5 with version 6 would keep c and a's token;
    // it must be sent everything instead.
    drop(e);
    drop(ctl);
    let _ = std::fs::remove_file(format!("{}-shm", db[0].display()));
    for (from, to) in backup.iter().zip(&db) {
        std::fs::copy(from, to).unwrap();
    }
    let (_ctl, _) = control_on(cport, &data.path("d"));
    for host in ["x.example.com", "y.example.com", "z.example.com"] {
        create(&api, &plain(host));
    }
    let (mut e, port) = edge(api.port, &token, &data.path("e"));
    let line = applied(&mut e, 6);
    assert!(line.contains("(4 resources; whole"), "{line}");
    assert_eq!(
        served(port, "a.example.com"),
        200,
        "a's token is not in the restored database"
    );
    assert_eq!(served(port, "c.example.com"), 404);
    assert_eq!(served(port, "z.example.com"), 200);
}

#[test]
fn a_prefetch_fills_every_edge_and_a_path_that_fails_reaches_the_audit_log() {
    let origin = TestOrigin::start();
    let data = TempDir::new("prefetch");
    let (_ctl, api) = control(&["--data", &data.path("d")]);
    let token = edge_token(&api, "edges");
    let (_e1, p1) = edge(api.port, &token, &data.path("e1"));
    let (_e2, p2) = edge(api.port, &token, &data.path("e2"));
    let id = create(&api, &resource(origin.port, 2));
    let probe = sign(&api, id, "/size/10", None);
    for port in [p1, p2] {
        until(Duration::from_secs(1), "both edges serve", || {
            get(port, Ipv4Addr::LOCALHOST, HOST, &probe) == 200
        });
    }

    // Gcore's limits and shapes.
    let prefetch = format!("/cdn/resources/{id}/prefetch");
    let many: Vec<String> = (0..101).map(|i| format!("/{i}")).collect();
    for (body, field) in [
        (json!({"paths": many}), "paths"),
        (json!({"paths": []}), "paths"),
        (json!({"paths": ["no-slash"]}), "paths[0]"),
        (json!({"urls": ["/a"]}), "urls"),
    ] {
        let (s, r) = api.call("POST", &prefetch, Some(&body));
        assert_eq!(s, 400, "{body}: {r}");
        assert!(r.to_string().contains(field), "{r}");
    }
    let (s, _) = api.call(
        "POST",
        "/cdn/resources/999/prefetch",
        Some(&json!({"paths": ["/a"]})),
    );
    assert_eq!(s, 404);

    // A large file (three slices and a bit) and one the origin refuses to let be cached.
    let len = 3 * (4 << 20) + 5;
    let big = format!("/file/{len}/film.mp4");
    let bad = "/say/broken?status=500";
    let (s, r) = api.call("POST", &prefetch, Some(&json!({"paths": [big, bad]})));
    assert_eq!(s, 201, "{r}");
    until(
        Duration::from_secs(20),
        "both edges prefetched the file",
        || origin.body_bytes() == 2 * len as u64,
    );
    assert_eq!(origin.hits(&big), 2, "one fetch per edge");
    let link = sign(&api, id, &big, None);
    for port in [p1, p2] {
        let r = request(
            Ipv4Addr::LOCALHOST,
            port,
            "GET",
            link.as_bytes(),
            &[("Host", HOST)],
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("cache"), Some("HIT"), "prefetched");
        assert_eq!(r.body.len() as u64, len as u64);
    }
    assert_eq!(
        origin.hits(&big),
        2,
        "viewers served from the prefetched copy"
    );

    // The refused path: tried three times on each edge, then reported into the audit log.
    until(
        Duration::from_secs(30),
        "the failure in the audit log",
        || {
            let (_, audit) = api.call("GET", "/tollgate/audit", None);
            let text = audit.to_string();
            text.matches("resource.prefetch_failed").count() == 2 && text.contains("status 500")
        },
    );
    assert_eq!(origin.hits(bad), 6, "three tries on each of two edges");
    let (_, audit) = api.call("GET", "/tollgate/audit", None);
    assert!(audit.to_string().contains("resource.prefetch"), "{audit}");
}

#[test]
fn key_usage_of_two_edges_is_summed_and_survives_an_edge_restart() {
    let origin = TestOrigin::start();
    let data = TempDir::new("key-usage");
    let (_ctl, api) = control(&["--data", &data.path("d")]);
    let token = edge_token(&api, "edges");
    let (e1, p1) = edge(api.port, &token, &data.path("e1"));
    let (_e2, p2) = edge(api.port, &token, &data.path("e2"));
    let mut body = resource(origin.port, 2);
    body["options"]["secure_key"]["key"] = json!("rotated_new_key");
    body["options"]["secure_key"]["previous_key"] = json!("secret_key");
    let id = create(&api, &body);
    // Signed with the previous key, as links still out there are.
    let old = tollgate_testkit::link("/size/10", tollgate_testkit::now() + 300, None);
    for port in [p1, p2] {
        until(Duration::from_secs(2), "both edges serve", || {
            get(port, Ipv4Addr::LOCALHOST, HOST, &old) == 200
        });
    }
    for _ in 0..2 {
        assert_eq!(get(p1, Ipv4Addr::LOCALHOST, HOST, &old), 200);
        assert_eq!(get(p2, Ipv4Addr::LOCALHOST, HOST, &old), 200);
    }
    let previous = || {
        let (_, r) = api.call("GET", &format!("/cdn/resources/{id}"), None);
        r["secure_key_usage"]["previous_key"]["matches"]
            .as_u64()
            .unwrap_or(0)
    };
    // 3 on each edge, reported every 2 s.
    until(Duration::from_secs(8), "both edges' matches summed", || {
        previous() == 6
    });
    // An edge restarts (its own counters start at 0): what it had reported stays.
    drop(e1);
    let (_e1, p1) = edge(api.port, &token, &data.path("e1"));
    until(Duration::from_secs(2), "the restarted edge serves", || {
        get(p1, Ipv4Addr::LOCALHOST, HOST, &old) == 200
    });
    until(Duration::from_secs(8), "one more after the restart", || {
        previous() == 7
    });
    let (_, r) = api.call("GET", &format!("/cdn/resources/{id}"), None);
    assert_eq!(r["secure_key_usage"]["key"]["matches"], 0, "{r}");
    assert!(r["secure_key_usage"]["previous_key"]["last_match"].is_string());
}

#[test]
fn a_revoked_link_is_refused_by_two_edges_of_a_postgres_control_plane_within_a_second() {
    let db = tollgate_testkit::pg::TempDb::create("revoke");
    let origin = TestOrigin::start();
    let data = TempDir::new("revoke");
    let (_ctl, api) = control(&["--database", &db.url]);
    let token = edge_token(&api, "edges");
    let (_e1, p1) = edge(api.port, &token, &data.path("e1"));
    let (_e2, p2) = edge(api.port, &token, &data.path("e2"));
    let id = create(&api, &resource(origin.port, 2));
    let leaked = sign(&api, id, "/size/10", None);
    let other = sign(&api, id, "/size/20", None);
    for port in [p1, p2] {
        until(Duration::from_secs(2), "both edges serve", || {
            get(port, Ipv4Addr::LOCALHOST, HOST, &leaked) == 200
        });
    }
    let (s, rev) = api.call(
        "POST",
        &format!("/cdn/resources/{id}/secure_key/revocations"),
        Some(&json!({"link": format!("https://{HOST}{leaked}")})),
    );
    assert_eq!(s, 201, "{rev}");
    for port in [p1, p2] {
        let took = until(Duration::from_secs(1), "the revoked link refused", || {
            get(port, Ipv4Addr::LOCALHOST, HOST, &leaked) == 403
        });
        eprintln!("edge on {port}: revoked -> refused in {took:?}");
        assert_eq!(get(port, Ipv4Addr::LOCALHOST, HOST, &other), 200);
    }
    // Dropped, the link works again.
    let rid = rev["id"].as_u64().unwrap();
    let (s, _) = api.call(
        "DELETE",
        &format!("/cdn/resources/{id}/secure_key/revocations/{rid}"),
        None,
    );
    assert_eq!(s, 204);
    for port in [p1, p2] {
        until(Duration::from_secs(1), "the link served again", || {
            get(port, Ipv4Addr::LOCALHOST, HOST, &leaked) == 200
        });
    }
    // One that expires goes by itself once its links have expired.
    let soon = tollgate_testkit::now() + 2;
    let (s, r) = api.call(
        "POST",
        &format!("/cdn/resources/{id}/secure_key/revocations"),
        Some(&json!({"token": "AAAAAAAAAAAAAAAAAAAAAA", "expires": soon})),
    );
    assert_eq!(s, 201, "{r}");
    let count = || {
        api.call(
            "GET",
            &format!("/cdn/resources/{id}/secure_key/revocations"),
            None,
        )
        .1["count"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(count(), 1);
    until(Duration::from_secs(5), "the spent revocation gone", || {
        count() == 0
    });
}
