//! Secrets Manager through the real AWS SDK, against a moto server on 127.0.0.1.

use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_secretsmanager::primitives::Blob;
use bucket_trigger::secrets::{SecretCache, SecretsError, SecretsManager};

use crate::support::{moto_client as client, unique};

#[tokio::test]
async fn json_plain_and_binary_secrets_are_read_through_the_sdk() {
    let client = client();
    let json_id = unique("airflow");
    let plain_id = unique("token");
    let binary_id = unique("binary");
    client
        .create_secret()
        .name(&json_id)
        .secret_string(r#"{"AIRFLOW_USER": "admin", "AIRFLOW_PASSWORD": "pw-from-moto"}"#)
        .send()
        .await
        .unwrap();
    client
        .create_secret()
        .name(&plain_id)
        .secret_string("plain-token")
        .send()
        .await
        .unwrap();
    client
        .create_secret()
        .name(&binary_id)
        .secret_binary(Blob::new(br#"{"token": "from-binary"}"#.to_vec()))
        .send()
        .await
        .unwrap();

    let cache = SecretCache::new(
        Box::new(SecretsManager::new(client.clone())),
        Duration::from_secs(300),
    );
    assert_eq!(
        cache
            .field(&json_id, Some("AIRFLOW_PASSWORD"))
            .await
            .unwrap()
            .expose(),
        "pw-from-moto"
    );
    assert_eq!(
        cache.field(&plain_id, None).await.unwrap().expose(),
        "plain-token"
    );
    assert_eq!(
        cache
            .field(&binary_id, Some("token"))
            .await
            .unwrap()
            .expose(),
        "from-binary"
    );

    let err = cache
        .field(&json_id, Some("AIRFLOW_PASS"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&json_id) && err.contains("AIRFLOW_PASS") && err.contains("AIRFLOW_USER"),
        "{err}"
    );
    assert!(!err.contains("pw-from-moto"), "{err}");
}

#[tokio::test]
async fn a_missing_secret_is_not_found_and_not_retryable() {
    let cache = SecretCache::new(
        Box::new(SecretsManager::new(client())),
        Duration::from_secs(300),
    );
    let id = unique("does-not-exist");
    let err = cache.get(&id).await.unwrap_err();
    assert!(matches!(err, SecretsError::NotFound { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(
        err.to_string().contains(&id) && err.to_string().contains("Secrets Manager"),
        "{err}"
    );
}

#[tokio::test]
async fn warm_invocations_reuse_the_secret_within_the_ttl() {
    let client = client();
    let id = unique("cached");
    client
        .create_secret()
        .name(&id)
        .secret_string(r#"{"password": "v1"}"#)
        .send()
        .await
        .unwrap();
    let cache = SecretCache::new(
        Box::new(SecretsManager::new(client.clone())),
        Duration::from_secs(300),
    );
    assert_eq!(
        cache.field(&id, Some("password")).await.unwrap().expose(),
        "v1"
    );

    // Rotate the secret in the store: within the TTL the cache does not ask again.
    client
        .put_secret_value()
        .secret_id(&id)
        .secret_string(r#"{"password": "v2"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        cache.field(&id, Some("password")).await.unwrap().expose(),
        "v1"
    );

    // With a zero TTL every use fetches, and sees the rotation.
    let uncached = SecretCache::new(Box::new(SecretsManager::new(client)), Duration::ZERO);
    assert_eq!(
        uncached
            .field(&id, Some("password"))
            .await
            .unwrap()
            .expose(),
        "v2"
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_retryable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(bucket_trigger::secrets::sdk_http_client())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled())
        .build();
    let cache = SecretCache::new(
        Box::new(SecretsManager::new(Client::from_conf(config))),
        Duration::from_secs(1),
    );
    let err = cache.get("any").await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}
