//! Gcore's API as its tools use it: list envelopes and filters, origin groups, the top-level
//! fields and option names Gcore's clients send, read-only answer fields (posted back as they
//! are), deployment `status`, purge statuses, and the paths out of scope.

use serde_json::{json, Value};

use crate::{edge_api, good, start, version};

fn create(api: &tollgate_testkit::api::Api, body: Value) -> Value {
    let (s, r) = api.call("POST", "/cdn/resources", Some(&body));
    assert_eq!(s, 201, "{body} -> {r}");
    r
}

fn ids(list: &Value) -> Vec<u64> {
    let items = list.get("results").unwrap_or(list);
    items
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect()
}

#[test]
fn lists_are_envelopes_with_limit_bare_without_and_filtered_by_gcore_parameters() {
    let r = start("gcore-list");
    let api = &r.api;
    let a = create(
        api,
        json!({"cname": "a.example.com", "origin": "o.example", "name": "alpha",
            "secondaryHostnames": ["alt-a.example.com"]}),
    );
    let b = create(
        api,
        json!({"cname": "b.example.com", "origin": "o.example", "name": "beta", "sslEnabled": true}),
    );
    let c = create(
        api,
        json!({"cname": "c.example.com", "originGroup": a["originGroup"], "active": false}),
    );
    let (a, b, c) = (
        a["id"].as_u64().unwrap(),
        b["id"].as_u64().unwrap(),
        c["id"].as_u64().unwrap(),
    );

    let (s, bare) = api.call("GET", "/cdn/resources", None);
    assert_eq!((s, ids(&bare)), (200, vec![a, b, c]));
    assert!(
        bare.is_array(),
        "without limit, a bare array (Gcore's Go client)"
    );
    let (_, page) = api.call("GET", "/cdn/resources?limit=2", None);
    assert_eq!((page["count"].as_u64(), ids(&page)), (Some(3), vec![a, b]));
    assert_eq!(page["previous"], Value::Null);
    assert_eq!(page["next"], "/cdn/resources?limit=2&offset=2");
    let (_, last) = api.call("GET", "/cdn/resources?limit=2&offset=2", None);
    assert_eq!((ids(&last), &last["next"]), (vec![c], &Value::Null));

    let group = api.call("GET", &format!("/cdn/resources/{a}"), None).1["originGroup"].clone();
    let future = "2999-01-01T00:00:00Z";
    for (query, want) in [
        ("cname=a.example.com", vec![a]),
        ("cname=ALT-A.example.com", vec![a]),
        ("secondaryHostnames=alt-a.example.com", vec![a]),
        ("secondary_hostnames=alt-a.example.com", vec![a]),
        ("active=false", vec![c]),
        ("active=true", vec![a, b]),
        ("status=active", vec![a, b, c]),
        ("status=processed", vec![]),
        ("deleted=true", vec![]),
        ("deleted=false", vec![a, b, c]),
        ("sslEnabled=true", vec![b]),
        ("ssl_enabled=false", vec![a, c]),
        ("name=beta", vec![b]),
        ("originProtocol=HTTP", vec![a, b, c]),
        (&format!("originGroup={group}"), vec![a, c]),
        (&format!("origin_group={group}"), vec![a, c]),
        (&format!("originGroup__in={group},999"), vec![a, c]),
        ("min_created=2000-01-01", vec![a, b, c]),
        (&format!("min_created={future}"), vec![]),
        (&format!("max_updated={future}"), vec![a, b, c]),
        ("cname=a.example.com&active=false", vec![]),
        (
            "vp_enabled=false&shielded=false&suspended=false",
            vec![a, b, c],
        ),
    ] {
        let (s, list) = api.call("GET", &format!("/cdn/resources?{query}"), None);
        assert_eq!((s, ids(&list)), (200, want.clone()), "{query}: {list}");
        let (_, page) = api.call("GET", &format!("/cdn/resources?{query}&limit=1000"), None);
        assert_eq!(page["count"].as_u64(), Some(want.len() as u64), "{query}");
    }
    for (query, field, words) in [
        ("bogus=1", "bogus", "unknown parameter bogus"),
        ("rules=1", "rules", "not supported by Tollgate"),
        ("active=maybe", "active", "not true or false"),
        ("limit=5000", "limit", "1 to 1000"),
        ("min_created=last-week", "min_created", "not a time"),
    ] {
        let (s, e) = api.call("GET", &format!("/cdn/resources?{query}"), None);
        assert_eq!((s, e["field"].as_str()), (400, Some(field)), "{query}: {e}");
        assert!(e["message"].as_str().unwrap().contains(words), "{e}");
    }
}

