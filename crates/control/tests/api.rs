//! The API over a real listener, with SQLite: validation errors name their field and change
//! nothing, PUT and PATCH, the OpenAPI document against the routes, long-polls, the link
//! generator's snippets run by php, python3, node and openssl and checked with the token core.
#![allow(clippy::unwrap_used)] // test code: a panic is how it fails

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tollgate_control::Control;
use tollgate_store::SqliteStore;
use tollgate_testkit::api::Api;
use tollgate_testkit::tools::run_snippet;
use tollgate_testkit::TempDir;

#[path = "api/gcore.rs"]
mod gcore;
#[path = "api/token_ext.rs"]
mod token_ext;

const TOKEN: &str = "tg_api_test_token_0123456789";
const EDGE_TOKEN: &str = "tg_edge_test_token_0123456789";

struct Running {
    api: Api,
    _dir: TempDir,
}

/// Serves `control` on a free port from a runtime of its own; with `watch`, it follows the
/// store's version as a node does.
fn serve(control: Arc<Control>, watch: bool) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            if watch {
                tokio::spawn(Arc::clone(&control).watch_store());
            }
            let app = control
                .router()
                .into_make_service_with_connect_info::<std::net::SocketAddr>();
            axum::serve(listener, app).await.unwrap();
        });
    });
    port
}

fn start(tag: &str) -> Running {
    let dir = TempDir::new(&format!("api-{tag}"));
    let store = Arc::new(SqliteStore::open(&dir.0.join("db")).unwrap());
    let control = Control::new(store, &[EDGE_TOKEN.to_owned()]).unwrap();
    assert_eq!(
        control.bootstrap(Some(TOKEN)).unwrap().as_deref(),
        Some(TOKEN)
    );
    assert_eq!(
        control.bootstrap(None).unwrap(),
        None,
        "the first token is made once"
    );
    let short = control.bootstrap(Some("short")).unwrap_err();
    assert_eq!(
        short.field.as_deref(),
        Some("api-token"),
        "checked on later starts too"
    );
    let port = serve(control, true);
    Running {
        api: Api {
            port,
            token: TOKEN.into(),
        },
        _dir: dir,
    }
}

fn good() -> Value {
    json!({"cname": "cdn.example.com", "origin": "origin.example.com:8080",
           "options": {"secure_key": {"enabled": true, "key": "secret_key", "type": 0}}})
}

fn edge_api(api: &Api) -> Api {
    Api {
        port: api.port,
        token: EDGE_TOKEN.into(),
    }
}

fn version(api: &Api) -> u64 {
    let (s, snap) = edge_api(api).call("GET", "/edge/v1/config?since=999999&wait=0", None);
    assert_eq!(s, 200);
    snap["version"].as_u64().unwrap()
}

