//! Properties of the event parser: every shape, generated from strategies that build the real
//! wire shapes, normalizes to exactly the object generated; mutated, arbitrary JSON and
//! arbitrary bytes never panic and keep the invariants.

use bucket_trigger::event::{self, Body, EventError, Invocation, ObjectEvent, Parsed, Source};
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::TestCaseError;
use serde_json::{Map, Value, json};

use super::keys::{encode_key, key};
use super::{cases, re};
use crate::support::{root, sample};

pub(super) const S3_EVENT_NAMES: &[&str] = &[
    "ObjectCreated:Put",
    "ObjectCreated:Post",
    "ObjectCreated:Copy",
    "ObjectCreated:CompleteMultipartUpload",
    "ObjectRemoved:Delete",
    "ObjectRemoved:DeleteMarkerCreated",
    "ObjectRestore:Completed",
    "LifecycleExpiration:Delete",
    "ObjectTagging:Put",
];

/// A time as an event writes it.
#[derive(Debug, Clone)]
enum Time {
    /// An instant, written in RFC 3339 with this offset (minutes) and precision.
    At {
        secs: i64,
        nanos: u32,
        offset_minutes: i32,
        precision: SecondsFormat,
    },
    /// Text that is no time (S3 records keep it as is).
    Text(String),
}

impl Time {
    fn instant(secs: i64, nanos: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, nanos).expect("generated in range")
    }

    fn written(&self) -> String {
        match self {
            Time::At {
                secs,
                nanos,
                offset_minutes,
                precision,
            } => {
                let offset = FixedOffset::east_opt(offset_minutes * 60).expect("within a day");
                Time::instant(*secs, *nanos)
                    .with_timezone(&offset)
                    .to_rfc3339_opts(*precision, true)
            }
            Time::Text(text) => text.clone(),
        }
    }

    /// What the parser makes of it: UTC, milliseconds, `Z`.
    fn normalized(&self) -> String {
        match self {
            Time::At {
                secs,
                nanos,
                precision,
                ..
            } => {
                let nanos = if matches!(precision, SecondsFormat::Secs) {
                    0
                } else {
                    *nanos
                };
                Time::instant(*secs, nanos).to_rfc3339_opts(SecondsFormat::Millis, true)
            }
            Time::Text(text) => text.clone(),
        }
    }
}

fn time() -> BoxedStrategy<Time> {
    // From 1970-01-02 to 9999-12-30, so that any offset still writes a four-digit year.
    let instant = (
        86_400i64..=253_402_300_799 - 86_400,
        0u32..1_000_000_000,
        -(23 * 60 + 59)..=23 * 60 + 59,
        select(vec![
            SecondsFormat::Secs,
            SecondsFormat::Millis,
            SecondsFormat::Micros,
            SecondsFormat::Nanos,
            SecondsFormat::AutoSi,
        ]),
    )
        .prop_map(|(secs, nanos, offset_minutes, precision)| Time::At {
            secs,
            nanos,
            offset_minutes,
            precision,
        });
    prop_oneof![
        4 => instant,
        1 => re("[a-z ]{0,12}").prop_map(Time::Text),
    ]
    .boxed()
}

/// One object write as the generator means it; each envelope writes it its own way.
#[derive(Debug, Clone)]
pub(super) struct Obj {
    bucket: String,
    key: String,
    /// How the S3 encoder spells the key (see [`encode_key`]).
    key_style: Vec<u8>,
    size: Option<u64>,
    /// The ETag, and whether it is written in quotes.
    etag: Option<(String, bool)>,
    version_id: Option<String>,
    sequencer: Option<String>,
    /// S3's `eventName`.
    event_name: String,
    /// EventBridge's `detail.reason`.
    reason: Option<String>,
    time: Option<Time>,
    region: Option<String>,
    /// Absent optional fields are written as `null` instead of left out.
    nulls: bool,
}

/// A bucket name S3 allows.
pub(super) fn real_bucket() -> BoxedStrategy<String> {
    re("[a-z0-9][a-z0-9.-]{1,40}[a-z0-9]")
}

/// A bucket name: one S3 allows, or any text.
pub(super) fn bucket() -> BoxedStrategy<String> {
    prop_oneof![
        3 => real_bucket(),
        1 => re("\\PC{1,12}"),
    ]
    .boxed()
}

