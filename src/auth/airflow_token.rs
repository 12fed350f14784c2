//! Auth: Airflow 3's token exchange, a [`TokenSource`]. `POST {base_url}/auth/token` with a
//! username and password gives a JWT, which expires at its `exp`.

use futures_util::future::BoxFuture;
use reqwest::Url;

use super::basic::PasswordConfig;
use super::token::{self, Token, TokenSource};
use super::{AuthError, SignContext};
use crate::http::{Body, Request, join};
use crate::secrets::SecretString;

/// Airflow 3 token exchange.
#[derive(Debug)]
pub(super) struct AirflowToken {
    config: PasswordConfig,
}

impl AirflowToken {
    pub(super) fn new(config: PasswordConfig) -> Self {
        AirflowToken { config }
    }

    /// The username and password, and the token endpoint under the target's root.
    async fn credentials(
        &self,
        cx: &SignContext<'_>,
    ) -> Result<(SecretString, SecretString, Url), AuthError> {
        let [username, password] = self.config.read(cx.secrets).await?;
        Ok((username, password, join(cx.root, &["auth", "token"])))
    }

    async fn exchange(&self, cx: &SignContext<'_>) -> Result<Token, AuthError> {
        let (username, password, url) = self.credentials(cx).await?;
        let body =
            serde_json::json!({ "username": username.expose(), "password": password.expose() });
        let request = Request::post(
            url,
            Body::Secret {
                content_type: "application/json",
                text: SecretString::new(body.to_string()),
            },
        );
        let refused = format!(
            "Airflow did not accept the username and password from secret {:?}",
            self.config.secret
        );
        let answer = token::exchange(cx, &request, &refused).await?;
        let value = token::field(&answer, "access_token", &request.url)?;
        let expires_at = token::jwt_expiry(value.expose());
        Ok(Token { value, expires_at })
    }
}

impl TokenSource for AirflowToken {
    fn fetch<'a>(&'a self, cx: &'a SignContext<'_>) -> BoxFuture<'a, Result<Token, AuthError>> {
        Box::pin(self.exchange(cx))
    }

    fn origin<'a>(&'a self, cx: &'a SignContext<'_>) -> BoxFuture<'a, Result<Url, AuthError>> {
        Box::pin(async move { Ok(self.credentials(cx).await?.2) })
    }
}
