//! Auth: AWS Signature Version 4 for our own calls to AWS APIs (SQS for failure records, S3
//! listings for backfill), sent through the same transport as every other request, so they
//! share one HTTP client and TLS setup. Credentials and region come from the shared AWS
//! configuration (in Lambda: the execution role, from the environment). The signature itself
//! is `aws-sigv4`'s; see <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv.html>.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use super::{AuthError, SignContext, Sigv4Config};
use crate::http::{HeaderValue, Request};
use crate::secrets::SecretString;

/// Signs requests to one AWS service in one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigV4 {
    /// The signing name (`sqs`, `s3`, `airflow`).
    pub service: String,
    /// The region (`eu-west-1`).
    pub region: String,
    /// Send `x-amz-content-sha256` (S3 wants it).
    pub content_sha256: bool,
}

impl SigV4 {
    /// A signer for `service` in `region`.
    pub fn new(service: &str, region: &str) -> Self {
        SigV4 {
            service: service.to_owned(),
            region: region.to_owned(),
            content_sha256: service == "s3",
        }
    }

    /// Signs `request` at `time` with `credentials`: adds `x-amz-date`, `authorization` (and
    /// `x-amz-security-token`, `x-amz-content-sha256` when due). Every header already on the
    /// request, and its content type, is signed.
    pub fn sign_with(
        &self,
        request: &mut Request,
        credentials: &Credentials,
        time: SystemTime,
    ) -> Result<(), String> {
        let mut headers: Vec<(String, String)> = request
            .headers
            .iter()
            .map(|(name, value)| match value {
                HeaderValue::Plain(text) => (name.clone(), text.clone()),
                HeaderValue::Secret { value, .. } => (name.clone(), value.expose().to_owned()),
            })
            .collect();
        if let Some(kind) = request.body.content_type() {
            headers.push(("content-type".to_owned(), kind.to_owned()));
        }
        let mut settings = SigningSettings::default();
        if self.content_sha256 {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        let identity: Identity = credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let body = request.body.bytes();
        let url = request.url.to_string();
        let signable = SignableRequest::new(
            request.method.as_str(),
            &url,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(&body),
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        for (name, value) in instructions.headers() {
            let value = match name {
                "authorization" | "x-amz-security-token" => HeaderValue::Secret {
                    value: SecretString::new(value),
                    shown: "****".to_owned(),
                },
                _ => HeaderValue::Plain(value.to_owned()),
            };
            request.set_header(name, value);
        }
        Ok(())
    }

    /// Signs `request` at `time` with this process's AWS credentials.
    pub async fn sign(&self, request: &mut Request, time: SystemTime) -> Result<(), AuthError> {
        let credentials = aws_credentials().await?;
        self.sign_with(request, &credentials, time)
            .map_err(|message| AuthError::TokenRefused {
                url: format!("(AWS {} signature)", self.service),
                message,
            })
    }
}

/// Signs a target's request as the function's role (`auth: aws_sigv4`). A dry run signs with
/// placeholder credentials: it reads nothing from AWS, and prints the signature redacted.
pub(super) async fn sign_as_role(
    config: &Sigv4Config,
    request: &mut Request,
    cx: &SignContext<'_>,
) -> Result<(), AuthError> {
    let region = match &config.region {
        Some(region) => region.clone(),
        None => aws_region().await.ok_or_else(|| AuthError::TokenRefused {
            url: format!("(AWS {} signature)", config.service),
            message: "no region: set auth.aws_sigv4.region, or AWS_REGION (Lambda sets it)"
                .to_owned(),
        })?,
    };
    let signer = SigV4::new(&config.service, &region);
    if !cx.transport.reaches_network() {
        let placeholder = Credentials::new("AKIDPLACEHOLDER", "placeholder", None, None, "dry-run");
        return signer
            .sign_with(request, &placeholder, cx.clock.now())
            .map_err(|message| AuthError::TokenRefused {
                url: format!("(AWS {} signature)", config.service),
                message,
            });
    }
    signer.sign(request, cx.clock.now()).await
}

/// This process's AWS credentials, from the shared configuration's provider chain (in
/// Lambda: environment variables; elsewhere maybe an instance or container endpoint). Kept
/// until five minutes before they expire, so a signed request per delivery (MWAA) does not
/// ask the chain each time.
pub async fn aws_credentials() -> Result<Credentials, AuthError> {
    static CACHED: tokio::sync::Mutex<Option<Credentials>> = tokio::sync::Mutex::const_new(None);
    let mut cached = CACHED.lock().await;
    if let Some(credentials) = cached.as_ref().filter(|c| fresh(c, SystemTime::now())) {
        return Ok(credentials.clone());
    }
    let unavailable = |message: String| AuthError::TokenUnavailable {
        url: "(AWS credentials)".to_owned(),
        message,
    };
    let provider = crate::secrets::aws_config()
        .await
        .credentials_provider()
        .ok_or_else(|| unavailable("no AWS credentials provider is configured".to_owned()))?;
    let credentials = provider
        .provide_credentials()
        .await
        .map_err(|e| unavailable(format!("no AWS credentials: {e}")))?;
    *cached = Some(credentials.clone());
    Ok(credentials)
}

/// Whether `credentials` may still be used at `now`: no expiry, or more than five minutes left.
fn fresh(credentials: &Credentials, now: SystemTime) -> bool {
    credentials.expiry().is_none_or(|expiry| {
        expiry
            .duration_since(now)
            .is_ok_and(|left| left > std::time::Duration::from_secs(300))
    })
}

/// The region of the shared AWS configuration (`AWS_REGION`, the profile, ...), if any.
pub async fn aws_region() -> Option<String> {
    crate::secrets::aws_config()
        .await
        .region()
        .map(|region| region.as_ref().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Body;
    use std::time::Duration;

    /// The published `get-vanilla` case of AWS's SigV4 test suite (service `service`, region
    /// `us-east-1`, 2015-08-30T12:36:00Z, the suite's example key).
    #[test]
    fn signs_the_published_get_vanilla_vector() {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        );
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160);
        let mut request = Request::new(
            reqwest::Method::GET,
            "https://example.amazonaws.com/".parse().unwrap(),
        );
        SigV4::new("service", "us-east-1")
            .sign_with(&mut request, &credentials, time)
            .unwrap();
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| match v {
                    HeaderValue::Plain(text) => text.clone(),
                    HeaderValue::Secret { value, .. } => value.expose().to_owned(),
                })
        };
        assert_eq!(header("x-amz-date").as_deref(), Some("20150830T123600Z"));
        assert_eq!(
            header("authorization").as_deref(),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
        assert_eq!(
            format!("{request:?}").matches("wJalrXUtnFEMI").count(),
            0,
            "printing never shows the key"
        );
        assert!(format!("{request:?}").contains("\"authorization\": \"****\""));
    }

