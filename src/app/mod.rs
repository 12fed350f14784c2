//! App: what lives across warm invocations (config, secret cache, transport, clock), and one
//! invocation's work: plan event × route × target, deliver them concurrently up to
//! `settings.max_concurrency`, one span and one log line each, and collect the [`Report`].

mod prewarm;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use tokio::time::Instant;
use tracing::Instrument;

use crate::clock::{Clock, SystemClock};
use crate::config::{CaBundle, Config, Route};
use crate::delivery::{Delivered, Delivery, Failure, Status};
use crate::event::{Body, Invocation, Message, ObjectEvent, Parsed};
use crate::http::{DryRun, Network, Transport, parse_ca_bundle};
use crate::report::{
    BadMessage, FailureRecord, IdempotencyRef, Outcome, RECORD_KIND, RecordFate, Report, Skipped,
};
use crate::secrets::{SecretCache, SecretSource, SecretsError};
use crate::store::{DynamoDb, Key, MAX_RECORD_BYTES, Queue, Store, Takeover};
use crate::targets::Endpoint;

use crate::template::RenderContext;
pub use prewarm::Prewarmed;

/// Why the app could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The secret holding `settings.ca_bundle` could not be read.
    #[error("settings.ca_bundle: {0}")]
    CaSecret(#[from] SecretsError),
    /// It holds no usable PEM certificates (the secret's value is not repeated here).
    #[error("settings.ca_bundle: secret {secret:?} {reason}")]
    CaBundle {
        /// Secret id.
        secret: String,
        /// Why.
        reason: String,
    },
    /// [`App::new`] was asked for an app whose CA bundle is in a secret.
    #[error("settings.ca_bundle is kept in secret {0:?}: build the app with App::connect")]
    CaNotRead(String),
}

/// Everything that lives across warm invocations, built once in `main`.
#[derive(Debug)]
pub struct App {
    /// The compiled configuration.
    pub config: Config,
    /// Secrets, cached with the configured TTL.
    pub secrets: SecretCache,
    transport: Box<dyn Transport>,
    clock: Arc<dyn Clock>,
    store: Option<Box<dyn Store>>,
    /// The failure queue, built on first use.
    queue: tokio::sync::OnceCell<Queue>,
    /// Whether the platform retries what fails (Lambda, SQS) or nothing will (the CLI).
    platform_retries: bool,
    /// What idempotency claims may take over.
    takeover: Takeover,
    invocations: AtomicU64,
}

impl App {
    /// An app that sends over the network (one HTTP client: one pool, one TLS configuration).
    /// A CA bundle kept in a secret needs [`App::connect`], which reads it first.
    pub fn new(config: Config, secrets: Box<dyn SecretSource>) -> Result<App, ConnectError> {
        if let CaBundle::Secret { secret, .. } = &config.settings.ca_bundle {
            return Err(ConnectError::CaNotRead(secret.clone()));
        }
        let network = Network::new(&config.settings.network())?;
        network.lend_to_aws_sdk();
        Ok(App::with_parts(
            config,
            secrets,
            Box::new(network),
            Arc::new(SystemClock),
        ))
    }

    /// [`App::new`], reading first a CA bundle kept in a secret (through the secret cache, so
    /// it counts as that secret's fetch).
    pub async fn connect(
        config: Config,
        secrets: Box<dyn SecretSource>,
    ) -> Result<App, ConnectError> {
        let CaBundle::Secret { secret, field } = &config.settings.ca_bundle else {
            return App::new(config, secrets);
        };
        let cache = SecretCache::new(secrets, config.settings.secrets_ttl);
        let pem = cache.field(secret, field.as_deref()).await?;
        let mut network = config.settings.network();
        network.ca_certificates =
            parse_ca_bundle(pem.expose().as_bytes()).map_err(|reason| ConnectError::CaBundle {
                secret: secret.clone(),
                reason,
            })?;
        let network = Network::new(&network)?;
        network.lend_to_aws_sdk();
        Ok(App::assemble(
            config,
            cache,
            Box::new(network),
            Arc::new(SystemClock),
        ))
    }

