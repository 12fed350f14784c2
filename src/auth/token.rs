//! Auth: bearer tokens. A [`TokenSource`] mints a token (Airflow's token exchange, OAuth 2
//! client credentials, a Google service-account key, Google Workload Identity Federation); one
//! [`CachedBearer`] around any source owns what they share: the cache with its expiry margin
//! (shared by all invocations of a warm container), the dry-run display, dropping the token on
//! a 401, and remembering within an invocation that the credentials were refused.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::future::BoxFuture;
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::{AuthError, Refusal, SignContext};
use crate::http::{HeaderValue, Request, Sent, Verdict, excerpt};
use crate::secrets::SecretString;

/// Refresh this long before a token's expiry.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// Lifetime assumed for a token whose expiry cannot be read.
pub const FALLBACK_LIFETIME: Duration = Duration::from_secs(300);

/// A minted token.
#[derive(Debug, Clone)]
pub struct Token {
    /// The token.
    pub value: SecretString,
    /// When it expires, as the issuer said (`expires_in`, a JWT's `exp`), if it said.
    pub expires_at: Option<SystemTime>,
}

/// Which token to ask an OAuth 2.0 / OIDC issuer for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// An access token with these scopes.
    Access(Vec<String>),
    /// An ID token for this audience.
    Id(String),
}

/// Where bearer tokens come from.
pub trait TokenSource: Send + Sync + fmt::Debug {
    /// Mints a token, through `cx.transport`.
    fn fetch<'a>(&'a self, cx: &'a SignContext<'_>) -> BoxFuture<'a, Result<Token, AuthError>>;

    /// The token endpoint, for dry runs, which fetch nothing. Reads the secret a fetch would,
    /// so a dry run still reports a missing secret or field.
    fn origin<'a>(&'a self, cx: &'a SignContext<'_>) -> BoxFuture<'a, Result<Url, AuthError>>;
}

/// A bearer signer over any [`TokenSource`], with the token cached until [`EXPIRY_MARGIN`]
/// before it expires. Concurrent first uses wait for one fetch.
#[derive(Debug)]
pub struct CachedBearer {
    source: Box<dyn TokenSource>,
    cached: Mutex<Option<Token>>,
}

impl CachedBearer {
    /// Around `source`, with an empty cache.
    pub fn new(source: Box<dyn TokenSource>) -> Self {
        CachedBearer {
            source,
            cached: Mutex::new(None),
        }
    }

    pub(super) async fn sign(
        &self,
        request: &mut Request,
        cx: &SignContext<'_>,
        refusal: &Refusal,
    ) -> Result<(), AuthError> {
        if !cx.transport.reaches_network() {
            let origin = self.source.origin(cx).await?;
            request.set_header(
                "authorization",
                HeaderValue::Secret {
                    value: SecretString::new(String::new()),
                    shown: format!("Bearer **** (from POST {origin})"),
                },
            );
            return Ok(());
        }
        let token = self.token(cx, refusal).await?;
        request.set_header("authorization", super::bearer::header(&token));
        Ok(())
    }

    /// The cached token while fresh, else a new one. A refusal is remembered (inside the lock,
    /// so records waiting for this fetch do not each try again) for the rest of the invocation.
    async fn token(
        &self,
        cx: &SignContext<'_>,
        refusal: &Refusal,
    ) -> Result<SecretString, AuthError> {
        let mut cached = self.cached.lock().await;
        let now = cx.clock.now();
        if let Some(token) = cached.as_ref()
            && fresh(token, now)
        {
            return Ok(token.value.clone());
        }
        if let Some(error) = refusal.get(cx.invocation) {
            return Err(error);
        }
        match self.source.fetch(cx).await {
            Ok(mut token) => {
                token.expires_at = Some(
                    token
                        .expires_at
                        .unwrap_or_else(|| now.checked_add(FALLBACK_LIFETIME).unwrap_or(now)),
                );
                let value = token.value.clone();
                *cached = Some(token);
                Ok(value)
            }
            Err(error) => {
                if !error.is_retryable() {
                    refusal.set(cx.invocation, error.clone());
                }
                Err(error)
            }
        }
    }

    /// Drops the cached token (the server refused it).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }
}

/// Whether `token` may still be used at `now`: more than [`EXPIRY_MARGIN`] before it expires.
fn fresh(token: &Token, now: SystemTime) -> bool {
    match token.expires_at {
        Some(expires) => now
            .checked_add(EXPIRY_MARGIN)
            .is_some_and(|limit| limit < expires),
        None => false,
    }
}

