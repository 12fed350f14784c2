//! Handler / main: runs as an AWS Lambda function, or as a CLI over one event file
//! (`invoke`, with `--dry-run`) and a config checker (`validate`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use bucket_trigger::app::App;
use bucket_trigger::auth::aws_region;
use bucket_trigger::clock::SystemClock;
use bucket_trigger::config::Config;
use bucket_trigger::http::Network;
use bucket_trigger::ingress::{self, Ingress};
use bucket_trigger::secrets::{ParameterStore, SecretSource};
use bucket_trigger::{SecretsWanted, backfill, event, handler, listing, metrics, secret_source};
use lambda_runtime::{LambdaEvent, service_fn};

const USAGE: &str = "\
bucket-trigger: start workflow runs (Airflow, webhooks) when objects land in a bucket.

USAGE:
    bucket-trigger                         run as an AWS Lambda function (AWS_LAMBDA_RUNTIME_API set)
    bucket-trigger invoke EVENT_FILE [--config FILE] [--secrets-file FILE] [--dry-run] [--timeout SECONDS] [--metrics]
    bucket-trigger validate [--config FILE]
    bucket-trigger serve [--port PORT] [--host ADDRESS] [--config FILE] [--secrets-file FILE]
                         [--timeout SECONDS] [--metrics]
    bucket-trigger replay [FILE|-]... [--queue QUEUE_URL] [--config FILE] [--secrets-file FILE] [--dry-run]
                          [--timeout SECONDS] [--limit N] [--resend-may-have-run]
    bucket-trigger backfill s3://BUCKET[/PREFIX] [--config FILE] [--secrets-file FILE] [--dry-run]
                   [--limit N] [--start-after KEY] [--page-size N] [--timeout SECONDS]

invoke    runs one event file (any supported shape) through the same code path as the Lambda,
          prints a JSON report on stdout; exit 0 when every delivery succeeded (or already
          existed), 1 when any failed, 2 on bad input.
          --dry-run prints each signed request (secrets redacted) instead of sending it.
          --timeout SECONDS (default 60) bounds the whole delivery, retries and waits asked
          for by Retry-After included, as the deadline bounds a Lambda invocation.
validate  checks a config and prints its routes; exit 2 on an error naming the route and field.
serve     an HTTP server for Cloud Storage pushes (Pub/Sub push subscriptions, Eventarc), for
          Cloud Run: each endpoint of settings.push checks its pusher (Google-signed OIDC
          token, ?token=) before anything runs. Listens on --host (default 127.0.0.1; 0.0.0.0
          in a container) and --port, else $PORT, else 8080. Answers 200 when every delivery
          succeeded, already had, or failed for good (with a failure record), 503 when one may
          succeed on retry (Pub/Sub delivers again), 401/403 to a pusher not let in.
          --timeout SECONDS (default 50) per push: keep it under the subscription's ack
          deadline. Stops on SIGTERM or Ctrl-C once the pushes in flight are answered.
replay    runs failed deliveries again through the same routes (and idempotency table): failure
          records from files, stdin (-) or log lines, Lambda on-failure destination records,
          dead-lettered SQS bodies or event files; --queue drains an SQS failure queue, deleting
          each message once it is done with. Records of requests that may have run on a target
          that cannot tell are skipped unless --resend-may-have-run. Prints a summary table;
          exit 0 when everything was delivered (or already was), 1 otherwise, 2 on bad input.
          --timeout SECONDS (default 60) per item; --limit N (default 10000) queue messages.
backfill  lists the objects under the prefix (ListObjectsV2; ListObjectVersions on a versioned
          bucket) and runs each through the routes as an ObjectCreated:Put, for the files that
          landed before the trigger existed; with an idempotency table, objects already
          triggered are not sent again. Prints a summary table; exit 0, 1 when any delivery
          failed, 2 on bad input or a failed listing.
          --dry-run lists for real but prints the requests instead of sending them (JSON lines).
          --limit N stops after N objects; --start-after KEY resumes after a key;
          --page-size N (1-1000, default 1000) keys per listing request;
          --timeout SECONDS (default 60) bounds each chunk of 100 objects' delivery.

