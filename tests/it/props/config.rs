//! Properties of the config loader: any text, the shipped examples edited line by line, and
//! configurations built from its own vocabulary either load, keeping their routes, or fail with
//! a message naming the origin and the field.

use bucket_trigger::config::{Config, ConfigError};
use bucket_trigger::event::{ObjectEvent, Source};
use bucket_trigger::template::RenderContext;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::TestCaseError;
use reqwest::header::HeaderName;
use serde_json::{Map, Value, json};

use super::events::{Obj, S3_EVENT_NAMES, bucket, obj, real_bucket};
use super::{cases, re};
use crate::support::root;

/// What holds of any load: a config that loads has routes, each with targets and a unique,
/// non-blank name; an error starts with `config ORIGIN: ` and says something, and an invalid
/// value names its field under `routes` or `settings`.
fn check_config(result: &Result<Config, ConfigError>, origin: &str) -> Result<(), TestCaseError> {
    match result {
        Ok(config) => {
            prop_assert!(!config.routes.is_empty());
            for (i, route) in config.routes.iter().enumerate() {
                prop_assert!(!route.name.trim().is_empty());
                prop_assert!(!route.targets.is_empty());
                prop_assert!(
                    config.routes[..i]
                        .iter()
                        .all(|other| other.name != route.name)
                );
            }
        }
        Err(error) => {
            let text = error.to_string();
            let prefix = format!("config {origin}: ");
            prop_assert!(text.starts_with(&prefix), "{}", text);
            prop_assert!(!text[prefix.len()..].trim().is_empty(), "{}", text);
            match error {
                ConfigError::Invalid { field, message, .. } => {
                    prop_assert!(
                        field.starts_with("routes") || field.starts_with("settings"),
                        "{}",
                        text
                    );
                    prop_assert!(!message.trim().is_empty(), "{}", text);
                }
                ConfigError::Syntax { message, .. } => {
                    prop_assert!(!message.trim().is_empty(), "{}", text);
                }
                other => prop_assert!(false, "Config::parse answered {:?}", other),
            }
        }
    }
    Ok(())
}

/// The example configurations in `examples/`.
fn example_configs() -> Vec<String> {
    let mut paths: Vec<_> = std::fs::read_dir(root().join("examples"))
        .expect("examples/")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| std::fs::read_to_string(path).expect("an example config"))
        .collect()
}

/// Values and bits of YAML that mean something to the loader.
const YAML_TOKENS: &[&str] = &[
    "",
    "0",
    "-1",
    "18446744073709551616",
    "1.5",
    "[]",
    "{}",
    "null",
    "~",
    "true",
    "'{{'",
    "'{{ key | nope }}'",
    "'{{ key }'",
    "\"{{ version_id | slug }}\"",
    "'{{ size * 1000000 }}'",
    "'**/***'",
    "'[z-a]'",
    "ftp://x",
    "'http://[::1'",
    "https://h/{{ key }}",
    "v9",
    "'*'",
    "&a x",
    "*a",
    "!!binary aGk=",
    "<<: {}",
    "{ secret: s }",
    "{ secret: s, field: f }",
    "[a, b]",
    "'ObjectCreate:*'",
    "s3:ObjectCreated:*",
    "\"\\u0000\"",
    "'%'",
    "|\n  x",
    "- x",
    ": :",
    "#",
    "\t",
    "é",
];

