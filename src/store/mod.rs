//! Store: the idempotency record of each event × route × target, so that an object version
//! starts one run per target however often it is delivered. A delivery first *claims* its key
//! (a conditional write: IN_PROGRESS until a lease just past the invocation's deadline), sends
//! only if it won the claim, then marks it COMPLETED (with the remote id, kept for a window) or
//! *releases* it when nothing ran, so that a retry may claim it again. A lease that ran out
//! (a crashed invocation) is taken over. [`DynamoDb`] keeps the records; opt-in per route.
//! Failure records go to an SQS [`Queue`] when one is configured.

mod dynamodb;
mod queue;

use std::time::SystemTime;

use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};

use crate::event::ObjectEvent;

pub use dynamodb::DynamoDb;
pub use queue::{MAX_RECORD_BYTES, Queue, QueueError, Received};

/// What identifies one delivery: route, target and object version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The table holding it.
    pub table: String,
    /// SHA-256 (hex) of [`Key::canonical`]: fixed length, whatever the object key's.
    pub id: String,
    /// Route name.
    pub route: String,
    /// Target description (`airflow v2 dag load_sales`).
    pub target: String,
    /// Bucket.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Which version of the object: `version:<id>` (versioned buckets), else
    /// `etag:<etag>:<size>` (the content: rewriting identical bytes is the same version), else
    /// `sequencer:<s>`.
    pub version: String,
}

impl Key {
    /// The key for `event` on `route` × `target` in `table`, or `None` when the event names
    /// no version at all (then every delivery is sent, as without a store).
    pub fn new(table: &str, route: &str, target: &str, event: &ObjectEvent) -> Option<Key> {
        // ETag and size before the sequencer: a bucket listing (backfill) knows the first two
        // but never the third, and must find the record a live event left.
        let version = match (&event.version_id, &event.etag, &event.sequencer) {
            (Some(version), _, _) => format!("version:{version}"),
            (None, Some(etag), _) => format!("etag:{etag}:{}", event.size.unwrap_or(0)),
            (None, None, Some(sequencer)) => format!("sequencer:{sequencer}"),
            (None, None, None) => return None,
        };
        let mut key = Key {
            table: table.to_owned(),
            id: String::new(),
            route: route.to_owned(),
            target: target.to_owned(),
            bucket: event.bucket.clone(),
            key: event.key.clone(),
            version,
        };
        key.id = crate::template::hex(&Sha256::digest(key.canonical().as_bytes()));
        Some(key)
    }

    /// Every part, each length-prefixed so no two keys share a canonical form.
    fn canonical(&self) -> String {
        [
            &self.route,
            &self.target,
            &self.bucket,
            &self.key,
            &self.version,
        ]
        .iter()
        .map(|part| format!("{}:{part}", part.len()))
        .collect::<Vec<_>>()
        .join("|")
    }
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Ours: send. `token` proves it when completing or releasing.
    Won {
        /// This claim's token.
        token: String,
        /// Whether it took over a lease that had run out (a crashed invocation).
        took_over: bool,
        /// When the record it took over was marked ambiguous (sent, no answer), if it was:
        /// the target's "did it run?" lookup, if it has one, is asked before sending again.
        ambiguous_since: Option<SystemTime>,
    },
    /// Delivered before.
    Completed {
        /// The orchestrator's id for the run, if it gave one.
        remote_id: Option<String>,
        /// The idempotency key sent (Airflow run id), if any.
        run_id: Option<String>,
    },
    /// Another invocation is delivering it now, until `until`.
    Busy {
        /// When its lease runs out.
        until: SystemTime,
    },
    /// Sent before without an answer, to a target with no idempotency key: not sent again
    /// unless the claim asks to take such records ([`Takeover::Ambiguous`]: a target that can
    /// say whether it ran, or `replay --resend-may-have-run`).
    Ambiguous {
        /// When that delivery ended.
        since: SystemTime,
    },
}