#[test]
fn origin_groups_are_gcore_objects_resources_refer_to() {
    let r = start("gcore-groups");
    let api = &r.api;
    let (s, g) = api.call(
        "POST",
        "/cdn/origin_groups",
        Some(
            &json!({"name": "video", "use_next": true, "proxy_next_upstream": ["error", "http_503"],
            "sources": [{"source": "a.example:8080"}, {"source": "b.example", "backup": true}]}),
        ),
    );
    assert_eq!(s, 201, "{g}");
    let gid = g["id"].as_u64().unwrap();
    assert_eq!(
        g,
        json!({"id": gid, "name": "video", "use_next": true, "auth_type": "none", "path": "",
            "proxy_next_upstream": ["error", "http_503"], "has_related_resources": false,
            "sources": [
                {"source": "a.example:8080", "backup": false, "enabled": true, "host_header_override": null},
                {"source": "b.example", "backup": true, "enabled": true, "host_header_override": null}]})
    );
    let res = create(
        api,
        json!({"cname": "cdn.example.com", "originGroup": gid, "originProtocol": "HTTPS"}),
    );
    let id = res["id"].as_u64().unwrap();
    assert_eq!(res["originGroup"], gid);
    assert_eq!(res["originGroup_name"], "video");
    assert_eq!(
        res["origin"], "a.example:8080",
        "the first source, as a shortcut"
    );
    assert!(res.get("originGroup_detail").is_none(), "edges' copy only");
    let (_, got) = api.call("GET", &format!("/cdn/origin_groups/{gid}"), None);
    assert_eq!(got["has_related_resources"], true);

    // An edge of a version before groups (it sends no name) is given the fields it knows.
    let (_, old) = edge_api(api).call("GET", "/edge/v1/config?since=0&wait=0", None);
    let mut keys: Vec<&String> = old["resources"][0].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "active",
            "cname",
            "id",
            "options",
            "origin",
            "originProtocol",
            "secondaryHostnames"
        ]
    );
    assert_eq!(old["resources"][0]["origin"], "a.example:8080");

    // Edges are given the group with the resource, and again when the group changes.
    let before = version(api);
    let (_, snap) = edge_api(api).call("GET", "/edge/v1/config?since=0&wait=0&edge=e", None);
    assert_eq!(
        snap["resources"][0]["originGroup_detail"]["sources"][1]["backup"],
        true
    );
    let (s, patched) = api.call(
        "PATCH",
        &format!("/cdn/origin_groups/{gid}"),
        Some(&json!({"sources": [{"source": "c.example"}]})),
    );
    assert_eq!((s, &patched["name"]), (200, &json!("video")), "{patched}");
    let (_, delta) = edge_api(api).call(
        "GET",
        &format!("/edge/v1/config?since={before}&wait=0&epoch=0&edge=e"),
        None,
    );
    assert_eq!(
        delta["resources"][0]["originGroup_detail"]["sources"][0]["source"], "c.example",
        "{delta}"
    );
    let (_, res) = api.call("GET", &format!("/cdn/resources/{id}"), None);
    assert_eq!(res["origin"], "c.example");

    // PUT replaces whole; Gcore's list shapes and filters.
    let (s, put) = api.call(
        "PUT",
        &format!("/cdn/origin_groups/{gid}"),
        Some(&json!({"name": "video2", "use_next": false, "sources": [{"source": "d.example"}]})),
    );
    assert_eq!(
        (s, &put["proxy_next_upstream"]),
        (200, &json!(["error", "timeout"]))
    );
    let (_, other) = api.call(
        "POST",
        "/cdn/origin_groups",
        Some(&json!({"name": "spare", "sources": [{"source": "e.example"}]})),
    );
    let spare = other["id"].as_u64().unwrap();
    let (_, list) = api.call("GET", "/cdn/origin_groups?limit=1000", None);
    assert_eq!(ids(&list), [gid, spare]);
    for (query, want) in [
        ("name=spare", vec![spare]),
        ("has_related_resources=true", vec![gid]),
        ("sources=d.example", vec![gid]),
    ] {
        let (_, l) = api.call("GET", &format!("/cdn/origin_groups?{query}"), None);
        assert_eq!(ids(&l), want, "{query}");
    }

    // A group in use stays; an unused one goes.
    let (s, e) = api.call("DELETE", &format!("/cdn/origin_groups/{gid}"), None);
    assert_eq!(s, 400, "{e}");
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains(&format!("used by resource {id}")));
    assert_eq!(
        api.call("DELETE", &format!("/cdn/origin_groups/{spare}"), None)
            .0,
        204
    );
    let (s, e) = api.call("GET", &format!("/cdn/origin_groups/{spare}"), None);
    assert_eq!(
        (s, e["message"].as_str()),
        (404, Some("origin group not found"))
    );

    // Refusals name the field.
    for (body, field, words) in [
        (
            json!({"name": "x", "sources": [{"source": "bad host"}]}),
            "sources[0].source",
            "host[:port]",
        ),
        (json!({"name": "x", "sources": []}), "sources", "1 to 32"),
        (
            json!({"name": "x", "sources": [{"source": "a"}], "proxy_next_upstream": ["http_418"]}),
            "proxy_next_upstream[0]",
            "not one of",
        ),
        (
            json!({"name": "x", "auth_type": "awsSignatureV4", "auth": {"s3_type": "amazon"}}),
            "sources",
            "1 to 32",
        ),
        (
            json!({"name": "x", "sources": [{"source": "a"}], "auth_type": "awsSignatureV4"}),
            "auth_type",
            "not supported by Tollgate",
        ),
        (
            json!({"name": "x", "sources": [{"source": "a", "host_header_override": "h"}]}),
            "sources[0].host_header_override",
            "not supported by Tollgate",
        ),
    ] {
        let (s, e) = api.call("POST", "/cdn/origin_groups", Some(&body));
        assert_eq!((s, e["field"].as_str()), (400, Some(field)), "{body}: {e}");
        assert!(e["message"].as_str().unwrap().contains(words), "{e}");
    }
    let (s, e) = api.call(
        "POST",
        "/cdn/resources",
        Some(&json!({"cname": "x.example.com", "originGroup": 999})),
    );
    assert_eq!((s, e["field"].as_str()), (400, Some("originGroup")), "{e}");
    let (s, e) = api.call(
        "POST",
        "/cdn/resources",
        Some(&json!({"cname": "y.example.com", "originGroup": gid, "origin": "z.example"})),
    );
    assert_eq!((s, e["field"].as_str()), (400, Some("origin")), "{e}");

    // PATCH with `origin` alone (the panel's form sends it with every save): the one shown is
    // no change; another is a group of that one source, as on create.
    let path = format!("/cdn/resources/{id}");
    let (s, same) = api.call(
        "PATCH",
        &path,
        Some(&json!({"origin": "d.example", "active": true})),
    );
    assert_eq!((s, &same["originGroup"]), (200, &json!(gid)), "{same}");
    let (s, moved) = api.call("PATCH", &path, Some(&json!({"origin": "f.example:81"})));
    assert_eq!(
        (s, &moved["origin"]),
        (200, &json!("f.example:81")),
        "{moved}"
    );
    assert_ne!(moved["originGroup"], gid);
    assert_eq!(moved["originGroup_name"], "cdn.example.com_origin_group");
    let (s, back) = api.call("PATCH", &path, Some(&json!({"originGroup": gid})));
    assert_eq!((s, &back["origin"]), (200, &json!("d.example")), "{back}");
    // So does PUT: the origin the resource shows keeps its group, no new one is made.
    let groups = api.call("GET", "/cdn/origin_groups", None).1;
    let (s, put) = api.call("PUT", &path, Some(&json!({"origin": "d.example"})));
    assert_eq!((s, &put["originGroup"]), (200, &json!(gid)), "{put}");
    assert_eq!(api.call("GET", "/cdn/origin_groups", None).1, groups);
}

