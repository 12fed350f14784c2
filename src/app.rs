//! App: what lives across warm invocations (config, secret cache, transport, clock), and one
//! invocation's work: plan event × route × target, deliver them concurrently up to
//! `settings.max_concurrency`, one span and one log line each, and collect the [`Report`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use tokio::time::Instant;
use tracing::Instrument;

use crate::clock::{Clock, SystemClock};
use crate::config::{CaBundle, Config, Route};
use crate::delivery::{Delivery, Status};
use crate::event::{Body, ObjectEvent, Parsed};
use crate::http::{DryRun, Network, Transport, parse_ca_bundle};
use crate::report::{BadMessage, Outcome, Report, Skipped};
use crate::secrets::{SecretCache, SecretSource, SecretsError};
use crate::store::{DynamoDb, Store};
use crate::targets::Endpoint;
use crate::template::RenderContext;

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
            invocations: AtomicU64::new(0),
        }
    }

    /// The same app keeping idempotency records in `store` (a DynamoDB client of the test's).
    pub fn with_store(mut self, store: Box<dyn Store>) -> App {
        self.store = Some(store);
        self
    }

    /// The wall clock.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// Routes and delivers every event of an invocation and reports each outcome.
    pub async fn process(&self, parsed: &Parsed, deadline: Option<Instant>) -> Report {
        let plan = plan(&self.config, parsed);
        let renders: Vec<RenderContext<'_>> = plan
            .matches
            .iter()
            .map(|(event, route)| RenderContext::new(&self.config.templates, event, &route.name))
            .collect();
        // Collected, not lazy adaptors: a closure-holding iterator or stream kept across
        // `.await` makes the future not provably `Send`, which concurrent invocations need.
        let jobs: Vec<(&RenderContext<'_>, &Endpoint)> = renders
            .iter()
            .zip(&plan.matches)
            .flat_map(|(render, (_, route))| {
                route.targets.iter().map(move |endpoint| (render, endpoint))
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
        };
        // Futures do nothing until polled: `buffered` still bounds how many run at once.
        let runs: Vec<_> = jobs
            .into_iter()
            .map(|(render, endpoint)| run(&delivery, render, endpoint))
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
    /// Each event with each route it matches, in order.
    matches: Vec<(&'a ObjectEvent, &'a Route)>,
    skipped: Vec<Skipped>,
    bad_messages: Vec<BadMessage>,
}

/// Routes every event; notes test events, events no route matches, and unreadable messages.
fn plan<'a>(config: &'a Config, parsed: &'a Parsed) -> Plan<'a> {
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
                    plan.matches
                        .extend(config.matching(event).map(|route| (event, route)));
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

/// Delivers one event × target in its span and logs how it ended.
async fn run(delivery: &Delivery<'_>, render: &RenderContext<'_>, endpoint: &Endpoint) -> Outcome {
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
        Outcome {
            bucket: event.bucket.clone(),
            key: event.key.clone(),
            record_id: event.record_id.clone(),
            route: render.route().to_owned(),
            target: endpoint.description.clone(),
            delivered,
            elapsed_ms,
        }
    }
    .instrument(span)
    .await
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
        let plan = plan(&config, &parsed);
        let routes: Vec<(&str, &str)> = plan
            .matches
            .iter()
            .map(|(event, route)| (event.key.as_str(), route.name.as_str()))
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
