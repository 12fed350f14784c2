//! What `template.yaml` and `sam build` give the function: every config the template can
//! choose loads and its policy grants exactly the secrets that config reads, the idempotency
//! table's four calls and the failure queue's SendMessage, and nothing else; its failure
//! alarm watches the function's total (scripts/check-template-configs.py, for every allowed
//! parameter combination), and the
//! files of bundle/ ship next to the function, which finds them from its working directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::runtime::{Posted, serve_in};
use crate::support::{python, root, unique};
use crate::tls::tls_server;

/// Runs the template check; `fail_fast` stops it at the first failure (a broken variant).
fn check(template: &Path, fail_fast: bool) -> Output {
    let mut command = Command::new(python());
    command
        .arg(root().join("scripts/check-template-configs.py"))
        .arg("--bin")
        .arg(env!("CARGO_BIN_EXE_bucket-trigger"))
        .arg("--template")
        .arg(template);
    if fail_fast {
        command.arg("--fail-fast");
    }
    command.output().unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_allowed_combination_gives_a_config_that_loads_and_a_policy_for_exactly_its_secrets() {
    let out = check(&root().join("template.yaml"), false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = stdout.lines().last().unwrap();
    assert!(
        summary.contains(
            "(sources: BUCKET_TRIGGER_CONFIG, BUCKET_TRIGGER_CONFIG_FILE, BUCKET_TRIGGER_CONFIG_SSM)"
        ) && summary.ends_with(" 0 failed"),
        "{summary}"
    );
    let checked: usize = summary
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{summary}"));
    // Generated: 7 Airflow api × auth pairs the Rules allow × prefix/suffix × CA × KMS key, and
    // the example configs (and one without secrets) as a bundled file or an SSM parameter.
    assert!(checked >= 7 * 4 * 2 * 2, "{summary}");
}

#[test]
fn the_check_catches_a_policy_or_config_the_template_gets_wrong() {
    let template = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let dir = scratch("bucket-trigger-template");
    let mutations = [
        (
            "the CA secret left out of the policy",
            "[!Ref AirflowSecretName, !Ref AirflowCaBundleSecretName]",
            "[!Ref AirflowSecretName]",
            "GetSecretValue granted on",
        ),
        (
            "a secret granted to a config that reads none",
            "ReadsSecrets: !Or [!Condition GeneratedConfig, !Condition HasSecretNames]",
            "ReadsSecrets: !Equals [a, a]",
            "GetSecretValue granted on ['arn:aws:secretsmanager:eu-west-1:123456789012:secret:-??????']",
        ),
        (
            "a generated config that does not load",
            "dag_id: \"${DagId}\"",
            "dag: \"${DagId}\"",
            "the generated config does not load",
        ),
        (
            "the parameter ARN with a doubled slash",
            "parameter${Name}",
            "parameter/${Name}",
            "ssm:GetParameter granted on",
        ),
        (
            "two config sources at once",
            "BUCKET_TRIGGER_CONFIG_FILE: !If [FileConfig, !Ref ConfigFile, !Ref AWS::NoValue]",
            "BUCKET_TRIGGER_CONFIG_FILE: !Ref ConfigFile",
            "(want exactly one)",
        ),
        (
            "a DynamoDB Scan granted beside the four calls the store makes",
            "                  - dynamodb:DeleteItem\n",
            "                  - dynamodb:DeleteItem\n                  - dynamodb:Scan\n",
            ": ['dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Scan', \
             'dynamodb:UpdateItem'], want exactly",
        ),
        (
            "dynamodb:* on the table",
            "                  - dynamodb:GetItem\n",
            "                  - dynamodb:*\n",
            "DynamoDB actions on",
        ),
        (
            "the four calls on every table",
            "table/${IdempotencyTable}",
            "table/*",
            "DynamoDB actions on arn:aws:dynamodb:eu-west-1:123456789012:table/bucket-trigger-idempotency: []",
        ),
        (
            "the table not told to the function",
            "- !If [CreateIdempotencyTable, !Ref IdempotencyRecords, !Ref IdempotencyTable]\n            - !Ref AWS::NoValue",
            "- !Ref AWS::NoValue\n            - !Ref AWS::NoValue",
            "BUCKET_TRIGGER_IDEMPOTENCY_TABLE is None",
        ),
        (
            "SendMessage on every queue",
            "Action: sqs:SendMessage\n              Resource: !GetAtt FailureQueue.Arn",
            "Action: sqs:SendMessage\n              Resource: \"*\"",
            "sqs:SendMessage granted on ['*']",
        ),
        (
            "one more action on the failure queue",
            "Action: sqs:SendMessage\n              Resource: !GetAtt FailureQueue.Arn",
            "Action: [sqs:SendMessage, sqs:DeleteQueue]\n              Resource: !GetAtt FailureQueue.Arn",
            "grants beyond what the function uses: sqs:DeleteQueue on <FailureQueue.Arn>",
        ),
        (
            "the receive count hard-coded again",
            "maxReceiveCount: !Ref MaxReceiveCount",
            "maxReceiveCount: 5",
            "BUCKET_TRIGGER_MAX_RECEIVE_COUNT is '7', the buffer's maxReceiveCount '5'",
        ),
        (
            "the alarm on a namespace the function does not write to",
            "      Namespace: !Ref MetricsNamespace\n",
            "      Namespace: BucketTrigger\n",
            "the failure alarm has {'Namespace': 'BucketTrigger'}",
        ),
        (
            "the alarm on one route's series",
            "      MetricName: Failed\n",
            "      MetricName: Failed\n      Dimensions: [{ Name: Route, Value: default }]\n",
            "the failure alarm has {'Dimensions'",
        ),
    ];
    for (what, from, to, said) in mutations {
        assert_eq!(template.matches(from).count(), 1, "{what}: {from}");
        let mutated = dir.join("template.yaml");
        std::fs::write(&mutated, template.replace(from, to)).unwrap();
        let out = check(&mutated, true);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{what} passed:\n{stdout}");
        assert!(stdout.contains(said), "{what}:\n{stdout}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn files_in_bundle_ship_next_to_the_function_which_finds_them_from_its_directory() {
    // An orchestrator behind a private CA, and a bundle holding the config and that CA.
    let (server, port, ca) = tls_server(&["127.0.0.1"]);
    let dir = scratch("bucket-trigger-package");
    let (bundle, package) = (dir.join("bundle"), dir.join("package"));
    std::fs::create_dir_all(bundle.join("certs")).unwrap();
    std::fs::create_dir_all(&package).unwrap();
    for file in ["Makefile", "README.md"] {
        std::fs::copy(root().join("bundle").join(file), bundle.join(file)).unwrap();
    }
    std::fs::copy(&ca, bundle.join("certs/company-ca.pem")).unwrap();
    std::fs::write(
        bundle.join("bucket-trigger.yaml"),
        format!(
            "settings: {{ ca_bundle: certs/company-ca.pem, max_attempts: 1 }}\nroutes:\n  \
             - name: hook\n    target: {{ webhook: {{ url: 'https://127.0.0.1:{port}/hook' }} }}\n"
        ),
    )
    .unwrap();

    // What `sam build` runs after the cargo-lambda build (bundle/Makefile, target `files`).
    let make = Command::new("make")
        .current_dir(root())
        .args(["--makefile", "bundle/Makefile", "files"])
        .arg(format!("BUNDLE={}", bundle.display()))
        .arg(format!("ARTIFACTS_DIR={}", package.display()))
        .output()
        .unwrap();
    assert!(
        make.status.success(),
        "{}",
        String::from_utf8_lossy(&make.stderr)
    );
    let mut shipped: Vec<String> = walk(&package)
        .iter()
        .map(|path| path.strip_prefix(&package).unwrap().display().to_string())
        .collect();
    shipped.sort();
    assert_eq!(shipped, ["bucket-trigger.yaml", "certs/company-ca.pem"]);

    // Lambda starts the function in its task root; the template sets a relative path.
    let event = std::fs::read(root().join("events/s3-put.json")).unwrap();
    let served = serve_in(
        Some(&package),
        &[event],
        Duration::from_secs(10),
        &[(
            "BUCKET_TRIGGER_CONFIG_FILE",
            "bucket-trigger.yaml".to_owned(),
        )],
    )
    .await;
    let Some(Posted::Response(report)) = &served.answers[0] else {
        panic!("{:?}\n{}", served.answers, served.output)
    };
    assert_eq!(report["summary"]["triggered"], 1, "{report}");
    assert_eq!(server.get("/_requests").as_array().unwrap().len(), 1);
    std::fs::remove_dir_all(dir).unwrap();
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
