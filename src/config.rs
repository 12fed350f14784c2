//! Configuration: raw serde structs (unknown fields are errors) → a validated, compiled
//! [`Config`], built once at cold start. Errors name the route and the field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use rustls::pki_types::CertificateDer;
use serde::Deserialize;

use crate::delivery::RetryPolicy;
use crate::event::{ObjectEvent, Source};
use crate::http::{NetworkSettings, TlsRoots, parse_ca_bundle};
use crate::routing::{MatchConfig, Matcher};
use crate::secrets::{ParameterError, ParameterStore};
use crate::targets::{Endpoint, TargetConfig, TargetError};
use crate::template::{RenderContext, Templates};

/// Inline configuration (YAML or JSON).
pub const ENV_INLINE: &str = "BUCKET_TRIGGER_CONFIG";
/// Path of a configuration file.
pub const ENV_FILE: &str = "BUCKET_TRIGGER_CONFIG_FILE";
/// Name of an SSM Parameter Store parameter holding the configuration (String or
/// SecureString; `name:version` pins a version).
pub const ENV_SSM: &str = "BUCKET_TRIGGER_CONFIG_SSM";
/// The idempotency table of routes whose config names none (set by `template.yaml`).
pub const ENV_IDEMPOTENCY_TABLE: &str = "BUCKET_TRIGGER_IDEMPOTENCY_TABLE";
/// The failure queue, when `settings.failure_queue_url` is not given (set by `template.yaml`).
pub const ENV_FAILURE_QUEUE: &str = "BUCKET_TRIGGER_FAILURE_QUEUE_URL";
/// The SQS event source's `maxReceiveCount`, when `settings.max_receive_count` is not given.
pub const ENV_MAX_RECEIVE_COUNT: &str = "BUCKET_TRIGGER_MAX_RECEIVE_COUNT";
/// Environment variable overriding `settings.prewarm` (`true`/`1`, `false`/`0`).
pub const ENV_PREWARM: &str = "BUCKET_TRIGGER_PREWARM";

/// Where the configuration comes from: the first of these that is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// `--config FILE`.
    Argument(PathBuf),
    /// `BUCKET_TRIGGER_CONFIG`: the text itself.
    Inline(String),
    /// `BUCKET_TRIGGER_CONFIG_FILE`: a path (relative paths from the working directory: the
    /// function's own directory under Lambda).
    File(PathBuf),
    /// `BUCKET_TRIGGER_CONFIG_SSM`: a Parameter Store parameter, read at cold start.
    Parameter(String),
}

impl ConfigSource {
    /// `--config` if given, else the first of `BUCKET_TRIGGER_CONFIG`,
    /// `BUCKET_TRIGGER_CONFIG_FILE`, `BUCKET_TRIGGER_CONFIG_SSM` that `env` has (blank values
    /// count as unset). Also returns the variables that were set but not used.
    pub fn find(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(ConfigSource, Vec<&'static str>), ConfigError> {
        let set = |name: &str| env(name).filter(|value| !value.trim().is_empty());
        let mut found = path.map(|path| ConfigSource::Argument(path.to_owned()));
        let mut unused = Vec::new();
        for name in [ENV_INLINE, ENV_FILE, ENV_SSM] {
            let Some(value) = set(name) else { continue };
            if found.is_some() {
                unused.push(name);
                continue;
            }
            found = Some(match name {
                ENV_INLINE => ConfigSource::Inline(value),
                ENV_FILE => ConfigSource::File(value.into()),
                _ => ConfigSource::Parameter(value.trim().to_owned()),
            });
        }
        found
            .map(|source| (source, unused))
            .ok_or(ConfigError::Missing)
    }

    /// How errors name it: the path, the variable, or the parameter.
    pub fn origin(&self) -> String {
        match self {
            ConfigSource::Argument(path) | ConfigSource::File(path) => path.display().to_string(),
            ConfigSource::Inline(_) => ENV_INLINE.to_owned(),
            ConfigSource::Parameter(name) => format!("SSM parameter {name}"),
        }
    }
}

/// The configuration file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Tuning; every field optional.
    #[serde(default)]
    pub settings: RawSettings,
    /// Routes, tried in order; an event may match several.
    pub routes: Vec<RawRoute>,
}

