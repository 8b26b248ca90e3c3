//! Tollgate's secure-token extensions in the API: `mode` (report or enforce) and the
//! read-only `secure_key_strength` of the key and the previous key.

use serde_json::json;

use crate::start;

#[test]
fn report_mode_and_key_strength_in_the_answers() {
    let r = start("token-ext");
    let api = &r.api;
    let (s, res) = api.call(
        "POST",
        "/cdn/resources",
        Some(&json!({"cname": "r.example.com", "origin": "o.example",
            "options": {"secure_key": {"enabled": true, "key": "aB3xY9", "type": 2,
                "previous_key": "Xq7#pL2v!Rt9mZ4w@Kd8sN3b%Hf6jC1y", "mode": "report"}}})),
    );
    assert_eq!(s, 201, "{res}");
    assert_eq!(res["options"]["secure_key"]["mode"], "report");
    let weak = &res["secure_key_strength"]["key"];
    assert_eq!(
        (weak["length"].as_u64(), weak["alphabet"].as_u64()),
        (Some(6), Some(62))
    );
    let warning = weak["warning"].as_str().unwrap();
    assert!(
        warning.contains("62^6 ~ 5.7e10") && warning.contains("6 hours"),
        "{warning}"
    );
    let strong = &res["secure_key_strength"]["previous_key"];
    assert!(strong["bits"].as_f64().unwrap() > 190.0 && strong.get("warning").is_none());
    // Read-only: the answer goes back to PUT as it is.
    let id = res["id"].as_u64().unwrap();
    let (s, put) = api.call("PUT", &format!("/cdn/resources/{id}"), Some(&res));
    assert_eq!(s, 200, "{put}");
    let (s, e) = api.call(
        "PATCH",
        &format!("/cdn/resources/{id}"),
        Some(
            &json!({"options": {"secure_key": {"enabled": true, "key": "aB3xY9",
            "mode": "audit"}}}),
        ),
    );
    assert_eq!(s, 400, "{e}");
    assert!(e.to_string().contains("mode"), "{e}");
    let (_, plain) = api.call(
        "POST",
        "/cdn/resources",
        Some(&json!({"cname": "p.example.com", "origin": "o.example"})),
    );
    assert!(plain.get("secure_key_strength").is_none(), "{plain}");
}

#[test]
fn key_usage_sums_the_edges_reports_and_starts_again_at_a_rotation() {
    let r = start("key-usage");
    let api = &r.api;
    let (s, res) = api.call(
        "POST",
        "/cdn/resources",
        Some(&json!({"cname": "k.example.com", "origin": "o.example",
            "options": {"secure_key": {"enabled": true, "key": "new_secret_key",
                "previous_key": "old_secret_key", "type": 2}}})),
    );
    assert_eq!(s, 201, "{res}");
    let id = res["id"].as_u64().unwrap();
    assert_eq!(res["secure_key_usage"]["previous_key"]["matches"], 0);
    assert!(res["secure_key_usage"]["previous_key"]["last_match"].is_null());
    let edge = crate::edge_api(api);
    let report = |name: &str, current: u64, previous: u64| {
        let body = json!({"edge": name, "resources": {id.to_string(): {"served": current + previous,
            "hits": 0, "forbidden": 0, "gone": 0, "bad_request": 0, "origin_errors": 0,
            "current_key": current, "previous_key": previous}}});
        assert_eq!(edge.call("POST", "/edge/v1/stats", Some(&body)).0, 204);
    };
    // Two edges; the first restarts (its reports are increases: a new process starts at 0).
    report("e1", 10, 3);
    report("e2", 5, 0);
    report("e1", 1, 1);
    let (_, got) = api.call("GET", &format!("/cdn/resources/{id}"), None);
    let usage = &got["secure_key_usage"];
    assert_eq!(usage["key"]["matches"], 16, "{usage}");
    assert_eq!(usage["previous_key"]["matches"], 4, "{usage}");
    let last = usage["previous_key"]["last_match"].as_str().unwrap();
    assert!(last.ends_with('Z'), "{last}");
    // An edge before key usage sends no such fields: taken as it was.
    let old = json!({"edge": "e3", "resources": {id.to_string(): {"served": 1, "hits": 0,
        "forbidden": 0, "gone": 0, "bad_request": 0, "origin_errors": 0}}});
    assert_eq!(edge.call("POST", "/edge/v1/stats", Some(&old)).0, 204);
    // A rotation: the counts were the old slots' keys.
    let (s, _) = api.call(
        "PATCH",
        &format!("/cdn/resources/{id}"),
        Some(
            &json!({"options": {"secure_key": {"enabled": true, "key": "newest_secret_key",
            "previous_key": "new_secret_key", "type": 2}}}),
        ),
    );
    assert_eq!(s, 200);
    let (_, got) = api.call("GET", &format!("/cdn/resources/{id}"), None);
    assert_eq!(got["secure_key_usage"]["key"]["matches"], 0, "{got}");
}

