//! Handler: one Lambda invocation. Parses the payload, has the [`App`] process it, and answers
//! in the shape the invoker expects: `batchItemFailures` for SQS, the report for direct
//! invocations, or an error for retryable failures of direct (asynchronous) invocations so
//! Lambda's retries and on-failure destination take over; prints the invocation's metric
//! lines. Only here do errors become Lambda diagnostics.

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use aws_lambda_events::sqs::SqsBatchResponse;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::app::App;
use crate::clock::Clock;
use crate::event::{self, Invocation};
use crate::metrics;
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
    handle_with_metrics(app, event, None).await
}

/// Handles one invocation and, given a CloudWatch namespace, prints its metrics on stdout
/// (one Embedded Metric Format line per route × target, see [`crate::metrics`]) before
/// answering.
pub async fn handle_with_metrics(
    app: &App,
    event: LambdaEvent<Value>,
    metrics: Option<&str>,
) -> Result<Answer, Diagnostic> {
    let deadline = deadline_instant(event.context.deadline, app.clock());
    let parsed = event::parse(event.payload).map_err(|error| {
        tracing::error!(%error, "unusable event");
        Diagnostic {
            error_type: "InvalidEvent".to_owned(),
            error_message: error.to_string(),
        }
    })?;
    let report = app.process(&parsed, deadline).await;
    if let Some(namespace) = metrics {
        let now = app.clock().now();
        // The log shares stdout: holding its lock keeps every line whole.
        if let Err(error) = write_metrics(&report, namespace, now, &mut std::io::stdout().lock()) {
            tracing::warn!(%error, "metric lines not written");
        }
    }
    respond(report)
}

/// Writes the report's metric documents to `out`, one line each, in one write (a locked
/// stdout or stderr keeps them whole among other writers' lines); nothing for a report with
/// no delivery.
pub fn write_metrics(
    report: &Report,
    namespace: &str,
    now: std::time::SystemTime,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let timestamp_ms = now.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    });
    let documents = metrics::emf(report, namespace, timestamp_ms);
    if documents.is_empty() {
        return Ok(());
    }
    let mut text = String::new();
    for document in documents {
        text.push_str(&document.to_string());
        text.push('\n');
    }
    out.write_all(text.as_bytes())?;
    out.flush()
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
    use crate::delivery::{Delivered, Ending};
    use crate::report::Outcome;
    use serde_json::json;

    #[test]
    fn metric_lines_are_whole_json_lines_stamped_with_the_clock() {
        let delivered = |attempts| Delivered {
            run_id: None,
            ending: Ending::Triggered {
                detail: "ok".into(),
                remote_id: None,
            },
            attempts,
            http_status: Some(200),
            warning: None,
            may_have_arrived: false,
        };
        let outcome = |target: &str, attempts| Outcome {
            bucket: "b".into(),
            key: "k".into(),
            record_id: None,
            route: "r".into(),
            target: target.into(),
            delivered: delivered(attempts),
            elapsed_ms: 5,
            failure_record: None,
            settled: false,
        };
        let report = Report::new(
            Invocation::Direct,
            1,
            vec![outcome("a", 1), outcome("b", 3)],
            vec![],
            vec![],
        );
        let mut out = Vec::new();
        write_metrics(
            &report,
            "NS",
            ManualClock::at(1_764_000_000).now(),
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert!(text.ends_with('\n'));
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["_aws"]["Timestamp"], 1_764_000_000_000_u64);
        assert_eq!(lines[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"], "NS");
        assert_eq!(
            (&lines[0]["Target"], &lines[0]["Retried"]),
            (&json!("a"), &json!(0))
        );
        assert_eq!(
            (&lines[1]["Target"], &lines[1]["Retried"]),
            (&json!("b"), &json!(2))
        );

        let mut out = Vec::new();
        let empty = Report::new(Invocation::Direct, 0, vec![], vec![], vec![]);
        write_metrics(&empty, "NS", ManualClock::at(0).now(), &mut out).unwrap();
        assert!(out.is_empty());
    }

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
