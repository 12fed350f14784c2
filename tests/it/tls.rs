//! HTTPS to an orchestrator behind a private CA (`settings.ca_bundle`), against a stand-in
//! whose certificate a fresh test CA signed (tests/fixtures/tls_server.py: Python's `ssl`
//! serves it, so the TLS stack on the other side is not ours).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::support::{Fixture, app, invoke, root, unique};

/// The stand-in (its plain-HTTP side, to ask what arrived), the port of its HTTPS side, and
/// the path of the PEM of the CA that signed its certificate.
pub fn tls_server(names: &[&str]) -> (Fixture, String, PathBuf) {
    let ca = std::env::temp_dir().join(format!("{}.pem", unique("bucket-trigger-test-ca")));
    let port_file = ca.with_extension("port");
    let mut args = vec![
        format!("--ca-out={}", ca.display()),
        format!("--port-out={}", port_file.display()),
    ];
    args.extend(names.iter().map(|name| format!("--name={name}")));
    let fixture = Fixture::start("tls_server.py", &args);
    let port = std::fs::read_to_string(&port_file).unwrap();
    (fixture, port, ca)
}

fn config(url: &str, settings: &str) -> String {
    format!(
        "settings: {{ max_attempts: 1, request_timeout_ms: 3000 {settings} }}
routes:
  - name: hook
    target: {{ webhook: {{ url: '{url}' }} }}
"
    )
}

fn outcome(report: &Value) -> &Value {
    &report["outcomes"][0]
}

#[tokio::test]
async fn a_private_ca_from_a_file_is_trusted_and_without_it_the_certificate_is_not() {
    let (server, port, ca) = tls_server(&["localhost", "127.0.0.1"]);
    let url = format!("https://127.0.0.1:{}/hook", port);

    let trusted = app(
        &config(&url, &format!(", ca_bundle: '{}'", ca.display())),
        "{}",
    );
    let report = invoke(&trusted, "s3-put.json").await.unwrap();
    assert_eq!(outcome(&report)["status"], "triggered", "{report}");
    assert_eq!(outcome(&report)["http_status"], 200, "{report}");
    let received = server.get("/_requests");
    assert_eq!(received.as_array().unwrap().len(), 1, "{received}");
    assert_eq!(received[0]["path"], "/hook");

    // Mozilla's roots alone do not know the test CA: the handshake fails, nothing is sent,
    // and the message says what to do. Nothing was sent, so it is worth retrying later.
    let untrusted = app(&config(&url, ""), "{}");
    let error = invoke(&untrusted, "s3-put.json").await.unwrap_err();
    assert_eq!(error.error_type, "Retryable");
    assert!(
        error.error_message.contains(
            "could not connect: the TLS certificate of 127.0.0.1 is not trusted: no trusted root \
             signed it (a private CA? add it to settings.ca_bundle)"
        ),
        "{}",
        error.error_message
    );
    assert_eq!(server.get("/_requests").as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused_naming_the_host() {
    let (server, port, ca) = tls_server(&["localhost"]);
    let url = format!("https://127.0.0.1:{}/hook", port);
    let app = app(
        &config(&url, &format!(", ca_bundle: '{}'", ca.display())),
        "{}",
    );
    let error = invoke(&app, "s3-put.json").await.unwrap_err();
    assert!(
        error
            .error_message
            .contains("the TLS certificate of 127.0.0.1 is not valid for the name 127.0.0.1"),
        "{}",
        error.error_message
    );
    assert_eq!(server.get("/_requests"), serde_json::json!([]));
}

#[test]
fn invoke_reads_a_ca_bundle_kept_in_a_secret() {
    let (server, port, ca) = tls_server(&["localhost", "127.0.0.1"]);
    let pem = std::fs::read_to_string(&ca).unwrap();
    let work = std::env::temp_dir().join(unique("bucket-trigger-tls"));
    std::fs::create_dir_all(&work).unwrap();
    let config_file = work.join("config.yaml");
    let secrets_file = work.join("secrets.json");
    std::fs::write(
        &config_file,
        config(
            &format!("https://localhost:{}/hook", port),
            ", ca_bundle: { secret: company-ca, field: pem }",
        ),
    )
    .unwrap();
    let run = |secrets: &Value| {
        std::fs::write(&secrets_file, secrets.to_string()).unwrap();
        Command::new(env!("CARGO_BIN_EXE_bucket-trigger"))
            .current_dir(root())
            .env_remove("BUCKET_TRIGGER_CONFIG")
            .args(["invoke", "--config"])
            .arg(&config_file)
            .arg("--secrets-file")
            .arg(&secrets_file)
            .arg("events/s3-put.json")
            .output()
            .unwrap()
    };

    let out = run(&serde_json::json!({"company-ca": {"pem": pem}}));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(outcome(&report)["status"], "triggered", "{report}");

    // A secret that holds no certificate stops the start, naming the setting and the secret
    // but not repeating its value.
    let out = run(&serde_json::json!({"company-ca": {"pem": "MARKER-not-a-certificate"}}));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("settings.ca_bundle: secret \"company-ca\" holds no PEM certificate"),
        "{stderr}"
    );
    assert!(!stderr.contains("MARKER"), "{stderr}");
    assert_eq!(server.get("/_requests").as_array().unwrap().len(), 1);
}

#[test]
fn a_ca_bundle_file_that_cannot_be_used_fails_the_config_naming_it() {
    let not_pem = std::env::temp_dir().join(format!("{}.pem", unique("not-pem")));
    std::fs::write(&not_pem, "hello").unwrap();
    let broken = std::env::temp_dir().join(format!("{}.pem", unique("broken-pem")));
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\nMIIBroken\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for (path, expected) in [
        (
            PathBuf::from("/nonexistent/ca.pem"),
            "cannot read /nonexistent/ca.pem: No such file".to_owned(),
        ),
        (
            not_pem.clone(),
            format!("{} holds no PEM certificate", not_pem.display()),
        ),
        (
            broken.clone(),
            format!("{} certificate 1 is not", broken.display()),
        ),
    ] {
        let yaml = config(
            "https://airflow.example.com/hook",
            &format!(", ca_bundle: '{}'", path.display()),
        );
        let error = bucket_trigger::config::Config::parse(&yaml, "t")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("config t: settings.ca_bundle: "),
            "{error}"
        );
        assert!(error.contains(&expected), "want {expected:?} in: {error}");
    }
}