prop_compose! {
    pub(super) fn obj()(
        bucket in bucket(),
        key in key(),
        key_style in vec(any::<u8>(), 0..8),
        size in option::of(prop_oneof![0..=i64::MAX as u64, Just(0), Just(i64::MAX as u64)]),
        etag in option::of((re("[0-9a-f]{32}(-[1-9][0-9]{0,3})?"), any::<bool>())),
        version_id in option::of(prop_oneof![
            re("[A-Za-z0-9._]{0,32}"),
            Just(String::new()),
            Just("null".to_owned()),
        ]),
        sequencer in option::of(re("[0-9A-F]{16,18}")),
        event_name in prop_oneof![
            3 => select(S3_EVENT_NAMES).prop_map(str::to_owned),
            1 => re("\\PC{0,24}"),
        ],
        reason in option::of(prop_oneof![
            3 => select(vec!["PutObject", "POST Object", "CopyObject", "CompleteMultipartUpload"])
                .prop_map(str::to_owned),
            1 => re("\\PC{0,16}"),
        ]),
        time in option::of(time()),
        region in option::of(re("[a-z]{2}-[a-z]{4,9}-[1-3]")),
        nulls in any::<bool>(),
    ) -> Obj {
        Obj {
            bucket, key, key_style, size, etag, version_id, sequencer, event_name, reason, time,
            region, nulls,
        }
    }
}

impl Obj {
    /// Inserts an optional field: the value, or `null` or nothing when absent.
    fn put(&self, map: &mut Map<String, Value>, name: &str, value: Option<Value>) {
        match value {
            Some(value) => {
                map.insert(name.to_owned(), value);
            }
            None if self.nulls => {
                map.insert(name.to_owned(), Value::Null);
            }
            None => {}
        }
    }

    fn etag_written(&self) -> Option<Value> {
        self.etag.as_ref().map(|(etag, quoted)| {
            Value::from(if *quoted {
                format!("\"{etag}\"")
            } else {
                etag.clone()
            })
        })
    }

    /// One record of an S3 notification, with the fields S3 sends that the parser ignores.
    fn s3_record(&self) -> Value {
        let mut object = Map::new();
        object.insert("key".into(), encode_key(&self.key, &self.key_style).into());
        self.put(&mut object, "size", self.size.map(Value::from));
        self.put(&mut object, "eTag", self.etag_written());
        self.put(
            &mut object,
            "versionId",
            self.version_id.clone().map(Value::from),
        );
        self.put(
            &mut object,
            "sequencer",
            self.sequencer.clone().map(Value::from),
        );
        let mut record = json!({
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "eventName": self.event_name,
            "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
            "requestParameters": {"sourceIPAddress": "203.0.113.10"},
            "responseElements": {
                "x-amz-request-id": "C3D13FE58DE4C810",
                "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"
            },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "bucket-trigger",
                "bucket": {
                    "name": self.bucket,
                    "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                    "arn": format!("arn:aws:s3:::{}", self.bucket)
                },
                "object": object
            }
        });
        let map = record.as_object_mut().expect("an object");
        self.put(map, "awsRegion", self.region.clone().map(Value::from));
        self.put(
            map,
            "eventTime",
            self.time.as_ref().map(|t| t.written().into()),
        );
        record
    }

    /// An EventBridge `Object Created` event (the key is not encoded; a time that is no time
    /// is left out, as EventBridge always sends one that is).
    fn eventbridge_event(&self) -> Value {
        let mut object = Map::new();
        object.insert("key".into(), self.key.clone().into());
        self.put(&mut object, "size", self.size.map(Value::from));
        self.put(&mut object, "etag", self.etag_written());
        self.put(
            &mut object,
            "version-id",
            self.version_id.clone().map(Value::from),
        );
        self.put(
            &mut object,
            "sequencer",
            self.sequencer.clone().map(Value::from),
        );
        let mut detail = json!({
            "version": "0",
            "bucket": {"name": self.bucket},
            "object": object,
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "source-ip-address": "203.0.113.15"
        });
        self.put(
            detail.as_object_mut().expect("an object"),
            "reason",
            self.reason.clone().map(Value::from),
        );
        let mut event = json!({
            "version": "0",
            "id": "17793124-05d4-b198-2fde-7ededc63b103",
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": "123456789012",
            "resources": [format!("arn:aws:s3:::{}", self.bucket)],
            "detail": detail
        });
        let map = event.as_object_mut().expect("an object");
        self.put(map, "region", self.region.clone().map(Value::from));
        let time = match &self.time {
            Some(time @ Time::At { .. }) => Some(time.written().into()),
            _ => None,
        };
        self.put(map, "time", time);
        event
    }

    /// The same object in a bucket S3 could have (3-63 of `a-z0-9.-`, a letter or digit at
    /// each end), as targets that put the bucket in a URL path need.
    pub(super) fn in_real_bucket(self, bucket: String) -> Obj {
        Obj { bucket, ..self }
    }

    /// The event the parser must produce from this object arriving as `source`.
    pub(super) fn expected(&self, source: Source, record_id: Option<&str>) -> ObjectEvent {
        let eventbridge = matches!(source, Source::EventBridge | Source::SqsEventBridge);
        let event_name = if eventbridge {
            let suffix = match self.reason.as_deref() {
                Some("PutObject") => "Put",
                Some("POST Object") => "Post",
                Some("CopyObject") => "Copy",
                Some("CompleteMultipartUpload") => "CompleteMultipartUpload",
                Some(other) => other,
                None => "*",
            };
            format!("ObjectCreated:{suffix}")
        } else {
            self.event_name.clone()
        };
        let event_time = match &self.time {
            Some(time @ Time::At { .. }) => Some(time.normalized()),
            Some(Time::Text(text)) if !eventbridge => Some(text.clone()),
            _ => None,
        };
        ObjectEvent {
            source,
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            size: self.size,
            etag: self.etag.as_ref().map(|(etag, _)| etag.clone()),
            version_id: self.version_id.clone().filter(|v| !v.is_empty()),
            sequencer: self.sequencer.clone(),
            event_name,
            event_time,
            region: self.region.clone(),
            record_id: record_id.map(str::to_owned),
        }
    }
}

