//! Auth: a Google service-account key (RFC 7523). An RS256 JWT assertion with `iss` = the
//! client email, `aud` = the key's `token_uri`, one hour, and either `scope` (access token) or
//! `target_audience` (ID token), exchanged at `token_uri` with the `jwt-bearer` grant.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::token::{self, Token, Wanted};
use super::{AuthError, SignContext};
use crate::http::{Body, Request};
use crate::secrets::SecretString;

/// A service-account key file's fields we use.
#[derive(Deserialize)]
pub(super) struct ServiceAccountKey {
    client_email: String,
    private_key: String,
    private_key_id: Option<String>,
    token_uri: String,
}

impl ServiceAccountKey {
    /// Reads a key file; the error names what is wrong, never the key.
    pub(super) fn parse(json: Value) -> Result<Self, String> {
        serde_json::from_value(json).map_err(|e| format!("are not a service-account key: {e}"))
    }
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

/// Signs an assertion with `key` and exchanges it for the token `wanted`.
pub(super) async fn mint(
    cx: &SignContext<'_>,
    key: &ServiceAccountKey,
    wanted: &Wanted,
    secret: &str,
) -> Result<Token, AuthError> {
    let bad = |what: &str| AuthError::TokenRefused {
        url: "(none)".to_owned(),
        message: format!("the Google credentials in secret {secret:?} {what}"),
    };
    let token_uri = Url::parse(&key.token_uri).map_err(|_| bad("have an invalid token_uri"))?;
    let assertion = sign_assertion(key, wanted, cx.clock.unix_seconds()).map_err(|e| bad(&e))?;
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
        .append_pair("assertion", assertion.expose())
        .finish();
    let request = Request::post(
        token_uri,
        Body::Secret {
            content_type: "application/x-www-form-urlencoded",
            text: SecretString::new(form),
        },
    );
    let refused = format!(
        "Google refused the service account {} (secret {secret:?})",
        key.client_email
    );
    let answer = token::exchange(cx, &request, &refused).await?;
    token::from_answer(&answer, wanted, &request.url, cx.clock.now())
}

/// The signed RS256 assertion for a service-account key at time `now` (seconds since the epoch).
fn sign_assertion(
    key: &ServiceAccountKey,
    wanted: &Wanted,
    now: u64,
) -> Result<SecretString, String> {
    let claims = Assertion {
        iss: &key.client_email,
        aud: &key.token_uri,
        iat: now,
        exp: now.saturating_add(3600),
        scope: match wanted {
            Wanted::Access(scopes) => Some(scopes.join(" ")),
            Wanted::Id(_) => None,
        },
        target_audience: match wanted {
            Wanted::Id(audience) => Some(audience),
            Wanted::Access(_) => None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::CLOUD_PLATFORM;
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

    fn access() -> Wanted {
        Wanted::Access(vec![CLOUD_PLATFORM.to_owned()])
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
        let jwt = sign_assertion(&key(), &access(), 1_700_000_000).unwrap();
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
        let wanted = Wanted::Id("1234-abc.apps.googleusercontent.com".into());
        let jwt = sign_assertion(&key(), &wanted, 1_700_000_000).unwrap();
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
        let err = sign_assertion(&bad, &access(), 0).unwrap_err();
        assert!(err.contains("not an RSA PEM key"), "{err}");
    }
}