#[test]
fn revocations_are_made_listed_bounded_in_shape_and_kept_by_the_resources_own_writes() {
    let r = start("revocations");
    let api = &r.api;
    let (_, res) = api.call(
        "POST",
        "/cdn/resources",
        Some(&json!({"cname": "v.example.com", "origin": "o.example",
            "options": {"secure_key": {"enabled": true, "key": "secret_key", "type": 2}}})),
    );
    let id = res["id"].as_u64().unwrap();
    let path = format!("/cdn/resources/{id}/secure_key/revocations");
    let exp = tollgate_testkit::now() + 600;
    let link = tollgate_testkit::link("/a.mp4", exp, None);
    let (s, rev) = api.call("POST", &path, Some(&json!({ "link": link })));
    assert_eq!(s, 201, "{rev}");
    assert_eq!(
        (rev["id"].as_u64(), rev["expires"].as_i64()),
        (Some(1), Some(exp))
    );
    let (s, rev) = api.call(
        "POST",
        &path,
        Some(&json!({"path": "/course/", "prefix": true})),
    );
    assert_eq!((s, rev["id"].as_u64()), (201, Some(2)), "{rev}");
    for (bad, field) in [
        (json!({"link": "/a.mp4"}), "link"),
        (
            json!({"token": "AAAAAAAAAAAAAAAAAAAAAA"}),
            "secure_key_revocations[2].expires",
        ),
        (
            json!({"path": "/dir", "prefix": true}),
            "secure_key_revocations[2].path",
        ),
        (json!({"path": "/x", "color": 1}), ""),
        (
            json!({"token": "AAAAAAAAAAAAAAAAAAAAAA", "expires": 1}),
            "expires",
        ),
    ] {
        let (s, e) = api.call("POST", &path, Some(&bad));
        assert_eq!(s, 400, "{bad} -> {e}");
        let got = e["field"].as_str().or(e["errors"][0]["field"].as_str());
        assert_eq!(got, Some(field), "{bad} -> {e}");
    }
    // The resource's own PUT and PATCH (a Gcore client's) keep them.
    let (_, got) = api.call("GET", &format!("/cdn/resources/{id}"), None);
    assert_eq!(got["secure_key_revocations"].as_array().unwrap().len(), 2);
    let mut gcore_put = got.clone();
    gcore_put
        .as_object_mut()
        .unwrap()
        .remove("secure_key_revocations");
    assert_eq!(
        api.call("PUT", &format!("/cdn/resources/{id}"), Some(&gcore_put))
            .0,
        200
    );
    let (_, list) = api.call("GET", &path, None);
    assert_eq!(list["count"], 2, "{list}");
    // The audit names the change.
    let (_, audit) = api.call("GET", "/tollgate/audit", None);
    assert!(
        audit.to_string().contains("secure_key_revocations"),
        "{audit}"
    );
    assert_eq!(api.call("DELETE", &format!("{path}/1"), None).0, 204);
    assert_eq!(api.call("DELETE", &format!("{path}/1"), None).0, 404);
    // Without a secure key there is nothing to revoke.
    let (_, plain) = api.call(
        "POST",
        "/cdn/resources",
        Some(&json!({"cname": "p2.example.com", "origin": "o.example"})),
    );
    let pid = plain["id"].as_u64().unwrap();
    let (s, _) = api.call(
        "POST",
        &format!("/cdn/resources/{pid}/secure_key/revocations"),
        Some(&json!({"path": "/x"})),
    );
    assert_eq!(s, 400);
}

#[test]
fn subnet_bound_resources_sign_for_the_network_and_their_snippets_hash_it() {
    let r = start("subnet");
    let api = &r.api;
    let (s, e) = api.call(
        "POST",
        "/cdn/resources",
        Some(&json!({"cname": "n2.example.com", "origin": "o.example",
            "options": {"secure_key": {"enabled": true, "key": "secret_key", "type": 2,
                "ip_prefix": {"v4": 24, "v6": 64}}}})),
    );
    assert_eq!(
        (s, e["field"].as_str()),
        (400, Some("options.secure_key.ip_prefix")),
        "{e}"
    );
    let (s, e) = api.call(
        "POST",
        "/cdn/resources",
        Some(&json!({"cname": "n3.example.com", "origin": "o.example",
            "options": {"secure_key": {"enabled": true, "key": "secret_key", "type": 0,
                "ip_prefix": {"v4": 33, "v6": 64}}}})),
    );
    assert_eq!(
        (s, e["field"].as_str()),
        (400, Some("options.secure_key.ip_prefix.v4")),
        "{e}"
    );
    let (s, res) = api.call(
        "POST",
        "/cdn/resources",
        Some(&json!({"cname": "n.example.com", "origin": "o.example",
            "options": {"secure_key": {"enabled": true, "key": "secret_key", "type": 0,
                "ip_prefix": {"v4": 24, "v6": 64}}}})),
    );
    assert_eq!(s, 201, "{res}");
    let id = res["id"].as_u64().unwrap();
    let (s, signed) = api.call(
        "POST",
        &format!("/cdn/resources/{id}/sign"),
        Some(&json!({"path": "/a.mp4", "ip": "203.0.113.7", "expires": 2147483647})),
    );
    assert_eq!(s, 200, "{signed}");
    let key = tollgate_token::Key::new("secret_key").unwrap();
    let net = tollgate_token::RemoteAddr::network("203.0.113.7".parse().unwrap(), 24, 64);
    let want = tollgate_token::sign_as(&key, 2147483647, b"/a.mp4", Some(&net)).unwrap();
    assert!(
        signed["url"].as_str().unwrap().contains(want.as_str()),
        "{signed}"
    );
    assert!(
        signed.to_string().contains("203.0.113.0/24"),
        "the snippets hash the network: {signed}"
    );
}
