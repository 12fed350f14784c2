//! Exactly one run per object version with the idempotency store: DynamoDB in moto server,
//! through the real SDK, in front of a webhook (a target with no idempotency key of its own).

use std::time::Duration;

use bucket_trigger::app::App;
use bucket_trigger::store::DynamoDb;
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{app, dynamodb, idempotency_table, invoke};

/// Webhooks `hook` (and `audit`, for fan-out) on `server`, recorded in `table`.
fn store_app(server: &MockServer, table: &str, settings: &str) -> App {
    let config = format!(
        "settings: {{ idempotency_table: {table}, max_attempts: 2, backoff_base_ms: 10, request_timeout_ms: 500 {settings} }}
routes:
  - name: notify
    targets:
      - webhook: {{ url: '{0}/hook' }}
      - webhook: {{ url: '{0}/audit' }}
",
        server.uri()
    );
    app(&config, "{}").with_store(Box::new(DynamoDb::new(dynamodb())))
}

fn statuses(report: &Value) -> Vec<&str> {
    report["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect()
}

async fn posts(server: &MockServer, to: &str) -> usize {
    let requests = server.received_requests().await.unwrap();
    requests.iter().filter(|r| r.url.path() == to).count()
}

#[tokio::test]
async fn a_redelivered_object_is_sent_once_and_a_failed_target_alone_is_sent_again() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    // `audit` is down for the first invocation (both attempts), then up.
    Mock::given(method("POST"))
        .and(path("/audit"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/audit"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let table = idempotency_table("bucket-trigger-records").await;
    let app = store_app(&server, &table, "");

    let error = invoke(&app, "s3-put.json").await.unwrap_err();
    assert_eq!(error.error_type, "Retryable", "{}", error.error_message);
    // Lambda retries the invocation: only the target that failed is sent again.
    let second = invoke(&app, "s3-put.json").await.unwrap();
    assert_eq!(
        statuses(&second),
        ["already_triggered", "triggered"],
        "{second}"
    );
    assert_eq!(
        second["outcomes"][0]["detail"],
        "already triggered (recorded in the idempotency table)"
    );
    // And again (an S3 duplicate, an SQS redelivery): nothing is sent.
    let third = invoke(&app, "s3-put.json").await.unwrap();
    assert_eq!(
        statuses(&third),
        ["already_triggered", "already_triggered"],
        "{third}"
    );
    assert_eq!(posts(&server, "/hook").await, 1);
    assert_eq!(posts(&server, "/audit").await, 3);

    // Another app (another warm container) reading the same table agrees.
    let other = store_app(&server, &table, "");
    let fourth = invoke(&other, "s3-put.json").await.unwrap();
    assert_eq!(
        statuses(&fourth),
        ["already_triggered", "already_triggered"]
    );
    assert_eq!(posts(&server, "/hook").await, 1);
}

#[tokio::test]
async fn concurrent_deliveries_of_one_object_send_it_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(300)))
        .mount(&server)
        .await;
    let table = idempotency_table("bucket-trigger-records").await;
    let (a, b) = (
        store_app(&server, &table, ""),
        store_app(&server, &table, ""),
    );
    let (first, second) = tokio::join!(invoke(&a, "s3-put.json"), invoke(&b, "s3-put.json"));
    let mut all: Vec<String> = Vec::new();
    for answer in [first, second] {
        match answer {
            Ok(report) => all.extend(statuses(&report).iter().map(|s| s.to_string())),
            // The loser sees a live claim: retryable, so Lambda or SQS tries again later.
            Err(error) => {
                assert_eq!(error.error_type, "Retryable");
                assert!(
                    error
                        .error_message
                        .contains("another invocation is delivering this object"),
                    "{}",
                    error.error_message
                );
                all.push("busy".into());
            }
        }
    }
    assert_eq!(posts(&server, "/hook").await, 1, "{all:?}");
    assert_eq!(posts(&server, "/audit").await, 1, "{all:?}");
}

#[tokio::test]
async fn a_request_that_may_have_arrived_is_never_sent_again_blindly() {
    let server = MockServer::start().await;
    // Slower than the 500 ms attempt timeout: the webhook may have acted.
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/audit"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let table = idempotency_table("bucket-trigger-records").await;
    let app = store_app(&server, &table, "");
    let first = invoke(&app, "s3-put.json").await.unwrap();
    assert_eq!(statuses(&first), ["failed", "triggered"], "{first}");
    // The redelivery finds the record ambiguous: a final "may have run", not sent again, and
    // not retryable (Lambda's retries would not change it); the audit target is recorded.
    let again = invoke(&app, "s3-put.json").await.unwrap();
    assert_eq!(statuses(&again), ["failed", "already_triggered"], "{again}");
    let detail = again["outcomes"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("it may have run") && detail.contains("--resend-may-have-run"),
        "{detail}"
    );
    assert_eq!(again["outcomes"][0]["retryable"], false);
    assert_eq!(again["outcomes"][0]["failure_record"], "logged");
    assert_eq!(posts(&server, "/hook").await, 1);
    assert_eq!(posts(&server, "/audit").await, 1);
    // Told the request did not run, a replay takes the ambiguous record over and sends it.
    let app = store_app(&server, &table, "").resending_may_have_run();
    let resent = invoke(&app, "s3-put.json").await.unwrap();
    assert_eq!(statuses(&resent)[1], "already_triggered", "{resent}");
    assert_eq!(posts(&server, "/hook").await, 2);
    assert_eq!(posts(&server, "/audit").await, 1);
}

