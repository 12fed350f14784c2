//! Signing: a bearer-token cache shared by all invocations of a warm container. A token is
//! reused until shortly before it expires; concurrent first uses wait for one fetch.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::AuthError;
use crate::secrets::SecretString;

/// Refresh this long before a token's expiry.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// Lifetime assumed for a token whose expiry cannot be read.
pub const FALLBACK_LIFETIME: Duration = Duration::from_secs(300);

/// A fetched token and how long it lives.
#[derive(Debug)]
pub struct Fetched {
    /// The token.
    pub token: SecretString,
    /// Time until it expires, as the issuer said (`expires_in`, a JWT's `exp`).
    pub lifetime: Option<Duration>,
}

#[derive(Debug)]
struct Cached {
    token: SecretString,
    refresh_at: Instant,
}

/// One cached token.
#[derive(Debug, Default)]
pub struct TokenCache {
    cached: Mutex<Option<Cached>>,
}

impl TokenCache {
    /// The cached token while fresh, else the result of `fetch` (cached on success).
    pub async fn get<F, Fut>(&self, fetch: F) -> Result<SecretString, AuthError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched, AuthError>>,
    {
        // Holding the lock across the fetch makes concurrent first uses wait for one request.
        let mut cached = self.cached.lock().await;
        if let Some(entry) = cached.as_ref()
            && Instant::now() < entry.refresh_at
        {
            return Ok(entry.token.clone());
        }
        let fetched = fetch().await?;
        let lifetime = fetched.lifetime.unwrap_or(FALLBACK_LIFETIME);
        *cached = Some(Cached {
            token: fetched.token.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN),
        });
        Ok(fetched.token)
    }

    /// Drops the cached token (the server refused it).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn reuses_until_the_margin_then_refetches() {
        let cache = TokenCache::default();
        let calls = AtomicUsize::new(0);
        let fetch = || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            Ok(Fetched {
                token: SecretString::new(format!("t{n}")),
                lifetime: Some(Duration::from_secs(3600)),
            })
        };
        assert_eq!(cache.get(fetch).await.unwrap().expose(), "t0");
        tokio::time::advance(Duration::from_secs(3600 - 61)).await;
        assert_eq!(cache.get(fetch).await.unwrap().expose(), "t0");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            cache.get(fetch).await.unwrap().expose(),
            "t1",
            "inside the 60 s margin"
        );
        cache.invalidate().await;
        assert_eq!(
            cache.get(fetch).await.unwrap().expose(),
            "t2",
            "invalidated"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_not_cached() {
        let cache = TokenCache::default();
        let failing = || async {
            Err(AuthError::TokenUnavailable {
                url: "u".into(),
                message: "down".into(),
            })
        };
        assert!(cache.get(failing).await.is_err());
        let ok = || async {
            Ok(Fetched {
                token: SecretString::new("t"),
                lifetime: None,
            })
        };
        assert_eq!(cache.get(ok).await.unwrap().expose(), "t");
    }
}
