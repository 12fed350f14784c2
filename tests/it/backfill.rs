//! `bucket-trigger backfill` as a user runs it, against moto server (S3 and DynamoDB, through
//! `AWS_ENDPOINT_URL`) and a wiremock webhook: what a listing triggers, what the idempotency
//! table holds back, versioned buckets, awkward keys, pagination, errors and dry runs.

use std::collections::BTreeSet;
use std::process::Output;
use std::time::{Duration, Instant};

use bucket_trigger::event;
use bucket_trigger::store::DynamoDb;
use futures_util::StreamExt;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{app, dynamodb, idempotency_table, moto, moto_env, root, unique};

/// Key characters sent as they are in a URL path; `/` separates segments, `+` is encoded (a
/// server may read a bare `+` as a space).
const KEY_PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Moto checks no signature, but treats an unsigned write over an existing key as anonymous
/// (403): any SigV4-shaped header will do.
const MOTO_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=testing/20261130/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";

/// One client per test (a test is a thread, with its own runtime): building one per request
/// costs more than moto's PUT.
fn http() -> reqwest::Client {
    thread_local! {
        static CLIENT: reqwest::Client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .default_headers(reqwest::header::HeaderMap::from_iter([(
                reqwest::header::AUTHORIZATION,
                reqwest::header::HeaderValue::from_static(MOTO_AUTHORIZATION),
            )]))
            .build()
            .unwrap();
    }
    CLIENT.with(reqwest::Client::clone)
}

fn object_url(bucket: &str, key: &str) -> String {
    format!("{}/{bucket}/{}", moto(), utf8_percent_encode(key, KEY_PATH))
}

/// A fresh bucket in moto, versioned if asked.
async fn bucket(versioned: bool) -> String {
    let name = unique("backfill").to_lowercase();
    let answer = http()
        .put(format!("{}/{name}", moto()))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "create bucket: {answer:?}");
    if versioned {
        let answer = http()
            .put(format!("{}/{name}?versioning", moto()))
            .body(
                "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <Status>Enabled</Status></VersioningConfiguration>",
            )
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "versioning: {answer:?}");
    }
    name
}

/// What a PUT of an object answered: ETag (unquoted) and version id.
struct Put {
    etag: String,
    version_id: Option<String>,
}

async fn put(bucket: &str, key: &str, body: &str) -> Put {
    let answer = http()
        .put(object_url(bucket, key))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "put {key}: {answer:?}");
    let header = |name: &str| {
        answer
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Put {
        etag: header("etag").unwrap().trim_matches('"').to_owned(),
        version_id: header("x-amz-version-id"),
    }
}

/// Puts `keys` (body: the key) 16 at a time; the ETags in order.
async fn put_all(bucket: &str, keys: &[String]) -> Vec<String> {
    futures_util::stream::iter(keys)
        .map(|key| async move { put(bucket, key, key).await.etag })
        .buffered(16)
        .collect()
        .await
}

async fn items(table: &str) -> usize {
    let scan = dynamodb().scan().table_name(table).send().await.unwrap();
    scan.count() as usize
}

/// A webhook stand-in answering 200 to `POST /hook`.
async fn webhook() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

/// One route for `.csv` files to the stand-in, recorded in `table` if given.
fn config(server: &MockServer, table: Option<&str>) -> String {
    let settings = match table {
        Some(table) => format!(
            "settings: {{ idempotency_table: {table}, max_attempts: 2, backoff_base_ms: 10 }}\n"
        ),
        None => String::new(),
    };
    format!(
        "{settings}routes:\n  - name: csv\n    match: {{ suffix: .csv }}\n    target: {{ webhook: {{ url: '{}/hook' }} }}\n",
        server.uri()
    )
}

