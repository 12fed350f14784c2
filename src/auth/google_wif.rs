//! Signing: Google Workload Identity Federation from AWS (no stored key). The function's own
//! AWS credentials sign an STS `GetCallerIdentity` request (SigV4); Google STS exchanges that
//! "subject token" for a federated token, which IAM Credentials turns into a service-account
//! access token or ID token. Configured by Google's standard external-account JSON
//! (`"type": "external_account"`, `credential_source.environment_id: "aws1"`); every endpoint
//! comes from that JSON, so it can point at a stand-in.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use chrono::DateTime;
use reqwest::Url;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AuthError;
use super::google::{CLOUD_PLATFORM, TokenKind, token_from_answer};
use super::request_token;
use super::token_cache::Fetched;
use crate::secrets::SecretString;

const SUBJECT_TOKEN_TYPE: &str = "urn:ietf:params:aws:token-type:aws4_request";
const DEFAULT_VERIFICATION_URL: &str =
    "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15";

#[derive(Deserialize)]
struct ExternalAccount {
    audience: String,
    subject_token_type: String,
    token_url: String,
    service_account_impersonation_url: Option<String>,
    credential_source: CredentialSource,
}

#[derive(Deserialize)]
struct CredentialSource {
    environment_id: String,
    regional_cred_verification_url: Option<String>,
}

/// A token from an external-account configuration, using the AWS credentials of this process.
pub(super) async fn token(
    http: &reqwest::Client,
    config: &Value,
    kind: &TokenKind,
    secret_id: &str,
) -> Result<Fetched, AuthError> {
    let refused = |message: String| AuthError::TokenRefused {
        url: "(external account)".to_owned(),
        message: format!("secret {secret_id:?}: {message}"),
    };
    let account: ExternalAccount = serde_json::from_value(config.clone())
        .map_err(|e| refused(format!("not an external-account configuration: {e}")))?;
    if !account.credential_source.environment_id.starts_with("aws")
        || account.subject_token_type != SUBJECT_TOKEN_TYPE
    {
        return Err(refused(format!(
            "only AWS workload identity federation is supported (credential_source.environment_id \"aws1\", \
             subject_token_type {SUBJECT_TOKEN_TYPE:?})"
        )));
    }
    if matches!(kind, TokenKind::Id(_)) && account.service_account_impersonation_url.is_none() {
        return Err(refused(
            "ID tokens need service_account_impersonation_url (a federated token cannot be an ID token)".to_owned(),
        ));
    }
    let region = std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .map_err(|_| refused("AWS_REGION is not set (Lambda sets it)".to_owned()))?;
    let credentials = aws_credentials().await?;
    let verification_url = account
        .credential_source
        .regional_cred_verification_url
        .as_deref()
        .unwrap_or(DEFAULT_VERIFICATION_URL)
        .replace("{region}", &region);
    let subject_token = subject_token(
        &verification_url,
        &region,
        &account.audience,
        &credentials,
        SystemTime::now(),
    )
    .map_err(|e| refused(format!("could not sign GetCallerIdentity: {e}")))?;

    // 1. Google STS: AWS-signed request → federated access token.
    let sts_url =
        Url::parse(&account.token_url).map_err(|_| refused("token_url is not a URL".to_owned()))?;
    let scope = match kind {
        TokenKind::Access(scopes) if account.service_account_impersonation_url.is_none() => {
            scopes.join(" ")
        }
        _ => CLOUD_PLATFORM.to_owned(),
    };
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair(
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        )
        .append_pair("audience", &account.audience)
        .append_pair("scope", &scope)
        .append_pair(
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        )
        .append_pair("subject_token_type", SUBJECT_TOKEN_TYPE)
        .append_pair("subject_token", subject_token.expose())
        .finish();
    let builder = http
        .post(sts_url.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form);
    let refusal = format!(
        "Google STS refused the AWS identity for audience {}",
        account.audience
    );
    let answer = request_token(builder, &sts_url, &refusal).await?;
    let federated = token_from_answer(&answer, &TokenKind::Access(Vec::new()), &sts_url)?;
    let Some(impersonation) = account.service_account_impersonation_url else {
        return Ok(federated);
    };

    // 2. IAM Credentials: federated token → service-account access token or ID token.
    let (url, body) = match kind {
        TokenKind::Access(scopes) => (
            impersonation,
            json!({ "scope": scopes, "lifetime": "3600s" }),
        ),
        TokenKind::Id(audience) => (
            impersonation.replace(":generateAccessToken", ":generateIdToken"),
            json!({ "audience": audience, "includeEmail": true }),
        ),
    };
    let url = Url::parse(&url)
        .map_err(|_| refused("service_account_impersonation_url is not a URL".to_owned()))?;
    let builder = http
        .post(url.clone())
        .bearer_auth(federated.token.expose())
        .json(&body);
    let refusal = "IAM Credentials refused to impersonate the service account (does the pool's principal have \
                   roles/iam.workloadIdentityUser, and for ID tokens roles/iam.serviceAccountOpenIdTokenCreator?)";
    let answer = request_token(builder, &url, refusal).await?;
    match kind {
        TokenKind::Access(_) => {
            let token = answer
                .get("accessToken")
                .and_then(Value::as_str)
                .ok_or_else(|| AuthError::TokenRefused {
                    url: url.to_string(),
                    message: "answer has no accessToken".to_owned(),
                })?;
            let lifetime = answer
                .get("expireTime")
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .and_then(|t| (t.to_utc() - chrono::Utc::now()).to_std().ok());
            Ok(Fetched {
                token: SecretString::new(token),
                lifetime,
            })
        }
        TokenKind::Id(_) => {
            let token = answer.get("token").and_then(Value::as_str).ok_or_else(|| {
                AuthError::TokenRefused {
                    url: url.to_string(),
                    message: "answer has no token".to_owned(),
                }
            })?;
            Ok(Fetched {
                token: SecretString::new(token),
                lifetime: super::airflow_token::jwt_lifetime(token),
            })
        }
    }
}

