//! Targets: Amazon MWAA by IAM, no passwords. The Airflow request (the same body as the
//! Airflow target's) goes through MWAA's `InvokeRestApi` (`POST /restapi/{Name}` on
//! `env.airflow.{region}.amazonaws.com`, SigV4 with the function's role), and the Airflow
//! status it carries back (`RestApiStatusCode`) is read as the Airflow target reads it: a 409
//! is checked, a paused DAG warned about. See
//! <https://docs.aws.amazon.com/mwaa/latest/API/API_InvokeRestApi.html>.

use reqwest::Url;
use serde::Deserialize;
use serde_json::{Value, json};

use super::airflow::Airflow;
use super::{AirflowApi, AirflowConfig, BaseUrlConfig, Built, Target, TargetError, problem};
use crate::auth::{AuthConfig, Sigv4Config};
use crate::http::{Answer, Body, Request, Verdict, join};
use crate::template::{RenderContext, Templates};

/// `InvokeRestApi` caps `Path` at 64 characters.
pub const MAX_PATH: usize = 64;

/// `target: { mwaa: {...} }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "RawMwaa")]
pub struct MwaaConfig {
    /// The MWAA environment's name.
    pub environment: String,
    /// Its region; default the function's (`AWS_REGION`).
    pub region: Option<String>,
    /// The API of the environment's Airflow: `v1` (Airflow 2, the default) or `v2` (Airflow 3).
    pub api: AirflowApi,
    /// DAG id (a template). `/dags/{dag_id}/dagRuns` must fit MWAA's 64-character `Path`.
    pub dag_id: String,
    /// `dag_run_id` template, as for the Airflow target.
    pub run_id: Option<String>,
    /// `conf` template tree; default: the normalized event.
    pub conf: Option<Value>,
    /// `logical_date` template.
    pub logical_date: Option<String>,
    /// `note` template (Airflow 2.5+).
    pub note: Option<String>,
    /// The MWAA API endpoint; default `https://env.airflow.{region}.amazonaws.com`, or
    /// `AWS_ENDPOINT_URL_MWAA` / `AWS_ENDPOINT_URL` when set (no `env.` prefix is added then).
    pub endpoint: Option<String>,
    /// Derived: SigV4 as the function's role, signing name `airflow`, in `region`.
    pub auth: AuthConfig,
    /// Requests per second and in flight to it, per warm container; default unlimited.
    pub rate_limit: Option<super::RateLimitConfig>,
}

/// `mwaa:` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMwaa {
    environment: String,
    region: Option<String>,
    #[serde(default = "v1")]
    api: AirflowApi,
    dag_id: String,
    run_id: Option<String>,
    conf: Option<Value>,
    logical_date: Option<String>,
    note: Option<String>,
    endpoint: Option<String>,
    rate_limit: Option<super::RateLimitConfig>,
}

fn v1() -> AirflowApi {
    AirflowApi::V1
}

impl From<RawMwaa> for MwaaConfig {
    fn from(raw: RawMwaa) -> Self {
        MwaaConfig {
            auth: AuthConfig::AwsSigv4(Sigv4Config {
                service: "airflow".to_owned(),
                region: raw.region.clone(),
            }),
            environment: raw.environment,
            region: raw.region,
            api: raw.api,
            dag_id: raw.dag_id,
            run_id: raw.run_id,
            conf: raw.conf,
            logical_date: raw.logical_date,
            note: raw.note,
            endpoint: raw.endpoint,
            rate_limit: raw.rate_limit,
        }
    }
}

impl MwaaConfig {
    /// The endpoint requests go to, as configured or derived (`None` without a region).
    pub(super) fn endpoint(&self) -> Option<String> {
        if let Some(endpoint) = &self.endpoint {
            return Some(endpoint.clone());
        }
        for name in ["AWS_ENDPOINT_URL_MWAA", "AWS_ENDPOINT_URL"] {
            if let Ok(url) = std::env::var(name)
                && !url.trim().is_empty()
            {
                return Some(url.trim().to_owned());
            }
        }
        let region = self
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())?;
        Some(format!("https://env.airflow.{region}.amazonaws.com"))
    }
}

/// A configured MWAA target: an Airflow target whose requests travel inside `InvokeRestApi`.
#[derive(Debug)]
pub(super) struct Mwaa {
    airflow: Airflow,
    environment: String,
    api: AirflowApi,
}

