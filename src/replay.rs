//! Replay: runs what failed again, through the same routes and the same idempotency store.
//! Reads failure records (ours, from the log or the failure queue), Lambda's on-failure
//! destination records (`requestPayload`), dead-lettered SQS bodies and plain event files;
//! drains the failure queue when asked; and sums up what became of each.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::app::App;
use crate::delivery::Status;
use crate::event::{self, Body, Invocation, Message, Parsed};
use crate::http::Network;
use crate::report::{FailureRecord, RECORD_KIND, Report};
use crate::store::{Queue, QueueError};

/// One thing to replay.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A failure record: its event, on its route and target only.
    Record(Box<FailureRecord>),
    /// An event payload (a Lambda destination record's `requestPayload`, a dead-lettered SQS
    /// body, an event file): routed like a new event.
    Event(Value),
    /// Not something replay understands, and why.
    Unreadable(String),
}

/// Reads every item in `text`: JSON documents one after another (a file of records, JSON
/// lines, one event file, an array), or log lines carrying `failure_record=…` (text format)
/// or a `failure_record` field (JSON format).
pub fn read_items(text: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut values = Vec::new();
    let whole = loop {
        match stream.next() {
            None => break true,
            Some(Ok(value)) => values.push(value),
            Some(Err(_)) => break false,
        }
    };
    if whole {
        for value in values {
            classify(value, &mut items);
        }
        return items;
    }
    // Not plain JSON: log lines, each holding at most one record.
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Ok(value) = serde_json::from_str::<Value>(line) {
            classify(value, &mut items);
        } else if let Some(start) = line.find("failure_record=") {
            let rest = &line[start + "failure_record=".len()..];
            match serde_json::Deserializer::from_str(rest)
                .into_iter::<Value>()
                .next()
            {
                Some(Ok(value)) => classify(value, &mut items),
                _ => items.push(Item::Unreadable(format!(
                    "line {}: failure_record= is not followed by JSON",
                    number + 1
                ))),
            }
        }
    }
    items
}

fn classify(value: Value, items: &mut Vec<Item>) {
    match value {
        Value::Array(values) => values.into_iter().for_each(|v| classify(v, items)),
        Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some(RECORD_KIND) => {
            match serde_json::from_value::<FailureRecord>(value) {
                Ok(record) => items.push(Item::Record(Box::new(record))),
                Err(error) => items.push(Item::Unreadable(format!(
                    "a {RECORD_KIND} record that cannot be read: {error}"
                ))),
            }
        }
        Value::Object(ref map) => {
            // A log line in JSON format: the record is a string field.
            let field = map
                .get("failure_record")
                .or_else(|| map.get("fields").and_then(|f| f.get("failure_record")));
            if let Some(Value::String(text)) = field {
                match serde_json::from_str::<Value>(text) {
                    Ok(inner) => classify(inner, items),
                    Err(error) => items.push(Item::Unreadable(format!(
                        "a failure_record field that is not JSON: {error}"
                    ))),
                }
            } else if field.is_some() || is_log_line(map) {
                // Other log lines (and records already expanded) carry nothing to replay.
            } else if let Some(payload) = map.get("requestPayload") {
                items.push(Item::Event(payload.clone()));
            } else {
                items.push(Item::Event(value));
            }
        }
        other => items.push(Item::Unreadable(format!(
            "not a record or an event: {}",
            crate::http::excerpt(&other.to_string(), 80)
        ))),
    }
}

/// A JSON log line of ours without a record (`level` and `message`/`fields`).
fn is_log_line(map: &serde_json::Map<String, Value>) -> bool {
    map.contains_key("level") && (map.contains_key("fields") || map.contains_key("message"))
}

/// How to replay.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Time allowed for each item, retries included.
    pub timeout: Duration,
    /// Replay records whose request may have reached a target that cannot tell (the operator
    /// checked it did not run).
    pub resend_may_have_run: bool,
}

/// One line of the summary.
#[derive(Debug, Clone)]
pub struct Line {
    /// `triggered`, `already_triggered`, `dry_run`, `failed`, `skipped`, `unreadable`.
    pub status: String,
    /// Route, or `-`.
    pub route: String,
    /// Target, or `-`.
    pub target: String,
    /// `s3://bucket/key`, or what was read.
    pub object: String,
    /// Why, for failures and skips.
    pub detail: String,
}

/// What a replay did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Items read.
    pub items: usize,
    /// One line per delivery, skip or unreadable item.
    pub lines: Vec<Line>,
}

impl Summary {
    fn count(&self, status: &str) -> usize {
        self.lines.iter().filter(|l| l.status == status).count()
    }

    /// Whether anything failed or could not be read.
    pub fn has_failures(&self) -> bool {
        self.count("failed") + self.count("unreadable") > 0
    }