#[test]
fn refused_requests_name_the_field_and_change_nothing() {
    let r = start("refused");
    let api = &r.api;
    let (s, created) = api.call("POST", "/cdn/resources", Some(&good()));
    assert_eq!(s, 201, "{created}");
    let before = (api.call("GET", "/cdn/resources", None).1, version(api));

    let with = |pointer: &str, v: Value| {
        let mut b = good();
        let (parent, name) = pointer.rsplit_once('/').unwrap();
        let target = if parent.is_empty() {
            &mut b
        } else {
            b.pointer_mut(parent).unwrap()
        };
        target[name] = v;
        b
    };
    let mut unknown_opt = good();
    unknown_opt["options"]["rewrite"] = json!({"enabled": true});
    let mut unknown_sk = good();
    unknown_sk["options"]["secure_key"]["salt"] = json!("x");
    let other = |b: Value| {
        let mut b = b;
        b["cname"] = json!("other.example.com");
        b
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            other(with("/options/secure_key/key", json!("short"))),
            "options.secure_key.key",
            "5",
        ),
        (
            other(with("/options/secure_key/key", json!("a".repeat(33)))),
            "options.secure_key.key",
            "33",
        ),
        (
            other(with("/options/secure_key/key", json!("has space1"))),
            "options.secure_key.key",
            "whitespace",
        ),
        (
            other(with("/options/secure_key/key", json!("tab\tkey12"))),
            "options.secure_key.key",
            "",
        ),
        (
            other(with("/options/secure_key/key", json!("ключ-ключ"))),
            "options.secure_key.key",
            "",
        ),
        (
            other(with("/options/secure_key/type", json!(1))),
            "options.secure_key.type",
            "0",
        ),
        (
            other(with(
                "/options/secure_key/previous_key",
                json!("secret_key"),
            )),
            "options.secure_key.previous_key",
            "differ",
        ),
        (good(), "cname", "already used by resource"),
        (
            with("/cname", json!("cdn.example.com")),
            "cname",
            "already used",
        ),
        (
            other(with("/origin", json!("http://origin.example.com"))),
            "origin",
            "host[:port]",
        ),
        (
            other(with("/origin", json!("origin.example.com:99999"))),
            "origin",
            "",
        ),
        (
            other(with("/originProtocol", json!("FTP"))),
            "originProtocol",
            "",
        ),
        (
            other(json!({"cname": "x.example.com", "origin": "o.example.com", "bogus": 1})),
            "bogus",
            "unknown field",
        ),
        (
            other(unknown_opt),
            "options.rewrite",
            "option rewrite is not supported by Tollgate",
        ),
        (
            other(unknown_sk),
            "options.secure_key.salt",
            "unknown field",
        ),
        (
            other(with(
                "/options/staticRequestHeaders",
                json!({"enabled": true, "value": {"Host": "x"}}),
            )),
            "options.staticRequestHeaders.value.Host",
            "set by the edge",
        ),
        (
            other(with(
                "/options/staticRequestHeaders",
                json!({"enabled": true, "value": {"X-Auth": "a\r\nb"}}),
            )),
            "options.staticRequestHeaders.value.X-Auth",
            "letters",
        ),
        (
            other(with(
                "/options",
                json!({"query_string_forwarding": {"enabled": true}}),
            )),
            "options.query_string_forwarding.forward_from_file_types",
            "file type",
        ),
    ];
    for (body, field, words) in cases {
        let (s, e) = api.call("POST", "/cdn/resources", Some(&body));
        assert_eq!(s, 400, "{body} -> {e}");
        assert_eq!(e["field"].as_str(), Some(field), "{body} -> {e}");
        assert!(
            e["code"].is_string() && e["message"].as_str().unwrap().contains(words),
            "{e}"
        );
    }
    for (body, field) in [("not json", ""), ("[1]", ""), ("{\"cname\": 5}", "cname")] {
        let (s, text) = api
            .raw(
                "POST",
                "/cdn/resources",
                Some(body),
                &[("Authorization", &format!("APIKey {TOKEN}"))],
            )
            .unwrap();
        let e: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (s, e["field"].as_str()),
            (400, Some(field)),
            "{body} -> {text}"
        );
    }
    // Updates refused the same way.
    let id = created["id"].as_u64().unwrap();
    let (s, e) = api.call(
        "PATCH",
        &format!("/cdn/resources/{id}"),
        Some(&json!({"options": {"secure_key": {"enabled": true, "key": "x"}}})),
    );
    assert_eq!(
        (s, e["field"].as_str()),
        (400, Some("options.secure_key.key"))
    );
    let (s, e) = api.call(
        "PUT",
        &format!("/cdn/resources/{id}"),
        Some(&json!({"id": id + 1, "cname": "a.b", "origin": "o"})),
    );
    assert_eq!((s, e["field"].as_str()), (400, Some("id")));
    assert_eq!(
        api.call("PATCH", "/cdn/resources/999", Some(&json!({"name": "x"})))
            .0,
        404
    );
    assert_eq!(api.call("GET", "/cdn/resources/abc", None).1["field"], "id");
    let (s, e) = api.call(
        "POST",
        &format!("/cdn/resources/{id}/purge"),
        Some(&json!({"urls": ["no-slash"]})),
    );
    assert_eq!((s, e["field"].as_str()), (400, Some("urls[0]")));
    let (s, e) = api.call(
        "POST",
        &format!("/cdn/resources/{id}/purge"),
        Some(&json!({"urls": ["/a"], "paths": []})),
    );
    assert_eq!((s, e["field"].as_str()), (400, Some("urls")));

    assert_eq!(
        (api.call("GET", "/cdn/resources", None).1, version(api)),
        before,
        "nothing was written"
    );
}

