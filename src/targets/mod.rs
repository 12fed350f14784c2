//! Targets: the orchestrators we start runs on. Each file holds one [`Target`], which owns only
//! what differs: `build` (one event's rendered request, as plain data) and `interpret` (the
//! orchestrator's answer). What every target shares (its signer, base URL, rate limit, whether
//! repeating a request is safe, and which auth schemes it accepts) is declared as data in
//! [`Facts`] and lives in one [`Endpoint`]. This is the only room that matches on the kind of target.

mod airflow;
mod airflow_asset;
mod alteryx;
mod base_url;
mod mwaa;
mod rate_limit;
pub mod run_id;
mod webhook;
mod workflows;

use std::fmt;
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;

use crate::auth::{Auth, AuthConfig, AuthKind};
use crate::http::{Answer, Request, Verdict, excerpt};
use crate::secrets::SecretCache;
use crate::template::{RenderContext, TemplateError, Templates};

pub use airflow::{AirflowApi, AirflowConfig};
pub use airflow_asset::{AirflowAssetConfig, AssetRef};
pub use alteryx::{AlteryxApi, AlteryxConfig, Question};
pub use base_url::{BaseUrl, BaseUrlConfig, BaseUrlError, PLACEHOLDER_BASE};
pub use mwaa::{MAX_PATH as MWAA_MAX_PATH, MwaaConfig};
pub use rate_limit::{Limiter, RateLimitConfig, Slot, Throttled};
pub use webhook::WebhookConfig;
pub use workflows::{
    EXECUTIONS_ENDPOINT, MAX_ARGUMENT_BYTES, WorkflowsCallbackConfig, WorkflowsConfig,
};

/// `target:` in a route: exactly one key naming the kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetConfig {
    /// Airflow DAG run (REST API v1, v2, or the legacy experimental API).
    Airflow(AirflowConfig),
    /// Airflow asset event (REST API v2, Airflow 3) or dataset event (REST API v1, Airflow
    /// 2.9+): DAGs scheduled on the asset run.
    AirflowAsset(AirflowAssetConfig),
    /// Alteryx Server job (Gallery API v1 with OAuth 1.0a or OAuth 2, API v3 with OAuth 2).
    Alteryx(AlteryxConfig),
    /// A templated JSON POST to any URL.
    Webhook(WebhookConfig),
    /// A new Google Workflows execution.
    Workflows(WorkflowsConfig),
    /// A Google Workflows callback.
    WorkflowsCallback(WorkflowsCallbackConfig),
    /// An Amazon MWAA DAG run through `InvokeRestApi`, signed as the function's role.
    Mwaa(MwaaConfig),
}

/// What every target has, declared per kind.
struct Facts<'a> {
    /// The orchestrator, as error messages name it.
    kind: &'static str,
    /// The auth schemes it accepts.
    accepts: &'static [AuthKind],
    /// Its `auth:`.
    auth: &'a AuthConfig,
    /// Its `rate_limit:`, if any.
    rate_limit: Option<&'a RateLimitConfig>,
    /// Where its URL comes from, and the field that says so.
    base: Base<'a>,
    /// Whether repeating a request that may have arrived is safe: the target deduplicates
    /// (Airflow's run id), or the user opted in.
    idempotent: bool,
}