    /// The table printed at the end.
    pub fn table(&self) -> String {
        let mut out = format!(
            "replayed {} item(s): {} triggered, {} already triggered, {} dry run, {} failed, {} skipped, {} unreadable\n",
            self.items,
            self.count("triggered"),
            self.count("already_triggered"),
            self.count("dry_run"),
            self.count("failed"),
            self.count("skipped"),
            self.count("unreadable"),
        );
        if self.lines.is_empty() {
            return out;
        }
        let width = |f: fn(&Line) -> &str| {
            self.lines
                .iter()
                .map(|l| f(l).chars().count())
                .max()
                .unwrap_or(0)
        };
        let (w_status, w_route, w_target) = (
            width(|l| &l.status).max(6),
            width(|l| &l.route).max(5),
            width(|l| &l.target).max(6),
        );
        let _ = writeln!(
            out,
            "{:w_status$}  {:w_route$}  {:w_target$}  OBJECT",
            "STATUS", "ROUTE", "TARGET"
        );
        for line in &self.lines {
            let _ = write!(
                out,
                "{:w_status$}  {:w_route$}  {:w_target$}  {}",
                line.status, line.route, line.target, line.object
            );
            if !line.detail.is_empty() {
                let _ = write!(out, "  ({})", line.detail);
            }
            out.push('\n');
        }
        out
    }

    fn add_report(&mut self, report: &Report) {
        for outcome in &report.outcomes {
            let status = outcome.delivered.status();
            self.lines.push(Line {
                status: status.as_str().to_owned(),
                route: outcome.route.clone(),
                target: outcome.target.clone(),
                object: format!("s3://{}/{}", outcome.bucket, outcome.key),
                detail: match status {
                    Status::Failed => outcome.delivered.detail(),
                    _ => String::new(),
                },
            });
        }
        for skipped in &report.skipped {
            self.lines.push(Line {
                status: "skipped".to_owned(),
                route: "-".to_owned(),
                target: "-".to_owned(),
                object: format!("s3://{}/{}", skipped.bucket, skipped.key),
                detail: skipped.reason.clone(),
            });
        }
        for bad in &report.bad_messages {
            self.unreadable(bad.error.clone());
        }
    }

    fn skip(&mut self, record: &FailureRecord, why: String) {
        self.lines.push(Line {
            status: "skipped".to_owned(),
            route: record.route.clone(),
            target: record.target.clone(),
            object: format!("s3://{}/{}", record.bucket, record.key),
            detail: why,
        });
    }

    fn unreadable(&mut self, why: String) {
        self.lines.push(Line {
            status: "unreadable".to_owned(),
            route: "-".to_owned(),
            target: "-".to_owned(),
            object: "-".to_owned(),
            detail: why,
        });
    }
}

/// Replays one item; whether it is done with (nothing failed, nothing left to do).
pub async fn replay(app: &App, item: &Item, options: Options, summary: &mut Summary) -> bool {
    summary.items += 1;
    let deadline = Instant::now().checked_add(options.timeout);
    match item {
        Item::Unreadable(why) => {
            summary.unreadable(why.clone());
            false
        }
        Item::Event(payload) => match event::parse(payload.clone()) {
            Ok(parsed) => {
                let report = app.process(&parsed, deadline).await;
                summary.add_report(&report);
                !report.has_failures()
            }
            Err(error) => {
                summary.unreadable(error.to_string());
                false
            }
        },
        Item::Record(record) => {
            let Some(route) = app.config.routes.iter().find(|r| r.name == record.route) else {
                summary.skip(
                    record,
                    format!("route {:?} is not in this config", record.route),
                );
                return false;
            };
            let Some(endpoint) = route
                .targets
                .iter()
                .find(|t| t.description == record.target)
            else {
                summary.skip(
                    record,
                    format!(
                        "route {:?} has no target {:?} in this config",
                        record.route, record.target
                    ),
                );
                return false;
            };
            // A target that can say whether the request ran (Workflows) is asked by the claim,
            // which finds the record ambiguous: only with a store to hold that record.
            let asks = endpoint.target.can_tell()
                && endpoint.idempotency_table.is_some()
                && app.keeps_records();
            if record.may_have_run && !options.resend_may_have_run && !asks {
                summary.skip(
                    record,
                    "may have run: check the target, then replay with --resend-may-have-run"
                        .to_owned(),
                );
                return false;
            }
            let parsed = Parsed {
                invocation: Invocation::Direct,
                messages: vec![Message {
                    id: None,
                    body: Ok(Body::Objects(vec![record.event.clone()])),
                    original: record.original.clone().unwrap_or(Value::Null),
                    receive_count: None,
                }],
            };
            let report = app
                .process_only(&parsed, deadline, Some((&record.route, &record.target)))
                .await;
            summary.add_report(&report);
            !report.has_failures()
        }
    }
}

