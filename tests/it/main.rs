//! Integration tests, one binary: sample events end to end through the handler, against
//! wiremock stand-ins for Airflow and webhooks, moto for Secrets Manager and Parameter Store,
//! the template's configs, and the CLI binary.

mod alteryx;
mod assets;
mod backfill;
mod cli;
mod deploy;
mod events;
mod failures;
mod google;
mod handler;
mod lambda;
mod leak;
mod lookups;
mod malformed;
mod metrics;
mod mwaa;
mod prewarm;
mod props;
mod push;
mod rate_limit;
mod runtime;
mod secrets_manager;
mod ssm;
mod store;
mod support;
mod tls;
