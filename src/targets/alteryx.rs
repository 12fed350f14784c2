//! Targets: Alteryx Server jobs. Gallery API v1 (`POST .../api/v1/workflows/{appId}/jobs/`,
//! OAuth 1.0a, Server up to 2021.4; also under `/webapi/` with OAuth 2 on 2021.4+) and API v3
//! (`POST {server}/webapi/v3/workflows/{workflowId}/jobs`, OAuth 2, Server 2022.1+).
//!
//! Alteryx has no idempotency key: a job is queued per accepted request. So a timeout after the
//! request was sent is not retried unless `retry_on_timeout: true`; failures that prove no job
//! was created (connection refused, 408/429/5xx answers) are.
//!
//! Nor can Alteryx answer "did it run?" for a request that got no answer, so such a request
//! stays "may have run" (no [`Target::did_it_run`]): no documented endpoint returns, per job,
//! anything we set. API v3 `GET /v3/jobs/{jobId}` returns `id`, `appId`, `createDateTime`,
//! `status`, `disposition`, `outputs`, `messages`, `priority`, `workerTag`, `runWithE2`;
//! `GET /v3/workflows/{workflowId}/jobs` takes `sortField`, `direction`, `offset`, `limit`,
//! `status`, `resultCode` and lists jobs by id, not by the questions' answers; `GET /v3/jobs`
//! is for Curators only and lists `jobId`, `status`, the workflow's name. The Gallery API v1
//! (`GET /api/v1/workflows/{appId}/jobs/`, `GET /api/v1/jobs/{id}/`) returns job ids, dates,
//! status and disposition (and outputs and messages), not the answers either.

use reqwest::Url;
use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{BaseUrlConfig, Built, Target, TargetError, optional_template, path_segment, problem};
use crate::auth::AuthConfig;
use crate::http::{Answer, Body, Request, Verdict, join};
use crate::template::{RenderContext, StringTemplate, Templates};

/// Which Alteryx API to call.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AlteryxApi {
    /// Gallery API v1 (`/api/v1/` with OAuth 1.0a, or `/webapi/v1/` with OAuth 2).
    V1,
    /// API v3 (`/webapi/v3/`, OAuth 2; Server 2022.1+).
    V3,
}

/// One analytic-app question and its answer (a template).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// The question's name, as in the workflow's interface tools.
    pub name: String,
    /// The answer, a template (e.g. `s3://{{ bucket }}/{{ key }}`).
    pub value: String,
}

/// `target: { alteryx: {...} }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlteryxConfig {
    /// `v1` or `v3`.
    pub api: AlteryxApi,
    /// The Gallery URL (`https://host/gallery`, or with `/api/` as in many secrets) for OAuth 1.0a;
    /// the server URL (`https://host`, or `https://host/webapi/`) for OAuth 2. Or
    /// `{ secret, field }`, e.g. `{ secret: alteryx, field: ALTERYX_URL }`.
    pub base_url: BaseUrlConfig,
    /// The workflow (app) id, a template. `app_id` is accepted too.
    #[serde(alias = "app_id")]
    pub workflow_id: String,
    /// Questions to answer; values are templates. May be empty.
    #[serde(default)]
    pub questions: Vec<Question>,
    /// Job priority (`Default`, `Low`, `Medium`, `High`, `Critical`), a template.
    pub priority: Option<String>,
    /// v3: the worker tag to run on.
    pub worker_tag: Option<String>,
    /// v3: the credential id to run as.
    pub credential_id: Option<String>,
    /// Retry after a timeout even though the job may have been queued (a duplicate job is then
    /// possible). Default false.
    #[serde(default)]
    pub retry_on_timeout: bool,
    /// `oauth1` (v1 only), `oauth2`, or `bearer`.
    pub auth: AuthConfig,
    /// Requests per second and in flight to it, per warm container; default unlimited.
    pub rate_limit: Option<super::RateLimitConfig>,
}

/// A configured Alteryx target.
#[derive(Debug)]
pub(super) struct Alteryx {
    api: AlteryxApi,
    oauth1: bool,
    workflow_id: StringTemplate,
    workflow_source: String,
    questions: Vec<(String, StringTemplate)>,
    priority: Option<StringTemplate>,
    worker_tag: Option<StringTemplate>,
    credential_id: Option<StringTemplate>,
}

