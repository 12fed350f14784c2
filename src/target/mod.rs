//! Targets: one trait, one file per orchestrator. Building a request is pure (event + route →
//! method, URL, headers, JSON body, run id), so it can be golden-tested and printed by the
//! dry-run; each target also reads its orchestrator's answers.

mod airflow;
mod alteryx;
pub mod run_id;
mod webhook;
mod workflows;

use std::fmt;

use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::{Auth, AuthConfig};
use crate::delivery::Verdict;
use crate::event::ObjectEvent;
use crate::request::Request;
use crate::secrets::{SecretCache, SecretsError};
use crate::template::{TemplateError, Templates};

pub use airflow::{Airflow, AirflowApi, AirflowConfig};
pub use alteryx::{Alteryx, AlteryxApi, AlteryxConfig, Question};
pub use webhook::{Webhook, WebhookConfig};
pub use workflows::{Workflows, WorkflowsCallback, WorkflowsCallbackConfig, WorkflowsConfig};

/// `target:` in a route: exactly one key naming the kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetConfig {
    /// Airflow DAG run (REST API v1, v2, or the legacy experimental API).
    Airflow(AirflowConfig),
    /// Alteryx Server job (Gallery API v1 with OAuth 1.0a or OAuth 2, API v3 with OAuth 2).
    Alteryx(AlteryxConfig),
    /// A templated JSON POST to any URL.
    Webhook(WebhookConfig),
    /// A new Google Workflows execution.
    Workflows(WorkflowsConfig),
    /// A Google Workflows callback.
    WorkflowsCallback(WorkflowsCallbackConfig),
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
            TargetConfig::Alteryx(config) => Box::new(Alteryx::new(config, name, templates)?),
            TargetConfig::Webhook(config) => Box::new(Webhook::new(config, name, templates)?),
            TargetConfig::Workflows(config) => Box::new(Workflows::new(config, name, templates)?),
            TargetConfig::WorkflowsCallback(config) => {
                Box::new(WorkflowsCallback::new(config, name, templates)?)
            }
        })
    }

    /// The auth configuration, to list the secrets a config needs.
    pub fn auth(&self) -> &AuthConfig {
        match self {
            TargetConfig::Airflow(config) => &config.auth,
            TargetConfig::Alteryx(config) => &config.auth,
            TargetConfig::Webhook(config) => &config.auth,
            TargetConfig::Workflows(config) => &config.auth,
            TargetConfig::WorkflowsCallback(config) => &config.auth,
        }
    }

    /// Secret ids the target reads besides its auth's (a base URL kept in a secret).
    pub fn secret_ids(&self) -> Vec<&str> {
        let base = match self {
            TargetConfig::Airflow(config) => &config.base_url,
            TargetConfig::Alteryx(config) => &config.base_url,
            TargetConfig::WorkflowsCallback(config) => &config.url,
            TargetConfig::Webhook(_) | TargetConfig::Workflows(_) => {
                return self.auth().secret_ids();
            }
        };
        let mut ids = self.auth().secret_ids();
        if let BaseUrlConfig::Secret { secret, .. } = base {
            ids.push(secret);
        }
        ids
    }
}

/// `base_url:` as written: a URL, or where to find one in a secret (as in the common Alteryx
/// secret `{"ALTERYX_URL": "...", "ALTERYX_KEY": ..., "ALTERYX_SECRET": ...}`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum BaseUrlConfig {
    /// The URL itself.
    Url(String),
    /// `{ secret: id, field: NAME }`; without `field`, the whole (plain-string) secret.
    Secret {
        /// Secret id.
        secret: String,
        /// Field holding the URL.
        field: Option<String>,
    },
}

/// A base URL, fixed at load time or read from a secret (through the cache) when needed.
#[derive(Debug, Clone)]
pub enum BaseUrl {
    /// Known from configuration.
    Fixed(Url),
    /// Read from a secret.
    Secret {
        /// Secret id.
        secret: String,
        /// Field, or the whole secret.
        field: Option<String>,
    },
}

