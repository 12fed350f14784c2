//! Events in: S3 bucket notification records (`Records[].eventSource = "aws:s3"`).

use chrono::{DateTime, SecondsFormat, Utc};
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::Value;

use super::{EventError, ObjectEvent, Source};

/// The fields of an S3 notification we use; everything else (`userIdentity`,
/// `requestParameters`, `responseElements`, ...) may be absent.
#[derive(Deserialize)]
struct Notification {
    #[serde(rename = "Records", default)]
    records: Vec<Record>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    aws_region: Option<String>,
    event_time: Option<String>,
    event_name: Option<String>,
    s3: Entity,
}

#[derive(Deserialize)]
struct Entity {
    bucket: BucketRef,
    object: ObjectRef,
}

#[derive(Deserialize)]
struct BucketRef {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectRef {
    key: Option<String>,
    size: Option<i64>,
    #[serde(rename = "eTag")]
    e_tag: Option<String>,
    version_id: Option<String>,
    sequencer: Option<String>,
}

/// Parses an S3 notification (`{"Records": [...]}`) into one event per record.
pub(super) fn parse(value: Value, source: Source) -> Result<Vec<ObjectEvent>, EventError> {
    let event: Notification = serde_path_to_error::deserialize(value)
        .map_err(|e| EventError::malformed("S3 notification", super::at_path(&e)))?;
    event
        .records
        .into_iter()
        .enumerate()
        .map(|(index, record)| normalize(index, record, source))
        .collect()
}

fn normalize(index: usize, record: Record, source: Source) -> Result<ObjectEvent, EventError> {
    let shape = || format!("S3 notification record {index}");
    let Record {
        aws_region,
        event_time,
        event_name,
        s3: Entity { bucket, object },
    } = record;
    let bucket = bucket
        .name
        .filter(|name| !name.is_empty())
        .ok_or_else(|| EventError::malformed(shape(), "missing s3.bucket.name"))?;
    let raw_key = object
        .key
        .ok_or_else(|| EventError::malformed(shape(), "missing s3.object.key"))?;
    let key = decode_key(&raw_key).map_err(|reason| EventError::malformed(shape(), reason))?;
    let event_name =
        event_name.ok_or_else(|| EventError::malformed(shape(), "missing eventName"))?;
    Ok(ObjectEvent {
        source,
        bucket,
        key,
        size: object.size.and_then(|size| u64::try_from(size).ok()),
        etag: object.e_tag.map(|etag| etag.trim_matches('"').to_owned()),
        version_id: object.version_id.filter(|v| !v.is_empty()),
        sequencer: object.sequencer,
        event_name,
        // Normalized to RFC 3339 with milliseconds, UTC, when it reads as a time.
        event_time: event_time.map(|time| {
            DateTime::parse_from_rfc3339(&time)
                .map(|time| {
                    time.with_timezone(&Utc)
                        .to_rfc3339_opts(SecondsFormat::Millis, true)
                })
                .unwrap_or(time)
        }),
        region: aws_region,
        record_id: None,
    })
}

/// Decodes an object key as S3 notifications encode it: form-style, `+` for a space and `%XX`
/// for everything else. Apply exactly once; EventBridge keys are not encoded.
pub fn decode_key(raw: &str) -> Result<String, String> {
    let plus_decoded = raw.replace('+', " ");
    percent_decode_str(&plus_decoded)
        .decode_utf8()
        .map(|key| key.into_owned())
        .map_err(|_| "s3.object.key is not valid UTF-8 once percent-decoded".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parse what we use, default the rest: a record with only bucket, key and event name.
    #[test]
    fn a_record_with_only_what_we_use_parses() {
        let minimal = serde_json::json!({"Records": [{
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "b"}, "object": {"key": "a+b.csv"}}
        }]});
        let events = parse(minimal, Source::S3).unwrap();
        assert_eq!(events[0].key, "a b.csv");
        assert_eq!(events[0].event_time, None);
        assert_eq!(events[0].size, None);
        let timed = serde_json::json!({"Records": [{
            "eventName": "ObjectCreated:Put", "eventTime": "2026-11-25T09:00:00+01:00",
            "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}
        }]});
        let events = parse(timed, Source::S3).unwrap();
        assert_eq!(
            events[0].event_time.as_deref(),
            Some("2026-11-25T08:00:00.000Z")
        );
    }

    #[test]
    fn decodes_plus_percent_and_unicode_once() {
        let cases = [
            ("plain/key.csv", "plain/key.csv"),
            ("with+space.csv", "with space.csv"),
            ("literal%2Bplus.csv", "literal+plus.csv"),
            ("percent%2525.csv", "percent%25.csv"),
            ("caf%C3%A9/%E6%97%A5%E6%9C%AC.csv", "café/日本.csv"),
            ("a%2Fb", "a/b"),
        ];
        for (raw, want) in cases {
            assert_eq!(decode_key(raw).unwrap(), want, "decoding {raw}");
        }
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_panic() {
        let err = decode_key("bad%FF").unwrap_err();
        assert!(err.contains("UTF-8"), "{err}");
    }
}