/// What one SNS message holds.
#[derive(Debug, Clone)]
enum SnsMessage {
    S3(Vec<Obj>),
    Test(String),
}

/// A notification: what a direct invocation or an SQS message body holds.
#[derive(Debug, Clone)]
enum Shape {
    /// An S3 notification with these records.
    S3(Vec<Obj>),
    /// S3's `s3:TestEvent` for this bucket.
    Test(String),
    /// SNS records (in an SQS body, one message is SNS's `Notification` form).
    Sns(Vec<SnsMessage>),
    EventBridge(Box<Obj>),
}

/// A whole invocation payload.
#[derive(Debug, Clone)]
enum Payload {
    Direct(Shape),
    /// An SQS batch: message id and body of each message.
    Sqs(Vec<(String, Shape)>),
}

fn objs() -> BoxedStrategy<Vec<Obj>> {
    vec(obj(), 1..4).boxed()
}

fn shape() -> BoxedStrategy<Shape> {
    let sns_message = prop_oneof![
        4 => objs().prop_map(SnsMessage::S3),
        1 => bucket().prop_map(SnsMessage::Test),
    ];
    prop_oneof![
        3 => objs().prop_map(Shape::S3),
        1 => bucket().prop_map(Shape::Test),
        2 => vec(sns_message, 1..3).prop_map(Shape::Sns),
        2 => obj().prop_map(|obj| Shape::EventBridge(Box::new(obj))),
    ]
    .boxed()
}

fn message_id() -> BoxedStrategy<String> {
    re("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}")
}

fn payload() -> BoxedStrategy<Payload> {
    prop_oneof![
        shape().prop_map(Payload::Direct),
        vec((message_id(), shape()), 1..4).prop_map(Payload::Sqs),
    ]
    .boxed()
}

fn test_event(bucket: &str) -> Value {
    json!({
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2026-11-25T08:00:00.000Z",
        "Bucket": bucket,
        "RequestId": "5582815E1AEA5ADF",
        "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"
    })
}