#[test]
fn put_replaces_patch_merges_and_gcore_exports_post_as_they_are() {
    let r = start("put-patch");
    let api = &r.api;
    // A resource as Gcore exports it, id included: the id is assigned here.
    let mut export = good();
    export["id"] = json!(123456);
    export["name"] = json!("videos");
    export["options"]["hostHeader"] = json!({"enabled": true, "value": "origin.example.com"});
    let (s, created) = api.call("POST", "/cdn/resources", Some(&export));
    assert_eq!(s, 201);
    let id = created["id"].as_u64().unwrap();
    assert_ne!(id, 123456);
    assert_eq!(
        created["options"]["hostHeader"]["value"],
        "origin.example.com"
    );
    assert_eq!(created["active"], true);

    let (s, patched) = api.call("PATCH", &format!("/cdn/resources/{id}"), Some(&json!({"description": "d", "options": {"hostHeader": null, "ignoreQueryString": {"enabled": true, "value": true}}})));
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["name"], "videos");
    assert_eq!(
        patched["options"]["secure_key"]["key"], "secret_key",
        "options not named stay"
    );
    assert!(
        patched["options"].get("hostHeader").is_none(),
        "null removes an option"
    );

    let (s, put) = api.call(
        "PUT",
        &format!("/cdn/resources/{id}"),
        Some(&json!({"cname": "cdn.example.com", "origin": "o.example.com"})),
    );
    assert_eq!(s, 200, "{put}");
    assert!(
        put["options"].get("secure_key").is_none(),
        "PUT replaces whole"
    );
    assert!(put["name"].is_null());
    assert_eq!(
        api.call("GET", &format!("/cdn/resources/{id}"), None).1,
        put
    );
    assert_eq!(
        api.call("DELETE", &format!("/cdn/resources/{id}"), None).0,
        204
    );
    assert_eq!(
        api.call("GET", &format!("/cdn/resources/{id}"), None).0,
        404
    );
}

/// Every route the router serves, as the OpenAPI document should list them.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/cdn/resources"),
    ("post", "/cdn/resources"),
    ("get", "/cdn/resources/{id}"),
    ("put", "/cdn/resources/{id}"),
    ("patch", "/cdn/resources/{id}"),
    ("delete", "/cdn/resources/{id}"),
    ("post", "/cdn/resources/{id}/purge"),
    ("get", "/cdn/resources/{id}/secure_key/revocations"),
    ("post", "/cdn/resources/{id}/secure_key/revocations"),
    ("delete", "/cdn/resources/{id}/secure_key/revocations/{rid}"),
    ("post", "/cdn/resources/{id}/prefetch"),
    ("post", "/cdn/resources/{id}/sign"),
    ("get", "/cdn/purge_statuses"),
    ("get", "/cdn/origin_groups"),
    ("post", "/cdn/origin_groups"),
    ("get", "/cdn/origin_groups/{id}"),
    ("put", "/cdn/origin_groups/{id}"),
    ("patch", "/cdn/origin_groups/{id}"),
    ("delete", "/cdn/origin_groups/{id}"),
    ("post", "/tollgate/tokens"),
    ("get", "/tollgate/tokens"),
    ("delete", "/tollgate/tokens/{id}"),
    ("get", "/tollgate/audit"),
    ("get", "/tollgate/stats"),
    ("get", "/cdn/public-ip-list"),
    ("get", "/edge/v1/config"),
    ("post", "/edge/v1/stats"),
    ("get", "/healthz"),
    ("get", "/openapi.json"),
];

