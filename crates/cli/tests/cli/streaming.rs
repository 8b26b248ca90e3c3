//! HLS and DASH behind secure tokens, with streams made by Debian's ffmpeg, served by Debian's
//! nginx as the origin, read through `tollgate edge` by ffmpeg itself: a VOD stream with
//! renditions in sub-directories (from one signed master URL, with `sign_each_directory`), an
//! fMP4 stream with `EXT-X-MAP`, an AES-128 stream with `EXT-X-KEY`, and a DASH stream. Every
//! request ffmpeg makes must be answered 200; a wrong token 403, an expired one 410, a segment
//! without a token 403. Gcore's own mode (the playlist's token copied, a directory token) is
//! checked on the single-directory stream.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{json, Value};
use tollgate_testkit::http::request;
use tollgate_testkit::nginx::Nginx;
use tollgate_testkit::tools::require;

use crate::procs::{Proc, TempDir};

/// Runs ffmpeg with `args`, failing the test with its output when it fails.
fn ffmpeg(args: &[&str]) {
    let out = Command::new(require("ffmpeg", "ffmpeg"))
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const SOURCE: [&str; 8] = [
    "-f",
    "lavfi",
    "-i",
    "testsrc=size=320x180:rate=25",
    "-f",
    "lavfi",
    "-i",
    "sine=frequency=440",
];

/// The streams, made once per test run under a directory that nginx serves.
fn content() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tollgate-streams-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let p = |s: &str| dir.join(s).to_string_lossy().into_owned();
        let x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-t", "6"];
        // VOD with two renditions in sub-directories and a master playlist above them.
        for (name, size) in [("360p", "320x180"), ("720p", "640x360")] {
            std::fs::create_dir_all(dir.join("vod").join(name)).unwrap();
            let mut args: Vec<String> = SOURCE.iter().map(|s| s.to_string()).collect();
            args.extend(["-s", size].map(String::from));
            args.extend(x264.map(String::from));
            args.extend(["-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod", "-hls_segment_filename"].map(String::from));
            args.push(p(&format!("vod/{name}/seg%03d.ts")));
            args.push(p(&format!("vod/{name}/index.m3u8")));
            ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
        }
        std::fs::write(
            dir.join("vod/master.m3u8"),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x180,CODECS=\"avc1.42c00d,mp4a.40.2\"\n360p/index.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS=\"avc1.42c01e,mp4a.40.2\"\n720p/index.m3u8\n",
        )
        .unwrap();
        // fMP4 segments with an init segment (EXT-X-MAP).
        std::fs::create_dir_all(dir.join("fmp4")).unwrap();
        let mut args: Vec<&str> = SOURCE.to_vec();
        let seg = p("fmp4/seg%03d.m4s");
        let idx = p("fmp4/index.m3u8");
        args.extend(x264);
        args.extend(["-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename", &seg, &idx]);
        ffmpeg(&args);
        // AES-128 (EXT-X-KEY), the key next to the segments.
        std::fs::create_dir_all(dir.join("aes")).unwrap();
        std::fs::write(dir.join("aes/enc.key"), [7u8; 16]).unwrap();
        let info = p("aes/keyinfo");
        std::fs::write(&info, format!("enc.key\n{}\n", p("aes/enc.key"))).unwrap();
        let (seg, idx) = (p("aes/seg%03d.ts"), p("aes/index.m3u8"));
        let mut args: Vec<&str> = SOURCE.to_vec();
        args.extend(x264);
        args.extend(["-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod", "-hls_key_info_file", &info, "-hls_segment_filename", &seg, &idx]);
        ffmpeg(&args);
        // DASH with SegmentTemplate.
        std::fs::create_dir_all(dir.join("dash")).unwrap();
        let mpd = p("dash/manifest.mpd");
        let mut args: Vec<&str> = SOURCE.to_vec();
        args.extend(x264);
        args.extend(["-f", "dash", "-seg_duration", "2", "-use_template", "1", "-use_timeline", "1", &mpd]);
        ffmpeg(&args);
        dir
    })
}