Config: --config FILE, else BUCKET_TRIGGER_CONFIG (inline YAML/JSON), else BUCKET_TRIGGER_CONFIG_FILE,
        else BUCKET_TRIGGER_CONFIG_SSM (an SSM Parameter Store name, SecureString allowed).
Secrets: --secrets-file FILE (JSON: {\"secret-id\": {\"field\": \"value\"}}), else
         BUCKET_TRIGGER_SECRETS_FILE, else AWS Secrets Manager.
Lambda:  BUCKET_TRIGGER_DRY_RUN=1 answers with the requests instead of sending them.
Metrics: after each Lambda invocation, CloudWatch metric lines (EMF) on stdout, unless
         settings.metrics.enabled is false or BUCKET_TRIGGER_METRICS=0 (=1 turns them on,
         for invoke too). Never for a dry run.
Logs:    RUST_LOG / AWS_LAMBDA_LOG_LEVEL (default info), AWS_LAMBDA_LOG_FORMAT=JSON.";

enum Command {
    Lambda,
    Invoke {
        event: PathBuf,
        config: Option<PathBuf>,
        secrets: Option<PathBuf>,
        dry_run: bool,
        timeout: Duration,
        metrics: bool,
    },
    Validate {
        config: Option<PathBuf>,
    },
    Serve(ServeArgs),
    Replay(ReplayArgs),
    Backfill(BackfillArgs),
    Help,
    Version,
}

/// `serve`'s arguments.
struct ServeArgs {
    host: String,
    port: Option<u16>,
    config: Option<PathBuf>,
    secrets: Option<PathBuf>,
    timeout: Duration,
    metrics: bool,
}

/// `replay`'s arguments.
struct ReplayArgs {
    files: Vec<PathBuf>,
    queue: Option<String>,
    config: Option<PathBuf>,
    secrets: Option<PathBuf>,
    dry_run: bool,
    timeout: Duration,
    limit: usize,
    resend_may_have_run: bool,
}

fn parse_args() -> Result<Command, lexopt::Error> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let Some(first) = parser.next()? else {
        return Ok(Command::Lambda);
    };
    let sub = match first {
        Long("help") | Short('h') => return Ok(Command::Help),
        Long("version") | Short('V') => return Ok(Command::Version),
        Value(value) => value.string()?,
        other => return Err(other.unexpected()),
    };
    if sub == "replay" {
        return parse_replay(parser);
    }
    if sub == "backfill" {
        return parse_backfill(parser);
    }
    if sub == "serve" {
        return parse_serve(parser);
    }
    if !matches!(sub.as_str(), "invoke" | "validate" | "lambda") {
        // An unknown command is an error whatever follows it (`replay --help` included).
        return Err(format!("unknown command {sub:?}").into());
    }
    let (mut event, mut config, mut secrets, mut dry_run) = (None, None, None, false);
    let mut metrics = false;
    let mut timeout = Duration::from_secs(60);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("config") | Short('c') => config = Some(parser.value()?.into()),
            Long("secrets-file") if sub == "invoke" => secrets = Some(parser.value()?.into()),
            Long("dry-run") if sub == "invoke" => dry_run = true,
            Long("metrics") if sub == "invoke" => metrics = true,
            Long("timeout") if sub == "invoke" => {
                let seconds: f64 = parser.value()?.parse()?;
                timeout = Duration::try_from_secs_f64(seconds)
                    .ok()
                    .filter(|timeout| !timeout.is_zero())
                    .ok_or("--timeout takes a positive number of seconds")?;
            }
            Long("help") | Short('h') => return Ok(Command::Help),
            Value(value) if sub == "invoke" && event.is_none() => event = Some(value.into()),
            other => return Err(other.unexpected()),
        }
    }
    match sub.as_str() {
        "invoke" => Ok(Command::Invoke {
            event: event.ok_or("invoke needs an EVENT_FILE (e.g. events/s3-put.json)")?,
            config,
            secrets,
            dry_run,
            timeout,
            metrics,
        }),
        "validate" => Ok(Command::Validate { config }),
        "lambda" => Ok(Command::Lambda),
        other => Err(format!("unknown command {other:?}").into()),
    }
}

