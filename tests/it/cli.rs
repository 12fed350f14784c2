//! The binary as a user runs it: `invoke` (with and without `--dry-run`, against moto through
//! `AWS_ENDPOINT_URL`) and `validate`.

use std::process::{Command, Output};

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Gallery, moto, moto_client, moto_env, root, unique};

fn bucket_trigger(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bucket-trigger"));
    command.current_dir(root()).args(args);
    for var in [
        "BUCKET_TRIGGER_CONFIG",
        "BUCKET_TRIGGER_CONFIG_FILE",
        "BUCKET_TRIGGER_CONFIG_SSM",
        "BUCKET_TRIGGER_SECRETS_FILE",
        "AWS_LAMBDA_RUNTIME_API",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    command.output().unwrap()
}

#[test]
fn readme_dry_run_prints_signed_requests_with_secrets_redacted() {
    let out = bucket_trigger(
        &[
            "invoke",
            "events/s3-put.json",
            "--config",
            "examples/bucket-trigger.yaml",
            "--secrets-file",
            "examples/secrets.json",
            "--dry-run",
        ],
        &[],
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["summary"]["dry_run"], 2);
    let airflow = &report["outcomes"][0]["request"];
    assert_eq!(
        airflow["url"],
        "https://airflow.example.com/api/v2/dags/load_sales/dagRuns"
    );
    assert_eq!(
        airflow["body"]["conf"]["key"],
        "incoming/sales/Q4 report (2026).csv"
    );
    assert_eq!(
        report["outcomes"][1]["request"]["headers"]["authorization"],
        "Bearer ****"
    );
    for secret in [
        "example-password-not-real",
        "example-token-not-real",
        "trigger-bot",
    ] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} leaked"
        );
    }
}

#[test]
fn a_dry_run_without_a_secrets_file_signs_with_placeholders_and_asks_nothing_of_aws() {
    // Any AWS call would go to a closed port and fail: the dry run must not make one.
    let aws = [
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    for (config, event, requests) in [
        ("examples/bucket-trigger.yaml", "events/s3-put.json", 2),
        ("examples/alteryx.yaml", "events/alteryx-report-put.json", 2),
        ("examples/google.yaml", "events/s3-put.json", 2),
    ] {
        let out = bucket_trigger(&["invoke", event, "--config", config, "--dry-run"], &aws);
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(out.status.success(), "{config}: {stdout}\n{stderr}");
        assert!(
            stderr.contains("note: dry run without a secrets file: secrets are placeholders"),
            "{stderr}"
        );
        let report: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["summary"]["dry_run"], requests, "{config}: {report}");
        assert!(
            !stdout.contains("placeholder"),
            "{config}: shown redacted: {stdout}"
        );
    }
}

