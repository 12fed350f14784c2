//! Fault injection (issue 10): at least 1,000 object events of every shape, through the real
//! handler, against loopback stand-ins of Airflow v2, a webhook, Alteryx v3 and Google
//! Workflows that fail on purpose (5xx, 429 with Retry-After, a reset after reading the
//! request, an answer slower than the timeout, a 401 for a valid token), with every failed
//! invocation and every `batchItemFailures` message redelivered the way Lambda and SQS would.
//! Runs twice, idempotency store on (DynamoDB in moto) and off, counts what the stand-ins ran
//! per object version and target against the failure records on the (moto) failure queue,
//! then, store on, replays those records with the faults stopped.
//!
//! `scripts/fault-run.sh` starts moto and runs this; by hand:
//! `cargo run --example faults -- --moto http://127.0.0.1:5000 --events 1000 --seed 7`.
//! Exit status 1 when the store-on run loses or duplicates a run, breaks "one run xor one
//! record", or its replay does not bring every object version to exactly one run.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use bucket_trigger::app::App;
use bucket_trigger::auth::SigV4;
use bucket_trigger::config::Config;
use bucket_trigger::http::{Body, HeaderValue, Network, Request};
use bucket_trigger::replay::{self, Item, Options, Summary};
use bucket_trigger::secrets::SecretsFile;
use bucket_trigger::store::Queue;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BUCKET: &str = "acme-landing";
const REQUEST_TIMEOUT_MS: u64 = 400;
/// Lambda's time limit for one invocation.
const LAMBDA_TIMEOUT: Duration = Duration::from_secs(12);
/// Invocations running at once ("containers"), each with its own warm app.
const CONTAINERS: usize = 4;
/// SQS `maxReceiveCount` (then the DLQ) and Lambda's async attempts (then the destination).
const MAX_RECEIVES: u32 = 3;
const LAMBDA_ATTEMPTS: u32 = 3;

// ---------------------------------------------------------------------------------------------
// Arguments

struct Args {
    moto: String,
    events: usize,
    seed: u64,
    limit: Duration,
    modes: Vec<bool>,
}

fn args() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args {
        moto: String::new(),
        events: 1000,
        seed: 1,
        limit: Duration::from_secs(900),
        modes: vec![true, false],
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("moto") => args.moto = parser.value()?.string()?,
            Long("events") => args.events = parser.value()?.parse()?,
            Long("seed") => args.seed = parser.value()?.parse()?,
            Long("limit-seconds") => args.limit = Duration::from_secs(parser.value()?.parse()?),
            Long("store") => {
                args.modes = match parser.value()?.string()?.as_str() {
                    "on" => vec![true],
                    "off" => vec![false],
                    _ => vec![true, false],
                }
            }
            _ => return Err(arg.unexpected()),
        }
    }
    if args.moto.is_empty() {
        return Err("--moto URL is required (scripts/fault-run.sh starts moto)".into());
    }
    Ok(args)
}