fn parse_serve(mut parser: lexopt::Parser) -> Result<Command, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = ServeArgs {
        host: "127.0.0.1".to_owned(),
        port: None,
        config: None,
        secrets: None,
        timeout: Duration::from_secs(50),
        metrics: false,
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Long("host") => args.host = parser.value()?.string()?,
            Long("port") | Short('p') => args.port = Some(parser.value()?.parse()?),
            Long("config") | Short('c') => args.config = Some(parser.value()?.into()),
            Long("secrets-file") => args.secrets = Some(parser.value()?.into()),
            Long("timeout") => args.timeout = parse_timeout(parser.value()?)?,
            Long("metrics") => args.metrics = true,
            Long("help") | Short('h') => return Ok(Command::Help),
            other => return Err(other.unexpected()),
        }
    }
    Ok(Command::Serve(args))
}

fn parse_timeout(value: std::ffi::OsString) -> Result<Duration, lexopt::Error> {
    use lexopt::ValueExt as _;
    let seconds: f64 = value.parse()?;
    Ok(Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|timeout| !timeout.is_zero())
        .ok_or("--timeout takes a positive number of seconds")?)
}

fn parse_replay(mut parser: lexopt::Parser) -> Result<Command, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = ReplayArgs {
        files: Vec::new(),
        queue: None,
        config: None,
        secrets: None,
        dry_run: false,
        timeout: Duration::from_secs(60),
        limit: 10_000,
        resend_may_have_run: false,
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Long("config") | Short('c') => args.config = Some(parser.value()?.into()),
            Long("secrets-file") => args.secrets = Some(parser.value()?.into()),
            Long("queue") => args.queue = Some(parser.value()?.string()?),
            Long("dry-run") => args.dry_run = true,
            Long("resend-may-have-run") => args.resend_may_have_run = true,
            Long("timeout") => args.timeout = parse_timeout(parser.value()?)?,
            Long("limit") => args.limit = parser.value()?.parse()?,
            Long("help") | Short('h') => return Ok(Command::Help),
            Value(value) => args.files.push(value.into()),
            other => return Err(other.unexpected()),
        }
    }
    if args.files.is_empty() && args.queue.is_none() {
        return Err(
            "replay needs a FILE of failure records, - for stdin, or --queue QUEUE_URL".into(),
        );
    }
    Ok(Command::Replay(args))
}

fn main() -> ExitCode {
    let command = match parse_args() {
        Ok(command) => command,
        Err(error) => {
            eprintln!("error: {error}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Help => {
                out(format_args!("{USAGE}"));
                Ok(ExitCode::SUCCESS)
            }
            Command::Version => {
                out(format_args!("bucket-trigger {}", env!("CARGO_PKG_VERSION")));
                Ok(ExitCode::SUCCESS)
            }
            Command::Lambda => lambda().await.map(|()| ExitCode::SUCCESS),
            Command::Validate { config } => validate(config).await,
            Command::Serve(args) => serve(args).await,
            Command::Replay(args) => replay(args).await,
            Command::Invoke {
                event,
                config,
                secrets,
                dry_run,
                timeout,
                metrics,
            } => invoke(event, config, secrets, dry_run, timeout, metrics).await,
            Command::Backfill(args) => backfill(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Lambda mode: build the app once, then serve invocations.
async fn lambda() -> Result<()> {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        anyhow::bail!("AWS_LAMBDA_RUNTIME_API is not set: not running under Lambda.\n\n{USAGE}");
    }
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::load(None, &ParameterStore::from_env()).await?;
    let dry_run =
        std::env::var("BUCKET_TRIGGER_DRY_RUN").is_ok_and(|v| matches!(v.as_str(), "1" | "true"));
    let source = secret_source(None, secrets_wanted(&config, dry_run))?;
    if source.placeholders() {
        tracing::warn!("{PLACEHOLDER_NOTE}");
    }
    // Metric lines on by default under Lambda; a dry run sends nothing worth counting.
    let metrics_on = metrics_switch(config.settings.metrics.enabled)? && !dry_run;
    // The app lives as long as the process; leaking it gives every worker a plain reference.
    let app = build_app(config, source, dry_run)
        .await?
        .with_platform_retries();
    let app: &'static App = Box::leak(Box::new(app));
    prewarm(app).await;
    // Function URL requests: only to the endpoints of settings.push, each checking its pusher.
    let ingress: Option<&'static Ingress> = match app.config.settings.push.is_empty() {
        true => None,
        false => Some(Box::leak(Box::new(ingress_for(&app.config)?))),
    };
    let namespace = metrics_on.then_some(app.config.settings.metrics.namespace.as_str());
    // One invocation at a time on classic Lambda; as many as AWS_LAMBDA_MAX_CONCURRENCY
    // asks on Lambda Managed Instances (and under `cargo lambda watch`, which sets it).
    lambda_runtime::run_concurrent(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            handler::handle_with(app, ingress, event, namespace).await
        },
    ))
    .await
    .map_err(|error| anyhow::anyhow!("Lambda runtime failed: {error}"))
}