impl Alteryx {
    /// Compiles the configuration; `name` prefixes fields in errors.
    pub(super) fn new(
        config: &AlteryxConfig,
        name: &str,
        templates: &mut Templates,
    ) -> Result<Self, TargetError> {
        let invalid = |field: &str, reason: &str| TargetError::Invalid {
            field: format!("{name}.{field}"),
            reason: reason.to_owned(),
        };
        let oauth1 = matches!(config.auth, AuthConfig::Oauth1(_));
        if oauth1 && config.api == AlteryxApi::V3 {
            return Err(invalid(
                "auth",
                "API v3 takes OAuth 2 only (Alteryx Server 2022.1 removed OAuth 1.0a): use auth: oauth2",
            ));
        }
        if config.api == AlteryxApi::V1
            && (config.worker_tag.is_some() || config.credential_id.is_some())
        {
            return Err(invalid(
                "worker_tag",
                "worker_tag and credential_id exist in API v3 only",
            ));
        }
        if config.workflow_id.trim().is_empty() {
            return Err(invalid("workflow_id", "must not be empty"));
        }
        let mut optional = |field: &str, source: &Option<String>| {
            optional_template(templates, name, field, source.as_deref())
        };
        let priority = optional("priority", &config.priority)?;
        let worker_tag = optional("worker_tag", &config.worker_tag)?;
        let credential_id = optional("credential_id", &config.credential_id)?;
        let questions = config
            .questions
            .iter()
            .enumerate()
            .map(|(index, question)| {
                let field = format!("{name}.questions[{index}] ({})", question.name);
                Ok((
                    question.name.clone(),
                    templates.add_string(&field, &question.value)?,
                ))
            })
            .collect::<Result<_, TargetError>>()?;
        Ok(Alteryx {
            api: config.api,
            oauth1,
            workflow_id: templates
                .add_string(&format!("{name}.workflow_id"), &config.workflow_id)?,
            workflow_source: config.workflow_id.clone(),
            questions,
            priority,
            worker_tag,
            credential_id,
        })
    }
}

impl Target for Alteryx {
    fn describe(&self) -> String {
        let api = match self.api {
            AlteryxApi::V1 => "v1",
            AlteryxApi::V3 => "v3",
        };
        format!("alteryx {api} workflow {}", self.workflow_source)
    }

