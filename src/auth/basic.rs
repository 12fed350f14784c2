//! Auth: HTTP Basic (RFC 7617) from a JSON secret's username and password fields.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::{AuthError, SignContext};
use crate::http::{HeaderValue, Request};
use crate::secrets::SecretString;

/// `auth: { basic: { secret, username_field, password_field } }`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BasicConfig {
    /// Secret id (name or ARN).
    pub secret: String,
    /// Field holding the user name (default `username`).
    #[serde(default = "super::default_username_field")]
    pub username_field: String,
    /// Field holding the password (default `password`).
    #[serde(default = "super::default_password_field")]
    pub password_field: String,
}

/// HTTP Basic auth.
#[derive(Debug)]
pub struct Basic {
    config: BasicConfig,
}

impl Basic {
    /// From configuration.
    pub fn new(config: BasicConfig) -> Self {
        Basic { config }
    }

    pub(super) async fn sign(
        &self,
        request: &mut Request,
        cx: &SignContext<'_>,
    ) -> Result<(), AuthError> {
        let secret = cx.secrets.get(&self.config.secret).await?;
        let username = secret.field(Some(&self.config.username_field))?;
        let password = secret.field(Some(&self.config.password_field))?;
        request.set_header("authorization", header(&username, &password));
        Ok(())
    }
}

/// `Authorization: Basic base64(user:password)`, shown as `Basic ****`.
pub(crate) fn header(username: &SecretString, password: &SecretString) -> HeaderValue {
    let pair = format!("{}:{}", username.expose(), password.expose());
    HeaderValue::Secret {
        value: SecretString::new(format!("Basic {}", STANDARD.encode(pair))),
        shown: "Basic ****".to_owned(),
    }
}