/// How a kind's URL is written.
enum Base<'a> {
    /// `base_url:` or `url:`, a URL or `{ secret, field }`.
    Config(&'static str, &'a BaseUrlConfig),
    /// A URL that may carry a query.
    WithQuery(&'static str, &'a str),
    /// An optional URL with a default.
    Default(&'static str, Option<&'a str>, &'static str),
    /// A URL derived from other settings (MWAA's regional endpoint); `None` = cannot be.
    Derived(&'static str, Option<String>),
}

impl TargetConfig {
    /// The shared facts of this target, in one table.
    fn facts(&self) -> Facts<'_> {
        use AuthKind as A;
        match self {
            TargetConfig::Airflow(config) => Facts {
                kind: "Airflow",
                accepts: AuthKind::ALL,
                auth: &config.auth,
                rate_limit: config.rate_limit.as_ref(),
                base: Base::Config("base_url", &config.base_url),
                idempotent: true,
            },
            // An asset event has no client-chosen id: a repeated POST is a second event.
            TargetConfig::AirflowAsset(config) => Facts {
                kind: "Airflow",
                accepts: AuthKind::ALL,
                auth: &config.auth,
                rate_limit: config.rate_limit.as_ref(),
                base: Base::Config("base_url", &config.base_url),
                idempotent: false,
            },
            TargetConfig::Alteryx(config) => Facts {
                kind: "Alteryx",
                accepts: &[A::Oauth1, A::Oauth2, A::Bearer],
                auth: &config.auth,
                rate_limit: config.rate_limit.as_ref(),
                base: Base::Config("base_url", &config.base_url),
                idempotent: config.retry_on_timeout,
            },
            TargetConfig::Webhook(config) => Facts {
                kind: "a webhook",
                accepts: &[A::None, A::Basic, A::Bearer, A::Oauth2, A::AwsSigv4],
                auth: &config.auth,
                rate_limit: config.rate_limit.as_ref(),
                base: Base::WithQuery("url", &config.url),
                idempotent: false,
            },
            TargetConfig::Workflows(config) => Facts {
                kind: "Workflows",
                accepts: &[A::GoogleAccessToken, A::Bearer],
                auth: &config.auth,
                rate_limit: config.rate_limit.as_ref(),
                base: Base::Default(
                    "endpoint",
                    config.endpoint.as_deref(),
                    workflows::EXECUTIONS_ENDPOINT,
                ),
                idempotent: false,
            },
            TargetConfig::WorkflowsCallback(config) => Facts {
                kind: "Workflows",
                accepts: &[A::GoogleAccessToken, A::Bearer],
                auth: &config.auth,
                rate_limit: config.rate_limit.as_ref(),
                base: Base::Config("url", &config.url),
                idempotent: false,
            },
            TargetConfig::Mwaa(config) => Facts {
                kind: "MWAA",
                accepts: &[A::AwsSigv4],
                auth: &config.auth,
                rate_limit: config.rate_limit.as_ref(),
                base: Base::Derived("endpoint", config.endpoint()),
                idempotent: true,
            },
        }
    }

    /// Compiles the target's templates into `templates`; `name` prefixes fields in errors.
    pub fn build(&self, name: &str, templates: &mut Templates) -> Result<Endpoint, TargetError> {
        let facts = self.facts();
        let auth = facts.auth.kind();
        if !facts.accepts.contains(&auth) {
            let names: Vec<&str> = facts.accepts.iter().map(|kind| kind.name()).collect();
            let accepted = match names.split_last() {
                Some((last, [])) => (*last).to_owned(),
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => "no scheme".to_owned(),
            };
            return Err(TargetError::Invalid {
                field: format!("{name}.auth"),
                reason: format!("{} takes {accepted}, not {}", facts.kind, auth.name()),
            });
        }
        facts
            .auth
            .check()
            .map_err(|(scheme, reason)| TargetError::Invalid {
                field: format!("{name}.auth.{scheme}"),
                reason,
            })?;
        if let Some(url) = facts.auth.token_url() {
            base_url::parse_base_url(&format!("{name}.auth.token_url"), url)?;
        }
        let limiter = Limiter::new(name, facts.rate_limit)?;
        let base_url = match facts.base {
            Base::Config(field, config) => BaseUrl::new(&format!("{name}.{field}"), config)?,
            Base::WithQuery(field, url) => BaseUrl::with_query(&format!("{name}.{field}"), url)?,
            Base::Default(field, url, default) => BaseUrl::Fixed(base_url::parse_base_url(
                &format!("{name}.{field}"),
                url.unwrap_or(default),
            )?),
            Base::Derived(field, Some(url)) => {
                BaseUrl::Fixed(base_url::parse_base_url(&format!("{name}.{field}"), &url)?)
            }
            Base::Derived(_, None) => {
                return Err(TargetError::Invalid {
                    field: format!("{name}.region"),
                    reason: "no region: set region (or AWS_REGION, which Lambda sets)".to_owned(),
                });
            }
        };
        let target: Box<dyn Target> = match self {
            TargetConfig::Airflow(config) => {
                Box::new(airflow::Airflow::new(config, name, templates)?)
            }
            TargetConfig::AirflowAsset(config) => {
                Box::new(airflow_asset::AirflowAsset::new(config, name, templates)?)
            }
            TargetConfig::Alteryx(config) => {
                Box::new(alteryx::Alteryx::new(config, name, templates)?)
            }
            TargetConfig::Webhook(config) => {
                Box::new(webhook::Webhook::new(config, name, templates)?)
            }
            TargetConfig::Workflows(config) => {
                Box::new(workflows::Workflows::new(config, name, templates)?)
            }
            TargetConfig::WorkflowsCallback(config) => {
                Box::new(workflows::WorkflowsCallback::new(config, name, templates)?)
            }
            TargetConfig::Mwaa(config) => Box::new(mwaa::Mwaa::new(config, name, templates)?),
        };
        Ok(Endpoint {
            description: target.describe(),
            auth: Auth::new(facts.auth),
            limiter,
            base_url,
            idempotent: facts.idempotent,
            allow_http: false,
            reject_permanent: false,
            warnings: Warnings::default(),
            idempotency_table: None,
            lookups: tokio::sync::Mutex::new(()),
            target,
        })
    }

    /// Rejects a URL in configuration that would cross a network in clear text (`http://` to
    /// a host that is not this machine): the route must say `allow_http: true` for that.
    pub fn refuse_clear_text(&self, name: &str) -> Result<(), TargetError> {
        let facts = self.facts();
        let base = match facts.base {
            Base::Config(field, BaseUrlConfig::Url(url)) => Some((field, url.as_str())),
            Base::Config(_, BaseUrlConfig::Secret { .. }) => None,
            Base::WithQuery(field, url) => Some((field, url)),
            Base::Default(field, url, default) => Some((field, url.unwrap_or(default))),
            Base::Derived(field, ref url) => url.as_deref().map(|url| (field, url)),
        };
        let token = facts.auth.token_url().map(|url| ("auth.token_url", url));
        for (field, url) in base.into_iter().chain(token) {
            let host = Url::parse(url)
                .ok()
                .and_then(|url| crate::http::clear_text_host(&url));
            if let Some(host) = host {
                return Err(TargetError::Invalid {
                    field: format!("{name}.{field}"),
                    reason: crate::http::clear_text_reason(&host),
                });
            }
        }
        Ok(())
    }

    /// The secret ids this target reads: its auth's, and a base URL kept in a secret.
    pub fn secret_ids(&self) -> Vec<&str> {
        let facts = self.facts();
        let mut ids = facts.auth.secret_ids();
        if let Base::Config(_, BaseUrlConfig::Secret { secret, .. }) = facts.base {
            ids.push(secret);
        }
        ids
    }
}