/// Sends a token request and reads its JSON answer, classified by the one status table:
/// retryable answers and transport failures are [`AuthError::TokenUnavailable`]; any other
/// non-2xx means the credentials were refused (`refused` says which).
pub(super) async fn exchange(
    cx: &SignContext<'_>,
    request: &Request,
    refused: &str,
) -> Result<Value, AuthError> {
    let url = request.url.to_string();
    match cx.transport.send(request, cx.timeout).await {
        Sent::Answered(answer) if answer.status.is_redirection() => Err(AuthError::TokenRefused {
            url,
            message: Verdict::from_answer(&answer).into_reason(),
        }),
        Sent::Answered(answer) => match Verdict::from_status(answer.status, "") {
            Verdict::Delivered { .. } | Verdict::AlreadyDelivered | Verdict::Check { .. } => {
                serde_json::from_str(&answer.body).map_err(|e| AuthError::TokenRefused {
                    url,
                    message: format!("answer is not JSON: {e}"),
                })
            }
            Verdict::Retry { .. } => Err(AuthError::TokenUnavailable {
                url,
                message: format!("HTTP {}", answer.status),
            }),
            Verdict::Unauthorized { .. } | Verdict::Permanent { .. } => {
                Err(AuthError::TokenRefused {
                    url,
                    message: format!(
                        "HTTP {}: {refused}{}",
                        answer.status,
                        oauth_error(&answer.body)
                    ),
                })
            }
        },
        Sent::Failed(error) => Err(AuthError::TokenUnavailable {
            url,
            message: error.to_string(),
        }),
        Sent::Printed(_) => Err(AuthError::TokenUnavailable {
            url,
            message: "not sent (dry run)".to_owned(),
        }),
    }
}

/// What an OAuth 2.0 error answer (RFC 6749 §5.2) says, as `" (invalid_grant: Invalid JWT
/// Signature.)"`; empty when the answer is not one. The answer was scrubbed of the request's
/// secrets by the transport.
fn oauth_error(body: &str) -> String {
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(body) else {
        return String::new();
    };
    let text = |name: &str| {
        fields
            .get(name)
            .and_then(Value::as_str)
            .map(|t| excerpt(t, 200))
    };
    match (text("error"), text("error_description")) {
        (Some(error), Some(description)) => format!(" ({error}: {description})"),
        (Some(error), None) => format!(" ({error})"),
        _ => String::new(),
    }
}

/// The string `field` of a token answer, as a secret.
pub(super) fn field(answer: &Value, field: &str, url: &Url) -> Result<SecretString, AuthError> {
    answer
        .get(field)
        .and_then(Value::as_str)
        .map(SecretString::new)
        .ok_or_else(|| AuthError::TokenRefused {
            url: url.to_string(),
            message: format!("answer has no {field}"),
        })
}

/// `expires_in` (a number or a numeric string: servers send either) counted from `now`.
pub(super) fn expires_in(answer: &Value, now: SystemTime) -> Option<SystemTime> {
    let value = answer.get("expires_in")?;
    let seconds = value
        .as_u64()
        .or_else(|| value.as_str()?.trim().parse().ok())?;
    now.checked_add(Duration::from_secs(seconds))
}

/// A JWT's `exp`, read without verifying the signature (we only need to know when to ask
/// again; the server verifies it).
pub(super) fn jwt_expiry(jwt: &str) -> Option<SystemTime> {
    #[derive(Deserialize)]
    struct Claims {
        exp: u64,
    }
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(claims.exp))
}

