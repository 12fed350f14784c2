//! Events in: SNS records (`Records[].EventSource = "aws:sns"`) whose message is an S3
//! notification (or S3's test event).

use serde_json::Value;

use super::{Body, EventError, Source, s3};

/// Parses SNS records, each holding an S3 notification as its `Message` string.
pub(super) fn parse(value: Value) -> Result<Body, EventError> {
    let records = value["Records"].as_array().cloned().unwrap_or_default();
    let mut objects = Vec::new();
    let mut test_bucket = None;
    for (index, record) in records.into_iter().enumerate() {
        let shape = || format!("SNS record {index}");
        let message = record["Sns"]["Message"]
            .as_str()
            .ok_or_else(|| EventError::malformed(shape(), "missing Sns.Message string"))?;
        let inner: Value = serde_json::from_str(message)
            .map_err(|e| EventError::malformed(shape(), format!("Sns.Message is not JSON: {e}")))?;
        if super::is_test_event(&inner) {
            // Acknowledged, but never at the cost of the real records beside it.
            test_bucket
                .get_or_insert_with(|| inner["Bucket"].as_str().unwrap_or_default().to_owned());
            continue;
        }
        match super::first_record_source(&inner).as_deref() {
            Some("aws:s3") => objects.extend(s3::parse(inner, Source::SnsS3)?),
            _ => {
                return Err(EventError::UnknownShape {
                    found: format!(
                        "{} with a message that is {}",
                        shape(),
                        super::describe(&inner)
                    ),
                });
            }
        }
    }
    match test_bucket {
        Some(bucket) if objects.is_empty() => Ok(Body::TestEvent { bucket }),
        _ => Ok(Body::Objects(objects)),
    }
}