#[derive(Debug, Clone)]
enum LineEdit {
    Delete(Index),
    Duplicate(Index),
    Swap(Index, Index),
    Indent(Index, bool),
    /// The value after the line's first `: ` (or the whole line) becomes the token.
    Value(Index, &'static str),
    Insert(Index, Index, &'static str),
    Cut(Index),
}

fn line_edit() -> BoxedStrategy<LineEdit> {
    let token = || select(YAML_TOKENS);
    prop_oneof![
        1 => any::<Index>().prop_map(LineEdit::Delete),
        1 => any::<Index>().prop_map(LineEdit::Duplicate),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| LineEdit::Swap(a, b)),
        1 => (any::<Index>(), any::<bool>()).prop_map(|(a, deeper)| LineEdit::Indent(a, deeper)),
        3 => (any::<Index>(), token()).prop_map(|(a, t)| LineEdit::Value(a, t)),
        1 => (any::<Index>(), any::<Index>(), token())
            .prop_map(|(a, b, t)| LineEdit::Insert(a, b, t)),
        1 => any::<Index>().prop_map(LineEdit::Cut),
    ]
    .boxed()
}

fn edit_lines(text: &str, edits: &[LineEdit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for edit in edits {
        if lines.is_empty() {
            break;
        }
        let n = lines.len();
        match edit {
            LineEdit::Delete(at) => {
                lines.remove(at.index(n));
            }
            LineEdit::Duplicate(at) => {
                let line = lines[at.index(n)].clone();
                lines.insert(at.index(n), line);
            }
            LineEdit::Swap(a, b) => lines.swap(a.index(n), b.index(n)),
            LineEdit::Indent(at, deeper) => {
                let line = &mut lines[at.index(n)];
                if *deeper {
                    line.insert_str(0, "  ");
                } else {
                    *line = line.strip_prefix("  ").unwrap_or(line).to_owned();
                }
            }
            LineEdit::Value(at, token) => {
                let line = &mut lines[at.index(n)];
                *line = match line.split_once(": ") {
                    Some((name, _)) => format!("{name}: {token}"),
                    None => (*token).to_owned(),
                };
            }
            LineEdit::Insert(at, pos, token) => {
                let line = &mut lines[at.index(n)];
                let chars = line.chars().count();
                let byte = line
                    .char_indices()
                    .nth(pos.index(chars + 1))
                    .map_or(line.len(), |(i, _)| i);
                line.insert_str(byte, token);
            }
            LineEdit::Cut(at) => lines.truncate(at.index(n)),
        }
    }
    lines.join("\n")
}

/// Pieces that concatenate into YAML-like text.
const YAML_SOUP: &[&str] = &[
    "routes:",
    "settings:",
    "\n",
    "  ",
    "- ",
    "name: r",
    "target:",
    "targets:",
    "airflow:",
    "webhook:",
    "workflows:",
    "alteryx:",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "base_url: http://af",
    "dag_id: d",
    "url: http://h",
    "match:",
    "glob: ",
    "'**'",
    "max_attempts: ",
    "0",
    "&a ",
    "*a",
    "'{{ key }}'",
    "\"",
    "'",
    "#",
    "---",
    "...",
    "? ",
    "!!str ",
    "|",
    ">",
];

/// `valid`, or (unless `valid_only`) now and then `invalid`: most generated configurations are
/// wrong in at most a field or two, so each check of the loader is reached.
fn pick<T: std::fmt::Debug + 'static>(
    valid_only: bool,
    valid: impl Strategy<Value = T> + 'static,
    invalid: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    if valid_only {
        valid.boxed()
    } else {
        prop_oneof![12 => valid, 1 => invalid].boxed()
    }
}

fn one_of(items: &'static [&'static str]) -> BoxedStrategy<String> {
    select(items).prop_map(str::to_owned).boxed()
}

