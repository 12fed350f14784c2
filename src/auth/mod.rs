//! Signing: the auth schemes a target can use, as one closed, tagged config enum with one
//! `apply` per variant. Credentials come from the shared secret cache; none is ever printed.

mod airflow_token;
mod basic;
mod bearer;
mod google;
mod google_wif;
mod oauth1;
mod oauth2;
pub mod token_cache;

use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;

use crate::request::{HeaderValue, Request};
use crate::secrets::{SecretCache, SecretString, SecretsError};

pub use airflow_token::AirflowToken;
pub use basic::Basic;
pub use bearer::Bearer;
pub use google::{CLOUD_PLATFORM, Google, GoogleAccessTokenConfig, GoogleIdTokenConfig};
pub use oauth1::{OAuth1, OAuth1Config, Placement, sign_oauth1};
pub use oauth2::{ClientAuth, OAuth2, OAuth2Config};

/// `auth:` in a target's configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// No credentials.
    None,
    /// HTTP Basic from a JSON secret's two fields.
    Basic(basic::BasicConfig),
    /// A static bearer token from a secret.
    Bearer(bearer::BearerConfig),
    /// Airflow 3: exchange username/password at `POST {base_url}/auth/token` for a JWT.
    AirflowToken(airflow_token::AirflowTokenConfig),
    /// OAuth 1.0a HMAC-SHA1, consumer key and secret only (Alteryx Gallery API v1).
    Oauth1(OAuth1Config),
    /// OAuth 2.0 client credentials (Alteryx API v3, any token endpoint).
    Oauth2(OAuth2Config),
    /// A Google OAuth 2.0 access token (Composer 2/3, Workflows), from a service-account key
    /// or Workload Identity Federation.
    GoogleAccessToken(GoogleAccessTokenConfig),
    /// A Google OIDC ID token (Airflow behind Identity-Aware Proxy, Composer 1).
    GoogleIdToken(GoogleIdTokenConfig),
}

impl AuthConfig {
    /// The secret ids this scheme reads.
    pub fn secret_ids(&self) -> Vec<&str> {
        match self {
            AuthConfig::None => Vec::new(),
            AuthConfig::Basic(config) => vec![config.secret.as_str()],
            AuthConfig::Bearer(config) => vec![config.secret.as_str()],
            AuthConfig::AirflowToken(config) => vec![config.secret.as_str()],
            AuthConfig::Oauth1(config) => vec![config.secret.as_str()],
            AuthConfig::Oauth2(config) => vec![config.secret.as_str()],
            AuthConfig::GoogleAccessToken(config) => vec![config.secret.as_str()],
            AuthConfig::GoogleIdToken(config) => vec![config.secret.as_str()],
        }
    }

    /// The scheme's name as written in configuration.
    pub fn name(&self) -> &'static str {
        match self {
            AuthConfig::None => "none",
            AuthConfig::Basic(_) => "basic",
            AuthConfig::Bearer(_) => "bearer",
            AuthConfig::AirflowToken(_) => "airflow_token",
            AuthConfig::Oauth1(_) => "oauth1",
            AuthConfig::Oauth2(_) => "oauth2",
            AuthConfig::GoogleAccessToken(_) => "google_access_token",
            AuthConfig::GoogleIdToken(_) => "google_id_token",
        }
    }
}

/// What signing may use: the secret cache, the shared HTTP client, the target's base URL (for
/// token endpoints relative to it), and whether this is a dry-run (token schemes then show where
/// a token would come from instead of fetching one).
pub struct AuthContext<'a> {
    /// Shared secret cache.
    pub secrets: &'a SecretCache,
    /// Shared HTTP client, for token exchanges.
    pub http: &'a reqwest::Client,
    /// The target's resolved base URL.
    pub base_url: &'a Url,
    /// Print instead of send.
    pub dry_run: bool,
}

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A credential could not be read.
    #[error(transparent)]
    Secret(#[from] SecretsError),
    /// The token endpoint could not be reached or failed; worth retrying.
    #[error("token request to {url} failed: {message}")]
    TokenUnavailable {
        /// Token endpoint.
        url: String,
        /// What went wrong (no credentials in it).
        message: String,
    },
    /// The token endpoint refused the credentials or answered nonsense; retrying will not help.
    #[error("token request to {url} was refused: {message}")]
    TokenRefused {
        /// Token endpoint.
        url: String,
        /// Status and what it means.
        message: String,
    },
}

impl AuthError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            AuthError::Secret(error) => error.is_retryable(),
            AuthError::TokenUnavailable { .. } => true,
            AuthError::TokenRefused { .. } => false,
        }
    }
}

