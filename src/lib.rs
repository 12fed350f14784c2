//! bucket-trigger: turns "an object landed in storage" into "a workflow run started".
//!
//! Data flows one way through the rooms (ARCHITECTURE.md has the map): [`event`] (any envelope
//! → [`event::ObjectEvent`]s), [`routing`] and [`config`] (which routes match), [`targets`]
//! (build the run request, read the answer), [`auth`] (sign it with credentials from
//! [`secrets`]), [`delivery`] (the retry loop), [`http`] (requests as data, the one status
//! table, the transport), [`app`] (plan and run an invocation), [`report`] (what it did) and
//! [`handler`] (the Lambda answer).
#![deny(missing_docs)]

pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod event;
pub mod glob;
pub mod handler;
pub mod http;
pub mod report;
pub mod routing;
pub mod secrets;
pub mod targets;
pub mod template;

use std::path::Path;

use secrets::{SecretSource, SecretsError, SecretsFile, SecretsManager};

/// Environment variable naming a local JSON secrets file (instead of Secrets Manager).
pub const ENV_SECRETS_FILE: &str = "BUCKET_TRIGGER_SECRETS_FILE";

/// The secret source: a local file when `path` is given (or `BUCKET_TRIGGER_SECRETS_FILE` is
/// set), else AWS Secrets Manager through the default AWS configuration chain. The SDK client is
/// built on the first secret fetch, only if the configuration reads secrets at all.
pub fn secret_source(
    path: Option<&Path>,
    needs_secrets: bool,
) -> Result<Box<dyn SecretSource>, SecretsError> {
    let from_env = std::env::var(ENV_SECRETS_FILE)
        .ok()
        .filter(|p| !p.trim().is_empty());
    match path.map(Path::to_owned).or(from_env.map(Into::into)) {
        Some(path) => Ok(Box::new(SecretsFile::load(&path)?)),
        None if needs_secrets => Ok(Box::new(SecretsManager::from_env())),
        None => Ok(Box::new(SecretsFile::parse(Path::new("(none)"), "{}")?)),
    }
}
