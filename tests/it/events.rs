//! Every sample event in `events/` normalizes to what the table says.

use bucket_trigger::event::{self, Body, Invocation, ObjectEvent};
use bucket_trigger::ingress;
use serde_json::json;

use crate::support::sample;

/// (source, bucket, key, event_name, size, record_id)
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    u64,
    Option<&'static str>,
);

/// The events of a sample; a function URL request's are those of the push it carries.
fn objects(name: &str) -> (Invocation, Vec<ObjectEvent>) {
    let value = sample(name);
    let parsed = if ingress::is_function_url(&value) {
        let request = ingress::from_function_url(&value).unwrap();
        ingress::read_push(&request)
    } else {
        event::parse(value)
    }
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    (parsed.invocation, parsed.objects().cloned().collect())
}

/// The samples of what must be refused, each with why.
const REFUSED: [(&str, &str); 2] = [
    (
        "gcs-pubsub-push-malformed.json",
        "malformed Pub/Sub push message: attributes.bucketId is missing",
    ),
    (
        "gcs-pubsub-push-bad-base64.json",
        "malformed Pub/Sub push message: message.data is not base64",
    ),
];

#[test]
fn the_bad_samples_are_refused_naming_what_is_wrong() {
    for (name, reason) in REFUSED {
        let error = event::parse(sample(name)).unwrap_err().to_string();
        assert!(error.starts_with(reason), "{name}: {error}");
    }
}

