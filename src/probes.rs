//! The operator's plain-HTTP endpoints for Kubernetes and Prometheus: `/livez` (the process
//! answers), `/readyz` (503 naming what it still waits for, until every part of
//! [`Readiness`] is done) and `/metrics` (the Prometheus text exposition of [`Metrics`]).
//! Served on every replica, leader or not.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::controller::Metrics;

/// Port of the probes and metrics (the Service's `metrics` port).
pub const DEFAULT_PORT: u16 = 8080;

/// What `/readyz` waits for: 200 once every part is done.
#[derive(Clone, Debug)]
pub struct Readiness(Arc<Mutex<BTreeSet<&'static str>>>);

impl Readiness {
    /// Waiting for each of `parts` (short phrases, shown by `/readyz`).
    pub fn waiting_for(parts: &[&'static str]) -> Readiness {
        Readiness(Arc::new(Mutex::new(parts.iter().copied().collect())))
    }

    pub fn done(&self, part: &'static str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(part);
    }

    /// The parts not done yet, in order.
    pub fn pending(&self) -> Vec<&'static str> {
        let parts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        parts.iter().copied().collect()
    }

    pub fn is_ready(&self) -> bool {
        self.pending().is_empty()
    }
}

fn answer(
    request: &Request<Incoming>,
    metrics: &Metrics,
    readiness: &Readiness,
) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String, content_type: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    };
    const PLAIN: &str = "text/plain; charset=utf-8";
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into(), PLAIN);
    }
    match request.uri().path() {
        "/livez" => text(StatusCode::OK, "ok\n".into(), PLAIN),
        "/readyz" => match readiness.pending().as_slice() {
            [] => text(StatusCode::OK, "ok\n".into(), PLAIN),
            pending => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("waiting for: {}\n", pending.join(", ")),
                PLAIN,
            ),
        },
        "/metrics" => text(
            StatusCode::OK,
            metrics.encode(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into(), PLAIN),
    }
}

/// Serves the endpoints on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    // connections end with the server (see crate::task)
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => return,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a probe connection");
                    continue;
                }
            },
        };
        let (metrics, readiness) = (metrics.clone(), readiness.clone());
        connections.spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = answer(&request, &metrics, &readiness);
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "probe connection");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_waits_for_every_part() {
        let readiness = Readiness::waiting_for(&["webhooks registered", "permissions checked"]);
        assert_eq!(
            readiness.pending(),
            ["permissions checked", "webhooks registered"]
        );
        readiness.done("permissions checked");
        readiness.done("not a part");
        assert!(!readiness.is_ready());
        readiness.clone().done("webhooks registered");
        assert!(readiness.is_ready());
    }
}
