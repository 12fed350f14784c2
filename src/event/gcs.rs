//! Events in: Google Cloud Storage notifications, as a Pub/Sub push delivers them
//! (`{"message": {"attributes", "data", "messageId", "publishTime"}, "subscription"}`) and as
//! Eventarc delivers them in a structured CloudEvent (`specversion`,
//! `type: google.cloud.storage.object.v1.finalized`, `source`, `subject`, `data`). Object names
//! are kept exactly as GCS gives them (never URL-decoded); the generation is the version.
//! See <https://cloud.google.com/storage/docs/pubsub-notifications> and
//! <https://cloud.google.com/eventarc/docs/cloudevents>.

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::{Body, EventError, ObjectEvent, Source};

/// The S3-style event name of a GCS notification's `eventType` (or a CloudEvent type's last
/// part), so that routes are written one way for both clouds.
pub fn event_name(gcs: &str) -> Option<&'static str> {
    Some(match gcs {
        "OBJECT_FINALIZE" | "finalized" => "ObjectCreated:Finalize",
        "OBJECT_DELETE" | "deleted" => "ObjectRemoved:Delete",
        "OBJECT_ARCHIVE" | "archived" => "ObjectRemoved:Archive",
        "OBJECT_METADATA_UPDATE" | "metadataUpdated" => "ObjectMetadata:Update",
        _ => return None,
    })
}

/// The prefix of the CloudEvent types of Cloud Storage.
const CLOUD_EVENT_TYPE: &str = "google.cloud.storage.object.v1.";

/// Whether `value` is a Pub/Sub push envelope.
pub(super) fn is_push(value: &Value) -> bool {
    value.get("message").is_some_and(Value::is_object) && value.get("subscription").is_some()
}

/// Whether `value` is a structured-mode CloudEvent.
pub(super) fn is_cloud_event(value: &Value) -> bool {
    value.get("specversion").is_some() && value.get("type").is_some()
}

/// A Pub/Sub push envelope carrying a GCS notification.
pub(super) fn parse_push(value: &Value) -> Result<Body, EventError> {
    let shape = "Pub/Sub push message";
    let message = &value["message"];
    let attributes = message
        .get("attributes")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            EventError::malformed(
                shape,
                "message.attributes is missing: not a Cloud Storage notification",
            )
        })?;
    let text = |name: &str| attributes.get(name).and_then(Value::as_str);
    let Some(event_type) = text("eventType") else {
        return Err(EventError::UnknownShape {
            found: "a Pub/Sub message without eventType: not a Cloud Storage notification".into(),
        });
    };
    let name = event_name(event_type).ok_or_else(|| {
        EventError::malformed(
            shape,
            format!("eventType {event_type:?} is no Cloud Storage event"),
        )
    })?;
    let data = match message.get("data") {
        None | Some(Value::Null) => None,
        Some(Value::String(data)) if data.is_empty() => None,
        Some(Value::String(data)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| {
                    EventError::malformed(shape, format!("message.data is not base64: {e}"))
                })?;
            let object: Value = serde_json::from_slice(&bytes).map_err(|e| {
                EventError::malformed(shape, format!("message.data is not the object's JSON: {e}"))
            })?;
            Some(object)
        }
        Some(_) => return Err(EventError::malformed(shape, "message.data is not a string")),
    };
    let object = data.as_ref().and_then(Value::as_object);
    let bucket = text("bucketId")
        .or_else(|| object.and_then(|o| o.get("bucket")).and_then(Value::as_str))
        .filter(|b| !b.is_empty())
        .ok_or_else(|| EventError::malformed(shape, "attributes.bucketId is missing"))?;
    let key = text("objectId")
        .or_else(|| object.and_then(|o| o.get("name")).and_then(Value::as_str))
        .filter(|k| !k.is_empty())
        .ok_or_else(|| EventError::malformed(shape, "attributes.objectId is missing"))?;
    let generation = text("objectGeneration").map(str::to_owned);
    let time = text("eventTime");
    let event = object_event(shape, bucket, key, name, generation, time, object)?;
    Ok(Body::Objects(vec![event]))
}

