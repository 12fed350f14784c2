//! Google targets from AWS: tokens minted from a service-account key or by Workload Identity
//! Federation, verified by a stand-in (tests/fixtures/google_server.py) that checks every JWT
//! with PyJWT/google-auth and every SigV4 signature with botocore.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Fixture, app, handle, lambda_event, root, sample};

const IAP_AUDIENCE: &str = "test-iap-client.apps.googleusercontent.com";
const EMAIL: &str = "trigger@test-project.iam.gserviceaccount.com";
const WIF_AUDIENCE: &str = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/pool/providers/aws";
const AWS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

struct Google {
    fixture: Fixture,
    key: Value,
    _dir: PathBuf,
}

impl Google {
    fn start() -> Google {
        let dir = std::env::temp_dir().join(crate::support::unique("google"));
        std::fs::create_dir_all(&dir).unwrap();
        let key_file = dir.join("sa.json");
        let fixture = Fixture::start(
            "google_server.py",
            &[
                format!("--write-service-account={}", key_file.display()),
                format!("--iap-audience={IAP_AUDIENCE}"),
                format!("--aws-access-key-id={AWS_KEY_ID}"),
                format!("--aws-secret-access-key={AWS_SECRET}"),
                format!("--wif-audience={WIF_AUDIENCE}"),
                "--wif-require-signed-target-resource".to_owned(),
                "--strict-assertion-audience".to_owned(),
            ],
        );
        let key = serde_json::from_str(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
        Google {
            fixture,
            key,
            _dir: dir,
        }
    }

    fn url(&self) -> &str {
        &self.fixture.origin
    }

    fn secrets(&self) -> String {
        json!({ "gcp-sa": self.key.to_string() }).to_string()
    }

    /// The POSTs under `path_prefix` (the reads of a DAG after a trigger are left out).
    fn requests(&self, path_prefix: &str) -> Vec<Value> {
        let all: Vec<Value> = serde_json::from_value(self.fixture.get("/_requests")).unwrap();
        all.into_iter()
            .filter(|r| {
                r["method"] == "POST"
                    && r["path"]
                        .as_str()
                        .unwrap_or_default()
                        .starts_with(path_prefix)
            })
            .collect()
    }
}

fn composer(google: &Google, api: &str, auth: &str) -> String {
    format!(
        "routes:
  - name: composer
    target:
      airflow: {{ base_url: '{}/composer', api: {api}, dag_id: ingest_{api}, auth: {auth} }}
",
        google.url()
    )
}

async fn run(app: &bucket_trigger::app::App, event: &str) -> Value {
    match handle(app, lambda_event(sample(event), Duration::from_secs(30))).await {
        Ok(answer) => answer,
        Err(error) => json!({ "error_type": error.error_type, "error": error.error_message }),
    }
}

#[tokio::test]
async fn composer_with_a_service_account_access_token_fetches_one_token() {
    let google = Google::start();
    for api in ["v1", "v2"] {
        let app = app(
            &composer(&google, api, "{ google_access_token: { secret: gcp-sa } }"),
            &google.secrets(),
        );
        let answer = run(&app, "s3-multi.json").await;
        assert_eq!(answer["summary"]["triggered"], 3, "{api}: {answer}");
        let again = run(&app, "s3-multi.json").await;
        assert_eq!(
            again["summary"]["already_triggered"], 3,
            "{api}: the same run ids get 409: {again}"
        );
    }
    let tokens = google.requests("/token");
    assert_eq!(
        tokens.len(),
        2,
        "one token per warm app, however many runs: {tokens:?}"
    );
    assert!(tokens.iter().all(|t| t["status"] == 200), "{tokens:?}");
}

#[tokio::test]
async fn airflow_behind_iap_takes_an_id_token_for_its_audience() {
    let google = Google::start();
    let config = composer(
        &google,
        "v1",
        &format!("{{ google_id_token: {{ secret: gcp-sa, audience: {IAP_AUDIENCE} }} }}"),
    )
    .replace("/composer", "/iap");
    let answer = run(&app(&config, &google.secrets()), "s3-put.json").await;
    assert_eq!(answer["summary"]["triggered"], 1, "{answer}");

    // An ID token for another audience is refused by IAP; refreshed once, then reported.
    let wrong = config.replace(IAP_AUDIENCE, "someone-else.apps.googleusercontent.com");
    let answer = run(&app(&wrong, &google.secrets()), "s3-put.json").await;
    let outcome = &answer["outcomes"][0];
    assert_eq!(outcome["status"], "failed", "{answer}");
    assert_eq!(outcome["http_status"], 401);
    assert_eq!(
        google.requests("/iap").len(),
        3,
        "one accepted, then one refused twice (refresh once)"
    );
}

#[tokio::test]
async fn a_key_that_is_not_the_service_accounts_is_refused_by_the_token_endpoint() {
    let google = Google::start();
    let mut key = google.key.clone();
    key["private_key"] = Value::String(
        std::fs::read_to_string(root().join("tests/fixtures/test-rsa-key.pem")).unwrap(),
    );
    let secrets = json!({ "gcp-sa": key.to_string() }).to_string();
    let app = app(
        &composer(&google, "v2", "{ google_access_token: { secret: gcp-sa } }"),
        &secrets,
    );
    let answer = run(&app, "s3-put.json").await;
    let detail = answer["outcomes"][0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("Google refused the service account") && detail.contains("400"),
        "{answer}"
    );
    assert_eq!(answer["outcomes"][0]["retryable"], false);
    assert!(!answer.to_string().contains("PRIVATE KEY"));
    assert_eq!(google.requests("/token")[0]["status"], 400);
    assert!(
        google.requests("/composer").is_empty(),
        "nothing sent without a token"
    );
}

fn workflows_config(google: &Google, argument: &str) -> String {
    format!(
        "routes:
  - name: wf
    target:
      workflows:
        project: test-project
        location: europe-west1
        workflow: ingest
        endpoint: '{}'
        {argument}
        auth: {{ google_access_token: {{ secret: gcp-sa }} }}
",
        google.url()
    )
}

#[tokio::test]
async fn workflows_executions_start_with_the_argument_as_a_string_and_big_ones_are_refused() {
    let google = Google::start();
    let config = workflows_config(
        &google,
        "argument: { uri: 's3://{{ bucket }}/{{ key }}', size: '{{ size }}' }",
    );
    let answer = run(&app(&config, &google.secrets()), "s3-put.json").await;
    let outcome = &answer["outcomes"][0];
    assert_eq!(outcome["status"], "triggered", "{answer}");
    let name = outcome["remote_id"].as_str().unwrap();
    assert!(
        name.starts_with(
            "projects/test-project/locations/europe-west1/workflows/ingest/executions/"
        ),
        "{name}"
    );
    let sent = &google.requests("/v1/projects/test-project")[0];
    let argument: Value = serde_json::from_str(sent["body"]["argument"].as_str().unwrap()).unwrap();
    assert_eq!(
        argument,
        json!({"uri": "s3://acme-landing/incoming/sales/Q4 report (2026).csv", "size": 52428})
    );

    // An argument over 32 KiB fails before anything is sent (the size check runs per event:
    // this template is small for the load-time sample event and large for the real one).
    let big = workflows_config(
        &google,
        "argument: { padding: \"{{ key * (size // 20) }}\" }",
    );
    let answer = run(&app(&big, &google.secrets()), "s3-put.json").await;
    let detail = answer["outcomes"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("at most 32768"), "{detail}");
    assert_eq!(google.requests("/v1/projects/test-project").len(), 1);
}

#[tokio::test]
async fn workflows_callbacks_deliver_retry_429_and_report_404() {
    let google = Google::start();
    google.fixture.post("/_callbacks/cb-1?busy=1");
    let config = format!(
        "settings: {{ backoff_base_ms: 10, backoff_max_ms: 20 }}
routes:
  - name: cb
    target:
      workflows_callback:
        url: '{}/callbacks/cb-1'
        body: {{ object: 's3://{{{{ bucket }}}}/{{{{ key }}}}' }}
        auth: {{ google_access_token: {{ secret: gcp-sa }} }}
",
        google.url()
    );
    let app = app(&config, &google.secrets());
    let answer = run(&app, "s3-put.json").await;
    assert_eq!(answer["outcomes"][0]["status"], "triggered", "{answer}");
    assert_eq!(answer["outcomes"][0]["attempts"], 2, "429 (busy) then 200");
    // The callback is used up: a second delivery is a clear, permanent 404.
    let answer = run(&app, "s3-put.json").await;
    let detail = answer["outcomes"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("no longer exists"), "{detail}");
    assert_eq!(answer["outcomes"][0]["retryable"], false);
}

/// Workload Identity Federation, through the binary: the process's AWS credentials (from the
/// environment, as in Lambda) sign GetCallerIdentity; the stand-in checks the signature with
/// botocore, then impersonates the service account for an access token and an ID token.
#[test]
fn workload_identity_federation_from_aws_credentials() {
    let google = Google::start();
    let external_account = json!({
        "type": "external_account",
        "audience": WIF_AUDIENCE,
        "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
        "service_account_impersonation_url": format!("{}/v1/projects/-/serviceAccounts/{EMAIL}:generateAccessToken", google.url()),
        "token_url": format!("{}/v1/token", google.url()),
        "credential_source": {
            "environment_id": "aws1",
            "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone",
            "url": "http://169.254.169.254/latest/meta-data/iam/security-credentials",
            "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
        }
    });
    let dir = std::env::temp_dir().join(crate::support::unique("wif"));
    std::fs::create_dir_all(&dir).unwrap();
    let secrets = dir.join("secrets.json");
    std::fs::write(
        &secrets,
        json!({ "gcp-wif": external_account.to_string() }).to_string(),
    )
    .unwrap();
    let config = format!(
        "routes:
  - name: composer
    target: {{ airflow: {{ base_url: '{url}/composer', api: v2, dag_id: ingest, auth: {{ google_access_token: {{ secret: gcp-wif }} }} }} }}
  - name: iap
    target: {{ airflow: {{ base_url: '{url}/iap', api: v1, dag_id: ingest, auth: {{ google_id_token: {{ secret: gcp-wif, audience: {IAP_AUDIENCE} }} }} }} }}
",
        url = google.url()
    );
    let run = |secret: &str| {
        Command::new(env!("CARGO_BIN_EXE_bucket-trigger"))
            .current_dir(root())
            .args(["invoke", "events/s3-put.json", "--secrets-file"])
            .arg(&secrets)
            .env("BUCKET_TRIGGER_CONFIG", &config)
            .env("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env_remove("AWS_SESSION_TOKEN")
            .env("AWS_REGION", "eu-west-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("NO_PROXY", "127.0.0.1")
            .output()
            .unwrap()
    };
    let out = run(AWS_SECRET);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["summary"]["triggered"], 2, "{report}");
    let sts = google.requests("/v1/token");
    assert_eq!(sts.len(), 2, "one federation per token kind");
    assert!(sts.iter().all(|r| r["status"] == 200), "{sts:?}");
    assert!(!stdout.contains(AWS_SECRET));

    // Signed with the wrong AWS secret: Google STS (botocore's check) refuses; nothing is sent.
    let out = run("not-the-aws-secret");
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let detail = report["outcomes"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("Google STS refused the AWS identity"),
        "{detail}"
    );
    assert_eq!(google.requests("/composer").len(), 1);
}
