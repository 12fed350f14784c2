//! Ingress: HTTP pushes in (a Pub/Sub push subscription or an Eventarc trigger, to a Lambda
//! function URL or to `bucket-trigger serve`). Owns what a push must prove before anything
//! runs (the `?token=` verification token, the Google-signed OIDC token), reading a push's
//! body (a Pub/Sub envelope, a CloudEvent in binary or structured mode) and the status code
//! that acknowledges it or asks Pub/Sub to deliver it again.
//!
//! | outcome of every delivery                               | status                 |
//! |---------------------------------------------------------|------------------------|
//! | triggered, already triggered, skipped (no route), dry run | 200: acknowledged    |
//! | any retryable failure                                   | 503: redelivered       |
//! | a permanent failure on a route that acknowledges (default) | 200 + failure record |
//! | a permanent failure on a route with `on_permanent_failure: reject` | 422: redelivered, then dead-lettered |
//! | not authenticated / wrong identity                      | 401 / 403, nothing run |
//! | Google's keys unreachable                               | 503, nothing run       |
//! | not a push we can read                                  | 400, nothing run       |

mod function_url;
mod oidc;
mod server;

use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::app::App;
use crate::config::PushEndpoint;
use crate::event::{self, EventError};
use crate::http::Transport;
use crate::report::Report;

pub use function_url::{from_function_url, is_function_url, to_function_url};
pub use oidc::{LEEWAY, Verifier};
pub use server::{ServeOptions, serve};

/// An HTTP request, from a function URL or from the server.
#[derive(Debug, Clone, Default)]
pub struct PushRequest {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The path, e.g. `/pubsub`.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl PushRequest {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The answer to a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushResponse {
    /// HTTP status.
    pub status: u16,
    /// A JSON body: the report, or `{"error": ...}`.
    pub body: String,
    /// Extra headers (`Allow` on a 405).
    pub headers: Vec<(&'static str, String)>,
}

impl PushResponse {
    fn json(status: u16, body: &impl Serialize) -> Self {
        PushResponse {
            status,
            body: serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned()),
            headers: Vec::new(),
        }
    }

    /// `{"error": message}` with `status`.
    pub fn error(status: u16, message: &str) -> Self {
        PushResponse::json(status, &json!({ "error": message }))
    }
}

/// Why a push is refused before anything runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// 401: no credentials, or ones that do not verify.
    Unauthorized(String),
    /// 403: valid credentials of someone else.
    Forbidden(String),
    /// 503: the check could not be made (Google's keys unreachable, the token's secret
    /// unreadable); Pub/Sub delivers again.
    Unavailable(String),
}

impl Rejection {
    fn unauthorized(reason: impl Into<String>) -> Self {
        Rejection::Unauthorized(reason.into())
    }

    fn forbidden(reason: impl Into<String>) -> Self {
        Rejection::Forbidden(reason.into())
    }

    fn response(&self) -> PushResponse {
        match self {
            Rejection::Unauthorized(reason) => PushResponse::error(401, reason),
            Rejection::Forbidden(reason) => PushResponse::error(403, reason),
            Rejection::Unavailable(reason) => PushResponse::error(503, reason),
        }
    }
}

/// One push endpoint and its checks.
#[derive(Debug)]
struct Gate {
    endpoint: PushEndpoint,
    oidc: Option<Verifier>,
}

/// The push endpoints of a configuration, each with its checks (and their cached keys).
#[derive(Debug)]
pub struct Ingress {
    gates: Vec<Gate>,
    /// Fetches Google's keys: a client of its own, which a dry run does not replace.
    transport: Box<dyn Transport>,
}

impl Ingress {
    /// The endpoints of `settings.push`; `transport` fetches Google's keys.
    pub fn new(endpoints: &[PushEndpoint], transport: Box<dyn Transport>) -> Self {
        let gates = endpoints
            .iter()
            .map(|endpoint| Gate {
                oidc: endpoint.oidc.clone().map(Verifier::new),
                endpoint: endpoint.clone(),
            })
            .collect();
        Ingress { gates, transport }
    }

