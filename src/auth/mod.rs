//! Auth: the schemes a target's requests are signed with, as one closed, tagged config enum
//! ([`AuthConfig`]) and one signer ([`Auth`]). Basic, bearer and OAuth 1.0a sign from a secret;
//! the token schemes are each a [`TokenSource`] behind one [`CachedBearer`]. Credentials come
//! from the shared secret cache and are never printed; time comes from the injected clock.

mod airflow_token;
mod basic;
mod bearer;
mod google;
mod google_iam;
mod google_key;
mod google_metadata;
mod google_sts;
mod oauth1;
mod oauth2;
mod sigv4;
mod token;

use std::sync::Mutex;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use crate::clock::Clock;
use crate::http::{Request, Transport};
use crate::secrets::{SecretCache, SecretsError};

pub use basic::PasswordConfig;
pub use bearer::BearerConfig;
pub use google::{GoogleAccessTokenConfig, GoogleIdTokenConfig};
pub use oauth1::{OAuth1Config, Placement, sign_oauth1};
pub use oauth2::{ClientAuth, OAuth2Config};
pub use sigv4::{SigV4, aws_credentials, aws_region};
pub use token::{CachedBearer, EXPIRY_MARGIN, FALLBACK_LIFETIME, Token, TokenSource, Wanted};

/// The scope Composer, Workflows and most Google APIs want.
pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// `auth:` in a target's configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// No credentials.
    None,
    /// HTTP Basic from a JSON secret's two fields.
    Basic(PasswordConfig),
    /// A static bearer token from a secret.
    Bearer(BearerConfig),
    /// Airflow 3: exchange username/password at `POST {base_url}/auth/token` for a JWT.
    AirflowToken(PasswordConfig),
    /// OAuth 1.0a HMAC-SHA1, consumer key and secret only (Alteryx Gallery API v1).
    Oauth1(OAuth1Config),
    /// OAuth 2.0 client credentials (Alteryx API v3, any token endpoint).
    Oauth2(OAuth2Config),
    /// A Google OAuth 2.0 access token (Composer 2/3, Workflows), from a service-account key
    /// or Workload Identity Federation.
    GoogleAccessToken(GoogleAccessTokenConfig),
    /// A Google OIDC ID token (Airflow behind Identity-Aware Proxy, Composer 1).
    GoogleIdToken(GoogleIdTokenConfig),
    /// AWS Signature Version 4 with the function's own role (MWAA, API Gateway or Lambda
    /// function URLs with IAM auth): no secret.
    AwsSigv4(Sigv4Config),
}

/// `auth: { aws_sigv4: { service, region } }`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Sigv4Config {
    /// The signing name: `execute-api` (API Gateway), `lambda` (function URLs), `airflow`.
    pub service: String,
    /// The region; default the function's (`AWS_REGION`).
    pub region: Option<String>,
}

/// Which scheme an [`AuthConfig`] is, without its settings: what targets declare they accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// `none`
    None,
    /// `basic`
    Basic,
    /// `bearer`
    Bearer,
    /// `airflow_token`
    AirflowToken,
    /// `oauth1`
    Oauth1,
    /// `oauth2`
    Oauth2,
    /// `google_access_token`
    GoogleAccessToken,
    /// `google_id_token`
    GoogleIdToken,
    /// `aws_sigv4`
    AwsSigv4,
}

impl AuthKind {
    /// Every scheme.
    pub const ALL: &[AuthKind] = &[
        AuthKind::None,
        AuthKind::Basic,
        AuthKind::Bearer,
        AuthKind::AirflowToken,
        AuthKind::Oauth1,
        AuthKind::Oauth2,
        AuthKind::GoogleAccessToken,
        AuthKind::GoogleIdToken,
        AuthKind::AwsSigv4,
    ];

