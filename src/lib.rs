//! bucket-trigger: turns "an object landed in storage" into "a workflow run started".
//!
//! Data flows one way through the rooms (ARCHITECTURE.md has the map): [`event`] (any envelope
//! → [`event::ObjectEvent`]s), [`routing`] and [`config`] (which routes match), [`targets`]
//! (build the run request, read the answer), [`auth`] (sign it with credentials from
//! [`secrets`]), [`delivery`] (the retry loop), [`http`] (requests as data, the one status
//! table, the transport), [`app`] (plan and run an invocation), [`report`] (what it did),
//! [`metrics`] (the report as CloudWatch metrics), [`ingress`] (HTTP pushes: checked, then
//! processed, answered with a status) and [`handler`] (the Lambda answer).
//! [`listing`] reads a bucket's objects and [`backfill`] runs them through the app
//! (`bucket-trigger backfill`); [`replay`] runs failure records again.
#![deny(missing_docs)]

pub mod app;
pub mod auth;
pub mod backfill;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod event;
pub mod glob;
pub mod handler;
pub mod http;
pub mod ingress;
pub mod listing;
pub mod metrics;
pub mod replay;
pub mod report;
pub mod routing;
pub mod secrets;
pub mod store;
pub mod targets;
pub mod template;
pub mod tls;

use std::path::Path;

use secrets::{Placeholders, SecretSource, SecretsError, SecretsFile, SecretsManager};

/// Environment variable naming a local JSON secrets file (instead of Secrets Manager).
pub const ENV_SECRETS_FILE: &str = "BUCKET_TRIGGER_SECRETS_FILE";

/// Where secrets come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretsWanted {
    /// None: the configuration reads no secret.
    None,
    /// Real ones: a local file, else AWS Secrets Manager.
    Real,
    /// A dry run's: a local file if given, else placeholders (no AWS call).
    DryRun,
}

/// The secret source: a local file when `path` is given (or `BUCKET_TRIGGER_SECRETS_FILE` is
/// set), else AWS Secrets Manager through the default AWS configuration chain (a dry run uses
/// placeholders instead). The SDK client is built on the first secret fetch.
pub fn secret_source(
    path: Option<&Path>,
    wanted: SecretsWanted,
) -> Result<Box<dyn SecretSource>, SecretsError> {
    let from_env = std::env::var(ENV_SECRETS_FILE)
        .ok()
        .filter(|p| !p.trim().is_empty());
    match (
        path.map(Path::to_owned).or(from_env.map(Into::into)),
        wanted,
    ) {
        (Some(path), _) => Ok(Box::new(SecretsFile::load(&path)?)),
        (None, SecretsWanted::Real) => Ok(Box::new(SecretsManager::from_env())),
        (None, SecretsWanted::DryRun) => Ok(Box::new(Placeholders)),
        (None, SecretsWanted::None) => Ok(Box::new(SecretsFile::parse(Path::new("(none)"), "{}")?)),
    }
}