    /// Whether any endpoint is configured.
    pub fn is_empty(&self) -> bool {
        self.gates.is_empty()
    }

    /// Checks, reads and processes one push, and says how to answer it. Nothing is run unless
    /// every check of the endpoint passed.
    pub async fn answer(
        &self,
        app: &App,
        request: &PushRequest,
        deadline: Option<Instant>,
    ) -> (PushResponse, Option<Report>) {
        if request.method != "POST" {
            let mut response = PushResponse::error(405, "pushes are POST requests");
            response.headers.push(("allow", "POST".to_owned()));
            return (response, None);
        }
        let Some(gate) = self.gates.iter().find(|g| g.endpoint.path == request.path) else {
            tracing::warn!(path = %request.path, "push to a path no settings.push entry serves");
            return (
                PushResponse::error(404, "no push endpoint at this path"),
                None,
            );
        };
        if let Err(rejection) = self.authenticate(app, gate, request).await {
            let (Rejection::Unauthorized(reason)
            | Rejection::Forbidden(reason)
            | Rejection::Unavailable(reason)) = &rejection;
            tracing::warn!(path = %request.path, %reason, "push refused");
            return (rejection.response(), None);
        }
        let parsed = match read_push(request) {
            Ok(parsed) => parsed,
            Err(error) => {
                tracing::error!(%error, "push unreadable");
                return (PushResponse::error(400, &error.to_string()), None);
            }
        };
        let report = app.process(&parsed, deadline).await;
        let status = status(&report);
        tracing::info!(status, summary = ?report.summary, "push answered");
        (PushResponse::json(status, &report), Some(report))
    }

    async fn authenticate(
        &self,
        app: &App,
        gate: &Gate,
        request: &PushRequest,
    ) -> Result<(), Rejection> {
        if let Some((secret, field)) = &gate.endpoint.token {
            let given = form_urlencoded::parse(request.query.as_bytes())
                .find(|(name, _)| name == "token")
                .map(|(_, value)| value.into_owned())
                .ok_or_else(|| {
                    Rejection::unauthorized(
                        "no verification token (?token=...) in the push endpoint's URL",
                    )
                })?;
            let expected = app
                .secrets
                .field(secret, field.as_deref())
                .await
                .map_err(|error| {
                    Rejection::Unavailable(format!("the verification token is unreadable: {error}"))
                })?;
            if !same(given.as_bytes(), expected.expose().as_bytes()) {
                return Err(Rejection::unauthorized("wrong verification token"));
            }
        }
        if let Some(verifier) = &gate.oidc {
            let email = verifier
                .verify(
                    request.header("authorization"),
                    self.transport.as_ref(),
                    app.clock().now(),
                )
                .await?;
            tracing::debug!(%email, "push token verified");
        }
        Ok(())
    }
}

/// Compares in time that depends on the lengths only, not on where the bytes differ.
fn same(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    given
        .iter()
        .zip(expected)
        .fold(0u8, |differ, (a, b)| differ | (a ^ b))
        == 0
}

/// The push's events, unauthenticated (`invoke` of a function URL file; [`Ingress::answer`]
/// checks first): a binary-mode CloudEvent (its `ce-*` headers, the object resource as
/// the body) is rebuilt as the structured one it stands for; any other body is JSON.
pub fn read_push(request: &PushRequest) -> Result<event::Parsed, EventError> {
    let body: Value = if request.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&request.body).map_err(EventError::Json)?
    };
    match request.header("ce-type") {
        Some(_) => event::parse_push(structured(request, body)),
        None => event::parse_push(body),
    }
}

