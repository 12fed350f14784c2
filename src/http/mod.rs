//! HTTP (leaf, above only `secrets`' redacting string): a request as plain data whose
//! secret-bearing headers and bodies print themselves redacted, the answer, the one status
//! classification ([`Verdict`]), URL joining, body excerpts, and the [`Transport`] that either
//! sends a request ([`Network`]) or prints it ([`DryRun`]).
//!
//! Targets build [`Request`]s, auth signs them and asks token endpoints through the same
//! transport, and delivery sends them; none of those rooms talks to `reqwest` directly.

mod transport;

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::secrets::SecretString;

pub use transport::{
    ClearTextGuard, DryRun, MAX_ANSWER_BYTES, Network, NetworkSettings, Sent, Transport,
    TransportError, parse_ca_bundle, scrub,
};

/// A header value that may carry a secret.
#[derive(Clone)]
pub enum HeaderValue {
    /// Safe to print.
    Plain(String),
    /// Sent as `value`, printed as `shown` (e.g. `Bearer ****`).
    Secret {
        /// What goes on the wire.
        value: SecretString,
        /// What dry-runs and logs show instead.
        shown: String,
    },
}

impl HeaderValue {
    /// The printable form.
    pub fn shown(&self) -> &str {
        match self {
            HeaderValue::Plain(text) => text,
            HeaderValue::Secret { shown, .. } => shown,
        }
    }
}

impl fmt::Debug for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.shown())
    }
}

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    /// No body.
    Empty,
    /// `application/json`, safe to print.
    Json(Value),
    /// Text of another content type (an AWS JSON-protocol body), safe to print.
    Text {
        /// Its `content-type`.
        content_type: &'static str,
        /// The bytes on the wire.
        text: String,
    },
    /// A body carrying credentials (a token request's form or JSON): sent as is, printed `****`.
    Secret {
        /// Its `content-type`.
        content_type: &'static str,
        /// The bytes on the wire.
        text: SecretString,
    },
}

impl Body {
    /// The `content-type` the body is sent with, if it has one.
    pub fn content_type(&self) -> Option<&'static str> {
        match self {
            Body::Empty => None,
            Body::Json(_) => Some("application/json"),
            Body::Text { content_type, .. } | Body::Secret { content_type, .. } => {
                Some(content_type)
            }
        }
    }

    /// The bytes the transport puts on the wire (for signatures over the body, SigV4's).
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Body::Empty => Vec::new(),
            // What reqwest's `.json()` writes: serde_json's compact form.
            Body::Json(value) => serde_json::to_vec(value).unwrap_or_default(),
            Body::Text { text, .. } => text.as_bytes().to_vec(),
            Body::Secret { text, .. } => text.expose().as_bytes().to_vec(),
        }
    }
}

/// One HTTP request, built by a target (or a token source) and signed by an auth scheme.
/// `Debug` prints it as dry runs do: secrets redacted, the URL included.
#[derive(Clone)]
pub struct Request {
    /// HTTP method.
    pub method: Method,
    /// Full URL, from configuration only (never from event data, except percent-encoded path
    /// segments a target chose to template).
    pub url: Url,
    /// How to print the URL when it carries secrets (OAuth 1.0a query signing); `None` = as is.
    pub url_shown: Option<String>,
    /// Headers in order; names lower-case.
    pub headers: Vec<(String, HeaderValue)>,
    /// The body.
    pub body: Body,
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, url: Url) -> Self {
        Request {
            method,
            url,
            url_shown: None,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    /// A `POST` of `body`.
    pub fn post(url: Url, body: Body) -> Self {
        Request {
            body,
            ..Request::new(Method::POST, url)
        }
    }

    /// Sets (replacing) a header.
    pub fn set_header(&mut self, name: &str, value: HeaderValue) {
        let name = name.to_ascii_lowercase();
        self.headers.retain(|(existing, _)| *existing != name);
        self.headers.push((name, value));
    }

    /// The request as dry-runs print it: secrets redacted.
    pub fn printable(&self) -> Printable {
        Printable {
            method: self.method.to_string(),
            url: self
                .url_shown
                .clone()
                .unwrap_or_else(|| self.url.to_string()),
            headers: self
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), value.shown().to_owned()))
                .chain(
                    self.body
                        .content_type()
                        .map(|kind| ("content-type".to_owned(), kind.to_owned())),
                )
                .collect(),
            body: match &self.body {
                Body::Empty => None,
                Body::Json(value) => Some(value.clone()),
                Body::Text { text, .. } => {
                    Some(serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone())))
                }
                Body::Secret { .. } => Some(Value::String("****".to_owned())),
            },
        }
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.printable(), f)
    }
}

