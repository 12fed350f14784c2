//! Alteryx: OAuth 1.0a signatures verified by an independent implementation (Python oauthlib,
//! in tests/fixtures/gallery_server.py), OAuth 2 client credentials against wiremock, and the
//! whole path from an S3 event through Secrets Manager (moto) to a queued job.

use std::sync::Arc;
use std::time::Duration;

use bucket_trigger::clock::{Clock, ManualClock, SystemClock};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{
    Gallery, app, app_with_clock, dry_run_app, handle, invoke, lambda_event, sample,
};

const KEY: &str = "ké y+/&=";
const SECRET: &str = "s3cr€t +/&=%";

fn secrets(url: &str, key: &str, secret: &str) -> String {
    json!({ "alteryx": { "ALTERYX_URL": url, "ALTERYX_KEY": key, "ALTERYX_SECRET": secret } })
        .to_string()
}

fn v1_config(placement: &str) -> String {
    format!(
        "routes:
  - name: reports
    target:
      alteryx:
        api: v1
        base_url: {{ secret: alteryx, field: ALTERYX_URL }}
        workflow_id: '5f1c 0a+b'
        questions:
          - {{ name: FilePath, value: 's3://{{{{ bucket }}}}/{{{{ key }}}}' }}
          - {{ name: Size, value: '{{{{ size }}}}' }}
        auth: {{ oauth1: {{ secret: alteryx, placement: {placement} }} }}
"
    )
}

#[tokio::test]
async fn oauth1_signatures_verify_with_oauthlib_in_query_and_header() {
    let gallery = Gallery::start(KEY, SECRET);
    for placement in ["query", "header"] {
        let app = app(
            &v1_config(placement),
            &secrets(&format!("{}/api/", gallery.url), KEY, SECRET),
        );
        let answer = invoke(&app, "s3-multi.json").await.unwrap();
        assert_eq!(answer["summary"]["triggered"], 3, "{placement}: {answer}");
        for outcome in answer["outcomes"].as_array().unwrap() {
            let job = outcome["remote_id"].as_str().unwrap();
            assert_eq!(job.len(), 24, "{outcome}");
            assert_eq!(outcome["detail"], format!("job {job} queued"));
        }
    }
    let requests = gallery.requests();
    assert_eq!(requests.len(), 6);
    for request in &requests {
        assert_eq!(request["verified"], true, "{request}");
        assert_eq!(request["app_id"], "5f1c 0a+b");
        let size = &request["body"]["questions"][1];
        assert_eq!(size["name"], "Size");
        assert!(
            ["10", "20", "30"].contains(&size["value"].as_str().unwrap()),
            "{size}"
        );
    }
    // Query placement: oauth_* in the URL; header placement: in Authorization.
    assert!(
        requests[0]["query"]
            .as_str()
            .unwrap()
            .contains("oauth_signature=")
    );
    assert!(requests[0]["authorization"].is_null());
    assert!(
        requests[3]["authorization"]
            .as_str()
            .unwrap()
            .starts_with("OAuth ")
    );
    let mut keys: Vec<&str> = requests[..3]
        .iter()
        .map(|r| r["body"]["questions"][0]["value"].as_str().unwrap())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            "s3://acme-landing/incoming/100% done.csv",
            "s3://acme-landing/incoming/a+b c.csv",
            "s3://acme-landing/incoming/café/日本.csv"
        ]
    );
}

