//! Targets: Google Workflows. New executions (`POST .../workflows/{w}/executions` with the
//! argument as a JSON string, at most 32 KiB) and callbacks (a templated request to a callback
//! URL that a running execution waits on).
//!
//! Every execution we start carries the label `bucket_trigger` = the first 40 hex digits of its
//! idempotency identity (route, target, object version: what the store keys its record by).
//! Labels take lowercase letters, digits, `_` and `-`, at most 63 characters (`Execution.labels`
//! in google/cloud/workflows/executions/v1/executions.proto). So Workflows can answer "did it
//! run?" for a request that got no answer: `GET .../executions?filter=labels.bucket_trigger="…"`
//! (`ListExecutionsRequest.filter` supports `label`, in AIP-160 syntax), `view=FULL` so that
//! the answer shows the labels we then check, `pageSize=1`.

use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::Value;

use super::{BaseUrlConfig, Built, Ran, Target, TargetError, path_segment, problem};
use crate::auth::AuthConfig;
use crate::http::{Answer, Body, Request, Verdict, join};
use crate::template::{RenderContext, StringTemplate, Templates, ValueTemplate};

/// The Workflows Executions API.
pub const EXECUTIONS_ENDPOINT: &str = "https://workflowexecutions.googleapis.com";
/// Largest execution argument Workflows accepts, in bytes.
pub const MAX_ARGUMENT_BYTES: usize = 32 * 1024;
/// The label key our executions carry; its value is [`label_value`] of the identity.
pub const LABEL_KEY: &str = "bucket_trigger";

/// The label value for an idempotency identity (64 hex digits): its first 40 (160 bits), within
/// the 63 characters a label value may have.
fn label_value(identity: &str) -> String {
    identity.chars().take(40).collect()
}

/// `target: { workflows: {...} }`: start a new execution.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowsConfig {
    /// Google Cloud project id.
    pub project: String,
    /// Region of the workflow, e.g. `europe-west1`.
    pub location: String,
    /// Workflow name.
    pub workflow: String,
    /// The argument, a template tree; default: the normalized event.
    pub argument: Option<Value>,
    /// API endpoint; default `https://workflowexecutions.googleapis.com`.
    pub endpoint: Option<String>,
    /// `google_access_token` (or `bearer`).
    pub auth: AuthConfig,
    /// Requests per second and in flight to it, per warm container; default unlimited.
    pub rate_limit: Option<super::RateLimitConfig>,
}

/// `target: { workflows_callback: {...} }`: deliver to a waiting execution's callback.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowsCallbackConfig {
    /// The callback URL (from `events.create_callback_endpoint`), or `{ secret, field }`.
    pub url: BaseUrlConfig,
    /// HTTP method the callback was created for; default `POST`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Body template tree; default: the normalized event.
    pub body: Option<Value>,
    /// `google_access_token` (or `bearer`).
    pub auth: AuthConfig,
    /// Requests per second and in flight to it, per warm container; default unlimited.
    pub rate_limit: Option<super::RateLimitConfig>,
}

fn default_method() -> String {
    "POST".to_owned()
}

/// Google's error answers nest the message: `{"error": {"message": ..., "status": ...}}`.
fn google_problem(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| problem(body))
}

/// A configured Workflows executions target.
#[derive(Debug)]
pub(super) struct Workflows {
    /// `project/location/workflow` as written, for descriptions.
    path: String,
    /// Project, location and workflow: templates, each one path segment.
    segments: [StringTemplate; 3],
    argument: Option<ValueTemplate>,
}

impl Workflows {
    /// Compiles the configuration.
    pub(super) fn new(
        config: &WorkflowsConfig,
        name: &str,
        templates: &mut Templates,
    ) -> Result<Self, TargetError> {
        for (field, value) in [
            ("project", &config.project),
            ("location", &config.location),
            ("workflow", &config.workflow),
        ] {
            if value.trim().is_empty() {
                return Err(TargetError::Invalid {
                    field: format!("{name}.{field}"),
                    reason: "must not be empty".to_owned(),
                });
            }
        }
        let mut segment =
            |field: &str, source: &str| templates.add_string(&format!("{name}.{field}"), source);
        Ok(Workflows {
            path: format!("{}/{}/{}", config.project, config.location, config.workflow),
            segments: [
                segment("project", &config.project)?,
                segment("location", &config.location)?,
                segment("workflow", &config.workflow)?,
            ],
            argument: config
                .argument
                .as_ref()
                .map(|argument| templates.add_value(&format!("{name}.argument"), argument))
                .transpose()?,
        })
    }
}

impl Target for Workflows {
    fn describe(&self) -> String {
        format!("workflows {}", self.path)
    }