/// SNS's notification, as it appears in an SNS record's `Sns` and in an SQS body.
fn sns_notification(message: &Value) -> Value {
    json!({
        "Type": "Notification",
        "MessageId": "d6b8c3a4-0000-5cb9-9903-4c221d41eb5e",
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:acme-landing-events",
        "Subject": "Amazon S3 Notification",
        "Message": message.to_string(),
        "Timestamp": "2026-11-25T08:00:00.250Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkkOxYDVrY0Ad8L10Hs3zH81mtnPk5uvvolIC1CXGu43obcgFxeL3khZl8IKvO61GWB6jI9b5+gLPoBc1Q=",
        "SigningCertUrl": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
        "UnsubscribeUrl": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
        "MessageAttributes": {}
    })
}

fn sqs_record(id: &str, body: String) -> Value {
    json!({
        "messageId": id,
        "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1764057600000",
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1764057600010"
        },
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:bucket-trigger-buffer",
        "awsRegion": "eu-west-1"
    })
}

fn write_sns_message(message: &SnsMessage) -> Value {
    match message {
        SnsMessage::S3(objs) => write_shape(&Shape::S3(objs.clone()), false),
        SnsMessage::Test(bucket) => test_event(bucket),
    }
}

fn write_shape(shape: &Shape, in_sqs: bool) -> Value {
    match shape {
        Shape::S3(objs) => json!({"Records": objs.iter().map(Obj::s3_record).collect::<Vec<_>>()}),
        Shape::Test(bucket) => test_event(bucket),
        Shape::Sns(messages) if in_sqs && messages.len() == 1 => {
            sns_notification(&write_sns_message(&messages[0]))
        }
        Shape::Sns(messages) => json!({"Records": messages.iter().map(|message| json!({
            "EventSource": "aws:sns",
            "EventVersion": "1.0",
            "EventSubscriptionArn": "arn:aws:sns:eu-west-1:123456789012:acme-landing-events:c9135db0",
            "Sns": sns_notification(&write_sns_message(message))
        })).collect::<Vec<_>>()}),
        Shape::EventBridge(obj) => obj.eventbridge_event(),
    }
}

fn write(payload: &Payload) -> Value {
    match payload {
        Payload::Direct(shape) => write_shape(shape, false),
        Payload::Sqs(messages) => json!({"Records": messages
            .iter()
            .map(|(id, shape)| sqs_record(id, write_shape(shape, true).to_string()))
            .collect::<Vec<_>>()}),
    }
}

/// What a message must parse to.
#[derive(Debug, PartialEq)]
enum Want {
    Objects(Vec<ObjectEvent>),
    Test(String),
}

fn via_sqs(source: Source) -> Source {
    match source {
        Source::S3 => Source::SqsS3,
        Source::SnsS3 => Source::SqsSnsS3,
        Source::EventBridge => Source::SqsEventBridge,
        other => other,
    }
}

fn want(shape: &Shape, sqs_id: Option<&str>) -> Want {
    let source = |source| match sqs_id {
        Some(_) => via_sqs(source),
        None => source,
    };
    let all = |objs: &[Obj], from: Source| -> Vec<ObjectEvent> {
        objs.iter()
            .map(|obj| obj.expected(source(from), sqs_id))
            .collect()
    };
    match shape {
        Shape::S3(objs) => Want::Objects(all(objs, Source::S3)),
        Shape::Test(bucket) => Want::Test(bucket.clone()),
        Shape::Sns(messages) => {
            let mut objects = Vec::new();
            let mut test = None;
            for message in messages {
                match message {
                    SnsMessage::S3(objs) => objects.extend(all(objs, Source::SnsS3)),
                    SnsMessage::Test(bucket) => {
                        test.get_or_insert_with(|| bucket.clone());
                    }
                }
            }
            match test {
                Some(bucket) if objects.is_empty() => Want::Test(bucket),
                _ => Want::Objects(objects),
            }
        }
        Shape::EventBridge(obj) => {
            Want::Objects(vec![obj.expected(source(Source::EventBridge), sqs_id)])
        }
    }
}

/// What a parsed message holds, comparable with [`Want`].
fn got(body: &Result<Body, EventError>) -> Result<Want, String> {
    match body {
        Ok(Body::Objects(objects)) => Ok(Want::Objects(objects.clone())),
        Ok(Body::TestEvent { bucket }) => Ok(Want::Test(bucket.clone())),
        Err(error) => Err(error.to_string()),
    }
}

