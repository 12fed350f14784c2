//! Signing: Airflow 3's token exchange. `POST {base_url}/auth/token` with a username and
//! password gives a JWT, cached until shortly before its `exp` and dropped on a 401.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Url;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{AuthContext, AuthError};
use crate::request::{HeaderValue, Request};
use crate::secrets::SecretString;

/// Refresh this long before the token's `exp`.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// Lifetime assumed for a token whose `exp` cannot be read.
const FALLBACK_LIFETIME: Duration = Duration::from_secs(300);

/// `auth: { airflow_token: { secret, username_field, password_field } }`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AirflowTokenConfig {
    /// Secret id (name or ARN).
    pub secret: String,
    /// Field holding the user name (default `username`).
    #[serde(default = "super::default_username_field")]
    pub username_field: String,
    /// Field holding the password (default `password`).
    #[serde(default = "super::default_password_field")]
    pub password_field: String,
}

#[derive(Debug)]
struct Token {
    value: SecretString,
    refresh_at: Instant,
}

/// Airflow 3 token exchange with a token cache shared by all invocations of a warm container.
#[derive(Debug)]
pub struct AirflowToken {
    config: AirflowTokenConfig,
    token_url: Url,
    cached: Mutex<Option<Token>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
}

impl AirflowToken {
    /// The token endpoint is `{base_url}/auth/token`.
    pub fn new(config: AirflowTokenConfig, base_url: &Url) -> Self {
        let mut token_url = base_url.clone();
        if let Ok(mut segments) = token_url.path_segments_mut() {
            segments.pop_if_empty().extend(["auth", "token"]);
        }
        AirflowToken {
            config,
            token_url,
            cached: Mutex::new(None),
        }
    }

    pub(super) async fn apply(
        &self,
        request: &mut Request,
        cx: &AuthContext<'_>,
    ) -> Result<(), AuthError> {
        let secret = cx.secrets.get(&self.config.secret).await?;
        let username = secret.field(Some(&self.config.username_field))?;
        let password = secret.field(Some(&self.config.password_field))?;
        if cx.dry_run {
            request.set_header(
                "authorization",
                HeaderValue::Secret {
                    value: SecretString::new(String::new()),
                    shown: format!("Bearer **** (from POST {})", self.token_url),
                },
            );
            return Ok(());
        }
        // Holding the lock across the exchange makes concurrent first uses wait for one request.
        let mut cached = self.cached.lock().await;
        let fresh = cached
            .as_ref()
            .filter(|token| Instant::now() < token.refresh_at);
        let value = match fresh {
            Some(token) => token.value.clone(),
            None => {
                let token = self.exchange(cx.http, &username, &password).await?;
                let value = token.value.clone();
                *cached = Some(token);
                value
            }
        };
        request.set_header("authorization", super::bearer::header(&value));
        Ok(())
    }

    pub(super) async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn exchange(
        &self,
        http: &reqwest::Client,
        username: &SecretString,
        password: &SecretString,
    ) -> Result<Token, AuthError> {
        let url = self.token_url.to_string();
        let body =
            serde_json::json!({ "username": username.expose(), "password": password.expose() });
        let response = http
            .post(self.token_url.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| AuthError::TokenUnavailable {
                url: url.clone(),
                message: crate::delivery::describe_transport_error(&e),
            })?;
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            return Err(AuthError::TokenUnavailable {
                url,
                message: format!("HTTP {status}"),
            });
        }
        if !status.is_success() {
            return Err(AuthError::TokenRefused {
                url,
                message: format!(
                    "HTTP {status}: Airflow did not accept the username and password from secret {:?}",
                    self.config.secret
                ),
            });
        }
        let parsed: TokenResponse = response.json().await.map_err(|e| AuthError::TokenRefused {
            url: url.clone(),
            message: format!("answer has no access_token: {e}"),
        })?;
        let lifetime = jwt_lifetime(&parsed.access_token).unwrap_or(FALLBACK_LIFETIME);
        Ok(Token {
            value: SecretString::new(parsed.access_token),
            refresh_at: Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN),
        })
    }
}

/// Time left until a JWT's `exp`, read without verifying the signature (we only need to know
/// when to ask again; the server verifies it).
pub(crate) fn jwt_lifetime(jwt: &str) -> Option<Duration> {
    #[derive(Deserialize)]
    struct Claims {
        exp: u64,
    }
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(claims.exp.saturating_sub(now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exp_from_an_unverified_jwt() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"admin","exp":{}}}"#, now + 3600));
        let jwt = format!("eyJhbGciOiJIUzUxMiJ9.{claims}.c2ln");
        let lifetime = jwt_lifetime(&jwt).unwrap();
        assert!(lifetime <= Duration::from_secs(3600) && lifetime >= Duration::from_secs(3590));
        assert_eq!(jwt_lifetime("not-a-jwt"), None);
        let expired = URL_SAFE_NO_PAD.encode(r#"{"exp":1}"#);
        assert_eq!(
            jwt_lifetime(&format!("a.{expired}.b")),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn token_url_is_under_the_base_url() {
        let config = AirflowTokenConfig {
            secret: "s".into(),
            username_field: "username".into(),
            password_field: "password".into(),
        };
        for base in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "https://h/airflow/",
        ] {
            let auth = AirflowToken::new(config.clone(), &Url::parse(base).unwrap());
            assert!(
                auth.token_url.as_str().ends_with("/auth/token"),
                "{}",
                auth.token_url
            );
            assert!(
                !auth.token_url.as_str().contains("//auth"),
                "{}",
                auth.token_url
            );
        }
    }
}