    /// The API root the paths hang from: `{gallery}/api/` for OAuth 1.0a, `{server}/webapi/`
    /// otherwise, whether or not the configured URL already ends in `api`/`webapi`.
    fn api_root(&self, base: &Url) -> Url {
        let mut root = base.clone();
        let segments: Vec<String> = base
            .path_segments()
            .map(|s| s.filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        let mut keep = segments.as_slice();
        if let [rest @ .., last] = keep
            && (last == "api" || last == "webapi")
        {
            keep = rest;
        }
        let prefix = if self.oauth1 { "api" } else { "webapi" };
        if !self.oauth1
            && let [rest @ .., last] = keep
            && last == "gallery"
        {
            // The OAuth 2 web API lives at the server root, not under /gallery.
            keep = rest;
        }
        if let Ok(mut path) = root.path_segments_mut() {
            path.clear().extend(keep).push(prefix).push("");
        }
        root
    }

    fn build(&self, render: &RenderContext<'_>, root: &Url) -> Result<Built, TargetError> {
        let render = |t: &StringTemplate| render.string(t);
        let workflow_id = render(&self.workflow_id)?;
        let workflow_id = path_segment("workflow_id", &workflow_id)?;
        let questions: Vec<Value> = self
            .questions
            .iter()
            .map(|(name, value)| Ok(serde_json::json!({ "name": name, "value": render(value)? })))
            .collect::<Result<_, TargetError>>()?;
        let mut body = Map::new();
        body.insert("questions".into(), Value::Array(questions));
        let optional = [
            ("priority", &self.priority),
            ("workerTag", &self.worker_tag),
            ("credentialId", &self.credential_id),
        ];
        for (field, template) in optional {
            if let Some(template) = template {
                body.insert(field.into(), Value::String(render(template)?));
            }
        }
        let url = match self.api {
            // The Gallery API wants the trailing slash.
            AlteryxApi::V1 => join(root, &["v1", "workflows", workflow_id, "jobs", ""]),
            AlteryxApi::V3 => join(root, &["v3", "workflows", workflow_id, "jobs"]),
        };
        Ok(Built::plain(Request::post(
            url,
            Body::Json(Value::Object(body)),
        )))
    }

    fn interpret(&self, answer: &Answer) -> Verdict {
        let (status, body) = (answer.status, answer.body.as_str());
        match status.as_u16() {
            200..=299 => {
                let id = serde_json::from_str::<Value>(body)
                    .ok()
                    .and_then(|job| job.get("id").and_then(Value::as_str).map(str::to_owned));
                Verdict::Delivered {
                    detail: match &id {
                        Some(id) => format!("job {id} queued"),
                        None => "job queued (the answer named no job id)".to_owned(),
                    },
                    remote_id: id,
                }
            }
            401 if self.oauth1 => {
                let mut reason = format!(
                    "Alteryx rejected the OAuth 1.0a signature or consumer key (401: {}). Check the \
                     key and secret fields and the server clock",
                    problem(body)
                );
                if looks_like_oauth2_server(&answer.headers, body) {
                    reason.push_str(
                        ". This server looks like Alteryx Server 2022.1 or later, which removed \
                         OAuth 1.0a: use api: v3 with auth: oauth2 (the API key and secret from \
                         the user's profile)",
                    );
                }
                Verdict::Permanent { reason }
            }
            404 if self.oauth1 => Verdict::Permanent {
                reason: format!(
                    "Alteryx answered 404 ({}): check workflow_id and base_url. Alteryx Server \
                     2022.1 and later no longer serve the OAuth 1.0a Gallery API: use api: v3 with \
                     auth: oauth2",
                    problem(body)
                ),
            },
            400 | 404 => Verdict::Permanent {
                reason: format!(
                    "Alteryx refused the job ({}): {}",
                    status.as_u16(),
                    problem(body)
                ),
            },
            _ => Verdict::from_answer(answer),
        }
    }
}

fn looks_like_oauth2_server(headers: &HeaderMap, body: &str) -> bool {
    let challenge = headers
        .get(WWW_AUTHENTICATE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let body = body.to_ascii_lowercase();
    challenge.contains("bearer") || body.contains("oauth2") || body.contains("bearer")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ObjectEvent;
    use crate::targets::{Endpoint, TargetConfig};
    use reqwest::StatusCode;

    fn event() -> ObjectEvent {
        ObjectEvent {
            size: Some(3),
            sequencer: Some("01".into()),
            ..ObjectEvent::put("acme", "reports/Q4 sales.xlsx")
        }
    }

    fn alteryx(yaml: &str) -> Result<(Endpoint, Templates), TargetError> {
        let config: AlteryxConfig = serde_saphyr::from_str(yaml).unwrap();
        let mut templates = Templates::new();
        TargetConfig::Alteryx(config)
            .build("t", &mut templates)
            .map(|a| (a, templates))
    }

    /// The request and the API root for a base URL.
    fn built(yaml: &str, base: &str) -> (Built, Url) {
        let (endpoint, templates) = alteryx(yaml).unwrap();
        let event = event();
        let root = endpoint.target.api_root(&Url::parse(base).unwrap());
        let built = endpoint
            .target
            .build(&RenderContext::new(&templates, &event, "r"), &root)
            .unwrap();
        (built, root)
    }

    const V1: &str = "api: v1\nbase_url: { secret: a, field: ALTERYX_URL }\nworkflow_id: 5f1c0a\nquestions: [{ name: FilePath, value: 's3://{{ bucket }}/{{ key }}' }]\nauth: { oauth1: { secret: a } }\n";
    const V3: &str = "api: v3\nbase_url: { secret: a, field: ALTERYX_URL }\nworkflow_id: 5f1c0a\npriority: High\nworker_tag: etl\nauth: { oauth2: { secret: a } }\n";

    #[test]
    fn v1_paths_with_or_without_api_in_the_base() {
        for base in [
            "http://host/gallery",
            "http://host/gallery/",
            "http://host/gallery/api/",
            "http://host/gallery/api",
        ] {
            let (built, _) = built(V1, base);
            assert_eq!(
                built.request.url.as_str(),
                "http://host/gallery/api/v1/workflows/5f1c0a/jobs/",
                "{base}"
            );
            let Body::Json(body) = &built.request.body else {
                panic!("json")
            };
            assert_eq!(
                body,
                &serde_json::json!({"questions": [{"name": "FilePath", "value": "s3://acme/reports/Q4 sales.xlsx"}]})
            );
        }
    }

    #[test]
    fn oauth2_paths_are_under_webapi_at_the_server_root() {
        for base in [
            "https://host",
            "https://host/webapi/",
            "https://host/gallery/api/",
        ] {
            let (built, root) = built(V3, base);
            assert_eq!(
                built.request.url.as_str(),
                "https://host/webapi/v3/workflows/5f1c0a/jobs",
                "{base}"
            );
            assert_eq!(root.as_str(), "https://host/webapi/");
            let Body::Json(body) = &built.request.body else {
                panic!("json")
            };
            assert_eq!(
                body,
                &serde_json::json!({"questions": [], "priority": "High", "workerTag": "etl"})
            );
        }
        let v1_oauth2 = V1.replace("oauth1", "oauth2");
        assert_eq!(
            built(&v1_oauth2, "https://host").0.request.url.as_str(),
            "https://host/webapi/v1/workflows/5f1c0a/jobs/"
        );
    }

    #[test]
    fn mismatched_api_and_auth_are_config_errors() {
        let err = alteryx(&V3.replace("oauth2", "oauth1"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("2022.1") && err.contains("oauth2"), "{err}");
        let err = alteryx(&V1.replace(
            "auth: { oauth1: { secret: a } }",
            "worker_tag: x\nauth: { oauth1: { secret: a } }",
        ))
        .unwrap_err();
        assert!(err.to_string().contains("API v3 only"), "{err}");
        let err =
            alteryx(&V1.replace("oauth1: { secret: a }", "basic: { secret: a }")).unwrap_err();
        assert!(err.to_string().contains("not basic"), "{err}");
    }

    fn answer(status: StatusCode, headers: &HeaderMap, body: &str) -> Answer {
        Answer {
            status,
            headers: headers.clone(),
            body: body.to_owned(),
        }
    }

    #[test]
    fn answers() {
        let (v1, _) = alteryx(V1).unwrap();
        let none = HeaderMap::new();
        let job = r#"{"id": "6570a1c2f4a3b2d1e0f9a8b7", "status": "Queued"}"#;
        assert_eq!(
            v1.target.interpret(&answer(StatusCode::OK, &none, job)),
            Verdict::Delivered {
                detail: "job 6570a1c2f4a3b2d1e0f9a8b7 queued".into(),
                remote_id: Some("6570a1c2f4a3b2d1e0f9a8b7".into())
            }
        );
        let Verdict::Permanent { reason } = v1.target.interpret(&answer(
            StatusCode::UNAUTHORIZED,
            &none,
            r#"{"message": "Invalid signature"}"#,
        )) else {
            panic!("401 with OAuth1 is permanent")
        };
        assert!(
            reason.contains("signature or consumer key") && reason.contains("Invalid signature"),
            "{reason}"
        );
        assert!(
            !reason.contains("2022.1"),
            "no hint without a sign of a newer server: {reason}"
        );
        let mut bearer = HeaderMap::new();
        bearer.insert(WWW_AUTHENTICATE, "Bearer".parse().unwrap());
        let Verdict::Permanent { reason } =
            v1.target
                .interpret(&answer(StatusCode::UNAUTHORIZED, &bearer, ""))
        else {
            panic!("401 is permanent")
        };
        assert!(
            reason.contains("2022.1 or later") && reason.contains("api: v3"),
            "{reason}"
        );
        assert!(matches!(
            v1.target
                .interpret(&answer(StatusCode::SERVICE_UNAVAILABLE, &none, "")),
            Verdict::Retry { .. }
        ));
        assert!(
            !v1.idempotent,
            "no idempotency key: timeouts are not retried by default"
        );

        let (v3, _) = alteryx(V3).unwrap();
        assert!(matches!(
            v3.target
                .interpret(&answer(StatusCode::UNAUTHORIZED, &none, "")),
            Verdict::Unauthorized { .. }
        ));
    }
}
