//! Tollgate's secure-token extensions in the API: `mode` (report or enforce) and the
//! read-only `secure_key_strength` of the key and the previous key.

use serde_json::json;

use crate::start;

#[test]
fn report_mode_and_key_strength_in_the_answers() {
    let r = start("token-ext");
    let api = &r.api;
    let (s, res) = api.call(
        "POST",
        "/cdn/resources",
        Some(&json!({"cname": "r.example.com", "origin": "o.example",
            "options": {"secure_key": {"enabled": true, "key": "aB3xY9", "type": 2,
                "previous_key": "Xq7#pL2v!Rt9mZ4w@Kd8sN3b%Hf6jC1y", "mode": "report"}}})),
    );
    assert_eq!(s, 201, "{res}");
    assert_eq!(res["options"]["secure_key"]["mode"], "report");
    let weak = &res["secure_key_strength"]["key"];
    assert_eq!(
        (weak["length"].as_u64(), weak["alphabet"].as_u64()),
        (Some(6), Some(62))
    );
    let warning = weak["warning"].as_str().unwrap();
    assert!(
        warning.contains("62^6 ~ 5.7e10") && warning.contains("6 hours"),
        "{warning}"
    );
    let strong = &res["secure_key_strength"]["previous_key"];
    assert!(strong["bits"].as_f64().unwrap() > 190.0 && strong.get("warning").is_none());
    // Read-only: the answer goes back to PUT as it is.
    let id = res["id"].as_u64().unwrap();
    let (s, put) = api.call("PUT", &format!("/cdn/resources/{id}"), Some(&res));
    assert_eq!(s, 200, "{put}");
    let (s, e) = api.call(
        "PATCH",
        &format!("/cdn/resources/{id}"),
        Some(
            &json!({"options": {"secure_key": {"enabled": true, "key": "aB3xY9",
            "mode": "audit"}}}),
        ),
    );
    assert_eq!(s, 400, "{e}");
    assert!(e.to_string().contains("mode"), "{e}");
    let (_, plain) = api.call(
        "POST",
        "/cdn/resources",
        Some(&json!({"cname": "p.example.com", "origin": "o.example"})),
    );
    assert!(plain.get("secure_key_strength").is_none(), "{plain}");
}
