//! Targets: Apache Airflow DAG runs, through the stable REST API v1 (Airflow 2), the REST API
//! v2 (Airflow 3), or the legacy experimental API (Airflow 1.10 and early 2.x).

use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    BaseUrlConfig, Built, Target, TargetError, optional_template, path_segment, problem, run_id,
};
use crate::auth::AuthConfig;
use crate::http::{Answer, Body, Request, Verdict, join};
use crate::template::{RenderContext, StringTemplate, Templates, ValueTemplate};

/// Which Airflow API to call.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AirflowApi {
    /// Airflow 2 stable REST API: `POST /api/v1/dags/{dag_id}/dagRuns`.
    V1,
    /// Airflow 3 REST API: `POST /api/v2/dags/{dag_id}/dagRuns` (`logical_date` required).
    #[default]
    V2,
    /// Legacy experimental API: `POST /api/experimental/dags/{dag_id}/dag_runs`.
    Experimental,
}

/// `target: { airflow: {...} }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AirflowConfig {
    /// Airflow's base URL, e.g. `https://airflow.example.com` (any path prefix is kept), or
    /// `{ secret, field }` to read it from a secret.
    pub base_url: BaseUrlConfig,
    /// API flavour; default `v2` (Airflow 3).
    #[serde(default)]
    pub api: AirflowApi,
    /// DAG id (a template; percent-encoded into the path).
    pub dag_id: String,
    /// `dag_run_id` template; default: route, bucket, key and write sequencer. Always sanitized
    /// to Airflow's run id alphabet and 250 characters.
    pub run_id: Option<String>,
    /// `conf` template tree; default: the normalized event.
    pub conf: Option<Value>,
    /// `logical_date` template (RFC 3339); default null (v2) or omitted (v1).
    pub logical_date: Option<String>,
    /// `note` template.
    pub note: Option<String>,
    /// How to authenticate; default none.
    #[serde(default = "no_auth")]
    pub auth: AuthConfig,
    /// Requests per second and in flight to it, per warm container; default unlimited.
    pub rate_limit: Option<super::RateLimitConfig>,
}

pub(super) fn no_auth() -> AuthConfig {
    AuthConfig::None
}

/// A configured Airflow target.
#[derive(Debug)]
pub(super) struct Airflow {
    api: AirflowApi,
    dag_id: StringTemplate,
    dag_id_source: String,
    run_id: Option<StringTemplate>,
    conf: Option<ValueTemplate>,
    logical_date: Option<StringTemplate>,
    note: Option<StringTemplate>,
    /// Whose credentials a refusal is about: `the credentials in secret "prod/airflow"`.
    credentials: String,
}

impl Airflow {
    /// Compiles the configuration; `name` prefixes template names in errors.
    pub(super) fn new(
        config: &AirflowConfig,
        name: &str,
        templates: &mut Templates,
    ) -> Result<Self, TargetError> {
        if let AuthConfig::GoogleIdToken(_) = config.auth {
            tracing::warn!(
                target = name,
                "google_id_token (Identity-Aware Proxy) is the Cloud Composer 1 way in; Composer 1 reached end of \
                 life in September 2026. Composer 2/3 take google_access_token"
            );
        }
        if config.dag_id.trim().is_empty() {
            return Err(TargetError::Invalid {
                field: format!("{name}.dag_id"),
                reason: "must not be empty".to_owned(),
            });
        }
        let run_id = optional_template(templates, name, "run_id", config.run_id.as_deref())?;
        let logical_date = optional_template(
            templates,
            name,
            "logical_date",
            config.logical_date.as_deref(),
        )?;
        let note = optional_template(templates, name, "note", config.note.as_deref())?;
        let dag_id = templates.add_string(&format!("{name}.dag_id"), &config.dag_id)?;
        let conf = config
            .conf
            .as_ref()
            .map(|conf| templates.add_value(&format!("{name}.conf"), conf))
            .transpose()?;
        Ok(Airflow {
            api: config.api,
            dag_id,
            dag_id_source: config.dag_id.clone(),
            run_id,
            conf,
            logical_date,
            note,
            credentials: credentials(&config.auth),
        })
    }
}

impl Airflow {
    /// The same target, naming `credentials` when a refusal is about them (MWAA: the role).
    pub(super) fn with_credentials(mut self, credentials: String) -> Self {
        self.credentials = credentials;
        self
    }
}

