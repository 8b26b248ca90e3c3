//! The panel in real headless Chromium (Debian's chromium and chromium-driver), against
//! `tollgate serve`: log in, create a resource, turn on the secure token with a generated key
//! (after a bad key shows its message and saves nothing), generate a link, fetch it through the
//! edge, and see the request on the chart. Screenshots go to `target/screenshots/`.

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

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshots_dir().join(format!("panel-{name}.png")), png).unwrap();
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

#[test]
fn panel_in_headless_chromium() {
    let origin = TestOrigin::start();
    let data = TempDir::new("panel");
    let (_serve, api, edge) = crate::procs::serve(&data);
    let control = api.port;
    let (_driver, driver_port) = start_driver();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = chromium(driver_port, &["--window-size=1280,1400"]).await;
        let panel = format!("http://127.0.0.1:{control}/");

        // Log in: a wrong token is refused, the right one shows the resources.
        c.goto(&panel).await.unwrap();
        fill(&c, "#login-token", "tg_not_the_right_token").await;
        el(&c, "#login-submit").await.click().await.unwrap();
        text_until(&c, "#login-error", 10, |t| t.contains("not accepted")).await;
        shot(&c, "01-login-refused").await;
        fill(&c, "#login-token", TOKEN).await;
        el(&c, "#login-submit").await.click().await.unwrap();
        el(&c, "#resource-rows").await;

        // Create a resource.
        fill(&c, "#new-cname", "cdn.example.com").await;
        fill(&c, "#new-origin", &format!("127.0.0.1:{}", origin.port)).await;
        el(&c, "#new-submit").await.click().await.unwrap();

        // Secure token tab: a bad key shows the message as it is typed, and is not saved.
        let enabled = el(&c, "#sk-enabled").await;
        enabled.click().await.unwrap();
        fill(&c, "#sk-key", "abc").await;
        text_until(&c, "#sk-key-error", 5, |t| t.contains("at least 6")).await;
        fill(&c, "#sk-key", "has spaces in it").await;
        text_until(&c, "#sk-key-error", 5, |t| t.contains("spaces")).await;
        shot(&c, "02-bad-key").await;
        el(&c, "#sk-save").await.click().await.unwrap();
        let (_, stored) = api.call("GET", "/cdn/resources/1", None);
        assert!(
            stored["options"].get("secure_key").is_none(),
            "a bad key is not saved: {stored}"
        );

        // Generate a key; "Add a client's IP to the token" is on by default (type 0).
        el(&c, "#sk-generate").await.click().await.unwrap();
        text_until(&c, "#sk-key-error", 5, str::is_empty).await;
        let key = el(&c, "#sk-key")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(key.len(), 32, "{key}");
        assert_eq!(
            el(&c, "#sk-ip")
                .await
                .prop("checked")
                .await
                .unwrap()
                .as_deref(),
            Some("true")
        );
        el(&c, "#sk-save").await.click().await.unwrap();
        text_until(&c, "#sk-status", 10, |t| t.contains("Saved")).await;
        shot(&c, "03-secure-token-saved").await;
        let (_, stored) = api.call("GET", "/cdn/resources/1", None);
        assert_eq!(
            stored["options"]["secure_key"],
            json!({"enabled": true, "key": key, "type": 0})
        );

        // Key rotation: a new key signs, the old one still verifies; then it is dropped.
        c.refresh().await.unwrap();
        el(&c, "#rot-rotate").await.click().await.unwrap();
        text_until(&c, "#rot-status", 10, |t| t.contains("Rotated")).await;
        let (_, stored) = api.call("GET", "/cdn/resources/1", None);
        let sk = &stored["options"]["secure_key"];
        assert_eq!(sk["previous_key"], json!(key), "{stored}");
        let key = sk["key"].as_str().unwrap().to_owned();
        assert_eq!(key.len(), 32);
        text_until(&c, "#rot-state", 10, |t| {
            t.contains("previous key still verifies")
        })
        .await;
        shot(&c, "04-key-rotated").await;
        el(&c, "#rot-drop").await.click().await.unwrap();
        text_until(&c, "#rot-status", 10, |t| t.contains("no longer")).await;
        let (_, stored) = api.call("GET", "/cdn/resources/1", None);
        assert!(
            stored["options"]["secure_key"]
                .get("previous_key")
                .is_none(),
            "{stored}"
        );

        // Link generator: a signed URL, a copy button and the snippets.
        el(&c, "#tab-links").await.click().await.unwrap();
        fill(&c, "#link-path", "/size/1000").await;
        fill(&c, "#link-ip", "127.0.0.1").await;
        el(&c, "#link-submit").await.click().await.unwrap();
        let url = text_until(&c, "#link-url", 10, |t| {
            t.starts_with("http://cdn.example.com/size/1000?md5=")
        })
        .await;
        el(&c, "#link-copy").await.click().await.unwrap();
        text_until(&c, "#link-copied", 5, |t| !t.is_empty()).await;
        let php = el(&c, "#snip-php").await.text().await.unwrap();
        assert!(php.contains(&key) && php.contains("127.0.0.1"), "{php}");
        shot(&c, "05-link-generator").await;

        // The link works through the edge, and only from the address it was made for.
        let target = url
            .strip_prefix("http://cdn.example.com")
            .unwrap()
            .to_owned();
        let fetch = |from: Ipv4Addr| {
            request(
                from,
                edge,
                "GET",
                target.as_bytes(),
                &[("Host", "cdn.example.com")],
            )
            .unwrap()
        };
        until(Duration::from_secs(1), "the link is served", || {
            fetch(Ipv4Addr::LOCALHOST).status == 200
        });
        let r = fetch(Ipv4Addr::LOCALHOST);
        assert_eq!((r.status, r.body.len()), (200, 1000));
        assert_eq!(fetch(Ipv4Addr::new(127, 0, 0, 2)).status, 403);

        // The chart shows the edge's answers (edges report every 2 s).
        until(Duration::from_secs(10), "the edge's report", || {
            let (_, s) = api.call("GET", "/tollgate/stats?resource=1", None);
            s["served"]
                .as_array()
                .is_some_and(|v| v.iter().any(|n| n.as_u64() > Some(0)))
        });
        c.goto(&format!("{panel}#/resources/1")).await.unwrap();
        let total = text_until(&c, "#chart-total", 20, |t| {
            t.contains("2 served") && t.contains("1 refused")
        })
        .await;
        eprintln!("chart: {total}");
        shot(&c, "06-chart").await;

        // The secure-token extensions: the key's strength and usage are shown, report mode is
        // saved without dropping the key, and a link revoked in the panel is refused by the edge.
        c.goto(&format!("{panel}#/resources/1/secure"))
            .await
            .unwrap();
        text_until(&c, "#sk-strength", 10, |t| t.contains("bits")).await;
        text_until(&c, "#rot-usage", 20, |t| t.contains("links matched")).await;
        fill(&c, "#rev-link", &url).await;
        el(&c, "#rev-add").await.click().await.unwrap();
        text_until(&c, "#rev-status", 10, |t| t.contains("Revoked")).await;
        until(Duration::from_secs(1), "the revoked link refused", || {
            fetch(Ipv4Addr::LOCALHOST).status == 403
        });
        let (_, list) = api.call("GET", "/cdn/resources/1/secure_key/revocations", None);
        assert_eq!(list["count"], 1, "{list}");
        text_until(&c, "#rev-list", 10, |t| t.contains("link")).await;
        shot(&c, "07-revoked").await;
        c.execute(
            "document.getElementById('sk-mode').value = 'report';",
            vec![],
        )
        .await
        .unwrap();
        el(&c, "#sk-save").await.click().await.unwrap();
        text_until(&c, "#sk-status", 10, |t| t.contains("Saved")).await;
        let (_, stored) = api.call("GET", "/cdn/resources/1", None);
        let sk = &stored["options"]["secure_key"];
        assert_eq!(
            (sk["mode"].as_str(), sk["key"].as_str()),
            (Some("report"), Some(key.as_str())),
            "{stored}"
        );
        assert_eq!(
            stored["secure_key_revocations"].as_array().map(Vec::len),
            Some(1),
            "the resource's save keeps the revocation"
        );
        c.close().await.unwrap();
    });
}