/// One configured target: the orchestrator-specific part and what every target shares.
#[derive(Debug)]
pub struct Endpoint {
    /// What differs: building requests and reading answers.
    pub target: Box<dyn Target>,
    /// Signs this target's requests (and keeps its token, if it has one).
    pub auth: Auth,
    /// Its `rate_limit:`, shared by every invocation of this warm container.
    pub limiter: Limiter,
    /// Where the URL comes from.
    pub base_url: BaseUrl,
    /// Whether repeating a request that may have arrived is safe.
    pub idempotent: bool,
    /// Whether `http://` may leave this machine (the route's `allow_http`).
    pub allow_http: bool,
    /// Whether an HTTP push whose delivery here failed permanently is answered 4xx (so that
    /// Pub/Sub redelivers it and its dead-letter topic takes it) rather than acknowledged with
    /// a failure record (the route's `on_permanent_failure: reject`).
    pub reject_permanent: bool,
    /// Warnings from [`Target::follow_up`], kept a while per warm container.
    pub warnings: Warnings,
    /// The DynamoDB table keeping this target's idempotency records (the route's, else the
    /// settings'), if any.
    pub idempotency_table: Option<String>,
    /// For logs and reports, e.g. `airflow v2 dag load_sales`.
    pub description: String,
    /// Held while a [`Pending::Lookup`] is under way, so that concurrent deliveries wait for
    /// its answer (which the target remembers) instead of asking the same question again.
    pub lookups: tokio::sync::Mutex<()>,
}