#[test]
fn the_group_made_for_the_longest_hostname_is_one_edges_accept() {
    let r = start("gcore-long-cname");
    let api = &r.api;
    let label = "a".repeat(63);
    let cname = format!("{label}.{label}.{label}.{}.example", "b".repeat(53));
    assert_eq!(cname.len(), 253);
    let res = create(api, json!({"cname": cname, "origin": "o.example"}));
    assert_eq!(res["originGroup_name"].as_str().unwrap().len(), 255);
    let (_, snap) = edge_api(api).call("GET", "/edge/v1/config?since=0&wait=0&edge=e", None);
    let resources: Vec<tollgate_model::Resource> =
        serde_json::from_value(snap["resources"].clone()).unwrap();
    assert_eq!(
        tollgate_model::validate_all(resources).map(|v| v.len()),
        Ok(1)
    );
}

#[test]
fn gcore_top_level_fields_and_option_names_are_accepted_when_they_ask_for_nothing_unsupported() {
    let r = start("gcore-fields");
    let api = &r.api;
    let mut options = serde_json::Map::new();
    for name in tollgate_model::GCORE_OPTIONS {
        options.insert(name.into(), Value::Null);
    }
    options.insert(
        "secure_key".into(),
        json!({"enabled": true, "key": "secret_key", "type": 2}),
    );
    options.insert(
        "edge_cache_settings".into(),
        json!({"enabled": true, "value": "10m", "custom_values": {}, "default": ""}),
    );
    options.insert("gzipOn".into(), json!({"enabled": true, "value": false}));
    options.insert("cors".into(), json!({"enabled": false, "value": ["*"]}));
    let body = json!({"cname": "cdn.example.com", "origin": "o.example", "sslEnabled": false,
        "sslData": null, "proxy_ssl_enabled": false, "proxy_ssl_ca": null, "proxy_ssl_data": null,
        "primary_resource": null, "waap_api_domain_enabled": false, "options": options});
    let res = create(api, body.clone());
    let opts = res["options"].as_object().unwrap();
    let mut names: Vec<&str> = opts.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        ["cors", "edge_cache_settings", "gzipOn", "secure_key"],
        "nulls are not added"
    );
    assert_eq!(
        opts["cors"],
        json!({"enabled": false, "value": ["*"]}),
        "kept as given"
    );
    for (k, v) in [
        ("status", json!("active")),
        ("client", json!(1)),
        ("deleted", json!(false)),
        ("enabled", json!(true)),
        ("suspended", json!(false)),
        ("shielded", json!(false)),
        ("rules", json!([])),
        ("can_purge_by_urls", json!(true)),
        ("sslEnabled", json!(false)),
        ("sslData", Value::Null),
        ("proxy_ssl_ca", Value::Null),
    ] {
        assert_eq!(res[k], v, "{k}");
    }
    for k in ["created", "updated"] {
        let t = res[k].as_str().unwrap();
        assert!(
            tollgate_control::listing::parse_time(t).is_some() && t.ends_with('Z'),
            "{k}: {t}"
        );
    }

    let mut other = body.clone();
    other["cname"] = json!("other.example.com");
    for (path, value, field, words) in [
        (
            "/sslData",
            json!(192),
            "sslData",
            "not supported by Tollgate",
        ),
        (
            "/proxy_ssl_ca",
            json!(3),
            "proxy_ssl_ca",
            "not supported by Tollgate",
        ),
        (
            "/proxy_ssl_data",
            json!(3),
            "proxy_ssl_data",
            "not supported by Tollgate",
        ),
        (
            "/primary_resource",
            json!(1),
            "primary_resource",
            "not supported by Tollgate",
        ),
        (
            "/waap_api_domain_enabled",
            json!(true),
            "waap_api_domain_enabled",
            "not supported by Tollgate",
        ),
        (
            "/rules",
            json!([{"rule": "/x"}]),
            "rules",
            "not supported by Tollgate",
        ),
        (
            "/options/websockets",
            json!({"enabled": true, "value": true}),
            "options.websockets",
            "option websockets is not supported by Tollgate",
        ),
        (
            "/options/cors",
            json!({"enabled": true, "value": ["*", "a.com"]}),
            "options.cors.value[0]",
            "stands alone",
        ),
        (
            "/options/ip_address_acl",
            json!({"enabled": true, "policy_type": "deny", "excepted_values": ["10.0.0.0/33"]}),
            "options.ip_address_acl.excepted_values[0]",
            "prefix length",
        ),
        (
            "/options/country_acl",
            json!({"enabled": true, "policy_type": "deny", "excepted_values": ["DE"]}),
            "options.country_acl",
            "GeoIP database",
        ),
        (
            "/options/force_return",
            json!({"enabled": true, "code": 403, "body": ""}),
            "options.force_return",
            "not supported by Tollgate",
        ),
        (
            "/options/edge_cache_settings/custom_values",
            json!({"4o4": "10s"}),
            "options.edge_cache_settings.custom_values.4o4",
            "a status code",
        ),
        (
            "/options/no_such_option",
            Value::Null,
            "options.no_such_option",
            "unknown field",
        ),
    ] {
        let mut b = other.clone();
        let (parent, key) = path.rsplit_once('/').unwrap();
        b.pointer_mut(if parent.is_empty() { "" } else { parent })
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert(key.into(), value);
        let (s, e) = api.call("POST", "/cdn/resources", Some(&b));
        assert_eq!((s, e["field"].as_str()), (400, Some(field)), "{path}: {e}");
        let message = e["message"].as_str().unwrap();
        assert!(message.contains(words), "{path}: {e}");
        assert!(
            !message.contains("unknown field") || words == "unknown field",
            "{e}"
        );
    }

    // What GET answers goes back to POST and PUT as it is.
    let id = res["id"].as_u64().unwrap();
    let (_, got) = api.call("GET", &format!("/cdn/resources/{id}"), None);
    let (s, put) = api.call("PUT", &format!("/cdn/resources/{id}"), Some(&got));
    assert_eq!(s, 200, "{put}");
    assert_eq!(put["options"], got["options"]);
    assert_eq!(put["created"], got["created"], "creation time kept");
    let mut export = got.clone();
    export["cname"] = json!("copy.example.com");
    let copy = create(api, export);
    assert_eq!(copy["originGroup"], got["originGroup"]);
    assert_ne!(copy["id"], got["id"]);
}

