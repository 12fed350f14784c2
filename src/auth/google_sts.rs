//! Auth: Google Workload Identity Federation from AWS, first step (no stored key). The
//! function's own AWS credentials sign an STS `GetCallerIdentity` request (SigV4); Google STS
//! exchanges that "subject token" for a federated access token. Configured by Google's standard
//! external-account JSON (`"type": "external_account"`, `credential_source.environment_id:
//! "aws1"`); every endpoint comes from that JSON, so it can point at a stand-in. The second step,
//! impersonating the service account, is [`super::google_iam`]'s.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use reqwest::Url;
use serde::Deserialize;
use serde_json::{Value, json};

use super::token::{self, Token, Wanted};
use super::{AuthError, CLOUD_PLATFORM, SignContext};
use crate::http::{Body, Request};
use crate::secrets::SecretString;

const SUBJECT_TOKEN_TYPE: &str = "urn:ietf:params:aws:token-type:aws4_request";
const DEFAULT_VERIFICATION_URL: &str =
    "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15";

/// The fields of an external-account configuration we use.
#[derive(Deserialize)]
pub(super) struct ExternalAccount {
    audience: String,
    subject_token_type: String,
    token_url: String,
    /// IAM Credentials' `generateAccessToken` URL of the service account to act as, if any.
    pub(super) service_account_impersonation_url: Option<String>,
    credential_source: CredentialSource,
    #[serde(skip)]
    secret: String,
}

#[derive(Deserialize)]
struct CredentialSource {
    environment_id: String,
    regional_cred_verification_url: Option<String>,
}

fn refused(secret: &str, message: impl std::fmt::Display) -> AuthError {
    AuthError::TokenRefused {
        url: "(external account)".to_owned(),
        message: format!("secret {secret:?}: {message}"),
    }
}

impl ExternalAccount {
    /// Reads and checks a configuration from secret `secret` for the token `wanted`.
    pub(super) fn parse(json: Value, wanted: &Wanted, secret: &str) -> Result<Self, AuthError> {
        let mut account: ExternalAccount = serde_json::from_value(json).map_err(|e| {
            refused(
                secret,
                format!("not an external-account configuration: {e}"),
            )
        })?;
        account.secret = secret.to_owned();
        if !account.credential_source.environment_id.starts_with("aws")
            || account.subject_token_type != SUBJECT_TOKEN_TYPE
        {
            return Err(refused(
                secret,
                format!(
                    "only AWS workload identity federation is supported (credential_source.environment_id \"aws1\", \
                     subject_token_type {SUBJECT_TOKEN_TYPE:?})"
                ),
            ));
        }
        if matches!(wanted, Wanted::Id(_)) && account.service_account_impersonation_url.is_none() {
            return Err(refused(
                secret,
                "ID tokens need service_account_impersonation_url (a federated token cannot be an ID token)",
            ));
        }
        Ok(account)
    }
}

/// Google STS: this process's AWS identity → a federated access token.
pub(super) async fn federate(
    cx: &SignContext<'_>,
    account: &ExternalAccount,
    wanted: &Wanted,
) -> Result<Token, AuthError> {
    let region = std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .map_err(|_| refused(&account.secret, "AWS_REGION is not set (Lambda sets it)"))?;
    let credentials = super::aws_credentials().await?;
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
        cx.clock.now(),
    )
    .map_err(|e| {
        refused(
            &account.secret,
            format!("could not sign GetCallerIdentity: {e}"),
        )
    })?;
    let sts_url = Url::parse(&account.token_url)
        .map_err(|_| refused(&account.secret, "token_url is not a URL"))?;
    let scope = match wanted {
        Wanted::Access(scopes) if account.service_account_impersonation_url.is_none() => {
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
    let request = Request::post(
        sts_url,
        Body::Secret {
            content_type: "application/x-www-form-urlencoded",
            text: SecretString::new(form),
        },
    );
    let refusal = format!(
        "Google STS refused the AWS identity for audience {}",
        account.audience
    );
    let answer = token::exchange(cx, &request, &refusal).await?;
    token::from_answer(
        &answer,
        &Wanted::Access(Vec::new()),
        &request.url,
        cx.clock.now(),
    )
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