/// Template text: pieces that render for every event shape, or (invalid) a soup of template
/// syntax, undefined names and unknown filters.
fn template(valid_only: bool) -> BoxedStrategy<String> {
    const SAFE: &[&str] = &[
        "s3://",
        "/",
        "-",
        "run",
        "é",
        "{{ bucket }}",
        "{{ key }}",
        "{{ key | slug }}",
        "{{ key | basename }}",
        "{{ key | dirname }}",
        "{{ key | stem }}",
        "{{ key | extension }}",
        "{{ key | sha256 }}",
        "{{ size }}",
        "{{ etag }}",
        "{{ event_name }}",
        "{{ event_time }}",
        "{{ route }}",
        "{{ version_id }}",
        "{{ sequencer }}",
        "{{ source }}",
        "{{ region }}",
        "{{ record_id }}",
        "{{ key | urlencode }}",
        "{{ event.bucket | lower }}",
        "{% if version_id %}v={{ version_id }}{% endif %}",
        "{{ version_id or 'none' }}",
    ];
    const SOUP: &[&str] = &[
        "{{ ",
        " }}",
        "{%",
        "%}",
        "{#",
        "#}",
        "key",
        "bucket",
        "size",
        "version_id",
        "event.key",
        "nope",
        " | ",
        "slug",
        "basename",
        "sha256",
        "lower",
        "tojson",
        "default('x')",
        "(",
        ")",
        "'",
        "\"",
        "x",
        "/",
        ".",
        "..",
        " if key ",
        " else ",
        " + ",
        "1",
        "[0]",
        "[1:]",
        "é",
    ];
    pick(
        valid_only,
        vec(select(SAFE), 0..4).prop_map(|parts| parts.concat()),
        prop_oneof![
            3 => vec(select(SOUP), 1..8).prop_map(|parts| parts.concat()),
            1 => re("\\PC{0,16}"),
        ],
    )
}

/// A template that renders to one path segment for every event: a name, or the bucket.
fn segment(valid_only: bool) -> BoxedStrategy<String> {
    pick(
        valid_only,
        prop_oneof![4 => re("[a-z][a-z0-9_-]{0,10}"), 1 => Just("{{ bucket }}".to_owned())],
        prop_oneof![
            one_of(&[
                "",
                " ",
                ".",
                "..",
                "{{ key | dirname }}",
                "a/b",
                "{{ nope }}"
            ]),
            template(false),
        ],
    )
}

/// JSON whose strings are templates (conf, body, argument).
fn template_tree(valid_only: bool) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        4 => template(valid_only).prop_map(Value::String),
        1 => Just(Value::Null),
        1 => any::<i32>().prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::Bool),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec((re("[a-z_]{1,6}"), inner), 0..4)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
    .boxed()
}

fn url(valid_only: bool) -> BoxedStrategy<String> {
    pick(
        valid_only,
        one_of(&[
            "http://localhost:8080",
            "https://airflow.example.com/prefix/",
            "http://127.0.0.1:8080",
            "https://例え.jp/",
        ]),
        prop_oneof![
            one_of(&[
                "ftp://x",
                "http://[::1",
                "http://",
                "",
                "not a url",
                "http://ex ample.com",
                "file:///etc/passwd",
                "https://user:pw@host/",
                "http://h/?q=1",
                "http://h/#frag",
                "https://h/{{ key }}",
                // Plain HTTP beyond this machine, without `allow_http`.
                "http://af",
            ]),
            template(false),
        ],
    )
}

/// A secret id or field name.
fn word(valid_only: bool) -> BoxedStrategy<String> {
    pick(
        valid_only,
        re("[a-z][a-z_/-]{0,10}"),
        prop_oneof![Just(String::new()), re("\\PC{0,8}")],
    )
}

fn base_url(valid_only: bool) -> BoxedStrategy<Value> {
    pick(
        valid_only,
        prop_oneof![
            2 => url(true).prop_map(Value::from),
            1 => (word(true), word(true))
                .prop_map(|(secret, field)| json!({"secret": secret, "field": field})),
        ],
        prop_oneof![
            url(false).prop_map(Value::from),
            (word(false), word(false))
                .prop_map(|(secret, field)| json!({"secret": secret, "field": field})),
            select(vec![
                json!([1]),
                Value::Null,
                json!({"secret": "s"}),
                json!(7)
            ]),
        ],
    )
}

/// The auth schemes, by name.
const AUTHS: &[&str] = &[
    "none",
    "basic",
    "bearer",
    "airflow_token",
    "oauth1",
    "oauth2",
    "google_access_token",
    "google_id_token",
];

