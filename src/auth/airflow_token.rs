//! Signing: Airflow 3's token exchange. `POST {base_url}/auth/token` with a username and
//! password gives a JWT, cached until shortly before its `exp` and dropped on a 401.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::token_cache::{Fetched, TokenCache};
use super::{AuthContext, AuthError, request_token};
use crate::request::Request;
use crate::target::join;

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

/// Airflow 3 token exchange with a token cache shared by all invocations of a warm container.
#[derive(Debug)]
pub struct AirflowToken {
    config: AirflowTokenConfig,
    cache: TokenCache,
}

impl AirflowToken {
    /// From configuration.
    pub fn new(config: AirflowTokenConfig) -> Self {
        AirflowToken {
            config,
            cache: TokenCache::default(),
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
        let token_url = join(cx.base_url, &["auth", "token"]);
        if cx.dry_run {
            request.set_header("authorization", super::dry_run_bearer(&token_url));
            return Ok(());
        }
        let token = self
            .cache
            .get(|| async {
                let body = serde_json::json!({ "username": username.expose(), "password": password.expose() });
                let answer = request_token(
                    cx.http.post(token_url.clone()).json(&body),
                    &token_url,
                    &format!("Airflow did not accept the username and password from secret {:?}", self.config.secret),
                )
                .await?;
                let token = super::access_token(&answer, &token_url)?;
                let lifetime = jwt_lifetime(token.expose());
                Ok(Fetched { token, lifetime })
            })
            .await?;
        request.set_header("authorization", super::bearer::header(&token));
        Ok(())
    }

    pub(super) async fn invalidate(&self) {
        self.cache.invalidate().await;
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
}