    fn build(&self, render: &RenderContext<'_>, base: &Url) -> Result<Built, TargetError> {
        let argument = render.value_or_event(self.argument.as_ref())?;
        let argument = argument.to_string();
        if argument.len() > MAX_ARGUMENT_BYTES {
            return Err(TargetError::Invalid {
                field: "argument".to_owned(),
                reason: format!(
                    "is {} bytes as JSON; Workflows accepts at most {MAX_ARGUMENT_BYTES} (pass a reference such as the \
                     object's URI instead of its contents)",
                    argument.len()
                ),
            });
        }
        let [project, location, workflow] = &self.segments;
        let (project, location, workflow) = (
            render.string(project)?,
            render.string(location)?,
            render.string(workflow)?,
        );
        let url = join(
            base,
            &[
                "v1",
                "projects",
                path_segment("project", &project)?,
                "locations",
                path_segment("location", &location)?,
                "workflows",
                path_segment("workflow", &workflow)?,
                "executions",
            ],
        );
        let marker = super::identity(render, &self.describe()).map(|id| label_value(&id));
        let mut body = serde_json::json!({ "argument": argument });
        if let Some(marker) = &marker {
            body["labels"] = serde_json::json!({ LABEL_KEY: marker });
        }
        let mut built = Built::plain(Request::post(url, Body::Json(body)));
        built.marker = marker;
        Ok(built)
    }

    fn can_tell(&self) -> bool {
        true
    }

    /// Lists the workflow's executions carrying our label: one page of one, in the FULL view
    /// (the BASIC view leaves labels out, and we check the label ourselves: a list that
    /// ignored the filter must not pass for "it ran").
    fn did_it_run(&self, sent: &Built) -> Option<Request> {
        let marker = sent.marker.as_deref()?;
        let mut url = sent.request.url.clone();
        url.query_pairs_mut()
            .append_pair("filter", &format!("labels.{LABEL_KEY}=\"{marker}\""))
            .append_pair("view", "FULL")
            .append_pair("pageSize", "1");
        Some(Request::new(Method::GET, url))
    }

    fn interpret_did_it_run(&self, sent: &Built, answer: &Answer) -> Ran {
        let status = answer.status.as_u16();
        if !answer.status.is_success() {
            return Ran::Unknown(format!(
                "listing the executions answered {status}: {}",
                google_problem(&answer.body)
            ));
        }
        let Ok(list) = serde_json::from_str::<Value>(&answer.body) else {
            return Ran::Unknown(format!(
                "listing the executions answered {status} with no readable list: {}",
                problem(&answer.body)
            ));
        };
        let executions = match list.get("executions") {
            None | Some(Value::Null) => return Ran::No,
            Some(Value::Array(executions)) => executions,
            Some(_) => {
                return Ran::Unknown("listing the executions: `executions` is not a list".into());
            }
        };
        let Some(first) = executions.first() else {
            return Ran::No;
        };
        let marker = sent.marker.as_deref().unwrap_or_default();
        let labelled = first
            .pointer(&format!("/labels/{LABEL_KEY}"))
            .and_then(Value::as_str);
        if labelled != Some(marker) {
            return Ran::Unknown(format!(
                "listing the executions filtered by label {LABEL_KEY}={marker} returned one \
                 without it (label {labelled:?}): the filter was not applied"
            ));
        }
        Ran::Yes {
            remote_id: first.get("name").and_then(Value::as_str).map(str::to_owned),
        }
    }

    fn interpret(&self, answer: &Answer) -> Verdict {
        let (status, body) = (answer.status, answer.body.as_str());
        match status.as_u16() {
            200..=299 => {
                let name = serde_json::from_str::<Value>(body)
                    .ok()
                    .and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_owned));
                Verdict::Delivered {
                    detail: "execution started".to_owned(),
                    remote_id: name,
                }
            }
            403 => Verdict::Permanent {
                reason: format!(
                    "Workflows refused (403): {}. The service account needs roles/workflows.invoker",
                    google_problem(body)
                ),
            },
            400 | 404 => Verdict::Permanent {
                reason: format!(
                    "Workflows answered {}: {}",
                    status.as_u16(),
                    google_problem(body)
                ),
            },
            _ => Verdict::from_answer(answer),
        }
    }
}

/// A configured Workflows callback target.
#[derive(Debug)]
pub(super) struct WorkflowsCallback {
    description: String,
    method: Method,
    body: Option<ValueTemplate>,
}

impl WorkflowsCallback {
    /// Compiles the configuration (the URL was checked with the shared facts).
    pub(super) fn new(
        config: &WorkflowsCallbackConfig,
        name: &str,
        templates: &mut Templates,
    ) -> Result<Self, TargetError> {
        let description = match &config.url {
            BaseUrlConfig::Url(url) => {
                let path = Url::parse(url)
                    .map(|url| url.path().to_owned())
                    .unwrap_or_default();
                format!("workflows callback {path}")
            }
            BaseUrlConfig::Secret { secret, .. } => {
                format!("workflows callback (URL in secret {secret:?})")
            }
        };
        Ok(WorkflowsCallback {
            description,
            method: super::method(name, &config.method)?,
            body: config
                .body
                .as_ref()
                .map(|body| templates.add_value(&format!("{name}.body"), body))
                .transpose()?,
        })
    }
}

