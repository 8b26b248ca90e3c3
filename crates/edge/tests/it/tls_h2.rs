//! TLS with a certificate per hostname (SNI), HTTP/2 by ALPN, and HTTP/2 with prior knowledge.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tollgate_edge::EdgeConfig;
use tollgate_edge::{server_config, HostCert};
use tollgate_testkit::origin::TestOrigin;

use crate::{resources, RunningEdge};

fn cert(host: &str) -> (HostCert, CertificateDer<'static>) {
    let c = rcgen::generate_simple_self_signed(vec![host.to_owned()]).unwrap();
    let der = c.cert.der().clone();
    (
        HostCert {
            host: host.to_owned(),
            cert_pem: c.cert.pem().into_bytes(),
            key_pem: c.signing_key.serialize_pem().into_bytes(),
        },
        der,
    )
}

fn signed(path: &str) -> String {
    tollgate_testkit::link(path, tollgate_testkit::now() + 60, None)
}

async fn h2_get(
    io: impl hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    authority: &str,
    target: &str,
) -> (u16, Bytes) {
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(format!("https://{authority}{target}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

#[test]
fn sni_picks_the_certificate_and_alpn_gives_http2() {
    let (a, a_der) = cert("a.example.com");
    let (b, b_der) = cert("b.example.com");
    let origin = TestOrigin::start();
    let json = resources(
        origin.port,
        &[("a.example.com", Some(2)), ("b.example.com", Some(2))],
    );
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config(&[a, b]).unwrap());
    let edge = RunningEdge::start_with(&json, EdgeConfig::default(), Some(acceptor));

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(a_der.clone()).unwrap();
        roots.add(b_der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        for (host, der) in [("a.example.com", &a_der), ("b.example.com", &b_der)] {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", edge.port))
                .await
                .unwrap();
            let tls = connector
                .connect(ServerName::try_from(host.to_owned()).unwrap(), tcp)
                .await
                .unwrap();
            let (_, session) = tls.get_ref();
            assert_eq!(session.alpn_protocol(), Some(&b"h2"[..]));
            assert_eq!(session.peer_certificates().unwrap()[0], *der, "{host}");
            let (status, body) = h2_get(TokioIo::new(tls), host, &signed("/tls.txt")).await;
            assert_eq!(status, 200);
            assert_eq!(&body[..], b"origin /tls.txt\n");
        }
    });
}

#[test]
fn cleartext_http2_with_prior_knowledge() {
    let origin = TestOrigin::start();
    let json = resources(origin.port, &[("cdn.example.com", Some(2))]);
    let edge = RunningEdge::start(&json, EdgeConfig::default());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", edge.port))
            .await
            .unwrap();
        let (status, _) = h2_get(TokioIo::new(tcp), "cdn.example.com", &signed("/h2.txt")).await;
        assert_eq!(status, 200);
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", edge.port))
            .await
            .unwrap();
        let (status, _) = h2_get(TokioIo::new(tcp), "cdn.example.com", "/h2.txt").await;
        assert_eq!(status, 403);
    });
}
