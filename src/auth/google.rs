//! Signing: Google OAuth 2.0 access tokens and OIDC ID tokens, minted from AWS without a
//! metadata server. Two credential kinds, both read from a secret holding Google's JSON:
//!
//! - `"type": "service_account"` (a key file): an RS256 JWT assertion (RFC 7523) with `iss` =
//!   the client email, `aud` = the key's `token_uri`, and either `scope` (access token) or
//!   `target_audience` (ID token), exchanged at `token_uri` with the `jwt-bearer` grant.
//! - `"type": "external_account"` with `credential_source.environment_id = "aws1"` (Workload
//!   Identity Federation, no stored key): see [`super::google_wif`].
//!
//! Tokens are cached until 60 s before they expire and dropped on a 401.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::token_cache::{Fetched, TokenCache};
use super::{AuthContext, AuthError, google_wif, request_token};
use crate::request::Request;
use crate::secrets::SecretString;

/// The scope Composer, Workflows and most Google APIs want.
pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// `auth: { google_access_token: { secret, field, scopes } }`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GoogleAccessTokenConfig {
    /// Secret holding the credential JSON (service-account key or external-account config).
    pub secret: String,
    /// Field of a JSON secret holding the credential JSON; default: the whole secret.
    pub field: Option<String>,
    /// Scopes; default `https://www.googleapis.com/auth/cloud-platform`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
}

/// `auth: { google_id_token: { secret, field, audience } }`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GoogleIdTokenConfig {
    /// Secret holding the credential JSON.
    pub secret: String,
    /// Field of a JSON secret holding the credential JSON; default: the whole secret.
    pub field: Option<String>,
    /// The token's audience: for Identity-Aware Proxy, the IAP OAuth client id.
    pub audience: String,
}

fn default_scopes() -> Vec<String> {
    vec![CLOUD_PLATFORM.to_owned()]
}

/// Which token to mint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// An OAuth 2.0 access token with these scopes.
    Access(Vec<String>),
    /// An OIDC ID token for this audience.
    Id(String),
}

/// Google token signer with its cache.
#[derive(Debug)]
pub struct Google {
    secret: String,
    field: Option<String>,
    kind: TokenKind,
    cache: TokenCache,
}

/// A service-account key file's fields we use.
#[derive(Deserialize)]
struct ServiceAccountKey {
    client_email: String,
    private_key: String,
    private_key_id: Option<String>,
    token_uri: String,
}

#[derive(Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_audience: Option<&'a str>,
}

impl Google {
    /// Access tokens.
    pub fn access(config: GoogleAccessTokenConfig) -> Self {
        Google {
            secret: config.secret,
            field: config.field,
            kind: TokenKind::Access(config.scopes),
            cache: TokenCache::default(),
        }
    }

    /// ID tokens.
    pub fn id(config: GoogleIdTokenConfig) -> Self {
        Google {
            secret: config.secret,
            field: config.field,
            kind: TokenKind::Id(config.audience),
            cache: TokenCache::default(),
        }
    }

    pub(super) async fn apply(
        &self,
        request: &mut Request,
        cx: &AuthContext<'_>,
    ) -> Result<(), AuthError> {
        let credentials = cx
            .secrets
            .field(&self.secret, self.field.as_deref())
            .await?;
        if cx.dry_run {
            let (kind, parsed) = self.parse(&credentials)?;
            let from = match kind.as_str() {
                "service_account" => parsed.get("token_uri"),
                _ => parsed.get("token_url"),
            };
            let from = from
                .and_then(Value::as_str)
                .and_then(|url| Url::parse(url).ok())
                .ok_or_else(|| self.bad_credentials("has no valid token URL"))?;
            request.set_header("authorization", super::dry_run_bearer(&from));
            return Ok(());
        }
        // The credential JSON is parsed only when a token must be minted, not per request.
        let token = self
            .cache
            .get(|| async {
                let (kind, parsed) = self.parse(&credentials)?;
                match kind.as_str() {
                    "service_account" => self.exchange_key(cx.http, parsed).await,
                    "external_account" => {
                        google_wif::token(cx.http, &parsed, &self.kind, &self.secret).await
                    }
                    other => Err(self.bad_credentials(&format!(
                        "has type {other:?}; expected \"service_account\" or \"external_account\""
                    ))),
                }
            })
            .await?;
        request.set_header("authorization", super::bearer::header(&token));
        Ok(())
    }

    pub(super) async fn invalidate(&self) {
        self.cache.invalidate().await;
    }