impl Target for WorkflowsCallback {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn build(&self, render: &RenderContext<'_>, url: &Url) -> Result<Built, TargetError> {
        let mut request = Request::new(self.method.clone(), url.clone());
        request.body = Body::Json(render.value_or_event(self.body.as_ref())?);
        Ok(Built::plain(request))
    }

    fn interpret(&self, answer: &Answer) -> Verdict {
        let (status, body) = (answer.status, answer.body.as_str());
        match status.as_u16() {
            200..=299 => Verdict::Delivered {
                detail: "callback delivered".to_owned(),
                remote_id: None,
            },
            404 => Verdict::Permanent {
                reason: format!(
                    "the execution or its callback no longer exists (finished, cancelled, or the callback was \
                     already used): {}",
                    google_problem(body)
                ),
            },
            429 => Verdict::Retry {
                reason: format!(
                    "a callback to this execution is already waiting to be processed (429): {}",
                    google_problem(body)
                ),
                after: None,
            },
            _ => Verdict::from_answer(answer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ObjectEvent;
    use crate::targets::{Endpoint, TargetConfig};
    use reqwest::StatusCode;

    fn event(key: &str) -> ObjectEvent {
        ObjectEvent {
            size: Some(1),
            ..ObjectEvent::put("acme", key)
        }
    }

    fn workflows(yaml: &str) -> (Endpoint, Templates) {
        let config: WorkflowsConfig = serde_saphyr::from_str(yaml).unwrap();
        let mut templates = Templates::new();
        let endpoint = TargetConfig::Workflows(config)
            .build("t", &mut templates)
            .unwrap();
        (endpoint, templates)
    }

    const CONFIG: &str = "project: my-proj\nlocation: europe-west1\nworkflow: ingest\nargument: { uri: 's3://{{ bucket }}/{{ key }}' }\nauth: { google_access_token: { secret: sa } }\n";

    #[test]
    fn execution_request_carries_the_argument_as_a_json_string() {
        let (target, templates) = workflows(CONFIG);
        let event = event("a b.csv");
        let built = target
            .check(&RenderContext::new(&templates, &event, "r"))
            .unwrap();
        assert_eq!(
            built.request.url.as_str(),
            "https://workflowexecutions.googleapis.com/v1/projects/my-proj/locations/europe-west1/workflows/ingest/executions"
        );
        let Body::Json(body) = built.request.body else {
            panic!("json")
        };
        assert_eq!(
            body,
            serde_json::json!({"argument": "{\"uri\":\"s3://acme/a b.csv\"}"})
        );
    }

    /// Every target string is a template, the workflow's path included.
    #[test]
    fn project_location_and_workflow_are_templates() {
        let (target, templates) = workflows(&CONFIG.replace(
            "workflow: ingest",
            "workflow: \"ingest-{{ key | dirname | slug }}\"",
        ));
        let event = event("sales/q4.csv");
        let built = target
            .check(&RenderContext::new(&templates, &event, "r"))
            .unwrap();
        assert!(
            built
                .request
                .url
                .as_str()
                .ends_with("/workflows/ingest-sales/executions"),
            "{}",
            built.request.url
        );
    }

    #[test]
    fn arguments_over_32_kib_are_refused_before_sending() {
        let (target, templates) =
            workflows(&CONFIG.replace("argument: { uri: 's3://{{ bucket }}/{{ key }}' }\n", ""));
        let event = event(&"k".repeat(40_000));
        let err = target
            .check(&RenderContext::new(&templates, &event, "r"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("at most 32768") && err.contains("bytes as JSON"),
            "{err}"
        );
    }

    /// The label is the identity the store keys its record by (first 40 hex digits), and the
    /// lookup asks for exactly the executions carrying it.
    #[test]
    fn executions_carry_the_identity_label_and_the_lookup_filters_on_it() {
        let (target, templates) = workflows(CONFIG);
        let mut object = event("in/a.csv");
        object.etag = Some("e1".into());
        let render = RenderContext::new(&templates, &object, "r");
        let built = target.check(&render).unwrap();
        let id = crate::store::Key::new("t", "r", "workflows my-proj/europe-west1/ingest", &object)
            .unwrap()
            .id;
        let label = &id[..40];
        assert_eq!(built.marker.as_deref(), Some(label));
        let Body::Json(body) = &built.request.body else {
            panic!("json")
        };
        assert_eq!(
            body["labels"],
            serde_json::json!({ "bucket_trigger": label })
        );
        assert!(
            label
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()),
            "a valid label value: {label}"
        );
        let lookup = target.target.did_it_run(&built).unwrap();
        assert_eq!(lookup.method, Method::GET);
        assert_eq!(
            lookup.url.as_str(),
            format!(
                "https://workflowexecutions.googleapis.com/v1/projects/my-proj/locations/europe-west1/workflows/ingest/executions\
                 ?filter=labels.bucket_trigger%3D%22{label}%22&view=FULL&pageSize=1"
            )
        );
        assert!(target.target.can_tell());

        // Another version of the object: another label.
        object.etag = Some("e2".into());
        let other = target
            .check(&RenderContext::new(&templates, &object, "r"))
            .unwrap();
        assert_ne!(other.marker, built.marker);

        // No version at all (no identity): no label, and nothing to look up.
        let bare = event("in/a.csv");
        let built = target
            .check(&RenderContext::new(&templates, &bare, "r"))
            .unwrap();
        let Body::Json(body) = &built.request.body else {
            panic!("json")
        };
        assert!(body.get("labels").is_none(), "{body}");
        assert!(target.target.did_it_run(&built).is_none());
    }

    #[test]
    fn the_lookup_answer_says_yes_only_with_our_label() {
        let (target, templates) = workflows(CONFIG);
        let mut object = event("in/a.csv");
        object.sequencer = Some("0A".into());
        let built = target
            .check(&RenderContext::new(&templates, &object, "r"))
            .unwrap();
        let label = built.marker.clone().unwrap();
        let name = "projects/my-proj/locations/europe-west1/workflows/ingest/executions/e-1";
        let ours = serde_json::json!({ "executions": [
            { "name": name, "state": "SUCCEEDED", "labels": { "bucket_trigger": label } }
        ] })
        .to_string();
        let theirs = serde_json::json!({ "executions": [
            { "name": name, "labels": { "bucket_trigger": "0".repeat(40) } }
        ], "nextPageToken": "t" })
        .to_string();
        let ran = |status: u16, body: &str| {
            target.target.interpret_did_it_run(
                &built,
                &Answer::new(StatusCode::from_u16(status).unwrap(), body),
            )
        };
        assert_eq!(
            ran(200, &ours),
            Ran::Yes {
                remote_id: Some(name.to_owned())
            }
        );
        assert_eq!(ran(200, "{}"), Ran::No);
        assert_eq!(ran(200, r#"{"executions": []}"#), Ran::No);
        let Ran::Unknown(why) = ran(200, &theirs) else {
            panic!("an execution without our label proves nothing")
        };
        assert!(why.contains("the filter was not applied"), "{why}");
        let Ran::Unknown(why) = ran(
            400,
            r#"{"error": {"code": 400, "message": "invalid filter", "status": "INVALID_ARGUMENT"}}"#,
        ) else {
            panic!("an error answer cannot tell")
        };
        assert_eq!(why, "listing the executions answered 400: invalid filter");
        assert!(matches!(ran(503, ""), Ran::Unknown(_)));
        assert!(matches!(ran(200, "<html>"), Ran::Unknown(_)));
    }

    #[test]
    fn callback_answers() {
        let config: WorkflowsCallbackConfig = serde_saphyr::from_str(
            "url: https://workflowexecutions.googleapis.com/v1/projects/p/locations/l/workflows/w/executions/e/callbacks/c\nauth: { google_access_token: { secret: sa } }\n",
        )
        .unwrap();
        let target = TargetConfig::WorkflowsCallback(config)
            .build("t", &mut Templates::new())
            .unwrap()
            .target;
        assert!(matches!(
            target.interpret(&Answer::new(StatusCode::OK, "{}")),
            Verdict::Delivered { .. }
        ));
        let Verdict::Permanent { reason } = target.interpret(&Answer::new(
            StatusCode::NOT_FOUND,
            r#"{"error": {"code": 404, "message": "callback not found", "status": "NOT_FOUND"}}"#,
        )) else {
            panic!("404 is permanent")
        };
        assert!(
            reason.contains("no longer exists") && reason.contains("callback not found"),
            "{reason}"
        );
        assert!(matches!(
            target.interpret(&Answer::new(StatusCode::TOO_MANY_REQUESTS, "")),
            Verdict::Retry { .. }
        ));
    }

    #[test]
    fn workflows_need_a_google_token() {
        let config: WorkflowsConfig = serde_saphyr::from_str(&CONFIG.replace(
            "google_access_token: { secret: sa }",
            "basic: { secret: sa }",
        ))
        .unwrap();
        let err = TargetConfig::Workflows(config)
            .build("t", &mut Templates::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("google_access_token"), "{err}");
    }
}
