//! The cost of edge compression per response: the 5,000-segment VOD playlist of the manifest
//! benchmark, rewritten (query string forwarding) and compressed at the level of a body
//! compressed as it is sent (gzip 1, Brotli 1: a rewritten playlist differs per viewer), against
//! the rewrite alone; and a stored body compressed once (gzip 6, Brotli 5). Prints the bytes
//! each saves.
#![allow(clippy::unwrap_used)] // bench code: a panic is how it fails
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tollgate_edge::compress::{per_response, whole_body, Encoding};
use tollgate_manifest::{rewrite, Addition, Kind, Rewrite};

fn hls(segments: usize) -> Vec<u8> {
    let mut s = String::from(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n",
    );
    for i in 0..segments {
        s.push_str(&format!("#EXTINF:4.000000,\nsegment_{i:05}.ts\n"));
    }
    s.push_str("#EXT-X-ENDLIST\n");
    s.into_bytes()
}

fn bench(c: &mut Criterion) {
    let types: Vec<String> = ["ts"].map(String::from).to_vec();
    let own = |_: &[u8]| true;
    let copy = || Rewrite {
        to_types: &types,
        param_names: &[b"md5", b"expires"],
        addition: Addition::Copy(b"md5=vHEnxR8VaxpEDgyNzJuWwA&expires=2147483647"),
        base_dir: b"/videos/v1/",
        own_host: &own,
    };
    let body = hls(5000);
    let rewritten = rewrite(Kind::Hls, &body, &copy());
    for (name, enc) in [("gzip", Encoding::Gzip), ("br", Encoding::Brotli)] {
        let per = per_response(enc, &rewritten).len();
        let stored = whole_body(enc, &body).len();
        eprintln!(
            "{name}: rewritten {} -> {per} bytes per response ({:.1}% saved); stored {} -> {stored} once ({:.1}% saved)",
            rewritten.len(),
            100.0 * (1.0 - per as f64 / rewritten.len() as f64),
            body.len(),
            100.0 * (1.0 - stored as f64 / body.len() as f64),
        );
    }
    let mut g = c.benchmark_group("vod_5000_segments");
    g.throughput(Throughput::Bytes(rewritten.len() as u64));
    g.bench_function("rewrite", |b| b.iter(|| rewrite(Kind::Hls, &body, &copy())));
    g.bench_function("rewrite_gzip_per_response", |b| {
        b.iter(|| per_response(Encoding::Gzip, &rewrite(Kind::Hls, &body, &copy())))
    });
    g.bench_function("rewrite_brotli_per_response", |b| {
        b.iter(|| per_response(Encoding::Brotli, &rewrite(Kind::Hls, &body, &copy())))
    });
    g.bench_function("stored_gzip_once", |b| {
        b.iter(|| whole_body(Encoding::Gzip, &body))
    });
    g.bench_function("stored_brotli_once", |b| {
        b.iter(|| whole_body(Encoding::Brotli, &body))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