impl Endpoint {
    /// The API root requests are built on and token endpoints hang from, reading the base URL
    /// from its secret if it lives in one.
    pub async fn root(&self, secrets: &SecretCache) -> Result<Url, BaseUrlError> {
        let base = self.base_url.resolve(secrets).await?;
        Ok(self.target.api_root(&base))
    }

    /// Builds the request for `render` without secrets, on the load-time stand-in URL: at
    /// cold start this renders every template once, so undefined names and filter mistakes
    /// fail there and not on the first real object.
    pub fn check(&self, render: &RenderContext<'_>) -> Result<Built, TargetError> {
        let root = self.target.api_root(&self.base_url.for_validation());
        self.target.build(render, &root)
    }
}

/// A request ready for signing, with the idempotency key it carries (if the target has one).
#[derive(Debug, Clone)]
pub struct Built {
    /// The unsigned request.
    pub request: Request,
    /// The run id sent (Airflow `dag_run_id`), which makes redelivery safe.
    pub run_id: Option<String>,
    /// A rendered name the target resolves before sending (an Airflow asset's URI or name,
    /// whose id the request needs): see [`Target::complete`]. `None`: complete as built.
    pub unresolved: Option<String>,
    /// What the request carries that finds its run again (a Workflows execution label derived
    /// from the idempotency identity): see [`Target::did_it_run`]. `None`: nothing does.
    pub marker: Option<String>,
}

impl Built {
    /// A request with no idempotency key.
    fn plain(request: Request) -> Self {
        Built {
            request,
            run_id: None,
            unresolved: None,
            marker: None,
        }
    }
}

/// What a target's "did it run?" lookup ([`Target::did_it_run`]) said about a request that
/// was sent and got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ran {
    /// It ran: the orchestrator's id for the run.
    Yes {
        /// The run's id (a Workflows execution's name), if the answer gave one.
        remote_id: Option<String>,
    },
    /// It did not: sending it is safe.
    No,
    /// The lookup could not tell (an error answer, an answer that proves nothing).
    Unknown(String),
}

/// The idempotency identity of `render`'s event on its route × the target described as
/// `description` (the id the idempotency store keys its record by, whatever the table), or
/// `None` when the event names no version of the object.
pub(crate) fn identity(render: &RenderContext<'_>, description: &str) -> Option<String> {
    crate::store::Key::new("", render.route(), description, render.event()).map(|key| key.id)
}

/// What a request still needs before it is sent, from [`Target::complete`].
#[derive(Debug)]
pub enum Pending {
    /// Completed from what the target already knows (a name it looked up before).
    Ready(Built),
    /// The lookup whose answer completes it, read by [`Target::looked_up`].
    Lookup(Request),
}

/// An orchestrator we can start runs on: only what differs between orchestrators.
pub trait Target: Send + Sync + fmt::Debug {
    /// Short description for logs and reports, e.g. `airflow v2 dag load_sales`.
    fn describe(&self) -> String;

    /// The root its requests hang from, given the configured base URL (Alteryx adds `/api/`
    /// or `/webapi/`); token endpoints default to paths under it. Default: the base itself.
    fn api_root(&self, base: &Url) -> Url {
        base.clone()
    }

