//! Any bytes as a request target: parsing, verifying and explaining never panic, and a target
//! that parses has a `$uri` no longer than itself that starts with '/'.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_token::{explain, verify_request, Key, Target};

fuzz_target!(|data: &[u8]| {
    let keys = [Key::new("secret_key").unwrap(), Key::new("old_key_1").unwrap()];
    let ip = Some(std::net::IpAddr::from([1, 2, 3, 4]));
    if let Ok(t) = Target::parse(data) {
        assert!(t.uri().len() <= data.len());
        assert_eq!(t.uri().first(), Some(&b'/'));
    }
    let r = verify_request(data, &keys, ip, 1_800_000_000);
    let e = explain(data, &keys, ip, 1_800_000_000);
    assert_eq!(r, e.outcome);
});
