//! HTTP: the [`Transport`] a request leaves by. [`Network`] sends it over one shared `reqwest`
//! client (one connection pool, one TLS configuration); [`DryRun`] prints it instead. The
//! choice is made once, at the top (the CLI's `--dry-run`, `BUCKET_TRIGGER_DRY_RUN`), and no
//! room below asks which one it has, except token signers, which show where a token would
//! come from rather than fetch one ([`Transport::reaches_network`]).
//!
//! What comes back is hostile until read: redirects are not followed, at most
//! [`MAX_ANSWER_BYTES`] of an answer are read (the rest is never buffered), and every secret the
//! request carried is scrubbed from the answer before anything can quote it.

use std::error::Error as _;
use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::future::BoxFuture;
use rustls::pki_types::CertificateDer;
use serde_json::Value;

use reqwest::Url;

use super::{Answer, Body, HeaderValue, Printable, Request, TlsRoots};

/// The most of an answer that is read, in bytes. Error details quote 300 characters; job ids and
/// tokens are short. The rest is not read: the connection is closed instead of drained.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The fields of a secret form or JSON body (a token request's) that carry credentials. Only
/// these are scrubbed: scrubbing every value (a scope, a grant type, a username) could corrupt
/// a token answer that happens to contain one.
const CREDENTIAL_FIELDS: &[&str] = &[
    "password",
    "client_id",
    "client_secret",
    "assertion",
    "subject_token",
    "refresh_token",
];

/// Secrets shorter than this are not scrubbed (they would mangle every message); none of the
/// schemes we sign with produces one.
const MIN_SCRUBBED_LEN: usize = 4;

/// How a request left.
#[derive(Debug)]
pub enum Sent {
    /// The server answered.
    Answered(Answer),
    /// No answer: see the error for whether anything was sent.
    Failed(TransportError),
    /// Not sent: printed (dry run), secrets redacted.
    Printed(Printable),
}

/// A way for requests to leave the process.
pub trait Transport: Send + Sync + fmt::Debug {
    /// Sends `request`, giving up after `timeout`.
    fn send<'a>(&'a self, request: &'a Request, timeout: Duration) -> BoxFuture<'a, Sent>;

    /// Whether requests reach a server. Token signers fetch tokens only when they do.
    fn reaches_network(&self) -> bool;
}

/// Why a request got no answer.
#[derive(Debug, Clone)]
pub struct TransportError {
    kind: ErrorKind,
    detail: String,
    /// The status, when the failure came while reading the body of an answer.
    pub status: Option<u16>,
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.detail.is_empty()) {
            (ErrorKind::InvalidRequest, false) => f.write_str(&self.detail),
            (kind, true) => write!(f, "{kind}"),
            (kind, false) => write!(f, "{kind}: {}", self.detail),
        }
    }
}

impl std::error::Error for TransportError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    Connect,
    Timeout,
    Other,
    InvalidRequest,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Connect => "could not connect",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Other => "request failed",
            ErrorKind::InvalidRequest => "invalid request",
        })
    }
}

impl TransportError {
    /// Nothing reached the server: the connection was never made.
    pub fn is_connect(&self) -> bool {
        self.kind == ErrorKind::Connect
    }

    /// The request itself cannot be put on the wire (e.g. a header value with a newline).
    pub fn is_invalid_request(&self) -> bool {
        self.kind == ErrorKind::InvalidRequest
    }

    /// A `reqwest` error with its causes (`connection refused`), never the URL's query.
    fn from_reqwest(error: &reqwest::Error, status: Option<u16>) -> Self {
        let kind = if error.is_builder() {
            // The request could not be put together (a URL or header reqwest refuses): nothing
            // left, so it is not a request that "may have arrived".
            ErrorKind::InvalidRequest
        } else if error.is_timeout() {
            ErrorKind::Timeout
        } else if error.is_connect() {
            ErrorKind::Connect
        } else {
            ErrorKind::Other
        };
        let mut causes: Vec<String> = Vec::new();
        let mut source = error.source();
        while let Some(cause) = source {
            if let Some(tls) = rustls_error(cause) {
                let host = error.url().and_then(Url::host_str).unwrap_or("the server");
                return TransportError {
                    kind,
                    detail: tls_reason(tls, host),
                    status,
                };
            }
            let text = cause.to_string();
            if !causes.contains(&text) {
                causes.push(text);
            }
            source = cause.source();
        }
        let detail = match kind {
            ErrorKind::InvalidRequest => format!("not sent: {}", causes.join(": ")),
            _ => causes.join(": "),
        };
        TransportError {
            kind,
            detail,
            status,
        }
    }

