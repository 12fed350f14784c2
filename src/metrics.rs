//! Metrics: an invocation's [`Report`] as CloudWatch Embedded Metric Format documents (EMF,
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>):
//! one per route × target that had outcomes, counting each ending, the extra attempts, the
//! ambiguous failures and each delivery's latency, under the dimensions `Route` + `Target` and
//! none (the total, for alarms), written one line each.

use std::io::Write;
use std::time::UNIX_EPOCH;

use serde_json::{Map, Value, json};

use crate::delivery::Status;
use crate::report::Report;

/// Environment variable that turns the metric lines on (`1`, `true`, `on`) or off (`0`,
/// `false`, `off`), whatever `settings.metrics.enabled` says.
pub const ENV_METRICS: &str = "BUCKET_TRIGGER_METRICS";

/// EMF allows at most this many values in one metric's array; more latencies than this for
/// one route × target go on further documents, which carry only `Latency`.
pub const MAX_VALUES: usize = 100;

/// EMF allows no longer dimension value (characters); longer route or target descriptions
/// are cut.
const MAX_DIMENSION_CHARS: usize = 1024;

/// The counted metrics, in the order they are declared (all `Count`), then `Latency`.
pub const COUNTS: [&str; 5] = [
    "Triggered",
    "AlreadyTriggered",
    "Retried",
    "Failed",
    "Ambiguous",
];

/// Whether metric lines are printed: [`ENV_METRICS`]'s value (`env`) when set, else `default`.
/// A value that is neither on nor off is an error naming the variable.
pub fn enabled(env: Option<&str>, default: bool) -> Result<bool, String> {
    match env
        .map(|value| value.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") => Ok(default),
        Some("1" | "true" | "on" | "yes") => Ok(true),
        Some("0" | "false" | "off" | "no") => Ok(false),
        Some(other) => Err(format!(
            "{ENV_METRICS}={other:?}: use 1 (metric lines on) or 0 (off)"
        )),
    }
}

/// One route × target's outcomes.
#[derive(Debug, Default)]
struct Tally {
    counts: [u64; 5],
    latencies: Vec<u64>,
}

/// The EMF documents for `report`, in the order its route × target pairs first appear; none
/// for dry runs (nothing was sent) or an invocation that delivered nothing. `timestamp_ms` is
/// the time the metrics are stamped with (milliseconds since the epoch).
pub fn emf(report: &Report, namespace: &str, timestamp_ms: u64) -> Vec<Value> {
    let mut pairs: Vec<((&str, &str), Tally)> = Vec::new();
    for outcome in &report.outcomes {
        let delivered = &outcome.delivered;
        let status = delivered.status();
        if status == Status::DryRun {
            continue;
        }
        let key = (outcome.route.as_str(), outcome.target.as_str());
        let index = match pairs.iter().position(|(k, _)| *k == key) {
            Some(index) => index,
            None => {
                pairs.push((key, Tally::default()));
                pairs.len() - 1
            }
        };
        let Some((_, tally)) = pairs.get_mut(index) else {
            continue;
        };
        let counts = &mut tally.counts;
        match status {
            Status::Triggered => counts[0] += 1,
            Status::AlreadyTriggered => counts[1] += 1,
            Status::Failed => counts[3] += 1,
            Status::DryRun => {}
        }
        counts[2] = counts[2].saturating_add(u64::from(delivered.attempts.saturating_sub(1)));
        if status == Status::Failed && delivered.may_have_arrived {
            counts[4] += 1;
        }
        tally.latencies.push(outcome.elapsed_ms);
    }
    let mut documents = Vec::new();
    for ((route, target), tally) in pairs {
        for (chunk, latencies) in tally.latencies.chunks(MAX_VALUES).enumerate() {
            let mut metrics: Vec<(&str, &str, Value)> = Vec::new();
            if chunk == 0 {
                for (name, count) in COUNTS.iter().zip(tally.counts) {
                    metrics.push((name, "Count", json!(count)));
                }
            }
            metrics.push(("Latency", "Milliseconds", json!(latencies)));
            documents.push(document(namespace, timestamp_ms, route, target, metrics));
        }
    }
    documents
}