/// The player page and hls.js (from npm, `tests/player`), next to the streams.
fn install_player() {
    let src = tollgate_testkit::repo_root().join("tests/player");
    let hls = src.join("node_modules/hls.js/dist/hls.min.js");
    assert!(
        hls.exists(),
        "hls.js is required by this test: run `npm ci --prefix tests/player` (scripts/install-test-deps does)"
    );
    let dst = content().join("player");
    std::fs::create_dir_all(&dst).unwrap();
    for (from, name) in [
        (hls, "hls.min.js"),
        (src.join("player.html"), "player.html"),
        (src.join("player.js"), "player.js"),
    ] {
        std::fs::copy(from, dst.join(name)).unwrap();
    }
}

fn files_under(dir: &Path, ext: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .map(|p| {
            if p.is_dir() {
                files_under(&p, ext)
            } else {
                usize::from(p.extension().is_some_and(|e| e == ext))
            }
        })
        .sum()
}

struct Setup {
    origin: u16,
    _nginx: Nginx,
    _dir: TempDir,
    edge: Proc,
    port: u16,
    log: PathBuf,
}

/// nginx serving the streams, and an edge in front with query string forwarding.
fn setup(sign_each_directory: bool) -> Setup {
    setup_with(sign_each_directory, &[])
}

/// [`setup`] with more edge flags.
fn setup_with(sign_each_directory: bool, flags: &[&str]) -> Setup {
    setup_full(sign_each_directory, flags, true, json!({}))
}

/// [`setup_with`], the origin sending `Access-Control-Allow-Origin: *` or not, and more
/// options on the resource.
fn setup_full(
    sign_each_directory: bool,
    flags: &[&str],
    origin_cors: bool,
    options: Value,
) -> Setup {
    let root = content();
    let cors = if origin_cors {
        "add_header Access-Control-Allow-Origin *;"
    } else {
        ""
    };
    let origin = tollgate_testkit::free_port();
    let nginx = Nginx::start(&[origin], |_| {
        format!(
            "events {{}}\nhttp {{\n access_log off;\n types {{ text/html html; application/javascript js; application/vnd.apple.mpegurl m3u8; video/mp2t ts; application/dash+xml mpd; video/mp4 mp4 m4s; }}\n\
             server {{\n  listen 127.0.0.1:{origin};\n  root {};\n  {cors}\n }}\n}}\n",
            root.display()
        )
    });
    let dir = TempDir::new("streams");
    let mut res = json!([{"id": 1, "cname": "127.0.0.1", "origin": format!("127.0.0.1:{origin}"),
        "options": {"secure_key": {"enabled": true, "key": "secret_key", "type": 0},
            "query_string_forwarding": {"enabled": true,
                "forward_from_file_types": ["m3u8", "mpd"],
                "forward_to_file_types": ["ts", "m4s", "mp4", "m3u8", "key", "aac", "vtt"],
                "forward_only_keys": ["md5", "expires"],
                "sign_each_directory": sign_each_directory}}}]);
    for (k, v) in options.as_object().into_iter().flatten() {
        res[0]["options"][k] = v.clone();
    }
    let file = dir.path("resources.json");
    std::fs::write(&file, res.to_string()).unwrap();
    let log = dir.0.join("access.log");
    let log_path = log.to_string_lossy().into_owned();
    let mut args = vec![
        "edge",
        "--resources",
        &file,
        "--listen",
        "127.0.0.1:0",
        "--access-log",
        &log_path,
    ];
    args.extend_from_slice(flags);
    let mut edge = Proc::spawn(&args);
    let port = edge.port_after("listening on ");
    Setup {
        origin,
        _nginx: nginx,
        _dir: dir,
        edge,
        port,
        log,
    }
}

impl Setup {
    /// The status of a GET through the edge, from 127.0.0.1.
    fn get(&self, target: &str) -> u16 {
        request(
            Ipv4Addr::LOCALHOST,
            self.port,
            "GET",
            target.as_bytes(),
            &[("Host", "127.0.0.1")],
        )
        .unwrap()
        .status
    }
}

