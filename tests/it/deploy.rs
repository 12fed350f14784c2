//! `template.yaml` builds the function's config from stack parameters: that config must load.

use bucket_trigger::config::Config;

use crate::support::root;

/// The `BUCKET_TRIGGER_CONFIG: !Sub |` block of the template, with parameters substituted.
fn config_from_template(parameters: &[(&str, &str)]) -> String {
    let template = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let mut lines = template
        .lines()
        .skip_while(|line| !line.contains("BUCKET_TRIGGER_CONFIG: !Sub |"));
    let header = lines
        .next()
        .expect("template.yaml sets BUCKET_TRIGGER_CONFIG with !Sub |");
    let header_indent = header.len() - header.trim_start().len();
    let body: Vec<&str> = lines
        .take_while(|line| {
            line.trim().is_empty() || line.len() - line.trim_start().len() > header_indent
        })
        .collect();
    let indent = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap();
    let mut text = body
        .iter()
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    for (name, value) in parameters {
        text = text.replace(&format!("${{{name}}}"), value);
    }
    assert!(!text.contains("${"), "unsubstituted parameter in:\n{text}");
    text
}

#[test]
fn every_auth_and_api_choice_of_the_template_loads() {
    for api in ["v1", "v2", "experimental"] {
        for auth in ["basic", "bearer", "airflow_token"] {
            for (prefix, suffix) in [("", ""), ("incoming/", ".csv")] {
                let text = config_from_template(&[
                    ("BucketName", "my-data-bucket"),
                    ("Prefix", prefix),
                    ("Suffix", suffix),
                    ("AirflowBaseUrl", "https://airflow.example.com"),
                    ("AirflowApi", api),
                    ("DagId", "ingest_csv"),
                    ("AirflowAuth", auth),
                    ("AirflowSecretName", "airflow/prod-trigger"),
                ]);
                let config =
                    Config::parse(&text, "template.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"));
                assert_eq!(config.secret_ids, vec!["airflow/prod-trigger"]);
                assert_eq!(
                    config.routes[0].targets[0].description,
                    format!("airflow {api} dag ingest_csv")
                );
            }
        }
    }
}
