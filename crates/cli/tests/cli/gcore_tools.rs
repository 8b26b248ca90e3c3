//! Gcore's own tools against `tollgate serve`: the official Python SDK (tests/sdk), the exact
//! bodies Gcore's Terraform provider sends (testdata/gcore, rebuilt from the Go client's
//! request structs), and a resource as Gcore's API documents answer it, posted back.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use tollgate_testkit::api::Api;
use tollgate_testkit::http::request;
use tollgate_testkit::origin::TestOrigin;
use tollgate_testkit::{now, TempDir};

use crate::procs::{serve, until};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn testdata(name: &str) -> String {
    std::fs::read_to_string(repo().join("testdata/gcore").join(name)).unwrap()
}

/// The SDK's virtual environment, made by `scripts/install-test-deps`; a test that needs it
/// fails without it (never skips).
fn sdk_python() -> PathBuf {
    tollgate_testkit::tools::test_python()
}

/// A signed target (type 2: no client IP), as a site owner's code makes it.
fn signed(path: &str, key: &str, expires: i64) -> String {
    let key = tollgate_token::Key::new(key).unwrap();
    let t = tollgate_token::sign(&key, expires, path.as_bytes(), None).unwrap();
    format!("{path}?md5={t}&expires={expires}")
}

fn edge_status(edge: u16, host: &str, target: &str) -> u16 {
    request(
        Ipv4Addr::LOCALHOST,
        edge,
        "GET",
        target.as_bytes(),
        &[("Host", host)],
    )
    .map_or(0, |r| r.status)
}

/// Waits until the edge answers `target` on `host` with `want`.
fn edge_answers(edge: u16, host: &str, target: &str, want: u16) {
    until(
        Duration::from_secs(5),
        &format!("{host}{target} -> {want}"),
        || edge_status(edge, host, target) == want,
    );
}

