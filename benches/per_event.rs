//! Per-event CPU costs, in process, no network: `cargo bench --bench per_event`.
//!
//! Groups (each kept short: ~1 s warm-up, ~2 s measurement, 30 samples, so the whole run is
//! well under 3 minutes on 2 cores):
//!
//! * `parse/<file>`    `event::parse_bytes` on every sample envelope in `events/`, plus a
//!   generated 10-record S3 notification.
//! * `route/...`       `Config::matching` for one event over a config's routes.
//! * `build/<target>`  `Endpoint::check`: render the templates, build URL + JSON body (+ run id),
//!   for Airflow v2 (templated), Airflow v1 (default conf), webhook, Alteryx v1;
//!   `build/context_value`: the template context alone (`RenderContext::new`, made once per
//!   event × route and shared by the route's targets).
//! * `sign/...`        `auth::sign_oauth1` (query and header placement, fixed nonce/timestamp),
//!   and `Auth::sign` for basic, bearer and OAuth 1.0a through the public API
//!   (cached secret: a lookup in the `SecretCache` plus the header; polled by a
//!   current-thread tokio runtime, whose `block_on` adds ~0.1 µs).
//! * `pipeline/...`    `App::process` in dry-run mode (route, build, sign, printable request)
//!   for 1 and 10 records; `parse+process` includes parsing the bytes.
//! * `init/config`     `Config::parse` of examples/bucket-trigger.yaml (a cold-start cost).
//!
//! TODO(JWT RS256 signing, its own issue): add `sign/jwt_rs256` once RS256 signing is reachable
//! through the public API (today only the private `sign_assertion` in src/auth/google_key.rs uses
//! jsonwebtoken, on token refresh); bench PEM key parsing and per-assertion signing separately.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bucket_trigger::app::App;
use bucket_trigger::auth::{Placement, SignContext, sign_oauth1};
use bucket_trigger::clock::SystemClock;
use bucket_trigger::config::Config;
use bucket_trigger::event::{self, ObjectEvent};
use bucket_trigger::http::DryRun;
use bucket_trigger::secrets::{SecretCache, SecretString, SecretsFile};
use bucket_trigger::template::RenderContext;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One config exercising each target kind and auth scheme that needs no network in dry-run.
const BENCH_CONFIG: &str = r#"
routes:
  - name: airflow-v2
    match: { bucket: acme-landing, prefix: incoming/, suffix: .csv }
    target:
      airflow:
        base_url: https://airflow.example.com
        api: v2
        dag_id: load_sales
        run_id: "s3__{{ key | slug }}__{{ sequencer }}"
        conf:
          bucket: "{{ bucket }}"
          key: "{{ key }}"
          uri: "s3://{{ bucket }}/{{ key }}"
          size: "{{ size }}"
        note: "Triggered by {{ event_name }} on s3://{{ bucket }}/{{ key }}"
        auth: { basic: { secret: airflow } }
  - name: airflow-v1
    match: { bucket: acme-landing }
    target:
      airflow:
        base_url: https://airflow.example.com/composer
        api: v1
        dag_id: ingest
        auth: { bearer: { secret: token } }
  - name: webhook
    match: { bucket: acme-landing, glob: "incoming/**/*.csv" }
    target:
      webhook:
        url: https://chat.example.com/hooks/landing
        headers: { X-Object-Key: "{{ key }}" }
        body: { text: "New object s3://{{ bucket }}/{{ key }} ({{ size }} bytes)" }
        auth: { bearer: { secret: token } }
  - name: alteryx-v1
    match: { bucket: acme-landing, suffix: .csv }
    target:
      alteryx:
        api: v1
        base_url: https://gallery.example.com/gallery/api/
        workflow_id: 5f1c0a8e2b3d4c5e6f708192
        questions:
          - { name: FilePath, value: "s3://{{ bucket }}/{{ key }}" }
          - { name: FileName, value: "{{ key | basename }}" }
        auth: { oauth1: { secret: alteryx } }
"#;

const BENCH_SECRETS: &str = r#"{
  "airflow": { "username": "trigger-bot", "password": "bench-password" },
  "token": "bench-token",
  "alteryx": { "ALTERYX_KEY": "bench-consumer-key", "ALTERYX_SECRET": "bench-consumer-secret" }
}"#;

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `events/s3-put.json` with its record repeated `n` times (distinct keys and sequencers).
fn s3_records(n: usize) -> Vec<u8> {
    let mut value: Value =
        serde_json::from_slice(&read(&root().join("events/s3-put.json"))).unwrap();
    let record = value["Records"][0].clone();
    let records: Vec<Value> = (0..n)
        .map(|i| {
            let mut r = record.clone();
            r["s3"]["object"]["key"] = Value::String(format!("incoming/sales/part-{i:04}.csv"));
            r["s3"]["object"]["sequencer"] = Value::String(format!("0062E9A0B3C4D5E6{i:02X}"));
            r
        })
        .collect();
    value["Records"] = Value::Array(records);
    serde_json::to_vec(&value).unwrap()
}

fn first_event(bytes: &[u8]) -> ObjectEvent {
    event::parse_bytes(bytes)
        .unwrap()
        .objects()
        .next()
        .unwrap()
        .clone()
}

fn secrets() -> SecretCache {
    let file = SecretsFile::parse(Path::new("(bench)"), BENCH_SECRETS).unwrap();
    SecretCache::new(Box::new(file), Duration::from_secs(3600))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("events"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for path in files {
        let bytes = read(&path);
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| event::parse_bytes(black_box(&bytes)).unwrap())
        });
    }
    let ten = s3_records(10);
    group.throughput(Throughput::Elements(10));
    group.bench_function("s3-10-records", |b| {
        b.iter(|| event::parse_bytes(black_box(&ten)).unwrap())
    });
    group.finish();
}