/// A structured-mode CloudEvent of Cloud Storage.
pub(super) fn parse_cloud_event(value: &Value) -> Result<Body, EventError> {
    let shape = "CloudEvent";
    let text = |name: &str| value.get(name).and_then(Value::as_str);
    let kind = text("type").unwrap_or_default();
    let Some(name) = kind.strip_prefix(CLOUD_EVENT_TYPE).and_then(event_name) else {
        return Err(EventError::UnknownShape {
            found: format!(
                "a CloudEvent of type {kind:?} (expected {CLOUD_EVENT_TYPE}finalized, deleted, archived or metadataUpdated)"
            ),
        });
    };
    let object = value.get("data").and_then(Value::as_object);
    // `//storage.googleapis.com/projects/_/buckets/B` and `objects/NAME` (the name as is).
    let bucket = text("source")
        .and_then(|source| source.rsplit_once("/buckets/").map(|(_, bucket)| bucket))
        .or_else(|| object.and_then(|o| o.get("bucket")).and_then(Value::as_str))
        .filter(|b| !b.is_empty())
        .ok_or_else(|| {
            EventError::malformed(
                shape,
                "source names no bucket (//storage.googleapis.com/projects/_/buckets/B)",
            )
        })?;
    let key = text("subject")
        .and_then(|subject| subject.strip_prefix("objects/"))
        .or_else(|| object.and_then(|o| o.get("name")).and_then(Value::as_str))
        .filter(|k| !k.is_empty())
        .ok_or_else(|| EventError::malformed(shape, "subject names no object (objects/NAME)"))?;
    let event = object_event(shape, bucket, key, name, None, text("time"), object)?;
    Ok(Body::Objects(vec![event]))
}

/// The normalized event, from what the envelope says and the object resource (if any). The
/// Pub/Sub message id is not a `record_id`: that names the SQS message to fail in a batch.
fn object_event(
    shape: &str,
    bucket: &str,
    key: &str,
    event_name: &str,
    generation: Option<String>,
    time: Option<&str>,
    object: Option<&Map<String, Value>>,
) -> Result<ObjectEvent, EventError> {
    let field = |name: &str| object.and_then(|o| o.get(name)).and_then(Value::as_str);
    // The JSON API writes 64-bit numbers as strings: `"size": "52428"`.
    let size = match object.and_then(|o| o.get("size")) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.parse::<u64>().map_err(|_| {
            EventError::malformed(shape, format!("data.size {text:?} is not a number"))
        })?),
        Some(Value::Number(number)) => number.as_u64(),
        Some(_) => return Err(EventError::malformed(shape, "data.size is not a number")),
    };
    let generation = generation.or_else(|| match object.and_then(|o| o.get("generation")) {
        Some(Value::String(text)) => Some(text.clone()),
        Some(Value::Number(number)) => Some(number.to_string()),
        _ => None,
    });
    let time = time
        .or_else(|| field("updated"))
        .or_else(|| field("timeCreated"))
        .map(|time| {
            DateTime::parse_from_rfc3339(time)
                .map(|t| {
                    t.with_timezone(&Utc)
                        .to_rfc3339_opts(SecondsFormat::Millis, true)
                })
                .map_err(|e| EventError::malformed(shape, format!("event time {time:?}: {e}")))
        })
        .transpose()?;
    Ok(ObjectEvent {
        source: Source::Gcs,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size,
        // The content's MD5 (base64), as an S3 ETag is for single-part uploads; GCS's own etag
        // changes with metadata.
        etag: field("md5Hash")
            .or_else(|| field("etag"))
            .map(str::to_owned),
        version_id: generation,
        sequencer: None,
        event_name: event_name.to_owned(),
        event_time: time,
        region: None,
        record_id: None,
    })
}
