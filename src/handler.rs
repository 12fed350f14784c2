//! Handler: one Lambda invocation. Parses the payload, has the [`App`] process it, and answers
//! in the shape the invoker expects: `batchItemFailures` for SQS; the report for direct
//! invocations, or an error for their retryable failures so Lambda's retries and on-failure
//! destination take over; an HTTP answer for a function URL's push (through
//! [`crate::ingress`]). Prints the invocation's metric lines. Only here do errors become
//! Lambda diagnostics.

use std::time::{Duration, UNIX_EPOCH};

use aws_lambda_events::sqs::SqsBatchResponse;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::app::App;
use crate::clock::Clock;
use crate::event::{self, Invocation};
use crate::ingress::{self, Ingress, PushResponse};
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
    /// To a function URL request: `statusCode`, `headers`, `body`.
    Http(Value),
}

/// Handles one invocation, with no push endpoint and no metric lines.
pub async fn handle(app: &App, event: LambdaEvent<Value>) -> Result<Answer, Diagnostic> {
    handle_with(app, None, event, None).await
}

/// Handles one invocation. A function URL request goes to `ingress` (the push endpoints of
/// `settings.push`; without any, it is answered 404 and nothing runs); any other payload is an
/// event. Given a CloudWatch namespace, prints the invocation's metrics on stdout (one
/// Embedded Metric Format line per route × target, see [`crate::metrics`]) before answering.
pub async fn handle_with(
    app: &App,
    ingress: Option<&Ingress>,
    event: LambdaEvent<Value>,
    metrics: Option<&str>,
) -> Result<Answer, Diagnostic> {
    let deadline = deadline_instant(event.context.deadline, app.clock());
    if ingress::is_function_url(&event.payload) {
        return Ok(Answer::Http(
            function_url(app, ingress, &event.payload, deadline, metrics).await,
        ));
    }
    let parsed = event::parse(event.payload).map_err(|error| {
        tracing::error!(%error, "unusable event");
        Diagnostic {
            error_type: "InvalidEvent".to_owned(),
            error_message: error.to_string(),
        }
    })?;
    let report = app.process(&parsed, deadline).await;
    print_metrics(app, &report, metrics);
    respond(report)
}

/// A function URL request, answered as one.
async fn function_url(
    app: &App,
    ingress: Option<&Ingress>,
    payload: &Value,
    deadline: Option<Instant>,
    metrics: Option<&str>,
) -> Value {
    let request = match ingress::from_function_url(payload) {
        Ok(request) => request,
        Err(reason) => {
            tracing::error!(%reason, "unusable function URL request");
            return ingress::to_function_url(&PushResponse::error(400, &reason));
        }
    };
    let Some(ingress) = ingress.filter(|ingress| !ingress.is_empty()) else {
        tracing::warn!(
            path = %request.path,
            "function URL request, but settings.push names no endpoint: refused"
        );
        return ingress::to_function_url(&PushResponse::error(
            404,
            "this function serves no push endpoint (settings.push is empty)",
        ));
    };
    let (response, report) = ingress.answer(app, &request, deadline).await;
    if let Some(report) = &report {
        print_metrics(app, report, metrics);
    }
    ingress::to_function_url(&response)
}

/// Prints the report's metric lines on stdout, given a namespace.
fn print_metrics(app: &App, report: &Report, metrics: Option<&str>) {
    if let Some(namespace) = metrics {
        let now = app.clock().now();
        // The log shares stdout: holding its lock keeps every line whole.
        if let Err(error) = metrics::write(report, namespace, now, &mut std::io::stdout().lock()) {
            tracing::warn!(%error, "metric lines not written");
        }
    }
}

/// Turns a report into the invocation's answer.
pub fn respond(report: Report) -> Result<Answer, Diagnostic> {
    tracing::info!(summary = ?report.summary, "invocation done");
    match report.invocation {
        Invocation::SqsBatch => Ok(Answer::Batch(report.sqs_response())),
        // A push comes through [`crate::ingress`], which answers in HTTP; as a direct payload
        // (`invoke` of a push file) it is answered the same way.
        Invocation::Direct | Invocation::Push => {
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
        metrics::write(
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
        metrics::write(&empty, "NS", ManualClock::at(0).now(), &mut out).unwrap();
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