/// Checks that `parsed` is what `payload` means.
fn check_payload(parsed: &Parsed, payload: &Payload) -> Result<(), TestCaseError> {
    match payload {
        Payload::Direct(shape) => {
            prop_assert_eq!(parsed.invocation, Invocation::Direct);
            prop_assert_eq!(parsed.messages.len(), 1);
            prop_assert_eq!(&parsed.messages[0].id, &None);
            prop_assert_eq!(got(&parsed.messages[0].body), Ok(want(shape, None)));
        }
        Payload::Sqs(messages) => {
            prop_assert_eq!(parsed.invocation, Invocation::SqsBatch);
            prop_assert_eq!(parsed.messages.len(), messages.len());
            for (message, (id, shape)) in parsed.messages.iter().zip(messages) {
                prop_assert_eq!(message.id.as_deref(), Some(id.as_str()));
                prop_assert_eq!(got(&message.body), Ok(want(shape, Some(id))));
            }
        }
    }
    Ok(())
}

/// What holds of any parse, whatever went in: errors say something; a direct invocation is one
/// message with no id and direct sources; an SQS batch tags each object with its message id;
/// every object names its bucket.
fn check_invariants(parsed: &Result<Parsed, EventError>) -> Result<(), TestCaseError> {
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            prop_assert!(!error.to_string().trim().is_empty());
            return Ok(());
        }
    };
    if parsed.invocation == Invocation::Direct {
        prop_assert_eq!(parsed.messages.len(), 1);
        prop_assert!(parsed.messages[0].id.is_none());
    }
    for message in &parsed.messages {
        match &message.body {
            Ok(Body::Objects(objects)) => {
                for object in objects {
                    let direct = matches!(
                        object.source,
                        Source::S3 | Source::SnsS3 | Source::EventBridge | Source::Gcs
                    );
                    prop_assert_eq!(direct, parsed.invocation == Invocation::Direct);
                    prop_assert_eq!(&object.record_id, &message.id);
                    prop_assert!(
                        !object.bucket.is_empty(),
                        "an object without a bucket: {:?}",
                        object
                    );
                }
            }
            Ok(Body::TestEvent { .. }) => {}
            Err(error) => prop_assert!(!error.to_string().trim().is_empty()),
        }
    }
    Ok(())
}

// Mutations: one node of a valid payload replaced, removed, cut or spliced. Strings holding JSON
// (SNS messages, SQS bodies) count their inner nodes too, so mutations reach every level.

