//! Handler: one Lambda invocation. Parses the payload, processes it, and answers in the shape
//! the invoker expects: `batchItemFailures` for SQS, an error for retryable failures of direct
//! (asynchronous) invocations so Lambda's retries and on-failure destination take over.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::app::{App, Report};
use crate::event::{self, Invocation};

/// Handles one invocation.
pub async fn handle(
    app: &App,
    event: LambdaEvent<Value>,
    dry_run: bool,
) -> Result<Value, Diagnostic> {
    let deadline = deadline_instant(event.context.deadline);
    let parsed = event::parse(event.payload).map_err(|error| {
        tracing::error!(%error, "unusable event");
        Diagnostic {
            error_type: "InvalidEvent".to_owned(),
            error_message: error.to_string(),
        }
    })?;
    let report = app.process(&parsed, deadline, dry_run).await;
    respond(report)
}

/// Turns a report into the invocation's answer.
pub fn respond(report: Report) -> Result<Value, Diagnostic> {
    tracing::info!(summary = ?report.summary, "invocation done");
    match report.invocation {
        Invocation::SqsBatch => {
            let failures: Vec<Value> = report
                .failed_message_ids()
                .into_iter()
                .map(|id| json!({ "itemIdentifier": id }))
                .collect();
            Ok(json!({ "batchItemFailures": failures }))
        }
        Invocation::Direct => {
            let retryable: Vec<String> = report
                .retryable_failures()
                .map(|o| {
                    format!(
                        "{} s3://{}/{}: {}",
                        o.route, o.bucket, o.key, o.delivered.detail
                    )
                })
                .collect();
            if !retryable.is_empty() {
                return Err(Diagnostic {
                    error_type: "Retryable".to_owned(),
                    error_message: format!(
                        "{} delivery(ies) failed and may succeed on retry: {}",
                        retryable.len(),
                        retryable.join("; ")
                    ),
                });
            }
            Ok(serde_json::to_value(&report).unwrap_or(Value::Null))
        }
    }
}

/// Lambda's deadline (milliseconds since the epoch) as a monotonic instant; `None` if unset.
fn deadline_instant(deadline_ms: u64) -> Option<Instant> {
    if deadline_ms == 0 {
        return None;
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_millis() as u64;
    Some(Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
}
