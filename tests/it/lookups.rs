//! "Did it run?" lookups (issue 10, item 2): a Workflows execution whose start got no answer is
//! marked AMBIGUOUS in the idempotency table (DynamoDB in moto server); the next delivery lists
//! the workflow's executions carrying our label (a wiremock stand-in of the Executions API)
//! and ends already triggered, sends once, or stays "may have run", as the answer says.

use std::time::Duration;

use bucket_trigger::app::App;
use bucket_trigger::store::DynamoDb;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::{app, dynamodb, idempotency_table, invoke};

const EXECUTIONS: &str = "/v1/projects/acme/locations/europe-west1/workflows/ingest/executions";
const NAME: &str = "projects/acme/locations/europe-west1/workflows/ingest/executions/e-1";

/// A Workflows target on `server`, recorded in `table`; attempts time out after 500 ms.
fn workflows_app(server: &MockServer, table: &str) -> App {
    let config = format!(
        "settings: {{ idempotency_table: {table}, max_attempts: 2, backoff_base_ms: 10, request_timeout_ms: 500 }}
routes:
  - name: ingest
    target:
      workflows: {{ project: acme, location: europe-west1, workflow: ingest, endpoint: '{}', auth: {{ bearer: {{ secret: wf }} }} }}
",
        server.uri()
    );
    app(&config, r#"{"wf": "w0rkfl0ws-t0ken"}"#).with_store(Box::new(DynamoDb::new(dynamodb())))
}

/// A start that is slower than the attempt timeout: Workflows may have started it.
async fn slow_start(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path(EXECUTIONS))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "name": NAME }))
                .set_delay(Duration::from_secs(2)),
        )
        .up_to_n_times(1)
        .mount(server)
        .await;
}

async fn requests(server: &MockServer, verb: &str) -> Vec<Request> {
    let all = server.received_requests().await.unwrap();
    all.into_iter()
        .filter(|r| r.method.as_str() == verb && r.url.path() == EXECUTIONS)
        .collect()
}

/// The label the first start carried, and the exact query a lookup for it sends.
async fn label_and_query(server: &MockServer) -> (String, String) {
    let posts = requests(server, "POST").await;
    let body: Value = serde_json::from_slice(&posts[0].body).unwrap();
    let label = body["labels"]["bucket_trigger"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(label.len(), 40, "{body}");
    let query = format!("filter=labels.bucket_trigger%3D%22{label}%22&view=FULL&pageSize=1");
    (label, query)
}

/// The first delivery: sent, no answer in time, so "may have run" and AMBIGUOUS.
async fn first_delivery_times_out(server: &MockServer, app: &App) {
    slow_start(server).await;
    let first = invoke(app, "s3-put.json").await.unwrap();
    let outcome = &first["outcomes"][0];
    assert_eq!(outcome["status"], "failed", "{first}");
    assert_eq!(outcome["retryable"], false, "{first}");
    assert_eq!(requests(server, "POST").await.len(), 1);
}

fn outcome(report: &Value) -> &Value {
    &report["outcomes"][0]
}

#[tokio::test]
async fn an_ambiguous_execution_found_by_its_label_is_already_triggered_and_not_started_again() {
    let server = MockServer::start().await;
    let table = idempotency_table("bucket-trigger-lookups").await;
    let app = workflows_app(&server, &table);
    first_delivery_times_out(&server, &app).await;
    let (label, query) = label_and_query(&server).await;
    Mock::given(method("GET"))
        .and(path(EXECUTIONS))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "executions": [
            { "name": NAME, "state": "SUCCEEDED", "labels": { "bucket_trigger": label } }
        ] })),
        )
        .mount(&server)
        .await;
    // A redelivery (an S3 duplicate, or `replay` of the failure record) asks first.
    let again = invoke(&app, "s3-put.json").await.unwrap();
    assert_eq!(outcome(&again)["status"], "already_triggered", "{again}");
    assert_eq!(outcome(&again)["remote_id"], NAME, "{again}");
    let gets = requests(&server, "GET").await;
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].url.query(), Some(query.as_str()));
    assert_eq!(
        gets[0].headers.get("authorization").unwrap(),
        "Bearer w0rkfl0ws-t0ken"
    );
    assert_eq!(
        requests(&server, "POST").await.len(),
        1,
        "not started again"
    );
    // COMPLETED with the execution's name: later deliveries ask nothing.
    let third = invoke(&app, "s3-put.json").await.unwrap();
    assert_eq!(
        outcome(&third)["detail"],
        "already triggered (recorded in the idempotency table)"
    );
    assert_eq!(outcome(&third)["remote_id"], NAME);
    assert_eq!(requests(&server, "GET").await.len(), 1);
}