/// `settings:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    /// How long a fetched secret is reused (default 300 s; env `BUCKET_TRIGGER_SECRETS_TTL_SECONDS`).
    pub secrets_ttl_seconds: Option<u64>,
    /// Requests in flight at once per invocation (default 16).
    pub max_concurrency: Option<usize>,
    /// Time limit of one HTTP attempt (default 10 000 ms).
    pub request_timeout_ms: Option<u64>,
    /// Time limit to connect (default 3 000 ms).
    pub connect_timeout_ms: Option<u64>,
    /// Attempts per delivery, the first included (default 4).
    pub max_attempts: Option<u32>,
    /// First backoff cap (default 200 ms); doubles per retry.
    pub backoff_base_ms: Option<u64>,
    /// Largest backoff (default 5 000 ms).
    pub backoff_max_ms: Option<u64>,
    /// Time kept free before the Lambda deadline (default 2 000 ms).
    pub deadline_margin_ms: Option<u64>,
    /// Trust anchors for HTTPS targets: `bundled` (default: Mozilla's roots compiled in, nothing
    /// read at start) or `system` (the OS store, which also holds private CAs added to it).
    pub tls_roots: Option<TlsRoots>,
    /// Private CAs trusted as well (an orchestrator behind a company CA): a PEM file bundled
    /// with the function, or `{ secret, field }` naming the secret that holds the PEM.
    pub ca_bundle: Option<CaBundleConfig>,
    /// DynamoDB table keeping idempotency records for every route (a route may name its own).
    pub idempotency_table: Option<String>,
    /// How long a completed record is kept (default 30 days): redeliveries and replays within
    /// it report "already triggered".
    pub idempotency_keep_days: Option<u64>,
    /// SQS queue receiving a failure record for every delivery that ends failed (env
    /// `BUCKET_TRIGGER_FAILURE_QUEUE_URL`); records are always logged too.
    pub failure_queue_url: Option<String>,
    /// The SQS event source's `maxReceiveCount` (env `BUCKET_TRIGGER_MAX_RECEIVE_COUNT`): on a
    /// message's last receive, a retryable failure is recorded and the message acknowledged
    /// instead of moving whole to the dead-letter queue.
    pub max_receive_count: Option<u32>,
    /// CloudWatch metrics (Embedded Metric Format lines in the log) under Lambda.
    pub metrics: Option<RawMetrics>,
    /// Under Lambda, before the first event (during init): fetch every configured secret,
    /// mint every target's token and open a connection to every target host, so the first
    /// event finds them warm (default false; env `BUCKET_TRIGGER_PREWARM`).
    pub prewarm: Option<bool>,
    /// HTTP push endpoints (Pub/Sub push, Eventarc) served on a Lambda function URL or by
    /// `bucket-trigger serve`, each with how its pusher is authenticated.
    #[serde(default)]
    pub push: Vec<RawPushEndpoint>,
}

/// One entry of `settings.push:` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPushEndpoint {
    /// The request path this entry serves (default `/`).
    pub path: Option<String>,
    /// The Google-signed OIDC token Pub/Sub push authentication (or Eventarc) puts in
    /// `Authorization: Bearer`.
    pub oidc: Option<RawOidc>,
    /// The verification token in the query string (`?token=...`), kept in a secret.
    pub token: Option<RawSecretField>,
    /// Accept pushes without either check (only behind something that checks them).
    #[serde(default)]
    pub allow_unauthenticated: bool,
}

/// `settings.push[].oidc:` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOidc {
    /// The `aud` the subscription's `--push-auth-token-audience` sets (default there: the
    /// push endpoint's URL).
    pub audience: String,
    /// The `email` claim: the subscription's `--push-auth-service-account`.
    pub service_account: String,
    /// Google's signing keys, as JWKS (default `https://www.googleapis.com/oauth2/v3/certs`).
    pub certs_url: Option<String>,
}

/// `{ secret, field }`: a value kept in a secret (its field of a JSON secret, else the whole).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecretField {
    /// Secret id.
    pub secret: String,
    /// Field of a JSON secret; default: the whole secret.
    pub field: Option<String>,
}

/// `settings.metrics:` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// Print the metric lines after each Lambda invocation (default true; env
    /// `BUCKET_TRIGGER_METRICS=0|1` overrides it).
    pub enabled: Option<bool>,
    /// CloudWatch namespace (default: env `BUCKET_TRIGGER_METRICS_NAMESPACE`, else `BucketTrigger`).
    pub namespace: Option<String>,
}

/// Compiled `settings.metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Whether a Lambda invocation prints its metric lines (before `BUCKET_TRIGGER_METRICS`).
    pub enabled: bool,
    /// CloudWatch namespace, checked against CloudWatch's rules at load.
    pub namespace: String,
}

/// The namespace metrics go to unless `settings.metrics.namespace` or
/// [`ENV_METRICS_NAMESPACE`] names another.
pub const DEFAULT_METRICS_NAMESPACE: &str = "BucketTrigger";

/// Environment variable naming the metrics' namespace when the config names none (the
/// template sets it, so that its alarm watches the namespace the function writes to).
pub const ENV_METRICS_NAMESPACE: &str = "BUCKET_TRIGGER_METRICS_NAMESPACE";

/// A CloudWatch namespace: 1 to 255 of `0-9A-Za-z.-_/#:` and space, not all spaces, not
/// starting with the reserved `AWS/`.
fn check_namespace(namespace: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_/#: ".contains(c);
    if namespace.trim().is_empty() || namespace.len() > 255 {
        return Err("must be 1 to 255 characters, not all spaces".to_owned());
    }
    if let Some(bad) = namespace.chars().find(|c| !allowed(*c)) {
        return Err(format!(
            "{bad:?} is not allowed in a CloudWatch namespace (letters, digits, and . - _ / # : space)"
        ));
    }
    if namespace.starts_with("AWS/") {
        return Err("namespaces starting with AWS/ are reserved for AWS".to_owned());
    }
    Ok(())
}

/// `settings.ca_bundle:` as written.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(
    untagged,
    expecting = "a PEM file path, or { secret: ID, field: NAME } naming the secret that holds the PEM"
)]
pub enum CaBundleConfig {
    /// A PEM file, read when the configuration loads (relative paths from the working
    /// directory: the function's own directory under Lambda).
    File(String),
    /// A secret holding the PEM, read when the HTTP client is built ([`crate::app::App::connect`]).
    Secret {
        /// Secret id.
        secret: String,
        /// Field holding the PEM; without one, the whole (plain-string) secret.
        field: Option<String>,
    },
}

