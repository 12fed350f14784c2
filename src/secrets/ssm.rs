//! Credentials: text kept in AWS Systems Manager Parameter Store (`GetParameter`, a
//! SecureString decrypted), read once at cold start when the configuration lives there.

use aws_sdk_ssm::Client;
use aws_sdk_ssm::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use tokio::sync::OnceCell;

use super::SecretString;

/// Parameter Store, through one SDK client built on first use (nothing is loaded unless a
/// parameter is actually read).
#[derive(Debug)]
pub struct ParameterStore {
    client: OnceCell<Client>,
}

/// Why a parameter could not be read. Messages name the parameter, never its value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ParameterError {
    /// No such parameter (or no such version or label of it).
    #[error("SSM parameter {name:?} not found{hint}")]
    NotFound {
        /// The name asked for, with its `:version` or `:label` if one was given.
        name: String,
        /// Which part was not found, when the service says.
        hint: String,
    },
    /// The parameter may not be read (IAM, or the KMS key of a SecureString).
    #[error("access to SSM parameter {name:?} denied: {message}")]
    AccessDenied {
        /// The name asked for.
        name: String,
        /// The service's message (which names no value).
        message: String,
    },
    /// Could not reach Parameter Store, or it failed.
    #[error("could not read SSM parameter {name:?}: {message}")]
    Unavailable {
        /// The name asked for.
        name: String,
        /// What went wrong.
        message: String,
    },
}

impl ParameterStore {
    /// Wraps a client.
    pub fn new(client: Client) -> Self {
        ParameterStore {
            client: OnceCell::new_with(Some(client)),
        }
    }

    /// A client from the default AWS configuration chain (environment, profile, container
    /// role), honouring `AWS_ENDPOINT_URL_SSM` / `AWS_ENDPOINT_URL`, built on first use.
    pub fn from_env() -> Self {
        ParameterStore {
            client: OnceCell::new(),
        }
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async { Client::new(super::aws_config().await) })
            .await
    }

    /// The value of parameter `name` (`/path`, `/path:3` for version 3, `/path:label`),
    /// a SecureString decrypted. The value is a [`SecretString`] so that it never prints.
    pub async fn get(&self, name: &str) -> Result<SecretString, ParameterError> {
        let output = self
            .client()
            .await
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|error| classify(name, error))?;
        output
            .parameter
            .and_then(|parameter| parameter.value)
            .map(SecretString::new)
            .ok_or_else(|| ParameterError::NotFound {
                name: name.to_owned(),
                hint: " (the answer held no value)".to_owned(),
            })
    }
}

fn classify(name: &str, error: SdkError<GetParameterError>) -> ParameterError {
    let name = name.to_owned();
    if let SdkError::ServiceError(service) = &error {
        let err = service.err();
        if err.is_parameter_not_found() {
            return ParameterError::NotFound {
                name,
                hint: " in SSM Parameter Store".to_owned(),
            };
        }
        if err.is_parameter_version_not_found() {
            return ParameterError::NotFound {
                name,
                hint: " (no such version or label)".to_owned(),
            };
        }
        if err.code() == Some("AccessDeniedException") {
            return ParameterError::AccessDenied {
                name,
                message: DisplayErrorContext(err).to_string(),
            };
        }
    }
    ParameterError::Unavailable {
        name,
        message: DisplayErrorContext(&error).to_string(),
    }
}