#[test]
fn invoke_sends_with_secrets_from_secrets_manager_via_aws_endpoint_url() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(MockServer::start());
    runtime.block_on(
        Mock::given(method("POST"))
            .and(path("/api/v1/dags/load_sales/dagRuns"))
            .and(header("authorization", "Basic YWRtaW46cHctaW4tbW90bw=="))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"dag_run_id": "x"})))
            .expect(1)
            .mount(&server),
    );
    let secret_id = format!("cli/airflow-{}", fastrand::u64(..));
    runtime.block_on(async {
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .http_client(bucket_trigger::secrets::sdk_http_client())
            .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                "t", "t", None, None, "t",
            ))
            .endpoint_url(moto())
            .build();
        aws_sdk_secretsmanager::Client::from_conf(config)
            .create_secret()
            .name(&secret_id)
            .secret_string(r#"{"username": "admin", "password": "pw-in-moto"}"#)
            .send()
            .await
            .unwrap();
    });
    let config = format!(
        "routes:\n  - name: r\n    target: {{ airflow: {{ base_url: '{}', api: v1, dag_id: load_sales, auth: {{ basic: {{ secret: '{secret_id}' }} }} }} }}\n",
        server.uri()
    );
    let out = bucket_trigger(
        &["invoke", "events/s3-put.json"],
        &[
            ("BUCKET_TRIGGER_CONFIG", &config),
            ("AWS_ENDPOINT_URL", moto()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["outcomes"][0]["status"], "triggered");
    assert!(!stdout.contains("pw-in-moto"));
    drop(runtime);
}

#[test]
fn invoke_exit_codes() {
    // Failed delivery: exit 1 with the reason in the report.
    let out = bucket_trigger(
        &["invoke", "events/s3-put.json"],
        &[(
            "BUCKET_TRIGGER_CONFIG",
            "settings: { max_attempts: 1 }\nroutes:\n  - name: r\n    target: { airflow: { base_url: 'http://127.0.0.1:9', dag_id: d } }\n",
        )],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("could not connect"));

    // Bad event file: exit 2, naming the file and the problem.
    let out = bucket_trigger(
        &[
            "invoke",
            "Cargo.toml",
            "--config",
            "examples/bucket-trigger.yaml",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("event file Cargo.toml") && stderr.contains("not valid JSON"),
        "{stderr}"
    );

    // No config at all.
    let out = bucket_trigger(&["invoke", "events/s3-put.json"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("BUCKET_TRIGGER_CONFIG"));
}

#[test]
fn validate_prints_routes_or_names_the_broken_field() {
    let out = bucket_trigger(
        &["validate", "--config", "examples/bucket-trigger.yaml"],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("sales-csv") && stdout.contains("airflow v2 dag load_sales"),
        "{stdout}"
    );
    assert!(
        stdout.contains("secrets read: chat-webhook, prod/airflow\n")
            && stdout.contains("template.yaml: SecretNames=chat-webhook,prod/airflow\n"),
        "{stdout}"
    );

    let out = bucket_trigger(
        &["validate"],
        &[(
            "BUCKET_TRIGGER_CONFIG",
            "routes:\n  - name: sales\n    target: { airflow: { base_url: 'https://af', dag_id: d, conf: { k: '{{ keyy }}' } } }\n",
        )],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("routes[0] (sales).target") && stderr.contains("conf.k"),
        "{stderr}"
    );
}

/// What `template.yaml` passes in the environment reaches the config: the idempotency table
/// for routes that name none, the failure queue and the SQS source's maxReceiveCount; a value
/// in the config wins, and a bad value is named.
#[test]
fn the_template_environment_names_the_table_and_the_failure_queue() {
    let config = "routes:\n  - name: a\n    target: { webhook: { url: 'https://h/a' } }\n  - name: b\n    idempotency_table: own\n    target: { webhook: { url: 'https://h/b' } }\n";
    let env = [
        ("BUCKET_TRIGGER_CONFIG", config),
        ("BUCKET_TRIGGER_IDEMPOTENCY_TABLE", "from-env"),
        (
            "BUCKET_TRIGGER_FAILURE_QUEUE_URL",
            "https://sqs.eu-west-1.amazonaws.com/123456789012/failures",
        ),
        ("BUCKET_TRIGGER_MAX_RECEIVE_COUNT", "3"),
    ];
    let out = bucket_trigger(&["validate"], &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("idempotency table(s): from-env, own\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "failure records: log and https://sqs.eu-west-1.amazonaws.com/123456789012/failures\n"
        ),
        "{stdout}"
    );
    let mut bad = env;
    bad[3].1 = "three";
    let out = bucket_trigger(&["validate"], &bad);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("BUCKET_TRIGGER_MAX_RECEIVE_COUNT")
            && stderr.contains("\"three\" is not a whole number"),
        "{stderr}"
    );
    bad[3].1 = "3";
    bad[2].1 = "http://sqs.example.com/1/failures";
    let out = bucket_trigger(&["validate"], &bad);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("settings.failure_queue_url"), "{stderr}");
}

#[test]
fn invoke_queues_an_alteryx_job_with_an_oauth1_secret_from_secrets_manager() {
    let gallery = Gallery::start("cli-key", "cli-secret");
    let secret_id = unique("cli/alteryx");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        moto_client()
            .create_secret()
            .name(&secret_id)
            .secret_string(
                json!({"ALTERYX_URL": format!("{}/api/", gallery.url), "ALTERYX_KEY": "cli-key", "ALTERYX_SECRET": "cli-secret"})
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
    });
    let config = format!(
        "routes:\n  - name: reports\n    match: {{ prefix: reports/ }}\n    target:\n      alteryx:\n        api: v1\n        base_url: {{ secret: '{secret_id}', field: ALTERYX_URL }}\n        workflow_id: 5f1c0a8e\n        questions: [{{ name: FilePath, value: 's3://{{{{ bucket }}}}/{{{{ key }}}}' }}]\n        auth: {{ oauth1: {{ secret: '{secret_id}' }} }}\n"
    );
    let mut env: Vec<(&str, String)> = moto_env();
    env.push(("BUCKET_TRIGGER_CONFIG", config));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = bucket_trigger(&["invoke", "events/alteryx-report-put.json"], &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["outcomes"][0]["status"], "triggered");
    assert_eq!(
        report["outcomes"][0]["remote_id"].as_str().unwrap().len(),
        24
    );
    assert_eq!(gallery.requests()[0]["verified"], true);
    assert!(!stdout.contains("cli-secret") && !stdout.contains("cli-key"));
}

