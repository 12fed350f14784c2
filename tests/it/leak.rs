//! The secret-leak proof (issue 9). Every auth kind (basic, bearer, the Airflow token
//! exchange, OAuth 1.0a in query and header, OAuth 2 with form and Basic client auth, Google
//! service-account keys and Workload Identity Federation, for access and ID tokens) signs with
//! secrets whose every value holds a distinct marker; the token endpoints mint tokens that are
//! markers too, and the function's AWS secret key and session token are markers. A stand-in
//! echoes what it received (authorization, decoded parameters, URL, body, headers) in its
//! answers: targets answer 401, 500, 200, and 401 then 500 then 200; token endpoints mint, or
//! echo the token request with 400, 401 or 500. The binary runs as the CLI (and `--dry-run`)
//! and as a Lambda under the runtime stand-in (a direct invocation, one failing retryably, an
//! SQS batch), with `RUST_LOG=trace`, in text and JSON logs, with secrets from a file and from
//! Secrets Manager (moto). Nothing it printed or answered may hold a marker, a base64 form of
//! one (standard or URL-safe, padded or not, at any alignment: `user:password` and a JWT header
//! included), a percent-encoded or JSON-quoted form, a piece of the private key, or a piece of a
//! signature or nonce made with the secrets.
//!
//! The test is live, so that a silent "nothing quoted" cannot pass: the stand-in must have
//! received every marker that goes on the wire (found by the same detector; only the OAuth 1.0a
//! consumer secrets and the AWS secret key never do), every route must end as its stand-in made
//! it end, and every answer that is quoted must show up in the outputs with its secrets replaced
//! by `****`. With the transport's scrub switched off, 24 of the 25 markers on the wire leak, and
//! pieces of OAuth 1.0a signatures and nonces (the session token sits deeper in the STS request
//! than any quote reaches).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

use crate::runtime::{Posted, serve};
use crate::support::{moto, moto_client, root, unique};

/// The user name of the password schemes: not a secret (it is not scrubbed on purpose), so
/// not a marker.
const USER: &str = "leak-user";
const EMAIL: &str = "leak@leak-project.iam.gserviceaccount.com";
const WIF_AUDIENCE: &str =
    "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/leak/providers/aws";
const AWS_KEY_ID: &str = "AKIALEAKTESTEXAMPLE1";
/// Characters every secret value ends with, so that its percent-encoded forms differ from it.
const SUFFIX: &str = "/+=&%";
/// Target answers, in the path: one status, or a sequence (one per request, the last repeats).
const TARGET_SPECS: &[&str] = &["401", "500", "200", "401-500-200"];
/// The same in JSON-escaped echoes: a status with `j`.
const ESCAPED_TARGET_SPECS: &[&str] = &["401j"];

/// How the stand-in echoes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Echoes {
    /// As received: the bytes of the request in the answer's text.
    Raw,
    /// Inside a JSON answer, escaped as PHP's `json_encode` (`\/`) and .NET's default encoder
    /// (`\u002B` for `+`, `\u0026` for `&`, every non-ASCII character) write it. A server that
    /// says the secret this way still says it; the targets decode such answers before quoting.
    Escaped,
}

/// Windows of derived secrets and key material: any quote of 24 characters holds one.
const WINDOW: usize = 16;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// Signs from the secret itself (basic, bearer, OAuth 1.0a).
    Static,
    /// One token endpoint (Airflow token, OAuth 2, a Google service-account key).
    Token,
    /// Google Workload Identity Federation: STS, then (if it impersonates) IAM Credentials.
    Wif { impersonates: bool },
}

/// One way of signing, on the target that takes it. `BASE` is the stand-in's URL for one
/// route, `SECRET` the secret id.
struct Variant {
    name: &'static str,
    kind: Kind,
    /// The target quotes a 200 answer (Alteryx's job id, a Workflows execution name).
    quotes_200: bool,
    target: &'static str,
}

const VARIANTS: &[Variant] = &[
    Variant {
        name: "basic",
        kind: Kind::Static,
        quotes_200: false,
        target: "{ airflow: { base_url: 'BASE', api: v1, dag_id: leak, auth: { basic: { secret: SECRET } } } }",
    },
    Variant {
        name: "webhook_basic",
        kind: Kind::Static,
        quotes_200: false,
        target: "{ webhook: { url: 'BASE/hook', auth: { basic: { secret: SECRET } } } }",
    },
    Variant {
        name: "bearer",
        kind: Kind::Static,
        quotes_200: true,
        target: "{ alteryx: { api: v3, base_url: 'BASE', workflow_id: leakwf, questions: [], auth: { bearer: { secret: SECRET } } } }",
    },
    Variant {
        name: "bearer_padded",
        kind: Kind::Static,
        quotes_200: false,
        target: "{ webhook: { url: 'BASE/hook', auth: { bearer: { secret: SECRET } } } }",
    },
    Variant {
        name: "bearer_plain",
        kind: Kind::Static,
        quotes_200: true,
        target: "{ workflows: { project: leak-project, location: europe-west1, workflow: leak, endpoint: 'BASE', auth: { bearer: { secret: SECRET } } } }",
    },
    Variant {
        name: "oauth1_query",
        kind: Kind::Static,
        quotes_200: true,
        target: "{ alteryx: { api: v1, base_url: 'BASE', workflow_id: leakwf, questions: [], auth: { oauth1: { secret: SECRET, placement: query } } } }",
    },
    Variant {
        name: "oauth1_header",
        kind: Kind::Static,
        quotes_200: true,
        target: "{ alteryx: { api: v1, base_url: 'BASE', workflow_id: leakwf, questions: [], auth: { oauth1: { secret: SECRET, placement: header } } } }",
    },
    Variant {
        name: "airflow_token",
        kind: Kind::Token,
        quotes_200: false,
        target: "{ airflow: { base_url: 'BASE', api: v2, dag_id: leak, auth: { airflow_token: { secret: SECRET } } } }",
    },
    Variant {
        name: "oauth2_form",
        kind: Kind::Token,
        quotes_200: true,
        target: "{ alteryx: { api: v3, base_url: 'BASE', workflow_id: leakwf, questions: [], auth: { oauth2: { secret: SECRET } } } }",
    },
    Variant {
        name: "oauth2_basic",
        kind: Kind::Token,
        quotes_200: true,
        target: "{ alteryx: { api: v3, base_url: 'BASE', workflow_id: leakwf, questions: [], auth: { oauth2: { secret: SECRET, client_auth: basic, scope: leak-scope, token_url: 'BASE/oauth2/token' } } } }",
    },
    Variant {
        name: "google_sa_access",
        kind: Kind::Token,
        quotes_200: true,
        target: "{ workflows: { project: leak-project, location: europe-west1, workflow: leak, endpoint: 'BASE', auth: { google_access_token: { secret: SECRET } } } }",
    },
    Variant {
        name: "google_sa_id",
        kind: Kind::Token,
        quotes_200: false,
        target: "{ airflow: { base_url: 'BASE', api: v1, dag_id: leak, auth: { google_id_token: { secret: SECRET, audience: leak-iap-audience } } } }",
    },
    Variant {
        name: "google_wif_access",
        kind: Kind::Wif { impersonates: true },
        quotes_200: true,
        target: "{ workflows: { project: leak-project, location: europe-west1, workflow: leak, endpoint: 'BASE', auth: { google_access_token: { secret: SECRET } } } }",
    },
    Variant {
        name: "google_wif_id",
        kind: Kind::Wif { impersonates: true },
        quotes_200: false,
        target: "{ airflow: { base_url: 'BASE', api: v1, dag_id: leak, auth: { google_id_token: { secret: SECRET, audience: leak-iap-audience } } } }",
    },
    Variant {
        name: "google_wif_direct",
        kind: Kind::Wif {
            impersonates: false,
        },
        quotes_200: false,
        target: "{ workflows_callback: { url: 'BASE/callbacks/leak', auth: { google_access_token: { secret: SECRET } } } }",
    },
];

