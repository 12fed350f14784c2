//! App: warming up before the first event (`settings.prewarm`): every configured secret read,
//! every target's credentials loaded and its token minted, and a connection opened to every
//! target host, within a time limit. Under Lambda this runs during init, which ends before the
//! first event arrives. Trouble is logged, never fatal: the first event meets it again, and
//! reports it where it belongs.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::future::join_all;
use reqwest::{Method, Url};
use tokio::time::Instant;

use super::App;
use crate::auth::SignContext;
use crate::http::{ClearTextGuard, Request, Sent, Transport};

/// The invocation number credentials are loaded under: no real invocation has it, so a refusal
/// met while warming is not remembered against the first event.
const PREWARM_INVOCATION: u64 = u64::MAX;

/// What [`App::prewarm`] did, for the init log line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Prewarmed {
    /// Secrets read into the cache.
    pub secrets: usize,
    /// Targets whose credentials were loaded (and token minted, where they have one).
    pub signers: usize,
    /// Target hosts a connection was opened to (any answer counts).
    pub connections: usize,
    /// What did not work, one line each (secret ids and hosts, never values).
    pub problems: Vec<String>,
}

impl App {
    /// Warms the secret cache, the token caches and the connection pool, giving up on what is
    /// not done within `within`. A dry run warms nothing (it reads and sends nothing).
    pub async fn prewarm(&self, within: Duration) -> Prewarmed {
        let mut done = Prewarmed::default();
        if !self.transport.reaches_network() {
            return done;
        }
        let until = Instant::now() + within;

        // Secrets first: base URLs and credentials come from them.
        let reads = self.config.secret_ids.iter().map(|id| async move {
            self.secrets
                .get(id)
                .await
                .map_err(|error| format!("secret {id:?}: {error}"))
        });
        let read = settle(until, "secrets", join_all(reads), &mut done.problems).await;
        done.secrets = read.len();

        // Then every target: its root, its credentials (a token minted), its host's origin.
        let endpoints = self.config.routes.iter().flat_map(|route| &route.targets);
        let signers = endpoints.map(|endpoint| async move {
            let failed =
                |error: &dyn std::fmt::Display| format!("{}: {error}", endpoint.description);
            let root = endpoint.root(&self.secrets).await.map_err(|e| failed(&e))?;
            let guard = ClearTextGuard::new(self.transport.as_ref(), endpoint.allow_http);
            let cx = SignContext {
                secrets: &self.secrets,
                transport: &guard,
                clock: self.clock.as_ref(),
                root: &root,
                timeout: self.config.settings.request_timeout,
                invocation: PREWARM_INVOCATION,
            };
            // A throwaway request, signed and never sent: signing loads what it needs.
            let mut request = Request::new(Method::GET, root.clone());
            endpoint
                .auth
                .sign(&mut request, &cx)
                .await
                .map_err(|e| failed(&e))?;
            Ok((origin(&root), endpoint.allow_http))
        });
        let signed = settle(
            until,
            "credentials and tokens",
            join_all(signers),
            &mut done.problems,
        )
        .await;
        done.signers = signed.len();
        let origins: BTreeSet<(Url, bool)> = signed
            .into_iter()
            .filter_map(|(origin, allow_http)| Some((origin?, allow_http)))
            .collect();

        // A connection per host: `HEAD /`, unsigned, its answer ignored; the pool keeps it.
        let connects = origins.iter().map(|(origin, allow_http)| async move {
            let guard = ClearTextGuard::new(self.transport.as_ref(), *allow_http);
            let request = Request::new(Method::HEAD, origin.clone());
            match guard
                .send(&request, self.config.settings.request_timeout)
                .await
            {
                Sent::Answered(_) | Sent::Printed(_) => Ok(()),
                Sent::Failed(error) => Err(format!("{}: {error}", origin.as_str())),
            }
        });
        let opened = settle(until, "connections", join_all(connects), &mut done.problems).await;
        done.connections = opened.len();
        done
    }
}

/// What of `work` went well by `until`; what did not goes to `problems`, one line each (or one
/// line saying `what` was not done in time).
async fn settle<T>(
    until: Instant,
    what: &str,
    work: impl Future<Output = Vec<Result<T, String>>>,
    problems: &mut Vec<String>,
) -> Vec<T> {
    let Ok(results) = tokio::time::timeout_at(until, work).await else {
        problems.push(format!("{what}: not done in time"));
        return Vec::new();
    };
    let mut done = Vec::with_capacity(results.len());
    for result in results {
        match result {
            Ok(value) => done.push(value),
            Err(problem) => problems.push(problem),
        }
    }
    done
}

/// `scheme://host:port/` of `url`, if it has a host.
fn origin(url: &Url) -> Option<Url> {
    url.host_str()?;
    let mut origin = url.clone();
    // Never credentials in a URL (they would be sent, and quoted in a problem line).
    let _ = origin.set_username("");
    let _ = origin.set_password(None);
    origin.set_path("/");
    origin.set_query(None);
    origin.set_fragment(None);
    Some(origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_keeps_scheme_host_and_port_only() {
        let url: Url = "https://user:pw@airflow.example.com:8443/api/v2/dags?x=1#f"
            .parse()
            .unwrap();
        assert_eq!(
            origin(&url).unwrap().as_str(),
            "https://airflow.example.com:8443/"
        );
    }
}
