//! Manifest rewriting speed: MB/s on a long VOD playlist and a DASH manifest, and the cost of
//! one rewrite of a typical live playlist (six segments), in both modes.
#![allow(clippy::unwrap_used)] // bench code: a panic is how it fails

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tollgate_manifest::{rewrite, Addition, Kind, Rewrite};
use tollgate_token::Key;

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

fn dash() -> Vec<u8> {
    let mut s =
        String::from(r#"<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011"><Period>"#);
    for r in 0..4 {
        s.push_str(&format!(r#"<AdaptationSet><Representation id="{r}" bandwidth="800000"><SegmentList timescale="1000">
<Initialization sourceURL="init-{r}.m4s"/>"#));
        for i in 0..1000 {
            s.push_str(&format!(r#"<SegmentURL media="chunk-{r}-{i:05}.m4s"/>"#));
        }
        s.push_str("</SegmentList></Representation></AdaptationSet>");
    }
    s.push_str("</Period></MPD>");
    s.into_bytes()
}

fn bench(c: &mut Criterion) {
    let types: Vec<String> = ["ts", "m4s", "m3u8"].map(String::from).to_vec();
    let key = Key::new("secret_key").unwrap();
    let own = |_: &[u8]| true;
    let copy = || Rewrite {
        to_types: &types,
        param_names: &[b"md5", b"expires"],
        addition: Addition::Copy(b"md5=vHEnxR8VaxpEDgyNzJuWwA&expires=2147483647"),
        base_dir: b"/videos/v1/",
        own_host: &own,
    };
    let sign = || Rewrite {
        to_types: &types,
        param_names: &[b"md5", b"expires"],
        addition: Addition::SignEachDirectory {
            key: &key,
            expires: b"2147483647",
            ip: Some(tollgate_token::RemoteAddr::new(
                "203.0.113.7".parse().unwrap(),
            )),
            scope: b"/videos/v1/",
        },
        base_dir: b"/videos/v1/",
        own_host: &own,
    };

    let mut g = c.benchmark_group("throughput");
    for (name, kind, body) in [
        ("hls_5000_segments", Kind::Hls, hls(5000)),
        ("dash_4x1000_segments", Kind::Dash, dash()),
    ] {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::new("copy", name), &body, |b, body| {
            b.iter(|| rewrite(kind, body, &copy()))
        });
        g.bench_with_input(
            BenchmarkId::new("sign_each_directory", name),
            &body,
            |b, body| b.iter(|| rewrite(kind, body, &sign())),
        );
    }
    g.finish();

    let live = hls(6);
    let mut g = c.benchmark_group("live_playlist");
    g.bench_function("copy", |b| b.iter(|| rewrite(Kind::Hls, &live, &copy())));
    g.bench_function("sign_each_directory", |b| {
        b.iter(|| rewrite(Kind::Hls, &live, &sign()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
