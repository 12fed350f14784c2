//! Failure records and replay, as an operator meets them: the real binary, an SQS failure queue
//! in moto server (JSON protocol, SigV4 checked by moto's routing), a wiremock target. Records
//! are read back from the queue; `replay --queue` drains it once the target is well again.

use std::process::Command;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use bucket_trigger::auth::SigV4;
use bucket_trigger::http::{Body, HeaderValue, Request};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::runtime::{Posted, serve};
use crate::support::{moto, moto_env, root, sample, unique};

const TOKEN: &str = "s3cr3t-hook-t0ken";

/// One SQS JSON-protocol call to moto, signed as the test account.
async fn sqs(action: &str, body: Value) -> Value {
    let mut request = Request::post(
        moto().parse().unwrap(),
        Body::Text {
            content_type: "application/x-amz-json-1.0",
            text: body.to_string(),
        },
    );
    request.set_header(
        "x-amz-target",
        HeaderValue::Plain(format!("AmazonSQS.{action}")),
    );
    let credentials = Credentials::new("testing", "testing", None, None, "test");
    SigV4::new("sqs", "us-east-1")
        .sign_with(&mut request, &credentials, SystemTime::now())
        .unwrap();
    let client = reqwest::Client::new();
    let mut builder = client
        .post(request.url.clone())
        .header("content-type", "application/x-amz-json-1.0")
        .body(body.to_string());
    for (name, value) in &request.headers {
        let value = match value {
            HeaderValue::Plain(text) => text.clone(),
            HeaderValue::Secret { value, .. } => value.expose().to_owned(),
        };
        builder = builder.header(name.as_str(), value);
    }
    let answer = builder.send().await.unwrap();
    assert!(
        answer.status().is_success(),
        "{action}: {}",
        answer.status()
    );
    answer.json().await.unwrap()
}

async fn queue() -> String {
    let answer = sqs("CreateQueue", json!({ "QueueName": unique("failures") })).await;
    answer["QueueUrl"].as_str().unwrap().to_owned()
}

/// Every record on the queue, left there (visibility timeout 0).
async fn records(queue: &str) -> Vec<Value> {
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..5 {
        let answer = sqs(
            "ReceiveMessage",
            json!({ "QueueUrl": queue, "MaxNumberOfMessages": 10, "VisibilityTimeout": 0 }),
        )
        .await;
        for message in answer["Messages"].as_array().cloned().unwrap_or_default() {
            let body: Value = serde_json::from_str(message["Body"].as_str().unwrap()).unwrap();
            seen.insert(message["MessageId"].as_str().unwrap().to_owned(), body);
        }
    }
    seen.into_values().collect()
}

fn config(dir: &std::path::Path, server: &MockServer, queue: &str, settings: &str) -> String {
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "settings: {{ failure_queue_url: '{queue}', max_attempts: 1, request_timeout_ms: 2000 {settings} }}
routes:
  - name: hooks
    match: {{ prefix: incoming/ }}
    target: {{ webhook: {{ url: '{}/hook', auth: {{ bearer: {{ secret: hook }} }} }} }}
",
            server.uri()
        ),
    )
    .unwrap();
    let secrets = dir.join("secrets.json");
    std::fs::write(&secrets, json!({ "hook": { "token": TOKEN } }).to_string()).unwrap();
    config.display().to_string()
}

