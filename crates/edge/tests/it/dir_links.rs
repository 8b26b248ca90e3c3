//! `sign_each_directory` end to end: a master playlist through the edge, and every rewritten
//! link requested back through it as a player would, which must play. A link whose directory is
//! written in a form nginx normalises (`a//b/`, `%2F`) is signed over the directory the edge
//! checks, not over the one written, and two links written in one directory (`h%2Fi.m3u8`
//! and `top.m3u8`) can be in two.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use tollgate_edge::EdgeConfig;
use tollgate_testkit::{link, now};

use crate::RunningEdge;

const HOST: &str = "vod.example.com";

/// The links of the master playlist, as written; the player requests them relative to it.
const LINKS: [&str; 6] = [
    "c/index.m3u8",
    "a//b/index.m3u8",
    "d/%2F/e/index.m3u8",
    "f%2Fg/index.m3u8",
    // A file name whose escape is a `/`: in a directory of its own, not the playlist's.
    "h%2Fi.m3u8",
    "top.m3u8",
];

/// An origin (std only, like the test origin) answering `.../master.m3u8` with a master
/// playlist of [`LINKS`], and anything else with a one-line body. Returns its port.
fn playlist_origin() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).map_or(true, |n| n == 0) || h.trim().is_empty() {
                    break;
                }
            }
            let body = if path
                .split('?')
                .next()
                .unwrap_or("")
                .ends_with("/master.m3u8")
            {
                let mut b = String::from("#EXTM3U\n");
                for l in LINKS {
                    b.push_str("#EXT-X-STREAM-INF:BANDWIDTH=800000\n");
                    b.push_str(l);
                    b.push('\n');
                }
                b
            } else {
                format!("origin {path}\n")
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn every_rewritten_link_of_a_master_playlist_plays() {
    let origin = playlist_origin();
    let json = serde_json::json!([{
        "id": 1, "cname": HOST, "origin": format!("127.0.0.1:{origin}"), "originProtocol": "HTTP",
        "options": {
            "secure_key": {"enabled": true, "key": "secret_key", "type": 2},
            "query_string_forwarding": {"enabled": true,
                "forward_from_file_types": ["m3u8"], "forward_to_file_types": ["m3u8", "ts"],
                "forward_only_keys": ["md5", "expires"], "sign_each_directory": true}
        }
    }]);
    let edge = RunningEdge::start(&json.to_string(), EdgeConfig::default());

    let master = edge.get(HOST, &link("/v/master.m3u8", now() + 60, None), &[]);
    assert_eq!(master.status, 200);
    let body = String::from_utf8(master.body).unwrap();
    // Every link's status, so a failure names all the links that do not play.
    let statuses: Vec<(&str, u16)> = LINKS
        .iter()
        .map(|&written| {
            let rewritten = body
                .lines()
                .find(|l| l.split('?').next() == Some(written))
                .unwrap_or_else(|| panic!("{written} is in the playlist: {body}"));
            assert!(
                rewritten.contains("?md5="),
                "{written} gets a token: {body}"
            );
            // No dot segments: the player requests the link as written, under the playlist's
            // directory.
            (
                written,
                edge.get(HOST, &format!("/v/{rewritten}"), &[]).status,
            )
        })
        .collect();
    let all_play: Vec<(&str, u16)> = LINKS.iter().map(|&l| (l, 200)).collect();
    assert_eq!(statuses, all_play, "{body}");
}
