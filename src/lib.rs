//! bucket-trigger: turns "an object landed in storage" into "a workflow run started".
//!
//! Data flows one way through the rooms: [`event`] (any envelope → [`event::ObjectEvent`]s),
//! [`routing`] and [`config`] (which routes match), [`target`] (build the run request),
//! [`auth`] (sign it with credentials from [`secrets`]), [`delivery`] (send, classify, retry),
//! and [`app`] / [`handler`] (outcomes → the Lambda answer).
#![deny(missing_docs)]

pub mod app;
pub mod auth;
pub mod config;
pub mod delivery;
pub mod event;
pub mod glob;
pub mod handler;
pub mod request;
pub mod routing;
pub mod secrets;
pub mod target;
pub mod template;

use std::path::Path;

use secrets::{SecretSource, SecretsFile, SecretsManager};

/// Environment variable naming a local JSON secrets file (instead of Secrets Manager).
pub const ENV_SECRETS_FILE: &str = "BUCKET_TRIGGER_SECRETS_FILE";

/// The secret source: a local file when `path` is given (or `BUCKET_TRIGGER_SECRETS_FILE` is
/// set), else AWS Secrets Manager through the default AWS configuration chain. The SDK client is
/// built on the first secret fetch, only if the configuration reads secrets at all.
pub async fn secret_source(
    path: Option<&Path>,
    needs_secrets: bool,
) -> Result<Box<dyn SecretSource>, String> {
    let from_env = std::env::var(ENV_SECRETS_FILE)
        .ok()
        .filter(|p| !p.trim().is_empty());
    match path.map(Path::to_owned).or(from_env.map(Into::into)) {
        Some(path) => Ok(Box::new(SecretsFile::load(&path)?)),
        None if needs_secrets => Ok(Box::new(SecretsManager::from_env())),
        None => Ok(Box::new(SecretsFile::parse(Path::new("(none)"), "{}")?)),
    }
}
