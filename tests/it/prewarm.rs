//! `settings.prewarm`: secrets, tokens and connections made ready before the first event, and
//! trouble on the way named and left for the first event.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{app, dry_run_app, invoke};

fn config(server: &MockServer, secret: &str) -> String {
    format!(
        "settings: {{ prewarm: true }}
routes:
  - name: reports
    target:
      alteryx:
        api: v3
        base_url: '{}'
        workflow_id: w1
        auth: {{ oauth2: {{ secret: {secret}, client_id_field: KEY, client_secret_field: SECRET }} }}
",
        server.uri()
    )
}

const SECRETS: &str = r#"{"alteryx": {"KEY": "api-key", "SECRET": "api-secret"}}"#;

#[tokio::test]
async fn prewarm_reads_secrets_mints_the_token_and_opens_the_connection_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/webapi/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "tok-1", "token_type": "bearer", "expires_in": 3600}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("HEAD"))
        .and(path("/"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/webapi/v3/workflows/w1/jobs"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "job-1", "status": "Queued"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let app = app(&config(&server, "alteryx"), SECRETS);
    assert!(app.config.settings.prewarm);

    let done = app.prewarm(Duration::from_secs(5)).await;
    assert_eq!(
        (done.secrets, done.signers, done.connections),
        (1, 1, 1),
        "{done:?}"
    );
    assert!(done.problems.is_empty(), "{done:?}");

    // The first event uses the token minted while warming: no second token request.
    let answer = invoke(&app, "s3-put.json").await.unwrap();
    assert_eq!(answer["summary"]["triggered"], 1, "{answer}");
}

#[tokio::test]
async fn prewarm_names_what_it_could_not_do_and_the_first_event_reports_it() {
    let server = MockServer::start().await;
    let app = app(&config(&server, "missing"), SECRETS);
    let done = app.prewarm(Duration::from_secs(5)).await;
    assert_eq!((done.secrets, done.signers, done.connections), (0, 0, 0));
    assert_eq!(done.problems.len(), 2, "{done:?}");
    assert!(done.problems[0].contains("\"missing\""), "{done:?}");
    assert!(done.problems[1].contains("alteryx"), "{done:?}");
    assert!(server.received_requests().await.unwrap().is_empty());
    let answer = invoke(&app, "s3-put.json").await.unwrap();
    assert_eq!(answer["summary"]["failed"], 1, "{answer}");
}

#[tokio::test]
async fn a_dry_run_warms_nothing() {
    let server = MockServer::start().await;
    let app = dry_run_app(&config(&server, "alteryx"), SECRETS);
    let done = app.prewarm(Duration::from_secs(5)).await;
    assert_eq!(done, Default::default());
    assert!(server.received_requests().await.unwrap().is_empty());
}
