//! Credentials: a local JSON secrets file for local runs and dry-runs
//! (`{"secret-id": {"FIELD": "value"}, "plain-secret": "value"}`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::{SecretSource, SecretString, SecretsError};

/// Secrets read from a JSON file once, at start.
pub struct SecretsFile {
    path: PathBuf,
    secrets: HashMap<String, SecretString>,
}

impl SecretsFile {
    /// Reads `path`: a JSON object mapping secret ids to objects (JSON secrets) or strings.
    pub fn load(path: &Path) -> Result<Self, SecretsError> {
        let text = std::fs::read_to_string(path).map_err(|e| SecretsError::File {
            path: path.display().to_string(),
            reason: format!("cannot be read: {e}"),
        })?;
        Self::parse(path, &text)
    }

    /// Parses the file's text; `path` is for messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, SecretsError> {
        let bad = |reason: String| SecretsError::File {
            path: path.display().to_string(),
            reason,
        };
        // serde_json's message names a position, never the text around it.
        let value: Value =
            serde_json::from_str(text).map_err(|e| bad(format!("is not valid JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(bad("must be a JSON object of secret ids".to_owned()));
        };
        let secrets = map
            .into_iter()
            .map(|(id, value)| {
                let raw = match value {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                (id, SecretString::new(raw))
            })
            .collect();
        Ok(SecretsFile {
            path: path.to_owned(),
            secrets,
        })
    }
}

impl SecretSource for SecretsFile {
    fn fetch<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<SecretString, SecretsError>> {
        let result = self
            .secrets
            .get(id)
            .cloned()
            .ok_or_else(|| SecretsError::NotFound {
                id: id.to_owned(),
                hint: format!(" in secrets file {}", self.path.display()),
            });
        Box::pin(std::future::ready(result))
    }
}
