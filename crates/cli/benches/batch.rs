//! `tollgate sign --batch` throughput on 1,000,000 paths, in memory (the binary adds only
//! buffered stdin/stdout). Target: at least 1,000,000 links/s.
#![allow(clippy::unwrap_used)] // test code: a panic is how it fails

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tollgate::batch::{sign_lines, BatchSpec};
use tollgate_token::Key;

const LINES: u64 = 1_000_000;

fn benches(c: &mut Criterion) {
    let mut input = Vec::new();
    for i in 0..LINES {
        input.extend_from_slice(format!("/videos/{}/segment-{:05}.ts\n", i % 997, i).as_bytes());
    }
    let key = Key::new("secret_key").unwrap();
    let spec = BatchSpec {
        key: &key,
        expires: 2147483647,
        client: None,
        base: "https://cdn.example.com",
        token_only: false,
    };
    let mut out = Vec::with_capacity(input.len() * 3);
    let mut g = c.benchmark_group("batch");
    g.sample_size(10);
    g.throughput(Throughput::Elements(LINES));
    g.bench_function("sign_1m_paths", |b| {
        b.iter(|| {
            out.clear();
            sign_lines(black_box(&input[..]), &mut out, &spec, |_| {}, |_, _| {}).unwrap()
        })
    });
    g.finish();
}

criterion_group!(batch, benches);
criterion_main!(batch);
