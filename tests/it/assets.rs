//! Airflow asset events through the Lambda handler, against a wiremock stand-in for Airflow:
//! the v2 id lookup (exact match among substring results, once per warm container), the v1
//! dataset URI, and an asset Airflow does not have.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_json, body_partial_json, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::{app, handle, invoke, lambda_event, sample};

const SECRETS: &str = r#"{"airflow": {"username": "admin", "password": "s3cr3t-pw"}}"#;
const URI: &str = "s3://acme-landing/incoming";

fn config(server: &MockServer, api: &str, asset: &str, extra: &str) -> String {
    format!(
        "settings: {{ backoff_base_ms: 10, backoff_max_ms: 50, request_timeout_ms: 500 }}
routes:
  - name: landing
    match: {{ bucket: acme-landing }}
    target:
      airflow_asset: {{ base_url: '{}/af', api: {api}, asset: {asset}, auth: {{ basic: {{ secret: airflow }} }} {extra} }}
",
        server.uri()
    )
}

fn lookup() -> wiremock::MockBuilder {
    Mock::given(method("GET"))
        .and(path("/af/api/v2/assets"))
        .and(query_param("uri_pattern", URI))
        .and(query_param("limit", "100"))
}

/// What `GET /api/v2/assets?uri_pattern=...` answers: a case-insensitive substring match.
fn page(assets: &[(u64, &str)]) -> Value {
    let assets: Vec<Value> = assets
        .iter()
        .map(|(id, uri)| json!({"id": id, "name": uri, "uri": uri, "group": "asset", "extra": {}}))
        .collect();
    json!({"total_entries": assets.len(), "assets": assets})
}

fn body_of(request: &Request) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

async fn requests(server: &MockServer, verb: &str) -> Vec<Request> {
    let requests = server.received_requests().await.unwrap();
    requests
        .into_iter()
        .filter(|request| request.method.as_str() == verb)
        .collect()
}

#[tokio::test]
async fn v2_looks_the_asset_up_once_then_posts_its_id_per_object() {
    let server = MockServer::start().await;
    lookup()
        .respond_with(ResponseTemplate::new(200).set_body_json(page(&[
            (3, "s3://acme-landing/incoming/archive"),
            (4, "S3://ACME-LANDING/INCOMING"),
            (5, URI),
        ])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/af/api/v2/assets/events"))
        .and(body_partial_json(json!({"asset_id": 5})))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": 41, "asset_id": 5, "extra": {}, "source_map_index": -1, "created_dagruns": []}),
        ))
        .expect(4)
        .mount(&server)
        .await;
    let app = app(
        &config(
            &server,
            "v2",
            &format!("{{ uri: '{URI}' }}"),
            ", extra: { key: '{{ key }}', size: '{{ size }}' }",
        ),
        SECRETS,
    );
    // Three records at once (delivered concurrently), then a warm invocation: one lookup.
    let answer = handle(
        &app,
        lambda_event(sample("s3-multi.json"), Duration::from_secs(30)),
    )
    .await
    .unwrap();
    assert_eq!(answer["summary"]["triggered"], 3, "{answer}");
    for outcome in answer["outcomes"].as_array().unwrap() {
        assert_eq!(outcome["remote_id"], "41", "{outcome}");
        assert_eq!(outcome["detail"], "asset event created");
        assert_eq!(
            outcome["attempts"], 1,
            "the lookup is not an attempt: {outcome}"
        );
        assert!(outcome.get("run_id").is_none(), "{outcome}");
    }
    let again = invoke(&app, "s3-put.json").await.unwrap();
    assert_eq!(again["outcomes"][0]["status"], "triggered", "{again}");

    let gets = requests(&server, "GET").await;
    assert_eq!(gets.len(), 1);
    assert!(
        gets[0].headers["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    let posts = requests(&server, "POST").await;
    let mut keys: Vec<String> = posts
        .iter()
        .map(|post| {
            let body = body_of(post);
            assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
            assert!(body["extra"]["size"].is_number(), "{body}");
            body["extra"]["key"].as_str().unwrap().to_owned()
        })
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "incoming/100% done.csv",
            "incoming/a+b c.csv",
            "incoming/café/日本.csv",
            "incoming/sales/Q4 report (2026).csv",
        ]
    );
}