    #[test]
    fn cached_credentials_are_used_until_five_minutes_before_they_expire() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let expiring = |left: u64| {
            Credentials::new("a", "s", None, Some(now + Duration::from_secs(left)), "t")
        };
        assert!(fresh(&Credentials::new("a", "s", None, None, "t"), now));
        assert!(fresh(&expiring(301), now));
        assert!(!fresh(&expiring(300), now));
        assert!(!fresh(&expiring(0), now));
        let expired = Credentials::new("a", "s", None, Some(now - Duration::from_secs(1)), "t");
        assert!(!fresh(&expired, now));
    }

    #[test]
    fn signs_the_body_and_its_content_type_and_s3_gets_the_payload_hash() {
        let credentials = Credentials::new("AKID", "SECRET", Some("TOKEN".into()), None, "t");
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut request = Request::post(
            "https://sqs.eu-west-1.amazonaws.com/".parse().unwrap(),
            Body::Text {
                content_type: "application/x-amz-json-1.0",
                text: r#"{"QueueUrl":"q"}"#.to_owned(),
            },
        );
        request.set_header(
            "x-amz-target",
            HeaderValue::Plain("AmazonSQS.SendMessage".into()),
        );
        let mut other = request.clone();
        SigV4::new("sqs", "eu-west-1")
            .sign_with(&mut request, &credentials, time)
            .unwrap();
        let names: Vec<&str> = request.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"x-amz-security-token"), "{names:?}");
        assert!(!names.contains(&"x-amz-content-sha256"), "{names:?}");
        let signed = format!("{request:?}");
        assert!(!signed.contains("TOKEN"), "{signed}");
        // A different body gives a different signature.
        other.body = Body::Text {
            content_type: "application/x-amz-json-1.0",
            text: r#"{"QueueUrl":"r"}"#.to_owned(),
        };
        SigV4::new("sqs", "eu-west-1")
            .sign_with(&mut other, &credentials, time)
            .unwrap();
        let authorization = |r: &Request| {
            r.headers
                .iter()
                .find(|(n, _)| n == "authorization")
                .map(|(_, v)| match v {
                    HeaderValue::Secret { value, .. } => value.expose().to_owned(),
                    HeaderValue::Plain(text) => text.clone(),
                })
                .unwrap()
        };
        assert!(
            authorization(&request).contains(
                "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
            ),
            "{}",
            authorization(&request)
        );
        assert_ne!(authorization(&request), authorization(&other));
        let mut listing = Request::new(
            reqwest::Method::GET,
            "https://b.s3.eu-west-1.amazonaws.com/?list-type=2"
                .parse()
                .unwrap(),
        );
        SigV4::new("s3", "eu-west-1")
            .sign_with(&mut listing, &credentials, time)
            .unwrap();
        assert!(
            listing
                .headers
                .iter()
                .any(|(n, v)| n == "x-amz-content-sha256"
                    && v.shown()
                        == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
    }
}