#[tokio::test]
async fn a_wrong_secret_is_rejected_by_the_verifier_and_explained() {
    let gallery = Gallery::start(KEY, SECRET);
    let app = app(
        &v1_config("query"),
        &secrets(&gallery.url, KEY, "not-the-secret"),
    );
    let answer = invoke(&app, "s3-put.json").await.unwrap();
    let outcome = &answer["outcomes"][0];
    assert_eq!(outcome["status"], "failed", "{answer}");
    assert_eq!(outcome["retryable"], false);
    assert_eq!(outcome["http_status"], 401);
    let detail = outcome["detail"].as_str().unwrap();
    assert!(
        detail.contains("rejected the OAuth 1.0a signature or consumer key"),
        "{detail}"
    );
    assert!(!answer.to_string().contains("not-the-secret"));
    let requests = gallery.requests();
    assert_eq!(requests.len(), 1, "a 401 is not retried");
    assert_eq!(requests[0]["verified"], false);
    assert!(
        requests[0]["reason"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{}",
        requests[0]
    );
}

#[tokio::test]
async fn dry_run_redacts_the_consumer_key_nonce_and_signature() {
    let app = dry_run_app(
        &v1_config("query"),
        &secrets("https://alteryx.example.com/gallery/api/", KEY, SECRET),
    );
    let answer = handle(
        &app,
        lambda_event(sample("s3-put.json"), Duration::from_secs(30)),
    )
    .await
    .unwrap();
    let url = answer["outcomes"][0]["request"]["url"].as_str().unwrap();
    assert!(
        url.starts_with("https://alteryx.example.com/gallery/api/v1/workflows/5f1c%200a+b/jobs/?"),
        "{url}"
    );
    for part in [
        "oauth_consumer_key=****",
        "oauth_nonce=****",
        "oauth_signature=****",
        "oauth_signature_method=HMAC-SHA1",
    ] {
        assert!(url.contains(part), "{part} in {url}");
    }
    let text = answer.to_string();
    assert!(
        !text.contains("k%C3%A9") && !text.contains("s3cr"),
        "{text}"
    );
}

fn oauth2_config(server: &MockServer, extra: &str) -> String {
    format!(
        "settings: {{ backoff_base_ms: 10, backoff_max_ms: 20 }}
routes:
  - name: reports
    target:
      alteryx:
        api: v3
        base_url: '{}'
        workflow_id: 6570a1c2f4a3b2d1e0f9a8b7
        questions: [{{ name: FilePath, value: 's3://{{{{ bucket }}}}/{{{{ key }}}}' }}]
        priority: Default
        credential_id: cred-1
        auth: {{ oauth2: {{ secret: alteryx, client_id_field: ALTERYX_KEY, client_secret_field: ALTERYX_SECRET {extra} }} }}
",
        server.uri()
    )
}

fn token(expires_in: u64, token: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(
        json!({"access_token": token, "token_type": "bearer", "expires_in": expires_in}),
    )
}

fn jobs() -> wiremock::MockBuilder {
    Mock::given(method("POST")).and(path("/webapi/v3/workflows/6570a1c2f4a3b2d1e0f9a8b7/jobs"))
}

#[tokio::test]
async fn oauth2_token_is_fetched_once_for_many_jobs() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/webapi/oauth2/token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains("client_id=api-key"))
        .and(body_string_contains("client_secret=api+secret%2F1"))
        .respond_with(token(3600, "tok-1"))
        .expect(1)
        .mount(&server)
        .await;
    jobs()
        .and(header("authorization", "Bearer tok-1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "job-1", "status": "Queued"})),
        )
        .expect(4)
        .mount(&server)
        .await;
    let app = app(
        &oauth2_config(&server, ""),
        &secrets("", "api-key", "api secret/1"),
    );
    let answer = invoke(&app, "s3-multi.json").await.unwrap();
    assert_eq!(answer["summary"]["triggered"], 3, "{answer}");
    let answer = invoke(&app, "s3-put.json").await.unwrap();
    assert_eq!(answer["outcomes"][0]["remote_id"], "job-1");
    let requests = server.received_requests().await.unwrap();
    let job: Value = serde_json::from_slice(&requests.last().unwrap().body).unwrap();
    assert_eq!(
        job,
        json!({"questions": [{"name": "FilePath", "value": "s3://acme-landing/incoming/sales/Q4 report (2026).csv"}],
               "priority": "Default", "credentialId": "cred-1"})
    );
}