#[test]
fn status_is_processed_until_every_polling_edge_holds_the_change() {
    let r = start("gcore-status");
    let api = &r.api;
    let edge = edge_api(api);
    let held = version(api);
    // An edge holding the current version, by its name.
    let (s, _) = edge.call(
        "GET",
        &format!("/edge/v1/config?since={held}&wait=0&edge=e1"),
        None,
    );
    assert_eq!(s, 304);
    let res = create(api, good());
    let id = res["id"].as_u64().unwrap();
    assert_eq!(res["status"], "processed", "{res}");
    let (_, snap) = edge.call(
        "GET",
        &format!("/edge/v1/config?since={held}&wait=0&edge=e1"),
        None,
    );
    let now = snap["version"].as_u64().unwrap();
    assert_eq!(
        api.call("GET", &format!("/cdn/resources/{id}"), None).1["status"],
        "processed"
    );
    edge.call(
        "GET",
        &format!("/edge/v1/config?since={now}&wait=0&edge=e1"),
        None,
    );
    assert_eq!(
        api.call("GET", &format!("/cdn/resources/{id}"), None).1["status"],
        "active"
    );
    // A second edge behind holds it back again.
    edge.call(
        "GET",
        &format!("/edge/v1/config?since={held}&wait=0&edge=e2"),
        None,
    );
    let (_, list) = api.call("GET", "/cdn/resources?status=processed", None);
    assert_eq!(ids(&list), [id]);
    let (s, e) = edge.call(
        "GET",
        &format!("/edge/v1/config?since=0&wait=0&edge={}", "x".repeat(300)),
        None,
    );
    assert_eq!((s, e["field"].as_str()), (400, Some("edge")));
}