fn signed(path: &str, expires: i64) -> String {
    tollgate_testkit::link(path, expires, Some("127.0.0.1"))
}

/// The access log's (path, status) lines written since `from` lines.
fn log_lines(log: &Path, from: usize) -> Vec<(String, u16)> {
    std::thread::sleep(std::time::Duration::from_millis(200));
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .skip(from)
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["path"].as_str().unwrap().to_owned(),
                v["status"].as_u64().unwrap() as u16,
            )
        })
        .collect()
}

fn read_through_edge(port: u16, target: &str) -> Result<(), String> {
    let url = format!("http://127.0.0.1:{port}{target}");
    let out = Command::new(require("ffmpeg", "ffmpeg"))
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-i",
            &url,
            "-map",
            "0",
            "-c",
            "copy",
            "-f",
            "null",
            "-",
        ])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn ffmpeg_reads_every_stream_from_one_signed_url() {
    let s = setup(true);
    let later = tollgate_testkit::now() + 600;
    let mut seen = 0;
    for (name, master, segments) in [
        (
            "vod",
            "/vod/master.m3u8",
            files_under(&content().join("vod"), "ts"),
        ),
        (
            "fmp4",
            "/fmp4/index.m3u8",
            files_under(&content().join("fmp4"), "m4s"),
        ),
        (
            "aes",
            "/aes/index.m3u8",
            files_under(&content().join("aes"), "ts"),
        ),
        (
            "dash",
            "/dash/manifest.mpd",
            files_under(&content().join("dash"), "m4s"),
        ),
    ] {
        read_through_edge(s.port, &signed(master, later))
            .unwrap_or_else(|e| panic!("{name}: {e}\n{:?}", log_lines(&s.log, seen)));
        let lines = log_lines(&s.log, seen);
        seen += lines.len();
        // ffmpeg asks for segments with `Range: bytes=0-`, answered 206 from the cache.
        let refused: Vec<_> = lines
            .iter()
            .filter(|(_, st)| *st != 200 && *st != 206)
            .collect();
        assert!(refused.is_empty(), "{name}: {refused:?}");
        let segs = lines
            .iter()
            .filter(|(p, _)| p.ends_with(".ts") || p.ends_with(".m4s"))
            .count();
        assert!(
            segs >= segments,
            "{name}: {segs} segment requests for {segments} segments: {lines:?}"
        );
        if name == "aes" {
            assert!(
                lines.iter().any(|(p, _)| p == "/aes/enc.key"),
                "the key went through the edge"
            );
        }
        if name == "fmp4" {
            assert!(
                lines.iter().any(|(p, _)| p == "/fmp4/init.mp4"),
                "EXT-X-MAP's init segment"
            );
        }
    }
}

#[test]
fn wrong_expired_and_missing_tokens_are_refused() {
    let s = setup(true);
    let now = tollgate_testkit::now();
    let good = signed("/vod/master.m3u8", now + 600);
    let wrong = good.replace("md5=", "md5=AAAA");
    assert!(read_through_edge(s.port, &wrong).is_err());
    let expired = signed("/vod/master.m3u8", now - 1);
    assert!(read_through_edge(s.port, &expired).is_err());
    assert_eq!(s.get(&wrong), 403);
    assert_eq!(s.get(&expired), 410);
    assert_eq!(
        s.get("/vod/360p/seg000.ts"),
        403,
        "a segment without a token"
    );
    // The master's token is not a token for the renditions' directories: only the rewritten
    // playlists carry those.
    let (_, q) = good.split_once('?').unwrap();
    assert_eq!(s.get(&format!("/vod/360p/seg000.ts?{q}")), 403);
    // From another address, the IP-bound link is refused.
    let other = request(
        Ipv4Addr::new(127, 0, 0, 2),
        s.port,
        "GET",
        good.as_bytes(),
        &[("Host", "127.0.0.1")],
    )
    .unwrap();
    assert_eq!(other.status, 403);
    drop(s.edge);
}