impl Variant {
    /// How its token endpoints answer: `none` (no token), `ok` (they mint), or
    /// `{role}{status}` (that endpoint echoes with that status; `j`: in escaped JSON).
    fn token_specs(&self, echoes: Echoes) -> &'static [&'static str] {
        if echoes == Echoes::Escaped {
            return match self.kind {
                Kind::Static => &["none"],
                Kind::Token => &["ok", "tok401j"],
                Kind::Wif { impersonates: true } => &["ok", "sts401j", "iam401j"],
                Kind::Wif {
                    impersonates: false,
                } => &["ok", "sts401j"],
            };
        }
        match self.kind {
            Kind::Static => &["none"],
            Kind::Token => &["ok", "tok400", "tok401", "tok500"],
            Kind::Wif { impersonates: true } => &[
                "ok", "sts400", "sts401", "sts500", "iam400", "iam401", "iam500",
            ],
            Kind::Wif {
                impersonates: false,
            } => &["ok", "sts400", "sts401", "sts500"],
        }
    }

    /// Labels of the markers its secrets and token endpoints hold.
    fn labels(&self) -> Vec<String> {
        let n = self.name;
        let mut labels = match self.name {
            "basic" | "webhook_basic" | "airflow_token" => vec![format!("{n}-password")],
            "bearer" | "bearer_padded" | "bearer_plain" => vec![format!("{n}-token")],
            "oauth1_query" | "oauth1_header" => {
                vec![format!("{n}-consumer-key"), format!("{n}-consumer-secret")]
            }
            "oauth2_form" | "oauth2_basic" => {
                vec![format!("{n}-client-id"), format!("{n}-client-secret")]
            }
            "google_sa_access" | "google_sa_id" => vec![format!("{n}-private-key-id")],
            _ => Vec::new(),
        };
        match self.kind {
            Kind::Static => {}
            Kind::Token => labels.push(format!("{n}-minted-tok")),
            Kind::Wif { impersonates } => {
                labels.push(format!("{n}-minted-sts"));
                if impersonates {
                    labels.push(format!("{n}-minted-iam"));
                }
            }
        }
        labels
    }
}

/// A secret value: `MARKER-{label}-{4 hex}` (the core, which survives percent-encoding and JSON
/// or Debug escaping) followed by [`SUFFIX`].
struct Marker {
    label: String,
    core: String,
    value: String,
    /// Never sent by design (an OAuth 1.0a consumer secret, the AWS secret key: only
    /// signatures made with them are).
    off_wire: bool,
}

struct Markers(Vec<Marker>);

impl Markers {
    fn new() -> Markers {
        let mut labels: Vec<String> = VARIANTS.iter().flat_map(Variant::labels).collect();
        labels.push("aws-secret-access-key".into());
        labels.push("aws-session-token".into());
        Markers(
            labels
                .into_iter()
                .map(|label| {
                    let core = format!("MARKER-{label}-{:04x}", fastrand::u16(..));
                    Marker {
                        off_wire: label.ends_with("consumer-secret")
                            || label == "aws-secret-access-key",
                        value: format!("{core}{SUFFIX}"),
                        core,
                        label,
                    }
                })
                .collect(),
        )
    }

    fn value(&self, label: &str) -> &str {
        match self.0.iter().find(|m| m.label == label) {
            Some(marker) => &marker.value,
            None => panic!("no marker {label}"),
        }
    }

    /// The environment every run gets: the function's AWS credentials (Workload Identity
    /// Federation signs with them), trace logs, and no proxy.
    fn env(&self, json_logs: bool) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("RUST_LOG", "trace".to_owned()),
            ("AWS_ACCESS_KEY_ID", AWS_KEY_ID.to_owned()),
            (
                "AWS_SECRET_ACCESS_KEY",
                self.value("aws-secret-access-key").to_owned(),
            ),
            (
                "AWS_SESSION_TOKEN",
                self.value("aws-session-token").to_owned(),
            ),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("NO_PROXY", "127.0.0.1".to_owned()),
        ];
        if json_logs {
            env.push(("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()));
        }
        env
    }
}

/// The throwaway test key's PEM text.
fn pem() -> String {
    std::fs::read_to_string(root().join("tests/fixtures/test-rsa-key.pem")).unwrap()
}

/// One route: a variant, how its token endpoints answer, how its target answers.
struct Route {
    variant: &'static Variant,
    token: &'static str,
    target: &'static str,
}

impl Route {
    fn name(&self) -> String {
        format!("{}-{}-{}", self.variant.name, self.token, self.target)
    }

    /// The echo's tag for this route's requests (the first three path segments).
    fn tag(&self) -> String {
        format!("{}/{}/{}", self.variant.name, self.token, self.target)
    }