/// How long `settings.prewarm` may take (Lambda's init phase is limited to 10 s).
const PREWARM_WITHIN: Duration = Duration::from_secs(4);

/// `settings.prewarm`: secrets, tokens and connections made ready before the first event.
async fn prewarm(app: &App) {
    if !app.config.settings.prewarm {
        return;
    }
    let started = std::time::Instant::now();
    let done = app.prewarm(PREWARM_WITHIN).await;
    for problem in &done.problems {
        tracing::warn!(%problem, "prewarm: left for the first event");
    }
    tracing::info!(
        secrets = done.secrets,
        signers = done.signers,
        connections = done.connections,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "prewarmed"
    );
}

/// The push endpoints of `config`, with a client of their own for Google's keys.
fn ingress_for(config: &Config) -> Result<Ingress> {
    let network = Network::new(&config.settings.network())
        .context("cannot build the HTTP client that fetches Google's keys")?;
    Ok(Ingress::new(&config.settings.push, Box::new(network)))
}

/// `serve`: pushes over plain HTTP until SIGTERM or Ctrl-C.
async fn serve(args: ServeArgs) -> Result<ExitCode> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::load(args.config.as_deref(), &ParameterStore::from_env()).await?;
    if config.settings.push.is_empty() {
        anyhow::bail!(
            "serve needs push endpoints: settings.push lists each path with how its pusher is \
             authenticated (oidc: the Google-signed token of a push subscription or Eventarc; \
             token: the ?token= verification token), e.g.\n  settings:\n    push:\n      - \
             path: /\n        oidc: {{ audience: https://SERVICE-URL/, service_account: \
             PUSHER@PROJECT.iam.gserviceaccount.com }}"
        );
    }
    let port = match args.port {
        Some(port) => port,
        None => match std::env::var("PORT") {
            Ok(text) => text
                .trim()
                .parse()
                .with_context(|| format!("PORT={text:?} is not a port number"))?,
            Err(_) => 8080,
        },
    };
    let address = format!("{}:{port}", args.host);
    let ingress = ingress_for(&config)?;
    let namespace =
        metrics_switch(args.metrics)?.then(|| config.settings.metrics.namespace.clone());
    let source = secret_source(args.secrets.as_deref(), secrets_wanted(&config, false))?;
    let app = build_app(config, source, false)
        .await?
        .with_platform_retries();
    // Before listening: Cloud Run sends no request until the port is open.
    prewarm(&app).await;
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let bound = listener.local_addr().map_or(address, |a| a.to_string());
    tracing::info!(address = %bound, "serving pushes");
    eprintln!("bucket-trigger serve: listening on http://{bound}");
    let options = ingress::ServeOptions {
        timeout: args.timeout,
        metrics: namespace,
    };
    ingress::serve(
        listener,
        std::sync::Arc::new(app),
        std::sync::Arc::new(ingress),
        options,
        shutdown_signal(),
    )
    .await
    .context("serve failed")?;
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM (Cloud Run, Kubernetes, `docker stop`) or Ctrl-C.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutdown asked");
}

/// Said when a dry run signs with placeholders.
const PLACEHOLDER_NOTE: &str = "dry run without a secrets file: secrets are placeholders, \
     nothing is read from AWS (pass --secrets-file FILE, or set BUCKET_TRIGGER_SECRETS_FILE, \
     to sign with real ones)";

/// Whether metric lines are printed: `BUCKET_TRIGGER_METRICS` if set, else `default`.
fn metrics_switch(default: bool) -> Result<bool> {
    let env = std::env::var(metrics::ENV_METRICS).ok();
    metrics::enabled(env.as_deref(), default).map_err(anyhow::Error::msg)
}

