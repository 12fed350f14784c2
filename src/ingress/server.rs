//! Ingress: `bucket-trigger serve`, a plain HTTP/1.1 server for pushes (Cloud Run, or any
//! host behind TLS termination). Each request gets the same checks and answer as a function
//! URL's; on shutdown (SIGTERM from Cloud Run) it stops accepting and lets the requests in
//! flight finish.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Ingress, PushRequest, PushResponse};
use crate::app::App;
use crate::metrics;

/// The largest push body read: a Cloud Storage notification is a few kilobytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How `serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The time one push may take, retries included (keep it under the subscription's ack
    /// deadline, or Pub/Sub delivers again while we work).
    pub timeout: Duration,
    /// The CloudWatch namespace to print metric lines in, if at all.
    pub metrics: Option<String>,
}

/// Serves pushes on `listener` until `shutdown` completes, then waits (at most `timeout` more)
/// for the requests in flight.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    ingress: Arc<Ingress>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let options = Arc::new(options);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (app, ingress, options) = (app.clone(), ingress.clone(), options.clone());
        let mut stopped = stopped.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let (app, ingress, options) = (app.clone(), ingress.clone(), options.clone());
                async move {
                    let response = answer(&app, &ingress, &options, request).await;
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, %peer, "connection ended");
                    }
                }
                _ = stopped.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
        // Reap finished connections so the set does not grow with every client.
        while connections.try_join_next().is_some() {}
    }
    tracing::info!(
        in_flight = connections.len(),
        "shutting down: no new connections"
    );
    let _ = stop.send(true);
    let grace = options.timeout + Duration::from_secs(1);
    if tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("requests still in flight after the grace period; abandoned");
    }
    Ok(())
}

/// One HTTP request: read (bounded), answered by the ingress, metric lines printed.
async fn answer(
    app: &App,
    ingress: &Ingress,
    options: &ServeOptions,
    request: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(body) => body.to_bytes().to_vec(),
        Err(error) => {
            let too_large = error.is::<http_body_util::LengthLimitError>();
            let response = match too_large {
                true => PushResponse::error(413, "the body is larger than a push can be (1 MiB)"),
                false => PushResponse::error(400, "the body could not be read"),
            };
            return http_response(&response);
        }
    };
    let request = PushRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    let deadline = Instant::now().checked_add(options.timeout);
    let (response, report) = ingress.answer(app, &request, deadline).await;
    if let (Some(namespace), Some(report)) = (&options.metrics, &report) {
        let now = app.clock().now();
        if let Err(error) = metrics::write(report, namespace, now, &mut std::io::stdout().lock()) {
            tracing::warn!(%error, "metric lines not written");
        }
    }
    http_response(&response)
}

fn http_response(response: &PushResponse) -> hyper::Response<Full<Bytes>> {
    let mut builder = hyper::Response::builder()
        .status(response.status)
        .header("content-type", "application/json");
    for (name, value) in &response.headers {
        builder = builder.header(*name, value.as_str());
    }
    builder
        .body(Full::new(Bytes::from(response.body.clone())))
        .unwrap_or_else(|_| {
            let mut fallback = hyper::Response::new(Full::new(Bytes::new()));
            *fallback.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
}