    /// The status its token endpoint answers instead of minting, if it does.
    fn token_failure(&self) -> Option<u16> {
        self.token
            .trim_start_matches(char::is_alphabetic)
            .trim_end_matches('j')
            .parse()
            .ok()
    }

    /// Failures worth retrying: a direct Lambda invocation answers them with an error, so
    /// they get an event of their own.
    fn retryable(&self) -> bool {
        self.token_failure() == Some(500) || self.target == "500"
    }

    /// Whether what the stand-in answered is quoted somewhere (report, error, log). A token
    /// endpoint's 500 is not (only its status is); a 200 only where the target reads it.
    fn quoted(&self) -> bool {
        match self.token_failure() {
            Some(status) => status != 500,
            None => self.target != "200" || self.variant.quotes_200,
        }
    }

    /// `(status, retryable, http_status)` expected in the report of a run that sends.
    fn expected(&self) -> (&'static str, bool, Option<u64>) {
        if let Some(status) = self.token_failure() {
            return ("failed", status == 500, None);
        }
        match (self.target, self.variant.kind) {
            ("200", _) => ("triggered", false, Some(200)),
            ("500", _) => ("failed", true, Some(500)),
            ("401" | "401j", _) | ("401-500-200", Kind::Static) => ("failed", false, Some(401)),
            _ => ("triggered", false, Some(200)),
        }
    }
}

fn routes(echoes: Echoes) -> Vec<Route> {
    let mut routes = Vec::new();
    for variant in VARIANTS {
        for &token in variant.token_specs(echoes) {
            let targets: &[&str] = if !matches!(token, "none" | "ok") {
                &["200"]
            } else if echoes == Echoes::Escaped {
                ESCAPED_TARGET_SPECS
            } else if variant.name == "bearer_padded" {
                // Only what an echo of it says matters.
                &["401"]
            } else {
                TARGET_SPECS
            };
            for &target in targets {
                routes.push(Route {
                    variant,
                    token,
                    target,
                });
            }
        }
    }
    routes
}

/// Config, secrets and minted tokens for a stand-in at `origin`.
struct Plan {
    config: String,
    secrets: Value,
    mints: HashMap<String, String>,
    routes: Vec<Route>,
}

impl Plan {
    fn new(origin: &str, markers: &Markers, prefix: &str, echoes: Echoes) -> Plan {
        let routes = routes(echoes);
        let mut config = String::from(
            "settings: { max_attempts: 3, backoff_base_ms: 1, backoff_max_ms: 5, request_timeout_ms: 5000, connect_timeout_ms: 1000 }\nroutes:\n",
        );
        let mut secrets = serde_json::Map::new();
        let v = |label: &str| markers.value(label).to_owned();
        for route in &routes {
            let variant = route.variant;
            let name = variant.name;
            let secret = match variant.kind {
                // Google credentials name their token endpoints: one secret per behaviour.
                Kind::Token if name.starts_with("google") => {
                    format!("{prefix}{name}.{}", route.token)
                }
                Kind::Wif { .. } => format!("{prefix}{name}.{}", route.token),
                _ => format!("{prefix}{name}"),
            };
            let token_base = format!("{origin}/{name}/{}/_", route.token);
            let value = match name {
                "basic" | "webhook_basic" | "airflow_token" => {
                    json!({ "username": USER, "password": v(&format!("{name}-password")) })
                }
                "bearer" => json!({ "token": v("bearer-token") }),
                // Pasted with blanks around it: HTTP drops them from the header it receives.
                "bearer_padded" => json!({ "token": format!(" {} ", v("bearer_padded-token")) }),
                "bearer_plain" => json!(v("bearer_plain-token")),
                "oauth1_query" | "oauth1_header" => json!({
                    "ALTERYX_KEY": v(&format!("{name}-consumer-key")),
                    "ALTERYX_SECRET": v(&format!("{name}-consumer-secret")),
                }),
                "oauth2_form" | "oauth2_basic" => json!({
                    "client_id": v(&format!("{name}-client-id")),
                    "client_secret": v(&format!("{name}-client-secret")),
                }),
                "google_sa_access" | "google_sa_id" => json!(
                    json!({
                        "type": "service_account",
                        "project_id": "leak-project",
                        "private_key_id": v(&format!("{name}-private-key-id")),
                        "private_key": pem(),
                        "client_email": EMAIL,
                        "client_id": "100000000000000000001",
                        "token_uri": format!("{token_base}/token"),
                    })
                    .to_string()
                ),
                _ => {
                    let mut account = json!({
                        "type": "external_account",
                        "audience": WIF_AUDIENCE,
                        "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
                        "token_url": format!("{token_base}/sts/token"),
                        "credential_source": {
                            "environment_id": "aws1",
                            "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
                        },
                    });
                    if variant.kind == (Kind::Wif { impersonates: true }) {
                        account["service_account_impersonation_url"] = json!(format!(
                            "{token_base}/iam/v1/projects/-/serviceAccounts/{EMAIL}:generateAccessToken"
                        ));
                    }
                    json!(account.to_string())
                }
            };
            secrets.insert(secret.clone(), value);
            let base = format!("{origin}/{}", route.tag());
            let event = if route.retryable() {
                "retryable"
            } else {
                "final"
            };
            config.push_str(&format!(
                "  - name: {}\n    match: {{ prefix: leak/{event}/ }}\n    target: {}\n",
                route.name(),
                variant
                    .target
                    .replace("BASE", &base)
                    .replace("SECRET", &secret)
            ));
        }
        let mut mints = HashMap::new();
        for variant in VARIANTS {
            for role in ["tok", "sts", "iam"] {
                let label = format!("{}-minted-{role}", variant.name);
                if markers.0.iter().any(|m| m.label == label) {
                    mints.insert(format!("{}/{role}", variant.name), v(&label));
                }
            }
        }
        Plan {
            config,
            secrets: Value::Object(secrets),
            mints,
            routes,
        }
    }
}

/// Where a request to the stand-in went: `/{variant}/{token spec}/{target spec}/{rest}`.
struct At<'a> {
    variant: &'a str,
    token: &'a str,
    target: &'a str,
    role: &'static str,
}