#[test]
fn gcore_mode_copies_the_playlist_token_for_one_directory() {
    let s = setup(false);
    let later = tollgate_testkit::now() + 600;
    // A token for the directory (with the trailing slash, no file name), Gcore's way.
    let dir_token = signed("/fmp4/", later);
    let (_, q) = dir_token.split_once('?').unwrap();
    read_through_edge(s.port, &format!("/fmp4/index.m3u8?{q}")).unwrap();
    let lines = log_lines(&s.log, 0);
    assert!(
        lines.iter().all(|(_, st)| *st == 200 || *st == 206),
        "{lines:?}"
    );
    assert!(lines.iter().filter(|(p, _)| p.ends_with(".m4s")).count() >= 3);
    // An exact-file token still opens the file it was signed for (decided: both kinds are
    // accepted), but copied into the playlist it cannot open the segments: in this mode the
    // playlist's link must be signed for its directory.
    let exact = signed("/fmp4/index.m3u8", later);
    assert_eq!(s.get(&exact), 200);
    assert!(read_through_edge(s.port, &exact).is_err());
    // Gcore's limit, the reason for sign_each_directory: renditions in sub-directories fail.
    assert!(read_through_edge(s.port, &signed("/vod/master.m3u8", later)).is_err());
    // The playlist body seen by the player carries the token; the cache keeps one copy.
    let r = request(
        Ipv4Addr::LOCALHOST,
        s.port,
        "GET",
        format!("/fmp4/index.m3u8?{q}").as_bytes(),
        &[("Host", "127.0.0.1")],
    )
    .unwrap();
    let body = String::from_utf8(r.body.clone()).unwrap();
    assert!(
        body.contains(&format!("init.mp4?{q}")) && body.contains(&format!("seg000.m4s?{q}")),
        "{body}"
    );
    assert_eq!(r.header("cache"), Some("HIT"));
}

#[test]
fn hls_js_in_headless_chromium_plays_through_the_edge() {
    let s = setup(true);
    install_player();
    let (_driver, driver_port) = crate::panel_browser::start_driver();
    // The page comes straight from the origin; only the stream goes through the edge.
    let page = player_page(&s);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = crate::panel_browser::chromium(
            driver_port,
            &["--autoplay-policy=no-user-gesture-required"],
        )
        .await;
        let (time, errors) = playback(&c, &page, 30).await;
        let png = c.screenshot().await.unwrap();
        std::fs::write(
            crate::panel_browser::screenshots_dir().join("player-hls.png"),
            png,
        )
        .unwrap();
        c.close().await.unwrap();
        assert!(
            time > 2.0,
            "playback did not advance: currentTime {time}, errors {errors}"
        );
        eprintln!("hls.js: playback at {time:.1} s, errors {errors}");
    });
    let lines = log_lines(&s.log, 0);
    assert!(
        lines.iter().all(|(_, st)| *st == 200 || *st == 206),
        "{lines:?}"
    );
    assert!(lines.iter().any(|(p, _)| p.ends_with(".ts")), "{lines:?}");
}

#[test]
fn playlists_too_large_to_cache_are_rewritten_too() {
    // Every object here is above --max-object-size, so nothing is cached: playlists are read
    // whole for each request and rewritten, segments stream through.
    let s = setup_with(true, &["--max-object-size", "100"]);
    let master = signed("/vod/master.m3u8", tollgate_testkit::now() + 600);
    read_through_edge(s.port, &master)
        .unwrap_or_else(|e| panic!("{e}\n{:?}", log_lines(&s.log, 0)));
    let lines = log_lines(&s.log, 0);
    assert!(
        lines.iter().all(|(_, st)| *st == 200 || *st == 206),
        "{lines:?}"
    );
    let segments = files_under(&content().join("vod"), "ts");
    assert!(
        lines.iter().filter(|(p, _)| p.ends_with(".ts")).count() >= segments,
        "{lines:?}"
    );
}