#[test]
fn openapi_document_matches_the_routes() {
    let r = start("openapi");
    let api = &r.api;
    let (s, doc) = api.call_with("GET", "/openapi.json", None, &[]);
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let listed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, listed);
    // Each documented route exists: the router answers neither "no such route" nor 405. An
    // unknown route, for contrast, does get that answer.
    let (_, created) = api.call("POST", "/cdn/resources", Some(&good()));
    let id = created["id"].to_string();
    for (method, path) in ROUTES.iter().chain([&("get", "/cdn/nothing-here")]) {
        let token = if path.starts_with("/edge/") {
            EDGE_TOKEN
        } else {
            TOKEN
        };
        let target = path.replace("{id}", &id)
            + if path.contains("config") {
                "?since=999999&wait=0"
            } else {
                ""
            };
        let (s, body) = api
            .raw(
                &method.to_uppercase(),
                &target,
                Some("{}"),
                &[("Authorization", &format!("Bearer {token}"))],
            )
            .unwrap();
        let missing = (s == 405 && body.contains("method_not_allowed"))
            || (s == 404 && body.contains("route not found"));
        assert_eq!(
            missing,
            *path == "/cdn/nothing-here",
            "{method} {path}: {s} {body}"
        );
    }
}

#[test]
fn public_ip_list_holds_the_addresses_edges_poll_from() {
    let r = start("ip-list");
    let (s, list) = r.api.call("GET", "/cdn/public-ip-list", None);
    assert_eq!(
        (s, list),
        (200, json!({"addresses": [], "addresses_v6": []}))
    );
    version(&r.api); // an edge poll, from 127.0.0.1
    let (_, list) = r.api.call("GET", "/cdn/public-ip-list", None);
    assert_eq!(
        list,
        json!({"addresses": ["127.0.0.1"], "addresses_v6": []})
    );
}

#[test]
fn tokens_are_listed_without_secrets_and_revoked_at_once() {
    let r = start("tokens");
    let api = &r.api;
    let (s, made) = api.call(
        "POST",
        "/tollgate/tokens",
        Some(&json!({"name": "edge-7", "role": "edge"})),
    );
    assert_eq!(s, 201);
    let (secret, id) = (
        made["token"].as_str().unwrap().to_owned(),
        made["id"].as_u64().unwrap(),
    );
    let edge = Api {
        port: api.port,
        token: secret.clone(),
    };
    assert_eq!(
        edge.call("GET", "/edge/v1/config?since=999999&wait=0", None)
            .0,
        200
    );
    let (_, list) = api.call("GET", "/tollgate/tokens", None);
    assert_eq!(list[1], json!({"id": id, "name": "edge-7", "role": "edge"}));
    assert!(!list.to_string().contains(&secret));
    assert_eq!(
        api.call("DELETE", &format!("/tollgate/tokens/{id}"), None)
            .0,
        204
    );
    assert_eq!(
        edge.call("GET", "/edge/v1/config?since=999999&wait=0", None)
            .0,
        401,
        "revoked at once"
    );
    assert_eq!(
        api.call("DELETE", &format!("/tollgate/tokens/{id}"), None)
            .1["code"],
        "not_found"
    );
    let first = list[0]["id"].as_u64().unwrap();
    let (s, e) = api.call("DELETE", &format!("/tollgate/tokens/{first}"), None);
    assert_eq!(
        (s, e["code"].as_str()),
        (400, Some("conflict")),
        "the last API token stays: {e}"
    );
}

#[test]
fn wrong_method_gets_a_json_405() {
    let r = start("method");
    let (s, e) = r.api.call("PUT", "/cdn/resources", None);
    assert_eq!(
        (s, e["code"].as_str()),
        (405, Some("method_not_allowed")),
        "{e}"
    );
}