impl Mwaa {
    /// Compiles the configuration; `name` prefixes fields in errors.
    pub(super) fn new(
        config: &MwaaConfig,
        name: &str,
        templates: &mut Templates,
    ) -> Result<Self, TargetError> {
        if config.api == AirflowApi::Experimental {
            return Err(TargetError::Invalid {
                field: format!("{name}.api"),
                reason:
                    "MWAA's InvokeRestApi serves the stable API: v1 (Airflow 2) or v2 (Airflow 3)"
                        .to_owned(),
            });
        }
        if config.environment.trim().is_empty() {
            return Err(TargetError::Invalid {
                field: format!("{name}.environment"),
                reason: "must name the MWAA environment".to_owned(),
            });
        }
        if !config.dag_id.contains("{{") {
            let path = format!("/dags/{}/dagRuns", config.dag_id);
            if path.len() > MAX_PATH {
                return Err(path_too_long(&format!("{name}.dag_id"), &path));
            }
        }
        let inner = AirflowConfig {
            base_url: BaseUrlConfig::Url(PLACEHOLDER.to_owned()),
            api: config.api,
            dag_id: config.dag_id.clone(),
            run_id: config.run_id.clone(),
            conf: config.conf.clone(),
            logical_date: config.logical_date.clone(),
            note: config.note.clone(),
            auth: AuthConfig::None,
            // The limit is the MWAA endpoint's, kept by its own `Endpoint`.
            rate_limit: None,
        };
        Ok(Mwaa {
            airflow: Airflow::new(&inner, name, templates)?.with_credentials(format!(
                "the function's role (airflow:InvokeRestApi on environment {})",
                config.environment
            )),
            environment: config.environment.clone(),
            api: config.api,
        })
    }

    /// `InvokeRestApi` carrying `method` `path` (and `body`), on `root`.
    fn invoke(&self, root: &Url, method: &str, path: &str, body: Option<Value>) -> Request {
        let url = join(root, &["restapi", &self.environment]);
        let mut call = json!({ "Path": path, "Method": method });
        if let Some(body) = body {
            call["Body"] = body;
        }
        Request::post(url, Body::Json(call))
    }

