//! The token gate's cost of revocations: verifying a valid link (MD5 and all) with no
//! revocation, and with 10,000 of them (a third tokens, a third paths, a third directories),
//! in the same run, as the edge's gate does it (the verified token looked up, then the path).
#![allow(clippy::unwrap_used)] // bench code: a panic is how it fails
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use tollgate_model::{Revocation, Revocations};
use tollgate_token::{sign, verify, Key, Target};

fn list(n: usize) -> Vec<Revocation> {
    (0..n)
        .map(|i| {
            let mut r = Revocation {
                id: i as u64 + 1,
                token: None,
                expires: None,
                path: None,
                prefix: false,
                expires_at_or_below: None,
                created: None,
            };
            match i % 3 {
                0 => {
                    let mut d = [0u8; 16];
                    d[..8].copy_from_slice(&(i as u64).to_le_bytes());
                    r.token = Some(tollgate_token::Token::from_digest(&d).as_str().to_owned());
                    r.expires = Some(2_000_000_000);
                }
                1 => r.path = Some(format!("/videos/pulled-{i}.mp4")),
                _ => {
                    r.path = Some(format!("/courses/c{i}/"));
                    r.prefix = true;
                    r.expires_at_or_below = Some(1_900_000_000);
                }
            }
            r
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let key = Key::new("secret_key").unwrap();
    let keys = [key.clone()];
    let expires = 2_000_000_000;
    let path = "/videos/2026/episode-12/segment_00042.ts";
    let t = sign(&key, expires, path.as_bytes(), None).unwrap();
    let link = format!("{path}?md5={t}&expires={expires}");
    let target = Target::parse(link.as_bytes()).unwrap();
    let now = 1_800_000_000;
    let gate = |revocations: &Revocations| {
        let v = verify(&target, &keys, None, now).unwrap();
        assert!(!revocations.revokes(&v.token, target.uri(), v.expires));
        v
    };
    let none = Revocations::new(&[]);
    let many = Revocations::new(&list(10_000));
    let mut g = c.benchmark_group("gate");
    g.bench_function("no_revocations", |b| b.iter(|| gate(&none)));
    g.bench_function("10000_revocations", |b| b.iter(|| gate(&many)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
