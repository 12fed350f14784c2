//! Events in: detect the envelope of a raw invocation payload and normalize every shape into
//! [`ObjectEvent`]s.
//!
//! Detection looks at explicit markers (`Records[].eventSource`, `Records[].EventSource`,
//! `detail-type` + `source`), never at which untagged serde variant happens to parse.

mod eventbridge;
mod gcs;
mod s3;
mod sns;
mod sqs;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use gcs::event_name as gcs_event_name;
pub use s3::decode_key;

/// One object that was created (or otherwise changed) in a bucket, whatever envelope carried it.
/// Failure records carry it as JSON, and `replay` reads it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEvent {
    /// Which wire shape (and envelopes) delivered the event.
    pub source: Source,
    /// Bucket name.
    pub bucket: String,
    /// Object key, URL-decoded exactly once (S3 notifications encode it; EventBridge does not).
    pub key: String,
    /// Object size in bytes, when the event carries it.
    pub size: Option<u64>,
    /// Object ETag, without surrounding quotes.
    pub etag: Option<String>,
    /// Object version id, for versioned buckets.
    pub version_id: Option<String>,
    /// S3's per-key ordering token; unique per object write.
    pub sequencer: Option<String>,
    /// Normalized event name in S3 notification style, e.g. `ObjectCreated:Put`.
    pub event_name: String,
    /// When the event happened, RFC 3339 with milliseconds, UTC.
    pub event_time: Option<String>,
    /// AWS region of the bucket.
    pub region: Option<String>,
    /// The SQS message id that carried this event, if any (for partial-batch failures).
    pub record_id: Option<String>,
}

/// The wire shape an [`ObjectEvent`] arrived in, outermost envelope first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    /// An S3 bucket notification invoking the function directly.
    #[serde(rename = "s3")]
    S3,
    /// An S3 notification published to SNS.
    #[serde(rename = "sns/s3")]
    SnsS3,
    /// An S3 notification sent to SQS.
    #[serde(rename = "sqs/s3")]
    SqsS3,
    /// An S3 notification published to SNS, delivered to SQS.
    #[serde(rename = "sqs/sns/s3")]
    SqsSnsS3,
    /// An EventBridge `Object Created` event invoking the function directly.
    #[serde(rename = "eventbridge")]
    EventBridge,
    /// An EventBridge event delivered through SQS.
    #[serde(rename = "sqs/eventbridge")]
    SqsEventBridge,
    /// A Google Cloud Storage notification (Pub/Sub push, or an Eventarc CloudEvent).
    #[serde(rename = "gcs")]
    Gcs,
    /// An object found by listing the bucket (`bucket-trigger backfill`), not by an event; its
    /// `event_name` is `ObjectCreated:Put`, so routes written for live events match it.
    #[serde(rename = "backfill")]
    Backfill,
}

