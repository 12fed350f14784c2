//! Signing: OAuth 2.0 client credentials (RFC 6749 §4.4). The client id and secret come from a
//! secret; the access token is cached until shortly before `expires_in` and dropped on a 401.
//! Used by Alteryx Server's API v3 (`{webapi}/oauth2/token`) and by any target with a token URL.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;

use super::token_cache::{Fetched, TokenCache};
use super::{AuthContext, AuthError, request_token};
use crate::request::Request;
use crate::target::join;

/// How the client authenticates at the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form body (what Alteryx Server expects).
    #[default]
    Form,
    /// HTTP Basic with the client id and secret.
    Basic,
}

/// `auth: { oauth2: { secret, client_id_field, client_secret_field, token_url, scope, client_auth } }`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Config {
    /// Secret id (name or ARN) holding the client id and secret.
    pub secret: String,
    /// Field holding the client id (default `client_id`).
    #[serde(default = "default_client_id_field")]
    pub client_id_field: String,
    /// Field holding the client secret (default `client_secret`).
    #[serde(default = "default_client_secret_field")]
    pub client_secret_field: String,
    /// Token endpoint; default `oauth2/token` under the target's base URL (Alteryx's
    /// `{server}/webapi/oauth2/token`).
    pub token_url: Option<String>,
    /// Requested scope, if the server wants one.
    pub scope: Option<String>,
    /// `form` (default) or `basic`.
    #[serde(default)]
    pub client_auth: ClientAuth,
}

fn default_client_id_field() -> String {
    "client_id".to_owned()
}

fn default_client_secret_field() -> String {
    "client_secret".to_owned()
}

/// OAuth 2.0 client-credentials signer with its token cache.
#[derive(Debug)]
pub struct OAuth2 {
    config: OAuth2Config,
    cache: TokenCache,
}

impl OAuth2 {
    /// From configuration (the token URL is checked when the target is built).
    pub fn new(config: OAuth2Config) -> Self {
        OAuth2 {
            config,
            cache: TokenCache::default(),
        }
    }

    fn token_url(&self, base_url: &Url) -> Result<Url, AuthError> {
        match &self.config.token_url {
            Some(url) => Url::parse(url).map_err(|e| AuthError::TokenRefused {
                url: url.clone(),
                message: format!("invalid token_url: {e}"),
            }),
            None => Ok(join(base_url, &["oauth2", "token"])),
        }
    }

    pub(super) async fn apply(
        &self,
        request: &mut Request,
        cx: &AuthContext<'_>,
    ) -> Result<(), AuthError> {
        let secret = cx.secrets.get(&self.config.secret).await?;
        let client_id = secret.field(Some(&self.config.client_id_field))?;
        let client_secret = secret.field(Some(&self.config.client_secret_field))?;
        let token_url = self.token_url(cx.base_url)?;
        if cx.dry_run {
            request.set_header("authorization", super::dry_run_bearer(&token_url));
            return Ok(());
        }
        let token = self
            .cache
            .get(|| async {
                let mut form = form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "client_credentials");
                if let Some(scope) = &self.config.scope {
                    form.append_pair("scope", scope);
                }
                let mut builder = cx.http.post(token_url.clone());
                match self.config.client_auth {
                    ClientAuth::Form => {
                        form.append_pair("client_id", client_id.expose());
                        form.append_pair("client_secret", client_secret.expose());
                    }
                    ClientAuth::Basic => {
                        // RFC 6749 §2.3.1: both parts form-encoded before joining.
                        let encode = |s: &str| {
                            form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                        };
                        let pair = format!(
                            "{}:{}",
                            encode(client_id.expose()),
                            encode(client_secret.expose())
                        );
                        builder = builder
                            .header("authorization", format!("Basic {}", STANDARD.encode(pair)));
                    }
                }
                let builder = builder
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("accept", "application/json")
                    .body(form.finish());
                let refused = format!(
                    "the token endpoint refused the client id and secret from secret {:?}",
                    self.config.secret
                );
                let answer = request_token(builder, &token_url, &refused).await?;
                let token = super::access_token(&answer, &token_url)?;
                let lifetime = expires_in(&answer)
                    .or_else(|| super::airflow_token::jwt_lifetime(token.expose()));
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

/// `expires_in` as a number or a numeric string (some servers send one, some the other).
fn expires_in(answer: &Value) -> Option<Duration> {
    let value = answer.get("expires_in")?;
    let seconds = value
        .as_u64()
        .or_else(|| value.as_str()?.trim().parse().ok())?;
    Some(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_expires_in_either_way() {
        assert_eq!(
            expires_in(&json!({"expires_in": 3600})),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            expires_in(&json!({"expires_in": "1800"})),
            Some(Duration::from_secs(1800))
        );
        assert_eq!(expires_in(&json!({"token_type": "bearer"})), None);
    }

    #[test]
    fn default_token_url_is_under_the_base() {
        let auth = OAuth2::new(OAuth2Config {
            secret: "s".into(),
            client_id_field: "id".into(),
            client_secret_field: "secret".into(),
            token_url: None,
            scope: None,
            client_auth: ClientAuth::Form,
        });
        let base = Url::parse("https://alteryx.example.com/webapi/").unwrap();
        assert_eq!(
            auth.token_url(&base).unwrap().as_str(),
            "https://alteryx.example.com/webapi/oauth2/token"
        );
    }
}
