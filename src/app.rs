//! Handler: the [`App`] built once per container (config, HTTP client, secret cache), and the
//! processing of one invocation's parsed events into a [`Report`].

use futures_util::StreamExt;
use serde::Serialize;
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::{Config, Route, TlsRoots};
use crate::delivery::{Delivered, Sender, Status};
use crate::event::{Body, Invocation, ObjectEvent, Parsed};
use crate::secrets::{SecretCache, SecretSource};
use crate::target::Target;

/// Everything that lives across warm invocations.
#[derive(Debug)]
pub struct App {
    /// The compiled configuration.
    pub config: Config,
    /// One HTTP client: one connection pool, one TLS configuration.
    pub http: reqwest::Client,
    /// Secrets, cached with the configured TTL.
    pub secrets: SecretCache,
}

/// One event × route × target.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Bucket.
    pub bucket: String,
    /// Decoded key.
    pub key: String,
    /// The SQS message that carried the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    /// Route name.
    pub route: String,
    /// Target description.
    pub target: String,
    /// The idempotency key sent (Airflow `dag_run_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// How delivery ended.
    #[serde(flatten)]
    pub delivered: Delivered,
}

/// Something received but not delivered, on purpose.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// Bucket.
    pub bucket: String,
    /// Key (empty for test events).
    pub key: String,
    /// The SQS message, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    /// Why.
    pub reason: String,
}

/// An SQS message whose body could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct BadMessage {
    /// The SQS message id.
    pub record_id: Option<String>,
    /// Why.
    pub error: String,
}

/// Counts for the log line and the answer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Object events received.
    pub events: usize,
    /// Runs started.
    pub triggered: usize,
    /// Runs that already existed.
    pub already_triggered: usize,
    /// Requests printed, not sent.
    pub dry_run: usize,
    /// Deliveries that failed.
    pub failed: usize,
    /// Events skipped (no route, test events).
    pub skipped: usize,
    /// SQS messages that could not be read.
    pub bad_messages: usize,
}

/// What one invocation did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// How the function was invoked.
    #[serde(skip)]
    pub invocation: Invocation,
    /// Counts.
    pub summary: Summary,
    /// One per event × route × target.
    pub outcomes: Vec<Outcome>,
    /// Received, deliberately not delivered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
    /// Unreadable SQS messages.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bad_messages: Vec<BadMessage>,
}

impl Report {
    /// Failed deliveries that a later retry may fix.
    pub fn retryable_failures(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes
            .iter()
            .filter(|o| o.delivered.status == Status::Failed && o.delivered.retryable)
    }

    /// SQS message ids to report as `batchItemFailures`: every message with a failed delivery or
    /// an unreadable body, so SQS redelivers it and, past `maxReceiveCount`, moves it to the
    /// dead-letter queue rather than losing it.
    pub fn failed_message_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .outcomes
            .iter()
            .filter(|o| o.delivered.status == Status::Failed)
            .filter_map(|o| o.record_id.clone())
            .chain(self.bad_messages.iter().filter_map(|m| m.record_id.clone()))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Whether anything failed.
    pub fn has_failures(&self) -> bool {
        self.summary.failed > 0 || self.summary.bad_messages > 0
    }
}

/// A rustls client configuration trusting the compiled-in Mozilla roots, with the aws-lc-rs
/// provider (the one the AWS SDK and jsonwebtoken use too).
fn bundled_roots_tls() -> Result<rustls::ClientConfig, rustls::Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

struct Job<'a> {
    event: &'a ObjectEvent,
    route: &'a Route,
    target: &'a dyn Target,
}

