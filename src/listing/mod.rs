//! Listing (above event and auth): which objects a bucket holds under a prefix, for
//! `bucket-trigger backfill`. S3's ListObjectsV2, or ListObjectVersions on a bucket that has
//! (or had) versioning, so each current object comes with the version id a live event of it
//! carries; signed with SigV4, sent over the shared transport, read one page at a time. Each
//! object becomes an [`ObjectEvent`] of source `backfill` with the identity (version id, else
//! ETag and size) that the idempotency store keys live events by.

mod xml;

use std::sync::Arc;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, Url};

use aws_credential_types::Credentials;

use crate::auth::AuthError;
use crate::auth::SigV4;
use crate::clock::Clock;
use crate::event::{ObjectEvent, Source};
use crate::http::{Request, Sent, Transport, TransportError, Verdict};

pub use xml::{Listed, Next, Page, S3Error};

/// The most of one listing answer that is read: a page of 1,000 entries with the longest keys
/// S3 allows (1,024 bytes, XML-escaped) stays under it.
pub const MAX_PAGE_BYTES: usize = 16 * 1024 * 1024;

/// The most keys S3 returns in one page, and the page size asked for by default.
pub const MAX_PAGE_KEYS: u16 = 1000;

/// Attempts per listing request: S3's 500 and 503 `SlowDown` are worth a second try.
const ATTEMPTS: u32 = 3;

/// Characters sent as they are in a query value; every other byte is `%XX`-encoded, as
/// SigV4's canonical query string wants (RFC 3986 unreserved characters).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `s3://BUCKET[/PREFIX]`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix (may be empty: the whole bucket). Listed as given: `in` matches `in/` and
    /// `inbox.csv` alike, as S3 prefixes do.
    pub prefix: String,
}

impl Location {
    /// Parses `s3://BUCKET[/PREFIX]`.
    pub fn parse(text: &str) -> Result<Location, ListingError> {
        let bad = |reason: &str| ListingError::Location {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = text
            .strip_prefix("s3://")
            .ok_or_else(|| bad("expected s3://BUCKET[/PREFIX]"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket name after s3://"));
        }
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        if bucket.len() > 255 || !bucket.chars().all(valid) {
            return Err(bad(
                "a bucket name has only letters, digits, '.', '-' and '_' (then /PREFIX)",
            ));
        }
        Ok(Location {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Why a listing failed. None of them is worth retrying as is: the listing request was
/// already tried [`ATTEMPTS`] times where S3 said it might help.
#[derive(Debug, thiserror::Error)]
pub enum ListingError {
    /// The `s3://` argument is not one.
    #[error("{text:?} is not an S3 location: {reason}")]
    Location {
        /// What was given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No AWS region is configured.
    #[error("no AWS region: set AWS_REGION (the bucket's region)")]
    NoRegion,
    /// An endpoint override is not a URL.
    #[error("{variable} is not a URL: {value:?}")]
    Endpoint {
        /// `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`.
        variable: &'static str,
        /// Its value.
        value: String,
    },
    /// The request could not be signed (no credentials).
    #[error("cannot sign the S3 request: {0}")]
    Credentials(#[from] AuthError),
    /// S3 could not be reached.
    #[error("{operation} on bucket {bucket}: {error}")]
    Unreachable {
        /// The S3 operation.
        operation: &'static str,
        /// Bucket.
        bucket: String,
        /// What the transport said (no credentials in it).
        error: TransportError,
    },
    /// The credentials may not do it.
    #[error(
        "{operation} on bucket {bucket}: access denied; the credentials need the {permission} \
         permission on arn:aws:s3:::{bucket}"
    )]
    AccessDenied {
        /// The S3 operation.
        operation: &'static str,
        /// Bucket.
        bucket: String,
        /// The IAM action it needs.
        permission: &'static str,
    },
    /// No such bucket.
    #[error("bucket {bucket} does not exist (S3 NoSuchBucket)")]
    NoSuchBucket {
        /// Bucket.
        bucket: String,
    },
    /// The bucket lives in another region than the one configured.
    #[error("bucket {bucket} is in region {region}, not {configured}: set AWS_REGION={region}")]
    WrongRegion {
        /// Bucket.
        bucket: String,
        /// Where it is (`(unknown)` when S3 did not say).
        region: String,
        /// The region asked.
        configured: String,
    },
    /// Any other refusal.
    #[error("{operation} on bucket {bucket}: HTTP {status} {code}: {message}")]
    Refused {
        /// The S3 operation.
        operation: &'static str,
        /// Bucket.
        bucket: String,
        /// HTTP status.
        status: u16,
        /// S3's error code, if it gave one.
        code: String,
        /// S3's message, or an excerpt of the answer.
        message: String,
    },
    /// The answer could not be read.
    #[error("{operation} on bucket {bucket}: unreadable answer: {reason}")]
    Malformed {
        /// The S3 operation.
        operation: &'static str,
        /// Bucket.
        bucket: String,
        /// Why.
        reason: String,
    },
    /// The transport given does not reach the network (a dry run's printer).
    #[error("listing needs a transport that sends requests, not a dry-run printer")]
    NotSent,
}

/// The S3 call being made, with the permission it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `GET /?versioning`.
    GetBucketVersioning,
    /// `GET /?list-type=2`.
    ListObjectsV2,
    /// `GET /?versions`.
    ListObjectVersions,
}

impl Operation {
    /// The operation's name in AWS's API reference.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::GetBucketVersioning => "GetBucketVersioning",
            Operation::ListObjectsV2 => "ListObjectsV2",
            Operation::ListObjectVersions => "ListObjectVersions",
        }
    }

    /// The IAM action that allows it.
    pub fn permission(self) -> &'static str {
        match self {
            Operation::GetBucketVersioning => "s3:GetBucketVersioning",
            Operation::ListObjectsV2 => "s3:ListBucket",
            Operation::ListObjectVersions => "s3:ListBucketVersions",
        }
    }
}

/// What to list beyond the location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// List only keys after this one (resuming a backfill that stopped).
    pub start_after: Option<String>,
    /// Stop after this many objects.
    pub limit: Option<u64>,
    /// Keys asked per page (1 to [`MAX_PAGE_KEYS`]).
    pub page_size: u16,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            start_after: None,
            limit: None,
            page_size: MAX_PAGE_KEYS,
        }
    }
}

