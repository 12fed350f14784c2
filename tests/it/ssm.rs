//! The config kept in SSM Parameter Store (`BUCKET_TRIGGER_CONFIG_SSM`), through the real AWS
//! SDK against a moto server on 127.0.0.1: in-process, through `validate`, and at the cold
//! start of the binary in Lambda mode.

use std::process::{Command, Output};
use std::time::Duration;

use aws_sdk_ssm::Client;
use aws_sdk_ssm::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ssm::types::ParameterType;
use bucket_trigger::config::{Config, ConfigError, ConfigSource};
use bucket_trigger::secrets::{ParameterError, ParameterStore};

use crate::runtime::{Posted, serve};
use crate::support::{moto, moto_env, root, unique};

/// A Parameter Store client of the real SDK, pointed at the moto server.
fn client() -> Client {
    let config = aws_sdk_ssm::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(bucket_trigger::secrets::sdk_http_client())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .endpoint_url(moto())
        .build();
    Client::from_conf(config)
}

async fn put(client: &Client, name: &str, kind: ParameterType, value: &str) {
    client
        .put_parameter()
        .name(name)
        .r#type(kind)
        .value(value)
        .overwrite(true)
        .send()
        .await
        .unwrap();
}

fn config(route: &str) -> String {
    format!(
        "routes:\n  - name: {route}\n    match: {{ bucket: acme-landing }}\n    target:\n      \
         webhook: {{ url: 'https://hooks.example.com/landing', auth: {{ bearer: {{ secret: chat-webhook }} }} }}\n"
    )
}

async fn load(store: &ParameterStore, name: &str) -> Result<Config, ConfigError> {
    Config::from_source(&ConfigSource::Parameter(name.to_owned()), store).await
}

#[tokio::test]
async fn a_string_or_secure_string_parameter_holds_the_config_and_a_version_pins_it() {
    let client = client();
    let store = ParameterStore::new(client.clone());
    let plain = format!("/{}/config", unique("bucket-trigger"));
    let secure = format!("/{}/config", unique("bucket-trigger"));
    put(
        &client,
        &plain,
        ParameterType::String,
        &config("from-string"),
    )
    .await;
    put(
        &client,
        &secure,
        ParameterType::SecureString,
        &config("from-secure-string"),
    )
    .await;

    let loaded = load(&store, &plain).await.unwrap();
    assert_eq!(loaded.routes[0].name, "from-string");
    assert_eq!(loaded.secret_ids, vec!["chat-webhook"]);
    // Decrypted: an encrypted value would not parse as a config.
    let loaded = load(&store, &secure).await.unwrap();
    assert_eq!(loaded.routes[0].name, "from-secure-string");

    // A new version; `name:1` still reads the first.
    put(&client, &plain, ParameterType::String, &config("second")).await;
    assert_eq!(load(&store, &plain).await.unwrap().routes[0].name, "second");
    let pinned = format!("{plain}:1");
    assert_eq!(
        load(&store, &pinned).await.unwrap().routes[0].name,
        "from-string"
    );
}

#[tokio::test]
async fn errors_name_the_parameter_and_never_print_its_value() {
    let client = client();
    let store = ParameterStore::new(client.clone());

    let missing = format!("/{}/config", unique("absent"));
    let error = load(&store, &missing).await.unwrap_err();
    assert!(
        matches!(
            error,
            ConfigError::Parameter(ParameterError::NotFound { .. })
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains(&format!("{missing:?} not found")),
        "{error}"
    );
    let error = load(&store, &format!("{missing}:7")).await.unwrap_err();
    assert!(error.to_string().contains(&missing), "{error}");

    // A SecureString whose config is wrong: the error names the parameter and the field,
    // and quotes nothing else of the value.
    let name = format!("/{}/config", unique("broken"));
    let value = "routes:\n  - name: r\n    target: { webhook: { url: 'https://hooks.example.com/x?sig=VALUE-NOT-TO-PRINT', methd: POST } }\n";
    put(&client, &name, ParameterType::SecureString, value).await;
    let error = load(&store, &name).await.unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("config SSM parameter {name}: ")),
        "{error}"
    );
    assert!(error.contains("methd"), "{error}");
    assert!(!error.contains("VALUE-NOT-TO-PRINT"), "{error}");
}