/// What a claim may take over besides a free or expired record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Takeover {
    /// Nothing else.
    #[default]
    Expired,
    /// An ambiguous record too: the target is asked whether it ran first, or the operator
    /// checked that the request did not run.
    Ambiguous,
}

/// The store could not be used; the delivery is not sent (retryable).
#[derive(Debug, Clone, thiserror::Error)]
#[error("idempotency table {table}: {message}")]
pub struct StoreError {
    /// Table name.
    pub table: String,
    /// What went wrong.
    pub message: String,
}

/// Where idempotency records live.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Claims `key` until `lease_until` unless it is completed, held by a live lease, or
    /// ambiguous (unless `takeover` allows that).
    fn claim<'a>(
        &'a self,
        key: &'a Key,
        now: SystemTime,
        lease_until: SystemTime,
        takeover: Takeover,
    ) -> BoxFuture<'a, Result<Claim, StoreError>>;

    /// Marks `key` (claimed with `token`) ambiguous: sent, no answer, the target cannot tell.
    /// Kept until `keep_until`; redeliveries then end as "may have run" without sending.
    fn mark_ambiguous<'a>(
        &'a self,
        key: &'a Key,
        token: &'a str,
        at: SystemTime,
        keep_until: SystemTime,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Marks `key` (claimed with `token`) completed, kept until `keep_until`.
    fn complete<'a>(
        &'a self,
        key: &'a Key,
        token: &'a str,
        done: Done<'a>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Gives the claim up: nothing ran, a retry may claim it.
    fn release<'a>(&'a self, key: &'a Key, token: &'a str)
    -> BoxFuture<'a, Result<(), StoreError>>;
}

/// What a completed delivery records.
#[derive(Debug, Clone, Copy)]
pub struct Done<'a> {
    /// The orchestrator's id for the run.
    pub remote_id: Option<&'a str>,
    /// The idempotency key sent.
    pub run_id: Option<&'a str>,
    /// When it completed.
    pub at: SystemTime,
    /// Until when the record is kept (the table's TTL attribute).
    pub keep_until: SystemTime,
}

/// A store in memory, for the delivery loop's unit tests.
#[cfg(test)]
pub mod memory {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    /// One record.
    #[derive(Debug, Clone)]
    pub enum Record {
        /// Claimed with a token until a time; the record it took over was ambiguous since a
        /// time, if it was.
        InProgress(String, SystemTime, Option<SystemTime>),
        /// Completed, with its remote id.
        Completed(Option<String>, Option<String>),
        /// Sent with no answer, at a time.
        Ambiguous(SystemTime),
    }

    /// Records by key id; `fail` makes every call fail.
    #[derive(Debug, Default)]
    pub struct Memory {
        /// The records.
        pub records: Mutex<HashMap<String, Record>>,
        /// Fail every call (the store is down).
        pub fail: bool,
    }

    impl Memory {
        fn check(&self, key: &Key) -> Result<(), StoreError> {
            match self.fail {
                true => Err(StoreError {
                    table: key.table.clone(),
                    message: "unavailable".into(),
                }),
                false => Ok(()),
            }
        }
    }