/// `Retry-After: 3600` does not keep `invoke` waiting: `--timeout` bounds it like a Lambda
/// deadline, and a redirect is a failure naming the host, not a success.
#[test]
fn invoke_is_bounded_by_its_timeout_and_does_not_follow_redirects() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(MockServer::start());
    runtime.block_on(
        Mock::given(method("POST"))
            .and(path("/slow/api/v2/dags/d/dagRuns"))
            .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3600"))
            .expect(1)
            .mount(&server),
    );
    runtime.block_on(
        Mock::given(method("POST"))
            .and(path("/sso/api/v2/dags/d/dagRuns"))
            .respond_with(
                ResponseTemplate::new(302)
                    .insert_header("location", "https://login.example.com/?next=s3cr3t"),
            )
            .expect(1)
            .mount(&server),
    );
    let config = |prefix: &str| {
        format!(
            "routes:\n  - name: r\n    target: {{ airflow: {{ base_url: '{}/{prefix}', dag_id: d }} }}\n",
            server.uri()
        )
    };
    let started = std::time::Instant::now();
    let out = bucket_trigger(
        &["invoke", "events/s3-put.json", "--timeout", "3"],
        &[("BUCKET_TRIGGER_CONFIG", &config("slow"))],
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("HTTP 429 (no time left before the deadline to retry)"),
        "{stdout}"
    );

    let out = bucket_trigger(
        &["invoke", "events/s3-put.json"],
        &[("BUCKET_TRIGGER_CONFIG", &config("sso"))],
    );
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let outcome = &report["outcomes"][0];
    assert_eq!(outcome["status"], "failed");
    assert_eq!(outcome["retryable"], false);
    let detail = outcome["detail"].as_str().unwrap();
    assert!(
        detail.contains("HTTP 302: redirected to host login.example.com"),
        "{detail}"
    );
    assert!(!detail.contains("s3cr3t"), "{detail}");

    let out = bucket_trigger(&["invoke", "events/s3-put.json", "--timeout", "0"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--timeout takes a positive number"));
    drop(runtime);
}

/// A reader that goes away is no reason to crash, and an unknown command is an error whatever
/// follows it.
#[test]
fn a_closed_stdout_and_unknown_commands() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bucket-trigger"))
        .current_dir(root())
        .args([
            "invoke",
            "events/s3-put.json",
            "--config",
            "examples/bucket-trigger.yaml",
            "--secrets-file",
            "examples/secrets.json",
            "--dry-run",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");

    for args in [&["frobnicate", "-h"][..], &["backfil", "--help"][..]] {
        let out = bucket_trigger(args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("unknown command"),
            "{args:?}"
        );
    }
    let out = bucket_trigger(&["replay", "--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("replay    runs failed deliveries again")
    );
    let out = bucket_trigger(&["replay"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("replay needs a FILE of failure records, - for stdin, or --queue QUEUE_URL")
    );
}
