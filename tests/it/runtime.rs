//! A stand-in for the Lambda Runtime API (wiremock on 127.0.0.1), so the release path runs as
//! Lambda runs it: the real binary, started with `AWS_LAMBDA_RUNTIME_API`, asks for the next
//! invocation, answers it, and asks again. What a test gets back is every answer the process
//! posted, its output (the function's log), and whether it was still alive at the end: a
//! panic (with `panic = "abort"` in release) or an exit would end the process early.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const NEXT: &str = "/2018-06-01/runtime/invocation/next";

/// What the function posted for one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Posted {
    /// `POST .../{id}/response` with this JSON body.
    Response(Value),
    /// `POST .../{id}/error` with this body (`errorType`, `errorMessage`).
    Error(Value),
}

impl Posted {
    pub fn body(&self) -> &Value {
        match self {
            Posted::Response(body) | Posted::Error(body) => body,
        }
    }
}

/// The outcome of serving a list of invocations to the binary.
pub struct Served {
    /// One per event, in order; `None` if the function never answered that invocation.
    pub answers: Vec<Option<Posted>>,
    /// Everything the process wrote: its log (stdout in Lambda mode), then stderr.
    pub output: String,
    /// Still running after its last answer (a Lambda process serves invocations until frozen).
    pub alive: bool,
}

/// Runs the binary in Lambda mode against a stand-in Runtime API serving `events` (raw
/// bytes, so a test can send what no `Value` can hold), each with `budget` before its
/// deadline. `env` is added to the Lambda variables; the config comes from it.
pub async fn serve(events: &[Vec<u8>], budget: Duration, env: &[(&str, String)]) -> Served {
    serve_in(None, events, budget, env).await
}

/// [`serve`], with the process started in `dir` (as Lambda starts it in its task root).
pub async fn serve_in(
    dir: Option<&Path>,
    events: &[Vec<u8>],
    budget: Duration,
    env: &[(&str, String)],
) -> Served {
    let api = MockServer::start().await;
    for (index, event) in events.iter().enumerate() {
        let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + budget;
        // Deadlines are stamped when mounted; a long list gets the budget per event from
        // the start, which is what a batch of queued invocations sees too.
        let deadline = deadline + budget * index as u32;
        Mock::given(method("GET"))
            .and(path(NEXT))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("lambda-runtime-aws-request-id", format!("req-{index}"))
                    .insert_header(
                        "lambda-runtime-deadline-ms",
                        deadline.as_millis().to_string(),
                    )
                    .insert_header(
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:bucket-trigger",
                    )
                    .insert_header(
                        "lambda-runtime-trace-id",
                        "Root=1-00000000-000000000000000000000000",
                    )
                    .set_body_raw(event.clone(), "application/json"),
            )
            .up_to_n_times(1)
            .mount(&api)
            .await;
    }
    // After the last event, `next` hangs as it does while Lambda has nothing to send.
    Mock::given(method("GET"))
        .and(path(NEXT))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(600)))
        .mount(&api)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(
            r"^/2018-06-01/runtime/invocation/req-\d+/(response|error)$",
        ))
        .respond_with(ResponseTemplate::new(202))
        .mount(&api)
        .await;

    let address = api.address().to_string();
    let mut command = Command::new(env!("CARGO_BIN_EXE_bucket-trigger"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", &address)
        .env("AWS_LAMBDA_FUNCTION_NAME", "bucket-trigger")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_PROXY", "127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let mut child = command.spawn().expect("cannot start the binary");
    // Read the output while the function runs: a pipe holds 64 KiB, and a function whose log
    // fills it blocks on its next line, which would look like a hang of the function.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());

    let limit = Instant::now() + budget * events.len() as u32 + Duration::from_secs(20);
    let answers = loop {
        let answers = posted(&api, events.len()).await;
        let done = answers.iter().all(Option::is_some);
        if done || Instant::now() > limit || exited(&mut child) {
            break answers;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let alive = !exited(&mut child);
    let _ = child.kill();
    let _ = child.wait();
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    Served {
        answers,
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
        alive,
    }
}

/// Reads a pipe to its end on a thread of its own.
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

fn exited(child: &mut Child) -> bool {
    !matches!(child.try_wait(), Ok(None))
}

async fn posted(api: &MockServer, count: usize) -> Vec<Option<Posted>> {
    let mut answers = vec![None; count];
    for request in api.received_requests().await.unwrap_or_default() {
        let segments: Vec<&str> = request.url.path().split('/').collect();
        let [.., id, kind] = segments.as_slice() else {
            continue;
        };
        let Some(index) = id
            .strip_prefix("req-")
            .and_then(|i| i.parse::<usize>().ok())
        else {
            continue;
        };
        let body = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        if let Some(slot) = answers.get_mut(index) {
            *slot = match *kind {
                "response" => Some(Posted::Response(body)),
                "error" => Some(Posted::Error(body)),
                _ => None,
            };
        }
    }
    answers
}