/// Drains the failure queue: takes messages until none is left (or `limit`), replays each and
/// deletes it when done with. A message that fails again stays, made visible again once the
/// drain ends (not before: this drain would take it again). A dry run deletes nothing.
pub async fn drain(
    app: &App,
    queue: &Queue,
    network: &Network,
    options: Options,
    limit: usize,
    dry_run: bool,
    summary: &mut Summary,
) -> Result<(), QueueError> {
    let mut taken = 0;
    let mut kept = Vec::new();
    let result = async {
        while taken < limit {
            let want = (limit - taken).min(10) as u32;
            let messages = queue
                .receive(network, app.clock().now(), want, Duration::from_secs(1))
                .await?;
            if messages.is_empty() {
                break;
            }
            for message in messages {
                taken += 1;
                let mut done = true;
                for item in read_items(&message.body) {
                    done &= replay(app, &item, options, summary).await;
                }
                if done && !dry_run {
                    queue
                        .delete(network, app.clock().now(), &message.receipt_handle, TIMEOUT)
                        .await?;
                } else {
                    kept.push(message.receipt_handle);
                }
            }
        }
        Ok(())
    }
    .await;
    for handle in kept {
        if let Err(error) = queue
            .release(network, app.clock().now(), &handle, TIMEOUT)
            .await
        {
            tracing::warn!(%error, "a message not done with stays hidden until its visibility timeout ends");
        }
    }
    result
}

/// Time limit of one queue call.
const TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ObjectEvent;

    fn record() -> FailureRecord {
        FailureRecord {
            kind: RECORD_KIND.to_owned(),
            version: 1,
            route: "r".into(),
            target: "webhook POST http://127.0.0.1:9/a".into(),
            bucket: "b".into(),
            key: "k 1.csv".into(),
            event: ObjectEvent::put("b", "k 1.csv"),
            original: None,
            run_id: None,
            attempts: 1,
            http_status: Some(400),
            retryable: false,
            may_have_run: false,
            error: "HTTP 400".into(),
            started_at: "2026-11-30T00:00:00.000Z".into(),
            failed_at: "2026-11-30T00:00:01.000Z".into(),
            receive_count: None,
            idempotency: None,
        }
    }

    #[test]
    fn reads_records_in_every_form_they_are_kept() {
        let json = serde_json::to_string(&record()).unwrap();
        let expected = Item::Record(Box::new(record()));
        // One document, JSON lines, an array.
        assert_eq!(read_items(&json), std::slice::from_ref(&expected));
        assert_eq!(read_items(&format!("{json}\n{json}\n")).len(), 2);
        assert_eq!(read_items(&format!("[{json},{json}]")).len(), 2);
        // A text log line, a JSON log line (the record as a string field).
        let text = format!(
            "2026-11-30T00:00:01Z ERROR deliver{{bucket=b}}: failure record failure_record={json} may_have_run=false\nINFO other line\n"
        );
        assert_eq!(read_items(&text), std::slice::from_ref(&expected));
        let logged = serde_json::json!({"level": "ERROR", "fields": {"message": "failure record", "failure_record": json}});
        assert_eq!(read_items(&logged.to_string()), [expected]);
        // A JSON log line without a record is not an item.
        assert!(read_items(r#"{"level":"INFO","fields":{"message":"x"}}"#).is_empty());
        // Lambda's on-failure destination record: the event is its requestPayload.
        let destination = serde_json::json!({"requestContext": {"condition": "RetriesExhausted"}, "requestPayload": {"Records": []}});
        assert_eq!(
            read_items(&destination.to_string()),
            [Item::Event(serde_json::json!({"Records": []}))]
        );
        // A bare event file.
        let event =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/events/s3-put.json"))
                .unwrap();
        assert!(matches!(read_items(&event).as_slice(), [Item::Event(_)]));
        // Damaged records are named, not dropped.
        let damaged = json.replace("\"attempts\":1", "\"attempts\":\"x\"");
        assert!(
            matches!(read_items(&damaged).as_slice(), [Item::Unreadable(why)] if why.contains("cannot be read"))
        );
        assert!(matches!(read_items("42").as_slice(), [Item::Unreadable(_)]));
    }

    #[test]
    fn the_table_counts_and_aligns() {
        let mut summary = Summary {
            items: 2,
            ..Summary::default()
        };
        summary.skip(&record(), "may have run".into());
        summary.unreadable("bad".into());
        let table = summary.table();
        assert!(table.starts_with("replayed 2 item(s): 0 triggered, 0 already triggered, 0 dry run, 0 failed, 1 skipped, 1 unreadable\n"), "{table}");
        assert!(table.contains("skipped     r      webhook POST http://127.0.0.1:9/a  s3://b/k 1.csv  (may have run)"), "{table}");
        assert!(summary.has_failures());
    }
}