fn validate(env: &[(&str, String)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bucket-trigger"));
    command.current_dir(root()).arg("validate");
    for var in [
        "BUCKET_TRIGGER_CONFIG",
        "BUCKET_TRIGGER_CONFIG_FILE",
        "BUCKET_TRIGGER_CONFIG_SSM",
        "AWS_LAMBDA_RUNTIME_API",
    ] {
        command.env_remove(var);
    }
    command.envs(moto_env());
    command.envs(env.iter().map(|(k, v)| (k, v)));
    command.output().unwrap()
}

#[tokio::test]
async fn validate_reads_the_parameter_and_earlier_sources_win_with_a_warning() {
    let client = client();
    let name = format!("/{}/config", unique("validate"));
    put(
        &client,
        &name,
        ParameterType::SecureString,
        &config("from-ssm"),
    )
    .await;

    let out = validate(&[("BUCKET_TRIGGER_CONFIG_SSM", name.clone())]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("- from-ssm:"), "{stdout}");
    assert!(
        stdout.contains("template.yaml: SecretNames=chat-webhook"),
        "{stdout}"
    );

    // BUCKET_TRIGGER_CONFIG_FILE comes first; the parameter is not read, and that is said.
    let out = validate(&[
        ("BUCKET_TRIGGER_CONFIG_SSM", name.clone()),
        (
            "BUCKET_TRIGGER_CONFIG_FILE",
            "examples/bucket-trigger.yaml".to_owned(),
        ),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("- sales-csv:") && !stdout.contains("from-ssm"),
        "{stdout}"
    );
    assert!(
        stderr.contains(
            "BUCKET_TRIGGER_CONFIG_SSM is set but not used: the config comes from \
             examples/bucket-trigger.yaml"
        ),
        "{stderr}"
    );

    let missing = format!("/{}/config", unique("absent"));
    let out = validate(&[("BUCKET_TRIGGER_CONFIG_SSM", missing.clone())]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("config: SSM parameter {missing:?} not found")),
        "{stderr}"
    );
}

fn event() -> Vec<u8> {
    std::fs::read(root().join("events/s3-put.json")).unwrap()
}

/// The route names in a dry-run Lambda answer.
fn routes(answer: &Option<Posted>) -> Vec<String> {
    let Some(Posted::Response(report)) = answer else {
        panic!("{answer:?}")
    };
    report["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|outcome| outcome["route"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_function_reads_the_parameter_at_cold_start_so_a_change_needs_no_rebuild() {
    let client = client();
    let name = format!("/{}/config", unique("lambda"));
    put(
        &client,
        &name,
        ParameterType::SecureString,
        &config("first"),
    )
    .await;
    let mut env: Vec<(&str, String)> = moto_env();
    env.push(("BUCKET_TRIGGER_CONFIG_SSM", name.clone()));
    env.push(("BUCKET_TRIGGER_DRY_RUN", "1".to_owned()));

    let served = serve(&[event()], Duration::from_secs(10), &env).await;
    assert!(served.alive, "{}", served.output);
    assert_eq!(routes(&served.answers[0]), ["first"], "{}", served.output);

    // Change the parameter: the next cold start (a new process) reads the new config.
    put(
        &client,
        &name,
        ParameterType::SecureString,
        &config("second"),
    )
    .await;
    let served = serve(&[event()], Duration::from_secs(10), &env).await;
    assert_eq!(routes(&served.answers[0]), ["second"], "{}", served.output);

    // Pinned to version 1 (what the template's ConfigParameterName=/path:1 sets), it stays.
    env.retain(|(var, _)| *var != "BUCKET_TRIGGER_CONFIG_SSM");
    env.push(("BUCKET_TRIGGER_CONFIG_SSM", format!("{name}:1")));
    let served = serve(&[event()], Duration::from_secs(10), &env).await;
    assert_eq!(routes(&served.answers[0]), ["first"], "{}", served.output);
}
