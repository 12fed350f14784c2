//! Targets: Apache Airflow asset events, an alternative to DAG runs: `POST /api/v2/assets/events`
//! (Airflow 3; the asset's id, looked up once by URI or name and remembered) or
//! `POST /api/v1/datasets/events` (Airflow 2.9+; the dataset's URI). Every DAG scheduled on the
//! asset then runs; events that arrive before such a run starts are consumed by that one run.

use std::collections::HashMap;
use std::sync::Mutex;

use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::{Value, json};

use super::airflow::{credentials, no_auth, refusal};
use super::{AirflowApi, BaseUrlConfig, Built, Pending, Target, TargetError, problem};
use crate::auth::AuthConfig;
use crate::http::{Answer, Body, Request, Verdict, join};
use crate::template::{RenderContext, StringTemplate, Templates, ValueTemplate};

/// How many assets one lookup reads (Airflow's default `maximum_page_limit`).
const PAGE: usize = 100;

/// How many looked-up ids an endpoint remembers; past that it forgets them all (templated names
/// that differ per object would otherwise grow without bound in a warm container).
const REMEMBERED: usize = 1000;

/// `asset:`: which asset the events are for, exactly one of `uri`, `name` or `id`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AssetRef {
    /// The asset's URI (a template), e.g. `s3://bucket/landing`: v1 sends it as `dataset_uri`,
    /// v2 looks its id up.
    Uri(String),
    /// The asset's name (a template; Airflow 3, v2 only): its id is looked up.
    Name(String),
    /// The asset's id (Airflow 3, v2 only), sent as it is.
    Id(u64),
}

/// `target: { airflow_asset: {...} }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AirflowAssetConfig {
    /// Airflow's base URL, e.g. `https://airflow.example.com` (any path prefix is kept), or
    /// `{ secret, field }` to read it from a secret.
    pub base_url: BaseUrlConfig,
    /// API flavour: `v2` (Airflow 3, the default) or `v1` (Airflow 2.9+ dataset events).
    #[serde(default)]
    pub api: AirflowApi,
    /// The asset.
    pub asset: AssetRef,
    /// `extra` template tree (a mapping); default: the normalized event.
    pub extra: Option<Value>,
    /// How to authenticate; default none.
    #[serde(default = "no_auth")]
    pub auth: AuthConfig,
    /// Requests per second and in flight to it, per warm container; default unlimited.
    pub rate_limit: Option<super::RateLimitConfig>,
}

/// The asset, compiled.
#[derive(Debug)]
enum Asset {
    Uri(StringTemplate),
    Name(StringTemplate),
    Id(u64),
}

/// A configured asset-event target.
#[derive(Debug)]
pub(super) struct AirflowAsset {
    /// `V1` or `V2`, never `Experimental` (refused when configured).
    api: AirflowApi,
    asset: Asset,
    /// `uri s3://...`, for logs and reports.
    source: String,
    extra: Option<ValueTemplate>,
    /// Whose credentials a refusal is about.
    credentials: String,
    /// Rendered URI or name → asset id, looked up once per warm container.
    ids: Mutex<HashMap<String, u64>>,
}