    fn invalid(detail: String) -> Self {
        TransportError {
            kind: ErrorKind::InvalidRequest,
            detail,
            status: None,
        }
    }
}

/// Client settings for [`Network`].
#[derive(Debug, Clone)]
pub struct NetworkSettings {
    /// Time limit to connect.
    pub connect_timeout: Duration,
    /// Default time limit of a request (each send passes its own).
    pub request_timeout: Duration,
    /// HTTPS trust anchors.
    pub tls_roots: TlsRoots,
    /// Trusted as well: private CAs (`settings.ca_bundle`), from [`parse_ca_bundle`].
    pub ca_certificates: Vec<CertificateDer<'static>>,
}

/// Sends over one `reqwest` client: rustls, a keep-alive pool shared by every request.
#[derive(Debug, Clone)]
pub struct Network {
    client: reqwest::Client,
    answer_limit: usize,
}

impl Network {
    /// Builds the client.
    pub fn new(settings: &NetworkSettings) -> Result<Network, reqwest::Error> {
        let extra = &settings.ca_certificates;
        let bundled = match settings.tls_roots {
            TlsRoots::Bundled => crate::tls::bundled(extra)
                .inspect_err(|error| tracing::warn!(%error, "bundled TLS roots unusable; using the system store"))
                .ok(),
            TlsRoots::System => None,
        };
        let builder = match bundled {
            // Mozilla's roots, compiled in: no certificate files read or parsed at cold start
            // (the system store costs several milliseconds to scan and parse).
            Some(tls) => reqwest::Client::builder().tls_backend_preconfigured(tls),
            None => reqwest::Client::builder().tls_certs_merge(
                extra
                    .iter()
                    .filter_map(|der| reqwest::Certificate::from_der(der).ok()),
            ),
        };
        let client = builder
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("bucket-trigger/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Network {
            client,
            answer_limit: MAX_ANSWER_BYTES,
        })
    }

    /// Makes the AWS SDK clients send through this client too (one pool, one TLS
    /// configuration, its private CAs trusted): the app's network does, not the side clients
    /// (Google's keys, S3 listings), which would replace it with one of their own.
    pub fn lend_to_aws_sdk(&self) {
        crate::secrets::share_http_client(&self.client);
    }

    /// The same client, reading up to `bytes` of each answer instead of [`MAX_ANSWER_BYTES`]:
    /// for answers that are data rather than a verdict (an S3 listing page of 1,000 keys is
    /// several hundred kilobytes). A longer answer is still cut at the limit.
    pub fn with_answer_limit(mut self, bytes: usize) -> Network {
        self.answer_limit = bytes;
        self
    }

    async fn exchange(&self, request: &Request, timeout: Duration) -> Sent {
        let mut builder = self
            .client
            .request(request.method.clone(), request.url.clone())
            .timeout(timeout);
        for (name, value) in &request.headers {
            let value = match value {
                HeaderValue::Plain(text) => reqwest::header::HeaderValue::from_str(text),
                HeaderValue::Secret { value, .. } => {
                    reqwest::header::HeaderValue::from_str(value.expose()).map(|mut value| {
                        value.set_sensitive(true);
                        value
                    })
                }
            };
            match value {
                Ok(value) => builder = builder.header(name.as_str(), value),
                Err(_) => {
                    return Sent::Failed(TransportError::invalid(format!(
                        "header {name} has a value that cannot be sent in HTTP"
                    )));
                }
            }
        }
        builder = match &request.body {
            Body::Empty => builder,
            Body::Json(body) => builder.json(body),
            Body::Text { content_type, text } => builder
                .header(reqwest::header::CONTENT_TYPE, *content_type)
                .body(text.clone()),
            Body::Secret { content_type, text } => builder
                .header(reqwest::header::CONTENT_TYPE, *content_type)
                .body(text.expose().to_owned()),
        };
        let response = match builder.send().await {
            Ok(response) => response,
            Err(error) => return Sent::Failed(TransportError::from_reqwest(&error, None)),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = match read_capped(response, self.answer_limit).await {
            Ok(body) => body,
            Err(error) if status.is_success() => {
                // The server acted; only its answer was lost.
                let error = TransportError::from_reqwest(&error, Some(status.as_u16()));
                tracing::warn!(%error, "could not read the answer body");
                Vec::new()
            }
            Err(error) => {
                return Sent::Failed(TransportError::from_reqwest(&error, Some(status.as_u16())));
            }
        };
        let body = String::from_utf8_lossy(&body);
        let body = if body.is_empty() {
            String::new()
        } else {
            scrub_answer(&body, &secrets_of(request))
        };
        Sent::Answered(Answer {
            status,
            headers,
            body,
        })
    }
}