/// Sends `body` byte for byte, as Gcore's Go client writes it.
fn exact(api: &Api, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (s, text) = api
        .raw(
            method,
            path,
            Some(body),
            &[("Authorization", &format!("APIKey {}", api.token))],
        )
        .unwrap();
    (s, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn gcore_python_sdk_does_a_secure_token_users_calls() {
    let python = sdk_python();
    let origin = TestOrigin::start();
    let data = TempDir::new("gcore-sdk");
    let (_p, api, edge) = serve(&data);
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(python)
        .arg(repo().join("tests/sdk/test_gcore_sdk.py"))
        .env("TOLLGATE_API", format!("http://127.0.0.1:{}", api.port))
        .env("GCORE_API_KEY", &api.token)
        .env("TOLLGATE_EDGE", format!("127.0.0.1:{edge}"))
        .env("TOLLGATE_ORIGIN", format!("127.0.0.1:{}", origin.port))
        .env("TOLLGATE_DEAD", format!("127.0.0.1:{dead}"))
        .env_remove("GCORE_BASE_URL")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    // unittest's summary: every test ran (none skipped) and passed.
    assert!(
        report.contains("Ran 7 tests") && report.trim_end().ends_with("OK"),
        "{report}"
    );
}

#[test]
fn terraform_bodies_create_update_and_delete_a_resource_the_edge_enforces() {
    let origin = TestOrigin::start();
    let data = TempDir::new("gcore-terraform");
    let (_p, api, edge) = serve(&data);
    let port = origin.port.to_string();

    // gcore_cdn_origingroup: create, then update (PUT of the same body), as the provider does.
    let group_body = testdata("terraform-origin-group-create.json").replace("ORIGIN_PORT", &port);
    let (s, group) = exact(&api, "POST", "/cdn/origin_groups", &group_body);
    assert_eq!(s, 201, "{group}");
    let gid = group["id"].as_u64().unwrap();
    let (s, again) = exact(
        &api,
        "PUT",
        &format!("/cdn/origin_groups/{gid}"),
        &group_body,
    );
    assert_eq!((s, &again["use_next"]), (200, &json!(true)), "{again}");

    // gcore_cdn_resource with `origin`: every option name, null but two.
    let create = testdata("terraform-create.json").replace("ORIGIN_PORT", &port);
    assert!(create.contains(r#""request_limiter":null"#) && create.ends_with("}\n"));
    let (s, res) = exact(&api, "POST", "/cdn/resources", &create);
    assert_eq!(s, 201, "{res}");
    let id = res["id"].as_u64().unwrap();
    let og = res["originGroup"].as_u64().unwrap();
    assert!(
        og > 0,
        "the update sends back the group GET answered: {res}"
    );
    assert_eq!(res["options"]["edge_cache_settings"]["value"], "10m");
    for t in ["created", "updated"] {
        assert!(tollgate_control::listing::parse_time(res[t].as_str().unwrap()).is_some());
    }
    let host = "tf.example.com";
    let exp = now() + 600;
    edge_answers(edge, host, &signed("/tf/a", "tf_secret_key", exp), 200);
    assert_eq!(edge_status(edge, host, "/tf/a"), 403);
    assert_eq!(
        edge_status(edge, host, &signed("/tf/a", "tf_secret_key", now() - 5)),
        410
    );

    // Update: PUT with originGroup from state, no cname, proxy_ssl_* null.
    let update = testdata("terraform-update.json")
        .replace(r#""originGroup":0"#, &format!(r#""originGroup":{og}"#));
    let (s, upd) = exact(&api, "PUT", &format!("/cdn/resources/{id}"), &update);
    assert_eq!(s, 200, "{upd}");
    assert_eq!(upd["cname"], host, "PUT without cname keeps it");
    assert_eq!(upd["options"]["edge_cache_settings"]["value"], "1h");
    edge_answers(edge, host, &signed("/tf/b", "tf_secret_key2", exp), 200);
    assert_eq!(
        edge_status(edge, host, &signed("/tf/c", "tf_secret_key", exp)),
        403
    );

    // Delete: PATCH active false (answered with the resource), then DELETE.
    let (s, off) = exact(
        &api,
        "PATCH",
        &format!("/cdn/resources/{id}"),
        "{\"active\":false}\n",
    );
    assert_eq!((s, &off["active"]), (200, &json!(false)), "{off}");
    edge_answers(edge, host, &signed("/tf/d", "tf_secret_key2", exp), 404);
    assert_eq!(
        exact(&api, "DELETE", &format!("/cdn/resources/{id}"), "").0,
        204
    );
    assert_eq!(
        exact(&api, "GET", &format!("/cdn/resources/{id}"), "").0,
        404
    );
    assert_eq!(
        exact(&api, "DELETE", &format!("/cdn/origin_groups/{gid}"), "").0,
        204
    );
}

#[test]
fn a_resource_as_gcore_documents_it_is_refused_naming_what_is_unsupported_then_enforced() {
    let origin = TestOrigin::start();
    let data = TempDir::new("gcore-example");
    let (_p, api, edge) = serve(&data);
    let (s, group) = api.call(
        "POST",
        "/cdn/origin_groups",
        Some(&json!({"name": "Resource origin group",
            "sources": [{"source": format!("127.0.0.1:{}", origin.port)}]})),
    );
    assert_eq!(s, 201, "{group}");
    let mut doc: Value = serde_json::from_str(&testdata("gcore-get-example.json")).unwrap();
    doc["originGroup"] = group["id"].clone();
    // The example's origin speaks HTTPS; this test's speaks HTTP.
    doc["originProtocol"] = json!("HTTP");

    // As it is: every unsupported part named, as "not supported by Tollgate", in one answer,
    // and what Gcore refuses too: the example's two query lists at once, its compression with
    // slice.
    let (s, e) = api.call("POST", "/cdn/resources", Some(&doc));
    assert_eq!(s, 400, "{e}");
    let errors = e["errors"].as_array().unwrap();
    for err in errors {
        let (f, m) = (
            err["field"].as_str().unwrap(),
            err["message"].as_str().unwrap(),
        );
        match f {
            "options" => assert!(m.contains("cannot be enabled together"), "{err}"),
            // The example has slice on with both: Gcore refuses that too.
            "options.gzipOn" | "options.brotli_compression" => {
                assert!(m.contains("not with slice"), "{err}")
            }
            _ => assert!(m.contains("not supported by Tollgate"), "{err}"),
        }
    }
    let fields: Vec<&str> = errors
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for want in [
        "sslData",
        "options.rewrite",
        "options.force_return",
        "options",
    ] {
        assert!(fields.contains(&want), "{want} not in {fields:?}");
    }
    for accepted in [
        "options.secure_key",
        "options.slice",
        "options.disable_cache",
        "options.ignoreQueryString",
        "options.cors",
        "options.stale",
        "options.referrer_acl",
    ] {
        assert!(
            !fields.contains(&accepted),
            "{accepted} refused: {fields:?}"
        );
    }

    // Each refused part turned off (what the errors say to do); everything else as it is, but
    // for what keeps this test's client out: it asks over HTTP, from 127.0.0.1, with no
    // User-Agent (the example's lists refuse all three).
    for f in &fields {
        match *f {
            "sslData" => doc["sslData"] = Value::Null,
            "options" => doc["options"]["query_params_blacklist"]["enabled"] = json!(false),
            f => {
                let name = f.strip_prefix("options.").unwrap();
                doc["options"][name]["enabled"] = json!(false);
            }
        }
    }
    for name in ["redirect_http_to_https", "ip_address_acl", "user_agent_acl"] {
        doc["options"][name]["enabled"] = json!(false);
    }
    // Valid now, but for what the deployment lacks, checked once the resource is: the edges'
    // GeoIP database.
    let (s, e) = api.call("POST", "/cdn/resources", Some(&doc));
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["field"], "options.country_acl", "{e}");
    assert!(e["message"].as_str().unwrap().contains("--geoip-db"), "{e}");
    doc["options"]["country_acl"]["enabled"] = json!(false);
    let (s, res) = api.call("POST", "/cdn/resources", Some(&doc));
    assert_eq!(s, 201, "{res}");
    assert_ne!(res["id"], 220, "the example's id is not taken");
    assert_eq!(res["originGroup_name"], "Resource origin group");
    assert_eq!(res["options"]["rewrite"]["enabled"], false, "kept, off");
    assert_eq!(res["options"]["cors"]["always"], true, "kept, on");
    let exp = now() + 600;
    edge_answers(
        edge,
        "cdn.site.com",
        &signed("/img/a.png", "secretkey", exp),
        200,
    );
    assert_eq!(edge_status(edge, "first.example.com", "/img/a.png"), 403);
    assert_eq!(
        edge_status(
            edge,
            "second.example.com",
            &signed("/img/a.png", "secretkey", now() - 1)
        ),
        410
    );
    // The resource's answer goes back as it is.
    let id = res["id"].as_u64().unwrap();
    let (s, put) = api.call("PUT", &format!("/cdn/resources/{id}"), Some(&res));
    assert_eq!((s, &put["options"]), (200, &res["options"]), "{put}");
}