impl Source {
    /// The name used in logs and templates (`s3`, `sqs/sns/s3`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::S3 => "s3",
            Source::SnsS3 => "sns/s3",
            Source::SqsS3 => "sqs/s3",
            Source::SqsSnsS3 => "sqs/sns/s3",
            Source::EventBridge => "eventbridge",
            Source::SqsEventBridge => "sqs/eventbridge",
            Source::Gcs => "gcs",
            Source::Backfill => "backfill",
        }
    }

    /// The same shape, as seen after one more SQS hop.
    fn via_sqs(self) -> Source {
        match self {
            Source::S3 => Source::SqsS3,
            Source::SnsS3 => Source::SqsSnsS3,
            Source::EventBridge => Source::SqsEventBridge,
            already => already,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
impl ObjectEvent {
    /// An S3 `ObjectCreated:Put` of `bucket`/`key` with every optional field empty, for tests;
    /// set the fields a test needs with struct update syntax.
    pub(crate) fn put(bucket: &str, key: &str) -> Self {
        ObjectEvent {
            source: Source::S3,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size: None,
            etag: None,
            version_id: None,
            sequencer: None,
            event_name: "ObjectCreated:Put".to_owned(),
            event_time: None,
            region: None,
            record_id: None,
        }
    }
}

/// Why an event could not be understood. Never retryable: the same bytes fail the same way.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The payload is not JSON at all.
    #[error("event is not valid JSON: {0}")]
    Json(serde_json::Error),
    /// JSON, but none of the shapes we accept.
    #[error(
        "unrecognized event shape ({found}); expected an S3 notification (Records[].eventSource \
         \"aws:s3\"), SNS or SQS records wrapping one, an EventBridge \"Object Created\" event \
         from aws.s3, or a Cloud Storage notification (a Pub/Sub push message, or a CloudEvent)"
    )]
    UnknownShape {
        /// What was seen instead, e.g. `Records[0].eventSource = "aws:dynamodb"`.
        found: String,
    },
    /// A recognized shape with a field missing or of the wrong type.
    #[error("malformed {shape}: {reason}")]
    Malformed {
        /// The shape being read, e.g. `S3 notification record 2`.
        shape: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl EventError {
    fn malformed(shape: impl Into<String>, reason: impl fmt::Display) -> Self {
        EventError::Malformed {
            shape: shape.into(),
            reason: reason.to_string(),
        }
    }
}

/// What one message (an SQS message, or the whole direct payload) contained.
#[derive(Debug)]
pub enum Body {
    /// Object events, possibly none.
    Objects(Vec<ObjectEvent>),
    /// S3's `s3:TestEvent`, sent when a notification is configured: acknowledged and ignored.
    TestEvent {
        /// The bucket being configured.
        bucket: String,
    },
}

/// One unit of acknowledgement: an SQS message, or the whole payload of a direct invocation.
#[derive(Debug)]
pub struct Message {
    /// The SQS message id, or the Pub/Sub message id (CloudEvent id) of a push; `None` for
    /// direct invocations.
    pub id: Option<String>,
    /// What the message held, or why it could not be read.
    pub body: Result<Body, EventError>,
    /// The message as received (the SQS record, or the whole direct payload), for failure
    /// records.
    pub original: Value,
    /// How many times SQS has delivered it (`attributes.ApproximateReceiveCount`), if known.
    pub receive_count: Option<u32>,
}

/// How the function was invoked, which decides the shape of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invocation {
    /// S3, SNS or EventBridge invoked the function (asynchronously); failures fail the invocation.
    Direct,
    /// An SQS event source mapping; failures are reported per message as `batchItemFailures`.
    SqsBatch,
    /// An HTTP push (Pub/Sub push subscription, Eventarc) to a function URL or to
    /// `bucket-trigger serve`: the status code acknowledges or asks for redelivery.
    Push,
}

/// A parsed invocation payload.
#[derive(Debug)]
pub struct Parsed {
    /// How the function was invoked.
    pub invocation: Invocation,
    /// The messages, each parsed on its own so one bad SQS message cannot sink the batch.
    pub messages: Vec<Message>,
}

impl Parsed {
    /// All object events of all messages that parsed.
    pub fn objects(&self) -> impl Iterator<Item = &ObjectEvent> {
        self.messages
            .iter()
            .filter_map(|m| match &m.body {
                Ok(Body::Objects(objects)) => Some(objects.iter()),
                _ => None,
            })
            .flatten()
    }
}

/// A deserialization error with the path to the field it is about (`Records[0].s3.object.size:
/// invalid type ...`), or just the error at the top level.
fn at_path(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    match error.path().to_string().as_str() {
        "." => error.inner().to_string(),
        path => format!("{path}: {}", error.inner()),
    }
}

/// Parses raw payload bytes (from a file or the Lambda runtime).
pub fn parse_bytes(bytes: &[u8]) -> Result<Parsed, EventError> {
    let value: Value = serde_json::from_slice(bytes).map_err(EventError::Json)?;
    parse(value)
}