/// At most `limit` bytes of an answer's body ([`MAX_ANSWER_BYTES`] unless the client was
/// built for larger answers).
async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Ok(body)
}

/// The secret values `request` carries, as an answer that echoes the request could hold them:
/// each secret header whole, its credential after the scheme word, a Basic credential decoded
/// and its password, the quoted values of an OAuth 1.0a header, the values of a secret form or
/// JSON body, and the query values a printable URL hides. Longest first.
fn secrets_of(request: &Request) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for (_, value) in &request.headers {
        let HeaderValue::Secret { value, .. } = value else {
            continue;
        };
        let value = value.expose();
        found.push(value.to_owned());
        let Some((_, credential)) = value.split_once(' ') else {
            continue;
        };
        found.push(credential.to_owned());
        if let Ok(decoded) = STANDARD.decode(credential)
            && let Ok(pair) = String::from_utf8(decoded)
        {
            if let Some((_, password)) = pair.split_once(':') {
                found.push(password.to_owned());
            }
            found.push(pair);
        }
        for part in credential.split(',') {
            if let Some((_, quoted)) = part.split_once('=') {
                found.push(quoted.trim().trim_matches('"').to_owned());
            }
        }
    }
    if let Body::Secret { text, .. } = &request.body {
        let text = text.expose();
        found.push(text.to_owned());
        let credential = |name: &str| CREDENTIAL_FIELDS.contains(&name);
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(fields)) => found.extend(
                fields
                    .iter()
                    .filter(|(name, _)| credential(name))
                    .filter_map(|(_, value)| value.as_str())
                    .map(str::to_owned),
            ),
            _ => found.extend(
                form_urlencoded::parse(text.as_bytes())
                    .filter(|(name, _)| credential(name))
                    .map(|(_, value)| value.into_owned()),
            ),
        }
    }
    if let Some(shown) = &request.url_shown {
        for (_, value) in request.url.query_pairs() {
            if !shown.contains(value.as_ref()) {
                found.push(value.into_owned());
            }
        }
        if let Some(query) = request.url.query() {
            found.extend(
                query
                    .split('&')
                    .filter_map(|pair| pair.split_once('=').map(|(_, v)| v))
                    .filter(|value| !shown.contains(value))
                    .map(str::to_owned),
            );
        }
    }
    found.retain(|secret| secret.len() >= MIN_SCRUBBED_LEN);
    found.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    found.dedup();
    found
}

/// `text` with every one of `secrets` replaced by `****`.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    for secret in secrets {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), "****");
        }
    }
    text
}

/// [`scrub`] for an answer: a JSON answer is scrubbed as decoded, because JSON may spell a
/// secret with escapes (`\/`, `\u002B`) that its plain text search would miss, and every reader
/// that quotes a JSON answer decodes it first. A JSON answer that held a secret is written back
/// without such escapes; any other answer is scrubbed as text.
fn scrub_answer(body: &str, secrets: &[String]) -> String {
    if let Ok(mut json) = serde_json::from_str::<Value>(body)
        && scrub_json(&mut json, secrets)
    {
        return scrub(&json.to_string(), secrets);
    }
    scrub(body, secrets)
}

