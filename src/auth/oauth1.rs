//! Auth: OAuth 1.0a HMAC-SHA1 (RFC 5849) with consumer credentials only, as the Alteryx
//! Gallery API v1 expects: protocol parameters in the query string (RFC 5849 §3.5.3, the
//! default) or the `Authorization` header (§3.5.1). The signature base string (§3.4.1) covers
//! the method, the base string URI and the query parameters; a JSON body is not part of it.
//! The signing itself is the `oauth1-request` crate's; the timestamp comes from the injected
//! clock and [`sign_oauth1`] takes nonce and timestamp as arguments, for golden tests.

use std::num::NonZeroU64;

use oauth1_request::signature_method::HmacSha1;
use oauth1_request::{Builder, Credentials, ParameterList};
use serde::Deserialize;

use super::{AuthError, SignContext};
use crate::http::{HeaderValue, Request};
use crate::secrets::SecretString;

/// Where the `oauth_*` parameters go.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// In the query string (what the Alteryx Gallery API v1 expects).
    #[default]
    Query,
    /// In the `Authorization: OAuth ...` header.
    Header,
}

/// `auth: { oauth1: { secret, key_field, secret_field, placement } }`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OAuth1Config {
    /// Secret id (name or ARN) holding the consumer key and secret.
    pub secret: String,
    /// Field holding the consumer key (default `ALTERYX_KEY`).
    #[serde(default = "default_key_field")]
    pub key_field: String,
    /// Field holding the consumer secret (default `ALTERYX_SECRET`).
    #[serde(default = "default_secret_field")]
    pub secret_field: String,
    /// `query` (default) or `header`.
    #[serde(default)]
    pub placement: Placement,
}

fn default_key_field() -> String {
    "ALTERYX_KEY".to_owned()
}

fn default_secret_field() -> String {
    "ALTERYX_SECRET".to_owned()
}

/// OAuth 1.0a signer.
#[derive(Debug)]
pub struct OAuth1 {
    config: OAuth1Config,
}

impl OAuth1 {
    /// From configuration.
    pub fn new(config: OAuth1Config) -> Self {
        OAuth1 { config }
    }

    pub(super) async fn sign(
        &self,
        request: &mut Request,
        cx: &SignContext<'_>,
    ) -> Result<(), AuthError> {
        let [key, consumer_secret] = cx
            .secrets
            .fields(
                &self.config.secret,
                [&self.config.key_field, &self.config.secret_field],
            )
            .await?;
        let nonce = format!("{:032x}", fastrand::u128(..));
        let timestamp = cx.clock.unix_seconds().max(1);
        sign_oauth1(
            request,
            &key,
            &consumer_secret,
            self.config.placement,
            &nonce,
            timestamp,
        );
        Ok(())
    }
}

/// Signs `request` with a given nonce and timestamp (deterministic: golden tests use this).
///
/// With [`Placement::Query`] the request URL gains the `oauth_*` parameters and a printable
/// form in which the consumer key, nonce and signature read `****`; with [`Placement::Header`]
/// the `Authorization` header is set and prints as `OAuth ****`.
pub fn sign_oauth1(
    request: &mut Request,
    consumer_key: &SecretString,
    consumer_secret: &SecretString,
    placement: Placement,
    nonce: &str,
    timestamp: u64,
) {
    let consumer = Credentials::new(consumer_key.expose(), consumer_secret.expose());
    sign_with(request, consumer, None, placement, nonce, timestamp, true);
}

/// RFC 5849 signing; `token` and `version = false` exist for the RFC's own example.
fn sign_with(
    request: &mut Request,
    consumer: Credentials<&str>,
    token: Option<Credentials<&str>>,
    placement: Placement,
    nonce: &str,
    timestamp: u64,
    version: bool,
) {
    let query: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
    let params = ParameterList::new(query);
    let mut base = request.url.clone();
    base.set_query(None);
    base.set_fragment(None);
    let mut builder = Builder::new(consumer, HmacSha1::new());
    builder
        .token(token)
        .nonce(nonce)
        .timestamp(NonZeroU64::new(timestamp))
        .version(version);
    let method = request.method.as_str();
    match placement {
        Placement::Header => {
            let authorization = builder.authorize(method, base.as_str(), &params);
            request.set_header(
                "authorization",
                HeaderValue::Secret {
                    value: SecretString::new(authorization),
                    shown: "OAuth ****".to_owned(),
                },
            );
        }
        Placement::Query => {
            let signed = builder.to_query(method, base.as_str().to_owned(), &params);
            // The crate writes only the oauth_* pairs; keep the URL's own query in front.
            let oauth_query = signed.split_once('?').map(|(_, q)| q).unwrap_or_default();
            let full_query = match request.url.query() {
                Some(own) if !own.is_empty() => format!("{own}&{oauth_query}"),
                _ => oauth_query.to_owned(),
            };
            let mut shown = base.clone();
            shown.set_query(Some(&redact_query(&full_query)));
            request.url.set_query(Some(&full_query));
            request.url_shown = Some(shown.to_string());
        }
    }
}

