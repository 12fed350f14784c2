//! HTTP pushes (Pub/Sub push subscriptions, Eventarc): every Google-style OIDC token judged as
//! google-auth judges it, the `?token=` verification token, the acknowledgement table, and
//! both HTTP modes end to end: `bucket-trigger serve` on 127.0.0.1 and a function URL request
//! through the Lambda runtime, each against an Airflow stand-in that answers a repeated run
//! with 409.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bucket_trigger::config::Config;
use bucket_trigger::http::Network;
use bucket_trigger::ingress::{Ingress, PushRequest};
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::runtime::{self, Posted};
use crate::support::{self, app, python, root, sample};

const AUDIENCE: &str = "https://bucket-trigger.example/";
const PUSHER: &str = "gcs-push@acme-data.iam.gserviceaccount.com";
const PUSH_TOKEN: &str = "s3cr3t-push-token-7f1c";
const SECRETS: &str = r#"{"push-token": {"token": "s3cr3t-push-token-7f1c"}}"#;

/// One token and the independent verifier's verdict on it.
struct Case {
    name: String,
    token: String,
    status: u16,
}

/// The key set to serve and the cases, from tests/fixtures/push_tokens.py.
fn tokens() -> (Value, Vec<Case>) {
    let script = root().join("tests/fixtures/push_tokens.py");
    let output = std::process::Command::new(python())
        .arg(&script)
        .args([AUDIENCE, PUSHER, "http://127.0.0.1/certs"])
        .output()
        .expect("cannot run push_tokens.py");
    assert!(
        output.status.success(),
        "push_tokens.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: Value = serde_json::from_slice(&output.stdout).unwrap();
    let cases = out["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| Case {
            name: case["name"].as_str().unwrap().to_owned(),
            token: case["token"].as_str().unwrap().to_owned(),
            status: case["status"].as_u64().unwrap() as u16,
        })
        .collect();
    (out["jwks"].clone(), cases)
}

fn valid_token(cases: &[Case]) -> String {
    cases
        .iter()
        .find(|c| c.name == "valid")
        .unwrap()
        .token
        .clone()
}

/// Google's certs endpoint, serving `jwks` as Google does (with a max-age).
async fn certs(jwks: &Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/certs"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("cache-control", "public, max-age=21600, must-revalidate")
                .set_body_json(jwks),
        )
        .mount(&server)
        .await;
    server
}

/// Pushes to `/` need the OIDC token, to `/token` the verification token, to `/open` nothing;
/// objects of acme-landing-gcs go to a webhook, or with `airflow`, to an Airflow DAG.
fn config(certs: &MockServer, target: &MockServer, route_extra: &str) -> String {
    format!(
        "settings:
  max_attempts: 2
  backoff_base_ms: 10
  backoff_max_ms: 20
  request_timeout_ms: 2000
  push:
    - path: /
      oidc: {{ audience: '{AUDIENCE}', service_account: '{PUSHER}', certs_url: '{}/certs' }}
    - path: /token
      token: {{ secret: push-token, field: token }}
    - path: /open
      allow_unauthenticated: true
routes:
  - name: gcs
    match: {{ bucket: acme-landing-gcs }}
    target: {{ webhook: {{ url: '{}/hook' }} }}
    {route_extra}
",
        certs.uri(),
        target.uri()
    )
}

fn airflow_config(certs: &MockServer, airflow: &MockServer) -> String {
    format!(
        "settings:
  backoff_base_ms: 10
  request_timeout_ms: 2000
  push:
    - path: /
      oidc: {{ audience: '{AUDIENCE}', service_account: '{PUSHER}', certs_url: '{}/certs' }}
routes:
  - name: gcs
    match: {{ bucket: acme-landing-gcs }}
    target:
      airflow: {{ base_url: '{}', dag_id: load_sales, auth: none }}
",
        certs.uri(),
        airflow.uri()
    )
}

fn ingress(config_text: &str) -> Ingress {
    let config = Config::parse(config_text, "test config").unwrap();
    let network = Network::new(&config.settings.network()).unwrap();
    Ingress::new(&config.settings.push, Box::new(network))
}

