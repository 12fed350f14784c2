//! Ingress: the Google-signed OIDC token of a push (Pub/Sub push authentication, Eventarc),
//! verified the way Google's own libraries do: RS256 only, under the keys Google publishes
//! (a JSON Web Key Set, cached for its `Cache-Control: max-age` and fetched again once for a
//! key id it does not hold), then `iss`, `aud`, `exp`, `iat`, `email` and `email_verified`.
//! See <https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions>.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use super::Rejection;
use crate::config::OidcCheck;
use crate::http::{Request, Sent, Transport};

/// How far the clocks of Google and this machine may disagree, on `exp` and `iat`.
pub const LEEWAY: Duration = Duration::from_secs(30);

/// The issuers of Google's ID tokens.
const ISSUERS: [&str; 2] = ["accounts.google.com", "https://accounts.google.com"];

/// How long keys are kept when Google's answer says nothing of it.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);

/// The longest keys are kept, whatever the answer says.
const LONGEST_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The shortest time between two fetches caused by unknown key ids: tokens naming random ids
/// cannot make us fetch the keys once per request.
const REFETCH_AFTER: Duration = Duration::from_secs(30);

/// Time limit of one fetch of the keys.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks the OIDC tokens sent to one push endpoint.
#[derive(Debug)]
pub struct Verifier {
    check: OidcCheck,
    keys: tokio::sync::Mutex<Option<KeySet>>,
}

/// Google's keys as last fetched.
struct KeySet {
    keys: HashMap<String, DecodingKey>,
    fetched: Instant,
    fresh_for: Duration,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .field("fresh_for", &self.fresh_for)
            .finish()
    }
}

/// The claims a Google ID token carries that we check.
#[derive(Debug, Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<Value>,
    exp: Option<u64>,
    iat: Option<u64>,
    email: Option<String>,
    email_verified: Option<Value>,
}

impl Verifier {
    /// A verifier of tokens meant for `check`'s audience and service account.
    pub fn new(check: OidcCheck) -> Self {
        Verifier {
            check,
            keys: tokio::sync::Mutex::new(None),
        }
    }