impl<'a> At<'a> {
    fn parse(path: &'a str) -> Option<At<'a>> {
        let mut parts = path.trim_start_matches('/').splitn(4, '/');
        let (variant, token, target) = (parts.next()?, parts.next()?, parts.next()?);
        let rest = parts.next().unwrap_or_default();
        let role = if rest == "sts/token" {
            "sts"
        } else if rest.starts_with("iam/") {
            "iam"
        } else if rest == "token" || rest.ends_with("auth/token") || rest.ends_with("oauth2/token")
        {
            "tok"
        } else {
            "target"
        };
        Some(At {
            variant,
            token,
            target,
            role,
        })
    }

    fn tag(&self) -> String {
        format!("{}/{}/{}", self.variant, self.token, self.target)
    }
}

/// The stand-in: token endpoints mint the planned tokens or echo; targets echo with the
/// status their path says.
struct Echo {
    mints: HashMap<String, String>,
    served: Mutex<HashMap<String, usize>>,
}

impl Respond for Echo {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let Some(at) = At::parse(request.url.path()) else {
            return ResponseTemplate::new(404);
        };
        let echo = echo(request, &at);
        if at.role == "target" {
            let statuses: Vec<u16> = at
                .target
                .split('-')
                .filter_map(|s| s.trim_end_matches('j').parse().ok())
                .collect();
            let served = {
                let mut served = self.served.lock().unwrap();
                let count = served.entry(at.tag()).or_default();
                *count += 1;
                *count - 1
            };
            let status = statuses
                .get(served)
                .or(statuses.last())
                .copied()
                .unwrap_or(404);
            return if status == 200 {
                ResponseTemplate::new(200)
                    .set_body_json(json!({ "id": echo, "name": echo, "state": "queued" }))
            } else if at.target.ends_with('j') {
                ResponseTemplate::new(status).set_body_raw(
                    format!(r#"{{"detail":{}}}"#, escaped_json(&echo)),
                    "application/json",
                )
            } else {
                ResponseTemplate::new(status).set_body_string(echo)
            };
        }
        let status: u16 = at
            .token
            .strip_prefix(at.role)
            .and_then(|status| status.trim_end_matches('j').parse().ok())
            .unwrap_or(200);
        if status != 200 && at.token.ends_with('j') {
            return ResponseTemplate::new(status).set_body_raw(
                format!(
                    r#"{{"error":"invalid_client","error_description":{}}}"#,
                    escaped_json(&echo)
                ),
                "application/json",
            );
        }
        if status != 200 {
            return ResponseTemplate::new(status)
                .set_body_json(json!({ "error": "invalid_client", "error_description": echo }));
        }
        let Some(token) = self.mints.get(&format!("{}/{}", at.variant, at.role)) else {
            return ResponseTemplate::new(404).set_body_string("no token planned here");
        };
        ResponseTemplate::new(200).set_body_json(match at.role {
            "sts" => json!({
                "access_token": token,
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "token_type": "Bearer",
                "expires_in": 3600,
            }),
            "iam" => json!({ "accessToken": token, "expireTime": "2099-01-01T00:00:00Z", "token": token }),
            _ => json!({ "access_token": token, "id_token": token, "token_type": "Bearer", "expires_in": 3600 }),
        })
    }
}

/// Everything a request carried, credentials first (a quote is cut after 200 characters, 300
/// for targets): the authorization, the decoded query and form parameters last first (where
/// credentials go: `client_secret` after `grant_type`, `assertion`, `subject_token`), the URL,
/// the body as sent, the other headers.
fn echo(request: &wiremock::Request, at: &At<'_>) -> String {
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let url = match request.url.query() {
        Some(query) => format!("{}?{query}", request.url.path()),
        None => request.url.path().to_owned(),
    };
    let mut params: Vec<String> = request
        .url
        .query_pairs()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if header("content-type").starts_with("application/x-www-form-urlencoded") {
        params.extend(form_urlencoded::parse(&request.body).map(|(k, v)| format!("{k}={v}")));
    }
    params.reverse();
    let others: Vec<String> = request
        .headers
        .iter()
        .filter(|(name, _)| name.as_str() != "authorization")
        .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap_or("?")))
        .collect();
    format!(
        "ECHO {} {} auth=[{}] params=[{}] url=[{url}] body=[{}] headers=[{}] END",
        at.tag(),
        at.role,
        header("authorization"),
        params.join(" "),
        String::from_utf8_lossy(&request.body),
        others.join("; ")
    )
}

/// `text` as a JSON string the way [`Echoes::Escaped`] says.
fn escaped_json(text: &str) -> String {
    let mut json = String::from("\"");
    for c in text.chars() {
        match c {
            '/' => json.push_str("\\/"),
            c if c.is_ascii_alphanumeric() || " -_.:;,=()[]{}*%?@!#$|~^".contains(c) => {
                json.push(c)
            }
            c => {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    json.push_str(&format!("\\u{unit:04X}"));
                }
            }
        }
    }
    json.push('"');
    json
}

/// A stand-in at a port of its own, and the plan for it: secret ids under `prefix`.
async fn stand_in(markers: &Markers, prefix: &str, echoes: Echoes) -> (MockServer, Plan) {
    let server = MockServer::start().await;
    let plan = Plan::new(&server.uri(), markers, prefix, echoes);
    Mock::given(any())
        .respond_with(Echo {
            mints: plan.mints.clone(),
            served: Mutex::new(HashMap::new()),
        })
        .mount(&server)
        .await;
    (server, plan)
}

// ------------------------------------------------------------------------------- detection

/// Strings that must not appear, each with what it is.
struct Detector {
    patterns: Vec<(String, String)>,
    /// Pattern ids by their first 8 bytes.
    by_prefix: HashMap<[u8; 8], Vec<usize>>,
    /// Whether any pattern starts with these two bytes (a cheap first filter).
    first2: Vec<bool>,
}

/// The base64 characters that encode `core` wherever it sits in a longer string: for each of
/// the three alignments, the characters fully determined by its bytes.
fn aligned_base64(core: &[u8], engine: &base64::engine::GeneralPurpose) -> Vec<String> {
    (0..3)
        .map(|k| {
            let mut bytes = vec![0u8; k];
            bytes.extend_from_slice(core);
            let encoded = engine.encode(&bytes);
            let start = (8 * k).div_ceil(6);
            let end = 8 * (k + core.len()) / 6;
            encoded[start..end].to_owned()
        })
        .collect()
}