/// One EMF document: the metadata, the two dimensions and the metric values at the root.
fn document(
    namespace: &str,
    timestamp_ms: u64,
    route: &str,
    target: &str,
    metrics: Vec<(&str, &str, Value)>,
) -> Value {
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
        .collect();
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                // Per pair, and an empty set: the same values again without dimensions, the
                // total an alarm can watch.
                "Dimensions": [["Route", "Target"], []],
                "Metrics": definitions,
            }],
        }),
    );
    root.insert("Route".into(), Value::String(cut(route)));
    root.insert("Target".into(), Value::String(cut(target)));
    for (name, _, value) in metrics {
        root.insert(name.to_owned(), value);
    }
    Value::Object(root)
}

fn cut(text: &str) -> String {
    text.chars().take(MAX_DIMENSION_CHARS).collect()
}

/// Writes the report's metric documents to `out`, one line each, in one write (a locked
/// stdout or stderr keeps them whole among other writers' lines); nothing for a report with
/// no delivery.
pub fn write(
    report: &Report,
    namespace: &str,
    now: std::time::SystemTime,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let timestamp_ms = now.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    });
    let documents = emf(report, namespace, timestamp_ms);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::{Delivered, Ending, Failure};
    use crate::event::Invocation;
    use crate::http::Printable;
    use crate::report::Outcome;

    fn outcome(route: &str, target: &str, ending: Ending, attempts: u32, ms: u64) -> Outcome {
        Outcome {
            bucket: "b".into(),
            key: "k.csv".into(),
            record_id: None,
            route: route.into(),
            target: target.into(),
            delivered: Delivered {
                run_id: None,
                ending,
                attempts,
                http_status: None,
                warning: None,
                may_have_arrived: false,
            },
            elapsed_ms: ms,
            failure_record: None,
            settled: false,
        }
    }

    fn triggered() -> Ending {
        Ending::Triggered {
            detail: "started".into(),
            remote_id: None,
        }
    }

    fn failed() -> Ending {
        Ending::Failed(Failure::Exhausted {
            reason: "HTTP 503".into(),
            attempts: 3,
        })
    }

    fn report(outcomes: Vec<Outcome>) -> Report {
        Report::new(Invocation::Direct, outcomes.len(), outcomes, vec![], vec![])
    }

    #[test]
    fn one_document_per_route_and_target_with_exact_structure() {
        let mut ambiguous = outcome("sales", "webhook POST https://h/a", failed(), 1, 40);
        ambiguous.delivered.may_have_arrived = true;
        let report = report(vec![
            outcome("sales", "webhook POST https://h/a", triggered(), 1, 10),
            outcome("other", "airflow v2 dag d", failed(), 3, 900),
            outcome(
                "sales",
                "webhook POST https://h/a",
                Ending::AlreadyTriggered { remote_id: None },
                2,
                25,
            ),
            ambiguous,
            outcome("sales", "webhook POST https://h/b", triggered(), 1, 7),
        ]);
        let documents = emf(&report, "BucketTrigger", 1_764_000_000_123);
        let metadata = |definitions: Value| {
            json!({
                "Timestamp": 1_764_000_000_123_u64,
                "CloudWatchMetrics": [{
                    "Namespace": "BucketTrigger",
                    "Dimensions": [["Route", "Target"], []],
                    "Metrics": definitions,
                }],
            })
        };
        let all = json!([
            {"Name": "Triggered", "Unit": "Count"},
            {"Name": "AlreadyTriggered", "Unit": "Count"},
            {"Name": "Retried", "Unit": "Count"},
            {"Name": "Failed", "Unit": "Count"},
            {"Name": "Ambiguous", "Unit": "Count"},
            {"Name": "Latency", "Unit": "Milliseconds"},
        ]);
        assert_eq!(
            documents,
            [
                json!({
                    "_aws": metadata(all.clone()),
                    "Route": "sales", "Target": "webhook POST https://h/a",
                    "Triggered": 1, "AlreadyTriggered": 1, "Retried": 1, "Failed": 1,
                    "Ambiguous": 1, "Latency": [10, 25, 40],
                }),
                json!({
                    "_aws": metadata(all.clone()),
                    "Route": "other", "Target": "airflow v2 dag d",
                    "Triggered": 0, "AlreadyTriggered": 0, "Retried": 2, "Failed": 1,
                    "Ambiguous": 0, "Latency": [900],
                }),
                json!({
                    "_aws": metadata(all),
                    "Route": "sales", "Target": "webhook POST https://h/b",
                    "Triggered": 1, "AlreadyTriggered": 0, "Retried": 0, "Failed": 0,
                    "Ambiguous": 0, "Latency": [7],
                }),
            ]
        );
        // Every metric declared is a member of the root, as the specification requires.
        for document in &documents {
            for definition in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
            {
                let name = definition["Name"].as_str().unwrap();
                assert!(document.get(name).is_some(), "{name} missing: {document}");
            }
        }
    }

    #[test]
    fn a_failure_that_surely_did_not_arrive_is_not_ambiguous_and_recorded_is_already_triggered() {
        let report = report(vec![
            outcome("r", "t", failed(), 0, 1),
            outcome("r", "t", Ending::Recorded { remote_id: None }, 0, 2),
        ]);
        let documents = emf(&report, "N", 0);
        assert_eq!(documents.len(), 1);
        let document = &documents[0];
        assert_eq!(document["Failed"], 1);
        assert_eq!(document["Ambiguous"], 0);
        assert_eq!(document["AlreadyTriggered"], 1);
        assert_eq!(document["Retried"], 0, "no attempt is not -1 retries");
    }

    #[test]
    fn dry_runs_and_empty_invocations_give_no_documents() {
        let printed = Printable {
            method: "POST".into(),
            url: "http://127.0.0.1:9/a".into(),
            headers: Default::default(),
            body: None,
        };
        let dry = report(vec![outcome("r", "t", Ending::DryRun(printed), 0, 1)]);
        assert!(emf(&dry, "N", 0).is_empty());
        assert!(emf(&report(vec![]), "N", 0).is_empty());
    }

    #[test]
    fn more_latencies_than_emf_allows_go_on_further_documents_without_counts() {
        let outcomes = (0..250)
            .map(|ms| outcome("r", "t", triggered(), 1, ms))
            .collect();
        let documents = emf(&report(outcomes), "N", 0);
        assert_eq!(documents.len(), 3);
        let lengths: Vec<usize> = documents
            .iter()
            .map(|d| d["Latency"].as_array().unwrap().len())
            .collect();
        assert_eq!(lengths, [100, 100, 50]);
        assert_eq!(documents[0]["Triggered"], 250);
        for later in &documents[1..] {
            assert!(later.get("Triggered").is_none(), "{later}");
            assert_eq!(
                later["_aws"]["CloudWatchMetrics"][0]["Metrics"],
                json!([{"Name": "Latency", "Unit": "Milliseconds"}])
            );
            assert_eq!(later["Route"], "r");
        }
        assert_eq!(documents[2]["Latency"][49], 249);
    }

    #[test]
    fn dimension_values_are_cut_to_what_emf_allows() {
        let long = "é".repeat(1500);
        let documents = emf(
            &report(vec![outcome(&long, "t", triggered(), 1, 1)]),
            "N",
            0,
        );
        assert_eq!(
            documents[0]["Route"].as_str().unwrap().chars().count(),
            1024
        );
    }

    #[test]
    fn the_switch_reads_on_and_off_and_refuses_anything_else() {
        assert_eq!(enabled(None, true), Ok(true));
        assert_eq!(enabled(None, false), Ok(false));
        assert_eq!(enabled(Some(""), true), Ok(true));
        assert_eq!(enabled(Some("0"), true), Ok(false));
        assert_eq!(enabled(Some(" OFF "), true), Ok(false));
        assert_eq!(enabled(Some("1"), false), Ok(true));
        assert_eq!(enabled(Some("true"), false), Ok(true));
        let error = enabled(Some("maybe"), true).unwrap_err();
        assert!(error.contains("BUCKET_TRIGGER_METRICS"), "{error}");
    }
}