    /// Builds the request for one event on one route, on the resolved root. Pure.
    fn build(&self, render: &RenderContext<'_>, root: &Url) -> Result<Built, TargetError>;

    /// Reads the orchestrator's answer.
    fn interpret(&self, answer: &Answer) -> Verdict;

    /// For a [`Verdict::Check`]: the request that settles it, sent after `sent`. Default: none,
    /// the answer is taken as it is (already delivered).
    fn check(&self, sent: &Built) -> Option<Request> {
        let _ = sent;
        None
    }

    /// After a run was started: a request whose answer may warn that it will not run soon
    /// (Airflow: is the DAG paused?). Default: none.
    fn follow_up(&self, sent: &Built) -> Option<Request> {
        let _ = sent;
        None
    }

    /// Before sending `built` (each attempt): `None` when it is complete, else the request
    /// completed from what the target remembers, or the lookup that completes it (Airflow: an
    /// asset's id by URI or name). Default: none.
    fn complete(&self, built: &Built) -> Option<Pending> {
        let _ = built;
        None
    }

    /// Reads the answer to a [`Pending::Lookup`] and remembers what it learnt: the completed
    /// request, or the verdict that ends (or retries) this attempt. Default: the answer's.
    fn looked_up(&self, built: &Built, answer: &Answer) -> Result<Built, Verdict> {
        let _ = built;
        Err(Verdict::from_answer(answer))
    }

    /// Reads the answer to [`Target::follow_up`]: a warning, if there is one.
    fn warning(&self, answer: &Answer) -> Option<String> {
        let _ = answer;
        None
    }

    /// Reads the answer to [`Target::check`]; `conflict` is what the first answer said.
    fn interpret_check(&self, sent: &Built, conflict: &str, answer: &Answer) -> Verdict {
        let _ = (sent, conflict);
        Verdict::from_answer(answer)
    }

    /// Whether this target can answer "did it run?" for a request that was sent and got no
    /// answer ([`Target::did_it_run`]), so that such a request may be looked up and re-sent
    /// only if it did not run. Default: no.
    fn can_tell(&self) -> bool {
        false
    }

    /// The read that answers "did `sent` run?" (Workflows: list the workflow's executions
    /// carrying `sent`'s label), asked when a claim takes over an ambiguous idempotency
    /// record. `None`: this target (or this request, which carries no marker) cannot say.
    fn did_it_run(&self, sent: &Built) -> Option<Request> {
        let _ = sent;
        None
    }

    /// Reads the answer to [`Target::did_it_run`].
    fn interpret_did_it_run(&self, sent: &Built, answer: &Answer) -> Ran {
        let _ = sent;
        Ran::Unknown(format!("HTTP {}", answer.status.as_u16()))
    }
}

/// Why a target could not be configured or a request built. Never retryable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TargetError {
    /// A template failed.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// A configured URL is unusable.
    #[error("{field}: invalid URL {url:?}: {reason}")]
    Url {
        /// The field.
        field: String,
        /// The value.
        url: String,
        /// Why.
        reason: String,
    },
    /// Some other field is invalid.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
}

/// What [`Target::follow_up`] said, per request URL, for [`Warnings::FRESH`]: one follow-up
/// per DAG per minute per warm container, not one per object.
#[derive(Debug, Default)]
pub struct Warnings(std::sync::Mutex<std::collections::HashMap<String, (Instant, Option<String>)>>);

impl Warnings {
    /// How long an answer is reused.
    pub const FRESH: Duration = Duration::from_secs(60);

    /// The warning known for `url`, if the answer is fresh: `Some(None)` = known, no warning.
    pub fn known(&self, url: &str, now: Instant) -> Option<Option<String>> {
        let known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        known
            .get(url)
            .filter(|(at, _)| now.saturating_duration_since(*at) < Self::FRESH)
            .map(|(_, warning)| warning.clone())
    }

    /// Records what `url` said; `true` when this warning is new (not the one already held),
    /// so it is logged once, not once per object.
    pub fn record(&self, url: &str, warning: Option<String>, now: Instant) -> bool {
        let mut known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let previous = known.insert(url.to_owned(), (now, warning.clone()));
        warning.is_some() && previous.is_none_or(|(_, before)| before != warning)
    }
}

/// Compiles an optional string template named `{name}.{field}`.
fn optional_template(
    templates: &mut Templates,
    name: &str,
    field: &str,
    source: Option<&str>,
) -> Result<Option<crate::template::StringTemplate>, TemplateError> {
    source
        .map(|source| templates.add_string(&format!("{name}.{field}"), source))
        .transpose()
}

/// A rendered value that becomes one URL path segment. `http::join` percent-encodes it (`/`,
/// `?` and `#` included), but an empty segment, `.` or `..` would still change the path (`//`,
/// or a segment dropped by URL normalisation): refused, for this event, for good.
fn path_segment<'a>(field: &str, value: &'a str) -> Result<&'a str, TargetError> {
    if matches!(value, "" | "." | "..") {
        return Err(TargetError::Invalid {
            field: field.to_owned(),
            reason: format!(
                "rendered to {value:?}, which cannot be a URL path segment (it would change the \
                 path); check the template and the event"
            ),
        });
    }
    Ok(value)
}