/// Private CAs, compiled.
#[derive(Debug, Clone, Default)]
pub enum CaBundle {
    /// Only the roots of `tls_roots`.
    #[default]
    None,
    /// Read from a file at load time.
    Certificates(Vec<CertificateDer<'static>>),
    /// To be read from a secret when the client is built.
    Secret {
        /// Secret id.
        secret: String,
        /// Field, or the whole secret.
        field: Option<String>,
    },
}

/// One route as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Unique name; used in logs, reports and default run ids.
    pub name: String,
    /// Conditions on the event; absent = every object-created event.
    #[serde(default, rename = "match")]
    pub matcher: MatchConfig,
    /// One target ...
    pub target: Option<TargetConfig>,
    /// ... or several (fan-out).
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
    /// Let `http://` leave this machine (credentials and event data in clear text). Off:
    /// plain HTTP is for loopback hosts only.
    #[serde(default)]
    pub allow_http: bool,
    /// DynamoDB table keeping this route's idempotency records (else `settings.idempotency_table`).
    pub idempotency_table: Option<String>,
    /// What an HTTP push (Pub/Sub, Eventarc) is answered when a delivery fails permanently:
    /// `acknowledge` (default: 2xx and a failure record; one bad object must not loop) or
    /// `reject` (4xx: Pub/Sub redelivers until its dead-letter policy moves it aside).
    #[serde(default)]
    pub on_permanent_failure: OnPermanentFailure,
}

/// A route's `on_permanent_failure`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnPermanentFailure {
    /// Answer 2xx and write a failure record.
    #[default]
    Acknowledge,
    /// Answer 4xx and leave the message to Pub/Sub's dead-letter topic.
    Reject,
}

/// Compiled settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Secret cache TTL.
    pub secrets_ttl: Duration,
    /// Requests in flight at once.
    pub max_concurrency: usize,
    /// One attempt's time limit.
    pub request_timeout: Duration,
    /// Connect time limit.
    pub connect_timeout: Duration,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// HTTPS trust anchors.
    pub tls_roots: TlsRoots,
    /// Private CAs trusted as well.
    pub ca_bundle: CaBundle,
    /// How long a completed idempotency record is kept.
    pub idempotency_keep: Duration,
    /// Where failure records are queued, besides the log.
    pub failure_queue: Option<Url>,
    /// The SQS event source's `maxReceiveCount`, if known.
    pub max_receive_count: Option<u32>,
    /// CloudWatch metrics.
    pub metrics: MetricsSettings,
    /// HTTP push endpoints, each with its checks.
    pub push: Vec<PushEndpoint>,
    /// Warm secrets, tokens and connections during Lambda's init.
    pub prewarm: bool,
}

/// Google's signing keys for the OIDC tokens it mints, as a JSON Web Key Set.
pub const GOOGLE_CERTS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";

/// A compiled `settings.push` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEndpoint {
    /// The request path it serves, e.g. `/` or `/pubsub`.
    pub path: String,
    /// The OIDC token check, if on.
    pub oidc: Option<OidcCheck>,
    /// The secret holding the verification token (`?token=`), if that check is on.
    pub token: Option<(String, Option<String>)>,
}

/// What a pusher's Google-signed OIDC token must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcCheck {
    /// The `aud` claim.
    pub audience: String,
    /// The `email` claim (verified).
    pub service_account: String,
    /// Where Google's keys are published (JWKS).
    pub certs_url: Url,
}

impl Settings {
    /// What the HTTP client is built with: a CA bundle kept in a secret is added by the caller
    /// once read ([`crate::app::App::connect`]).
    pub fn network(&self) -> NetworkSettings {
        NetworkSettings {
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            tls_roots: self.tls_roots,
            ca_certificates: match &self.ca_bundle {
                CaBundle::Certificates(certificates) => certificates.clone(),
                CaBundle::None | CaBundle::Secret { .. } => Vec::new(),
            },
        }
    }
}