fn secrets_wanted(config: &Config, dry_run: bool) -> SecretsWanted {
    match (config.secret_ids.is_empty(), dry_run) {
        (true, _) => SecretsWanted::None,
        (false, true) => SecretsWanted::DryRun,
        (false, false) => SecretsWanted::Real,
    }
}

/// Prints a line on stdout. A reader that went away (`invoke ... | head -c 10`) is not an error
/// worth a panic: the process exits quietly with 141, as Unix tools stopped by SIGPIPE do.
fn out(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        std::process::exit(141);
    }
}

/// The app, printing requests instead of sending them when `dry_run`: the one place the
/// choice is made.
async fn build_app(config: Config, source: Box<dyn SecretSource>, dry_run: bool) -> Result<App> {
    if dry_run {
        return Ok(App::dry_run(config, source));
    }
    Ok(App::connect(config, source).await?)
}

async fn validate(config: Option<PathBuf>) -> Result<ExitCode> {
    lambda_runtime::tracing::init_default_subscriber_with_writer(std::io::stderr);
    let config = Config::load(config.as_deref(), &ParameterStore::from_env()).await?;
    out(format_args!("config OK: {} route(s)", config.routes.len()));
    for route in &config.routes {
        out(format_args!(
            "- {}: {}",
            route.name,
            route.matcher.describe()
        ));
        for target in &route.targets {
            out(format_args!("    → {}", target.description));
        }
    }
    let mut tables: Vec<&str> = config
        .routes
        .iter()
        .flat_map(|route| &route.targets)
        .filter_map(|target| target.idempotency_table.as_deref())
        .collect();
    tables.sort_unstable();
    tables.dedup();
    if !tables.is_empty() {
        out(format_args!("idempotency table(s): {}", tables.join(", ")));
    }
    if let Some(queue) = &config.settings.failure_queue {
        out(format_args!("failure records: log and {queue}"));
    }
    for endpoint in &config.settings.push {
        let mut checks = Vec::new();
        if let Some(oidc) = &endpoint.oidc {
            checks.push(format!(
                "Google OIDC token of {} for audience {}",
                oidc.service_account, oidc.audience
            ));
        }
        if let Some((secret, _)) = &endpoint.token {
            checks.push(format!("?token= from secret {secret}"));
        }
        if checks.is_empty() {
            checks.push("UNAUTHENTICATED (allow_unauthenticated: true)".to_owned());
        }
        out(format_args!(
            "push endpoint {}: {}",
            endpoint.path,
            checks.join(" and ")
        ));
    }
    if !config.secret_ids.is_empty() {
        out(format_args!(
            "secrets read: {}",
            config.secret_ids.join(", ")
        ));
        // Paste-ready for the template's policy (a CommaDelimitedList: no spaces).
        out(format_args!(
            "template.yaml: SecretNames={}",
            config.secret_ids.join(",")
        ));
    }
    Ok(ExitCode::SUCCESS)
}

