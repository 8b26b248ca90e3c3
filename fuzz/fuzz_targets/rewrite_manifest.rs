//! Arbitrary bytes as an HLS playlist or a DASH manifest, in both forwarding modes: the
//! rewriter must never panic, and must copy a body without links unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_manifest::{rewrite, Addition, Kind, Rewrite};
use tollgate_token::Key;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let kind = if mode & 1 == 0 { Kind::Hls } else { Kind::Dash };
    let types: Vec<String> = ["ts", "m4s", "mp4", "m3u8", "key"].map(String::from).to_vec();
    let key = Key::new("secret_key").expect("valid key");
    let own = |h: &[u8]| h == b"cdn.example.com";
    let addition = if mode & 2 == 0 {
        Addition::Copy(b"md5=abc&expires=1")
    } else {
        Addition::SignEachDirectory {
            key: &key,
            expires: b"2147483647",
            ip: None,
            scope: b"/v/",
        }
    };
    let out = rewrite(
        kind,
        body,
        &Rewrite {
            to_types: &types,
            param_names: &[b"md5", b"expires"],
            addition,
            base_dir: b"/v/",
            own_host: &own,
        },
    );
    // Only additions: the output is never shorter than the input.
    assert!(out.len() >= body.len());
});
