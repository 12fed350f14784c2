//! Delivery: one event × target, from the rendered request to a [`Delivered`]. Resolve the
//! target's root, build, then a thin loop: wait for the target's rate limit (never past the
//! cutoff), sign, send through the transport, read the answer into a [`Verdict`], and ask the
//! pure [`RetryPolicy::step`] what next. Failures stay typed ([`Failure`]) until the report
//! renders them.

mod retry;

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::ser::SerializeMap;
use tokio::time::Instant;
use tracing::Instrument;

use crate::auth::{AuthError, SignContext};
use crate::clock::Clock;
use crate::http::{ClearTextGuard, Printable, Sent, Transport, Verdict};
use crate::secrets::SecretCache;
use crate::store::{Claim, Done, Key, Store, StoreError, Takeover};
use crate::targets::{BaseUrlError, Built, Endpoint, Pending, Ran, TargetError, Throttled};
use crate::template::RenderContext;

pub use retry::{RetryPolicy, Step};

/// How one event × target ended, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A new run was started.
    Triggered,
    /// The run existed already (a redelivery): nothing to do, a success.
    AlreadyTriggered,
    /// Dry-run: the request was printed, not sent.
    DryRun,
    /// Not delivered.
    Failed,
}

impl Status {
    /// As the report spells it (`already_triggered`), for log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Triggered => "triggered",
            Status::AlreadyTriggered => "already_triggered",
            Status::DryRun => "dry_run",
            Status::Failed => "failed",
        }
    }
}

/// Why a delivery failed.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The base URL kept in a secret could not be read.
    BaseUrl(BaseUrlError),
    /// The request could not be built (a template failed for this event, an argument too big).
    Build(TargetError),
    /// The request could not be signed.
    Sign(AuthError),
    /// The target refused, or the request may have arrived and cannot be safely repeated.
    Refused(String),
    /// The target refused the credentials (after one refresh, for token schemes).
    Unauthorized(String),
    /// Every attempt failed in a way worth retrying.
    Exhausted {
        /// The last attempt's failure.
        reason: String,
        /// Attempts made.
        attempts: u32,
    },
    /// Worth retrying, but not before the deadline.
    OutOfTime(String),
    /// The idempotency store could not be used, so nothing was sent.
    Store(StoreError),
    /// Another invocation holds this object's claim and may be delivering it now.
    Busy {
        /// When its claim runs out.
        until: SystemTime,
    },
    /// An earlier delivery was sent and got no answer, and the target cannot say whether it
    /// ran (it has no lookup, or asking failed): not sent again.
    MayHaveRun {
        /// When that delivery ended.
        since: SystemTime,
        /// Why the target's "did it run?" lookup could not tell, when it was asked.
        lookup: Option<String>,
    },
}

impl Failure {
    /// Whether a later retry (Lambda's, SQS's) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Failure::BaseUrl(error) => error.is_retryable(),
            Failure::Sign(error) => error.is_retryable(),
            Failure::Exhausted { .. }
            | Failure::OutOfTime(_)
            | Failure::Store(_)
            | Failure::Busy { .. } => true,
            Failure::Build(_)
            | Failure::Refused(_)
            | Failure::Unauthorized(_)
            | Failure::MayHaveRun { .. } => false,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::BaseUrl(error) => write!(f, "could not read the base URL: {error}"),
            Failure::Build(error) => write!(f, "could not build the request: {error}"),
            Failure::Sign(error) => write!(f, "signing failed: {error}"),
            Failure::Refused(reason) => f.write_str(reason),
            Failure::Unauthorized(reason) => write!(f, "unauthorized: {reason}"),
            Failure::Exhausted { reason, attempts } => {
                write!(f, "{reason} (gave up after {attempts} attempts)")
            }
            Failure::OutOfTime(reason) => {
                write!(f, "{reason} (no time left before the deadline to retry)")
            }
            Failure::Store(error) => write!(f, "not sent: {error}"),
            Failure::Busy { until } => write!(
                f,
                "not sent: another invocation is delivering this object (its claim runs until {}); retry later",
                httpdate::fmt_http_date(*until)
            ),
            Failure::MayHaveRun {
                since,
                lookup: None,
            } => write!(
                f,
                "not sent: an earlier delivery of this object was sent at {} and got no answer; it may \
                 have run (this target cannot say): check it, then replay with --resend-may-have-run",
                httpdate::fmt_http_date(*since)
            ),
            Failure::MayHaveRun {
                since,
                lookup: Some(why),
            } => write!(
                f,
                "not sent: an earlier delivery of this object was sent at {} and got no answer; it may \
                 have run (asking the target failed: {why}): check it, then replay with \
                 --resend-may-have-run",
                httpdate::fmt_http_date(*since)
            ),
        }
    }
}

/// How delivery ended.
#[derive(Debug, Clone)]
pub enum Ending {
    /// The orchestrator started a run.
    Triggered {
        /// What happened, in words.
        detail: String,
        /// The id the orchestrator gave the run (an Alteryx job id), if it said.
        remote_id: Option<String>,
    },
    /// The run existed already (the remote id when the idempotency store recorded one).
    AlreadyTriggered {
        /// The orchestrator's id for the run, if known.
        remote_id: Option<String>,
    },
    /// An earlier delivery got no answer, and the target's "did it run?" lookup found its run.
    Found {
        /// The orchestrator's id for the run, if the lookup gave it.
        remote_id: Option<String>,
    },
    /// Delivered before: the idempotency table has the record (and the remote id, if any).
    Recorded {
        /// The orchestrator's id for the run, if it gave one.
        remote_id: Option<String>,
    },
    /// Printed, not sent.
    DryRun(Printable),
    /// Not delivered.
    Failed(Failure),
}

/// The result of delivering one request.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The idempotency key sent (Airflow `dag_run_id`), once the request was built.
    pub run_id: Option<String>,
    /// How it ended.
    pub ending: Ending,
    /// Attempts made (0 for dry-runs and failures before sending).
    pub attempts: u32,
    /// The last HTTP status, if any answer came.
    pub http_status: Option<u16>,
    /// Why a run that was started may not run soon (a paused DAG).
    pub warning: Option<String>,
    /// The last attempt got no answer after the request may have reached the target.
    pub may_have_arrived: bool,
}

impl Delivered {
    fn new(ending: Ending, attempts: u32, http_status: Option<u16>) -> Self {
        Delivered {
            run_id: None,
            ending,
            attempts,
            http_status,
            warning: None,
            may_have_arrived: false,
        }
    }

    /// A failure before anything was sent.
    pub fn failed(failure: Failure) -> Self {
        Delivered::new(Ending::Failed(failure), 0, None)
    }

    /// In one word.
    pub fn status(&self) -> Status {
        match self.ending {
            Ending::Triggered { .. } => Status::Triggered,
            Ending::AlreadyTriggered { .. } | Ending::Found { .. } | Ending::Recorded { .. } => {
                Status::AlreadyTriggered
            }
            Ending::DryRun(_) => Status::DryRun,
            Ending::Failed(_) => Status::Failed,
        }
    }

    /// The failure, if it failed.
    pub fn failure(&self) -> Option<&Failure> {
        match &self.ending {
            Ending::Failed(failure) => Some(failure),
            _ => None,
        }
    }

    /// For failures: whether a later retry (Lambda's, SQS's) may succeed.
    pub fn retryable(&self) -> bool {
        self.failure().is_some_and(Failure::is_retryable)
    }

    /// The request a dry run printed instead of sending (secrets redacted).
    pub fn printed(&self) -> Option<&Printable> {
        match &self.ending {
            Ending::DryRun(request) => Some(request),
            _ => None,
        }
    }

    /// The orchestrator's id for the run, if it said.
    pub fn remote_id(&self) -> Option<&str> {
        match &self.ending {
            Ending::Triggered { remote_id, .. }
            | Ending::AlreadyTriggered { remote_id }
            | Ending::Found { remote_id }
            | Ending::Recorded { remote_id } => remote_id.as_deref(),
            _ => None,
        }
    }

    /// What happened, in words.
    pub fn detail(&self) -> String {
        match &self.ending {
            Ending::Triggered { detail, .. } => detail.clone(),
            Ending::AlreadyTriggered { .. } => {
                "already triggered (the run exists; redelivered event)".to_owned()
            }
            Ending::Found { .. } => "already triggered (an earlier delivery got no answer; the \
                                     target lists its run)"
                .to_owned(),
            Ending::Recorded { .. } => {
                "already triggered (recorded in the idempotency table)".to_owned()
            }
            Ending::DryRun(_) => "not sent (dry run)".to_owned(),
            Ending::Failed(failure) => failure.to_string(),
        }
    }
}

