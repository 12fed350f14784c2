//! Store: the failure queue. Failure records go to an SQS queue through the AWS JSON protocol
//! (`SendMessage`; `replay` drains it with `ReceiveMessage` and `DeleteMessage`), SigV4-signed
//! and sent through the same transport as every other request, so no second HTTP stack is
//! needed. See <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/>.

use std::time::{Duration, SystemTime};

use reqwest::Url;
use serde_json::{Value, json};

use crate::auth::{SigV4, aws_region};
use crate::http::{Body, HeaderValue, Request, Sent, Transport, excerpt};

/// The largest message SQS takes (1 MiB since August 2025; 256 KiB before): records are kept
/// well under the older limit.
pub const MAX_RECORD_BYTES: usize = 240 * 1024;

/// The queue could not be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("failure queue {queue}: {message}")]
pub struct QueueError {
    /// The queue URL.
    pub queue: String,
    /// What went wrong (no credentials in it).
    pub message: String,
    /// Whether trying again may help (no answer, throttling, a 5xx).
    pub retryable: bool,
}

/// One message taken from the queue.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its body.
    pub body: String,
    /// What deletes it.
    pub receipt_handle: String,
    /// SQS's id.
    pub message_id: String,
}

/// An SQS queue, addressed by its URL.
#[derive(Debug, Clone)]
pub struct Queue {
    url: Url,
    endpoint: Url,
    signer: SigV4,
}

impl Queue {
    /// The queue at `url`. The API endpoint is `AWS_ENDPOINT_URL_SQS`, else `AWS_ENDPOINT_URL`,
    /// else the regional one; the region is the queue URL's (`sqs.REGION.amazonaws.com`),
    /// else the AWS configuration's.
    pub async fn new(url: Url) -> Queue {
        let from_host = url.host_str().and_then(|host| {
            let rest = host.strip_prefix("sqs.")?;
            let region = rest.split('.').next()?;
            (!region.is_empty() && rest.contains(".amazonaws.")).then(|| region.to_owned())
        });
        let region = match from_host {
            Some(region) => region,
            None => aws_region().await.unwrap_or_else(|| "us-east-1".to_owned()),
        };
        let endpoint = ["AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL"]
            .iter()
            .filter_map(|name| std::env::var(name).ok())
            .find_map(|text| Url::parse(text.trim()).ok())
            .unwrap_or_else(|| {
                let mut endpoint = url.clone();
                endpoint.set_path("/");
                endpoint.set_query(None);
                endpoint
            });
        Queue {
            url,
            endpoint,
            signer: SigV4::new("sqs", &region),
        }
    }

    /// The queue URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Sends one message; its SQS message id on success.
    pub async fn send(
        &self,
        transport: &dyn Transport,
        now: SystemTime,
        body: &str,
        timeout: Duration,
    ) -> Result<String, QueueError> {
        let answer = self
            .call(
                transport,
                now,
                "SendMessage",
                json!({ "QueueUrl": self.url.as_str(), "MessageBody": body }),
                timeout,
            )
            .await?;
        Ok(answer["MessageId"].as_str().unwrap_or_default().to_owned())
    }

    /// Takes up to `max` (1–10) messages, waiting up to `wait` (long polling, ≤ 20 s) for one.
    pub async fn receive(
        &self,
        transport: &dyn Transport,
        now: SystemTime,
        max: u32,
        wait: Duration,
    ) -> Result<Vec<Received>, QueueError> {
        let wait_seconds = wait.as_secs().min(20);
        let answer = self
            .call(
                transport,
                now,
                "ReceiveMessage",
                json!({
                    "QueueUrl": self.url.as_str(),
                    "MaxNumberOfMessages": max.clamp(1, 10),
                    "WaitTimeSeconds": wait_seconds,
                }),
                wait + Duration::from_secs(10),
            )
            .await?;
        let messages = answer["Messages"].as_array().cloned().unwrap_or_default();
        Ok(messages
            .iter()
            .filter_map(|message| {
                Some(Received {
                    body: message["Body"].as_str()?.to_owned(),
                    receipt_handle: message["ReceiptHandle"].as_str()?.to_owned(),
                    message_id: message["MessageId"].as_str().unwrap_or_default().to_owned(),
                })
            })
            .collect())
    }

    /// Deletes a received message.
    pub async fn delete(
        &self,
        transport: &dyn Transport,
        now: SystemTime,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<(), QueueError> {
        self.call(
            transport,
            now,
            "DeleteMessage",
            json!({ "QueueUrl": self.url.as_str(), "ReceiptHandle": receipt_handle }),
            timeout,
        )
        .await
        .map(drop)
    }

    /// Makes a received message visible again at once (it was not done with).
    pub async fn release(
        &self,
        transport: &dyn Transport,
        now: SystemTime,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<(), QueueError> {
        self.call(
            transport,
            now,
            "ChangeMessageVisibility",
            json!({
                "QueueUrl": self.url.as_str(),
                "ReceiptHandle": receipt_handle,
                "VisibilityTimeout": 0,
            }),
            timeout,
        )
        .await
        .map(drop)
    }

    async fn call(
        &self,
        transport: &dyn Transport,
        now: SystemTime,
        action: &str,
        body: Value,
        timeout: Duration,
    ) -> Result<Value, QueueError> {
        let error = |message: String| QueueError {
            queue: self.url.to_string(),
            message,
            retryable: true,
        };
        let mut request = Request::post(
            self.endpoint.clone(),
            Body::Text {
                content_type: "application/x-amz-json-1.0",
                text: body.to_string(),
            },
        );
        request.set_header(
            "x-amz-target",
            HeaderValue::Plain(format!("AmazonSQS.{action}")),
        );
        self.signer
            .sign(&mut request, now)
            .await
            .map_err(|e| error(format!("{action} not signed: {e}")))?;
        let answer = match transport.send(&request, timeout).await {
            Sent::Answered(answer) => answer,
            Sent::Failed(e) => return Err(error(format!("{action}: {e}"))),
            Sent::Printed(_) => return Err(error(format!("{action}: not sent (dry run)"))),
        };
        let parsed: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        if answer.status.is_success() {
            return Ok(parsed);
        }
        // `{"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "..."}`
        let kind = parsed["__type"]
            .as_str()
            .map(|kind| kind.rsplit('#').next().unwrap_or(kind).to_owned());
        let said = parsed["message"]
            .as_str()
            .or(parsed["Message"].as_str())
            .map(|text| excerpt(text, 300))
            .unwrap_or_else(|| excerpt(&answer.body, 300));
        let hint = match kind.as_deref() {
            Some("AccessDenied" | "AccessDeniedException") => {
                " (the function's role needs sqs:SendMessage on this queue)"
            }
            Some("QueueDoesNotExist" | "NonExistentQueue") => " (check the queue URL)",
            _ => "",
        };
        let throttled = kind.as_deref().is_some_and(|k| k.contains("Throttl"));
        Err(QueueError {
            retryable: answer.status.is_server_error() || throttled,
            ..error(format!(
                "{action}: HTTP {} {}{said}{hint}",
                answer.status.as_u16(),
                kind.map(|k| format!("{k}: ")).unwrap_or_default(),
            ))
        })
    }
}