    /// The credential JSON and its `type`.
    fn parse(&self, credentials: &SecretString) -> Result<(String, Value), AuthError> {
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

    /// Service-account key: sign an assertion, exchange it at the key's `token_uri`.
    async fn exchange_key(&self, http: &reqwest::Client, key: Value) -> Result<Fetched, AuthError> {
        let key: ServiceAccountKey = serde_json::from_value(key)
            .map_err(|e| self.bad_credentials(&format!("are not a service-account key: {e}")))?;
        let token_uri = Url::parse(&key.token_uri)
            .map_err(|_| self.bad_credentials("have an invalid token_uri"))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let assertion =
            sign_assertion(&key, &self.kind, now).map_err(|e| self.bad_credentials(&e))?;
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
            .append_pair("assertion", assertion.expose())
            .finish();
        let builder = http
            .post(token_uri.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form);
        let refused = format!(
            "Google refused the service account {} (secret {:?})",
            key.client_email, self.secret
        );
        let answer = request_token(builder, &token_uri, &refused).await?;
        token_from_answer(&answer, &self.kind, &token_uri)
    }
}

/// The signed RS256 assertion for a service-account key at time `now` (seconds since the epoch).
fn sign_assertion(
    key: &ServiceAccountKey,
    kind: &TokenKind,
    now: u64,
) -> Result<SecretString, String> {
    let claims = Assertion {
        iss: &key.client_email,
        aud: &key.token_uri,
        iat: now,
        exp: now + 3600,
        scope: match kind {
            TokenKind::Access(scopes) => Some(scopes.join(" ")),
            TokenKind::Id(_) => None,
        },
        target_audience: match kind {
            TokenKind::Id(audience) => Some(audience),
            TokenKind::Access(_) => None,
        },
    };
    let mut header = Header::new(Algorithm::RS256);
    header.kid = key.private_key_id.clone();
    let signing_key = EncodingKey::from_rsa_pem(key.private_key.as_bytes())
        .map_err(|_| "have a private_key that is not an RSA PEM key".to_owned())?;
    jsonwebtoken::encode(&header, &claims, &signing_key)
        .map(SecretString::new)
        .map_err(|e| format!("could not be used to sign: {e}"))
}

/// An access token (`access_token`, `expires_in`) or an ID token (`id_token`, its `exp`).
pub(super) fn token_from_answer(
    answer: &Value,
    kind: &TokenKind,
    url: &Url,
) -> Result<Fetched, AuthError> {
    let field = match kind {
        TokenKind::Access(_) => "access_token",
        TokenKind::Id(_) => "id_token",
    };
    let token = answer
        .get(field)
        .and_then(Value::as_str)
        .map(SecretString::new)
        .ok_or_else(|| AuthError::TokenRefused {
            url: url.to_string(),
            message: format!("answer has no {field}"),
        })?;
    let lifetime = match kind {
        TokenKind::Access(_) => answer
            .get("expires_in")
            .and_then(Value::as_u64)
            .map(Duration::from_secs),
        TokenKind::Id(_) => super::airflow_token::jwt_lifetime(token.expose()),
    };
    Ok(Fetched { token, lifetime })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    /// A throwaway 2048-bit key, generated for these tests only.
    const TEST_KEY: &str = include_str!("../../tests/fixtures/test-rsa-key.pem");

    fn key() -> ServiceAccountKey {
        ServiceAccountKey {
            client_email: "trigger@test-project.iam.gserviceaccount.com".into(),
            private_key: TEST_KEY.into(),
            private_key_id: Some("kid-1".into()),
            token_uri: "https://oauth2.googleapis.com/token".into(),
        }
    }

    fn claims(jwt: &str) -> (Value, Value) {
        let mut parts = jwt.split('.');
        let header =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap())
                .unwrap();
        let claims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap())
                .unwrap();
        (header, claims)
    }

    #[test]
    fn access_token_assertion_claims() {
        let jwt =
            sign_assertion(&key(), &TokenKind::Access(default_scopes()), 1_700_000_000).unwrap();
        let (header, claims) = claims(jwt.expose());
        assert_eq!(
            header,
            serde_json::json!({"typ": "JWT", "alg": "RS256", "kid": "kid-1"})
        );
        assert_eq!(
            claims,
            serde_json::json!({
                "iss": "trigger@test-project.iam.gserviceaccount.com",
                "aud": "https://oauth2.googleapis.com/token",
                "iat": 1_700_000_000u64,
                "exp": 1_700_003_600u64,
                "scope": CLOUD_PLATFORM,
            })
        );
    }

    #[test]
    fn id_token_assertion_has_target_audience_and_no_scope() {
        let kind = TokenKind::Id("1234-abc.apps.googleusercontent.com".into());
        let jwt = sign_assertion(&key(), &kind, 1_700_000_000).unwrap();
        let (_, claims) = claims(jwt.expose());
        assert_eq!(
            claims["target_audience"],
            "1234-abc.apps.googleusercontent.com"
        );
        assert!(claims.get("scope").is_none());
    }

    #[test]
    fn a_bad_private_key_is_a_clear_error_without_the_key() {
        let mut bad = key();
        bad.private_key = "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n".into();
        let err = sign_assertion(&bad, &TokenKind::Access(default_scopes()), 0).unwrap_err();
        assert!(err.contains("not an RSA PEM key"), "{err}");
    }
}