/// A compiled route.
#[derive(Debug)]
pub struct Route {
    /// Route name.
    pub name: String,
    /// Compiled conditions.
    pub matcher: Matcher,
    /// Its targets.
    pub targets: Vec<Endpoint>,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Settings.
    pub settings: Settings,
    /// Routes, in order.
    pub routes: Vec<Route>,
    /// Every template of every route.
    pub templates: Templates,
    /// Secret ids the routes read, sorted, deduplicated.
    pub secret_ids: Vec<String>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No configuration was given.
    #[error(
        "no configuration: pass --config FILE, or set {ENV_INLINE} (inline YAML/JSON), \
         {ENV_FILE} (a path) or {ENV_SSM} (an SSM parameter name)"
    )]
    Missing,
    /// The Parameter Store parameter could not be read.
    #[error("config: {0}")]
    Parameter(#[from] ParameterError),
    /// The file could not be read.
    #[error("cannot read config file {path}: {message}")]
    Read {
        /// The path.
        path: String,
        /// Why.
        message: String,
    },
    /// Not valid YAML, or fields of the wrong shape.
    #[error("config {origin}: {message}")]
    Syntax {
        /// Where the text came from.
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// Parsed, but a value is wrong.
    #[error("config {origin}: {field}: {message}")]
    Invalid {
        /// Where the text came from.
        origin: String,
        /// `routes[1] (sales-csv).targets[0].airflow.run_id` and the like.
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Whether any route keeps idempotency records.
    pub fn uses_idempotency(&self) -> bool {
        self.routes
            .iter()
            .flat_map(|route| &route.targets)
            .any(|endpoint| endpoint.idempotency_table.is_some())
    }

    /// Loads from `--config` if given, else `BUCKET_TRIGGER_CONFIG`, else
    /// `BUCKET_TRIGGER_CONFIG_FILE`, else `BUCKET_TRIGGER_CONFIG_SSM` (read from `parameters`,
    /// whose client is built only then). A variable set but shadowed by an earlier source is
    /// logged as a warning.
    pub async fn load(
        path: Option<&Path>,
        parameters: &ParameterStore,
    ) -> Result<Config, ConfigError> {
        let (source, unused) = ConfigSource::find(path, |name| std::env::var(name).ok())?;
        for name in unused {
            tracing::warn!(
                "{name} is set but not used: the config comes from {}",
                source.origin()
            );
        }
        Self::from_source(&source, parameters).await
    }

    /// Loads from one source.
    pub async fn from_source(
        source: &ConfigSource,
        parameters: &ParameterStore,
    ) -> Result<Config, ConfigError> {
        match source {
            ConfigSource::Argument(path) | ConfigSource::File(path) => Self::from_file(path),
            ConfigSource::Inline(text) => Self::parse(text, ENV_INLINE),
            ConfigSource::Parameter(name) => {
                let text = parameters.get(name).await?;
                Self::parse_quoting(text.expose(), &source.origin(), false)
            }
        }
    }

    /// Loads a file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and compiles YAML (or JSON, which is YAML) text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        Self::parse_quoting(text, origin, true)
    }

    /// [`Config::parse`]; a syntax error quotes the lines around it only if `quote` (not for a
    /// parameter that may be a SecureString: its lines go to no log).
    fn parse_quoting(text: &str, origin: &str, quote: bool) -> Result<Config, ConfigError> {
        let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            message: match quote {
                true => e.to_string(),
                false => e.without_snippet().to_string(),
            },
        })?;
        Self::compile(raw, origin)
    }

    /// Validates and compiles a parsed configuration.
    pub fn compile(raw: RawConfig, origin: &str) -> Result<Config, ConfigError> {
        let default_table = raw
            .settings
            .idempotency_table
            .clone()
            .or_else(|| env_nonempty(ENV_IDEMPOTENCY_TABLE));
        let invalid = |field: String, message: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            field,
            message,
        };
        // A target's error names its field once, up front, in full: a field named relative to
        // the target (`dag_id`, from rendering) gets the target's path before it.
        let target_invalid = |name: &str, error: TargetError, context: &str| {
            let full = |field: String| match field.starts_with(name) {
                true => field,
                false => format!("{name}.{field}"),
            };
            match error {
                TargetError::Invalid { field, reason } => {
                    invalid(full(field), format!("{reason}{context}"))
                }
                TargetError::Url { field, url, reason } => invalid(
                    full(field),
                    format!("invalid URL {url:?}: {reason}{context}"),
                ),
                TargetError::Template(error) => invalid(
                    full(error.name().to_owned()),
                    format!("template: {}{context}", error.message()),
                ),
            }
        };
        let settings =
            compile_settings(&raw.settings).map_err(|(field, message)| invalid(field, message))?;
        if raw.routes.is_empty() {
            return Err(invalid(
                "routes".into(),
                "at least one route is needed".into(),
            ));
        }
        let mut templates = Templates::new();
        let mut routes = Vec::with_capacity(raw.routes.len());
        let mut secret_ids = Vec::new();
        for (index, route) in raw.routes.iter().enumerate() {
            let here = format!("routes[{index}] ({})", route.name);
            if route.name.trim().is_empty() {
                return Err(invalid(
                    format!("routes[{index}].name"),
                    "must not be empty".into(),
                ));
            }
            if raw.routes[..index]
                .iter()
                .any(|other| other.name == route.name)
            {
                return Err(invalid(
                    format!("{here}.name"),
                    "duplicate route name".into(),
                ));
            }
            let matcher = Matcher::new(&route.matcher)
                .map_err(|e| invalid(format!("{here}.match.{}", e.field()), e.to_string()))?;
            let configs: Vec<(String, &TargetConfig)> =
                match (&route.target, route.targets.as_slice()) {
                    (Some(target), []) => vec![(format!("{here}.target"), target)],
                    (None, []) => return Err(invalid(here, "needs `target` or `targets`".into())),
                    (None, many) => many
                        .iter()
                        .enumerate()
                        .map(|(i, target)| (format!("{here}.targets[{i}]"), target))
                        .collect(),
                    (Some(_), _) => {
                        return Err(invalid(here, "give `target` or `targets`, not both".into()));
                    }
                };
            let mut targets = Vec::with_capacity(configs.len());
            for (name, config) in configs {
                secret_ids.extend(config.secret_ids().into_iter().map(str::to_owned));
                let mut endpoint = config
                    .build(&name, &mut templates)
                    .map_err(|e| target_invalid(&name, e, ""))?;
                if !route.allow_http {
                    config
                        .refuse_clear_text(&name)
                        .map_err(|e| target_invalid(&name, e, ""))?;
                }
                endpoint.allow_http = route.allow_http;
                endpoint.reject_permanent =
                    route.on_permanent_failure == OnPermanentFailure::Reject;
                endpoint.idempotency_table = route
                    .idempotency_table
                    .clone()
                    .or_else(|| default_table.clone())
                    .filter(|table| !table.is_empty());
                targets.push((name, endpoint));
            }
            // Render against every shape an event can take, so undefined names and filter
            // mistakes (a filter on the null `version_id` of an unversioned bucket) fail here,
            // at cold start, naming the shape, not on the first real object of that shape.
            for (shape, sample) in sample_events() {
                let render = RenderContext::new(&templates, &sample, &route.name);
                for (name, endpoint) in &targets {
                    endpoint
                        .check(&render)
                        .map_err(|e| target_invalid(name, e, &format!(" (rendering {shape})")))?;
                }
            }
            let targets = targets.into_iter().map(|(_, endpoint)| endpoint).collect();
            routes.push(Route {
                name: route.name.clone(),
                matcher,
                targets,
            });
        }
        if let CaBundle::Secret { secret, .. } = &settings.ca_bundle {
            secret_ids.push(secret.clone());
        }
        secret_ids.extend(
            settings
                .push
                .iter()
                .filter_map(|endpoint| endpoint.token.as_ref())
                .map(|(secret, _)| secret.clone()),
        );
        secret_ids.sort();
        secret_ids.dedup();
        Ok(Config {
            settings,
            routes,
            templates,
            secret_ids,
        })
    }

    /// The routes that `event` matches, in order.
    pub fn matching<'a>(&'a self, event: &'a ObjectEvent) -> impl Iterator<Item = &'a Route> + 'a {
        self.routes
            .iter()
            .filter(move |route| route.matcher.matches(event))
    }
}

