//! Property tests: sign-then-verify holds inside the window and fails after it, any changed
//! byte fails, parse(format(x)) == x, and no input makes anything panic.

use std::net::{IpAddr, Ipv6Addr};

use proptest::prelude::*;
use tollgate_token::base64url::{decode_token, encode_digest};
use tollgate_token::sign::encode_path;
use tollgate_token::{sign, sign_link, verify_request, Key, Refusal, RemoteAddr, Target};

/// A path nginx leaves unchanged after decoding: segments of any bytes but `/` and NUL, never
/// `.` or `..`, no empty segment except a trailing one.
fn signable_path() -> impl Strategy<Value = Vec<u8>> {
    let segment = prop::collection::vec(1u8..=255, 1..12)
        .prop_filter("no slash, no dot segment", |s| {
            !s.contains(&b'/') && s != b"." && s != b".."
        });
    (prop::collection::vec(segment, 0..5), any::<bool>()).prop_map(|(segs, trailing)| {
        let mut p = Vec::new();
        for s in &segs {
            p.push(b'/');
            p.extend_from_slice(s);
        }
        if trailing || p.is_empty() {
            p.push(b'/');
        }
        p
    })
}

fn key() -> impl Strategy<Value = Key> {
    "[!-~]{6,32}".prop_map(|s| Key::new(&s).expect("generated key is valid"))
}

fn ip() -> impl Strategy<Value = Option<IpAddr>> {
    prop_oneof![
        Just(None),
        any::<[u8; 4]>().prop_map(|o| Some(IpAddr::from(o))),
        any::<[u8; 16]>().prop_map(|o| Some(IpAddr::from(o))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn sign_then_verify_inside_and_after_window(
        path in signable_path(), key in key(), ip in ip(),
        expires in 1i64..4_000_000_000, before in 0i64..1_000_000, after in 1i64..1_000_000,
    ) {
        let mut link = Vec::new();
        sign_link(&mut link, "", &key, expires, &path, ip).unwrap();
        let keys = [key];
        let ok = verify_request(&link, &keys, ip, expires - before);
        prop_assert_eq!(ok.map(|v| v.key_index), Ok(0));
        let late = verify_request(&link, &keys, ip, expires + after);
        prop_assert_eq!(late, Err(Refusal::Expired { expires, now: expires + after }));
    }

    #[test]
    fn any_changed_token_character_fails(
        path in signable_path(), key in key(), pos in 0usize..22, new in 0usize..64,
    ) {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let token = sign(&key, 2_000_000_000, &path, None).unwrap();
        let mut t = *token.as_bytes();
        let old = A.iter().position(|&c| c == t[pos]).unwrap();
        prop_assume!(old != new);
        t[pos] = A[new];
        let mut target = Vec::new();
        encode_path(&mut target, &path);
        target.extend_from_slice(b"?md5=");
        target.extend_from_slice(&t);
        target.extend_from_slice(b"&expires=2000000000");
        let got = verify_request(&target, &[key], None, 1);
        // The last character carries 2 bits; nginx ignores its low 4.
        if pos == 21 && (old & 0x30) == (new & 0x30) {
            prop_assert!(got.is_ok());
        } else {
            prop_assert_eq!(got, Err(Refusal::Mismatch));
        }
    }

    #[test]
    fn another_path_address_or_key_fails(
        a in signable_path(), b in signable_path(), k1 in key(), k2 in key(),
        ip1 in ip(), ip2 in ip(),
    ) {
        prop_assume!(a != b || k1 != k2 || ip1 != ip2);
        let t1 = sign(&k1, 2_000_000_000, &a, ip1).unwrap();
        let t2 = sign(&k2, 2_000_000_000, &b, ip2).unwrap();
        prop_assert_ne!(t1, t2);
    }

    #[test]
    fn encoded_path_parses_back(path in signable_path()) {
        let mut enc = Vec::new();
        encode_path(&mut enc, &path);
        let t = Target::parse(&enc).unwrap();
        prop_assert_eq!(t.uri(), &path[..]);
        prop_assert!(t.args().is_empty());
    }

    #[test]
    fn remote_addr_parses_back(o in any::<[u8; 16]>()) {
        let v6 = Ipv6Addr::from(o);
        let text = RemoteAddr::new(IpAddr::V6(v6));
        prop_assert_eq!(text.as_str().parse::<Ipv6Addr>().unwrap(), v6);
        prop_assert_eq!(text.as_str(), text.as_str().to_ascii_lowercase());
    }

    #[test]
    fn base64_round_trip(d in any::<[u8; 16]>()) {
        prop_assert_eq!(decode_token(&encode_digest(&d)), Ok(d));
    }

    #[test]
    fn arbitrary_targets_never_panic(target in prop::collection::vec(any::<u8>(), 0..200)) {
        let keys = [Key::new("secret_key").unwrap()];
        let _ = verify_request(&target, &keys, None, 1);
        let _ = tollgate_token::explain(&target, &keys, Some(IpAddr::from([1, 2, 3, 4])), 1);
    }

    #[test]
    fn adversarial_targets_never_panic(
        target in "/[a-z/.%?#=&0-9A-Fmd5xpire-]{0,60}", now in any::<i64>(),
    ) {
        let keys = [Key::new("secret_key").unwrap()];
        let r = verify_request(target.as_bytes(), &keys, None, now);
        if let Err(e) = r {
            prop_assert!(matches!(e.status(), 400 | 403 | 410));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Subnet binding: a link signed for one address's network verifies from every address of
    /// that network and from none outside it; and without a prefix, the `_as` functions decide
    /// exactly as the address-taking ones (what a resource without Tollgate's extensions gets).
    #[test]
    fn network_bound_links_hold_within_the_network_only(
        path in signable_path(), key in key(), a in any::<[u8; 4]>(), b in any::<[u8; 4]>(),
        len in 1u8..=32, expires in 1i64..4_000_000_000,
    ) {
        let (a, b) = (IpAddr::from(a), IpAddr::from(b));
        let net = RemoteAddr::network(a, len, 64);
        let t = tollgate_token::sign_as(&key, expires, &path, Some(&net)).unwrap();
        let mut link = Vec::new();
        tollgate_token::sign::write_link(&mut link, "", &path, &t, expires);
        let target = Target::parse(&link).unwrap();
        let keys = [key];
        let from_b = RemoteAddr::network(b, len, 64);
        let same = from_b.as_str() == net.as_str();
        let v = tollgate_token::verify_as(&target, &keys, Some(&from_b), expires);
        prop_assert_eq!(v.is_ok(), same);
        let plain = tollgate_token::verify(&target, &keys, Some(b), expires);
        let as_text = tollgate_token::verify_as(&target, &keys, Some(&RemoteAddr::new(b)), expires);
        prop_assert_eq!(plain.map(|v| v.key_index), as_text.map(|v| v.key_index));
    }
}
