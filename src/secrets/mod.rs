//! Credentials: secret sources (Secrets Manager, a local JSON file) behind one TTL cache that
//! every warm invocation shares, and Parameter Store for a configuration kept there. Secret
//! values are [`SecretString`]s, which never print.

mod aws;
mod file;
mod sdk_http;
mod ssm;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};
use tokio::time::Instant;

pub use aws::SecretsManager;
pub use file::SecretsFile;
pub use sdk_http::{sdk_http_client, share_http_client};
pub use ssm::{ParameterError, ParameterStore};

/// The AWS configuration (region, credentials chain, endpoint overrides), loaded once on first
/// use and shared by the SDK clients (Parameter Store at cold start, Secrets Manager later,
/// the idempotency store's DynamoDB). They send through our HTTP client ([`sdk_http_client`]).
pub async fn aws_config() -> &'static aws_config::SdkConfig {
    static CONFIG: tokio::sync::OnceCell<aws_config::SdkConfig> =
        tokio::sync::OnceCell::const_new();
    CONFIG
        .get_or_init(|| {
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .http_client(sdk_http_client())
                .load()
        })
        .await
}

/// A secret value: `Debug` and `Display` print `****`; read it with [`SecretString::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The value itself. Call only where it is put on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(****)")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// Why a secret could not be had. Messages name the secret id and field, never a value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SecretsError {
    /// The local secrets file cannot be used.
    #[error("secrets file {path} {reason}")]
    File {
        /// Its path.
        path: String,
        /// What is wrong with it (never its contents).
        reason: String,
    },
    /// The secret does not exist (or we may not see that it does).
    #[error("secret {id:?} not found{hint}")]
    NotFound {
        /// Secret id or ARN.
        id: String,
        /// Where we looked, e.g. ` in secrets file local/secrets.json`.
        hint: String,
    },
    /// The secret exists but access to it was denied.
    #[error("access to secret {id:?} denied: {message}")]
    AccessDenied {
        /// Secret id or ARN.
        id: String,
        /// The service's message (which names no value).
        message: String,
    },
    /// The secret is JSON but has no such field.
    #[error("secret {id:?} has no field {field:?} (fields present: {present})")]
    MissingField {
        /// Secret id.
        id: String,
        /// The field asked for.
        field: String,
        /// The field names it does have.
        present: String,
    },
    /// A field holds something other than a string or number.
    #[error("secret {id:?} field {field:?} is not a string")]
    NotAString {
        /// Secret id.
        id: String,
        /// The field.
        field: String,
    },
    /// A field was asked of a secret that is a plain string, not a JSON object.
    #[error("secret {id:?} is a plain string, not a JSON object, so it has no field {field:?}")]
    NotJson {
        /// Secret id.
        id: String,
        /// The field asked for.
        field: String,
    },
    /// Could not reach the store, or it failed; worth retrying.
    #[error("could not fetch secret {id:?}: {message}")]
    Unavailable {
        /// Secret id.
        id: String,
        /// What went wrong.
        message: String,
    },
}

impl SecretsError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SecretsError::Unavailable { .. })
    }
}

/// A store of secrets by id.
pub trait SecretSource: Send + Sync {
    /// Fetches the secret's string form (SecretString, or SecretBinary read as UTF-8).
    fn fetch<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<SecretString, SecretsError>>;

    /// Whether this source only stands in for secrets it does not have ([`Placeholders`]).
    fn placeholders(&self) -> bool {
        false
    }
}

/// Stands in for every secret, for a dry run with no secrets file: each field holds the same
/// placeholder, so requests can be built and signed (and printed, redacted) without reading
/// any store.
#[derive(Debug, Clone, Copy, Default)]
pub struct Placeholders;

/// The value of every field of a [`Placeholders`] secret.
pub const PLACEHOLDER: &str = "placeholder";

impl SecretSource for Placeholders {
    fn fetch<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<SecretString, SecretsError>> {
        Box::pin(std::future::ready(Ok(SecretString::new(PLACEHOLDER))))
    }

    fn placeholders(&self) -> bool {
        true
    }
}

/// A fetched secret: a JSON object of fields, or a plain string.
#[derive(Debug)]
pub struct Secret {
    id: String,
    fields: Option<Map<String, Value>>,
    raw: SecretString,
    placeholder: bool,
}

impl Secret {
    /// A stand-in whose every field (and whole value) is [`PLACEHOLDER`].
    pub fn placeholder(id: &str) -> Self {
        Secret {
            id: id.to_owned(),
            fields: Some(Map::new()),
            raw: SecretString::new(PLACEHOLDER),
            placeholder: true,
        }
    }

