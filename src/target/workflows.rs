//! Targets: Google Workflows. New executions (`POST .../workflows/{w}/executions` with the
//! argument as a JSON string, at most 32 KiB) and callbacks (a templated request to a callback
//! URL that a running execution waits on).

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;

use super::{BaseUrl, BaseUrlConfig, Built, Target, TargetError, join, parse_base_url, problem};
use crate::auth::{Auth, AuthConfig};
use crate::delivery::Verdict;
use crate::event::ObjectEvent;
use crate::request::{Body, Request};
use crate::template::{self, Templates, ValueTemplate};

/// The Workflows Executions API.
pub const EXECUTIONS_ENDPOINT: &str = "https://workflowexecutions.googleapis.com";
/// Largest execution argument Workflows accepts, in bytes.
pub const MAX_ARGUMENT_BYTES: usize = 32 * 1024;

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
}

fn default_method() -> String {
    "POST".to_owned()
}

fn check_auth(name: &str, auth: &AuthConfig) -> Result<(), TargetError> {
    match auth {
        AuthConfig::GoogleAccessToken(_) | AuthConfig::Bearer(_) => Ok(()),
        other => Err(TargetError::Invalid {
            field: format!("{name}.auth"),
            reason: format!(
                "Workflows takes a Google access token (google_access_token) or bearer, not {}",
                other.name()
            ),
        }),
    }
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
pub struct Workflows {
    base: BaseUrl,
    project: String,
    location: String,
    workflow: String,
    argument: Option<ValueTemplate>,
    auth: Auth,
}

impl Workflows {
    /// Compiles the configuration.
    pub fn new(
        config: &WorkflowsConfig,
        name: &str,
        templates: &mut Templates,
    ) -> Result<Self, TargetError> {
        check_auth(name, &config.auth)?;
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
        let endpoint = config.endpoint.as_deref().unwrap_or(EXECUTIONS_ENDPOINT);
        Ok(Workflows {
            base: BaseUrl::Fixed(parse_base_url(&format!("{name}.endpoint"), endpoint)?),
            project: config.project.clone(),
            location: config.location.clone(),
            workflow: config.workflow.clone(),
            argument: config
                .argument
                .as_ref()
                .map(|argument| templates.add_value(&format!("{name}.argument"), argument))
                .transpose()?,
            auth: Auth::new(&config.auth),
        })
    }
}

impl Target for Workflows {
    fn describe(&self) -> String {
        format!(
            "workflows {}/{}/{}",
            self.project, self.location, self.workflow
        )
    }

    fn auth(&self) -> &Auth {
        &self.auth
    }

    fn base_url(&self) -> &BaseUrl {
        &self.base
    }

    fn idempotent(&self) -> bool {
        false
    }

    fn build(
        &self,
        event: &ObjectEvent,
        route: &str,
        templates: &Templates,
        base: &Url,
    ) -> Result<Built, TargetError> {
        let context = template::context_value(&template::Context::new(event, route));
        let argument = templates.render_or_event(self.argument.as_ref(), &context, event)?;
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
        let url = join(
            base,
            &[
                "v1",
                "projects",
                &self.project,
                "locations",
                &self.location,
                "workflows",
                &self.workflow,
                "executions",
            ],
        );
        let mut request = Request::new(Method::POST, url);
        request.body = Body::Json(serde_json::json!({ "argument": argument }));
        Ok(Built {
            request,
            run_id: None,
            base_url: base.clone(),
        })
    }

    fn interpret(&self, status: StatusCode, _headers: &HeaderMap, body: &str) -> Verdict {
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
            _ => Verdict::from_status(status, body),
        }
    }
}

/// A configured Workflows callback target.
#[derive(Debug)]
pub struct WorkflowsCallback {
    url: BaseUrl,
    method: Method,
    body: Option<ValueTemplate>,
    auth: Auth,
}

impl WorkflowsCallback {
    /// Compiles the configuration.
    pub fn new(
        config: &WorkflowsCallbackConfig,
        name: &str,
        templates: &mut Templates,
    ) -> Result<Self, TargetError> {
        check_auth(name, &config.auth)?;
        let method =
            Method::from_bytes(config.method.to_ascii_uppercase().as_bytes()).map_err(|_| {
                TargetError::Invalid {
                    field: format!("{name}.method"),
                    reason: format!("{:?} is not an HTTP method", config.method),
                }
            })?;
        Ok(WorkflowsCallback {
            url: BaseUrl::new(&format!("{name}.url"), &config.url)?,
            method,
            body: config
                .body
                .as_ref()
                .map(|body| templates.add_value(&format!("{name}.body"), body))
                .transpose()?,
            auth: Auth::new(&config.auth),
        })
    }
}