/// Lists buckets: the transport, region, endpoint and clock, built once.
#[derive(Debug)]
pub struct Lister {
    transport: Box<dyn Transport>,
    clock: Arc<dyn Clock>,
    region: String,
    /// An endpoint override (moto, MinIO, a VPC endpoint): path-style URLs under it.
    endpoint: Option<Url>,
    timeout: Duration,
    /// Fixed credentials instead of the process's AWS chain (tests).
    credentials: Option<Credentials>,
}

impl Lister {
    /// A lister sending through `transport` (a `Network` reading answers up to
    /// [`MAX_PAGE_BYTES`]), signing for `region`, at `endpoint` when given (else S3's own).
    pub fn new(
        transport: Box<dyn Transport>,
        clock: Arc<dyn Clock>,
        region: &str,
        endpoint: Option<Url>,
        timeout: Duration,
    ) -> Lister {
        Lister {
            transport,
            clock,
            region: region.to_owned(),
            endpoint,
            timeout,
            credentials: None,
        }
    }

    /// The same lister signing with `credentials` instead of the process's AWS credential
    /// chain (for tests, and callers that hold credentials of their own).
    pub fn with_credentials(mut self, credentials: Credentials) -> Lister {
        self.credentials = Some(credentials);
        self
    }

    /// The endpoint override from the environment, as the AWS SDKs read it:
    /// `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`.
    pub fn endpoint_from_env() -> Result<Option<Url>, ListingError> {
        for variable in ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"] {
            if let Some(value) = std::env::var(variable)
                .ok()
                .filter(|v| !v.trim().is_empty())
            {
                return Url::parse(value.trim())
                    .map(Some)
                    .map_err(|_| ListingError::Endpoint { variable, value });
            }
        }
        Ok(None)
    }

    /// The bucket's URL: path-style under an endpoint override, or for a bucket name with dots
    /// (which a virtual-hosted name would put outside the TLS certificate's wildcard); else
    /// virtual-hosted, `https://BUCKET.s3.REGION.amazonaws.com/`.
    pub fn bucket_url(&self, bucket: &str) -> Result<Url, ListingError> {
        let url = match &self.endpoint {
            Some(endpoint) => Ok(crate::http::join(endpoint, &[bucket])),
            None if bucket.contains('.') => {
                Url::parse(&format!("https://s3.{}.amazonaws.com/", self.region))
                    .map(|base| crate::http::join(&base, &[bucket]))
            }
            None => Url::parse(&format!(
                "https://{bucket}.s3.{}.amazonaws.com/",
                self.region
            )),
        };
        url.map_err(|_| ListingError::Location {
            text: format!("s3://{bucket}"),
            reason: format!("no valid S3 URL for this bucket in region {}", self.region),
        })
    }

    /// Starts listing `location`: asks whether the bucket is versioned (GetBucketVersioning),
    /// then pages through ListObjectVersions or ListObjectsV2.
    pub async fn open<'a>(
        &'a self,
        location: &'a Location,
        options: Options,
    ) -> Result<Pages<'a>, ListingError> {
        if !self.transport.reaches_network() {
            return Err(ListingError::NotSent);
        }
        let base = self.bucket_url(&location.bucket)?;
        let mut url = base.clone();
        url.set_query(Some("versioning="));
        let body = self
            .get(url, Operation::GetBucketVersioning, &location.bucket)
            .await?;
        let versioned = xml::versioned(&body).map_err(|reason| ListingError::Malformed {
            operation: Operation::GetBucketVersioning.as_str(),
            bucket: location.bucket.clone(),
            reason,
        })?;
        Ok(Pages {
            lister: self,
            location,
            base,
            operation: match versioned {
                true => Operation::ListObjectVersions,
                false => Operation::ListObjectsV2,
            },
            options,
            cursor: Cursor::Start,
            listed: 0,
            requests: 1,
        })
    }

    /// One signed `GET`, tried again on S3's 500/503 and on connection failures (a listing is
    /// read-only); the answer's body, or what S3's refusal means.
    async fn get(
        &self,
        url: Url,
        operation: Operation,
        bucket: &str,
    ) -> Result<String, ListingError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = Request::new(Method::GET, url.clone());
            let signer = SigV4::new("s3", &self.region);
            match &self.credentials {
                None => signer.sign(&mut request, self.clock.now()).await?,
                Some(credentials) => signer
                    .sign_with(&mut request, credentials, self.clock.now())
                    .map_err(|message| AuthError::TokenRefused {
                        url: "(AWS s3 signature)".to_owned(),
                        message,
                    })?,
            }
            let verdict = match self.transport.send(&request, self.timeout).await {
                Sent::Answered(answer) if answer.status.is_success() => {
                    if answer.body.len() >= MAX_PAGE_BYTES {
                        return Err(ListingError::Malformed {
                            operation: operation.as_str(),
                            bucket: bucket.to_owned(),
                            reason: format!("longer than {MAX_PAGE_BYTES} bytes"),
                        });
                    }
                    return Ok(answer.body);
                }
                Sent::Answered(answer) => {
                    let verdict = Verdict::from_status(answer.status, "");
                    if !matches!(verdict, Verdict::Retry { .. }) || attempt >= ATTEMPTS {
                        return Err(self.refusal(operation, bucket, &answer));
                    }
                    verdict
                }
                Sent::Failed(error) if attempt >= ATTEMPTS || error.is_invalid_request() => {
                    return Err(ListingError::Unreachable {
                        operation: operation.as_str(),
                        bucket: bucket.to_owned(),
                        error,
                    });
                }
                Sent::Failed(error) => Verdict::from_transport(&error, true),
                Sent::Printed(_) => return Err(ListingError::NotSent),
            };
            tracing::warn!(operation = operation.as_str(), attempt, reason = %verdict.into_reason(), "S3 listing request failed; trying again");
            tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
        }
    }

    /// What an S3 error answer means, in words that name what to fix.
    fn refusal(
        &self,
        operation: Operation,
        bucket: &str,
        answer: &crate::http::Answer,
    ) -> ListingError {
        let error = xml::error(&answer.body).unwrap_or_default();
        let header_region = answer
            .headers
            .get("x-amz-bucket-region")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match (answer.status.as_u16(), error.code.as_str()) {
            (_, "NoSuchBucket") => ListingError::NoSuchBucket {
                bucket: bucket.to_owned(),
            },
            (403, "AccessDenied" | "AllAccessDisabled" | "") => ListingError::AccessDenied {
                operation: operation.as_str(),
                bucket: bucket.to_owned(),
                permission: operation.permission(),
            },
            (
                _,
                "PermanentRedirect"
                | "AuthorizationHeaderMalformed"
                | "IllegalLocationConstraintException",
            )
            | (301, _) => ListingError::WrongRegion {
                bucket: bucket.to_owned(),
                region: header_region
                    .or(error.region)
                    .unwrap_or_else(|| "(unknown)".to_owned()),
                configured: self.region.clone(),
            },
            (status, code) => ListingError::Refused {
                operation: operation.as_str(),
                bucket: bucket.to_owned(),
                status,
                code: code.to_owned(),
                message: match error.message.is_empty() {
                    true => crate::http::excerpt(&answer.body, 200),
                    false => error.message,
                },
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Cursor {
    Start,
    Next(Next),
    Done,
}

/// A listing in progress: [`Pages::next_page`] until it gives `None`.
#[derive(Debug)]
pub struct Pages<'a> {
    lister: &'a Lister,
    location: &'a Location,
    base: Url,
    operation: Operation,
    options: Options,
    cursor: Cursor,
    listed: u64,
    requests: u64,
}

impl Pages<'_> {
    /// The list operation in use: `ListObjectVersions` on a versioned bucket, else
    /// `ListObjectsV2`.
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// Requests sent to S3 so far (the versioning check included).
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// The next page's current objects as events (possibly none, when a page of versions held
    /// only older ones), or `None` when the listing (or the limit) is done.
    pub async fn next_page(&mut self) -> Result<Option<Vec<ObjectEvent>>, ListingError> {
        let remaining = self
            .options
            .limit
            .map(|limit| limit.saturating_sub(self.listed));
        if self.cursor == Cursor::Done || remaining == Some(0) {
            return Ok(None);
        }
        let page_size = remaining.map_or(self.options.page_size, |left| {
            left.min(u64::from(self.options.page_size)) as u16
        });
        let url = self.page_url(page_size);
        let body = self
            .lister
            .get(url, self.operation, &self.location.bucket)
            .await?;
        self.requests += 1;
        let page = match self.operation {
            Operation::ListObjectVersions => xml::versions_page(&body),
            _ => xml::objects_page(&body),
        }
        .map_err(|reason| ListingError::Malformed {
            operation: self.operation.as_str(),
            bucket: self.location.bucket.clone(),
            reason,
        })?;
        self.cursor = match page.next {
            Some(next) if Cursor::Next(next.clone()) != self.cursor => Cursor::Next(next),
            // The same cursor twice would loop for ever.
            Some(_) => {
                return Err(ListingError::Malformed {
                    operation: self.operation.as_str(),
                    bucket: self.location.bucket.clone(),
                    reason: "the next page starts where this one did".to_owned(),
                });
            }
            None => Cursor::Done,
        };
        let mut objects = page.objects;
        if let Some(left) = remaining {
            objects.truncate(usize::try_from(left).unwrap_or(usize::MAX));
        }
        self.listed += objects.len() as u64;
        Ok(Some(
            objects
                .into_iter()
                .map(|listed| event(&self.location.bucket, &self.lister.region, listed))
                .collect(),
        ))
    }

    fn page_url(&self, page_size: u16) -> Url {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        let max_keys = page_size.max(1).to_string();
        match self.operation {
            Operation::ListObjectVersions => pairs.push(("versions", "")),
            _ => pairs.push(("list-type", "2")),
        }
        pairs.push(("encoding-type", "url"));
        pairs.push(("max-keys", &max_keys));
        pairs.push(("prefix", &self.location.prefix));
        let start_after = self.options.start_after.as_deref();
        match (&self.cursor, self.operation) {
            (Cursor::Next(Next::Token(token)), _) => pairs.push(("continuation-token", token)),
            (Cursor::Next(Next::Markers { key, version }), _) => {
                pairs.push(("key-marker", key));
                if let Some(version) = version {
                    pairs.push(("version-id-marker", version));
                }
            }
            (_, Operation::ListObjectVersions) => {
                if let Some(key) = start_after {
                    pairs.push(("key-marker", key));
                }
            }
            (_, _) => {
                if let Some(key) = start_after {
                    pairs.push(("start-after", key));
                }
            }
        }
        let query: Vec<String> = pairs
            .iter()
            .map(|(name, value)| format!("{name}={}", utf8_percent_encode(value, QUERY_VALUE)))
            .collect();
        let mut url = self.base.clone();
        url.set_query(Some(&query.join("&")));
        url
    }
}

/// A listed object as the event a live `ObjectCreated:Put` of it would be: same bucket, key,
/// size, ETag and version id (so the same idempotency key), `LastModified` as the event time.
fn event(bucket: &str, region: &str, listed: Listed) -> ObjectEvent {
    use chrono::{DateTime, SecondsFormat, Utc};
    ObjectEvent {
        source: Source::Backfill,
        bucket: bucket.to_owned(),
        key: listed.key,
        size: Some(listed.size),
        etag: listed.etag,
        version_id: listed.version_id,
        sequencer: None,
        event_name: "ObjectCreated:Put".to_owned(),
        event_time: listed.last_modified.map(|time| {
            DateTime::parse_from_rfc3339(&time)
                .map(|time| {
                    time.with_timezone(&Utc)
                        .to_rfc3339_opts(SecondsFormat::Millis, true)
                })
                .unwrap_or(time)
        }),
        region: Some(region.to_owned()),
        record_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::http::DryRun;
    use reqwest::StatusCode;

    fn lister(endpoint: Option<&str>) -> Lister {
        Lister::new(
            Box::new(DryRun),
            Arc::new(SystemClock),
            "eu-west-1",
            endpoint.map(|e| Url::parse(e).unwrap()),
            Duration::from_secs(5),
        )
    }

    #[test]
    fn parses_s3_locations() {
        let ok = |text: &str| Location::parse(text).unwrap();
        assert_eq!(ok("s3://b").prefix, "");
        assert_eq!(ok("s3://b/").prefix, "");
        let location = ok("s3://my.bucket/in/2026 q4/");
        assert_eq!(
            (location.bucket.as_str(), location.prefix.as_str()),
            ("my.bucket", "in/2026 q4/")
        );
        for bad in [
            "b/in",
            "s3://",
            "s3:///in",
            "https://b/in",
            "s3://b?x/in",
            "s3://b c/",
        ] {
            let error = Location::parse(bad).unwrap_err().to_string();
            assert!(error.contains("is not an S3 location"), "{bad}: {error}");
        }
    }

    #[test]
    fn bucket_urls_for_each_addressing_style() {
        let url = |endpoint: Option<&str>, bucket: &str| {
            lister(endpoint).bucket_url(bucket).unwrap().to_string()
        };
        assert_eq!(url(None, "b"), "https://b.s3.eu-west-1.amazonaws.com/");
        assert_eq!(
            url(None, "my.bucket"),
            "https://s3.eu-west-1.amazonaws.com/my.bucket"
        );
        assert_eq!(
            url(Some("http://127.0.0.1:5000"), "b"),
            "http://127.0.0.1:5000/b"
        );
        assert_eq!(
            url(Some("http://127.0.0.1:5000/s3/"), "b"),
            "http://127.0.0.1:5000/s3/b"
        );
    }

    #[test]
    fn page_urls_encode_prefix_cursor_and_start_after() {
        let lister = lister(Some("http://127.0.0.1:5000"));
        let location = Location::parse("s3://b/in/a b+c/é&x=").unwrap();
        let mut pages = Pages {
            lister: &lister,
            location: &location,
            base: lister.bucket_url("b").unwrap(),
            operation: Operation::ListObjectsV2,
            options: Options {
                start_after: Some("in/a b+c/k~1".into()),
                ..Options::default()
            },
            cursor: Cursor::Start,
            listed: 0,
            requests: 0,
        };
        assert_eq!(
            pages.page_url(1000).as_str(),
            "http://127.0.0.1:5000/b?list-type=2&encoding-type=url&max-keys=1000\
             &prefix=in%2Fa%20b%2Bc%2F%C3%A9%26x%3D&start-after=in%2Fa%20b%2Bc%2Fk~1"
        );
        pages.cursor = Cursor::Next(Next::Token("1ue/Gc+x=".into()));
        assert!(
            pages
                .page_url(7)
                .as_str()
                .ends_with("max-keys=7&prefix=in%2Fa%20b%2Bc%2F%C3%A9%26x%3D&continuation-token=1ue%2FGc%2Bx%3D"),
            "{}",
            pages.page_url(7)
        );
        pages.operation = Operation::ListObjectVersions;
        pages.cursor = Cursor::Next(Next::Markers {
            key: "k 1".into(),
            version: Some("v+1".into()),
        });
        assert!(
            pages
                .page_url(5)
                .as_str()
                .starts_with("http://127.0.0.1:5000/b?versions=&encoding-type=url&max-keys=5"),
            "{}",
            pages.page_url(5)
        );
        assert!(
            pages
                .page_url(5)
                .as_str()
                .ends_with("&key-marker=k%201&version-id-marker=v%2B1")
        );
        // The query survives the URL parser unchanged (the signature covers it as sent).
        let reparsed = Url::parse(pages.page_url(5).as_str()).unwrap();
        let pairs: Vec<(String, String)> = reparsed.query_pairs().into_owned().collect();
        assert!(
            pairs.contains(&("prefix".into(), "in/a b+c/é&x=".into())),
            "{pairs:?}"
        );
    }

    #[test]
    fn a_listed_object_is_the_event_a_live_put_would_be() {
        let event = event(
            "b",
            "eu-west-1",
            Listed {
                key: "in/a.csv".into(),
                size: 42,
                etag: Some("e".into()),
                version_id: Some("v".into()),
                last_modified: Some("2026-11-25T09:00:00+01:00".into()),
            },
        );
        assert_eq!(event.source.as_str(), "backfill");
        assert_eq!(event.event_name, "ObjectCreated:Put");
        assert_eq!(
            event.event_time.as_deref(),
            Some("2026-11-25T08:00:00.000Z")
        );
        assert_eq!((event.size, event.sequencer.as_deref()), (Some(42), None));
        assert_eq!(event.region.as_deref(), Some("eu-west-1"));
    }

    /// Answers from a script; a request without a SigV4 signature gets a 400 instead.
    #[derive(Debug, Default)]
    struct Script {
        answers: std::sync::Mutex<Vec<crate::http::Answer>>,
    }

    impl Transport for Script {
        fn send<'a>(
            &'a self,
            request: &'a Request,
            _timeout: Duration,
        ) -> futures_util::future::BoxFuture<'a, Sent> {
            let signed = request
                .headers
                .iter()
                .any(|(n, v)| n == "authorization" && v.shown() == "****")
                && request
                    .headers
                    .iter()
                    .any(|(n, _)| n == "x-amz-content-sha256");
            let answer = match signed {
                true => self.answers.lock().unwrap().remove(0),
                false => crate::http::Answer::new(StatusCode::BAD_REQUEST, "unsigned"),
            };
            Box::pin(async move { Sent::Answered(answer) })
        }

        fn reaches_network(&self) -> bool {
            true
        }
    }

    fn scripted(answers: Vec<(u16, &str)>) -> Lister {
        let answers = answers
            .into_iter()
            .map(|(status, body)| {
                crate::http::Answer::new(StatusCode::from_u16(status).unwrap(), body)
            })
            .collect();
        Lister::new(
            Box::new(Script {
                answers: std::sync::Mutex::new(answers),
            }),
            Arc::new(SystemClock),
            "eu-west-1",
            None,
            Duration::from_secs(5),
        )
        .with_credentials(Credentials::new("AKIDTEST", "SECRETTEST", None, None, "t"))
    }

    const UNVERSIONED: &str = "<VersioningConfiguration/>";

    #[tokio::test(start_paused = true)]
    async fn pages_through_a_listing_trying_a_slow_down_again() {
        let page1 = "<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>t1</NextContinuationToken>\
            <Contents><Key>in/a.csv</Key><ETag>\"ea\"</ETag><Size>1</Size></Contents></ListBucketResult>";
        let page2 = "<ListBucketResult><IsTruncated>false</IsTruncated>\
            <Contents><Key>in/b.csv</Key><ETag>\"eb\"</ETag><Size>2</Size></Contents></ListBucketResult>";
        let slow = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
        let lister = scripted(vec![
            (200, UNVERSIONED),
            (200, page1),
            (503, slow),
            (200, page2),
        ]);
        let location = Location::parse("s3://b/in/").unwrap();
        let mut pages = lister.open(&location, Options::default()).await.unwrap();
        assert_eq!(pages.operation(), Operation::ListObjectsV2);
        let mut keys = Vec::new();
        while let Some(page) = pages.next_page().await.unwrap() {
            keys.extend(page.into_iter().map(|e| (e.key, e.etag, e.size)));
        }
        assert_eq!(
            keys,
            [
                ("in/a.csv".to_owned(), Some("ea".to_owned()), Some(1)),
                ("in/b.csv".to_owned(), Some("eb".to_owned()), Some(2))
            ]
        );
        assert_eq!(pages.requests(), 3, "the retried request counts once");
    }

    #[tokio::test]
    async fn refusals_name_the_bucket_and_what_to_fix() {
        let denied = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
        let location = Location::parse("s3://b/in/").unwrap();
        let error = scripted(vec![(403, denied)])
            .open(&location, Options::default())
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "GetBucketVersioning on bucket b: access denied; the credentials need the \
             s3:GetBucketVersioning permission on arn:aws:s3:::b"
        );
        let lister = scripted(vec![
            (
                200,
                "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>",
            ),
            (403, denied),
        ]);
        let mut pages = lister.open(&location, Options::default()).await.unwrap();
        let error = pages.next_page().await.unwrap_err().to_string();
        assert!(error.contains("ListObjectVersions on bucket b: access denied; the credentials need the s3:ListBucketVersions permission"), "{error}");
        let lister = scripted(vec![(200, UNVERSIONED), (403, denied)]);
        let mut pages = lister.open(&location, Options::default()).await.unwrap();
        let error = pages.next_page().await.unwrap_err().to_string();
        assert!(error.contains("the s3:ListBucket permission"), "{error}");

        let moved = "<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint.</Message></Error>";
        let error = scripted(vec![(301, moved)])
            .open(&location, Options::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("is in region (unknown), not eu-west-1"),
            "{error}"
        );
        let missing = "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>b</BucketName></Error>";
        let error = scripted(vec![(404, missing)])
            .open(&location, Options::default())
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(error, "bucket b does not exist (S3 NoSuchBucket)");
        let signature = "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message><AWSAccessKeyId>AKIDTEST</AWSAccessKeyId><StringToSign>x</StringToSign></Error>";
        let error = scripted(vec![(403, signature)])
            .open(&location, Options::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(
                "HTTP 403 SignatureDoesNotMatch: The request signature we calculated does not match"
            ),
            "{error}"
        );
        assert!(
            !error.contains("AKIDTEST") && !error.contains("SECRETTEST"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_dry_run_transport_cannot_list() {
        let lister = lister(None);
        let location = Location::parse("s3://b").unwrap();
        let error = lister
            .open(&location, Options::default())
            .await
            .unwrap_err();
        assert!(matches!(error, ListingError::NotSent), "{error}");
    }
}