impl Target for Airflow {
    fn describe(&self) -> String {
        let api = match self.api {
            AirflowApi::V1 => "v1",
            AirflowApi::V2 => "v2",
            AirflowApi::Experimental => "experimental",
        };
        format!("airflow {api} dag {}", self.dag_id_source)
    }

    fn build(&self, render: &RenderContext<'_>, base: &Url) -> Result<Built, TargetError> {
        let dag_id = render.string(&self.dag_id)?;
        let dag_id = path_segment("dag_id", &dag_id)?;
        let run_id = match &self.run_id {
            Some(t) => run_id::sanitize(&render.string(t)?),
            None => run_id::default_for(render.route(), render.event()),
        };
        let conf = render.value_or_event(self.conf.as_ref())?;
        let render = |t: &Option<StringTemplate>| t.as_ref().map(|t| render.string(t)).transpose();
        let logical_date = render(&self.logical_date)?.filter(|date| !date.is_empty());
        let note = render(&self.note)?;

        let (url, body) = match self.api {
            AirflowApi::V1 | AirflowApi::V2 => {
                let version = if self.api == AirflowApi::V1 {
                    "v1"
                } else {
                    "v2"
                };
                let url = join(base, &["api", version, "dags", dag_id, "dagRuns"]);
                let mut body = json!({ "dag_run_id": run_id, "conf": conf });
                if let Some(date) = logical_date {
                    body["logical_date"] = Value::String(date);
                } else if self.api == AirflowApi::V2 {
                    // Airflow 3 requires the field; null means "now, without a data interval".
                    body["logical_date"] = Value::Null;
                }
                if let Some(note) = note {
                    body["note"] = Value::String(note);
                }
                (url, body)
            }
            AirflowApi::Experimental => {
                let url = join(base, &["api", "experimental", "dags", dag_id, "dag_runs"]);
                let mut body = json!({ "run_id": run_id, "conf": conf.to_string() });
                if let Some(date) = logical_date {
                    body["execution_date"] = Value::String(date);
                }
                (url, body)
            }
        };
        Ok(Built {
            request: Request::post(url, Body::Json(body)),
            run_id: Some(run_id),
            unresolved: None,
            marker: None,
        })
    }

    fn follow_up(&self, sent: &Built) -> Option<Request> {
        // `.../dags/{dag_id}/dagRuns` → `.../dags/{dag_id}`; the experimental API has no
        // such read.
        if self.api == AirflowApi::Experimental {
            return None;
        }
        let mut url = sent.request.url.clone();
        url.path_segments_mut().ok()?.pop();
        Some(Request::new(reqwest::Method::GET, url))
    }

    fn warning(&self, answer: &Answer) -> Option<String> {
        let dag: Value = serde_json::from_str(&answer.body).ok()?;
        if !answer.status.is_success() || dag.get("is_paused") != Some(&Value::Bool(true)) {
            return None;
        }
        let dag_id = dag
            .get("dag_id")
            .and_then(Value::as_str)
            .map_or_else(|| "the DAG".to_owned(), |id| format!("DAG {id}"));
        Some(format!(
            "{dag_id} is paused: the run is queued and will not start until the DAG is unpaused"
        ))
    }

    fn check(&self, sent: &Built) -> Option<Request> {
        let run_id = sent.run_id.as_deref()?;
        let url = join(&sent.request.url, &[run_id]);
        Some(Request::new(Method::GET, url))
    }

    fn interpret_check(&self, sent: &Built, conflict: &str, answer: &Answer) -> Verdict {
        let run_id = sent.run_id.as_deref().unwrap_or_default();
        match answer.status.as_u16() {
            200 => Verdict::AlreadyDelivered,
            404 => Verdict::Permanent {
                reason: format!(
                    "{conflict}, but there is no run {run_id}: another run holds what this one \
                     needs, most likely the same logical_date (objects written in the same second \
                     share '{{{{ event_time }}}}'; leave logical_date out, or make it unique per \
                     object)"
                ),
            },
            _ => Verdict::from_answer(answer),
        }
    }