/// Every form of a marker the outputs are searched for.
fn forms(marker: &Marker) -> Vec<(String, String)> {
    let value = marker.value.as_str();
    let form = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let mut forms = vec![
        ("raw".to_owned(), value.to_owned()),
        ("core".to_owned(), marker.core.clone()),
        ("form-encoded".to_owned(), form(value)),
        (
            "percent-encoded".to_owned(),
            utf8_percent_encode(value, NON_ALPHANUMERIC).to_string(),
        ),
        ("percent-encoded twice".to_owned(), form(&form(value))),
        (
            "JSON string".to_owned(),
            serde_json::to_string(value).unwrap(),
        ),
    ];
    let pair = format!("{USER}:{value}");
    for (what, text) in [("", value), (" of user:value", pair.as_str())] {
        for (name, engine) in [
            ("base64", &STANDARD),
            ("base64 unpadded", &STANDARD_NO_PAD),
            ("base64url", &URL_SAFE),
            ("base64url unpadded", &URL_SAFE_NO_PAD),
        ] {
            forms.push((format!("{name}{what}"), engine.encode(text)));
        }
    }
    for (name, engine) in [
        ("base64", &STANDARD_NO_PAD),
        ("base64url", &URL_SAFE_NO_PAD),
    ] {
        for (k, core) in aligned_base64(marker.core.as_bytes(), engine)
            .into_iter()
            .enumerate()
        {
            forms.push((format!("{name} of the core at offset {k} mod 3"), core));
        }
    }
    forms
}

/// Windows of `text` every quote of `WINDOW + WINDOW / 2` characters contains one of.
fn windows(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    (0..chars.len().saturating_sub(WINDOW - 1))
        .step_by(WINDOW / 2)
        .map(|i| chars[i..i + WINDOW].iter().collect())
        .collect()
}

impl Detector {
    fn new() -> Detector {
        Detector {
            patterns: Vec::new(),
            by_prefix: HashMap::new(),
            first2: vec![false; 1 << 16],
        }
    }

    fn add(&mut self, what: String, text: String) {
        assert!(text.len() >= 8, "pattern too short to search: {what}");
        if self.patterns.iter().any(|(_, t)| *t == text) {
            return;
        }
        let bytes = text.as_bytes();
        self.first2[((bytes[0] as usize) << 8) | bytes[1] as usize] = true;
        self.by_prefix
            .entry(bytes[..8].try_into().unwrap())
            .or_default()
            .push(self.patterns.len());
        self.patterns.push((what, text));
    }

    /// Every form of every marker, and windows of the private key.
    fn for_markers(markers: &Markers) -> Detector {
        let mut detector = Detector::new();
        for marker in &markers.0 {
            for (form, text) in forms(marker) {
                detector.add(format!("{} ({form})", marker.label), text);
            }
        }
        for line in pem().lines().filter(|line| !line.starts_with("-----")) {
            for window in windows(line) {
                detector.add("a piece of the private key".to_owned(), window);
            }
        }
        detector.add(
            "the private key's PEM label".to_owned(),
            "PRIVATE KEY".into(),
        );
        detector
    }

    /// Windows of the signatures, nonces and assertions the stand-in received: made with the
    /// secrets, as secret as they are.
    fn add_derived(&mut self, received: &[wiremock::Request]) {
        for request in received {
            let path = request.url.path();
            let mut derived: Vec<(&str, String)> = Vec::new();
            for (name, value) in request.url.query_pairs() {
                if name == "oauth_signature" || name == "oauth_nonce" {
                    derived.push(("OAuth 1.0a query parameter", value.into_owned()));
                }
            }
            if let Some(oauth) = request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("OAuth "))
            {
                for part in oauth.split(',') {
                    if let Some((name, value)) = part.trim().split_once('=')
                        && (name == "oauth_signature" || name == "oauth_nonce")
                    {
                        let value = percent_decode_str(value.trim_matches('"')).decode_utf8_lossy();
                        derived.push(("OAuth 1.0a header parameter", value.into_owned()));
                    }
                }
            }
            for (name, value) in form_urlencoded::parse(&request.body) {
                match name.as_ref() {
                    "assertion" => {
                        if let Some(signature) = value.rsplit('.').next() {
                            derived.push(("JWT assertion signature", signature.to_owned()));
                        }
                    }
                    "subject_token" => {
                        let decoded = percent_decode_str(&value).decode_utf8_lossy().into_owned();
                        if let Some(signature) = decoded
                            .split("Signature=")
                            .nth(1)
                            .map(|s| s.chars().take_while(char::is_ascii_hexdigit).collect())
                        {
                            derived.push(("SigV4 signature in the subject token", signature));
                        }
                    }
                    _ => {}
                }
            }
            for (what, value) in derived {
                let encoded: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
                for window in windows(&value).into_iter().chain(windows(&encoded)) {
                    self.add(format!("{what} (sent to {path})"), window);
                }
            }
        }
    }

    /// `(pattern id, byte offset)` of every occurrence in `text`.
    fn scan(&self, text: &str) -> Vec<(usize, usize)> {
        let bytes = text.as_bytes();
        let mut hits = Vec::new();
        for i in 0..bytes.len().saturating_sub(7) {
            if !self.first2[((bytes[i] as usize) << 8) | bytes[i + 1] as usize] {
                continue;
            }
            let key: [u8; 8] = bytes[i..i + 8].try_into().unwrap();
            for &id in self.by_prefix.get(&key).into_iter().flatten() {
                if bytes[i..].starts_with(self.patterns[id].1.as_bytes()) {
                    hits.push((id, i));
                }
            }
        }
        hits
    }

    /// The marker labels found in `text` (their forms only, not key pieces or derived ones).
    fn labels_in(&self, text: &str, markers: &Markers) -> BTreeSet<String> {
        self.scan(text)
            .into_iter()
            .filter_map(|(id, _)| {
                let what = &self.patterns[id].0;
                markers
                    .0
                    .iter()
                    .find(|m| what.starts_with(&format!("{} (", m.label)))
                    .map(|m| m.label.clone())
            })
            .collect()
    }
}

