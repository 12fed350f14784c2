//! Store: idempotency records in DynamoDB through the AWS SDK. One item per key, partition
//! key `pk` (a string); the table's TTL attribute is `expires_at` (epoch seconds). Every state
//! change is one conditional write, so two invocations racing for the same object cannot both
//! win.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use futures_util::future::BoxFuture;
use tokio::sync::OnceCell;

use super::{Claim, Done, Key, Store, StoreError, Takeover};

const IN_PROGRESS: &str = "IN_PROGRESS";
const COMPLETED: &str = "COMPLETED";
const AMBIGUOUS: &str = "AMBIGUOUS";

/// An IN_PROGRESS record outlives its lease by this much before DynamoDB's TTL may remove it
/// (after the lease it can be taken over anyway).
const IN_PROGRESS_KEPT: Duration = Duration::from_secs(24 * 3600);

/// DynamoDB, through one SDK client built on first use (as Secrets Manager's is).
#[derive(Debug, Default)]
pub struct DynamoDb {
    client: OnceCell<Client>,
}

impl DynamoDb {
    /// A client from the default AWS configuration chain (honouring `AWS_ENDPOINT_URL_DYNAMODB`
    /// / `AWS_ENDPOINT_URL`), built on first use.
    pub fn from_env() -> Self {
        DynamoDb::default()
    }

    /// Wraps a client.
    pub fn new(client: Client) -> Self {
        DynamoDb {
            client: OnceCell::new_with(Some(client)),
        }
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async { Client::new(crate::secrets::aws_config().await) })
            .await
    }

    async fn claim(
        &self,
        key: &Key,
        now: SystemTime,
        lease_until: SystemTime,
        takeover: Takeover,
    ) -> Result<Claim, StoreError> {
        let client = self.client().await;
        let condition = match takeover {
            Takeover::Expired => {
                "attribute_not_exists(pk) OR (#status = :in_progress AND lease_until < :now)"
            }
            Takeover::Ambiguous => {
                "attribute_not_exists(pk) OR (#status = :in_progress AND lease_until < :now) \
                 OR #status = :ambiguous"
            }
        };
        // A record released between our failed write and our read: try again (twice at most).
        for _ in 0..3 {
            let token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
            let mut item = identity(key);
            item.insert("status".into(), s(IN_PROGRESS));
            item.insert("token".into(), s(&token));
            item.insert("lease_until".into(), n(millis(lease_until)));
            item.insert(
                "expires_at".into(),
                n(seconds(lease_until + IN_PROGRESS_KEPT)),
            );
            let mut put = client
                .put_item()
                .table_name(&key.table)
                .set_item(Some(item))
                .condition_expression(condition)
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":in_progress", s(IN_PROGRESS))
                .expression_attribute_values(":now", n(millis(now)));
            if takeover == Takeover::Ambiguous {
                put = put.expression_attribute_values(":ambiguous", s(AMBIGUOUS));
            }
            let put = put.return_values(ReturnValue::AllOld).send().await;
            match put {
                Ok(output) => {
                    let old = output.attributes.unwrap_or_default();
                    // An AMBIGUOUS record; or the claim of an invocation that took one over
                    // and did not finish (it kept `ambiguous_at`, below).
                    let ambiguous_since = match old.get("status").and_then(|v| v.as_s().ok()) {
                        Some(status) if status == AMBIGUOUS => {
                            Some(millis_attribute(&old, "ambiguous_at").unwrap_or(now))
                        }
                        Some(status) if status == IN_PROGRESS => {
                            millis_attribute(&old, "ambiguous_at")
                        }
                        _ => None,
                    };
                    if let Some(since) = ambiguous_since {
                        self.keep_ambiguous_at(key, &token, since).await;
                    }
                    return Ok(Claim::Won {
                        token,
                        took_over: !old.is_empty(),
                        ambiguous_since,
                    });
                }
                Err(error) if conditional_failed(&error) => {}
                Err(error) => return Err(failed(key, &error)),
            }
            let existing = client
                .get_item()
                .table_name(&key.table)
                .key("pk", s(&key.id))
                .consistent_read(true)
                .send()
                .await
                .map_err(|error| failed(key, &error))?;
            let Some(item) = existing.item else {
                continue;
            };
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
            let time = |name: &str| millis_attribute(&item, name);
            return Ok(match text("status").as_deref() {
                Some(COMPLETED) => Claim::Completed {
                    remote_id: text("remote_id"),
                    run_id: text("run_id"),
                },
                Some(AMBIGUOUS) => Claim::Ambiguous {
                    since: time("ambiguous_at").unwrap_or(now),
                },
                _ => Claim::Busy {
                    until: time("lease_until").unwrap_or(now),
                },
            });
        }
        Err(StoreError {
            table: key.table.clone(),
            message: "the record kept changing while it was claimed".into(),
        })
    }

    /// Keeps on a claim that took over an ambiguous record when it became ambiguous: should
    /// this invocation not finish, the claim that takes over after the lease still knows, and
    /// asks the target (or stays "may have run") rather than sending blindly. Trouble here is
    /// logged: the claim is ours either way.
    async fn keep_ambiguous_at(&self, key: &Key, token: &str, since: SystemTime) {
        let update = self
            .client()
            .await
            .update_item()
            .table_name(&key.table)
            .key("pk", s(&key.id))
            .condition_expression("#token = :token")
            .update_expression("SET ambiguous_at = :at")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":token", s(token))
            .expression_attribute_values(":at", n(millis(since)))
            .send()
            .await;
        if let Err(error) = update {
            tracing::error!(table = %key.table, error = %DisplayErrorContext(&error), "could not keep on the claim that its record was ambiguous");
        }
    }

    async fn complete(&self, key: &Key, token: &str, done: Done<'_>) -> Result<(), StoreError> {
        let mut update = self
            .client()
            .await
            .update_item()
            .table_name(&key.table)
            .key("pk", s(&key.id))
            .condition_expression("#token = :token")
            .expression_attribute_names("#token", "token")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":token", s(token))
            .expression_attribute_values(":completed", s(COMPLETED))
            .expression_attribute_values(":at", n(millis(done.at)))
            .expression_attribute_values(":expires", n(seconds(done.keep_until)));
        let mut set = vec![
            "#status = :completed",
            "completed_at = :at",
            "expires_at = :expires",
        ];
        if let Some(remote_id) = done.remote_id {
            update = update.expression_attribute_values(":remote_id", s(remote_id));
            set.push("remote_id = :remote_id");
        }
        if let Some(run_id) = done.run_id {
            update = update.expression_attribute_values(":run_id", s(run_id));
            set.push("run_id = :run_id");
        }
        match update
            .update_expression(format!("SET {}", set.join(", ")))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Our lease ran out and another invocation took the record over: it decides.
            Err(error) if conditional_failed(&error) => {
                tracing::warn!(table = %key.table, "idempotency record was taken over before it was completed");
                Ok(())
            }
            Err(error) => Err(failed(key, &error)),
        }
    }

    async fn mark_ambiguous(
        &self,
        key: &Key,
        token: &str,
        at: SystemTime,
        keep_until: SystemTime,
    ) -> Result<(), StoreError> {
        let update = self
            .client()
            .await
            .update_item()
            .table_name(&key.table)
            .key("pk", s(&key.id))
            .condition_expression("#token = :token")
            .update_expression(
                "SET #status = :ambiguous, ambiguous_at = :at, expires_at = :expires",
            )
            .expression_attribute_names("#token", "token")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":token", s(token))
            .expression_attribute_values(":ambiguous", s(AMBIGUOUS))
            .expression_attribute_values(":at", n(millis(at)))
            .expression_attribute_values(":expires", n(seconds(keep_until)))
            .send()
            .await;
        match update {
            Ok(_) => Ok(()),
            Err(error) if conditional_failed(&error) => {
                tracing::warn!(table = %key.table, "idempotency record was taken over before it was marked ambiguous");
                Ok(())
            }
            Err(error) => Err(failed(key, &error)),
        }
    }

    async fn release(&self, key: &Key, token: &str) -> Result<(), StoreError> {
        let delete = self
            .client()
            .await
            .delete_item()
            .table_name(&key.table)
            .key("pk", s(&key.id))
            .condition_expression("#token = :token AND #status = :in_progress")
            .expression_attribute_names("#token", "token")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":token", s(token))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .send()
            .await;
        match delete {
            Ok(_) => Ok(()),
            Err(error) if conditional_failed(&error) => Ok(()),
            Err(error) => Err(failed(key, &error)),
        }
    }
}