/// `auth:` of scheme `kind`; `valid_only` keeps its settings valid.
fn auth(kind: &'static str, valid_only: bool) -> BoxedStrategy<Value> {
    let secret = word(valid_only);
    match kind {
        "none" => Just(json!("none")).boxed(),
        "basic" | "airflow_token" => secret
            .prop_map(move |s| json!({kind: {"secret": s, "username_field": "u"}}))
            .boxed(),
        "bearer" => (secret, option::of(word(valid_only)))
            .prop_map(|(s, f)| json!({"bearer": {"secret": s, "field": f}}))
            .boxed(),
        "oauth1" => (
            secret,
            pick(
                valid_only,
                one_of(&["query", "header"]),
                one_of(&["body", ""]),
            ),
        )
            .prop_map(|(s, p)| json!({"oauth1": {"secret": s, "placement": p}}))
            .boxed(),
        "oauth2" => (
            secret,
            url(valid_only),
            pick(valid_only, one_of(&["form", "basic"]), one_of(&["jwt"])),
        )
            .prop_map(
                |(s, u, c)| json!({"oauth2": {"secret": s, "token_url": u, "client_auth": c}}),
            )
            .boxed(),
        "google_access_token" => (secret, vec(word(valid_only), 0..3))
            .prop_map(|(s, scopes)| json!({"google_access_token": {"secret": s, "scopes": scopes}}))
            .boxed(),
        _ => (secret, re("[a-z0-9.-]{1,20}"))
            .prop_map(|(s, a)| json!({"google_id_token": {"secret": s, "audience": a}}))
            .boxed(),
    }
}

/// An `auth:` among the schemes `accepted` (any scheme, now and then, unless `valid_only`).
fn auth_among(accepted: &'static [&'static str], valid_only: bool) -> BoxedStrategy<Value> {
    let scheme = pick(
        valid_only,
        select(accepted),
        prop_oneof![select(AUTHS), Just("kerberos")],
    );
    scheme
        .prop_flat_map(move |kind| match kind {
            "kerberos" => Just(json!({"kerberos": {}})).boxed(),
            kind => auth(kind, valid_only),
        })
        .boxed()
}

/// An object of the named fields whose `keep` flag is set (missing flags keep).
fn fields(pairs: Vec<(&str, Value)>, keep: &[bool]) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep.get(*i).copied().unwrap_or(true))
            .map(|(_, (name, value))| (name.to_owned(), value))
            .collect(),
    )
}

/// Which fields to write: all, or (unless `valid_only`) now and then one left out, required or
/// not. Optional fields come as `Option`s and are left out when `None` anyway.
fn keep(valid_only: bool) -> BoxedStrategy<Vec<bool>> {
    pick(
        valid_only,
        Just(vec![true; 10]),
        vec(prop::bool::weighted(0.8), 10),
    )
}

fn method(valid_only: bool) -> BoxedStrategy<String> {
    pick(
        valid_only,
        one_of(&["POST", "PUT", "patch", "GET"]),
        one_of(&["", "PO ST", "BRÜH", "\n"]),
    )
}

fn airflow(valid_only: bool) -> BoxedStrategy<Value> {
    (
        base_url(valid_only),
        pick(
            valid_only,
            one_of(&["v1", "v2", "experimental"]),
            one_of(&["v9", "V2", ""]),
        ),
        segment(valid_only),
        option::of(template(valid_only)),
        option::of(template_tree(valid_only)),
        option::of(pick(
            valid_only,
            Just("{{ event_time }}".to_owned()),
            template(false),
        )),
        option::of(template(valid_only)),
        auth_among(AUTHS, valid_only),
        keep(valid_only),
    )
        .prop_map(
            |(base_url, api, dag_id, run_id, conf, logical_date, note, auth, keep)| {
                json!({"airflow": fields(vec![
                ("base_url", base_url), ("api", api.into()), ("dag_id", dag_id.into()),
                ("run_id", run_id.into()), ("conf", conf.into()),
                ("logical_date", logical_date.into()), ("note", note.into()), ("auth", auth),
            ], &keep)})
            },
        )
        .boxed()
}