    /// An app that prints each signed request instead of sending it.
    pub fn dry_run(config: Config, secrets: Box<dyn SecretSource>) -> App {
        App::with_parts(config, secrets, Box::new(DryRun), Arc::new(SystemClock))
    }

    /// An app from its parts.
    pub fn with_parts(
        config: Config,
        secrets: Box<dyn SecretSource>,
        transport: Box<dyn Transport>,
        clock: Arc<dyn Clock>,
    ) -> App {
        let secrets = SecretCache::new(secrets, config.settings.secrets_ttl);
        App::assemble(config, secrets, transport, clock)
    }

    fn assemble(
        config: Config,
        secrets: SecretCache,
        transport: Box<dyn Transport>,
        clock: Arc<dyn Clock>,
    ) -> App {
        // Idempotency records in DynamoDB when a route keeps them (the client is built on
        // first use); none in a dry run, which sends nothing to record.
        let store = match transport.reaches_network() && config.uses_idempotency() {
            true => Some(Box::new(DynamoDb::from_env()) as Box<dyn Store>),
            false => None,
        };
        App {
            config,
            secrets,
            transport,
            clock,
            store,
            queue: tokio::sync::OnceCell::new(),
            platform_retries: false,
            takeover: Takeover::Expired,
            invocations: AtomicU64::new(0),
        }
    }

    /// The same app, re-sending deliveries whose idempotency record says they may have run
    /// (`replay --resend-may-have-run`: the operator checked the target).
    pub fn resending_may_have_run(mut self) -> App {
        self.takeover = Takeover::Ambiguous;
        self
    }

    /// The same app, serving a platform that redelivers what fails: Lambda (its retries for
    /// direct invocations, SQS's until `max_receive_count`) or an HTTP push (Pub/Sub's
    /// redeliveries). A retryable failure is left to the platform rather than recorded.
    /// Without this (the CLI), every failure is final and gets its failure record.
    pub fn with_platform_retries(mut self) -> App {
        self.platform_retries = true;
        self
    }

    /// The same app keeping idempotency records in `store` (a DynamoDB client of the test's).
    pub fn with_store(mut self, store: Box<dyn Store>) -> App {
        self.store = Some(store);
        self
    }

    /// Whether idempotency records are kept (a store, and not a dry run).
    pub fn keeps_records(&self) -> bool {
        self.store.is_some()
    }

    /// The wall clock.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// Routes and delivers every event of an invocation and reports each outcome.
    pub async fn process(&self, parsed: &Parsed, deadline: Option<Instant>) -> Report {
        self.process_only(parsed, deadline, None).await
    }

