//! CloudWatch metrics as Lambda runs the function: the real binary under the stand-in Runtime
//! API prints one Embedded Metric Format line per route × target on stdout after each
//! invocation, whole among the log's lines; off with `settings.metrics.enabled: false` or
//! `BUCKET_TRIGGER_METRICS=0`, never for a dry run; for `invoke` only when asked.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::runtime::{Posted, Served, serve};
use crate::support::root;

fn s3_put() -> Vec<u8> {
    std::fs::read(root().join("events/s3-put.json")).unwrap()
}

/// A webhook server: `/ok` starts a run, `/flaky` fails once with 503 and then starts one,
/// `/bad` refuses (400, permanent).
async fn hooks() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/ok"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/flaky"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/flaky"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/bad"))
        .respond_with(ResponseTemplate::new(400))
        .mount(&server)
        .await;
    server
}

fn config(server: &MockServer, settings: &str) -> String {
    let uri = server.uri();
    format!(
        "settings: {{ backoff_base_ms: 1, backoff_max_ms: 5{settings} }}\nroutes:\n  - name: landing\n    targets:\n      \
         - webhook: {{ url: '{uri}/ok' }}\n      - webhook: {{ url: '{uri}/bad' }}\n  \
         - name: second\n    target: {{ webhook: {{ url: '{uri}/flaky' }} }}\n"
    )
}

/// The EMF documents in the function's output (lines carrying `_aws`).
fn documents(served: &Served) -> Vec<Value> {
    served
        .output
        .lines()
        .filter(|line| line.contains("\"_aws\""))
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not one whole JSON line ({e}): {line}"))
        })
        .collect()
}

fn report(served: &Served) -> &Value {
    match &served.answers[0] {
        Some(Posted::Response(report)) => report,
        other => panic!("{other:?}\n{}", served.output),
    }
}