/// `text` without ANSI colour sequences (text logs colour field names).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Detector {
    /// The line around byte `at` of `text`, everything this detector finds in it shown as
    /// `<MARKER>`, cut to 400 characters around the find at `at`.
    fn line_of(&self, text: &str, at: usize) -> String {
        let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        let line = &text[start..end];
        let mut ranges: Vec<(usize, usize)> = self
            .scan(line)
            .into_iter()
            .map(|(id, from)| (from, from + self.patterns[id].1.len()))
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::new();
        for (from, to) in ranges {
            match merged.last_mut() {
                Some(last) if from <= last.1 => last.1 = last.1.max(to),
                _ => merged.push((from, to)),
            }
        }
        let (mut masked, mut cursor, mut focus) = (String::new(), 0, 0);
        for (from, to) in merged {
            masked.push_str(&line[cursor..from]);
            if start + from <= at {
                focus = masked.len();
            }
            masked.push_str("<MARKER>");
            cursor = to;
        }
        masked.push_str(&line[cursor..]);
        let chars: Vec<char> = masked.chars().collect();
        let index = masked[..focus].chars().count();
        chars[index.saturating_sub(200)..(index + 200).min(chars.len())]
            .iter()
            .collect()
    }
}

// ------------------------------------------------------------------------------- runs

/// What one run of the binary left behind.
struct Run {
    name: String,
    sends: bool,
    plan: Plan,
    /// Everything it printed or answered, by where it went.
    channels: Vec<(String, String)>,
    /// Reports whose outcomes are checked (the CLI's; the Lambda's direct answer).
    reports: Vec<Value>,
    /// Everything the stand-in received.
    received: Vec<wiremock::Request>,
    elapsed: Duration,
}

fn record(key: &str, sequencer: &str) -> Value {
    json!({
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-11-25T08:00:00.000Z",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": { "name": "leak-bucket", "arn": "arn:aws:s3:::leak-bucket" },
            "object": { "key": key, "size": 1, "eTag": "0123456789abcdef0123456789abcdef", "sequencer": sequencer },
        },
    })
}

fn final_event() -> Value {
    json!({ "Records": [record("leak/final/x.csv", "0062E9A0B3C4D5E6F7")] })
}

fn retryable_event() -> Value {
    json!({ "Records": [record("leak/retryable/x.csv", "0062E9A0B3C4D5E6F8")] })
}

fn both_event() -> Value {
    json!({ "Records": [
        record("leak/final/x.csv", "0062E9A0B3C4D5E6F7"),
        record("leak/retryable/x.csv", "0062E9A0B3C4D5E6F8"),
    ] })
}

fn sqs_event() -> Value {
    json!({ "Records": [{
        "messageId": "leak-message-1",
        "receiptHandle": "leak-receipt",
        "body": both_event().to_string(),
        "attributes": { "ApproximateReceiveCount": "1", "SentTimestamp": "1764057600000" },
        "messageAttributes": {},
        "md5OfBody": "0",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:leak",
        "awsRegion": "us-east-1",
    }] })
}

fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target/leak").join(unique(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// How a run is set up.
#[derive(Clone, Copy)]
struct Setup {
    json_logs: bool,
    dry_run: bool,
    /// Secrets from Secrets Manager (moto, through the SDK) instead of a secrets file.
    secrets_manager: bool,
    echoes: Echoes,
}

const TEXT: Setup = Setup {
    json_logs: false,
    dry_run: false,
    secrets_manager: false,
    echoes: Echoes::Raw,
};
const JSON: Setup = Setup {
    json_logs: true,
    ..TEXT
};

impl Setup {
    fn dry(self) -> Setup {
        Setup {
            dry_run: true,
            ..self
        }
    }

    fn with_secrets_manager(self) -> Setup {
        Setup {
            secrets_manager: true,
            ..self
        }
    }

    fn escaped(self) -> Setup {
        Setup {
            echoes: Echoes::Escaped,
            ..self
        }
    }

    fn describe(&self, path: &str) -> String {
        format!(
            "{path}{}, {}, secrets from {}{}",
            if self.dry_run { " dry run" } else { "" },
            if self.json_logs {
                "JSON logs"
            } else {
                "text logs"
            },
            if self.secrets_manager {
                "Secrets Manager"
            } else {
                "a file"
            },
            if self.echoes == Echoes::Escaped {
                ", echoes in escaped JSON"
            } else {
                ""
            }
        )
    }

    /// The stand-in and plan, with the secrets where the binary will read them: a file
    /// (its path returned), or Secrets Manager (moto; the environment points there).
    async fn prepare(
        &self,
        markers: &Markers,
        dir: &Path,
    ) -> (
        MockServer,
        Plan,
        Vec<(&'static str, String)>,
        Option<PathBuf>,
    ) {
        let mut env = markers.env(self.json_logs);
        if !self.secrets_manager {
            let (server, plan) = stand_in(markers, "", self.echoes).await;
            let file = write(dir, "secrets.json", &plan.secrets.to_string());
            return (server, plan, env, Some(file));
        }
        let (server, plan) = stand_in(markers, &format!("{}/", unique("leak")), self.echoes).await;
        let client = moto_client();
        for (id, value) in plan.secrets.as_object().unwrap() {
            let text = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            client
                .create_secret()
                .name(id)
                .secret_string(text)
                .send()
                .await
                .unwrap();
        }
        env.push(("AWS_ENDPOINT_URL", moto().to_owned()));
        (server, plan, env, None)
    }
}

/// `bucket-trigger invoke` on an event with a record for every route.
async fn cli(markers: &Markers, setup: Setup) -> Run {
    let started = Instant::now();
    let dir = scratch("cli");
    let (server, plan, env, secrets) = setup.prepare(markers, &dir).await;
    let config = write(&dir, "config.yaml", &plan.config);
    let event = write(&dir, "event.json", &both_event().to_string());
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_bucket-trigger"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env)
        .arg("invoke")
        .arg(&event)
        .arg("--config")
        .arg(&config)
        .args(["--timeout", "30"]);
    if let Some(secrets) = secrets {
        command.arg("--secrets-file").arg(secrets);
    }
    if setup.dry_run {
        command.arg("--dry-run");
    }
    let out = command.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("the report is not JSON ({e}):\n{stdout}\n{stderr}"));
    assert_eq!(
        out.status.code(),
        Some(if setup.dry_run { 0 } else { 1 }),
        "{stderr}"
    );
    Run {
        name: setup.describe("CLI"),
        sends: !setup.dry_run,
        channels: vec![
            ("stdout (the report)".into(), stdout),
            ("stderr (the log)".into(), stderr),
        ],
        reports: vec![report],
        received: server.received_requests().await.unwrap_or_default(),
        plan,
        elapsed: started.elapsed(),
    }
}