/// A request with secrets redacted, for dry-runs and reports.
#[derive(Debug, Clone, Serialize)]
pub struct Printable {
    /// HTTP method.
    pub method: String,
    /// Full URL.
    pub url: String,
    /// Headers as sent (content-type included), secret values redacted.
    pub headers: BTreeMap<String, String>,
    /// JSON body, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

/// What a server answered.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as text (empty when it could not be read after a success).
    pub body: String,
}

impl Answer {
    /// An answer with no headers.
    pub fn new(status: StatusCode, body: impl Into<String>) -> Self {
        Answer {
            status,
            headers: HeaderMap::new(),
            body: body.into(),
        }
    }

    /// The `Retry-After` header, read at `now`.
    pub fn retry_after(&self, now: SystemTime) -> Option<Duration> {
        self.headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, now))
    }
}

/// What an answer (or its absence) means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The run was started.
    Delivered {
        /// What happened, in words.
        detail: String,
        /// The id the orchestrator gave the run (an Alteryx job id), if it said.
        remote_id: Option<String>,
    },
    /// The target already has this run (e.g. Airflow 409 on an existing run id): a success.
    AlreadyDelivered,
    /// Ambiguous until checked (Airflow's 409: our run, or another one holding the same logical
    /// date?): the target's check request settles it.
    Check {
        /// What the answer said.
        reason: String,
    },
    /// Worth trying again (408, 429, 5xx, connection failures).
    Retry {
        /// Why.
        reason: String,
        /// The server's `Retry-After`, if any.
        after: Option<Duration>,
    },
    /// 401: a token scheme may refresh once and try again.
    Unauthorized {
        /// Why.
        reason: String,
    },
    /// Trying again will not help.
    Permanent {
        /// Why.
        reason: String,
    },
}

impl Verdict {
    /// The one reading of a status, for targets and token endpoints alike: 2xx delivered;
    /// 408, 429 and 5xx retryable; 401 unauthorized; any other status permanent.
    pub fn from_status(status: StatusCode, body: &str) -> Verdict {
        let code = status.as_u16();
        let said = || {
            let text = excerpt(body, 300);
            if text.is_empty() {
                format!("HTTP {code}")
            } else {
                format!("HTTP {code}: {text}")
            }
        };
        match code {
            200..=299 => Verdict::Delivered {
                detail: format!("HTTP {code}"),
                remote_id: None,
            },
            401 => Verdict::Unauthorized { reason: said() },
            408 | 429 | 500..=599 => Verdict::Retry {
                reason: said(),
                after: None,
            },
            _ => Verdict::Permanent { reason: said() },
        }
    }