fn compile_settings(raw: &RawSettings) -> Result<Settings, (String, String)> {
    let ms = |value: Option<u64>, default: u64| Duration::from_millis(value.unwrap_or(default));
    let ttl = match raw.secrets_ttl_seconds {
        Some(seconds) => seconds,
        None => match std::env::var("BUCKET_TRIGGER_SECRETS_TTL_SECONDS") {
            Ok(text) => text.trim().parse().map_err(|_| {
                (
                    "BUCKET_TRIGGER_SECRETS_TTL_SECONDS".to_owned(),
                    format!("{text:?} is not a whole number of seconds"),
                )
            })?,
            Err(_) => 300,
        },
    };
    let failure_queue = match raw
        .failure_queue_url
        .clone()
        .or_else(|| env_nonempty(ENV_FAILURE_QUEUE))
    {
        None => None,
        Some(text) => Some(queue_url(&text).map_err(|reason| {
            (
                "settings.failure_queue_url".to_owned(),
                format!("{text:?} {reason}"),
            )
        })?),
    };
    let max_receive_count = match raw.max_receive_count {
        Some(count) => Some(count),
        None => match env_nonempty(ENV_MAX_RECEIVE_COUNT) {
            None => None,
            Some(text) => Some(text.parse::<u32>().map_err(|_| {
                (
                    ENV_MAX_RECEIVE_COUNT.to_owned(),
                    format!("{text:?} is not a whole number"),
                )
            })?),
        },
    };
    if max_receive_count == Some(0) {
        return Err((
            "settings.max_receive_count".to_owned(),
            "must be at least 1 (SQS counts the first receive)".to_owned(),
        ));
    }
    let prewarm = match std::env::var(ENV_PREWARM) {
        Ok(text) => match text.trim() {
            "1" | "true" => true,
            "0" | "false" => false,
            _ => {
                return Err((
                    ENV_PREWARM.to_owned(),
                    format!("{text:?} is not true, false, 1 or 0"),
                ));
            }
        },
        Err(_) => raw.prewarm.unwrap_or(false),
    };
    let settings = Settings {
        prewarm,
        failure_queue,
        max_receive_count,
        secrets_ttl: Duration::from_secs(ttl),
        max_concurrency: raw.max_concurrency.unwrap_or(16),
        request_timeout: ms(raw.request_timeout_ms, 10_000),
        connect_timeout: ms(raw.connect_timeout_ms, 3_000),
        retry: RetryPolicy {
            max_attempts: raw.max_attempts.unwrap_or(4),
            base: ms(raw.backoff_base_ms, 200),
            max: ms(raw.backoff_max_ms, 5_000),
            deadline_margin: ms(raw.deadline_margin_ms, 2_000),
        },
        tls_roots: raw.tls_roots.unwrap_or_default(),
        idempotency_keep: Duration::from_secs(
            raw.idempotency_keep_days.unwrap_or(30).min(3650) * 86_400,
        ),
        ca_bundle: match &raw.ca_bundle {
            None => CaBundle::None,
            Some(CaBundleConfig::File(path)) => {
                let pem = std::fs::read(path).map_err(|error| {
                    (
                        "settings.ca_bundle".to_owned(),
                        format!("cannot read {path}: {error}"),
                    )
                })?;
                CaBundle::Certificates(parse_ca_bundle(&pem).map_err(|reason| {
                    ("settings.ca_bundle".to_owned(), format!("{path} {reason}"))
                })?)
            }
            Some(CaBundleConfig::Secret { secret, field }) => CaBundle::Secret {
                secret: secret.clone(),
                field: field.clone(),
            },
        },
        metrics: {
            let raw = raw.metrics.clone().unwrap_or_default();
            let (namespace, field) = match raw.namespace {
                Some(namespace) => (namespace, "settings.metrics.namespace"),
                None => match std::env::var(ENV_METRICS_NAMESPACE) {
                    Ok(namespace) if !namespace.is_empty() => (namespace, ENV_METRICS_NAMESPACE),
                    _ => (DEFAULT_METRICS_NAMESPACE.to_owned(), ""),
                },
            };
            check_namespace(&namespace).map_err(|message| (field.to_owned(), message))?;
            MetricsSettings {
                enabled: raw.enabled.unwrap_or(true),
                namespace,
            }
        },
        push: compile_push(&raw.push)?,
    };
    let positive = [
        ("settings.max_concurrency", settings.max_concurrency as u64),
        (
            "settings.request_timeout_ms",
            settings.request_timeout.as_millis() as u64,
        ),
        (
            "settings.connect_timeout_ms",
            settings.connect_timeout.as_millis() as u64,
        ),
        (
            "settings.max_attempts",
            u64::from(settings.retry.max_attempts),
        ),
    ];
    for (field, value) in positive {
        if value == 0 {
            return Err((field.to_owned(), "must be at least 1".to_owned()));
        }
    }
    // No wait or time limit longer than the longest a Lambda runs: a larger value is a typo
    // (u64::MAX milliseconds would push every deadline out of reach).
    const FIFTEEN_MINUTES_MS: u64 = 15 * 60 * 1000;
    let durations = [
        ("settings.request_timeout_ms", raw.request_timeout_ms),
        ("settings.connect_timeout_ms", raw.connect_timeout_ms),
        ("settings.backoff_base_ms", raw.backoff_base_ms),
        ("settings.backoff_max_ms", raw.backoff_max_ms),
        ("settings.deadline_margin_ms", raw.deadline_margin_ms),
    ];
    for (field, value) in durations {
        if value.is_some_and(|ms| ms > FIFTEEN_MINUTES_MS) {
            return Err((
                field.to_owned(),
                format!(
                    "must be at most {FIFTEEN_MINUTES_MS} (15 minutes, the longest a Lambda runs)"
                ),
            ));
        }
    }
    Ok(settings)
}