/// Under Lambda, one "may have run" record per delivery: the delivery that sent the request
/// wrote it; a redelivery (an S3 duplicate, or a message redelivered because another target
/// failed) that finds the record ambiguous acknowledges without writing another.
#[tokio::test]
async fn under_lambda_a_redelivery_does_not_record_may_have_run_again() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/audit"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let table = idempotency_table("bucket-trigger-records").await;
    let app = store_app(&server, &table, "").with_platform_retries();
    let first = invoke(&app, "s3-put.json").await.unwrap();
    assert_eq!(statuses(&first), ["failed", "triggered"], "{first}");
    assert_eq!(first["outcomes"][0]["failure_record"], "logged", "{first}");
    let again = invoke(&app, "s3-put.json").await.unwrap();
    assert_eq!(statuses(&again), ["failed", "already_triggered"], "{again}");
    assert_eq!(again["outcomes"][0]["retryable"], false);
    assert!(
        again["outcomes"][0].get("failure_record").is_none(),
        "recorded once, by the first delivery: {again}"
    );
    assert_eq!(posts(&server, "/hook").await, 1);
}

#[tokio::test]
async fn a_missing_table_sends_nothing_and_says_how_to_make_it() {
    let server = MockServer::start().await;
    let app = store_app(&server, "no-such-table", "");
    let error = invoke(&app, "s3-put.json").await.unwrap_err();
    assert_eq!(error.error_type, "Retryable");
    assert!(
        error.error_message.contains(
            "not sent: idempotency table no-such-table: no such table (create it with partition key pk"
        ),
        "{}",
        error.error_message
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

/// The claims a "did it run?" lookup rests on, in DynamoDB itself: an AMBIGUOUS record is not
/// claimed by a plain claim; a claim that may take it says since when it was ambiguous; and
/// should that claim's invocation die, the claim that takes over after its lease still knows.
#[tokio::test]
async fn an_ambiguous_record_stays_known_as_such_through_a_takeover_that_did_not_finish() {
    use std::time::SystemTime;

    use bucket_trigger::event::{ObjectEvent, Source};
    use bucket_trigger::store::{Claim, Done, Key, Store, Takeover};

    let table = idempotency_table("bucket-trigger-records").await;
    let store = DynamoDb::new(dynamodb());
    let event = ObjectEvent {
        source: Source::S3,
        bucket: "acme".into(),
        key: "in/a.csv".into(),
        size: Some(3),
        etag: Some("e1".into()),
        version_id: None,
        sequencer: None,
        event_name: "ObjectCreated:Put".into(),
        event_time: None,
        region: None,
        record_id: None,
    };
    let key = Key::new(&table, "r", "workflows p/l/w", &event).unwrap();
    // Milliseconds, as the table keeps them.
    let millis = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    let now = SystemTime::now();
    let lease = now + Duration::from_secs(60);
    let keep = now + Duration::from_secs(3600);

    let Claim::Won {
        token,
        took_over: false,
        ambiguous_since: None,
    } = store
        .claim(&key, now, lease, Takeover::Expired)
        .await
        .unwrap()
    else {
        panic!("a fresh record is won")
    };
    let since = now - Duration::from_secs(30);
    store
        .mark_ambiguous(&key, &token, since, keep)
        .await
        .unwrap();
    let Claim::Ambiguous { since: at } = store
        .claim(&key, now, lease, Takeover::Expired)
        .await
        .unwrap()
    else {
        panic!("a plain claim does not take an ambiguous record")
    };
    assert_eq!(millis(at), millis(since));

    // Taken over to ask the target; then that invocation dies (its lease runs out).
    let short = now + Duration::from_millis(1);
    let Claim::Won {
        took_over: true,
        ambiguous_since: Some(at),
        ..
    } = store
        .claim(&key, now, short, Takeover::Ambiguous)
        .await
        .unwrap()
    else {
        panic!("a claim that may take it, takes it")
    };
    assert_eq!(millis(at), millis(since));
    let later = now + Duration::from_secs(1);
    let Claim::Won {
        token,
        took_over: true,
        ambiguous_since: Some(at),
    } = store
        .claim(
            &key,
            later,
            later + Duration::from_secs(60),
            Takeover::Expired,
        )
        .await
        .unwrap()
    else {
        panic!("the expired claim is taken over, and still known as ambiguous")
    };
    assert_eq!(millis(at), millis(since));

    // Completed (the lookup found its run): delivered, with the execution's name.
    let done = Done {
        remote_id: Some("projects/p/locations/l/workflows/w/executions/e-1"),
        run_id: None,
        at: later,
        keep_until: keep,
    };
    store.complete(&key, &token, done).await.unwrap();
    assert_eq!(
        store
            .claim(
                &key,
                later,
                later + Duration::from_secs(60),
                Takeover::Ambiguous
            )
            .await
            .unwrap(),
        Claim::Completed {
            remote_id: Some("projects/p/locations/l/workflows/w/executions/e-1".into()),
            run_id: None,
        }
    );
}
