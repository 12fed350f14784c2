//! Events in: EventBridge `Object Created` events from `aws.s3` (keys are not URL-encoded).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::{EventError, ObjectEvent, Source};

#[derive(Deserialize)]
struct Envelope {
    time: Option<DateTime<Utc>>,
    region: Option<String>,
    detail: Detail,
}

#[derive(Deserialize)]
struct Detail {
    bucket: Bucket,
    object: Object,
    reason: Option<String>,
}

#[derive(Deserialize)]
struct Bucket {
    name: String,
}

#[derive(Deserialize)]
struct Object {
    key: String,
    size: Option<u64>,
    etag: Option<String>,
    #[serde(rename = "version-id")]
    version_id: Option<String>,
    sequencer: Option<String>,
}

/// Parses one EventBridge event; only S3 `Object Created` is accepted.
pub(super) fn parse(value: Value) -> Result<ObjectEvent, EventError> {
    let source = value["source"].as_str().unwrap_or_default();
    let detail_type = value["detail-type"].as_str().unwrap_or_default();
    if source != "aws.s3" || detail_type != "Object Created" {
        return Err(EventError::UnknownShape {
            found: format!("EventBridge event from {source:?} with detail-type {detail_type:?}"),
        });
    }
    let envelope: Envelope = serde_path_to_error::deserialize(value).map_err(|e| {
        EventError::malformed("EventBridge Object Created event", super::at_path(&e))
    })?;
    let detail = envelope.detail;
    if detail.bucket.name.is_empty() {
        return Err(EventError::malformed(
            "EventBridge Object Created event",
            "empty detail.bucket.name",
        ));
    }
    Ok(ObjectEvent {
        source: Source::EventBridge,
        bucket: detail.bucket.name,
        key: detail.object.key,
        size: detail.object.size,
        etag: detail
            .object
            .etag
            .map(|etag| etag.trim_matches('"').to_owned()),
        version_id: detail.object.version_id.filter(|v| !v.is_empty()),
        sequencer: detail.object.sequencer,
        event_name: event_name(detail.reason.as_deref()),
        event_time: envelope
            .time
            .map(|time| time.to_rfc3339_opts(SecondsFormat::Millis, true)),
        region: envelope.region,
        record_id: None,
    })
}

/// Maps EventBridge's `detail.reason` to the S3 notification event name users write routes for.
fn event_name(reason: Option<&str>) -> String {
    let suffix = match reason {
        Some("PutObject") => "Put",
        Some("POST Object") => "Post",
        Some("CopyObject") => "Copy",
        Some("CompleteMultipartUpload") => "CompleteMultipartUpload",
        Some(other) => other,
        None => "*",
    };
    format!("ObjectCreated:{suffix}")
}