async fn invoke(
    event_path: PathBuf,
    config: Option<PathBuf>,
    secrets: Option<PathBuf>,
    dry_run: bool,
    timeout: Duration,
    metrics: bool,
) -> Result<ExitCode> {
    lambda_runtime::tracing::init_default_subscriber_with_writer(std::io::stderr);
    let config = Config::load(config.as_deref(), &ParameterStore::from_env()).await?;
    let bytes = std::fs::read(&event_path)
        .with_context(|| format!("cannot read {}", event_path.display()))?;
    let parsed =
        read_event_file(&bytes).with_context(|| format!("event file {}", event_path.display()))?;
    let source = secret_source(secrets.as_deref(), secrets_wanted(&config, dry_run))?;
    if source.placeholders() {
        eprintln!("note: {PLACEHOLDER_NOTE}");
    }
    // The deadline sits the configured margin past the timeout, so that no attempt starts
    // after `timeout` and the margin keeps its meaning: time to answer.
    let margin = config.settings.retry.deadline_margin;
    let deadline = tokio::time::Instant::now().checked_add(timeout.saturating_add(margin));
    // Off unless asked (--metrics or BUCKET_TRIGGER_METRICS=1); on stderr, beside the log,
    // since stdout holds the report.
    let namespace =
        (metrics_switch(metrics)? && !dry_run).then(|| config.settings.metrics.namespace.clone());
    let app = build_app(config, source, dry_run).await?;
    let report = app.process(&parsed, deadline).await;
    if let Some(namespace) = namespace {
        let now = app.clock().now();
        metrics::write(&report, &namespace, now, &mut std::io::stderr().lock())?;
    }
    out(format_args!("{}", serde_json::to_string_pretty(&report)?));
    Ok(if report.has_failures() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// An event file of any shape `invoke` takes; a function URL request (payload 2.0) is run by
/// its push's body, its authentication unchecked (the function URL and `serve` check it).
fn read_event_file(bytes: &[u8]) -> Result<event::Parsed> {
    let value: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(_) => return Ok(event::parse_bytes(bytes)?),
    };
    if !ingress::is_function_url(&value) {
        return Ok(event::parse(value)?);
    }
    eprintln!(
        "note: a function URL request: its push is run; its authentication is not checked \
         here (the function URL and serve check it)"
    );
    let request = ingress::from_function_url(&value).map_err(anyhow::Error::msg)?;
    Ok(ingress::read_push(&request)?)
}

/// `replay`: reads every input first (a bad file fails before anything is sent), then replays
/// item by item; a queue is drained after the files.
async fn replay(args: ReplayArgs) -> Result<ExitCode> {
    use bucket_trigger::replay::{self, Options, Summary};
    lambda_runtime::tracing::init_default_subscriber_with_writer(std::io::stderr);
    let mut config = Config::load(args.config.as_deref(), &ParameterStore::from_env()).await?;
    // A replayed failure is logged, never queued again: draining the queue must end.
    config.settings.failure_queue = None;
    let queue = match &args.queue {
        Some(text) => {
            let url = reqwest::Url::parse(text)
                .with_context(|| format!("--queue {text:?} is not a queue URL"))?;
            Some(bucket_trigger::store::Queue::new(url).await)
        }
        None => None,
    };
    let mut items = Vec::new();
    for file in &args.files {
        let text = if file.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?
        } else {
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?
        };
        items.extend(replay::read_items(&text));
    }
    let network = Network::new(&config.settings.network())?;
    let source = secret_source(
        args.secrets.as_deref(),
        secrets_wanted(&config, args.dry_run),
    )?;
    if source.placeholders() {
        eprintln!("note: {PLACEHOLDER_NOTE}");
    }
    let mut app = build_app(config, source, args.dry_run).await?;
    if args.resend_may_have_run {
        app = app.resending_may_have_run();
    }
    let options = Options {
        timeout: args.timeout,
        resend_may_have_run: args.resend_may_have_run,
    };
    let mut summary = Summary::default();
    for item in &items {
        replay::replay(&app, item, options, &mut summary).await;
    }
    if let Some(queue) = &queue {
        replay::drain(
            &app,
            queue,
            &network,
            options,
            args.limit,
            args.dry_run,
            &mut summary,
        )
        .await?;
    }
    out(format_args!("{}", summary.table().trim_end()));
    Ok(if summary.has_failures() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `backfill`'s arguments.
struct BackfillArgs {
    location: String,
    config: Option<PathBuf>,
    secrets: Option<PathBuf>,
    dry_run: bool,
    options: listing::Options,
    timeout: Duration,
}

fn parse_backfill(mut parser: lexopt::Parser) -> Result<Command, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = BackfillArgs {
        location: String::new(),
        config: None,
        secrets: None,
        dry_run: false,
        options: listing::Options::default(),
        timeout: Duration::from_secs(60),
    };
    let mut location = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("config") | Short('c') => args.config = Some(parser.value()?.into()),
            Long("secrets-file") => args.secrets = Some(parser.value()?.into()),
            Long("dry-run") => args.dry_run = true,
            Long("limit") => {
                let limit: u64 = parser.value()?.parse()?;
                args.options.limit = Some(limit).filter(|n| *n > 0);
                if args.options.limit.is_none() {
                    return Err("--limit takes a positive number of objects".into());
                }
            }
            Long("start-after") => args.options.start_after = Some(parser.value()?.string()?),
            Long("page-size") => {
                let size: u16 = parser.value()?.parse()?;
                if !(1..=listing::MAX_PAGE_KEYS).contains(&size) {
                    return Err("--page-size takes 1 to 1000 keys".into());
                }
                args.options.page_size = size;
            }
            Long("timeout") => {
                let seconds: f64 = parser.value()?.parse()?;
                args.timeout = Duration::try_from_secs_f64(seconds)
                    .ok()
                    .filter(|timeout| !timeout.is_zero())
                    .ok_or("--timeout takes a positive number of seconds")?;
            }
            Long("help") | Short('h') => return Ok(Command::Help),
            Value(value) if location.is_none() => location = Some(value.string()?),
            other => return Err(other.unexpected()),
        }
    }
    args.location = location.ok_or("backfill needs an s3://BUCKET[/PREFIX] argument")?;
    Ok(Command::Backfill(args))
}

