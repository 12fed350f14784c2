//! Test support: loading sample events, building apps, Lambda contexts, and a moto server.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use bucket_trigger::app::App;
use bucket_trigger::clock::ManualClock;
use bucket_trigger::config::Config;
use bucket_trigger::http::Network;
use bucket_trigger::secrets::SecretsFile;
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde_json::Value;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A sample event from `events/`.
pub fn sample(name: &str) -> Value {
    let path = root().join("events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// An app from YAML config text and a JSON secrets document.
pub fn app(config: &str, secrets: &str) -> App {
    let config = Config::parse(config, "test config").unwrap();
    let source = SecretsFile::parse(std::path::Path::new("test-secrets.json"), secrets).unwrap();
    App::new(config, Box::new(source)).unwrap()
}

/// The same app on a clock the test moves (token expiry without waiting for it).
pub fn app_with_clock(config: &str, secrets: &str, clock: Arc<ManualClock>) -> App {
    let config = Config::parse(config, "test config").unwrap();
    let source = SecretsFile::parse(std::path::Path::new("test-secrets.json"), secrets).unwrap();
    let network = Network::new(&config.settings.network()).unwrap();
    App::with_parts(config, Box::new(source), Box::new(network), clock)
}

/// The same app in dry-run mode: requests are printed, not sent.
pub fn dry_run_app(config: &str, secrets: &str) -> App {
    let config = Config::parse(config, "test config").unwrap();
    let source = SecretsFile::parse(std::path::Path::new("test-secrets.json"), secrets).unwrap();
    App::dry_run(config, Box::new(source))
}

/// Runs one invocation through the Lambda handler; the answer as Lambda would receive it.
pub async fn handle(app: &App, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let answer = bucket_trigger::handler::handle(app, event).await?;
    Ok(serde_json::to_value(answer).unwrap())
}

/// A Lambda event with a deadline `budget` from now.
pub fn lambda_event(payload: Value, budget: Duration) -> LambdaEvent<Value> {
    let mut context = Context::default();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    context.deadline = (now + budget).as_millis() as u64;
    context.request_id = "test-request".into();
    LambdaEvent::new(payload, context)
}

/// Runs a sample event through the Lambda handler with 30 s before the deadline.
pub async fn invoke(app: &App, event: &str) -> Result<Value, lambda_runtime::Diagnostic> {
    handle(app, lambda_event(sample(event), Duration::from_secs(30))).await
}

/// Base URL of a moto server started once for this test binary (`moto_server` from
/// `MOTO_SERVER`, `.venv/bin`, or PATH), on 127.0.0.1. It exits when this process does.
pub fn moto() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(start_moto)
}

fn start_moto() -> String {
    let venv = root().join(".venv/bin/moto_server");
    let program = std::env::var("MOTO_SERVER").ok().unwrap_or_else(|| {
        if venv.exists() {
            venv.display().to_string()
        } else {
            "moto_server".to_owned()
        }
    });
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A watchdog shell kills moto once this test process is gone.
    let script = format!(
        "{program} -H 127.0.0.1 -p {port} >/dev/null 2>&1 & moto=$!; \
         while kill -0 {parent} 2>/dev/null && kill -0 $moto 2>/dev/null; do sleep 0.5; done; \
         kill $moto 2>/dev/null",
        parent = std::process::id()
    );
    // The watchdog is reaped by init when this process exits; nothing waits on it here.
    let watchdog = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .expect("cannot run sh to start moto_server");
    std::mem::forget(watchdog);
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return url;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "moto_server did not start on 127.0.0.1:{port} within 30 s. Install it with \
         `pip install 'moto[server]'` (scripts/test.sh does this into .venv) or set MOTO_SERVER"
    );
}

/// The test venv's Python (oauthlib installed by scripts/test.sh), or `TEST_PYTHON`.
pub fn python() -> String {
    std::env::var("TEST_PYTHON").unwrap_or_else(|_| {
        let venv = root().join(".venv/bin/python");
        if venv.exists() {
            venv.display().to_string()
        } else {
            "python3".to_owned()
        }
    })
}

/// A Python stand-in server from tests/fixtures, started with a piped stdin (it exits when the
/// pipe closes) and stopped when dropped.
pub struct Fixture {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`
    pub origin: String,
}

impl Fixture {
    /// Runs `tests/fixtures/{script}` with `args` and waits for its `LISTENING <port>` line.
    pub fn start(script: &str, args: &[String]) -> Fixture {
        use std::io::BufRead;
        let mut child = Command::new(python())
            .arg(root().join("tests/fixtures").join(script))
            .args(args)
            .env("NO_PROXY", "127.0.0.1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tests/fixtures/{script}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().strip_prefix("LISTENING ").unwrap_or_else(|| {
            panic!("{script} did not start ({line:?}); are its Python packages installed? (scripts/test.sh installs them)")
        });
        Fixture {
            child,
            origin: format!("http://127.0.0.1:{port}"),
        }
    }

    /// `GET path` on the fixture, as JSON.
    pub fn get(&self, path: &str) -> Value {
        self.send("GET", path)
    }

    /// `POST path` with no body, as JSON.
    pub fn post(&self, path: &str) -> Value {
        self.send("POST", path)
    }

    fn send(&self, method: &str, path: &str) -> Value {
        use std::io::{Read, Write};
        let address = self.origin.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: {address}\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, body)| body)
            .unwrap_or_default();
        serde_json::from_str(body).unwrap_or(Value::Null)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A stand-in Alteryx Gallery (tests/fixtures/gallery_server.py) that verifies OAuth 1.0a
/// signatures with Python's oauthlib.
pub struct Gallery {
    fixture: Fixture,
    /// `http://127.0.0.1:PORT/gallery`
    pub url: String,
}

impl Gallery {
    /// Starts one that accepts exactly this consumer key and secret.
    pub fn start(key: &str, secret: &str) -> Gallery {
        let fixture = Fixture::start(
            "gallery_server.py",
            &[
                format!("--consumer-key={key}"),
                format!("--consumer-secret={secret}"),
            ],
        );
        let url = format!("{}/gallery", fixture.origin);
        Gallery { fixture, url }
    }

    /// What the server received, with its own verdict on each signature.
    pub fn requests(&self) -> Vec<Value> {
        serde_json::from_value(self.fixture.get("/_requests")).unwrap()
    }
}
/// A Secrets Manager client of the real SDK, pointed at the moto server.
pub fn moto_client() -> aws_sdk_secretsmanager::Client {
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(bucket_trigger::secrets::sdk_http_client())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .endpoint_url(moto())
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

/// A name no other test uses.
pub fn unique(name: &str) -> String {
    format!("{name}-{}", fastrand::u64(..))
}

/// Environment for running the binary against moto through `AWS_ENDPOINT_URL`.
pub fn moto_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", moto().to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
}

/// A DynamoDB client of moto's (the test account, us-east-1).
pub fn dynamodb() -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(bucket_trigger::secrets::sdk_http_client())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .endpoint_url(moto())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// A fresh idempotency table in moto, as the README says to make it: partition key `pk` (a
/// string), on demand. Its name starts with `prefix`.
pub async fn idempotency_table(prefix: &str) -> String {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let name = unique(prefix);
    dynamodb()
        .create_table()
        .table_name(&name)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    name
}
