//! Backfill (above app and listing): runs every object a bucket listing finds through the app,
//! for the files that landed before the trigger existed. Each page is split into chunks
//! delivered as one invocation each (with its own deadline), while the next page is listed; the
//! idempotency table makes an object already COMPLETED by a live event (or an earlier
//! backfill) come back `already_triggered` without a request. Only counts and failures are
//! kept, so a listing of millions of objects costs no more memory than one page.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use tokio::time::Instant;

use crate::app::App;
use crate::delivery::Status;
use crate::event::{Body, Invocation, Message, ObjectEvent, Parsed};
use crate::listing::{ListingError, Pages};
use crate::report::{Outcome, Report};

/// Objects delivered per invocation of [`App::process`]; the timeout bounds each chunk.
pub const CHUNK: usize = 100;

/// Deliveries by how they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Runs started.
    pub triggered: u64,
    /// Already started before (by a live event or an earlier backfill): nothing sent.
    pub already_triggered: u64,
    /// Printed, not sent (`--dry-run`).
    pub dry_run: u64,
    /// Not delivered.
    pub failed: u64,
}

impl Counts {
    fn add(&mut self, status: Status) {
        match status {
            Status::Triggered => self.triggered += 1,
            Status::AlreadyTriggered => self.already_triggered += 1,
            Status::DryRun => self.dry_run += 1,
            Status::Failed => self.failed += 1,
        }
    }
}

/// One failed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureLine {
    /// Route.
    pub route: String,
    /// Target description.
    pub target: String,
    /// Object key.
    pub key: String,
    /// Why (scrubbed of secrets by the transport).
    pub error: String,
}

/// What a backfill did so far.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Objects listed.
    pub listed: u64,
    /// Objects at least one route matched.
    pub matched: u64,
    /// Objects no route matched.
    pub skipped: u64,
    /// Deliveries (object × route × target) by outcome.
    pub deliveries: Counts,
    /// The same by route and target.
    pub by_target: BTreeMap<(String, String), Counts>,
    /// Every failed delivery.
    pub failures: Vec<FailureLine>,
}

impl Tally {
    fn add(&mut self, report: &Report) {
        let events = report.summary.events as u64;
        let skipped = report.skipped.len() as u64;
        self.listed += events;
        self.skipped += skipped;
        self.matched += events.saturating_sub(skipped);
        for outcome in &report.outcomes {
            let status = outcome.delivered.status();
            self.deliveries.add(status);
            self.by_target
                .entry((outcome.route.clone(), outcome.target.clone()))
                .or_default()
                .add(status);
            if let Some(failure) = outcome.delivered.failure() {
                self.failures.push(FailureLine {
                    route: outcome.route.clone(),
                    target: outcome.target.clone(),
                    key: outcome.key.clone(),
                    error: failure.to_string(),
                });
            }
        }
    }

    /// The one-line progress shown on a terminal.
    pub fn progress(&self) -> String {
        format!(
            "listed {} · triggered {} · already {} · failed {}",
            self.listed,
            self.deliveries.triggered + self.deliveries.dry_run,
            self.deliveries.already_triggered,
            self.deliveries.failed
        )
    }

    /// The summary table: counts, then by route × target (up to `rows` of them), then up to
    /// `rows` failures.
    pub fn render(&self, rows: usize) -> String {
        let d = &self.deliveries;
        let mut out = String::new();
        let mut line = |label: &str, value: u64, note: &str| {
            let _ = writeln!(out, "{label:<20}{value:>10}{note}");
        };
        line("objects listed", self.listed, "");
        line("matched a route", self.matched, "");
        line("skipped", self.skipped, "  (no route matches)");
        line(
            "triggered",
            d.triggered,
            "  (deliveries: object × route × target)",
        );
        line("already triggered", d.already_triggered, "  (nothing sent)");
        if d.dry_run > 0 {
            line("dry run", d.dry_run, "  (printed, not sent)");
        }
        line("failed", d.failed, "");
        if !self.by_target.is_empty() {
            let width = |f: fn(&(String, String)) -> usize| {
                self.by_target.keys().take(rows).map(f).max().unwrap_or(0)
            };
            let (route_w, target_w) = (width(|k| k.0.len()).max(5), width(|k| k.1.len()).max(6));
            let _ = writeln!(
                out,
                "\n{:<route_w$}  {:<target_w$}  {:>9}  {:>9}  {:>7}  {:>7}",
                "route", "target", "triggered", "already", "dry run", "failed"
            );
            for ((route, target), c) in self.by_target.iter().take(rows) {
                let _ = writeln!(
                    out,
                    "{route:<route_w$}  {target:<target_w$}  {:>9}  {:>9}  {:>7}  {:>7}",
                    c.triggered, c.already_triggered, c.dry_run, c.failed
                );
            }
            if self.by_target.len() > rows {
                let _ = writeln!(
                    out,
                    "({} more route × target rows)",
                    self.by_target.len() - rows
                );
            }
        }
        if !self.failures.is_empty() {
            let _ = writeln!(out, "\nfailures (route · target · key: error):");
            for failure in self.failures.iter().take(rows) {
                let _ = writeln!(
                    out,
                    "{} · {} · {}: {}",
                    failure.route, failure.target, failure.key, failure.error
                );
            }
            if self.failures.len() > rows {
                let _ = writeln!(out, "({} more failures)", self.failures.len() - rows);
            }
            let _ = writeln!(
                out,
                "run the backfill again to retry them: with an idempotency table, what was \
                 triggered is not sent again"
            );
        }
        out
    }
}