    /// The scheme's name as written in configuration.
    pub fn name(self) -> &'static str {
        match self {
            AuthKind::None => "none",
            AuthKind::Basic => "basic",
            AuthKind::Bearer => "bearer",
            AuthKind::AirflowToken => "airflow_token",
            AuthKind::Oauth1 => "oauth1",
            AuthKind::Oauth2 => "oauth2",
            AuthKind::GoogleAccessToken => "google_access_token",
            AuthKind::GoogleIdToken => "google_id_token",
            AuthKind::AwsSigv4 => "aws_sigv4",
        }
    }
}

impl AuthConfig {
    /// A token endpoint fixed in configuration, if the scheme has one.
    pub fn token_url(&self) -> Option<&str> {
        match self {
            AuthConfig::Oauth2(config) => config.token_url.as_deref(),
            _ => None,
        }
    }

    /// Which scheme this is.
    pub fn kind(&self) -> AuthKind {
        match self {
            AuthConfig::None => AuthKind::None,
            AuthConfig::Basic(_) => AuthKind::Basic,
            AuthConfig::Bearer(_) => AuthKind::Bearer,
            AuthConfig::AirflowToken(_) => AuthKind::AirflowToken,
            AuthConfig::Oauth1(_) => AuthKind::Oauth1,
            AuthConfig::Oauth2(_) => AuthKind::Oauth2,
            AuthConfig::GoogleAccessToken(_) => AuthKind::GoogleAccessToken,
            AuthConfig::GoogleIdToken(_) => AuthKind::GoogleIdToken,
            AuthConfig::AwsSigv4(_) => AuthKind::AwsSigv4,
        }
    }

    /// The scheme's name as written in configuration.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// Checks what serde cannot: a Google scheme names exactly one credential source. The
    /// error names the field under the scheme and what is wrong.
    pub fn check(&self) -> Result<(), (String, String)> {
        let (secret, metadata_server) = match self {
            AuthConfig::GoogleAccessToken(config) => (&config.secret, config.metadata_server),
            AuthConfig::GoogleIdToken(config) => (&config.secret, config.metadata_server),
            _ => return Ok(()),
        };
        google::check_source(secret.as_deref(), metadata_server)
            .map_err(|reason| (self.name().to_owned(), reason))
    }

    /// The secret ids this scheme reads.
    pub fn secret_ids(&self) -> Vec<&str> {
        let id = match self {
            AuthConfig::None | AuthConfig::AwsSigv4(_) => return Vec::new(),
            AuthConfig::Basic(config) => &config.secret,
            AuthConfig::Bearer(config) => &config.secret,
            AuthConfig::AirflowToken(config) => &config.secret,
            AuthConfig::Oauth1(config) => &config.secret,
            AuthConfig::Oauth2(config) => &config.secret,
            AuthConfig::GoogleAccessToken(config) => {
                return config.secret.iter().map(String::as_str).collect();
            }
            AuthConfig::GoogleIdToken(config) => {
                return config.secret.iter().map(String::as_str).collect();
            }
        };
        vec![id.as_str()]
    }
}

/// What signing may use, for one request.
pub struct SignContext<'a> {
    /// Shared secret cache.
    pub secrets: &'a SecretCache,
    /// How token requests leave (and whether they do at all: a dry run fetches no token).
    pub transport: &'a dyn Transport,
    /// Wall-clock time, for timestamps and token expiry.
    pub clock: &'a dyn Clock,
    /// The target's API root; token endpoints default to paths under it.
    pub root: &'a Url,
    /// Time limit of one token request.
    pub timeout: Duration,
    /// Which invocation this is: refused credentials are remembered for its rest.
    pub invocation: u64,
}

/// Why a request could not be signed.
#[derive(Debug, Clone, thiserror::Error)]
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
    /// The target refused these credentials earlier in this invocation: not sent again, so a
    /// batch with a wrong password costs one failed login, not one per record.
    #[error("not sent: the target refused these credentials earlier in this invocation ({reason})")]
    RefusedEarlier {
        /// The target's answer then.
        reason: String,
    },
}