#[test]
fn every_sample_normalizes_as_the_table_says() {
    // (file, invocation, [(source, bucket, key, event_name, size, record_id)])
    let table: &[(&str, Invocation, &[Row])] = &[
        (
            "s3-put.json",
            Invocation::Direct,
            &[(
                "s3",
                "acme-landing",
                "incoming/sales/Q4 report (2026).csv",
                "ObjectCreated:Put",
                52428,
                None,
            )],
        ),
        (
            "alteryx-report-put.json",
            Invocation::Direct,
            &[(
                "s3",
                "acme-landing",
                "reports/2026/11/Regional Sales – Q4.xlsx",
                "ObjectCreated:Put",
                88213,
                None,
            )],
        ),
        (
            "s3-multi.json",
            Invocation::Direct,
            &[
                (
                    "s3",
                    "acme-landing",
                    "incoming/café/日本.csv",
                    "ObjectCreated:Put",
                    10,
                    None,
                ),
                (
                    "s3",
                    "acme-landing",
                    "incoming/a+b c.csv",
                    "ObjectCreated:CompleteMultipartUpload",
                    20,
                    None,
                ),
                (
                    "s3",
                    "acme-landing",
                    "incoming/100% done.csv",
                    "ObjectCreated:Copy",
                    30,
                    None,
                ),
            ],
        ),
        ("s3-test-event.json", Invocation::Direct, &[]),
        (
            "sns-s3.json",
            Invocation::Direct,
            &[(
                "sns/s3",
                "acme-landing",
                "incoming/sns/orders 2026-11-25.csv",
                "ObjectCreated:Put",
                777,
                None,
            )],
        ),
        (
            "sqs-s3.json",
            Invocation::SqsBatch,
            &[(
                "sqs/s3",
                "acme-landing",
                "incoming/sqs/ledger.csv",
                "ObjectCreated:Put",
                4096,
                Some("059f36b4-87a3-44ab-83d2-661975830a7d"),
            )],
        ),
        (
            "sqs-sns-s3.json",
            Invocation::SqsBatch,
            &[(
                "sqs/sns/s3",
                "acme-landing",
                "incoming/sqs-sns/stock levels.csv",
                "ObjectCreated:Put",
                2048,
                Some("2e1424d4-f796-459a-8184-9c92662be6da"),
            )],
        ),
        (
            "eventbridge-object-created.json",
            Invocation::Direct,
            &[(
                "eventbridge",
                "acme-landing",
                "incoming/eventbridge/Q4 report+final (v2).csv",
                "ObjectCreated:Put",
                5576,
                None,
            )],
        ),
        (
            "sqs-batch.json",
            Invocation::SqsBatch,
            &[
                (
                    "sqs/s3",
                    "acme-landing",
                    "incoming/batch/one.csv",
                    "ObjectCreated:Put",
                    1,
                    Some("a1b2c3d4-0001-4000-8000-000000000001"),
                ),
                (
                    "sqs/eventbridge",
                    "acme-landing",
                    "incoming/eventbridge/Q4 report+final (v2).csv",
                    "ObjectCreated:Put",
                    5576,
                    Some("a1b2c3d4-0003-4000-8000-000000000003"),
                ),
                (
                    "sqs/s3",
                    "acme-landing",
                    "incoming/batch/two.csv",
                    "ObjectCreated:Put",
                    2,
                    Some("a1b2c3d4-0004-4000-8000-000000000004"),
                ),
                (
                    "sqs/s3",
                    "acme-landing",
                    "incoming/batch/three.csv",
                    "ObjectCreated:Put",
                    3,
                    Some("a1b2c3d4-0004-4000-8000-000000000004"),
                ),
            ],
        ),
        (
            "gcs-pubsub-push.json",
            Invocation::Direct,
            &[(
                "gcs",
                "acme-landing-gcs",
                "incoming/sales/Q4 report (2026).csv",
                "ObjectCreated:Finalize",
                52428,
                None,
            )],
        ),
        (
            "gcs-pubsub-push-delete.json",
            Invocation::Direct,
            &[(
                "gcs",
                "acme-landing-gcs",
                "incoming/old/a+b c%20.csv",
                "ObjectRemoved:Delete",
                0,
                None,
            )],
        ),
        (
            "gcs-pubsub-push-no-payload.json",
            Invocation::Direct,
            &[(
                "gcs",
                "acme-landing-gcs",
                "incoming/sales/Q4 report (2026).csv",
                "ObjectCreated:Finalize",
                0,
                None,
            )],
        ),
        (
            "function-url-gcs-push.json",
            Invocation::Push,
            &[(
                "gcs",
                "acme-landing-gcs",
                "incoming/sales/Q4 report (2026).csv",
                "ObjectCreated:Finalize",
                52428,
                None,
            )],
        ),
        (
            "function-url-gcs-cloudevent-binary.json",
            Invocation::Push,
            &[(
                "gcs",
                "acme-landing-gcs",
                "incoming/données/été 2026.csv",
                "ObjectCreated:Finalize",
                1024,
                None,
            )],
        ),
        (
            "gcs-cloudevent.json",
            Invocation::Direct,
            &[(
                "gcs",
                "acme-landing-gcs",
                "incoming/données/été 2026.csv",
                "ObjectCreated:Finalize",
                1024,
                None,
            )],
        ),
    ];
    let files: Vec<String> = std::fs::read_dir(crate::support::root().join("events"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".json") && !name.starts_with("alteryx"))
        .filter(|name| REFUSED.iter().all(|(refused, _)| refused != name))
        .collect();
    for file in &files {
        assert!(
            table.iter().any(|(name, ..)| name == file),
            "events/{file} has no row in the table"
        );
    }
    for (file, invocation, want) in table {
        let (got_invocation, got) = objects(file);
        assert_eq!(got_invocation, *invocation, "{file}");
        let got: Vec<_> = got
            .iter()
            .map(|e| {
                (
                    e.source.as_str(),
                    e.bucket.as_str(),
                    e.key.as_str(),
                    e.event_name.as_str(),
                    e.size.unwrap_or(0),
                    e.record_id.as_deref(),
                )
            })
            .collect();
        assert_eq!(got, want.to_vec(), "{file}");
    }
}

#[test]
fn full_fields_of_a_direct_put_and_an_eventbridge_event() {
    let (_, put) = objects("s3-put.json");
    assert_eq!(
        serde_json::to_value(&put[0]).unwrap(),
        json!({
            "source": "s3", "bucket": "acme-landing", "key": "incoming/sales/Q4 report (2026).csv",
            "size": 52428, "etag": "0123456789abcdef0123456789abcdef", "version_id": null,
            "sequencer": "0062E9A0B3C4D5E6F7", "event_name": "ObjectCreated:Put",
            "event_time": "2026-11-25T08:00:00.000Z", "region": "eu-west-1", "record_id": null
        })
    );
    let (_, eb) = objects("eventbridge-object-created.json");
    assert_eq!(
        eb[0].version_id.as_deref(),
        Some("IYV3p45BhZA1U3vhtPzyX2O8L9bVfIsN")
    );
    assert_eq!(eb[0].sequencer.as_deref(), Some("00617F08299329D189"));
    assert_eq!(
        eb[0].event_time.as_deref(),
        Some("2026-11-25T08:00:00.000Z")
    );
}