/// Runs the binary with moto's environment and `config` inline.
async fn bucket_trigger(args: &[&str], config: &str) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_bucket-trigger"));
    command.current_dir(root()).args(args);
    for var in [
        "BUCKET_TRIGGER_CONFIG_FILE",
        "BUCKET_TRIGGER_CONFIG_SSM",
        "BUCKET_TRIGGER_SECRETS_FILE",
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_ENDPOINT_URL_S3",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    command
        .envs(moto_env())
        .env("BUCKET_TRIGGER_CONFIG", config);
    tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("backfill finished within 120 s")
        .unwrap()
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The value of a summary line (`triggered    1000  (...)`).
fn count(stdout: &str, label: &str) -> u64 {
    stdout
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(label)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{stdout}"))
}

/// The keys the stand-in received, from the `index`th request on.
async fn received(server: &MockServer, from: usize) -> Vec<Value> {
    let requests = server.received_requests().await.unwrap();
    requests[from.min(requests.len())..]
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        .collect()
}

fn keys(bodies: &[Value]) -> BTreeSet<String> {
    bodies
        .iter()
        .map(|b| b["key"].as_str().unwrap().to_owned())
        .collect()
}

/// The proof: 2,000 objects, half already triggered by live events, and objects outside the
/// prefix and ones no route matches: exactly the other half is sent; a second backfill sends
/// nothing.
#[tokio::test(flavor = "multi_thread")]
async fn backfill_triggers_exactly_what_no_live_event_did_and_then_nothing() {
    let bucket = bucket(false).await;
    let wanted: Vec<String> = (0..2000).map(|n| format!("in/{n:04}.csv")).collect();
    let outside: Vec<String> = (0..5).map(|n| format!("other/{n}.csv")).collect();
    let unmatched: Vec<String> = (0..7).map(|n| format!("in/{n}.tmp")).collect();
    let started = Instant::now();
    let etags = put_all(&bucket, &wanted).await;
    put_all(&bucket, &outside).await;
    put_all(&bucket, &unmatched).await;
    eprintln!(
        "put 2,012 objects in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let server = webhook().await;
    let table = idempotency_table("backfill-records").await;
    let config_text = config(&server, Some(&table));

    // Live S3 events (sequencer, ETag and size, as S3 sends them) for the even-numbered half.
    let records: Vec<Value> = wanted
        .iter()
        .zip(&etags)
        .enumerate()
        .filter(|(n, _)| n % 2 == 0)
        .map(|(n, (key, etag))| {
            json!({
                "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                "eventTime": "2026-11-30T10:00:00.000Z", "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {
                    "key": key, "size": key.len(), "eTag": etag,
                    "sequencer": format!("0065A1B2C3D4E5F6{n:04}")
                }}
            })
        })
        .collect();
    let live = event::parse(json!({ "Records": records })).unwrap();
    let live_app = app(&config_text, "{}").with_store(Box::new(DynamoDb::new(dynamodb())));
    let report = live_app
        .process(
            &live,
            tokio::time::Instant::now().checked_add(Duration::from_secs(120)),
        )
        .await;
    assert_eq!(report.summary.triggered, 1000, "{:?}", report.summary);
    assert_eq!(items(&table).await, 1000);
    let before = server.received_requests().await.unwrap().len();
    assert_eq!(before, 1000);

    let location = format!("s3://{bucket}/in/");
    let started = Instant::now();
    let first = bucket_trigger(&["backfill", &location], &config_text).await;
    let took = started.elapsed();
    let (stdout, stderr) = text(&first);
    assert_eq!(first.status.code(), Some(0), "{stdout}\n{stderr}");
    let sent = received(&server, before).await;
    let expected: BTreeSet<String> = wanted
        .iter()
        .enumerate()
        .filter(|(n, _)| n % 2 == 1)
        .map(|(_, key)| key.clone())
        .collect();
    assert_eq!(sent.len(), 1000, "each object once:\n{stdout}");
    assert_eq!(keys(&sent), expected);
    assert!(
        sent.iter().all(|b| b["source"] == "backfill"),
        "{:?}",
        sent[0]
    );
    assert_eq!(count(&stdout, "objects listed"), 2007, "{stdout}");
    assert_eq!(count(&stdout, "matched a route"), 2000, "{stdout}");
    assert_eq!(count(&stdout, "skipped"), 7, "{stdout}");
    assert_eq!(count(&stdout, "triggered"), 1000, "{stdout}");
    assert_eq!(count(&stdout, "already triggered"), 1000, "{stdout}");
    assert_eq!(count(&stdout, "failed"), 0, "{stdout}");
    // GetBucketVersioning and three pages (2,007 keys at 1,000 a page).
    assert!(
        stdout.starts_with(&format!(
            "backfill {location} (ListObjectsV2, 4 S3 request(s), "
        )),
        "{stdout}"
    );
    assert!(
        !stderr.contains('\r'),
        "no progress line when stderr is not a terminal: {stderr}"
    );
    eprintln!(
        "first backfill of 2,007 objects (1,000 sent): {:.1} s\n{stdout}",
        took.as_secs_f64()
    );

    let started = Instant::now();
    let second = bucket_trigger(&["backfill", &location], &config_text).await;
    let (stdout, stderr) = text(&second);
    assert_eq!(second.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(count(&stdout, "triggered"), 0, "{stdout}");
    assert_eq!(count(&stdout, "already triggered"), 2000, "{stdout}");
    assert_eq!(received(&server, before + 1000).await.len(), 0);
    eprintln!(
        "second backfill (nothing sent): {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_versioned_bucket_gives_each_current_object_its_version_id() {
    let bucket = bucket(true).await;
    let first = put(&bucket, "in/a.csv", "one").await;
    let second = put(&bucket, "in/a.csv", "two").await;
    let b = put(&bucket, "in/b.csv", "b").await;
    put(&bucket, "in/deleted.csv", "gone").await;
    let deleted = http()
        .delete(object_url(&bucket, "in/deleted.csv"))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    assert!(first.version_id.is_some() && first.version_id != second.version_id);

    let server = webhook().await;
    // Two keys a page: the version listing is paged by key and version markers.
    let out = bucket_trigger(
        &[
            "backfill",
            &format!("s3://{bucket}/in/"),
            "--page-size",
            "2",
        ],
        &config(&server, None),
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("(ListObjectVersions, "), "{stdout}");
    let sent = received(&server, 0).await;
    let found: BTreeSet<(String, String, String)> = sent
        .iter()
        .map(|b| {
            (
                b["key"].as_str().unwrap().to_owned(),
                b["version_id"].as_str().unwrap_or("(none)").to_owned(),
                b["etag"].as_str().unwrap_or("(none)").to_owned(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String, String)> = [("in/a.csv", &second), ("in/b.csv", &b)]
        .iter()
        .map(|(key, put)| {
            (
                key.to_string(),
                put.version_id.clone().unwrap(),
                put.etag.clone(),
            )
        })
        .collect();
    assert_eq!(
        found, want,
        "latest versions only, no delete marker:\n{stdout}"
    );
    assert_eq!(sent.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn awkward_keys_round_trip_exactly_across_pages() {
    let bucket = bucket(false).await;
    let awkward: Vec<String> = [
        "in/a b.csv",
        "in/a+b.csv",
        "in/a%2Bb.csv",
        "in/100%.csv",
        "in/café/日本.csv",
        "in/x&y<z>'\".csv",
        "in/q?x=1#f.csv",
        "in/  two  spaces .csv",
        "in/emoji 🎉.csv",
    ]
    .iter()
    .map(|k| k.to_string())
    .collect();
    put_all(&bucket, &awkward).await;
    let server = webhook().await;
    let out = bucket_trigger(
        &[
            "backfill",
            &format!("s3://{bucket}/in/"),
            "--page-size",
            "2",
        ],
        &config(&server, None),
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let sent = received(&server, 0).await;
    assert_eq!(sent.len(), awkward.len(), "{stdout}");
    assert_eq!(keys(&sent), awkward.iter().cloned().collect());
    // Five pages of two, the versioning check before them.
    assert!(
        stdout.contains("(ListObjectsV2, 6 S3 request(s), "),
        "{stdout}"
    );

    // A prefix with a `+` is sent encoded, not read as a space: one key under it.
    let prefixed = bucket_trigger(
        &[
            "backfill",
            &format!("s3://{bucket}/in/a+"),
            "--page-size",
            "1",
        ],
        &config(&server, None),
    )
    .await;
    let (stdout, _) = text(&prefixed);
    assert_eq!(count(&stdout, "objects listed"), 1, "{stdout}");
    assert_eq!(
        keys(&received(&server, awkward.len()).await),
        BTreeSet::from(["in/a+b.csv".to_owned()])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn start_after_and_limit_pick_a_slice_in_key_order() {
    let bucket = bucket(false).await;
    let all: Vec<String> = (0..12).map(|n| format!("in/{n:02}.csv")).collect();
    put_all(&bucket, &all).await;
    let server = webhook().await;
    let out = bucket_trigger(
        &[
            "backfill",
            &format!("s3://{bucket}/in/"),
            "--start-after",
            "in/04.csv",
            "--limit",
            "5",
            "--page-size",
            "3",
        ],
        &config(&server, None),
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let want: BTreeSet<String> = all[5..10].iter().cloned().collect();
    assert_eq!(keys(&received(&server, 0).await), want, "{stdout}");
    // Pages of 3, then 2 (what the limit leaves), after the versioning check.
    assert!(
        stdout.contains("(ListObjectsV2, 3 S3 request(s), "),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_locations_and_missing_buckets_exit_2_with_a_clear_message() {
    let server = webhook().await;
    let config = config(&server, None);
    for (argument, message) in [
        (
            "my-bucket/in/".to_owned(),
            "\"my-bucket/in/\" is not an S3 location: expected s3://BUCKET[/PREFIX]",
        ),
        ("s3:///in/".to_owned(), "no bucket name after s3://"),
        (
            "s3://no-such-bucket-here/in/".to_owned(),
            "bucket no-such-bucket-here does not exist (S3 NoSuchBucket)",
        ),
    ] {
        let out = bucket_trigger(&["backfill", &argument], &config).await;
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{argument}: {stdout}\n{stderr}");
        assert!(stderr.contains(message), "{argument}: {stderr}");
        assert!(!stderr.contains("testing"), "no credentials: {stderr}");
    }
    let out = bucket_trigger(&["backfill"], &config).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out)
            .1
            .contains("backfill needs an s3://BUCKET[/PREFIX] argument")
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_lists_for_real_and_sends_nothing() {
    let bucket = bucket(false).await;
    let keys_put: Vec<String> = (0..25).map(|n| format!("in/{n:02}.csv")).collect();
    put_all(&bucket, &keys_put).await;
    let server = webhook().await;
    let table = idempotency_table("backfill-records").await;
    let config = config(&server, Some(&table));
    let out = bucket_trigger(
        &["backfill", &format!("s3://{bucket}/in/"), "--dry-run"],
        &config,
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let printed: Vec<Value> = stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(printed.len(), 25, "{stdout}");
    assert_eq!(
        printed[0]["request"]["url"],
        format!("{}/hook", server.uri())
    );
    assert_eq!(printed[0]["request"]["body"]["key"], "in/00.csv");
    assert_eq!(count(&stdout, "dry run"), 25, "{stdout}");
    assert!(stdout.contains(", dry run)"), "{stdout}");
    assert!(server.received_requests().await.unwrap().is_empty());
    assert_eq!(items(&table).await, 0, "a dry run writes no record");
}