#[tokio::test]
async fn an_ambiguous_execution_not_listed_is_started_exactly_once_more() {
    let server = MockServer::start().await;
    let table = idempotency_table("bucket-trigger-lookups").await;
    let app = workflows_app(&server, &table);
    first_delivery_times_out(&server, &app).await;
    let (_, query) = label_and_query(&server).await;
    Mock::given(method("GET"))
        .and(path(EXECUTIONS))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(EXECUTIONS))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "name": NAME })))
        .mount(&server)
        .await;
    let again = invoke(&app, "s3-put.json").await.unwrap();
    assert_eq!(outcome(&again)["status"], "triggered", "{again}");
    assert_eq!(outcome(&again)["remote_id"], NAME);
    let gets = requests(&server, "GET").await;
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].url.query(), Some(query.as_str()));
    let posts = requests(&server, "POST").await;
    assert_eq!(posts.len(), 2, "exactly one new execution");
    assert_eq!(
        posts[0].body, posts[1].body,
        "the same request, the same label"
    );
    // And no more after that.
    let third = invoke(&app, "s3-put.json").await.unwrap();
    assert_eq!(outcome(&third)["status"], "already_triggered", "{third}");
    assert_eq!(requests(&server, "POST").await.len(), 2);
}

#[tokio::test]
async fn a_lookup_that_fails_or_times_out_leaves_may_have_run_and_starts_nothing() {
    let server = MockServer::start().await;
    let table = idempotency_table("bucket-trigger-lookups").await;
    let app = workflows_app(&server, &table);
    first_delivery_times_out(&server, &app).await;
    // The list answers 500 once, then more slowly than the attempt timeout.
    Mock::given(method("GET"))
        .and(path(EXECUTIONS))
        .respond_with(ResponseTemplate::new(500).set_body_json(
            json!({ "error": { "code": 500, "message": "internal error", "status": "INTERNAL" } }),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(EXECUTIONS))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({}))
                .set_delay(Duration::from_secs(2)),
        )
        .mount(&server)
        .await;
    for (attempt, why) in [
        (1, "listing the executions answered 500: internal error"),
        (2, "timed out"),
    ] {
        let report = invoke(&app, "s3-put.json").await.unwrap();
        let outcome = outcome(&report);
        assert_eq!(outcome["status"], "failed", "{report}");
        assert_eq!(outcome["retryable"], false);
        let detail = outcome["detail"].as_str().unwrap();
        assert!(
            detail.contains("it may have run (asking the target failed: ")
                && detail.contains(why)
                && detail.contains("--resend-may-have-run"),
            "{detail}"
        );
        assert!(!detail.contains("w0rkfl0ws-t0ken"), "{detail}");
        assert_eq!(outcome["failure_record"], "logged");
        assert_eq!(requests(&server, "GET").await.len(), attempt);
    }
    assert_eq!(requests(&server, "POST").await.len(), 1, "nothing re-sent");
}

/// `replay` of the first delivery's "may have run" record, without `--resend-may-have-run`: a
/// target that can say is asked, not skipped (a target that cannot say is skipped, as before).
#[tokio::test]
async fn replaying_a_may_have_run_record_asks_workflows_instead_of_skipping_it() {
    use bucket_trigger::event::{Body, parse_bytes};
    use bucket_trigger::replay::{self, Item, Options, Summary};
    use bucket_trigger::report::{FailureRecord, RECORD_KIND};

    let server = MockServer::start().await;
    let table = idempotency_table("bucket-trigger-lookups").await;
    let app = workflows_app(&server, &table);
    first_delivery_times_out(&server, &app).await;
    let (label, query) = label_and_query(&server).await;
    Mock::given(method("GET"))
        .and(path(EXECUTIONS))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "executions": [
            { "name": NAME, "state": "ACTIVE", "labels": { "bucket_trigger": label } }
        ] })),
        )
        .mount(&server)
        .await;
    let parsed = parse_bytes(sample_bytes("s3-put.json").as_slice()).unwrap();
    let Ok(Body::Objects(events)) = &parsed.messages[0].body else {
        panic!("an object event")
    };
    let event = events[0].clone();
    let record = FailureRecord {
        kind: RECORD_KIND.to_owned(),
        version: 1,
        route: "ingest".into(),
        target: "workflows acme/europe-west1/ingest".into(),
        bucket: event.bucket.clone(),
        key: event.key.clone(),
        event,
        original: None,
        run_id: None,
        attempts: 1,
        http_status: None,
        retryable: false,
        may_have_run: true,
        error: "timed out".into(),
        started_at: "2026-11-30T00:00:00.000Z".into(),
        failed_at: "2026-11-30T00:00:01.000Z".into(),
        receive_count: None,
        idempotency: None,
    };
    let options = Options {
        timeout: Duration::from_secs(30),
        resend_may_have_run: false,
    };
    let mut summary = Summary::default();
    let done = replay::replay(&app, &Item::Record(Box::new(record)), options, &mut summary).await;
    let table = summary.table();
    assert!(done, "{table}");
    assert!(
        table.starts_with("replayed 1 item(s): 0 triggered, 1 already triggered"),
        "{table}"
    );
    let gets = requests(&server, "GET").await;
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].url.query(), Some(query.as_str()));
    assert_eq!(
        requests(&server, "POST").await.len(),
        1,
        "not started again"
    );
}

fn sample_bytes(name: &str) -> Vec<u8> {
    std::fs::read(crate::support::root().join("events").join(name)).unwrap()
}