fn main() {
    let args = match args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("faults: {error}");
            std::process::exit(2);
        }
    };
    // The product's default AWS chain (DynamoDB client, SQS signer) reads these: set before
    // any thread exists.
    for (name, value) in [
        ("AWS_ENDPOINT_URL", args.moto.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("NO_PROXY", "127.0.0.1"),
    ] {
        // SAFETY: single-threaded here; the runtime starts below.
        unsafe { std::env::set_var(name, value) };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let ok = runtime.block_on(async {
        match tokio::time::timeout(args.limit, run_all(&args)).await {
            Ok(ok) => ok,
            Err(_) => {
                eprintln!("faults: gave up after {:?} (--limit-seconds)", args.limit);
                false
            }
        }
    });
    std::process::exit(if ok { 0 } else { 1 });
}

async fn run_all(args: &Args) -> bool {
    let world = World::generate(args.events, args.seed);
    println!(
        "fault run: seed {}, {} objects ({} versioned), {} object x target deliveries, {} duplicate notifications; shapes: {}",
        args.seed,
        world.objects.len(),
        world
            .objects
            .iter()
            .filter(|o| o.version_id.is_some())
            .count(),
        world.expected.len(),
        world.duplicates,
        world
            .shapes
            .iter()
            .map(|(shape, n)| format!("{shape} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut results = Vec::new();
    let mut ok = true;
    for &store in &args.modes {
        let result = run_mode(args, &world, store).await;
        ok &= result.passed(store);
        results.push(result);
    }
    print_table(&world, &results);
    for result in &results {
        let store = on_off(result.store);
        let lines = result
            .problems
            .iter()
            .map(|p| format!("PROBLEM (store {store}): {p}"))
            .chain(
                result
                    .notes
                    .iter()
                    .map(|n| format!("NOTE (store {store}): {n}")),
            );
        let lines: Vec<String> = lines.collect();
        // Store off duplicates by design: a sample is enough.
        let shown = if result.store { lines.len() } else { 5 };
        for line in lines.iter().take(shown) {
            println!("{line}");
        }
        if lines.len() > shown {
            println!("... and {} more (store {store})", lines.len() - shown);
        }
    }
    println!("{}", if ok { "PASS" } else { "FAIL" });
    ok
}

fn on_off(store: bool) -> &'static str {
    if store { "on" } else { "off" }
}

// ---------------------------------------------------------------------------------------------
// The world: objects, routes, and the notifications that announce them

/// A target as the stand-ins know it.
#[derive(Clone, Copy)]
enum Ep {
    Airflow(&'static str),
    Hook(&'static str),
    Workflows(&'static str),
    Alteryx(&'static str),
}

impl Ep {
    fn id(self) -> String {
        match self {
            Ep::Airflow(dag) => format!("airflow:{dag}"),
            Ep::Hook(name) => format!("hook:{name}"),
            Ep::Workflows(name) => format!("workflows:{name}"),
            Ep::Alteryx(id) => format!("alteryx:{id}"),
        }
    }

    fn yaml(self, origin: &str) -> String {
        match self {
            Ep::Airflow(dag) => {
                format!("airflow: {{ base_url: '{origin}', api: v2, dag_id: {dag} }}")
            }
            Ep::Hook(name) => format!("webhook: {{ url: '{origin}/hook/{name}' }}"),
            Ep::Workflows(name) => format!(
                "workflows: {{ project: p, location: l, workflow: {name}, endpoint: '{origin}', \
                 argument: {{ key: '{{{{ key }}}}', version: '{{{{ version_id or etag }}}}' }}, \
                 auth: {{ google_access_token: {{ secret: gcp }} }} }}"
            ),
            Ep::Alteryx(id) => format!(
                "alteryx: {{ api: v3, base_url: '{origin}', workflow_id: {id}, questions: [ \
                 {{ name: Key, value: '{{{{ key }}}}' }}, {{ name: Version, value: '{{{{ version_id or etag }}}}' }} ], \
                 auth: {{ oauth2: {{ secret: alteryx }} }} }}"
            ),
        }
    }
}

struct RouteSpec {
    name: &'static str,
    prefix: Option<&'static str>,
    suffix: Option<&'static str>,
    targets: &'static [Ep],
}

/// Every object matches one prefix route, and `.csv` objects the Alteryx route too: 1 to 3
/// targets each.
const ROUTES: &[RouteSpec] = &[
    RouteSpec {
        name: "sales",
        prefix: Some("incoming/sales/"),
        suffix: None,
        targets: &[Ep::Airflow("load_sales"), Ep::Hook("sales")],
    },
    RouteSpec {
        name: "ops",
        prefix: Some("incoming/ops/"),
        suffix: None,
        targets: &[Ep::Workflows("ops")],
    },
    RouteSpec {
        name: "reports",
        prefix: Some("reports/"),
        suffix: None,
        targets: &[Ep::Workflows("reports"), Ep::Hook("reports")],
    },
    RouteSpec {
        name: "raw",
        prefix: Some("raw/"),
        suffix: None,
        targets: &[Ep::Hook("raw")],
    },
    RouteSpec {
        name: "csv",
        prefix: None,
        suffix: Some(".csv"),
        targets: &[Ep::Alteryx("wf-csv")],
    },
];

const PREFIXES: &[&str] = &["incoming/sales/", "incoming/ops/", "reports/", "raw/"];
const SUFFIXES: &[&str] = &[".csv", ".json", ".parquet"];

struct Object {
    key: String,
    size: u64,
    etag: String,
    version_id: Option<String>,
    sequencer: String,
}

impl Object {
    /// What the stand-ins call this object version.
    fn id(&self) -> String {
        object_id(&self.key, self.version_id.as_deref().unwrap_or(&self.etag))
    }

    fn endpoints(&self) -> Vec<Ep> {
        ROUTES
            .iter()
            .filter(|r| r.prefix.is_none_or(|p| self.key.starts_with(p)))
            .filter(|r| r.suffix.is_none_or(|s| self.key.ends_with(s)))
            .flat_map(|r| r.targets.iter().copied())
            .collect()
    }

    fn s3_record(&self, time: &str) -> Value {
        let mut object = json!({
            "key": self.key, "size": self.size, "eTag": self.etag, "sequencer": self.sequencer,
        });
        if let Some(version) = &self.version_id {
            object["versionId"] = json!(version);
        }
        json!({
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "eu-west-1",
            "eventTime": time, "eventName": "ObjectCreated:Put",
            "userIdentity": { "principalId": "AWS:AIDAEXAMPLE" },
            "requestParameters": { "sourceIPAddress": "203.0.113.10" },
            "responseElements": { "x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S" },
            "s3": {
                "s3SchemaVersion": "1.0", "configurationId": "bucket-trigger",
                "bucket": { "name": BUCKET, "ownerIdentity": { "principalId": "A3NL1KOZZKExample" }, "arn": format!("arn:aws:s3:::{BUCKET}") },
                "object": object,
            }
        })
    }

    fn eventbridge(&self, id: &str, time: &str) -> Value {
        let mut object = json!({
            "key": self.key, "size": self.size, "etag": self.etag, "sequencer": self.sequencer,
        });
        if let Some(version) = &self.version_id {
            object["version-id"] = json!(version);
        }
        json!({
            "version": "0", "id": id, "detail-type": "Object Created", "source": "aws.s3",
            "account": "123456789012", "time": time, "region": "eu-west-1",
            "resources": [format!("arn:aws:s3:::{BUCKET}")],
            "detail": {
                "version": "0", "bucket": { "name": BUCKET }, "object": object,
                "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012",
                "source-ip-address": "203.0.113.15", "reason": "PutObject",
            }
        })
    }
}

fn object_id(key: &str, version: &str) -> String {
    format!("{key}#{version}")
}

/// An SQS message as the queue holds it.
#[derive(Clone)]
struct Msg {
    id: String,
    body: String,
    receives: u32,
    objects: Vec<usize>,
}

/// A direct (asynchronous) invocation's event.
#[derive(Clone)]
struct Direct {
    payload: Value,
    attempts: u32,
    objects: Vec<usize>,
}

struct World {
    objects: Vec<Object>,
    /// (endpoint, object id) that must run once.
    expected: BTreeMap<(String, String), usize>,
    sqs: Vec<Msg>,
    direct: Vec<Direct>,
    duplicates: usize,
    shapes: BTreeMap<&'static str, usize>,
}

impl World {
    fn generate(count: usize, seed: u64) -> World {
        let mut rng = fastrand::Rng::with_seed(seed);
        let hex = |rng: &mut fastrand::Rng, n: usize| -> String {
            (0..n)
                .map(|_| char::from_digit(rng.u32(0..16), 16).unwrap_or('0'))
                .collect()
        };
        let objects: Vec<Object> = (0..count)
            .map(|i| {
                let prefix = PREFIXES[rng.usize(0..PREFIXES.len())];
                let suffix = SUFFIXES[rng.usize(0..SUFFIXES.len())];
                Object {
                    key: format!("{prefix}{i:05}-{}{suffix}", hex(&mut rng, 4)),
                    size: rng.u64(1..50_000_000),
                    etag: hex(&mut rng, 32),
                    // About a third from versioned buckets.
                    version_id: (rng.u8(0..100) < 30)
                        .then(|| (0..32).map(|_| rng.alphanumeric()).collect::<String>()),
                    sequencer: format!("0062E9A0B3{:08X}", 0x1000 + i * 7),
                }
            })
            .collect();
        let mut expected = BTreeMap::new();
        for (index, object) in objects.iter().enumerate() {
            for ep in object.endpoints() {
                expected.insert((ep.id(), object.id()), index);
            }
        }
        let time = "2026-11-30T08:00:00.000Z";
        let mut sqs: Vec<Msg> = Vec::new();
        let mut direct: Vec<Direct> = Vec::new();
        let mut shapes = BTreeMap::new();
        let mut duplicates = 0;
        let mut pending_s3: Vec<usize> = Vec::new();
        let mut message = 0usize;
        let flush = |pending: &mut Vec<usize>, direct: &mut Vec<Direct>| {
            if pending.is_empty() {
                return;
            }
            let records: Vec<Value> = pending
                .iter()
                .map(|&i| objects[i].s3_record(time))
                .collect();
            direct.push(Direct {
                payload: json!({ "Records": records }),
                attempts: 0,
                objects: std::mem::take(pending),
            });
        };
        for (index, object) in objects.iter().enumerate() {
            let shape = rng.u8(0..100);
            let copies = if rng.u8(0..100) < 8 { 2 } else { 1 };
            duplicates += copies - 1;
            for copy in 0..copies {
                message += 1;
                let id = format!("msg-{seed}-{message:06}");
                let body = match shape {
                    0..60 => Some(("sqs s3", json!({ "Records": [object.s3_record(time)] }))),
                    60..75 => Some((
                        "sqs sns-s3",
                        json!({
                            "Type": "Notification", "MessageId": id,
                            "TopicArn": "arn:aws:sns:eu-west-1:123456789012:acme-landing-events",
                            "Subject": "Amazon S3 Notification",
                            "Message": json!({ "Records": [object.s3_record(time)] }).to_string(),
                            "Timestamp": time, "SignatureVersion": "1", "Signature": "EXAMPLE",
                            "SigningCertUrl": "https://sns.eu-west-1.amazonaws.com/x.pem",
                            "UnsubscribeUrl": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
                            "MessageAttributes": {},
                        }),
                    )),
                    75..85 => Some(("sqs eventbridge", object.eventbridge(&id, time))),
                    _ => None,
                };
                let at = |len: usize, rng: &mut fastrand::Rng| match copy {
                    // A duplicate notification arrives a little after the first.
                    0 => len,
                    _ => len.saturating_sub(rng.usize(0..8)),
                };
                match body {
                    Some((name, body)) => {
                        *shapes.entry(name).or_insert(0) += 1;
                        let position = at(sqs.len(), &mut rng);
                        sqs.insert(
                            position,
                            Msg {
                                id,
                                body: body.to_string(),
                                receives: 0,
                                objects: vec![index],
                            },
                        );
                    }
                    None if shape < 95 => {
                        *shapes.entry("direct s3").or_insert(0) += 1;
                        if copy > 0 {
                            flush(&mut pending_s3, &mut direct);
                        }
                        pending_s3.push(index);
                        if pending_s3.len() >= rng.usize(1..4) {
                            flush(&mut pending_s3, &mut direct);
                        }
                    }
                    None => {
                        *shapes.entry("direct eventbridge").or_insert(0) += 1;
                        let position = at(direct.len(), &mut rng);
                        direct.insert(
                            position,
                            Direct {
                                payload: object.eventbridge(&id, time),
                                attempts: 0,
                                objects: vec![index],
                            },
                        );
                    }
                }
            }
        }
        flush(&mut pending_s3, &mut direct);
        World {
            objects,
            expected,
            sqs,
            direct,
            duplicates,
            shapes,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Stand-ins: one loopback HTTP/1.1 server for every target, failing on purpose

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    /// 503, nothing done.
    Unavailable,
    /// 503 for the first 9 requests of this delivery (a target down for longer than every retry).
    Outage,
    /// 429 with `Retry-After: 1`, nothing done.
    Throttled,
    /// The run is started, then the connection is reset (RST) instead of answering.
    ResetAfterRead,
    /// The run is started; the answer comes after the client's timeout.
    Slow,
    /// 401 for a valid token (first request of a delivery only): the client refreshes once.
    Unauthorized,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::Unavailable => "503",
            Fault::Outage => "503 outage (9 in a row)",
            Fault::Throttled => "429 Retry-After",
            Fault::ResetAfterRead => "reset after read",
            Fault::Slow => "slower than timeout",
            Fault::Unauthorized => "401 then refresh",
        }
    }
}

#[derive(Default)]
struct Ledger {
    /// Runs started per (endpoint, object id).
    runs: HashMap<(String, String), u32>,
    /// Requests seen per (endpoint, object id): picks the next fault.
    tries: HashMap<(String, String), u32>,
    /// Airflow run ids per DAG, with the object each belongs to.
    dag_runs: HashMap<(String, String), String>,
    tokens: HashSet<String>,
    /// Workflows executions started, by their `bucket_trigger` label (what a lookup lists).
    executions: HashMap<String, String>,
    faults: BTreeMap<&'static str, u64>,
    requests: u64,
    unknown: Vec<String>,
}

struct StandIn {
    origin: String,
    seed: u64,
    faults_on: AtomicBool,
    ledger: Mutex<Ledger>,
    tokens_issued: AtomicU64,
}

struct Http {
    method: String,
    path: String,
    authorization: Option<String>,
    body: Vec<u8>,
}

enum Reply {
    Answer(u16, Vec<(&'static str, String)>, String),
    Reset,
    Slow(u16, String),
}

fn fnv(parts: &[&str], seed: u64, n: u32) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for part in parts {
        for byte in part.bytes().chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash ^= u64::from(n);
    hash = hash.wrapping_mul(0x0100_0000_01b3);
    // A final avalanche (splitmix64).
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

impl StandIn {
    async fn start(seed: u64) -> Arc<StandIn> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let origin = format!("http://{}", listener.local_addr().expect("addr"));
        let stand_in = Arc::new(StandIn {
            origin,
            seed,
            faults_on: AtomicBool::new(true),
            ledger: Mutex::new(Ledger::default()),
            tokens_issued: AtomicU64::new(0),
        });
        let server = stand_in.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(connection(stream, server.clone()));
            }
        });
        stand_in
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn token(&self, prefix: &str) -> Reply {
        let n = self.tokens_issued.fetch_add(1, Ordering::Relaxed);
        let token = format!("{prefix}-{n}");
        self.ledger().tokens.insert(token.clone());
        Reply::Answer(
            200,
            vec![],
            json!({ "access_token": token, "token_type": "Bearer", "expires_in": 3600 })
                .to_string(),
        )
    }

    /// The fault for the `n`th request (0-based) of this object version on this endpoint:
    /// a function of the seed and those three only, whatever order requests arrive in.
    fn fault(&self, ep: &str, object: &str, n: u32, token: bool) -> Fault {
        if !self.faults_on.load(Ordering::Relaxed) {
            return Fault::None;
        }
        // 2% of deliveries meet a long outage: 503 for every attempt of every receive, so SQS
        // and Lambda give up on them (the failure queue, the DLQ, the on-failure destination).
        if fnv(&[ep, object], self.seed, u32::MAX) % 1000 < 20 && n < 9 {
            return Fault::Outage;
        }
        match fnv(&[ep, object], self.seed, n) % 1000 {
            0..80 => Fault::Unavailable,
            80..130 => Fault::Throttled,
            130..180 => Fault::ResetAfterRead,
            180..230 => Fault::Slow,
            230..300 if token && n == 0 => Fault::Unauthorized,
            _ => Fault::None,
        }
    }

    fn reply(&self, request: &Http) -> Reply {
        let segments: Vec<&str> = request
            .path
            .split('?')
            .next()
            .unwrap_or_default()
            .trim_matches('/')
            .split('/')
            .collect();
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let bearer = request
            .authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(str::to_owned);
        let ok = |body: Value| Reply::Answer(200, vec![], body.to_string());
        match (request.method.as_str(), segments.as_slice()) {
            ("POST", ["token"]) => self.token("google"),
            ("POST", ["webapi", "oauth2", "token"]) => self.token("alteryx"),
            ("GET", ["api", "v2", "dags", dag]) => ok(json!({ "dag_id": dag, "is_paused": false })),
            ("GET", ["api", "v2", "dags", dag, "dagRuns", run_id]) => {
                let found = self
                    .ledger()
                    .dag_runs
                    .contains_key(&(dag.to_string(), run_id.to_string()));
                match found {
                    true => ok(json!({ "dag_run_id": run_id, "state": "queued" })),
                    false => {
                        Reply::Answer(404, vec![], json!({ "detail": "not found" }).to_string())
                    }
                }
            }
            ("POST", ["api", "v2", "dags", dag, "dagRuns"]) => {
                let run_id = body["dag_run_id"].as_str().unwrap_or_default().to_owned();
                let conf = &body["conf"];
                let object = object_id(
                    conf["key"].as_str().unwrap_or_default(),
                    conf["version_id"]
                        .as_str()
                        .or(conf["etag"].as_str())
                        .unwrap_or_default(),
                );
                let ep = format!("airflow:{dag}");
                self.act(&ep, &object, false, None, |ledger| {
                    let key = (dag.to_string(), run_id.clone());
                    if ledger.dag_runs.contains_key(&key) {
                        return (
                            409,
                            json!({ "detail": "Unique constraint violation" }),
                            false,
                        );
                    }
                    ledger.dag_runs.insert(key, object.clone());
                    (
                        200,
                        json!({ "dag_run_id": run_id, "state": "queued" }),
                        true,
                    )
                })
            }
            ("POST", ["hook", name]) => {
                let object = object_id(
                    body["key"].as_str().unwrap_or_default(),
                    body["version_id"]
                        .as_str()
                        .or(body["etag"].as_str())
                        .unwrap_or_default(),
                );
                self.act(&format!("hook:{name}"), &object, false, None, |_| {
                    (200, json!({ "ok": true }), true)
                })
            }
            ("POST", ["webapi", "v3", "workflows", id, "jobs"]) => {
                let answer = |name: &str| {
                    body["questions"]
                        .as_array()
                        .and_then(|qs| qs.iter().find(|q| q["name"] == name))
                        .and_then(|q| q["value"].as_str())
                        .unwrap_or_default()
                        .to_owned()
                };
                let object = object_id(&answer("Key"), &answer("Version"));
                let job = format!("job-{}", self.ledger().requests);
                self.act(&format!("alteryx:{id}"), &object, true, bearer, |_| {
                    (200, json!({ "id": job }), true)
                })
            }
            (
                "POST",
                [
                    "v1",
                    "projects",
                    "p",
                    "locations",
                    "l",
                    "workflows",
                    name,
                    "executions",
                ],
            ) => {
                let argument: Value = body["argument"]
                    .as_str()
                    .and_then(|a| serde_json::from_str(a).ok())
                    .unwrap_or(Value::Null);
                let object = object_id(
                    argument["key"].as_str().unwrap_or_default(),
                    argument["version"].as_str().unwrap_or_default(),
                );
                let execution = format!(
                    "projects/p/locations/l/workflows/{name}/executions/x{}",
                    self.ledger().requests
                );
                let label = body["labels"]["bucket_trigger"].as_str().map(str::to_owned);
                self.act(
                    &format!("workflows:{name}"),
                    &object,
                    true,
                    bearer,
                    |ledger| {
                        if let Some(label) = label {
                            ledger.executions.insert(label, execution.clone());
                        }
                        (200, json!({ "name": execution, "state": "ACTIVE" }), true)
                    },
                )
            }
            // The "did it run?" lookup: the executions carrying a `bucket_trigger` label (a
            // read: no faults).
            (
                "GET",
                [
                    "v1",
                    "projects",
                    "p",
                    "locations",
                    "l",
                    "workflows",
                    _,
                    "executions",
                ],
            ) => {
                let url = reqwest::Url::parse(&format!("http://stand-in{}", request.path));
                let filter = url.ok().and_then(|url| {
                    url.query_pairs()
                        .find(|(name, _)| name == "filter")
                        .map(|(_, value)| value.into_owned())
                });
                let label = filter.as_deref().and_then(|f| {
                    f.strip_prefix("labels.bucket_trigger=\"")
                        .and_then(|rest| rest.strip_suffix('"'))
                });
                let Some(label) = label else {
                    return Reply::Answer(
                        400,
                        vec![],
                        json!({ "error": { "message": "bad filter" } }).to_string(),
                    );
                };
                let ledger = self.ledger();
                match ledger.executions.get(label) {
                    Some(name) => ok(json!({ "executions": [
                        { "name": name, "state": "ACTIVE", "labels": { "bucket_trigger": label } }
                    ] })),
                    None => ok(json!({})),
                }
            }
            _ => {
                self.ledger()
                    .unknown
                    .push(format!("{} {}", request.method, request.path));
                Reply::Answer(404, vec![], json!({ "detail": "no such path" }).to_string())
            }
        }
    }

    /// One request that may start a run: picks the fault, runs `start` (which says whether a
    /// run was started) unless the fault answers first, and counts it.
    fn act(
        &self,
        ep: &str,
        object: &str,
        token: bool,
        bearer: Option<String>,
        start: impl FnOnce(&mut Ledger) -> (u16, Value, bool),
    ) -> Reply {
        let mut ledger = self.ledger();
        ledger.requests += 1;
        if token && !bearer.is_some_and(|b| ledger.tokens.contains(&b)) {
            return Reply::Answer(401, vec![], json!({ "error": "invalid_token" }).to_string());
        }
        let pair = (ep.to_owned(), object.to_owned());
        let tries = ledger.tries.entry(pair.clone()).or_insert(0);
        let n = *tries;
        *tries += 1;
        let fault = self.fault(ep, object, n, token);
        *ledger.faults.entry(fault.name()).or_insert(0) += 1;
        match fault {
            Fault::Unavailable | Fault::Outage => {
                return Reply::Answer(503, vec![], json!({ "error": "unavailable" }).to_string());
            }
            Fault::Throttled => {
                return Reply::Answer(
                    429,
                    vec![("Retry-After", "1".into())],
                    json!({ "error": "slow down" }).to_string(),
                );
            }
            Fault::Unauthorized => {
                return Reply::Answer(401, vec![], json!({ "error": "token expired" }).to_string());
            }
            Fault::None | Fault::ResetAfterRead | Fault::Slow => {}
        }
        let (status, body, started) = start(&mut ledger);
        if started {
            *ledger.runs.entry(pair).or_insert(0) += 1;
        }
        match fault {
            Fault::ResetAfterRead => Reply::Reset,
            Fault::Slow => Reply::Slow(status, body.to_string()),
            _ => Reply::Answer(status, vec![], body.to_string()),
        }
    }

    fn runs(&self, ep: &str, object: &str) -> u32 {
        self.ledger()
            .runs
            .get(&(ep.to_owned(), object.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}

/// Serves one keep-alive connection until the client closes it or a fault ends it.
async fn connection(mut stream: TcpStream, stand_in: Arc<StandIn>) {
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        match stand_in.reply(&request) {
            Reply::Answer(status, headers, body) => {
                if write_answer(&mut stream, status, &headers, &body)
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Reply::Reset => {
                // RST, not FIN: the client sees "connection reset" after sending everything.
                // (Deprecated because a non-zero linger blocks on drop; zero does not.)
                #[allow(deprecated)]
                let _ = stream.set_linger(Some(Duration::ZERO));
                return;
            }
            Reply::Slow(status, body) => {
                tokio::time::sleep(Duration::from_millis(REQUEST_TIMEOUT_MS * 2 + 100)).await;
                let _ = write_answer(&mut stream, status, &[], &body).await;
                return;
            }
        }
    }
}

async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Http> {
    let read = async {
        let head_end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if buffer.len() > 64 * 1024 || stream.read_buf(buffer).await.ok()? == 0 {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next()?.split(' ');
        let method = first.next()?.to_owned();
        let path = first.next()?.to_owned();
        let mut length = 0usize;
        let mut authorization = None;
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().ok()?,
                    "authorization" => authorization = Some(value.trim().to_owned()),
                    _ => {}
                }
            }
        }
        while buffer.len() < head_end + length {
            if length > 1024 * 1024 || stream.read_buf(buffer).await.ok()? == 0 {
                return None;
            }
        }
        let body = buffer[head_end..head_end + length].to_vec();
        buffer.drain(..head_end + length);
        Some(Http {
            method,
            path,
            authorization,
            body,
        })
    };
    // An idle keep-alive connection is closed after a while.
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .ok()
        .flatten()
}

async fn write_answer(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(&'static str, String)],
    body: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        409 => "Conflict",
        429 => "Too Many Requests",
        _ => "Service Unavailable",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await
}

// ---------------------------------------------------------------------------------------------
// AWS pieces in moto: the idempotency table and the queues

async fn create_table(name: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let config = bucket_trigger::secrets::aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(config);
    client
        .create_table()
        .table_name(name)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .expect("key schema"),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute"),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create the idempotency table in moto");
}

/// One SQS JSON-protocol call to moto, signed with the test credentials.
async fn sqs(moto: &str, action: &str, body: Value) -> Value {
    let mut request = Request::post(
        moto.parse().expect("moto URL"),
        Body::Text {
            content_type: "application/x-amz-json-1.0",
            text: body.to_string(),
        },
    );
    request.set_header(
        "x-amz-target",
        HeaderValue::Plain(format!("AmazonSQS.{action}")),
    );
    let credentials = Credentials::new("testing", "testing", None, None, "faults");
    SigV4::new("sqs", "us-east-1")
        .sign_with(&mut request, &credentials, SystemTime::now())
        .expect("sign");
    let mut builder = reqwest::Client::new()
        .post(request.url.clone())
        .header("content-type", "application/x-amz-json-1.0")
        .body(body.to_string());
    for (name, value) in &request.headers {
        let value = match value {
            HeaderValue::Plain(text) => text.clone(),
            HeaderValue::Secret { value, .. } => value.expose().to_owned(),
        };
        builder = builder.header(name.as_str(), value);
    }
    let answer = builder.send().await.expect("moto SQS");
    let status = answer.status();
    let text = answer.text().await.unwrap_or_default();
    assert!(status.is_success(), "SQS {action}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Every message on the queue, received (hidden for a minute) and then made visible again.
async fn read_queue(moto: &str, queue: &str) -> Vec<(String, String)> {
    let mut seen = BTreeMap::new();
    let mut handles = Vec::new();
    loop {
        let answer = sqs(
            moto,
            "ReceiveMessage",
            json!({ "QueueUrl": queue, "MaxNumberOfMessages": 10, "VisibilityTimeout": 60 }),
        )
        .await;
        let messages = answer["Messages"].as_array().cloned().unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            let id = message["MessageId"].as_str().unwrap_or_default().to_owned();
            seen.insert(id, message["Body"].as_str().unwrap_or_default().to_owned());
            handles.push(
                message["ReceiptHandle"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    for handle in handles {
        sqs(
            moto,
            "ChangeMessageVisibility",
            json!({ "QueueUrl": queue, "ReceiptHandle": handle, "VisibilityTimeout": 0 }),
        )
        .await;
    }
    seen.into_iter().collect()
}

// ---------------------------------------------------------------------------------------------
// Lambda and SQS, simulated: batches, redelivery, the DLQ and the on-failure destination

#[derive(Default)]
struct Platform {
    sqs: VecDeque<Msg>,
    direct: VecDeque<Direct>,
    in_flight: usize,
    dlq: Vec<Msg>,
    destination: Vec<Direct>,
    invocations: u64,
    errors: u64,
    redelivered: u64,
    rng: Option<fastrand::Rng>,
}

enum Job {
    Batch(Vec<Msg>),
    Direct(Direct),
}

impl Platform {
    fn take_job(&mut self) -> Option<Option<Job>> {
        if self.sqs.is_empty() && self.direct.is_empty() {
            return (self.in_flight > 0).then_some(None);
        }
        let rng = self.rng.get_or_insert_with(|| fastrand::Rng::with_seed(0));
        let take_sqs = !self.sqs.is_empty() && (self.direct.is_empty() || rng.u8(0..100) < 70);
        let size = rng.usize(1..=10);
        self.in_flight += 1;
        self.invocations += 1;
        Some(Some(match take_sqs {
            true => {
                let size = size.min(self.sqs.len());
                Job::Batch(
                    self.sqs
                        .drain(..size)
                        .map(|mut m| {
                            m.receives += 1;
                            m
                        })
                        .collect(),
                )
            }
            false => {
                let mut event = self.direct.pop_front().expect("non-empty");
                event.attempts += 1;
                Job::Direct(event)
            }
        }))
    }
}

fn sqs_payload(batch: &[Msg]) -> Value {
    let records: Vec<Value> = batch
        .iter()
        .map(|m| {
            json!({
                "messageId": m.id, "receiptHandle": format!("rh-{}-{}", m.id, m.receives),
                "body": m.body,
                "attributes": {
                    "ApproximateReceiveCount": m.receives.to_string(),
                    "SentTimestamp": "1764489600000", "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1764489600010",
                },
                "messageAttributes": {}, "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:bucket-trigger-buffer",
                "awsRegion": "eu-west-1",
            })
        })
        .collect();
    json!({ "Records": records })
}

fn lambda_event(payload: Value, n: u64) -> lambda_runtime::LambdaEvent<Value> {
    let mut context = lambda_runtime::Context::default();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    context.deadline = (now + LAMBDA_TIMEOUT).as_millis() as u64;
    context.request_id = format!("invocation-{n}");
    lambda_runtime::LambdaEvent::new(payload, context)
}

/// One container: takes invocations until nothing is left, with its own warm app.
async fn container(app: App, platform: Arc<Mutex<Platform>>) {
    let lock = || platform.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let next = lock().take_job();
        let job = match next {
            None => return,
            Some(None) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            Some(Some(job)) => job,
        };
        let n = lock().invocations;
        match job {
            Job::Batch(batch) => {
                let answer =
                    bucket_trigger::handler::handle(&app, lambda_event(sqs_payload(&batch), n))
                        .await;
                let failed: HashSet<String> = match answer {
                    Ok(answer) => {
                        serde_json::to_value(answer).unwrap_or(Value::Null)["batchItemFailures"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                            .collect()
                    }
                    // The invocation failed: every message comes back.
                    Err(_) => batch.iter().map(|m| m.id.clone()).collect(),
                };
                let mut platform = lock();
                platform.in_flight -= 1;
                for message in batch.into_iter().filter(|m| failed.contains(&m.id)) {
                    match message.receives >= MAX_RECEIVES {
                        true => platform.dlq.push(message),
                        false => {
                            platform.redelivered += 1;
                            platform.sqs.push_back(message);
                        }
                    }
                }
            }
            Job::Direct(event) => {
                let answer =
                    bucket_trigger::handler::handle(&app, lambda_event(event.payload.clone(), n))
                        .await;
                let mut platform = lock();
                platform.in_flight -= 1;
                if answer.is_err() {
                    platform.errors += 1;
                    match event.attempts >= LAMBDA_ATTEMPTS {
                        true => platform.destination.push(event),
                        false => {
                            platform.redelivered += 1;
                            platform.direct.push_back(event);
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One run: store on or off

fn config_text(origin: &str, queue: &str, table: Option<&str>) -> String {
    let table = table
        .map(|t| format!("  idempotency_table: {t}\n"))
        .unwrap_or_default();
    let mut text = format!(
        "settings:\n  failure_queue_url: '{queue}'\n  max_receive_count: {MAX_RECEIVES}\n{table}  \
         request_timeout_ms: {REQUEST_TIMEOUT_MS}\n  connect_timeout_ms: 1000\n  max_attempts: 3\n  \
         backoff_base_ms: 20\n  backoff_max_ms: 200\n  deadline_margin_ms: 1500\n  max_concurrency: 16\nroutes:\n"
    );
    for route in ROUTES {
        text.push_str(&format!("  - name: {}\n    match: {{", route.name));
        let mut conditions = Vec::new();
        if let Some(prefix) = route.prefix {
            conditions.push(format!("prefix: '{prefix}'"));
        }
        if let Some(suffix) = route.suffix {
            conditions.push(format!("suffix: '{suffix}'"));
        }
        text.push_str(&format!(" {} }}\n    targets:\n", conditions.join(", ")));
        for ep in route.targets {
            text.push_str(&format!("      - {}\n", ep.yaml(origin)));
        }
    }
    text
}

fn secrets_text(origin: &str) -> String {
    let pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/test-rsa-key.pem"
    ))
    .expect("tests/fixtures/test-rsa-key.pem");
    json!({
        "alteryx": { "client_id": "faults-client", "client_secret": "faults-secret" },
        "gcp": {
            "type": "service_account", "project_id": "p", "private_key_id": "k1",
            "private_key": pem, "client_email": "faults@p.iam.gserviceaccount.com",
            "client_id": "1", "token_uri": format!("{origin}/token"),
        }
    })
    .to_string()
}

async fn app(config: &str, secrets: &str) -> App {
    let config = Config::parse(config, "fault-run config").expect("config");
    let secrets = SecretsFile::parse(std::path::Path::new("fault-run-secrets.json"), secrets)
        .expect("secrets");
    App::connect(config, Box::new(secrets)).await.expect("app")
}

/// A failure record, placed.
struct Rec {
    pair: (String, String),
    may_have_run: bool,
    /// The SQS message (or none: a direct invocation) and its receive count.
    origin: String,
}

#[derive(Default)]
struct Tally {
    exactly_once: usize,
    ran_may_have_run: usize,
    recorded: usize,
    recorded_may_have_run: usize,
    dead_lettered: usize,
    lost: usize,
    duplicated: usize,
    ran_and_recorded: usize,
    extra_records: usize,
    unexpected_runs: usize,
}

struct ModeResult {
    store: bool,
    tally: Tally,
    records: usize,
    records_may_have_run: usize,
    dlq: usize,
    destination: usize,
    invocations: u64,
    redelivered: u64,
    requests: u64,
    faults: BTreeMap<&'static str, u64>,
    wall: Duration,
    replay: Option<ReplayResult>,
    /// What fails the run (store on): a lost or duplicated run, a replay that does not end
    /// with exactly one run each.
    problems: Vec<String>,
    /// What breaks "one run xor one record" without losing or duplicating a run: a second
    /// record for one delivery, a record for a delivery that ran (another notification of the
    /// same version ran it). Replay finds those done.
    notes: Vec<String>,
}

impl ModeResult {
    fn passed(&self, store: bool) -> bool {
        !store || self.problems.is_empty()
    }
}

struct ReplayResult {
    replayed: String,
    dead_replayed: usize,
    may_have_run_ran: usize,
    may_have_run_resent: usize,
    left_on_queue: usize,
    exactly_once: usize,
    not_once: usize,
    wall: Duration,
}

async fn run_mode(args: &Args, world: &World, store: bool) -> ModeResult {
    let started = Instant::now();
    let stand_in = StandIn::start(args.seed).await;
    let run = format!("{}-{}-{}", args.seed, on_off(store), std::process::id());
    let queue = sqs(
        &args.moto,
        "CreateQueue",
        json!({ "QueueName": format!("faults-failures-{run}") }),
    )
    .await["QueueUrl"]
        .as_str()
        .expect("QueueUrl")
        .to_owned();
    let table = format!("faults-records-{run}");
    if store {
        create_table(&table).await;
    }
    let config = config_text(&stand_in.origin, &queue, store.then_some(table.as_str()));
    let secrets = secrets_text(&stand_in.origin);
    let platform = Arc::new(Mutex::new(Platform {
        sqs: world.sqs.iter().cloned().collect(),
        direct: world.direct.iter().cloned().collect(),
        rng: Some(fastrand::Rng::with_seed(args.seed ^ 0x5157)),
        ..Platform::default()
    }));
    let mut containers = Vec::new();
    for _ in 0..CONTAINERS {
        let app = app(&config, &secrets).await.with_platform_retries();
        containers.push(tokio::spawn(container(app, platform.clone())));
    }
    for container in containers {
        container.await.expect("container");
    }
    let wall = started.elapsed();

    // What happened, per object version and target.
    let check = Config::parse(&config, "fault-run config").expect("config");
    let mut description = HashMap::new();
    for (route, spec) in check.routes.iter().zip(ROUTES) {
        for (endpoint, ep) in route.targets.iter().zip(spec.targets) {
            description.insert((route.name.clone(), endpoint.description.clone()), ep.id());
        }
    }
    let mut problems = Vec::new();
    let bodies = read_queue(&args.moto, &queue).await;
    let mut records = Vec::new();
    for (id, body) in &bodies {
        for item in replay::read_items(body) {
            let Item::Record(record) = item else {
                problems.push(format!("queue message {id} is not a failure record"));
                continue;
            };
            let Some(ep) = description.get(&(record.route.clone(), record.target.clone())) else {
                problems.push(format!(
                    "record for unknown target {} {}",
                    record.route, record.target
                ));
                continue;
            };
            let version = record
                .event
                .version_id
                .clone()
                .or(record.event.etag.clone())
                .unwrap_or_default();
            records.push(Rec {
                pair: (ep.clone(), object_id(&record.key, &version)),
                may_have_run: record.may_have_run,
                origin: format!(
                    "{} ({}{})",
                    match (&record.event.record_id, record.receive_count) {
                        (Some(id), Some(count)) => format!("{id} receive {count}"),
                        (Some(id), None) => id.clone(),
                        _ => format!("direct {}", record.event.source),
                    },
                    if record.retryable { "retryable: " } else { "" },
                    record.error
                ),
            });
        }
    }
    let (dlq, destination, invocations, redelivered) = {
        let p = platform.lock().unwrap_or_else(|e| e.into_inner());
        (
            p.dlq.clone(),
            p.destination.clone(),
            p.invocations,
            p.redelivered,
        )
    };
    let dead: HashSet<usize> = dlq
        .iter()
        .flat_map(|m| m.objects.iter().copied())
        .chain(destination.iter().flat_map(|d| d.objects.iter().copied()))
        .collect();
    let (runs, requests, faults, unknown) = {
        let ledger = stand_in.ledger();
        (
            ledger.runs.clone(),
            ledger.requests,
            ledger.faults.clone(),
            ledger.unknown.clone(),
        )
    };
    if !unknown.is_empty() {
        problems.push(format!(
            "{} request(s) to unknown paths, e.g. {}",
            unknown.len(),
            unknown[0]
        ));
    }
    let mut notes = Vec::new();
    let tally = tally(world, &runs, &records, &dead, &mut problems, &mut notes);
    let mut result = ModeResult {
        store,
        tally,
        records: records.len(),
        records_may_have_run: records.iter().filter(|r| r.may_have_run).count(),
        dlq: dlq.len(),
        destination: destination.len(),
        invocations,
        redelivered,
        requests,
        faults,
        wall,
        replay: None,
        problems,
        notes,
    };
    if store {
        let replayed = replay_all(
            world,
            &stand_in,
            &config,
            &secrets,
            &queue,
            &dlq,
            &destination,
            &mut result.problems,
        )
        .await;
        result.replay = Some(replayed);
    }
    result
}

fn tally(
    world: &World,
    runs: &HashMap<(String, String), u32>,
    records: &[Rec],
    dead: &HashSet<usize>,
    problems: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Tally {
    let mut by_pair: HashMap<&(String, String), Vec<&Rec>> = HashMap::new();
    for record in records {
        by_pair.entry(&record.pair).or_default().push(record);
    }
    let mut tally = Tally::default();
    for (pair, &object) in &world.expected {
        let ran = runs.get(pair).copied().unwrap_or(0);
        let recs = by_pair.get(pair).map(Vec::as_slice).unwrap_or_default();
        let mhr = recs.iter().any(|r| r.may_have_run);
        let what = format!("{} on {}", pair.1, pair.0);
        if recs.len() > 1 {
            tally.extra_records += 1;
            notes.push(format!(
                "{} failure records for {what} ({} may have run; {ran} run(s)); from {}",
                recs.len(),
                recs.iter().filter(|r| r.may_have_run).count(),
                recs.iter()
                    .map(|r| r.origin.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        match (ran, recs.len()) {
            (2.., _) => {
                tally.duplicated += 1;
                problems.push(format!("DUPLICATED: {ran} runs of {what}"));
            }
            (1, 0) => tally.exactly_once += 1,
            (1, _) if mhr && recs.iter().all(|r| r.may_have_run) => tally.ran_may_have_run += 1,
            (1, _) => {
                tally.ran_and_recorded += 1;
                notes.push(format!(
                    "ran once AND has a failure record that does not say it may have run: {what}; \
                     from {}",
                    recs.iter()
                        .map(|r| r.origin.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            (0, 0) if dead.contains(&object) => tally.dead_lettered += 1,
            (0, 0) => {
                tally.lost += 1;
                problems.push(format!(
                    "LOST: {what}: no run, no failure record, not dead-lettered"
                ));
            }
            (0, _) if mhr => tally.recorded_may_have_run += 1,
            (0, _) => tally.recorded += 1,
        }
    }
    for (pair, &count) in runs {
        if !world.expected.contains_key(pair) {
            tally.unexpected_runs += count as usize;
            problems.push(format!(
                "{count} run(s) of {} on {}, which no route sends there",
                pair.1, pair.0
            ));
        }
    }
    tally
}

/// The faults stop; the operator replays: the failure queue (`replay --queue`), the DLQ and the
/// on-failure destination; then checks each "may have run" record at the target and resends
/// only those that did not run (`--resend-may-have-run`), deleting the rest.
#[allow(clippy::too_many_arguments)]
async fn replay_all(
    world: &World,
    stand_in: &StandIn,
    config: &str,
    secrets: &str,
    queue: &str,
    dlq: &[Msg],
    destination: &[Direct],
    problems: &mut Vec<String>,
) -> ReplayResult {
    let started = Instant::now();
    stand_in.faults_on.store(false, Ordering::Relaxed);
    let app = app(config, secrets).await;
    let network = Network::new(&app.config.settings.network()).expect("network");
    let failure_queue = Queue::new(queue.parse().expect("queue URL")).await;
    let options = Options {
        timeout: Duration::from_secs(30),
        resend_may_have_run: false,
    };
    let mut summary = Summary::default();
    if let Err(error) = replay::drain(
        &app,
        &failure_queue,
        &network,
        options,
        100_000,
        false,
        &mut summary,
    )
    .await
    {
        problems.push(format!("replay --queue: {error}"));
    }
    // "replayed 47 item(s): 0 triggered, 0 already triggered, 0 dry run, 0 failed, 47 skipped,
    // 0 unreadable", shortened for the table.
    let replayed = summary
        .table()
        .lines()
        .next()
        .unwrap_or_default()
        .replace("replayed ", "")
        .replace(" item(s):", ":")
        .replace(" already triggered", " already")
        .replace(", 0 dry run", "")
        .replace(", 0 unreadable", "");

    // Dead-lettered SQS bodies and Lambda destination records, as an operator would feed them.
    let mut dead = Summary::default();
    let mut items = Vec::new();
    for message in dlq {
        items.extend(replay::read_items(&message.body));
    }
    for event in destination {
        let record = json!({
            "version": "1.0",
            "timestamp": "2026-11-30T08:00:00.000Z",
            "requestContext": { "requestId": "x", "functionArn": "arn:aws:lambda:eu-west-1:123456789012:function:bucket-trigger:$LATEST", "condition": "RetriesExhausted", "approximateInvokeCount": LAMBDA_ATTEMPTS },
            "requestPayload": event.payload,
            "responseContext": { "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled" },
            "responsePayload": { "errorType": "Retryable", "errorMessage": "..." },
        });
        items.extend(replay::read_items(&record.to_string()));
    }
    let dead_replayed = items.len();
    for item in &items {
        replay::replay(&app, item, options, &mut dead).await;
    }

    // What is left: "may have run" records (and any that failed again). Check the target.
    let resend = app_resending(config, secrets).await;
    let (mut ran, mut resent, mut left) = (0, 0, 0);
    loop {
        let messages = failure_queue
            .receive(&network, SystemTime::now(), 10, Duration::ZERO)
            .await
            .unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            let mut done = true;
            for item in replay::read_items(&message.body) {
                let Item::Record(record) = &item else {
                    done = false;
                    continue;
                };
                let ep = ep_of(&app.config, &record.route, &record.target);
                let version = record
                    .event
                    .version_id
                    .clone()
                    .or(record.event.etag.clone())
                    .unwrap_or_default();
                let object = object_id(&record.key, &version);
                // Whatever the record says: a plain record whose delivery the store holds
                // AMBIGUOUS (another invocation sent it) fails again in `replay --queue` with
                // "may have run: check it", so it is checked too before being resent.
                if stand_in.runs(&ep, &object) > 0 {
                    ran += 1;
                    continue;
                }
                let options = Options {
                    resend_may_have_run: true,
                    ..options
                };
                let mut summary = Summary::default();
                resent += 1;
                done &= replay::replay(&resend, &item, options, &mut summary).await;
            }
            if done {
                let _ = failure_queue
                    .delete(
                        &network,
                        SystemTime::now(),
                        &message.receipt_handle,
                        Duration::from_secs(10),
                    )
                    .await;
            } else {
                left += 1;
            }
        }
    }
    let runs = stand_in.ledger().runs.clone();
    let mut exactly_once = 0;
    let mut not_once = 0;
    for pair in world.expected.keys() {
        match runs.get(pair).copied().unwrap_or(0) {
            1 => exactly_once += 1,
            n => {
                not_once += 1;
                problems.push(format!(
                    "after replay: {n} run(s) of {} on {}",
                    pair.1, pair.0
                ));
            }
        }
    }
    if left > 0 {
        problems.push(format!(
            "after replay: {left} record(s) still on the failure queue"
        ));
    }
    ReplayResult {
        replayed,
        dead_replayed,
        may_have_run_ran: ran,
        may_have_run_resent: resent,
        left_on_queue: left,
        exactly_once,
        not_once,
        wall: started.elapsed(),
    }
}

async fn app_resending(config: &str, secrets: &str) -> App {
    app(config, secrets).await.resending_may_have_run()
}

fn ep_of(config: &Config, route: &str, target: &str) -> String {
    for (r, spec) in config.routes.iter().zip(ROUTES) {
        for (endpoint, ep) in r.targets.iter().zip(spec.targets) {
            if r.name == route && endpoint.description == target {
                return ep.id();
            }
        }
    }
    String::new()
}

// ---------------------------------------------------------------------------------------------
// The table

fn print_table(world: &World, results: &[ModeResult]) {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: &str, f: &dyn Fn(&ModeResult) -> String| {
        rows.push((name.to_owned(), results.iter().map(f).collect()));
    };
    row("object versions", &|_| world.objects.len().to_string());
    row("expected deliveries (object x target)", &|_| {
        world.expected.len().to_string()
    });
    row("exactly one run, no record", &|r| {
        r.tally.exactly_once.to_string()
    });
    row("one run + 'may have run' record", &|r| {
        r.tally.ran_may_have_run.to_string()
    });
    row("no run + failure record", &|r| r.tally.recorded.to_string());
    row("no run + 'may have run' record", &|r| {
        r.tally.recorded_may_have_run.to_string()
    });
    row("no run, dead-lettered (DLQ/destination)", &|r| {
        r.tally.dead_lettered.to_string()
    });
    row("LOST (no run, no record, not dead-lettered)", &|r| {
        r.tally.lost.to_string()
    });
    row("DUPLICATED (2+ runs)", &|r| r.tally.duplicated.to_string());
    row("one run + plain failure record", &|r| {
        r.tally.ran_and_recorded.to_string()
    });
    row("deliveries with 2+ failure records", &|r| {
        r.tally.extra_records.to_string()
    });
    row("runs no route asked for", &|r| {
        r.tally.unexpected_runs.to_string()
    });
    row("failure records queued (may have run)", &|r| {
        format!("{} ({})", r.records, r.records_may_have_run)
    });
    row("SQS messages dead-lettered", &|r| r.dlq.to_string());
    row("direct events to on-failure destination", &|r| {
        r.destination.to_string()
    });
    row("invocations (redeliveries)", &|r| {
        format!("{} ({})", r.invocations, r.redelivered)
    });
    row("requests to targets", &|r| r.requests.to_string());
    row("faults injected", &|r| {
        r.faults
            .iter()
            .filter(|(name, _)| **name != "none")
            .map(|(_, n)| n)
            .sum::<u64>()
            .to_string()
    });
    for name in [
        "503",
        "503 outage (9 in a row)",
        "429 Retry-After",
        "reset after read",
        "slower than timeout",
        "401 then refresh",
    ] {
        row(&format!("  {name}"), &|r| {
            r.faults.get(name).copied().unwrap_or(0).to_string()
        });
    }
    row("wall time", &|r| format!("{:.1} s", r.wall.as_secs_f64()));
    row("replay: failure queue", &|r| {
        r.replay.as_ref().map_or("-".into(), |p| p.replayed.clone())
    });
    row("replay: DLQ/destination items", &|r| {
        r.replay
            .as_ref()
            .map_or("-".into(), |p| p.dead_replayed.to_string())
    });
    row("replay: left, checked, had run (deleted)", &|r| {
        r.replay
            .as_ref()
            .map_or("-".into(), |p| p.may_have_run_ran.to_string())
    });
    row("replay: left, checked, resent", &|r| {
        r.replay
            .as_ref()
            .map_or("-".into(), |p| p.may_have_run_resent.to_string())
    });
    row("after replay: exactly one run", &|r| {
        r.replay.as_ref().map_or("-".into(), |p| {
            format!(
                "{} / {} ({} not once, {} left on queue)",
                p.exactly_once,
                world.expected.len(),
                p.not_once,
                p.left_on_queue
            )
        })
    });
    row("replay wall time", &|r| {
        r.replay
            .as_ref()
            .map_or("-".into(), |p| format!("{:.1} s", p.wall.as_secs_f64()))
    });
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let col = rows
        .iter()
        .flat_map(|(_, values)| values.iter().map(String::len))
        .max()
        .unwrap_or(0)
        .max(9);
    println!();
    let header: Vec<String> = results
        .iter()
        .map(|r| format!("{:>col$}", format!("store {}", on_off(r.store))))
        .collect();
    println!("| {:width$} | {} |", "", header.join(" | "));
    println!(
        "|{}|{}",
        "-".repeat(width + 2),
        results
            .iter()
            .map(|_| format!("{}:|", "-".repeat(col + 1)))
            .collect::<String>()
    );
    for (name, values) in rows {
        let values: Vec<String> = values.iter().map(|v| format!("{v:>col$}")).collect();
        println!("| {name:width$} | {} |", values.join(" | "));
    }
    println!();
}