#[test]
fn purges_take_gcore_patterns_and_report_their_status() {
    let r = start("gcore-purge");
    let api = &r.api;
    let id = create(api, good())["id"].as_u64().unwrap();
    for body in [
        json!({"urls": ["/a.jpg"]}),
        json!({"paths": ["*.jpg", "/img/*"]}),
        json!({"paths": []}),
    ] {
        let (s, e) = api.call("POST", &format!("/cdn/resources/{id}/purge"), Some(&body));
        assert_eq!(s, 201, "{body}: {e}");
    }
    let (s, e) = api.call(
        "POST",
        &format!("/cdn/resources/{id}/purge"),
        Some(&json!({"urls": ["*.jpg"]})),
    );
    assert_eq!(
        (s, e["field"].as_str()),
        (400, Some("urls[0]")),
        "urls are paths"
    );
    let (s, page) = api.call("GET", "/cdn/purge_statuses?limit=10", None);
    assert_eq!((s, page["count"].as_u64()), (200, Some(3)), "{page}");
    let kinds: Vec<&str> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["purge_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["purge_all", "purge_by_pattern", "purge_by_url"],
        "newest first"
    );
    let first = &page["results"][2];
    assert_eq!(first["status"], "Successful");
    assert_eq!(
        first["resource"],
        json!({"id": id, "cname": "cdn.example.com"})
    );
    assert_eq!(first["payload"], json!({"urls": ["/a.jpg"]}));
    let (_, by_type) = api.call("GET", "/cdn/purge_statuses?purge_type=purge_by_url", None);
    assert_eq!(by_type.as_array().unwrap().len(), 1);
    let (_, by_cname) = api.call("GET", "/cdn/purge_statuses?cname=other.example.com", None);
    assert_eq!(by_cname, json!([]));
}

#[test]
fn gcore_paths_out_of_scope_answer_501_saying_so() {
    let r = start("gcore-501");
    let api = &r.api;
    let id = create(api, good())["id"].as_u64().unwrap();
    for (method, path) in [
        ("GET", "/cdn/sslData".to_owned()),
        ("POST", "/cdn/sslData".to_owned()),
        ("GET", format!("/cdn/resources/{id}/rules")),
        ("PUT", format!("/cdn/resources/{id}/shielding_v2")),
        ("GET", "/cdn/resources/rule_templates".to_owned()),
        ("GET", "/cdn/statistics/series".to_owned()),
        ("GET", "/cdn/logs_uploader/targets".to_owned()),
    ] {
        let (s, e) = api.call(method, &path, Some(&json!({})));
        assert_eq!(s, 501, "{method} {path}: {e}");
        let m = e["message"].as_str().unwrap();
        assert!(
            m.contains(&path) && m.contains("not supported by Tollgate"),
            "{m}"
        );
    }
    let (s, e) = api.call("GET", "/cdn/resourcez", None);
    assert_eq!((s, e["message"].as_str()), (404, Some("route not found")));
}