impl AirflowAsset {
    /// Compiles the configuration; `name` prefixes fields in errors.
    pub(super) fn new(
        config: &AirflowAssetConfig,
        name: &str,
        templates: &mut Templates,
    ) -> Result<Self, TargetError> {
        let invalid = |field: &str, reason: &str| TargetError::Invalid {
            field: format!("{name}.{field}"),
            reason: reason.to_owned(),
        };
        match (config.api, &config.asset) {
            (AirflowApi::Experimental, _) => {
                return Err(invalid(
                    "api",
                    "the experimental API has no asset events: v2 (Airflow 3) or v1 (Airflow 2.9+)",
                ));
            }
            (AirflowApi::V1, AssetRef::Name(_) | AssetRef::Id(_)) => {
                return Err(invalid(
                    "asset",
                    "api v1 (Airflow 2 dataset events) names a dataset by its URI: asset: { uri: ... }",
                ));
            }
            (_, AssetRef::Uri(text) | AssetRef::Name(text)) if text.trim().is_empty() => {
                return Err(invalid("asset", "must not be empty"));
            }
            _ => {}
        }
        if let Some(extra) = &config.extra
            && !extra.is_object()
        {
            return Err(invalid(
                "extra",
                "must be a mapping: Airflow takes an object as the event's extra",
            ));
        }
        let field = format!("{name}.asset");
        let (asset, source) = match &config.asset {
            AssetRef::Uri(uri) => (
                Asset::Uri(templates.add_string(&format!("{field}.uri"), uri)?),
                format!("uri {uri}"),
            ),
            AssetRef::Name(text) => (
                Asset::Name(templates.add_string(&format!("{field}.name"), text)?),
                format!("name {text}"),
            ),
            AssetRef::Id(id) => (Asset::Id(*id), format!("id {id}")),
        };
        let extra = config
            .extra
            .as_ref()
            .map(|extra| templates.add_value(&format!("{name}.extra"), extra))
            .transpose()?;
        Ok(AirflowAsset {
            api: config.api,
            asset,
            source,
            extra,
            credentials: credentials(&config.auth),
            ids: Mutex::new(HashMap::new()),
        })
    }

    /// `uri` or `name`: the field a lookup matches.
    fn field(&self) -> &'static str {
        match self.asset {
            Asset::Name(_) => "name",
            Asset::Uri(_) | Asset::Id(_) => "uri",
        }
    }

    fn remembered(&self, value: &str) -> Option<u64> {
        let ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.get(value).copied()
    }

    fn remember(&self, value: &str, id: u64) {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        if ids.len() >= REMEMBERED {
            ids.clear();
        }
        ids.insert(value.to_owned(), id);
    }

    fn forget_all(&self) {
        self.ids.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// `built` with the asset's id in its body, complete.
    fn with_id(built: &Built, id: u64) -> Built {
        let mut done = built.clone();
        if let Body::Json(body) = &mut done.request.body {
            body["asset_id"] = json!(id);
        }
        done.unresolved = None;
        done
    }

    /// Why an asset the lookup did not find cannot take events, and how it comes to exist.
    fn missing(&self, value: &str, near: &[&str], total: usize) -> String {
        let field = self.field();
        let mut reason = format!("Airflow has no asset with {field} {value:?}");
        if !near.is_empty() {
            let searched = if total > near.len() {
                format!(" (the first {} of {total} searched)", near.len())
            } else {
                String::new()
            };
            reason.push_str(&format!(
                "; assets whose {field} contains it{searched}: {}",
                near.join(", ")
            ));
        }
        reason.push_str(
            ". An asset exists once a DAG declares it (schedule=[Asset(...)], or a task's \
             outlets=[Asset(...)]) and Airflow has parsed that DAG file; check the asset's \
             spelling and base_url",
        );
        reason
    }
}

/// One asset of `GET /api/v2/assets`.
#[derive(Deserialize)]
struct Found {
    id: u64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    uri: String,
}

/// `GET /api/v2/assets`: a page of assets.
#[derive(Deserialize)]
struct Page {
    assets: Vec<Found>,
    #[serde(default)]
    total_entries: usize,
}

impl Target for AirflowAsset {
    fn describe(&self) -> String {
        let api = if self.api == AirflowApi::V1 {
            "v1"
        } else {
            "v2"
        };
        format!("airflow_asset {api} {}", self.source)
    }