fn header_name(valid_only: bool) -> BoxedStrategy<String> {
    pick(
        valid_only,
        re("[Xx]-[A-Za-z0-9-]{1,10}"),
        one_of(&["X Bad", "", "é", "Authorization", ":path", "X-\n"]),
    )
}

fn webhook(valid_only: bool) -> BoxedStrategy<Value> {
    (
        url(valid_only),
        method(valid_only),
        vec((header_name(valid_only), template(valid_only)), 0..3),
        option::of(template_tree(valid_only)),
        option::of(pick(
            valid_only,
            vec(200u16..300, 1..3),
            prop_oneof![Just(vec![]), Just(vec![0u16]), Just(vec![999u16])],
        )),
        auth_among(&["none", "basic", "bearer", "oauth2"], valid_only),
        keep(valid_only),
    )
        .prop_map(|(url, method, headers, body, success, auth, keep)| {
            let headers: Map<String, Value> =
                headers.into_iter().map(|(k, v)| (k, v.into())).collect();
            json!({"webhook": fields(vec![
                ("url", url.into()), ("method", method.into()), ("headers", headers.into()),
                ("body", body.into()), ("success_status", success.into()), ("auth", auth),
            ], &keep)})
        })
        .boxed()
}

fn workflows(valid_only: bool) -> BoxedStrategy<Value> {
    let google = &["google_access_token", "bearer"];
    let execution = (
        segment(valid_only),
        segment(valid_only),
        segment(valid_only),
        option::of(template_tree(valid_only)),
        option::of(url(valid_only)),
        auth_among(google, valid_only),
        keep(valid_only),
    )
        .prop_map(
            |(project, location, workflow, argument, endpoint, auth, keep)| {
                json!({"workflows": fields(vec![
                ("project", project.into()), ("location", location.into()),
                ("workflow", workflow.into()), ("argument", argument.into()),
                ("endpoint", endpoint.into()), ("auth", auth),
            ], &keep)})
            },
        );
    let callback = (
        base_url(valid_only),
        method(valid_only),
        option::of(template_tree(valid_only)),
        auth_among(google, valid_only),
        keep(valid_only),
    )
        .prop_map(|(url, method, body, auth, keep)| {
            json!({"workflows_callback": fields(vec![
                ("url", url), ("method", method.into()), ("body", body.into()), ("auth", auth),
            ], &keep)})
        });
    prop_oneof![execution, callback].boxed()
}

fn alteryx(valid_only: bool) -> BoxedStrategy<Value> {
    // v1 takes OAuth 1.0a, OAuth 2 or a bearer token; v3 OAuth 2 or a bearer token, and alone
    // has worker_tag and credential_id.
    let api = pick(valid_only, one_of(&["v1", "v3"]), one_of(&["v2", ""]));
    api.prop_flat_map(move |api| {
        let v3 = api == "v3";
        let accepted: &'static [&'static str] = if v3 {
            &["oauth2", "bearer"]
        } else {
            &["oauth1", "oauth2", "bearer"]
        };
        let v3_only = move || {
            if v3 {
                option::of(template(valid_only)).boxed()
            } else {
                pick(valid_only, Just(None), option::of(template(false)))
            }
        };
        (
            base_url(valid_only),
            segment(valid_only),
            vec((template(valid_only), template(valid_only)), 0..3),
            option::of(pick(
                valid_only,
                one_of(&["Default", "Low", "High"]),
                template(false),
            )),
            (v3_only(), v3_only(), any::<bool>()),
            auth_among(accepted, valid_only),
            keep(valid_only),
        )
            .prop_map(
                move |(
                    base_url,
                    workflow_id,
                    questions,
                    priority,
                    (tag, credential, retry),
                    auth,
                    keep,
                )| {
                    let questions: Vec<Value> = questions
                        .into_iter()
                        .map(|(name, value)| json!({"name": name, "value": value}))
                        .collect();
                    json!({"alteryx": fields(vec![
                        ("api", api.clone().into()), ("base_url", base_url),
                        ("workflow_id", workflow_id.into()), ("questions", questions.into()),
                        ("priority", priority.into()), ("worker_tag", tag.into()),
                        ("credential_id", credential.into()), ("retry_on_timeout", retry.into()),
                        ("auth", auth),
                    ], &keep)})
                },
            )
    })
    .boxed()
}