    /// The one reading of an answer: a redirect (3xx) is a permanent failure naming where it
    /// pointed (only the host: a login page's query may carry tokens), since a login or SSO page
    /// in front of an API does not go away by retrying; any other status as [`Self::from_status`].
    pub fn from_answer(answer: &Answer) -> Verdict {
        if !answer.status.is_redirection() {
            return Verdict::from_status(answer.status, &answer.body);
        }
        let to = answer
            .headers
            .get(reqwest::header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(|location| match Url::parse(location) {
                Ok(url) => format!("host {}", url.host_str().unwrap_or("(none)")),
                Err(_) => "a path on the same host".to_owned(),
            })
            .unwrap_or_else(|| "nowhere (no Location header)".to_owned());
        Verdict::Permanent {
            reason: format!(
                "HTTP {}: redirected to {to}; redirects are not followed (is a login or SSO page in \
                 front of the API? point the URL at the API itself)",
                answer.status.as_u16()
            ),
        }
    }

    /// A request that got no answer. Nothing was sent (could not connect): always worth
    /// retrying. It may have arrived (a timeout, a broken connection): retried only where the
    /// target deduplicates (`idempotent`). It could not be put on the wire: permanent.
    pub fn from_transport(error: &TransportError, idempotent: bool) -> Verdict {
        let reason = error.to_string();
        if error.is_invalid_request() {
            Verdict::Permanent { reason }
        } else if error.is_connect() || idempotent {
            Verdict::Retry {
                reason,
                after: None,
            }
        } else {
            Verdict::Permanent {
                reason: format!(
                    "{reason}; not retried: the request may have arrived and this target has no \
                     idempotency key"
                ),
            }
        }
    }

    /// What it says, in words.
    pub fn into_reason(self) -> String {
        match self {
            Verdict::Delivered { detail, .. } => detail,
            Verdict::AlreadyDelivered => "already delivered".to_owned(),
            Verdict::Check { reason }
            | Verdict::Retry { reason, .. }
            | Verdict::Unauthorized { reason }
            | Verdict::Permanent { reason } => reason,
        }
    }

    /// Raises a `Retry` verdict's wait to at least the server's `Retry-After`.
    pub fn with_retry_after(self, server: Option<Duration>) -> Verdict {
        match self {
            Verdict::Retry {
                reason,
                after: None,
            } => Verdict::Retry {
                reason,
                after: server,
            },
            verdict => verdict,
        }
    }
}

/// Reads a `Retry-After` header at `now`: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
/// Delay-seconds too large for a `u64` mean the longest wait, not none (as RFC 9111 §1.2.2
/// says of delta-seconds), so the deadline ends the retries instead of the header being ignored.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(u64::MAX));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Where HTTPS trust anchors come from.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TlsRoots {
    /// Mozilla's root certificates, compiled in (`webpki-roots`).
    #[default]
    Bundled,
    /// The operating system's certificate store, read when the client is built.
    System,
}

/// The host `url` would reach in clear text across a network: `http://` to anything but a
/// loopback address or `localhost`. `None` for `https://` and for this machine.
pub fn clear_text_host(url: &Url) -> Option<String> {
    if url.scheme() != "http" {
        return None;
    }
    let host = url.host_str()?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    // The cloud's metadata server is plain HTTP by design, on a link-local address that no
    // router forwards: what Google's and AWS's own libraries call.
    let metadata = bare.eq_ignore_ascii_case("metadata.google.internal")
        || bare
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_link_local());
    (!loopback && !metadata).then(|| host.to_owned())
}

/// Why a URL to `host` (from [`clear_text_host`]) is refused, and the two ways out.
pub fn clear_text_reason(host: &str) -> String {
    format!(
        "http:// would send credentials and event data to {host} in clear text; use https://, \
         or set `allow_http: true` on the route (loopback hosts are always allowed)"
    )
}

