//! Events in: SQS batches (`Records[].eventSource = "aws:sqs"`) whose bodies hold S3
//! notifications, SNS envelopes of them, or EventBridge events.

use serde_json::Value;

use super::{Body, EventError, Message};

/// Parses an SQS batch. Each message is read on its own: a bad record or body fails only its
/// message (with its id when it has one), never the batch.
pub(super) fn parse(value: Value) -> Result<Vec<Message>, EventError> {
    let Some(Value::Array(records)) = value.get("Records") else {
        return Err(EventError::malformed("SQS batch", "Records is not a list"));
    };
    Ok(records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            let id = record
                .get("messageId")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let what = format!("SQS message Records[{index}]");
            let body = match record.get("body") {
                _ if !record.is_object() => Err(EventError::malformed(what, "is not an object")),
                _ if id.is_none() => Err(EventError::malformed(
                    what,
                    "messageId is missing or not a string",
                )),
                Some(Value::String(body)) => parse_message(body, id.as_deref()),
                Some(_) => Err(EventError::malformed(what, "body is not a string")),
                None => Err(EventError::malformed(what, "missing body")),
            };
            let receive_count = record
                .pointer("/attributes/ApproximateReceiveCount")
                .and_then(Value::as_str)
                .and_then(|count| count.parse().ok());
            Message {
                id,
                body,
                original: record.clone(),
                receive_count,
            }
        })
        .collect())
}

fn parse_message(body: &str, id: Option<&str>) -> Result<Body, EventError> {
    let mut value: Value = serde_json::from_str(body)
        .map_err(|e| EventError::malformed("SQS message body", format!("not JSON: {e}")))?;
    // SNS raw delivery off: the body is the SNS notification itself, not a Records envelope.
    if value.get("Type").and_then(Value::as_str) == Some("Notification") {
        value = sns_notification_as_records(value);
    }
    let body = super::parse_body(value)?;
    Ok(match body {
        Body::Objects(objects) => Body::Objects(
            objects
                .into_iter()
                .map(|mut object| {
                    object.source = object.source.via_sqs();
                    object.record_id = id.map(str::to_owned);
                    object
                })
                .collect(),
        ),
        test @ Body::TestEvent { .. } => test,
    })
}

/// SNS delivers to SQS as `{"Type": "Notification", "Message": "..."}`; rewrap it as the
/// `Records[].Sns` shape SNS uses when it invokes a function, so one parser reads both.
fn sns_notification_as_records(notification: Value) -> Value {
    serde_json::json!({
        "Records": [{ "EventSource": "aws:sns", "Sns": notification }]
    })
}