fn push(path: &str, query: &str, bearer: Option<&str>, body: Vec<u8>) -> PushRequest {
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    if let Some(token) = bearer {
        headers.push(("authorization".to_owned(), format!("Bearer {token}")));
    }
    PushRequest {
        method: "POST".to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body,
    }
}

fn sample_bytes(name: &str) -> Vec<u8> {
    std::fs::read(root().join("events").join(name)).unwrap()
}

async fn hook(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(status).set_body_string("{}"))
        .mount(&server)
        .await;
    server
}

async fn hits(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[tokio::test]
async fn every_token_is_judged_as_google_auth_judges_it() {
    let (jwks, cases) = tokens();
    let statuses: std::collections::BTreeSet<u16> = cases.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [200, 401, 403].into(),
        "the cases must hold accepts and both kinds of refusal"
    );
    let certs = certs(&jwks).await;
    let target = hook(200).await;
    let config = config(&certs, &target, "");
    let app = app(&config, SECRETS);
    let ingress = ingress(&config);
    // The unknown key id first, on an empty cache: fetched, then refused.
    let mut ordered: Vec<&Case> = cases.iter().filter(|c| c.name == "unknown kid").collect();
    ordered.extend(cases.iter().filter(|c| c.name != "unknown kid"));
    let mut accepted = 0;
    for case in ordered {
        let request = push(
            "/",
            "",
            Some(&case.token),
            sample_bytes("gcs-pubsub-push.json"),
        );
        let (response, report) = ingress.answer(&app, &request, None).await;
        assert_eq!(
            response.status, case.status,
            "{}: we answered {} ({}), google-auth says {}",
            case.name, response.status, response.body, case.status
        );
        assert!(
            !response.body.contains(&case.token),
            "{}: the answer holds the token",
            case.name
        );
        if case.status == 200 {
            accepted += 1;
            assert_eq!(report.unwrap().summary.triggered, 1, "{}", case.name);
        } else {
            assert!(report.is_none(), "{}: refused, yet processed", case.name);
        }
    }
    assert_eq!(
        hits(&target).await,
        accepted,
        "one delivery per accepted push, none else"
    );
    let fetches = hits(&certs).await;
    assert_eq!(
        fetches, 1,
        "the key set is fetched once, then cached (max-age)"
    );
}

#[tokio::test]
async fn the_verification_token_is_checked_in_the_query() {
    let certs = MockServer::start().await;
    let target = hook(200).await;
    let config = config(&certs, &target, "");
    let app = app(&config, SECRETS);
    let ingress = ingress(&config);
    let body = || sample_bytes("gcs-pubsub-push.json");
    for (query, status) in [
        ("", 401),
        ("token=wrong", 401),
        ("token=s3cr3t-push-token-7f1", 401),
        ("other=1", 401),
        (&format!("other=1&token={PUSH_TOKEN}") as &str, 200),
    ] {
        let (response, _) = ingress
            .answer(&app, &push("/token", query, None, body()), None)
            .await;
        assert_eq!(response.status, status, "?{query}: {}", response.body);
        assert!(!response.body.contains(PUSH_TOKEN), "{}", response.body);
    }
    assert_eq!(hits(&target).await, 1);
    // The OIDC endpoint is not opened by the other endpoint's token.
    let query = format!("token={PUSH_TOKEN}");
    let (response, _) = ingress
        .answer(&app, &push("/", &query, None, body()), None)
        .await;
    assert_eq!(response.status, 401, "{}", response.body);
    assert!(response.body.contains("Authorization"), "{}", response.body);
}