#[derive(Debug, Clone)]
enum Mutation {
    Replace(Value),
    Remove,
    Truncate(usize),
    Insert(usize, &'static str),
}

const REMOVED: &str = "\u{0}removed by a mutation\u{0}";

fn removed(value: &Value) -> bool {
    value.as_str() == Some(REMOVED)
}

/// Applies `mutation` to node `at` (pre-order) of `value`; returns the number of nodes.
fn mutate(value: &mut Value, at: usize, mutation: &Mutation) -> usize {
    fn visit(value: &mut Value, seen: &mut usize, at: usize, mutation: &Mutation) {
        if *seen == at {
            apply(value, mutation);
        }
        *seen += 1;
        match value {
            Value::Object(map) => {
                for child in map.values_mut() {
                    visit(child, seen, at, mutation);
                }
                map.retain(|_, child| !removed(child));
            }
            Value::Array(items) => {
                for child in items.iter_mut() {
                    visit(child, seen, at, mutation);
                }
                items.retain(|child| !removed(child));
            }
            Value::String(text) => {
                if let Ok(mut inner @ (Value::Object(_) | Value::Array(_))) =
                    serde_json::from_str::<Value>(text)
                {
                    let first = *seen;
                    visit(&mut inner, seen, at, mutation);
                    if (first..*seen).contains(&at) {
                        *text = inner.to_string();
                    }
                }
            }
            _ => {}
        }
    }
    let mut seen = 0;
    visit(value, &mut seen, at, mutation);
    seen
}

fn apply(value: &mut Value, mutation: &Mutation) {
    match mutation {
        Mutation::Replace(new) => *value = new.clone(),
        Mutation::Remove => *value = Value::String(REMOVED.to_owned()),
        Mutation::Truncate(n) => match value {
            Value::String(text) => {
                let cut = text.char_indices().nth(*n).map_or(text.len(), |(i, _)| i);
                text.truncate(cut);
            }
            Value::Array(items) => items.truncate(*n),
            Value::Object(map) => {
                *map = std::mem::take(map).into_iter().take(*n).collect();
            }
            other => *other = Value::Null,
        },
        Mutation::Insert(n, fragment) => match value {
            Value::String(text) => {
                let at = text.char_indices().nth(*n).map_or(text.len(), |(i, _)| i);
                text.insert_str(at, fragment);
            }
            other => *other = Value::from(*fragment),
        },
    }
}

const MARKER_KEYS: &[&str] = &[
    "Records",
    "eventSource",
    "EventSource",
    "eventName",
    "Sns",
    "Message",
    "Type",
    "body",
    "messageId",
    "Event",
    "Bucket",
    "detail-type",
    "source",
    "detail",
    "bucket",
    "object",
    "name",
    "key",
    "size",
    "s3",
    "time",
    "reason",
    "version-id",
    "versionId",
    "eTag",
    "etag",
    "eventTime",
];

const MARKER_VALUES: &[&str] = &[
    "aws:s3",
    "aws:sns",
    "aws:sqs",
    "aws.s3",
    "Object Created",
    "Notification",
    "s3:TestEvent",
    "ObjectCreated:Put",
    "PutObject",
    "a+b%20c",
    "%FF",
    "",
    "2026-11-25T08:00:00Z",
];

/// Any JSON, with keys and strings biased to the markers the parser looks at, and strings that
/// hold JSON (as SNS messages and SQS bodies do).
fn arb_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            select(MARKER_VALUES).prop_map(str::to_owned),
            re("\\PC{0,12}")
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec(
                (
                    prop_oneof![select(MARKER_KEYS).prop_map(str::to_owned), re("\\PC{0,8}")],
                    inner.clone()
                ),
                0..6
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
            inner.prop_map(|value| Value::String(value.to_string())),
        ]
    })
    .boxed()
}

fn mutation() -> BoxedStrategy<(Index, Mutation)> {
    let special = select(vec![
        Value::Null,
        json!(""),
        json!(-1),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1.5),
        json!(1e300),
        json!(true),
        json!([]),
        json!({}),
        json!("aws:s3"),
        json!("aws:sns"),
        json!("aws:sqs"),
        json!("Notification"),
        json!("s3:TestEvent"),
        json!("Object Created"),
        json!("aws.s3"),
        json!("%"),
        json!("%FF"),
    ]);
    let fragment = select(vec![
        "%", "%FF", "%C3", "%2", "+", "\"", "\\", "{", "\u{0}", "é", "\u{feff}",
    ]);
    (
        any::<Index>(),
        prop_oneof![
            3 => special.prop_map(Mutation::Replace),
            1 => arb_json().prop_map(Mutation::Replace),
            3 => Just(Mutation::Remove),
            1 => (0usize..8).prop_map(Mutation::Truncate),
            2 => (0usize..40, fragment).prop_map(|(n, f)| Mutation::Insert(n, f)),
        ],
    )
        .boxed()
}

/// The sample events in `events/`, as bytes.
fn sample_events() -> Vec<Vec<u8>> {
    let mut paths: Vec<_> = std::fs::read_dir(root().join("events"))
        .expect("events/")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| std::fs::read(path).expect("a sample event"))
        .collect()
}

/// A sample event with some bytes flipped, inserted, deleted, or the tail cut off.
fn mutated_sample() -> BoxedStrategy<Vec<u8>> {
    (
        select(sample_events()),
        vec((any::<Index>(), any::<u8>(), 0u8..4), 1..8),
    )
        .prop_map(|(mut bytes, edits)| {
            for (at, byte, op) in edits {
                if bytes.is_empty() {
                    break;
                }
                let i = at.index(bytes.len());
                match op {
                    0 => bytes[i] = byte,
                    1 => bytes.insert(i, byte),
                    2 => {
                        bytes.remove(i);
                    }
                    _ => bytes.truncate(i),
                }
            }
            bytes
        })
        .boxed()
}