#[tokio::test]
async fn v1_posts_the_dataset_uri_and_the_event_as_extra_without_a_lookup() {
    let server = MockServer::start().await;
    let event = sample("s3-put.json");
    Mock::given(method("POST"))
        .and(path("/af/api/v1/datasets/events"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": 7, "dataset_uri": URI, "extra": {}, "created_dagruns": []}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let app = app(
        &config(&server, "v1", "{ uri: 's3://{{ bucket }}/incoming' }", ""),
        SECRETS,
    );
    let answer = handle(&app, lambda_event(event, Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(answer["outcomes"][0]["remote_id"], "7", "{answer}");
    let posts = requests(&server, "POST").await;
    let body = body_of(&posts[0]);
    assert_eq!(body["dataset_uri"], URI);
    assert_eq!(body["extra"]["bucket"], "acme-landing");
    assert_eq!(body["extra"]["key"], "incoming/sales/Q4 report (2026).csv");
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    assert!(requests(&server, "GET").await.is_empty());
}

#[tokio::test]
async fn v2_with_an_id_posts_it_as_it_is() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/af/api/v2/assets/events"))
        .and(body_json(json!({"asset_id": 12, "extra": {"from": "s3"}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 1})))
        .expect(1)
        .mount(&server)
        .await;
    let app = app(
        &config(&server, "v2", "{ id: 12 }", ", extra: { from: s3 }"),
        SECRETS,
    );
    let answer = invoke(&app, "s3-put.json").await.unwrap();
    assert_eq!(answer["outcomes"][0]["status"], "triggered", "{answer}");
}

#[tokio::test]
async fn an_asset_airflow_does_not_have_fails_for_good_and_nothing_is_posted() {
    let server = MockServer::start().await;
    lookup()
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(page(&[(3, "s3://acme-landing/incoming/archive")])),
        )
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let app = app(
        &config(&server, "v2", &format!("{{ uri: '{URI}' }}"), ""),
        SECRETS,
    );
    for _ in 0..2 {
        // Not found is not remembered: the next event asks again (the DAG may be deployed since).
        let answer = invoke(&app, "s3-put.json").await.unwrap();
        let outcome = &answer["outcomes"][0];
        assert_eq!(outcome["status"], "failed", "{answer}");
        assert_eq!(outcome["retryable"], false);
        let detail = outcome["detail"].as_str().unwrap();
        assert!(
            detail.starts_with(&format!("Airflow has no asset with uri \"{URI}\"; assets whose uri contains it: s3://acme-landing/incoming/archive. An asset exists once a DAG declares it")),
            "{detail}"
        );
    }
}

#[tokio::test]
async fn a_lookup_that_fails_is_retried_and_a_refusal_names_the_secret() {
    let server = MockServer::start().await;
    lookup()
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    lookup()
        .respond_with(ResponseTemplate::new(200).set_body_json(page(&[(5, URI)])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/af/api/v2/assets/events"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 9})))
        .expect(1)
        .mount(&server)
        .await;
    let retried = app(
        &config(&server, "v2", &format!("{{ uri: '{URI}' }}"), ""),
        SECRETS,
    );
    let answer = invoke(&retried, "s3-put.json").await.unwrap();
    assert_eq!(answer["outcomes"][0]["status"], "triggered", "{answer}");

    let server = MockServer::start().await;
    lookup()
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"detail": "Forbidden"})))
        .expect(1)
        .mount(&server)
        .await;
    let app = app(
        &config(&server, "v2", &format!("{{ uri: '{URI}' }}"), ""),
        SECRETS,
    );
    let answer = invoke(&app, "s3-put.json").await.unwrap();
    let detail = answer["outcomes"][0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(
            "unauthorized: Airflow refused the credentials in secret \"airflow\" (403)"
        ) && detail.contains("may not read assets"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_dry_run_looks_nothing_up_and_prints_the_post() {
    let server = MockServer::start().await;
    let app = crate::support::dry_run_app(
        &config(&server, "v2", &format!("{{ uri: '{URI}' }}"), ""),
        SECRETS,
    );
    let answer = invoke(&app, "s3-put.json").await.unwrap();
    let outcome = &answer["outcomes"][0];
    assert_eq!(outcome["status"], "dry_run", "{answer}");
    assert_eq!(
        outcome["request"]["url"],
        format!("{}/af/api/v2/assets/events", server.uri())
    );
    assert_eq!(outcome["request"]["body"]["asset_id"], Value::Null);
    assert_eq!(
        outcome["request"]["body"]["extra"]["bucket"],
        "acme-landing"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}
