//! Auth: Google OAuth 2.0 access tokens and OIDC ID tokens, minted from AWS without a metadata
//! server, as one [`TokenSource`]. The secret holds Google's credential JSON; its `type` picks
//! the way:
//!
//! - `"service_account"` (a key file): [`super::google_key`] signs an RS256 assertion and
//!   exchanges it at the key's `token_uri`.
//! - `"external_account"` with `credential_source.environment_id = "aws1"` (Workload Identity
//!   Federation, no stored key): [`super::google_sts`] exchanges the function's AWS identity for
//!   a federated token, which [`super::google_iam`] turns into the service account's token.
//!
//! On Google Cloud itself, `metadata_server: true` instead of a secret asks the metadata
//! server ([`super::google_metadata`]) for the attached service account's tokens.

use futures_util::future::BoxFuture;
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;

use super::token::{Token, TokenSource, Wanted};
use super::{
    AuthError, CLOUD_PLATFORM, SignContext, google_iam, google_key, google_metadata, google_sts,
};
use crate::secrets::SecretString;

/// `auth: { google_access_token: { secret, field, scopes } }`, or `{ metadata_server: true }`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GoogleAccessTokenConfig {
    /// Secret holding the credential JSON (service-account key or external-account config).
    pub secret: Option<String>,
    /// Ask the metadata server instead (on Google Cloud: Cloud Run, GCE, GKE).
    #[serde(default)]
    pub metadata_server: bool,
    /// Field of a JSON secret holding the credential JSON; default: the whole secret.
    pub field: Option<String>,
    /// Scopes; default `https://www.googleapis.com/auth/cloud-platform`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
}

/// `auth: { google_id_token: { secret, field, audience } }`, or `{ metadata_server: true,
/// audience }`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GoogleIdTokenConfig {
    /// Secret holding the credential JSON.
    pub secret: Option<String>,
    /// Ask the metadata server instead (on Google Cloud: Cloud Run, GCE, GKE).
    #[serde(default)]
    pub metadata_server: bool,
    /// Field of a JSON secret holding the credential JSON; default: the whole secret.
    pub field: Option<String>,
    /// The token's audience: for Identity-Aware Proxy, the IAP OAuth client id.
    pub audience: String,
}

fn default_scopes() -> Vec<String> {
    vec![CLOUD_PLATFORM.to_owned()]
}

/// Where the credentials are: exactly one of `secret` and `metadata_server: true`.
pub(super) fn check_source(secret: Option<&str>, metadata_server: bool) -> Result<(), String> {
    match (secret, metadata_server) {
        (Some(_), true) => Err("give `secret` or `metadata_server: true`, not both".to_owned()),
        (None, false) => Err(
            "needs `secret` (a service-account key or Workload Identity Federation config) \
             or, on Google Cloud, `metadata_server: true`"
                .to_owned(),
        ),
        (Some(secret), false) if secret.trim().is_empty() => {
            Err("secret must not be empty".to_owned())
        }
        _ => Ok(()),
    }
}

/// Google tokens from a credential JSON kept in a secret.
#[derive(Debug)]
pub(super) struct Google {
    secret: String,
    /// Tokens from the metadata server, not from a secret.
    metadata_server: bool,
    field: Option<String>,
    wanted: Wanted,
}

impl Google {
    /// Access tokens.
    pub(super) fn access(config: GoogleAccessTokenConfig) -> Self {
        Google {
            secret: config.secret.unwrap_or_default(),
            metadata_server: config.metadata_server,
            field: config.field,
            wanted: Wanted::Access(config.scopes),
        }
    }

    /// ID tokens.
    pub(super) fn id(config: GoogleIdTokenConfig) -> Self {
        Google {
            secret: config.secret.unwrap_or_default(),
            metadata_server: config.metadata_server,
            field: config.field,
            wanted: Wanted::Id(config.audience),
        }
    }

    /// The credential JSON and its `type`. Parsed only when a token is minted, not per request.
    async fn credentials(&self, cx: &SignContext<'_>) -> Result<(String, Value), AuthError> {
        let credentials: SecretString = cx
            .secrets
            .field(&self.secret, self.field.as_deref())
            .await?;
        let parsed: Value = serde_json::from_str(credentials.expose())
            .map_err(|_| self.bad_credentials("is not JSON"))?;
        let kind = parsed
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok((kind, parsed))
    }

    fn bad_credentials(&self, what: &str) -> AuthError {
        AuthError::TokenRefused {
            url: "(none)".to_owned(),
            message: format!("the Google credentials in secret {:?} {what}", self.secret),
        }
    }

    async fn mint(&self, cx: &SignContext<'_>) -> Result<Token, AuthError> {
        if self.metadata_server {
            return google_metadata::mint(cx, &self.wanted).await;
        }
        let (kind, parsed) = self.credentials(cx).await?;
        match kind.as_str() {
            "service_account" => {
                let key = google_key::ServiceAccountKey::parse(parsed)
                    .map_err(|e| self.bad_credentials(&e))?;
                google_key::mint(cx, &key, &self.wanted, &self.secret).await
            }
            "external_account" => {
                let account =
                    google_sts::ExternalAccount::parse(parsed, &self.wanted, &self.secret)?;
                let federated = google_sts::federate(cx, &account, &self.wanted).await?;
                match &account.service_account_impersonation_url {
                    None => Ok(federated),
                    Some(url) => {
                        google_iam::impersonate(
                            cx,
                            url,
                            &federated.value,
                            &self.wanted,
                            &self.secret,
                        )
                        .await
                    }
                }
            }
            other => Err(self.bad_credentials(&format!(
                "has type {other:?}; expected \"service_account\" or \"external_account\""
            ))),
        }
    }

    async fn token_endpoint(&self, cx: &SignContext<'_>) -> Result<Url, AuthError> {
        if self.metadata_server {
            return Ok(google_metadata::url(&self.wanted));
        }
        if cx.secrets.get(&self.secret).await?.is_placeholder() {
            // A dry run without the key: where a service-account key sends its assertion.
            return Ok(Url::parse(GOOGLE_TOKEN_URL).expect("a valid URL"));
        }
        let (kind, parsed) = self.credentials(cx).await?;
        let from = match kind.as_str() {
            "service_account" => parsed.get("token_uri"),
            _ => parsed.get("token_url"),
        };
        from.and_then(Value::as_str)
            .and_then(|url| Url::parse(url).ok())
            .ok_or_else(|| self.bad_credentials("has no valid token URL"))
    }
}

/// Google's OAuth 2.0 token endpoint, as service-account keys name it.
const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

impl TokenSource for Google {
    fn fetch<'a>(&'a self, cx: &'a SignContext<'_>) -> BoxFuture<'a, Result<Token, AuthError>> {
        Box::pin(self.mint(cx))
    }

    fn origin<'a>(&'a self, cx: &'a SignContext<'_>) -> BoxFuture<'a, Result<Url, AuthError>> {
        Box::pin(self.token_endpoint(cx))
    }
}