/// The README's acknowledgement table, row by row.
#[tokio::test]
async fn the_status_acknowledges_or_asks_for_redelivery() {
    let certs = MockServer::start().await;
    let open = |target: &MockServer, extra: &str| {
        let config = config(&certs, target, extra);
        (app(&config, SECRETS), ingress(&config))
    };
    let post = |name: &str| push("/open", "", None, sample_bytes(name));

    // Triggered, and a payload-less notification (payloadFormat NONE) too.
    let ok = hook(200).await;
    let (app_ok, ingress_ok) = open(&ok, "");
    for name in [
        "gcs-pubsub-push.json",
        "gcs-pubsub-push-no-payload.json",
        "gcs-cloudevent.json",
    ] {
        let (response, report) = ingress_ok.answer(&app_ok, &post(name), None).await;
        assert_eq!(response.status, 200, "{name}: {}", response.body);
        assert_eq!(report.unwrap().summary.triggered, 1, "{name}");
    }
    // A delete matches no route (routes take created objects unless they say otherwise).
    let (response, report) = ingress_ok
        .answer(&app_ok, &post("gcs-pubsub-push-delete.json"), None)
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(report.unwrap().summary.skipped, 1);
    assert_eq!(hits(&ok).await, 3);

    // Retryable (a 503 from the target, twice): Pub/Sub must deliver it again.
    let down = hook(503).await;
    let (app_down, ingress_down) = open(&down, "");
    let (response, _) = ingress_down
        .answer(&app_down, &post("gcs-pubsub-push.json"), None)
        .await;
    assert_eq!(response.status, 503, "{}", response.body);
    assert_eq!(hits(&down).await, 2, "max_attempts: 2");

    // Permanent (a 400): acknowledged with a failure record, by default...
    let refuses = hook(400).await;
    let (app_refuses, ingress_refuses) = open(&refuses, "");
    let (response, report) = ingress_refuses
        .answer(&app_refuses, &post("gcs-pubsub-push.json"), None)
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let outcome = &report.unwrap().outcomes[0];
    assert!(outcome.failed());
    assert!(outcome.failure_record.is_some(), "the record is written");
    // ... or rejected (4xx, no record: the dead-letter topic holds it) where the route says so.
    let (app_rejects, ingress_rejects) = open(&refuses, "on_permanent_failure: reject");
    let (response, report) = ingress_rejects
        .answer(&app_rejects, &post("gcs-pubsub-push.json"), None)
        .await;
    assert_eq!(response.status, 422, "{}", response.body);
    assert!(report.unwrap().outcomes[0].failure_record.is_none());

    // Nothing runs for what is not a push we can read, nor for a wrong path or method.
    let before = hits(&ok).await;
    for (name, reason) in [
        ("gcs-pubsub-push-malformed.json", "bucketId is missing"),
        ("gcs-pubsub-push-bad-base64.json", "not base64"),
        ("s3-put.json", "only Cloud Storage events"),
    ] {
        let (response, report) = ingress_ok.answer(&app_ok, &post(name), None).await;
        assert_eq!(response.status, 400, "{name}: {}", response.body);
        assert!(response.body.contains(reason), "{name}: {}", response.body);
        assert!(report.is_none());
    }
    let mut get = post("gcs-pubsub-push.json");
    get.method = "GET".into();
    let (response, _) = ingress_ok.answer(&app_ok, &get, None).await;
    assert_eq!(
        (response.status, response.headers.clone()),
        (405, vec![("allow", "POST".to_owned())])
    );
    let mut elsewhere = post("gcs-pubsub-push.json");
    elsewhere.path = "/admin".into();
    let (response, _) = ingress_ok.answer(&app_ok, &elsewhere, None).await;
    assert_eq!(response.status, 404);
    assert_eq!(hits(&ok).await, before);
}