    fn build(&self, render: &RenderContext<'_>, base: &Url) -> Result<Built, TargetError> {
        let extra = render.value_or_event(self.extra.as_ref())?;
        if !extra.is_object() {
            return Err(TargetError::Invalid {
                field: "extra".to_owned(),
                reason: "did not render to an object".to_owned(),
            });
        }
        let rendered = |field: &str, template: &StringTemplate| {
            let value = render.string(template)?;
            if value.is_empty() {
                return Err(TargetError::Invalid {
                    field: format!("asset.{field}"),
                    reason: "rendered to an empty string; check the template and the event"
                        .to_owned(),
                });
            }
            Ok(value)
        };
        let (url, body, unresolved) = match (&self.asset, self.api) {
            (Asset::Uri(uri), AirflowApi::V1) => {
                let uri = rendered("uri", uri)?;
                let url = join(base, &["api", "v1", "datasets", "events"]);
                (url, json!({ "dataset_uri": uri, "extra": extra }), None)
            }
            (Asset::Id(id), _) => {
                let url = join(base, &["api", "v2", "assets", "events"]);
                (url, json!({ "asset_id": id, "extra": extra }), None)
            }
            (Asset::Uri(template) | Asset::Name(template), _) => {
                let value = rendered(self.field(), template)?;
                let url = join(base, &["api", "v2", "assets", "events"]);
                // The id is not known yet: `complete` fills it in before sending.
                (
                    url,
                    json!({ "asset_id": null, "extra": extra }),
                    Some(value),
                )
            }
        };
        Ok(Built {
            request: Request::post(url, Body::Json(body)),
            run_id: None,
            unresolved,
            marker: None,
        })
    }

    fn complete(&self, built: &Built) -> Option<Pending> {
        let value = built.unresolved.as_deref()?;
        if let Some(id) = self.remembered(value) {
            return Some(Pending::Ready(Self::with_id(built, id)));
        }
        // `.../api/v2/assets/events` → `.../api/v2/assets?uri_pattern=...`. The pattern is a
        // case-insensitive substring match (SQL LIKE, where `_` and `%` are wildcards too):
        // `looked_up` keeps only the exact match.
        let mut url = built.request.url.clone();
        url.path_segments_mut().ok()?.pop();
        url.set_query(None);
        url.query_pairs_mut()
            .append_pair(&format!("{}_pattern", self.field()), value)
            .append_pair("limit", &PAGE.to_string());
        Some(Pending::Lookup(Request::new(Method::GET, url)))
    }

    fn looked_up(&self, built: &Built, answer: &Answer) -> Result<Built, Verdict> {
        let value = built.unresolved.as_deref().unwrap_or_default();
        let body = answer.body.as_str();
        match answer.status.as_u16() {
            200 => {}
            401 | 403 => {
                return Err(refusal(
                    &self.credentials,
                    answer,
                    "read assets (it needs a role that can read assets, to look the asset's id up)",
                ));
            }
            404 => {
                return Err(Verdict::Permanent {
                    reason: format!(
                        "looking up the asset's id: Airflow answered 404: {}. GET /api/v2/assets \
                         is Airflow 3's; check base_url, and api (Airflow 2.9+ takes v1)",
                        problem(body)
                    ),
                });
            }
            _ => {
                return Err(match Verdict::from_answer(answer) {
                    Verdict::Retry { reason, after } => Verdict::Retry {
                        reason: format!("looking up the asset's id: {reason}"),
                        after,
                    },
                    other => Verdict::Permanent {
                        reason: format!("looking up the asset's id: {}", other.into_reason()),
                    },
                });
            }
        }
        let page: Page = serde_json::from_str(body).map_err(|error| Verdict::Permanent {
            reason: format!(
                "looking up the asset's id: Airflow's answer is not a list of assets ({error}); \
                 check base_url"
            ),
        })?;
        let field = self.field();
        let of = |found: &Found| {
            if field == "name" {
                found.name.clone()
            } else {
                found.uri.clone()
            }
        };
        match page.assets.iter().find(|found| of(found) == value) {
            Some(found) => {
                tracing::info!(asset = value, id = found.id, "looked up the asset's id");
                self.remember(value, found.id);
                Ok(Self::with_id(built, found.id))
            }
            None => {
                let near: Vec<String> = page.assets.iter().map(of).collect();
                let near: Vec<&str> = near.iter().map(String::as_str).collect();
                Err(Verdict::Permanent {
                    reason: self.missing(value, &near, page.total_entries),
                })
            }
        }
    }