impl AuthError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            AuthError::Secret(error) => error.is_retryable(),
            AuthError::TokenUnavailable { .. } => true,
            AuthError::TokenRefused { .. } | AuthError::RefusedEarlier { .. } => false,
        }
    }
}

/// Credentials refused during one invocation, remembered until the next one begins.
#[derive(Debug, Default)]
struct Refusal(Mutex<Option<(u64, AuthError)>>);

impl Refusal {
    fn get(&self, invocation: u64) -> Option<AuthError> {
        let remembered = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match remembered.as_ref() {
            Some((when, error)) if *when == invocation => Some(error.clone()),
            _ => None,
        }
    }

    fn set(&self, invocation: u64, error: AuthError) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((invocation, error));
    }
}

/// A configured signer: one per target, living across warm invocations (token schemes keep
/// their token in it).
#[derive(Debug)]
pub struct Auth {
    scheme: Scheme,
    refusal: Refusal,
}

#[derive(Debug)]
enum Scheme {
    None,
    Basic(basic::Basic),
    Bearer(bearer::Bearer),
    OAuth1(oauth1::OAuth1),
    Token(CachedBearer),
    SigV4(Sigv4Config),
}

impl Auth {
    /// Builds the signer.
    pub fn new(config: &AuthConfig) -> Auth {
        let scheme = match config {
            AuthConfig::None => Scheme::None,
            AuthConfig::Basic(config) => Scheme::Basic(basic::Basic::new(config.clone())),
            AuthConfig::Bearer(config) => Scheme::Bearer(bearer::Bearer::new(config.clone())),
            AuthConfig::Oauth1(config) => Scheme::OAuth1(oauth1::OAuth1::new(config.clone())),
            AuthConfig::AirflowToken(config) => Scheme::Token(CachedBearer::new(Box::new(
                airflow_token::AirflowToken::new(config.clone()),
            ))),
            AuthConfig::Oauth2(config) => Scheme::Token(CachedBearer::new(Box::new(
                oauth2::OAuth2::new(config.clone()),
            ))),
            AuthConfig::GoogleAccessToken(config) => Scheme::Token(CachedBearer::new(Box::new(
                google::Google::access(config.clone()),
            ))),
            AuthConfig::GoogleIdToken(config) => Scheme::Token(CachedBearer::new(Box::new(
                google::Google::id(config.clone()),
            ))),
            AuthConfig::AwsSigv4(config) => Scheme::SigV4(config.clone()),
        };
        Auth {
            scheme,
            refusal: Refusal::default(),
        }
    }

    /// Signs `request`, unless these credentials were refused earlier in this invocation.
    pub async fn sign(&self, request: &mut Request, cx: &SignContext<'_>) -> Result<(), AuthError> {
        if let Some(error) = self.refusal.get(cx.invocation) {
            return Err(error);
        }
        match &self.scheme {
            Scheme::None => Ok(()),
            Scheme::Basic(auth) => auth.sign(request, cx).await,
            Scheme::Bearer(auth) => auth.sign(request, cx).await,
            Scheme::OAuth1(auth) => auth.sign(request, cx).await,
            Scheme::Token(auth) => auth.sign(request, cx, &self.refusal).await,
            Scheme::SigV4(config) => sigv4::sign_as_role(config, request, cx).await,
        }
    }

    /// Whether a 401 may be cured by signing again: token schemes can drop their token.
    pub fn refreshable(&self) -> bool {
        matches!(self.scheme, Scheme::Token(_))
    }

    /// Called when the target answered 401: drops a cached token.
    pub async fn refresh(&self) {
        if let Scheme::Token(auth) = &self.scheme {
            auth.invalidate().await;
        }
    }

    /// Remembers, for the rest of `invocation`, that the target refused these credentials.
    pub fn refused(&self, invocation: u64, reason: &str) {
        if matches!(self.scheme, Scheme::None) {
            return;
        }
        let reason = reason.to_owned();
        self.refusal
            .set(invocation, AuthError::RefusedEarlier { reason });
    }
}