    /// Verifies the `Authorization` header's bearer token; `Ok` names the pusher's email.
    pub async fn verify(
        &self,
        authorization: Option<&str>,
        transport: &dyn Transport,
        now: SystemTime,
    ) -> Result<String, Rejection> {
        let token = bearer(authorization)?;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Rejection::unauthorized("the bearer token is not a signed JWT"))?;
        if header.alg != Algorithm::RS256 {
            return Err(Rejection::unauthorized(format!(
                "the token is signed with {:?}; Google signs with RS256, and nothing else is \
                 accepted",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| Rejection::unauthorized("the token names no signing key (kid)"))?;
        let key = self.key(&kid, transport).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        // Times, audience and issuer are checked below, against our clock and with our
        // messages; the library checks the signature.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => Rejection::unauthorized(
                    "the token's signature does not verify under Google's key",
                ),
                _ => Rejection::unauthorized(format!("the token cannot be read: {error}")),
            })?
            .claims;
        self.check_claims(&claims, now)
    }

    fn check_claims(&self, claims: &Claims, now: SystemTime) -> Result<String, Rejection> {
        let iss = claims.iss.as_deref().unwrap_or_default();
        if !ISSUERS.contains(&iss) {
            return Err(Rejection::unauthorized(format!(
                "the token's issuer {iss:?} is not Google (accounts.google.com)"
            )));
        }
        let audience = &self.check.audience;
        let aud_matches = match &claims.aud {
            Some(Value::String(aud)) => aud == audience,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        };
        if !aud_matches {
            return Err(Rejection::unauthorized(format!(
                "the token's audience is not this endpoint's ({audience:?}: the \
                 subscription's --push-auth-token-audience)"
            )));
        }
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let leeway = LEEWAY.as_secs();
        match claims.exp {
            Some(exp) if now <= exp.saturating_add(leeway) => {}
            Some(_) => return Err(Rejection::unauthorized("the token has expired")),
            None => return Err(Rejection::unauthorized("the token has no expiry (exp)")),
        }
        match claims.iat {
            Some(iat) if iat <= now.saturating_add(leeway) => {}
            Some(_) => return Err(Rejection::unauthorized("the token is issued in the future")),
            None => return Err(Rejection::unauthorized("the token has no issue time (iat)")),
        }
        let email = claims.email.as_deref().unwrap_or_default();
        if email != self.check.service_account {
            return Err(Rejection::forbidden(format!(
                "the token is {}'s; this endpoint accepts pushes from {}",
                if email.is_empty() {
                    "no account"
                } else {
                    email
                },
                self.check.service_account
            )));
        }
        let verified = matches!(&claims.email_verified, Some(Value::Bool(true)))
            || matches!(&claims.email_verified, Some(Value::String(s)) if s == "true");
        if !verified {
            return Err(Rejection::forbidden(format!(
                "the token's email {email} is not verified (email_verified)"
            )));
        }
        Ok(email.to_owned())
    }

    /// The key `kid`, from the cache while it is fresh; fetched when stale, or once (per
    /// [`REFETCH_AFTER`]) when the cache does not hold it. When Google cannot be reached, keys
    /// past their freshness still serve: they are rotated over weeks, not minutes.
    async fn key(&self, kid: &str, transport: &dyn Transport) -> Result<DecodingKey, Rejection> {
        let mut cache = self.keys.lock().await;
        let now = Instant::now();
        let (held, fresh, recent) = match cache.as_ref() {
            Some(set) => (
                set.keys.get(kid).cloned(),
                now.duration_since(set.fetched) < set.fresh_for,
                now.duration_since(set.fetched) < REFETCH_AFTER,
            ),
            None => (None, false, false),
        };
        if let (Some(key), true) = (&held, fresh) {
            return Ok(key.clone());
        }
        if held.is_none() && recent {
            return Err(Rejection::unauthorized(format!(
                "the token is signed with key {kid:?}, which Google does not publish"
            )));
        }
        match self.fetch(transport).await {
            Ok(set) => {
                let key = set.keys.get(kid).cloned();
                *cache = Some(set);
                key.ok_or_else(|| {
                    Rejection::unauthorized(format!(
                        "the token is signed with key {kid:?}, which Google does not publish"
                    ))
                })
            }
            Err(reason) => match held {
                Some(key) => {
                    tracing::warn!(%reason, "Google's keys not refreshed; the cached ones serve");
                    Ok(key)
                }
                None => Err(Rejection::Unavailable(reason)),
            },
        }
    }

    async fn fetch(&self, transport: &dyn Transport) -> Result<KeySet, String> {
        let url: &Url = &self.check.certs_url;
        let request = Request::new(Method::GET, url.clone());
        let answer = match transport.send(&request, FETCH_TIMEOUT).await {
            Sent::Answered(answer) if answer.status.is_success() => answer,
            Sent::Answered(answer) => {
                return Err(format!(
                    "Google's keys ({url}) answered {}",
                    answer.status.as_u16()
                ));
            }
            Sent::Failed(error) => return Err(format!("Google's keys ({url}): {error}")),
            Sent::Printed(_) => {
                return Err("Google's keys cannot be fetched by a dry run".to_owned());
            }
        };
        let fresh_for = answer
            .headers
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|value| value.to_str().ok())
            .and_then(max_age)
            .unwrap_or(DEFAULT_MAX_AGE)
            .min(LONGEST_MAX_AGE);
        let keys =
            parse_jwks(&answer.body).map_err(|why| format!("Google's keys ({url}) {why}"))?;
        tracing::info!(keys = keys.len(), fresh_s = fresh_for.as_secs(), %url, "Google's keys fetched");
        Ok(KeySet {
            keys,
            fetched: Instant::now(),
            fresh_for,
        })
    }
}