/// A backfill stopped by a listing error, with what it had done by then.
#[derive(Debug)]
pub struct Stopped {
    /// What was done before the listing failed.
    pub tally: Tally,
    /// Why the listing failed.
    pub error: ListingError,
}

/// Lists every page of `pages` and delivers its objects through `app`, `CHUNK` objects per
/// invocation, each chunk with the deadline `timeout` (plus the configured margin) from its
/// start; the next page is listed while the current one is delivered. `observe` sees the
/// tally and each chunk's outcomes as they come (the CLI's progress line and dry-run print).
pub async fn run(
    app: &App,
    pages: &mut Pages<'_>,
    timeout: Duration,
    mut observe: impl FnMut(&Tally, &[Outcome]),
) -> Result<Tally, Stopped> {
    let mut tally = Tally::default();
    let mut page = match pages.next_page().await {
        Ok(page) => page,
        Err(error) => return Err(Stopped { tally, error }),
    };
    while let Some(objects) = page {
        let ((), next) = tokio::join!(
            deliver(app, objects, timeout, &mut tally, &mut observe),
            pages.next_page()
        );
        page = match next {
            Ok(next) => next,
            Err(error) => return Err(Stopped { tally, error }),
        };
    }
    Ok(tally)
}

/// Delivers one page's objects, chunk by chunk.
async fn deliver(
    app: &App,
    mut objects: Vec<ObjectEvent>,
    timeout: Duration,
    tally: &mut Tally,
    observe: &mut impl FnMut(&Tally, &[Outcome]),
) {
    let margin = app.config.settings.retry.deadline_margin;
    while !objects.is_empty() {
        let rest = objects.split_off(objects.len().min(CHUNK));
        let chunk = std::mem::replace(&mut objects, rest);
        let parsed = Parsed {
            invocation: Invocation::Direct,
            messages: vec![Message {
                id: None,
                body: Ok(Body::Objects(chunk)),
                // A listing has no message: a failure record carries the normalized event.
                original: serde_json::Value::Null,
                receive_count: None,
            }],
        };
        let deadline = Instant::now().checked_add(timeout.saturating_add(margin));
        let report = app.process(&parsed, deadline).await;
        tally.add(&report);
        observe(tally, &report.outcomes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_counts_objects_and_deliveries_and_lists_failures() {
        let mut tally = Tally {
            listed: 2000,
            matched: 1000,
            skipped: 1000,
            deliveries: Counts {
                triggered: 400,
                already_triggered: 590,
                dry_run: 0,
                failed: 10,
            },
            ..Tally::default()
        };
        tally.by_target.insert(
            ("csv".into(), "webhook POST https://h/hook".into()),
            tally.deliveries,
        );
        for n in 0..10 {
            tally.failures.push(FailureLine {
                route: "csv".into(),
                target: "webhook POST https://h/hook".into(),
                key: format!("in/{n}.csv"),
                error: "HTTP 400: bad".into(),
            });
        }
        let table = tally.render(3);
        assert!(
            table.contains("objects listed            2000\n"),
            "{table}"
        );
        assert!(
            table.contains("already triggered          590  (nothing sent)"),
            "{table}"
        );
        assert!(
            !table.lines().any(|line| line.starts_with("dry run")),
            "no dry-run line when nothing was printed: {table}"
        );
        assert!(
            table.contains(
                "csv    webhook POST https://h/hook        400        590        0       10"
            ),
            "{table}"
        );
        assert!(
            table.contains("csv · webhook POST https://h/hook · in/2.csv: HTTP 400: bad"),
            "{table}"
        );
        assert!(!table.contains("in/3.csv"), "{table}");
        assert!(table.contains("(7 more failures)"), "{table}");
        assert_eq!(
            tally.progress(),
            "listed 2000 · triggered 400 · already 590 · failed 10"
        );
    }
}
