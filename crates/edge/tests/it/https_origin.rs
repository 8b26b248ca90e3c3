//! An HTTPS origin (Debian's nginx with TLS), verified against a CA given to the edge, and
//! refused (502) when the edge does not trust it.

use tollgate_edge::EdgeConfig;
use tollgate_testkit::{free_port, nginx::Nginx};

use crate::RunningEdge;

#[test]
fn https_origin_is_verified() {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let port = free_port();
    let (cert_pem, key_pem) = (c.cert.pem(), c.signing_key.serialize_pem());
    let _nginx = Nginx::start(&[port], |dir| {
        std::fs::write(dir.join("origin.crt"), &cert_pem).unwrap();
        std::fs::write(dir.join("origin.key"), &key_pem).unwrap();
        let d = dir.display();
        format!(
            "worker_processes 1; pid {d}/nginx.pid; events {{}}
             http {{ access_log off; client_body_temp_path {d}/b; proxy_temp_path {d}/p;
               fastcgi_temp_path {d}/f; uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;
               server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {d}/origin.crt;
                 ssl_certificate_key {d}/origin.key;
                 location / {{ return 200 \"tls origin $host\\n\"; }} }} }}"
        )
    });
    let json = serde_json::json!([{
        "id": 1, "cname": "cdn.example.com", "origin": format!("localhost:{port}"),
        "originProtocol": "HTTPS",
        "options": {"secure_key": {"enabled": true, "key": "secret_key", "type": 2}}
    }])
    .to_string();
    let target = tollgate_testkit::link("/s.txt", tollgate_testkit::now() + 60, None);

    let trusting = RunningEdge::start(
        &json,
        EdgeConfig {
            origin_ca: vec![c.cert.der().clone()],
            ..EdgeConfig::default()
        },
    );
    let r = trusting.get("cdn.example.com", &target, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"tls origin cdn.example.com\n");

    let untrusting = RunningEdge::start(&json, EdgeConfig::default());
    assert_eq!(untrusting.get("cdn.example.com", &target, &[]).status, 502);
}