/// The query with the consumer key, nonce and signature replaced by `****`.
fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name @ ("oauth_consumer_key" | "oauth_nonce" | "oauth_signature"), _)) => {
                format!("{name}=****")
            }
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::{Method, Url};

    /// Reads the `oauth_signature` back from a signed URL (for tests and diagnostics).
    fn query_signature(url: &Url) -> Option<String> {
        url.query_pairs()
            .find(|(name, _)| name == "oauth_signature")
            .map(|(_, value)| value.into_owned())
    }

    fn request(method: Method, url: &str) -> Request {
        Request::new(method, Url::parse(url).unwrap())
    }

    /// The published example of RFC 5849 §1.2 (token credentials, no `oauth_version`).
    #[test]
    fn rfc5849_published_example() {
        let mut req = request(
            Method::GET,
            "http://photos.example.net/photos?file=vacation.jpg&size=original",
        );
        sign_with(
            &mut req,
            Credentials::new("dpf43f3p2l4k3l03", "kd94hf93k423kf44"),
            Some(Credentials::new("nnch734d00sl2jdk", "pfkkdhi9sl3r4s00")),
            Placement::Header,
            "chapoH",
            137_131_202,
            false,
        );
        let HeaderValue::Secret { value, .. } = &req.headers[0].1 else {
            panic!("secret header")
        };
        assert!(
            value
                .expose()
                .contains(r#"oauth_signature="MdpQcU8iPSUjWoN%2FUDMsK2sui9I%3D""#),
            "{}",
            value.expose()
        );
    }

    /// The golden request below, signed with its fixed nonce and timestamp.
    fn golden(placement: Placement) -> Request {
        let mut req = request(
            Method::POST,
            "http://127.0.0.1:8080/gallery/api/v1/workflows/5f1c%200a%2Bb/jobs/",
        );
        let (key, secret) = (
            SecretString::new("ké y+/&="),
            SecretString::new("s3cr€t +/&=%"),
        );
        sign_oauth1(
            &mut req,
            &key,
            &secret,
            placement,
            "0123456789abcdef0123456789abcdef",
            1_700_000_000,
        );
        req
    }

    /// A consumer-only request with keys full of characters §3.6 must encode; the expected
    /// signature and query were computed independently with Python `oauthlib.oauth1.Client`.
    #[test]
    fn golden_query_signature_with_awkward_characters() {
        let req = golden(Placement::Query);
        assert_eq!(
            query_signature(&req.url).unwrap(),
            "1OaWAYDQ6uTyLdH/99GGCMsMNQI="
        );
        assert_eq!(
            req.url.query().unwrap(),
            "oauth_consumer_key=k%C3%A9%20y%2B%2F%26%3D&oauth_nonce=0123456789abcdef0123456789abcdef\
             &oauth_signature_method=HMAC-SHA1&oauth_timestamp=1700000000&oauth_version=1.0\
             &oauth_signature=1OaWAYDQ6uTyLdH%2F99GGCMsMNQI%3D"
        );
        let shown = req.printable().url;
        assert!(
            shown.contains("oauth_consumer_key=****&oauth_nonce=****"),
            "{shown}"
        );
        assert!(shown.ends_with("oauth_signature=****"), "{shown}");
    }

    /// The Authorization header form of the same request carries the same signature.
    #[test]
    fn header_placement_signs_the_same_base_string() {
        let req = golden(Placement::Header);
        let (_, value) = &req.headers[0];
        let HeaderValue::Secret { value, shown } = value else {
            panic!("secret header")
        };
        assert_eq!(shown, "OAuth ****");
        assert!(value.expose().starts_with("OAuth "), "{}", value.expose());
        assert!(
            value
                .expose()
                .contains(r#"oauth_signature="1OaWAYDQ6uTyLdH%2F99GGCMsMNQI%3D""#),
            "{}",
            value.expose()
        );
        assert!(req.url.query().is_none());
    }

    /// The RFC's request with consumer credentials only: the URL's own query parameters are
    /// signed and kept in front of the oauth_* ones. Expected value from oauthlib.
    #[test]
    fn query_parameters_of_the_url_are_signed_and_kept() {
        let mut req = request(
            Method::GET,
            "http://photos.example.net/photos?file=vacation.jpg&size=original",
        );
        sign_oauth1(
            &mut req,
            &SecretString::new("dpf43f3p2l4k3l03"),
            &SecretString::new("kd94hf93k423kf44"),
            Placement::Query,
            "chapoH",
            137_131_202,
        );
        let query = req.url.query().unwrap();
        assert!(
            query
                .starts_with("file=vacation.jpg&size=original&oauth_consumer_key=dpf43f3p2l4k3l03"),
            "{query}"
        );
        assert_eq!(
            query_signature(&req.url).unwrap(),
            RFC_EXAMPLE_CONSUMER_ONLY
        );
    }

    /// `oauthlib.oauth1.Client('dpf43f3p2l4k3l03', client_secret='kd94hf93k423kf44',
    /// signature_type='QUERY', nonce='chapoH', timestamp='137131202')` on the URL above.
    const RFC_EXAMPLE_CONSUMER_ONLY: &str = "obIiUbUal3WIr/OpR7560bjf/tA=";
}