fn target(valid_only: bool) -> BoxedStrategy<Value> {
    pick(
        valid_only,
        prop_oneof![
            3 => airflow(valid_only),
            2 => webhook(valid_only),
            2 => workflows(valid_only),
            2 => alteryx(valid_only),
        ],
        Just(json!({"kafka": {}})),
    )
}

fn glob_pattern(valid_only: bool) -> BoxedStrategy<String> {
    const PARTS: &[&str] = &[
        "*", "**", "?", "[", "]", "[!", "^", "{", "}", ",", "\\", "/", "a", ".csv", "-", "z", "é",
    ];
    pick(
        valid_only,
        one_of(&[
            "*.csv",
            "incoming/**/*.csv",
            "**",
            "a?b/*",
            "[a-c]*",
            "[!x]*.json",
            "**.csv",
            "raw/**",
            "lit\\*",
        ]),
        prop_oneof![
            3 => vec(select(PARTS), 0..8).prop_map(|parts| parts.concat()),
            1 => re("\\PC{0,8}"),
        ],
    )
}

fn one_or_many(item: BoxedStrategy<String>) -> BoxedStrategy<Value> {
    prop_oneof![
        item.clone().prop_map(Value::from),
        vec(item, 0..3).prop_map(Value::from),
    ]
    .boxed()
}

fn matcher(valid_only: bool) -> BoxedStrategy<Value> {
    let event = pick(
        valid_only,
        prop_oneof![
            select(S3_EVENT_NAMES).prop_map(str::to_owned),
            one_of(&[
                "*",
                "ObjectCreated:*",
                "s3:ObjectCreated:*",
                "s3:ObjectRemoved:*"
            ]),
        ],
        prop_oneof![
            one_of(&["ObjectCreate:*", "s3:*", "", "Put"]),
            re("\\PC{0,12}")
        ],
    );
    (
        option::of(one_or_many(bucket())),
        option::of(re("[a-z/]{0,6}")),
        option::of(one_of(&[".csv", "", ".json", "é"])),
        option::of(glob_pattern(valid_only)),
        option::of(one_or_many(event)),
    )
        .prop_map(|(bucket, prefix, suffix, glob, event)| {
            let mut map = Map::new();
            for (name, value) in [
                ("bucket", bucket),
                ("prefix", prefix.map(Value::from)),
                ("suffix", suffix.map(Value::from)),
                ("glob", glob.map(Value::from)),
                ("event", event),
            ] {
                if let Some(value) = value {
                    map.insert(name.to_owned(), value);
                }
            }
            Value::Object(map)
        })
        .boxed()
}

/// A route: its name is `r{index}` unless (not `valid_only`) the name strategy says otherwise.
fn route(valid_only: bool) -> BoxedStrategy<(Option<String>, Value)> {
    let name = pick(
        valid_only,
        Just(None),
        option::of(prop_oneof![
            one_of(&["", " ", "r0", "r1"]),
            re("\\PC{0,10}")
        ]),
    );
    // One target or a list, or (invalid) both or neither.
    let targets = pick(
        valid_only,
        prop_oneof![
            target(valid_only).prop_map(|t| (Some(t), vec![])),
            vec(target(valid_only), 1..3).prop_map(|ts| (None, ts)),
        ],
        prop_oneof![
            Just((None, vec![])),
            (target(false), vec(target(false), 1..2)).prop_map(|(t, ts)| (Some(t), ts)),
        ],
    );
    (name, option::of(matcher(valid_only)), targets)
        .prop_map(|(name, matcher, (target, targets))| {
            let mut route = Map::new();
            if let Some(matcher) = matcher {
                route.insert("match".into(), matcher);
            }
            if let Some(target) = target {
                route.insert("target".into(), target);
            }
            if !targets.is_empty() {
                route.insert("targets".into(), targets.into());
            }
            (name, Value::Object(route))
        })
        .boxed()
}