/// A configured auth scheme, holding its token cache where it has one.
#[derive(Debug)]
pub enum Auth {
    /// No credentials.
    None,
    /// HTTP Basic.
    Basic(Basic),
    /// Static bearer token.
    Bearer(Bearer),
    /// Airflow 3 token exchange.
    AirflowToken(AirflowToken),
    /// OAuth 1.0a.
    OAuth1(OAuth1),
    /// OAuth 2.0 client credentials.
    OAuth2(OAuth2),
    /// Google access or ID tokens.
    Google(Google),
}

impl Auth {
    /// Builds the scheme.
    pub fn new(config: &AuthConfig) -> Auth {
        match config {
            AuthConfig::None => Auth::None,
            AuthConfig::Basic(config) => Auth::Basic(Basic::new(config.clone())),
            AuthConfig::Bearer(config) => Auth::Bearer(Bearer::new(config.clone())),
            AuthConfig::AirflowToken(config) => {
                Auth::AirflowToken(AirflowToken::new(config.clone()))
            }
            AuthConfig::Oauth1(config) => Auth::OAuth1(OAuth1::new(config.clone())),
            AuthConfig::Oauth2(config) => Auth::OAuth2(OAuth2::new(config.clone())),
            AuthConfig::GoogleAccessToken(config) => Auth::Google(Google::access(config.clone())),
            AuthConfig::GoogleIdToken(config) => Auth::Google(Google::id(config.clone())),
        }
    }

    /// Signs `request`.
    pub async fn apply(
        &self,
        request: &mut Request,
        cx: &AuthContext<'_>,
    ) -> Result<(), AuthError> {
        match self {
            Auth::None => Ok(()),
            Auth::Basic(auth) => auth.apply(request, cx).await,
            Auth::Bearer(auth) => auth.apply(request, cx).await,
            Auth::AirflowToken(auth) => auth.apply(request, cx).await,
            Auth::OAuth1(auth) => auth.apply(request, cx).await,
            Auth::OAuth2(auth) => auth.apply(request, cx).await,
            Auth::Google(auth) => auth.apply(request, cx).await,
        }
    }

    /// Called when the target answered 401: drops any cached token. Returns whether signing
    /// again could give a different answer (true only for token schemes).
    pub async fn on_unauthorized(&self) -> bool {
        match self {
            Auth::AirflowToken(auth) => {
                auth.invalidate().await;
                true
            }
            Auth::OAuth2(auth) => {
                auth.invalidate().await;
                true
            }
            Auth::Google(auth) => {
                auth.invalidate().await;
                true
            }
            Auth::None | Auth::Basic(_) | Auth::Bearer(_) | Auth::OAuth1(_) => false,
        }
    }
}

fn default_username_field() -> String {
    "username".to_owned()
}

fn default_password_field() -> String {
    "password".to_owned()
}

/// The `Authorization` header a dry-run shows for a token scheme: no token is fetched.
fn dry_run_bearer(token_url: &Url) -> HeaderValue {
    HeaderValue::Secret {
        value: SecretString::new(String::new()),
        shown: format!("Bearer **** (from POST {token_url})"),
    }
}

/// Sends a token request and reads its JSON answer: 408, 429, 5xx and transport failures are
/// worth retrying; any other non-2xx means the credentials were refused (`refused` says which).
async fn request_token(
    builder: reqwest::RequestBuilder,
    url: &Url,
    refused: &str,
) -> Result<Value, AuthError> {
    let response = builder
        .send()
        .await
        .map_err(|e| AuthError::TokenUnavailable {
            url: url.to_string(),
            message: crate::delivery::describe_transport_error(&e),
        })?;
    let status = response.status();
    if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
        return Err(AuthError::TokenUnavailable {
            url: url.to_string(),
            message: format!("HTTP {status}"),
        });
    }
    if !status.is_success() {
        return Err(AuthError::TokenRefused {
            url: url.to_string(),
            message: format!("HTTP {status}: {refused}"),
        });
    }
    response.json().await.map_err(|e| AuthError::TokenRefused {
        url: url.to_string(),
        message: format!("answer is not JSON: {e}"),
    })
}

/// The `access_token` of a token answer.
fn access_token(answer: &Value, url: &Url) -> Result<SecretString, AuthError> {
    answer
        .get("access_token")
        .and_then(Value::as_str)
        .map(SecretString::new)
        .ok_or_else(|| AuthError::TokenRefused {
            url: url.to_string(),
            message: "answer has no access_token".to_owned(),
        })
}