#[tokio::test]
async fn oauth2_token_expiry_and_401_refresh() {
    let server = MockServer::start().await;
    // expires_in 61 s with a 60 s margin: fresh for about a second.
    Mock::given(method("POST"))
        .and(path("/webapi/oauth2/token"))
        .respond_with(token(61, "tok-short"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/webapi/oauth2/token"))
        .respond_with(token(3600, "tok-long"))
        .expect(2)
        .mount(&server)
        .await;
    jobs()
        .and(header("authorization", "Bearer tok-short"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    // The first request with the long token is refused (revoked): refresh once, then accepted.
    jobs()
        .and(header("authorization", "Bearer tok-long"))
        .respond_with(ResponseTemplate::new(401))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    jobs()
        .and(header("authorization", "Bearer tok-long"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;

    let clock = Arc::new(ManualClock::at(SystemClock.unix_seconds()));
    let app = app_with_clock(
        &oauth2_config(&server, ", client_auth: basic"),
        &secrets("", "api-key", "api-secret"),
        clock.clone(),
    );
    let first = invoke(&app, "s3-put.json").await.unwrap();
    assert_eq!(first["summary"]["triggered"], 1, "{first}");
    clock.advance(Duration::from_secs(2));
    let second = invoke(&app, "s3-put.json").await.unwrap();
    assert_eq!(second["summary"]["triggered"], 1, "{second}");
    // client_auth: basic puts the client credentials in the Authorization header, not the form.
    let token_requests: Vec<_> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/webapi/oauth2/token")
        .collect();
    assert_eq!(token_requests.len(), 3);
    assert_eq!(
        token_requests[0].headers["authorization"],
        "Basic YXBpLWtleTphcGktc2VjcmV0"
    );
    assert_eq!(
        String::from_utf8_lossy(&token_requests[0].body),
        "grant_type=client_credentials"
    );
}

#[tokio::test]
async fn a_timeout_after_sending_is_not_retried_unless_opted_in() {
    for (opt_in, want_requests) in [("", 1), ("\n        retry_on_timeout: true", 2)] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/webapi/oauth2/token"))
            .respond_with(token(3600, "t"))
            .mount(&server)
            .await;
        jobs()
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
            .mount(&server)
            .await;
        let config = oauth2_config(&server, "")
            .replace(
                "backoff_max_ms: 20",
                "backoff_max_ms: 20, request_timeout_ms: 300, max_attempts: 2",
            )
            .replace(
                "credential_id: cred-1",
                &format!("credential_id: cred-1{opt_in}"),
            );
        let app = app(&config, &secrets("", "k", "s"));
        let result = invoke(&app, "s3-put.json").await;
        let job_requests = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path().ends_with("/jobs"))
            .count();
        assert_eq!(job_requests, want_requests, "retry_on_timeout{opt_in:?}");
        if opt_in.is_empty() {
            let answer = result.unwrap();
            let detail = answer["outcomes"][0]["detail"].as_str().unwrap();
            assert!(
                detail.contains("not retried") && detail.contains("no idempotency key"),
                "{detail}"
            );
        } else {
            assert_eq!(result.unwrap_err().error_type, "Retryable");
        }
    }
}

/// The whole path: S3 event → secret from Secrets Manager (moto, real SDK) → OAuth 1.0a signed
/// POST → a job queued by a server that verified the signature with oauthlib.
#[tokio::test]
async fn s3_event_to_a_queued_job_through_secrets_manager() {
    use bucket_trigger::app::App;
    use bucket_trigger::config::Config;
    use bucket_trigger::secrets::SecretsManager;

    let gallery = Gallery::start(KEY, SECRET);
    let secret_id = crate::support::unique("alteryx");
    crate::support::moto_client()
        .create_secret()
        .name(&secret_id)
        .secret_string(json!({ "ALTERYX_URL": format!("{}/api/", gallery.url), "ALTERYX_KEY": KEY, "ALTERYX_SECRET": SECRET }).to_string())
        .send()
        .await
        .unwrap();
    let config = v1_config("query").replace("secret: alteryx", &format!("secret: '{secret_id}'"));
    let app = App::new(
        Config::parse(&config, "test").unwrap(),
        Box::new(SecretsManager::new(crate::support::moto_client())),
    )
    .unwrap();
    let answer = invoke(&app, "alteryx-report-put.json").await.unwrap();
    assert_eq!(answer["summary"]["triggered"], 1, "{answer}");
    let requests = gallery.requests();
    assert_eq!(requests[0]["verified"], true);
    assert_eq!(
        requests[0]["body"]["questions"][0]["value"],
        "s3://acme-landing/reports/2026/11/Regional Sales – Q4.xlsx"
    );
    let job = answer["outcomes"][0]["remote_id"].as_str().unwrap();
    assert!(
        job.len() == 24 && job.chars().all(|c| c.is_ascii_hexdigit()),
        "{job}"
    );
}
