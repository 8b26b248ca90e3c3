//! TLS for clients: rustls with a certificate chosen per hostname (SNI), ALPN offering HTTP/2
//! and HTTP/1.1.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ResolvesServerCertUsingSni;
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// A certificate for one hostname.
#[derive(Debug, Clone)]
pub struct HostCert {
    /// The hostname (SNI) it serves.
    pub host: String,
    /// PEM certificate chain.
    pub cert_pem: Vec<u8>,
    /// PEM private key.
    pub key_pem: Vec<u8>,
}

impl HostCert {
    /// Reads `HOST=CERT.pem,KEY.pem` (the `--tls-cert` syntax).
    pub fn from_arg(arg: &str) -> Result<HostCert, String> {
        let (host, files) = arg
            .split_once('=')
            .ok_or_else(|| format!("{arg:?} is not HOST=CERT.pem,KEY.pem"))?;
        let (cert, key) = files
            .split_once(',')
            .ok_or_else(|| format!("{arg:?} is not HOST=CERT.pem,KEY.pem"))?;
        let read = |p: &str| std::fs::read(Path::new(p)).map_err(|e| format!("{p}: {e}"));
        Ok(HostCert {
            host: host.to_ascii_lowercase(),
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        })
    }
}

/// A server config that picks the certificate by SNI. Every problem names the hostname.
pub fn server_config(certs: &[HostCert]) -> Result<Arc<ServerConfig>, String> {
    let mut sni = ResolvesServerCertUsingSni::new();
    for c in certs {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&c.cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: certificate: {e}", c.host))?;
        if chain.is_empty() {
            return Err(format!("{}: no certificate in the PEM file", c.host));
        }
        let key = PrivateKeyDer::from_pem_slice(&c.key_pem)
            .map_err(|e| format!("{}: private key: {e}", c.host))?;
        let key = any_supported_type(&key).map_err(|e| format!("{}: private key: {e}", c.host))?;
        sni.add(&c.host, CertifiedKey::new(chain, key))
            .map_err(|e| format!("{}: {e}", c.host))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(sni));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