#[test]
fn test_events_are_recognized_direct_and_in_a_batch() {
    let parsed = event::parse(sample("s3-test-event.json")).unwrap();
    assert!(
        matches!(&parsed.messages[0].body, Ok(Body::TestEvent { bucket }) if bucket == "acme-landing")
    );
    let batch = event::parse(sample("sqs-batch.json")).unwrap();
    assert!(matches!(
        &batch.messages[1].body,
        Ok(Body::TestEvent { .. })
    ));
}

/// An SNS message whose records hold a real object and then S3's test event: the object is
/// delivered, the test event ignored.
#[test]
fn a_test_event_beside_a_real_record_does_not_hide_it() {
    let real = sample("s3-put.json").to_string();
    let test = sample("s3-test-event.json").to_string();
    let sns = |message: &str| json!({"EventSource": "aws:sns", "Sns": {"Message": message}});
    let parsed = event::parse(json!({"Records": [sns(&real), sns(&test)]})).unwrap();
    let objects: Vec<_> = parsed.objects().map(|o| o.key.clone()).collect();
    assert_eq!(objects, ["incoming/sales/Q4 report (2026).csv"]);
    let only_test = event::parse(json!({"Records": [sns(&test)]})).unwrap();
    assert!(matches!(
        &only_test.messages[0].body,
        Ok(Body::TestEvent { .. })
    ));
}