    fn interpret(&self, answer: &Answer) -> Verdict {
        let body = answer.body.as_str();
        match answer.status.as_u16() {
            200..=299 => Verdict::Delivered {
                detail: "dag run created".to_owned(),
                remote_id: None,
            },
            // Airflow answers 409 both when our run id exists (a redelivery) and when another run
            // holds the same logical date (apache/airflow#28486); 3.3 says only "Unique
            // constraint violation". The check (a GET of our run id) tells them apart; the
            // experimental API has no such GET.
            409 if self.api == AirflowApi::Experimental => Verdict::AlreadyDelivered,
            409 => Verdict::Check {
                reason: format!("Airflow answered 409: {}", problem(body)),
            },
            400 => Verdict::Permanent {
                reason: format!("Airflow rejected the dag run (400): {}", problem(body)),
            },
            401 | 403 => refusal(
                &self.credentials,
                answer,
                "trigger runs of this DAG (it needs a role that can create DAG runs on it)",
            ),
            404 => Verdict::Permanent {
                reason: format!(
                    "Airflow answered 404: {}. Check dag_id, base_url, and api (v1 is Airflow 2, \
                     v2 is Airflow 3)",
                    problem(body)
                ),
            },
            _ => Verdict::from_answer(answer),
        }
    }
}

/// Whose credentials a refusal is about: `the credentials in secret "prod/airflow"`.
pub(super) fn credentials(auth: &AuthConfig) -> String {
    match auth.secret_ids().first() {
        Some(secret) => format!("the credentials in secret {secret:?}"),
        None => "the request (no credentials configured)".to_owned(),
    }
}

/// How Airflow refuses a request (a 401 or 403 `answer`), for every Airflow target: `may_not`
/// says what a user without permission cannot do, e.g. `create asset events (...)`.
pub(super) fn refusal(credentials: &str, answer: &Answer, may_not: &str) -> Verdict {
    let body = answer.body.as_str();
    match answer.status.as_u16() {
        // Airflow 3 answers 403 "Invalid JWT token" when its signing key changed (e.g. an
        // API server restart): a token scheme should get a new token once.
        403 if body.contains("Invalid JWT") => Verdict::Unauthorized {
            reason: format!("Airflow refused the token (403): {}", problem(body)),
        },
        // A wrong password is a 401 on Airflow 2.10 and 3, but a 403 on 2.11; a 403 is also
        // a user without permission. Both name the secret, so that an operator knows where to
        // look, and both are remembered for the invocation (no lockout).
        401 => Verdict::Unauthorized {
            reason: format!(
                "Airflow refused {credentials} (401): wrong username or password, or an API that \
                 does not accept this scheme (Airflow 2: [api] auth_backends must include \
                 airflow.api.auth.backend.basic_auth){}",
                said(body)
            ),
        },
        403 => Verdict::Unauthorized {
            reason: format!(
                "Airflow refused {credentials} (403): wrong username or password (Airflow 2.11 \
                 answers a wrong password with 403), or the user may not {may_not}{}",
                said(body)
            ),
        },
        _ => Verdict::from_answer(answer),
    }
}

