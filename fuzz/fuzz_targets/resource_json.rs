//! Any bytes as a resources file (the API's and the snapshot's JSON): parsing and validating
//! never panic, whatever the numbers, strings and nesting; what validates round-trips through
//! JSON and validates again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(valid) = tollgate_model::parse_resources(text) {
        let again: Vec<_> = valid.iter().map(|v| v.resource.clone()).collect();
        let json = serde_json::to_string(&again).expect("resources serialize");
        let reparsed = tollgate_model::parse_resources(&json).expect("a valid set stays valid");
        assert_eq!(reparsed.len(), valid.len());
        for r in &valid {
            assert!(r.cache_override_secs.unwrap_or(0) <= tollgate_model::MAX_CACHE_SECS);
            assert!(r.cache_default_secs <= tollgate_model::MAX_CACHE_SECS);
        }
    }
});