    fn interpret(&self, answer: &Answer) -> Verdict {
        let body = answer.body.as_str();
        match answer.status.as_u16() {
            200..=299 => {
                let id = serde_json::from_str::<Value>(body)
                    .ok()
                    .and_then(|event| event.get("id").cloned())
                    .and_then(|id| match id {
                        Value::Number(id) => Some(id.to_string()),
                        Value::String(id) => Some(id),
                        _ => None,
                    });
                Verdict::Delivered {
                    detail: "asset event created".to_owned(),
                    remote_id: id,
                }
            }
            400 | 422 => Verdict::Permanent {
                reason: format!(
                    "Airflow rejected the asset event ({}): {}",
                    answer.status.as_u16(),
                    problem(body)
                ),
            },
            401 | 403 => refusal(
                &self.credentials,
                answer,
                "create asset events (it needs a role that can create events of this asset)",
            ),
            404 => {
                // A remembered id may be gone (the asset deleted): look it up again next time.
                self.forget_all();
                Verdict::Permanent {
                    reason: format!(
                        "Airflow answered 404: {}. The asset must exist: a DAG declares it \
                         (schedule=[Asset(...)] on Airflow 3, [Dataset(...)] on Airflow 2, or a \
                         task's outlets) and Airflow registers it when it parses that DAG file. \
                         Check also base_url and api (v2 is Airflow 3, v1 is Airflow 2.9+)",
                        problem(body)
                    ),
                }
            }
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

    fn event() -> ObjectEvent {
        ObjectEvent {
            size: Some(3),
            sequencer: Some("0055".into()),
            ..ObjectEvent::put("acme", "in/a b.csv")
        }
    }

    fn asset(yaml: &str) -> Result<(Endpoint, Templates), TargetError> {
        let config: AirflowAssetConfig = serde_saphyr::from_str(yaml).unwrap();
        let mut templates = Templates::new();
        let endpoint = TargetConfig::AirflowAsset(config).build("routes[0]", &mut templates)?;
        Ok((endpoint, templates))
    }

    fn build(yaml: &str) -> (Endpoint, Built) {
        let (endpoint, templates) = asset(yaml).unwrap();
        let event = event();
        let built = endpoint
            .check(&RenderContext::new(&templates, &event, "r"))
            .unwrap();
        (endpoint, built)
    }

    fn body(built: &Built) -> &Value {
        let Body::Json(body) = &built.request.body else {
            panic!("json body")
        };
        body
    }

    fn answer(status: u16, body: &str) -> Answer {
        Answer::new(StatusCode::from_u16(status).unwrap(), body)
    }

    #[test]
    fn v1_posts_the_dataset_uri_and_the_event_as_extra() {
        let (endpoint, built) =
            build("base_url: http://af/x\napi: v1\nasset: { uri: 's3://{{ bucket }}/landing' }\n");
        assert_eq!(
            built.request.url.as_str(),
            "http://af/x/api/v1/datasets/events"
        );
        assert_eq!(built.request.method, Method::POST);
        let body = body(&built);
        assert_eq!(body["dataset_uri"], "s3://acme/landing");
        assert_eq!(body["extra"]["key"], "in/a b.csv");
        assert_eq!(body["extra"]["bucket"], "acme");
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
        assert!(built.unresolved.is_none() && built.run_id.is_none());
        assert!(
            endpoint.target.complete(&built).is_none(),
            "nothing to look up"
        );
        assert_eq!(
            endpoint.description,
            "airflow_asset v1 uri s3://{{ bucket }}/landing"
        );
    }

    #[test]
    fn v2_with_an_id_posts_it_with_the_templated_extra() {
        let (_, built) =
            build("base_url: http://af\nasset: { id: 7 }\nextra: { key: '{{ key }}', n: 1 }\n");
        assert_eq!(built.request.url.as_str(), "http://af/api/v2/assets/events");
        assert_eq!(
            body(&built),
            &json!({"asset_id": 7, "extra": {"key": "in/a b.csv", "n": 1}})
        );
        assert!(built.unresolved.is_none());
    }

    #[test]
    fn v2_by_uri_looks_the_id_up_once_and_keeps_the_exact_match() {
        let (endpoint, built) = build("base_url: http://af/x\nasset: { uri: 's3://b/land_ing' }\n");
        assert_eq!(body(&built)["asset_id"], Value::Null);
        assert_eq!(built.unresolved.as_deref(), Some("s3://b/land_ing"));
        let Some(Pending::Lookup(lookup)) = endpoint.target.complete(&built) else {
            panic!("a lookup first")
        };
        assert_eq!(lookup.method, Method::GET);
        assert_eq!(
            lookup.url.as_str(),
            "http://af/x/api/v2/assets?uri_pattern=s3%3A%2F%2Fb%2Fland_ing&limit=100"
        );
        // Substring matches (and `_` as a LIKE wildcard) come back too; only the exact one counts.
        let page = r#"{"assets": [
            {"id": 3, "name": "a", "uri": "s3://b/land_ing/more"},
            {"id": 4, "name": "b", "uri": "s3://b/landXing"},
            {"id": 5, "name": "c", "uri": "s3://b/land_ing"}], "total_entries": 3}"#;
        let done = endpoint
            .target
            .looked_up(&built, &answer(200, page))
            .unwrap();
        assert_eq!(body(&done)["asset_id"], 5);
        assert!(done.unresolved.is_none());
        assert!(endpoint.target.complete(&done).is_none());
        // Remembered: the next event's request completes without a lookup.
        let Some(Pending::Ready(again)) = endpoint.target.complete(&built) else {
            panic!("remembered")
        };
        assert_eq!(body(&again)["asset_id"], 5);
        // A 404 on the POST forgets it (the asset may be gone).
        let Verdict::Permanent { reason } = endpoint.target.interpret(&answer(
            404,
            r#"{"detail": "Asset with ID: `5` was not found"}"#,
        )) else {
            panic!("404 is permanent")
        };
        assert!(
            reason.contains("Asset with ID: `5` was not found")
                && reason.contains("schedule=[Asset(...)]"),
            "{reason}"
        );
        assert!(matches!(
            endpoint.target.complete(&built),
            Some(Pending::Lookup(_))
        ));
    }