proptest! {
    #![proptest_config(cases(256))]

    /// Every shape (S3, SNS(S3), SQS(S3 | SNS(S3) | EventBridge), EventBridge, test events)
    /// normalizes to exactly the object that was generated: key decoded once, ETag unquoted,
    /// time in UTC milliseconds, SQS message id as record id.
    #[test]
    fn valid_events_normalize_to_what_was_generated(payload in payload()) {
        let bytes = serde_json::to_vec(&write(&payload)).expect("JSON");
        let parsed = event::parse_bytes(&bytes);
        prop_assert!(parsed.is_ok(), "{:?}", parsed.err().map(|e| e.to_string()));
        check_payload(&parsed.expect("checked"), &payload)?;
    }

    /// Valid payloads with fields replaced, removed, cut or spliced, at any depth (inside SNS
    /// messages and SQS bodies too): no panic, and the invariants hold.
    #[test]
    fn mutated_events_keep_the_invariants(
        payload in payload(),
        mutations in vec(mutation(), 1..4),
    ) {
        let mut value = write(&payload);
        for (at, mutation) in &mutations {
            let nodes = mutate(&mut value.clone(), usize::MAX, mutation);
            mutate(&mut value, at.index(nodes), mutation);
        }
        check_invariants(&event::parse(value))?;
    }

    /// Any JSON value: no panic, and the invariants hold.
    #[test]
    fn any_json_keeps_the_invariants(value in arb_json()) {
        check_invariants(&event::parse(value))?;
    }

    /// Any bytes, and the sample events with bytes flipped, inserted, removed or cut: no panic.
    #[test]
    fn any_bytes_keep_the_invariants(
        bytes in prop_oneof![any::<Vec<u8>>(), mutated_sample()],
    ) {
        check_invariants(&event::parse_bytes(&bytes))?;
    }
}

proptest! {
    // Each case parses a whole batch of two to four messages: fewer cases.
    #![proptest_config(cases(128))]

    /// One bad body in an SQS batch fails its own message only.
    #[test]
    fn a_bad_sqs_message_fails_alone(
        messages in vec((message_id(), shape()), 2..5),
        bad in any::<Index>(),
        garbage in prop_oneof![any::<String>(), arb_json().prop_map(|v| v.to_string())],
    ) {
        let bad = bad.index(messages.len());
        let mut value = write(&Payload::Sqs(messages.clone()));
        value["Records"][bad]["body"] = Value::String(garbage);
        let parsed = event::parse(value);
        prop_assert!(parsed.is_ok(), "{:?}", parsed.err().map(|e| e.to_string()));
        let parsed = parsed.expect("checked");
        prop_assert_eq!(parsed.messages.len(), messages.len());
        for (i, (message, (id, shape))) in parsed.messages.iter().zip(&messages).enumerate() {
            prop_assert_eq!(message.id.as_deref(), Some(id.as_str()));
            if i != bad {
                prop_assert_eq!(got(&message.body), Ok(want(shape, Some(id))));
            }
        }
        check_invariants(&Ok(parsed))?;
    }
}

/// Found by `mutated_events_keep_the_invariants`: an EventBridge event whose bucket name was cut
/// to "" (there through SQS) became an object in bucket "", where an S3 record with an empty
/// bucket name was already refused as malformed.
#[test]
fn an_empty_bucket_name_is_malformed_in_every_shape() {
    let mut eventbridge = sample("eventbridge-object-created.json");
    eventbridge["detail"]["bucket"]["name"] = json!("");
    let error = event::parse(eventbridge.clone()).unwrap_err().to_string();
    assert!(error.contains("empty detail.bucket.name"), "{error}");
    let mut s3 = sample("s3-put.json");
    s3["Records"][0]["s3"]["bucket"]["name"] = json!("");
    let error = event::parse(s3).unwrap_err().to_string();
    assert!(error.contains("missing s3.bucket.name"), "{error}");
    // Through SQS, the message fails alone.
    let batch = json!({"Records": [
        sqs_record("bad", eventbridge.to_string()),
        sqs_record("good", sample("eventbridge-object-created.json").to_string()),
    ]});
    let parsed = event::parse(batch).unwrap();
    assert!(parsed.messages[0].body.is_err());
    assert_eq!(parsed.objects().count(), 1);
}
