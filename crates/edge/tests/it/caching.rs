//! HTTP caching semantics through a running edge, the origin scripted per request (`/say/`):
//! what RFC 9111 and RFC 9213 say a shared cache stores, for how long, and when it may serve a
//! stale copy.

use std::time::{Duration, SystemTime};

use tollgate_edge::EdgeConfig;
use tollgate_testkit::origin::TestOrigin;
use tollgate_testkit::{link, now};

use crate::{resources, RunningEdge};

const HOST: &str = "cdn.example.com";

fn edge(origin: &TestOrigin) -> RunningEdge {
    RunningEdge::start(
        &resources(origin.port, &[(HOST, Some(2))]),
        EdgeConfig::default(),
    )
}

/// A signed link to `/say/<name>` answering with `headers` and `status`, and the target the
/// origin sees for it (the token's parameters taken off), for its request counts.
fn say(name: &str, status: u16, headers: &[&str]) -> (String, String) {
    let path = format!("/say/{name}");
    let mut query = format!("status={status}");
    for h in headers {
        query.push_str("&h=");
        query.push_str(&h.replace(' ', "%20").replace('"', "%22"));
    }
    let target = format!("{}&{query}", link(&path, now() + 600, None));
    (format!("{path}?{query}"), target)
}

#[test]
fn an_object_past_its_stale_window_is_revalidated_not_fetched_again() {
    // RFC 9111 4.3: a stored response with a validator is revalidated once stale; with
    // must-revalidate it has no stale window at all, and is still kept for that.
    let origin = TestOrigin::start();
    let e = edge(&origin);
    let (path, target) = say(
        "rev.txt",
        200,
        &["Cache-Control: max-age=1, must-revalidate", "ETag: \"v1\""],
    );
    let first = e.get(HOST, &target, &[]);
    assert_eq!(first.header("cache"), Some("MISS"));
    std::thread::sleep(Duration::from_millis(1300));
    let r = e.get(HOST, &target, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache"), Some("REVALIDATED"));
    assert_eq!(r.body, first.body);
    assert_eq!((origin.hits(&path), origin.not_modified()), (2, 1));
}

#[test]
fn no_cache_is_stored_and_revalidated_on_every_request() {
    // RFC 9111 5.2.2.4: stored, never used without validation.
    let origin = TestOrigin::start();
    let e = edge(&origin);
    let (path, target) = say("nc.txt", 200, &["Cache-Control: no-cache", "ETag: \"n1\""]);
    let first = e.get(HOST, &target, &[]);
    assert_eq!(first.header("cache"), Some("MISS"));
    for round in 1..=2 {
        let r = e.get(HOST, &target, &[]);
        assert_eq!(r.header("cache"), Some("REVALIDATED"), "round {round}");
        assert_eq!(r.body, first.body);
    }
    assert_eq!((origin.hits(&path), origin.not_modified()), (3, 2));
}

#[test]
fn s_maxage_and_must_revalidate_are_never_served_stale_when_the_origin_fails() {
    // RFC 9111 5.2.2.10 and 5.2.2.2; against a plain max-age, which may be served stale.
    let origin = TestOrigin::start();
    let e = edge(&origin);
    let cases = [
        (
            "smax.txt",
            "Cache-Control: s-maxage=1, stale-if-error=600",
            false,
        ),
        (
            "mustrev.txt",
            "Cache-Control: max-age=1, must-revalidate",
            false,
        ),
        (
            "proxyrev.txt",
            "Cache-Control: max-age=1, proxy-revalidate",
            false,
        ),
        ("plain.txt", "Cache-Control: max-age=1", true),
    ];
    let targets: Vec<String> = cases
        .iter()
        .map(|(name, cc, _)| {
            let (_, target) = say(name, 200, &[cc]);
            assert_eq!(e.get(HOST, &target, &[]).status, 200);
            target
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1300));
    origin.answer_all_with(Some(502));
    for ((name, _, stale_ok), target) in cases.iter().zip(&targets) {
        let r = e.get(HOST, target, &[]);
        if *stale_ok {
            assert_eq!(
                (r.status, r.header("cache")),
                (200, Some("STALE")),
                "{name}"
            );
        } else {
            assert_eq!(
                r.status, 502,
                "{name}: the origin's failure, not a stale copy"
            );
            assert_ne!(r.header("cache"), Some("STALE"), "{name}");
        }
    }
}

#[test]
fn any_status_with_explicit_freshness_is_served_from_the_cache() {
    // RFC 9111 3: 302, 500, 503 included (an origin in trouble is shielded from the burst).
    let origin = TestOrigin::start();
    let e = edge(&origin);
    for (name, status) in [
        ("moved", 302),
        ("broken", 500),
        ("busy", 503),
        ("gone", 410),
    ] {
        let (path, target) = say(name, status, &["Cache-Control: max-age=60", "Location: /x"]);
        for _ in 0..3 {
            assert_eq!(e.get(HOST, &target, &[]).status, status, "{name}");
        }
        assert_eq!(origin.hits(&path), 1, "{name}: one origin request");
    }
    // Without explicit freshness a 302 is not stored (the default lifetime is for 200 and 301).
    let (path, target) = say("temp", 302, &["Location: /x"]);
    e.get(HOST, &target, &[]);
    e.get(HOST, &target, &[]);
    assert_eq!(origin.hits(&path), 2);
}

#[test]
fn invalid_freshness_is_stale_not_the_default_hour() {
    // RFC 9111 4.2.1: invalid freshness information makes the response stale; the resource's
    // default applies only when the origin says nothing.
    let origin = TestOrigin::start();
    let e = edge(&origin);
    for (name, cc) in [
        ("neg", "Cache-Control: max-age=-3600"),
        ("quoted", "Cache-Control: max-age='3600'"),
        ("cdn0", "CDN-Cache-Control: max-age=0"),
        ("badexpires", "Expires: tomorrow"),
    ] {
        let (path, target) = say(name, 200, &[cc]);
        e.get(HOST, &target, &[]);
        let r = e.get(HOST, &target, &[]);
        assert_eq!(r.header("cache"), Some("MISS"), "{name}");
        assert_eq!(origin.hits(&path), 2, "{name}: fetched again");
    }
    let (path, target) = say("silent", 200, &[]);
    e.get(HOST, &target, &[]);
    assert_eq!(e.get(HOST, &target, &[]).header("cache"), Some("HIT"));
    assert_eq!(
        origin.hits(&path),
        1,
        "no information: the default lifetime"
    );
}

#[test]
fn cdn_cache_control_speaks_to_the_edge_above_cache_control() {
    // RFC 9213 2.1: the targeted field wins, for the edge; the browser's field passes through.
    let origin = TestOrigin::start();
    let e = edge(&origin);
    let (path, target) = say(
        "cdn.txt",
        200,
        &["Cache-Control: no-store", "CDN-Cache-Control: max-age=60"],
    );
    e.get(HOST, &target, &[]);
    let r = e.get(HOST, &target, &[]);
    assert_eq!(r.header("cache"), Some("HIT"));
    assert_eq!(
        r.header("cache-control"),
        Some("no-store"),
        "for the browser"
    );
    assert_eq!(origin.hits(&path), 1);
    // Tollgate's own field above both.
    let (path, target) = say(
        "tg.txt",
        200,
        &[
            "CDN-Cache-Control: no-store",
            "Tollgate-CDN-Cache-Control: max-age=60",
        ],
    );
    e.get(HOST, &target, &[]);
    assert_eq!(e.get(HOST, &target, &[]).header("cache"), Some("HIT"));
    assert_eq!(origin.hits(&path), 1);
    // One that does not parse as a Structured Field is ignored: Cache-Control applies.
    let (path, target) = say(
        "badcdn.txt",
        200,
        &["Cache-Control: max-age=60", "CDN-Cache-Control: max-age=(("],
    );
    e.get(HOST, &target, &[]);
    assert_eq!(e.get(HOST, &target, &[]).header("cache"), Some("HIT"));
    assert_eq!(origin.hits(&path), 1);
}

#[test]
fn expires_in_the_obsolete_date_forms_is_honoured() {
    // RFC 9110 5.6.7: a recipient accepts all three forms, names in any case.
    let origin = TestOrigin::start();
    let e = edge(&origin);
    let at = SystemTime::now() + Duration::from_secs(3600);
    let imf = httpdate::fmt_http_date(at); // "Thu, 03 Dec 2026 12:00:00 GMT"
    let (wday, rest) = imf.split_once(", ").unwrap();
    let parts: Vec<&str> = rest.split(' ').collect();
    let (day, mon, year, time) = (parts[0], parts[1], parts[2], parts[3]);
    let long = match wday {
        "Mon" => "Monday",
        "Tue" => "Tuesday",
        "Wed" => "Wednesday",
        "Thu" => "Thursday",
        "Fri" => "Friday",
        "Sat" => "Saturday",
        _ => "Sunday",
    };
    let rfc850 = format!("{long}, {day}-{mon}-{} {time} GMT", &year[2..]);
    let day_num: u32 = day.parse().unwrap();
    let asctime = format!("{wday} {mon} {day_num:>2} {time} {year}");
    let upper = imf.to_uppercase();
    for (name, date) in [("rfc850", rfc850), ("asctime", asctime), ("upper", upper)] {
        let (path, target) = say(
            name,
            200,
            &[&format!("Expires: {date}"), "Cache-Control: public"],
        );
        e.get(HOST, &target, &[]);
        assert_eq!(
            e.get(HOST, &target, &[]).header("cache"),
            Some("HIT"),
            "{name}: {date}"
        );
        assert_eq!(origin.hits(&path), 1, "{name}");
    }
}

#[test]
fn stale_while_revalidate_answers_at_once_and_revalidates_once_in_the_background() {
    // RFC 5861 3: within the window the stale copy is served without waiting, and one request
    // (not one per viewer) revalidates it.
    let origin = TestOrigin::start();
    let e = edge(&origin);
    let (path, target) = say(
        "swr.txt",
        200,
        &[
            "Cache-Control: max-age=1, stale-while-revalidate=30",
            "ETag: \"w1\"",
            // Slow to answer: a viewer that waited for the revalidation would be seen waiting.
        ],
    );
    let slow = format!("{target}&delay_ms=700");
    let origin_target = format!("{path}&delay_ms=700");
    let first = e.get(HOST, &slow, &[]);
    assert_eq!(first.header("cache"), Some("MISS"));
    std::thread::sleep(Duration::from_millis(1300));
    let started = std::time::Instant::now();
    for round in 0..5 {
        let r = e.get(HOST, &slow, &[]);
        assert_eq!(r.header("cache"), Some("UPDATING"), "round {round}");
        assert_eq!(r.body, first.body);
    }
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "served without waiting on the origin: {:?}",
        started.elapsed()
    );
    let t = std::time::Instant::now();
    while origin.not_modified() < 1 {
        assert!(t.elapsed() < Duration::from_secs(10), "never revalidated");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let r = e.get(HOST, &slow, &[]);
    assert_eq!(r.header("cache"), Some("HIT"), "fresh again from the 304");
    assert_eq!(
        (origin.hits(&origin_target), origin.not_modified()),
        (2, 1),
        "one fetch and one revalidation, for six viewers"
    );
}

#[test]
fn vary_keeps_one_copy_per_variant_and_fetches_a_new_one() {
    // RFC 9111 4.1: a response with `Vary: Accept-Language` is reused only for requests with
    // the same (normalised) Accept-Language.
    let origin = TestOrigin::start();
    let e = edge(&origin);
    let (path, target) = say(
        "lang.txt",
        200,
        &["Vary: Accept-Language", "Cache-Control: max-age=60"],
    );
    let target = format!("{target}&echo=accept-language");
    let path = format!("{path}&echo=accept-language");
    let get = |lang: &str| e.get(HOST, &target, &[("Accept-Language", lang)]);
    let says = |r: &tollgate_testkit::http::RawResponse, lang: &str| {
        String::from_utf8_lossy(&r.body).contains(&format!("accept-language: {lang}\n"))
    };
    let fr = get("fr");
    assert_eq!(fr.header("cache"), Some("MISS"));
    assert!(says(&fr, "fr"));
    let en = get("en");
    assert_eq!(en.header("cache"), Some("MISS"), "another variant: fetched");
    assert!(says(&en, "en"));
    for (lang, want) in [("fr", "fr"), ("FR", "fr"), ("en", "en")] {
        let r = get(lang);
        assert_eq!(r.header("cache"), Some("HIT"), "{lang}");
        assert!(
            says(&r, want),
            "{lang}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let de = get("de");
    assert_eq!(de.header("cache"), Some("MISS"));
    assert!(says(&de, "de"));
    let none = e.get(HOST, &target, &[]);
    assert!(says(&none, "(none)"), "no header is a variant of its own");
    assert_eq!(origin.hits(&path), 4);
    // `Vary: *` is never reused.
    let (path, target) = say("star.txt", 200, &["Vary: *", "Cache-Control: max-age=60"]);
    e.get(HOST, &target, &[]);
    e.get(HOST, &target, &[]);
    assert_eq!(origin.hits(&path), 2);
}

#[test]
fn the_viewers_headers_reach_the_origin_as_nginx_sends_them() {
    let origin = TestOrigin::start();
    let e = edge(&origin);
    let (path, target) = say("fwd.txt", 200, &["Cache-Control: no-store"]);
    let r = e.get(
        HOST,
        &target,
        &[
            ("Accept-Language", "fr"),
            ("Cookie", "sid=42"),
            ("User-Agent", "player/1.0"),
            ("X-Custom", "yes"),
            ("Connection", "X-Hop"),
            ("X-Hop", "dropped"),
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-Forwarded-For", "198.51.100.1"),
            ("X-Forwarded-Proto", "gopher"),
            ("Range", "bytes=0-1"),
            ("If-None-Match", "\"x\""),
            ("Accept-Encoding", "gzip"),
        ],
    );
    // Asked for whole, as the cache asks (a no-store answer then goes out whole: a range
    // may be ignored).
    assert_eq!(r.status, 200);
    let seen = origin.last_headers(&path);
    let get = |name: &str| -> Vec<&str> {
        seen.iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(get("accept-language"), ["fr"]);
    assert_eq!(get("cookie"), ["sid=42"]);
    assert_eq!(get("user-agent"), ["player/1.0"]);
    assert_eq!(get("x-custom"), ["yes"]);
    assert!(get("x-hop").is_empty(), "named by Connection: hop-by-hop");
    assert_eq!(
        get("x-forwarded-for"),
        ["203.0.113.7, 198.51.100.1, 127.0.0.1"],
        "every line of the viewer's chain, then its address"
    );
    assert_eq!(get("x-real-ip"), ["127.0.0.1"]);
    assert_eq!(get("x-forwarded-proto"), ["http"]);
    assert!(get("range").is_empty() && get("if-none-match").is_empty());
    assert_eq!(get("accept-encoding"), ["identity"]);
    assert_eq!(get("host").len(), 1);
    // Without a User-Agent of its own the viewer's request still says who asks.
    let (path, target) = say("fwd2.txt", 200, &["Cache-Control: no-store"]);
    e.get(HOST, &target, &[]);
    let seen = origin.last_headers(&path);
    assert!(seen
        .iter()
        .any(|(k, v)| k == "user-agent" && v == "tollgate-edge"));
}

#[test]
fn an_answer_to_authorization_is_stored_only_when_it_says_it_may_be() {
    // RFC 9111 3.5: public, s-maxage or must-revalidate; max-age alone is not enough.
    let origin = TestOrigin::start();
    let e = edge(&origin);
    let auth = [("Authorization", "Bearer t0k3n")];
    for (name, cc, stored) in [
        ("auth-max-age", "Cache-Control: max-age=60", false),
        ("auth-none", "X-Nothing: 1", false),
        ("auth-public", "Cache-Control: public, max-age=60", true),
        ("auth-smaxage", "Cache-Control: s-maxage=60", true),
        (
            "auth-mustrev",
            "Cache-Control: max-age=60, must-revalidate",
            true,
        ),
    ] {
        let (path, target) = say(name, 200, &[cc]);
        e.get(HOST, &target, &auth);
        let again = e.get(HOST, &target, &auth);
        let seen = origin.last_headers(&path);
        assert!(
            seen.iter()
                .any(|(k, v)| k == "authorization" && v == "Bearer t0k3n"),
            "{name}: forwarded"
        );
        let hits = if stored { 1 } else { 2 };
        assert_eq!(origin.hits(&path), hits, "{name}");
        let want = if stored { "HIT" } else { "MISS" };
        assert_eq!(again.header("cache"), Some(want), "{name}");
    }
}

/// An edge whose resource has these `edge_cache_settings`.
fn edge_with_cache(origin: &TestOrigin, settings: serde_json::Value) -> RunningEdge {
    let mut json: serde_json::Value =
        serde_json::from_str(&resources(origin.port, &[(HOST, Some(2))])).unwrap();
    json[0]["options"]["edge_cache_settings"] = settings;
    RunningEdge::start(&json.to_string(), EdgeConfig::default())
}

#[test]
fn per_status_times_keep_a_404_and_drop_what_says_0s() {
    // Gcore's custom_values, nginx's `proxy_cache_valid 404 10s; proxy_cache_valid 500 0s`.
    let origin = TestOrigin::start();
    let e = edge_with_cache(
        &origin,
        serde_json::json!({"enabled": true, "value": "1h",
            "custom_values": {"404": "10s", "500": "0s", "any": "1m"}}),
    );
    let (path, target) = say("next-segment.ts", 404, &["Cache-Control: no-cache"]);
    for want in ["MISS", "HIT", "HIT"] {
        let r = e.get(HOST, &target, &[]);
        assert_eq!((r.status, r.header("cache")), (404, Some(want)));
    }
    assert_eq!(
        origin.hits(&path),
        1,
        "one origin request for a burst of probes"
    );
    let (path, target) = say("broken", 500, &["Cache-Control: max-age=60"]);
    for _ in 0..2 {
        assert_eq!(e.get(HOST, &target, &[]).status, 500);
    }
    assert_eq!(
        origin.hits(&path),
        2,
        "0s: not stored, whatever the origin says"
    );
    let (path, target) = say("gone", 410, &[]);
    e.get(HOST, &target, &[]);
    assert_eq!(
        e.get(HOST, &target, &[]).header("cache"),
        Some("HIT"),
        "any"
    );
    assert_eq!(origin.hits(&path), 1);

    // Without `value`, a status's time applies when the origin gives no freshness.
    let origin = TestOrigin::start();
    let e = edge_with_cache(
        &origin,
        serde_json::json!({"enabled": true, "custom_values": {"404": "10s"}}),
    );
    let (plain, plain_target) = say("missing", 404, &[]);
    let (told, told_target) = say("missing-now", 404, &["Cache-Control: no-store"]);
    for _ in 0..2 {
        e.get(HOST, &plain_target, &[]);
        e.get(HOST, &told_target, &[]);
    }
    assert_eq!((origin.hits(&plain), origin.hits(&told)), (1, 2));
}

#[test]
fn browser_cache_settings_set_what_viewers_keep_not_what_the_edge_keeps() {
    // Gcore's browser_cache_settings, nginx's `expires`: for 200..308 answers only.
    let origin = TestOrigin::start();
    let mut json: serde_json::Value =
        serde_json::from_str(&resources(origin.port, &[(HOST, Some(2))])).unwrap();
    json[0]["options"]["browser_cache_settings"] =
        serde_json::json!({"enabled": true, "value": "3600s"});
    json.as_array_mut()
        .unwrap()
        .push(serde_json::json!({"id": 2, "cname": "nocache.example.com",
        "origin": format!("127.0.0.1:{}", origin.port),
        "options": {"browser_cache_settings": {"enabled": true, "value": "0s"}}}));
    let e = RunningEdge::start(&json.to_string(), EdgeConfig::default());
    let (path, target) = say(
        "page",
        200,
        &[
            "Cache-Control: max-age=5",
            "Expires: Thu, 01 Jan 2037 00:00:00 GMT",
        ],
    );
    for want in ["MISS", "HIT"] {
        let r = e.get(HOST, &target, &[]);
        assert_eq!(r.header("cache"), Some(want));
        assert_eq!(r.header("cache-control"), Some("max-age=3600"));
        let expires = httpdate::parse_http_date(r.header("expires").unwrap()).unwrap();
        let ahead = expires.duration_since(SystemTime::now()).unwrap().as_secs();
        assert!((3590..=3600).contains(&ahead), "{ahead}");
    }
    assert_eq!(origin.hits(&path), 1, "the edge keeps its own time");
    let (_, missing) = say("missing", 404, &["Cache-Control: max-age=5"]);
    assert_eq!(
        e.get(HOST, &missing, &[]).header("cache-control"),
        Some("max-age=5")
    );
    assert_eq!(
        e.get(HOST, &target, &[("Range", "bytes=0-1")])
            .header("cache-control"),
        Some("max-age=3600")
    );
    let r = e.get("nocache.example.com", "/plain", &[]);
    assert_eq!(
        (r.status, r.header("cache-control"), r.header("expires")),
        (200, Some("no-cache"), None)
    );
}

#[test]
fn static_response_headers_are_added_and_always_reaches_the_gates_refusals() {
    // Gcore's static_response_headers, nginx's `add_header` (`always` for every status).
    let origin = TestOrigin::start();
    let mut json: serde_json::Value =
        serde_json::from_str(&resources(origin.port, &[(HOST, Some(2))])).unwrap();
    json[0]["options"]["static_response_headers"] = serde_json::json!({"enabled": true, "value": [
        {"name": "Content-Disposition", "value": ["attachment"]},
        {"name": "Timing-Allow-Origin", "value": ["*"], "always": true},
        {"name": "X-Two", "value": ["a", "b"]}]});
    let e = RunningEdge::start(&json.to_string(), EdgeConfig::default());
    let (_, target) = say("file.bin", 200, &["X-Two: origin"]);
    for want in ["MISS", "HIT"] {
        let r = e.get(HOST, &target, &[]);
        assert_eq!(r.header("cache"), Some(want));
        assert_eq!(r.header("content-disposition"), Some("attachment"));
        assert_eq!(r.header("timing-allow-origin"), Some("*"));
        let two: Vec<&str> = r
            .headers
            .iter()
            .filter(|(k, _)| k == "x-two")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(two, ["origin", "a", "b"], "appended, as add_header does");
    }
    let refused = e.get(HOST, "/file.bin", &[]);
    assert_eq!(refused.status, 403);
    assert_eq!(refused.header("timing-allow-origin"), Some("*"), "always");
    assert_eq!(refused.header("content-disposition"), None);
    let (_, missing) = say("missing", 404, &[]);
    assert_eq!(
        e.get(HOST, &missing, &[]).header("content-disposition"),
        None
    );
}