    #[test]
    fn v2_by_name_matches_names() {
        let (endpoint, built) = build("base_url: http://af\nasset: { name: landing }\n");
        let Some(Pending::Lookup(lookup)) = endpoint.target.complete(&built) else {
            panic!("a lookup first")
        };
        assert_eq!(lookup.url.query(), Some("name_pattern=landing&limit=100"));
        let page = r#"{"assets": [{"id": 1, "name": "Landing", "uri": "landing"},
                                   {"id": 2, "name": "landing", "uri": "s3://x"}], "total_entries": 2}"#;
        let done = endpoint
            .target
            .looked_up(&built, &answer(200, page))
            .unwrap();
        assert_eq!(body(&done)["asset_id"], 2);
        assert_eq!(endpoint.description, "airflow_asset v2 name landing");
    }

    #[test]
    fn an_asset_airflow_does_not_have_is_permanent_and_names_it() {
        let (endpoint, built) = build("base_url: http://af\nasset: { uri: 's3://b/landing' }\n");
        let page = r#"{"assets": [{"id": 3, "name": "n", "uri": "s3://b/landing/old"}], "total_entries": 120}"#;
        let Err(Verdict::Permanent { reason }) =
            endpoint.target.looked_up(&built, &answer(200, page))
        else {
            panic!("no exact match: permanent")
        };
        assert!(
            reason.starts_with("Airflow has no asset with uri \"s3://b/landing\"; assets whose uri contains it (the first 1 of 120 searched): s3://b/landing/old. An asset exists once a DAG declares it"),
            "{reason}"
        );
        let Err(Verdict::Permanent { reason }) = endpoint.target.looked_up(
            &built,
            &answer(200, r#"{"assets": [], "total_entries": 0}"#),
        ) else {
            panic!("none: permanent")
        };
        assert!(
            reason.starts_with("Airflow has no asset with uri \"s3://b/landing\". An asset"),
            "{reason}"
        );
        assert!(
            matches!(endpoint.target.complete(&built), Some(Pending::Lookup(_))),
            "nothing remembered"
        );
    }

    #[test]
    fn lookup_answers() {
        let (endpoint, built) = build(
            "base_url: http://af\nasset: { uri: 's3://b/l' }\nauth: { airflow_token: { secret: s } }\n",
        );
        let looked = |status, body| endpoint.target.looked_up(&built, &answer(status, body));
        let Err(Verdict::Permanent { reason }) = looked(404, r#"{"detail": "Not Found"}"#) else {
            panic!("404")
        };
        assert!(reason.contains("Airflow 2.9+ takes v1"), "{reason}");
        let Err(Verdict::Unauthorized { reason }) = looked(403, "Forbidden") else {
            panic!("403")
        };
        assert!(
            reason.starts_with("Airflow refused the credentials in secret \"s\" (403)")
                && reason.contains("may not read assets"),
            "{reason}"
        );
        assert!(matches!(looked(401, ""), Err(Verdict::Unauthorized { .. })));
        let Err(Verdict::Retry { reason, .. }) = looked(503, "busy") else {
            panic!("503 is worth retrying")
        };
        assert_eq!(reason, "looking up the asset's id: HTTP 503: busy");
        let Err(Verdict::Permanent { reason }) = looked(200, "<html>") else {
            panic!("not json")
        };
        assert!(reason.contains("not a list of assets"), "{reason}");
    }

    #[test]
    fn answers() {
        let (endpoint, _) = build("base_url: http://af\nasset: { id: 7 }\n");
        let interpret = |status, body| endpoint.target.interpret(&answer(status, body));
        assert_eq!(
            interpret(200, r#"{"id": 42, "asset_id": 7, "extra": {}}"#),
            Verdict::Delivered {
                detail: "asset event created".into(),
                remote_id: Some("42".into())
            }
        );
        let Verdict::Permanent { reason } = interpret(422, r#"{"detail": [{"msg": "bad"}]}"#)
        else {
            panic!("422")
        };
        assert!(
            reason.starts_with("Airflow rejected the asset event (422): "),
            "{reason}"
        );
        let Verdict::Unauthorized { reason } = interpret(403, "Forbidden") else {
            panic!("403")
        };
        assert!(reason.contains("may not create asset events"), "{reason}");
        let Verdict::Unauthorized { reason } = interpret(403, r#"{"detail": "Invalid JWT token"}"#)
        else {
            panic!("403 JWT")
        };
        assert!(
            reason.starts_with("Airflow refused the token (403)"),
            "{reason}"
        );
        assert!(matches!(interpret(503, ""), Verdict::Retry { .. }));
    }

    /// An asset event has no client id: a resent one is a second event.
    #[test]
    fn not_idempotent() {
        let (endpoint, _) = build("base_url: http://af\nasset: { id: 7 }\n");
        assert!(!endpoint.idempotent);
    }

    #[test]
    fn configuration_is_checked() {
        for (yaml, want) in [
            (
                "base_url: http://af\napi: v1\nasset: { name: n }\n",
                "routes[0].asset: api v1 (Airflow 2 dataset events) names a dataset by its URI",
            ),
            (
                "base_url: http://af\napi: v1\nasset: { id: 1 }\n",
                "routes[0].asset: api v1",
            ),
            (
                "base_url: http://af\napi: experimental\nasset: { uri: u }\n",
                "routes[0].api: the experimental API has no asset events",
            ),
            (
                "base_url: http://af\nasset: { uri: ' ' }\n",
                "routes[0].asset: must not be empty",
            ),
            (
                "base_url: http://af\nasset: { id: 1 }\nextra: [1]\n",
                "routes[0].extra: must be a mapping",
            ),
            (
                "base_url: http://af\nasset: { uri: '{{ nope }}' }\n",
                "template routes[0].asset.uri: undefined variable(s) nope",
            ),
        ] {
            let error = asset(yaml)
                .err()
                .unwrap_or_else(|| panic!("{yaml}: accepted"));
            assert!(error.to_string().starts_with(want), "{yaml}: {error}");
        }
        for yaml in [
            "base_url: http://af\nasset: { uri: u, name: n }\n",
            "base_url: http://af\nasset: s3://b\n",
            "base_url: http://af\nasset: { id: 1 }\ndag_id: d\n",
        ] {
            assert!(
                serde_saphyr::from_str::<AirflowAssetConfig>(yaml).is_err(),
                "{yaml}: accepted"
            );
        }
    }
}
