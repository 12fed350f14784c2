//! Baseline for warm numbers: the "floor". The same requests bucket-trigger sends, with nothing
//! of ours around them: a `lambda_runtime` function that, per invocation, POSTs one small JSON
//! body per record of the event (`Records[]`, at least one) concurrently to `FLOOR_TARGET_URL`
//! over one keep-alive reqwest client (the main crate's reqwest, same features and TLS), then
//! answers with the statuses. No config, no templates, no secrets, no routing, no logging.
//! The client is built like bucket-trigger's (same reqwest features, rustls config and roots).
//! `FLOOR_CA_FILE=ca.pem` trusts that PEM's certificates as well, as bucket-trigger's
//! `settings.ca_bundle` does (bench/run.sh --tls: a throwaway test CA).
//!
//! Built by bench/run.sh: `cargo build --release --example floor`.

use futures_util::future::join_all;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let url = std::env::var("FLOOR_TARGET_URL").map_err(|_| "FLOOR_TARGET_URL is not set")?;
    let url = reqwest::Url::parse(&url)?;
    // The same client as bucket-trigger's App::new: rustls with the aws-lc-rs provider and the
    // compiled-in Mozilla roots (its default `settings.tls_roots: bundled`; FLOOR_TLS_ROOTS=system
    // gives reqwest's own default, the OS store), keep-alive pool, the same timeouts.
    let builder = match std::env::var("FLOOR_TLS_ROOTS").as_deref() {
        Ok("system") => reqwest::Client::builder(),
        _ => reqwest::Client::builder().tls_backend_preconfigured(bundled_roots_tls()?),
    };
    let http = builder
        .connect_timeout(std::time::Duration::from_secs(3))
        .timeout(std::time::Duration::from_secs(10))
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .user_agent("floor/0")
        .build()?;
    let (http, url) = (&http, &url);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let records = event
            .payload
            .get("Records")
            .and_then(Value::as_array)
            .map_or(1, |records| records.len().max(1));
        let sends = (0..records).map(|i| async move {
            let body = json!({ "dag_run_id": format!("floor-{i}"), "conf": { "record": i } });
            let response = http.post(url.clone()).json(&body).send().await?;
            let status = response.status().as_u16();
            response.bytes().await?;
            Ok::<u16, reqwest::Error>(status)
        });
        let mut statuses = Vec::with_capacity(records);
        for result in join_all(sends).await {
            statuses.push(result?);
        }
        Ok::<_, Error>(json!({ "sent": records, "statuses": statuses }))
    }))
    .await
}

/// As bucket-trigger's `app::bundled_roots_tls` (private there): Mozilla's roots, compiled in.
/// With FLOOR_CA_FILE, that PEM's certificates are added to the roots.
fn bundled_roots_tls() -> Result<rustls::ClientConfig, Error> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Ok(path) = std::env::var("FLOOR_CA_FILE") {
        let pem = std::fs::read(&path).map_err(|e| format!("FLOOR_CA_FILE {path}: {e}"))?;
        for certificate in CertificateDer::pem_slice_iter(&pem) {
            roots.add(certificate?)?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}
