//! The panel in real headless Chromium (Debian's chromium and chromium-driver), against
//! `tollgate serve`: every screen driven through the panel, then checked through the API and,
//! where it matters, through the edge (a purge makes the next request a MISS, a revoked link is
//! refused, an access list refuses an address). Bad input shows its error next to its field in
//! words; one test does create resource -> secure token -> link by keyboard alone. Screenshots of
//! every screen at desktop and phone width go to `target/screenshots/panel-*.png`.

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{elements::Element, Client, ClientBuilder, Locator};
use serde_json::json;
use tollgate_testkit::http::request;
use tollgate_testkit::origin::TestOrigin;
use tollgate_testkit::tools::require;

use crate::procs::{until, TempDir, TOKEN};

pub struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start_driver() -> (Driver, u16) {
    let bin = require("chromedriver", "chromium-driver");
    require("chromium", "chromium");
    let port = tollgate_testkit::free_port();
    let child = Command::new(bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver(child);
    until(Duration::from_secs(10), "chromedriver listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (driver, port)
}

/// A headless Chromium session through chromedriver on `driver_port`; `args` are added to
/// Chromium's command line.
pub async fn chromium(driver_port: u16, args: &[&str]) -> Client {
    let mut all = vec![
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
    ];
    all.extend_from_slice(args);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": "/usr/bin/chromium", "args": all}),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("starting a Chromium session")
}

pub fn screenshots_dir() -> std::path::PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tollgate_testkit::repo_root().join("target"))
        .join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Desktop and phone window sizes of the screenshots.
const DESKTOP: (u32, u32) = (1280, 1500);
const PHONE: (u32, u32) = (390, 1700);

/// Screenshots of the page as it is, at desktop and at phone width (`panel-NAME.png`,
/// `panel-NAME-phone.png`).
async fn shot(c: &Client, name: &str) {
    let dir = screenshots_dir();
    std::fs::write(
        dir.join(format!("panel-{name}.png")),
        c.screenshot().await.unwrap(),
    )
    .unwrap();
    // No "null" or "undefined" printed where an element was left out.
    let text = c
        .execute("return document.body.innerText;", vec![])
        .await
        .unwrap();
    let text = text.as_str().unwrap_or_default();
    assert!(
        !text
            .lines()
            .any(|l| matches!(l.trim(), "null" | "undefined" | "NaN")),
        "{name}: {text}"
    );
    c.set_window_size(PHONE.0, PHONE.1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    std::fs::write(
        dir.join(format!("panel-{name}-phone.png")),
        c.screenshot().await.unwrap(),
    )
    .unwrap();
    // The page fits the phone's width: nothing wider than the window but what scrolls inside.
    let wide = c
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        wide.as_i64().unwrap_or(0) <= 0,
        "{name}: the page is {wide} px wider than a phone"
    );
    c.set_window_size(DESKTOP.0, DESKTOP.1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn el(c: &Client, css: &str) -> Element {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
}

/// Waits until the text of `css` satisfies `ok`; returns it.
async fn text_until(c: &Client, css: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let text = match c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if ok(&text) {
            return text;
        }
        if std::time::Instant::now() > deadline {
            panic!("{css}: text {text:?} never matched");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fill(c: &Client, css: &str, text: &str) {
    let e = el(c, css).await;
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    el(c, css).await.click().await.unwrap();
}

async fn value(c: &Client, css: &str) -> String {
    el(c, css)
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

async fn checked(c: &Client, css: &str) -> bool {
    el(c, css).await.prop("checked").await.unwrap().as_deref() == Some("true")
}

/// Sets a `<select>` by its option's value, as a user picking it would (a change event).
async fn choose(c: &Client, css: &str, v: &str) {
    el(c, css).await.select_by_value(v).await.unwrap();
}

/// The API's view, polled until `ok` holds (a save answers before its status line is read).
fn api_until(
    api: &tollgate_testkit::api::Api,
    path: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    until(Duration::from_secs(10), path, || {
        last = api.call("GET", path, None).1;
        ok(&last)
    });
    last
}

/// One browser at a time: the tests of this file run in parallel otherwise, and two Chromiums
/// on a 2-core machine make every wait a guess.
static BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A logged-in panel on a fresh `tollgate serve` with one origin.
struct Session {
    c: Client,
    panel: String,
    api: tollgate_testkit::api::Api,
    edge: u16,
    origin: TestOrigin,
    _serve: crate::procs::Proc,
    _data: TempDir,
}

fn with_panel<F>(name: &str, body: impl FnOnce(Session) -> F)
where
    F: std::future::Future<Output = ()>,
{
    let _one = BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let origin = TestOrigin::start();
    let data = TempDir::new(name);
    let (serve, api, edge) = crate::procs::serve(&data);
    let (_driver, driver_port) = start_driver();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let size = format!("--window-size={},{}", DESKTOP.0, DESKTOP.1);
        let c = chromium(driver_port, &[&size]).await;
        let panel = format!("http://127.0.0.1:{}/", api.port);
        c.goto(&panel).await.unwrap();
        fill(&c, "#login-token", TOKEN).await;
        click(&c, "#login-submit").await;
        el(&c, "#resource-rows").await;
        let closer = c.clone();
        body(Session {
            c,
            panel,
            api,
            edge,
            origin,
            _serve: serve,
            _data: data,
        })
        .await;
        closer.close().await.unwrap();
    });
}

/// Creates resource `cname` through the API, its origin the session's; its id.
fn resource(s: &Session, cname: &str, options: serde_json::Value) -> u64 {
    let (st, r) = s.api.call(
        "POST",
        "/cdn/resources",
        Some(&json!({"cname": cname, "origin": format!("127.0.0.1:{}", s.origin.port), "options": options})),
    );
    assert_eq!(st, 201, "{r}");
    r["id"].as_u64().unwrap()
}

/// A request to the session's edge from `from`; (status, `Cache` header).
fn edge_get(s: &Session, from: Ipv4Addr, host: &str, target: &str) -> (u16, String) {
    let r = request(from, s.edge, "GET", target.as_bytes(), &[("Host", host)]).unwrap();
    (r.status, r.header("cache").unwrap_or_default().to_owned())
}

#[test]
fn panel_resources_list_create_edit_delete() {
    with_panel("panel-res", |s| async move {
        let c = &s.c;
        shot(c, "01-resources-empty").await;
        // A wrong token is refused (the session logs in again after).
        click(c, "#logout").await;
        fill(c, "#login-token", "tg_not_the_right_token").await;
        click(c, "#login-submit").await;
        text_until(c, "#login-error", 10, |t| t.contains("not accepted")).await;
        shot(c, "00-login-refused").await;
        fill(c, "#login-token", TOKEN).await;
        click(c, "#login-submit").await;
        el(c, "#resource-rows").await;

        // Create with secondary hostnames and a protocol.
        click(c, "#new-resource").await;
        fill(c, "#new-cname", "cdn.example.com").await;
        fill(c, "#new-secondary", "video.example.com\nimg.example.com").await;
        fill(c, "#res-origin", &format!("127.0.0.1:{}", s.origin.port)).await;
        choose(c, "#res-protocol", "HTTP").await;
        click(c, "#new-ssl").await;
        shot(c, "02-new-resource").await;
        click(c, "#new-submit").await;
        el(c, "#sk-enabled").await;
        text_until(c, "#flash", 5, |t| t.contains("created")).await;
        let r = api_until(&s.api, "/cdn/resources/1", |r| r["id"] == 1);
        assert_eq!(
            (
                &r["cname"],
                &r["secondaryHostnames"],
                &r["originProtocol"],
                &r["sslEnabled"]
            ),
            (
                &json!("cdn.example.com"),
                &json!(["video.example.com", "img.example.com"]),
                &json!("HTTP"),
                &json!(true)
            ),
            "{r}"
        );

        // A duplicate hostname: the error is under the hostname, in words, and nothing is made.
        c.goto(&format!("{}#/new", s.panel)).await.unwrap();
        fill(c, "#new-cname", "cdn.example.com").await;
        fill(c, "#res-origin", "127.0.0.1:1").await;
        click(c, "#new-submit").await;
        let err = text_until(c, "#new-cname-error", 10, |t| !t.is_empty()).await;
        assert!(
            err.starts_with("Hostname (CNAME): ") && err.contains("resource 1"),
            "{err}"
        );
        shot(c, "03-new-resource-duplicate").await;
        // An empty origin is caught before sending, next to its field.
        fill(c, "#new-cname", "other.example.com").await;
        el(c, "#res-origin").await.clear().await.unwrap();
        click(c, "#new-submit").await;
        text_until(c, "#res-origin-error", 5, |t| {
            t.starts_with("Origin (host[:port]): give")
        })
        .await;
        shot(c, "03-new-resource-no-origin").await;
        let (_, all) = s.api.call("GET", "/cdn/resources", None);
        assert_eq!(all.as_array().unwrap().len(), 1, "{all}");

        // Two more, then search by hostname (secondary ones too).
        resource(&s, "downloads.example.org", json!({}));
        resource(&s, "live.example.net", json!({}));
        c.goto(&s.panel).await.unwrap();
        text_until(c, "#resource-rows", 10, |t| t.contains("live.example.net")).await;
        fill(c, "#search", "example.org").await;
        let rows = text_until(c, "#resource-rows", 5, |t| !t.contains("live.")).await;
        assert!(
            rows.contains("downloads.example.org") && !rows.contains("cdn.example.com"),
            "{rows}"
        );
        fill(c, "#search", "video.").await;
        let rows = text_until(c, "#resource-rows", 5, |t| t.contains("cdn.example.com")).await;
        assert!(!rows.contains("downloads"), "{rows}");
        shot(c, "04-resources-search").await;
        fill(c, "#search", "nothing-like-it").await;
        text_until(c, "#search-empty", 5, |t| t.contains("No resource")).await;

        // General tab: edit; a bad secondary hostname is named in words.
        c.goto(&format!("{}#/resources/2/general", s.panel))
            .await
            .unwrap();
        fill(c, "#gen-secondary", "dl.example.org\nnot a host name").await;
        click(c, "#gen-save").await;
        let err = text_until(c, "#gen-secondary-error", 10, |t| !t.is_empty()).await;
        assert!(err.starts_with("Secondary hostnames"), "{err}");
        assert!(
            !err.contains("secondaryHostnames"),
            "words, not the field's path: {err}"
        );
        fill(c, "#gen-secondary", "dl.example.org").await;
        click(c, "#gen-active").await;
        click(c, "#gen-save").await;
        text_until(c, "#gen-status", 10, |t| t.contains("Saved")).await;
        shot(c, "05-general").await;
        let r = api_until(&s.api, "/cdn/resources/2", |r| r["active"] == false);
        assert_eq!(r["secondaryHostnames"], json!(["dl.example.org"]), "{r}");

        // Delete: asks for the hostname first.
        assert!(!el(c, "#del-go").await.is_enabled().await.unwrap());
        fill(c, "#del-confirm-name", "downloads.example.or").await;
        assert!(!el(c, "#del-go").await.is_enabled().await.unwrap());
        fill(c, "#del-confirm-name", "downloads.example.org").await;
        shot(c, "06-delete-confirm").await;
        click(c, "#del-go").await;
        text_until(c, "#resource-rows", 10, |t| !t.contains("downloads")).await;
        let (st, _) = s.api.call("GET", "/cdn/resources/2", None);
        assert_eq!(st, 404);

        // An origin group instead of one host: picked in the General tab; the edge fetches
        // from it.
        let (st, g) = s.api.call(
            "POST",
            "/cdn/origin_groups",
            Some(&json!({"name": "video-origins", "sources": [{"source": format!("127.0.0.1:{}", s.origin.port)}]})),
        );
        assert_eq!(st, 201, "{g}");
        c.goto(&format!("{}#/resources/1/general", s.panel))
            .await
            .unwrap();
        assert_eq!(value(c, "#res-origin-kind").await, "host");
        choose(c, "#res-origin-kind", "group").await;
        choose(c, "#res-group", &g["id"].to_string()).await;
        click(c, "#gen-save").await;
        text_until(c, "#gen-status", 10, |t| t.contains("Saved")).await;
        let r = api_until(&s.api, "/cdn/resources/1", |r| r["originGroup"] == g["id"]);
        assert_eq!(r["originGroup_name"], "video-origins", "{r}");
        c.refresh().await.unwrap();
        assert_eq!(value(c, "#res-origin-kind").await, "group");
        until(Duration::from_secs(2), "served from the group", || {
            edge_get(&s, Ipv4Addr::LOCALHOST, "cdn.example.com", "/size/10").0 == 200
        });
        c.goto(&s.panel).await.unwrap();
        text_until(c, "#resource-rows", 10, |t| {
            t.contains("group video-origins")
        })
        .await;
    });
}

#[test]
fn panel_secure_token_rotation_links_revocation_and_chart() {
    with_panel("panel-sk", |s| async move {
        let c = &s.c;
        let id = resource(&s, "cdn.example.com", json!({}));
        let path = format!("/cdn/resources/{id}");
        c.goto(&format!("{}#/resources/{id}/secure", s.panel))
            .await
            .unwrap();

        // A bad key: the message under the key as it is typed, in words; nothing is saved.
        click(c, "#sk-enabled").await;
        fill(c, "#sk-key", "abc").await;
        text_until(c, "#sk-key-error", 5, |t| {
            t == "Key: at least 6 characters (6 to 32, no spaces)."
        })
        .await;
        fill(c, "#sk-key", "has spaces in it").await;
        text_until(c, "#sk-key-error", 5, |t| t.starts_with("Key: no spaces")).await;
        shot(c, "10-bad-key").await;
        click(c, "#sk-save").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (_, stored) = s.api.call("GET", &path, None);
        assert!(stored["options"].get("secure_key").is_none(), "{stored}");
        // A debug secret the API refuses: its words under its field.
        click(c, "#sk-generate").await;
        text_until(c, "#sk-key-error", 5, str::is_empty).await;
        fill(c, "#sk-debug", "short").await;
        click(c, "#sk-save").await;
        let err = text_until(c, "#sk-debug-error", 10, |t| !t.is_empty()).await;
        assert!(
            err.starts_with("Debug secret (X-Tollgate-Debug): "),
            "{err}"
        );
        el(c, "#sk-debug").await.clear().await.unwrap();
        assert!(
            c.find(Locator::Css("#rotation")).await.is_err(),
            "no rotation before a key is stored"
        );

        // Saved: the rotation card appears at once, after the form's Save.
        let key = value(c, "#sk-key").await;
        assert_eq!(key.len(), 32, "{key}");
        assert!(checked(c, "#sk-ip").await, "type 0 by default");
        click(c, "#sk-save").await;
        text_until(c, "#sk-status", 10, |t| t.contains("Saved")).await;
        el(c, "#rotation").await;
        let order = c
            .execute(
                "const s = document.getElementById('sk-save'), r = document.getElementById('rotation');
                 return !!(s.compareDocumentPosition(r) & Node.DOCUMENT_POSITION_FOLLOWING);",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(order, json!(true), "the rotation card comes after Save");
        let stored = api_until(&s.api, &path, |r| {
            r["options"]["secure_key"]["key"] == json!(key)
        });
        assert_eq!(
            stored["options"]["secure_key"],
            json!({"enabled": true, "key": key, "type": 0})
        );
        shot(c, "11-secure-token-saved").await;

        // Rotation asks first; Cancel does nothing.
        click(c, "#rot-rotate").await;
        text_until(c, "#rot-rotate-confirm", 5, |t| {
            t.contains("keep working until they expire")
        })
        .await;
        shot(c, "12-rotate-confirm").await;
        click(c, "#rot-rotate-no").await;
        // With unsaved edits it refuses, and the edits stay.
        choose(c, "#sk-mode", "report").await;
        click(c, "#rot-rotate").await;
        click(c, "#rot-rotate-yes").await;
        text_until(c, "#rot-status", 5, |t| t.contains("Save or undo")).await;
        assert_eq!(value(c, "#sk-mode").await, "report", "the edit is kept");
        let (_, stored) = s.api.call("GET", &path, None);
        assert_eq!(
            stored["options"]["secure_key"]["key"],
            json!(key),
            "not rotated"
        );
        choose(c, "#sk-mode", "enforce").await;
        click(c, "#rot-rotate").await;
        click(c, "#rot-rotate-yes").await;
        text_until(c, "#rot-status", 10, |t| t.contains("Rotated")).await;
        let stored = api_until(&s.api, &path, |r| {
            r["options"]["secure_key"]["previous_key"] == json!(key)
        });
        let old = key;
        let key = stored["options"]["secure_key"]["key"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_ne!(key, old);
        text_until(c, "#rot-state", 5, |t| {
            t.contains("previous key still verifies")
        })
        .await;
        assert_eq!(value(c, "#sk-key").await, key, "the form shows the new key");

        // The link generator: https for a resource with TLS, the expiry as a date and a Unix
        // time, copy buttons, the client-IP field explained, the same values in the snippets.
        s.api
            .call("PATCH", &path, Some(&json!({"sslEnabled": true})));
        c.goto(&format!("{}#/resources/{id}/links", s.panel))
            .await
            .unwrap();
        let hint = text_until(c, "#link-ip-hint", 5, |t| !t.is_empty()).await;
        assert!(
            hint.contains("type 0") && hint.contains("REMOTE_ADDR"),
            "{hint}"
        );
        fill(c, "#link-path", "/size/1000").await;
        click(c, "#link-submit").await;
        text_until(c, "#link-ip-error", 5, |t| {
            t.starts_with("Viewer's IP: give")
        })
        .await;
        fill(c, "#link-ip", "127.0.0.1").await;
        fill(c, "#link-lifetime", "0").await;
        click(c, "#link-submit").await;
        let err = text_until(c, "#link-lifetime-error", 10, |t| !t.is_empty()).await;
        assert!(err.starts_with("Lifetime (seconds): "), "{err}");
        fill(c, "#link-lifetime", "7200").await;
        click(c, "#link-submit").await;
        let url = text_until(c, "#link-url", 10, |t| {
            t.starts_with("https://cdn.example.com/size/1000?md5=")
        })
        .await;
        let expires: i64 = url.rsplit("expires=").next().unwrap().parse().unwrap();
        let expiry = el(c, "#link-expiry").await.text().await.unwrap();
        let utc = tollgate_control::listing::rfc3339(expires as u64)
            .replace('T', " ")
            .replace('Z', " UTC");
        assert!(
            expiry.contains(&format!("Unix time {expires}")) && expiry.contains(&utc),
            "{expiry} ({utc})"
        );
        assert!(
            (expires - tollgate_testkit::now()).abs() - 7200 < 30,
            "{expires}"
        );
        click(c, "#link-copy").await;
        text_until(c, "#link-copy-done", 5, |t| !t.is_empty()).await;
        for lang in ["php", "python", "node", "openssl"] {
            let snip = el(c, &format!("#snip-{lang}")).await.text().await.unwrap();
            assert!(
                snip.contains(&key)
                    && snip.contains("127.0.0.1")
                    && snip.contains("https://cdn.example.com")
                    && snip.contains("/size/1000")
                    && snip.contains("7200"),
                "{lang}: {snip}"
            );
            el(c, &format!("#snip-{lang}-copy")).await;
        }
        shot(c, "13-link-generator").await;

        // The link works through the edge (plain HTTP here), and only from its address.
        let target = url
            .strip_prefix("https://cdn.example.com")
            .unwrap()
            .to_owned();
        until(Duration::from_secs(2), "the link is served", || {
            edge_get(&s, Ipv4Addr::LOCALHOST, "cdn.example.com", &target).0 == 200
        });
        assert_eq!(
            edge_get(&s, Ipv4Addr::LOCALHOST, "cdn.example.com", &target).1,
            "HIT"
        );
        assert_eq!(
            edge_get(&s, Ipv4Addr::new(127, 0, 0, 2), "cdn.example.com", &target).0,
            403
        );
        let (_, expired) = s.api.call(
            "POST",
            &format!("{path}/sign"),
            Some(&json!({"path": "/size/1000", "ip": "127.0.0.1", "expires": tollgate_testkit::now() - 10})),
        );
        let expired = expired["url"]
            .as_str()
            .unwrap()
            .strip_prefix("https://cdn.example.com")
            .unwrap()
            .to_owned();
        assert_eq!(
            edge_get(&s, Ipv4Addr::LOCALHOST, "cdn.example.com", &expired).0,
            410
        );

        // Revoke it in the panel: the edge refuses it.
        c.goto(&format!("{}#/resources/{id}/secure", s.panel))
            .await
            .unwrap();
        text_until(c, "#sk-strength", 10, |t| t.contains("bits")).await;
        text_until(c, "#rot-usage", 20, |t| t.contains("links matched")).await;
        click(c, "#rev-add").await;
        text_until(c, "#rev-link-error", 5, |t| {
            t.starts_with("Revoke a link or a path: paste")
        })
        .await;
        fill(c, "#rev-link", &url).await;
        click(c, "#rev-add").await;
        text_until(c, "#rev-status", 10, |t| t.contains("Revoked")).await;
        until(Duration::from_secs(1), "the revoked link refused", || {
            edge_get(&s, Ipv4Addr::LOCALHOST, "cdn.example.com", &target).0 == 403
        });
        text_until(c, "#rev-list", 10, |t| t.contains("link")).await;
        let (_, list) = s
            .api
            .call("GET", &format!("{path}/secure_key/revocations"), None);
        assert_eq!(list["count"], 1, "{list}");
        shot(c, "14-revoked").await;

        // Stop accepting the previous key: asks first, saying when it last matched.
        click(c, "#rot-drop").await;
        text_until(c, "#rot-drop-confirm", 5, |t| t.contains("refused (403)")).await;
        click(c, "#rot-drop-yes").await;
        text_until(c, "#rot-status", 10, |t| t.contains("no longer")).await;
        let stored = api_until(&s.api, &path, |r| {
            r["options"]["secure_key"].get("previous_key").is_none()
        });
        assert_eq!(
            stored["secure_key_revocations"].as_array().map(Vec::len),
            Some(1),
            "{stored}"
        );

        // The chart: a time axis, each series can be shown alone, the totals with hit ratio and
        // bytes; it follows new answers by itself (edges report every 2 s).
        c.goto(&format!("{}#/resources/{id}/general", s.panel))
            .await
            .unwrap();
        let total = text_until(c, "#chart-total", 20, |t| {
            t.contains("2 served")
                && t.contains("1 cache hits")
                && t.contains("1 expired (410)")
                && t.contains("2 refused (403)")
        })
        .await;
        eprintln!("chart: {total}");
        assert_eq!(el(c, "#tile-ratio").await.text().await.unwrap(), "50 %");
        assert_eq!(el(c, "#tile-bytes").await.text().await.unwrap(), "2.0 kB");
        for k in [
            "served",
            "hits",
            "bad_request",
            "forbidden",
            "gone",
            "origin_errors",
            "reported",
        ] {
            assert!(checked(c, &format!("#series-{k}")).await, "{k} shown");
        }
        click(c, "#series-served").await;
        click(c, "#series-forbidden").await;
        shot(c, "15-chart-hits-alone").await;
        assert!(!checked(c, "#series-served").await);
        click(c, "#series-served").await;
        click(c, "#series-forbidden").await;
        // The chart follows new answers by itself: an unsigned request (403), a target above
        // the root (400), and a resource whose origin is down (502).
        assert_eq!(
            edge_get(&s, Ipv4Addr::LOCALHOST, "cdn.example.com", "/size/1000").0,
            403
        );
        assert_eq!(
            edge_get(&s, Ipv4Addr::LOCALHOST, "cdn.example.com", "/../size/1").0,
            400
        );
        let (st, down) = s.api.call(
            "POST",
            "/cdn/resources",
            Some(&json!({"cname": "down.example.com", "origin": "127.0.0.1:1"})),
        );
        assert_eq!(st, 201, "{down}");
        until(Duration::from_secs(2), "the origin's failure", || {
            edge_get(&s, Ipv4Addr::LOCALHOST, "down.example.com", "/x").0 == 502
        });
        let total = text_until(c, "#chart-total", 20, |t| t.contains("3 refused (403)")).await;
        assert!(
            total.contains("1 malformed (400)") && total.contains("0 origin errors"),
            "{total}"
        );
        // Across all resources too.
        c.goto(&s.panel).await.unwrap();
        let total = text_until(c, "#chart-total", 20, |t| {
            t.contains("origin errors (5xx)") && !t.contains(" 0 origin errors")
        })
        .await;
        assert!(
            total.contains("2 served") && total.contains("1 malformed (400)"),
            "{total}"
        );
        assert_ne!(el(c, "#tile-errors").await.text().await.unwrap(), "0");
        shot(c, "16-chart-all").await;
    });
}

#[test]
fn panel_cache_streaming_access_and_origin_protection() {
    with_panel("panel-opts", |s| async move {
        let c = &s.c;
        let id = resource(&s, "cdn.example.com", json!({}));
        let path = format!("/cdn/resources/{id}");

        // Cache: a bad duration is named next to its field, in words; then it is saved.
        c.goto(&format!("{}#/resources/{id}/cache", s.panel))
            .await
            .unwrap();
        choose(c, "#cache-mode", "override").await;
        fill(c, "#cache-time", "10 parsecs").await;
        click(c, "#cache-save").await;
        let err = text_until(c, "#cache-time-error", 10, |t| !t.is_empty()).await;
        assert!(
            err.starts_with("Cache time: ") && !err.contains("options."),
            "{err}"
        );
        shot(c, "20-cache-bad-duration").await;
        fill(c, "#cache-time", "4h").await;
        click(c, "#cache-custom-add").await;
        fill(c, "#cache-custom-k0", "404").await;
        fill(c, "#cache-custom-v0", "10s").await;
        choose(c, "#qp-mode", "only").await;
        fill(c, "#qp-list", "lang, quality").await;
        click(c, "#bc-on").await;
        fill(c, "#bc-time", "1h").await;
        click(c, "#stale-updating").await;
        click(c, "#stale-http_404").await;
        click(c, "#cache-save").await;
        text_until(c, "#cache-status", 10, |t| t.contains("Saved")).await;
        shot(c, "21-cache").await;
        let r = api_until(&s.api, &path, |r| r["options"].get("stale").is_some());
        let o = &r["options"];
        assert_eq!(
            o["edge_cache_settings"],
            json!({"enabled": true, "value": "4h", "custom_values": {"404": "10s"}}),
            "{o}"
        );
        assert_eq!(
            o["query_params_whitelist"],
            json!({"enabled": true, "value": ["lang", "quality"]})
        );
        assert_eq!(
            o["browser_cache_settings"],
            json!({"enabled": true, "value": "1h"})
        );
        assert_eq!(
            o["stale"],
            json!({"enabled": true, "value": ["updating", "http_404"]})
        );
        // Shown back as stored.
        c.refresh().await.unwrap();
        assert_eq!(value(c, "#cache-time").await, "4h");
        assert_eq!(value(c, "#qp-mode").await, "only");
        // The edge follows: a viewer's Cache-Control is the browser time.
        let r = request(
            Ipv4Addr::LOCALHOST,
            s.edge,
            "GET",
            b"/size/10",
            &[("Host", "cdn.example.com")],
        )
        .unwrap();
        assert_eq!(
            r.header("cache-control"),
            Some("max-age=3600"),
            "{:?}",
            r.headers
        );

        // Streaming.
        c.goto(&format!("{}#/resources/{id}/streaming", s.panel))
            .await
            .unwrap();
        click(c, "#qsf-on").await;
        click(c, "#qsf-each").await;
        click(c, "#qsf-save").await;
        let err = text_until(c, "#qsf-each-error", 10, |t| !t.is_empty()).await;
        assert!(
            err.starts_with("Sign each link for its own directory"),
            "needs the secure token: {err}"
        );
        click(c, "#qsf-each").await;
        fill(c, "#qsf-only", "md5, expires").await;
        click(c, "#qsf-save").await;
        text_until(c, "#qsf-status", 10, |t| t.contains("Saved")).await;
        shot(c, "22-streaming").await;
        let r = api_until(&s.api, &path, |r| {
            r["options"].get("query_string_forwarding").is_some()
        });
        let q = &r["options"]["query_string_forwarding"];
        assert_eq!(
            (
                &q["enabled"],
                &q["forward_only_keys"],
                &q["forward_from_file_types"]
            ),
            (
                &json!(true),
                &json!(["md5", "expires"]),
                &json!(["m3u8", "mpd"])
            ),
            "{q}"
        );

        // Access: a bad CIDR is named with its entry; then the list is saved and the edge
        // refuses an address outside it.
        c.goto(&format!("{}#/resources/{id}/access", s.panel))
            .await
            .unwrap();
        click(c, "#acl-ip_address_acl-on").await;
        choose(c, "#acl-ip_address_acl-policy", "deny").await;
        fill(c, "#acl-ip_address_acl-values", "127.0.0.1/32\n10.0.0.0/33").await;
        click(c, "#cors-on").await;
        click(c, "#acc-save").await;
        let err = text_until(c, "#acl-ip_address_acl-values-error", 10, |t| !t.is_empty()).await;
        assert!(err.starts_with("Listed IP addresses, entry 2: "), "{err}");
        assert!(err.contains("10.0.0.0/33"), "{err}");
        shot(c, "23-access-bad-cidr").await;
        fill(c, "#acl-ip_address_acl-values", "127.0.0.1/32\n10.0.0.0/8").await;
        click(c, "#acc-save").await;
        text_until(c, "#acc-status", 10, |t| t.contains("Saved")).await;
        shot(c, "24-access").await;
        let r = api_until(&s.api, &path, |r| {
            r["options"].get("ip_address_acl").is_some()
        });
        assert_eq!(
            r["options"]["ip_address_acl"],
            json!({"enabled": true, "policy_type": "deny", "excepted_values": ["127.0.0.1/32", "10.0.0.0/8"]})
        );
        assert_eq!(
            r["options"]["cors"],
            json!({"enabled": true, "value": ["*"]})
        );
        until(Duration::from_secs(2), "the access list enforced", || {
            edge_get(
                &s,
                Ipv4Addr::new(127, 0, 0, 3),
                "cdn.example.com",
                "/size/10",
            )
            .0 == 403
        });
        assert_eq!(
            edge_get(&s, Ipv4Addr::LOCALHOST, "cdn.example.com", "/size/10").0,
            200
        );

        // Origin protection: a header edges send, and the edges' addresses.
        c.goto(&format!("{}#/resources/{id}/protection", s.panel))
            .await
            .unwrap();
        click(c, "#srh-on").await;
        click(c, "#srh-add").await;
        fill(c, "#srh-k0", "Bad Header").await;
        fill(c, "#srh-v0", "x").await;
        click(c, "#prot-save").await;
        let err = text_until(c, "#srh-set-error", 10, |t| !t.is_empty()).await;
        assert!(
            err.starts_with("Origin headers: ") && !err.contains("options."),
            "{err}"
        );
        fill(c, "#srh-k0", "X-Origin-Secret").await;
        fill(c, "#srh-v0", "s3cr3t-value").await;
        click(c, "#prot-save").await;
        text_until(c, "#prot-status", 10, |t| t.contains("Saved")).await;
        let r = api_until(&s.api, &path, |r| {
            r["options"].get("staticRequestHeaders").is_some()
        });
        assert_eq!(
            r["options"]["staticRequestHeaders"],
            json!({"enabled": true, "value": {"X-Origin-Secret": "s3cr3t-value"}})
        );
        c.refresh().await.unwrap();
        text_until(c, "#edge-address-list", 10, |t| t.contains("127.0.0.1")).await;
        shot(c, "25-origin-protection").await;
    });
}

#[test]
fn panel_purge_tokens_and_audit() {
    with_panel("panel-ops", |s| async move {
        let c = &s.c;
        let id = resource(&s, "cdn.example.com", json!({}));
        resource(&s, "other.example.com", json!({}));
        let get = |t: &str| edge_get(&s, Ipv4Addr::LOCALHOST, "cdn.example.com", t);
        until(Duration::from_secs(2), "served", || {
            get("/size/100").0 == 200
        });
        assert_eq!(get("/size/100").1, "HIT");
        assert_eq!(get("/size/200").0, 200);
        assert_eq!(get("/size/200").1, "HIT");

        // Purge a URL from the panel: its next request is a MISS, the other's still a HIT.
        c.goto(&format!("{}#/resources/{id}/purge", s.panel))
            .await
            .unwrap();
        click(c, "#purge-urls-go").await;
        text_until(c, "#purge-urls-error", 5, |t| {
            t.starts_with("URLs: list at least one")
        })
        .await;
        fill(c, "#purge-urls", "no-slash.mp4").await;
        click(c, "#purge-urls-go").await;
        let err = text_until(c, "#purge-urls-error", 10, |t| !t.is_empty()).await;
        assert!(err.starts_with("URLs"), "{err}");
        fill(c, "#purge-urls", "/size/100").await;
        click(c, "#purge-urls-go").await;
        text_until(c, "#purge-status", 10, |t| t.contains("Purged 1 URL")).await;
        text_until(c, "#purge-list", 10, |t| {
            t.contains("done: every edge has it")
        })
        .await;
        assert_eq!(get("/size/100").1, "MISS");
        assert_eq!(get("/size/200").1, "HIT");
        shot(c, "30-purge").await;
        // Everything, after a confirmation.
        click(c, "#purge-all").await;
        text_until(c, "#purge-all-confirm", 5, |t| t.contains("every edge")).await;
        click(c, "#purge-all-yes").await;
        text_until(c, "#purge-status", 10, |t| t.contains("Purged everything")).await;
        let (_, st) = s.api.call("GET", "/cdn/purge_statuses", None);
        assert_eq!(st.as_array().map(Vec::len), Some(2), "{st}");
        until(Duration::from_secs(2), "purged everywhere", || {
            get("/size/200").1 == "MISS"
        });

        // Tokens: an edge token is shown once with the line to run; an edge started with that
        // line follows this control plane; the list has no secret; revoking needs a confirmation.
        c.goto(&format!("{}#/tokens", s.panel)).await.unwrap();
        click(c, "#token-create").await;
        text_until(c, "#token-name-error", 5, |t| t.starts_with("Name: ")).await;
        fill(c, "#token-name", "edge-paris-1").await;
        click(c, "#token-create").await;
        let secret = text_until(c, "#token-secret", 10, |t| t.starts_with("tg_")).await;
        let line = el(c, "#token-edge-line").await.text().await.unwrap();
        assert!(
            line.starts_with(&format!(
                "tollgate edge --control http://127.0.0.1:{} --edge-token {secret} ",
                s.api.port
            )),
            "{line}"
        );
        click(c, "#token-copy").await;
        shot(c, "31-token-created").await;
        let state = TempDir::new("panel-edge");
        let (mut edge, port) = crate::procs::edge(s.api.port, &secret, &state.path("s"));
        until(Duration::from_secs(5), "the new edge serves", || {
            request(
                Ipv4Addr::LOCALHOST,
                port,
                "GET",
                b"/size/10",
                &[("Host", "cdn.example.com")],
            )
            .is_ok_and(|r| r.status == 200)
        });
        let rows = text_until(c, "#token-rows", 5, |t| t.contains("edge-paris-1")).await;
        assert!(!rows.contains(&secret), "{rows}");
        let edge_config = || {
            s.api
                .call_with(
                    "GET",
                    "/edge/v1/config",
                    None,
                    &[("Authorization", &format!("Bearer {secret}"))],
                )
                .0
        };
        assert_eq!(edge_config(), 200, "the new edge token is taken");
        let (_, list) = s.api.call("GET", "/tollgate/tokens", None);
        let tid = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "edge-paris-1")
            .unwrap()["id"]
            .clone();
        click(c, &format!("#token-revoke-{tid}")).await;
        click(c, &format!("#token-revoke-{tid}-yes")).await;
        text_until(c, "#token-status", 10, |t| t.contains("revoked")).await;
        let (_, list) = s.api.call("GET", "/tollgate/tokens", None);
        assert!(!list.to_string().contains("edge-paris-1"), "{list}");
        // The edge that ran with it is refused from now on.
        assert_eq!(edge_config(), 401, "a revoked edge token");
        shot(c, "32-tokens").await;
        edge.stop();

        // Audit: newest first, filtered by resource.
        c.goto(&format!("{}#/audit", s.panel)).await.unwrap();
        let all = text_until(c, "#audit-rows", 10, |t| t.contains("Revoked a token")).await;
        assert!(all.contains("other.example.com"), "{all}");
        let first = el(c, "#audit-rows tr:first-child")
            .await
            .text()
            .await
            .unwrap();
        assert!(first.contains("Revoked a token"), "newest first: {first}");
        choose(c, "#audit-filter", &id.to_string()).await;
        let rows = text_until(c, "#audit-rows", 10, |t| {
            t.contains("Created the resource") && !t.contains("other.example.com")
        })
        .await;
        assert!(
            rows.contains("Purged")
                && rows.contains("Created the resource")
                && !rows.contains("token"),
            "{rows}"
        );
        shot(c, "33-audit").await;
    });
}

/// WebDriver key codes.
const TAB: &str = "\u{e004}";
const ENTER: &str = "\u{e007}";
const SPACE: &str = "\u{e00d}";

/// Presses Tab until the focused element matches `css` (at most `max` times): it is reachable
/// by keyboard, in that order.
async fn tab_to(c: &Client, css: &str, max: usize) {
    for _ in 0..max {
        let here = c
            .execute(
                &format!("return document.activeElement.matches({css:?});"),
                vec![],
            )
            .await
            .unwrap();
        if here == json!(true) {
            return;
        }
        keys(c, TAB).await;
    }
    panic!("{css} not reached in {max} Tab presses");
}

/// Types into the focused element.
async fn keys(c: &Client, text: &str) {
    c.active_element()
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

#[test]
fn panel_by_keyboard_alone_create_secure_token_link() {
    with_panel("panel-kbd", |s| async move {
        let c = &s.c;
        // From the resources page: to "New resource", then each field in order.
        tab_to(c, "#new-resource", 8).await;
        keys(c, ENTER).await;
        el(c, "#new-cname").await;
        keys(c, "kbd.example.com").await;
        tab_to(c, "#res-origin", 4).await;
        keys(c, &format!("127.0.0.1:{}", s.origin.port)).await;
        tab_to(c, "#new-submit", 6).await;
        keys(c, ENTER).await;
        // The Secure token tab: enable, generate a key, no client IP, save.
        el(c, "#sk-enabled").await;
        tab_to(c, "#sk-enabled", 20).await;
        keys(c, SPACE).await;
        tab_to(c, "#sk-generate", 3).await;
        keys(c, ENTER).await;
        tab_to(c, "#sk-ip", 3).await;
        keys(c, SPACE).await;
        tab_to(c, "#sk-save", 8).await;
        keys(c, ENTER).await;
        text_until(c, "#sk-status", 10, |t| t.contains("Saved")).await;
        let r = api_until(&s.api, "/cdn/resources/1", |r| {
            r["options"]["secure_key"]["enabled"] == true
        });
        assert_eq!(r["options"]["secure_key"]["type"], 2, "{r}");
        let key = r["options"]["secure_key"]["key"]
            .as_str()
            .unwrap()
            .to_owned();
        // The link generator tab, a path, Enter.
        c.execute("document.getElementById('tab-secure').focus();", vec![])
            .await
            .unwrap();
        tab_to(c, "#tab-links", 8).await;
        keys(c, ENTER).await;
        el(c, "#link-path").await;
        tab_to(c, "#link-path", 20).await;
        keys(c, "/size/64").await;
        keys(c, ENTER).await;
        let url = text_until(c, "#link-url", 10, |t| {
            t.starts_with("http://kbd.example.com/size/64?md5=")
        })
        .await;
        shot(c, "40-keyboard-link").await;
        let link = tollgate_token::Target::parse(
            url.strip_prefix("http://kbd.example.com")
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
        let k = tollgate_token::Key::new(&key).unwrap();
        assert!(tollgate_token::verify(
            &link,
            std::slice::from_ref(&k),
            None,
            tollgate_testkit::now()
        )
        .is_ok());
        let (st, _) = edge_get(
            &s,
            Ipv4Addr::LOCALHOST,
            "kbd.example.com",
            url.strip_prefix("http://kbd.example.com").unwrap(),
        );
        assert_eq!(st, 200);
    });
}
