//! Targets: one trait, one file per orchestrator. Building a request is pure (event + route →
//! method, URL, headers, JSON body, run id), so it can be golden-tested and printed by the
//! dry-run; each target also reads its orchestrator's answers.

mod airflow;
pub mod run_id;
mod webhook;

use std::fmt;

use reqwest::{StatusCode, Url};
use serde::Deserialize;

use crate::auth::{Auth, AuthConfig};
use crate::delivery::Verdict;
use crate::event::ObjectEvent;
use crate::request::Request;
use crate::template::{TemplateError, Templates};

pub use airflow::{Airflow, AirflowApi, AirflowConfig};
pub use webhook::{Webhook, WebhookConfig};

/// `target:` in a route: exactly one key naming the kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetConfig {
    /// Airflow DAG run (REST API v1, v2, or the legacy experimental API).
    Airflow(AirflowConfig),
    /// A templated JSON POST to any URL.
    Webhook(WebhookConfig),
}

impl TargetConfig {
    /// Compiles the target's templates into `templates`; `name` prefixes template names.
    pub fn build(
        &self,
        name: &str,
        templates: &mut Templates,
    ) -> Result<Box<dyn Target>, TargetError> {
        Ok(match self {
            TargetConfig::Airflow(config) => Box::new(Airflow::new(config, name, templates)?),
            TargetConfig::Webhook(config) => Box::new(Webhook::new(config, name, templates)?),
        })
    }

    /// The auth configuration, to list the secrets a config needs.
    pub fn auth(&self) -> &AuthConfig {
        match self {
            TargetConfig::Airflow(config) => &config.auth,
            TargetConfig::Webhook(config) => &config.auth,
        }
    }
}

/// A request ready for signing, with the idempotency key it carries (if the target has one).
#[derive(Debug, Clone)]
pub struct Built {
    /// The unsigned request.
    pub request: Request,
    /// The run id sent (Airflow `dag_run_id`), which makes redelivery safe.
    pub run_id: Option<String>,
}

/// An orchestrator we can start runs on.
pub trait Target: Send + Sync + fmt::Debug {
    /// Short description for logs and reports, e.g. `airflow v2 dag load_sales`.
    fn describe(&self) -> String;

    /// The auth scheme that signs this target's requests.
    fn auth(&self) -> &Auth;

    /// Whether retrying after an ambiguous failure (a timeout after the request was sent) is
    /// safe, i.e. the target deduplicates.
    fn idempotent(&self) -> bool;

    /// Builds the request for one event on one route. Pure.
    fn build(
        &self,
        event: &ObjectEvent,
        route: &str,
        templates: &Templates,
    ) -> Result<Built, TargetError>;

    /// Reads the orchestrator's answer.
    fn interpret(&self, status: StatusCode, body: &str) -> Verdict;
}

/// Why a target could not be configured or a request built. Never retryable.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// A template failed.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// A configured URL is unusable.
    #[error("{field}: invalid URL {url:?}: {reason}")]
    Url {
        /// The field.
        field: String,
        /// The value.
        url: String,
        /// Why.
        reason: String,
    },
    /// Some other field is invalid.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
}

/// Parses and checks a configured base URL (http or https, no query or fragment).
pub(crate) fn parse_base_url(field: &str, raw: &str) -> Result<Url, TargetError> {
    let error = |reason: &str| TargetError::Url {
        field: field.to_owned(),
        url: raw.to_owned(),
        reason: reason.to_owned(),
    };
    let url = Url::parse(raw).map_err(|e| error(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(error("scheme must be http or https"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(error("must not have a query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(error("must not carry credentials; use auth with a secret"));
    }
    Ok(url)
}

/// `base` with `segments` appended, each percent-encoded as one path segment.
pub(crate) fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// At most `limit` characters of a response body, for error messages.
pub(crate) fn excerpt(body: &str, limit: usize) -> String {
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
    fn join_encodes_each_segment() {
        let base = Url::parse("https://airflow.example.com/composer/").unwrap();
        let url = join(&base, &["api", "v1", "dags", "a b/c?d#e%", "dagRuns"]);
        assert_eq!(
            url.as_str(),
            "https://airflow.example.com/composer/api/v1/dags/a%20b%2Fc%3Fd%23e%25/dagRuns"
        );
    }

    #[test]
    fn base_urls_are_checked() {
        assert!(parse_base_url("base_url", "https://h/x").is_ok());
        for bad in [
            "ftp://h",
            "not a url",
            "https://h/?q=1",
            "https://user:pw@h/",
        ] {
            let err = parse_base_url("base_url", bad).unwrap_err().to_string();
            assert!(err.starts_with("base_url: invalid URL"), "{err}");
            assert!(!err.contains("pw@") || bad.contains("pw@"), "{err}");
        }
    }
}