/// The binary in Lambda mode under the runtime stand-in: a direct invocation whose routes end
/// for good, one whose routes fail retryably, and an SQS batch holding both records.
async fn lambda(markers: &Markers, setup: Setup) -> Run {
    let started = Instant::now();
    let dir = scratch("lambda");
    let (server, plan, mut env, secrets) = setup.prepare(markers, &dir).await;
    env.push(("BUCKET_TRIGGER_CONFIG", plan.config.clone()));
    if let Some(secrets) = secrets {
        env.push(("BUCKET_TRIGGER_SECRETS_FILE", secrets.display().to_string()));
    }
    let dry_run = setup.dry_run;
    if dry_run {
        env.push(("BUCKET_TRIGGER_DRY_RUN", "1".into()));
    }
    let events: Vec<Vec<u8>> = [final_event(), retryable_event(), sqs_event()]
        .iter()
        .map(|event| event.to_string().into_bytes())
        .collect();
    let served = serve(&events, Duration::from_secs(30), &env).await;
    assert!(served.alive, "the process ended:\n{}", served.output);
    let answers: Vec<&Posted> = served
        .answers
        .iter()
        .map(|answer| {
            answer.as_ref().unwrap_or_else(|| {
                let tail: String = served.output.chars().rev().take(4000).collect();
                let tail: String = tail.chars().rev().collect();
                panic!(
                    "an invocation got no answer: {:?}\n...{tail}",
                    served.answers
                )
            })
        })
        .collect();
    let [direct, retryable, batch] = answers.as_slice() else {
        panic!("three answers")
    };
    let Posted::Response(report) = direct else {
        panic!("the direct invocation answers its report: {direct:?}")
    };
    if dry_run {
        assert!(matches!(retryable, Posted::Response(_)), "{retryable:?}");
        assert_eq!(batch.body()["batchItemFailures"], json!([]), "{batch:?}");
    } else {
        let Posted::Error(error) = retryable else {
            panic!("retryable failures fail the invocation: {retryable:?}")
        };
        assert_eq!(error["errorType"], "Retryable", "{error}");
        assert_eq!(
            batch.body()["batchItemFailures"][0]["itemIdentifier"],
            "leak-message-1",
            "{batch:?}"
        );
    }
    let mut channels = vec![("the function's log".to_owned(), served.output.clone())];
    for (index, answer) in answers.iter().enumerate() {
        let kind = match answer {
            Posted::Response(_) => "response",
            Posted::Error(_) => "error",
        };
        channels.push((
            format!("invocation {index}'s {kind}"),
            answer.body().to_string(),
        ));
    }
    Run {
        name: setup.describe("Lambda"),
        sends: !dry_run,
        channels,
        reports: vec![report.clone()],
        received: server.received_requests().await.unwrap_or_default(),
        plan,
        elapsed: started.elapsed(),
    }
}

// ------------------------------------------------------------------------------- checks

/// What a run proved, and what went wrong.
#[derive(Default)]
struct Findings {
    /// `(run / channel, line)` → what leaked there.
    leaks: BTreeMap<(String, String), BTreeSet<String>>,
    dead: Vec<String>,
    summary: Vec<String>,
}