fn route(c: &mut Criterion) {
    let mut group = c.benchmark_group("route");
    let event = first_event(&read(&root().join("events/s3-put.json")));
    let example = Config::from_file(&root().join("examples/bucket-trigger.yaml")).unwrap();
    let bench = Config::parse(BENCH_CONFIG, "bench").unwrap();
    group.bench_function("example-2-routes", |b| {
        b.iter(|| example.matching(black_box(&event)).count())
    });
    group.bench_function("bench-4-routes-incl-glob", |b| {
        b.iter(|| bench.matching(black_box(&event)).count())
    });
    group.finish();
}

fn build(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    let event = first_event(&read(&root().join("events/s3-put.json")));
    let config = Config::parse(BENCH_CONFIG, "bench").unwrap();
    // The template context every templated target builds first (the event serialized into a
    // minijinja value, twice: its fields at the top level and as `event`).
    group.bench_function("context_value", |b| {
        b.iter(|| RenderContext::new(&config.templates, black_box(&event), "airflow-v2"))
    });
    for route in &config.routes {
        for target in &route.targets {
            group.bench_function(route.name.as_str(), |b| {
                b.iter(|| {
                    let render =
                        RenderContext::new(&config.templates, black_box(&event), &route.name);
                    target.check(&render).unwrap()
                })
            });
        }
    }
    group.finish();
}

fn sign(c: &mut Criterion) {
    let mut group = c.benchmark_group("sign");
    let event = first_event(&read(&root().join("events/s3-put.json")));
    let config = Config::parse(BENCH_CONFIG, "bench").unwrap();
    let route = |name: &str| config.routes.iter().find(|r| r.name == name).unwrap();
    let built = |name: &str| {
        let route = route(name);
        let render = RenderContext::new(&config.templates, &event, &route.name);
        route.targets[0].check(&render).unwrap()
    };

    let alteryx = built("alteryx-v1");
    let key = SecretString::new("bench-consumer-key");
    let secret = SecretString::new("bench-consumer-secret");
    for (label, placement) in [
        ("oauth1_query", Placement::Query),
        ("oauth1_header", Placement::Header),
    ] {
        group.bench_function(label, |b| {
            b.iter_batched(
                || alteryx.request.clone(),
                |mut request| {
                    sign_oauth1(
                        &mut request,
                        &key,
                        &secret,
                        placement,
                        "0123456789abcdef0123456789abcdef",
                        1_764_057_600,
                    );
                    request
                },
                BatchSize::SmallInput,
            )
        });
    }

    // Basic and bearer headers are built by crate-private functions; the public way in is
    // `Auth::sign`, which adds the secret-cache lookup (warm: cached, as on warm invocations).
    let rt = rt();
    let cache = secrets();
    for (label, route_name) in [
        ("basic_apply", "airflow-v2"),
        ("bearer_apply", "airflow-v1"),
        ("oauth1_apply", "alteryx-v1"),
    ] {
        let target = &route(route_name).targets[0];
        let built = built(route_name);
        let root = target.base_url.for_validation();
        let cx = SignContext {
            secrets: &cache,
            transport: &DryRun,
            clock: &SystemClock,
            root: &root,
            timeout: Duration::from_secs(10),
            invocation: 0,
        };
        rt.block_on(async {
            target
                .auth
                .sign(&mut built.request.clone(), &cx)
                .await
                .unwrap()
        });
        group.bench_function(label, |b| {
            b.iter_batched(
                || built.request.clone(),
                |mut request| {
                    rt.block_on(async { target.auth.sign(&mut request, &cx).await.unwrap() });
                    request
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn pipeline(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline");
    let rt = rt();
    let one = read(&root().join("events/s3-put.json"));
    let ten = s3_records(10);
    let file = SecretsFile::load(&root().join("examples/secrets.json")).unwrap();
    let config = Config::from_file(&root().join("examples/bucket-trigger.yaml")).unwrap();
    let app = App::dry_run(config, Box::new(file));
    for (label, bytes, records) in [("1-record", &one, 1u64), ("10-records", &ten, 10)] {
        let parsed = event::parse_bytes(bytes).unwrap();
        let report = rt.block_on(app.process(&parsed, None));
        assert_eq!(
            report.summary.dry_run as u64,
            2 * records,
            "{:?}",
            report.summary
        );
        group.throughput(Throughput::Elements(records));
        group.bench_function(format!("process-dry-run/{label}"), |b| {
            b.iter(|| rt.block_on(app.process(black_box(&parsed), None)))
        });
        group.bench_function(format!("parse+process-dry-run/{label}"), |b| {
            b.iter(|| {
                let parsed = event::parse_bytes(black_box(bytes)).unwrap();
                rt.block_on(app.process(&parsed, None))
            })
        });
    }
    group.finish();
}

fn init(c: &mut Criterion) {
    let mut group = c.benchmark_group("init");
    let text = std::fs::read_to_string(root().join("examples/bucket-trigger.yaml")).unwrap();
    group.bench_function("config-parse-example", |b| {
        b.iter(|| Config::parse(black_box(&text), "bench").unwrap())
    });
    group.bench_function("config-parse-bench-4-routes", |b| {
        b.iter(|| Config::parse(black_box(BENCH_CONFIG), "bench").unwrap())
    });
    group.finish();
}

fn quick() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(800))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .without_plots()
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = quick();
    targets = parse, route, build, sign, pipeline, init
}
criterion_main!(benches);
