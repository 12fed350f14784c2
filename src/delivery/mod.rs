//! Delivery: send a built request, classify the answer, retry what is worth retrying within
//! the deadline, and report one [`Delivered`] per event × target.
//!
//! Classification ([`Verdict::from_status`], target overrides) is pure and table-tested; the
//! policy ([`RetryPolicy`]) decides how long to wait.

mod retry;

use std::error::Error as _;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Serialize;
use tokio::time::Instant;
use tracing::Instrument;

use crate::auth::AuthContext;
use crate::request::{Body, HeaderValue, Printable, Request};
use crate::secrets::SecretCache;
use crate::target::{Built, Target, excerpt};

pub use retry::{RetryPolicy, parse_retry_after};

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
    /// The default reading of a status: 2xx delivered; 408, 429 and 5xx retryable; 401
    /// unauthorized; any other status permanent.
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
}

/// How one event × target ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A new run was started.
    Triggered,
    /// The run existed already (a redelivery): nothing to do, a success.
    AlreadyTriggered,
    /// Dry-run: the request was printed, not sent.
    DryRun,
    /// Not delivered.
    Failed,
}

/// The result of delivering one request.
#[derive(Debug, Clone, Serialize)]
pub struct Delivered {
    /// How it ended.
    pub status: Status,
    /// For failures: whether a later retry (Lambda's, SQS's) may succeed.
    pub retryable: bool,
    /// Attempts made (0 for dry-runs and failures before sending).
    pub attempts: u32,
    /// The last HTTP status, if any answer came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The id the orchestrator gave the run (an Alteryx job id), if it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// What happened, in words.
    pub detail: String,
    /// Dry-run: the signed request, secrets redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Printable>,
}

impl Delivered {
    /// A failure before anything was sent.
    pub fn failed(detail: impl Into<String>, retryable: bool) -> Self {
        Delivered {
            status: Status::Failed,
            retryable,
            attempts: 0,
            http_status: None,
            remote_id: None,
            detail: detail.into(),
            request: None,
        }
    }
}

/// Everything sending needs, borrowed from the app for one invocation.
pub struct Sender<'a> {
    /// Shared HTTP client (one connection pool).
    pub http: &'a reqwest::Client,
    /// Shared secret cache.
    pub secrets: &'a SecretCache,
    /// Retry policy.
    pub policy: &'a RetryPolicy,
    /// Time limit of one attempt.
    pub attempt_timeout: Duration,
    /// The invocation's deadline (Lambda), if any.
    pub deadline: Option<Instant>,
    /// Print instead of send.
    pub dry_run: bool,
}

impl Sender<'_> {
    /// Signs and sends `built` to `target`, retrying as the policy allows.
    pub async fn deliver(&self, target: &dyn Target, built: Built) -> Delivered {
        let cx = AuthContext {
            secrets: self.secrets,
            http: self.http,
            base_url: &built.base_url,
            dry_run: self.dry_run,
        };
        let cutoff = self.policy.cutoff(self.deadline);
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = built.request.clone();
            if let Err(error) = target.auth().apply(&mut request, &cx).await {
                let mut failed =
                    Delivered::failed(format!("signing failed: {error}"), error.is_retryable());
                failed.attempts = attempt - 1;
                return failed;
            }
            if self.dry_run {
                return Delivered {
                    status: Status::DryRun,
                    retryable: false,
                    attempts: 0,
                    http_status: None,
                    remote_id: None,
                    detail: "not sent (dry run)".to_owned(),
                    request: Some(request.printable()),
                };
            }
            let timeout = match cutoff {
                Some(cutoff) => self
                    .attempt_timeout
                    .min(cutoff.saturating_duration_since(Instant::now())),
                None => self.attempt_timeout,
            };
            let span = tracing::info_span!("attempt", attempt, http_status = tracing::field::Empty);
            let (verdict, http_status) = self
                .send_once(target, &request, timeout)
                .instrument(span.clone())
                .await;
            if let Some(code) = http_status {
                span.record("http_status", code);
            }
            let outcome = |status, retryable, detail| Delivered {
                status,
                retryable,
                attempts: attempt,
                http_status,
                remote_id: None,
                detail,
                request: None,
            };
            let (reason, after) = match verdict {
                Verdict::Delivered { detail, remote_id } => {
                    return Delivered {
                        remote_id,
                        ..outcome(Status::Triggered, false, detail)
                    };
                }
                Verdict::AlreadyDelivered => {
                    let detail = "already triggered (the run exists; redelivered event)".to_owned();
                    return outcome(Status::AlreadyTriggered, false, detail);
                }
                Verdict::Permanent { reason } => return outcome(Status::Failed, false, reason),
                Verdict::Unauthorized { reason } => {
                    if !refreshed && target.auth().on_unauthorized().await {
                        refreshed = true;
                        attempt -= 1;
                        tracing::info!("401: dropped the cached token, signing again");
                        continue;
                    }
                    return outcome(Status::Failed, false, format!("unauthorized: {reason}"));
                }
                Verdict::Retry { reason, after } => (reason, after),
            };
            if attempt >= self.policy.max_attempts {
                return outcome(
                    Status::Failed,
                    true,
                    format!("{reason} (gave up after {attempt} attempts)"),
                );
            }
            let wait = self.policy.backoff(attempt, after);
            if let Some(cutoff) = cutoff
                && Instant::now() + wait >= cutoff
            {
                let detail = format!("{reason} (no time left before the deadline to retry)");
                return outcome(Status::Failed, true, detail);
            }
            tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, %reason, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    async fn send_once(
        &self,
        target: &dyn Target,
        request: &Request,
        timeout: Duration,
    ) -> (Verdict, Option<u16>) {
        let mut builder = self
            .http
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
                    let reason = format!("header {name} has a value that cannot be sent in HTTP");
                    return (Verdict::Permanent { reason }, None);
                }
            }
        }
        if let Body::Json(body) = &request.body {
            builder = builder.json(body);
        }
        let response = match builder.send().await {
            Ok(response) => response,
            Err(error) => return (transport_verdict(&error, target.idempotent()), None),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after);
        let body = match response.text().await {
            Ok(body) => body,
            Err(error) if status.is_success() => {
                // The target acted; only its answer was lost.
                tracing::warn!(error = %describe_transport_error(&error), "could not read the answer body");
                String::new()
            }
            Err(error) => {
                return (
                    transport_verdict(&error, target.idempotent()),
                    Some(status.as_u16()),
                );
            }
        };
        let verdict = match target.interpret(status, &headers, &body) {
            Verdict::Retry {
                reason,
                after: None,
            } => Verdict::Retry { reason, after },
            verdict => verdict,
        };
        (verdict, Some(status.as_u16()))
    }
}

/// Connection failures (nothing was sent) are always retryable; a timeout or a broken
/// connection after sending is retried only where the target deduplicates.
fn transport_verdict(error: &reqwest::Error, idempotent: bool) -> Verdict {
    let reason = describe_transport_error(error);
    if error.is_connect() || idempotent {
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

/// A transport error with its causes (`connection refused`), without the URL's query.
pub fn describe_transport_error(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut causes = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !causes.contains(&text) {
            causes.push(text);
        }
        source = cause.source();
    }
    if causes.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {}", causes.join(": "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                Verdict::AlreadyDelivered => "already",
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
}