/// The token of an `Authorization: Bearer ...` header.
fn bearer(authorization: Option<&str>) -> Result<&str, Rejection> {
    let value = authorization.ok_or_else(|| {
        Rejection::unauthorized(
            "no Authorization header: the push subscription needs authentication \
             (--push-auth-service-account)",
        )
    })?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(Rejection::unauthorized(
            "the Authorization header is not a bearer token",
        )),
    }
}

/// `max-age` of a `Cache-Control` value.
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|directive| {
        let (name, seconds) = directive.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| seconds.trim().trim_matches('"').parse().ok())
            .flatten()
            .map(Duration::from_secs)
    })
}

/// The RSA keys of a JSON Web Key Set, by key id.
fn parse_jwks(body: &str) -> Result<HashMap<String, DecodingKey>, String> {
    #[derive(Deserialize)]
    struct Jwks {
        keys: Vec<Jwk>,
    }
    #[derive(Deserialize)]
    struct Jwk {
        kid: Option<String>,
        kty: Option<String>,
        n: Option<String>,
        e: Option<String>,
    }
    let jwks: Jwks = serde_json::from_str(body)
        .map_err(|e| format!("are not a JSON Web Key Set ({{\"keys\": [...]}}): {e}"))?;
    let mut keys = HashMap::new();
    for jwk in jwks.keys {
        let (Some(kid), Some("RSA"), Some(n), Some(e)) = (
            jwk.kid,
            jwk.kty.as_deref(),
            jwk.n.as_deref(),
            jwk.e.as_deref(),
        ) else {
            continue;
        };
        let key = DecodingKey::from_rsa_components(n, e)
            .map_err(|error| format!("hold key {kid:?}, which is not an RSA key: {error}"))?;
        keys.insert(kid, key);
    }
    if keys.is_empty() {
        return Err("hold no RSA key".to_owned());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Answer;
    use futures_util::future::BoxFuture;
    use reqwest::StatusCode;
    use std::sync::Mutex;

    const JWKS: &str = include_str!("../../tests/fixtures/test-rsa-jwks.json");
    const KEY: &[u8] = include_bytes!("../../tests/fixtures/test-rsa-key.pem");
    const NOW: u64 = 1_764_057_600;

    /// Google's certs endpoint: answers with what the test set, counting the fetches.
    #[derive(Debug, Default)]
    struct Certs {
        answer: Mutex<Option<String>>,
        fetches: Mutex<usize>,
    }

    impl Transport for Certs {
        fn send<'a>(&'a self, _: &'a Request, _: Duration) -> BoxFuture<'a, Sent> {
            *self.fetches.lock().unwrap() += 1;
            let sent = match self.answer.lock().unwrap().clone() {
                Some(body) => Sent::Answered(Answer::new(StatusCode::OK, body)),
                None => Sent::Answered(Answer::new(StatusCode::SERVICE_UNAVAILABLE, "")),
            };
            Box::pin(std::future::ready(sent))
        }

        fn reaches_network(&self) -> bool {
            true
        }
    }

    fn verifier() -> Verifier {
        Verifier::new(OidcCheck {
            audience: "https://push.example/".into(),
            service_account: "push@p.iam.gserviceaccount.com".into(),
            certs_url: Url::parse("https://www.googleapis.com/oauth2/v3/certs").unwrap(),
        })
    }

    fn token(kid: &str) -> String {
        let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        let claims = serde_json::json!({
            "iss": "https://accounts.google.com", "aud": "https://push.example/",
            "email": "push@p.iam.gserviceaccount.com", "email_verified": true,
            "iat": NOW, "exp": NOW + 3600,
        });
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(KEY).unwrap();
        format!(
            "Bearer {}",
            jsonwebtoken::encode(&header, &claims, &key).unwrap()
        )
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW + seconds)
    }

    /// Google publishes a new key (here: renamed) while the old set is cached: the first token
    /// naming it fetches the keys again, once; an unknown id just after is refused without a
    /// fetch; keys already held serve while Google cannot be reached.
    #[tokio::test(start_paused = true)]
    async fn keys_are_fetched_again_for_a_new_key_id_at_most_every_30_seconds() {
        let certs = Certs::default();
        *certs.answer.lock().unwrap() = Some(JWKS.to_owned());
        let verifier = verifier();
        let email = verifier
            .verify(Some(&token("test-key-1")), &certs, at(0))
            .await;
        assert_eq!(email.unwrap(), "push@p.iam.gserviceaccount.com");
        assert_eq!(*certs.fetches.lock().unwrap(), 1);

        // Rotation: the same key under a new id.
        *certs.answer.lock().unwrap() = Some(JWKS.replace("test-key-1", "test-key-2"));
        let refused = verifier
            .verify(Some(&token("test-key-2")), &certs, at(1))
            .await;
        assert!(
            matches!(refused, Err(Rejection::Unauthorized(ref r)) if r.contains("does not publish")),
            "{refused:?}"
        );
        assert_eq!(
            *certs.fetches.lock().unwrap(),
            1,
            "within 30 s of a fetch: no other"
        );
        tokio::time::advance(REFETCH_AFTER).await;
        let rotated = verifier
            .verify(Some(&token("test-key-2")), &certs, at(31))
            .await;
        assert!(rotated.is_ok(), "{rotated:?}");
        assert_eq!(*certs.fetches.lock().unwrap(), 2);
        // Cached now, until its max-age (one hour, Google's answer saying nothing).
        verifier
            .verify(Some(&token("test-key-2")), &certs, at(32))
            .await
            .unwrap();
        assert_eq!(*certs.fetches.lock().unwrap(), 2);

        // Stale, and Google down: the key held serves; an unknown one is "try again" (503).
        tokio::time::advance(DEFAULT_MAX_AGE).await;
        *certs.answer.lock().unwrap() = None;
        let stale = verifier
            .verify(Some(&token("test-key-2")), &certs, at(3620))
            .await;
        assert!(stale.is_ok(), "{stale:?}");
        tokio::time::advance(REFETCH_AFTER).await;
        let unknown = verifier
            .verify(Some(&token("test-key-3")), &certs, at(3625))
            .await;
        assert!(
            matches!(unknown, Err(Rejection::Unavailable(_))),
            "{unknown:?}"
        );
        // Expired against the clock passed in, whatever the cache holds.
        *certs.answer.lock().unwrap() = Some(JWKS.replace("test-key-1", "test-key-2"));
        let late = verifier
            .verify(Some(&token("test-key-2")), &certs, at(3600 + 31))
            .await;
        assert_eq!(
            late,
            Err(Rejection::Unauthorized("the token has expired".into()))
        );
    }

    #[test]
    fn max_age_is_read_among_other_directives() {
        assert_eq!(
            max_age("public, max-age=21600, must-revalidate, no-transform"),
            Some(Duration::from_secs(21600))
        );
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }

    #[test]
    fn bearer_tokens_are_taken_whatever_the_case_of_the_scheme() {
        assert_eq!(bearer(Some("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer(Some("bearer  abc ")).unwrap(), "abc");
        assert!(bearer(Some("Basic abc")).is_err());
        assert!(bearer(Some("Bearer ")).is_err());
        assert!(bearer(None).is_err());
    }

    #[test]
    fn key_sets_without_rsa_keys_are_refused() {
        assert!(
            parse_jwks(r#"{"keys": []}"#)
                .unwrap_err()
                .contains("no RSA key")
        );
        assert!(parse_jwks("[]").unwrap_err().contains("JSON Web Key Set"));
        assert!(
            parse_jwks(r#"{"keys": [{"kid": "a", "kty": "EC", "x": "1"}]}"#)
                .unwrap_err()
                .contains("no RSA key")
        );
    }
}