    impl Store for Memory {
        fn claim<'a>(
            &'a self,
            key: &'a Key,
            now: SystemTime,
            lease_until: SystemTime,
            takeover: Takeover,
        ) -> BoxFuture<'a, Result<Claim, StoreError>> {
            let result = self.check(key).map(|()| {
                let mut records = self.records.lock().unwrap();
                let mut ambiguous_since = None;
                let took_over = match records.get(&key.id) {
                    Some(Record::Ambiguous(since)) if takeover == Takeover::Expired => {
                        return Claim::Ambiguous { since: *since };
                    }
                    Some(Record::Ambiguous(since)) => {
                        ambiguous_since = Some(*since);
                        true
                    }
                    Some(Record::Completed(remote_id, run_id)) => {
                        return Claim::Completed {
                            remote_id: remote_id.clone(),
                            run_id: run_id.clone(),
                        };
                    }
                    Some(Record::InProgress(_, until, _)) if *until > now => {
                        return Claim::Busy { until: *until };
                    }
                    Some(Record::InProgress(_, _, since)) => {
                        ambiguous_since = *since;
                        true
                    }
                    None => false,
                };
                let token = format!("t{}", fastrand::u64(..));
                records.insert(
                    key.id.clone(),
                    Record::InProgress(token.clone(), lease_until, ambiguous_since),
                );
                Claim::Won {
                    token,
                    took_over,
                    ambiguous_since,
                }
            });
            Box::pin(std::future::ready(result))
        }

        fn complete<'a>(
            &'a self,
            key: &'a Key,
            _: &'a str,
            done: Done<'a>,
        ) -> BoxFuture<'a, Result<(), StoreError>> {
            let result = self.check(key).map(|()| {
                let record = Record::Completed(
                    done.remote_id.map(str::to_owned),
                    done.run_id.map(str::to_owned),
                );
                self.records.lock().unwrap().insert(key.id.clone(), record);
            });
            Box::pin(std::future::ready(result))
        }

        fn mark_ambiguous<'a>(
            &'a self,
            key: &'a Key,
            _: &'a str,
            at: SystemTime,
            _: SystemTime,
        ) -> BoxFuture<'a, Result<(), StoreError>> {
            let result = self.check(key).map(|()| {
                let record = Record::Ambiguous(at);
                self.records.lock().unwrap().insert(key.id.clone(), record);
            });
            Box::pin(std::future::ready(result))
        }

        fn release<'a>(
            &'a self,
            key: &'a Key,
            token: &'a str,
        ) -> BoxFuture<'a, Result<(), StoreError>> {
            let result = self.check(key).map(|()| {
                let mut records = self.records.lock().unwrap();
                if matches!(records.get(&key.id), Some(Record::InProgress(t, ..)) if t == token) {
                    records.remove(&key.id);
                }
            });
            Box::pin(std::future::ready(result))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_version_and_differ_by_every_part() {
        let mut event = ObjectEvent::put("b", "k.csv");
        event.sequencer = Some("0A".into());
        event.etag = Some("e".into());
        event.size = Some(7);
        let key = Key::new("t", "r", "webhook", &event).unwrap();
        assert_eq!(key.version, "etag:e:7");
        assert_eq!(key.id.len(), 64);
        // A listing (no sequencer) finds the record a live event (with one) left.
        let mut listed = event.clone();
        listed.sequencer = None;
        assert_eq!(Key::new("t", "r", "webhook", &listed).unwrap().id, key.id);
        let mut no_etag = event.clone();
        no_etag.etag = None;
        assert_eq!(
            Key::new("t", "r", "webhook", &no_etag).unwrap().version,
            "sequencer:0A"
        );
        event.version_id = Some("v1".into());
        assert_eq!(
            Key::new("t", "r", "webhook", &event).unwrap().version,
            "version:v1"
        );
        let ids: Vec<String> = [
            ("r", "webhook", "b", "k.csv"),
            ("r2", "webhook", "b", "k.csv"),
            ("r", "webhook2", "b", "k.csv"),
            ("r", "webhook", "b2", "k.csv"),
            ("r", "webhook", "b", "k2.csv"),
            // Length prefixes: moving a character between parts changes the key.
            ("r|", "webhook", "b", "k.csv"),
        ]
        .iter()
        .map(|(route, target, bucket, key)| {
            let mut event = event.clone();
            event.bucket = (*bucket).into();
            event.key = (*key).into();
            Key::new("t", route, target, &event).unwrap().id
        })
        .collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());

        let mut bare = ObjectEvent::put("b", "k");
        bare.etag = None;
        bare.sequencer = None;
        bare.version_id = None;
        assert_eq!(Key::new("t", "r", "w", &bare), None);
    }
}