    /// [`App::process`], limited to one route and one of its targets (by description) when
    /// `only` names them: what `replay` does with a failure record.
    pub async fn process_only(
        &self,
        parsed: &Parsed,
        deadline: Option<Instant>,
        only: Option<(&str, &str)>,
    ) -> Report {
        let plan = plan(&self.config, parsed, only.map(|(route, _)| route));
        let renders: Vec<RenderContext<'_>> = plan
            .matches
            .iter()
            .map(|(_, event, route)| RenderContext::new(&self.config.templates, event, &route.name))
            .collect();
        // Collected, not lazy adaptors: a closure-holding iterator or stream kept across
        // `.await` makes the future not provably `Send`, which concurrent invocations need.
        let jobs: Vec<(&Message, &RenderContext<'_>, &Endpoint)> = renders
            .iter()
            .zip(&plan.matches)
            .flat_map(|(render, (message, _, route))| {
                route
                    .targets
                    .iter()
                    .filter(move |endpoint| {
                        only.is_none_or(|(_, target)| endpoint.description == target)
                    })
                    .map(move |endpoint| (*message, render, endpoint))
            })
            .collect();
        let delivery = Delivery {
            transport: self.transport.as_ref(),
            secrets: &self.secrets,
            clock: self.clock.as_ref(),
            policy: &self.config.settings.retry,
            attempt_timeout: self.config.settings.request_timeout,
            deadline,
            invocation: self.invocations.fetch_add(1, Ordering::Relaxed),
            store: self.store.as_deref(),
            keep: self.config.settings.idempotency_keep,
            takeover: self.takeover,
        };
        let records = Records {
            app: self,
            invocation: parsed.invocation,
            deadline,
        };
        // Futures do nothing until polled: `buffered` still bounds how many run at once.
        let runs: Vec<_> = jobs
            .into_iter()
            .map(|(message, render, endpoint)| run(&delivery, &records, message, render, endpoint))
            .collect();
        let outcomes: Vec<Outcome> = futures_util::stream::iter(runs)
            .buffered(self.config.settings.max_concurrency)
            .collect()
            .await;
        Report::new(
            parsed.invocation,
            plan.events,
            outcomes,
            plan.skipped,
            plan.bad_messages,
        )
    }
}

/// What an invocation will do, before anything is sent.
struct Plan<'a> {
    /// Object events received.
    events: usize,
    /// Each event (and its message) with each route it matches, in order.
    matches: Vec<(&'a Message, &'a ObjectEvent, &'a Route)>,
    skipped: Vec<Skipped>,
    bad_messages: Vec<BadMessage>,
}

/// Routes every event; notes test events, events no route matches, and unreadable messages.
fn plan<'a>(config: &'a Config, parsed: &'a Parsed, only_route: Option<&str>) -> Plan<'a> {
    let mut plan = Plan {
        events: 0,
        matches: Vec::new(),
        skipped: Vec::new(),
        bad_messages: Vec::new(),
    };
    for message in &parsed.messages {
        match &message.body {
            Err(error) => {
                tracing::error!(record_id = ?message.id, %error, "unreadable message");
                plan.bad_messages.push(BadMessage {
                    record_id: message.id.clone(),
                    error: error.to_string(),
                });
            }
            Ok(Body::TestEvent { bucket }) => {
                tracing::info!(bucket, "s3:TestEvent acknowledged and ignored");
                plan.skipped.push(Skipped {
                    bucket: bucket.clone(),
                    key: String::new(),
                    record_id: message.id.clone(),
                    reason: "s3:TestEvent (sent when a notification is configured)".into(),
                });
            }
            Ok(Body::Objects(events)) => {
                for event in events {
                    plan.events += 1;
                    let before = plan.matches.len();
                    plan.matches.extend(
                        config
                            .matching(event)
                            .filter(|route| only_route.is_none_or(|only| route.name == only))
                            .map(|route| (message, event, route)),
                    );
                    if plan.matches.len() == before {
                        tracing::info!(bucket = %event.bucket, key = %event.key, event_name = %event.event_name, "no route matches; skipped");
                        plan.skipped.push(Skipped {
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
    plan
}

/// Delivers one event × target in its span, logs how it ended, and records a failure that no
/// one else will retry.
async fn run(
    delivery: &Delivery<'_>,
    records: &Records<'_>,
    message: &Message,
    render: &RenderContext<'_>,
    endpoint: &Endpoint,
) -> Outcome {
    let event = render.event();
    let span = tracing::info_span!(
        "deliver",
        bucket = %event.bucket,
        key = %event.key,
        record_id = event.record_id.as_deref(),
        route = %render.route(),
        target = %endpoint.description,
        run_id = tracing::field::Empty,
    );
    async move {
        let started_at = delivery.clock.now();
        let started = Instant::now();
        let delivered = delivery.deliver(endpoint, render).await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let d = &delivered;
        match d.failure() {
            Some(failure) => tracing::error!(
                outcome = "failed",
                retryable = failure.is_retryable(),
                attempts = d.attempts,
                http_status = d.http_status,
                elapsed_ms,
                detail = %failure,
                source = %event.source,
                sequencer = event.sequencer.as_deref(),
                version_id = event.version_id.as_deref(),
                "delivery failed"
            ),
            // The request in the log too: an SQS batch's answer (`batchItemFailures`) has no
            // room for it, and under `cargo lambda watch` the log is where one looks.
            None if d.status() == Status::DryRun => tracing::info!(
                outcome = "dry_run",
                request = %d.printed().map(|r| serde_json::to_string(r).unwrap_or_default()).unwrap_or_default(),
                "not sent (dry run)"
            ),
            None => tracing::info!(
                outcome = d.status().as_str(),
                attempts = d.attempts,
                http_status = d.http_status,
                remote_id = d.remote_id(),
                elapsed_ms,
                "delivered"
            ),
        }
        let mut outcome = Outcome {
            bucket: event.bucket.clone(),
            key: event.key.clone(),
            record_id: event.record_id.clone(),
            route: render.route().to_owned(),
            target: endpoint.description.clone(),
            delivered,
            failure_record: None,
            settled: false,
            elapsed_ms,
        };
        if records.repeats_may_have_run(&outcome.delivered) {
            // Under Lambda, the delivery that marked this record ambiguous wrote its final
            // "may have run" record; a redelivery (an S3 duplicate, a message redelivered for
            // another target's sake) acknowledges it without writing a second one.
            tracing::warn!(
                "may have run: recorded by the delivery that sent it; not recorded again"
            );
            outcome.settled = true;
        } else if outcome.failed() && records.is_final(&outcome.delivered, message, endpoint) {
            let record = records.record(message, render, endpoint, &outcome, started_at);
            let fate = records.write(&record).await;
            outcome.settled = fate == RecordFate::Queued || record.may_have_run;
            outcome.failure_record = Some(fate);
        }
        outcome
    }
    .instrument(span)
    .await
}

/// Failure records of one invocation: when a failure is final, what it says, where it goes.
struct Records<'a> {
    app: &'a App,
    invocation: Invocation,
    deadline: Option<Instant>,
}

impl Records<'_> {
    /// Whether nothing else will deliver this again: a permanent failure (but one a push
    /// rejects for Pub/Sub to redeliver); any failure from the CLI; under SQS, a retryable one on the message's last receive (`max_receive_count`),
    /// when a queue can take the record instead of the dead-letter queue. A retryable failure
    /// of a direct invocation is Lambda's to retry; its on-failure destination then holds it.
    fn is_final(&self, delivered: &Delivered, message: &Message, endpoint: &Endpoint) -> bool {
        // A push is always redelivered by its pusher when not acknowledged, whoever serves it.
        if !self.app.platform_retries && self.invocation != Invocation::Push {
            return true;
        }
        if !delivered.retryable() {
            // A push answered 4xx comes back until the subscription's dead-letter policy
            // takes it: the dead-letter topic is its record, not one more per redelivery.
            return !(self.invocation == Invocation::Push && endpoint.reject_permanent);
        }
        let settings = &self.app.config.settings;
        match self.invocation {
            // Lambda's retries, then its on-failure destination; Pub/Sub's redeliveries, then
            // its dead-letter topic.
            Invocation::Direct | Invocation::Push => false,
            Invocation::SqsBatch => {
                settings.failure_queue.is_some()
                    && matches!(
                        (message.receive_count, settings.max_receive_count),
                        (Some(count), Some(max)) if count >= max
                    )
            }
        }
    }

    /// Whether this is a platform redelivery finding the idempotency record ambiguous: the
    /// delivery that marked it wrote the one failure record (the CLI, where an operator asked
    /// for this run, writes it again).
    fn repeats_may_have_run(&self, delivered: &Delivered) -> bool {
        self.app.platform_retries && matches!(delivered.failure(), Some(Failure::MayHaveRun { .. }))
    }

    fn record(
        &self,
        message: &Message,
        render: &RenderContext<'_>,
        endpoint: &Endpoint,
        outcome: &Outcome,
        started: std::time::SystemTime,
    ) -> FailureRecord {
        let event = render.event();
        let delivered = &outcome.delivered;
        let idempotency = endpoint.idempotency_table.as_deref().and_then(|table| {
            Key::new(table, render.route(), &endpoint.description, event).map(|key| {
                IdempotencyRef {
                    table: key.table,
                    id: key.id,
                    version: key.version,
                }
            })
        });
        FailureRecord {
            kind: RECORD_KIND.to_owned(),
            version: 1,
            route: outcome.route.clone(),
            target: outcome.target.clone(),
            bucket: event.bucket.clone(),
            key: event.key.clone(),
            event: event.clone(),
            original: Some(message.original.clone()),
            run_id: delivered.run_id.clone(),
            attempts: delivered.attempts,
            http_status: delivered.http_status,
            retryable: delivered.retryable(),
            may_have_run: delivered.may_have_arrived && !endpoint.idempotent,
            error: delivered.detail(),
            started_at: rfc3339(started),
            failed_at: rfc3339(self.app.clock.now()),
            receive_count: message.receive_count,
            idempotency,
        }
    }

    /// Logs the record, then queues it when a queue is configured (a few attempts, within the
    /// invocation's deadline). A record the queue did not take stays in the log, said loudly.
    async fn write(&self, record: &FailureRecord) -> RecordFate {
        let mut json = serde_json::to_string(record).unwrap_or_default();
        if json.len() > MAX_RECORD_BYTES {
            let mut smaller = record.clone();
            smaller.original = None;
            json = serde_json::to_string(&smaller).unwrap_or_default();
        }
        tracing::error!(failure_record = %json, may_have_run = record.may_have_run, "failure record");
        let Some(url) = &self.app.config.settings.failure_queue else {
            return RecordFate::Logged;
        };
        if !self.app.transport.reaches_network() {
            return RecordFate::Logged;
        }
        let queue = self.app.queue.get_or_init(|| Queue::new(url.clone())).await;
        let mut last = None;
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(100 << (2 * attempt))).await;
            }
            let left = self.deadline.map_or(std::time::Duration::MAX, |deadline| {
                deadline.saturating_duration_since(Instant::now())
            });
            let timeout = self.app.config.settings.request_timeout.min(left);
            if timeout.is_zero() {
                break;
            }
            match queue
                .send(
                    self.app.transport.as_ref(),
                    self.app.clock.now(),
                    &json,
                    timeout,
                )
                .await
            {
                Ok(message_id) => {
                    tracing::info!(message_id, queue = %url, "failure record queued");
                    return RecordFate::Queued;
                }
                Err(error) => {
                    let retryable = error.retryable;
                    last = Some(error);
                    if !retryable {
                        break;
                    }
                }
            }
        }
        if let Some(error) = last {
            tracing::error!(%error, "failure record NOT queued: it is only in this log");
        }
        RecordFate::Logged
    }
}

/// `2026-11-30T17:45:00.123Z`.
fn rfc3339(time: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event;
    use crate::secrets::SecretsFile;

    const CONFIG: &str = "
routes:
  - name: csv
    match: { suffix: .csv }
    targets:
      - webhook: { url: 'http://127.0.0.1:9/a' }
      - webhook: { url: 'http://127.0.0.1:9/b' }
  - name: all
    match: { prefix: incoming/ }
    target: { webhook: { url: 'http://127.0.0.1:9/c' } }
";

    fn sample(name: &str) -> Parsed {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("events")
            .join(name);
        event::parse_bytes(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn plans_each_event_with_each_matching_route() {
        let config = Config::parse(CONFIG, "t").unwrap();
        let parsed = sample("sqs-batch.json");
        let plan = plan(&config, &parsed, None);
        let routes: Vec<(&str, &str)> = plan
            .matches
            .iter()
            .map(|(_, event, route)| (event.key.as_str(), route.name.as_str()))
            .collect();
        assert_eq!(plan.events, 4, "{routes:?}");
        assert!(
            routes.iter().all(|(key, _)| key.starts_with("incoming/")),
            "{routes:?}"
        );
        assert_eq!(
            routes.iter().filter(|(_, route)| *route == "all").count(),
            4
        );
        assert_eq!(plan.skipped.len(), 1, "the test event");
        assert!(plan.bad_messages.is_empty());
    }

    #[tokio::test]
    async fn one_render_context_per_event_and_route_feeds_every_target() {
        let config = Config::parse(CONFIG, "t").unwrap();
        let file = SecretsFile::parse(std::path::Path::new("t"), "{}").unwrap();
        let app = App::dry_run(config, Box::new(file));
        let report = app.process(&sample("s3-put.json"), None).await;
        let targets: Vec<&str> = report.outcomes.iter().map(|o| o.target.as_str()).collect();
        assert_eq!(
            targets,
            [
                "webhook POST http://127.0.0.1:9/a",
                "webhook POST http://127.0.0.1:9/b",
                "webhook POST http://127.0.0.1:9/c"
            ]
        );
        assert_eq!(report.summary.dry_run, 3);
    }
}
