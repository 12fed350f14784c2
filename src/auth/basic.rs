//! Auth: HTTP Basic (RFC 7617) from a JSON secret's username and password fields.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::{AuthError, SignContext};
use crate::http::{HeaderValue, Request};
use crate::secrets::{SecretCache, SecretString, SecretsError};

/// A username and password in a JSON secret: `auth: { basic: {...} }` and
/// `auth: { airflow_token: {...} }` both read one.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfig {
    /// Secret id (name or ARN).
    pub secret: String,
    /// Field holding the user name (default `username`).
    #[serde(default = "default_username_field")]
    pub username_field: String,
    /// Field holding the password (default `password`).
    #[serde(default = "default_password_field")]
    pub password_field: String,
}

impl PasswordConfig {
    /// The username and password.
    pub(super) async fn read(
        &self,
        secrets: &SecretCache,
    ) -> Result<[SecretString; 2], SecretsError> {
        secrets
            .fields(&self.secret, [&self.username_field, &self.password_field])
            .await
    }
}

fn default_username_field() -> String {
    "username".to_owned()
}

fn default_password_field() -> String {
    "password".to_owned()
}

/// HTTP Basic auth.
#[derive(Debug)]
pub struct Basic {
    config: PasswordConfig,
}

impl Basic {
    /// From configuration.
    pub fn new(config: PasswordConfig) -> Self {
        Basic { config }
    }

    pub(super) async fn sign(
        &self,
        request: &mut Request,
        cx: &SignContext<'_>,
    ) -> Result<(), AuthError> {
        let [username, password] = self.config.read(cx.secrets).await?;
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