/// `base` with `segments` appended, each percent-encoded as one path segment.
pub fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// At most `limit` characters of a response body, for error messages.
pub fn excerpt(body: &str, limit: usize) -> String {
    let trimmed = body.trim();
    match trimmed.char_indices().nth(limit) {
        Some((index, _)) => format!("{}…", &trimmed[..index]),
        None => trimmed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_text_is_refused_beyond_this_machine() {
        let host = |url: &str| clear_text_host(&Url::parse(url).unwrap());
        for local in [
            "http://127.0.0.1:8080/api",
            "http://127.9.9.9/",
            "http://[::1]:80/",
            "http://localhost:8080/",
            "http://LOCALHOST/",
            "https://airflow.example.com/",
            "https://10.0.0.1/",
        ] {
            assert_eq!(host(local), None, "{local}");
        }
        for (remote, expected) in [
            ("http://airflow.example.com/api", "airflow.example.com"),
            ("http://10.0.0.1:8080/", "10.0.0.1"),
            ("http://[fe80::1]/", "[fe80::1]"),
            ("http://localhost.example.com/", "localhost.example.com"),
            ("http://0.0.0.0/", "0.0.0.0"),
        ] {
            assert_eq!(host(remote).as_deref(), Some(expected), "{remote}");
        }
    }

    #[test]
    fn default_classification_table() {
        let table = [
            (200, "delivered"),
            (201, "delivered"),
            (204, "delivered"),
            (400, "permanent"),
            (401, "unauthorized"),
            (403, "permanent"),
            (404, "permanent"),
            (408, "retry"),
            (409, "permanent"),
            (422, "permanent"),
            (429, "retry"),
            (500, "retry"),
            (502, "retry"),
            (503, "retry"),
            (504, "retry"),
        ];
        for (code, want) in table {
            let got = match Verdict::from_status(StatusCode::from_u16(code).unwrap(), "body") {
                Verdict::Delivered { .. } => "delivered",
                Verdict::AlreadyDelivered | Verdict::Check { .. } => "already",
                Verdict::Retry { .. } => "retry",
                Verdict::Unauthorized { .. } => "unauthorized",
                Verdict::Permanent { .. } => "permanent",
            };
            assert_eq!(got, want, "HTTP {code}");
        }
    }

    #[test]
    fn reasons_quote_the_answer_briefly() {
        let long = "x".repeat(1000);
        let Verdict::Permanent { reason } = Verdict::from_status(StatusCode::BAD_REQUEST, &long)
        else {
            panic!("400 is permanent")
        };
        assert!(
            reason.starts_with("HTTP 400: xxx") && reason.chars().count() < 320,
            "{reason}"
        );
    }

    #[test]
    fn a_redirect_is_permanent_and_names_only_the_host() {
        let mut answer = Answer::new(StatusCode::FOUND, "<html>login</html>");
        answer.headers.insert(
            reqwest::header::LOCATION,
            "https://sso.example.com/login?state=s3cr3t"
                .parse()
                .unwrap(),
        );
        let Verdict::Permanent { reason } = Verdict::from_answer(&answer) else {
            panic!("a redirect is permanent")
        };
        assert!(
            reason.starts_with("HTTP 302: redirected to host sso.example.com;"),
            "{reason}"
        );
        assert!(!reason.contains("s3cr3t"), "{reason}");
        let mut relative = Answer::new(StatusCode::TEMPORARY_REDIRECT, "");
        relative
            .headers
            .insert(reqwest::header::LOCATION, "/login".parse().unwrap());
        let Verdict::Permanent { reason } = Verdict::from_answer(&relative) else {
            panic!("a redirect is permanent")
        };
        assert!(reason.contains("a path on the same host"), "{reason}");
        assert!(matches!(
            Verdict::from_answer(&Answer::new(StatusCode::SERVICE_UNAVAILABLE, "")),
            Verdict::Retry { .. }
        ));
    }

    #[test]
    fn retry_after_floors_only_retries_without_one() {
        let retry = Verdict::Retry {
            reason: "r".into(),
            after: None,
        };
        let floored = retry.with_retry_after(Some(Duration::from_secs(3)));
        assert_eq!(
            floored,
            Verdict::Retry {
                reason: "r".into(),
                after: Some(Duration::from_secs(3))
            }
        );
        let permanent = Verdict::Permanent { reason: "p".into() };
        assert_eq!(
            permanent
                .clone()
                .with_retry_after(Some(Duration::from_secs(3))),
            permanent
        );
    }

    #[test]
    fn parses_both_retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let future = httpdate::fmt_http_date(now + Duration::from_secs(120));
        assert_eq!(
            parse_retry_after(&future, now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after("100000000000000000000", now),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn join_encodes_each_segment() {
        let base = Url::parse("https://airflow.example.com/composer/").unwrap();
        let url = join(&base, &["api", "v1", "dags", "a b/c?d#e%", "dagRuns"]);
        assert_eq!(
            url.as_str(),
            "https://airflow.example.com/composer/api/v1/dags/a%20b%2Fc%3Fd%23e%25/dagRuns"
        );
    }

    #[test]
    fn debug_prints_the_redacted_url() {
        let mut request = Request::new(
            Method::POST,
            Url::parse("http://h/jobs/?oauth_consumer_key=MARKER-ck&oauth_signature=c2ln").unwrap(),
        );
        request.url_shown =
            Some("http://h/jobs/?oauth_consumer_key=****&oauth_signature=****".into());
        let debug = format!("{request:?}");
        assert!(
            !debug.contains("MARKER-ck") && !debug.contains("c2ln"),
            "{debug}"
        );
        assert!(debug.contains("oauth_consumer_key=****"), "{debug}");
    }

    #[test]
    fn secret_bodies_print_redacted() {
        let url = Url::parse("http://h/token").unwrap();
        let request = Request::post(
            url,
            Body::Secret {
                content_type: "application/x-www-form-urlencoded",
                text: SecretString::new("client_secret=hunter2"),
            },
        );
        let printable = request.printable();
        assert_eq!(printable.body, Some(Value::String("****".into())));
        assert_eq!(
            printable.headers["content-type"],
            "application/x-www-form-urlencoded"
        );
        assert!(!format!("{request:?}").contains("hunter2"));
    }
}