#[test]
fn long_poll_waits_then_wakes_on_a_change() {
    let r = start("poll");
    let api = r.api.clone();
    let edge = edge_api(&api);
    let v = version(&api);
    let t = Instant::now();
    assert_eq!(
        edge.call("GET", &format!("/edge/v1/config?since={v}&wait=1"), None)
            .0,
        304
    );
    assert!(t.elapsed() >= Duration::from_millis(900));
    assert_eq!(
        edge.call("GET", "/edge/v1/config?wait=soon", None).1["field"],
        "wait"
    );
    // Above what the store keeps (signed 64-bit): a 400 naming the parameter, not a 404.
    for q in ["since=9223372036854775808", "epoch=18446744073709551615"] {
        let (s, r) = edge.call("GET", &format!("/edge/v1/config?{q}&wait=0"), None);
        assert_eq!((s, r["field"].as_str()), (400, q.split('=').next()), "{r}");
    }

    let waiter = std::thread::spawn(move || {
        let t = Instant::now();
        let (s, snap) = edge.call("GET", &format!("/edge/v1/config?since={v}&wait=30"), None);
        (s, snap, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    api.call("POST", "/cdn/resources", Some(&good()));
    let (s, snap, took) = waiter.join().unwrap();
    assert_eq!(s, 200);
    assert_eq!(snap["resources"][0]["cname"], "cdn.example.com");
    assert!(
        took < Duration::from_secs(5),
        "woken by the change, not the timeout: {took:?}"
    );
}

#[test]
fn edge_reports_feed_the_chart() {
    let r = start("stats");
    let edge = edge_api(&r.api);
    for served in [10, 15] {
        let report = json!({"edge": "e1", "resources": {"7": {"served": served, "hits": 5, "forbidden": 2, "gone": 1, "bad_request": 0, "origin_errors": 0}}});
        assert_eq!(edge.call("POST", "/edge/v1/stats", Some(&report)).0, 204);
    }
    assert_eq!(
        edge.call("POST", "/edge/v1/stats", Some(&json!({"edge": 1})))
            .0,
        400
    );
    let (s, series) = r.api.call("GET", "/tollgate/stats?resource=7", None);
    assert_eq!(s, 200);
    let served: u64 = series["served"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(served, 25, "reports are increases, summed: {series}");
}

#[test]
fn link_generator_snippets_make_links_the_token_core_accepts() {
    let r = start("snippets");
    let api = &r.api;
    let mut body = good();
    body["options"]["secure_key"]["key"] = json!("k'ey$\\with\"quotes");
    let (_, created) = api.call("POST", "/cdn/resources", Some(&body));
    let id = created["id"].as_u64().unwrap();
    let sign = |req: Value| api.call("POST", &format!("/cdn/resources/{id}/sign"), Some(&req));

    assert_eq!(
        sign(json!({"path": "/a.mp4"})).1["field"],
        "ip",
        "type 0 needs the viewer's IP"
    );
    assert_eq!(
        sign(json!({"path": "/a.mp4", "ip": "not-an-ip"})).1["field"],
        "ip"
    );
    assert_eq!(
        sign(json!({"path": "a.mp4", "ip": "1.2.3.4"})).1["field"],
        "path"
    );
    assert_eq!(
        sign(json!({"path": "/a//b", "ip": "1.2.3.4"})).1["field"],
        "path"
    );
    assert_eq!(
        sign(json!({"path": "/a", "ip": "1.2.3.4", "lifetime": 0})).1["field"],
        "lifetime"
    );
    for bad in ["/a\nb.mp4", "/a\u{0}b", "/tab\there", "/del\u{7f}"] {
        let (s, r) = sign(json!({"path": bad, "ip": "1.2.3.4"}));
        assert_eq!(
            (s, r["field"].as_str()),
            (400, Some("path")),
            "{bad:?}: {r}"
        );
    }

    let key = tollgate_token::Key::new("k'ey$\\with\"quotes").unwrap();
    for (path, ip) in [
        ("/videos/my film ü.mp4", "2001:db8::1"),
        ("/live/133529_2/chunklist.m3u8", "1.2.3.4"),
    ] {
        let (s, signed) = sign(json!({"path": path, "ip": ip, "lifetime": 600}));
        assert_eq!(s, 200, "{signed}");
        let snippets = &signed["snippets"];
        let urls = [
            run_snippet("php", snippets["php"].as_str().unwrap()),
            run_snippet("python", snippets["python"].as_str().unwrap()),
            run_snippet("node", snippets["node"].as_str().unwrap()),
            run_snippet("sh", snippets["openssl"].as_str().unwrap()),
            signed["url"].as_str().unwrap().to_owned(),
        ];
        for url in urls {
            let target = url
                .strip_prefix("http://cdn.example.com")
                .unwrap_or_else(|| panic!("{url}"));
            let t = tollgate_token::Target::parse(target.as_bytes()).unwrap();
            assert_eq!(t.uri(), path.as_bytes(), "{url}");
            let verdict = tollgate_token::verify(
                &t,
                std::slice::from_ref(&key),
                Some(ip.parse().unwrap()),
                tollgate_testkit::now(),
            );
            assert!(verdict.is_ok(), "{url}: {verdict:?}");
        }
    }
}

#[test]
fn link_generator_rounds_the_url_as_its_snippets_do() {
    let r = start("window");
    let api = &r.api;
    let (_, created) = api.call("POST", "/cdn/resources", Some(&good()));
    let id = created["id"].as_u64().unwrap();
    let window = 86_400;
    let (s, signed) = api.call(
        "POST",
        &format!("/cdn/resources/{id}/sign"),
        Some(&json!({"path": "/a.mp4", "ip": "1.2.3.4", "lifetime": 600, "window": window})),
    );
    assert_eq!(s, 200, "{signed}");
    let expires = signed["expires"].as_i64().unwrap();
    assert_eq!(expires % window, 0, "{signed}");
    let url = signed["url"].as_str().unwrap();
    assert!(url.ends_with(&format!("&expires={expires}")), "{url}");
    let php = run_snippet("php", signed["snippets"]["php"].as_str().unwrap());
    // The snippet ran a moment later: the same window, or (at a boundary) the next one.
    assert!(
        php == url || php.ends_with(&format!("&expires={}", expires + window)),
        "{php} against {url}"
    );
    assert!(url.starts_with("http://cdn.example.com/"), "{url}");

    // A resource with TLS gets https:// links, in the URL and in the snippets.
    let (s, _) = api.call(
        "PATCH",
        &format!("/cdn/resources/{id}"),
        Some(&json!({"sslEnabled": true})),
    );
    assert_eq!(s, 200);
    let (_, signed) = api.call(
        "POST",
        &format!("/cdn/resources/{id}/sign"),
        Some(&json!({"path": "/a.mp4", "ip": "1.2.3.4"})),
    );
    let url = signed["url"].as_str().unwrap();
    assert!(
        url.starts_with("https://cdn.example.com/a.mp4?md5="),
        "{url}"
    );
    let php = run_snippet("php", signed["snippets"]["php"].as_str().unwrap());
    assert!(
        php.starts_with("https://cdn.example.com/a.mp4?md5="),
        "{php}"
    );
}

#[test]
fn audit_lists_one_resource_newest_first() {
    let r = start("audit");
    let api = &r.api;
    let (_, a) = api.call("POST", "/cdn/resources", Some(&good()));
    let mut other = good();
    other["cname"] = json!("other.example.com");
    let (_, b) = api.call("POST", "/cdn/resources", Some(&other));
    let a = a["id"].as_u64().unwrap();
    api.call(
        "PATCH",
        &format!("/cdn/resources/{a}"),
        Some(&json!({"active": false})),
    );
    let (s, list) = api.call("GET", &format!("/tollgate/audit?resource={a}"), None);
    assert_eq!(s, 200, "{list}");
    let actions: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["resource"], a, "{e}");
            e["action"].as_str().unwrap()
        })
        .collect();
    assert_eq!(actions, ["resource.update", "resource.create"]);
    let (_, all) = api.call("GET", "/tollgate/audit", None);
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|e| e["resource"] == b["id"]),
        "{all}"
    );
    let (s, bad) = api.call("GET", "/tollgate/audit?resource=x", None);
    assert_eq!((s, bad["field"].as_str()), (400, Some("resource")), "{bad}");
}

