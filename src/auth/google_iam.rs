//! Auth: Google Workload Identity Federation, second step. IAM Credentials turns a federated
//! token into the service account's access token (`generateAccessToken`) or ID token
//! (`generateIdToken`), at the `service_account_impersonation_url` of the configuration.

use chrono::DateTime;
use reqwest::Url;
use serde_json::{Value, json};

use super::token::{self, Token, Wanted};
use super::{AuthError, SignContext};
use crate::http::{Body, Request};
use crate::secrets::SecretString;

/// Impersonates the service account at `url` with the `federated` token.
pub(super) async fn impersonate(
    cx: &SignContext<'_>,
    url: &str,
    federated: &SecretString,
    wanted: &Wanted,
    secret: &str,
) -> Result<Token, AuthError> {
    let (url, body) = match wanted {
        Wanted::Access(scopes) => (
            url.to_owned(),
            json!({ "scope": scopes, "lifetime": "3600s" }),
        ),
        Wanted::Id(audience) => (
            url.replace(":generateAccessToken", ":generateIdToken"),
            json!({ "audience": audience, "includeEmail": true }),
        ),
    };
    let url = Url::parse(&url).map_err(|_| AuthError::TokenRefused {
        url: "(external account)".to_owned(),
        message: format!("secret {secret:?}: service_account_impersonation_url is not a URL"),
    })?;
    let mut request = Request::post(url, Body::Json(body));
    request.set_header("authorization", super::bearer::header(federated));
    let refusal = "IAM Credentials refused to impersonate the service account (does the pool's principal have \
                   roles/iam.workloadIdentityUser, and for ID tokens roles/iam.serviceAccountOpenIdTokenCreator?)";
    let answer = token::exchange(cx, &request, refusal).await?;
    read(&answer, wanted, &request.url)
}

/// `{"accessToken", "expireTime"}` or `{"token"}` (an ID token, expiring at its `exp`).
fn read(answer: &Value, wanted: &Wanted, url: &Url) -> Result<Token, AuthError> {
    Ok(match wanted {
        Wanted::Access(_) => Token {
            value: token::field(answer, "accessToken", url)?,
            expires_at: answer
                .get("expireTime")
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(std::time::SystemTime::from),
        },
        Wanted::Id(_) => {
            let value = token::field(answer, "token", url)?;
            let expires_at = token::jwt_expiry(value.expose());
            Token { value, expires_at }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn reads_both_answers() {
        let url = Url::parse("http://127.0.0.1:9/x").unwrap();
        let access = read(
            &json!({"accessToken": "ya29.x", "expireTime": "2026-11-30T12:00:00Z"}),
            &Wanted::Access(vec![]),
            &url,
        )
        .unwrap();
        assert_eq!(access.value.expose(), "ya29.x");
        assert_eq!(
            access.expires_at,
            Some(UNIX_EPOCH + Duration::from_secs(1_796_040_000))
        );
        let err = read(&json!({}), &Wanted::Id("aud".into()), &url).unwrap_err();
        assert_eq!(
            err.to_string(),
            "token request to http://127.0.0.1:9/x was refused: answer has no token"
        );
    }
}