#[test]
fn bad_input_is_a_clear_error_never_a_panic() {
    let cases: &[(&[u8], &str)] = &[
        (b"{not json", "not valid JSON"),
        (b"[]", "unrecognized event shape (an array)"),
        (br#"{"hello": 1}"#, "an object with keys hello"),
        (br#"{"Records": [{"eventSource": "aws:dynamodb"}]}"#, "\"aws:dynamodb\""),
        (br#"{"detail-type": "Object Deleted", "source": "aws.s3", "detail": {}}"#, "\"Object Deleted\""),
        (br#"{"detail-type": "Object Created", "source": "aws.s3", "detail": {"bucket": {}}}"#, "malformed EventBridge"),
        // Fields we never use (userIdentity, requestParameters, ...) may be absent; the first
        // one we use that is missing is named.
        (br#"{"Records": [{"eventSource": "aws:s3", "eventTime": "1970-01-01T00:00:00Z", "s3": {"bucket": {"name": "b"}, "object": {}}}]}"#, "malformed S3 notification record 0: missing s3.object.key"),
        (br#"{"Records": [{"eventSource": "aws:s3", "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}}]}"#, "malformed S3 notification record 0: missing eventName"),
        (br#"{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]}"#, "malformed S3 notification: Records[0]: missing field `s3`"),
        (br#"{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "eventTime": "1970-01-01T00:00:00Z", "userIdentity": {}, "requestParameters": {}, "responseElements": {}, "s3": {"bucket": {"name": "b"}, "object": {}}}]}"#, "malformed S3 notification record 0: missing s3.object.key"),
        (br#"{"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "nope"}}]}"#, "Sns.Message is not JSON"),
    ];
    for (input, want) in cases {
        let err = event::parse_bytes(input).unwrap_err().to_string();
        assert!(err.contains(want), "want {want:?} in {err:?}");
    }
}

#[test]
fn a_bad_sqs_message_fails_alone() {
    let mut batch = sample("sqs-batch.json");
    batch["Records"][0]["body"] = json!("{\"truncated\": ");
    let parsed = event::parse(batch).unwrap();
    assert!(parsed.messages[0].body.is_err());
    assert_eq!(
        parsed.messages[0].id.as_deref(),
        Some("a1b2c3d4-0001-4000-8000-000000000001")
    );
    assert_eq!(
        parsed.objects().count(),
        3,
        "the other messages still parse"
    );
}

/// Cloud Storage notifications keep the object name exactly as GCS gives it, take the
/// generation as the version and the content MD5 as the ETag, and name their events so that
/// routes written for S3 (`ObjectCreated:*`) or in GCS terms (`OBJECT_FINALIZE`) match.
#[test]
fn cloud_storage_notifications_normalize_for_both_clouds() {
    let (_, push) = objects("gcs-pubsub-push.json");
    let event = &push[0];
    assert_eq!(event.version_id.as_deref(), Some("1764057600123456"));
    assert_eq!(event.etag.as_deref(), Some("ASNFZ4mrze8BI0VniavN7w=="));
    assert_eq!(
        event.event_time.as_deref(),
        Some("2026-11-25T08:00:00.123Z")
    );
    assert_eq!(event.sequencer, None);
    let (_, deleted) = objects("gcs-pubsub-push-delete.json");
    assert_eq!(
        deleted[0].size, None,
        "payloadFormat NONE carries no object resource"
    );
    assert_eq!(deleted[0].version_id.as_deref(), Some("1764057600123456"));
    let (_, cloud_event) = objects("gcs-cloudevent.json");
    assert_eq!(
        cloud_event[0].version_id.as_deref(),
        Some("1764057600999999")
    );
    assert_eq!(
        cloud_event[0].event_time.as_deref(),
        Some("2026-11-25T08:10:00.500Z")
    );

    let route = |event: &str| {
        let yaml = format!(
            "routes:\n  - name: r\n    match: {{ event: {event} }}\n    target: {{ webhook: {{ url: 'https://h' }} }}\n"
        );
        bucket_trigger::config::Config::parse(&yaml, "t").unwrap()
    };
    for (pattern, finalize, delete) in [
        ("'ObjectCreated:*'", true, false),
        ("OBJECT_FINALIZE", true, false),
        ("google.cloud.storage.object.v1.finalized", true, false),
        ("OBJECT_DELETE", false, true),
        ("'ObjectRemoved:*'", false, true),
        ("'*'", true, true),
    ] {
        let config = route(pattern);
        assert_eq!(config.matching(event).count() == 1, finalize, "{pattern}");
        assert_eq!(
            config.matching(&deleted[0]).count() == 1,
            delete,
            "{pattern}"
        );
    }

    // Not a Cloud Storage notification, or a damaged one: named, not guessed.
    for (payload, said) in [
        (
            json!({"message": {"data": "e30=", "messageId": "1"}, "subscription": "s"}),
            "message.attributes is missing",
        ),
        (
            json!({"message": {"attributes": {"foo": "bar"}, "messageId": "1"}, "subscription": "s"}),
            "a Pub/Sub message without eventType",
        ),
        (
            json!({"message": {"attributes": {"eventType": "OBJECT_FINALIZE", "bucketId": "b", "objectId": "k", "payloadFormat": "JSON_API_V1"}, "data": "not base64!"}, "subscription": "s"}),
            "message.data is not base64",
        ),
        (
            json!({"message": {"attributes": {"eventType": "OBJECT_FINALIZE", "bucketId": "b", "objectId": "k"}, "data": "eyJzaXplIjogIngifQ=="}, "subscription": "s"}),
            "data.size \"x\" is not a number",
        ),
        (
            json!({"message": {"attributes": {"eventType": "OBJECT_FINALIZE", "objectId": "k"}}, "subscription": "s"}),
            "attributes.bucketId is missing",
        ),
        (
            json!({"specversion": "1.0", "type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "x", "id": "1"}),
            "a CloudEvent of type \"google.cloud.pubsub.topic.v1.messagePublished\"",
        ),
        (
            json!({"specversion": "1.0", "type": "google.cloud.storage.object.v1.finalized", "source": "//storage.googleapis.com/projects/_/buckets/b", "subject": "nope", "id": "1"}),
            "subject names no object",
        ),
    ] {
        let error = event::parse(payload.clone()).unwrap_err().to_string();
        assert!(error.contains(said), "{payload}: {error}");
    }
}
