//! The commands' contract: outputs, JSON shape, exit codes, and errors that name the field.

use crate::{err, out, tollgate};

const LINK: &str = "http://cdn.site.com/images/1.jpg?md5=vHEnxR8VaxpEDgyNzJuWwA&expires=2147483647";

#[test]
fn sign_prints_the_documented_link() {
    let o = tollgate(
        &[
            "sign",
            "--key",
            "secret_key",
            "--path",
            "/images/1.jpg",
            "--expires",
            "2147483647",
            "--base",
            "http://cdn.site.com",
        ],
        None,
    );
    assert!(o.status.success());
    assert_eq!(out(&o), LINK);
}

#[test]
fn sign_encodes_what_it_signs_decoded() {
    let o = tollgate(
        &[
            "sign",
            "--key",
            "secret_key",
            "--path",
            "/a b/caf\u{e9}.mp4",
            "--expires",
            "2147483647",
        ],
        None,
    );
    let link = out(&o);
    assert!(link.starts_with("/a%20b/caf%C3%A9.mp4?md5="), "{link}");
    let v = tollgate(&["verify", "--key", "secret_key", &link], None);
    assert!(v.status.success(), "{}", out(&v));
}

#[test]
fn verify_json_shape_and_exit_codes() {
    let cases = [
        (LINK.to_owned(), vec![], 0, "{\"detail\":"),
        (LINK.replace("vHEnx", "vHEny"), vec![], 1, "\"status\":403"),
        (
            LINK.to_owned(),
            vec!["--now", "2147483648"],
            1,
            "\"status\":410",
        ),
        ("/%zz?md5=x".to_owned(), vec![], 1, "\"status\":400"),
    ];
    for (link, extra, code, want) in cases {
        let mut args = vec!["verify", "--key", "secret_key", "--json"];
        args.extend(extra);
        args.push(&link);
        let o = tollgate(&args, None);
        assert_eq!(o.status.code(), Some(code), "{link}: {}", out(&o));
        let text = out(&o);
        assert!(text.contains(want), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for field in ["status", "reason", "detail", "key"] {
            assert!(v.get(field).is_some(), "{field} missing in {text}");
        }
    }
}

#[test]
fn verify_reports_which_key_matched() {
    let o = tollgate(
        &[
            "verify",
            "--key",
            "new_key_1",
            "--key",
            "secret_key",
            "--json",
            LINK,
        ],
        None,
    );
    assert!(o.status.success());
    // The second --key, counted from 1 as the text output counts ("key 2").
    assert!(out(&o).contains("\"key\":2"), "{}", out(&o));
    let text = tollgate(
        &["verify", "--key", "new_key_1", "--key", "secret_key", LINK],
        None,
    );
    assert!(out(&text).contains("signed with key 2"), "{}", out(&text));
}

#[test]
fn a_mismatch_without_ip_says_that_bound_links_need_it() {
    let bound = {
        let o = tollgate(
            &[
                "sign",
                "--key",
                "secret_key",
                "--path",
                "/v.mp4",
                "--ip",
                "1.2.3.4",
                "--expires",
                "2147483647",
            ],
            None,
        );
        out(&o).trim().to_owned()
    };
    for json in [false, true] {
        let mut args = vec!["verify", "--key", "secret_key", &bound];
        if json {
            args.push("--json");
        }
        let o = tollgate(&args, None);
        assert_eq!(o.status.code(), Some(1));
        let text = out(&o);
        assert!(
            text.contains("no --ip was given") && text.contains("{client_ip}"),
            "{text}"
        );
        if !json {
            // The string that was hashed, without an address (key masked).
            assert!(text.contains("hashed:   \"2147483647/v.mp4 "), "{text}");
        }
    }
    let with_ip = tollgate(
        &["verify", "--key", "secret_key", "--ip", "1.2.3.4", &bound],
        None,
    );
    assert!(with_ip.status.success(), "{}", out(&with_ip));
}

#[test]
fn verify_explains_in_words() {
    let o = tollgate(
        &[
            "verify",
            "--key",
            "secret_key",
            "--now",
            "2147483657",
            "http://cdn.site.com//images/./1.jpg?md5=vHEnxR8VaxpEDgyNzJuWwA&expires=2147483647",
        ],
        None,
    );
    let text = out(&o);
    assert!(text.contains("410"), "{text}");
    assert!(text.contains("expired 10 s ago"), "{text}");
    assert!(text.contains("repeated slashes merged"), "{text}");
    assert!(
        text.contains("\"2147483647/images/1.jpg s********y\""),
        "{text}"
    );
    assert!(text.contains("expected: vHEnxR8VaxpEDgyNzJuWwA"), "{text}");
    assert!(!text.contains("secret_key"), "the key leaked: {text}");
}

#[test]
fn errors_name_the_field() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["sign", "--key", "short", "--path", "/a", "--ttl", "5"],
            "--key",
        ),
        (
            &["sign", "--key", "secret key", "--path", "/a", "--ttl", "5"],
            "whitespace",
        ),
        (
            &["sign", "--key", "secret_key", "--path", "a", "--ttl", "5"],
            "--path",
        ),
        (
            &[
                "sign",
                "--key",
                "secret_key",
                "--path",
                "/a/../b",
                "--ttl",
                "5",
            ],
            "--path",
        ),
        (
            &[
                "sign",
                "--key",
                "secret_key",
                "--path",
                "/a",
                "--expires",
                "0",
            ],
            "--expires",
        ),
        (
            &["sign", "--key", "secret_key", "--path", "/a", "--ttl", "-5"],
            "--ttl",
        ),
        (&["sign", "--path", "/a", "--ttl", "5"], "--key"),
        (
            &["verify", "--key", "secret_key", "--ip", "1.2.3", "/a"],
            "--ip",
        ),
    ];
    for (args, field) in cases {
        let o = tollgate(args, None);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(err(&o).contains(field), "{args:?}: {}", err(&o));
    }
}