    /// Reads a secret's string: a JSON object gives fields; anything else is a plain string.
    pub fn parse(id: &str, raw: SecretString) -> Self {
        let fields = match serde_json::from_str::<Value>(raw.expose()) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        };
        Secret {
            id: id.to_owned(),
            fields,
            raw,
            placeholder: false,
        }
    }

    /// Whether this only stands in for a secret ([`Placeholders`]).
    pub fn is_placeholder(&self) -> bool {
        self.placeholder
    }

    /// Whether the secret is a JSON object of fields (rather than a plain string).
    pub fn is_json(&self) -> bool {
        self.fields.is_some()
    }

    /// A field of a JSON secret, or the whole secret when `field` is `None`.
    pub fn field(&self, field: Option<&str>) -> Result<SecretString, SecretsError> {
        let Some(field) = field else {
            return Ok(self.raw.clone());
        };
        if self.placeholder {
            return Ok(self.raw.clone());
        }
        let Some(fields) = &self.fields else {
            return Err(SecretsError::NotJson {
                id: self.id.clone(),
                field: field.to_owned(),
            });
        };
        match fields.get(field) {
            Some(Value::String(value)) => Ok(SecretString::new(value.clone())),
            Some(Value::Number(value)) => Ok(SecretString::new(value.to_string())),
            Some(_) => Err(SecretsError::NotAString {
                id: self.id.clone(),
                field: field.to_owned(),
            }),
            None => Err(SecretsError::MissingField {
                id: self.id.clone(),
                field: field.to_owned(),
                present: if fields.is_empty() {
                    "none".to_owned()
                } else {
                    fields.keys().cloned().collect::<Vec<_>>().join(", ")
                },
            }),
        }
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<(Instant, Arc<Secret>)>>>;

/// A TTL cache over a [`SecretSource`], shared by all invocations of a warm container.
///
/// One fetch per secret per TTL, however many records and routes use it; concurrent first uses
/// wait for the one fetch in flight. Failed fetches are not cached.
pub struct SecretCache {
    source: Box<dyn SecretSource>,
    ttl: Duration,
    slots: Mutex<HashMap<String, Slot>>,
}

impl fmt::Debug for SecretCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SecretCache {
    /// Caches `source` for `ttl`.
    pub fn new(source: Box<dyn SecretSource>, ttl: Duration) -> Self {
        SecretCache {
            source,
            ttl,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The secret `id`, from the cache while fresh.
    pub async fn get(&self, id: &str) -> Result<Arc<Secret>, SecretsError> {
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            slots.entry(id.to_owned()).or_default().clone()
        };
        let mut entry = slot.lock().await;
        if let Some((fetched, secret)) = entry.as_ref()
            && fetched.elapsed() < self.ttl
        {
            return Ok(secret.clone());
        }
        let secret = match self.source.placeholders() {
            true => Arc::new(Secret::placeholder(id)),
            false => Arc::new(Secret::parse(id, self.source.fetch(id).await?)),
        };
        tracing::debug!(secret_id = id, "fetched secret");
        *entry = Some((Instant::now(), secret.clone()));
        Ok(secret)
    }

    /// A field of secret `id` (the whole secret when `field` is `None`).
    pub async fn field(&self, id: &str, field: Option<&str>) -> Result<SecretString, SecretsError> {
        self.get(id).await?.field(field)
    }

    /// Several fields of the JSON secret `id` (a username and password, a key and secret).
    pub async fn fields<const N: usize>(
        &self,
        id: &str,
        names: [&str; N],
    ) -> Result<[SecretString; N], SecretsError> {
        let secret = self.get(id).await?;
        let mut values = Vec::with_capacity(N);
        for name in names {
            values.push(secret.field(Some(name))?);
        }
        Ok(values
            .try_into()
            .unwrap_or_else(|_| unreachable!("one value per name")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting {
        calls: Arc<AtomicUsize>,
    }

    impl SecretSource for Counting {
        fn fetch<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<SecretString, SecretsError>> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                if id == "missing" {
                    return Err(SecretsError::NotFound {
                        id: id.into(),
                        hint: String::new(),
                    });
                }
                Ok(SecretString::new(
                    r#"{"user": "u", "password": "hunter2", "port": 5432}"#,
                ))
            })
        }
    }

    fn cache(ttl: Duration) -> (SecretCache, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let source = Counting {
            calls: calls.clone(),
        };
        (SecretCache::new(Box::new(source), ttl), calls)
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_first_uses_fetch_once_and_ttl_expires() {
        let (cache, calls) = cache(Duration::from_secs(300));
        let results =
            futures_util::future::join_all((0..20).map(|_| cache.field("db", Some("password"))))
                .await;
        assert!(
            results
                .iter()
                .all(|r| r.as_ref().unwrap().expose() == "hunter2")
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        tokio::time::advance(Duration::from_secs(299)).await;
        cache.field("db", Some("user")).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "still fresh");

        tokio::time::advance(Duration::from_secs(2)).await;
        cache.field("db", Some("user")).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2, "expired, fetched again");
    }

    #[tokio::test(start_paused = true)]
    async fn errors_name_id_and_field_never_the_value() {
        let (cache, calls) = cache(Duration::from_secs(300));
        let err = cache.field("db", Some("pasword")).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("\"db\"") && text.contains("\"pasword\""),
            "{text}"
        );
        assert!(
            text.contains("password, port, user") || text.contains("user, password, port"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(
            cache.field("db", Some("port")).await.unwrap().expose(),
            "5432"
        );

        assert!(matches!(
            cache.get("missing").await,
            Err(SecretsError::NotFound { .. })
        ));
        assert!(matches!(
            cache.get("missing").await,
            Err(SecretsError::NotFound { .. })
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 3, "failures are not cached");
    }

    #[test]
    fn secret_strings_never_print() {
        let secret = SecretString::new("hunter2");
        assert_eq!(format!("{secret} {secret:?}"), "**** SecretString(****)");
        let parsed = Secret::parse("plain", SecretString::new("just-a-token"));
        assert_eq!(parsed.field(None).unwrap().expose(), "just-a-token");
        assert!(!format!("{parsed:?}").contains("just-a-token"));
        let err = parsed.field(Some("token")).unwrap_err().to_string();
        assert!(
            err.contains("plain string") && !err.contains("just-a-token"),
            "{err}"
        );
    }
}
