//! Signing: the auth schemes a target can use, as one closed, tagged config enum with one
//! `apply` per variant. Credentials come from the shared secret cache; none is ever printed.

mod airflow_token;
mod basic;
mod bearer;

use serde::Deserialize;

use crate::request::Request;
use crate::secrets::{SecretCache, SecretsError};

pub use airflow_token::AirflowToken;
pub use basic::Basic;
pub use bearer::Bearer;

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
}

impl AuthConfig {
    /// The secret ids this scheme reads.
    pub fn secret_ids(&self) -> Vec<&str> {
        match self {
            AuthConfig::None => Vec::new(),
            AuthConfig::Basic(config) => vec![config.secret.as_str()],
            AuthConfig::Bearer(config) => vec![config.secret.as_str()],
            AuthConfig::AirflowToken(config) => vec![config.secret.as_str()],
        }
    }
}

/// What signing may use: the secret cache, the shared HTTP client, and whether this is a dry-run
/// (token schemes then show where a token would come from instead of fetching one).
pub struct AuthContext<'a> {
    /// Shared secret cache.
    pub secrets: &'a SecretCache,
    /// Shared HTTP client, for token exchanges.
    pub http: &'a reqwest::Client,
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
}

impl Auth {
    /// Builds the scheme; `base_url` is the target's, for schemes with a token endpoint there.
    pub fn new(config: &AuthConfig, base_url: &reqwest::Url) -> Auth {
        match config {
            AuthConfig::None => Auth::None,
            AuthConfig::Basic(config) => Auth::Basic(Basic::new(config.clone())),
            AuthConfig::Bearer(config) => Auth::Bearer(Bearer::new(config.clone())),
            AuthConfig::AirflowToken(config) => {
                Auth::AirflowToken(AirflowToken::new(config.clone(), base_url))
            }
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
            Auth::None | Auth::Basic(_) | Auth::Bearer(_) => false,
        }
    }
}

fn default_username_field() -> String {
    "username".to_owned()
}

fn default_password_field() -> String {
    "password".to_owned()
}