#[test]
fn out_of_range_cache_times_and_bad_stored_keys_are_refused_naming_the_field() {
    let r = start("ranges");
    let api = &r.api;
    let cases = [
        (
            json!({"edge_cache_settings": {"enabled": true, "value": "213503982334601d"}}),
            "options.edge_cache_settings.value",
        ),
        (
            json!({"edge_cache_settings": {"enabled": true, "value": "18446744073709551615s"}}),
            "options.edge_cache_settings.value",
        ),
        (
            json!({"secure_key": {"enabled": false, "key": "5char", "type": 2}}),
            "options.secure_key.key",
        ),
        (
            json!({"hostHeader": {"enabled": true, "value": "origin.example.com/x"}}),
            "options.hostHeader.value",
        ),
    ];
    for (options, field) in cases {
        let mut body = good();
        for (k, v) in options.as_object().unwrap() {
            body["options"][k] = v.clone();
        }
        let (s, resp) = api.call("POST", "/cdn/resources", Some(&body));
        assert_eq!((s, resp["field"].as_str()), (400, Some(field)), "{resp}");
    }
    assert_eq!(api.call("GET", "/cdn/resources", None).1, json!([]));
}

/// An edge can hold a version this node's version watch has not reached yet: a write made on
/// another node sharing the database, whose NOTIFY is still on its way (the answer the edge got
/// was read from the database, which is ahead of the watch), or two refreshes of the version
/// finishing out of order. Such an edge must still be sent the purges made after its version
/// (and a delta), not a whole snapshot taken as if it held nothing (`since` 0: no purges).
#[test]
fn an_edge_ahead_of_this_nodes_version_watch_is_sent_the_purges_after_its_version() {
    use tollgate_store::Store as _;
    let dir = TempDir::new("api-ahead");
    let store = Arc::new(SqliteStore::open(&dir.0.join("db")).unwrap());
    let res = |cname: &str| {
        serde_json::from_value::<tollgate_model::Resource>(json!({
            "id": 0, "cname": cname, "origin": "127.0.0.1:9",
            "options": {"secure_key": {"enabled": true, "key": "secret_key", "type": 0}}
        }))
        .unwrap()
        .validate()
        .unwrap()
    };
    let a = store.create(&res("a.example.com"), "t").unwrap();
    let control = Control::new(Arc::clone(&store) as _, &[EDGE_TOKEN.to_owned()]).unwrap();
    // No `watch_store`: writes made on the store directly stand for another node's, not yet
    // seen by this one (its watch stays at version 1).
    let port = serve(control, false);
    let edge = Api {
        port,
        token: EDGE_TOKEN.into(),
    };
    store.create(&res("b.example.com"), "t").unwrap();
    // The edge's first answer is read from the database: version 2, ahead of the watch.
    let (s, snap) = edge.call("GET", "/edge/v1/config?since=0&wait=0&epoch=0", None);
    assert_eq!((s, snap["version"].as_u64()), (200, Some(2)), "{snap}");
    let epoch = snap["epoch"].as_u64().unwrap();
    let purged = tollgate_model::PurgeRequest {
        urls: Some(vec!["/x".into()]),
        paths: None,
    };
    assert_eq!(store.purge(a.id, &purged, "t").unwrap(), 3);
    let (s, snap) = edge.call(
        "GET",
        &format!("/edge/v1/config?since=2&wait=5&epoch={epoch}"),
        None,
    );
    assert_eq!((s, snap["version"].as_u64()), (200, Some(3)), "{snap}");
    assert_eq!(
        snap["purges"].as_array().map(Vec::len),
        Some(1),
        "the purge of version 3 was lost: {snap}"
    );
    assert_eq!(snap["delta_from"], 2, "{snap}");
}