/// The flat shape of the report: `run_id`, `status`, `retryable`, `attempts`, `http_status`,
/// `remote_id`, `detail`, a `warning` if there is one, and for dry runs the `request`.
impl Serialize for Delivered {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(run_id) = &self.run_id {
            map.serialize_entry("run_id", run_id)?;
        }
        map.serialize_entry("status", &self.status())?;
        map.serialize_entry("retryable", &self.retryable())?;
        map.serialize_entry("attempts", &self.attempts)?;
        if let Some(status) = self.http_status {
            map.serialize_entry("http_status", &status)?;
        }
        if let Some(remote_id) = self.remote_id() {
            map.serialize_entry("remote_id", remote_id)?;
        }
        map.serialize_entry("detail", &self.detail())?;
        if let Some(warning) = &self.warning {
            map.serialize_entry("warning", warning)?;
        }
        if let Ending::DryRun(request) = &self.ending {
            map.serialize_entry("request", request)?;
        }
        map.end()
    }
}

/// An idempotency record this delivery won, to complete or release when it ends.
struct Claimed<'s> {
    store: &'s dyn Store,
    key: Key,
    token: String,
    /// The record taken over was ambiguous since then: ask the target before sending.
    ambiguous_since: Option<SystemTime>,
}

/// A request the target's rate limit held back past the cutoff: not sent, retryable later
/// (Lambda's or SQS's retry). On a retry, the failure before it leads the reason.
fn throttled_out(
    throttled: Throttled,
    sends: u32,
    retrying: Option<(String, Option<u16>)>,
) -> Delivered {
    let (reason, http_status) = match retrying {
        Some((before, status)) => (format!("{before}; then {throttled}"), status),
        None => (throttled.to_string(), None),
    };
    Delivered::new(
        Ending::Failed(Failure::OutOfTime(reason)),
        sends,
        http_status,
    )
}

/// Everything delivering needs, borrowed from the app for one invocation.
pub struct Delivery<'a> {
    /// Where requests go (the network, or the dry-run printer).
    pub transport: &'a dyn Transport,
    /// Shared secret cache.
    pub secrets: &'a SecretCache,
    /// Wall-clock time.
    pub clock: &'a dyn Clock,
    /// Retry policy.
    pub policy: &'a RetryPolicy,
    /// Time limit of one attempt.
    pub attempt_timeout: Duration,
    /// The invocation's deadline (Lambda), if any.
    pub deadline: Option<Instant>,
    /// Which invocation this is (refused credentials are remembered for its rest).
    pub invocation: u64,
    /// Where idempotency records live, for routes that keep them.
    pub store: Option<&'a dyn Store>,
    /// How long a completed record is kept.
    pub keep: Duration,
    /// What a claim may take over (replay's `--resend-may-have-run`: ambiguous records too).
    pub takeover: Takeover,
}

impl<'a> Delivery<'a> {
    /// Builds the request for one event on `endpoint`, then signs and sends it, retrying as
    /// the policy allows. With a deadline, the whole of it is capped too: each attempt's
    /// timeout is cut to the cutoff (the deadline less its margin), and whatever else could
    /// wait (a secret fetch, a token endpoint that never answers) is given up half a margin
    /// later, so an answer still leaves before the deadline.
    pub async fn deliver(&self, endpoint: &Endpoint, render: &RenderContext<'_>) -> Delivered {
        let Some(cutoff) = self.policy.cutoff(self.deadline, Instant::now()) else {
            return self.deliver_uncapped(endpoint, render).await;
        };
        let cap = cutoff + self.policy.deadline_margin / 2;
        match tokio::time::timeout_at(cap, self.deliver_uncapped(endpoint, render)).await {
            Ok(delivered) => delivered,
            Err(_) => Delivered::failed(Failure::OutOfTime(
                "no outcome yet (a secret, a token or the target still had not answered)".into(),
            )),
        }
    }

    async fn deliver_uncapped(&self, endpoint: &Endpoint, render: &RenderContext<'_>) -> Delivered {
        // A secret store that did not answer is retried like a send, within the same budget.
        let cutoff = self.policy.cutoff(self.deadline, Instant::now());
        let mut attempt = 0;
        let root = loop {
            attempt += 1;
            match endpoint.root(self.secrets).await {
                Ok(root) => break root,
                Err(error) if error.is_retryable() => {
                    if let Step::Wait(wait) = self.retry_step(attempt, error.to_string(), cutoff) {
                        tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, %error, "base URL unavailable; retrying");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Delivered::failed(Failure::BaseUrl(error));
                }
                Err(error) => return Delivered::failed(Failure::BaseUrl(error)),
            }
        };
        let built = match endpoint.target.build(render, &root) {
            Ok(built) => built,
            Err(error) => return Delivered::failed(Failure::Build(error)),
        };
        if let Some(run_id) = &built.run_id {
            tracing::Span::current().record("run_id", run_id.as_str());
        }
        let claim = match self.claim(endpoint, render, &built).await {
            Ok(claim) => claim,
            Err(mut refused) => {
                refused.run_id = refused.run_id.or(built.run_id);
                return refused;
            }
        };
        // Every request of this delivery, token requests included, passes the clear-text rule.
        let transport = ClearTextGuard::new(self.transport, endpoint.allow_http);
        if let Some(claimed) = &claim
            && let Some(since) = claimed.ambiguous_since
            && let Some(ended) = self
                .settle_ambiguous(&transport, endpoint, &root, &built, claimed, since)
                .await
        {
            return ended;
        }
        let mut delivered = self.send(&transport, endpoint, &root, &built).await;
        delivered.run_id = built.run_id;
        if let Some(claimed) = claim {
            self.record(&claimed, endpoint, &delivered).await;
        }
        delivered
    }