/// Scrubs every string (and key) of `value`; whether anything changed.
fn scrub_json(value: &mut Value, secrets: &[String]) -> bool {
    fn clean(text: &mut String, secrets: &[String]) -> bool {
        let scrubbed = scrub(text, secrets);
        let changed = scrubbed != *text;
        *text = scrubbed;
        changed
    }
    match value {
        Value::String(text) => clean(text, secrets),
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, item| scrub_json(item, secrets) | changed),
        Value::Object(map) => {
            let mut changed = false;
            for (mut key, mut item) in std::mem::take(map) {
                changed |= clean(&mut key, secrets);
                changed |= scrub_json(&mut item, secrets);
                map.insert(key, item);
            }
            changed
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

impl Transport for Network {
    fn send<'a>(&'a self, request: &'a Request, timeout: Duration) -> BoxFuture<'a, Sent> {
        Box::pin(self.exchange(request, timeout))
    }

    fn reaches_network(&self) -> bool {
        true
    }
}

/// Prints instead of sending: every request comes back as its redacted [`Printable`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DryRun;

impl Transport for DryRun {
    fn send<'a>(&'a self, request: &'a Request, _timeout: Duration) -> BoxFuture<'a, Sent> {
        Box::pin(std::future::ready(Sent::Printed(request.printable())))
    }

    fn reaches_network(&self) -> bool {
        false
    }
}

/// The rustls error in a chain of causes: itself, or inside the `io::Error`s that carry it
/// (whose own `source` skips what they wrap).
fn rustls_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner = cause.downcast_ref::<std::io::Error>()?.get_ref()?;
    rustls_error(inner)
}

/// A TLS failure in words an operator can act on.
fn tls_reason(error: &rustls::Error, host: &str) -> String {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(certificate) = error else {
        return format!("TLS handshake with {host} failed: {error}");
    };
    let why = match certificate {
        C::UnknownIssuer => "is not trusted: no trusted root signed it (a private CA? add it \
                            to settings.ca_bundle)"
            .to_owned(),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            format!("is not valid for the name {host}")
        }
        C::Expired | C::ExpiredContext { .. } => "has expired".to_owned(),
        C::NotValidYet | C::NotValidYetContext { .. } => "is not valid yet".to_owned(),
        C::Revoked => "has been revoked".to_owned(),
        other => format!("was rejected ({other:?})"),
    };
    format!("the TLS certificate of {host} {why}")
}

/// Refuses what would carry credentials and event data across a network in clear text:
/// `http://` to any host but this machine ([`super::clear_text_host`]), unless the route says
/// `allow_http: true`. Load time rejects such URLs in configuration; this catches the ones read
/// at run time (a base URL or a token endpoint kept in a secret), for every request of a
/// delivery, token requests included.
#[derive(Debug)]
pub struct ClearTextGuard<'a> {
    inner: &'a dyn Transport,
    allow_http: bool,
}

impl<'a> ClearTextGuard<'a> {
    /// Guards `inner`; `allow_http` lets everything through.
    pub fn new(inner: &'a dyn Transport, allow_http: bool) -> Self {
        ClearTextGuard { inner, allow_http }
    }
}

impl Transport for ClearTextGuard<'_> {
    fn send<'a>(&'a self, request: &'a Request, timeout: Duration) -> BoxFuture<'a, Sent> {
        match super::clear_text_host(&request.url) {
            Some(host) if !self.allow_http => Box::pin(std::future::ready(Sent::Failed(
                TransportError::invalid(format!("not sent: {}", super::clear_text_reason(&host))),
            ))),
            _ => self.inner.send(request, timeout),
        }
    }

    fn reaches_network(&self) -> bool {
        self.inner.reaches_network()
    }
}

