//! Handler: one Lambda invocation. Parses the payload, has the [`App`] process it, and answers
//! in the shape the invoker expects: `batchItemFailures` for SQS, the report for direct
//! invocations, or an error for retryable failures of direct (asynchronous) invocations so
//! Lambda's retries and on-failure destination take over. Only here do errors become Lambda
//! diagnostics.

use std::time::{Duration, UNIX_EPOCH};

use aws_lambda_events::sqs::SqsBatchResponse;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::app::App;
use crate::clock::Clock;
use crate::event::{self, Invocation};
use crate::report::Report;

/// What the function answers Lambda.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Answer {
    /// To an SQS event source: the messages to redeliver.
    Batch(SqsBatchResponse),
    /// To a direct invocation: what was done.
    Report(Report),
}

/// Handles one invocation.
pub async fn handle(app: &App, event: LambdaEvent<Value>) -> Result<Answer, Diagnostic> {
    let deadline = deadline_instant(event.context.deadline, app.clock());
    let parsed = event::parse(event.payload).map_err(|error| {
        tracing::error!(%error, "unusable event");
        Diagnostic {
            error_type: "InvalidEvent".to_owned(),
            error_message: error.to_string(),
        }
    })?;
    let report = app.process(&parsed, deadline).await;
    respond(report)
}

/// Turns a report into the invocation's answer.
pub fn respond(report: Report) -> Result<Answer, Diagnostic> {
    tracing::info!(summary = ?report.summary, "invocation done");
    match report.invocation {
        Invocation::SqsBatch => Ok(Answer::Batch(report.sqs_response())),
        Invocation::Direct => {
            let retryable: Vec<String> = report
                .retryable_failures()
                .map(|o| {
                    format!(
                        "{} s3://{}/{}: {}",
                        o.route,
                        o.bucket,
                        o.key,
                        o.delivered.detail()
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
            Ok(Answer::Report(report))
        }
    }
}

/// Lambda's deadline (milliseconds since the epoch) as a monotonic instant; `None` if unset.
fn deadline_instant(deadline_ms: u64, clock: &dyn Clock) -> Option<Instant> {
    if deadline_ms == 0 {
        return None;
    }
    let now_ms = clock.now().duration_since(UNIX_EPOCH).ok()?.as_millis();
    let left = u128::from(deadline_ms).saturating_sub(now_ms);
    let left = Duration::from_millis(u64::try_from(left).unwrap_or(u64::MAX));
    Instant::now().checked_add(left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn the_deadline_is_read_against_the_clock_and_saturates() {
        let clock = ManualClock::at(1_764_000_000);
        let now_ms = 1_764_000_000_000;
        let before = Instant::now();
        let deadline = deadline_instant(now_ms + 3_000, &clock).unwrap();
        assert!(deadline >= before + Duration::from_secs(3));
        assert!(deadline <= Instant::now() + Duration::from_secs(3));
        let past = deadline_instant(now_ms - 5_000, &clock).unwrap();
        assert!(past <= Instant::now());
        assert_eq!(deadline_instant(0, &clock), None);
        // A deadline too far ahead to represent is no deadline, not a panic.
        let _ = deadline_instant(u64::MAX, &clock);
    }
}
