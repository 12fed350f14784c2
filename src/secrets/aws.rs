//! Credentials: AWS Secrets Manager through the AWS SDK (`GetSecretValue`).

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use futures_util::future::BoxFuture;
use tokio::sync::OnceCell;

use super::{SecretSource, SecretString, SecretsError};

/// Secrets Manager, through one SDK client built on first use and kept for the container's
/// life. Building it loads the AWS configuration and the SDK's TLS trust store (several
/// milliseconds), so it is deferred until a secret is actually needed rather than done in init.
#[derive(Debug)]
pub struct SecretsManager {
    client: OnceCell<Client>,
}

impl SecretsManager {
    /// Wraps a client.
    pub fn new(client: Client) -> Self {
        SecretsManager {
            client: OnceCell::new_with(Some(client)),
        }
    }

    /// A client from the default AWS configuration chain (environment, profile, container role),
    /// honouring `AWS_ENDPOINT_URL_SECRETS_MANAGER` / `AWS_ENDPOINT_URL`, built on first use.
    pub fn from_env() -> Self {
        SecretsManager {
            client: OnceCell::new(),
        }
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async { Client::new(super::aws_config().await) })
            .await
    }

    async fn get(&self, id: &str) -> Result<SecretString, SecretsError> {
        let output = self
            .client()
            .await
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|error| classify(id, error))?;
        if let Some(text) = output.secret_string {
            return Ok(SecretString::new(text));
        }
        if let Some(blob) = output.secret_binary {
            return String::from_utf8(blob.into_inner())
                .map(SecretString::new)
                .map_err(|_| SecretsError::Unavailable {
                    id: id.to_owned(),
                    message: "SecretBinary is not UTF-8 text".to_owned(),
                });
        }
        Err(SecretsError::NotFound {
            id: id.to_owned(),
            hint: " (it has no SecretString or SecretBinary)".to_owned(),
        })
    }
}

impl SecretSource for SecretsManager {
    fn fetch<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<SecretString, SecretsError>> {
        Box::pin(self.get(id))
    }
}

fn classify(id: &str, error: SdkError<GetSecretValueError>) -> SecretsError {
    let id = id.to_owned();
    if let SdkError::ServiceError(service) = &error {
        let err = service.err();
        if err.is_resource_not_found_exception() {
            return SecretsError::NotFound {
                id,
                hint: " in AWS Secrets Manager".to_owned(),
            };
        }
        let code =
            aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(err).unwrap_or_default();
        if code == "AccessDeniedException" || err.is_decryption_failure() {
            return SecretsError::AccessDenied {
                id,
                message: DisplayErrorContext(err).to_string(),
            };
        }
        if err.is_invalid_parameter_exception() || err.is_invalid_request_exception() {
            return SecretsError::NotFound {
                id,
                hint: format!(" ({})", DisplayErrorContext(err)),
            };
        }
    }
    SecretsError::Unavailable {
        id,
        message: DisplayErrorContext(&error).to_string(),
    }
}