/// Parses an invocation payload of any supported shape.
///
/// An error means the payload as a whole is unusable. Within an SQS batch, a bad message is
/// reported in its own [`Message::body`] instead, so the rest of the batch proceeds.
pub fn parse(value: Value) -> Result<Parsed, EventError> {
    if first_record_source(&value).as_deref() == Some("aws:sqs") {
        return Ok(Parsed {
            invocation: Invocation::SqsBatch,
            messages: sqs::parse(value)?,
        });
    }
    let original = value.clone();
    let body = parse_body(value)?;
    Ok(Parsed {
        invocation: Invocation::Direct,
        messages: vec![Message {
            id: None,
            body: Ok(body),
            original,
            receive_count: None,
        }],
    })
}

/// Parses the JSON body of an HTTP push: a Pub/Sub push envelope or a structured CloudEvent
/// (a binary-mode CloudEvent, rebuilt from its `ce-*` headers). AWS shapes are refused: they
/// do not arrive by push, and accepting them would let a push endpoint be fed S3 events.
/// The envelope's `deliveryAttempt` (set when the subscription has a dead-letter policy)
/// becomes the message's receive count.
pub fn parse_push(value: Value) -> Result<Parsed, EventError> {
    let body = if gcs::is_push(&value) {
        gcs::parse_push(&value)?
    } else if gcs::is_cloud_event(&value) {
        gcs::parse_cloud_event(&value)?
    } else {
        return Err(EventError::UnknownShape {
            found: format!(
                "{} (an HTTP push takes only Cloud Storage events)",
                describe(&value)
            ),
        });
    };
    let receive_count = value
        .get("deliveryAttempt")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok());
    let id = value
        .pointer("/message/messageId")
        .or_else(|| value.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Parsed {
        invocation: Invocation::Push,
        messages: vec![Message {
            id,
            body: Ok(body),
            original: value,
            receive_count,
        }],
    })
}

/// Parses a notification that is not an SQS batch: S3 records, SNS records, an EventBridge event
/// or an S3 test event. SQS bodies hold exactly these.
fn parse_body(value: Value) -> Result<Body, EventError> {
    if is_test_event(&value) {
        return Ok(Body::TestEvent {
            bucket: value["Bucket"].as_str().unwrap_or_default().to_owned(),
        });
    }
    if let Some(source) = first_record_source(&value) {
        return match source.as_str() {
            "aws:s3" => s3::parse(value, Source::S3).map(Body::Objects),
            "aws:sns" => sns::parse(value),
            other => Err(EventError::UnknownShape {
                found: format!("Records[0].eventSource = {other:?}"),
            }),
        };
    }
    if value.get("detail-type").is_some() {
        return eventbridge::parse(value).map(|event| Body::Objects(vec![event]));
    }
    if gcs::is_push(&value) {
        return gcs::parse_push(&value);
    }
    if gcs::is_cloud_event(&value) {
        return gcs::parse_cloud_event(&value);
    }
    Err(EventError::UnknownShape {
        found: describe(&value),
    })
}

/// `Records[0].eventSource` (S3, SQS) or `Records[0].EventSource` (SNS), if present.
fn first_record_source(value: &Value) -> Option<String> {
    let first = value.get("Records")?.as_array()?.first()?;
    first
        .get("eventSource")
        .or_else(|| first.get("EventSource"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn is_test_event(value: &Value) -> bool {
    value.get("Event").and_then(Value::as_str) == Some("s3:TestEvent")
}

/// A short description of an unrecognized value, naming no contents.
fn describe(value: &Value) -> String {
    match value {
        Value::Object(map) if map.is_empty() => "an empty object".to_owned(),
        Value::Object(map) => {
            let keys: Vec<&str> = map.keys().take(6).map(String::as_str).collect();
            format!("an object with keys {}", keys.join(", "))
        }
        Value::Array(_) => "an array".to_owned(),
        Value::String(_) => "a string".to_owned(),
        Value::Number(_) => "a number".to_owned(),
        Value::Bool(_) => "a boolean".to_owned(),
        Value::Null => "null".to_owned(),
    }
}
