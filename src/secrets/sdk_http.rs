//! Credentials: the HTTP client under the AWS SDK clients (Secrets Manager, Parameter Store,
//! DynamoDB, and the credential providers that fetch: container, instance, web identity). They
//! send through our own `reqwest` client rather than the SDK's default stack, so the binary
//! has one HTTP/TLS stack, not two, and no certificate store is loaded on the cold path: the
//! SDK's default client reads and parses the system store on first use, which at a 128 MB
//! Lambda's CPU share costs tens of milliseconds of the first invocation.
//!
//! Which client: the one the app's network uses (lent by `Network::lend_to_aws_sdk` when the
//! app is built, so private CAs of `settings.ca_bundle` are trusted here too), else one of our own
//! with the compiled-in roots (a configuration read from Parameter Store before the network
//! exists).

use std::sync::RwLock;
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

/// The client the SDK sends through; `None` until shared or first needed.
static SHARED: RwLock<Option<reqwest::Client>> = RwLock::new(None);

/// A read of an AWS answer stops after this long without one (the SDK's own default applies
/// when it passes a read timeout; it normally does not).
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Makes the SDK clients send through `client` from now on (the app's network client: one
/// pool, one TLS configuration).
pub fn share_http_client(client: &reqwest::Client) {
    let mut shared = SHARED
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    *shared = Some(client.clone());
}

/// The HTTP client to give an SDK configuration: it sends through the shared client.
pub fn sdk_http_client() -> SharedHttpClient {
    SharedHttpClient::new(SdkHttp)
}

/// The shared client, or (nothing shared yet) one with the compiled-in roots, kept.
fn client() -> Result<reqwest::Client, ConnectorError> {
    if let Some(client) = SHARED
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .as_ref()
    {
        return Ok(client.clone());
    }
    let mut shared = SHARED
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(client) = shared.as_ref() {
        return Ok(client.clone());
    }
    let tls =
        crate::tls::bundled(&[]).map_err(|error| ConnectorError::other(error.into(), None))?;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("bucket-trigger/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| ConnectorError::other(error.into(), None))?;
    *shared = Some(client.clone());
    Ok(client)
}

/// The SDK's [`HttpClient`]: hands out a connector that applies the SDK's timeouts.
#[derive(Debug, Clone, Copy)]
struct SdkHttp;

impl HttpClient for SdkHttp {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(Connector {
            read_timeout: settings.read_timeout().unwrap_or(READ_TIMEOUT),
            connect_timeout: settings.connect_timeout(),
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Connector {
    read_timeout: Duration,
    connect_timeout: Option<Duration>,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let this = *self;
        HttpConnectorFuture::new(async move { this.send(request).await })
    }
}

impl Connector {
    async fn send(self, request: HttpRequest) -> Result<HttpResponse, ConnectorError> {
        let client = client()?;
        let method = reqwest::Method::from_bytes(request.method().as_bytes())
            .map_err(|error| ConnectorError::user(error.into()))?;
        // Every AWS call of ours has its body in memory (JSON); a streaming body is a bug.
        let body = request.body().bytes().ok_or_else(|| {
            ConnectorError::user(
                "a streaming request body cannot be sent through this client".into(),
            )
        })?;
        let mut builder = client
            .request(method, request.uri())
            // Connect and read together: reqwest has one per-request limit.
            .timeout(self.read_timeout + self.connect_timeout.unwrap_or_default())
            .body(body.to_vec());
        for (name, value) in request.headers() {
            builder = builder.header(name, value);
        }
        let answer = builder.send().await.map_err(classify)?;
        let status = StatusCode::try_from(answer.status().as_u16())
            .map_err(|error| ConnectorError::other(error.into(), None))?;
        let headers: Vec<(String, String)> = answer
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect();
        let bytes = answer.bytes().await.map_err(classify)?;
        // As a body of its own kind, which prints as `BoxBody`: the SDK logs responses at trace
        // level, and an answer holds a secret's value.
        let body = SdkBody::from_body_1_x(http_body_util::Full::new(bytes));
        let mut response = HttpResponse::new(status, body);
        for (name, value) in headers {
            response.headers_mut().append(name, value);
        }
        Ok(response)
    }
}

/// A transport failure, classified as the SDK's retry policy expects: timeouts and broken
/// connections are retried, the rest is not.
fn classify(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() {
        ConnectorError::timeout(error.into())
    } else if error.is_connect() || error.is_request() || error.is_body() {
        ConnectorError::io(error.into())
    } else {
        ConnectorError::other(error.into(), None)
    }
}