/// `backfill`: list the location, run every object through the app, print the summary table.
async fn backfill(args: BackfillArgs) -> Result<ExitCode> {
    use std::io::{IsTerminal as _, Write as _};
    // One log line per delivery would drown the table: warnings only, unless asked.
    if std::env::var_os("AWS_LAMBDA_LOG_LEVEL").is_none() && std::env::var_os("RUST_LOG").is_none()
    {
        lambda_runtime::tracing::subscriber::fmt()
            .with_target(false)
            .without_time()
            .with_max_level(lambda_runtime::tracing::Level::WARN)
            .with_writer(std::io::stderr)
            .init();
    } else {
        lambda_runtime::tracing::init_default_subscriber_with_writer(std::io::stderr);
    }
    let location = listing::Location::parse(&args.location)?;
    let config = Config::load(args.config.as_deref(), &ParameterStore::from_env()).await?;
    let source = secret_source(
        args.secrets.as_deref(),
        secrets_wanted(&config, args.dry_run),
    )?;
    if source.placeholders() {
        eprintln!("note: {PLACEHOLDER_NOTE}");
    }
    if args.dry_run {
        eprintln!(
            "note: dry run: the bucket is listed, nothing is sent, and the idempotency table \
             is not read (objects already triggered are printed too)"
        );
    }
    // The listing reads real S3 in a dry run too: it only reads.
    let region = aws_region().await.ok_or(listing::ListingError::NoRegion)?;
    let network =
        Network::new(&config.settings.network())?.with_answer_limit(listing::MAX_PAGE_BYTES);
    let lister = listing::Lister::new(
        Box::new(network),
        std::sync::Arc::new(SystemClock),
        &region,
        listing::Lister::endpoint_from_env()?,
        config.settings.request_timeout.max(Duration::from_secs(30)),
    );
    let app = build_app(config, source, args.dry_run).await?;
    let started = std::time::Instant::now();
    let mut pages = lister.open(&location, args.options).await?;
    let terminal = std::io::stderr().is_terminal();
    let dry_run = args.dry_run;
    let result = backfill::run(&app, &mut pages, args.timeout, |tally, outcomes| {
        if dry_run {
            for outcome in outcomes {
                if let Some(request) = outcome.delivered.printed() {
                    let line = serde_json::json!({
                        "route": outcome.route,
                        "target": outcome.target,
                        "key": outcome.key,
                        "request": request,
                    });
                    out(format_args!("{line}"));
                }
            }
        }
        if terminal {
            eprint!("\r{}\x1b[K", tally.progress());
            let _ = std::io::stderr().flush();
        }
    })
    .await;
    if terminal {
        eprintln!();
    }
    let (tally, error) = match result {
        Ok(tally) => (tally, None),
        Err(stopped) => (stopped.tally, Some(stopped.error)),
    };
    out(format_args!(
        "backfill {location} ({}, {} S3 request(s), {:.1} s{})",
        pages.operation().as_str(),
        pages.requests(),
        started.elapsed().as_secs_f64(),
        if dry_run { ", dry run" } else { "" }
    ));
    out(format_args!("{}", tally.render(50).trim_end()));
    if let Some(error) = error {
        anyhow::bail!("listing stopped after {} object(s): {error}", tally.listed);
    }
    Ok(match tally.deliveries.failed {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}