#[tokio::test]
async fn each_invocation_prints_one_emf_line_per_route_and_target_on_stdout() {
    let server = hooks().await;
    let served = serve(
        &[s3_put(), s3_put()],
        Duration::from_secs(10),
        &[
            ("BUCKET_TRIGGER_CONFIG", config(&server, "")),
            // JSON logs, as the template sets them: then every line on stdout is a JSON
            // object, so a metric line cut by a log line (or the reverse) would not parse.
            ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
        ],
    )
    .await;
    assert!(served.alive, "{}", served.output);
    let report = report(&served);
    assert_eq!(report["summary"]["triggered"], 2, "{report}");
    assert_eq!(report["summary"]["failed"], 1, "{report}");
    for outcome in report["outcomes"].as_array().unwrap() {
        assert!(outcome["elapsed_ms"].is_u64(), "{outcome}");
    }
    for line in served.output.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<Value>(line).is_ok_and(|v| v.is_object()),
            "a line that is not one JSON object: {line}\n{}",
            served.output
        );
    }

    let documents = documents(&served);
    // Two invocations × three route × target pairs.
    assert_eq!(documents.len(), 6, "{}", served.output);
    let uri = server.uri();
    let find = |target: &str| -> Vec<&Value> {
        documents
            .iter()
            .filter(|d| d["Target"] == format!("webhook POST {uri}{target}"))
            .collect()
    };
    let counts = |d: &Value| {
        [
            "Triggered",
            "AlreadyTriggered",
            "Retried",
            "Failed",
            "Ambiguous",
        ]
        .map(|name| d[name].as_u64().unwrap_or(u64::MAX))
    };
    for ok in find("/ok") {
        assert_eq!(ok["Route"], "landing");
        assert_eq!(counts(ok), [1, 0, 0, 0, 0], "{ok}");
    }
    for bad in find("/bad") {
        assert_eq!(bad["Route"], "landing");
        assert_eq!(counts(bad), [0, 0, 0, 1, 0], "{bad}");
    }
    let flaky = find("/flaky");
    assert_eq!(flaky.len(), 2);
    assert_eq!(flaky[0]["Route"], "second");
    // The first invocation met the 503 once, then the run started; the second went straight.
    assert_eq!(counts(flaky[0]), [1, 0, 1, 0, 0], "{}", flaky[0]);
    assert_eq!(counts(flaky[1]), [1, 0, 0, 0, 0], "{}", flaky[1]);

    let first = &documents[0];
    assert_eq!(
        first["_aws"]["CloudWatchMetrics"],
        json!([{
            "Namespace": "BucketTrigger",
            "Dimensions": [["Route", "Target"], []],
            "Metrics": [
                {"Name": "Triggered", "Unit": "Count"},
                {"Name": "AlreadyTriggered", "Unit": "Count"},
                {"Name": "Retried", "Unit": "Count"},
                {"Name": "Failed", "Unit": "Count"},
                {"Name": "Ambiguous", "Unit": "Count"},
                {"Name": "Latency", "Unit": "Milliseconds"},
            ],
        }])
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let stamped = first["_aws"]["Timestamp"].as_u64().unwrap();
    assert!(stamped <= now_ms && stamped > now_ms - 60_000, "{stamped}");
    // The latency of each delivery, as the report gives it.
    let latencies: Vec<u64> = documents
        .iter()
        .take(3)
        .map(|d| d["Latency"].as_array().unwrap()[0].as_u64().unwrap())
        .collect();
    let mut reported: Vec<u64> = report["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["elapsed_ms"].as_u64().unwrap())
        .collect();
    let mut emitted = latencies.clone();
    reported.sort();
    emitted.sort();
    assert_eq!(emitted, reported);
}

#[tokio::test]
async fn switched_off_by_setting_or_environment_and_silent_in_a_dry_run() {
    let server = hooks().await;
    let cases = [
        (
            "the setting",
            config(&server, ", metrics: { enabled: false }"),
            vec![],
        ),
        (
            "BUCKET_TRIGGER_METRICS=0",
            config(&server, ""),
            vec![("BUCKET_TRIGGER_METRICS", "0")],
        ),
        (
            "a dry run",
            config(&server, ""),
            vec![("BUCKET_TRIGGER_DRY_RUN", "1")],
        ),
    ];
    for (what, config, extra) in cases {
        let mut env = vec![("BUCKET_TRIGGER_CONFIG", config)];
        env.extend(extra.into_iter().map(|(k, v)| (k, v.to_owned())));
        let served = serve(&[s3_put()], Duration::from_secs(10), &env).await;
        let report = report(&served);
        assert_eq!(report["summary"]["events"], 1, "{what}: {report}");
        assert!(
            documents(&served).is_empty(),
            "{what}: metric lines printed:\n{}",
            served.output
        );
    }

    // The environment turns them back on, under the namespace the config names.
    let served = serve(
        &[s3_put()],
        Duration::from_secs(10),
        &[
            (
                "BUCKET_TRIGGER_CONFIG",
                config(
                    &server,
                    ", metrics: { enabled: false, namespace: Data/Landing }",
                ),
            ),
            ("BUCKET_TRIGGER_METRICS", "1".to_owned()),
        ],
    )
    .await;
    let documents = documents(&served);
    assert_eq!(documents.len(), 3, "{}", served.output);
    assert!(
        documents
            .iter()
            .all(|d| d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Data/Landing")
    );

    // A value that is neither on nor off stops the cold start, naming the variable.
    let served = serve(
        &[s3_put()],
        Duration::from_secs(5),
        &[
            ("BUCKET_TRIGGER_CONFIG", config(&server, "")),
            ("BUCKET_TRIGGER_METRICS", "sometimes".to_owned()),
        ],
    )
    .await;
    assert!(!served.alive);
    assert!(
        served
            .output
            .contains("BUCKET_TRIGGER_METRICS=\"sometimes\""),
        "{}",
        served.output
    );
}

#[test]
fn invoke_prints_metric_lines_on_stderr_only_when_asked() {
    let run = |extra: &[&str], env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bucket-trigger"));
        command
            .current_dir(root())
            .args(["invoke", "events/s3-put.json"])
            .args(extra)
            .env_remove("BUCKET_TRIGGER_METRICS")
            .env_remove("BUCKET_TRIGGER_CONFIG_FILE")
            .env_remove("BUCKET_TRIGGER_CONFIG_SSM")
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .env(
                "BUCKET_TRIGGER_CONFIG",
                "settings: { max_attempts: 1 }\nroutes:\n  - name: r\n    target: { webhook: { url: 'http://127.0.0.1:9/x' } }\n",
            )
            .envs(env.iter().copied());
        let out = command.output().unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (code, stdout, stderr) = run(&[], &[]);
    assert_eq!(code, Some(1));
    assert!(
        !stdout.contains("_aws") && !stderr.contains("_aws"),
        "{stderr}"
    );

    for (extra, env) in [
        (&["--metrics"][..], &[][..]),
        (&[][..], &[("BUCKET_TRIGGER_METRICS", "1")][..]),
    ] {
        let (code, stdout, stderr) = run(extra, env);
        assert_eq!(code, Some(1), "{stderr}");
        // stdout is the report alone, still one JSON document.
        let report: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["summary"]["failed"], 1);
        let lines: Vec<Value> = stderr
            .lines()
            .filter(|l| l.contains("\"_aws\""))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert_eq!(lines[0]["Route"], "r");
        assert_eq!(lines[0]["Failed"], 1);
        // Refused before anything was sent: not ambiguous.
        assert_eq!(lines[0]["Ambiguous"], 0);
    }

    // A dry run prints none, even when asked.
    let (code, _, stderr) = run(&["--metrics", "--dry-run"], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("_aws"), "{stderr}");
}