impl App {
    /// Builds the app: the HTTP client (rustls, keep-alive pool) and the secret cache.
    pub fn new(config: Config, secrets: Box<dyn SecretSource>) -> Result<App, reqwest::Error> {
        let bundled = match config.settings.tls_roots {
            TlsRoots::Bundled => bundled_roots_tls()
                .inspect_err(|error| tracing::warn!(%error, "bundled TLS roots unusable; using the system store"))
                .ok(),
            TlsRoots::System => None,
        };
        let builder = match bundled {
            // Mozilla's roots, compiled in: no certificate files read or parsed at cold start
            // (the system store costs several milliseconds to scan and parse).
            Some(tls) => reqwest::Client::builder().tls_backend_preconfigured(tls),
            None => reqwest::Client::builder(),
        };
        let http = builder
            .connect_timeout(config.settings.connect_timeout)
            .timeout(config.settings.request_timeout)
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .user_agent(concat!("bucket-trigger/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let secrets = SecretCache::new(secrets, config.settings.secrets_ttl);
        Ok(App {
            config,
            http,
            secrets,
        })
    }

    /// Routes and delivers every event of an invocation, concurrently up to
    /// `settings.max_concurrency`, and reports each outcome.
    pub async fn process(
        &self,
        parsed: &Parsed,
        deadline: Option<Instant>,
        dry_run: bool,
    ) -> Report {
        let mut summary = Summary::default();
        let mut skipped = Vec::new();
        let mut bad_messages = Vec::new();
        let mut jobs = Vec::new();
        for message in &parsed.messages {
            match &message.body {
                Err(error) => {
                    tracing::error!(record_id = ?message.id, %error, "unreadable message");
                    bad_messages.push(BadMessage {
                        record_id: message.id.clone(),
                        error: error.to_string(),
                    });
                }
                Ok(Body::TestEvent { bucket }) => {
                    tracing::info!(bucket, "s3:TestEvent acknowledged and ignored");
                    skipped.push(Skipped {
                        bucket: bucket.clone(),
                        key: String::new(),
                        record_id: message.id.clone(),
                        reason: "s3:TestEvent (sent when a notification is configured)".into(),
                    });
                }
                Ok(Body::Objects(events)) => {
                    for event in events {
                        summary.events += 1;
                        let before = jobs.len();
                        for route in self.config.matching(event) {
                            jobs.extend(route.targets.iter().map(|target| Job {
                                event,
                                route,
                                target: target.as_ref(),
                            }));
                        }
                        if jobs.len() == before {
                            tracing::info!(bucket = %event.bucket, key = %event.key, event_name = %event.event_name, "no route matches; skipped");
                            skipped.push(Skipped {
                                bucket: event.bucket.clone(),
                                key: event.key.clone(),
                                record_id: event.record_id.clone(),
                                reason: "no route matches".into(),
                            });
                        }
                    }
                }
            }
        }
        let sender = Sender {
            http: &self.http,
            secrets: &self.secrets,
            policy: &self.config.settings.retry,
            attempt_timeout: self.config.settings.request_timeout,
            deadline,
            dry_run,
        };
        let outcomes: Vec<Outcome> = futures_util::stream::iter(jobs)
            .map(|job| self.run(&sender, job))
            .buffered(self.config.settings.max_concurrency)
            .collect()
            .await;
        for outcome in &outcomes {
            match outcome.delivered.status {
                Status::Triggered => summary.triggered += 1,
                Status::AlreadyTriggered => summary.already_triggered += 1,
                Status::DryRun => summary.dry_run += 1,
                Status::Failed => summary.failed += 1,
            }
        }
        summary.skipped = skipped.len();
        summary.bad_messages = bad_messages.len();
        Report {
            invocation: parsed.invocation,
            summary,
            outcomes,
            skipped,
            bad_messages,
        }
    }

    async fn run(&self, sender: &Sender<'_>, job: Job<'_>) -> Outcome {
        let Job {
            event,
            route,
            target,
        } = job;
        let description = target.describe();
        let span = tracing::info_span!(
            "deliver",
            bucket = %event.bucket,
            key = %event.key,
            record_id = event.record_id.as_deref(),
            route = %route.name,
            target = %description,
            run_id = tracing::field::Empty,
        );
        async move {
            let built = match target.base_url().resolve(&self.secrets).await {
                Ok(base) => target
                    .build(event, &route.name, &self.config.templates, &base)
                    .map_err(|error| {
                        Delivered::failed(format!("could not build the request: {error}"), false)
                    }),
                Err(error) => Err(Delivered::failed(
                    format!("could not read the base URL: {error}"),
                    error.is_retryable(),
                )),
            };
            let (run_id, delivered) = match built {
                Ok(built) => {
                    if let Some(run_id) = &built.run_id {
                        tracing::Span::current().record("run_id", run_id.as_str());
                    }
                    (built.run_id.clone(), sender.deliver(target, built).await)
                }
                Err(failed) => (None, failed),
            };
            let d = &delivered;
            match d.status {
                Status::Failed => tracing::error!(
                    outcome = "failed",
                    retryable = d.retryable,
                    attempts = d.attempts,
                    http_status = d.http_status,
                    detail = %d.detail,
                    source = %event.source,
                    sequencer = event.sequencer.as_deref(),
                    version_id = event.version_id.as_deref(),
                    "delivery failed"
                ),
                status => tracing::info!(
                    outcome = ?status,
                    attempts = d.attempts,
                    http_status = d.http_status,
                    remote_id = d.remote_id.as_deref(),
                    "delivered"
                ),
            }
            Outcome {
                bucket: event.bucket.clone(),
                key: event.key.clone(),
                record_id: event.record_id.clone(),
                route: route.name.clone(),
                target: description.clone(),
                run_id,
                delivered,
            }
        }
        .instrument(span)
        .await
    }
}