/// The player page, served by the origin (another origin than the edge's), playing a signed
/// master playlist through the edge.
fn player_page(s: &Setup) -> String {
    let master = signed("/vod/master.m3u8", tollgate_testkit::now() + 600);
    let src = format!("http://127.0.0.1:{}{master}", s.port);
    format!(
        "http://127.0.0.1:{}/player/player.html?src={}",
        s.origin,
        src.replace('%', "%25")
            .replace('&', "%26")
            .replace('?', "%3F")
            .replace('=', "%3D")
    )
}

/// Where hls.js stands on `page` after up to `secs` seconds: playback time and its errors.
async fn playback(c: &fantoccini::Client, page: &str, secs: u64) -> (f64, Value) {
    c.goto(page).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let (mut time, mut errors) = (0.0, Value::Null);
    while std::time::Instant::now() < deadline {
        let v = c
            .execute(
                "return [document.getElementById('video').currentTime, window.playerErrors];",
                vec![],
            )
            .await
            .unwrap();
        time = v[0].as_f64().unwrap_or(0.0);
        errors = v[1].clone();
        let fatal = errors.as_array().is_some_and(|e| {
            e.iter()
                .any(|x| x.as_str().is_some_and(|s| s.contains("fatal")))
        });
        if time > 2.0 || fatal {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    (time, errors)
}

/// What a page's script reads of a cross-origin `fetch` of `url`: the status, or the error.
async fn fetched(c: &fantoccini::Client, url: &str) -> Value {
    c.execute_async(
        "const done = arguments[arguments.length - 1];
         fetch(arguments[0]).then(r => done(r.status)).catch(e => done('error: ' + e));",
        vec![json!(url)],
    )
    .await
    .unwrap()
}

#[test]
fn hls_js_on_another_origin_plays_with_cors_and_reads_the_expired_status_with_always() {
    install_player();
    let (_driver, driver_port) = crate::panel_browser::start_driver();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // An origin that sends no CORS header itself: the player's page (served by it, another
    // origin than the edge's) needs the edge's.
    let page_of = player_page;
    let expired = |s: &Setup| {
        let seg = signed("/vod/360p/seg000.ts", tollgate_testkit::now() - 30);
        format!("http://127.0.0.1:{}{seg}", s.port)
    };
    let without = setup_full(true, &[], false, json!({}));
    let plain = setup_full(
        true,
        &[],
        false,
        json!({"cors": {"enabled": true, "value": ["*"]}}),
    );
    let always = setup_full(
        true,
        &[],
        false,
        json!({"cors": {"enabled": true, "value": ["127.0.0.1"], "always": true}}),
    );
    rt.block_on(async {
        let c = crate::panel_browser::chromium(
            driver_port,
            &["--autoplay-policy=no-user-gesture-required"],
        )
        .await;
        let (time, errors) = playback(&c, &page_of(&without), 8).await;
        assert!(
            time < 0.5 && errors.to_string().contains("manifestLoadError"),
            "without cors the player cannot read the playlist: {time} {errors}"
        );
        let (time, errors) = playback(&c, &page_of(&plain), 30).await;
        assert!(time > 2.0, "with cors: playback at {time}, errors {errors}");
        // A refusal without `always` has no CORS header: the script sees a network error.
        let seen = fetched(&c, &expired(&plain)).await;
        assert!(
            seen.as_str().is_some_and(|s| s.starts_with("error")),
            "{seen}"
        );
        let (time, errors) = playback(&c, &page_of(&always), 30).await;
        assert!(time > 2.0, "cors with a domain list: {time}, {errors}");
        let seen = fetched(&c, &expired(&always)).await;
        assert_eq!(seen, json!(410), "with always the script reads the 410");
        let png = c.screenshot().await.unwrap();
        std::fs::write(
            crate::panel_browser::screenshots_dir().join("player-hls-cors.png"),
            png,
        )
        .unwrap();
        c.close().await.unwrap();
    });
}