/// The shapes an event can take, each with what makes it different, for checking templates at
/// load time.
fn sample_events() -> [(&'static str, ObjectEvent); 7] {
    let versioned = sample_event();
    [
        ("a versioned S3 object", versioned.clone()),
        (
            "an object in an unversioned bucket (version_id null)",
            ObjectEvent {
                version_id: None,
                ..versioned.clone()
            },
        ),
        (
            "an EventBridge event (no SQS message id)",
            ObjectEvent {
                source: Source::EventBridge,
                record_id: None,
                ..versioned.clone()
            },
        ),
        (
            "an S3 event delivered through SQS",
            ObjectEvent {
                source: Source::SqsS3,
                ..versioned.clone()
            },
        ),
        (
            "a key with no folder",
            ObjectEvent {
                key: "file.csv".into(),
                ..versioned.clone()
            },
        ),
        (
            "a Cloud Storage object (generation as version, no sequencer, no region)",
            ObjectEvent {
                source: Source::Gcs,
                version_id: Some("1764057600123456".into()),
                sequencer: None,
                region: None,
                event_name: "ObjectCreated:Finalize".into(),
                ..versioned.clone()
            },
        ),
        (
            "a unicode key",
            ObjectEvent {
                key: "données/été 2026/報告 (v2).csv".into(),
                ..versioned
            },
        ),
    ]
}

/// An event with every field set, for checking templates at load time.
fn sample_event() -> ObjectEvent {
    ObjectEvent {
        source: Source::S3,
        bucket: "sample-bucket".into(),
        key: "sample/dir/file name.csv".into(),
        size: Some(1),
        etag: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
        version_id: Some("sample-version".into()),
        sequencer: Some("0055AED6DCD90281E5".into()),
        event_name: "ObjectCreated:Put".into(),
        event_time: Some("1970-01-01T00:00:00.000Z".into()),
        region: Some("us-east-1".into()),
        record_id: Some("sample-message".into()),
    }
}

/// An environment variable's value, if set and not blank.
fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// `settings.push`: paths unique and absolute, and every endpoint authenticated unless it
/// says `allow_unauthenticated: true`.
fn compile_push(raw: &[RawPushEndpoint]) -> Result<Vec<PushEndpoint>, (String, String)> {
    let mut endpoints: Vec<PushEndpoint> = Vec::with_capacity(raw.len());
    for (index, entry) in raw.iter().enumerate() {
        let here = format!("settings.push[{index}]");
        let path = entry.path.clone().unwrap_or_else(|| "/".to_owned());
        if !path.starts_with('/') || path.contains(['?', '#']) {
            return Err((
                format!("{here}.path"),
                format!("{path:?} must be a path such as / or /pubsub (no query)"),
            ));
        }
        if endpoints.iter().any(|other| other.path == path) {
            return Err((
                format!("{here}.path"),
                format!("{path:?} is served by an earlier entry"),
            ));
        }
        let oidc = match &entry.oidc {
            None => None,
            Some(oidc) => {
                Some(compile_oidc(oidc).map_err(|(f, m)| (format!("{here}.oidc.{f}"), m))?)
            }
        };
        let token = match &entry.token {
            None => None,
            Some(token) if token.secret.trim().is_empty() => {
                return Err((
                    format!("{here}.token.secret"),
                    "must not be empty".to_owned(),
                ));
            }
            Some(token) => Some((token.secret.clone(), token.field.clone())),
        };
        if oidc.is_none() && token.is_none() && !entry.allow_unauthenticated {
            return Err((
                here,
                "says nothing of how pushes are authenticated: give `oidc` (the Google-signed \
                 token of Pub/Sub push authentication or Eventarc) and/or `token` (the \
                 ?token= verification token, kept in a secret), or `allow_unauthenticated: \
                 true` behind something that checks them"
                    .to_owned(),
            ));
        }
        endpoints.push(PushEndpoint { path, oidc, token });
    }
    Ok(endpoints)
}

fn compile_oidc(raw: &RawOidc) -> Result<OidcCheck, (String, String)> {
    if raw.audience.trim().is_empty() {
        return Err((
            "audience".to_owned(),
            "must not be empty (the subscription's --push-auth-token-audience; by default \
             the push endpoint's URL)"
                .to_owned(),
        ));
    }
    if !raw.service_account.contains('@') {
        return Err((
            "service_account".to_owned(),
            format!(
                "{:?} is not a service account's email (NAME@PROJECT.iam.gserviceaccount.com)",
                raw.service_account
            ),
        ));
    }
    let text = raw.certs_url.as_deref().unwrap_or(GOOGLE_CERTS_URL);
    let certs_url =
        Url::parse(text).map_err(|e| ("certs_url".to_owned(), format!("{text:?}: {e}")))?;
    match certs_url.scheme() {
        "https" => {}
        "http" if crate::http::clear_text_host(&certs_url).is_none() => {}
        _ => {
            return Err((
                "certs_url".to_owned(),
                format!("{text:?} must be https:// (http:// only to this machine)"),
            ));
        }
    }
    Ok(OidcCheck {
        audience: raw.audience.clone(),
        service_account: raw.service_account.clone(),
        certs_url,
    })
}

/// An SQS queue URL (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`; plain `http://` only to
/// this machine, as for targets).
fn queue_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|_| "is not a URL".to_owned())?;
    match url.scheme() {
        "https" => {}
        "http" if crate::http::clear_text_host(&url).is_none() => {}
        _ => return Err("must be an https:// SQS queue URL".to_owned()),
    }
    if url
        .path_segments()
        .is_none_or(|mut s| s.next_back().is_none_or(str::is_empty))
    {
        return Err("has no queue name (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)".to_owned());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(yaml: &str) -> String {
        Config::parse(yaml, "test.yaml").unwrap_err().to_string()
    }

    const TARGET: &str = "target: { airflow: { base_url: 'https://af', dag_id: d } }";

    #[test]
    fn a_minimal_config_compiles_with_defaults() {
        let config = Config::parse(&format!("routes:\n  - name: r\n    {TARGET}\n"), "t").unwrap();
        assert_eq!(config.routes.len(), 1);
        assert_eq!(config.settings.retry.max_attempts, 4);
        assert_eq!(config.settings.max_concurrency, 16);
        assert!(config.secret_ids.is_empty());
        assert_eq!(
            config.settings.metrics,
            MetricsSettings {
                enabled: true,
                namespace: "BucketTrigger".into()
            }
        );
    }

    #[test]
    fn metrics_settings_are_read_and_the_namespace_checked() {
        let with = |metrics: &str| {
            Config::parse(
                &format!(
                    "settings: {{ metrics: {metrics} }}\nroutes:\n  - name: r\n    {TARGET}\n"
                ),
                "t.yaml",
            )
        };
        let config = with("{ enabled: false, namespace: 'Data/Landing #1' }").unwrap();
        assert_eq!(
            config.settings.metrics,
            MetricsSettings {
                enabled: false,
                namespace: "Data/Landing #1".into()
            }
        );
        for (bad, said) in [
            ("{ namespace: 'AWS/Lambda' }", "reserved"),
            ("{ namespace: '  ' }", "1 to 255"),
            ("{ namespace: 'caf\u{e9}' }", "is not allowed"),
            ("{ namespace: 'x{{ key }}' }", "is not allowed"),
            ("{ enable: true }", "unknown field"),
        ] {
            let error = with(bad).unwrap_err().to_string();
            assert!(error.contains(said), "{bad}: {error}");
            if said != "unknown field" {
                assert!(error.contains("settings.metrics.namespace"), "{error}");
            }
        }
        let long = format!("{{ namespace: {} }}", "n".repeat(256));
        assert!(with(&long).is_err());
        let longest = format!("{{ namespace: {} }}", "n".repeat(255));
        assert!(with(&longest).is_ok());
    }

    #[test]
    fn the_failure_queue_must_be_an_sqs_queue_url_over_https_beyond_this_machine() {
        let with = |settings: &str| {
            Config::parse(
                &format!("settings: {{ {settings} }}\nroutes:\n  - name: r\n    {TARGET}\n"),
                "t",
            )
        };
        let config = with(
            "failure_queue_url: 'https://sqs.eu-west-1.amazonaws.com/1/f', max_receive_count: 3",
        )
        .unwrap();
        assert_eq!(
            config.settings.failure_queue.unwrap().as_str(),
            "https://sqs.eu-west-1.amazonaws.com/1/f"
        );
        assert_eq!(config.settings.max_receive_count, Some(3));
        assert!(with("failure_queue_url: 'http://127.0.0.1:9/1/f'").is_ok());
        for (settings, said) in [
            (
                "failure_queue_url: 'http://sqs.example/1/f'",
                "must be an https:// SQS queue URL",
            ),
            ("failure_queue_url: 'sqs'", "is not a URL"),
            (
                "failure_queue_url: 'https://sqs.eu-west-1.amazonaws.com/'",
                "has no queue name",
            ),
            (
                "max_receive_count: 0",
                "settings.max_receive_count: must be at least 1",
            ),
        ] {
            let error = with(settings).unwrap_err().to_string();
            assert!(error.contains(said), "{settings}: {error}");
        }
    }

    #[test]
    fn errors_name_the_route_and_field() {
        let cases = [
            (
                format!("routes:\n  - name: r\n    bogus: 1\n    {TARGET}\n"),
                "unknown field",
            ),
            (
                "routes:\n  - name: r\n    target: { airflow: { base_url: 'https://af', dag_id: d, run_id: '{{ nope }}' } }\n".to_owned(),
                "config test.yaml: routes[0] (r).target.run_id: template: undefined variable(s) nope;",
            ),
            (
                "routes:\n  - name: r\n    target: { airflow: { base_url: 'ftp://af', dag_id: d } }\n".to_owned(),
                "config test.yaml: routes[0] (r).target.base_url: invalid URL",
            ),
            (
                format!("routes:\n  - name: r\n    {TARGET}\n  - name: r\n    {TARGET}\n"),
                "routes[1] (r).name: duplicate route name",
            ),
            (
                format!("routes:\n  - name: r\n    match: {{ glob: '[x' }}\n    {TARGET}\n"),
                "routes[0] (r).match.glob: invalid glob",
            ),
            ("routes:\n  - name: r\n".to_owned(), "routes[0] (r): needs `target` or `targets`"),
            ("routes: []\n".to_owned(), "at least one route"),
            (
                format!("settings: {{ max_attempts: 0 }}\nroutes:\n  - name: r\n    {TARGET}\n"),
                "settings.max_attempts: must be at least 1",
            ),
            (
                "routes:\n  - name: r\n    target: { kafka: {} }\n".to_owned(),
                "kafka",
            ),
            (
                format!("routes:\n  - name: r\n    match: {{ bucket: {{ a: 1 }} }}\n    {TARGET}\n"),
                "line 3 column 22: a string or a list of strings",
            ),
            (
                "routes:\n  - name: r\n    target: { airflow: { base_url: [1], dag_id: d } }\n".to_owned(),
                "a URL, or { secret: ID, field: NAME }",
            ),
            (
                "routes:\n  - name: r\n    target: { airflow: { base_url: 'https://af', dag_id: d, run_id: '{{ version_id | slug }}' } }\n".to_owned(),
                "(rendering an object in an unversioned bucket (version_id null))",
            ),
            (
                format!("settings: {{ deadline_margin_ms: 18446744073709551615 }}\nroutes:\n  - name: r\n    {TARGET}\n"),
                "settings.deadline_margin_ms: must be at most 900000",
            ),
            (
                format!("routes:\n  - name: r\n    match: {{ event: 'ObjectCreate:*' }}\n    {TARGET}\n"),
                "routes[0] (r).match.event: \"ObjectCreate:*\" is no S3 event name; did you mean \"ObjectCreated:*\"?",
            ),
        ];
        for (yaml, want) in cases {
            let err = error(&yaml);
            assert!(err.contains(want), "want {want:?} in: {err}");
            assert!(err.starts_with("config test.yaml: "), "{err}");
        }
    }

    #[test]
    fn plain_http_beyond_this_machine_needs_allow_http() {
        for (target, field) in [
            (
                "webhook: { url: 'http://hook.example.com/x' }",
                "routes[0] (r).target.url",
            ),
            (
                "airflow: { base_url: 'http://10.1.2.3:8080', dag_id: d }",
                "routes[0] (r).target.base_url",
            ),
            (
                "alteryx: { api: v3, base_url: 'https://a', workflow_id: w, auth: { oauth2: { secret: s, token_url: 'http://idp.example.com/token' } } }",
                "routes[0] (r).target.auth.token_url",
            ),
        ] {
            let yaml = format!("routes:\n  - name: r\n    target: {{ {target} }}\n");
            let error = Config::parse(&yaml, "t").unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("config t: {field}: http:// would send")),
                "{error}"
            );
            assert!(error.contains("allow_http: true"), "{error}");
            let allowed = format!("{yaml}    allow_http: true\n");
            Config::parse(&allowed, "t").unwrap();
        }
        for local in [
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "http://[::1]",
        ] {
            let yaml =
                format!("routes:\n  - name: r\n    target: {{ webhook: {{ url: '{local}' }} }}\n");
            Config::parse(&yaml, "t").unwrap();
        }
    }

    #[test]
    fn fan_out_and_matching() {
        let yaml = "
routes:
  - name: csv
    match: { suffix: .csv }
    targets:
      - airflow: { base_url: 'https://af', dag_id: a, auth: { basic: { secret: s1 } } }
      - webhook: { url: 'http://hook', auth: { bearer: { secret: s2 } } }
    allow_http: true
  - name: all
    target: { webhook: { url: 'https://hook', auth: { bearer: { secret: s1 } } } }
";
        let config = Config::parse(yaml, "t").unwrap();
        assert!(config.routes[0].targets[1].allow_http);
        assert!(!config.routes[1].targets[0].allow_http);
        assert_eq!(config.secret_ids, vec!["s1", "s2"]);
        let event = sample_event();
        let names: Vec<_> = config.matching(&event).map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["csv", "all"]);
        assert_eq!(config.routes[0].targets.len(), 2);
    }

    #[test]
    fn sources_are_tried_in_order_and_shadowed_ones_are_reported() {
        let env = |set: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                set.iter()
                    .find(|(var, _)| *var == name)
                    .map(|(_, value)| value.to_string())
            }
        };
        let all: &[(&str, &str)] = &[
            (ENV_INLINE, "routes: []"),
            (ENV_FILE, "bucket-trigger.yaml"),
            (ENV_SSM, " /bucket-trigger/config:3 "),
        ];
        let (source, unused) = ConfigSource::find(Some(Path::new("c.yaml")), env(all)).unwrap();
        assert_eq!(source, ConfigSource::Argument("c.yaml".into()));
        assert_eq!(unused, [ENV_INLINE, ENV_FILE, ENV_SSM]);

        let (source, unused) = ConfigSource::find(None, env(all)).unwrap();
        assert_eq!(source, ConfigSource::Inline("routes: []".into()));
        assert_eq!(unused, [ENV_FILE, ENV_SSM]);

        // Blank counts as unset.
        let (source, unused) = ConfigSource::find(
            None,
            env(&[(ENV_INLINE, " \n"), (ENV_FILE, "f.yaml"), (ENV_SSM, "/p")]),
        )
        .unwrap();
        assert_eq!(source, ConfigSource::File("f.yaml".into()));
        assert_eq!(unused, [ENV_SSM]);

        let (source, unused) = ConfigSource::find(None, env(&all[2..])).unwrap();
        assert_eq!(
            source,
            ConfigSource::Parameter("/bucket-trigger/config:3".into())
        );
        assert_eq!(source.origin(), "SSM parameter /bucket-trigger/config:3");
        assert!(unused.is_empty());

        let missing = ConfigSource::find(None, env(&[(ENV_SSM, "")])).unwrap_err();
        assert!(matches!(missing, ConfigError::Missing));
        assert!(missing.to_string().contains(ENV_SSM), "{missing}");
    }
}