fn run(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bucket-trigger"))
        .args(args)
        .arg("--secrets-file")
        .arg(dir.join("secrets.json"))
        .envs(moto_env())
        .current_dir(root())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn keys_posted(requests: &[wiremock::Request]) -> Vec<String> {
    let mut keys: Vec<String> = requests
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            body["key"].as_str().unwrap().to_owned()
        })
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn every_failure_is_one_queued_record_and_replay_drains_the_queue() {
    let dir = tempdir();
    let server = MockServer::start().await;
    // A target that refuses, echoing the token it was sent: the record must not carry it.
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(
            ResponseTemplate::new(400).set_body_string(format!("bad request (token {TOKEN})")),
        )
        .mount(&server)
        .await;
    let queue = queue().await;
    let config = config(&dir, &server, &queue, "");

    let (code, stdout, stderr) = run(
        &["invoke", "events/sqs-batch.json", "--config", &config],
        &dir,
    );
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let outcomes = report["outcomes"].as_array().unwrap();
    assert_eq!(outcomes.len(), 4, "{stdout}");
    assert!(
        outcomes.iter().all(|o| o["failure_record"] == "queued"),
        "{stdout}"
    );
    assert!(!stderr.contains(TOKEN) && !stdout.contains(TOKEN));

    let records = records(&queue).await;
    assert_eq!(records.len(), 4, "one record per failed delivery");
    let mut keys: Vec<&str> = records.iter().map(|r| r["key"].as_str().unwrap()).collect();
    keys.sort();
    let sent = keys_posted(&server.received_requests().await.unwrap());
    assert_eq!(keys, sent.iter().map(String::as_str).collect::<Vec<_>>());
    for record in &records {
        let text = record.to_string();
        assert!(!text.contains(TOKEN), "{text}");
        assert_eq!(record["kind"], "bucket-trigger/failure");
        assert_eq!(record["route"], "hooks");
        assert_eq!(record["http_status"], 400);
        assert_eq!(record["retryable"], false);
        assert_eq!(record["may_have_run"], false);
        assert_eq!(record["attempts"], 1);
        assert_eq!(record["event"]["key"], record["key"]);
        assert!(
            record["event"]["source"]
                .as_str()
                .unwrap()
                .starts_with("sqs/")
        );
        // The original is the SQS record that carried the event.
        assert_eq!(
            record["original"]["messageId"],
            record["event"]["record_id"]
        );
        assert!(
            record["error"]
                .as_str()
                .unwrap()
                .starts_with("HTTP 400: bad request")
        );
        assert!(record["failed_at"].as_str().unwrap() >= record["started_at"].as_str().unwrap());
    }

    // The target recovers; one command runs every object again, once.
    server.reset().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let (code, stdout, stderr) = run(&["replay", "--queue", &queue, "--config", &config], &dir);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("replayed 4 item(s): 4 triggered, 0 already triggered"),
        "{stdout}"
    );
    let replayed = keys_posted(&server.received_requests().await.unwrap());
    assert_eq!(replayed, sent);
    assert!(
        records_left(&queue).await == 0,
        "a replayed record is deleted"
    );
    let (code, stdout, _) = run(&["replay", "--queue", &queue, "--config", &config], &dir);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("replayed 0 item(s)"), "{stdout}");
    assert_eq!(server.received_requests().await.unwrap().len(), 4);
}

async fn records_left(queue: &str) -> usize {
    records(queue).await.len()
}

#[tokio::test]
async fn a_record_that_fails_again_stays_on_the_queue() {
    let dir = tempdir();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(422))
        .mount(&server)
        .await;
    let queue = queue().await;
    let config = config(&dir, &server, &queue, "");
    let (code, _, _) = run(&["invoke", "events/s3-put.json", "--config", &config], &dir);
    assert_eq!(code, 1);
    let (code, stdout, _) = run(&["replay", "--queue", &queue, "--config", &config], &dir);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("1 failed"), "{stdout}");
    assert!(stdout.contains("HTTP 422"), "{stdout}");
    // Not queued a second time, not deleted: still exactly one record.
    assert_eq!(records_left(&queue).await, 1);
}

/// Under Lambda with an SQS source: a retryable failure is SQS's to redeliver until the
/// message's last receive; then it is recorded and acknowledged instead of dead-lettered.
#[tokio::test]
async fn under_sqs_the_last_receive_records_and_acknowledges() {
    let dir = tempdir();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let queue = queue().await;
    let config = config(&dir, &server, &queue, ", max_receive_count: 3");
    let mut batch = sample("sqs-batch.json");
    let records_in = batch["Records"].as_array_mut().unwrap();
    records_in.retain(|r| !r["body"].as_str().unwrap().contains("s3:TestEvent"));
    records_in.truncate(2);
    records_in[0]["attributes"]["ApproximateReceiveCount"] = json!("3");
    records_in[1]["attributes"]["ApproximateReceiveCount"] = json!("1");
    let last = records_in[0]["messageId"].as_str().unwrap().to_owned();
    let first = records_in[1]["messageId"].as_str().unwrap().to_owned();
    let mut env = moto_env();
    env.push(("BUCKET_TRIGGER_CONFIG_FILE", config));
    env.push((
        "BUCKET_TRIGGER_SECRETS_FILE",
        dir.join("secrets.json").display().to_string(),
    ));
    let served = serve(
        &[serde_json::to_vec(&batch).unwrap()],
        Duration::from_secs(20),
        &env,
    )
    .await;
    let Some(Posted::Response(answer)) = &served.answers[0] else {
        panic!("{:?}\n{}", served.answers, served.output);
    };
    assert_eq!(
        answer,
        &json!({ "batchItemFailures": [{ "itemIdentifier": first }] }),
        "{}",
        served.output
    );
    let records = records(&queue).await;
    assert_eq!(records.len(), 1, "{}", served.output);
    assert_eq!(records[0]["event"]["record_id"], json!(last));
    assert_eq!(records[0]["receive_count"], 3);
    assert_eq!(records[0]["retryable"], true);
}

/// A directory removed when the test ends.
struct TempDir(std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> TempDir {
    let dir = std::env::temp_dir().join(unique("bucket-trigger-failures"));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}
