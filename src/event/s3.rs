//! Events in: S3 bucket notification records (`Records[].eventSource = "aws:s3"`).

use aws_lambda_events::s3::{S3Event, S3EventRecord};
use chrono::SecondsFormat;
use percent_encoding::percent_decode_str;
use serde_json::Value;

use super::{EventError, ObjectEvent, Source};

/// Parses an S3 notification (`{"Records": [...]}`) into one event per record.
pub(super) fn parse(value: Value, source: Source) -> Result<Vec<ObjectEvent>, EventError> {
    let event: S3Event =
        serde_json::from_value(value).map_err(|e| EventError::malformed("S3 notification", e))?;
    event
        .records
        .into_iter()
        .enumerate()
        .map(|(index, record)| normalize(index, record, source))
        .collect()
}

fn normalize(
    index: usize,
    record: S3EventRecord,
    source: Source,
) -> Result<ObjectEvent, EventError> {
    let shape = || format!("S3 notification record {index}");
    let bucket = record
        .s3
        .bucket
        .name
        .filter(|name| !name.is_empty())
        .ok_or_else(|| EventError::malformed(shape(), "missing s3.bucket.name"))?;
    let raw_key = record
        .s3
        .object
        .key
        .ok_or_else(|| EventError::malformed(shape(), "missing s3.object.key"))?;
    let key = decode_key(&raw_key).map_err(|reason| EventError::malformed(shape(), reason))?;
    let event_name = record
        .event_name
        .ok_or_else(|| EventError::malformed(shape(), "missing eventName"))?;
    Ok(ObjectEvent {
        source,
        bucket,
        key,
        size: record
            .s3
            .object
            .size
            .and_then(|size| u64::try_from(size).ok()),
        etag: record
            .s3
            .object
            .e_tag
            .map(|etag| etag.trim_matches('"').to_owned()),
        version_id: record.s3.object.version_id.filter(|v| !v.is_empty()),
        sequencer: record.s3.object.sequencer,
        event_name,
        event_time: Some(
            record
                .event_time
                .to_rfc3339_opts(SecondsFormat::Millis, true),
        ),
        region: record.aws_region,
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
    use super::decode_key;

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