impl Target for WorkflowsCallback {
    fn describe(&self) -> String {
        match &self.url {
            BaseUrl::Fixed(url) => format!("workflows callback {}", url.path()),
            BaseUrl::Secret { secret, .. } => {
                format!("workflows callback (URL in secret {secret:?})")
            }
        }
    }

    fn auth(&self) -> &Auth {
        &self.auth
    }

    fn base_url(&self) -> &BaseUrl {
        &self.url
    }

    fn idempotent(&self) -> bool {
        false
    }

    fn build(
        &self,
        event: &ObjectEvent,
        route: &str,
        templates: &Templates,
        base: &Url,
    ) -> Result<Built, TargetError> {
        let context = template::context_value(&template::Context::new(event, route));
        let body = templates.render_or_event(self.body.as_ref(), &context, event)?;
        let mut request = Request::new(self.method.clone(), base.clone());
        request.body = Body::Json(body);
        Ok(Built {
            request,
            run_id: None,
            base_url: base.clone(),
        })
    }

    fn interpret(&self, status: StatusCode, _headers: &HeaderMap, body: &str) -> Verdict {
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
            _ => Verdict::from_status(status, body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Source;

    fn event(key: &str) -> ObjectEvent {
        ObjectEvent {
            source: Source::S3,
            bucket: "acme".into(),
            key: key.into(),
            size: Some(1),
            etag: None,
            version_id: None,
            sequencer: None,
            event_name: "ObjectCreated:Put".into(),
            event_time: None,
            region: None,
            record_id: None,
        }
    }

    fn workflows(yaml: &str) -> (Workflows, Templates) {
        let config: WorkflowsConfig = serde_saphyr::from_str(yaml).unwrap();
        let mut templates = Templates::new();
        (
            Workflows::new(&config, "t", &mut templates).unwrap(),
            templates,
        )
    }

    const CONFIG: &str = "project: my-proj\nlocation: europe-west1\nworkflow: ingest\nargument: { uri: 's3://{{ bucket }}/{{ key }}' }\nauth: { google_access_token: { secret: sa } }\n";

    #[test]
    fn execution_request_carries_the_argument_as_a_json_string() {
        let (target, templates) = workflows(CONFIG);
        let base = target.base_url().for_validation();
        let built = target
            .build(&event("a b.csv"), "r", &templates, &base)
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

    #[test]
    fn arguments_over_32_kib_are_refused_before_sending() {
        let (target, templates) =
            workflows(&CONFIG.replace("argument: { uri: 's3://{{ bucket }}/{{ key }}' }\n", ""));
        let base = target.base_url().for_validation();
        let err = target
            .build(&event(&"k".repeat(40_000)), "r", &templates, &base)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("at most 32768") && err.contains("bytes as JSON"),
            "{err}"
        );
    }

    #[test]
    fn callback_answers() {
        let config: WorkflowsCallbackConfig = serde_saphyr::from_str(
            "url: https://workflowexecutions.googleapis.com/v1/projects/p/locations/l/workflows/w/executions/e/callbacks/c\nauth: { google_access_token: { secret: sa } }\n",
        )
        .unwrap();
        let target = WorkflowsCallback::new(&config, "t", &mut Templates::new()).unwrap();
        let none = HeaderMap::new();
        assert!(matches!(
            target.interpret(StatusCode::OK, &none, "{}"),
            Verdict::Delivered { .. }
        ));
        let Verdict::Permanent { reason } = target.interpret(
            StatusCode::NOT_FOUND,
            &none,
            r#"{"error": {"code": 404, "message": "callback not found", "status": "NOT_FOUND"}}"#,
        ) else {
            panic!("404 is permanent")
        };
        assert!(
            reason.contains("no longer exists") && reason.contains("callback not found"),
            "{reason}"
        );
        assert!(matches!(
            target.interpret(StatusCode::TOO_MANY_REQUESTS, &none, ""),
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
        let err = Workflows::new(&config, "t", &mut Templates::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("google_access_token"), "{err}");
    }
}