fn settings(valid_only: bool) -> BoxedStrategy<Value> {
    const NAMES: &[&str] = &[
        "secrets_ttl_seconds",
        "max_concurrency",
        "request_timeout_ms",
        "connect_timeout_ms",
        "max_attempts",
        "backoff_base_ms",
        "backoff_max_ms",
        "deadline_margin_ms",
    ];
    let value = pick(
        valid_only,
        prop_oneof![1u64..=900_000, Just(1u64), Just(900_000u64)].prop_map(Value::from),
        select(vec![
            json!(0),
            json!(900_001),
            json!(u64::MAX),
            json!(-1),
            json!(1.5),
            json!("x"),
            Value::Null,
        ]),
    );
    let tls = pick(
        valid_only,
        one_of(&["system", "bundled"]),
        one_of(&["none", ""]),
    );
    let unknown = pick(valid_only, Just(false), any::<bool>());
    (vec((select(NAMES), value), 0..4), option::of(tls), unknown)
        .prop_map(|(pairs, tls, unknown)| {
            let mut map: Map<String, Value> = pairs
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect();
            if let Some(tls) = tls {
                map.insert("tls_roots".into(), tls.into());
            }
            if unknown {
                map.insert("bogus".into(), json!(1));
            }
            Value::Object(map)
        })
        .boxed()
}

/// A configuration built from the loader's own vocabulary: valid throughout when
/// `valid_only`, else with a wrong value, a missing field or an unknown one here and there.
fn generated_config(valid_only: bool) -> BoxedStrategy<Value> {
    let routes = pick(
        valid_only,
        vec(route(valid_only), 1..4),
        vec(route(valid_only), 0..2),
    );
    let unknown = pick(valid_only, Just(false), any::<bool>());
    (option::of(settings(valid_only)), routes, unknown)
        .prop_map(|(settings, routes, unknown)| {
            let routes: Vec<Value> = routes
                .into_iter()
                .enumerate()
                .map(|(i, (name, mut route))| {
                    route["name"] = Value::from(name.unwrap_or_else(|| format!("r{i}")));
                    route
                })
                .collect();
            let mut config = json!({"routes": routes});
            let map = config.as_object_mut().expect("an object");
            if let Some(settings) = settings {
                map.insert("settings".into(), settings);
            }
            if unknown {
                map.insert("route".into(), json!([]));
            }
            config
        })
        .boxed()
}