/// An OAuth 2.0 token answer read for `wanted`: `access_token` expiring after `expires_in`, or
/// `id_token` expiring at its `exp`.
pub(super) fn from_answer(
    answer: &Value,
    wanted: &Wanted,
    url: &Url,
    now: SystemTime,
) -> Result<Token, AuthError> {
    Ok(match wanted {
        Wanted::Access(_) => Token {
            value: field(answer, "access_token", url)?,
            expires_at: expires_in(answer, now),
        },
        Wanted::Id(_) => {
            let value = field(answer, "id_token", url)?;
            let expires_at = jwt_expiry(value.expose());
            Token { value, expires_at }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::http::{Answer, DryRun, Transport};
    use crate::secrets::{SecretCache, SecretsFile};
    use reqwest::{Method, StatusCode};
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const NOW: u64 = 1_764_000_000;

    /// A source that counts its fetches; each gives `t{n}`, valid for an hour, or fails.
    #[derive(Debug, Default)]
    struct Counting {
        calls: AtomicUsize,
        refuse: bool,
    }

    impl TokenSource for Counting {
        fn fetch<'a>(&'a self, cx: &'a SignContext<'_>) -> BoxFuture<'a, Result<Token, AuthError>> {
            Box::pin(async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                if self.refuse {
                    return Err(AuthError::TokenRefused {
                        url: "http://127.0.0.1:9/auth/token".into(),
                        message: "HTTP 401 Unauthorized: wrong password".into(),
                    });
                }
                Ok(Token {
                    value: SecretString::new(format!("t{n}")),
                    expires_at: Some(cx.clock.now() + Duration::from_secs(3600)),
                })
            })
        }

        fn origin<'a>(&'a self, _cx: &'a SignContext<'_>) -> BoxFuture<'a, Result<Url, AuthError>> {
            Box::pin(async { Ok(Url::parse("http://127.0.0.1:9/auth/token").unwrap()) })
        }
    }

    /// A transport that answers every request with one canned answer.
    #[derive(Debug)]
    struct Canned(StatusCode, &'static str);

    impl Transport for Canned {
        fn send<'a>(&'a self, _: &'a Request, _: Duration) -> BoxFuture<'a, Sent> {
            Box::pin(std::future::ready(Sent::Answered(Answer::new(
                self.0, self.1,
            ))))
        }

        fn reaches_network(&self) -> bool {
            true
        }
    }

    struct World {
        secrets: SecretCache,
        clock: ManualClock,
        root: Url,
    }

    impl World {
        fn new() -> World {
            let file = SecretsFile::parse(std::path::Path::new("t"), "{}").unwrap();
            World {
                secrets: SecretCache::new(Box::new(file), Duration::from_secs(300)),
                clock: ManualClock::at(NOW),
                root: Url::parse("http://127.0.0.1:9/").unwrap(),
            }
        }

        fn cx<'a>(&'a self, transport: &'a dyn Transport, invocation: u64) -> SignContext<'a> {
            SignContext {
                secrets: &self.secrets,
                transport,
                clock: &self.clock,
                root: &self.root,
                timeout: Duration::from_secs(1),
                invocation,
            }
        }
    }

    fn request() -> Request {
        Request::new(Method::POST, Url::parse("http://127.0.0.1:9/x").unwrap())
    }

    fn authorization(request: &Request) -> String {
        match &request.headers[0].1 {
            HeaderValue::Secret { value, .. } => value.expose().to_owned(),
            HeaderValue::Plain(text) => text.clone(),
        }
    }

    async fn sign(signer: &CachedBearer, cx: &SignContext<'_>) -> Result<String, AuthError> {
        let mut request = request();
        signer.sign(&mut request, cx, &Refusal::default()).await?;
        Ok(authorization(&request))
    }

    #[tokio::test]
    async fn reuses_the_token_until_the_margin_then_fetches_again() {
        let world = World::new();
        let transport = Canned(StatusCode::OK, "");
        let signer = CachedBearer::new(Box::new(Counting::default()));
        let cx = world.cx(&transport, 1);
        assert_eq!(sign(&signer, &cx).await.unwrap(), "Bearer t0");
        world.clock.advance(Duration::from_secs(3600 - 61));
        assert_eq!(
            sign(&signer, &cx).await.unwrap(),
            "Bearer t0",
            "still fresh"
        );
        world.clock.advance(Duration::from_secs(2));
        assert_eq!(
            sign(&signer, &cx).await.unwrap(),
            "Bearer t1",
            "inside the 60 s margin"
        );
        signer.invalidate().await;
        assert_eq!(
            sign(&signer, &cx).await.unwrap(),
            "Bearer t2",
            "after a 401"
        );
    }

    #[tokio::test]
    async fn concurrent_first_uses_share_one_fetch() {
        let world = World::new();
        let transport = Canned(StatusCode::OK, "");
        let source = Box::new(Counting::default());
        let signer = CachedBearer::new(source);
        let cx = world.cx(&transport, 1);
        let signed = futures_util::future::join_all((0..10).map(|_| sign(&signer, &cx))).await;
        assert!(signed.iter().all(|s| s.as_deref().unwrap() == "Bearer t0"));
    }

    #[tokio::test]
    async fn a_refusal_is_remembered_for_the_invocation_only() {
        let world = World::new();
        let transport = Canned(StatusCode::OK, "");
        let refusal = Refusal::default();
        let signer = CachedBearer::new(Box::new(Counting {
            refuse: true,
            ..Counting::default()
        }));
        let cx = world.cx(&transport, 7);
        // Ten records of one batch, concurrently: one login attempt, ten failures.
        let results = futures_util::future::join_all((0..10).map(|_| async {
            let mut request = request();
            signer.sign(&mut request, &cx, &refusal).await
        }))
        .await;
        assert!(results.iter().all(|r| matches!(
            r,
            Err(AuthError::TokenRefused { message, .. }) if message.contains("wrong password")
        )));
        let calls = |signer: &CachedBearer| format!("{:?}", signer.source);
        assert!(calls(&signer).contains("calls: 1"), "{}", calls(&signer));
        // The next invocation tries again (the password may have been fixed meanwhile).
        let next = world.cx(&transport, 8);
        assert!(signer.sign(&mut request(), &next, &refusal).await.is_err());
        assert!(calls(&signer).contains("calls: 2"), "{}", calls(&signer));
    }

    #[tokio::test]
    async fn a_dry_run_shows_the_token_endpoint_and_fetches_nothing() {
        let world = World::new();
        let counting = Counting::default();
        let signer = CachedBearer::new(Box::new(counting));
        let cx = world.cx(&DryRun, 1);
        let mut request = request();
        signer
            .sign(&mut request, &cx, &Refusal::default())
            .await
            .unwrap();
        assert_eq!(
            request.printable().headers["authorization"],
            "Bearer **** (from POST http://127.0.0.1:9/auth/token)"
        );
        assert!(format!("{:?}", signer.source).contains("calls: 0"));
    }

    #[tokio::test]
    async fn token_answers_are_classified_by_the_one_table() {
        let world = World::new();
        let token_request = request();
        for (status, body, want) in [
            (StatusCode::OK, r#"{"access_token": "a"}"#, "ok"),
            (StatusCode::OK, "<html>", "refused: answer is not JSON"),
            (StatusCode::SERVICE_UNAVAILABLE, "", "unavailable"),
            (StatusCode::TOO_MANY_REQUESTS, "", "unavailable"),
            (
                StatusCode::UNAUTHORIZED,
                "",
                "refused: HTTP 401 Unauthorized: bad",
            ),
            (
                StatusCode::BAD_REQUEST,
                r#"{"error": "invalid_grant", "error_description": "Invalid JWT Signature."}"#,
                "refused: HTTP 400 Bad Request: bad (invalid_grant: Invalid JWT Signature.)",
            ),
            (
                StatusCode::FORBIDDEN,
                "",
                "refused: HTTP 403 Forbidden: bad",
            ),
        ] {
            let transport = Canned(status, body);
            let got = match exchange(&world.cx(&transport, 1), &token_request, "bad").await {
                Ok(_) => "ok".to_owned(),
                Err(AuthError::TokenUnavailable { .. }) => "unavailable".to_owned(),
                Err(AuthError::TokenRefused { message, .. }) => format!("refused: {message}"),
                Err(other) => other.to_string(),
            };
            assert!(got.starts_with(want), "{status}: {got}");
        }
    }

    #[test]
    fn expiry_from_expires_in_or_a_jwt() {
        let now = UNIX_EPOCH + Duration::from_secs(NOW);
        assert_eq!(
            expires_in(&json!({"expires_in": 3600}), now),
            Some(now + Duration::from_secs(3600))
        );
        assert_eq!(
            expires_in(&json!({"expires_in": "1800"}), now),
            Some(now + Duration::from_secs(1800))
        );
        assert_eq!(expires_in(&json!({"token_type": "bearer"}), now), None);
        let claims = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"admin","exp":{}}}"#, NOW + 3600));
        let jwt = format!("eyJhbGciOiJIUzUxMiJ9.{claims}.c2ln");
        assert_eq!(jwt_expiry(&jwt), Some(now + Duration::from_secs(3600)));
        assert_eq!(jwt_expiry("not-a-jwt"), None);
        let token = Token {
            value: SecretString::new("x"),
            expires_at: jwt_expiry(&jwt),
        };
        assert!(fresh(&token, now + Duration::from_secs(3600 - 61)));
        assert!(!fresh(&token, now + Duration::from_secs(3600 - 60)));
        let clock = ManualClock::at(NOW);
        assert_eq!(clock.now(), now);
    }
}