impl Store for DynamoDb {
    fn claim<'a>(
        &'a self,
        key: &'a Key,
        now: SystemTime,
        lease_until: SystemTime,
        takeover: Takeover,
    ) -> BoxFuture<'a, Result<Claim, StoreError>> {
        Box::pin(self.claim(key, now, lease_until, takeover))
    }

    fn mark_ambiguous<'a>(
        &'a self,
        key: &'a Key,
        token: &'a str,
        at: SystemTime,
        keep_until: SystemTime,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.mark_ambiguous(key, token, at, keep_until))
    }

    fn complete<'a>(
        &'a self,
        key: &'a Key,
        token: &'a str,
        done: Done<'a>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.complete(key, token, done))
    }

    fn release<'a>(
        &'a self,
        key: &'a Key,
        token: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.release(key, token))
    }
}

/// The attributes that say what a record is about, for an operator reading the table.
fn identity(key: &Key) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), s(&key.id)),
        ("route".to_owned(), s(&key.route)),
        ("target".to_owned(), s(&key.target)),
        ("bucket".to_owned(), s(&key.bucket)),
        ("object_key".to_owned(), s(&key.key)),
        ("version".to_owned(), s(&key.version)),
    ])
}

/// A time kept as epoch milliseconds in attribute `name`.
fn millis_attribute(item: &HashMap<String, AttributeValue>, name: &str) -> Option<SystemTime> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|ms| ms.parse::<u64>().ok())
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

fn n(number: u64) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn conditional_failed<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    error
        .as_service_error()
        .and_then(ProvideErrorMetadata::code)
        == Some("ConditionalCheckFailedException")
}

fn failed<E, R>(key: &Key, error: &SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let message = match error
        .as_service_error()
        .and_then(ProvideErrorMetadata::code)
    {
        Some("ResourceNotFoundException") => {
            "no such table (create it with partition key pk, a string, and TTL on expires_at)"
                .to_owned()
        }
        _ => DisplayErrorContext(error).to_string(),
    };
    StoreError {
        table: key.table.clone(),
        message,
    }
}