/// An Airflow stand-in: the first run is created, a repeated one answered 409 and found by
/// its run id.
async fn airflow() -> MockServer {
    let server = MockServer::start().await;
    let dag_runs = || Mock::given(method("POST")).and(path("/api/v2/dags/load_sales/dagRuns"));
    dag_runs()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"state": "queued"})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    dag_runs()
        .respond_with(
            ResponseTemplate::new(409).set_body_json(json!({"detail": "DAGRun already exists"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/api/v2/dags/load_sales/dagRuns/.+"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"state": "queued"})))
        .mount(&server)
        .await;
    server
}

async fn runs(airflow: &MockServer) -> Vec<Value> {
    airflow
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method == wiremock::http::Method::POST)
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

/// `bucket-trigger serve`, started on a free port of 127.0.0.1; stopped (SIGTERM) on drop.
struct Served {
    child: Child,
    url: String,
}

impl Served {
    fn start(config: &str) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bucket-trigger"))
            .args(["serve", "--port", "0", "--timeout", "10"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("BUCKET_TRIGGER_CONFIG", config)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("NO_PROXY", "127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start bucket-trigger serve");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("serve exited before listening")
                .unwrap();
            if let Some(url) = line.strip_prefix("bucket-trigger serve: listening on ") {
                break url.to_owned();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Served { child, url }
    }

    fn stop(mut self) -> std::process::ExitStatus {
        // SIGTERM, as Cloud Run stops a container.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("serve did not stop within 5 s of SIGTERM");
    }
}

#[tokio::test]
async fn serve_verifies_a_push_and_starts_one_run_per_object_generation() {
    let (jwks, cases) = tokens();
    let token = valid_token(&cases);
    let certs = certs(&jwks).await;
    let airflow = airflow().await;
    let server = Served::start(&airflow_config(&certs, &airflow));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let send = |token: String| {
        client
            .post(format!("{}/", server.url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(sample_bytes("gcs-pubsub-push.json"))
            .timeout(Duration::from_secs(20))
            .send()
    };
    let first = send(token.clone()).await.unwrap();
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["outcomes"][0]["status"], "triggered", "{first}");
    let again: Value = send(token.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(
        again["outcomes"][0]["status"], "already_triggered",
        "{again}"
    );
    let forged = cases
        .iter()
        .find(|c| c.name == "signed by another key")
        .unwrap();
    let refused = send(forged.token.clone()).await.unwrap();
    assert_eq!(refused.status(), 401);

    let runs = runs(&airflow).await;
    assert_eq!(runs.len(), 2, "one run, then the same run id again (409)");
    assert_eq!(runs[0]["dag_run_id"], runs[1]["dag_run_id"]);
    let conf = &runs[0]["conf"];
    assert_eq!(conf["bucket"], "acme-landing-gcs");
    assert_eq!(conf["key"], "incoming/sales/Q4 report (2026).csv");
    assert_eq!(
        conf["version_id"], "1764057600123456",
        "the generation: {conf}"
    );
    assert_eq!(conf["source"], "gcs");
    assert!(server.stop().success(), "serve exits 0 on SIGTERM");
}

#[tokio::test]
async fn serve_refuses_to_start_without_push_endpoints() {
    let output = Command::new(env!("CARGO_BIN_EXE_bucket-trigger"))
        .args(["serve", "--port", "0"])
        .env(
            "BUCKET_TRIGGER_CONFIG",
            "routes: [{name: r, target: {webhook: {url: 'https://example.com/'}}}]",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("settings.push"), "{stderr}");
}

/// A function URL request wrapping `body`, with these headers.
fn function_url(body: &[u8], headers: Value) -> Vec<u8> {
    let mut payload = sample("function-url-gcs-push.json");
    payload["headers"] = headers;
    payload["body"] = json!(String::from_utf8_lossy(body));
    serde_json::to_vec(&payload).unwrap()
}

#[tokio::test]
async fn a_function_url_push_runs_through_the_lambda_runtime() {
    let (jwks, cases) = tokens();
    let token = valid_token(&cases);
    let certs = certs(&jwks).await;
    let airflow = airflow().await;
    let push = sample_bytes("gcs-pubsub-push.json");
    let signed =
        json!({"content-type": "application/json", "authorization": format!("Bearer {token}")});
    // The bundled binary CloudEvent, signed with the test's token.
    let mut binary = sample("function-url-gcs-cloudevent-binary.json");
    binary["headers"]["authorization"] = json!(format!("Bearer {token}"));
    let events = vec![
        function_url(&push, signed.clone()),
        function_url(&push, signed),
        function_url(&push, json!({"content-type": "application/json"})),
        serde_json::to_vec(&binary).unwrap(),
    ];
    // The CloudEvent's object is another object: its own run.
    Mock::given(method("POST"))
        .and(path("/api/v2/dags/load_sales/dagRuns"))
        .and(body_partial_json(
            json!({"conf": {"key": "incoming/données/été 2026.csv"}}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"state": "queued"})))
        .with_priority(1)
        .mount(&airflow)
        .await;
    let env = [("BUCKET_TRIGGER_CONFIG", airflow_config(&certs, &airflow))];
    let served = runtime::serve(&events, Duration::from_secs(20), &env).await;
    assert!(served.alive, "{}", served.output);
    let answers: Vec<&Value> = served
        .answers
        .iter()
        .map(|a| match a {
            Some(Posted::Response(body)) => body,
            other => panic!("not an answer: {other:?}\n{}", served.output),
        })
        .collect();
    let statuses: Vec<u64> = answers
        .iter()
        .map(|a| a["statusCode"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [200, 200, 401, 200], "{answers:?}");
    let body =
        |i: usize| -> Value { serde_json::from_str(answers[i]["body"].as_str().unwrap()).unwrap() };
    assert_eq!(body(0)["outcomes"][0]["status"], "triggered");
    assert_eq!(body(1)["outcomes"][0]["status"], "already_triggered");
    assert_eq!(body(3)["outcomes"][0]["status"], "triggered");
    let runs = runs(&airflow).await;
    assert_eq!(runs.len(), 3, "push, its redelivery (409), the CloudEvent");
    assert_eq!(runs[3 - 1]["conf"]["key"], "incoming/données/été 2026.csv");
    assert!(!served.output.contains(&token), "the token is never logged");
}

#[tokio::test]
async fn a_function_url_without_push_endpoints_runs_nothing() {
    let target = hook(200).await;
    let config = format!(
        "routes: [{{name: r, target: {{webhook: {{url: '{}/hook'}}}}}}]",
        target.uri()
    );
    let app = app(&config, "{}");
    let answer = support::handle(
        &app,
        support::lambda_event(
            sample("function-url-gcs-push.json"),
            Duration::from_secs(10),
        ),
    )
    .await
    .unwrap();
    assert_eq!(answer["statusCode"], 404, "{answer}");
    assert!(answer["body"].as_str().unwrap().contains("settings.push"));
    assert_eq!(hits(&target).await, 0);
}

/// On Cloud Run, `serve` asks the metadata server (here a stand-in named by
/// `GCE_METADATA_HOST`, as Google's libraries read it) for the attached service account's
/// tokens: an access token for Composer, an ID token for an Airflow behind IAP. No key.
#[tokio::test]
async fn the_metadata_server_gives_composer_and_iap_their_tokens() {
    const ACCESS: &str = "ya29.metadata-access-token";
    let metadata = MockServer::start().await;
    let account = "/computeMetadata/v1/instance/service-accounts/default";
    Mock::given(method("GET"))
        .and(path(format!("{account}/token")))
        .and(wiremock::matchers::header("metadata-flavor", "Google"))
        .and(wiremock::matchers::query_param(
            "scopes",
            "https://www.googleapis.com/auth/cloud-platform",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": ACCESS, "expires_in": 3599, "token_type": "Bearer"}),
        ))
        .expect(1)
        .mount(&metadata)
        .await;
    // An ID token as the identity endpoint gives it: the JWT itself, not JSON.
    let (_, cases) = tokens();
    let id_token = valid_token(&cases);
    Mock::given(method("GET"))
        .and(path(format!("{account}/identity")))
        .and(wiremock::matchers::header("metadata-flavor", "Google"))
        .and(wiremock::matchers::query_param(
            "audience",
            "iap-client-id.apps.googleusercontent.com",
        ))
        .and(wiremock::matchers::query_param("format", "full"))
        .respond_with(ResponseTemplate::new(200).set_body_string(id_token.clone()))
        .expect(1)
        .mount(&metadata)
        .await;
    let composer = MockServer::start().await;
    for (dag, token) in [("composer_dag", ACCESS), ("iap_dag", id_token.as_str())] {
        Mock::given(method("POST"))
            .and(path(format!("/api/v2/dags/{dag}/dagRuns")))
            .and(wiremock::matchers::header(
                "authorization",
                format!("Bearer {token}").as_str(),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"state": "queued"})))
            .expect(1)
            .mount(&composer)
            .await;
    }
    let config = format!(
        "routes:
  - name: gcs
    targets:
      - airflow: {{ base_url: '{0}', dag_id: composer_dag, auth: {{ google_access_token: {{ metadata_server: true }} }} }}
      - airflow: {{ base_url: '{0}', dag_id: iap_dag, auth: {{ google_id_token: {{ metadata_server: true, audience: iap-client-id.apps.googleusercontent.com }} }} }}
",
        composer.uri()
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_bucket-trigger"))
            .args(["invoke", "events/gcs-pubsub-push.json"])
            .current_dir(root())
            .env("BUCKET_TRIGGER_CONFIG", config)
            .env("GCE_METADATA_HOST", metadata.address().to_string())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("NO_PROXY", "127.0.0.1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["summary"]["triggered"], 2, "{report}");
    assert!(
        !stdout.contains(ACCESS) && !stderr.contains(ACCESS),
        "the token is never printed"
    );
}

#[test]
fn a_google_scheme_names_exactly_one_source_of_credentials() {
    let error = |auth: &str| {
        let text = format!(
            "routes: [{{name: r, target: {{airflow: {{base_url: 'https://composer.example', dag_id: d, auth: {auth}}}}}}}]"
        );
        Config::parse(&text, "t.yaml").unwrap_err().to_string()
    };
    let neither = error("{google_access_token: {}}");
    assert!(
        neither.contains("routes[0] (r).target.auth.google_access_token")
            && neither.contains("metadata_server: true"),
        "{neither}"
    );
    let both = error("{google_id_token: {secret: s, metadata_server: true, audience: a}}");
    assert!(both.contains("not both"), "{both}");
}

#[test]
fn validate_lists_each_push_endpoint_and_its_checks() {
    let config = "settings:
  push:
    - oidc: { audience: 'https://a.example/', service_account: 'p@x.iam.gserviceaccount.com' }
      token: { secret: push-token }
    - path: /open
      allow_unauthenticated: true
routes: [{name: r, target: {webhook: {url: 'https://example.com/'}}}]
";
    let output = Command::new(env!("CARGO_BIN_EXE_bucket-trigger"))
        .arg("validate")
        .env("BUCKET_TRIGGER_CONFIG", config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("push endpoint /: Google OIDC token of p@x.iam.gserviceaccount.com for audience https://a.example/ and ?token= from secret push-token"),
        "{stdout}"
    );
    assert!(
        stdout.contains("push endpoint /open: UNAUTHENTICATED"),
        "{stdout}"
    );
    assert!(stdout.contains("secrets read: push-token"), "{stdout}");
}

#[test]
fn push_endpoints_must_say_how_pushes_are_authenticated() {
    let error = |push: &str| {
        let text = format!(
            "settings: {{ push: [{push}] }}\nroutes: [{{name: r, target: {{webhook: {{url: 'https://example.com/'}}}}}}]"
        );
        Config::parse(&text, "t.yaml").unwrap_err().to_string()
    };
    let bare = error("{path: /}");
    assert!(
        bare.contains("settings.push[0]") && bare.contains("allow_unauthenticated"),
        "{bare}"
    );
    let twice = error("{allow_unauthenticated: true}, {allow_unauthenticated: true}");
    assert!(twice.contains("settings.push[1].path"), "{twice}");
    let relative = error("{path: pubsub, allow_unauthenticated: true}");
    assert!(relative.contains("must be a path"), "{relative}");
    let audience = error("{oidc: {audience: '', service_account: 'p@x'}}");
    assert!(
        audience.contains("settings.push[0].oidc.audience"),
        "{audience}"
    );
    let account = error("{oidc: {audience: a, service_account: nobody}}");
    assert!(account.contains("service account's email"), "{account}");
    let certs =
        error("{oidc: {audience: a, service_account: 'p@x', certs_url: 'http://keys.example/'}}");
    assert!(
        certs.contains("certs_url") && certs.contains("https://"),
        "{certs}"
    );
}