/// What holds of every target of a config that loaded, for `event`: each request it builds
/// has header names and a method HTTP can carry. (Event data may still fail a build, e.g. a
/// bucket named `..` in a path segment; `all_build` says it must not.)
fn check_requests(
    config: &Config,
    event: &ObjectEvent,
    all_build: bool,
) -> Result<(), TestCaseError> {
    for route in &config.routes {
        let render = RenderContext::new(&config.templates, event, &route.name);
        for endpoint in &route.targets {
            match endpoint.check(&render) {
                Ok(built) => {
                    for (name, _) in &built.request.headers {
                        prop_assert!(
                            HeaderName::from_bytes(name.as_bytes()).is_ok(),
                            "{} builds a request with header name {:?}",
                            endpoint.description,
                            name
                        );
                    }
                }
                Err(error) => prop_assert!(
                    !all_build,
                    "{} failed on {:?}: {}",
                    endpoint.description,
                    event,
                    error
                ),
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(256))]

    /// Any text, and YAML-like soup: no panic; an error says where and what.
    #[test]
    fn any_config_text_loads_or_says_why(
        text in prop_oneof![
            any::<String>(),
            vec(select(YAML_SOUP), 0..30).prop_map(|parts| parts.concat()),
        ],
    ) {
        check_config(&Config::parse(&text, "fuzz.yaml"), "fuzz.yaml")?;
    }

    /// The shipped examples with lines deleted, duplicated, swapped, re-indented, cut, or
    /// values replaced by tokens the loader treats specially: no panic; errors name something.
    #[test]
    fn edited_examples_load_or_say_why(
        example in select(example_configs()),
        edits in vec(line_edit(), 1..4),
    ) {
        let text = edit_lines(&example, &edits);
        check_config(&Config::parse(&text, "example.yaml"), "example.yaml")?;
    }

}

proptest! {
    // Each case loads a config (templates rendered against six event shapes): fewer cases.
    #![proptest_config(cases(128))]

    /// Configurations from the loader's vocabulary, each wrong in a field or two: no panic; a
    /// config that loads keeps its routes in order, matches any event, and builds requests
    /// with sendable header names; one that does not names its field.
    #[test]
    fn generated_configs_load_or_name_the_field(config in generated_config(false), obj in obj()) {
        let loaded = Config::parse(&config.to_string(), "generated.json");
        check_config(&loaded, "generated.json")?;
        if let Ok(loaded) = loaded {
            check_loaded(&loaded, &config, &obj, false)?;
        }
    }

    /// Configurations from the valid vocabulary only load, and every target builds its request
    /// for any event in a bucket S3 allows: nothing knowable at load is left to fail per event.
    #[test]
    fn valid_configs_load_and_build_for_any_event(
        config in generated_config(true),
        obj in obj(),
        bucket in real_bucket(),
    ) {
        let loaded = Config::parse(&config.to_string(), "valid.json");
        prop_assert!(loaded.is_ok(), "{}", loaded.err().map(|e| e.to_string()).unwrap_or_default());
        check_loaded(&loaded.expect("checked"), &config, &obj.in_real_bucket(bucket), true)?;
    }
}

/// What holds of a config that loaded from `given`: its routes in order, matching any event,
/// and [`check_requests`] for `obj` in two shapes.
fn check_loaded(
    loaded: &Config,
    given: &Value,
    obj: &Obj,
    all_build: bool,
) -> Result<(), TestCaseError> {
    let names: Vec<&str> = given["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .map(|route| route["name"].as_str().expect("a name"))
        .collect();
    let loaded_names: Vec<&str> = loaded
        .routes
        .iter()
        .map(|route| route.name.as_str())
        .collect();
    prop_assert_eq!(loaded_names, names);
    for source in [Source::S3, Source::SqsEventBridge] {
        let event = obj.expected(source, Some("m"));
        let _ = loaded.matching(&event).count();
        check_requests(loaded, &event, all_build)?;
    }
    Ok(())
}

/// Found by `generated_configs_load_or_name_the_field`: a webhook header name HTTP cannot carry
/// loaded, then failed every event at send ("invalid HTTP header name; not retried: the request
/// may have arrived", though nothing was sent). Now the load fails, naming the header.
#[test]
fn a_header_name_http_cannot_carry_fails_the_load() {
    for name in ["X Bad", "", "é", ":path"] {
        let yaml = format!(
            "routes:\n  - name: r\n    target: {{ webhook: {{ url: 'http://h/', headers: {{ '{name}': v }} }} }}\n"
        );
        let error = Config::parse(&yaml, "t.yaml").unwrap_err().to_string();
        let want = format!("routes[0] (r).target.headers.{name}: is not a valid HTTP header name");
        assert!(error.contains(&want), "want {want:?} in: {error}");
    }
}
