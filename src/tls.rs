//! TLS: the one trust configuration every HTTPS connection of ours starts from: Mozilla's roots,
//! compiled in (no certificate files read or parsed at cold start), plus any private CAs, with
//! the aws-lc-rs provider (the one jsonwebtoken uses too). Owns nothing else.

use rustls::pki_types::CertificateDer;

/// A rustls client configuration trusting the compiled-in Mozilla roots and `extra`, speaking
/// HTTP/1.1.
pub fn bundled(extra: &[CertificateDer<'static>]) -> Result<rustls::ClientConfig, rustls::Error> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for certificate in extra {
        roots.add(certificate.clone())?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}
