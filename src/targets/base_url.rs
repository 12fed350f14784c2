//! Targets: where a target's URL comes from. Fixed in configuration (checked at load: http or
//! https, no credentials, no query or fragment unless the target allows one), or read from a
//! secret through the cache when needed (as in the common Alteryx secret
//! `{"ALTERYX_URL": "...", "ALTERYX_KEY": ..., "ALTERYX_SECRET": ...}`).

use reqwest::Url;
use serde::Deserialize;

use super::TargetError;
use crate::secrets::{SecretCache, SecretsError};

/// `base_url:` (or `url:`) as written: a URL, or where to find one in a secret.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(
    untagged,
    expecting = "a URL, or { secret: ID, field: NAME } naming the secret that holds one"
)]
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
#[derive(Debug, Clone, thiserror::Error)]
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

    /// A fixed URL that may carry a query (many chat webhooks do) but no credentials.
    pub fn with_query(field: &str, raw: &str) -> Result<BaseUrl, TargetError> {
        let without_query = raw.split(['?', '#']).next().unwrap_or(raw);
        parse_base_url(field, without_query)?;
        Url::parse(raw)
            .map(BaseUrl::Fixed)
            .map_err(|e| TargetError::Url {
                field: field.to_owned(),
                url: raw.to_owned(),
                reason: e.to_string(),
            })
    }

    /// The URL, reading the secret if it lives in one.
    pub async fn resolve(&self, secrets: &SecretCache) -> Result<Url, BaseUrlError> {
        match self {
            BaseUrl::Fixed(url) => Ok(url.clone()),
            BaseUrl::Secret { secret, field } => {
                if secrets.get(secret).await?.is_placeholder() {
                    return Ok(self.for_validation());
                }
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

/// Parses and checks a configured base URL (http or https, no query or fragment).
pub(crate) fn parse_base_url(field: &str, raw: &str) -> Result<Url, TargetError> {
    let error = |reason: &str| TargetError::Url {
        field: field.to_owned(),
        url: raw.to_owned(),
        reason: reason.to_owned(),
    };
    if raw.contains("{{") || raw.contains("{%") {
        return Err(error(
            "templates are not allowed in a base URL (event data never chooses the host); \
             template dag_id, workflow_id or the body instead",
        ));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let err = parse_base_url("base_url", "https://{{ bucket }}.example.com")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("templates are not allowed in a base URL"),
            "{err}"
        );
        assert!(BaseUrl::with_query("url", "https://h/hook?k=1").is_ok());
        assert!(BaseUrl::with_query("url", "http://u:p@h/x").is_err());
    }
}