/// The certificates of a PEM bundle (`settings.ca_bundle`), each checked to be usable as a
/// trust anchor. Other PEM sections (a private key pasted by mistake) are ignored; a bundle
/// with no certificate, or one that does not parse, is an error saying so.
pub fn parse_ca_bundle(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certificates = CertificateDer::pem_slice_iter(pem)
        .enumerate()
        .map(|(index, certificate)| {
            let certificate = certificate
                .map_err(|error| format!("certificate {} is not valid PEM: {error}", index + 1))?;
            rustls::RootCertStore::empty()
                .add(certificate.clone())
                .map_err(|error| {
                    format!("certificate {} is not usable as a CA: {error}", index + 1)
                })?;
            Ok(certificate)
        })
        .collect::<Result<Vec<_>, String>>()?;
    if certificates.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned());
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::{Method, Url};

    fn settings() -> NetworkSettings {
        NetworkSettings {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(1),
            tls_roots: TlsRoots::Bundled,
            ca_certificates: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error_naming_its_cause() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = Url::parse(&format!("http://127.0.0.1:{port}/x?token=abc")).unwrap();
        let network = Network::new(&settings()).unwrap();
        let Sent::Failed(error) = network
            .send(&Request::new(Method::POST, url), Duration::from_secs(1))
            .await
        else {
            panic!("nothing listens there")
        };
        assert!(error.is_connect());
        let text = error.to_string();
        assert!(text.starts_with("could not connect: "), "{text}");
        assert!(!text.contains("token=abc"), "{text}");
    }

    #[tokio::test]
    async fn a_header_that_cannot_be_sent_is_an_invalid_request() {
        let mut request = Request::new(Method::GET, Url::parse("http://127.0.0.1:9/").unwrap());
        request.set_header("x-key", HeaderValue::Plain("a\nb".into()));
        let Sent::Failed(error) = Network::new(&settings())
            .unwrap()
            .send(&request, Duration::from_secs(1))
            .await
        else {
            panic!("not sendable")
        };
        assert!(error.is_invalid_request(), "{error}");
        assert_eq!(
            error.to_string(),
            "header x-key has a value that cannot be sent in HTTP"
        );
    }

    /// A stand-in that answers with everything it received: headers, query and body.
    fn echo(status: u16) -> impl Fn(&wiremock::Request) -> wiremock::ResponseTemplate {
        move |request: &wiremock::Request| {
            let headers: Vec<String> = request
                .headers
                .iter()
                .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap_or("")))
                .collect();
            wiremock::ResponseTemplate::new(status).set_body_string(format!(
                "{} {}\n{}\n{}",
                request.method,
                request.url,
                headers.join("\n"),
                String::from_utf8_lossy(&request.body)
            ))
        }
    }

    async fn answered(request: &Request) -> Answer {
        match Network::new(&settings())
            .unwrap()
            .send(request, Duration::from_secs(2))
            .await
        {
            Sent::Answered(answer) => answer,
            other => panic!("an answer, not {other:?}"),
        }
    }

    #[tokio::test]
    async fn secrets_the_request_carried_are_scrubbed_from_an_echoing_answer() {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::any())
            .respond_with(echo(401))
            .mount(&server)
            .await;
        let url = Url::parse(&format!("{}/x", server.uri())).unwrap();
        let password = "MARKER-pw-93f1";
        let pair = format!("admin:{password}");
        let basic = STANDARD.encode(&pair);
        let mut request = Request::new(Method::POST, url.clone());
        request.set_header(
            "authorization",
            HeaderValue::Secret {
                value: crate::secrets::SecretString::new(format!("Basic {basic}")),
                shown: "Basic ****".into(),
            },
        );
        request.body = Body::Secret {
            content_type: "application/x-www-form-urlencoded",
            text: crate::secrets::SecretString::new(
                "grant_type=client_credentials&client_secret=MARKER-cs-77ab",
            ),
        };
        let answer = answered(&request).await;
        assert_eq!(answer.status.as_u16(), 401);
        // Of a secret body's fields, only credentials are scrubbed on their own: a token
        // answer quoting the scope or grant type is left whole.
        let scrubbed = secrets_of(&request);
        assert!(
            scrubbed.iter().any(|s| s == "MARKER-cs-77ab"),
            "{scrubbed:?}"
        );
        assert!(
            !scrubbed.iter().any(|s| s == "client_credentials"),
            "{scrubbed:?}"
        );
        for leaked in [password, pair.as_str(), basic.as_str(), "MARKER-cs-77ab"] {
            assert!(!answer.body.contains(leaked), "{leaked} in {}", answer.body);
        }
        assert!(
            answer.body.contains("authorization: ****"),
            "{}",
            answer.body
        );

        // OAuth 1.0a in the query: what the printable URL hides is scrubbed, the rest stays.
        let mut signed = Request::new(Method::POST, url.clone());
        signed.url.set_query(Some(
            "oauth_consumer_key=MARKER-ck-5e&oauth_signature=c2lnbmF0dXJl%3D&oauth_version=1.0",
        ));
        signed.url_shown = Some(format!(
            "{url}?oauth_consumer_key=****&oauth_signature=****&oauth_version=1.0"
        ));
        let answer = answered(&signed).await;
        assert!(!answer.body.contains("MARKER-ck-5e"), "{}", answer.body);
        assert!(!answer.body.contains("c2lnbmF0dXJl"), "{}", answer.body);
        assert!(answer.body.contains("oauth_version=1.0"), "{}", answer.body);
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::path("/api"))
            .respond_with(
                wiremock::ResponseTemplate::new(307)
                    .insert_header("location", format!("{}/login", server.uri())),
            )
            .mount(&server)
            .await;
        wiremock::Mock::given(wiremock::matchers::path("/login"))
            .respond_with(wiremock::ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;
        let url = Url::parse(&format!("{}/api", server.uri())).unwrap();
        let answer = answered(&Request::new(Method::POST, url)).await;
        assert_eq!(answer.status.as_u16(), 307);
    }

    #[tokio::test]
    async fn at_most_64_kib_of_an_answer_is_read() {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::any())
            .respond_with(wiremock::ResponseTemplate::new(500).set_body_string("x".repeat(4 << 20)))
            .mount(&server)
            .await;
        let url = Url::parse(&server.uri()).unwrap();
        let answer = answered(&Request::new(Method::GET, url)).await;
        assert_eq!(answer.body.len(), MAX_ANSWER_BYTES);
    }

    #[tokio::test]
    async fn the_dry_run_prints_and_reaches_nothing() {
        let request = Request::new(Method::GET, Url::parse("http://127.0.0.1:9/").unwrap());
        assert!(!DryRun.reaches_network());
        let Sent::Printed(printable) = DryRun.send(&request, Duration::ZERO).await else {
            panic!("printed")
        };
        assert_eq!(printable.url, "http://127.0.0.1:9/");
    }

    #[tokio::test]
    async fn the_clear_text_guard_keeps_plain_http_on_this_machine() {
        let send = |allow_http: bool, url: &'static str| async move {
            let request = Request::new(Method::POST, Url::parse(url).unwrap());
            ClearTextGuard::new(&DryRun, allow_http)
                .send(&request, Duration::from_secs(1))
                .await
        };
        let Sent::Failed(error) = send(false, "http://airflow.example.com/api").await else {
            panic!("sent in clear text")
        };
        assert!(error.is_invalid_request());
        assert!(
            error.to_string().starts_with(
                "not sent: http:// would send credentials and event data to airflow.example.com"
            ),
            "{error}"
        );
        for (allow_http, url) in [
            (true, "http://airflow.example.com/api"),
            (false, "https://airflow.example.com/api"),
            (false, "http://127.0.0.1:8080/api"),
        ] {
            assert!(
                matches!(send(allow_http, url).await, Sent::Printed(_)),
                "{url}"
            );
        }
    }

    #[test]
    fn json_answers_are_scrubbed_as_decoded_whatever_their_escapes() {
        let secrets = vec!["a/b+c&d".to_owned()];
        // PHP escapes `/`, .NET escapes `+` and `&`: the plain text search alone misses both.
        let body =
            r#"{"echo": "Bearer a\/b\u002Bc\u0026d", "a\/b+c&d": 1, "list": ["x", "a/b+c&d"]}"#;
        let scrubbed = scrub_answer(body, &secrets);
        let json: Value = serde_json::from_str(&scrubbed).unwrap();
        assert_eq!(json["echo"], "Bearer ****");
        assert_eq!(json["****"], 1);
        assert_eq!(json["list"][1], "****");
        // Nothing to scrub: the answer is left byte for byte.
        let clean = r#"{"b": "x\/y", "a": 1}"#;
        assert_eq!(scrub_answer(clean, &secrets), clean);
        // Not JSON (or cut at the read cap): scrubbed as text.
        assert_eq!(scrub_answer("<p>a/b+c&d</p>", &secrets), "<p>****</p>");
    }
}