/// `: <what the body says>`, or nothing for an empty body.
fn said(body: &str) -> String {
    match problem(body) {
        text if text.is_empty() => String::new(),
        text => format!(": {text}"),
    }
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
            etag: Some("e".into()),
            sequencer: Some("0055".into()),
            event_time: Some("2026-11-25T08:00:00.000Z".into()),
            ..ObjectEvent::put("acme", "in/a b.csv")
        }
    }

    fn airflow(yaml: &str) -> (Endpoint, Templates) {
        let config: AirflowConfig = serde_saphyr::from_str(yaml).unwrap();
        let mut templates = Templates::new();
        let endpoint = TargetConfig::Airflow(config)
            .build("routes[0]", &mut templates)
            .unwrap();
        (endpoint, templates)
    }

    fn build(target: &Endpoint, templates: &Templates) -> Built {
        let event = event();
        target
            .check(&RenderContext::new(templates, &event, "r"))
            .unwrap()
    }

    #[test]
    fn v2_body_has_null_logical_date_and_the_event_as_conf() {
        let (target, templates) = airflow("base_url: http://af:8080/\ndag_id: load sales\n");
        let built = build(&target, &templates);
        assert_eq!(
            built.request.url.as_str(),
            "http://af:8080/api/v2/dags/load%20sales/dagRuns"
        );
        let Body::Json(body) = &built.request.body else {
            panic!("json body")
        };
        assert_eq!(body["logical_date"], Value::Null);
        assert_eq!(body["conf"]["key"], "in/a b.csv");
        assert_eq!(body["conf"]["size"], 3);
        assert_eq!(body["dag_run_id"], built.run_id.clone().unwrap());
        assert_eq!(
            body.as_object().unwrap().len(),
            3,
            "no unknown fields for Airflow 3: {body}"
        );
    }

    #[test]
    fn v1_and_experimental_shapes() {
        let (target, templates) = airflow(
            "base_url: http://af\napi: v1\ndag_id: d\nrun_id: 'x-{{ key | slug }}'\nnote: '{{ key }}'\nconf: { k: '{{ key }}' }\n",
        );
        let built = build(&target, &templates);
        assert_eq!(built.request.url.path(), "/api/v1/dags/d/dagRuns");
        let Body::Json(body) = &built.request.body else {
            panic!("json body")
        };
        assert_eq!(
            body,
            &json!({"dag_run_id": "x-in-a-b.csv", "conf": {"k": "in/a b.csv"}, "note": "in/a b.csv"})
        );

        let (target, templates) =
            airflow("base_url: http://af\napi: experimental\ndag_id: d\nconf: { k: 1 }\n");
        let built = build(&target, &templates);
        assert_eq!(
            built.request.url.path(),
            "/api/experimental/dags/d/dag_runs"
        );
        let Body::Json(body) = &built.request.body else {
            panic!("json body")
        };
        assert_eq!(body["conf"], "{\"k\":1}");
    }

    /// A 409 is checked with a GET of our run id: there, it is a redelivery; absent, another
    /// run holds what ours needs (the same logical date) and the object did not run.
    #[test]
    fn a_409_is_checked_by_run_id() {
        let (target, templates) =
            airflow("base_url: http://af/x\ndag_id: d\nrun_id: 'r-{{ sequencer }}'\n");
        let built = build(&target, &templates);
        let check = target.target.check(&built).unwrap();
        assert_eq!(check.method, Method::GET);
        assert_eq!(
            check.url.as_str(),
            "http://af/x/api/v2/dags/d/dagRuns/r-0055"
        );
        let ok = |code| StatusCode::from_u16(code).unwrap();
        let conflict = "Airflow answered 409: Unique constraint violation";
        let interpret = |code| {
            target
                .target
                .interpret_check(&built, conflict, &Answer::new(ok(code), "{}"))
        };
        assert_eq!(interpret(200), Verdict::AlreadyDelivered);
        let Verdict::Permanent { reason } = interpret(404) else {
            panic!("no such run: permanent")
        };
        assert!(
            reason.starts_with(conflict)
                && reason.contains("no run r-0055")
                && reason.contains("logical_date"),
            "{reason}"
        );
        assert!(matches!(interpret(503), Verdict::Retry { .. }));
        let (experimental, templates) =
            airflow("base_url: http://af\napi: experimental\ndag_id: d\n");
        assert_eq!(
            experimental.target.interpret(&Answer::new(ok(409), "")),
            Verdict::AlreadyDelivered,
            "the experimental API cannot look a run up by id"
        );
        let _ = templates;
    }

    #[test]
    fn answers() {
        let (target, _) =
            airflow("base_url: http://af\ndag_id: d\nauth: { basic: { secret: s } }\n");
        let ok = |code| StatusCode::from_u16(code).unwrap();
        assert!(matches!(
            target.target.interpret(&Answer::new(ok(200), "{}")),
            Verdict::Delivered { .. }
        ));
        assert!(matches!(
            target.target.interpret(&Answer::new(ok(409), r#"{"detail": "Unique constraint violation"}"#)),
            Verdict::Check { reason } if reason == "Airflow answered 409: Unique constraint violation"
        ));
        assert!(matches!(
            target.target.interpret(&Answer::new(ok(503), "")),
            Verdict::Retry { .. }
        ));
        for status in [401, 403] {
            let Verdict::Unauthorized { reason } = target
                .target
                .interpret(&Answer::new(ok(status), r#"{"title": "Unauthorized"}"#))
            else {
                panic!("{status} is a refusal of the credentials")
            };
            assert!(
                reason.starts_with(&format!(
                    "Airflow refused the credentials in secret \"s\" ({status}): wrong username or password"
                )),
                "{reason}"
            );
            assert!(reason.ends_with(": Unauthorized"), "{reason}");
        }
        let Verdict::Unauthorized { reason } =
            target.target.interpret(&Answer::new(ok(403), "Forbidden"))
        else {
            panic!("403")
        };
        assert!(
            reason.contains("may not trigger runs of this DAG"),
            "{reason}"
        );
        let Verdict::Permanent { reason } = target.target.interpret(&Answer::new(
            ok(404),
            r#"{"detail": "DAG with dag_id: 'd' not found", "status": 404}"#,
        )) else {
            panic!("404 is permanent")
        };
        assert!(
            reason.contains("DAG with dag_id: 'd' not found") && reason.contains("api (v1"),
            "{reason}"
        );
    }
}