    /// Claims this delivery's idempotency record when its route keeps one (never in a dry
    /// run). `Err` is the outcome when it must not be sent: delivered before, held by another
    /// invocation, or the store cannot be used.
    async fn claim(
        &self,
        endpoint: &Endpoint,
        render: &RenderContext<'_>,
        built: &Built,
    ) -> Result<Option<Claimed<'a>>, Delivered> {
        let (Some(store), Some(table)) = (self.store, endpoint.idempotency_table.as_deref()) else {
            return Ok(None);
        };
        if !self.transport.reaches_network() {
            return Ok(None);
        }
        let event = render.event();
        let Some(key) = Key::new(table, render.route(), &endpoint.description, event) else {
            return Ok(None);
        };
        let now = self.clock.now();
        // Just past the invocation's deadline: a live claim is another invocation at work.
        let left = self
            .deadline
            .map_or(Duration::from_secs(15 * 60), |deadline| {
                deadline.saturating_duration_since(Instant::now())
            });
        let lease_until = now + left + Duration::from_secs(5);
        let mut claimed = store.claim(&key, now, lease_until, self.takeover).await;
        // Sent before with no answer: a target that can say whether it ran is asked (the
        // record is taken over first, so that one delivery asks, and sends if it did not run).
        if let Ok(Claim::Ambiguous { .. }) = claimed
            && endpoint.target.did_it_run(built).is_some()
        {
            claimed = store
                .claim(&key, now, lease_until, Takeover::Ambiguous)
                .await;
        }
        match claimed {
            Ok(Claim::Won {
                token,
                took_over,
                ambiguous_since,
            }) => {
                if took_over && ambiguous_since.is_none() {
                    tracing::warn!(
                        table,
                        "took over a claim whose lease ran out (an invocation that did not finish)"
                    );
                }
                Ok(Some(Claimed {
                    store,
                    key,
                    token,
                    ambiguous_since,
                }))
            }
            Ok(Claim::Completed { remote_id, run_id }) => {
                let mut delivered = Delivered::new(Ending::Recorded { remote_id }, 0, None);
                delivered.run_id = run_id;
                Err(delivered)
            }
            Ok(Claim::Busy { until }) => Err(Delivered::failed(Failure::Busy { until })),
            Ok(Claim::Ambiguous { since }) => {
                let mut delivered = Delivered::failed(Failure::MayHaveRun {
                    since,
                    lookup: None,
                });
                delivered.may_have_arrived = true;
                Err(delivered)
            }
            Err(error) => Err(Delivered::failed(Failure::Store(error))),
        }
    }

    /// Records how a claimed delivery ended: completed; released when nothing ran (a retry
    /// may claim it); marked ambiguous when a non-idempotent target may have received it
    /// (redeliveries then end as "may have run" without sending; only a replay told so
    /// re-sends it). Store trouble here is logged: the outcome stands.
    async fn record(&self, claimed: &Claimed<'_>, endpoint: &Endpoint, delivered: &Delivered) {
        let Claimed {
            store, key, token, ..
        } = claimed;
        let now = self.clock.now();
        let result = match &delivered.ending {
            Ending::Triggered { remote_id, .. }
            | Ending::AlreadyTriggered { remote_id }
            | Ending::Found { remote_id } => {
                let done = Done {
                    remote_id: remote_id.as_deref(),
                    run_id: delivered.run_id.as_deref(),
                    at: now,
                    keep_until: now + self.keep,
                };
                store.complete(key, token, done).await
            }
            Ending::Failed(_) if delivered.may_have_arrived && !endpoint.idempotent => {
                tracing::warn!(table = %key.table, "the request may have arrived: the record is marked ambiguous, never re-sent blindly");
                store.mark_ambiguous(key, token, now, now + self.keep).await
            }
            Ending::Failed(_) | Ending::DryRun(_) | Ending::Recorded { .. } => {
                store.release(key, token).await
            }
        };
        if let Err(error) = result {
            tracing::error!(%error, "could not record the delivery in the idempotency table");
        }
    }

    /// A claim took over a record that was ambiguous `since` (sent, no answer): asks the
    /// target whether `built` ran, if it can say. It ran: already triggered, with its remote
    /// id, and COMPLETED in the store. It did not: `None`, send it. The lookup failed: the
    /// record is ambiguous again (since the same time) and the outcome is "may have run", unless
    /// the operator said to re-send (`replay --resend-may-have-run`). One request, signed like
    /// the send, on the target's rate limit, within the cutoff.
    async fn settle_ambiguous(
        &self,
        transport: &dyn Transport,
        endpoint: &Endpoint,
        root: &reqwest::Url,
        built: &Built,
        claimed: &Claimed<'_>,
        since: SystemTime,
    ) -> Option<Delivered> {
        let Some(request) = endpoint.target.did_it_run(built) else {
            // A target that cannot say: sent again only as `replay --resend-may-have-run` asks
            // (a claim that took over the lease of such a replay that did not finish is not).
            if self.takeover == Takeover::Ambiguous {
                tracing::warn!("re-sending a request that may have run, as the operator asked");
                return None;
            }
            return Some(self.still_ambiguous(claimed, since, None, built).await);
        };
        let ran = self.ask(transport, endpoint, root, built, request).await;
        let mut delivered = match ran {
            Ran::No => {
                tracing::info!("the earlier request that got no answer did not run: sending it");
                return None;
            }
            Ran::Unknown(why) if self.takeover == Takeover::Ambiguous => {
                tracing::warn!(%why, "could not tell whether the earlier request ran; re-sending, as the operator asked");
                return None;
            }
            Ran::Yes { remote_id } => {
                tracing::info!(
                    remote_id = remote_id.as_deref(),
                    "the earlier request that got no answer did run"
                );
                Delivered::new(Ending::Found { remote_id }, 0, None)
            }
            Ran::Unknown(why) => {
                tracing::warn!(%why, "could not tell whether the earlier request ran: not sent");
                return Some(self.still_ambiguous(claimed, since, Some(why), built).await);
            }
        };
        delivered.run_id = built.run_id.clone();
        self.record(claimed, endpoint, &delivered).await;
        Some(delivered)
    }

    /// Gives a claimed record back as ambiguous since the time it first was (store trouble is
    /// logged): the outcome is "may have run", with why the lookup could not tell, if asked.
    async fn still_ambiguous(
        &self,
        claimed: &Claimed<'_>,
        since: SystemTime,
        lookup: Option<String>,
        built: &Built,
    ) -> Delivered {
        let Claimed {
            store, key, token, ..
        } = claimed;
        let keep_until = self.clock.now() + self.keep;
        if let Err(error) = store.mark_ambiguous(key, token, since, keep_until).await {
            tracing::error!(%error, "could not mark the idempotency record ambiguous again");
        }
        let mut delivered = Delivered::failed(Failure::MayHaveRun { since, lookup });
        delivered.may_have_arrived = true;
        delivered.run_id = built.run_id.clone();
        delivered
    }

    /// Sends a target's "did it run?" request: its rate-limit turn, signed, one attempt capped
    /// by the cutoff. Anything but an answer it can read is [`Ran::Unknown`].
    async fn ask(
        &self,
        transport: &dyn Transport,
        endpoint: &Endpoint,
        root: &reqwest::Url,
        built: &Built,
        mut request: crate::http::Request,
    ) -> Ran {
        let cutoff = self.policy.cutoff(self.deadline, Instant::now());
        let _slot = match endpoint.limiter.acquire(cutoff).await {
            Ok(slot) => slot,
            Err(throttled) => return Ran::Unknown(throttled.to_string()),
        };
        let timeout = match cutoff {
            Some(cutoff) => self
                .attempt_timeout
                .min(cutoff.saturating_duration_since(Instant::now())),
            None => self.attempt_timeout,
        };
        if timeout.is_zero() {
            return Ran::Unknown("no time left before the deadline to ask".into());
        }
        let cx = SignContext {
            secrets: self.secrets,
            transport,
            clock: self.clock,
            root,
            timeout,
            invocation: self.invocation,
        };
        if let Err(error) = endpoint.auth.sign(&mut request, &cx).await {
            return Ran::Unknown(format!("signing failed: {error}"));
        }
        match transport.send(&request, timeout).await {
            Sent::Answered(answer) => endpoint.target.interpret_did_it_run(built, &answer),
            Sent::Failed(error) => Ran::Unknown(error.to_string()),
            Sent::Printed(_) => Ran::Unknown("not asked (dry run)".into()),
        }
    }

    async fn send(
        &self,
        transport: &dyn Transport,
        endpoint: &Endpoint,
        root: &reqwest::Url,
        built: &Built,
    ) -> Delivered {
        let cutoff = self.policy.cutoff(self.deadline, Instant::now());
        let mut refreshed = false;
        // `attempt` counts against the retry budget (a refresh after a 401 does not);
        // `sends` is what the report says: every request that went out.
        let mut attempt = 0;
        let mut sends = 0;
        // Why the attempt before is being retried, and its status: what a retry that the rate
        // limit holds back past the cutoff reports.
        let mut retrying: Option<(String, Option<u16>)> = None;
        let mut built = std::borrow::Cow::Borrowed(built);
        loop {
            attempt += 1;
            // This request's turn at the target's rate limit, taken before signing (so a
            // signature or token is fresh when it goes) and held until the attempt ends: its
            // check and follow-up requests included, token requests not. Dry runs wait for
            // nothing.
            let slot = match transport.reaches_network() {
                true => match endpoint.limiter.acquire(cutoff).await {
                    Ok(slot) => Some(slot),
                    Err(throttled) => return throttled_out(throttled, sends, retrying),
                },
                false => None,
            };
            let timeout = match cutoff {
                Some(cutoff) => self
                    .attempt_timeout
                    .min(cutoff.saturating_duration_since(Instant::now())),
                None => self.attempt_timeout,
            };
            let lookup = self.complete(transport, endpoint, &mut built).await;
            let mut signed = match &lookup {
                Some((request, _)) => request.clone(),
                None => built.request.clone(),
            };
            let cx = SignContext {
                secrets: self.secrets,
                transport,
                clock: self.clock,
                root,
                timeout,
                invocation: self.invocation,
            };
            if let Err(error) = endpoint.auth.sign(&mut signed, &cx).await {
                // A token endpoint or secret store that did not answer is retried like a
                // send (same budget, backoff and deadline); a refusal is final.
                let reason = format!("signing failed: {error}");
                let step = match error.is_retryable() {
                    true => self.retry_step(attempt, reason.clone(), cutoff),
                    false => Step::Done,
                };
                let failure = match step {
                    Step::Wait(wait) => {
                        tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, %error, "signing failed; retrying");
                        drop(slot);
                        retrying = Some((reason, retrying.and_then(|(_, status)| status)));
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    Step::Exhausted => Failure::Exhausted {
                        reason,
                        attempts: attempt,
                    },
                    Step::OutOfTime => Failure::OutOfTime(reason),
                    Step::Done | Step::Refresh => Failure::Sign(error),
                };
                return Delivered::new(Ending::Failed(failure), sends, None);
            }
            if lookup.is_none() {
                sends += 1;
            }
            let span = tracing::info_span!("attempt", attempt, http_status = tracing::field::Empty);
            let sent = transport
                .send(&signed, timeout)
                .instrument(span.clone())
                .await;
            let (verdict, http_status, may_have_arrived) = match sent {
                Sent::Printed(request) => return Delivered::new(Ending::DryRun(request), 0, None),
                Sent::Answered(answer) => {
                    span.record("http_status", answer.status.as_u16());
                    let server_wait = answer.retry_after(self.clock.now());
                    let verdict = match &lookup {
                        Some(_) => match endpoint.target.looked_up(&built, &answer) {
                            Ok(done) => {
                                // A lookup is not an attempt at the request.
                                built = std::borrow::Cow::Owned(done);
                                attempt -= 1;
                                continue;
                            }
                            Err(verdict) => verdict,
                        },
                        None => endpoint.target.interpret(&answer),
                    };
                    (
                        verdict.with_retry_after(server_wait),
                        Some(answer.status.as_u16()),
                        false,
                    )
                }
                // A lookup is a read: safe to repeat, and nothing was delivered.
                Sent::Failed(error) => (
                    Verdict::from_transport(&error, endpoint.idempotent || lookup.is_some()),
                    error.status,
                    lookup.is_none() && !error.is_connect() && !error.is_invalid_request(),
                ),
            };
            drop(lookup);
            let verdict = match verdict {
                Verdict::Check { reason } => self.check(endpoint, &built, &cx, reason).await,
                verdict => verdict,
            };
            let can_refresh = !refreshed && endpoint.auth.refreshable();
            let step = self.policy.step(
                attempt,
                &verdict,
                can_refresh,
                Instant::now(),
                cutoff,
                fastrand::f64(),
            );
            let ending = match step {
                Step::Refresh => {
                    endpoint.auth.refresh().await;
                    refreshed = true;
                    attempt -= 1;
                    retrying = Some((verdict.into_reason(), http_status));
                    tracing::info!("401: dropped the cached token, signing again");
                    continue;
                }
                Step::Wait(wait) => {
                    let reason = verdict.into_reason();
                    tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, %reason, "retrying");
                    drop(slot);
                    retrying = Some((reason, http_status));
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Step::Done => self.settle(endpoint, verdict),
                Step::Exhausted => Ending::Failed(Failure::Exhausted {
                    reason: verdict.into_reason(),
                    attempts: attempt,
                }),
                Step::OutOfTime => Ending::Failed(Failure::OutOfTime(verdict.into_reason())),
            };
            let mut delivered = Delivered::new(ending, sends, http_status);
            delivered.may_have_arrived = may_have_arrived;
            if matches!(
                delivered.ending,
                Ending::Triggered { .. } | Ending::AlreadyTriggered { .. }
            ) {
                delivered.warning = self.follow_up(endpoint, &built, &cx).await;
            }
            return delivered;
        }
    }

    /// Completes `built` before an attempt (see [`crate::targets::Target::complete`]): from
    /// what the target remembers, or with the lookup to send instead, returned with the
    /// endpoint's lookup gate held, so that concurrent deliveries wait for its answer rather
    /// than ask the same question. A dry run looks nothing up: it prints the request as built.
    async fn complete<'e>(
        &self,
        transport: &dyn Transport,
        endpoint: &'e Endpoint,
        built: &mut std::borrow::Cow<'_, Built>,
    ) -> Option<(crate::http::Request, tokio::sync::MutexGuard<'e, ()>)> {
        match endpoint.target.complete(built)? {
            Pending::Ready(done) => {
                *built = std::borrow::Cow::Owned(done);
                return None;
            }
            Pending::Lookup(_) if !transport.reaches_network() => return None,
            Pending::Lookup(_) => {}
        }
        let gate = endpoint.lookups.lock().await;
        // Another delivery may have looked it up while this one waited.
        match endpoint.target.complete(built)? {
            Pending::Ready(done) => {
                *built = std::borrow::Cow::Owned(done);
                None
            }
            Pending::Lookup(request) => Some((request, gate)),
        }
    }

    /// After a run was started, what the target's follow-up says (a paused DAG), from the
    /// endpoint's memory while fresh. A follow-up that gets no answer warns of nothing.
    async fn follow_up(
        &self,
        endpoint: &Endpoint,
        built: &Built,
        cx: &SignContext<'_>,
    ) -> Option<String> {
        let mut request = endpoint.target.follow_up(built)?;
        let url = request.url.to_string();
        if let Some(known) = endpoint.warnings.known(&url, Instant::now().into_std()) {
            return known;
        }
        endpoint.auth.sign(&mut request, cx).await.ok()?;
        let Sent::Answered(answer) = cx.transport.send(&request, cx.timeout).await else {
            return None;
        };
        let warning = endpoint.target.warning(&answer);
        if endpoint
            .warnings
            .record(&url, warning.clone(), Instant::now().into_std())
            && let Some(warning) = &warning
        {
            tracing::warn!(%warning, "the run will wait");
        }
        warning
    }

    /// What the policy says after a failure that is worth retrying, outside a send (a token
    /// endpoint or secret store that did not answer).
    fn retry_step(&self, attempt: u32, reason: String, cutoff: Option<Instant>) -> Step {
        let verdict = Verdict::Retry {
            reason,
            after: None,
        };
        let now = Instant::now();
        self.policy
            .step(attempt, &verdict, false, now, cutoff, fastrand::f64())
    }

    /// Settles an ambiguous answer with the target's check request (signed like the first).
    /// A check that gets no answer is worth retrying the whole request: only targets with an
    /// idempotency key ask for checks.
    async fn check(
        &self,
        endpoint: &Endpoint,
        built: &Built,
        cx: &SignContext<'_>,
        conflict: String,
    ) -> Verdict {
        let Some(mut request) = endpoint.target.check(built) else {
            return Verdict::AlreadyDelivered;
        };
        let failed = |why: String| Verdict::Retry {
            reason: format!("{conflict}; then checking failed: {why}"),
            after: None,
        };
        if let Err(error) = endpoint.auth.sign(&mut request, cx).await {
            return failed(error.to_string());
        }
        match cx.transport.send(&request, cx.timeout).await {
            Sent::Answered(answer) => endpoint.target.interpret_check(built, &conflict, &answer),
            Sent::Failed(error) => failed(error.to_string()),
            Sent::Printed(_) => Verdict::AlreadyDelivered,
        }
    }

    /// How a final verdict ends the delivery. A refusal of the credentials is remembered for
    /// the rest of the invocation.
    fn settle(&self, endpoint: &Endpoint, verdict: Verdict) -> Ending {
        match verdict {
            Verdict::Delivered { detail, remote_id } => Ending::Triggered { detail, remote_id },
            Verdict::AlreadyDelivered | Verdict::Check { .. } => {
                Ending::AlreadyTriggered { remote_id: None }
            }
            Verdict::Unauthorized { reason } => {
                endpoint.auth.refused(self.invocation, &reason);
                Ending::Failed(Failure::Unauthorized(reason))
            }
            Verdict::Permanent { reason } | Verdict::Retry { reason, .. } => {
                Ending::Failed(Failure::Refused(reason))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::event::ObjectEvent;
    use crate::http::{Answer, DryRun, Request};
    use crate::secrets::SecretsFile;
    use crate::targets::TargetConfig;
    use crate::template::Templates;
    use futures_util::future::BoxFuture;
    use reqwest::StatusCode;
    use reqwest::header::{HeaderValue, RETRY_AFTER};
    use std::sync::Mutex;

    /// A transport that plays back answers in order and records when each request came. The
    /// follow-up read of the DAG (`GET .../dags/d`) is answered apart, with `dag`.
    #[derive(Debug)]
    struct Script {
        answers: Mutex<Vec<(u16, Option<&'static str>, &'static str)>>,
        times: Mutex<Vec<Instant>>,
        authorizations: Mutex<Vec<String>>,
        /// `METHOD url` of each request answered from the script.
        sent: Mutex<Vec<String>>,
        dag: &'static str,
        dag_reads: Mutex<u32>,
    }

    impl Script {
        fn new(answers: &[(u16, Option<&'static str>)]) -> Self {
            let answers: Vec<_> = answers.iter().map(|&(s, r)| (s, r, "")).collect();
            Script::with_bodies(&answers)
        }

        fn with_bodies(answers: &[(u16, Option<&'static str>, &'static str)]) -> Self {
            Script {
                answers: Mutex::new(answers.iter().rev().copied().collect()),
                times: Mutex::new(Vec::new()),
                authorizations: Mutex::new(Vec::new()),
                sent: Mutex::new(Vec::new()),
                dag: r#"{"dag_id": "d", "is_paused": false}"#,
                dag_reads: Mutex::new(0),
            }
        }
    }

    impl Transport for Script {
        fn send<'a>(&'a self, request: &'a Request, _: Duration) -> BoxFuture<'a, Sent> {
            if request.url.path().ends_with("/dags/d") {
                *self.dag_reads.lock().unwrap() += 1;
                let answer = Answer::new(StatusCode::OK, self.dag);
                return Box::pin(std::future::ready(Sent::Answered(answer)));
            }
            self.times.lock().unwrap().push(Instant::now());
            self.sent
                .lock()
                .unwrap()
                .push(format!("{} {}", request.method, request.url));
            if let Some((_, value)) = request.headers.iter().find(|(n, _)| n == "authorization") {
                let crate::http::HeaderValue::Secret { value, .. } = value else {
                    panic!("authorization is secret")
                };
                self.authorizations
                    .lock()
                    .unwrap()
                    .push(value.expose().to_owned());
            }
            let (status, retry_after, body) =
                self.answers.lock().unwrap().pop().expect("an answer left");
            let mut answer = Answer::new(StatusCode::from_u16(status).unwrap(), body);
            if let Some(seconds) = retry_after {
                answer
                    .headers
                    .insert(RETRY_AFTER, HeaderValue::from_static(seconds));
            }
            Box::pin(std::future::ready(Sent::Answered(answer)))
        }

        fn reaches_network(&self) -> bool {
            true
        }
    }

    const SECRETS: &str = r#"{"airflow": {"username": "admin", "password": "pw"}, "wf": "tok3n"}"#;

    /// An Airflow target with `auth`, its templates, and a retry policy.
    struct Setup {
        endpoint: Endpoint,
        templates: Templates,
        policy: RetryPolicy,
        store: Option<Box<dyn Store>>,
        takeover: Takeover,
    }

    fn config(auth: &str, policy: RetryPolicy) -> Setup {
        let yaml =
            format!("airflow: {{ base_url: 'http://127.0.0.1:9', dag_id: d, auth: {auth} }}");
        let target: TargetConfig = serde_saphyr::from_str(&yaml).unwrap();
        let mut templates = Templates::new();
        let endpoint = target.build("t", &mut templates).unwrap();
        Setup {
            endpoint,
            templates,
            policy,
            store: None,
            takeover: Takeover::Expired,
        }
    }

    fn policy(max_attempts: u32, base_ms: u64, max_ms: u64, margin_ms: u64) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base: Duration::from_millis(base_ms),
            max: Duration::from_millis(max_ms),
            deadline_margin: Duration::from_millis(margin_ms),
        }
    }

    fn event() -> ObjectEvent {
        ObjectEvent {
            size: Some(1),
            sequencer: Some("01".into()),
            ..ObjectEvent::put("b", "k.csv")
        }
    }

    async fn deliver(
        setup: &Setup,
        transport: &dyn Transport,
        deadline: Option<Instant>,
        invocation: u64,
    ) -> Delivered {
        let file = SecretsFile::parse(std::path::Path::new("t"), SECRETS).unwrap();
        let secrets = SecretCache::new(Box::new(file), Duration::from_secs(60));
        deliver_with(setup, transport, &secrets, deadline, invocation).await
    }

    async fn deliver_with(
        setup: &Setup,
        transport: &dyn Transport,
        secrets: &SecretCache,
        deadline: Option<Instant>,
        invocation: u64,
    ) -> Delivered {
        let delivery = Delivery {
            transport,
            secrets,
            clock: &SystemClock,
            policy: &setup.policy,
            attempt_timeout: Duration::from_secs(10),
            deadline,
            invocation,
            store: setup.store.as_deref(),
            keep: Duration::from_secs(3600),
            takeover: setup.takeover,
        };
        let event = event();
        let render = RenderContext::new(&setup.templates, &event, "r");
        delivery.deliver(&setup.endpoint, &render).await
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_without_waiting_real_time() {
        let config = config("none", policy(4, 10, 50, 2000));
        let script = Script::new(&[(429, Some("1")), (200, None)]);
        let started = Instant::now();
        let delivered = deliver(&config, &script, None, 1).await;
        assert_eq!(
            delivered.status(),
            Status::Triggered,
            "{}",
            delivered.detail()
        );
        assert_eq!(delivered.attempts, 2);
        let times = script.times.lock().unwrap();
        assert!(
            times[1] - times[0] >= Duration::from_secs(1),
            "waited {:?}, backoff cap is 50 ms",
            times[1] - times[0]
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_dag_is_a_warning_read_once_a_minute() {
        let setup = config("none", policy(4, 10, 50, 2000));
        let mut script = Script::new(&[(200, None), (409, None), (200, None), (200, None)]);
        script.dag = r#"{"dag_id": "d", "is_paused": true}"#;
        let first = deliver(&setup, &script, None, 1).await;
        assert_eq!(first.status(), Status::Triggered, "{}", first.detail());
        let warning =
            "DAG d is paused: the run is queued and will not start until the DAG is unpaused";
        assert_eq!(first.warning.as_deref(), Some(warning));
        assert_eq!(
            serde_json::to_value(&first).unwrap()["warning"],
            serde_json::json!(warning)
        );
        // A redelivery (409, then the check finds our run) warns too, from memory.
        let again = deliver(&setup, &script, None, 1).await;
        assert_eq!(again.status(), Status::AlreadyTriggered);
        assert_eq!(again.warning.as_deref(), Some(warning));
        assert_eq!(*script.dag_reads.lock().unwrap(), 1);
        // A minute later the DAG is read again.
        tokio::time::advance(Duration::from_secs(61)).await;
        deliver(&setup, &script, None, 2).await;
        assert_eq!(*script.dag_reads.lock().unwrap(), 2);

        // Unpaused: no warning, and none in the report.
        let setup = config("none", policy(4, 10, 50, 2000));
        let script = Script::new(&[(200, None)]);
        let delivered = deliver(&setup, &script, None, 3).await;
        assert_eq!(delivered.warning, None);
        assert!(
            serde_json::to_value(&delivered)
                .unwrap()
                .get("warning")
                .is_none()
        );
    }

    /// A webhook (no idempotency key of its own) keeping records in `store`.
    fn webhook_with_store(store: crate::store::memory::Memory) -> Setup {
        let target: TargetConfig =
            serde_saphyr::from_str("webhook: { url: 'http://127.0.0.1:9/hook' }").unwrap();
        let mut templates = Templates::new();
        let mut endpoint = target.build("t", &mut templates).unwrap();
        endpoint.idempotency_table = Some("records".into());
        Setup {
            endpoint,
            templates,
            policy: policy(2, 10, 50, 2000),
            store: Some(Box::new(store)),
            takeover: Takeover::Expired,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn with_a_store_a_redelivery_is_not_sent_and_a_failure_can_be_retried() {
        let setup = webhook_with_store(Default::default());
        // Fails (not sent twice within the invocation: 503, 503), then the retry is sent.
        let script = Script::new(&[(503, None), (503, None), (200, None)]);
        let failed = deliver(&setup, &script, None, 1).await;
        assert_eq!(failed.status(), Status::Failed);
        assert!(failed.retryable());
        let sent = deliver(&setup, &script, None, 2).await;
        assert_eq!(sent.status(), Status::Triggered, "{}", sent.detail());
        // Delivered again: answered from the record, nothing sent (the script has no answer
        // left, and would panic).
        let again = deliver(&setup, &script, None, 3).await;
        assert_eq!(again.status(), Status::AlreadyTriggered);
        assert_eq!(
            again.detail(),
            "already triggered (recorded in the idempotency table)"
        );
        assert_eq!(again.attempts, 0);
        assert_eq!(script.times.lock().unwrap().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_live_claim_or_a_store_that_fails_sends_nothing_and_is_retryable() {
        use crate::store::memory::{Memory, Record};
        let memory = Memory::default();
        let event = event();
        let key = Key::new(
            "records",
            "r",
            "webhook POST http://127.0.0.1:9/hook",
            &event,
        )
        .unwrap();
        let until = SystemTime::now() + Duration::from_secs(600);
        memory.records.lock().unwrap().insert(
            key.id.clone(),
            Record::InProgress("other".into(), until, None),
        );
        let setup = webhook_with_store(memory);
        let script = Script::new(&[]);
        let busy = deliver(&setup, &script, None, 1).await;
        assert!(busy.retryable());
        assert!(
            busy.detail()
                .starts_with("not sent: another invocation is delivering this object"),
            "{}",
            busy.detail()
        );

        let setup = webhook_with_store(Memory {
            fail: true,
            ..Memory::default()
        });
        let down = deliver(&setup, &script, None, 2).await;
        assert!(down.retryable());
        assert_eq!(
            down.detail(),
            "not sent: idempotency table records: unavailable"
        );
        assert!(script.times.lock().unwrap().is_empty());
    }

    /// A Workflows target (it can say whether a request ran) keeping records in `store`, whose
    /// record for [`event`] is ambiguous since `since` (when given).
    fn workflows_with_store(
        store: crate::store::memory::Memory,
        since: Option<SystemTime>,
    ) -> (Setup, Key) {
        let yaml = "workflows: { project: p, location: l, workflow: w, endpoint: 'http://127.0.0.1:9', auth: { bearer: { secret: wf } } }";
        let target: TargetConfig = serde_saphyr::from_str(yaml).unwrap();
        let mut templates = Templates::new();
        let mut endpoint = target.build("t", &mut templates).unwrap();
        endpoint.idempotency_table = Some("records".into());
        let key = Key::new("records", "r", &endpoint.description, &event()).unwrap();
        if let Some(since) = since {
            store.records.lock().unwrap().insert(
                key.id.clone(),
                crate::store::memory::Record::Ambiguous(since),
            );
        }
        let setup = Setup {
            endpoint,
            templates,
            policy: policy(2, 10, 50, 2000),
            store: Some(Box::new(store)),
            takeover: Takeover::Expired,
        };
        (setup, key)
    }

    const EXECUTIONS: &str = "http://127.0.0.1:9/v1/projects/p/locations/l/workflows/w/executions";

    /// The list call a lookup sends: exactly this filter, view and page size.
    fn lookup_url(key: &Key) -> String {
        format!(
            "GET {EXECUTIONS}?filter=labels.bucket_trigger%3D%22{}%22&view=FULL&pageSize=1",
            &key.id[..40]
        )
    }

    /// A list answer holding one execution named `name` with `key`'s label.
    fn listed(key: &Key, name: &str) -> &'static str {
        let body = serde_json::json!({ "executions": [
            { "name": name, "state": "ACTIVE", "labels": { "bucket_trigger": &key.id[..40] } }
        ] });
        Box::leak(body.to_string().into_boxed_str())
    }

    #[tokio::test(start_paused = true)]
    async fn an_ambiguous_record_found_by_the_lookup_is_already_triggered_and_not_sent() {
        let since = SystemTime::now() - Duration::from_secs(120);
        let (setup, key) = workflows_with_store(Default::default(), Some(since));
        let name = "projects/p/locations/l/workflows/w/executions/e-1";
        let script = Script::with_bodies(&[(200, None, listed(&key, name))]);
        let found = deliver(&setup, &script, None, 1).await;
        assert_eq!(
            found.status(),
            Status::AlreadyTriggered,
            "{}",
            found.detail()
        );
        assert_eq!(found.remote_id(), Some(name));
        assert_eq!(
            found.detail(),
            "already triggered (an earlier delivery got no answer; the target lists its run)"
        );
        assert_eq!(found.attempts, 0);
        assert_eq!(*script.sent.lock().unwrap(), [lookup_url(&key)]);
        assert_eq!(*script.authorizations.lock().unwrap(), ["Bearer tok3n"]);
        // COMPLETED with the execution's name: the next delivery asks nothing (the script has
        // no answer left, and would panic).
        let again = deliver(&setup, &script, None, 2).await;
        assert_eq!(
            again.detail(),
            "already triggered (recorded in the idempotency table)"
        );
        assert_eq!(again.remote_id(), Some(name));
        assert_eq!(script.sent.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_ambiguous_record_the_lookup_does_not_find_is_sent_once() {
        let since = SystemTime::now() - Duration::from_secs(120);
        let (setup, key) = workflows_with_store(Default::default(), Some(since));
        let name = "projects/p/locations/l/workflows/w/executions/e-2";
        let started: &'static str = Box::leak(format!(r#"{{"name": "{name}"}}"#).into_boxed_str());
        let script = Script::with_bodies(&[(200, None, "{}"), (200, None, started)]);
        let sent = deliver(&setup, &script, None, 1).await;
        assert_eq!(sent.status(), Status::Triggered, "{}", sent.detail());
        assert_eq!(sent.remote_id(), Some(name));
        assert_eq!(sent.attempts, 1, "the lookup is not an attempt");
        assert_eq!(
            *script.sent.lock().unwrap(),
            [lookup_url(&key), format!("POST {EXECUTIONS}")]
        );
        let again = deliver(&setup, &script, None, 2).await;
        assert_eq!(again.status(), Status::AlreadyTriggered);
        assert_eq!(again.remote_id(), Some(name));
        assert_eq!(script.sent.lock().unwrap().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lookup_that_fails_leaves_may_have_run_and_sends_nothing() {
        let since = SystemTime::now() - Duration::from_secs(120);
        let (setup, key) = workflows_with_store(Default::default(), Some(since));
        let script =
            Script::with_bodies(&[(500, None, r#"{"error": {"message": "backend error"}}"#)]);
        let failed = deliver(&setup, &script, None, 1).await;
        assert_eq!(failed.status(), Status::Failed);
        assert!(!failed.retryable());
        assert!(failed.may_have_arrived);
        let since_text = httpdate::fmt_http_date(since);
        assert_eq!(
            failed.detail(),
            format!(
                "not sent: an earlier delivery of this object was sent at {since_text} and got no \
                 answer; it may have run (asking the target failed: listing the executions \
                 answered 500: backend error): check it, then replay with --resend-may-have-run"
            )
        );
        assert_eq!(*script.sent.lock().unwrap(), [lookup_url(&key)]);
        // The record is ambiguous again, since the same time: the next delivery asks again.
        let script = Script::with_bodies(&[(503, None, "")]);
        let again = deliver(&setup, &script, None, 2).await;
        assert!(again.detail().contains(&since_text), "{}", again.detail());
        assert_eq!(script.sent.lock().unwrap().len(), 1);

        // Told to re-send (`replay --resend-may-have-run`), a lookup that fails does not stop it.
        let (mut setup, key) = workflows_with_store(Default::default(), Some(since));
        setup.takeover = Takeover::Ambiguous;
        let script = Script::with_bodies(&[(503, None, ""), (200, None, "{}")]);
        let resent = deliver(&setup, &script, None, 3).await;
        assert_eq!(resent.status(), Status::Triggered, "{}", resent.detail());
        assert_eq!(
            *script.sent.lock().unwrap(),
            [lookup_url(&key), format!("POST {EXECUTIONS}")]
        );
    }

    /// A claim that took over an ambiguous record and did not finish (its lease ran out) still
    /// says so: the next claim does not send blindly to a target that cannot tell.
    #[tokio::test(start_paused = true)]
    async fn a_takeover_of_an_unfinished_ambiguous_takeover_is_still_may_have_run() {
        use crate::store::memory::{Memory, Record};
        let memory = Memory::default();
        let key = Key::new(
            "records",
            "r",
            "webhook POST http://127.0.0.1:9/hook",
            &event(),
        )
        .unwrap();
        let since = SystemTime::now() - Duration::from_secs(600);
        let expired = SystemTime::now() - Duration::from_secs(1);
        memory.records.lock().unwrap().insert(
            key.id.clone(),
            Record::InProgress("dead".into(), expired, Some(since)),
        );
        let setup = webhook_with_store(memory);
        let script = Script::new(&[]);
        let delivered = deliver(&setup, &script, None, 1).await;
        assert!(
            matches!(delivered.failure(), Some(Failure::MayHaveRun { since: at, lookup: None }) if *at == since),
            "{}",
            delivered.detail()
        );
        assert!(script.times.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_and_gives_up_after_max_attempts() {
        let config = config("none", policy(3, 1000, 60_000, 2000));
        let script = Script::new(&[(503, None), (503, None), (503, None)]);
        let delivered = deliver(&config, &script, None, 1).await;
        assert_eq!(delivered.detail(), "HTTP 503 (gave up after 3 attempts)");
        assert!(delivered.retryable());
        let times = script.times.lock().unwrap();
        assert!(times[1] - times[0] <= Duration::from_secs(1));
        assert!(times[2] - times[1] <= Duration::from_secs(2));
    }

    /// Never answers, whatever the timeout: a stuck token endpoint, secret store or target.
    #[derive(Debug)]
    struct Hang;

    impl Transport for Hang {
        fn send<'a>(&'a self, _: &'a Request, _: Duration) -> BoxFuture<'a, Sent> {
            Box::pin(std::future::pending())
        }

        fn reaches_network(&self) -> bool {
            true
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_whole_delivery_ends_before_the_deadline_whatever_hangs() {
        let config = config("none", policy(4, 200, 5000, 2000));
        let started = Instant::now();
        let deadline = started + Duration::from_secs(10);
        let delivered = deliver(&config, &Hang, Some(deadline), 1).await;
        assert_eq!(delivered.status(), Status::Failed);
        assert!(delivered.retryable());
        assert!(
            delivered.detail().starts_with("no outcome yet"),
            "{}",
            delivered.detail()
        );
        // Cutoff at 8 s, given up half a margin later: 1 s before the deadline.
        assert_eq!(started.elapsed(), Duration::from_secs(9));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_the_deadline_is_not_taken() {
        let config = config("none", policy(4, 200, 5000, 1000));
        let script = Script::new(&[(503, Some("30"))]);
        let deadline = Instant::now() + Duration::from_secs(10);
        let delivered = deliver(&config, &script, Some(deadline), 1).await;
        assert_eq!(
            delivered.detail(),
            "HTTP 503 (no time left before the deadline to retry)"
        );
        assert!(delivered.retryable());
        assert_eq!(script.times.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_401_is_final_for_basic_and_remembered_for_the_invocation() {
        let config = config("{ basic: { secret: airflow } }", RetryPolicy::default());
        let script = Script::new(&[(401, None), (200, None)]);
        let first = deliver(&config, &script, None, 5).await;
        assert!(
            first.detail().starts_with(
                "unauthorized: Airflow refused the credentials in secret \"airflow\" (401): wrong username or password"
            ),
            "{}",
            first.detail()
        );
        // The same target, later in the same invocation: not sent again.
        let second = deliver(&config, &script, None, 5).await;
        assert!(
            second
                .detail()
                .contains("refused these credentials earlier"),
            "{}",
            second.detail()
        );
        assert_eq!(second.attempts, 0);
        assert_eq!(script.times.lock().unwrap().len(), 1);
        // The next invocation sends.
        let third = deliver(&config, &script, None, 6).await;
        assert_eq!(third.status(), Status::Triggered);
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_endpoint_that_fails_is_retried_like_a_send_and_a_refusal_is_not() {
        let setup = config(
            "{ airflow_token: { secret: airflow } }",
            policy(3, 1000, 60_000, 2000),
        );
        let token = |value| (200, None, value);
        let script = Script::with_bodies(&[
            (503, None, "busy"),
            (502, None, "bad gateway"),
            token(r#"{"access_token": "jwt-1"}"#),
            (200, None, ""),
        ]);
        let delivered = deliver(&setup, &script, None, 1).await;
        assert_eq!(
            delivered.status(),
            Status::Triggered,
            "{}",
            delivered.detail()
        );
        assert_eq!(delivered.attempts, 1, "one request reached the target");
        let times = script.times.lock().unwrap().clone();
        assert_eq!(times.len(), 4);
        assert!(times[1] > times[0], "backed off before asking again");

        // Out of budget: the last reason, and how many tries.
        let setup = config(
            "{ airflow_token: { secret: airflow } }",
            policy(2, 10, 50, 2000),
        );
        let script = Script::with_bodies(&[(503, None, "busy"), (503, None, "busy")]);
        let delivered = deliver(&setup, &script, None, 2).await;
        assert!(delivered.retryable());
        assert!(
            delivered
                .detail()
                .starts_with("signing failed: token request to ")
                && delivered.detail().ends_with("(gave up after 2 attempts)"),
            "{}",
            delivered.detail()
        );

        // A refusal (wrong password) is asked once.
        let setup = config(
            "{ airflow_token: { secret: airflow } }",
            policy(3, 10, 50, 2000),
        );
        let script = Script::with_bodies(&[(403, None, "{\"detail\": \"Invalid credentials\"}")]);
        let delivered = deliver(&setup, &script, None, 3).await;
        assert!(!delivered.retryable(), "{}", delivered.detail());
        assert_eq!(script.times.lock().unwrap().len(), 1);
    }

    /// A secret store that fails `failures` times, then serves [`SECRETS`] plus a base URL.
    struct Flaky {
        failures: Mutex<u32>,
    }

    impl crate::secrets::SecretSource for Flaky {
        fn fetch<'a>(
            &'a self,
            id: &'a str,
        ) -> BoxFuture<'a, Result<crate::secrets::SecretString, crate::secrets::SecretsError>>
        {
            let mut failures = self.failures.lock().unwrap();
            let result = if *failures > 0 {
                *failures -= 1;
                Err(crate::secrets::SecretsError::Unavailable {
                    id: id.to_owned(),
                    message: "throttled".into(),
                })
            } else {
                Ok(crate::secrets::SecretString::new(
                    r#"{"username": "admin", "password": "pw", "url": "http://127.0.0.1:9"}"#,
                ))
            };
            Box::pin(std::future::ready(result))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_secret_store_that_fails_is_retried_within_the_budget() {
        let yaml = "airflow: { base_url: { secret: airflow, field: url }, dag_id: d, auth: { basic: { secret: airflow } } }";
        let target: TargetConfig = serde_saphyr::from_str(yaml).unwrap();
        let mut templates = Templates::new();
        let endpoint = target.build("t", &mut templates).unwrap();
        let setup = Setup {
            endpoint,
            templates,
            policy: policy(3, 100, 1000, 2000),
            store: None,
            takeover: Takeover::Expired,
        };
        let flaky = |failures| Flaky {
            failures: Mutex::new(failures),
        };
        let source = flaky(2);
        let secrets = SecretCache::new(Box::new(source), Duration::from_secs(60));
        let script = Script::new(&[(200, None)]);
        let delivered = deliver_with(&setup, &script, &secrets, None, 1).await;
        assert_eq!(
            delivered.status(),
            Status::Triggered,
            "{}",
            delivered.detail()
        );

        let secrets = SecretCache::new(Box::new(flaky(3)), Duration::from_secs(60));
        let script = Script::new(&[]);
        let delivered = deliver_with(&setup, &script, &secrets, None, 2).await;
        assert!(delivered.retryable());
        assert_eq!(
            delivered.detail(),
            "could not read the base URL: could not fetch secret \"airflow\": throttled"
        );
        assert!(script.times.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_401_on_a_token_scheme_refreshes_the_token_once() {
        let setup = config(
            "{ airflow_token: { secret: airflow } }",
            RetryPolicy::default(),
        );
        let token = |value| (200, None, value);
        let script = Script::with_bodies(&[
            token(r#"{"access_token": "jwt-1"}"#),
            (401, None, ""),
            token(r#"{"access_token": "jwt-2"}"#),
            (200, None, ""),
        ]);
        let delivered = deliver(&setup, &script, None, 1).await;
        assert_eq!(
            delivered.status(),
            Status::Triggered,
            "{}",
            delivered.detail()
        );
        assert_eq!(delivered.attempts, 2, "both sends are reported");
        assert_eq!(
            *script.authorizations.lock().unwrap(),
            ["Bearer jwt-1", "Bearer jwt-2"]
        );
        // Refused again after the refresh: final, and not retried.
        let script = Script::with_bodies(&[
            (401, None, ""),
            token(r#"{"access_token": "jwt-3"}"#),
            (401, None, ""),
        ]);
        let delivered = deliver(&setup, &script, None, 2).await;
        assert!(
            delivered.detail().starts_with(
                "unauthorized: Airflow refused the credentials in secret \"airflow\" (401)"
            ),
            "{}",
            delivered.detail()
        );
        assert_eq!(script.times.lock().unwrap().len(), 3);
    }

    /// A webhook with `rate_limit` (YAML flow mapping).
    fn limited(rate_limit: &str, policy: RetryPolicy) -> Setup {
        let yaml =
            format!("webhook: {{ url: 'http://127.0.0.1:9/hook', rate_limit: {rate_limit} }}");
        let target: TargetConfig = serde_saphyr::from_str(&yaml).unwrap();
        let mut templates = Templates::new();
        let endpoint = target.build("t", &mut templates).unwrap();
        Setup {
            endpoint,
            templates,
            policy,
            store: None,
            takeover: Takeover::Expired,
        }
    }

    /// Answers 200 after `delay`, counting the requests it holds at once.
    #[derive(Debug, Default)]
    struct Slow {
        delay: Duration,
        /// (now, most at once, in all)
        counts: Mutex<(u32, u32, u32)>,
    }

    impl Transport for Slow {
        fn send<'a>(&'a self, _: &'a Request, _: Duration) -> BoxFuture<'a, Sent> {
            Box::pin(async move {
                {
                    let mut counts = self.counts.lock().unwrap();
                    counts.0 += 1;
                    counts.1 = counts.1.max(counts.0);
                    counts.2 += 1;
                }
                tokio::time::sleep(self.delay).await;
                self.counts.lock().unwrap().0 -= 1;
                Sent::Answered(Answer::new(StatusCode::OK, ""))
            })
        }

        fn reaches_network(&self) -> bool {
            true
        }
    }

    #[tokio::test(start_paused = true)]
    async fn twenty_deliveries_at_five_per_second_start_200_ms_apart() {
        let setup = limited("{ per_second: 5, burst: 1 }", RetryPolicy::default());
        let script = Script::new(&[(200, None); 20]);
        let started = Instant::now();
        let deliveries = (0..20).map(|i| deliver(&setup, &script, None, i));
        let delivered = futures_util::future::join_all(deliveries).await;
        assert!(
            delivered.iter().all(|d| d.status() == Status::Triggered),
            "{:?}",
            delivered.iter().map(Delivered::detail).collect::<Vec<_>>()
        );
        let times = script.times.lock().unwrap();
        let offsets: Vec<Duration> = times.iter().map(|at| *at - started).collect();
        let want: Vec<Duration> = (0..20).map(|i| Duration::from_millis(200 * i)).collect();
        assert_eq!(offsets, want);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_takes_a_turn_too() {
        let setup = limited("{ per_second: 5 }", policy(3, 10, 10, 2000));
        let script = Script::new(&[(503, None), (200, None)]);
        let delivered = deliver(&setup, &script, None, 1).await;
        assert_eq!(delivered.status(), Status::Triggered);
        assert_eq!(delivered.attempts, 2);
        let times = script.times.lock().unwrap();
        assert_eq!(
            times[1] - times[0],
            Duration::from_millis(200),
            "the backoff is at most 10 ms; the rate makes it 200"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_two_never_has_more_than_two_requests_at_the_target() {
        let setup = limited("{ in_flight: 2 }", RetryPolicy::default());
        let slow = Slow {
            delay: Duration::from_millis(100),
            ..Slow::default()
        };
        let started = Instant::now();
        let deliveries = (0..10).map(|i| deliver(&setup, &slow, None, i));
        let delivered = futures_util::future::join_all(deliveries).await;
        assert!(delivered.iter().all(|d| d.status() == Status::Triggered));
        let (now, most, all) = *slow.counts.lock().unwrap();
        assert_eq!((now, most, all), (0, 2, 10));
        // Two at a time, not one: five rounds of 100 ms.
        assert_eq!(started.elapsed(), Duration::from_millis(500));
        assert_eq!(setup.endpoint.limiter.free_slots(), Some(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_backoff_gives_the_slot_back_while_it_waits() {
        let setup = limited("{ in_flight: 1 }", policy(3, 10, 10, 2000));
        // The first to go gets 503 and is asked to wait a second; the other goes meanwhile.
        let script = Script::new(&[(503, Some("1")), (200, None), (200, None)]);
        let started = Instant::now();
        let (first, second) = tokio::join!(
            deliver(&setup, &script, None, 1),
            deliver(&setup, &script, None, 1)
        );
        assert_eq!(first.status(), Status::Triggered);
        assert_eq!(second.status(), Status::Triggered);
        let times = script.times.lock().unwrap();
        let offsets: Vec<Duration> = times.iter().map(|at| *at - started).collect();
        assert_eq!(
            offsets,
            [Duration::ZERO, Duration::ZERO, Duration::from_secs(1)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_past_the_cutoff_is_out_of_time_and_sends_nothing() {
        // Deadline in 3 s, margin 2 s: the cutoff is 1 s away, and so is the second turn.
        let setup = limited("{ per_second: 1 }", policy(4, 10, 50, 2000));
        let script = Script::new(&[(200, None)]);
        let started = Instant::now();
        let deadline = Some(started + Duration::from_secs(3));
        let (first, second) = tokio::join!(
            deliver(&setup, &script, deadline, 1),
            deliver(&setup, &script, deadline, 1)
        );
        assert_eq!(first.status(), Status::Triggered);
        assert_eq!(second.status(), Status::Failed);
        assert!(second.retryable());
        assert_eq!(second.attempts, 0);
        assert_eq!(
            second.detail(),
            "not sent: this target's next turn at 1 per second is 1000 ms away, past the cutoff \
             (rate_limit.per_second) (no time left before the deadline to retry)"
        );
        assert_eq!(script.times.lock().unwrap().len(), 1);
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "nothing waited for in vain"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_held_back_past_the_cutoff_reports_what_it_retried() {
        // The 503 is retried after at most 10 ms, but the next turn is at 1 s: past the cutoff.
        let setup = limited("{ per_second: 1 }", policy(4, 10, 10, 2000));
        let script = Script::new(&[(503, None)]);
        let deadline = Some(Instant::now() + Duration::from_millis(2900));
        let delivered = deliver(&setup, &script, deadline, 1).await;
        assert!(delivered.retryable());
        assert_eq!(delivered.attempts, 1);
        assert_eq!(delivered.http_status, Some(503));
        assert!(
            delivered
                .detail()
                .starts_with("HTTP 503; then not sent: this target's next turn at 1 per second"),
            "{}",
            delivered.detail()
        );
        assert_eq!(script.times.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_busy_until_the_cutoff_is_out_of_time_and_sends_nothing() {
        let setup = limited("{ in_flight: 1 }", policy(4, 10, 50, 2000));
        let slow = Slow {
            delay: Duration::from_secs(5),
            ..Slow::default()
        };
        let started = Instant::now();
        let deadline = Some(started + Duration::from_secs(3));
        let waiting = async {
            // Let the first take the slot.
            tokio::task::yield_now().await;
            let delivered = deliver(&setup, &slow, deadline, 2).await;
            (delivered, started.elapsed())
        };
        let (first, (second, waited)) = tokio::join!(deliver(&setup, &slow, None, 1), waiting);
        assert_eq!(first.status(), Status::Triggered);
        assert_eq!(
            second.detail(),
            "not sent: this target's 1 in-flight slot(s) stayed busy until the cutoff \
             (rate_limit.in_flight) (no time left before the deadline to retry)"
        );
        assert!(second.retryable());
        assert_eq!(waited, Duration::from_secs(1), "waited until the cutoff");
        assert_eq!(slow.counts.lock().unwrap().2, 1, "one request in all");
    }

    #[tokio::test(start_paused = true)]
    async fn a_delivery_cut_off_by_the_time_cap_gives_its_slot_back() {
        let setup = limited(
            "{ in_flight: 1, per_second: 10 }",
            policy(4, 200, 5000, 2000),
        );
        let deadline = Some(Instant::now() + Duration::from_secs(10));
        let cut = deliver(&setup, &Hang, deadline, 1).await;
        assert!(
            cut.detail().starts_with("no outcome yet"),
            "{}",
            cut.detail()
        );
        assert_eq!(setup.endpoint.limiter.free_slots(), Some(1));
        let script = Script::new(&[(200, None)]);
        let deadline = Some(Instant::now() + Duration::from_secs(10));
        let next = deliver(&setup, &script, deadline, 2).await;
        assert_eq!(next.status(), Status::Triggered, "{}", next.detail());
    }

    #[tokio::test(start_paused = true)]
    async fn dry_runs_are_not_limited() {
        let setup = limited("{ per_second: 1, in_flight: 1 }", RetryPolicy::default());
        let started = Instant::now();
        let deliveries = (0..5).map(|i| deliver(&setup, &DryRun, None, i));
        let delivered = futures_util::future::join_all(deliveries).await;
        assert!(delivered.iter().all(|d| d.status() == Status::DryRun));
        assert_eq!(started.elapsed(), Duration::ZERO);
        // And they used no turn: a real request goes at once.
        let script = Script::new(&[(200, None)]);
        deliver(&setup, &script, None, 9).await;
        assert_eq!(script.times.lock().unwrap()[0], started);
    }

    #[tokio::test]
    async fn a_dry_run_prints_the_signed_request() {
        let config = config("{ basic: { secret: airflow } }", RetryPolicy::default());
        let delivered = deliver(&config, &DryRun, None, 1).await;
        assert_eq!(delivered.status(), Status::DryRun);
        assert_eq!(delivered.attempts, 0);
        let json = serde_json::to_value(&delivered).unwrap();
        assert_eq!(json["request"]["headers"]["authorization"], "Basic ****");
        assert_eq!(json["detail"], "not sent (dry run)");
        assert!(
            json["run_id"]
                .as_str()
                .unwrap()
                .starts_with("r__b-k.csv__01")
        );
    }
}
