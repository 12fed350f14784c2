//! Per-target rate limits: on every target kind, validated at load naming the field, and kept
//! through `App::process` against a wiremock stand-in on the real clock.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bucket_trigger::config::Config;
use bucket_trigger::event;
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::{app, sample};

#[test]
fn every_target_kind_takes_a_rate_limit_and_bad_values_are_named() {
    let limit = "rate_limit: { per_second: 2.5, burst: 3, in_flight: 4 }";
    for target in [
        "airflow: { base_url: 'https://af', dag_id: d",
        "airflow_asset: { base_url: 'https://af', asset: { uri: 's3://b/k' }",
        "alteryx: { api: v3, base_url: 'https://a', workflow_id: w, auth: { bearer: { secret: s } }",
        "webhook: { url: 'https://hook'",
        "workflows: { project: p, location: l, workflow: w, auth: { bearer: { secret: s } }",
        "workflows_callback: { url: 'https://cb', auth: { bearer: { secret: s } }",
        "mwaa: { environment: e, region: eu-west-1, dag_id: d",
    ] {
        let yaml = format!("routes:\n  - name: r\n    target: {{ {target}, {limit} }} }}\n");
        let config = Config::parse(&yaml, "t").unwrap_or_else(|e| panic!("{target}: {e}"));
        assert!(config.routes[0].targets[0].limiter.is_set(), "{target}");
        assert_eq!(
            config.routes[0].targets[0].limiter.free_slots(),
            Some(4),
            "{target}"
        );
    }
    for (targets, want) in [
        (
            "target: { webhook: { url: 'https://hook', rate_limit: { per_second: 0 } } }",
            "config t: routes[0] (r).target.rate_limit.per_second: 0 is not a positive number",
        ),
        (
            "targets:\n      - webhook: { url: 'https://a' }\n      - webhook: { url: 'https://b', rate_limit: { in_flight: 0 } }",
            "config t: routes[0] (r).targets[1].rate_limit.in_flight: must be at least 1",
        ),
        (
            "target: { airflow: { base_url: 'https://af', dag_id: d, rate_limit: { burst: 2 } } }",
            "config t: routes[0] (r).target.rate_limit: give per_second, in_flight, or both",
        ),
    ] {
        let yaml = format!("routes:\n  - name: r\n    {targets}\n");
        let error = Config::parse(&yaml, "t").unwrap_err().to_string();
        assert!(error.starts_with(want), "{error}");
    }
}

/// Answers 200 and notes when each request arrived.
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<Vec<Instant>>>);

impl Respond for Arrivals {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.0.lock().unwrap().push(Instant::now());
        ResponseTemplate::new(200).set_delay(Duration::from_millis(500))
    }
}

/// An S3 event with `n` objects.
fn objects(n: usize) -> Value {
    let mut event = sample("s3-put.json");
    let record = event["Records"][0].clone();
    event["Records"] = (0..n)
        .map(|i| {
            let mut record = record.clone();
            record["s3"]["object"]["key"] = format!("incoming/{i}.csv").into();
            record
        })
        .collect();
    event
}

#[tokio::test]
async fn app_process_keeps_the_rate_and_the_in_flight_limit() {
    let server = MockServer::start().await;
    let arrivals = Arrivals::default();
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(arrivals.clone())
        .expect(6)
        .mount(&server)
        .await;
    let config = format!(
        "settings: {{ max_concurrency: 16 }}
routes:
  - name: r
    target:
      webhook: {{ url: '{}/hook', rate_limit: {{ per_second: 5, in_flight: 2 }} }}
",
        server.uri()
    );
    let app = app(&config, "{}");
    let parsed = event::parse(objects(6)).unwrap();
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let report = app.process(&parsed, Some(deadline)).await;
    let elapsed = started.elapsed();
    assert_eq!(report.summary.triggered, 6, "{:?}", report.outcomes);

    // The stand-in answers in 500 ms. At 5 per second, 2 in flight, the requests arrive at
    // 0, 200, 500, 700, 1000 and 1200 ms: the rate spaces each pair, the slots each third
    // request from the first. Unlimited, all six would arrive within a few milliseconds.
    // Slack for the loopback and a busy machine (the first connection is the slowest: gaps of
    // 185 ms for 200 were seen).
    let slack = Duration::from_millis(60);
    let times = arrivals.0.lock().unwrap().clone();
    assert_eq!(times.len(), 6);
    let offsets: Vec<u128> = times
        .iter()
        .map(|at| (*at - times[0]).as_millis())
        .collect();
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] + slack >= Duration::from_millis(200),
            "{offsets:?}"
        );
    }
    for triple in times.windows(3) {
        assert!(
            triple[2] - triple[0] + slack >= Duration::from_millis(500),
            "a third request while two were in flight: {offsets:?}"
        );
    }
    assert!(
        times[5] - times[0] + slack >= Duration::from_millis(1200),
        "{offsets:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}