/// Why a base URL kept in a secret could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BaseUrlError {
    /// The secret could not be read.
    #[error(transparent)]
    Secret(#[from] SecretsError),
    /// The secret's value is not a usable URL (the value itself is not repeated here).
    #[error("secret {secret:?} field {field:?} does not hold a usable base URL: {reason}")]
    Invalid {
        /// Secret id.
        secret: String,
        /// Field.
        field: String,
        /// Why.
        reason: String,
    },
}

impl BaseUrlError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, BaseUrlError::Secret(error) if error.is_retryable())
    }
}

/// Stands in for a base URL kept in a secret when templates are checked at load time.
pub const PLACEHOLDER_BASE: &str = "https://base-url-from-secret.invalid/";

impl BaseUrl {
    /// Compiles `base_url:`; `field` names it in errors.
    pub fn new(field: &str, config: &BaseUrlConfig) -> Result<BaseUrl, TargetError> {
        match config {
            BaseUrlConfig::Url(url) => Ok(BaseUrl::Fixed(parse_base_url(field, url)?)),
            BaseUrlConfig::Secret { secret, field } => Ok(BaseUrl::Secret {
                secret: secret.clone(),
                field: field.clone(),
            }),
        }
    }

    /// The URL, reading the secret if it lives in one.
    pub async fn resolve(&self, secrets: &SecretCache) -> Result<Url, BaseUrlError> {
        match self {
            BaseUrl::Fixed(url) => Ok(url.clone()),
            BaseUrl::Secret { secret, field } => {
                let value = secrets.field(secret, field.as_deref()).await?;
                parse_base_url("base_url", value.expose().trim()).map_err(|error| {
                    let reason = match error {
                        TargetError::Url { reason, .. } => reason,
                        other => other.to_string(),
                    };
                    BaseUrlError::Invalid {
                        secret: secret.clone(),
                        field: field.clone().unwrap_or_default(),
                        reason,
                    }
                })
            }
        }
    }

    /// The URL to check templates against at load time.
    pub fn for_validation(&self) -> Url {
        match self {
            BaseUrl::Fixed(url) => url.clone(),
            BaseUrl::Secret { .. } => {
                Url::parse(PLACEHOLDER_BASE).unwrap_or_else(|_| unreachable!())
            }
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
    /// The API base the request was built on; token endpoints default to paths under it.
    pub base_url: Url,
}

/// An orchestrator we can start runs on.
pub trait Target: Send + Sync + fmt::Debug {
    /// Short description for logs and reports, e.g. `airflow v2 dag load_sales`.
    fn describe(&self) -> String;

    /// The auth scheme that signs this target's requests.
    fn auth(&self) -> &Auth;

    /// Where the base URL comes from.
    fn base_url(&self) -> &BaseUrl;

    /// Whether retrying after an ambiguous failure (a timeout after the request was sent) is
    /// safe: the target deduplicates, or the user opted in.
    fn idempotent(&self) -> bool;

    /// Builds the request for one event on one route, on the resolved base URL. Pure.
    fn build(
        &self,
        event: &ObjectEvent,
        route: &str,
        templates: &Templates,
        base: &Url,
    ) -> Result<Built, TargetError>;

    /// Reads the orchestrator's answer.
    fn interpret(&self, status: StatusCode, headers: &HeaderMap, body: &str) -> Verdict;
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

/// The `detail`, `message`, `title` or `error` of a JSON error answer, else a body excerpt.
pub(crate) fn problem(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let detail = parsed.as_ref().and_then(|v| {
        ["detail", "message", "title", "error"]
            .iter()
            .find_map(|name| v.get(*name))
            .map(|detail| match detail {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
    });
    excerpt(&detail.unwrap_or_else(|| body.to_owned()), 300)
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