/// This process's AWS credentials (in Lambda: the execution role's, from the environment).
async fn aws_credentials() -> Result<Credentials, AuthError> {
    aws_config::default_provider::credentials::default_provider()
        .await
        .provide_credentials()
        .await
        .map_err(|e| AuthError::TokenUnavailable {
            url: "(AWS credentials)".to_owned(),
            message: format!("no AWS credentials to sign GetCallerIdentity with: {e}"),
        })
}

/// Google's AWS subject token: the URL-encoded JSON of a SigV4-signed `GetCallerIdentity`
/// request (`{"url", "method": "POST", "headers": [{"key", "value"}, ...]}`), with the
/// `x-goog-cloud-target-resource` header naming the workload identity provider.
pub fn subject_token(
    url: &str,
    region: &str,
    audience: &str,
    credentials: &Credentials,
    time: SystemTime,
) -> Result<SecretString, String> {
    let host = Url::parse(url)
        .map_err(|e| e.to_string())?
        .host_str()
        .ok_or("the verification URL has no host")?
        .to_owned();
    let headers = [
        ("host", host.as_str()),
        ("x-goog-cloud-target-resource", audience),
    ];
    let identity: Identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.iter().copied(),
        SignableBody::Bytes(b""),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let mut all: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    all.extend(
        instructions
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let order = |name: &str| match name.to_ascii_lowercase().as_str() {
        "authorization" => 0,
        "host" => 1,
        "x-amz-date" => 2,
        "x-goog-cloud-target-resource" => 3,
        _ => 4,
    };
    all.sort_by_key(|(name, _)| order(name));
    let token = json!({
        "url": url,
        "method": "POST",
        "headers": all.iter().map(|(key, value)| json!({ "key": key, "value": value })).collect::<Vec<_>>(),
    });
    let encoded: String = form_urlencoded::byte_serialize(token.to_string().as_bytes()).collect();
    Ok(SecretString::new(encoded))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// For tests: decodes a subject token back to JSON.
    fn decode_subject_token(token: &str) -> Option<Value> {
        let decoded: String = form_urlencoded::parse(format!("t={token}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())?;
        serde_json::from_str(&decoded).ok()
    }

    #[test]
    fn subject_token_is_a_signed_get_caller_identity() {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        );
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let audience = "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/aws";
        let url = DEFAULT_VERIFICATION_URL.replace("{region}", "eu-west-1");
        let token = subject_token(&url, "eu-west-1", audience, &credentials, time).unwrap();
        let decoded = decode_subject_token(token.expose()).unwrap();
        assert_eq!(
            decoded["url"],
            "https://sts.eu-west-1.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
        );
        assert_eq!(decoded["method"], "POST");
        let headers: Vec<(String, String)> = decoded["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["key"].as_str().unwrap().to_owned(),
                    h["value"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "authorization",
                "host",
                "x-amz-date",
                "x-goog-cloud-target-resource"
            ]
        );
        let authorization = &headers[0].1;
        assert!(
            authorization.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/eu-west-1/sts/aws4_request"
            ),
            "{authorization}"
        );
        assert!(
            authorization.contains("SignedHeaders=host;x-amz-date;x-goog-cloud-target-resource"),
            "{authorization}"
        );
        assert_eq!(headers[1].1, "sts.eu-west-1.amazonaws.com");
        assert_eq!(headers[2].1, "20231114T221320Z");
        assert_eq!(headers[3].1, audience);
        assert!(
            !token.expose().contains("wJalrXUtnFEMI"),
            "the secret key never leaves"
        );
    }
}