impl Findings {
    fn check(&mut self, markers: &Markers, run: &Run) {
        let mut detector = Detector::for_markers(markers);
        let marker_patterns = detector.patterns.len();
        let forms = detector
            .patterns
            .iter()
            .filter(|(what, _)| {
                markers
                    .0
                    .iter()
                    .any(|m| what.starts_with(&format!("{} (", m.label)))
            })
            .count();
        detector.add_derived(&run.received);

        // 1. No marker, form, key piece or derived secret in anything the binary gave out.
        for (channel, text) in &run.channels {
            let stripped = strip_ansi(text);
            for (id, at) in detector.scan(&stripped) {
                let what = &detector.patterns[id].0;
                let line = detector.line_of(&stripped, at);
                self.leaks
                    .entry((format!("{} / {channel}", run.name), line))
                    .or_default()
                    .insert(what.clone());
            }
        }

        // 2. Live: the stand-in received every marker meant for the wire (or nothing, dry).
        let wire: String = run
            .received
            .iter()
            .map(|r| {
                let headers: Vec<String> = r
                    .headers
                    .iter()
                    .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("")))
                    .collect();
                format!(
                    "{} {}\n{}\n{}\n",
                    r.method,
                    r.url,
                    headers.join("\n"),
                    String::from_utf8_lossy(&r.body)
                )
            })
            .collect();
        let on_wire = detector.labels_in(&wire, markers);
        let expected: BTreeSet<String> = if run.sends {
            markers
                .0
                .iter()
                .filter(|m| !m.off_wire)
                .map(|m| m.label.clone())
                .collect()
        } else {
            BTreeSet::new()
        };
        if on_wire != expected {
            self.dead.push(format!(
                "{}: markers expected on the wire but not received: {:?}; received but not \
                 expected: {:?}",
                run.name,
                expected.difference(&on_wire).collect::<Vec<_>>(),
                on_wire.difference(&expected).collect::<Vec<_>>()
            ));
        }

        // 3. Live: every answer that is quoted reached the outputs, its secrets as `****`.
        let all: String = run
            .channels
            .iter()
            .map(|(_, text)| strip_ansi(text))
            .collect::<Vec<_>>()
            .join("\n");
        let mut quoted = 0;
        for route in run.plan.routes.iter().filter(|r| run.sends && r.quoted()) {
            let tag = match route.token_failure() {
                Some(_) => format!("ECHO {}/{}/", route.variant.name, route.token),
                None => format!("ECHO {} target", route.tag()),
            };
            // Escaped echoes quoted raw show `\/` (in JSON logs `\\/`) for each `/`.
            let tags = [
                tag.clone(),
                tag.replace('/', "\\/"),
                tag.replace('/', "\\\\/"),
            ];
            let scrubbed = tags.iter().any(|tag| {
                all.match_indices(tag.as_str()).any(|(at, _)| {
                    let after: String = all[at..].chars().take(250).collect();
                    after.contains("****")
                })
            });
            if scrubbed {
                quoted += 1;
            } else {
                self.dead.push(format!(
                    "{}: route {}: no quote of the stand-in's answer with a scrubbed secret ({tag:?} then ****)",
                    run.name,
                    route.name()
                ));
            }
        }
        if !run.sends && !run.received.is_empty() {
            self.dead.push(format!(
                "{}: a dry run sent {} requests",
                run.name,
                run.received.len()
            ));
        }

        // 4. The matrix did what it says: each route ended as its stand-in made it end.
        let mut outcomes = 0;
        for report in &run.reports {
            for outcome in report["outcomes"].as_array().into_iter().flatten() {
                let name = outcome["route"].as_str().unwrap_or_default();
                let Some(route) = run.plan.routes.iter().find(|r| r.name() == name) else {
                    self.dead
                        .push(format!("{}: unknown route {name}", run.name));
                    continue;
                };
                outcomes += 1;
                let (status, retryable, http) = if run.sends {
                    route.expected()
                } else {
                    ("dry_run", false, None)
                };
                let got = (
                    outcome["status"].as_str().unwrap_or_default(),
                    outcome["retryable"].as_bool().unwrap_or_default(),
                    outcome["http_status"].as_u64(),
                );
                if got != (status, retryable, http) {
                    self.dead.push(format!(
                        "{}: route {name} ended {got:?}, expected {:?}: {outcome}",
                        run.name,
                        (status, retryable, http)
                    ));
                }
            }
        }
        let stopped_at_token = run
            .plan
            .routes
            .iter()
            .filter(|r| r.token_failure().is_some());
        for route in stopped_at_token {
            let prefix = format!("/{}/{}/", route.variant.name, route.token);
            if run.received.iter().any(|r| {
                r.url.path().starts_with(&prefix)
                    && At::parse(r.url.path()).is_some_and(|at| at.role == "target")
            }) {
                self.dead.push(format!(
                    "{}: route {} reached its target without a token",
                    run.name,
                    route.name()
                ));
            }
        }
        let bytes: usize = run.channels.iter().map(|(_, text)| text.len()).sum();
        self.summary.push(format!(
            "{}: {} routes, {} outcomes checked, {} requests received, {} markers on the wire, \
             {quoted} quoted answers found scrubbed, {bytes} bytes of output searched for {} \
             patterns ({forms} forms of {} markers, {} key pieces, {} derived), {:.1} s",
            run.name,
            run.plan.routes.len(),
            outcomes,
            run.received.len(),
            on_wire.len(),
            detector.patterns.len(),
            markers.0.len(),
            marker_patterns - forms,
            detector.patterns.len() - marker_patterns,
            run.elapsed.as_secs_f64()
        ));
    }

    fn assert(self) {
        eprintln!("{}", self.summary.join("\n"));
        let what: BTreeSet<&str> = self
            .leaks
            .values()
            .flatten()
            .map(|what| what.split(" (").next().unwrap_or(what))
            .collect();
        let leaks: Vec<String> = self
            .leaks
            .iter()
            .take(60)
            .map(|((place, line), what)| format!("{place}: {what:?}:\n    {line}"))
            .collect();
        assert!(
            self.leaks.is_empty() && self.dead.is_empty(),
            "{} line(s) leak {} secret(s) {what:?}; the first {}:\n{}\n\n{} liveness failure(s):\n{}",
            self.leaks.len(),
            what.len(),
            leaks.len(),
            leaks.join("\n"),
            self.dead.len(),
            self.dead.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_leaks_from_the_cli_with_trace_logs() {
    let markers = Markers::new();
    let (text, json, dry_text, dry_json, secrets_manager) = tokio::join!(
        cli(&markers, TEXT),
        cli(&markers, JSON),
        cli(&markers, TEXT.dry()),
        cli(&markers, JSON.dry()),
        cli(&markers, JSON.with_secrets_manager()),
    );
    let mut findings = Findings::default();
    for run in [text, json, dry_text, dry_json, secrets_manager] {
        findings.check(&markers, &run);
    }
    findings.assert();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_leaks_from_the_lambda_runtime_with_trace_logs() {
    let markers = Markers::new();
    let (json, text, dry_json, secrets_manager) = tokio::join!(
        lambda(&markers, JSON),
        lambda(&markers, TEXT),
        lambda(&markers, JSON.dry()),
        lambda(&markers, JSON.with_secrets_manager()),
    );
    let mut findings = Findings::default();
    for run in [json, text, dry_json, secrets_manager] {
        findings.check(&markers, &run);
    }
    findings.assert();
}

/// Answers that say a secret in escaped JSON (`\/`, `\u002B`, `\u0026`), as PHP and .NET
/// servers write JSON: the targets and token endpoints decode such answers before quoting them.
///
/// Fails as long as the transport scrubs only the bytes of an answer (where a secret `a/b+c`
/// reads `a\/b\u002Bc` and is not found) while the targets (`problem`, `google_problem`) and
/// token endpoints (`oauth_error`) quote the decoded JSON, in which it reads `a/b+c` again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_leaks_from_echoes_in_escaped_json() {
    let markers = Markers::new();
    let mut findings = Findings::default();
    findings.check(&markers, &cli(&markers, JSON.escaped()).await);
    findings.assert();
}

/// The detector finds each form it claims to, wherever the marker sits, and nothing else.
#[test]
fn the_detector_finds_every_form_of_a_marker() {
    let markers = Markers::new();
    let detector = Detector::for_markers(&markers);
    let marker = &markers.0[0];
    let value = marker.value.as_str();
    let mut carriers = vec![
        format!("x{value}y"),
        format!("{:?}", format!("say \"{value}\"")),
        form_urlencoded::byte_serialize(format!("p={value}").as_bytes()).collect(),
        STANDARD.encode(format!("{USER}:{value}")),
        URL_SAFE_NO_PAD.encode(json!({ "typ": "JWT", "kid": value }).to_string()),
    ];
    for k in 0..3 {
        let text = format!("{}{value}!", "a".repeat(k));
        carriers.push(STANDARD.encode(&text));
        carriers.push(URL_SAFE_NO_PAD.encode(&text));
    }
    for carrier in &carriers {
        assert_eq!(
            detector.labels_in(carrier, &markers),
            BTreeSet::from([marker.label.clone()]),
            "{carrier}"
        );
    }
    let clean = format!(
        "MARKER-{} {} ****",
        marker.label,
        STANDARD.encode("leak-user:not-a-marker")
    );
    assert!(detector.scan(&clean).is_empty(), "{clean}");
    let key_line = pem().lines().nth(3).unwrap().to_owned();
    assert!(
        !detector
            .scan(&format!("...{}...", &key_line[5..40]))
            .is_empty()
    );
}