/// Parses a configured HTTP method.
fn method(name: &str, raw: &str) -> Result<reqwest::Method, TargetError> {
    reqwest::Method::from_bytes(raw.to_ascii_uppercase().as_bytes()).map_err(|_| {
        TargetError::Invalid {
            field: format!("{name}.method"),
            reason: format!("{raw:?} is not an HTTP method"),
        }
    })
}

/// The `detail`, `message`, `title` or `error` of a JSON error answer, else a body excerpt.
pub(crate) fn problem(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let detail = parsed.as_ref().and_then(|v| {
        ["detail", "message", "title", "error"]
            .iter()
            .find_map(|name| v.get(*name))
            .map(|detail| match detail {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
    });
    excerpt(&detail.unwrap_or_else(|| body.to_owned()), 300)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> TargetConfig {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn accepted_auth_schemes_are_data() {
        let table = [
            (
                "airflow: { base_url: 'http://af', dag_id: d, auth: { oauth1: { secret: s } } }",
                None,
            ),
            (
                "webhook: { url: 'http://h', auth: { airflow_token: { secret: s } } }",
                Some("a webhook takes none, basic, bearer, oauth2 or aws_sigv4, not airflow_token"),
            ),
            (
                "workflows: { project: p, location: l, workflow: w, auth: { basic: { secret: s } } }",
                Some("Workflows takes google_access_token or bearer, not basic"),
            ),
            (
                "alteryx: { api: v3, base_url: 'http://a', workflow_id: w, auth: none }",
                Some("Alteryx takes oauth1, oauth2 or bearer, not none"),
            ),
        ];
        for (yaml, want) in table {
            let got = config(yaml).build("t", &mut Templates::new());
            match want {
                None => assert!(got.is_ok(), "{yaml}: {:?}", got.err()),
                Some(want) => assert_eq!(got.unwrap_err().to_string(), format!("t.auth: {want}")),
            }
        }
    }

    #[test]
    fn rendered_path_segments_cannot_change_the_path() {
        let mut templates = Templates::new();
        let endpoint =
            config("airflow: { base_url: 'http://af/x', dag_id: '{{ key | basename }}' }")
                .build("t", &mut templates)
                .unwrap();
        for (key, want) in [
            ("in/..", Some("\"..\"")),
            ("in/.", Some("\".\"")),
            ("in/", Some("\"\"")),
            ("in/a?b#c/", Some("\"\"")),
            ("in/a?b#c", None),
        ] {
            let event = crate::event::ObjectEvent::put("b", key);
            let render = RenderContext::new(&templates, &event, "r");
            match (endpoint.check(&render), want) {
                (Ok(built), None) => assert_eq!(
                    built.request.url.as_str(),
                    "http://af/x/api/v2/dags/a%3Fb%23c/dagRuns"
                ),
                (Err(error), Some(want)) => {
                    let text = error.to_string();
                    assert!(
                        text.starts_with(&format!("dag_id: rendered to {want}")),
                        "{text}"
                    );
                }
                (got, want) => panic!("{key}: {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn shared_facts_reach_the_endpoint() {
        let airflow = config("airflow: { base_url: 'http://af', dag_id: d }")
            .build("t", &mut Templates::new())
            .unwrap();
        assert!(airflow.idempotent, "Airflow deduplicates by run id");
        assert_eq!(airflow.description, "airflow v2 dag d");
        let alteryx = "alteryx: { api: v1, base_url: { secret: a, field: URL }, workflow_id: w, auth: { oauth1: { secret: k } } }";
        let endpoint = config(alteryx).build("t", &mut Templates::new()).unwrap();
        assert!(
            !endpoint.idempotent,
            "no idempotency key unless retry_on_timeout"
        );
        assert_eq!(config(alteryx).secret_ids(), vec!["k", "a"]);
        let opted_in = alteryx.replace("workflow_id: w", "workflow_id: w, retry_on_timeout: true");
        assert!(
            config(&opted_in)
                .build("t", &mut Templates::new())
                .unwrap()
                .idempotent
        );
    }
}