#[test]
fn batch_signs_every_line_and_names_a_bad_one() {
    let input = b"/images/1.jpg\n/a b\n";
    let o = tollgate(
        &[
            "sign",
            "--batch",
            "--key",
            "secret_key",
            "--expires",
            "2147483647",
            "--base",
            "http://cdn.site.com",
        ],
        Some(input),
    );
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    assert_eq!(text.lines().next(), Some(LINK));
    assert_eq!(text.lines().count(), 2);
    let bad = tollgate(
        &["sign", "--batch", "--key", "secret_key", "--ttl", "60"],
        Some(b"/ok\n/x//y\n\n/fine\n"),
    );
    assert_eq!(bad.status.code(), Some(2));
    let said = err(&bad);
    assert!(said.contains("line 2: path has '//'"), "{said}");
    assert!(said.contains("line 3: empty line"), "{said}");
    assert!(
        said.contains("2 line(s) not signed, 2 link(s) written"),
        "{said}"
    );
    let links: Vec<_> = out(&bad).lines().map(str::to_owned).collect();
    assert_eq!(links.len(), 2, "the good lines are signed: {links:?}");
    assert!(links[0].starts_with("/ok?md5=") && links[1].starts_with("/fine?md5="));
}

#[test]
fn keygen_makes_valid_distinct_keys() {
    let a = out(&tollgate(&["keygen"], None));
    let b = out(&tollgate(&["keygen"], None));
    assert_eq!(a.len(), 32);
    assert_ne!(a, b);
    let o = tollgate(&["sign", "--key", &a, "--path", "/x", "--ttl", "5"], None);
    assert!(o.status.success(), "{}", err(&o));
    // A key of someone else's that starts with `-` is still a key, not an option.
    let o = tollgate(
        &["sign", "--key", "-dash_key", "--path", "/x", "--ttl", "5"],
        None,
    );
    assert!(o.status.success(), "{}", err(&o));
}

#[test]
fn sign_and_verify_bind_links_to_the_clients_network_with_ip_prefix() {
    let o = crate::tollgate(
        &[
            "sign",
            "--key",
            "secret_key",
            "--path",
            "/a.mp4",
            "--expires",
            "2147483647",
            "--ip",
            "203.0.113.7",
            "--ip-prefix",
            "24,64",
            "--token-only",
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let token = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let key = tollgate_token::Key::new("secret_key").unwrap();
    let net = tollgate_token::RemoteAddr::network("203.0.113.99".parse().unwrap(), 24, 64);
    let want = tollgate_token::sign_as(&key, 2147483647, b"/a.mp4", Some(&net)).unwrap();
    assert_eq!(
        token,
        want.as_str(),
        "the same network from another address of it"
    );
    let link = format!("/a.mp4?md5={token}&expires=2147483647");
    let v = crate::tollgate(
        &[
            "verify",
            "--key",
            "secret_key",
            "--ip",
            "203.0.113.200",
            "--ip-prefix",
            "24,64",
            "--now",
            "1700000000",
            &link,
        ],
        None,
    );
    let out = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success(), "{out}");
    assert!(out.contains("203.0.113.0/24"), "{out}");
    let bad = crate::tollgate(
        &[
            "sign",
            "--key",
            "secret_key",
            "--path",
            "/a",
            "--expires",
            "9",
            "--ip-prefix",
            "24,64",
        ],
        None,
    );
    assert!(!bad.status.success());
    let bad = crate::tollgate(
        &[
            "sign",
            "--key",
            "secret_key",
            "--path",
            "/a",
            "--expires",
            "9",
            "--ip",
            "1.2.3.4",
            "--ip-prefix",
            "33,64",
        ],
        None,
    );
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--ip-prefix"),
        "{bad:?}"
    );
}