    /// Reads an `InvokeRestApi` answer as the Airflow answer it carries, or the MWAA error.
    fn unwrap(&self, answer: &Answer) -> Result<Answer, Verdict> {
        let body: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        let kind = error_type(answer, &body);
        let carried = |body: &Value| {
            let status = body["RestApiStatusCode"].as_u64()?;
            let status = reqwest::StatusCode::from_u16(u16::try_from(status).ok()?).ok()?;
            let inner = match &body["RestApiResponse"] {
                Value::Null => String::new(),
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            Some(Answer::new(status, inner))
        };
        if answer.status.is_success() || kind.as_deref().is_some_and(|k| k.starts_with("RestApi")) {
            return carried(&body).ok_or_else(|| Verdict::Permanent {
                reason: format!(
                    "MWAA answered HTTP {} without an Airflow status: {}",
                    answer.status.as_u16(),
                    problem(&answer.body)
                ),
            });
        }
        let said = body["message"]
            .as_str()
            .or(body["Message"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| problem(&answer.body));
        let kind = kind.unwrap_or_else(|| format!("HTTP {}", answer.status.as_u16()));
        Err(match (answer.status.as_u16(), kind.as_str()) {
            (_, "AccessDeniedException") | (403, _) => Verdict::Unauthorized {
                reason: format!(
                    "MWAA refused the function's role ({kind}): it needs airflow:InvokeRestApi on \
                     arn:aws:airflow:REGION:ACCOUNT:role/{}/ROLE (the template's MwaaEnvironment \
                     and MwaaRole parameters grant it): {said}",
                    self.environment
                ),
            },
            (_, "ResourceNotFoundException") => Verdict::Permanent {
                reason: format!(
                    "MWAA has no environment {:?} in this region ({kind}): {said}",
                    self.environment
                ),
            },
            (_, "ThrottlingException") | (429, _) | (500..=599, _) => Verdict::Retry {
                reason: format!(
                    "MWAA answered HTTP {} ({kind}): {said}",
                    answer.status.as_u16()
                ),
                after: None,
            },
            _ => Verdict::Permanent {
                reason: format!(
                    "MWAA answered HTTP {} ({kind}): {said}",
                    answer.status.as_u16()
                ),
            },
        })
    }

    /// A v1 body (no `logical_date`) sent to an Airflow 3 environment: MWAA forwards it to the
    /// REST API v2, which requires `logical_date` and answers 422 naming it.
    fn sent_v1_to_airflow_3(&self, inner: &Answer) -> bool {
        self.api == AirflowApi::V1
            && inner.status.as_u16() == 422
            && inner.body.contains("logical_date")
    }

    /// The Airflow path inside a built `InvokeRestApi` request.
    fn path_of(sent: &Built) -> Option<String> {
        match &sent.request.body {
            Body::Json(call) => call["Path"].as_str().map(str::to_owned),
            _ => None,
        }
    }
}

/// The root the inner Airflow request is built on, then taken apart.
const PLACEHOLDER: &str = "https://mwaa.invalid/";

fn path_too_long(field: &str, path: &str) -> TargetError {
    TargetError::Invalid {
        field: field.to_owned(),
        reason: format!(
            "MWAA's InvokeRestApi takes a Path of at most {MAX_PATH} characters; {path:?} has {} \
             (shorten the DAG id)",
            path.len()
        ),
    }
}

/// The error type of an AWS REST-JSON answer: `x-amzn-errortype` (up to `:`), else `__type`.
fn error_type(answer: &Answer, body: &Value) -> Option<String> {
    let header = answer
        .headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    header
        .or_else(|| body["__type"].as_str().map(str::to_owned))
        .map(|kind| {
            let kind = kind.split(':').next().unwrap_or_default();
            kind.rsplit('#').next().unwrap_or(kind).to_owned()
        })
        .filter(|kind| !kind.is_empty())
}

impl Target for Mwaa {
    fn describe(&self) -> String {
        format!(
            "mwaa {} {}",
            self.environment,
            self.airflow.describe().trim_start_matches("airflow ")
        )
    }

    fn build(&self, render: &RenderContext<'_>, root: &Url) -> Result<Built, TargetError> {
        let placeholder = Url::parse(PLACEHOLDER).map_err(|e| TargetError::Invalid {
            field: "endpoint".to_owned(),
            reason: e.to_string(),
        })?;
        let inner = self.airflow.build(render, &placeholder)?;
        // `/api/v1/dags/{dag_id}/dagRuns` → `/dags/{dag_id}/dagRuns`: MWAA adds the API prefix.
        let path = inner.request.url.path();
        let path = path
            .strip_prefix("/api/v1")
            .or_else(|| path.strip_prefix("/api/v2"))
            .unwrap_or(path)
            .to_owned();
        if path.len() > MAX_PATH {
            return Err(path_too_long("dag_id", &path));
        }
        let Body::Json(body) = inner.request.body else {
            return Err(TargetError::Invalid {
                field: "conf".to_owned(),
                reason: "the Airflow body is not JSON".to_owned(),
            });
        };
        Ok(Built {
            request: self.invoke(root, "POST", &path, Some(body)),
            run_id: inner.run_id,
            unresolved: None,
            marker: None,
        })
    }

    fn interpret(&self, answer: &Answer) -> Verdict {
        match self.unwrap(answer) {
            Ok(inner) if self.sent_v1_to_airflow_3(&inner) => Verdict::Permanent {
                reason: format!(
                    "MWAA environment {} runs Airflow 3: its REST API v2 refused the Airflow 2 \
                     (api: v1, the default) body for lacking logical_date (422); set `api: v2` on \
                     this mwaa target: {}",
                    self.environment,
                    problem(&inner.body)
                ),
            },
            Ok(inner) => self.airflow.interpret(&inner),
            Err(verdict) => verdict,
        }
    }

    /// A 409 is checked with a GET of the run through `InvokeRestApi`, when its path fits
    /// MWAA's 64 characters; a longer one cannot be asked for, and the 409 is taken as ours.
    fn check(&self, sent: &Built) -> Option<Request> {
        let path = format!("{}/{}", Mwaa::path_of(sent)?, sent.run_id.as_deref()?);
        if path.len() > MAX_PATH {
            tracing::warn!(%path, "a 409 cannot be checked through MWAA (Path over 64 characters): taken as already triggered");
            return None;
        }
        Some(self.invoke(&root_of(sent)?, "GET", &path, None))
    }

    fn interpret_check(&self, sent: &Built, conflict: &str, answer: &Answer) -> Verdict {
        match self.unwrap(answer) {
            Ok(inner) => self.airflow.interpret_check(sent, conflict, &inner),
            Err(verdict) => verdict,
        }
    }

    fn follow_up(&self, sent: &Built) -> Option<Request> {
        let path = Mwaa::path_of(sent)?;
        let dag = path.strip_suffix("/dagRuns")?;
        Some(self.invoke(&root_of(sent)?, "GET", dag, None))
    }

    fn warning(&self, answer: &Answer) -> Option<String> {
        self.airflow.warning(&self.unwrap(answer).ok()?)
    }
}

/// The endpoint a built `InvokeRestApi` request went to.
fn root_of(sent: &Built) -> Option<Url> {
    let mut root = sent.request.url.clone();
    root.path_segments_mut().ok()?.pop().pop();
    Some(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ObjectEvent;
    use crate::targets::{Endpoint, TargetConfig};
    use reqwest::StatusCode;

    fn mwaa(yaml: &str) -> (Endpoint, Templates) {
        let config: MwaaConfig = serde_saphyr::from_str(yaml).unwrap();
        let mut templates = Templates::new();
        let endpoint = TargetConfig::Mwaa(config)
            .build("routes[0].target", &mut templates)
            .unwrap();
        (endpoint, templates)
    }

    fn built(endpoint: &Endpoint, templates: &Templates) -> Built {
        let event = ObjectEvent {
            sequencer: Some("0055".into()),
            ..ObjectEvent::put("acme", "in/a.csv")
        };
        let render = RenderContext::new(templates, &event, "r");
        let root = Url::parse("https://env.airflow.eu-west-1.amazonaws.com/").unwrap();
        endpoint.target.build(&render, &root).unwrap()
    }

    fn answer(status: u16, body: Value) -> Answer {
        Answer::new(StatusCode::from_u16(status).unwrap(), body.to_string())
    }

    #[test]
    fn the_airflow_body_travels_inside_invoke_rest_api() {
        let (endpoint, templates) = mwaa(
            "environment: prod-env\nregion: eu-west-1\ndag_id: load\nrun_id: 'r-{{ sequencer }}'\nnote: n\n",
        );
        assert_eq!(endpoint.description, "mwaa prod-env v1 dag load");
        let built = built(&endpoint, &templates);
        assert_eq!(
            built.request.url.as_str(),
            "https://env.airflow.eu-west-1.amazonaws.com/restapi/prod-env"
        );
        let Body::Json(call) = &built.request.body else {
            panic!("json")
        };
        assert_eq!(call["Path"], "/dags/load/dagRuns");
        assert_eq!(call["Method"], "POST");
        assert_eq!(call["Body"]["dag_run_id"], "r-0055");
        assert_eq!(call["Body"]["note"], "n");
        assert_eq!(call["Body"]["conf"]["key"], "in/a.csv");
        assert!(call["Body"].get("logical_date").is_none(), "v1 omits it");
        // The 409 check and the paused check go through InvokeRestApi too.
        let check = endpoint.target.check(&built).unwrap();
        assert_eq!(check.url.path(), "/restapi/prod-env");
        let Body::Json(call) = &check.body else {
            panic!("json")
        };
        assert_eq!(
            call,
            &json!({"Path": "/dags/load/dagRuns/r-0055", "Method": "GET"})
        );
        let follow = endpoint.target.follow_up(&built).unwrap();
        let Body::Json(call) = &follow.body else {
            panic!("json")
        };
        assert_eq!(call, &json!({"Path": "/dags/load", "Method": "GET"}));
    }

    #[test]
    fn the_airflow_status_inside_is_read_as_airflow_reads_it() {
        let (endpoint, templates) = mwaa("environment: e\nregion: eu-west-1\ndag_id: d\n");
        let target = &endpoint.target;
        let ok = answer(
            200,
            json!({"RestApiStatusCode": 200, "RestApiResponse": {"dag_run_id": "x"}}),
        );
        assert!(matches!(target.interpret(&ok), Verdict::Delivered { .. }));
        // A 409 inside a RestApiClientException: checked, like Airflow's own.
        let mut conflict = answer(
            400,
            json!({"RestApiStatusCode": 409, "RestApiResponse": {"detail": "exists"}}),
        );
        conflict.headers.insert(
            "x-amzn-errortype",
            "RestApiClientException:http://internal".parse().unwrap(),
        );
        assert!(matches!(target.interpret(&conflict), Verdict::Check { .. }));
        let mut missing = answer(
            400,
            json!({"RestApiStatusCode": 404, "RestApiResponse": {"detail": "DAG with dag_id: 'd' not found"}}),
        );
        missing.headers.insert(
            "x-amzn-errortype",
            "RestApiClientException".parse().unwrap(),
        );
        let Verdict::Permanent { reason } = target.interpret(&missing) else {
            panic!("unknown DAG")
        };
        assert!(
            reason.contains("DAG with dag_id: 'd' not found"),
            "{reason}"
        );
        let server = answer(
            400,
            json!({"__type": "RestApiServerException", "RestApiStatusCode": 503, "RestApiResponse": {}}),
        );
        assert!(matches!(target.interpret(&server), Verdict::Retry { .. }));
        // MWAA's own errors.
        let denied = answer(403, json!({"Message": "User is not authorized"}));
        let Verdict::Unauthorized { reason } = target.interpret(&denied) else {
            panic!("403")
        };
        assert!(
            reason.contains("airflow:InvokeRestApi") && reason.contains("role/e/"),
            "{reason}"
        );
        let mut gone = answer(404, json!({"message": "Environment e not found"}));
        gone.headers.insert(
            "x-amzn-errortype",
            "ResourceNotFoundException".parse().unwrap(),
        );
        assert!(
            matches!(target.interpret(&gone), Verdict::Permanent { reason } if reason.contains("no environment \"e\""))
        );
        let mut throttled = answer(429, json!({}));
        throttled
            .headers
            .insert("x-amzn-errortype", "ThrottlingException".parse().unwrap());
        assert!(matches!(
            target.interpret(&throttled),
            Verdict::Retry { .. }
        ));
        assert!(matches!(
            target.interpret(&answer(500, json!({}))),
            Verdict::Retry { .. }
        ));
        // A paused DAG warns, as on Airflow.
        let paused = answer(
            200,
            json!({"RestApiStatusCode": 200, "RestApiResponse": {"dag_id": "d", "is_paused": true}}),
        );
        assert!(target.warning(&paused).unwrap().contains("DAG d is paused"));
        let _ = templates;
    }

    #[test]
    fn a_v1_body_refused_by_an_airflow_3_environment_says_to_set_api_v2() {
        // What MWAA carries back from an Airflow 3 environment (REST API v2, 3.1.8 to 3.3.2)
        // for a body without logical_date: FastAPI's 422 naming the missing field.
        let refused = || {
            let mut answer = answer(
                400,
                json!({"RestApiStatusCode": 422, "RestApiResponse": {"detail": [
                    {"type": "missing", "loc": ["body", "logical_date"], "msg": "Field required",
                     "input": {"dag_run_id": "r", "conf": {}}}
                ]}}),
            );
            answer.headers.insert(
                "x-amzn-errortype",
                "RestApiClientException".parse().unwrap(),
            );
            answer
        };
        let (v1, _) = mwaa("environment: af3-env\nregion: eu-west-1\ndag_id: d\n");
        let Verdict::Permanent { reason } = v1.target.interpret(&refused()) else {
            panic!("a 422 is permanent")
        };
        assert!(
            reason.contains("af3-env runs Airflow 3") && reason.contains("set `api: v2`"),
            "{reason}"
        );
        // With api: v2 the body has logical_date; another 422 is Airflow's own, not this hint.
        let (v2, templates) = mwaa("environment: af3-env\nregion: eu-west-1\napi: v2\ndag_id: d\n");
        let Body::Json(call) = built(&v2, &templates).request.body else {
            panic!("json")
        };
        assert_eq!(
            call["Body"]["logical_date"],
            Value::Null,
            "v2 sends it, null"
        );
        let Verdict::Permanent { reason } = v2.target.interpret(&refused()) else {
            panic!("a 422 is permanent")
        };
        assert!(!reason.contains("set `api: v2`"), "{reason}");
        // A v1 environment's own 422 about something else gets no hint either.
        let other = answer(
            400,
            json!({"RestApiStatusCode": 422, "RestApiResponse": {"detail": "conf must be a dict"}}),
        );
        if let Verdict::Permanent { reason } = v1.target.interpret(&other) {
            assert!(!reason.contains("set `api: v2`"), "{reason}");
        }
    }

    #[test]
    fn paths_over_64_characters_are_refused_at_load_and_long_run_ids_are_not_checked() {
        let long = "d".repeat(52);
        let config: MwaaConfig =
            serde_saphyr::from_str(&format!("environment: e\nregion: r\ndag_id: {long}\n"))
                .unwrap();
        let error = TargetConfig::Mwaa(config)
            .build("routes[0].target", &mut Templates::new())
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("routes[0].target.dag_id: MWAA's InvokeRestApi takes a Path of at most 64 characters"),
            "{error}"
        );
        let (endpoint, templates) = mwaa(
            "environment: e\nregion: r\ndag_id: d\nrun_id: '{{ key }}-{{ key }}-{{ key }}-{{ key }}'\n",
        );
        let built = built(&endpoint, &templates);
        assert!(endpoint.target.check(&built).is_none());
        let config: MwaaConfig =
            serde_saphyr::from_str("environment: e\nregion: r\ndag_id: d\napi: experimental\n")
                .unwrap();
        assert!(
            TargetConfig::Mwaa(config)
                .build("t", &mut Templates::new())
                .is_err()
        );
    }
}