/// The structured form of a binary-mode CloudEvent. Header values are percent-decoded, as
/// the CloudEvents HTTP binding encodes spaces, `"`, `%` and everything beyond printable
/// ASCII (an object named `été 2026.csv` arrives as `ce-subject: objects/%C3%A9t%C3%A9%202026.csv`).
fn structured(request: &PushRequest, data: Value) -> Value {
    let mut event = Map::new();
    for (name, value) in &request.headers {
        if let Some(attribute) = name.strip_prefix("ce-") {
            let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
            event
                .entry(attribute.to_owned())
                .or_insert_with(|| Value::String(value.into_owned()));
        }
    }
    // `ce-type` made it a CloudEvent, whether or not the pusher sent the mandatory version.
    event
        .entry("specversion")
        .or_insert_with(|| Value::String("1.0".to_owned()));
    event.insert("data".to_owned(), data);
    Value::Object(event)
}

/// The status that acknowledges a processed push (2xx) or has Pub/Sub deliver it again.
pub fn status(report: &Report) -> u16 {
    let failed = report.outcomes.iter().filter(|o| o.failed() && !o.settled);
    let mut status = 200;
    for outcome in failed {
        if outcome.delivered.retryable() {
            return 503;
        }
        if outcome.failure_record.is_none() {
            // A route that rejects: no record was written, the dead-letter topic will hold it.
            status = 422;
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_equal_only_when_equal() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(!same(b"", b"a"));
    }

    #[test]
    fn binary_cloud_events_become_structured_ones() {
        let request = PushRequest {
            method: "POST".into(),
            path: "/".into(),
            headers: vec![
                (
                    "ce-type".into(),
                    "google.cloud.storage.object.v1.finalized".into(),
                ),
                (
                    "ce-source".into(),
                    "//storage.googleapis.com/projects/_/buckets/b".into(),
                ),
                ("ce-subject".into(), "objects/a%20b/%C3%BC%2B.csv".into()),
                ("ce-id".into(), "42".into()),
                ("content-type".into(), "application/json".into()),
            ],
            body: br#"{"name": "a b/\u00fc+.csv", "bucket": "b", "size": "12", "generation": "7"}"#
                .to_vec(),
            ..PushRequest::default()
        };
        let parsed = read_push(&request).unwrap();
        let event = parsed.objects().next().unwrap();
        assert_eq!(event.key, "a b/ü+.csv");
        assert_eq!(event.bucket, "b");
        assert_eq!(event.size, Some(12));
        assert_eq!(event.version_id.as_deref(), Some("7"));
        assert_eq!(parsed.messages[0].id.as_deref(), Some("42"));
        assert_eq!(parsed.invocation, event::Invocation::Push);
    }

    #[test]
    fn aws_shapes_and_non_json_are_not_pushes() {
        let s3 = PushRequest {
            body: include_bytes!("../../events/s3-put.json").to_vec(),
            ..PushRequest::default()
        };
        let error = read_push(&s3).unwrap_err().to_string();
        assert!(error.contains("only Cloud Storage events"), "{error}");
        let junk = PushRequest {
            body: b"token=abc".to_vec(),
            ..PushRequest::default()
        };
        assert!(
            read_push(&junk)
                .unwrap_err()
                .to_string()
                .contains("not valid JSON")
        );
    }

    proptest::proptest! {
        /// Whatever the body and `ce-*` headers, reading a push ends in events or an error.
        #[test]
        fn any_body_and_headers_are_read_or_refused(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..256),
            json in "\\{(\"[a-z]{1,8}\": (\"[^\"]{0,12}\"|[0-9]{1,3}|null|\\{\\}|\\[\\])(, )?){0,4}\\}",
            header in "[ -~]{0,40}",
            binary: bool,
        ) {
            let mut headers = Vec::new();
            if binary {
                headers.push(("ce-type".to_owned(), format!("google.cloud.storage.object.v1.{header}")));
                headers.push(("ce-subject".to_owned(), header.clone()));
                headers.push(("ce-source".to_owned(), header));
            }
            for body in [body, json.into_bytes()] {
                let request = PushRequest { headers: headers.clone(), body, ..PushRequest::default() };
                let _ = read_push(&request);
            }
        }
    }
}
