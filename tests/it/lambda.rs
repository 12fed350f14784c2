//! The release path as Lambda runs it: the binary under a stand-in Runtime API
//! (`runtime::serve`), answering a sequence of invocations in one process.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::runtime::{Posted, serve};
use crate::support::root;

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(root().join("events").join(name)).unwrap()
}

#[tokio::test]
async fn one_process_answers_a_sequence_of_invocations_through_the_runtime() {
    let airflow = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/dags/ingest/dagRuns"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"state": "queued"})))
        .expect(2)
        .mount(&airflow)
        .await;
    let config = format!(
        "routes:\n  - name: r\n    target:\n      airflow: {{ base_url: '{}', api: v1, dag_id: ingest, auth: {{ basic: {{ secret: s }} }} }}\n",
        airflow.uri()
    );
    let secrets = root().join("target/lambda-test-secrets.json");
    std::fs::write(&secrets, r#"{"s": {"username": "u", "password": "p"}}"#).unwrap();

    let served = serve(
        &[
            bytes("s3-put.json"),
            br#"{"Records": "nope"}"#.to_vec(),
            b"not json".to_vec(),
            bytes("sqs-s3.json"),
        ],
        Duration::from_secs(10),
        &[
            ("BUCKET_TRIGGER_CONFIG", config),
            ("BUCKET_TRIGGER_SECRETS_FILE", secrets.display().to_string()),
        ],
    )
    .await;

    assert!(served.alive, "the process ended:\n{}", served.output);
    let [first, second, third, fourth] = served.answers.as_slice() else {
        panic!("{:?}", served.answers)
    };
    let Some(Posted::Response(first)) = first else {
        panic!("{first:?}\n{}", served.output)
    };
    assert_eq!(first["summary"]["triggered"], 1, "{first}");
    let second = second.as_ref().map(Posted::body);
    assert_eq!(second.unwrap()["errorType"], "InvalidEvent", "{second:?}");
    assert!(matches!(&served.answers[1], Some(Posted::Error(_))));
    // Lambda itself only sends JSON; the runtime answers anything else before our handler.
    assert!(matches!(third, Some(Posted::Error(_))), "{third:?}");
    assert_eq!(
        fourth,
        &Some(Posted::Response(json!({"batchItemFailures": []})))
    );
}

#[tokio::test]
async fn managed_concurrency_serves_invocations_side_by_side_without_warnings() {
    let airflow = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/dags/ingest/dagRuns"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"state": "queued"}))
                .set_delay(Duration::from_secs(1)),
        )
        .expect(6)
        .mount(&airflow)
        .await;
    let config = format!(
        "routes:\n  - name: r\n    target:\n      airflow: {{ base_url: '{}', api: v1, dag_id: ingest }}\n",
        airflow.uri()
    );
    let started = std::time::Instant::now();
    let served = serve(
        &vec![bytes("s3-put.json"); 6],
        Duration::from_secs(10),
        &[
            ("BUCKET_TRIGGER_CONFIG", config),
            // What Lambda Managed Instances (and `cargo lambda watch`) set.
            ("AWS_LAMBDA_MAX_CONCURRENCY", "3".to_owned()),
        ],
    )
    .await;
    assert!(served.alive, "the process ended:\n{}", served.output);
    for answer in &served.answers {
        let Some(Posted::Response(report)) = answer else {
            panic!("{answer:?}\n{}", served.output)
        };
        assert_eq!(report["summary"]["triggered"], 1, "{report}");
    }
    assert!(
        !served.output.contains("WARN") && !served.output.contains("concurrency"),
        "{}",
        served.output
    );
    // Six answers that take a second each, three at a time: two rounds (about 2 s), where
    // one at a time would take six.
    assert!(
        started.elapsed() < Duration::from_millis(4500),
        "{:?}",
        started.elapsed()
    );
}
