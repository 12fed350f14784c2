//! Amazon MWAA by IAM: the real binary signs `InvokeRestApi` with SigV4 as its role; a stand-in
//! for the MWAA API (tests/fixtures/mwaa_server.py) recomputes that signature with botocore,
//! refuses anything else, and forwards the Airflow call to an Airflow stand-in (wiremock), as
//! MWAA forwards it to the environment's webserver.

use std::process::{Command, Output};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Fixture, root};

const KEY: &str = "AKIDMWAATEST";
const SECRET: &str = "mwaa-test-secret";

fn config(environment: &str) -> String {
    format!(
        "routes:
  - name: landing
    target:
      mwaa:
        environment: {environment}
        dag_id: load_sales
        run_id: 'r-{{{{ sequencer }}}}'
"
    )
}

fn invoke(config: &str, mwaa: &Fixture, secret: &str) -> (Output, Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_bucket-trigger"))
        .current_dir(root())
        .args(["invoke", "events/s3-put.json", "--timeout", "10"])
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_SESSION_TOKEN")
        .env("BUCKET_TRIGGER_CONFIG", config)
        .env("AWS_ENDPOINT_URL_MWAA", &mwaa.origin)
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let report = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (output, report)
}

async fn airflow() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/dags/load_sales"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"dag_id": "load_sales", "is_paused": false})),
        )
        .mount(&server)
        .await;
    server
}

fn stand_in(airflow: &MockServer) -> Fixture {
    Fixture::start(
        "mwaa_server.py",
        &[
            "--airflow".into(),
            airflow.uri(),
            "--key".into(),
            KEY.into(),
            "--secret".into(),
            SECRET.into(),
        ],
    )
}

#[tokio::test]
async fn a_run_is_triggered_through_invoke_rest_api_signed_as_the_role() {
    let airflow = airflow().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/dags/load_sales/dagRuns"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"dag_run_id": "r-0062E9A0B3C4D5E6F7", "state": "queued"})),
        )
        .expect(1)
        .mount(&airflow)
        .await;
    let mwaa = stand_in(&airflow);
    let (output, report) = invoke(&config("prod-env"), &mwaa, SECRET);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{report}\n{stderr}");
    let outcome = &report["outcomes"][0];
    assert_eq!(outcome["status"], "triggered", "{report}");
    assert_eq!(outcome["target"], "mwaa prod-env v1 dag load_sales");
    assert_eq!(outcome["run_id"], "r-0062E9A0B3C4D5E6F7");
    // The Airflow body arrived as the Airflow target would send it.
    let posts: Vec<Value> = airflow
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0]["dag_run_id"], "r-0062E9A0B3C4D5E6F7");
    assert_eq!(
        posts[0]["conf"]["key"],
        "incoming/sales/Q4 report (2026).csv"
    );
    // Every call the stand-in took (the run, then the paused-DAG read) carried a valid signature.
    let received = mwaa.get("/requests");
    let received = received.as_array().unwrap();
    assert!(received.len() >= 2, "{received:?}");
    assert!(
        received
            .iter()
            .all(|r| r["refused"].is_null() && r["environment"] == "prod-env"),
        "{received:?}"
    );
    assert_eq!(received[0]["call"]["Path"], "/dags/load_sales/dagRuns");
    assert!(!stderr.contains(SECRET));
}

#[tokio::test]
async fn a_409_is_checked_through_mwaa_and_a_redelivery_is_already_triggered() {
    let airflow = airflow().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/dags/load_sales/dagRuns"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({"detail": "DAGRun with DAG ID: 'load_sales' and DAGRun ID: 'r-0062E9A0B3C4D5E6F7' already exists", "status": 409})))
        .mount(&airflow)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/dags/load_sales/dagRuns/r-0062E9A0B3C4D5E6F7"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"dag_run_id": "r-0062E9A0B3C4D5E6F7"})),
        )
        .expect(1)
        .mount(&airflow)
        .await;
    let mwaa = stand_in(&airflow);
    let (output, report) = invoke(&config("prod-env"), &mwaa, SECRET);
    assert_eq!(output.status.code(), Some(0), "{report}");
    assert_eq!(
        report["outcomes"][0]["status"], "already_triggered",
        "{report}"
    );
}

#[tokio::test]
async fn refusals_name_the_permission_and_the_environment() {
    let airflow = airflow().await;
    let mwaa = stand_in(&airflow);
    // A signature botocore does not reproduce (another secret key): AccessDeniedException.
    let (output, report) = invoke(&config("prod-env"), &mwaa, "not-the-secret");
    assert_eq!(output.status.code(), Some(1), "{report}");
    let outcome = &report["outcomes"][0];
    assert_eq!(outcome["retryable"], false);
    let detail = outcome["detail"].as_str().unwrap();
    assert!(
        detail.contains("airflow:InvokeRestApi") && detail.contains("role/prod-env/"),
        "{detail}"
    );
    assert_eq!(mwaa.get("/requests")[0]["refused"], "signature mismatch");
    assert!(!String::from_utf8_lossy(&output.stderr).contains("not-the-secret"));
    // No such environment.
    let (output, report) = invoke(&config("missing"), &mwaa, SECRET);
    assert_eq!(output.status.code(), Some(1));
    let detail = report["outcomes"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("MWAA has no environment \"missing\""),
        "{detail}"
    );
    // An unknown DAG: Airflow's 404 inside a RestApiClientException, named.
    Mock::given(method("POST"))
        .and(path("/api/v1/dags/load_sales/dagRuns"))
        .respond_with(ResponseTemplate::new(404).set_body_json(
            json!({"detail": "DAG with dag_id: 'load_sales' not found", "status": 404}),
        ))
        .mount(&airflow)
        .await;
    let (_, report) = invoke(&config("prod-env"), &mwaa, SECRET);
    let detail = report["outcomes"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("DAG with dag_id: 'load_sales' not found"),
        "{detail}"
    );
    assert_eq!(
        airflow
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.method.as_str() == "POST")
            .count(),
        1
    );
}
