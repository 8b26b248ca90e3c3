//! `verify` and `sign` against a bare MD5 of the same input, measured in the same run.
//! Target: verify within 2x of the bare MD5.
#![allow(clippy::unwrap_used)] // test code: a panic is how it fails

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use md5::{Digest, Md5};
use tollgate_token::{sign, verify_request, Key};

const PATH: &[u8] = b"/videos/2024/movie-1080p/segment-00042.ts";
const EXPIRES: i64 = 2147483647;

fn benches(c: &mut Criterion) {
    let key = Key::new("secret_key").unwrap();
    let ip: IpAddr = "203.0.113.7".parse().unwrap();
    let token = sign(&key, EXPIRES, PATH, Some(ip)).unwrap();
    let target = format!(
        "{}?md5={token}&expires={EXPIRES}",
        std::str::from_utf8(PATH).unwrap()
    );
    let hashed = format!(
        "{EXPIRES}{}{ip} secret_key",
        std::str::from_utf8(PATH).unwrap()
    );
    let keys = [key.clone()];

    let mut g = c.benchmark_group("token");
    g.bench_function("md5_bare_same_input", |b| {
        b.iter(|| Md5::digest(black_box(hashed.as_bytes())))
    });
    g.bench_function("md5_pieces", |b| {
        b.iter(|| {
            let mut h = Md5::new();
            h.update(black_box(b"2147483647"));
            h.update(black_box(PATH));
            h.update(black_box(b"203.0.113.7"));
            h.update(b" ");
            h.update(b"secret_key");
            h.finalize()
        })
    });
    g.bench_function("remote_addr", |b| {
        b.iter(|| tollgate_token::RemoteAddr::new(black_box(ip)))
    });
    g.bench_function("parse_target", |b| {
        b.iter(|| {
            tollgate_token::Target::parse(black_box(target.as_bytes())).map(|t| t.args().len())
        })
    });
    g.bench_function("verify_typical_link", |b| {
        b.iter(|| verify_request(black_box(target.as_bytes()), &keys, Some(ip), 1_800_000_000))
    });
    g.bench_function("sign", |b| {
        b.iter(|| sign(&key, black_box(EXPIRES), black_box(PATH), Some(ip)))
    });
    g.finish();
}

criterion_group!(token, benches);
criterion_main!(token);
