//! Report: what one invocation did. One [`Outcome`] per event × route × target (its failure
//! still typed), what was skipped and why, unreadable messages, the [`Summary`] counts, the
//! answers derived from them (the SQS `batchItemFailures`, the retryable failures), and the
//! [`FailureRecord`] of each delivery that ended failed, which operators read and `replay` runs.

use aws_lambda_events::sqs::SqsBatchResponse;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::delivery::{Delivered, Status};
use crate::event::{Invocation, ObjectEvent};

/// What a failure record says it is.
pub const RECORD_KIND: &str = "bucket-trigger/failure";

/// One event × route × target that ended failed: everything an operator needs to see what did
/// not run and why, and everything `replay` needs to run it again. Written to the log and, when
/// configured, to the failure queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// Always [`RECORD_KIND`].
    pub kind: String,
    /// The record format, 1.
    pub version: u32,
    /// Route name.
    pub route: String,
    /// Target description (`airflow v2 dag load_sales`).
    pub target: String,
    /// Bucket.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// The normalized event (what `replay` runs).
    pub event: ObjectEvent,
    /// The message as received (the SQS record or the direct payload); omitted when too big
    /// for the queue.
    #[serde(default)]
    pub original: Option<Value>,
    /// The idempotency key sent (Airflow `dag_run_id`), if any.
    #[serde(default)]
    pub run_id: Option<String>,
    /// Requests sent.
    pub attempts: u32,
    /// The last HTTP status, if any answer came.
    #[serde(default)]
    pub http_status: Option<u16>,
    /// Whether a later attempt may succeed.
    pub retryable: bool,
    /// The request may have reached the target, which has no idempotency key: check it before
    /// replaying.
    pub may_have_run: bool,
    /// Why, scrubbed of secrets like every text the function writes.
    pub error: String,
    /// When the delivery started and ended (RFC 3339, UTC).
    pub started_at: String,
    /// When it ended.
    pub failed_at: String,
    /// How many times SQS had delivered the message.
    #[serde(default)]
    pub receive_count: Option<u32>,
    /// The idempotency record's table and id, when the route keeps one.
    #[serde(default)]
    pub idempotency: Option<IdempotencyRef>,
}

/// Where a delivery's idempotency record lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRef {
    /// DynamoDB table.
    pub table: String,
    /// The record's key (`pk`).
    pub id: String,
    /// Which object version (`version:…`, `etag:…:size`, `sequencer:…`).
    pub version: String,
}

/// What became of a failure's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordFate {
    /// Written to the log only.
    Logged,
    /// Written to the log and the failure queue.
    Queued,
}

/// One event × route × target.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Bucket.
    pub bucket: String,
    /// Decoded key.
    pub key: String,
    /// The SQS message that carried the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    /// Route name.
    pub route: String,
    /// Target description.
    pub target: String,
    /// How delivery ended (with the run id sent, if any).
    #[serde(flatten)]
    pub delivered: Delivered,
    /// For failures: whether a failure record was written, and where.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_record: Option<RecordFate>,
    /// A failure that must not be delivered again by the platform: its record is queued, or
    /// the request may have run on a target that cannot tell (re-sending could run it twice).
    #[serde(skip)]
    pub settled: bool,
    /// How long the delivery took, retries and waits included (milliseconds).
    pub elapsed_ms: u64,
}

impl Outcome {
    /// Whether this delivery failed.
    pub fn failed(&self) -> bool {
        self.delivered.status() == Status::Failed
    }

    /// Whether the platform (SQS, Lambda's retries) should deliver it again.
    pub fn wants_redelivery(&self) -> bool {
        self.failed() && !self.settled
    }
}

/// Something received but not delivered, on purpose.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// Bucket.
    pub bucket: String,
    /// Key (empty for test events).
    pub key: String,
    /// The SQS message, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    /// Why.
    pub reason: String,
}

/// An SQS message whose body could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct BadMessage {
    /// The SQS message id.
    pub record_id: Option<String>,
    /// Why.
    pub error: String,
}

/// Counts for the log line and the answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Object events received.
    pub events: usize,
    /// Runs started.
    pub triggered: usize,
    /// Runs that already existed.
    pub already_triggered: usize,
    /// Requests printed, not sent.
    pub dry_run: usize,
    /// Deliveries that failed.
    pub failed: usize,
    /// Events skipped (no route, test events).
    pub skipped: usize,
    /// SQS messages that could not be read.
    pub bad_messages: usize,
}

/// What one invocation did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// How the function was invoked.
    #[serde(skip)]
    pub invocation: Invocation,
    /// Counts.
    pub summary: Summary,
    /// One per event × route × target.
    pub outcomes: Vec<Outcome>,
    /// Received, deliberately not delivered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
    /// Unreadable SQS messages.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bad_messages: Vec<BadMessage>,
}

impl Report {
    /// The report of an invocation that received `events` object events.
    pub fn new(
        invocation: Invocation,
        events: usize,
        outcomes: Vec<Outcome>,
        skipped: Vec<Skipped>,
        bad_messages: Vec<BadMessage>,
    ) -> Report {
        let mut summary = Summary {
            events,
            skipped: skipped.len(),
            bad_messages: bad_messages.len(),
            ..Summary::default()
        };
        for outcome in &outcomes {
            match outcome.delivered.status() {
                Status::Triggered => summary.triggered += 1,
                Status::AlreadyTriggered => summary.already_triggered += 1,
                Status::DryRun => summary.dry_run += 1,
                Status::Failed => summary.failed += 1,
            }
        }
        Report {
            invocation,
            summary,
            outcomes,
            skipped,
            bad_messages,
        }
    }

