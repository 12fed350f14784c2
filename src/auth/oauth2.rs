//! Auth: OAuth 2.0 client credentials (RFC 6749 §4.4), a [`TokenSource`]. The client id and
//! secret come from a secret; the access token expires after `expires_in` (or at the `exp` of
//! a JWT token). Used by Alteryx Server's API v3 (`{webapi}/oauth2/token`) and by any target
//! with a token URL.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::future::BoxFuture;
use reqwest::Url;
use serde::Deserialize;

use super::token::{self, Token, TokenSource};
use super::{AuthError, SignContext};
use crate::http::{Body, HeaderValue, Request, join};
use crate::secrets::SecretString;

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
    /// Token endpoint; default `oauth2/token` under the target's API root (Alteryx's
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

/// OAuth 2.0 client-credentials token source.
#[derive(Debug)]
pub(super) struct OAuth2 {
    config: OAuth2Config,
}

impl OAuth2 {
    pub(super) fn new(config: OAuth2Config) -> Self {
        OAuth2 { config }
    }

    fn token_url(&self, root: &Url) -> Result<Url, AuthError> {
        match &self.config.token_url {
            Some(url) => Url::parse(url).map_err(|e| AuthError::TokenRefused {
                url: url.clone(),
                message: format!("invalid token_url: {e}"),
            }),
            None => Ok(join(root, &["oauth2", "token"])),
        }
    }

    /// The client id and secret, and the token endpoint.
    async fn credentials(
        &self,
        cx: &SignContext<'_>,
    ) -> Result<(SecretString, SecretString, Url), AuthError> {
        let config = &self.config;
        let [client_id, client_secret] = cx
            .secrets
            .fields(
                &config.secret,
                [&config.client_id_field, &config.client_secret_field],
            )
            .await?;
        Ok((client_id, client_secret, self.token_url(cx.root)?))
    }

    async fn exchange(&self, cx: &SignContext<'_>) -> Result<Token, AuthError> {
        let (client_id, client_secret, url) = self.credentials(cx).await?;
        let (form, basic) = self.form(&client_id, &client_secret);
        let mut request = Request::post(
            url,
            Body::Secret {
                content_type: "application/x-www-form-urlencoded",
                text: form,
            },
        );
        request.set_header("accept", HeaderValue::Plain("application/json".to_owned()));
        if let Some(basic) = basic {
            request.set_header("authorization", basic);
        }
        let refused = format!(
            "the token endpoint refused the client id and secret from secret {:?}",
            self.config.secret
        );
        let answer = token::exchange(cx, &request, &refused).await?;
        let value = token::field(&answer, "access_token", &request.url)?;
        let expires_at = token::expires_in(&answer, cx.clock.now())
            .or_else(|| token::jwt_expiry(value.expose()));
        Ok(Token { value, expires_at })
    }
}

impl OAuth2 {
    /// The token request's form, and the `Authorization` header when the client authenticates
    /// with HTTP Basic.
    fn form(
        &self,
        client_id: &SecretString,
        client_secret: &SecretString,
    ) -> (SecretString, Option<HeaderValue>) {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if let Some(scope) = &self.config.scope {
            form.append_pair("scope", scope);
        }
        let mut basic = None;
        match self.config.client_auth {
            ClientAuth::Form => {
                form.append_pair("client_id", client_id.expose());
                form.append_pair("client_secret", client_secret.expose());
            }
            ClientAuth::Basic => {
                // RFC 6749 §2.3.1: both parts form-encoded before joining.
                let encode =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let pair = format!(
                    "{}:{}",
                    encode(client_id.expose()),
                    encode(client_secret.expose())
                );
                basic = Some(HeaderValue::Secret {
                    value: SecretString::new(format!("Basic {}", STANDARD.encode(pair))),
                    shown: "Basic ****".to_owned(),
                });
            }
        }
        (SecretString::new(form.finish()), basic)
    }
}

impl TokenSource for OAuth2 {
    fn fetch<'a>(&'a self, cx: &'a SignContext<'_>) -> BoxFuture<'a, Result<Token, AuthError>> {
        Box::pin(self.exchange(cx))
    }

    fn origin<'a>(&'a self, cx: &'a SignContext<'_>) -> BoxFuture<'a, Result<Url, AuthError>> {
        Box::pin(async move { Ok(self.credentials(cx).await?.2) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_token_url_is_under_the_root() {
        let auth = OAuth2::new(OAuth2Config {
            secret: "s".into(),
            client_id_field: "id".into(),
            client_secret_field: "secret".into(),
            token_url: None,
            scope: None,
            client_auth: ClientAuth::Form,
        });
        let root = Url::parse("https://alteryx.example.com/webapi/").unwrap();
        assert_eq!(
            auth.token_url(&root).unwrap().as_str(),
            "https://alteryx.example.com/webapi/oauth2/token"
        );
    }
}
