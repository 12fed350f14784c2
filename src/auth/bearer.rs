//! Auth: a static bearer token (RFC 6750) from a secret.

use serde::Deserialize;

use super::{AuthError, SignContext};
use crate::http::{HeaderValue, Request};
use crate::secrets::SecretString;

/// `auth: { bearer: { secret, field } }`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BearerConfig {
    /// Secret id (name or ARN).
    pub secret: String,
    /// Field holding the token. Default `token`; a secret that is a plain string (not a JSON
    /// object) is the token itself.
    pub field: Option<String>,
}

/// Static bearer token.
#[derive(Debug)]
pub struct Bearer {
    config: BearerConfig,
}

impl Bearer {
    /// From configuration.
    pub fn new(config: BearerConfig) -> Self {
        Bearer { config }
    }

    pub(super) async fn sign(
        &self,
        request: &mut Request,
        cx: &SignContext<'_>,
    ) -> Result<(), AuthError> {
        let secret = cx.secrets.get(&self.config.secret).await?;
        let token = match &self.config.field {
            Some(field) => secret.field(Some(field))?,
            None if secret.is_json() => secret.field(Some("token"))?,
            None => secret.field(None)?,
        };
        request.set_header("authorization", header(&token));
        Ok(())
    }
}

/// `Authorization: Bearer <token>`, shown as `Bearer ****`. Blanks around the token (a secret
/// pasted with a trailing space) are dropped: a server reads the header without them (RFC 9110
/// §5.5, RFC 7235 `1*SP`), so that is the token an echoing answer quotes, and the one the
/// transport must find to scrub it.
pub(crate) fn header(token: &SecretString) -> HeaderValue {
    HeaderValue::Secret {
        value: SecretString::new(format!("Bearer {}", token.expose().trim())),
        shown: "Bearer ****".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blanks_around_the_token_are_not_sent() {
        let HeaderValue::Secret { value, shown } = header(&SecretString::new(" t0k3n/+= \t"))
        else {
            panic!("a secret header")
        };
        assert_eq!(value.expose(), "Bearer t0k3n/+=");
        assert_eq!(shown, "Bearer ****");
    }
}