    /// Failed deliveries that a later retry may fix (and that no queued record settled).
    pub fn retryable_failures(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes
            .iter()
            .filter(|o| o.wants_redelivery() && o.delivered.retryable())
    }

    /// SQS message ids to report as `batchItemFailures`: every message with a failed delivery or
    /// an unreadable body, so SQS redelivers it and, past `maxReceiveCount`, moves it to the
    /// dead-letter queue rather than losing it; except failures a record settled (queued, or
    /// "may have run"). Sorted, each once.
    pub fn failed_message_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .outcomes
            .iter()
            .filter(|o| o.wants_redelivery())
            .filter_map(|o| o.record_id.clone())
            .chain(self.bad_messages.iter().filter_map(|m| m.record_id.clone()))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The answer to an SQS event source with `ReportBatchItemFailures`. A failure whose
    /// message has no id (SQS always sends one; a hand-made batch may not) is answered with an
    /// empty identifier, which Lambda reads as "the whole batch failed": redelivered, not lost.
    pub fn sqs_response(&self) -> SqsBatchResponse {
        let mut ids = self.failed_message_ids();
        let anonymous = self
            .outcomes
            .iter()
            .filter(|o| o.wants_redelivery())
            .map(|o| &o.record_id)
            .chain(self.bad_messages.iter().map(|m| &m.record_id))
            .any(Option::is_none);
        if anonymous {
            ids.push(String::new());
        }
        let mut response = SqsBatchResponse::default();
        response.set_failures(ids);
        response
    }

    /// Whether anything failed.
    pub fn has_failures(&self) -> bool {
        self.summary.failed > 0 || self.summary.bad_messages > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::{Ending, Failure};
    use serde_json::json;

    fn outcome(record: &str, ending: Ending) -> Outcome {
        Outcome {
            bucket: "b".into(),
            key: format!("{record}.csv"),
            record_id: Some(record.into()),
            route: "r".into(),
            target: "airflow v2 dag d".into(),
            delivered: Delivered {
                run_id: Some(format!("r__{record}")),
                ending,
                attempts: 1,
                http_status: Some(200),
                warning: None,
                may_have_arrived: false,
            },
            failure_record: None,
            settled: false,
            elapsed_ms: 12,
        }
    }

    fn triggered() -> Ending {
        Ending::Triggered {
            detail: "dag run created".into(),
            remote_id: None,
        }
    }

    fn report() -> Report {
        let exhausted = Failure::Exhausted {
            reason: "HTTP 503".into(),
            attempts: 4,
        };
        Report::new(
            Invocation::SqsBatch,
            5,
            vec![
                outcome("m1", triggered()),
                outcome("m2", Ending::Failed(exhausted)),
                outcome("m3", Ending::AlreadyTriggered { remote_id: None }),
                outcome("m4", Ending::Failed(Failure::Refused("HTTP 400".into()))),
                // A second target of m2's event failed too: m2 is reported once.
                outcome("m2", Ending::Failed(Failure::Refused("HTTP 404".into()))),
            ],
            vec![Skipped {
                bucket: "b".into(),
                key: String::new(),
                record_id: Some("m5".into()),
                reason: "s3:TestEvent".into(),
            }],
            vec![BadMessage {
                record_id: Some("m0".into()),
                error: "not JSON".into(),
            }],
        )
    }

    #[test]
    fn counts_every_ending() {
        assert_eq!(
            report().summary,
            Summary {
                events: 5,
                triggered: 1,
                already_triggered: 1,
                dry_run: 0,
                failed: 3,
                skipped: 1,
                bad_messages: 1,
            }
        );
        assert!(report().has_failures());
        let fine = Report::new(
            Invocation::Direct,
            1,
            vec![outcome("m1", triggered())],
            vec![],
            vec![],
        );
        assert!(!fine.has_failures());
    }

    #[test]
    fn sqs_answer_names_each_failed_or_unreadable_message_once() {
        let answer = serde_json::to_value(report().sqs_response()).unwrap();
        assert_eq!(
            answer,
            json!({"batchItemFailures": [
                {"itemIdentifier": "m0"},
                {"itemIdentifier": "m2"},
                {"itemIdentifier": "m4"},
            ]})
        );
    }

    #[test]
    fn only_retryable_failures_are_retryable() {
        let report = report();
        let keys: Vec<&str> = report
            .retryable_failures()
            .map(|o| o.key.as_str())
            .collect();
        assert_eq!(keys, ["m2.csv"]);
    }

    #[test]
    fn outcomes_render_flat_with_typed_failures_as_text() {
        let report = report();
        let json = serde_json::to_value(&report.outcomes[1]).unwrap();
        assert_eq!(
            json,
            json!({
                "bucket": "b", "key": "m2.csv", "record_id": "m2", "route": "r",
                "target": "airflow v2 dag d", "run_id": "r__m2", "status": "failed",
                "retryable": true, "attempts": 1, "http_status": 200,
                "detail": "HTTP 503 (gave up after 4 attempts)", "elapsed_ms": 12,
            })
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["skipped"][0]["reason"], "s3:TestEvent");
        assert_eq!(json["bad_messages"][0]["record_id"], "m0");
        assert!(json.get("invocation").is_none());
    }
}
